"""The whole decision of one ServiceBinding reconcile, as data: each workload's change (the
binding removed and projected afresh, as a guarded JSON patch), the Ready, ServiceAvailable and
WorkloadProjected conditions, and the Events for those that changed.

Everything here is pure: the same binding, service, Secret presence, workloads and mappings
always give the same answer, so the role only reads the cluster and applies the plan, and the
rules are unit-tested without a cluster. No Secret value ever reaches these functions: the role
passes only whether the Secret exists.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.playbook_operator.bindings.plugins.module_utils.jsonpath import MappingError
from ansible_collections.playbook_operator.bindings.plugins.module_utils.patch import guarded, json_patch
from ansible_collections.playbook_operator.bindings.plugins.module_utils.projector import (
    binding_name,
    find_containers,
    project,
    unproject,
)
from ansible_collections.playbook_operator.bindings.plugins.module_utils.resolver import (
    resolve_mapping,
    resolve_service,
    selects,
)

_NAME = re.compile(r"^[a-z0-9.-]{1,253}$")


# --- one workload --------------------------------------------------------------------------------


def projection(workload: Mapping[str, Any], binding: Mapping[str, Any], secret: str | None,
               mappings: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """One workload's change: its binding removed and, when `secret` is given and the binding
    selects it, projected afresh with the current mapping.

    Returns ``{workload, patch, changed, projected, error}``; `patch` is a JSON patch guarded by
    `test` operations (see guarded()), so a concurrent edit makes it fail instead of being lost.
    A mapping that cannot be used gives `error` and no change at all."""
    new = copy.deepcopy(dict(workload))
    api_version, kind = str(workload.get("apiVersion", "")), str(workload.get("kind", ""))
    try:
        mapping = resolve_mapping(api_version, kind, mappings)
        wanted = secret is not None and selects(binding, workload)
        kept = unproject(new, binding, mapping, leaving=not wanted)
        if wanted:
            assert secret is not None
            project(new, binding, secret, mapping, kept)
            if not find_containers(new, mapping):
                raise MappingError(f"the mapping finds no containers in {kind} {workload['metadata']['name']}")
    except MappingError as err:
        return {"workload": dict(workload), "patch": [], "changed": False, "projected": False, "error": str(err)}
    ops = json_patch({"metadata": workload.get("metadata"), "spec": workload.get("spec")},
                     {"metadata": new.get("metadata"), "spec": new.get("spec")})
    ops = [op for op in ops if not op["path"].startswith(("/metadata/managedFields", "/metadata/resourceVersion"))]
    return {"workload": new, "patch": guarded(workload, ops) if ops else [], "changed": bool(ops),
            "projected": wanted, "error": None}


# --- one reconcile -------------------------------------------------------------------------------


def _condition(ctype: str, ok: bool | None, reason: str, message: str) -> dict[str, str]:
    status = "Unknown" if ok is None else ("True" if ok else "False")
    return {"type": ctype, "status": status, "reason": reason, "message": message}


def _ref_namespace_problem(binding: Mapping[str, Any], namespace: str) -> str | None:
    spec = binding.get("spec") or {}
    for field in ("service", "workload"):
        other = (spec.get(field) or {}).get("namespace")
        if other and other != namespace:
            return (f"spec.{field} is in namespace {other!r}; a ServiceBinding binds only a service and a "
                    f"workload in its own namespace ({namespace!r})")
    return None



def plan(binding: Mapping[str, Any], *, namespace: str, service: Mapping[str, Any] | None = None,
         service_error: str | None = None, secret_found: bool = False, workloads: Sequence[Mapping[str, Any]] = (),
         workloads_error: str | None = None, mappings: Sequence[Mapping[str, Any]] = (),
         mappings_error: str | None = None, deleting: bool = False) -> dict[str, Any]:
    """Everything one reconcile of a ServiceBinding does, as data.

    `workloads` are all objects of spec.workload's kind in the namespace (so those that stopped
    matching are unbound too). Returns ``{secret, changes, conditions, binding, events}``:
    `changes` lists ``{apiVersion, kind, name, patch}`` to apply; `conditions` are Ready,
    ServiceAvailable and WorkloadProjected. A binding being deleted, refused or without a Secret
    leaves every bound workload as it is, except that deletion removes its projection.
    `mappings_error` says the kind's ClusterWorkloadResourceMapping could not be read (an
    operator without cluster-wide rights): the built-in mapping is used, and
    WorkloadProjected's message says so."""
    spec = binding.get("spec") or {}
    name = binding_name(binding)
    refusal = _ref_namespace_problem(binding, namespace)
    if not _NAME.match(name):
        refusal = refusal or f"the binding name {name!r} must match [a-z0-9.-]{{1,253}}"
    if deleting:
        removals = [_change(w, result) for w in workloads
                    if (result := projection(w, binding, None, mappings))["changed"]]
        return {"secret": None, "changes": removals, "conditions": [], "binding": None, "events": []}

    if refusal:
        cond = _condition("Ready", False, "NamespaceNotAllowed" if "namespace" in refusal else "InvalidBinding",
                          refusal)
        return {"secret": None, "changes": [], "binding": None, "events": [],
                "conditions": [cond, {**cond, "type": "ServiceAvailable"}, {**cond, "type": "WorkloadProjected"}]}

    svc = resolve_service(binding, service, service_error)
    secret = svc["secret"] if svc["ok"] else None
    if secret and not secret_found:
        svc = {**svc, "ok": False, "reason": "SecretNotFound",
               "message": f"Secret {secret!r} does not exist in namespace {namespace!r}"}
        secret = None
    service_condition = _condition("ServiceAvailable", svc["ok"], svc["reason"], svc["message"])

    ref = spec.get("workload") or {}
    what = f"{ref.get('kind')} ({ref.get('apiVersion')})"
    changes: list[dict[str, Any]] = []
    errors: list[str] = []
    bound: list[str] = []
    if workloads_error:
        workload_condition = _condition("WorkloadProjected", False, "WorkloadUnavailable",
                                        f"cannot list {what}: {workloads_error}")
    elif secret is None:
        workload_condition = _condition("WorkloadProjected", None, "ServiceUnavailable",
                                        "waiting for the service's binding Secret; workloads are left as they are")
    else:
        for w in sorted(workloads, key=lambda o: o["metadata"]["name"]):
            result = projection(w, binding, secret, mappings)
            if result["error"]:
                errors.append(result["error"])
                continue
            if result["projected"]:
                bound.append(w["metadata"]["name"])
            if result["changed"]:
                changes.append(_change(w, result))
        if errors:
            workload_condition = _condition("WorkloadProjected", False, "InvalidMapping", "; ".join(errors))
        elif not bound and ref.get("name"):
            workload_condition = _condition("WorkloadProjected", False, "WorkloadNotFound",
                                            f"{what} {ref['name']!r} does not exist in namespace {namespace!r}")
        elif not bound:
            workload_condition = _condition("WorkloadProjected", True, "NoMatchingWorkloads",
                                            f"no {what} matches the selector yet")
        else:
            workload_condition = _condition("WorkloadProjected", True, "WorkloadProjected",
                                            f"projected into {what} {', '.join(bound)}")
        if mappings_error:
            workload_condition["message"] += (f"; the ClusterWorkloadResourceMapping of {ref.get('kind')} could "
                                              f"not be read ({mappings_error}), so the built-in mapping was used")
    if svc["ok"] and workload_condition["status"] == "True":
        ready = _condition("Ready", True, "ServiceBound", workload_condition["message"])
    elif not svc["ok"]:
        ready = {**service_condition, "type": "Ready", "status": "False"}
    else:
        ready = {**workload_condition, "type": "Ready", "status": "False"}
    return {"secret": secret, "changes": changes, "binding": {"name": secret} if secret else None,
            "conditions": [ready, service_condition, workload_condition], "events": []}


def _change(workload: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    meta = workload.get("metadata") or {}
    return {"apiVersion": workload.get("apiVersion"), "kind": workload.get("kind"), "name": meta.get("name"),
            "patch": result["patch"]}


def transitions(previous: Mapping[str, Any] | None, conditions: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """Events for the conditions whose status or reason changed since the status `previous`."""
    before = {c.get("type"): c for c in ((previous or {}).get("conditions") or []) if isinstance(c, dict)}
    events = []
    for c in conditions:
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"] and old.get("reason") == c["reason"]:
            continue
        if c["type"] != "Ready" and c["status"] == "True" and old is None:
            continue  # a first success is told once, by Ready
        events.append({"type": "Normal" if c["status"] == "True" else "Warning", "reason": c["reason"],
                       "message": c["message"]})
    return events

