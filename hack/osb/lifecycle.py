"""Service instances and bindings as both brokers keep them, and how their async operations end.

An operation records its wall-clock start in the state file and is over once the broker's
``--async-seconds`` have passed since then, whether or not the broker ran all that time.
`settle` applies the operations that are over; each request calls it first.

State layout: ``instances`` maps an instance id to its record (with its ``bindings``); ``gone``
maps the id of an instance whose async deprovision finished to that operation's id, as does an
instance's ``gone_bindings`` for its bindings, so that a poll after the end still has an answer.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

IN_PROGRESS, SUCCEEDED, FAILED = "in progress", "succeeded", "failed"
READY = "ready"
BUSY = {"provision": "provisioning", "update": "updating", "deprovision": "deprovisioning",
        "bind": "binding", "unbind": "unbinding"}
DONE = {"provision": "provisioned", "update": "updated", "deprovision": "deprovisioned",
        "bind": "bound", "unbind": "unbound"}

Record = dict[str, Any]


def empty_state() -> dict[str, Any]:
    return {"instances": {}, "gone": {}, "requests": []}


def new_instance(service_id: str, plan_id: str, parameters: dict[str, Any] | None, **extra: Any) -> Record:
    return {"service_id": service_id, "plan_id": plan_id, "parameters": parameters or {},
            "state": READY, "operation": None, "bindings": {}, "gone_bindings": {}, **extra}


def new_binding(service_id: str, plan_id: str, parameters: dict[str, Any] | None,
                credentials: dict[str, Any]) -> Record:
    return {"service_id": service_id, "plan_id": plan_id, "parameters": parameters or {},
            "state": READY, "operation": None, "credentials": credentials}


def same(record: Record, service_id: str, plan_id: str, parameters: dict[str, Any] | None) -> bool:
    """Whether a repeated PUT asks for what `record` already is (OSB: 200, else 409)."""
    return (record["service_id"], record["plan_id"], record["parameters"]) == (service_id, plan_id, parameters or {})


def begin(record: Record, kind: str, *, failure: str | None = None, endless: bool = False) -> Record:
    """Start an async operation on `record`: it ends failed with `failure` as its description if
    given, and never ends if `endless`."""
    op = {"id": f"{kind}-{uuid.uuid4().hex[:12]}", "kind": kind, "started": time.time(),
          "state": IN_PROGRESS, "failure": failure, "endless": endless}
    record["operation"] = op
    record["state"] = BUSY[kind]
    return op


def pending(record: Record) -> Record | None:
    op: Record | None = record["operation"]
    return op if op is not None and op["state"] == IN_PROGRESS else None


def status(record: Record) -> tuple[str, str]:
    """The last operation's state and description (a record created synchronously: succeeded)."""
    op = record["operation"]
    if op is None:
        return SUCCEEDED, ""
    if op["state"] == IN_PROGRESS:
        return IN_PROGRESS, BUSY[op["kind"]]
    if op["state"] == FAILED:
        return FAILED, str(op["failure"])
    return SUCCEEDED, DONE[op["kind"]]


def _due(record: Record, now: float, seconds: float) -> bool:
    op = pending(record)
    return op is not None and not op["endless"] and now - op["started"] >= seconds


def _finish(record: Record) -> bool:
    """End `record`'s operation; whether the record is gone with it (unbind, deprovision)."""
    op = record["operation"]
    op["state"] = FAILED if op["failure"] else SUCCEEDED
    if op["state"] == SUCCEEDED and op["kind"] in ("deprovision", "unbind"):
        return True
    record["state"] = FAILED if op["state"] == FAILED and op["kind"] in ("provision", "bind") else READY
    return False


def settle(data: dict[str, Any], now: float, seconds: float) -> None:
    """Apply every operation whose time is up."""
    for instance_id, instance in list(data["instances"].items()):
        for binding_id, binding in list(instance["bindings"].items()):
            if _due(binding, now, seconds) and _finish(binding):
                del instance["bindings"][binding_id]
                instance["gone_bindings"][binding_id] = binding["operation"]["id"]
        if _due(instance, now, seconds) and _finish(instance):
            del data["instances"][instance_id]
            data["gone"][instance_id] = instance["operation"]["id"]
