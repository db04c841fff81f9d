"""Secrets never leave the Secret: a role that reads one without no_log, prints it and fails with
its value leaves that value in none of the artifacts, the operator's log, the Events or the status;
nor does a service broker's password, or the credentials a broker returns on a bind."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

from runner.artifacts import MASK
from tests.e2e.servicecatalogs import Catalog, secret_data, started, watches_for
from tests.support import Cluster, OperatorProcess, conditions_of, example_manifest, wait_for

ROLE = Path(__file__).resolve().parent / "roles" / "secret_reader"

WATCHES = """\
---
- version: v1alpha1
  group: examples.playbook-operator.io
  kind: Example
  role: {role}
"""



def failure_condition(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    example = cluster.get("example", "careless", namespace) or {}
    conditions = (example.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Failure" and c.get("status") == "True"), None)


def reconcile_failed_events(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return [e for e in cluster.list("events", namespace) if e.get("reason") == "ReconcileFailed"]


def events_of_finished_runs(artifacts: Path) -> list[dict[str, Any]]:
    """Events of the runs that ended (ansible-runner wrote their `status`); a retry cut short by
    stopping the operator would otherwise mix a killed task's result in."""
    return [json.loads(p.read_text()) for run in artifacts.glob("**/artifacts/*") if (run / "status").exists()
            for p in sorted((run / "job_events").glob("*.json"))]


def test_secret_values_stay_in_the_secret(cluster: Cluster, crds: None, namespace: str, tmp_path: Path) -> None:
    planted = f"planted-{uuid.uuid4().hex}"
    forms = {"plain": planted, "base64": base64.b64encode(planted.encode()).decode()}
    watches = tmp_path / "watches.yaml"
    watches.write_text(WATCHES.format(role=ROLE))
    cluster.kubectl("create", "secret", "generic", "db-credentials", "-n", namespace,
                    f"--from-literal=password={planted}")
    cluster.apply(example_manifest("careless", {"secret": "db-credentials"}), namespace)

    operator = OperatorProcess(cluster, workdir=tmp_path, watches=watches, namespaces=[namespace])
    operator.start()
    try:
        failure = wait_for(lambda: failure_condition(cluster, namespace), timeout=120,
                           what="a Failure condition on the Example")
        wait_for(lambda: reconcile_failed_events(cluster, namespace), what="a ReconcileFailed Event")
        wait_for(lambda: "reconciled Example" in operator.log(), what="the operator to log the reconcile")
        operator.assert_alive()
    finally:
        # Stopped before anything is read: a retry still running finishes (and is scrubbed) first.
        operator.stop()

    # The run really read, printed and failed with the Secret (so the checks below can fail).
    artifacts = tmp_path / "artifacts"
    by_task = {e["event_data"]["task"]: e for e in events_of_finished_runs(artifacts)
               if "res" in e.get("event_data", {})}
    read = by_task["Read the Secret the custom resource names"]
    assert read["event_data"]["task_action"] == "kubernetes.core.k8s_info"
    assert list(read["event_data"]["res"]["resources"][0]["data"]) == ["password"]
    assert by_task["Print the Secret that was read"]["event"] == "runner_on_ok"
    assert by_task["Fail with the Secret's password in the message"]["event"] == "runner_on_failed"

    example = cluster.get("example", "careless", namespace)
    places = {
        **{f"artifact {p.relative_to(artifacts)}": p.read_text(errors="replace")
           for p in sorted(artifacts.rglob("*")) if p.is_file()},
        "operator log": operator.log(),
        "events": cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout,
        "status": json.dumps((example or {}).get("status")),
    }
    leaks = [(place, form) for place, text in places.items() for form, value in forms.items() if value in text]
    assert leaks == []

    # Masked where it was, the rest of the text kept.
    assert read["event_data"]["res"]["resources"][0]["data"] == {"password": MASK}
    assert failure["message"] == f"cannot log in with {MASK}"
    assert any(e["message"].endswith(f"failed: cannot log in with {MASK}")
               for e in reconcile_failed_events(cluster, namespace))


def test_a_planted_broker_password_and_the_returned_credentials_leak_nowhere(
        cluster: Cluster, crds: None, namespace: str, tmp_path: Path) -> None:
    planted = "planted-broker-password-7d1e"
    operator = OperatorProcess(cluster, workdir=tmp_path / "operator", namespaces=[namespace],
                               watches=watches_for(tmp_path / "watches.yaml", namespace))
    operator.start()
    try:
        with started(Catalog(cluster, namespace, tmp_path, password=planted), operator) as cat:
            cat.instance("vault", "sync-db", "small")
            cat.wait_condition("ServiceInstance", "vault", "ProvisionedSuccessfully", status="True")
            cat.credential("vault-creds", "vault")
            cat.wait_condition("ServiceCredential", "vault-creds", "InjectedBindResult", status="True")
            returned = secret_data(cluster, namespace, "vault-creds")["password"]
            objects = [cat.get(kind, name) for kind, name in (("ClusterServiceBroker", cat.name),
                                                              ("ServiceInstance", "vault"),
                                                              ("ServiceCredential", "vault-creds"))]
            events = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    finally:
        # Stopped before anything is read: the unbind and deprovision runs are in the artifacts too.
        operator.stop()

    values = {"broker password": planted, "returned password": returned}
    forms = {f"{what} ({form})": text for what, value in values.items()
             for form, text in (("plain", value), ("base64", base64.b64encode(value.encode()).decode()))}
    places = {f"artifact {p.relative_to(operator.workdir)}": p.read_text(errors="replace")
              for p in sorted(operator.workdir.rglob("*")) if p.is_file()}
    places.update({"operator log": operator.log(), "events": events,
                   "status": json.dumps([(o or {}).get("status") for o in objects])})
    assert any("artifacts" in place for place in places)
    leaks = [(place, form) for place, text in places.items() for form, value in forms.items() if value in text]
    assert leaks == []
    assert conditions_of(objects[2])["Ready"]["status"] == "True"
