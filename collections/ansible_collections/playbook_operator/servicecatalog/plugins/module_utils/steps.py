"""What the ServiceInstance and ServiceCredential machines share: the shape of one reconcile's
decision, its conditions and Events, and finding the class, plan and broker a name refers to.

A reconcile is at most one request to the broker. The machine's first half (`*_step`) says which
request, or, when there is none to make, the whole decision; its second half (`*_outcome`) reads
the broker's answer into the same shape: the status fields to merge, the conditions, the Events,
when to look again, and whether a deletion is complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.times import format_time
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import answers as a

READY, FAILED, ORPHAN = "Ready", "Failed", "OrphanMitigation"
API_VERSION = "servicecatalog.playbook-operator.io/v1alpha1"

# Reasons told as Warning Events; every other reason change is a Normal one.
WARNING_REASONS = frozenset({
    "ProvisionCallFailed", "ErrorCallingProvision", "UpdateInstanceCallFailed", "ErrorCallingUpdateInstance",
    "UpdateInstanceNotAllowed", "DeprovisionCallFailed", "ErrorCallingDeprovision", "ErrorPollingLastOperation",
    "ReferencesNonexistentServiceClass", "ReferencesNonexistentServicePlan", "ReferencesNonexistentBroker",
    "ServiceClassRemovedFromBrokerCatalog", "ServicePlanRemovedFromBrokerCatalog", "ErrorWithParameters",
    "MaintenanceInfoConflict", "AsyncOperationTimedOut", "StartingOrphanMitigation", "OrphanMitigationFailed",
    "BindCallFailed", "ErrorCallingBind", "UnbindCallFailed", "ErrorCallingUnbind", "ErrorFetchingBinding",
    "ReferencesNonexistentInstance", "ErrorNonbindableServiceClass", "CredentialSecretMissing",
    "ErrorSecretOwnedByAnother",
})


def condition(ctype: str, ok: bool, reason: str, message: str) -> dict[str, str]:
    return {"type": ctype, "status": "True" if ok else "False", "reason": reason, "message": message}


@dataclass
class Decision:
    """One reconcile: a request to send, or the whole answer (status, conditions, Events, requeue)."""

    status: dict[str, Any] = field(default_factory=dict)
    conditions: list[dict[str, str]] = field(default_factory=list)
    requeue_after: int = 0  # seconds; 0: only when something changes
    done: bool = False  # a deletion is complete: the finalizer may go
    request: dict[str, Any] | None = None
    relist_broker: str = ""  # a broker whose catalog is stale: ask it to list again
    delete_secret: str = ""  # the credential Secret to remove now (its owner reference would, later)

    def dry_run(self, request: Mapping[str, Any]) -> Decision:
        """Name the request a dry run did not send, so that `--check` shows it."""
        for c in self.conditions:
            c["message"] += f" ({request.get('method')} {request.get('path')})"
        return self

    def ready(self, ok: bool, reason: str, message: str) -> Decision:
        self.conditions.append(condition(READY, ok, reason, message))
        return self

    def failed(self, ok: bool, reason: str, message: str) -> Decision:
        self.conditions.append(condition(FAILED, ok, reason, message))
        return self

    def orphan(self, ok: bool, reason: str, message: str) -> Decision:
        self.conditions.append(condition(ORPHAN, ok, reason, message))
        return self

    def as_dict(self, previous_status: Mapping[str, Any] | None, broker: Mapping[str, Any] | None, *,
                deleting: bool = False) -> dict[str, Any]:
        if deleting and not self.done and self.request is None and self.requeue_after <= 0:
            # A deletion that is not complete must come back: the finalizer holds only while
            # the run asks for a requeue.
            self.requeue_after = 1
        return {
            "deleting": deleting,
            "status": self.status,
            "conditions": self.conditions,
            "events": events(previous_status, self.conditions),
            "requeue_after": f"{self.requeue_after}s" if self.requeue_after > 0 else "",
            "done": self.done,
            "request": self.request,
            "broker": dict(broker or {}),
            "relist_broker": self.relist_broker,
            "delete_secret": self.delete_secret,
        }


def events(previous_status: Mapping[str, Any] | None, conditions: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """An Event for each condition whose status or reason changed: a poll that finds the broker
    still busy says nothing new, a new failure is told once."""
    before = {c.get("type"): c for c in ((previous_status or {}).get("conditions") or []) if isinstance(c, Mapping)}
    told = []
    for c in conditions:
        old = before.get(c["type"])
        if old is not None and old.get("status") == c["status"] and old.get("reason") == c["reason"]:
            continue
        if c["type"] != READY and c["status"] == "False" and old is None:
            continue  # a first "no failure" is not news
        warning = c["reason"] in WARNING_REASONS or (c["type"] == FAILED and c["status"] == "True")
        told.append({"type": "Warning" if warning else "Normal", "reason": c["reason"], "message": c["message"]})
    return told


def current_condition(status: Mapping[str, Any] | None, ctype: str) -> Mapping[str, Any]:
    for c in (status or {}).get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == ctype:
            return c
    return {}


@dataclass(frozen=True)
class Offering:
    """The class and plan an instance names, and the broker that offers them."""

    klass: Mapping[str, Any]
    plan: Mapping[str, Any]
    broker: Mapping[str, Any]

    @property
    def service_id(self) -> str:
        return str(self.klass["spec"]["externalID"])

    @property
    def plan_id(self) -> str:
        return str(self.plan["spec"]["externalID"])

    @property
    def plan_updatable(self) -> bool:
        own = self.plan["spec"].get("planUpdatable")
        return bool(self.klass["spec"].get("planUpdatable")) if own is None else bool(own)

    @property
    def bindable(self) -> bool:
        own = self.plan["spec"].get("bindable")
        return bool(self.klass["spec"].get("bindable")) if own is None else bool(own)

    @property
    def maximum_polling(self) -> int | None:
        value = self.plan["spec"].get("maximumPollingDuration")
        return int(value) if isinstance(value, int) and value > 0 else None

    @property
    def maintenance_info(self) -> dict[str, Any] | None:
        info = self.plan["spec"].get("maintenanceInfo")
        return {k: v for k, v in info.items() if k == "version"} if isinstance(info, Mapping) and info else None


def _removed(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("status") or {}).get("removedFromBrokerCatalog"))


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def find_offering(*, class_external_name: str, plan_external_name: str, class_name: str,
                  classes: Sequence[Mapping[str, Any]], plans: Sequence[Mapping[str, Any]],
                  brokers: Sequence[Mapping[str, Any]], new: bool) -> Offering | Decision:
    """The offering an instance names, or why there is none (a Decision with a Ready condition).

    `class_name`, once an instance was provisioned, pins the class it was provisioned from; a
    `new` instance may only use classes and plans still in their broker's catalog."""
    if class_name:
        matching = [c for c in classes if _name(c) == class_name]
    else:
        matching = [c for c in classes if (c.get("spec") or {}).get("externalName") == class_external_name]
        if new:
            matching = [c for c in matching if not _removed(c)] or matching
    if not matching:
        return Decision().ready(False, "ReferencesNonexistentServiceClass",
                                f"no ClusterServiceClass has externalName {class_external_name!r} "
                                "(kubectl get clusterserviceclasses lists them)")
    if len(matching) > 1:
        brokers_named = sorted(str(c["spec"].get("clusterServiceBrokerName")) for c in matching)
        return Decision().ready(False, "ReferencesNonexistentServiceClass",
                                f"the class name {class_external_name!r} is offered by several brokers "
                                f"({', '.join(brokers_named)}): it must name one")
    klass = matching[0]
    if new and _removed(klass):
        return Decision().ready(False, "ServiceClassRemovedFromBrokerCatalog",
                                f"the class {class_external_name!r} was removed from its broker's catalog: "
                                "no new instance can use it")
    plan = [p for p in plans if (p.get("spec") or {}).get("clusterServiceClassRef", {}).get("name") == _name(klass)
            and p["spec"].get("externalName") == plan_external_name]
    if not plan:
        offered = sorted(str(p["spec"].get("externalName")) for p in plans
                         if (p.get("spec") or {}).get("clusterServiceClassRef", {}).get("name") == _name(klass)
                         and not _removed(p))
        return Decision().ready(False, "ReferencesNonexistentServicePlan",
                                f"the class {class_external_name!r} has no plan {plan_external_name!r}"
                                + (f" (its plans: {', '.join(offered)})" if offered else ""))
    if new and _removed(plan[0]):
        return Decision().ready(False, "ServicePlanRemovedFromBrokerCatalog",
                                f"the plan {plan_external_name!r} was removed from its broker's catalog: "
                                "no new instance can use it")
    broker_name = klass["spec"].get("clusterServiceBrokerName")
    broker = [b for b in brokers if _name(b) == broker_name]
    if not broker:
        return Decision().ready(False, "ReferencesNonexistentBroker",
                                f"the broker {broker_name!r} of class {class_external_name!r} does not exist")
    return Offering(klass, plan[0], broker[0])


def namespace_uid(facts: Mapping[str, Any], name: str) -> str:
    """The uid of a Namespace the role read (`facts["namespaces"]`), or "" when it could not."""
    for ns in facts.get("namespaces") or []:
        if isinstance(ns, Mapping) and (ns.get("metadata") or {}).get("name") == name:
            return str(ns["metadata"].get("uid") or "")
    return ""


def context(namespace: str, facts: Mapping[str, Any], **extra: str) -> dict[str, str]:
    """The OSB Kubernetes context profile of a request: the cluster is named by kube-system's uid."""
    out = {"platform": "kubernetes", "namespace": namespace}
    cluster = namespace_uid(facts, "kube-system")
    if cluster:
        out["clusterid"] = cluster
    out.update(extra)
    return out


@dataclass(frozen=True)
class Removal:
    """How a deprovision or an unbind is told: the same answers, other words and fields."""

    operation: str  # Deprovision, Unbind
    noun: str  # deprovision, unbind
    status_field: str  # deprovisionStatus, unbindStatus
    gone_reason: str
    progress_reason: str
    failed_reason: str
    gone_status: Mapping[str, Any]
    left_by: str  # what orphan mitigation cleans up after


def removal_outcome(words: Removal, st: Mapping[str, Any], answer: a.Answer, now: Any, *, orphan: bool,
                    since_poll: bool) -> Decision:
    """A DELETE's answer (`since_poll`: a last_operation answer about one): gone, still going, or
    refused; while refused the object stays, and the condition says why."""
    kind, state = answer.kind, answer.state
    since = st.get("operationStartTime") or format_time(now)
    if kind == a.GONE or (kind == a.DONE and (state == "succeeded" or not since_poll)):
        decision = Decision(status={words.status_field: "Succeeded", "asyncOpInProgress": False,
                                    "orphanMitigationInProgress": False, "currentOperation": None,
                                    "lastOperation": None, "operationStartTime": None, **words.gone_status})
        if orphan:
            # What failed in a way that may pass (a timeout, a 5xx) is tried again, later each
            # time: the start of the first attempt is kept for the backoff.
            decision.status["operationStartTime"] = since
            decision.requeue_after = a.retry_after(since, now)
            return decision.orphan(False, "OrphanMitigationSuccessful", f"The broker deleted what {words.left_by} left")
        decision.done = True
        return decision.ready(False, words.gone_reason, f"The {words.noun} is done")
    if kind == a.NOT_SENT:
        return Decision().ready(False, words.progress_reason, f"would ask the broker to {words.noun}")
    if kind == a.ACCEPTED or (kind == a.DONE and state == "in progress"):
        decision = Decision(status={"asyncOpInProgress": True, "currentOperation": words.operation},
                            requeue_after=a.poll_after(answer, since if since_poll else None, now))
        if not since_poll:
            decision.status.update({"lastOperation": answer.operation, "operationStartTime": format_time(now)})
        if orphan:
            return decision.orphan(True, "OrphanMitigationInProgress",
                                   f"The broker is deleting what {words.left_by} left")
        return decision.ready(False, words.progress_reason, f"The broker is working on the {words.noun} asynchronously")
    failed = kind == a.DONE and state == "failed"
    message = f"The {words.noun} {'failed' if failed else 'call failed'}, will retry: {answer.description}"
    decision = Decision(status={"asyncOpInProgress": False, "currentOperation": None, "lastOperation": None,
                                "operationStartTime": since,
                                words.status_field: "Failed" if kind in (a.REFUSED, a.DONE) else "Required"},
                        requeue_after=a.retry_after(since, now))
    if orphan:
        return decision.orphan(True, "OrphanMitigationFailed", message)
    return decision.ready(False, words.failed_reason, message)
