"""The service catalog on a real cluster against real brokers (hack/osb): the catalog synced
into classes and plans, provisioning sync and async, failures in the broker's own words,
credentials bound into a Secret and projected by a ServiceBinding into a PodSet, deletion in
order, orphan mitigation after a timeout, and a broker restarted mid-operation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.servicecatalogs import API, Catalog, secret_data, started, watches_for
from tests.support import Cluster, OperatorProcess, conditions_of, wait_for

StartOperator = Callable[..., OperatorProcess]


@pytest.fixture
def catalog(cluster: Cluster, namespace: str, tmp_path: Path, start_operator: StartOperator) -> Iterator[Catalog]:
    """The openbroker (async operations of 3 s), registered, with an operator for this test."""
    operator = start_operator(watches=watches_for(tmp_path / "watches.yaml", namespace))
    with started(Catalog(cluster, namespace, tmp_path, broker_args=["--async-seconds", "3"]), operator) as cat:
        yield cat


def classes_of(cluster: Cluster, broker: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "clusterserviceclasses", "-l",
                                       f"servicecatalog.playbook-operator.io/broker={broker}", "-o",
                                       "json").stdout)["items"]
    return {c["spec"]["externalName"]: c for c in items}


def plans_of(cluster: Cluster, broker: str) -> dict[tuple[str, str], dict[str, Any]]:
    items = json.loads(cluster.kubectl("get", "clusterserviceplans", "-l",
                                       f"servicecatalog.playbook-operator.io/broker={broker}", "-o",
                                       "json").stdout)["items"]
    return {(p["spec"]["clusterServiceClassRef"]["name"], p["spec"]["externalName"]): p for p in items}


def test_the_catalog_becomes_classes_and_plans_and_removals_are_marked(catalog: Catalog, cluster: Cluster) -> None:
    classes = classes_of(cluster, catalog.name)
    assert set(classes) == {catalog.service("sync-db"), catalog.service("async-db")}
    sync = classes[catalog.service("sync-db")]
    assert sync["spec"]["externalID"] == catalog.prefix + "sync-db-id"
    assert sync["spec"]["clusterServiceBrokerName"] == catalog.name
    assert sync["spec"]["planUpdatable"] is True
    assert sync["metadata"]["ownerReferences"][0]["name"] == catalog.name
    plans = plans_of(cluster, catalog.name)
    assert {name for (cls, name) in plans if cls == sync["metadata"]["name"]} == {"small", "large", "broken"}
    broker = catalog.get("ClusterServiceBroker", catalog.name) or {}
    assert broker["status"]["catalog"] == {"classes": 2, "plans": len(plans)}
    assert "FetchedCatalog" in cluster.kubectl("get", "csb", catalog.name).stdout

    # The broker drops a service: its class and plans are marked, not deleted, and no new
    # instance may use them.
    catalog.broker.extra_args += ["--omit-service", "async-db"]
    catalog.broker.restart()
    cluster.kubectl("patch", "clusterservicebroker", catalog.name, "--type=merge",
                    "-p", '{"spec": {"relistRequests": 1}}')
    gone = catalog.service("async-db")
    wait_for(lambda: (classes_of(cluster, catalog.name)[gone].get("status") or {}).get("removedFromBrokerCatalog"),
             what="the dropped class to be marked removed")

    def dropped_plans_marked() -> bool:
        plans = [p for (cls, _), p in plans_of(cluster, catalog.name).items()
                 if cls == classes[gone]["metadata"]["name"]]
        return len(plans) == 2 and all((p.get("status") or {}).get("removedFromBrokerCatalog") for p in plans)
    wait_for(dropped_plans_marked, what="the dropped class's plans to be marked removed")
    kept = classes_of(cluster, catalog.name)[catalog.service("sync-db")]
    assert not (kept.get("status") or {}).get("removedFromBrokerCatalog")
    assert conditions_of(kept)["Ready"]["reason"] == "OfferedByBroker"
    dropped = conditions_of(classes_of(cluster, catalog.name)[gone])["Ready"]
    assert (dropped["status"], dropped["reason"]) == ("False", "RemovedFromBrokerCatalog")
    catalog.instance("late", "async-db", "standard")
    catalog.wait_condition("ServiceInstance", "late", "ServiceClassRemovedFromBrokerCatalog", status="False")


def test_sync_provision_bind_project_into_a_podset_then_delete_in_order(catalog: Catalog, cluster: Cluster,
                                                                       namespace: str) -> None:
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db-params"},
                              "stringData": {"extra": json.dumps({"replicas": 2})}}), namespace)
    catalog.instance("orders", "sync-db", "small", parameters={"storage_gb": 5},
                     parametersFrom=[{"secretKeyRef": {"name": "db-params", "key": "extra"}}])
    catalog.wait_condition("ServiceInstance", "orders", "ProvisionedSuccessfully", status="True")
    instance = catalog.get("ServiceInstance", "orders") or {}
    uid = instance["metadata"]["uid"]
    (put,) = catalog.requests("PUT", f"/v2/service_instances/{uid}")
    assert put["headers"].get("X-Broker-Api-Version", put["headers"].get("X-Broker-API-Version")) == "2.17"
    assert put["query"].get("accepts_incomplete") in ("true", ["true"])
    assert put["body"]["parameters"] == {"storage_gb": 5, "replicas": 2}
    assert put["body"]["context"]["namespace"] == namespace
    assert instance["status"]["provisionStatus"] == "Provisioned"

    catalog.credential("orders-creds", "orders", secretName="orders-db")
    catalog.wait_condition("ServiceCredential", "orders-creds", "InjectedBindResult", status="True")
    cred = catalog.get("ServiceCredential", "orders-creds") or {}
    assert cred["status"]["binding"] == {"name": "orders-db"}
    data = secret_data(cluster, namespace, "orders-db")
    assert {"type", "provider", "host", "port", "username", "password", "database"} <= set(data)
    assert data["type"] == "postgresql" and data["port"] == "5432"
    secret = cluster.get("secret", "orders-db", namespace) or {}
    assert secret["metadata"]["ownerReferences"][0]["uid"] == cred["metadata"]["uid"]
    assert "password" not in json.dumps(cred["status"]).lower() or data["password"] not in json.dumps(cred)

    # servicebinding.io: the credential is a Provisioned Service; its Secret goes into the PodSet.
    cluster.apply(json.dumps({
        "apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet", "metadata": {"name": "orders"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "orders"}},
                 "template": {"metadata": {"labels": {"app": "orders"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example/orders:1"}]}}}}),
        namespace)
    cluster.apply(json.dumps({
        "apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding", "metadata": {"name": "orders-db"},
        "spec": {"service": {"apiVersion": API, "kind": "ServiceCredential", "name": "orders-creds"},
                 "workload": {"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                              "name": "orders"}}}), namespace)

    def projected() -> bool:
        podset = cluster.get("podset", "orders", namespace) or {}
        volumes = podset["spec"]["template"]["spec"].get("volumes") or []
        return any((v.get("projected") or {}).get("sources", [{}])[0].get("secret", {}).get("name") == "orders-db"
                   or (v.get("secret") or {}).get("secretName") == "orders-db" for v in volumes)
    wait_for(projected, what="the credential Secret projected into the PodSet template")

    # Deleting the instance first: it waits for its credential, and never deletes it.
    catalog.delete("ServiceInstance", "orders")
    catalog.wait_condition("ServiceInstance", "orders", "DeprovisionBlockedByExistingCredentials", status="False")
    assert catalog.requests("DELETE", f"/v2/service_instances/{uid}") == []
    assert catalog.get("ServiceCredential", "orders-creds") is not None

    cluster.kubectl("delete", "servicebinding", "orders-db", "-n", namespace, "--timeout=60s")
    catalog.delete("ServiceCredential", "orders-creds")
    catalog.wait_gone("ServiceCredential", "orders-creds")
    (unbind,) = catalog.requests("DELETE", f"/service_bindings/{cred['metadata']['uid']}")
    assert unbind["query"].get("service_id") in (catalog.prefix + "sync-db-id", [catalog.prefix + "sync-db-id"])
    wait_for(lambda: cluster.get("secret", "orders-db", namespace) is None, what="the credential Secret to go")
    catalog.wait_gone("ServiceInstance", "orders")
    assert catalog.requests("DELETE", f"/v2/service_instances/{uid}")
    assert catalog.broker_status(f"/v2/service_instances/{uid}") in (404, 410)  # the broker has it no more


def test_plan_updates_unknown_plans_and_a_broker_that_waits_for_its_instances(catalog: Catalog,
                                                                              cluster: Cluster) -> None:
    catalog.instance("grow", "sync-db", "small", parameters={"storage_gb": 5})
    catalog.instance("fixed", "async-db", "standard")
    catalog.instance("typo", "sync-db", "smal")
    typo = catalog.wait_condition("ServiceInstance", "typo", "ReferencesNonexistentServicePlan", status="False")
    assert "its plans: broken, large, small" in typo["message"]

    catalog.wait_condition("ServiceInstance", "grow", "ProvisionedSuccessfully", status="True")
    catalog.apply({"apiVersion": API, "kind": "ServiceInstance", "metadata": {"name": "grow"},
                   "spec": {"clusterServiceClassExternalName": catalog.service("sync-db"),
                            "clusterServicePlanExternalName": "large", "parameters": {"storage_gb": 50}}})
    catalog.wait_condition("ServiceInstance", "grow", "InstanceUpdatedSuccessfully", status="True")
    uid = (catalog.get("ServiceInstance", "grow") or {})["metadata"]["uid"]
    (patch,) = catalog.requests("PATCH", f"/v2/service_instances/{uid}")
    assert patch["body"]["plan_id"] == catalog.prefix + "sync-db-large"
    assert patch["body"]["previous_values"]["plan_id"] == catalog.prefix + "sync-db-small"
    assert patch["body"]["parameters"] == {"storage_gb": 50}
    grown = catalog.get("ServiceInstance", "grow") or {}
    assert grown["status"]["externalProperties"]["clusterServicePlanExternalName"] == "large"

    # async-db's plans are not updatable: the change is refused here, not sent.
    catalog.wait_condition("ServiceInstance", "fixed", "ProvisionedSuccessfully", status="True")
    cluster.kubectl("patch", "serviceinstance", "fixed", "-n", catalog.namespace, "--type=merge",
                    "-p", '{"spec": {"clusterServicePlanExternalName": "flaky"}}')
    catalog.wait_condition("ServiceInstance", "fixed", "UpdateInstanceNotAllowed", ctype="Failed", status="True")
    fixed_uid = (catalog.get("ServiceInstance", "fixed") or {})["metadata"]["uid"]
    assert catalog.requests("PATCH", fixed_uid) == []

    # A broker waits for the instances of its classes, and keeps its catalog meanwhile.
    cluster.kubectl("delete", "clusterservicebroker", catalog.name, "--wait=false")
    blocked = catalog.wait_condition("ClusterServiceBroker", catalog.name, "DeleteBlockedByExistingInstances",
                                     status="False")
    assert f"{catalog.namespace}/grow" in blocked["message"]
    for name in ("grow", "fixed", "typo"):
        catalog.delete("ServiceInstance", name)
    catalog.wait_gone("ClusterServiceBroker", catalog.name)
    assert catalog.requests("DELETE", uid) and catalog.requests("DELETE", fixed_uid)


def test_async_provision_and_failing_plans_in_the_brokers_words(catalog: Catalog) -> None:
    catalog.instance("big", "async-db", "standard")
    catalog.instance("broken", "sync-db", "broken")
    catalog.instance("flaky", "async-db", "flaky")
    catalog.wait_condition("ServiceInstance", "big", "Provisioning", status="False")
    assert (catalog.get("ServiceInstance", "big") or {})["status"]["asyncOpInProgress"] is True
    catalog.wait_condition("ServiceInstance", "big", "ProvisionedSuccessfully", status="True")
    polls = catalog.requests("GET", "/last_operation")
    assert polls and all("operation" in p["query"] for p in polls)

    failed = catalog.wait_condition("ServiceInstance", "broken", "ProvisionCallFailed", ctype="Failed",
                                    status="True")
    assert "plan broken cannot be provisioned: no capacity in region test-1" in failed["message"]
    broken_uid = (catalog.get("ServiceInstance", "broken") or {})["metadata"]["uid"]
    assert catalog.requests("DELETE", broken_uid) == []  # a 4xx leaves no orphan

    failed = catalog.wait_condition("ServiceInstance", "flaky", "ProvisionCallFailed", ctype="Failed",
                                    status="True")
    assert "provisioning failed: disk quota exceeded on pool p-7" in failed["message"]
    catalog.wait_condition("ServiceInstance", "flaky", "OrphanMitigationSuccessful", ctype="OrphanMitigation",
                           status="False")
    flaky_uid = (catalog.get("ServiceInstance", "flaky") or {})["metadata"]["uid"]
    assert catalog.requests("DELETE", flaky_uid)
    reasons = {e["reason"] for e in catalog.events("flaky")}
    assert {"ProvisionCallFailed", "StartingOrphanMitigation"} <= reasons


def test_a_broker_restarted_mid_operation_is_polled_until_done(catalog: Catalog) -> None:
    catalog.instance("survivor", "async-db", "standard")
    wait_for(lambda: ((catalog.get("ServiceInstance", "survivor") or {}).get("status") or {})
             .get("asyncOpInProgress"), what="the provision to be in progress")
    catalog.broker.kill()
    catalog.wait_condition("ServiceInstance", "survivor", "Provisioning", status="False")
    catalog.broker.start()
    catalog.wait_condition("ServiceInstance", "survivor", "ProvisionedSuccessfully", status="True")
    uid = (catalog.get("ServiceInstance", "survivor") or {})["metadata"]["uid"]
    assert len(catalog.requests("PUT", f"/v2/service_instances/{uid}")) == 1


def test_orphan_mitigation_after_a_broker_timeout(cluster: Cluster, namespace: str, tmp_path: Path,
                                                  start_operator: StartOperator) -> None:
    operator = start_operator(watches=watches_for(tmp_path / "watches.yaml", namespace, request_timeout=2))
    edge = Catalog(cluster, namespace, tmp_path, "edgebroker", broker_args=["--slow-seconds", "6"])
    with started(edge, operator) as cat:
        cat.instance("stuck", "edge", "slow")
        cat.wait_condition("ServiceInstance", "stuck", "StartingOrphanMitigation", ctype="OrphanMitigation",
                           status="True")
        cat.wait_condition("ServiceInstance", "stuck", "OrphanMitigationSuccessful", ctype="OrphanMitigation",
                           status="False")
        uid = (cat.get("ServiceInstance", "stuck") or {})["metadata"]["uid"]
        assert cat.requests("DELETE", f"/v2/service_instances/{uid}")
        assert "ErrorCallingProvision" in {e["reason"] for e in cat.events("stuck")}


def test_a_5xx_and_a_stale_maintenance_info(cluster: Cluster, namespace: str, tmp_path: Path,
                                            start_operator: StartOperator) -> None:
    operator = start_operator(watches=watches_for(tmp_path / "watches.yaml", namespace))
    edge = Catalog(cluster, namespace, tmp_path, "edgebroker", broker_args=["--delete-failures", "2"])
    with started(edge, operator) as cat:
        # The broker moves its plan to maintenance_info 3.0.0 after the catalog was listed.
        cat.broker.set_maintenance("3.0.0")
        cat.instance("kept", "edge", "maintained")
        # A 500 leaves the broker's outcome unknown: orphan mitigation, through two refused DELETEs.
        cat.instance("err", "edge", "error500")

        cat.wait_condition("ServiceInstance", "kept", "ProvisionedSuccessfully", status="True")
        uid = (cat.get("ServiceInstance", "kept") or {})["metadata"]["uid"]
        puts = [r["body"].get("maintenance_info", {}).get("version")
                for r in cat.requests("PUT", f"/v2/service_instances/{uid}")]
        assert puts[0] == "2.0.0" and puts[-1] == "3.0.0", puts
        assert "MaintenanceInfoConflict" in {e["reason"] for e in cat.events("kept")}

        cat.wait_condition("ServiceInstance", "err", "OrphanMitigationSuccessful", ctype="OrphanMitigation",
                           status="False")
        err_uid = (cat.get("ServiceInstance", "err") or {})["metadata"]["uid"]
        assert len(cat.requests("DELETE", f"/v2/service_instances/{err_uid}")) >= 3
        reasons = {e["reason"] for e in cat.events("err")}
        assert {"ErrorCallingProvision", "StartingOrphanMitigation", "OrphanMitigationFailed"} <= reasons
        ready = cat.get("ServiceInstance", "err") or {}
        assert "internal error while provisioning" in json.dumps(ready["status"]["conditions"])


def test_async_binding_polled_then_fetched(cluster: Cluster, namespace: str, tmp_path: Path,
                                           start_operator: StartOperator) -> None:
    operator = start_operator(watches=watches_for(tmp_path / "watches.yaml", namespace))
    edge = Catalog(cluster, namespace, tmp_path, "edgebroker", broker_args=["--async-seconds", "3"])
    with started(edge, operator) as cat:
        cat.instance("cache", "edge", "async-bind")
        cat.wait_condition("ServiceInstance", "cache", "ProvisionedSuccessfully", status="True")
        cat.credential("cache-creds", "cache")
        cat.wait_condition("ServiceCredential", "cache-creds", "Binding", status="False")
        cat.wait_condition("ServiceCredential", "cache-creds", "InjectedBindResult", status="True")
        data = secret_data(cluster, namespace, "cache-creds")
        assert data["type"] == "redis" and "uri" in data and "password" in data
        cred_uid = (cat.get("ServiceCredential", "cache-creds") or {})["metadata"]["uid"]
        (bind,) = cat.requests("PUT", f"/service_bindings/{cred_uid}")
        assert bind["query"].get("accepts_incomplete") in ("true", ["true"])
        assert cat.requests("GET", f"/service_bindings/{cred_uid}/last_operation")
        fetched = [r for r in cat.requests("GET", f"/service_bindings/{cred_uid}") if "last_operation" not in r["path"]]
        assert len(fetched) == 1
        # The broker's answers are in the request log with the credentials redacted; the
        # credential's status names the Secret and nothing of what is in it.
        status = json.dumps((cat.get("ServiceCredential", "cache-creds") or {}).get("status"))
        assert data["password"] not in status and data["uri"] not in status
