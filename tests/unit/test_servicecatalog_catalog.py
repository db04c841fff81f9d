"""The playbook_operator.servicecatalog ClusterServiceBroker filters without a cluster: naming
(ids kept, ids hashed, stable), the mapping of OSB services and plans to classes and plans,
invalid catalogs, what a relist writes (only what differs; removed and restored), failures and
their retries, what a deleting broker waits for, and one run through ansible-playbook to prove
the plugin loads."""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

# The collection lives in-tree; Python finds it as ansible_collections.playbook_operator.servicecatalog.
sys.path.insert(0, str(ROOT / "collections"))

from ansible.errors import AnsibleFilterError
from ansible_collections.playbook_operator.servicecatalog.plugins.filter import servicecatalog_catalog as f
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import catalog

pytestmark = pytest.mark.unit

API = "servicecatalog.playbook-operator.io/v1alpha1"
BROKER_LABEL = "servicecatalog.playbook-operator.io/broker"
CLASS_LABEL = "servicecatalog.playbook-operator.io/class"
UID = "5b0b0b0b-0000-4000-8000-000000000001"


def broker(name: str = "ups", generation: int = 1, conditions: list[dict[str, Any]] | None = None,
           **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API, "kind": "ClusterServiceBroker",
                           "metadata": {"name": name, "uid": UID, "generation": generation},
                           "spec": {"url": "http://broker.example", **spec}}
    if conditions is not None:
        obj["status"] = {"conditions": conditions}
    return obj


def plan(pid: str = "small-plan", name: str = "small", **fields: Any) -> dict[str, Any]:
    return {"id": pid, "name": name, "description": f"the {name} plan", **fields}


def service(sid: str = "mysql-service", name: str = "mysql", plans: list[dict[str, Any]] | None = None,
            **fields: Any) -> dict[str, Any]:
    return {"id": sid, "name": name, "description": f"the {name} service", "bindable": True,
            "plans": plans if plans is not None else [plan()], **fields}


def body(*services: dict[str, Any]) -> dict[str, Any]:
    return {"services": list(services) if services else [service()]}


def stored(manifest: dict[str, Any], removed: bool = False) -> dict[str, Any]:
    """The manifest as the apiserver hands it back after an apply and its status mark."""
    obj = copy.deepcopy(manifest)
    obj["metadata"].update({"resourceVersion": "42", "uid": "1111", "creationTimestamp": "2024-01-01T00:00:00Z",
                            "generation": 1, "managedFields": [{"manager": "playbook-operator"}]})
    obj["status"] = mark(obj["kind"], obj["metadata"]["name"], removed)["status"]
    return obj


def mark(kind: str, name: str, removed: bool, broker_name: str = "ups") -> dict[str, Any]:
    """The status write that says whether a class or plan is in its broker's catalog."""
    if removed:
        condition = {"type": "Ready", "status": "False", "reason": "RemovedFromBrokerCatalog",
                     "message": f"Broker {broker_name} no longer offers it: no new ServiceInstance can use it"}
    else:
        condition = {"type": "Ready", "status": "True", "reason": "OfferedByBroker",
                     "message": f"In the catalog of broker {broker_name}"}
    return {"kind": kind, "name": name, "status": {"removedFromBrokerCatalog": removed, "conditions": [condition]}}


def sync(catalog_body: Any, b: dict[str, Any] | None = None, classes: Any = None, plans: Any = None,
         **options: Any) -> dict[str, Any]:
    return f.servicecatalog_catalog(catalog_body, b or broker(), classes, plans, **options)


def settled(catalog_body: Any, b: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The classes and plans that exist once ``catalog_body`` was applied."""
    first = sync(catalog_body, b)
    return ([stored(m) for m in first["classes"]], [stored(m) for m in first["plans"]])


def by_name(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects}


# --- naming ------------------------------------------------------------------------------------


@pytest.mark.parametrize("external_id", ["mysql", "a1b2c3d4-0000-4000-8000-000000000001", "db.example.com",
                                         "x", "a" * 63])
def test_an_id_that_can_be_a_name_is_the_name(external_id: str) -> None:
    assert catalog.class_name(external_id) == external_id
    assert catalog.plan_name(external_id) == external_id


@pytest.mark.parametrize("external_id", ["MySQL", "my_sql", "-mysql", "mysql-", "my sql", "a..b", "ünï", "",
                                         "a/b", "mysql."])
def test_an_id_that_cannot_be_a_name_is_hashed(external_id: str) -> None:
    digest = hashlib.sha224(external_id.encode()).hexdigest()[:40]
    assert catalog.class_name(external_id) == "c-" + digest
    assert catalog.plan_name(external_id) == "p-" + digest


def test_hashed_names_are_stable_and_distinct() -> None:
    assert catalog.class_name("Service_1") == catalog.class_name("Service_1")
    assert catalog.class_name("Service_1") != catalog.class_name("Service_2")
    assert len(catalog.class_name("Service_1")) == 42
    assert catalog.class_name("Service_1") == "c-" + hashlib.sha224(b"Service_1").hexdigest()[:40]


def test_a_class_name_fits_in_a_label_value_a_plan_name_may_be_longer() -> None:
    long_id = ".".join(["abcdefghij"] * 8)  # 87 characters, a valid DNS subdomain
    assert catalog.class_name(long_id).startswith("c-")
    assert catalog.plan_name(long_id) == long_id
    assert catalog.plan_name("a" * 254).startswith("p-")


def test_the_broker_label_is_its_name_or_a_hash_of_a_long_one() -> None:
    assert f.servicecatalog_broker_selector(broker("ups")) == f"{BROKER_LABEL}=ups"
    long_name = "b" * 64
    selector = f.servicecatalog_broker_selector(broker(long_name))
    assert selector == f"{BROKER_LABEL}=b-" + hashlib.sha224(long_name.encode()).hexdigest()[:40]
    # The objects carry the same value the selector asks for.
    out = sync(body(), broker(long_name))
    assert out["classes"][0]["metadata"]["labels"][BROKER_LABEL] == selector.split("=", 1)[1]
    assert out["classes"][0]["spec"]["clusterServiceBrokerName"] == long_name


# --- mapping -----------------------------------------------------------------------------------


def test_a_service_becomes_a_class_with_service_catalog_fields() -> None:
    s = service("mysql-service", "mysql", tags=["sql", "db"], requires=["syslog_drain"], plan_updateable=True,
                bindings_retrievable=True, instances_retrievable=False, metadata={"displayName": "MySQL"})
    out = sync(body(s))
    assert out["failure"] == {}
    assert out["classes"] == [{
        "apiVersion": API, "kind": "ClusterServiceClass",
        "metadata": {"name": "mysql-service", "labels": {BROKER_LABEL: "ups"},
                     "ownerReferences": [{"apiVersion": API, "kind": "ClusterServiceBroker", "name": "ups",
                                          "uid": UID, "controller": True, "blockOwnerDeletion": False}]},
        "spec": {"clusterServiceBrokerName": "ups", "externalName": "mysql", "externalID": "mysql-service",
                 "description": "the mysql service", "bindable": True, "planUpdatable": True,
                 "bindingsRetrievable": True, "instancesRetrievable": False, "tags": ["sql", "db"],
                 "requires": ["syslog_drain"], "externalMetadata": {"displayName": "MySQL"}},
    }]


def test_a_service_without_optional_fields_gets_falses_and_no_lists() -> None:
    s = {"id": "svc", "name": "svc", "plans": [plan()]}
    spec = sync(body(s))["classes"][0]["spec"]
    assert spec == {"clusterServiceBrokerName": "ups", "externalName": "svc", "externalID": "svc", "description": "",
                    "bindable": False, "planUpdatable": False, "bindingsRetrievable": False,
                    "instancesRetrievable": False}


def test_a_plan_becomes_a_plan_with_its_class_schemas_and_maintenance() -> None:
    create = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "object",
              "properties": {"size": {"type": "integer"}}}
    p = plan("gold-id", "gold", free=False, bindable=False, plan_updateable=True, maximum_polling_duration=600,
             maintenance_info={"version": "2.1.0", "description": "patched"}, metadata={"cost": 10},
             schemas={"service_instance": {"create": {"parameters": create}, "update": {"parameters": {}}},
                      "service_binding": {"create": {"parameters": {"type": "object"}}}})
    out = sync(body(service("MySQL_Service", "mysql", plans=[p])))
    class_name = catalog.class_name("MySQL_Service")
    assert class_name.startswith("c-")
    assert out["plans"] == [{
        "apiVersion": API, "kind": "ClusterServicePlan",
        "metadata": {"name": "gold-id", "labels": {BROKER_LABEL: "ups", CLASS_LABEL: class_name},
                     "ownerReferences": [{"apiVersion": API, "kind": "ClusterServiceBroker", "name": "ups",
                                          "uid": UID, "controller": True, "blockOwnerDeletion": False}]},
        "spec": {"clusterServiceBrokerName": "ups", "externalName": "gold", "externalID": "gold-id",
                 "description": "the gold plan", "clusterServiceClassRef": {"name": class_name}, "free": False,
                 "bindable": False, "planUpdatable": True, "maximumPollingDuration": 600,
                 "maintenanceInfo": {"version": "2.1.0", "description": "patched"},
                 "externalMetadata": {"cost": 10}, "instanceCreateParameterSchema": create,
                 "instanceUpdateParameterSchema": {},
                 "serviceBindingCreateParameterSchema": {"type": "object"}},
    }]


def test_a_plan_is_free_unless_it_says_not_and_overrides_only_what_it_says() -> None:
    spec = sync(body(service(plans=[plan()])))["plans"][0]["spec"]
    assert spec["free"] is True
    assert "bindable" not in spec and "planUpdatable" not in spec and "maintenanceInfo" not in spec
    assert not any(k.endswith("ParameterSchema") for k in spec)


def test_null_optional_fields_are_absent() -> None:
    s = service(tags=None, metadata=None, plans=[plan(free=None, bindable=None, schemas=None, metadata=None)])
    out = sync(body(s))
    assert out["failure"] == {}
    assert "tags" not in out["classes"][0]["spec"]
    assert out["plans"][0]["spec"]["free"] is True
    assert "bindable" not in out["plans"][0]["spec"]


def test_manifests_do_not_share_the_catalogs_objects() -> None:
    meta = {"nested": {"a": 1}}
    s = service(metadata=meta)
    out = sync(body(s))
    out["classes"][0]["spec"]["externalMetadata"]["nested"]["a"] = 2
    assert meta == {"nested": {"a": 1}}


def test_counts_condition_and_requeue() -> None:
    two = service("b", "b", plans=[plan("b1", "one"), plan("b2", "two")])
    out = sync(body(service(), two), broker(relistDuration="1h"))
    assert out["counts"] == {"classes": 2, "plans": 3}
    assert out["condition"] == {"type": "Ready", "status": "True", "reason": "FetchedCatalog",
                                "message": "Fetched the catalog: 2 classes, 3 plans"}
    assert out["status"] == {"catalog": {"classes": 2, "plans": 3}, "observedGeneration": 1}
    assert out["requeue_after"] == "3600s"
    one = sync(body(), broker())
    assert one["condition"]["message"] == "Fetched the catalog: 1 class, 1 plan"
    assert one["requeue_after"] == "900s"


def test_an_empty_catalog_is_valid() -> None:
    out = sync({"services": []})
    assert out["failure"] == {}
    assert out["counts"] == {"classes": 0, "plans": 0}
    assert out["condition"]["message"] == "Fetched the catalog: 0 classes, 0 plans"


@pytest.mark.parametrize(("given", "expected", "noted"), [
    ("90s", "90s", False), ("1m30s", "90s", False), ("1.5s", "2s", False), ("", "900s", False),
    (None, "900s", False), ("often", "900s", True), ("-5m", "900s", True), ("0s", "900s", True)])
def test_relist_duration(given: Any, expected: str, noted: bool) -> None:
    b = broker()
    if given is not None:
        b["spec"]["relistDuration"] = given
    out = sync(body(), b)
    assert out["requeue_after"] == expected
    assert ("relistDuration" in out["condition"]["message"]) is noted


def test_the_default_relist_comes_from_the_role() -> None:
    assert sync(body(), relist_duration="5m")["requeue_after"] == "300s"


# --- invalid catalogs --------------------------------------------------------------------------


@pytest.mark.parametrize(("catalog_body", "problem"), [
    (None, "the catalog is not a JSON object"),
    ([], "the catalog is not a JSON object"),
    ({}, "the catalog has no list of services"),
    ({"services": {"id": "x"}}, "the catalog has no list of services"),
    ({"services": ["mysql"]}, "services[0] must be an object"),
    (body({"name": "mysql", "plans": [plan()]}), "services[0].id is missing"),
    (body({"id": "", "name": "mysql", "plans": [plan()]}), "services[0].id is missing"),
    (body({"id": 7, "name": "mysql", "plans": [plan()]}), "services[0].id must be a string"),
    (body({"id": "mysql", "plans": [plan()]}), "services[0].name is missing"),
    (body({"id": "mysql", "name": "mysql"}), "services[0].plans must list at least one plan"),
    (body(service(plans=[])), "services[0].plans must list at least one plan"),
    (body(service(plans=[{"name": "small"}])), "services[0].plans[0].id is missing"),
    (body(service(plans=[{"id": "small"}])), "services[0].plans[0].name is missing"),
    (body(service(plans=["small"])), "services[0].plans[0] must be an object"),
    (body(service(bindable="yes")), "services[0].bindable must be a boolean"),
    (body(service(tags="sql")), "services[0].tags must be a list of strings"),
    (body(service(metadata=[])), "services[0].metadata must be an object"),
    (body(service(plans=[plan(free="no")])), "services[0].plans[0].free must be a boolean"),
    (body(service(plans=[plan(maximum_polling_duration=-1)])),
     "services[0].plans[0].maximum_polling_duration must be a whole number of seconds"),
    (body(service(plans=[plan(maximum_polling_duration=True)])),
     "services[0].plans[0].maximum_polling_duration must be a whole number of seconds"),
    (body(service(plans=[plan(maintenance_info={"version": 2})])),
     "services[0].plans[0].maintenance_info.version must be a string"),
    (body(service(plans=[plan(schemas={"service_instance": {"create": {"parameters": "x"}}})])),
     "services[0].plans[0].schemas.service_instance.create.parameters must be an object"),
    (body(service(plans=[plan(schemas={"service_instance": []})])),
     "services[0].plans[0].schemas.service_instance must be an object"),
    (body(service("a", "one"), service("a", "two")), "service id 'a' is used twice"),
    (body(service("a", "same"), service("b", "same", plans=[plan("p2", "small")])),
     "service name 'same' is used twice"),
    (body(service("a", "one"), service("b", "two")), "plan id 'small-plan' is used twice"),
    (body(service(plans=[plan("p1", "small"), plan("p2", "small")])),
     "plan name 'small' is used twice in service 'mysql'"),
    (body(service("Svc"), service(catalog.class_name("Svc"), "two", plans=[plan("p2")])),
     f"two services would both be ClusterServiceClass '{catalog.class_name('Svc')}'"),
])
def test_an_invalid_catalog_is_refused(catalog_body: Any, problem: str) -> None:
    out = sync(catalog_body)
    failure = out["failure"]
    assert failure["condition"]["reason"] == "ErrorInvalidCatalog"
    assert failure["condition"]["status"] == "False"
    assert problem in failure["condition"]["message"], failure["condition"]["message"]
    assert failure["condition"]["message"].startswith("Invalid catalog: ")
    assert failure["events"] == [{"type": "Warning", "reason": "ErrorInvalidCatalog",
                                  "message": failure["condition"]["message"]}]
    assert failure["requeue_after"] == "30s"
    # Nothing is written from an invalid catalog, not even removal marks.
    assert out["apply"] == [] and out["marks"] == [] and out["changed"] is False


def test_an_invalid_catalog_leaves_existing_classes_alone() -> None:
    classes, plans = settled(body())
    out = sync({"services": [{"id": "x"}]}, classes=classes, plans=plans)
    assert out["failure"] and out["marks"] == [] and out["removed"] == {"classes": [], "plans": []}


def test_an_invalid_catalog_names_three_problems_and_counts_the_rest() -> None:
    services = [{"name": f"s{i}", "plans": [plan(f"p{i}", "x")]} for i in range(5)]
    message = sync({"services": services})["failure"]["condition"]["message"]
    assert message == ("Invalid catalog: services[0].id is missing; services[1].id is missing; "
                       "services[2].id is missing; and 2 more")


# --- what a relist writes ----------------------------------------------------------------------


def test_a_first_relist_applies_everything_classes_first() -> None:
    out = sync(body(service(), service("b", "b", plans=[plan("b1", "one")])))
    assert [(m["kind"], m["metadata"]["name"]) for m in out["apply"]] == [
        ("ClusterServiceClass", "mysql-service"), ("ClusterServiceClass", "b"),
        ("ClusterServicePlan", "small-plan"), ("ClusterServicePlan", "b1")]
    assert out["changed"] is True
    assert out["summary"][0] == "apply ClusterServiceClass mysql-service"


def test_a_new_class_and_plan_are_marked_ready_once_applied() -> None:
    out = sync(body())
    assert out["marks"] == [mark("ClusterServiceClass", "mysql-service", False),
                            mark("ClusterServicePlan", "small-plan", False)]
    unmarked = [dict(stored(m), status={}) for m in out["classes"]]
    assert sync(body(), None, unmarked, [stored(m) for m in out["plans"]])["marks"] == [
        mark("ClusterServiceClass", "mysql-service", False)]


def test_an_unchanged_catalog_writes_nothing() -> None:
    full = body(service(tags=["a"], metadata={"x": [1, 2]},
                        plans=[plan(schemas={"service_instance": {"create": {"parameters": {"type": "object"}}}},
                                    maintenance_info={"version": "1.0.0"}, bindable=True)]))
    classes, plans = settled(full)
    b = broker(conditions=[{"type": "Ready", "status": "True", "reason": "FetchedCatalog",
                            "message": "Fetched the catalog: 1 class, 1 plan",
                            "lastTransitionTime": "2024-01-01T00:00:00Z"}])
    out = sync(full, b, classes, plans)
    assert out["apply"] == [] and out["marks"] == [] and out["changed"] is False
    assert out["events"] == [] and out["summary"] == []
    # The broker's status is still reported (lastCatalogRetrievalTime comes from the role).
    assert out["status"]["catalog"] == {"classes": 1, "plans": 1}


def test_apiserver_defaults_and_extra_fields_are_not_changes() -> None:
    classes, plans = settled(body())
    classes[0]["spec"]["somethingDefaulted"] = "x"
    classes[0]["metadata"]["labels"]["team"] = "data"
    classes[0]["metadata"]["annotations"] = {"note": "kept"}
    plans[0]["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "other",
                                                    "uid": "2222"})
    assert sync(body(), None, classes, plans)["apply"] == []


@pytest.mark.parametrize("edit", [
    lambda c, p: c[0]["spec"].update(description="edited by hand"),
    lambda c, p: c[0]["metadata"]["labels"].pop(BROKER_LABEL),
    lambda c, p: c[0]["metadata"].update(ownerReferences=[]),
    lambda c, p: c[0]["metadata"]["ownerReferences"][0].update(uid="an-older-broker"),
    lambda c, p: c[0]["metadata"]["ownerReferences"].append(
        {"apiVersion": "v1", "kind": "X", "name": "x", "uid": "3333", "controller": True}),
    lambda c, p: p[0]["spec"].update(bindable=True),  # the catalog's plan does not say bindable
    lambda c, p: p[0]["metadata"]["labels"].update({CLASS_LABEL: "another"}),
])
def test_a_drifted_object_is_applied_again(edit: Any) -> None:
    classes, plans = settled(body())
    edit(classes, plans)
    assert len(sync(body(), None, classes, plans)["apply"]) == 1


def test_a_changed_service_applies_only_its_class() -> None:
    classes, plans = settled(body(service(), service("b", "b", plans=[plan("b1", "one")])))
    out = sync(body(service(description="new words"), service("b", "b", plans=[plan("b1", "one")])),
               None, classes, plans)
    assert [m["metadata"]["name"] for m in out["apply"]] == ["mysql-service"]
    assert out["events"] == [{"type": "Normal", "reason": "FetchedCatalog",
                              "message": "Fetched the catalog: 2 classes, 2 plans"}]


def test_a_plan_that_loses_a_field_is_applied_without_it() -> None:
    classes, plans = settled(body(service(plans=[plan(bindable=False, metadata={"a": 1})])))
    out = sync(body(), None, classes, plans)
    assert [m["metadata"]["name"] for m in out["apply"]] == ["small-plan"]
    assert "bindable" not in out["apply"][0]["spec"] and "externalMetadata" not in out["apply"][0]["spec"]


def test_what_the_broker_stops_offering_is_marked_removed_not_deleted() -> None:
    two = service("b", "b", plans=[plan("b1", "one")])
    classes, plans = settled(body(service(plans=[plan(), plan("big-plan", "big")]), two))
    out = sync(body(service(plans=[plan()])), None, classes, plans)
    assert out["removed"] == {"classes": ["b"], "plans": ["b1", "big-plan"]}
    assert out["restored"] == {"classes": [], "plans": []}
    assert out["marks"] == [mark("ClusterServiceClass", "b", True), mark("ClusterServicePlan", "b1", True),
                            mark("ClusterServicePlan", "big-plan", True)]
    assert out["apply"] == [] and out["changed"] is True
    assert "mark ClusterServiceClass b removed from the catalog" in out["summary"]
    assert out["counts"] == {"classes": 1, "plans": 1}


def test_a_removed_object_is_marked_once() -> None:
    classes, plans = settled(body(service(), service("b", "b", plans=[plan("b1", "one")])))
    classes = [stored(c, removed=c["metadata"]["name"] == "b") for c in classes]
    plans = [stored(p, removed=p["metadata"]["name"] == "b1") for p in plans]
    out = sync(body(), None, classes, plans)
    assert out["removed"] == {"classes": [], "plans": []}
    assert out["marks"] == [] and out["changed"] is False


def test_what_the_broker_offers_again_is_restored() -> None:
    classes, plans = settled(body())
    classes = [stored(c, removed=True) for c in classes]
    plans = [stored(p, removed=True) for p in plans]
    out = sync(body(), None, classes, plans)
    assert out["restored"] == {"classes": ["mysql-service"], "plans": ["small-plan"]}
    assert out["marks"] == [mark("ClusterServiceClass", "mysql-service", False),
                            mark("ClusterServicePlan", "small-plan", False)]
    assert out["apply"] == []
    assert "mark ClusterServicePlan small-plan in the catalog" in out["summary"]


def test_objects_of_another_broker_are_not_ours() -> None:
    classes, plans = settled(body(), broker("other"))
    out = sync({"services": []}, broker("ups"), classes, plans)
    assert out["marks"] == [] and out["removed"] == {"classes": [], "plans": []}


def test_a_plan_moved_to_another_service_is_applied_with_its_new_class() -> None:
    classes, plans = settled(body(service("a", "a", plans=[plan("p", "x")]), service("b", "b", plans=[plan("q")])))
    out = sync(body(service("a", "a", plans=[plan("q")]), service("b", "b", plans=[plan("p", "x")])),
               None, classes, plans)
    moved = by_name(out["apply"])
    assert set(moved) == {"p", "q"}
    assert moved["p"]["spec"]["clusterServiceClassRef"] == {"name": "b"}
    assert moved["p"]["metadata"]["labels"][CLASS_LABEL] == "b"


def test_events_on_a_change_or_when_ready_says_something_new() -> None:
    classes, plans = settled(body())
    failing = broker(conditions=[{"type": "Ready", "status": "False", "reason": "ErrorFetchingCatalog",
                                  "message": "Error fetching the catalog: the broker answered 500"}])
    assert [e["reason"] for e in sync(body(), failing, classes, plans)["events"]] == ["FetchedCatalog"]
    assert [e["type"] for e in sync(body(), broker(), classes, plans)["events"]] == ["Normal"]  # no Ready yet


NOW = "2024-06-01T12:00:00Z"
READY = {"type": "Ready", "status": "True", "reason": "FetchedCatalog",
         "message": "Fetched the catalog: 1 class, 1 plan", "lastTransitionTime": "2024-06-01T00:00:00Z"}


def listed(last: str, **status: Any) -> dict[str, Any]:
    """The broker as a relist at ``last`` left it (one class, one plan)."""
    b = broker()
    b["status"] = {"conditions": [READY], "catalog": {"classes": 1, "plans": 1}, "observedGeneration": 1,
                   "lastCatalogRetrievalTime": last, **status}
    return b


def test_the_first_relist_writes_the_retrieval_time() -> None:
    assert sync(body(), now=NOW)["status"]["lastCatalogRetrievalTime"] == NOW
    assert "lastCatalogRetrievalTime" not in sync(body())["status"]  # without a clock, never


def test_a_relist_that_changes_nothing_keeps_a_recent_retrieval_time() -> None:
    classes, plans = settled(body())
    out = sync(body(), listed("2024-06-01T11:55:00Z"), classes, plans, now=NOW)
    assert out["status"] == {"catalog": {"classes": 1, "plans": 1}, "observedGeneration": 1}
    assert out["events"] == []


@pytest.mark.parametrize(("last", "written"), [
    ("2024-06-01T11:52:31Z", False),  # 7m29s old: under half of 15m
    ("2024-06-01T11:52:30Z", True),   # half the relist period
    ("2024-06-01T11:45:00Z", True),   # a relist period: the requeued relist
    ("2024-06-01T12:05:00Z", True),   # in the future: a clock moved back
    ("yesterday", True),
])
def test_the_retrieval_time_is_written_once_it_is_half_a_relist_period_old(last: str, written: bool) -> None:
    classes, plans = settled(body())
    out = sync(body(), listed(last), classes, plans, now=NOW)
    assert ("lastCatalogRetrievalTime" in out["status"]) is written


def test_a_shorter_relist_period_writes_the_time_sooner() -> None:
    classes, plans = settled(body())
    b = listed("2024-06-01T11:59:00Z")
    b["spec"]["relistDuration"] = "2m"
    assert sync(body(), b, classes, plans, now=NOW)["status"]["lastCatalogRetrievalTime"] == NOW


@pytest.mark.parametrize("edit", [
    lambda b, c: b["status"].update(catalog={"classes": 1, "plans": 2}),
    lambda b, c: b["status"].update(observedGeneration=0),
    lambda b, c: b["status"].update(conditions=[{**READY, "status": "False", "reason": "ErrorFetchingCatalog"}]),
    lambda b, c: c[0]["spec"].update(description="drifted"),
])
def test_any_other_change_writes_the_retrieval_time_with_it(edit: Any) -> None:
    classes, plans = settled(body())
    b = listed("2024-06-01T11:59:00Z")
    edit(b, classes)
    assert sync(body(), b, classes, plans, now=NOW)["status"]["lastCatalogRetrievalTime"] == NOW


def test_now_may_be_a_datetime_naive_ones_are_utc() -> None:
    naive = datetime.datetime(2024, 6, 1, 12, 0, 0)
    aware = datetime.datetime(2024, 6, 1, 14, 0, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    assert sync(body(), now=naive)["status"]["lastCatalogRetrievalTime"] == NOW
    assert sync(body(), now=aware)["status"]["lastCatalogRetrievalTime"] == NOW
    assert "lastCatalogRetrievalTime" not in sync(body(), now="not a time")["status"]


def test_a_broker_without_a_generation_reports_no_observed_generation() -> None:
    b = broker()
    del b["metadata"]["generation"]
    assert sync(body(), b)["status"] == {"catalog": {"classes": 1, "plans": 1}}


def test_the_filter_wants_a_broker() -> None:
    with pytest.raises(AnsibleFilterError, match="ClusterServiceBroker"):
        f.servicecatalog_catalog(body(), "ups")  # type: ignore[arg-type]


# --- failures ----------------------------------------------------------------------------------


def response(status: int, body_: Any = None, **fields: Any) -> dict[str, Any]:
    return {"sent": True, "status": status, "body": body_ if body_ is not None else {}, "body_text": "",
            "error": "", "error_reason": "", "retry_after": None, **fields}


def test_a_200_is_not_a_fetch_failure() -> None:
    assert f.servicecatalog_catalog_failure(response(200, body()), broker()) == {}


def test_no_answer_names_the_connection_error() -> None:
    out = f.servicecatalog_catalog_failure(
        response(0, error="GET http://broker.example/v2/catalog: connection refused", error_reason="BrokerUnreachable"),
        broker(generation=3))
    assert out == {
        "condition": {"type": "Ready", "status": "False", "reason": "ErrorFetchingCatalog",
                      "message": "Error fetching the catalog (BrokerUnreachable): "
                                 "GET http://broker.example/v2/catalog: connection refused"},
        "status": {"observedGeneration": 3},
        "events": [{"type": "Warning", "reason": "ErrorFetchingCatalog",
                    "message": "Error fetching the catalog (BrokerUnreachable): "
                               "GET http://broker.example/v2/catalog: connection refused"}],
        "requeue_after": "30s"}


def test_a_missing_auth_secret_is_a_fetch_failure() -> None:
    out = f.servicecatalog_catalog_failure(
        response(0, sent=False, error="Secret default/auth not found", error_reason="BrokerAuthSecretMissing"),
        broker())
    assert out["condition"]["message"] == (
        "Error fetching the catalog (BrokerAuthSecretMissing): Secret default/auth not found")


@pytest.mark.parametrize(("answer", "said"), [
    (response(500, {"error": "Boom", "description": "the database is down"}), ": the database is down"),
    (response(401, {"error": "Unauthorized"}), ": Unauthorized"),
    (response(502, body_text="<html>Bad Gateway</html>"), ": <html>Bad Gateway</html>"),
    (response(404), ""),
])
def test_an_error_answer_names_the_brokers_description(answer: dict[str, Any], said: str) -> None:
    out = f.servicecatalog_catalog_failure(answer, broker())
    assert out["condition"]["message"] == f"Error fetching the catalog: the broker answered {answer['status']}{said}"
    assert out["condition"]["reason"] == "ErrorFetchingCatalog"


def test_a_later_retry_after_from_the_broker_wins() -> None:
    assert f.servicecatalog_catalog_failure(response(503, retry_after=120), broker())["requeue_after"] == "120s"
    assert f.servicecatalog_catalog_failure(response(503, retry_after=5), broker())["requeue_after"] == "30s"
    assert f.servicecatalog_catalog_failure(response(503), broker(), retry_after="1m")["requeue_after"] == "60s"
    assert f.servicecatalog_catalog_failure(response(503), broker(), retry_after="nonsense")["requeue_after"] == "30s"


def test_a_long_message_is_cut_to_one_line() -> None:
    out = f.servicecatalog_catalog_failure(response(500, {"description": "line\n" * 500}), broker())
    message = out["condition"]["message"]
    assert len(message) == catalog.MESSAGE_LIMIT and message.endswith("...") and "\n" not in message


def test_a_refused_write_reports_the_apiservers_sentence() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Invalid", "code": 422,
              "message": 'ClusterServiceClass "edge-id" is invalid: metadata.ownerReferences: Only one reference '
                         "can have Controller set to true"}
    failed = {"failed": True, "msg": "Failed to apply object: " + json.dumps(status)}
    out = f.servicecatalog_sync_failure(failed, broker(generation=2))
    assert out["condition"] == {
        "type": "Ready", "status": "False", "reason": "ErrorSyncingCatalog",
        "message": 'Error syncing the catalog: ClusterServiceClass "edge-id" is invalid: metadata.ownerReferences: '
                   "Only one reference can have Controller set to true"}
    assert out["status"] == {"observedGeneration": 2}
    assert out["requeue_after"] == "30s"


@pytest.mark.parametrize(("failed", "message"), [
    ({"msg": "Failed to update the status of x: forbidden (403)"}, "Failed to update the status of x: forbidden (403)"),
    ({"msg": "Failed to apply object: {not json"}, "Failed to apply object: {not json"),
    ({}, "the apiserver refused a write"),
    (None, "the apiserver refused a write"),
])
def test_a_refused_write_without_a_status_reports_the_tasks_message(failed: Any, message: str) -> None:
    out = f.servicecatalog_sync_failure(failed, broker(), retry_after="1m")
    assert out["condition"]["message"] == f"Error syncing the catalog: {message}"
    assert out["requeue_after"] == "60s"


# --- deleting a broker -------------------------------------------------------------------------


def instance(ns: str, name: str, ref: str | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": API, "kind": "ServiceInstance", "metadata": {"namespace": ns, "name": name},
                           "spec": spec}
    if ref is not None:
        obj["status"] = {"clusterServiceClassRef": {"name": ref}}
    return obj


def test_instances_of_the_brokers_classes_block_its_deletion() -> None:
    classes, _ = settled(body(service("mysql-service", "mysql"), service("Pg_Id", "pg", plans=[plan("p2")])))
    pg = catalog.class_name("Pg_Id")
    instances = [
        instance("b", "by-ref", ref="mysql-service"),
        instance("a", "by-hashed-ref", ref=pg),
        instance("c", "by-name-only", clusterServiceClassExternalName="pg", clusterServicePlanExternalName="x"),
        instance("c", "by-id-only", clusterServiceClassExternalID="Pg_Id"),
        instance("c", "by-k8s-name-only", clusterServiceClassName="mysql-service"),
        instance("d", "other-broker", ref="someone-elses"),
        # A reference wins over the spec's names: this one uses another broker's "mysql".
        instance("d", "resolved-elsewhere", ref="someone-elses", clusterServiceClassExternalName="mysql"),
        instance("d", "unknown-name", clusterServiceClassExternalName="redis"),
        instance("d", "nothing-named"),
    ]
    assert f.servicecatalog_blocking_instances(instances, classes) == [
        "a/by-hashed-ref", "b/by-ref", "c/by-id-only", "c/by-k8s-name-only", "c/by-name-only"]


def test_an_instance_being_deleted_still_blocks() -> None:
    classes, _ = settled(body())
    gone = instance("a", "leaving", ref="mysql-service")
    gone["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert f.servicecatalog_blocking_instances([gone], classes) == ["a/leaving"]


def test_nothing_blocks_without_instances_or_classes() -> None:
    classes, _ = settled(body())
    assert f.servicecatalog_blocking_instances([], classes) == []
    assert f.servicecatalog_blocking_instances(None, None) == []
    assert f.servicecatalog_blocking_instances([instance("a", "x", clusterServiceClassExternalName="")], []) == []
    assert f.servicecatalog_blocking_instances([instance("a", "x", clusterServiceClassExternalName={"odd": 1})],
                                               classes) == []


def test_a_blocked_deletion_names_five_instances_and_counts_the_rest() -> None:
    out = f.servicecatalog_broker_blocked(broker(generation=4), [f"ns/i{n}" for n in range(7)])
    assert out["condition"] == {
        "type": "Ready", "status": "False", "reason": "DeleteBlockedByExistingInstances",
        "message": "waiting for ServiceInstances ns/i0, ns/i1, ns/i2, ns/i3, ns/i4 and 2 more to be deleted"}
    assert out["status"] == {"observedGeneration": 4}
    assert out["events"] == [{"type": "Warning", "reason": "DeleteBlockedByExistingInstances",
                              "message": out["condition"]["message"]}]
    two = f.servicecatalog_broker_blocked(broker(), ["ns/a", "ns/b"])
    assert two["condition"]["message"] == "waiting for ServiceInstances ns/a, ns/b to be deleted"
    one = f.servicecatalog_broker_blocked(broker(), ["ns/a"])
    assert one["condition"]["message"] == "waiting for ServiceInstance ns/a to be deleted"


def test_nothing_blocking_reports_nothing() -> None:
    assert f.servicecatalog_broker_blocked(broker(), []) == {"condition": {}, "status": {}, "events": []}


def test_a_blocked_deletion_tells_an_event_only_when_the_list_changes() -> None:
    first = f.servicecatalog_broker_blocked(broker(), ["ns/a", "ns/b"])
    again = broker(conditions=[{**first["condition"], "lastTransitionTime": "2024-01-01T00:00:00Z"}])
    assert f.servicecatalog_broker_blocked(again, ["ns/a", "ns/b"])["events"] == []
    assert len(f.servicecatalog_broker_blocked(again, ["ns/b"])["events"]) == 1


# --- through Ansible ---------------------------------------------------------------------------


def test_the_plugin_loads_in_ansible(tmp_path: Path) -> None:
    classes, plans = settled(body())
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "Relist and look for blocking instances",
        "vars": {"b": broker(), "catalog_body": body(service(), service("b", "b", plans=[plan("b1", "one")])),
                 "classes": classes, "plans": plans, "instances": [instance("ns", "db", ref="mysql-service")]},
        "ansible.builtin.copy": {"dest": str(tmp_path / "out.json"), "mode": "0600", "content": """{{ {
            'plan': catalog_body | playbook_operator.servicecatalog.servicecatalog_catalog(
                      b, classes, plans, relist_duration='10m', now=now(utc=true)),
            'blocking': instances | playbook_operator.servicecatalog.servicecatalog_blocking_instances(classes),
            'selector': b | playbook_operator.servicecatalog.servicecatalog_broker_selector,
          } | to_json }}"""},
    }]}]
    playbook = tmp_path / "play.json"
    playbook.write_text(json.dumps(play))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_NOCOLOR": "true"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert [m["metadata"]["name"] for m in result["plan"]["apply"]] == ["b", "b1"]
    # Integers stay integers through Ansible's templating; Ansible's now() is a clock the filter reads.
    status = result["plan"]["status"]
    stamp = datetime.datetime.strptime(status.pop("lastCatalogRetrievalTime"), "%Y-%m-%dT%H:%M:%SZ")
    assert abs((stamp - datetime.datetime.now(datetime.UTC).replace(tzinfo=None)).total_seconds()) < 120
    assert status == {"catalog": {"classes": 2, "plans": 2}, "observedGeneration": 1}
    assert result["plan"]["requeue_after"] == "600s"
    assert result["blocking"] == ["ns/db"]
    assert result["selector"] == f"{BROKER_LABEL}=ups"
