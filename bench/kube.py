"""The bench's own apiserver client (kubernetes python client, user agent `playbook-operator-bench`,
so its requests can be told apart from the system's in the audit log), and the manifests it makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

USER_AGENT = "playbook-operator-bench"
LABEL = "bench-set"
GROUP, VERSION, PLURAL = "workloads.playbook-operator.io", "v1alpha1", "podsets"


def pod_template(name: str) -> dict[str, Any]:
    return {"metadata": {"labels": {LABEL: name}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/bench:1.0"}]}}


def podset(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PodSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {LABEL: name}},
                     "template": pod_template(name)}}


def replicaset(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {LABEL: name}},
                     "template": pod_template(name)}}


def pod_ready(pod: dict[str, Any]) -> bool:
    if pod["metadata"].get("deletionTimestamp") or pod.get("status", {}).get("phase") != "Running":
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in pod.get("status", {}).get("conditions") or [])


def tally(pods: list[dict[str, Any]]) -> dict[str, tuple[int, int, frozenset[str]]]:
    """Per set label value: (pods not being deleted, of them Ready, names of the Ready ones)."""
    out: dict[str, tuple[int, int, frozenset[str]]] = {}
    for pod in pods:
        owner = (pod["metadata"].get("labels") or {}).get(LABEL)
        if owner is None or pod["metadata"].get("deletionTimestamp"):
            continue
        live, ready, names = out.get(owner, (0, 0, frozenset()))
        if pod_ready(pod):
            out[owner] = (live + 1, ready + 1, names | {pod["metadata"]["name"]})
        else:
            out[owner] = (live + 1, ready, names)
    return out


def unschedulable(pods: list[dict[str, Any]]) -> int:
    """Pods the scheduler could not place (no node, PodScheduled False): on the local cluster,
    nodes without room for them."""
    return sum(1 for pod in pods
               if not pod.get("spec", {}).get("nodeName")
               and any(c.get("type") == "PodScheduled" and c.get("status") == "False"
                       for c in pod.get("status", {}).get("conditions") or []))


def nodes_summary(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """How many nodes, and how many pods they take together and each."""
    from kubernetes.utils import parse_quantity

    pods = [int(parse_quantity((n.get("status", {}).get("allocatable") or {}).get("pods", "0"))) for n in nodes]
    return {"nodes": len(nodes), "pods_allocatable": sum(pods), "pods_per_node": sorted(set(pods))}


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        cfg.connection_pool_maxsize = 32
        self.api = client.ApiClient(cfg)
        self.api.user_agent = USER_AGENT
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    # -- namespaces

    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": {"playbook-operator.io/bench": "true"}}})

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise

    def namespace_gone(self, name: str) -> bool:
        try:
            self.core.read_namespace(name)
        except ApiException as err:
            if err.status == 404:
                return True
            raise
        return False

    # -- sets (PodSet or ReplicaSet, by kind)

    def create_set(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        if kind == "PodSet":
            self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, podset(name, replicas))
        else:
            self.apps.create_namespaced_replica_set(namespace, replicaset(name, replicas))

    def create_sets(self, kind: str, namespace: str, names: list[str], replicas: int, threads: int = 8) -> None:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda n: self.create_set(kind, namespace, n, replicas), names))

    def scale_set(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        body = {"spec": {"replicas": replicas}}
        if kind == "PodSet":
            self.custom.patch_namespaced_custom_object_scale(GROUP, VERSION, namespace, PLURAL, name, body)
        else:
            self.apps.patch_namespaced_replica_set_scale(name, namespace, body)

    def delete_set(self, kind: str, namespace: str, name: str) -> None:
        try:
            if kind == "PodSet":
                self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            else:
                self.apps.delete_namespaced_replica_set(name, namespace)
        except ApiException as err:
            if err.status != 404:
                raise

    def get_set(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if kind == "PodSet":
            return dict(self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name))
        return dict(self.api.sanitize_for_serialization(self.apps.read_namespaced_replica_set(name, namespace)))

    # -- nodes

    def nodes(self) -> dict[str, Any]:
        """`nodes_summary` of the cluster's nodes."""
        resp = self.core.list_node(_preload_content=False)
        import json
        return nodes_summary(json.loads(resp.data)["items"])

    def pod_capacity(self) -> int:
        """How many pods the cluster's nodes take, all together."""
        return int(self.nodes()["pods_allocatable"])

    # -- pods

    def pods(self, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        resp = self.core.list_namespaced_pod(namespace, label_selector=selector or LABEL,
                                             _preload_content=False)
        import json
        return list(json.loads(resp.data)["items"])

    def delete_pod(self, namespace: str, name: str) -> None:
        self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `check()` held, or None at the deadline."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(interval)
