"""The ServiceInstance and ServiceCredential machines without a cluster or a broker: each test
drives an object through reconciles, answering each request as a broker would, with a fake
clock, and checks the request sent, the status kept and the conditions and Events told."""

from __future__ import annotations

import copy
import datetime
import sys
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils import (
    credential,
    instance,
)
from ansible_collections.playbook_operator.servicecatalog.plugins.module_utils.answers import (
    Answer,
    poll_after,
)

pytestmark = pytest.mark.unit

T0 = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
BROKER = {"metadata": {"name": "b1", "uid": "broker-uid"}, "spec": {"url": "http://127.0.0.1:1", "relistRequests": 2}}


def at(seconds: float) -> str:
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def klass(name: str = "db", *, updatable: bool = True, bindable: bool = True, removed: bool = False,
          retrievable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-id"}, "status": {"removedFromBrokerCatalog": removed},
            "spec": {"externalName": name, "externalID": f"{name}-id", "clusterServiceBrokerName": "b1",
                     "planUpdatable": updatable, "bindable": bindable, "bindingsRetrievable": retrievable}}


def plan(name: str, cls: str = "db", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"{cls}-{name}"}, "status": {},
            "spec": {"externalName": name, "externalID": f"{cls}-{name}", "clusterServiceBrokerName": "b1",
                     "clusterServiceClassRef": {"name": f"{cls}-id"}, **spec}}


def new_instance(plan_name: str = "small", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "orders", "namespace": "shop", "uid": "inst-uid", "generation": 1},
            "spec": {"clusterServiceClassExternalName": "db", "clusterServicePlanExternalName": plan_name, **spec}}


def facts(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "classes": [klass()], "plans": [plan("small"), plan("large"), plan("slow", maximumPollingDuration=60)],
        "brokers": [BROKER], "credentials": [], "deleting": False,
        "namespaces": [{"metadata": {"name": "shop", "uid": "ns-uid"}},
                       {"metadata": {"name": "kube-system", "uid": "cluster-uid"}}]}
    base.update(extra)
    return base


def answer(status: int = 0, body: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"sent": True, "status": status, "body": dict(body or {}), **extra}


def apply(obj: dict[str, Any], decided: Mapping[str, Any]) -> dict[str, Any]:
    """The object after the role wrote the decision (k8s_status merges fields and conditions)."""
    obj = copy.deepcopy(obj)
    st = obj.setdefault("status", {})
    st.update(copy.deepcopy(decided["status"]))
    conditions = {c["type"]: c for c in st.get("conditions", [])}
    conditions.update({c["type"]: dict(c) for c in decided["conditions"]})
    st["conditions"] = list(conditions.values())
    return obj


def cond(obj: Mapping[str, Any], ctype: str) -> dict[str, str]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


class Reconciler:
    """Reconciles one object through a machine, answering its requests."""

    def __init__(self, machine: Any, obj: dict[str, Any], facts: dict[str, Any]) -> None:
        self.machine, self.obj, self.facts = machine, obj, facts
        self.sent: list[dict[str, Any]] = []

    def step(self, reply: Mapping[str, Any] | None = None, *, now: float = 0) -> dict[str, Any]:
        decided = self.machine.step(self.obj, self.facts, at(now))
        if decided["request"] is not None:
            assert reply is not None, f"a request was made: {decided['request']}"
            self.sent.append(decided["request"])
            decided = self.machine.outcome(self.obj, decided, reply, at(now))
        else:
            assert reply is None, "no request was made"
        self.obj = apply(self.obj, decided)
        return decided


# ----- ServiceInstance -----------------------------------------------------------------------------


def test_a_new_instance_is_provisioned_with_the_uid_as_id_and_the_kubernetes_context() -> None:
    r = Reconciler(instance, new_instance(parameters={"storage_gb": 5},
                                          parametersFrom=[{"secretKeyRef": {"name": "s", "key": "k"}}]), facts())
    decided = r.step(answer(201, {"dashboard_url": "https://dash/1"}))
    sent = r.sent[0]
    assert (sent["method"], sent["path"]) == ("PUT", "/v2/service_instances/inst-uid")
    assert sent["query"] == {"accepts_incomplete": True}
    assert sent["body"]["service_id"] == "db-id" and sent["body"]["plan_id"] == "db-small"
    assert sent["body"]["parameters"] == {"storage_gb": 5}
    assert sent["parameters_from"] == [{"secretKeyRef": {"name": "s", "key": "k"}}]
    assert sent["parameters_namespace"] == "shop"
    assert sent["body"]["context"] == {"platform": "kubernetes", "namespace": "shop", "clusterid": "cluster-uid",
                                       "instance_name": "orders"}
    assert (sent["body"]["organization_guid"], sent["body"]["space_guid"]) == ("cluster-uid", "ns-uid")
    assert cond(r.obj, "Ready")["status"] == "True"
    assert cond(r.obj, "Ready")["reason"] == "ProvisionedSuccessfully"
    st = r.obj["status"]
    assert st["provisionStatus"] == "Provisioned" and st["dashboardURL"] == "https://dash/1"
    assert st["clusterServiceClassRef"] == {"name": "db-id"} and st["clusterServicePlanRef"] == {"name": "db-small"}
    assert st["externalProperties"]["clusterServicePlanExternalID"] == "db-small"
    assert decided["events"] == [{"type": "Normal", "reason": "ProvisionedSuccessfully",
                                  "message": "The instance was provisioned successfully"}]
    assert r.step()["request"] is None  # nothing more to do at this generation


def test_an_async_provision_is_polled_with_its_operation_honouring_retry_after() -> None:
    r = Reconciler(instance, new_instance(), facts())
    decided = r.step(answer(202, {"operation": "op-1"}))
    assert r.obj["status"]["asyncOpInProgress"] is True
    assert cond(r.obj, "Ready")["reason"] == "Provisioning"
    assert decided["requeue_after"] == "1s"
    decided = r.step(answer(200, {"state": "in progress"}, retry_after=7), now=10)
    poll = r.sent[-1]
    assert (poll["method"], poll["path"]) == ("GET", "/v2/service_instances/inst-uid/last_operation")
    assert poll["query"] == {"service_id": "db-id", "plan_id": "db-small", "operation": "op-1"}
    assert decided["requeue_after"] == "7s"
    assert decided["events"] == []  # still provisioning: nothing new to tell
    r.step(answer(200, {"state": "succeeded"}), now=20)
    assert cond(r.obj, "Ready")["status"] == "True"
    assert r.obj["status"]["asyncOpInProgress"] is False


def test_without_retry_after_polls_slow_down_as_an_operation_goes_on() -> None:
    assert poll_after(None, at(0), T0 + datetime.timedelta(seconds=2)) == 1
    assert poll_after(None, at(0), T0 + datetime.timedelta(seconds=120)) == 30
    assert poll_after(None, at(0), T0 + datetime.timedelta(hours=2)) == 60


def test_a_refused_provision_fails_with_the_brokers_description_and_no_orphan_mitigation() -> None:
    r = Reconciler(instance, new_instance(), facts())
    decided = r.step(answer(400, {"description": "no capacity in region test-1"}))
    failed = cond(r.obj, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "ProvisionCallFailed"
    assert "no capacity in region test-1" in failed["message"] and "400 Bad Request" in failed["message"]
    assert not r.obj["status"].get("orphanMitigationInProgress")
    assert decided["requeue_after"] == ""
    assert [e["type"] for e in decided["events"]] == ["Warning", "Warning"]
    assert r.step()["request"] is None  # not retried until the spec changes
    r.obj["metadata"]["generation"] = 2
    r.step(answer(201))
    assert cond(r.obj, "Ready")["status"] == "True" and cond(r.obj, "Failed")["status"] == "False"


@pytest.mark.parametrize("reply", [answer(0, timed_out=True, error="timed out"), answer(500, {"description": "boom"}),
                                   answer(504)])
def test_a_provision_of_unknown_outcome_is_cleaned_up_then_tried_again(reply: dict[str, Any]) -> None:
    r = Reconciler(instance, new_instance(), facts())
    r.step(reply)
    assert r.obj["status"]["orphanMitigationInProgress"] is True
    assert cond(r.obj, "OrphanMitigation")["status"] == "True"
    r.step(answer(500), now=5)  # the broker refuses the delete: keep trying
    assert cond(r.obj, "OrphanMitigation")["reason"] == "OrphanMitigationFailed"
    assert r.obj["status"]["orphanMitigationInProgress"] is True
    decided = r.step(answer(200), now=20)
    assert [s["method"] for s in r.sent] == ["PUT", "DELETE", "DELETE"]
    assert r.sent[1]["query"] == {"accepts_incomplete": True, "service_id": "db-id", "plan_id": "db-small"}
    assert cond(r.obj, "OrphanMitigation") == {"type": "OrphanMitigation", "status": "False",
                                               "reason": "OrphanMitigationSuccessful",
                                               "message": "The broker deleted what the failed provision left"}
    assert decided["requeue_after"] == "10s"  # half the time since the first attempt
    r.step(answer(201), now=30)
    assert r.sent[-1]["method"] == "PUT" and cond(r.obj, "Ready")["status"] == "True"


def test_an_unreachable_broker_is_retried_without_orphan_mitigation() -> None:
    r = Reconciler(instance, new_instance(), facts())
    decided = r.step(answer(0, error="connection refused", error_reason="BrokerUnreachable"))
    assert cond(r.obj, "Ready")["reason"] == "ErrorCallingProvision"
    assert "connection refused" in cond(r.obj, "Ready")["message"]
    assert not r.obj["status"].get("orphanMitigationInProgress")
    assert decided["requeue_after"] == "2s"
    decided = r.step(answer(0, error="connection refused", error_reason="BrokerUnreachable"), now=100)
    assert decided["requeue_after"] == "50s"


def test_a_failed_async_provision_is_cleaned_up_and_not_tried_again() -> None:
    r = Reconciler(instance, new_instance(), facts())
    r.step(answer(202, {"operation": "op"}))
    r.step(answer(200, {"state": "failed", "description": "disk quota exceeded on pool p-7"}), now=3)
    assert "disk quota exceeded on pool p-7" in cond(r.obj, "Failed")["message"]
    assert r.obj["status"]["orphanMitigationInProgress"] is True
    r.step(answer(410), now=4)
    assert r.sent[-1]["method"] == "DELETE"
    assert r.step(now=100)["request"] is None
    assert cond(r.obj, "Failed")["status"] == "True"


def test_polling_beyond_the_plans_maximum_polling_duration_starts_orphan_mitigation() -> None:
    r = Reconciler(instance, new_instance("slow"), facts())
    r.step(answer(202, {"operation": "op"}))
    r.step(answer(200, {"state": "in progress"}), now=30)
    assert r.obj["status"]["asyncOpInProgress"] is True
    r.step(answer(200, {"state": "in progress"}), now=61)
    assert cond(r.obj, "Ready")["reason"] == "AsyncOperationTimedOut"
    assert r.obj["status"]["orphanMitigationInProgress"] is True
    r.step(answer(200), now=62)
    assert r.sent[-1]["method"] == "DELETE"


def test_a_maintenance_info_conflict_asks_the_broker_to_list_its_catalog_again() -> None:
    r = Reconciler(instance, new_instance("maintained"),
                   facts(plans=[plan("maintained", maintenanceInfo={"version": "1.0.0", "description": "d"})]))
    decided = r.step(answer(422, {"error": "MaintenanceInfoConflict", "description": "stale"}))
    assert r.sent[0]["body"]["maintenance_info"] == {"version": "1.0.0"}
    assert decided["relist_broker"] == "b1" and decided["broker"]["spec"]["relistRequests"] == 2
    assert cond(r.obj, "Ready")["reason"] == "MaintenanceInfoConflict"
    assert decided["requeue_after"]


def test_a_plan_change_is_an_update_when_the_plan_is_updatable() -> None:
    r = Reconciler(instance, new_instance(parameters={"a": 1}), facts())
    r.step(answer(201))
    r.obj["spec"]["clusterServicePlanExternalName"] = "large"
    r.obj["metadata"]["generation"] = 2
    r.step(answer(200))
    patch = r.sent[-1]
    assert patch["method"] == "PATCH" and patch["body"]["plan_id"] == "db-large"
    assert patch["body"]["previous_values"] == {"service_id": "db-id", "plan_id": "db-small"}
    assert "organization_guid" not in patch["body"]
    assert cond(r.obj, "Ready")["reason"] == "InstanceUpdatedSuccessfully"
    assert r.obj["status"]["externalProperties"]["clusterServicePlanExternalName"] == "large"


def test_a_plan_change_is_refused_when_the_class_is_not_updatable() -> None:
    r = Reconciler(instance, new_instance(), facts(classes=[klass(updatable=False)]))
    r.step(answer(201))
    r.obj["spec"]["clusterServicePlanExternalName"] = "large"
    r.obj["metadata"]["generation"] = 2
    r.step()
    assert cond(r.obj, "Failed")["reason"] == "UpdateInstanceNotAllowed"
    assert "not updatable" in cond(r.obj, "Ready")["message"]


def test_an_unknown_class_or_plan_is_a_condition_naming_what_exists() -> None:
    r = Reconciler(instance, new_instance(clusterServiceClassExternalName="nope"), facts())
    r.step()
    assert cond(r.obj, "Ready")["reason"] == "ReferencesNonexistentServiceClass"
    r = Reconciler(instance, new_instance("huge"), facts())
    r.step()
    assert cond(r.obj, "Ready")["reason"] == "ReferencesNonexistentServicePlan"
    assert "its plans: large, slow, small" in cond(r.obj, "Ready")["message"]
    r = Reconciler(instance, new_instance(), facts(classes=[klass(removed=True)]))
    r.step()
    assert cond(r.obj, "Ready")["reason"] == "ServiceClassRemovedFromBrokerCatalog"


def test_deletion_waits_for_credentials_then_deprovisions_asynchronously() -> None:
    r = Reconciler(instance, new_instance(), facts())
    r.step(answer(201))
    scred = {"metadata": {"name": "orders-cred"}, "spec": {"instanceRef": {"name": "orders"}}}
    r.facts = facts(deleting=True, credentials=[scred])
    decided = r.step()
    assert cond(r.obj, "Ready")["reason"] == "DeprovisionBlockedByExistingCredentials"
    assert "orders-cred" in cond(r.obj, "Ready")["message"]
    assert decided["requeue_after"] == "30s" and not decided["done"]
    r.facts = facts(deleting=True)
    decided = r.step(answer(202, {"operation": "del-1"}), now=1)
    assert r.sent[-1]["method"] == "DELETE" and not decided["done"] and decided["requeue_after"]
    decided = r.step(answer(200, {"state": "in progress"}), now=2)
    assert r.sent[-1]["query"]["operation"] == "del-1" and not decided["done"]
    decided = r.step(answer(200, {"state": "succeeded"}), now=4)
    assert decided["done"]


def test_a_refused_deprovision_keeps_the_instance_and_says_why() -> None:
    r = Reconciler(instance, new_instance(), facts())
    r.step(answer(201))
    r.facts = facts(deleting=True)
    decided = r.step(answer(400, {"description": "instance is locked"}))
    assert not decided["done"] and decided["requeue_after"]
    assert cond(r.obj, "Ready")["reason"] == "DeprovisionCallFailed"
    assert "instance is locked" in cond(r.obj, "Ready")["message"]
    assert r.step(answer(410), now=10)["done"]


def test_an_instance_never_provisioned_goes_at_once() -> None:
    r = Reconciler(instance, new_instance(clusterServiceClassExternalName="nope"), facts(deleting=True))
    assert r.step()["done"]


def test_check_mode_sends_nothing_and_says_what_it_would_do() -> None:
    r = Reconciler(instance, new_instance(), facts())
    r.step({"sent": False, "status": 0, "check_mode_skipped": True})
    assert cond(r.obj, "Ready")["message"] == ("would ask the broker to provision the instance "
                                               "(PUT /v2/service_instances/inst-uid)")
    assert r.obj["status"].get("provisionStatus") is None


def test_a_broker_answer_reads_its_kind_and_description() -> None:
    assert Answer.of(answer(422, {"error": "AsyncRequired", "description": "async only"})).description == (
        "the broker answered 422 Unprocessable Entity (AsyncRequired): async only")
    assert Answer.of(answer(0, error="timed out after 5s", timed_out=True)).kind == "unknown_outcome"
    assert Answer.of(answer(0, error="refused", error_reason="BrokerUnreachable")).kind == "unreachable"
    assert Answer.of({"sent": False, "error_reason": "ParametersFromError", "error": "x"}).kind == "local_error"


@pytest.mark.parametrize(("result", "status", "retry"), [
    ({"status": [None]}, 0, None),
    ({"sent": True, "status": "OK"}, 0, None),
    ({"sent": True, "status": float("nan")}, 0, None),
    ({"sent": True, "status": float("inf")}, 0, None),
    ({"sent": True, "status": "503", "retry_after": float("inf")}, 503, None),
    ({"sent": True, "status": 202, "retry_after": float("nan")}, 202, None),
    ({"sent": True, "status": 202, "retry_after": 7.9}, 202, 7),
])
def test_a_result_that_cannot_be_read_counts_as_missing_and_never_raises(result: dict[str, Any], status: int,
                                                                         retry: int | None) -> None:
    # Found by tests/unit/test_properties_servicecatalog.py: {"status": [None]} raised a TypeError,
    # a NaN status a ValueError, an infinite retry_after an OverflowError.
    read = Answer.of(result)
    assert (read.status, read.retry_after) == (status, retry)
    assert read.kind and read.description


# ----- ServiceCredential ---------------------------------------------------------------------------


def provisioned() -> dict[str, Any]:
    r = Reconciler(instance, new_instance(), facts())
    r.step(answer(201))
    return r.obj


def new_credential(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "orders-cred", "namespace": "shop", "uid": "cred-uid", "generation": 1},
            "spec": {"instanceRef": {"name": "orders"}, **spec}}


def test_a_credential_waits_for_its_instance() -> None:
    r = Reconciler(credential, new_credential(), facts(instance=None))
    r.step()
    assert cond(r.obj, "Ready")["reason"] == "ReferencesNonexistentInstance"
    r = Reconciler(credential, new_credential(), facts(instance=new_instance()))
    decided = r.step()
    assert cond(r.obj, "Ready")["reason"] == "ErrorInstanceNotReady" and decided["requeue_after"]


def test_a_bind_writes_the_credentials_into_a_secret_the_credential_owns() -> None:
    r = Reconciler(credential, new_credential(secretName="orders-db"), facts(instance=provisioned()))
    r.step(answer(201, {"credentials": ["host", "password"]}, parameters_checksum=""))
    sent = r.sent[0]
    assert (sent["method"], sent["path"]) == ("PUT", "/v2/service_instances/inst-uid/service_bindings/cred-uid")
    assert sent["credentials_secret"]["name"] == "orders-db"
    assert sent["credentials_secret"]["owner"]["uid"] == "cred-uid"
    assert sent["body"]["service_id"] == "db-id" and sent["body"]["plan_id"] == "db-small"
    assert cond(r.obj, "Ready")["reason"] == "InjectedBindResult"
    assert r.obj["status"]["binding"] == {"name": "orders-db"}
    assert r.obj["status"]["externalProperties"]["instanceID"] == "inst-uid"


def test_an_async_bind_is_polled_then_fetched() -> None:
    r = Reconciler(credential, new_credential(), facts(instance=provisioned()))
    r.step(answer(202, {"operation": "b-1"}))
    assert "binding" not in r.obj["status"]
    r.step(answer(200, {"state": "succeeded"}), now=3)
    assert r.sent[-1]["path"].endswith("/service_bindings/cred-uid/last_operation")
    r.step(answer(200, {"credentials": ["uri"]}), now=4)
    fetch = r.sent[-1]
    assert fetch["method"] == "GET" and fetch["credentials_secret"]["name"] == "orders-cred"
    assert r.obj["status"]["binding"] == {"name": "orders-cred"}


def test_a_bind_timeout_is_cleaned_up_with_an_unbind() -> None:
    r = Reconciler(credential, new_credential(), facts(instance=provisioned()))
    r.step(answer(0, timed_out=True, error="timed out"))
    assert cond(r.obj, "OrphanMitigation")["status"] == "True"
    r.step(answer(200), now=2)
    unbind = r.sent[-1]
    assert unbind["method"] == "DELETE"
    assert unbind["query"] == {"service_id": "db-id", "plan_id": "db-small", "accepts_incomplete": True}
    assert cond(r.obj, "OrphanMitigation")["reason"] == "OrphanMitigationSuccessful"


def test_deleting_a_credential_unbinds_it_and_removes_its_secret() -> None:
    r = Reconciler(credential, new_credential(), facts(instance=provisioned()))
    r.step(answer(201, {"credentials": ["password"]}))
    r.facts = facts(instance=None, deleting=True, secret_exists=True, secret_owner_uid="cred-uid")
    decided = r.step(answer(200))
    assert r.sent[-1]["method"] == "DELETE" and decided["done"] and decided["delete_secret"] == "orders-cred"


def test_a_secret_that_is_not_the_credentials_is_never_overwritten() -> None:
    r = Reconciler(credential, new_credential(),
                   facts(instance=provisioned(), secret_exists=True, secret_owner_uid="someone-else"))
    r.step()
    assert cond(r.obj, "Ready")["reason"] == "ErrorSecretOwnedByAnother"


def test_a_plan_that_is_not_bindable_fails_the_credential() -> None:
    r = Reconciler(credential, new_credential(), facts(instance=provisioned(), classes=[klass(bindable=False)]))
    r.step()
    assert cond(r.obj, "Failed")["reason"] == "ErrorNonbindableServiceClass"
