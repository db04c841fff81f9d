"""Roles and watches written for the Operator SDK's Ansible operator run here unchanged:
snake_cased spec fields, the object variable, operator_sdk.util.k8s_status, status
conditions, failure Events, owner references, finalizers, dependent watches, coalescing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import InstallCrds
from tests.support import Cluster, OperatorProcess, StartOperator, conditions_of, wait_for

HERE = Path(__file__).resolve().parent / "sdk"


@pytest.fixture(scope="module")
def memcached_crd(install_crds: InstallCrds) -> None:
    install_crds("-f", str(HERE / "crd.yaml"))


@pytest.fixture
def sdk_operator(start_operator: StartOperator, memcached_crd: None, tmp_path: Path,
                 request: pytest.FixtureRequest) -> OperatorProcess:
    """The operator on the Memcached watch; warm unless a test asks for ``--warm-ansible`` false."""
    watches = tmp_path / "watches.yaml"
    watches.write_text(f"""
- version: v1alpha1
  group: cache.example.com
  kind: Memcached
  role: {HERE / "roles" / "memcached"}
  vars:
    from_watch: yes
  finalizer:
    name: cache.example.com/finalizer
    role: {HERE / "roles" / "memcached_cleanup"}
    vars:
      cleanup_marker: finalizer-vars-arrived
""")
    return start_operator(watches=watches, args=[f"--warm-ansible={getattr(request, 'param', 'true')}"])


def memcached(name: str, **spec: object) -> str:
    return json.dumps({"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached",
                       "metadata": {"name": name}, "spec": spec})


# The owner references and dependent watches hold on both ways of running Ansible.
BOTH_PATHS = pytest.mark.parametrize("sdk_operator", ["true", "false"], indirect=True, ids=["warm", "cold"])


@BOTH_PATHS
def test_sdk_role_runs_unchanged(cluster: Cluster, namespace: str, sdk_operator: OperatorProcess) -> None:
    cluster.apply(memcached("mc", sizeK8sBuckets=3, egressIPs=["10.0.0.1", "10.0.0.2"]), namespace)

    cm = wait_for(lambda: cluster.get("configmap", "mc-memcached", namespace), what="the role's ConfigMap",
                  timeout=90)
    mc = cluster.get("memcached", "mc", namespace)
    assert mc is not None
    assert cm["data"] == {"buckets": "3", "egress": "10.0.0.1,10.0.0.2", "uid": mc["metadata"]["uid"],
                          "raw_spec_keys": "egressIPs,sizeK8sBuckets"}
    # The operator added the owner reference the role never wrote.
    assert [(r["kind"], r["name"], r["uid"]) for r in cm["metadata"]["ownerReferences"]] == \
        [("Memcached", "mc", mc["metadata"]["uid"])]

    def settled() -> dict | None:
        obj = cluster.get("memcached", "mc", namespace)
        conds = conditions_of(obj)
        done = conds.get("Successful", {}).get("status") == "True" and conds["Running"]["reason"] == "Successful"
        return obj if done else None

    obj = wait_for(settled, what="the Successful condition")
    status = obj["status"]
    # What the role wrote with k8s_status survives the operator's own status write.
    assert status["buckets"] == 3
    conds = conditions_of(obj)
    assert conds["BucketsReady"]["reason"] == "Provisioned"
    assert conds["Running"]["reason"] == "Successful"
    assert conds["Running"]["message"] == "Awaiting next reconciliation"
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    # The finalizer is on the object while it lives.
    assert "cache.example.com/finalizer" in obj["metadata"]["finalizers"]


def test_failure_sets_condition_and_warning_event(cluster: Cluster, namespace: str,
                                                  sdk_operator: OperatorProcess) -> None:
    cluster.apply(memcached("broken", fail_with="the disk is full"), namespace)

    def failed() -> dict | None:
        return conditions_of(cluster.get("memcached", "broken", namespace)).get("Failure")

    failure = wait_for(failed, what="the Failure condition", timeout=90)
    assert failure["status"] == "True" and failure["reason"] == "Failed"
    assert failure["message"] == "the disk is full"
    assert failure["ansibleResult"]["failures"] == 1

    def warning() -> list[dict]:
        events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
        return [e for e in events if e["involvedObject"]["name"] == "broken" and e["type"] == "Warning"]

    events = wait_for(warning, what="a Warning Event")
    assert "Fail when the custom resource asks for it" in events[0]["message"]
    assert "the disk is full" in events[0]["message"]

    # Fixing the spec clears the failure; other objects were never blocked meanwhile.
    cluster.kubectl("patch", "memcached", "broken", "-n", namespace, "--type=merge", "-p",
                    '{"spec":{"fail_with":""}}')
    wait_for(lambda: "Failure" not in conditions_of(cluster.get("memcached", "broken", namespace))
             and conditions_of(cluster.get("memcached", "broken", namespace)).get("Successful"),
             what="the failure to clear", timeout=90)
    sdk_operator.assert_alive()


def test_finalizer_runs_then_lets_go(cluster: Cluster, namespace: str, sdk_operator: OperatorProcess) -> None:
    cluster.kubectl("create", "configmap", "gone-finalized", "-n", namespace)
    cluster.apply(memcached("gone", fail_finalizer="not yet"), namespace)
    wait_for(lambda: conditions_of(cluster.get("memcached", "gone", namespace)).get("Successful"),
             what="the first reconcile", timeout=90)

    cluster.kubectl("delete", "memcached", "gone", "-n", namespace, "--wait=false")
    # A failing finalizer keeps the object and says why.
    failure = wait_for(lambda: conditions_of(cluster.get("memcached", "gone", namespace)).get("Failure"),
                       what="the finalizer's Failure", timeout=90)
    assert "finalizer refused: not yet" in failure["message"]
    assert cluster.get("memcached", "gone", namespace) is not None

    cluster.kubectl("patch", "memcached", "gone", "-n", namespace, "--type=merge", "-p",
                    '{"spec":{"fail_finalizer":""}}')
    wait_for(lambda: cluster.get("memcached", "gone", namespace) is None, what="the object to go", timeout=120)
    marker = cluster.get("configmap", "gone-finalized", namespace)
    assert marker is not None and marker["data"] == {"cleanup_marker": "finalizer-vars-arrived"}


@BOTH_PATHS
def test_dependent_change_reconciles_the_owner(cluster: Cluster, namespace: str,
                                               sdk_operator: OperatorProcess) -> None:
    cluster.apply(memcached("dep", sizeK8sBuckets=2), namespace)
    wait_for(lambda: cluster.get("configmap", "dep-memcached", namespace), what="the ConfigMap", timeout=90)

    # Someone edits what the role owns: the owner is reconciled and puts it back.
    cluster.kubectl("patch", "configmap", "dep-memcached", "-n", namespace, "--type=merge", "-p",
                    '{"data":{"buckets":"99"}}')
    wait_for(lambda: (cluster.get("configmap", "dep-memcached", namespace) or {}).get("data", {}).get("buckets")
             == "2", what="the ConfigMap to be put back", timeout=60)

    # And deleted: it comes back.
    cluster.kubectl("delete", "configmap", "dep-memcached", "-n", namespace)
    wait_for(lambda: cluster.get("configmap", "dep-memcached", namespace), what="the ConfigMap to come back",
             timeout=60)


def test_many_updates_coalesce(cluster: Cluster, namespace: str, sdk_operator: OperatorProcess) -> None:
    cluster.apply(memcached("busy", sizeK8sBuckets=0), namespace)
    wait_for(lambda: conditions_of(cluster.get("memcached", "busy", namespace)).get("Successful"),
             what="the first reconcile", timeout=90)
    runs_before = sdk_operator.log().count("reconciled Memcached " + namespace + "/busy")
    for n in range(1, 21):
        cluster.kubectl("patch", "memcached", "busy", "-n", namespace, "--type=merge", "-p",
                        json.dumps({"spec": {"sizeK8sBuckets": n}}))
    wait_for(lambda: (cluster.get("configmap", "busy-memcached", namespace) or {}).get("data", {}).get("buckets")
             == "20", what="the last spec to win", timeout=90)
    wait_for(lambda: conditions_of(cluster.get("memcached", "busy", namespace)).get("Successful", {}).get("status")
             == "True" and cluster.get("memcached", "busy", namespace)["status"]["observedGeneration"]
             == cluster.get("memcached", "busy", namespace)["metadata"]["generation"],
             what="the last generation to be observed", timeout=90)
    runs = sdk_operator.log().count("reconciled Memcached " + namespace + "/busy") - runs_before
    # 20 updates; a run takes far longer than a kubectl patch, so most coalesce.
    assert 1 <= runs < 20, runs
