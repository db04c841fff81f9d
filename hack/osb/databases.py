"""The ``sync-db`` and ``async-db`` services, as an openbrokerapi ServiceBroker.

Plans (service id ``<service>-id``, plan id ``<service>-<plan>``, each with ``--catalog-prefix``
before it in the catalog and in requests, as are the service names; see `hack.osb.offering`):

- ``sync-db``: ``small`` and ``large`` provision, update and bind synchronously, with
  ``postgresql`` credentials; ``broken`` refuses to provision (400, `BROKEN`).
- ``async-db``: ``standard`` provisions, deprovisions, binds and unbinds only asynchronously
  (``accepts_incomplete=true``, else 422 AsyncRequired), with ``mysql`` credentials; ``flaky``
  provisions asynchronously into ``failed`` (`FLAKY`), and such an instance deletes at once.

How openbrokerapi 4.7 answers what this raises: ErrBadRequest: 400 ``{"description": msg}``
(no ``error`` field); ErrInstanceAlreadyExists, ErrBindingAlreadyExists: 409 ``{}``;
ErrInstanceDoesNotExist, ErrBindingDoesNotExist: 410 ``{}`` from DELETE, 404 ``{}`` from GET;
ErrAsyncRequired: 422 AsyncRequired; ErrConcurrentInstanceAccess: 422 ConcurrencyError (not
from PUT of an instance, where it would be a 500); ErrPlanChangeNotSupported: 400
InvalidParameters (OSB would have a 422).

openbrokerapi refuses a provision, update, bind, unbind or deprovision whose plan_id is not in
`DatabaseBroker.catalog()` (400 ``plan_id not found in this service.``), so that catalog holds
the omitted services too; ``GET /v2/catalog`` serves `DatabaseBroker.offered()` (see
`hack.osb.openbroker`). A provision of an omitted service is 400.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from flask import abort, jsonify, make_response
from openbrokerapi import errors
from openbrokerapi.catalog import ServiceMetadata, ServicePlan
from openbrokerapi.service_broker import (
    Binding,
    BindState,
    DeprovisionServiceSpec,
    GetBindingSpec,
    GetInstanceDetailsSpec,
    LastOperation,
    OperationState,
    ProvisionedServiceSpec,
    ProvisionState,
    Service,
    ServiceBroker,
    UnbindSpec,
    UpdateServiceSpec,
)

from hack.osb import credentials, lifecycle
from hack.osb.offering import Offering
from hack.osb.state import StateFile

BROKEN = "plan broken cannot be provisioned: no capacity in region test-1"
FLAKY = "provisioning failed: disk quota exceeded on pool p-7"


@dataclass(frozen=True)
class Plan:
    service: str
    name: str
    description: str
    asynchronous: bool = False
    refusal: str | None = None  # provisioning answers 400 with this description
    failure: str | None = None  # async provisioning ends failed with this description

    @property
    def id(self) -> str:
        return f"{self.service}-{self.name}"

    @property
    def service_id(self) -> str:
        return f"{self.service}-id"


PLANS = {p.id: p for p in (
    Plan("sync-db", "small", "A small database, ready at once"),
    Plan("sync-db", "large", "A large database, ready at once"),
    Plan("sync-db", "broken", "Never provisions: there is no capacity", refusal=BROKEN),
    Plan("async-db", "standard", "A database that takes a while", asynchronous=True),
    Plan("async-db", "flaky", "A database whose provisioning fails", asynchronous=True, failure=FLAKY),
)}
CREDENTIALS_TYPE = {"sync-db-id": "postgresql", "async-db-id": "mysql"}
SERVICES = ("sync-db", "async-db")


def build_catalog(offering: Offering) -> dict[str, Service]:
    """Every service by its own name, with the catalog's (prefixed) ids and names."""
    def plans(service: str) -> list[ServicePlan]:
        return [ServicePlan(id=offering.public(p.id), name=p.name, description=p.description, free=True)
                for p in PLANS.values() if p.service == service]

    return {
        "sync-db": Service(
            id=offering.public("sync-db-id"), name=offering.public("sync-db"),
            description="A database provisioned synchronously", bindable=True, plan_updateable=True,
            tags=["database"], metadata=ServiceMetadata(displayName="Sync DB"), plans=plans("sync-db")),
        "async-db": Service(
            id=offering.public("async-db-id"), name=offering.public("async-db"),
            description="A database provisioned asynchronously", bindable=True, plan_updateable=False,
            instances_retrievable=True, bindings_retrievable=True, tags=["database"],
            metadata=ServiceMetadata(displayName="Async DB"), plans=plans("async-db")),
    }


def not_found() -> NoReturn:
    """404 ``{}``. openbrokerapi turns a ServiceException from a last_operation poll of a binding
    into a 500, and of an instance into a 410 (meant for deletes); an HTTPException carrying its
    response passes its error handlers by."""
    abort(make_response(jsonify({}), 404))


# openbrokerapi ships no type information, so its base class is Any to mypy.
class DatabaseBroker(ServiceBroker):  # type: ignore[misc]
    def __init__(self, store: StateFile, async_seconds: float, offering: Offering) -> None:
        self.store = store
        self.async_seconds = async_seconds
        self.offering = offering
        self.services = build_catalog(offering)

    @contextmanager
    def _settled(self) -> Iterator[dict[str, Any]]:
        with self.store.change() as data:
            lifecycle.settle(data, time.time(), self.async_seconds)
            yield data

    def catalog(self) -> list[Service]:
        """Every service, the omitted ones too: openbrokerapi checks the plan_id of requests against it."""
        return list(self.services.values())

    def offered(self) -> list[Service]:
        """The catalog ``GET /v2/catalog`` answers: without the omitted services."""
        return [service for name, service in self.services.items() if self.offering.offers(name)]

    def _plan(self, service_id: str | None, plan_id: str | None) -> Plan:
        """The plan a request names by the catalog's ids; 400 if they are not the catalog's (not
        prefixed) or not one service's."""
        plan = PLANS.get(self.offering.local(plan_id) or "")
        if plan is None or plan.service_id != self.offering.local(service_id):
            raise errors.ErrBadRequest(f"plan {plan_id} is not a plan of service {service_id}")
        return plan

    def provision(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> ProvisionedServiceSpec:
        plan = self._plan(details.service_id, details.plan_id)
        if not self.offering.offers(plan.service):
            raise errors.ErrBadRequest(f"service {self.offering.public(plan.service)} is no longer offered")
        if plan.refusal:
            raise errors.ErrBadRequest(plan.refusal)
        if plan.asynchronous and not async_allowed:
            raise errors.ErrAsyncRequired()
        with self._settled() as data:
            existing = data["instances"].get(instance_id)
            # A failed instance is provisioned afresh, as if it had not been there.
            if existing is not None and existing["state"] != lifecycle.FAILED:
                op = lifecycle.pending(existing)
                if not lifecycle.same(existing, plan.service_id, plan.id, details.parameters) or (
                        op is not None and op["kind"] != "provision"):
                    raise errors.ErrInstanceAlreadyExists()
                if op is not None:
                    return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, operation=op["id"])
                return ProvisionedServiceSpec(ProvisionState.IDENTICAL_ALREADY_EXISTS)
            record = lifecycle.new_instance(plan.service_id, plan.id, details.parameters, context=details.context)
            data["instances"][instance_id] = record
            data["gone"].pop(instance_id, None)
            if not plan.asynchronous:
                return ProvisionedServiceSpec(ProvisionState.SUCCESSFUL_CREATED)
            op = lifecycle.begin(record, "provision", failure=plan.failure)
            return ProvisionedServiceSpec(ProvisionState.IS_ASYNC, operation=op["id"])

    def update(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> UpdateServiceSpec:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                raise errors.ErrBadRequest(f"service instance {instance_id} does not exist")
            if lifecycle.pending(instance) is not None:
                raise errors.ErrConcurrentInstanceAccess()
            current = PLANS[instance["plan_id"]]
            target = self._plan(details.service_id, details.plan_id or self.offering.public(current.id))
            if target.id != current.id and current.asynchronous:
                raise errors.ErrPlanChangeNotSupported()  # async-db is not plan_updateable
            if target.refusal:
                raise errors.ErrBadRequest(target.refusal)
            if current.asynchronous and not async_allowed:
                raise errors.ErrAsyncRequired()
            instance["plan_id"] = target.id
            if details.parameters is not None:
                instance["parameters"] = details.parameters
            if not current.asynchronous:
                return UpdateServiceSpec(is_async=False)
            return UpdateServiceSpec(is_async=True, operation=lifecycle.begin(instance, "update")["id"])

    def deprovision(self, instance_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> DeprovisionServiceSpec:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                raise errors.ErrInstanceDoesNotExist()
            op = lifecycle.pending(instance)
            if op is not None and op["kind"] == "deprovision":
                return DeprovisionServiceSpec(is_async=True, operation=op["id"])
            if op is not None:
                raise errors.ErrConcurrentInstanceAccess()
            # A failed instance has nothing to tear down: orphan mitigation deletes it at once.
            if not PLANS[instance["plan_id"]].asynchronous or instance["state"] == lifecycle.FAILED:
                del data["instances"][instance_id]
                return DeprovisionServiceSpec(is_async=False)
            if not async_allowed:
                raise errors.ErrAsyncRequired()
            return DeprovisionServiceSpec(is_async=True, operation=lifecycle.begin(instance, "deprovision")["id"])

    def last_operation(self, instance_id: str, operation_data: str | None, **kwargs: Any) -> LastOperation:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                if instance_id in data["gone"]:
                    return LastOperation(OperationState.SUCCEEDED, lifecycle.DONE["deprovision"])
                not_found()
            state, description = lifecycle.status(instance)
            return LastOperation(OperationState(state), description)

    def get_instance(self, instance_id: str, **kwargs: Any) -> GetInstanceDetailsSpec:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None or instance["state"] == lifecycle.BUSY["provision"]:
                raise errors.ErrInstanceDoesNotExist()
            if instance["state"] == lifecycle.BUSY["update"]:
                raise errors.ErrConcurrentInstanceAccess()
            return GetInstanceDetailsSpec(self.offering.public(instance["service_id"]),
                                          self.offering.public(instance["plan_id"]), parameters=instance["parameters"])

    def bind(self, instance_id: str, binding_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> Binding:
        requested = self._plan(details.service_id, details.plan_id)
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            if instance is None:
                raise errors.ErrBadRequest(f"service instance {instance_id} does not exist")
            if instance["state"] == lifecycle.FAILED:
                raise errors.ErrBadRequest(f"service instance {instance_id} failed to provision")
            if instance["state"] != lifecycle.READY:
                raise errors.ErrConcurrentInstanceAccess()
            plan = PLANS[instance["plan_id"]]
            if plan.asynchronous and not async_allowed:
                raise errors.ErrAsyncRequired()
            existing = instance["bindings"].get(binding_id)
            if existing is not None:
                if not lifecycle.same(existing, requested.service_id, requested.id, details.parameters):
                    raise errors.ErrBindingAlreadyExists()
                op = lifecycle.pending(existing)
                if op is not None:
                    return Binding(BindState.IS_ASYNC, operation=op["id"])
                return Binding(BindState.IDENTICAL_ALREADY_EXISTS, credentials=existing["credentials"])
            secret = credentials.database(CREDENTIALS_TYPE[plan.service_id], instance_id, binding_id)
            binding = lifecycle.new_binding(requested.service_id, requested.id, details.parameters, secret)
            instance["bindings"][binding_id] = binding
            instance["gone_bindings"].pop(binding_id, None)
            if not plan.asynchronous:
                return Binding(BindState.SUCCESSFUL_BOUND, credentials=secret)
            return Binding(BindState.IS_ASYNC, operation=lifecycle.begin(binding, "bind")["id"])

    def unbind(self, instance_id: str, binding_id: str, details: Any, async_allowed: bool, **kwargs: Any) -> UnbindSpec:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            if instance is None or binding is None:
                raise errors.ErrBindingDoesNotExist()
            op = lifecycle.pending(binding)
            if op is not None and op["kind"] == "unbind":
                return UnbindSpec(is_async=True, operation=op["id"])
            if op is not None:
                raise errors.ErrConcurrentInstanceAccess()
            if not PLANS[instance["plan_id"]].asynchronous:
                del instance["bindings"][binding_id]
                return UnbindSpec(is_async=False)
            if not async_allowed:
                raise errors.ErrAsyncRequired()
            return UnbindSpec(is_async=True, operation=lifecycle.begin(binding, "unbind")["id"])

    def last_binding_operation(self, instance_id: str, binding_id: str, operation_data: str | None,
                               **kwargs: Any) -> LastOperation:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            if binding is None:
                if instance is not None and binding_id in instance["gone_bindings"]:
                    return LastOperation(OperationState.SUCCEEDED, lifecycle.DONE["unbind"])
                not_found()
            state, description = lifecycle.status(binding)
            return LastOperation(OperationState(state), description)

    def get_binding(self, instance_id: str, binding_id: str, **kwargs: Any) -> GetBindingSpec:
        with self._settled() as data:
            instance = data["instances"].get(instance_id)
            binding = None if instance is None else instance["bindings"].get(binding_id)
            # OSB: a binding still being created is not there yet.
            if binding is None or binding["state"] != lifecycle.READY:
                raise errors.ErrBindingDoesNotExist()
            return GetBindingSpec(credentials=binding["credentials"], parameters=binding["parameters"])
