"""The ``edge`` service: one plan per behaviour openbrokerapi cannot produce. Served over HTTP by
`hack.osb.edgebroker`; here each OSB call is a method answering a `Reply`.

Plans (service id ``edge-id``, plan id ``edge-<name>``, each with ``--catalog-prefix`` before it
in the catalog and in requests, as is the service name; see `hack.osb.offering`):

- ``retry-after``: provision and deprovision only async (else 422 AsyncRequired); polls answer
  ``in progress`` with ``Retry-After: 2`` until ``--async-seconds`` have passed.
- ``maintained``: carries ``maintenance_info``; a provision or update naming another
  ``maintenance_info.version`` than the catalog's is 422 MaintenanceInfoConflict.
  ``POST /admin/maintenance {"version": ...}`` changes the catalog's version.
- ``slow``: provisioning answers 201 only after ``--slow-seconds``; the instance exists from
  the start, so a client that gave up can delete it.
- ``error500``: provisioning creates the instance, then answers 500; deleting it answers 500
  ``--delete-failures`` times before it works.
- ``never-finishes``: async provisioning that stays ``in progress``; the plan says
  ``maximum_polling_duration: 5``. Deleting such an instance works at once.
- ``async-bind``: provisions synchronously; binds and unbinds only async (else 422
  AsyncRequired); GET of the binding answers its credentials once bound.
- ``bind-timeout``: binding answers 201 only after ``--slow-seconds``; the binding exists from
  the start.

Any other plan binds synchronously. Once an async delete has finished, its last_operation answers
410 Gone ``{}`` (OSB: a success for a delete); the poll of an instance or binding never seen
is 404. With ``--omit-service edge`` the catalog has no service and a provision is 400.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from hack.osb import credentials, lifecycle
from hack.osb.offering import Offering
from hack.osb.state import StateFile

SERVICE_NAME = "edge"
SERVICE_ID = "edge-id"
MAINTENANCE_VERSION = "2.0.0"
PLAN_DESCRIPTIONS = {
    "retry-after": "Async; polls answer Retry-After",
    "maintained": "Carries maintenance_info; a stale version is refused",
    "slow": "Provisioning answers after the client has given up",
    "error500": "Provisioning fails with 500; so do the first deletes",
    "never-finishes": "Async provisioning that never ends",
    "async-bind": "Binds only asynchronously",
    "bind-timeout": "Binding answers after the client has given up",
}
ASYNC_PROVISION = frozenset({"retry-after", "never-finishes"})
ASYNC_REQUIRED = {"error": "AsyncRequired",
                  "description": "This service plan requires client support for asynchronous service operations."}


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering


def empty_state() -> dict[str, Any]:
    return {**lifecycle.empty_state(), "maintenance_version": MAINTENANCE_VERSION}


def plan_name(plan_id: str) -> str:
    return plan_id.removeprefix("edge-")


def bad_request(description: str) -> Reply:
    return Reply(400, {"error": "BadRequest", "description": description})


def concurrency_error(what: str) -> Reply:
    return Reply(422, {"error": "ConcurrencyError", "description": f"{what}: another operation is in progress"})


class EdgeService:
    def __init__(self, store: StateFile, async_seconds: float, slow_seconds: float, delete_failures: int,
                 offering: Offering) -> None:
        self.store = store
        self.async_seconds = async_seconds
        self.slow_seconds = slow_seconds
        self.delete_failures = delete_failures
        self.offering = offering

    @contextmanager
    def _settled(self) -> Iterator[dict[str, Any]]:
        with self.store.change() as data:
            lifecycle.settle(data, time.time(), self.async_seconds)
            yield data

    def catalog(self) -> Reply:
        with self.store.view() as data:
            version = data["maintenance_version"]
        if not self.offering.offers(SERVICE_NAME):
            return Reply(200, {"services": []})
        plans = []
        for name, description in PLAN_DESCRIPTIONS.items():
            plan: dict[str, Any] = {"id": self.offering.public(f"edge-{name}"), "name": name,
                                    "description": description, "free": True}
            if name == "maintained":
                plan["maintenance_info"] = {"version": version, "description": f"edge runtime {version}"}
            if name == "never-finishes":
                plan["maximum_polling_duration"] = 5
            plans.append(plan)
        service = {"id": self.offering.public(SERVICE_ID), "name": self.offering.public(SERVICE_NAME),
                   "description": "OSB edge cases", "bindable": True,
                   "plan_updateable": True, "instances_retrievable": True, "bindings_retrievable": True,
                   "tags": ["edge"], "metadata": {"displayName": "Edge cases"}, "plans": plans}
        return Reply(200, {"services": [service]})

    def set_maintenance(self, body: Any) -> Reply:
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            return bad_request('expected {"version": "..."}')
        with self.store.change() as data:
            data["maintenance_version"] = body["version"]
        return Reply(200, {"version": body["version"]})

    def _plan(self, body: dict[str, Any], default: str | None = None) -> str | Reply:
        """The name of the plan a request body names by the catalog's ids (`default`, a plan id of
        this broker's own, when it names none), or the 400 for it."""
        service_id = self.offering.public(SERVICE_ID)
        plan_id = body.get("plan_id", default and self.offering.public(default))
        if body.get("service_id") != service_id:
            return bad_request(f"service_id must be {service_id}")
        own_id = self.offering.local(plan_id)
        if own_id is None or plan_name(own_id) not in PLAN_DESCRIPTIONS:
            return bad_request(f"no plan {plan_id} in service {service_id}")
        return plan_name(own_id)

    @staticmethod
    def _maintenance_conflict(data: dict[str, Any], body: dict[str, Any]) -> Reply | None:
        asked = (body.get("maintenance_info") or {}).get("version")
        if asked is None or asked == data["maintenance_version"]:
            return None
        return Reply(422, {"error": "MaintenanceInfoConflict",
                           "description": f"maintenance_info.version {asked} is not the plan's current "
                                          f"{data['maintenance_version']}: fetch the catalog again"})

    def provision(self, instance_id: str, body: dict[str, Any], accepts_incomplete: bool) -> Reply:
        plan = self._plan(body)
        if isinstance(plan, Reply):
            return plan
        if not self.offering.offers(SERVICE_NAME):
            return bad_request(f"service {self.offering.public(SERVICE_NAME)} is no longer offered")
        if plan in ASYNC_PROVISION and not accepts_incomplete:
            return Reply(422, ASYNC_REQUIRED)
        with self._settled() as data:
            if plan == "maintained" and (conflict := self._maintenance_conflict(data, body)):
                return conflict
            existing = data["instances"].get(instance_id)
            # A failed instance is provisioned afresh, as if it had not been there.
            if existing is not None and existing["state"] != lifecycle.FAILED:
                op = lifecycle.pending(existing)
                if not lifecycle.same(existing, SERVICE_ID, f"edge-{plan}", body.get("parameters")):
                    return Reply(409, {"description": f"service instance {instance_id} exists with other attributes"})
                if op is not None and op["kind"] == "provision":
                    return Reply(202, {"operation": op["id"]})
                return concurrency_error(instance_id) if op is not None else Reply(200, {})
            record = lifecycle.new_instance(SERVICE_ID, f"edge-{plan}", body.get("parameters"),
                                            context=body.get("context"), delete_attempts=0)
            if plan == "maintained":
                record["maintenance_info"] = {"version": data["maintenance_version"]}
            data["instances"][instance_id] = record
            data["gone"].pop(instance_id, None)
            if plan in ASYNC_PROVISION:
                op = lifecycle.begin(record, "provision", endless=plan == "never-finishes")
                return Reply(202, {"operation": op["id"]})
        if plan == "slow":
            return Reply(201, {}, delay=self.slow_seconds)
        if plan == "error500":
            return Reply(500, {"description": "internal error while provisioning"})
        return Reply(201, {})

    def update(self, instance_id: str, body: dict[str, Any]) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                return bad_request(f"service instance {instance_id} does not exist")
            if lifecycle.pending(instance) is not None:
                return concurrency_error(instance_id)
            plan = self._plan(body, default=instance["plan_id"])
            if isinstance(plan, Reply):
                return plan
            if plan == "maintained":
                if conflict := self._maintenance_conflict(data, body):
                    return conflict
                instance["maintenance_info"] = {"version": data["maintenance_version"]}
            else:
                instance.pop("maintenance_info", None)
            instance["plan_id"] = f"edge-{plan}"
            if body.get("parameters") is not None:
                instance["parameters"] = body["parameters"]
            return Reply(200, {})

    def deprovision(self, instance_id: str, accepts_incomplete: bool) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                return Reply(410, {})
            plan = plan_name(instance["plan_id"])
            op = lifecycle.pending(instance)
            if op is not None and op["kind"] == "deprovision":
                return Reply(202, {"operation": op["id"]})
            if plan == "error500" and instance["delete_attempts"] < self.delete_failures:
                instance["delete_attempts"] += 1
                return Reply(500, {"description": "internal error while deprovisioning"})
            if op is not None and plan != "never-finishes":
                return concurrency_error(instance_id)
            if plan == "retry-after" and instance["state"] != lifecycle.FAILED:
                if not accepts_incomplete:
                    return Reply(422, ASYNC_REQUIRED)
                return Reply(202, {"operation": lifecycle.begin(instance, "deprovision")["id"]})
            del data["instances"][instance_id]
            return Reply(200, {})

    def last_operation(self, instance_id: str) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                return Reply(410 if instance_id in data["gone"] else 404, {})
            state, description = lifecycle.status(instance)
            slow_down = state == lifecycle.IN_PROGRESS and plan_name(instance["plan_id"]) == "retry-after"
            return Reply(200, {"state": state, "description": description}, {"Retry-After": "2"} if slow_down else {})

    def get_instance(self, instance_id: str) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None or instance["state"] == lifecycle.BUSY["provision"]:
                return Reply(404, {})
            if instance["state"] == lifecycle.BUSY["update"]:
                return concurrency_error(instance_id)
            answer = {"service_id": self.offering.public(instance["service_id"]),
                      "plan_id": self.offering.public(instance["plan_id"]),
                      **{k: instance[k] for k in ("parameters", "maintenance_info") if k in instance}}
            return Reply(200, answer)

    def bind(self, instance_id: str, binding_id: str, body: dict[str, Any], accepts_incomplete: bool) -> Reply:
        requested = self._plan(body)
        if isinstance(requested, Reply):
            return requested
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                return bad_request(f"service instance {instance_id} does not exist")
            if instance["state"] != lifecycle.READY:
                return concurrency_error(instance_id)
            plan = plan_name(instance["plan_id"])
            if plan == "async-bind" and not accepts_incomplete:
                return Reply(422, ASYNC_REQUIRED)
            existing = instance["bindings"].get(binding_id)
            if existing is not None:
                if not lifecycle.same(existing, SERVICE_ID, f"edge-{requested}", body.get("parameters")):
                    return Reply(409, {"description": f"service binding {binding_id} exists with other parameters"})
                op = lifecycle.pending(existing)
                if op is not None:
                    return Reply(202, {"operation": op["id"]})
                return Reply(200, {"credentials": existing["credentials"]})
            secret = credentials.redis(instance_id)
            binding = lifecycle.new_binding(SERVICE_ID, f"edge-{requested}", body.get("parameters"), secret)
            instance["bindings"][binding_id] = binding
            instance["gone_bindings"].pop(binding_id, None)
            if plan == "async-bind":
                return Reply(202, {"operation": lifecycle.begin(binding, "bind")["id"]})
        return Reply(201, {"credentials": secret}, delay=self.slow_seconds if plan == "bind-timeout" else 0.0)

    def unbind(self, instance_id: str, binding_id: str, accepts_incomplete: bool) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            if instance is None or binding is None:
                return Reply(410, {})
            op = lifecycle.pending(binding)
            if op is not None and op["kind"] == "unbind":
                return Reply(202, {"operation": op["id"]})
            if op is not None:
                return concurrency_error(binding_id)
            if plan_name(instance["plan_id"]) == "async-bind":
                if not accepts_incomplete:
                    return Reply(422, ASYNC_REQUIRED)
                return Reply(202, {"operation": lifecycle.begin(binding, "unbind")["id"]})
            del instance["bindings"][binding_id]
            return Reply(200, {})

    def last_binding_operation(self, instance_id: str, binding_id: str) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            if binding is None:
                gone = instance is not None and binding_id in instance["gone_bindings"]
                return Reply(410 if gone else 404, {})
            state, description = lifecycle.status(binding)
            return Reply(200, {"state": state, "description": description})

    def get_binding(self, instance_id: str, binding_id: str) -> Reply:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            # OSB: a binding still being created is not there yet.
            if binding is None or binding["state"] != lifecycle.READY:
                return Reply(404, {})
            return Reply(200, {"credentials": binding["credentials"], "parameters": binding["parameters"]})
