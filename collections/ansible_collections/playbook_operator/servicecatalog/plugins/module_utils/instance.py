"""The ServiceInstance machine: provision, update, deprovision and orphan mitigation, one OSB
request per reconcile, its state kept in the instance's status (service-catalog's fields).

`step(instance, facts, now)` decides the request (or, when there is none, the whole decision);
`outcome(instance, step, result, now)` reads the broker's answer. Both are pure: `facts` is what
the role read (classes, plans, brokers, the namespace's ServiceCredentials, whether the instance
is being deleted), `result` is the `osb_request` task's result, `now` an RFC 3339 time or None.

The instance's uid is its OSB instance id. An operation in flight (`asyncOpInProgress`) is
polled before anything else, so a broker restarted mid-operation is simply polled again; a
timeout, a 5xx, or a provision the broker reports `failed` starts orphan mitigation, a DELETE
repeated until the broker confirms; a 4xx never does. Deletion waits for the instance's
credentials to go (it never deletes them) and for the broker to confirm the deprovision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.times import format_time
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import answers as a
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils.steps import (
    FAILED,
    Decision,
    Offering,
    Removal,
    context,
    current_condition,
    find_offering,
    namespace_uid,
    removal_outcome,
)

PROVISION, UPDATE, DEPROVISION = "Provision", "Update", "Deprovision"
# Seconds between looks while credentials still hold an instance being deleted (their deletion
# wakes the instance sooner: the role reads them).
BLOCKED_RECHECK = 30
REMOVAL = Removal(operation=DEPROVISION, noun="deprovision", status_field="deprovisionStatus",
                  gone_reason="Deprovisioned", progress_reason="Deprovisioning", failed_reason="DeprovisionCallFailed",
                  gone_status={"provisionStatus": "NotProvisioned", "externalProperties": {},
                               "inProgressProperties": None},
                  left_by="the failed provision")


def _status(instance: Mapping[str, Any]) -> dict[str, Any]:
    return dict(instance.get("status") or {})


def _path(instance: Mapping[str, Any]) -> str:
    return f"/v2/service_instances/{instance['metadata']['uid']}"


def _properties(offering: Offering, checksum: str = "") -> dict[str, str]:
    return {"clusterServicePlanExternalName": str(offering.plan["spec"]["externalName"]),
            "clusterServicePlanExternalID": offering.plan_id, "parameterChecksum": checksum}


def _request(method: str, path: str, operation: str, query: Mapping[str, Any], body: Mapping[str, Any] | None = None,
             *, instance: Mapping[str, Any] | None = None, orphan: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "path": path, "query": dict(query), "body": dict(body) if body else None,
                           "operation": operation, "orphan": orphan, "parameters_from": [],
                           "parameters_namespace": ""}
    if instance is not None:
        out["parameters_from"] = list(instance["spec"].get("parametersFrom") or [])
        out["parameters_namespace"] = str(instance["metadata"].get("namespace") or "")
    return out


def step(instance: Mapping[str, Any], facts: Mapping[str, Any], now: Any = None) -> dict[str, Any]:
    st = _status(instance)
    decision, offering = _step(instance, st, facts, a.clock(now))
    broker = offering.broker if isinstance(offering, Offering) else None
    out = decision.as_dict(st, broker, deleting=bool(facts.get("deleting")))
    if isinstance(offering, Offering):
        out["refs"] = {"clusterServiceClassRef": {"name": offering.klass["metadata"]["name"]},
                       "clusterServicePlanRef": {"name": offering.plan["metadata"]["name"]},
                       "properties": _properties(offering), "maximum_polling": offering.maximum_polling,
                       "broker_name": offering.broker["metadata"]["name"]}
    return out


def _step(instance: Mapping[str, Any], st: dict[str, Any], facts: Mapping[str, Any],
          now: Any) -> tuple[Decision, Offering | None]:
    spec = instance["spec"]
    deleting = bool(facts.get("deleting"))
    provisioned = st.get("provisionStatus") == "Provisioned"
    generation = instance["metadata"].get("generation")
    # The instance was provisioned (or something may exist at the broker) from the class in
    # its status; a new one from what its spec names now.
    pinned = (st.get("clusterServiceClassRef") or {}).get("name", "") if (
        provisioned or st.get("asyncOpInProgress") or st.get("orphanMitigationInProgress")
        or st.get("deprovisionStatus") in ("Required", "Failed")) else ""
    plan_name = spec.get("clusterServicePlanExternalName", "")
    if deleting or st.get("asyncOpInProgress") or st.get("orphanMitigationInProgress"):
        # What the broker holds is what was last asked for.
        plan_name = ((st.get("inProgressProperties") or {}).get("clusterServicePlanExternalName")
                     or (st.get("externalProperties") or {}).get("clusterServicePlanExternalName") or plan_name)
    found = find_offering(class_external_name=spec.get("clusterServiceClassExternalName", ""),
                          plan_external_name=plan_name, class_name=pinned,
                          classes=facts.get("classes") or [], plans=facts.get("plans") or [],
                          brokers=facts.get("brokers") or [], new=not pinned and not deleting)

    if deleting:
        blockers = sorted(c["metadata"]["name"] for c in facts.get("credentials") or []
                          if (c.get("spec") or {}).get("instanceRef", {}).get("name") == instance["metadata"]["name"])
        if blockers:
            shown = ", ".join(blockers[:5]) + (f" and {len(blockers) - 5} more" if len(blockers) > 5 else "")
            decision = Decision(requeue_after=BLOCKED_RECHECK).ready(
                False, "DeprovisionBlockedByExistingCredentials",
                f"waiting for its ServiceCredentials to be deleted first: {shown}")
            return decision, None
        if not st.get("asyncOpInProgress") and st.get("deprovisionStatus") not in ("Required", "Failed"):
            return Decision(done=True, status={"deprovisionStatus": "NotRequired"}), None

    if not isinstance(found, Offering):
        if deleting:
            # Something may exist at the broker, but nothing tells which: say so, and keep it.
            found.requeue_after = a.RETRY_MAX
        return found, None
    offering = found

    if st.get("asyncOpInProgress"):
        return _poll(instance, st, offering), offering
    if st.get("orphanMitigationInProgress") or deleting:
        orphan = bool(st.get("orphanMitigationInProgress"))
        query = {"accepts_incomplete": True, "service_id": offering.service_id, "plan_id": offering.plan_id}
        return Decision(request=_request("DELETE", _path(instance), DEPROVISION, query, orphan=orphan)), offering

    done_here = st.get("reconciledGeneration") == generation
    if not provisioned:
        if done_here:  # the broker refused this generation for good: wait for a change
            return Decision(), offering
        return Decision(request=_provision(instance, offering, facts, "PUT", PROVISION)), offering

    if done_here:
        return Decision(), offering
    current = st.get("externalProperties") or {}
    if current.get("clusterServicePlanExternalID") != offering.plan_id and not offering.plan_updatable:
        decision = Decision(status={"reconciledGeneration": generation})
        decision.ready(False, "UpdateInstanceNotAllowed",
                       f"the plan cannot change from {current.get('clusterServicePlanExternalName')!r} to "
                       f"{offering.plan['spec']['externalName']!r}: the broker says plans of "
                       f"{offering.klass['spec']['externalName']!r} are not updatable")
        decision.failed(True, "UpdateInstanceNotAllowed", decision.conditions[-1]["message"])
        return decision, offering
    return Decision(request=_provision(instance, offering, facts, "PATCH", UPDATE)), offering


def _provision(instance: Mapping[str, Any], offering: Offering, facts: Mapping[str, Any], method: str,
               operation: str) -> dict[str, Any]:
    meta = instance["metadata"]
    namespace = str(meta.get("namespace") or "")
    body: dict[str, Any] = {"service_id": offering.service_id, "plan_id": offering.plan_id,
                            "context": context(namespace, facts, instance_name=str(meta["name"]))}
    parameters = instance["spec"].get("parameters")
    if parameters or instance["spec"].get("parametersFrom"):
        body["parameters"] = dict(parameters or {})
    if offering.maintenance_info:
        body["maintenance_info"] = offering.maintenance_info
    if method == "PUT":
        # Required by OSB before v2.15 and still by many brokers: the platform's org and space.
        space = namespace_uid(facts, namespace) or namespace
        body["organization_guid"] = namespace_uid(facts, "kube-system") or space
        body["space_guid"] = space
    else:
        previous = (instance.get("status") or {}).get("externalProperties") or {}
        body["previous_values"] = {"service_id": offering.service_id,
                                   "plan_id": previous.get("clusterServicePlanExternalID") or offering.plan_id}
    return _request(method, _path(instance), operation, {"accepts_incomplete": True}, body, instance=instance)


def _poll(instance: Mapping[str, Any], st: Mapping[str, Any], offering: Offering) -> Decision:
    query: dict[str, Any] = {"service_id": offering.service_id, "plan_id": offering.plan_id}
    if st.get("lastOperation"):
        query["operation"] = st["lastOperation"]
    return Decision(request=_request("GET", _path(instance) + "/last_operation", "Poll", query))


def outcome(instance: Mapping[str, Any], decided: Mapping[str, Any], result: Mapping[str, Any],
            now: Any = None) -> dict[str, Any]:
    """The decision once the broker answered the request `decided` asked for."""
    st = _status(instance)
    clock = a.clock(now)
    request = decided.get("request") or {}
    answer = a.Answer.of(result)
    refs = decided.get("refs") or {}
    operation = request.get("operation")
    if operation == "Poll":
        decision = _polled(instance, st, refs, answer, clock)
    elif operation == DEPROVISION:
        decision = removal_outcome(REMOVAL, st, answer, clock, orphan=bool(request.get("orphan")), since_poll=False)
    else:
        decision = _provisioned(instance, st, refs, answer, clock, operation=str(operation))
    if refs and operation in (PROVISION, UPDATE):
        decision.status.setdefault("clusterServiceClassRef", refs["clusterServiceClassRef"])
        decision.status.setdefault("clusterServicePlanRef", refs["clusterServicePlanRef"])
    if answer.kind == a.NOT_SENT:
        decision.dry_run(request)
    return decision.as_dict(st, decided.get("broker"), deleting=bool(decided.get("deleting")))


def _finished(instance: Mapping[str, Any], st: Mapping[str, Any], properties: Mapping[str, Any],
              operation: str, dashboard: Any = None) -> Decision:
    decision = Decision(status={
        "provisionStatus": "Provisioned", "deprovisionStatus": "Required", "asyncOpInProgress": False,
        "currentOperation": None, "lastOperation": None, "operationStartTime": None,
        "externalProperties": dict(properties), "inProgressProperties": None,
        "reconciledGeneration": instance["metadata"].get("generation")})
    if isinstance(dashboard, str) and dashboard:
        decision.status["dashboardURL"] = dashboard
    if operation == PROVISION:
        decision.ready(True, "ProvisionedSuccessfully", "The instance was provisioned successfully")
    else:
        decision.ready(True, "InstanceUpdatedSuccessfully", "The instance was updated successfully")
    if current_condition(st, FAILED):
        decision.failed(False, "NoFailure", "The last operation succeeded")
    return decision


def _provisioned(instance: Mapping[str, Any], st: Mapping[str, Any], refs: Mapping[str, Any], answer: a.Answer,
                 now: Any, *, operation: str) -> Decision:
    properties = dict(refs.get("properties") or {}, parameterChecksum=answer.parameters_checksum)
    verb = "provision" if operation == PROVISION else "update"
    failed_reason = "ProvisionCallFailed" if operation == PROVISION else "UpdateInstanceCallFailed"
    calling_reason = "ErrorCallingProvision" if operation == PROVISION else "ErrorCallingUpdateInstance"
    since = st.get("operationStartTime") or format_time(now)
    kind = answer.kind
    if kind == a.NOT_SENT:
        return Decision().ready(False, "Provisioning" if operation == PROVISION else "UpdatingInstance",
                                f"would ask the broker to {verb} the instance")
    if kind == a.DONE:
        return _finished(instance, st, properties, operation, answer.body.get("dashboard_url"))
    if kind == a.ACCEPTED:
        decision = Decision(status={
            "asyncOpInProgress": True, "currentOperation": operation, "lastOperation": answer.operation,
            "operationStartTime": format_time(now), "inProgressProperties": properties,
            "deprovisionStatus": "Required"}, requeue_after=a.poll_after(answer, None, now))
        if isinstance(answer.body.get("dashboard_url"), str):
            decision.status["dashboardURL"] = answer.body["dashboard_url"]
        return decision.ready(False, "Provisioning" if operation == PROVISION else "UpdatingInstance",
                              f"The broker is working on the {verb} asynchronously")
    if kind == a.MAINTENANCE_CONFLICT:
        decision = Decision(status={"operationStartTime": since}, requeue_after=a.retry_after(since, now),
                            relist_broker=str(refs.get("broker_name") or ""))
        return decision.ready(False, "MaintenanceInfoConflict",
                              f"The {verb} was refused, the catalog is being fetched again: {answer.description}")
    if kind in (a.REFUSED, a.GONE):
        decision = Decision(status={"reconciledGeneration": instance["metadata"].get("generation"),
                                    "operationStartTime": None})
        if operation == PROVISION:
            decision.status["deprovisionStatus"] = "NotRequired"
        message = f"The {verb} call failed: {answer.description}"
        return decision.ready(False, failed_reason, message).failed(True, failed_reason, message)
    if kind == a.UNKNOWN_OUTCOME and operation == PROVISION:
        # The broker may have made something it will not tell us about: delete it.
        message = f"The provision call failed: {answer.description}; deleting whatever the broker made"
        decision = Decision(status={"orphanMitigationInProgress": True, "deprovisionStatus": "Required",
                                    "operationStartTime": since}, requeue_after=1)
        return decision.ready(False, calling_reason, message).orphan(True, "StartingOrphanMitigation", message)
    if kind == a.LOCAL_ERROR:
        return Decision().ready(False, "ErrorWithParameters", answer.description)
    # Unreachable, busy, or an update whose outcome is unknown: ask again later.
    decision = Decision(status={"operationStartTime": since}, requeue_after=a.retry_after(since, now))
    return decision.ready(False, calling_reason, f"Could not {verb} the instance, will retry: {answer.description}")


def _polled(instance: Mapping[str, Any], st: Mapping[str, Any], refs: Mapping[str, Any], answer: a.Answer,
            now: Any) -> Decision:
    operation = st.get("currentOperation") or PROVISION
    since = st.get("operationStartTime")
    orphan = bool(st.get("orphanMitigationInProgress"))
    if operation == DEPROVISION:
        return removal_outcome(REMOVAL, st, answer, now, orphan=orphan, since_poll=True)
    kind, state = answer.kind, answer.state
    verb = "provision" if operation == PROVISION else "update"
    properties = st.get("inProgressProperties") or refs.get("properties") or {}
    if kind == a.DONE and state == "succeeded":
        return _finished(instance, st, properties, operation)
    if (kind == a.DONE and state == "failed") or kind in (a.REFUSED, a.GONE):
        message = f"The {verb} failed: {answer.description}"
        decision = Decision(status={"asyncOpInProgress": False, "currentOperation": None, "lastOperation": None,
                                    "reconciledGeneration": instance["metadata"].get("generation")})
        if operation == PROVISION:
            decision.status.update({"orphanMitigationInProgress": True, "operationStartTime": format_time(now)})
            decision.requeue_after = 1
            decision.orphan(True, "StartingOrphanMitigation", message + "; deleting whatever the broker made")
            return decision.ready(False, "ProvisionCallFailed", message).failed(True, "ProvisionCallFailed", message)
        decision.status["operationStartTime"] = None
        decision.status["inProgressProperties"] = None
        return (decision.ready(False, "UpdateInstanceCallFailed", message)
                .failed(True, "UpdateInstanceCallFailed", message))
    limit = refs.get("maximum_polling")
    if isinstance(limit, int) and a.elapsed(since, now) > limit:
        message = f"The broker did not finish the {verb} within the plan's maximum_polling_duration ({limit}s)"
        decision = Decision(status={"asyncOpInProgress": False, "currentOperation": None, "lastOperation": None})
        if operation == PROVISION:
            decision.status.update({"orphanMitigationInProgress": True, "operationStartTime": format_time(now),
                                    "reconciledGeneration": instance["metadata"].get("generation")})
            decision.requeue_after = 1
            decision.orphan(True, "StartingOrphanMitigation", message + "; deleting whatever the broker made")
            return (decision.ready(False, "AsyncOperationTimedOut", message)
                    .failed(True, "AsyncOperationTimedOut", message))
        decision.status.update({"operationStartTime": None, "inProgressProperties": None,
                                "reconciledGeneration": instance["metadata"].get("generation")})
        return decision.ready(False, "AsyncOperationTimedOut", message).failed(True, "AsyncOperationTimedOut",
                                                                               message)
    decision = Decision(requeue_after=a.poll_after(answer, since, now))
    progress = "Provisioning" if operation == PROVISION else "UpdatingInstance"
    if kind == a.DONE:  # in progress
        said = answer.body.get("description")
        return decision.ready(False, progress, f"The broker is working on the {verb} asynchronously"
                              + (f": {said}" if isinstance(said, str) and said else ""))
    decision.requeue_after = a.retry_after(since, now)
    return decision.ready(False, progress, f"Could not ask the broker how the {verb} goes, will retry: "
                                           f"{answer.description}")
