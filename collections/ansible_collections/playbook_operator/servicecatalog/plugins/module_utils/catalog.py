"""A ClusterServiceBroker's catalog (Open Service Broker API v2.17) as ClusterServiceClasses and
ClusterServicePlans, with service-catalog's field names and its broker controller's rules:

* a catalog is checked before anything is written from it: a service needs an ``id``, a ``name``
  and plans, a plan an ``id`` and a ``name``; ids are unique in the catalog, service names are
  unique, plan names unique within their service; the fields that are mapped have their JSON type;
* each service becomes a class and each plan a plan, named by their OSB id when it can be a
  Kubernetes name and by a hash of it otherwise, labelled with their broker and owned by it;
* classes and plans the broker stops offering are marked ``removedFromBrokerCatalog``, never
  deleted (instances may still use them), and unmarked when they are offered again;
* only what differs from what exists is written, so an unchanged catalog writes nothing;
* a broker being deleted waits for the ServiceInstances of its classes.

Pure: plain dicts and lists in, new ones out. Nothing here reads the cluster or the clock.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.playbook_operator.kube.plugins.module_utils.conditions import find_condition
from ansible_collections.playbook_operator.kube.plugins.module_utils.durations import DurationError, parse_duration
from ansible_collections.playbook_operator.kube.plugins.module_utils.selectors import label_value_problem
from ansible_collections.playbook_operator.kube.plugins.module_utils.times import format_time, parse_time

GROUP = "servicecatalog.playbook-operator.io"
API_VERSION = f"{GROUP}/v1alpha1"
BROKER_KIND = "ClusterServiceBroker"
CLASS_KIND = "ClusterServiceClass"
PLAN_KIND = "ClusterServicePlan"
BROKER_LABEL = f"{GROUP}/broker"
CLASS_LABEL = f"{GROUP}/class"

READY = "Ready"
FETCHED_CATALOG = "FetchedCatalog"
OFFERED_BY_BROKER = "OfferedByBroker"  # a class or plan in its broker's catalog
REMOVED_FROM_CATALOG = "RemovedFromBrokerCatalog"  # one it no longer offers
ERROR_FETCHING_CATALOG = "ErrorFetchingCatalog"
ERROR_INVALID_CATALOG = "ErrorInvalidCatalog"
ERROR_SYNCING_CATALOG = "ErrorSyncingCatalog"
DELETE_BLOCKED = "DeleteBlockedByExistingInstances"

DEFAULT_RELIST = "15m"
DEFAULT_RETRY = "30s"
# Conditions and Events are read by people; the apiserver would take far more.
MESSAGE_LIMIT = 1000
# How many problems of an invalid catalog, and how many waiting instances, a message names.
NAMED_PROBLEMS = 3
NAMED_INSTANCES = 5

# Class names are also label values (a plan's class label), so they must fit in 63 characters.
CLASS_NAME_MAX = 63
PLAN_NAME_MAX = 253
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")

# The spec fields this module writes. A field among them that the desired object lacks but the
# existing one has (a plan that stopped being bindable) is a change; other fields are the
# apiserver's (defaults) and ignored.
CLASS_FIELDS = frozenset({
    "clusterServiceBrokerName", "externalName", "externalID", "description", "bindable", "planUpdatable",
    "bindingsRetrievable", "instancesRetrievable", "tags", "requires", "externalMetadata",
})
PLAN_FIELDS = frozenset({
    "clusterServiceBrokerName", "externalName", "externalID", "description", "clusterServiceClassRef", "free",
    "bindable", "planUpdatable", "maximumPollingDuration", "maintenanceInfo", "externalMetadata",
    "instanceCreateParameterSchema", "instanceUpdateParameterSchema", "serviceBindingCreateParameterSchema",
})


class InvalidCatalog(ValueError):
    """A catalog that is not valid OSB; ``problems`` says where and why, one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        named = "; ".join(self.problems[:NAMED_PROBLEMS])
        more = len(self.problems) - NAMED_PROBLEMS
        super().__init__(named + (f"; and {more} more" if more > 0 else ""))


# --- names ------------------------------------------------------------------------------------


def _hashed(text: str, prefix: str) -> str:
    return prefix + hashlib.sha224(text.encode("utf-8")).hexdigest()[:40]


def _object_name(external_id: str, prefix: str, limit: int) -> str:
    if len(external_id) <= limit and _DNS_SUBDOMAIN.fullmatch(external_id):
        return external_id
    return _hashed(external_id, prefix)


def class_name(service_id: str) -> str:
    """The ClusterServiceClass name of an OSB service id: the id itself when it is a lowercase
    DNS subdomain of at most 63 characters, else ``c-`` and 40 hex digits of its SHA-224."""
    return _object_name(service_id, "c-", CLASS_NAME_MAX)


def plan_name(plan_id: str) -> str:
    """The ClusterServicePlan name of an OSB plan id: the id itself when it is a lowercase DNS
    subdomain, else ``p-`` and 40 hex digits of its SHA-224."""
    return _object_name(plan_id, "p-", PLAN_NAME_MAX)


def broker_label_value(broker_name: str) -> str:
    """The value of the broker label: the broker's name, or a hash of it when the name (up to 253
    characters) is not a label value (up to 63)."""
    if broker_name and label_value_problem(broker_name) is None:
        return broker_name
    return _hashed(broker_name, "b-")


def broker_selector(broker: Mapping[str, Any]) -> str:
    """The label selector of the classes and plans of ``broker``."""
    return f"{BROKER_LABEL}={broker_label_value(_name(broker))}"


def _name(obj: Any) -> str:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


# --- checking a catalog -----------------------------------------------------------------------

_OBJECT = "an object"
_STRING = "a string"
_BOOLEAN = "a boolean"
_STRINGS = "a list of strings"


def _is(value: Any, kind: str) -> bool:
    if kind == _OBJECT:
        return isinstance(value, Mapping)
    if kind == _STRING:
        return isinstance(value, str)
    if kind == _BOOLEAN:
        return isinstance(value, bool)
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_fields(obj: Mapping[str, Any], where: str, fields: Mapping[str, str], problems: list[str]) -> None:
    # An optional field given as null is taken as absent, as brokers written in Go often send it.
    for field, kind in fields.items():
        value = obj.get(field)
        if value is not None and not _is(value, kind):
            problems.append(f"{where}.{field} must be {kind}")


def _check_id_and_name(obj: Mapping[str, Any], where: str, problems: list[str]) -> None:
    for field in ("id", "name"):
        value = obj.get(field)
        if value is None or value == "":
            problems.append(f"{where}.{field} is missing")
        elif not isinstance(value, str):
            problems.append(f"{where}.{field} must be a string")


_SERVICE_FIELDS = {
    "description": _STRING, "bindable": _BOOLEAN, "plan_updateable": _BOOLEAN, "bindings_retrievable": _BOOLEAN,
    "instances_retrievable": _BOOLEAN, "tags": _STRINGS, "requires": _STRINGS, "metadata": _OBJECT,
}
_PLAN_FIELDS = {
    "description": _STRING, "free": _BOOLEAN, "bindable": _BOOLEAN, "plan_updateable": _BOOLEAN,
    "metadata": _OBJECT, "schemas": _OBJECT, "maintenance_info": _OBJECT,
}
# Where a plan's parameter schemas are, and the plan spec field each becomes.
_SCHEMAS = (
    (("service_instance", "create", "parameters"), "instanceCreateParameterSchema"),
    (("service_instance", "update", "parameters"), "instanceUpdateParameterSchema"),
    (("service_binding", "create", "parameters"), "serviceBindingCreateParameterSchema"),
)


def _check_plan(plan: Any, where: str, problems: list[str]) -> None:
    if not isinstance(plan, Mapping):
        problems.append(f"{where} must be an object")
        return
    _check_id_and_name(plan, where, problems)
    _check_fields(plan, where, _PLAN_FIELDS, problems)
    polling = plan.get("maximum_polling_duration")
    if polling is not None and (isinstance(polling, bool) or not isinstance(polling, int) or polling < 0):
        problems.append(f"{where}.maximum_polling_duration must be a whole number of seconds")
    maintenance = plan.get("maintenance_info")
    if isinstance(maintenance, Mapping):
        _check_fields(maintenance, f"{where}.maintenance_info", {"version": _STRING, "description": _STRING},
                      problems)
    schemas = plan.get("schemas")
    if isinstance(schemas, Mapping):
        for path, _ in _SCHEMAS:
            value: Any = schemas
            for depth, key in enumerate(path):
                value = value.get(key)
                if value is None:
                    break
                if not isinstance(value, Mapping):
                    problems.append(f"{where}.schemas.{'.'.join(path[:depth + 1])} must be an object")
                    break


def _duplicates(values: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    twice: list[str] = []
    for value in values:
        if value in seen and value not in twice:
            twice.append(value)
        seen.add(value)
    return twice


def check_catalog(body: Any) -> list[Mapping[str, Any]]:
    """The services of a catalog response body. Raises InvalidCatalog."""
    if not isinstance(body, Mapping):
        raise InvalidCatalog(["the catalog is not a JSON object"])
    services = body.get("services")
    if not isinstance(services, list):
        raise InvalidCatalog(["the catalog has no list of services"])
    problems: list[str] = []
    for i, service in enumerate(services):
        where = f"services[{i}]"
        if not isinstance(service, Mapping):
            problems.append(f"{where} must be an object")
            continue
        _check_id_and_name(service, where, problems)
        _check_fields(service, where, _SERVICE_FIELDS, problems)
        plans = service.get("plans")
        if not isinstance(plans, list) or not plans:
            problems.append(f"{where}.plans must list at least one plan")
            continue
        for j, plan in enumerate(plans):
            _check_plan(plan, f"{where}.plans[{j}]", problems)
    if problems:
        raise InvalidCatalog(problems)

    plans_of = [(s, p) for s in services for p in s["plans"]]
    for value in _duplicates([s["id"] for s in services]):
        problems.append(f"service id {value!r} is used twice")
    for value in _duplicates([s["name"] for s in services]):
        problems.append(f"service name {value!r} is used twice")
    for value in _duplicates([p["id"] for _, p in plans_of]):
        problems.append(f"plan id {value!r} is used twice")
    for service in services:
        for value in _duplicates([p["name"] for p in service["plans"]]):
            problems.append(f"plan name {value!r} is used twice in service {service['name']!r}")
    # Distinct ids whose Kubernetes names meet (an id that looks like another's hash).
    for value in _duplicates([class_name(s["id"]) for s in services]):
        problems.append(f"two services would both be ClusterServiceClass {value!r}")
    for value in _duplicates([plan_name(p["id"]) for _, p in plans_of]):
        problems.append(f"two plans would both be ClusterServicePlan {value!r}")
    if problems:
        raise InvalidCatalog(problems)
    return list(services)


# --- the manifests ----------------------------------------------------------------------------


def owner_reference(broker: Mapping[str, Any]) -> dict[str, Any]:
    """The broker as the controller of its classes and plans. Deleting the broker does not wait
    for them: they go by garbage collection once it is gone."""
    meta = broker.get("metadata") or {}
    return {"apiVersion": str(broker.get("apiVersion") or API_VERSION), "kind": str(broker.get("kind") or BROKER_KIND),
            "name": str(meta.get("name") or ""), "uid": str(meta.get("uid") or ""),
            "controller": True, "blockOwnerDeletion": False}


def _present(source: Mapping[str, Any], mapping: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """The fields of ``source`` that are given (not null), under their spec names."""
    return {field: copy.deepcopy(source[key]) for key, field in mapping if source.get(key) is not None}


def _manifest(kind: str, name: str, broker: Mapping[str, Any], labels: Mapping[str, str],
              spec: dict[str, Any]) -> dict[str, Any]:
    owner = owner_reference(broker)
    return {"apiVersion": str(broker.get("apiVersion") or API_VERSION), "kind": kind,
            "metadata": {"name": name, "labels": dict(labels), "ownerReferences": [owner]}, "spec": spec}


def class_manifest(service: Mapping[str, Any], broker: Mapping[str, Any]) -> dict[str, Any]:
    """The ClusterServiceClass of one (checked) OSB service."""
    spec: dict[str, Any] = {
        "clusterServiceBrokerName": _name(broker),
        "externalName": service["name"],
        "externalID": service["id"],
        "description": service.get("description") or "",
        # Required booleans in OSB; a broker that leaves one out means false.
        "bindable": bool(service.get("bindable")),
        "planUpdatable": bool(service.get("plan_updateable")),
        "bindingsRetrievable": bool(service.get("bindings_retrievable")),
        "instancesRetrievable": bool(service.get("instances_retrievable")),
    }
    spec.update(_present(service, (("tags", "tags"), ("requires", "requires"), ("metadata", "externalMetadata"))))
    labels = {BROKER_LABEL: broker_label_value(_name(broker))}
    return _manifest(CLASS_KIND, class_name(service["id"]), broker, labels, spec)


def plan_manifest(plan: Mapping[str, Any], service: Mapping[str, Any], broker: Mapping[str, Any]) -> dict[str, Any]:
    """The ClusterServicePlan of one (checked) OSB plan of ``service``."""
    owner_class = class_name(service["id"])
    spec: dict[str, Any] = {
        "clusterServiceBrokerName": _name(broker),
        "externalName": plan["name"],
        "externalID": plan["id"],
        "description": plan.get("description") or "",
        "clusterServiceClassRef": {"name": owner_class},
        # OSB: a plan is free unless it says otherwise.
        "free": plan.get("free") is not False,
    }
    # Only a plan that says so overrides its class's bindable and plan_updateable.
    spec.update(_present(plan, (("bindable", "bindable"), ("plan_updateable", "planUpdatable"),
                                ("maximum_polling_duration", "maximumPollingDuration"))))
    maintenance = plan.get("maintenance_info")
    if isinstance(maintenance, Mapping):
        spec["maintenanceInfo"] = _present(maintenance, (("version", "version"), ("description", "description")))
    spec.update(_present(plan, (("metadata", "externalMetadata"),)))
    schemas = plan.get("schemas")
    for path, field in _SCHEMAS:
        value: Any = schemas
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if value is not None:
            spec[field] = copy.deepcopy(value)
    labels = {BROKER_LABEL: broker_label_value(_name(broker)), CLASS_LABEL: owner_class}
    return _manifest(PLAN_KIND, plan_name(plan["id"]), broker, labels, spec)


# --- comparing with what exists ---------------------------------------------------------------


def differs(desired: Mapping[str, Any], existing: Mapping[str, Any] | None, fields: frozenset[str]) -> bool:
    """Whether applying ``desired`` would change ``existing``: its labels, its owner references
    (ours present as given, no other controller) and the spec ``fields``. Fields the apiserver
    keeps (resourceVersion, managedFields, status, defaults of fields not written) are ignored."""
    if not isinstance(existing, Mapping):
        return True
    want_meta = desired["metadata"]
    have_meta = existing.get("metadata") or {}
    have_labels = have_meta.get("labels") or {}
    if any(have_labels.get(key) != value for key, value in want_meta["labels"].items()):
        return True
    owner = want_meta["ownerReferences"][0]
    refs = [r for r in have_meta.get("ownerReferences") or [] if isinstance(r, Mapping)]
    if not any(dict(r) == owner for r in refs):
        return True
    if any(r.get("controller") and r.get("uid") != owner["uid"] for r in refs):
        return True
    want = desired["spec"]
    have = existing.get("spec") or {}
    return any(want.get(field) != have.get(field) for field in fields if field in want or field in have)


def offering_mark(kind: str, name: str, broker: Mapping[str, Any], *, offered: bool) -> dict[str, Any]:
    """The status that says whether a class or plan is in its broker's catalog: the flag and a
    Ready condition (OfferedByBroker, or RemovedFromBrokerCatalog)."""
    if offered:
        condition = _condition("True", OFFERED_BY_BROKER, f"In the catalog of broker {_name(broker)}")
    else:
        condition = _condition("False", REMOVED_FROM_CATALOG,
                               f"Broker {_name(broker)} no longer offers it: no new ServiceInstance can use it")
    return {"kind": kind, "name": name,
            "status": {"removedFromBrokerCatalog": not offered, "conditions": [condition]}}


def _marked(obj: Mapping[str, Any] | None, *, offered: bool) -> bool:
    """Whether an existing object's status already says what offering_mark() would."""
    if obj is None or _removed(obj) == offered:
        return False
    ready = find_condition((obj.get("status") or {}).get("conditions"), READY) or {}
    return ready.get("reason") == (OFFERED_BY_BROKER if offered else REMOVED_FROM_CATALOG)


def _removed(obj: Mapping[str, Any]) -> bool:
    status = obj.get("status")
    return isinstance(status, Mapping) and status.get("removedFromBrokerCatalog") is True


def _ours(objects: Any, label: str) -> dict[str, Mapping[str, Any]]:
    """The objects among ``objects`` that carry the broker's label, by name."""
    found: dict[str, Mapping[str, Any]] = {}
    for obj in objects or []:
        labels = (obj.get("metadata") or {}).get("labels") or {} if isinstance(obj, Mapping) else {}
        if labels.get(BROKER_LABEL) == label and _name(obj):
            found[_name(obj)] = obj
    return found


# --- conditions, Events, requeues -------------------------------------------------------------


def _line(text: Any) -> str:
    """One line of at most MESSAGE_LIMIT characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[:MESSAGE_LIMIT - 3] + "..."


def _condition(status: str, reason: str, message: str) -> dict[str, str]:
    return {"type": READY, "status": status, "reason": reason, "message": _line(message)}


def _is_news(broker: Mapping[str, Any], condition: Mapping[str, str]) -> bool:
    """Whether the broker's Ready condition says something else now."""
    current = find_condition((broker.get("status") or {}).get("conditions"), READY)
    return current is None or any(current.get(k) != condition[k] for k in ("status", "reason", "message"))


def _event(kind: str, condition: Mapping[str, str]) -> dict[str, str]:
    return {"type": kind, "reason": condition["reason"], "message": condition["message"]}


def _observed(broker: Mapping[str, Any]) -> dict[str, Any]:
    generation = (broker.get("metadata") or {}).get("generation")
    return {"observedGeneration": generation} if isinstance(generation, int) else {}


def _seconds(value: Any) -> float | None:
    """Seconds in a number or a Go duration; None when there are none."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return parse_duration(text)
    except DurationError:
        return None


def go_duration(seconds: float) -> str:
    """Whole seconds, at least one, as a Go duration."""
    return f"{max(1, math.ceil(seconds))}s"


def failure(broker: Mapping[str, Any], reason: str, message: str, retry_after: Any = DEFAULT_RETRY,
            broker_retry_after: Any = None) -> dict[str, Any]:
    """What the role reports when the catalog cannot be synced: ``condition`` (Ready False),
    ``status`` (observedGeneration: the failure is about this spec), ``events`` (a Warning every
    time: each failed attempt counts), and ``requeue_after``: the retry interval, or the broker's
    Retry-After when that is later. Classes and plans stay as they are."""
    wait = max(_seconds(retry_after) or _seconds(DEFAULT_RETRY) or 0.0, _seconds(broker_retry_after) or 0.0)
    condition = _condition("False", reason, message)
    return {"condition": condition, "status": _observed(broker), "events": [_event("Warning", condition)],
            "requeue_after": go_duration(wait)}


def fetch_failure(response: Mapping[str, Any], broker: Mapping[str, Any],
                  retry_after: Any = DEFAULT_RETRY) -> dict[str, Any]:
    """The failure() of a catalog request that got no answer or an answer other than 200, or {}.

    ``response`` is what playbook_operator.servicecatalog.osb_request returned: ``status`` (0
    without an answer), ``body`` (an OSB error body has ``error`` and ``description``),
    ``body_text``, ``error``, ``error_reason`` and ``retry_after``."""
    if not isinstance(response, Mapping):
        return failure(broker, ERROR_FETCHING_CATALOG, "Error fetching the catalog: no response", retry_after)
    status = response.get("status")
    if status == 200:
        return {}
    if not status:
        why = str(response.get("error") or "no answer from the broker")
        reason = str(response.get("error_reason") or "")
        message = f"Error fetching the catalog ({reason}): {why}" if reason else f"Error fetching the catalog: {why}"
    else:
        body = response.get("body")
        said = ""
        if isinstance(body, Mapping):
            said = str(body.get("description") or body.get("error") or "")
        if not said:
            said = str(response.get("body_text") or "").strip()
        message = f"Error fetching the catalog: the broker answered {status}" + (f": {said}" if said else "")
    return failure(broker, ERROR_FETCHING_CATALOG, message, retry_after, response.get("retry_after"))


def sync_failure(failed: Any, broker: Mapping[str, Any], retry_after: Any = DEFAULT_RETRY) -> dict[str, Any]:
    """The failure() of a write the apiserver refused (ErrorSyncingCatalog), from the failed
    task's result: kubernetes.core.k8s puts the apiserver's Status body, as JSON, after
    ``Failed to apply object:``; its ``message`` is the sentence worth reporting."""
    text = str(failed.get("msg") or "") if isinstance(failed, Mapping) else ""
    said = text or "the apiserver refused a write"
    start = text.find("{")
    if start >= 0:
        try:
            status, _ = json.JSONDecoder().raw_decode(text, start)
        except ValueError:
            status = None
        if isinstance(status, Mapping) and status.get("message"):
            said = str(status["message"])
    return failure(broker, ERROR_SYNCING_CATALOG, f"Error syncing the catalog: {said}", retry_after)


def relist_after(broker: Mapping[str, Any], default: Any = DEFAULT_RELIST) -> tuple[float, str]:
    """Seconds in ``spec.relistDuration`` (else ``default``), and a note when it could not be
    used (not a Go duration, or not positive), in which case the default is."""
    given = (broker.get("spec") or {}).get("relistDuration")
    fallback = _seconds(default) or _seconds(DEFAULT_RELIST) or 900.0
    if given is None or given == "":
        return fallback, ""
    seconds = _seconds(given) if isinstance(given, str) else None
    if seconds is None or seconds <= 0:
        return fallback, f"relistDuration {given!r} is not a positive Go duration; relisting every {default}"
    return seconds, ""


def retrieval_time(broker: Mapping[str, Any], status: Mapping[str, Any], condition: Mapping[str, str],
                   changed: bool, now: Any, relist_seconds: float) -> str | None:
    """The ``lastCatalogRetrievalTime`` to write, or None to leave the one the broker has.

    Written whenever the status or the catalog changes anyway, and otherwise once the one
    written is half a relist period old: it then shows that the broker is still listed (at most
    one relist period old, one status write a period) without every other run (a class written,
    a restart, an Ansible idempotence check) writing a new time and nothing else."""
    at = parse_time(now)
    if at is None:
        return None
    current = broker.get("status") or {}
    last = parse_time(current.get("lastCatalogRetrievalTime"))
    stale = last is None or last > at or (at - last).total_seconds() >= relist_seconds / 2
    if changed or stale or _is_news(broker, condition) or any(current.get(k) != v for k, v in status.items()):
        return format_time(at)
    return None


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}es" if word.endswith("s") else f"{n} {word}s"


def sync(body: Any, broker: Mapping[str, Any], existing_classes: Any = (), existing_plans: Any = (), *,
         relist_duration: Any = DEFAULT_RELIST, retry_after: Any = DEFAULT_RETRY, now: Any = None) -> dict[str, Any]:
    """What one relist of ``broker`` does with the catalog ``body`` it fetched.

    ``existing_classes`` and ``existing_plans`` are the classes and plans the cluster holds
    (those of other brokers are ignored). The result:

    * ``failure``: {} or, for a catalog that is not valid OSB, failure() with ErrorInvalidCatalog
      (then nothing else is to be done: the rest is empty);
    * ``classes``, ``plans``: every manifest of the catalog; ``apply``: those that would change
      something (classes first), for a server-side apply;
    * ``removed``, ``restored``: ``{classes, plans}``, the names to mark
      ``removedFromBrokerCatalog`` true (no longer offered) and false (offered again); ``marks``:
      the same as ``{kind, name, status}`` for k8s_status;
    * ``counts``: ``{classes, plans}`` in the catalog; ``changed``: whether anything is written
      besides the broker's status;
    * ``condition`` (Ready True, FetchedCatalog), ``status`` (``catalog`` counts,
      ``observedGeneration``, and ``lastCatalogRetrievalTime``, ``now``, when retrieval_time()
      says so), ``events`` (a Normal one when the condition says something new or the catalog
      changed), ``requeue_after`` (the relist period);
    * ``summary``: a line per write, for dry runs.
    """
    try:
        services = check_catalog(body)
    except InvalidCatalog as exc:
        return {"failure": failure(broker, ERROR_INVALID_CATALOG, f"Invalid catalog: {exc}", retry_after),
                "classes": [], "plans": [], "apply": [], "removed": {"classes": [], "plans": []},
                "restored": {"classes": [], "plans": []}, "marks": [], "counts": {"classes": 0, "plans": 0},
                "changed": False, "condition": {}, "status": {}, "events": [], "requeue_after": "", "summary": []}

    classes = [class_manifest(s, broker) for s in services]
    plans = [plan_manifest(p, s, broker) for s in services for p in s["plans"]]
    label = broker_label_value(_name(broker))
    had_classes = _ours(existing_classes, label)
    had_plans = _ours(existing_plans, label)

    apply = [m for m in classes if differs(m, had_classes.get(_name(m)), CLASS_FIELDS)]
    apply += [m for m in plans if differs(m, had_plans.get(_name(m)), PLAN_FIELDS)]

    removed: dict[str, list[str]] = {}
    restored: dict[str, list[str]] = {}
    marks: list[dict[str, Any]] = []
    for key, kind, desired, had in (("classes", CLASS_KIND, classes, had_classes),
                                    ("plans", PLAN_KIND, plans, had_plans)):
        offered = {_name(m) for m in desired}
        removed[key] = sorted(n for n, obj in had.items() if n not in offered and not _removed(obj))
        restored[key] = sorted(n for n, obj in had.items() if n in offered and _removed(obj))
        # Every offered object says so in its status (a new one once, after its first apply);
        # one the broker dropped says that instead.
        marks += [offering_mark(kind, n, broker, offered=True) for n in sorted(offered)
                  if not _marked(had.get(n), offered=True)]
        marks += [offering_mark(kind, n, broker, offered=False) for n in sorted(had)
                  if n not in offered and not _marked(had[n], offered=False)]

    counts = {"classes": len(classes), "plans": len(plans)}
    relist, note = relist_after(broker, relist_duration)
    message = f"Fetched the catalog: {_count(counts['classes'], 'class')}, {_count(counts['plans'], 'plan')}"
    condition = _condition("True", FETCHED_CATALOG, message + (f" ({note})" if note else ""))
    changed = bool(apply or marks)
    status: dict[str, Any] = {"catalog": counts, **_observed(broker)}
    stamp = retrieval_time(broker, status, condition, changed, now, relist)
    if stamp is not None:
        status["lastCatalogRetrievalTime"] = stamp
    summary = [f"apply {m['kind']} {_name(m)}" for m in apply]
    summary += [f"mark {m['kind']} {m['name']} " + ("removed from" if m["status"]["removedFromBrokerCatalog"]
                                                    else "in") + " the catalog" for m in marks]
    return {
        "failure": {},
        "classes": classes, "plans": plans, "apply": apply,
        "removed": removed, "restored": restored, "marks": marks,
        "counts": counts, "changed": changed,
        "condition": condition,
        "status": status,
        "events": [_event("Normal", condition)] if changed or _is_news(broker, condition) else [],
        "requeue_after": go_duration(relist),
        "summary": summary,
    }


# --- deleting a broker ------------------------------------------------------------------------


def blocking_instances(instances: Any, classes: Any) -> list[str]:
    """``namespace/name`` of each ServiceInstance, sorted, that uses one of ``classes``: by its
    ``status.clusterServiceClassRef``, or, while it has none, by naming one of them in its spec
    (``clusterServiceClassExternalName``, ``clusterServiceClassExternalID`` or
    ``clusterServiceClassName``). An instance being deleted still counts: its deprovision needs
    the broker."""
    names: set[str] = set()
    external_names: set[str] = set()
    external_ids: set[str] = set()
    for cls in classes or []:
        if not isinstance(cls, Mapping):
            continue
        spec = cls.get("spec") or {}
        names.add(_name(cls))
        external_names.add(str(spec.get("externalName") or ""))
        external_ids.add(str(spec.get("externalID") or ""))
    names.discard("")
    external_names.discard("")
    external_ids.discard("")

    found: list[str] = []
    for instance in instances or []:
        if not isinstance(instance, Mapping):
            continue
        spec = instance.get("spec") or {}
        ref = (instance.get("status") or {}).get("clusterServiceClassRef") or {}
        ref_name = ref.get("name") if isinstance(ref, Mapping) else None
        if ref_name:
            uses = str(ref_name) in names
        else:
            uses = (str(spec.get("clusterServiceClassExternalName") or "") in external_names
                    or str(spec.get("clusterServiceClassExternalID") or "") in external_ids
                    or str(spec.get("clusterServiceClassName") or "") in names)
        if uses:
            meta = instance.get("metadata") or {}
            found.append(f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")
    return sorted(found)


def delete_blocked(broker: Mapping[str, Any], blocking: Sequence[str]) -> dict[str, Any]:
    """What a broker whose deletion waits for ``blocking`` instances reports: ``condition``
    (Ready False, DeleteBlockedByExistingInstances, naming up to five), ``status``
    (observedGeneration) and ``events`` (a Warning when the condition says something new); all
    empty when nothing blocks."""
    if not blocking:
        return {"condition": {}, "status": {}, "events": []}
    shown = ", ".join(blocking[:NAMED_INSTANCES])
    more = len(blocking) - NAMED_INSTANCES
    which = "ServiceInstance" if len(blocking) == 1 else "ServiceInstances"
    message = f"waiting for {which} {shown}" + (f" and {more} more" if more > 0 else "") + " to be deleted"
    condition = _condition("False", DELETE_BLOCKED, message)
    return {"condition": condition, "status": _observed(broker),
            "events": [_event("Warning", condition)] if _is_news(broker, condition) else []}
