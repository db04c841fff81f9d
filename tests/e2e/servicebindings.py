"""ServiceBindings in e2e tests: manifests, the binding's conditions and Events, and what it
projected into a workload's pod template."""

from __future__ import annotations

import json
from typing import Any

from tests.support import Cluster, wait_for


def secret(name: str, **data: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                       "stringData": data or {"type": "postgresql", "username": "app", "password": "s3cret"}})


def deployment(name: str, labels: dict[str, str] | None = None, containers: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                       "metadata": {"name": name, "labels": labels or {"app": name}},
                       "spec": {"replicas": 0, "selector": {"matchLabels": {"app": name}},
                                "template": {"metadata": {"labels": {"app": name}},
                                             "spec": {"containers": containers or [
                                                 {"name": "app", "image": "registry.example/app:1"}]}}}})


def binding(name: str, *, service: dict[str, Any] | None = None, workload: dict[str, Any] | None = None,
            **spec: Any) -> str:
    return json.dumps({"apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding", "metadata": {"name": name},
                       "spec": {"service": service or {"apiVersion": "v1", "kind": "Secret", "name": "creds"},
                                "workload": workload or {"apiVersion": "apps/v1", "kind": "Deployment",
                                                         "name": "web"}, **spec}})


def condition_of(sb: dict[str, Any], ctype: str = "Ready") -> dict[str, Any] | None:
    return next((c for c in (sb.get("status") or {}).get("conditions") or [] if c["type"] == ctype), None)


def condition(cluster: Cluster, namespace: str, name: str, ctype: str = "Ready") -> dict[str, Any] | None:
    return condition_of(cluster.get("servicebinding", name, namespace) or {}, ctype)


def wait_ready(cluster: Cluster, namespace: str, name: str, status: str = "True", reason: str | None = None,
               timeout: float = 90) -> dict[str, Any]:
    """The binding once its Ready condition is as asked for its current generation. The condition
    and the object returned come from one read: a second read could show a newer status than the
    object returned (a Ready=True beside the status.binding of a SecretNotFound)."""
    def check() -> dict[str, Any] | None:
        sb = cluster.get("servicebinding", name, namespace) or {}
        c = condition_of(sb)
        if (c and c["status"] == status and (reason is None or c["reason"] == reason)
                and (sb.get("status") or {}).get("observedGeneration") == sb["metadata"]["generation"]):
            return sb
        return None
    return wait_for(check, timeout=timeout, what=f"ServiceBinding {name} Ready={status} {reason or ''}")


def pod_spec(cluster: Cluster, kind: str, name: str, namespace: str) -> dict[str, Any]:
    obj = cluster.get(kind, name, namespace)
    assert obj is not None
    return dict(obj["spec"]["template"]["spec"])


def volume_of(spec: dict[str, Any], sb: dict[str, Any]) -> dict[str, Any] | None:
    want = f"servicebinding-{sb['metadata']['uid']}"
    return next((v for v in spec.get("volumes") or [] if v["name"] == want), None)


def mount_of(container: dict[str, Any], sb: dict[str, Any]) -> dict[str, Any] | None:
    want = f"servicebinding-{sb['metadata']['uid']}"
    return next((m for m in container.get("volumeMounts") or [] if m["name"] == want), None)


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def events_for(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", namespace)
            if e["involvedObject"].get("kind") == "ServiceBinding" and e["involvedObject"].get("name") == name]


def wait_event(cluster: Cluster, namespace: str, name: str, reason: str) -> None:
    wait_for(lambda: reason in [e["reason"] for e in events_for(cluster, namespace, name)],
             what=f"a {reason} Event on ServiceBinding {name}")
