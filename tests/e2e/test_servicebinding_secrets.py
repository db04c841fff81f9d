"""A bound Secret's values never leave the Secret: after binding a Secret with a planted value
(as files and as an env variable) and rotating it, neither that value nor its base64 form is in
the ansible-runner artifacts, the operator's log, the Events, the ServiceBinding's status or the
workload."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from tests.support import Cluster, OperatorProcess, wait_for


def ready(cluster: Cluster, namespace: str) -> bool:
    sb = cluster.get("servicebinding", "db", namespace) or {}
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (sb.get("status") or {}).get("conditions") or [])


def test_bound_secret_values_stay_in_the_secret(cluster: Cluster, crds: None, namespace: str,
                                                tmp_path: Path) -> None:
    planted = f"planted-{uuid.uuid4().hex}"
    rotated = f"rotated-{uuid.uuid4().hex}"
    forms = {f"{name} {kind}": value
             for name, secret in (("planted", planted), ("rotated", rotated))
             for kind, value in (("plain", secret), ("base64", base64.b64encode(secret.encode()).decode()))}

    def secret(value: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                           "stringData": {"type": "postgresql", "username": "app", "password": value}})

    cluster.apply(secret(planted), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}}}), namespace)
    cluster.apply(json.dumps({
        "apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding", "metadata": {"name": "db"},
        "spec": {"service": {"apiVersion": "v1", "kind": "Secret", "name": "creds"},
                 "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "env": [{"name": "DB_PASSWORD", "key": "password"}]}}), namespace)

    # The most talkative Ansible there is, so that anything not marked no_log would show.
    operator = OperatorProcess(cluster, workdir=tmp_path, namespaces=[namespace],
                               args=["--ansible-verbosity", "4"])
    operator.start()
    try:
        wait_for(lambda: ready(cluster, namespace), timeout=120, what="the binding to be Ready")
        runs = operator.log().count("reconciled ServiceBinding")
        cluster.apply(secret(rotated), namespace)  # the binding follows its Secret: one more run
        wait_for(lambda: operator.log().count("reconciled ServiceBinding") > runs, what="a run after the rotation")
        operator.assert_alive()
    finally:
        operator.stop()

    artifacts = tmp_path / "artifacts"
    events = [json.loads(p.read_text()) for p in artifacts.glob("**/job_events/*.json")]
    read = [e for e in events if e.get("event_data", {}).get("task") == "Check that the binding Secret exists "
            "(its values are not kept)" and e["event"] == "runner_on_ok"]
    assert read, "the run read the Secret (so the checks below can fail)"
    assert all(e["event_data"]["res"].get("censored") for e in read)

    sb = cluster.get("servicebinding", "db", namespace) or {}
    places: dict[str, Any] = {
        **{f"artifact {p.relative_to(artifacts)}": p.read_text(errors="replace")
           for p in sorted(artifacts.rglob("*")) if p.is_file()},
        "operator log": operator.log(),
        "events": cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
        "status": json.dumps(sb.get("status")),
        "workload": json.dumps(cluster.get("deployment", "web", namespace)),
    }
    assert len(places) > 10
    leaks = [(place, form) for place, text in places.items() for form, value in forms.items() if value in text]
    assert leaks == []
