"""The local control plane is a real one: real apiserver, controllers, scheduler, kwok nodes."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from hack.devkit import kube_bin_dir, versions
from tests.support import Cluster, cluster_script, wait_for


def test_nodes_are_ready(cluster: Cluster) -> None:
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    ready = [n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    assert len(ready) >= 3, ready


def test_server_reports_the_pinned_release(cluster: Cluster) -> None:
    if cluster.local_name is None:
        pytest.skip("only the local control plane is pinned")
    out = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"] == versions()["KUBE_VERSION"]
    assert out["clientVersion"]["gitVersion"] == versions()["KUBE_VERSION"]


def test_pods_are_scheduled_and_become_ready(cluster: Cluster, namespace: str) -> None:
    cluster.apply("""
apiVersion: v1
kind: Pod
metadata: {name: probe}
spec:
  containers: [{name: main, image: registry.example/none:1}]
""", namespace)

    def ready() -> bool:
        pod = cluster.get("pod", "probe", namespace) or {}
        conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
        return bool(pod.get("spec", {}).get("nodeName")) and conds.get("Ready") == "True"

    wait_for(ready, what="the pod to be scheduled and Ready")
    # Deletion completes without a kubelet (kwok plays its part).
    cluster.kubectl("delete", "pod", "probe", "-n", namespace, "--wait=true", "--timeout=30s")


def test_garbage_collector_runs(cluster: Cluster, namespace: str) -> None:
    owner = json.loads(cluster.kubectl("create", "configmap", "owner", "-n", namespace, "-o", "json").stdout)
    cluster.apply(f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  ownerReferences:
    - {{apiVersion: v1, kind: ConfigMap, name: owner, uid: {owner["metadata"]["uid"]}}}
""", namespace)
    cluster.kubectl("delete", "configmap", "owner", "-n", namespace)
    wait_for(lambda: cluster.get("configmap", "owned", namespace) is None, what="garbage collection")


def test_rbac_is_enforced_for_service_accounts(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    proc = cluster.kubectl("auth", "can-i", "list", "secrets", "-n", namespace,
                           f"--as=system:serviceaccount:{namespace}:nobody", check=False)
    assert proc.stdout.strip() == "no"


def test_audit_log_records_writes(cluster: Cluster, namespace: str) -> None:
    if cluster.audit_log is None:
        pytest.skip("the audit log is only known for the local control plane")
    marker = f"audit-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "configmap", marker, "-n", namespace)

    def logged() -> bool:
        assert cluster.audit_log is not None
        for line in cluster.audit_log.read_text().splitlines():
            event = json.loads(line)
            ref = event.get("objectRef", {})
            if event["verb"] == "create" and ref.get("name") == marker and ref.get("namespace") == namespace:
                return True
        return False

    wait_for(logged, what="the create to appear in the audit log")


@pytest.mark.skipif(not (kube_bin_dir() / "kube-apiserver").exists(), reason="control plane not built")
def test_two_clusters_side_by_side(cluster: Cluster, own_cluster: Cluster) -> None:
    assert own_cluster.kubeconfig != cluster.kubeconfig
    assert own_cluster.kubectl("get", "nodes", "-o", "name").stdout.split() == ["node/kwok-node-0"]
    # The first cluster still answers, with its own three nodes.
    assert len(cluster.kubectl("get", "nodes", "-o", "name").stdout.split()) >= 3
    script = cluster_script(str(own_cluster.local_name))
    down = subprocess.run([*script, "down"], capture_output=True, text=True)
    assert down.returncode == 0
    # Stopping twice is a no-op.
    again = subprocess.run([*script, "down"], capture_output=True, text=True)
    assert again.returncode == 0 and "not running" in again.stderr
