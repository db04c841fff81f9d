"""PodSets in e2e tests: a manifest, its pods, whether it has converged."""

from __future__ import annotations

import json

from tests.support import Cluster


def podset(name: str, replicas: int, app: str | None = None, **template_annotations: str) -> str:
    app = app or name
    return json.dumps({
        "apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": app}},
                 "template": {"metadata": {"labels": {"app": app}, "annotations": template_annotations},
                              "spec": {"containers": [{"name": "main", "image": "registry.example/app:1"}]}}},
    })


def active_pods(cluster: Cluster, namespace: str, app: str) -> list[dict]:
    return [p for p in cluster.list("pods", namespace, f"app={app}")
            if not p["metadata"].get("deletionTimestamp") and p["status"].get("phase") in ("Pending", "Running")]


def ready_count(pods: list[dict]) -> int:
    return sum(1 for p in pods if any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in p["status"].get("conditions", [])))


def converged(cluster: Cluster, namespace: str, name: str, replicas: int) -> bool:
    pods = active_pods(cluster, namespace, name)
    ps = cluster.get("podset", name, namespace) or {}
    st = ps.get("status", {})
    return (len(pods) == replicas and ready_count(pods) == replicas and st.get("replicas") == replicas
            and st.get("readyReplicas", 0) == replicas)
