"""PodSet rollouts on a real cluster: rolling updates sampled against their bounds, Recreate,
automatic rollback when kwok keeps the new pods unready, pause, undo, revision history, a
rollout that survives an operator restart, a template the apiserver refuses, and adopted pods
that are kept when they already run the template."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from tests.support import ROOT, Cluster, OperatorProcess, StartOperator, wait_for

pytestmark = pytest.mark.slow  # rollouts take minutes

NEVER_READY = {"playbook-operator.io/fake-readiness": "never"}


def manifest(name: str, replicas: int, image: str = "app:1", *, strategy: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, **spec: Any) -> str:
    body: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                     "spec": {"containers": [{"name": "main", "image": f"registry.example/{image}"}]}},
        **spec,
    }
    if strategy is not None:
        body["strategy"] = strategy
    return json.dumps({"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                       "metadata": {"name": name}, "spec": body})


def rolling(surge: Any, unavailable: Any) -> dict[str, Any]:
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}


def set_template(cluster: Cluster, namespace: str, name: str, image: str,
                 annotations: dict[str, str] | None = None) -> None:
    template = {"metadata": {"labels": {"app": name}, "annotations": annotations or {}},
                "spec": {"containers": [{"name": "main", "image": f"registry.example/{image}"}]}}
    cluster.kubectl("patch", "podset", name, "-n", namespace, "--type=json",
                    "-p", json.dumps([{"op": "replace", "path": "/spec/template", "value": template}]))


def pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [p for p in cluster.list("pods", namespace, f"app={name}") if not p["metadata"].get("deletionTimestamp")]


def image(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"]).rsplit("/", 1)[-1]


def is_ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions") or [])


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return dict((cluster.get("podset", name, namespace) or {}).get("status") or {})


def condition(cluster: Cluster, namespace: str, name: str, kind: str) -> dict[str, Any]:
    return next((c for c in status(cluster, namespace, name).get("conditions", []) if c["type"] == kind), {})


def rolled_out(cluster: Cluster, namespace: str, name: str, replicas: int, want: str) -> bool:
    current = pods(cluster, namespace, name)
    st = status(cluster, namespace, name)
    return (len(current) == replicas and all(image(p) == want and is_ready(p) for p in current)
            and bool(st.get("currentRevision")) and st.get("currentRevision") == st.get("updateRevision")
            and st.get("updatedReplicas") == replicas)


def cli(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "playbook-operator"
    proc = subprocess.run([str(exe), *args], cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"playbook-operator {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


class PodSampler:
    """Watches a PodSet's pods and records, after every change, how many exist (not being
    deleted, not finished) and how many of those are Ready, with their images."""

    def __init__(self, cluster: Cluster, namespace: str, app: str) -> None:
        self.api = client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))
        self.namespace = namespace
        self.selector = f"app={app}"
        self.samples: list[tuple[int, int, frozenset[str]]] = []
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._watch = watch.Watch()
        listed = self.api.list_namespaced_pod(namespace, label_selector=self.selector)
        self._pods = {p.metadata.name: p for p in listed.items}
        self._version = listed.metadata.resource_version
        self._record()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _record(self) -> None:
        live = [p for p in self._pods.values()
                if p.metadata.deletion_timestamp is None and p.status.phase not in ("Succeeded", "Failed")]
        ready = [p for p in live if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        images = frozenset(p.spec.containers[0].image.rsplit("/", 1)[-1] for p in live)
        self.samples.append((len(live), len(ready), images))

    def _run(self) -> None:
        try:
            self._follow()
        except Exception as err:  # reported by stop(), unless stop() is what ended the watch
            if not self._stop.is_set():
                self._failure = err

    def _follow(self) -> None:
        while not self._stop.is_set():
            for event in self._watch.stream(self.api.list_namespaced_pod, self.namespace,
                                            label_selector=self.selector, resource_version=self._version,
                                            timeout_seconds=5):
                pod = event["object"]
                self._version = pod.metadata.resource_version
                if event["type"] == "DELETED":
                    self._pods.pop(pod.metadata.name, None)
                else:
                    self._pods[pod.metadata.name] = pod
                self._record()
                if self._stop.is_set():
                    break

    def stop(self) -> list[tuple[int, int, frozenset[str]]]:
        self._stop.set()
        self._watch.stop()
        self._thread.join(timeout=15)
        if self._failure is not None:
            raise AssertionError(f"the pod watch broke, so the samples are incomplete: {self._failure!r}")
        return self.samples


@pytest.fixture
def sampler(cluster: Cluster, namespace: str) -> Iterator[list[PodSampler]]:
    started: list[PodSampler] = []
    yield started
    for s in started:
        s.stop()


def test_rolling_update_replaces_pods_within_its_bounds(cluster: Cluster, namespace: str, operator: OperatorProcess,
                                                        sampler: list[PodSampler]) -> None:
    cluster.apply(manifest("roll", 4, strategy=rolling(1, 1)), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "roll", 4, "app:1"), what="4 pods of app:1", timeout=180)
    first = status(cluster, namespace, "roll")["currentRevision"]

    watcher = PodSampler(cluster, namespace, "roll")
    sampler.append(watcher)
    set_template(cluster, namespace, "roll", "app:2")
    wait_for(lambda: rolled_out(cluster, namespace, "roll", 4, "app:2"), what="4 pods of app:2", timeout=240)
    samples = watcher.stop()

    # maxSurge 1 and maxUnavailable 1 of 4: never more than 5 pods, never fewer than 3 Ready.
    assert max(total for total, _, _ in samples) <= 5, samples
    assert min(ready for _, ready, _ in samples) >= 3, samples
    assert any(images == {"app:1", "app:2"} for _, _, images in samples), "old and new served side by side"

    st = status(cluster, namespace, "roll")
    assert st["currentRevision"] != first and st["updatedReplicas"] == 4 and st["availableReplicas"] == 4
    assert condition(cluster, namespace, "roll", "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert condition(cluster, namespace, "roll", "Available")["status"] == "True"
    revisions = cluster.list("controllerrevisions", namespace, "workloads.playbook-operator.io/podset=roll")
    assert sorted((r["revision"], r["metadata"]["name"]) for r in revisions) == [(1, first), (2, st["currentRevision"])]
    for pod in pods(cluster, namespace, "roll"):
        assert pod["metadata"]["labels"]["pod-template-hash"] == st["currentRevision"].rsplit("-", 1)[1]
    history = cli(cluster, "rollout", "history", "ps/roll", "-n", namespace).stdout
    assert first in history and st["currentRevision"] in history
    operator.assert_alive()


def test_recreate_removes_old_pods_before_new_ones_start(cluster: Cluster, namespace: str, operator: OperatorProcess,
                                                         sampler: list[PodSampler]) -> None:
    cluster.apply(manifest("rec", 3, strategy={"type": "Recreate"}), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "rec", 3, "app:1"), what="3 pods of app:1", timeout=180)
    watcher = PodSampler(cluster, namespace, "rec")
    sampler.append(watcher)
    set_template(cluster, namespace, "rec", "app:2")
    wait_for(lambda: rolled_out(cluster, namespace, "rec", 3, "app:2"), what="3 pods of app:2", timeout=180)
    samples = watcher.stop()
    assert all(len(images) <= 1 for _, _, images in samples), "old and new pods never coexist"
    assert any(total == 0 for total, _, _ in samples), "every old pod went before a new one came"


def test_a_never_ready_template_is_rolled_back(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.apply(manifest("rb", 3, strategy=rolling(1, 0), progressDeadlineSeconds=8), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "rb", 3, "app:1"), what="3 pods of app:1", timeout=180)
    good = status(cluster, namespace, "rb")["currentRevision"]

    set_template(cluster, namespace, "rb", "app:2", NEVER_READY)
    wait_for(lambda: status(cluster, namespace, "rb").get("failedRevision"), what="the rollback", timeout=120)
    bad = status(cluster, namespace, "rb")["failedRevision"]
    assert bad != good
    progressing = condition(cluster, namespace, "rb", "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert good in progressing["message"] and bad in progressing["message"]
    wait_for(lambda: rolled_out(cluster, namespace, "rb", 3, "app:1"), what="back on app:1", timeout=120)

    events = wait_for(lambda: [e for e in cluster.list("events", namespace) if e["reason"] == "RolledBack"],
                      what="the RolledBack Event")
    assert len(events) == 1, events
    assert events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == "rb"
    assert good in events[0]["message"] and bad in events[0]["message"]

    # It stays on the good revision: a lost pod comes back as app:1, not as the failed template.
    victim = pods(cluster, namespace, "rb")[0]["metadata"]["name"]
    cluster.kubectl("delete", "pod", victim, "-n", namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "rb", 3, "app:1")
             and victim not in [p["metadata"]["name"] for p in pods(cluster, namespace, "rb")],
             what="the replacement", timeout=120)
    assert status(cluster, namespace, "rb")["failedRevision"] == bad
    rollout = cli(cluster, "rollout", "status", "ps/rb", "-n", namespace, check=False)
    assert rollout.returncode == 1 and "exceeded its progress deadline" in rollout.stderr

    # A new template rolls out again and clears the failure.
    set_template(cluster, namespace, "rb", "app:3")
    wait_for(lambda: rolled_out(cluster, namespace, "rb", 3, "app:3"), what="3 pods of app:3", timeout=180)
    assert "failedRevision" not in status(cluster, namespace, "rb")
    assert condition(cluster, namespace, "rb", "Progressing")["reason"] == "NewReplicaSetAvailable"


def test_with_rollback_disabled_a_missed_deadline_is_only_reported(cluster: Cluster, namespace: str,
                                                                    operator: OperatorProcess) -> None:
    cluster.apply(manifest("norb", 2, strategy=rolling(1, 0), progressDeadlineSeconds=6,
                           rollback={"enabled": False}), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "norb", 2, "app:1"), what="2 pods of app:1", timeout=180)
    set_template(cluster, namespace, "norb", "app:2", NEVER_READY)
    wait_for(lambda: condition(cluster, namespace, "norb", "Progressing").get("reason") == "ProgressDeadlineExceeded",
             what="the missed deadline", timeout=120)
    assert "failedRevision" not in status(cluster, namespace, "norb")
    assert "app:2" in [image(p) for p in pods(cluster, namespace, "norb")], "the new pod stays"
    assert sorted(image(p) for p in pods(cluster, namespace, "norb") if is_ready(p)) == ["app:1", "app:1"]
    events = wait_for(lambda: [e for e in cluster.list("events", namespace)
                               if e["reason"] == "ProgressDeadlineExceeded"], what="the Event")
    assert "rollback is disabled" in events[0]["message"]
    assert not [e for e in cluster.list("events", namespace) if e["reason"] == "RolledBack"]


def test_pause_freezes_a_rollout_and_resume_finishes_it(cluster: Cluster, namespace: str,
                                                        operator: OperatorProcess) -> None:
    cluster.apply(manifest("pz", 4, strategy=rolling(1, 0), minReadySeconds=3), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "pz", 4, "app:1"), what="4 pods of app:1", timeout=180)
    set_template(cluster, namespace, "pz", "app:2")
    wait_for(lambda: "app:2" in [image(p) for p in pods(cluster, namespace, "pz")], what="a first new pod")
    assert "paused" in cli(cluster, "rollout", "pause", "ps/pz", "-n", namespace).stdout
    wait_for(lambda: condition(cluster, namespace, "pz", "Progressing").get("reason") == "DeploymentPaused",
             what="the pause to be seen", timeout=60)
    frozen = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "pz"))
    assert {image(p) for p in pods(cluster, namespace, "pz")} == {"app:1", "app:2"}

    # A spec change reconciles the PodSet again; paused, it replaces nothing.
    cluster.kubectl("patch", "podset", "pz", "-n", namespace, "--type=merge", "-p",
                    '{"spec": {"progressDeadlineSeconds": 700}}')
    generation = cluster.get("podset", "pz", namespace)["metadata"]["generation"]  # type: ignore[index]
    wait_for(lambda: status(cluster, namespace, "pz").get("observedGeneration") == generation,
             what="the reconcile of the paused PodSet", timeout=60)
    assert sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "pz")) == frozen

    cli(cluster, "rollout", "resume", "ps/pz", "-n", namespace)
    done = cli(cluster, "rollout", "status", "ps/pz", "-n", namespace, "--timeout", "4m")
    assert 'podset "pz" successfully rolled out' in done.stdout
    assert rolled_out(cluster, namespace, "pz", 4, "app:2")


def test_undo_to_a_chosen_revision_and_history_pruned_to_its_limit(cluster: Cluster, namespace: str,
                                                                   operator: OperatorProcess) -> None:
    cluster.apply(manifest("hist", 1, revisionHistoryLimit=2), namespace)
    for version in (1, 2, 3, 4):
        if version > 1:
            set_template(cluster, namespace, "hist", f"app:{version}")
        wait_for(lambda v=version: rolled_out(cluster, namespace, "hist", 1, f"app:{v}"),
                 what=f"app:{version}", timeout=180)

    def numbers() -> list[int]:
        return sorted(r["revision"] for r in
                      cluster.list("controllerrevisions", namespace, "workloads.playbook-operator.io/podset=hist"))

    wait_for(lambda: numbers() == [2, 3, 4], what="history pruned to the current and 2 old revisions", timeout=60)
    undo = cli(cluster, "rollout", "undo", "ps/hist", "--to-revision", "2", "-n", namespace)
    assert "rolled back to revision 2" in undo.stdout
    wait_for(lambda: rolled_out(cluster, namespace, "hist", 1, "app:2"), what="back on app:2", timeout=180)
    wait_for(lambda: numbers() == [3, 4, 5], what="revision 2 renumbered 5", timeout=60)
    history = cli(cluster, "rollout", "history", "ps/hist", "-n", namespace).stdout
    assert history.splitlines()[-1].split()[:3] == ["5", status(cluster, namespace, "hist")["currentRevision"],
                                                     "current"]
    shown = cli(cluster, "rollout", "history", "ps/hist", "--revision", "5", "-n", namespace).stdout
    assert "registry.example/app:2" in shown
    again = cli(cluster, "rollout", "undo", "ps/hist", "--to-revision", "5", "-n", namespace)
    assert "skipped rollback" in again.stdout
    bad = cli(cluster, "rollout", "undo", "ps/hist", "--to-revision", "1", "-n", namespace, check=False)
    assert bad.returncode == 1 and "unable to find the specified revision 1" in bad.stderr


def test_a_rollout_cut_by_an_operator_restart_resumes_within_bounds(cluster: Cluster, namespace: str,
                                                                    start_operator: StartOperator,
                                                                    sampler: list[PodSampler]) -> None:
    first = start_operator()
    cluster.apply(manifest("rs", 4, strategy=rolling(1, 0), minReadySeconds=2), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "rs", 4, "app:1"), what="4 pods of app:1", timeout=180)
    watcher = PodSampler(cluster, namespace, "rs")
    sampler.append(watcher)
    set_template(cluster, namespace, "rs", "app:2")
    wait_for(lambda: "app:2" in [image(p) for p in pods(cluster, namespace, "rs")], what="a first new pod")
    first.stop()
    assert not rolled_out(cluster, namespace, "rs", 4, "app:2"), "the rollout was cut in the middle"

    start_operator()
    wait_for(lambda: rolled_out(cluster, namespace, "rs", 4, "app:2"), what="the rollout to finish", timeout=240)
    samples = watcher.stop()
    assert max(total for total, _, _ in samples) <= 5, samples
    assert min(ready for _, ready, _ in samples) >= 4, samples
    revisions = cluster.list("controllerrevisions", namespace, "workloads.playbook-operator.io/podset=rs")
    assert len(revisions) == 2, "the restart recorded no revision twice"


def test_a_template_the_apiserver_refuses_leaves_the_old_pods_serving(cluster: Cluster, namespace: str,
                                                                       operator: OperatorProcess) -> None:
    cluster.apply(manifest("bad", 3, strategy=rolling(1, 1)), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "bad", 3, "app:1"), what="3 pods of app:1", timeout=180)
    serving = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "bad"))
    # The CRD keeps pod specs open; the apiserver refuses this one when a pod is created.
    cluster.kubectl("patch", "podset", "bad", "-n", namespace, "--type=json", "-p", json.dumps([
        {"op": "replace", "path": "/spec/template/spec/containers/0/name", "value": "Not_A_DNS_Label"}]))
    wait_for(lambda: condition(cluster, namespace, "bad", "ReplicaFailure").get("status") == "True",
             what="ReplicaFailure", timeout=120)
    failure = condition(cluster, namespace, "bad", "ReplicaFailure")
    assert failure["reason"] == "FailedCreate" and "Not_A_DNS_Label" in failure["message"]
    wait_for(lambda: [e for e in cluster.list("events", namespace) if e["reason"] == "FailedCreate"],
             what="a FailedCreate Event")
    assert sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "bad")) == serving
    assert all(is_ready(p) for p in pods(cluster, namespace, "bad"))


def test_check_mode_shows_the_next_rollout_step_without_taking_it(cluster: Cluster, namespace: str, tmp_path: Path,
                                                                  start_operator: StartOperator) -> None:
    op = start_operator()
    cluster.apply(manifest("dry", 2, strategy=rolling(1, 0)), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "dry", 2, "app:1"), what="2 pods of app:1", timeout=180)
    op.stop()  # the dry run alone acts from here
    changed = json.loads(manifest("dry", 2, "app:2", strategy=rolling(1, 0)))
    changed["metadata"]["namespace"] = namespace
    cr = tmp_path / "dry.yaml"
    cr.write_text(json.dumps(changed))
    before = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "dry"))

    shown = cli(cluster, "reconcile", "-f", str(cr), "--check", "--diff").stdout
    assert "changed  Record a new revision of the pod template" in shown, shown
    assert "changed  Create the missing pods from the template" in shown, shown
    assert "registry.example/app:2" in shown, "the diff shows the new revision's template"
    assert "check mode: nothing was changed" in shown
    assert sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "dry")) == before
    assert len(cluster.list("controllerrevisions", namespace, "workloads.playbook-operator.io/podset=dry")) == 1


def hand_made_pod(name: str, app: str, image: str = "app:1") -> str:
    """A pod made without the PodSet: its labels match the selector, no pod-template-hash."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
                       "spec": {"containers": [{"name": "main", "image": f"registry.example/{image}"}]}})


def ready_pods(cluster: Cluster, namespace: str, name: str, count: int) -> bool:
    return len([p for p in pods(cluster, namespace, name) if is_ready(p)]) == count


def test_adopted_pods_that_run_the_template_are_kept(cluster: Cluster, namespace: str, operator: OperatorProcess,
                                                     sampler: list[PodSampler]) -> None:
    for name in ("hand-a", "hand-b"):
        cluster.apply(hand_made_pod(name, "keep"), namespace)
    wait_for(lambda: ready_pods(cluster, namespace, "keep", 2), what="the hand-made pods to be Ready")
    watcher = PodSampler(cluster, namespace, "keep")
    sampler.append(watcher)

    cluster.apply(manifest("keep", 3), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "keep", 3, "app:1"), what="3 pods of app:1", timeout=180)
    samples = watcher.stop()

    # As a ReplicaSet would: both adopted, labelled with the revision, one pod added, none replaced.
    ps = cluster.get("podset", "keep", namespace)
    assert ps is not None
    revision_hash = ps["status"]["currentRevision"].rsplit("-", 1)[1]
    for name in ("hand-a", "hand-b"):
        pod = cluster.get("pod", name, namespace)
        assert pod is not None and not pod["metadata"].get("deletionTimestamp"), f"{name} was replaced"
        assert [r["uid"] for r in pod["metadata"]["ownerReferences"]] == [ps["metadata"]["uid"]]
        assert pod["metadata"]["labels"]["pod-template-hash"] == revision_hash
    assert max(total for total, _, _ in samples) == 3, samples
    assert ps["status"]["updatedReplicas"] == 3
    operator.assert_alive()


def test_adopted_pods_that_differ_are_replaced_within_the_bounds(cluster: Cluster, namespace: str,
                                                                 operator: OperatorProcess,
                                                                 sampler: list[PodSampler]) -> None:
    cluster.apply(hand_made_pod("same", "mixed"), namespace)
    cluster.apply(hand_made_pod("stale", "mixed", "app:0"), namespace)
    wait_for(lambda: ready_pods(cluster, namespace, "mixed", 2), what="the hand-made pods to be Ready")
    watcher = PodSampler(cluster, namespace, "mixed")
    sampler.append(watcher)

    cluster.apply(manifest("mixed", 2, strategy=rolling(1, 0)), namespace)
    wait_for(lambda: rolled_out(cluster, namespace, "mixed", 2, "app:1"), what="2 pods of app:1", timeout=180)
    samples = watcher.stop()

    names = sorted(p["metadata"]["name"] for p in pods(cluster, namespace, "mixed"))
    assert "same" in names and "stale" not in names, names
    # maxSurge 1 and maxUnavailable 0 of 2: never more than 3 pods, never fewer than 2 Ready.
    assert max(total for total, _, _ in samples) <= 3, samples
    assert min(ready for _, ready, _ in samples) >= 2, samples
    operator.assert_alive()


def test_check_mode_shows_the_pods_it_would_keep(cluster: Cluster, crds: None, namespace: str,
                                                 tmp_path: Path) -> None:
    cluster.apply(hand_made_pod("hand", "dryadopt"), namespace)
    podset = json.loads(manifest("dryadopt", 1))
    podset["metadata"]["namespace"] = namespace
    cluster.apply(json.dumps(podset), namespace)  # exists, but no operator runs here
    cr = tmp_path / "dryadopt.yaml"
    cr.write_text(json.dumps(podset))

    uid = cluster.get("podset", "dryadopt", namespace)["metadata"]["uid"]  # type: ignore[index]
    shown = cli(cluster, "reconcile", "-f", str(cr), "--check", "--diff").stdout
    # Adopted and labelled in one patch, whose diff shows both.
    task = "changed  Adopt, release and label pods, and renumber a revision that is back\n"
    assert task in shown, shown
    patch = re.split(r"\n *(?:ok|changed|skipped|failed)  ", shown.split(task)[1])[0]
    assert f"uid: {uid}" in patch, "the diff shows the PodSet as the pod's owner"
    assert "pod-template-hash" in patch, "the diff shows the label"
    assert "changed  Create the missing pods from the template" not in shown, "kept, so none is added"
    assert "check mode: nothing was changed" in shown
    pod = cluster.get("pod", "hand", namespace)
    assert pod is not None and "pod-template-hash" not in pod["metadata"]["labels"]
    assert not pod["metadata"].get("ownerReferences")
