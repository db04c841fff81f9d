"""The ServiceCredential machine: an OSB binding of a ServiceInstance, bind, fetch, unbind and
orphan mitigation, one request per reconcile, its state kept in the credential's status.

`step(credential, facts, now)` and `outcome(credential, step, result, now)` have the shape of the
instance machine's (`instance.py`). `facts` holds the ServiceInstance named (or None), classes,
plans and brokers, whether the credential is being deleted, and whether its Secret exists and
who owns it (never a value). The credential's uid is its OSB binding id; the credentials the
broker returns go straight into the Secret (`osb_request`'s `credentials_secret`), whose name
`status.binding.name` gives once it is ready: a servicebinding.io Provisioned Service.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.times import format_time
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import answers as a
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils.steps import (
    API_VERSION,
    FAILED,
    Decision,
    Offering,
    Removal,
    context,
    current_condition,
    find_offering,
    removal_outcome,
)

BIND, UNBIND, FETCH = "Bind", "Unbind", "FetchBinding"
REMOVAL = Removal(operation=UNBIND, noun="unbind", status_field="unbindStatus", gone_reason="Unbound",
                  progress_reason="Unbinding", failed_reason="UnbindCallFailed", gone_status={"binding": None},
                  left_by="the failed bind")
# Seconds between looks while the instance is not ready yet (its changes wake the credential
# sooner: the role reads it).
INSTANCE_RECHECK = 60


def secret_name(credential: Mapping[str, Any]) -> str:
    return str((credential.get("spec") or {}).get("secretName") or credential["metadata"]["name"])


def _ids(st: Mapping[str, Any]) -> Mapping[str, Any]:
    return st.get("externalProperties") or {}


def _path(instance_id: str, credential: Mapping[str, Any]) -> str:
    return f"/v2/service_instances/{instance_id}/service_bindings/{credential['metadata']['uid']}"


def _request(method: str, path: str, operation: str, query: Mapping[str, Any],
             body: Mapping[str, Any] | None = None, *, credential: Mapping[str, Any] | None = None,
             orphan: bool = False, write_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"method": method, "path": path, "query": dict(query), "body": dict(body) if body else None,
                           "operation": operation, "orphan": orphan, "parameters_from": [],
                           "parameters_namespace": "", "credentials_secret": None}
    if credential is not None:
        meta = credential["metadata"]
        out["parameters_from"] = list(credential["spec"].get("parametersFrom") or []) if method == "PUT" else []
        out["parameters_namespace"] = str(meta.get("namespace") or "")
        if write_secret:
            out["credentials_secret"] = {
                "name": secret_name(credential), "namespace": meta.get("namespace"),
                "labels": {"servicecatalog.playbook-operator.io/credential": str(meta["name"])},
                "owner": {"apiVersion": API_VERSION, "kind": "ServiceCredential", "name": meta["name"],
                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}}
    return out


def step(credential: Mapping[str, Any], facts: Mapping[str, Any], now: Any = None) -> dict[str, Any]:
    st = dict(credential.get("status") or {})
    decision, broker = _step(credential, st, facts)
    return decision.as_dict(st, broker, deleting=bool(facts.get("deleting")))


def _broker(facts: Mapping[str, Any], name: Any) -> Mapping[str, Any] | None:
    found: list[Mapping[str, Any]] = [b for b in facts.get("brokers") or []
                                       if (b.get("metadata") or {}).get("name") == name]
    return found[0] if found else None


def _step(credential: Mapping[str, Any], st: dict[str, Any],
          facts: Mapping[str, Any]) -> tuple[Decision, Mapping[str, Any] | None]:
    meta = credential["metadata"]
    ids = _ids(st)
    deleting = bool(facts.get("deleting"))
    bound_somewhere = bool(st.get("asyncOpInProgress") or st.get("orphanMitigationInProgress")
                           or st.get("unbindStatus") in ("Required", "Failed"))

    if bound_somewhere:
        broker = _broker(facts, ids.get("brokerName"))
        if broker is None:
            decision = Decision(requeue_after=a.RETRY_MAX).ready(
                False, "ReferencesNonexistentBroker",
                f"the broker {ids.get('brokerName')!r} that holds this binding does not exist")
            return decision, None
        path = _path(str(ids.get("instanceID")), credential)
        query = {"service_id": ids.get("serviceID"), "plan_id": ids.get("planID")}
        if st.get("asyncOpInProgress"):
            if st.get("lastOperation"):
                query["operation"] = st["lastOperation"]
            return Decision(request=_request("GET", path + "/last_operation", "Poll", query)), broker
        if st.get("orphanMitigationInProgress") or deleting:
            return Decision(request=_request("DELETE", path, UNBIND, {**query, "accepts_incomplete": True},
                                             orphan=bool(st.get("orphanMitigationInProgress")))), broker
        if st.get("currentOperation") == FETCH or (not facts.get("secret_exists") and ids.get("bindingsRetrievable")):
            return Decision(request=_request("GET", path, FETCH, query, credential=credential,
                                             write_secret=True)), broker
        if not facts.get("secret_exists"):
            return Decision().ready(False, "CredentialSecretMissing",
                                    f"the Secret {secret_name(credential)!r} is gone and the broker cannot give the "
                                    "credentials again: delete and re-create this ServiceCredential"), broker
        return Decision(), broker
    if deleting:
        return Decision(done=True, status={"unbindStatus": "NotRequired"}), None
    if st.get("reconciledGeneration") == meta.get("generation"):
        return Decision(), None  # refused for good at this generation: wait for a change

    owner = facts.get("secret_owner_uid")
    if facts.get("secret_exists") and owner != meta.get("uid"):
        return Decision().ready(False, "ErrorSecretOwnedByAnother",
                                f"the Secret {secret_name(credential)!r} exists and is not this credential's: "
                                "name another in spec.secretName"), None
    instance = facts.get("instance")
    name = (credential.get("spec") or {}).get("instanceRef", {}).get("name")
    if not instance:
        return Decision().ready(False, "ReferencesNonexistentInstance",
                                f"no ServiceInstance {name!r} in namespace {meta.get('namespace')!r}"), None
    ist = instance.get("status") or {}
    if instance["metadata"].get("deletionTimestamp"):
        return Decision().ready(False, "InstanceBeingDeleted", f"the ServiceInstance {name!r} is being deleted"), None
    if ist.get("provisionStatus") != "Provisioned" or ist.get("asyncOpInProgress"):
        return Decision(requeue_after=INSTANCE_RECHECK).ready(
            False, "ErrorInstanceNotReady", f"waiting for the ServiceInstance {name!r} to be provisioned"), None
    found = find_offering(class_external_name=str(instance["spec"].get("clusterServiceClassExternalName")),
                          plan_external_name=str((ist.get("externalProperties") or {})
                                                 .get("clusterServicePlanExternalName")),
                          class_name=str((ist.get("clusterServiceClassRef") or {}).get("name") or ""),
                          classes=facts.get("classes") or [], plans=facts.get("plans") or [],
                          brokers=facts.get("brokers") or [], new=False)
    if not isinstance(found, Offering):
        return found, None
    if not found.bindable:
        message = (f"the plan {found.plan['spec']['externalName']!r} of "
                   f"{found.klass['spec']['externalName']!r} is not bindable")
        decision = Decision(status={"reconciledGeneration": meta.get("generation")})
        return decision.ready(False, "ErrorNonbindableServiceClass", message).failed(
            True, "ErrorNonbindableServiceClass", message), found.broker
    instance_id = str(instance["metadata"]["uid"])
    body: dict[str, Any] = {"service_id": found.service_id, "plan_id": found.plan_id,
                            "context": context(str(meta.get("namespace") or ""), facts),
                            "bind_resource": {}}
    if credential["spec"].get("parameters") or credential["spec"].get("parametersFrom"):
        body["parameters"] = dict(credential["spec"].get("parameters") or {})
    request = _request("PUT", _path(instance_id, credential), BIND, {"accepts_incomplete": True}, body,
                       credential=credential, write_secret=True)
    request["ids"] = {"instanceID": instance_id, "serviceID": found.service_id, "planID": found.plan_id,
                      "brokerName": found.broker["metadata"]["name"],
                      "bindingsRetrievable": bool(found.klass["spec"].get("bindingsRetrievable"))}
    if found.maximum_polling:
        request["ids"]["maximumPollingDuration"] = found.maximum_polling
    return Decision(request=request), found.broker


def outcome(credential: Mapping[str, Any], decided: Mapping[str, Any], result: Mapping[str, Any],
            now: Any = None) -> dict[str, Any]:
    st = dict(credential.get("status") or {})
    clock = a.clock(now)
    request = decided.get("request") or {}
    answer = a.Answer.of(result)
    operation = request.get("operation")
    if operation == UNBIND or (operation == "Poll" and st.get("currentOperation") == UNBIND):
        decision = removal_outcome(REMOVAL, st, answer, clock, orphan=bool(st.get("orphanMitigationInProgress")),
                                   since_poll=operation == "Poll")
        if decision.done:
            decision.delete_secret = secret_name(credential)
    elif operation == "Poll":
        decision = _polled(credential, st, answer, clock)
    else:
        decision = _bound(credential, st, request, answer, clock)
    if answer.kind == a.NOT_SENT:
        decision.dry_run(request)
    return decision.as_dict(st, decided.get("broker"), deleting=bool(decided.get("deleting")))


def _ready(credential: Mapping[str, Any], st: Mapping[str, Any], ids: Mapping[str, Any],
           checksum: str) -> Decision:
    decision = Decision(status={
        "asyncOpInProgress": False, "currentOperation": None, "lastOperation": None, "operationStartTime": None,
        "unbindStatus": "Required", "binding": {"name": secret_name(credential)},
        "externalProperties": {**ids, **({"parameterChecksum": checksum} if checksum else {})},
        "reconciledGeneration": credential["metadata"].get("generation")})
    decision.ready(True, "InjectedBindResult", f"The credentials are in the Secret {secret_name(credential)!r}")
    if current_condition(st, FAILED):
        decision.failed(False, "NoFailure", "The last operation succeeded")
    return decision


def _bound(credential: Mapping[str, Any], st: Mapping[str, Any], request: Mapping[str, Any], answer: a.Answer,
           now: Any) -> Decision:
    fetching = request.get("operation") == FETCH
    ids = request.get("ids") or _ids(st)
    since = st.get("operationStartTime") or format_time(now)
    kind = answer.kind
    if kind == a.NOT_SENT:
        return Decision().ready(False, "Binding", "would ask the broker to bind")
    if kind == a.DONE:
        return _ready(credential, st, ids, answer.parameters_checksum
                      or str((st.get("externalProperties") or {}).get("parameterChecksum") or ""))
    if kind == a.ACCEPTED and not fetching:
        decision = Decision(status={"asyncOpInProgress": True, "currentOperation": BIND,
                                    "lastOperation": answer.operation, "operationStartTime": format_time(now),
                                    "unbindStatus": "Required", "externalProperties": dict(ids)},
                            requeue_after=a.poll_after(answer, None, now))
        return decision.ready(False, "Binding", "The broker is working on the bind asynchronously")
    if fetching:
        decision = Decision(status={"operationStartTime": since}, requeue_after=a.retry_after(since, now))
        return decision.ready(False, "ErrorFetchingBinding",
                              f"Could not fetch the binding's credentials, will retry: {answer.description}")
    if kind in (a.REFUSED, a.GONE, a.MAINTENANCE_CONFLICT):
        message = f"The bind call failed: {answer.description}"
        decision = Decision(status={"reconciledGeneration": credential["metadata"].get("generation"),
                                    "operationStartTime": None})
        return decision.ready(False, "BindCallFailed", message).failed(True, "BindCallFailed", message)
    if kind == a.UNKNOWN_OUTCOME:
        message = f"The bind call failed: {answer.description}; deleting whatever the broker made"
        decision = Decision(status={"orphanMitigationInProgress": True, "unbindStatus": "Required",
                                    "operationStartTime": since, "externalProperties": dict(ids)}, requeue_after=1)
        return decision.ready(False, "ErrorCallingBind", message).orphan(True, "StartingOrphanMitigation", message)
    if kind == a.LOCAL_ERROR:
        return Decision().ready(False, "ErrorWithParameters", answer.description)
    decision = Decision(status={"operationStartTime": since}, requeue_after=a.retry_after(since, now))
    return decision.ready(False, "ErrorCallingBind", f"Could not bind, will retry: {answer.description}")


def _polled(credential: Mapping[str, Any], st: Mapping[str, Any], answer: a.Answer, now: Any) -> Decision:
    since = st.get("operationStartTime")
    kind, state = answer.kind, answer.state
    if kind == a.DONE and state == "succeeded":
        decision = Decision(status={"asyncOpInProgress": False, "currentOperation": FETCH, "lastOperation": None},
                            requeue_after=1)
        return decision.ready(False, "Binding", "The broker made the binding: fetching its credentials")
    limit = (st.get("externalProperties") or {}).get("maximumPollingDuration")
    timed_out = isinstance(limit, int) and a.elapsed(since, now) > limit
    if (kind == a.DONE and state == "failed") or kind in (a.REFUSED, a.GONE) or timed_out:
        message = (f"The bind failed: {answer.description}" if not timed_out else
                   f"The broker did not finish the bind within the plan's maximum_polling_duration ({limit}s)")
        decision = Decision(status={"asyncOpInProgress": False, "currentOperation": None, "lastOperation": None,
                                    "orphanMitigationInProgress": True, "operationStartTime": format_time(now),
                                    "reconciledGeneration": credential["metadata"].get("generation")},
                            requeue_after=1)
        decision.orphan(True, "StartingOrphanMitigation", message + "; deleting whatever the broker made")
        return decision.ready(False, "BindCallFailed", message).failed(True, "BindCallFailed", message)
    if kind == a.DONE:
        return Decision(requeue_after=a.poll_after(answer, since, now)).ready(
            False, "Binding", "The broker is working on the bind asynchronously")
    return Decision(requeue_after=a.retry_after(since, now)).ready(
        False, "Binding", f"Could not ask the broker how the bind goes, will retry: {answer.description}")
