"""PodSet: a ReplicaSet whose logic lives in roles/podset, on a real cluster."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.podsets import active_pods, converged, podset
from tests.support import ROOT, Cluster, OperatorProcess, StartOperator, wait_for


@pytest.fixture
def podset_operator(operator: OperatorProcess) -> OperatorProcess:
    """The operator with the project's watches.yaml (PodSet among them)."""
    return operator


@pytest.mark.slow
def test_create_replace_and_scale(cluster: Cluster, namespace: str, podset_operator: OperatorProcess) -> None:
    cluster.apply(podset("web", 3), namespace)
    wait_for(lambda: converged(cluster, namespace, "web", 3), what="3 Ready pods", timeout=120)
    ps = cluster.get("podset", "web", namespace)
    assert ps is not None and ps["status"]["selector"] == "app=web"
    for pod in active_pods(cluster, namespace, "web"):
        refs = pod["metadata"]["ownerReferences"]
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [("PodSet", ps["metadata"]["uid"], True)]
        assert pod["metadata"]["generateName"] == "web-"

    # A deleted pod is replaced.
    victim = active_pods(cluster, namespace, "web")[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "-n", namespace)
    wait_for(lambda: converged(cluster, namespace, "web", 3)
             and victim not in [p["metadata"]["name"] for p in active_pods(cluster, namespace, "web")],
             what="the deleted pod to be replaced", timeout=120)

    # Scale through the scale subresource, as kubectl scale and an HPA do.
    for replicas in (10, 0, 3):
        cluster.kubectl("scale", "podset/web", "-n", namespace, f"--replicas={replicas}")
        wait_for(lambda r=replicas: converged(cluster, namespace, "web", r), what=f"{replicas} pods", timeout=180)
    podset_operator.assert_alive()


def test_orphans_are_adopted_and_foreign_pods_left_alone(cluster: Cluster, namespace: str,
                                                         podset_operator: OperatorProcess) -> None:
    # A pod another controller owns matches the selector: never touched.
    owner = json.loads(cluster.kubectl("create", "configmap", "other-owner", "-n", namespace, "-o", "json").stdout)
    cluster.apply(json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "foreign", "labels": {"app": "api"}, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "other-owner", "uid": owner["metadata"]["uid"],
             "controller": True}]},
        "spec": {"containers": [{"name": "main", "image": "registry.example/app:1"}]}}), namespace)

    cluster.apply(podset("api", 2), namespace)
    wait_for(lambda: len([p for p in active_pods(cluster, namespace, "api")
                          if p["metadata"]["name"] != "foreign"]) == 2, what="2 pods of its own", timeout=120)
    foreign = cluster.get("pod", "foreign", namespace)
    assert foreign is not None and foreign["metadata"]["ownerReferences"][0]["kind"] == "ConfigMap"

    # Orphan the pods, then a new PodSet with the same selector adopts them instead of creating more.
    before = sorted(p["metadata"]["name"] for p in active_pods(cluster, namespace, "api")
                    if p["metadata"]["name"] != "foreign")
    cluster.kubectl("delete", "podset", "api", "-n", namespace, "--cascade=orphan")
    wait_for(lambda: cluster.get("podset", "api", namespace) is None, what="the PodSet to go")
    cluster.apply(podset("api", 2), namespace)
    new = wait_for(lambda: cluster.get("podset", "api", namespace), what="the new PodSet")

    def adopted() -> bool:
        pods = [p for p in active_pods(cluster, namespace, "api") if p["metadata"]["name"] != "foreign"]
        return sorted(p["metadata"]["name"] for p in pods) == before and all(
            [r["uid"] for r in p["metadata"].get("ownerReferences", [])] == [new["metadata"]["uid"]] for p in pods)

    wait_for(adopted, what="the orphans to be adopted", timeout=120)


def test_relabelled_pod_is_released_and_replaced(cluster: Cluster, namespace: str,
                                                 podset_operator: OperatorProcess) -> None:
    cluster.apply(podset("rel", 2), namespace)
    wait_for(lambda: converged(cluster, namespace, "rel", 2), what="2 Ready pods", timeout=120)
    pod = active_pods(cluster, namespace, "rel")[0]["metadata"]["name"]
    cluster.kubectl("label", "pod", pod, "-n", namespace, "app=elsewhere", "--overwrite")

    def released() -> bool:
        p = cluster.get("pod", pod, namespace) or {}
        return not p.get("metadata", {}).get("ownerReferences")

    wait_for(released, what="the relabelled pod to be released", timeout=120)
    wait_for(lambda: converged(cluster, namespace, "rel", 2), what="a replacement", timeout=120)


def test_quota_refusal_then_recovery(cluster: Cluster, namespace: str, podset_operator: OperatorProcess) -> None:
    cluster.apply('{"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "pods"},'
                  ' "spec": {"hard": {"pods": "2"}}}', namespace)
    wait_for(lambda: (cluster.get("resourcequota", "pods", namespace) or {}).get("status", {}).get("hard"),
             what="the quota to be counted")
    cluster.apply(podset("quota", 4), namespace)

    def refused() -> dict | None:
        ps = cluster.get("podset", "quota", namespace) or {}
        conds = {c["type"]: c for c in ps.get("status", {}).get("conditions", [])}
        return conds.get("ReplicaFailure") if conds.get("ReplicaFailure", {}).get("status") == "True" else None

    cond = wait_for(refused, what="ReplicaFailure", timeout=120)
    assert "exceeded quota" in cond["message"]
    def failed_create_event() -> bool:
        events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return any(e["reason"] == "FailedCreate" and "exceeded quota" in e["message"] for e in events)

    assert wait_for(failed_create_event, what="a FailedCreate Event", timeout=30)
    assert len(active_pods(cluster, namespace, "quota")) == 2  # what the quota allows, nothing deleted

    cluster.kubectl("delete", "resourcequota", "pods", "-n", namespace)
    wait_for(lambda: converged(cluster, namespace, "quota", 4), what="convergence once quota frees", timeout=400)
    podset_operator.assert_alive()


WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}


def writes_since(cluster: Cluster, namespace: str, offset: int) -> list[str]:
    """Write requests in `namespace` recorded by the audit log after byte `offset`, except kubectl's."""
    assert cluster.audit_log is not None
    with cluster.audit_log.open() as f:
        f.seek(offset)
        lines = f.readlines()
    out = []
    for line in lines:
        event = json.loads(line)
        ref = event.get("objectRef", {})
        if (event["verb"] in WRITE_VERBS and ref.get("namespace") == namespace
                and not event.get("userAgent", "").startswith("kubectl")):
            out.append(f'{event["verb"]} {ref.get("resource")}/{ref.get("subresource", "")} {ref.get("name", "")}')
    return out


def ansible_result(cluster: Cluster, namespace: str, name: str) -> dict | None:
    """The counts on the Running condition, where the Operator SDK puts a successful run's."""
    ps = cluster.get("podset", name, namespace) or {}
    running = [c for c in ps.get("status", {}).get("conditions", []) if c["type"] == "Running"]
    return running[0].get("ansibleResult") if running and running[0]["reason"] == "Successful" else None


@pytest.mark.slow
def test_no_writes_when_converged(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    if cluster.audit_log is None:
        pytest.skip("counting writes needs the local control plane's audit log")
    # Reconciled every 2 s, so a converged run follows the changing ones.
    first = start_operator(args=["--reconcile-period", "2s"])
    cluster.apply(podset("calm", 3), namespace)
    # Converged, and the status says so (written by the reconcile the last pod change caused).
    wait_for(lambda: converged(cluster, namespace, "calm", 3), what="3 Ready pods", timeout=120)

    # A successful run's counts are on Running; the first converged run writes changed=0 once.
    def converged_counts() -> dict | None:
        counts = ansible_result(cluster, namespace, "calm")
        return counts if counts and counts["changed"] == 0 else None

    counts = wait_for(converged_counts, what="the counts of a converged run on Running", timeout=60)
    assert counts["ok"] > 0 and counts["failures"] == 0, counts
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,8})?\+00:00", counts["completion"]), counts
    first.stop()

    # A fresh operator reconciles every PodSet it finds: this one is converged.
    offset = cluster.audit_log.stat().st_size
    second = start_operator()
    line = wait_for(lambda: [ln for ln in second.log().splitlines()
                             if f"reconciled PodSet {namespace}/calm" in ln],
                    what="the reconcile after the restart", timeout=120)
    assert "result=ok changed=0" in line[0], line
    assert writes_since(cluster, namespace, offset) == []
    # Its counts are those of the last converged run: not written again for a later completion time.
    assert ansible_result(cluster, namespace, "calm") == counts


@pytest.mark.slow
def test_dry_runs_show_the_pods_to_create_and_change_nothing(cluster: Cluster, crds: None, namespace: str,
                                                             tmp_path: Path) -> None:
    manifest = json.loads(podset("dry", 2))
    manifest["metadata"]["namespace"] = namespace
    cr = tmp_path / "podset.yaml"
    cr.write_text(json.dumps(manifest))
    cluster.apply(json.dumps(manifest), namespace)  # exists, but no operator runs here

    bin_dir = Path(sys.executable).parent
    env = {**cluster.env, "PATH": f"{bin_dir}:{cluster.env['PATH']}"}
    play = subprocess.run([str(bin_dir / "ansible-playbook"), "playbooks/podset.yml", "-e", f"podset_file={cr}",
                           "--check", "--diff"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert play.returncode == 0, play.stdout[-3000:] + play.stderr[-3000:]
    assert re.search(r"TASK \[podset : Create the missing pods from the template\] \**\nchanged: \[localhost\]",
                     play.stdout), play.stdout[-3000:]
    # The dry run's closing list of what the reconcile would change: a line per pod.
    assert len(re.findall(r'"create Pod dry-\* \(\d of 2\), revision dry-[0-9a-f]{10}"', play.stdout)) == 2, \
        play.stdout[-3000:]

    cli = subprocess.run([str(bin_dir / "playbook-operator"), "reconcile", "-f", str(cr), "--check", "--diff"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    assert "changed  Create the missing pods from the template" in cli.stdout
    assert "check mode: nothing was changed" in cli.stdout

    assert active_pods(cluster, namespace, "dry") == []
    assert not (cluster.get("podset", "dry", namespace) or {}).get("status", {}).get("replicas")


def test_overlapping_podsets_never_fight(cluster: Cluster, namespace: str, podset_operator: OperatorProcess) -> None:
    # Both select app=shared; each keeps its own pods and never takes the other's.
    first = json.loads(podset("first", 2, app="shared"))
    second = json.loads(podset("second", 3, app="shared"))
    cluster.apply(json.dumps(first), namespace)
    cluster.apply(json.dumps(second), namespace)

    def settled() -> dict[str, int] | None:
        owners: dict[str, int] = {}
        for pod in active_pods(cluster, namespace, "shared"):
            refs = [r["name"] for r in pod["metadata"].get("ownerReferences", []) if r.get("controller")]
            assert len(refs) == 1, pod["metadata"]
            owners[refs[0]] = owners.get(refs[0], 0) + 1
        return owners if owners == {"first": 2, "second": 3} else None

    wait_for(settled, what="2 pods for the first and 3 for the second", timeout=180)
    pods_before = sorted(p["metadata"]["name"] for p in active_pods(cluster, namespace, "shared"))
    # Scaling one leaves the other's pods exactly as they were.
    cluster.kubectl("scale", "podset/first", "-n", namespace, "--replicas=1")
    wait_for(lambda: len([p for p in active_pods(cluster, namespace, "shared")
                          if p["metadata"]["ownerReferences"][0]["name"] == "first"]) == 1,
             what="the first PodSet at 1", timeout=120)
    second_pods = sorted(p["metadata"]["name"] for p in active_pods(cluster, namespace, "shared")
                         if p["metadata"]["ownerReferences"][0]["name"] == "second")
    assert set(second_pods) <= set(pods_before) and len(second_pods) == 3


def test_deleting_a_podset_collects_its_pods(cluster: Cluster, namespace: str,
                                            podset_operator: OperatorProcess) -> None:
    cluster.apply(podset("gone", 2), namespace)
    wait_for(lambda: converged(cluster, namespace, "gone", 2), what="2 Ready pods", timeout=120)
    cluster.kubectl("delete", "podset", "gone", "-n", namespace)
    wait_for(lambda: active_pods(cluster, namespace, "gone") == [], what="the garbage collector", timeout=120)


def test_a_pod_spec_the_apiserver_refuses_is_reported_and_nothing_is_deleted(
        cluster: Cluster, namespace: str, podset_operator: OperatorProcess) -> None:
    cluster.apply(podset("bad", 2), namespace)
    wait_for(lambda: converged(cluster, namespace, "bad", 2), what="2 Ready pods", timeout=120)
    serving = sorted(p["metadata"]["name"] for p in active_pods(cluster, namespace, "bad"))
    # The schema accepts any pod spec; the apiserver refuses this one when a pod is created.
    cluster.kubectl("patch", "podset", "bad", "-n", namespace, "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/containers/0/name", "value": "Not_A_DNS_Label"},
        {"op": "replace", "path": "/spec/replicas", "value": 3}]))

    def refused() -> dict | None:
        ps = cluster.get("podset", "bad", namespace) or {}
        conds = {c["type"]: c for c in ps.get("status", {}).get("conditions", [])}
        failure = conds.get("ReplicaFailure", {})
        return failure if failure.get("status") == "True" else None

    cond = wait_for(refused, what="ReplicaFailure for the invalid pod spec", timeout=120)
    assert "Invalid value" in cond["message"] or "is invalid" in cond["message"], cond
    assert sorted(p["metadata"]["name"] for p in active_pods(cluster, namespace, "bad")) == serving
    podset_operator.assert_alive()


@pytest.mark.slow
def test_a_pod_that_ends_is_replaced(cluster: Cluster, namespace: str, podset_operator: OperatorProcess) -> None:
    cluster.apply(podset("ends", 2), namespace)
    wait_for(lambda: converged(cluster, namespace, "ends", 2), what="2 Ready pods", timeout=120)
    victim = active_pods(cluster, namespace, "ends")[0]["metadata"]["name"]
    # kwok ends a pod so annotated, as a kubelet reports a container that exited.
    cluster.kubectl("annotate", "pod", victim, "-n", namespace, "playbook-operator.io/fake-phase=Failed")

    def replaced() -> bool:
        names = [p["metadata"]["name"] for p in active_pods(cluster, namespace, "ends")]
        return victim not in names and converged(cluster, namespace, "ends", 2)

    wait_for(replaced, what="the failed pod to be replaced", timeout=120)
    wait_for(lambda: cluster.get("pod", victim, namespace) is None, what="the failed pod to be removed", timeout=60)
