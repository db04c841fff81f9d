"""Properties of the OSB machines (playbook_operator.servicecatalog instance.py, credential.py,
steps.py, answers.py): a ServiceInstance and a ServiceCredential driven through random
reconciles with test_servicecatalog_machines' Reconciler, each request answered by a random
broker (any status code, OSB error codes or none, timeouts, refused connections, last_operation
states, Retry-After or none, credentials planted in every body), the object deleted, edited or
left alone between reconciles, time jumping ahead. After every reconcile:

* a 4xx answer to a provision or a bind never starts orphan mitigation;
* a decision while deleting is `done`, or makes a request, or asks to be requeued;
* a deletion is `done` only when nothing can be left at the broker: a DELETE answered 200 (or
  201) or 410, a poll of the DELETE that said succeeded or 410, or nothing ever made there;
* requeue_after is at most 300 s, and never empty while an asynchronous operation is in flight;
* no status, condition or Event holds a credential value the broker sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import hypothesis
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.unit import test_servicecatalog_machines as sc

pytestmark = pytest.mark.unit

instance, credential, Answer = sc.instance, sc.credential, sc.Answer

# Fixed examples, no example database, and no deadline (a loaded machine makes timings unreliable).
SETTINGS = settings(max_examples=200, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

PLANTED = "pl4nted-s3cret-value"  # what no decision may ever show
MAX_REQUEUE = 300

# --- broker answers -----------------------------------------------------------------------

# Weighted towards what moves a machine along: 202s to the requests, 200s to the polls.
STATUS_CODES = [200, 201, 202, 202, 202, 400, 404, 409, 410, 422, 500, 503]
POLL_STATUS_CODES = [200] * 8 + [400, 404, 410, 500, 503]
OSB_ERRORS = ["AsyncRequired", "ConcurrencyError", "MaintenanceInfoConflict", "RequiresApp", "Whatever"]


# Within the 300 s bound: a larger Retry-After is honoured as it is (see the test below).
RETRY_AFTER = st.integers(0, MAX_REQUEUE)


@st.composite
def broker_answers(draw: st.DrawFn, request: Mapping[str, Any]) -> dict[str, Any]:
    """The result of an `osb_request` task, as the module hands it to the machines, except that
    the credentials are the broker's own (the module would have kept only their names)."""
    kind = draw(st.sampled_from(["answer"] * 8 + ["timeout", "refused"]))
    if kind == "timeout":
        return {"sent": True, "status": 0, "timed_out": True, "error": "timed out after 60s", "body": {}}
    if kind == "refused":
        return {"sent": True, "status": 0, "error": "connection refused", "error_reason": "BrokerUnreachable",
                "body": {}}
    body: dict[str, Any] = {"credentials": {"password": PLANTED, "uri": f"postgres://u:{PLANTED}@db/x"}}
    polling = request["operation"] == "Poll"
    if polling or draw(st.booleans()):
        body["state"] = draw(st.sampled_from(["in progress", "in progress", "succeeded", "failed"]))
    if draw(st.booleans()):
        body["error"] = draw(st.sampled_from(OSB_ERRORS))
    if draw(st.booleans()):
        body["description"] = draw(st.sampled_from(["no capacity", "working", ""]))
    if draw(st.booleans()):
        body["operation"] = draw(st.sampled_from(["op-1", "op-2"]))
    if draw(st.booleans()):
        body["dashboard_url"] = "https://dash/1"
    return {"sent": True, "status": draw(st.sampled_from(POLL_STATUS_CODES if polling else STATUS_CODES)), "body": body,
            "retry_after": draw(st.one_of(st.none(), RETRY_AFTER))}


# --- the invariants -----------------------------------------------------------------------


def seconds(requeue_after: str) -> int:
    return int(requeue_after.removesuffix("s")) if requeue_after else 0


def check(decided: Mapping[str, Any], obj: Mapping[str, Any], *, deleting: bool) -> None:
    """What every decision must satisfy; `obj` is the object once the decision is written."""
    requeue = seconds(decided["requeue_after"])
    assert 0 <= requeue <= MAX_REQUEUE, f"requeue_after {decided['requeue_after']}"
    if deleting:
        assert decided["done"] or decided["request"] is not None or requeue > 0
    st_after = obj.get("status") or {}
    if decided["request"] is None and st_after.get("asyncOpInProgress"):
        assert requeue > 0, "an operation in flight must be polled"
    shown = json.dumps([decided["status"], decided["conditions"], decided["events"]])
    assert PLANTED not in shown


def orphan_mitigation_started(decided: Mapping[str, Any]) -> bool:
    return bool(decided["status"].get("orphanMitigationInProgress")) or any(
        c["type"] == "OrphanMitigation" and c["status"] == "True" for c in decided["conditions"])


def refused(reply: Mapping[str, Any]) -> bool:
    return not reply.get("timed_out") and 400 <= int(reply.get("status") or 0) < 500


def confirmed_gone(request: Mapping[str, Any], reply: Mapping[str, Any], removing: bool) -> bool:
    """The broker said what the object stands for is gone: a DELETE answered 200, 201 or 410, or a
    poll of a DELETE (`removing`) that said succeeded, or 410."""
    if reply.get("timed_out"):
        return False
    status, state = reply.get("status"), (reply.get("body") or {}).get("state")
    if request["method"] == "DELETE":
        return status in (200, 201, 410)
    if request["operation"] == "Poll" and removing:
        return status == 410 or (status in (200, 201) and state == "succeeded")
    return False


def maybe_made(reply: Mapping[str, Any]) -> bool:
    """A PUT answered so that the broker may hold something now: done, accepted, or not known."""
    return bool(reply.get("timed_out")) or int(reply.get("status") or 0) in (200, 201, 202) or \
        int(reply.get("status") or 0) >= 500


# --- the walks ----------------------------------------------------------------------------


def walk_step(data: st.DataObject, r: sc.Reconciler, machine: Any, now: int, at_broker: bool, *, creates: str,
              removes: str) -> tuple[dict[str, Any], tuple[dict[str, Any], dict[str, Any]] | None, bool]:
    """One reconcile with a drawn broker answer, its invariants checked; the decision, the request
    and answer (if one was sent), and whether the broker may now hold what the object stands for."""
    deleting = bool(r.facts["deleting"])
    removing = (r.obj.get("status") or {}).get("currentOperation") == removes
    peek = machine.step(r.obj, r.facts, sc.at(now))
    reply = data.draw(broker_answers(peek["request"])) if peek["request"] is not None else None
    decided = r.step(reply, now=now)
    answered = None
    if reply is not None:
        request = r.sent[-1]
        answered = (request, reply)
        if request["operation"] == creates and refused(reply):
            assert not orphan_mitigation_started(decided), "a 4xx never starts orphan mitigation"
        if request["method"] == "PUT" and maybe_made(reply):
            at_broker = True
        if confirmed_gone(request, reply, removing):
            at_broker = False
    check(decided, r.obj, deleting=deleting)
    if orphan_mitigation_started(decided):
        hypothesis.event("orphan mitigation")
    if peek["request"] is not None and peek["request"]["operation"] == "Poll":
        hypothesis.event("polled")
    if decided["done"]:
        assert deleting and not at_broker, "deleted while the broker may still hold what it stands for"
        hypothesis.event("deleted")
    return decided, answered, at_broker

EVENTS = st.sampled_from(["reconcile"] * 6 + ["delete", "edit", "wait"])


@SETTINGS
@given(data=st.data())
def test_a_service_instance_through_any_broker_answers(data: st.DataObject) -> None:
    r = sc.Reconciler(instance, sc.new_instance(), sc.facts())
    now = 0
    at_broker = False  # the model: may the broker hold an instance of this id?
    for _ in range(data.draw(st.integers(1, 30), label="reconciles")):
        happens = data.draw(EVENTS)
        if happens == "delete":
            r.facts = sc.facts(deleting=True)
        elif happens == "edit" and not r.facts["deleting"]:
            r.obj["metadata"]["generation"] += 1
            r.obj["spec"]["clusterServicePlanExternalName"] = data.draw(st.sampled_from(["small", "large", "slow"]))
        now += data.draw(st.sampled_from([0, 1, 5, 30, 61, 400, 4000]))
        decided, _, at_broker = walk_step(data, r, instance, now, at_broker, creates=instance.PROVISION,
                                          removes=instance.DEPROVISION)
        if decided["done"]:
            return


@SETTINGS
@given(data=st.data())
def test_a_service_credential_through_any_broker_answers(data: st.DataObject) -> None:
    r = sc.Reconciler(credential, sc.new_credential(), sc.facts(instance=sc.provisioned()))
    now = 0
    at_broker = False  # the model: may the broker hold a binding of this id?
    for _ in range(data.draw(st.integers(1, 30), label="reconciles")):
        happens = data.draw(EVENTS)
        if happens == "delete":
            r.facts = {**r.facts, "deleting": True}
        elif happens == "edit" and not r.facts["deleting"]:
            r.obj["metadata"]["generation"] += 1
        elif happens == "wait" and r.facts.get("secret_exists"):
            r.facts = {**r.facts, "secret_exists": False}  # someone deleted the Secret
        now += data.draw(st.sampled_from([0, 1, 5, 30, 61, 400, 4000]))
        decided, answered, at_broker = walk_step(data, r, credential, now, at_broker, creates=credential.BIND,
                                                 removes=credential.UNBIND)
        if answered is not None:
            request, reply = answered
            if request.get("credentials_secret") and int(reply.get("status") or 0) in (200, 201):
                r.facts = {**r.facts, "secret_exists": True, "secret_owner_uid": "cred-uid"}
        if decided["done"]:
            return


@SETTINGS
@example(retry=MAX_REQUEUE + 1)
@given(retry=st.integers(MAX_REQUEUE + 1, 7 * 86400))
def test_a_long_retry_after_is_honoured_as_the_broker_asks(retry: int) -> None:
    # OSB: the platform should wait as long as Retry-After says; the bound is the broker's then.
    r = sc.Reconciler(instance, sc.new_instance(), sc.facts())
    decided = r.step(sc.answer(202, {"operation": "op-1"}, retry_after=retry))
    assert r.obj["status"]["asyncOpInProgress"] is True
    assert seconds(decided["requeue_after"]) == retry


# --- Answer.of ----------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10)
RESULT_KEYS = st.sampled_from(["sent", "status", "timed_out", "error", "error_reason", "body", "body_text",
                               "retry_after", "parameters_checksum", "changed", "msg"])


@SETTINGS
@given(result=st.dictionaries(RESULT_KEYS | st.text(max_size=5), JSON, max_size=8))
def test_an_answer_reads_any_result_without_raising(result: dict[str, Any]) -> None:
    answer = Answer.of(result)
    assert isinstance(answer.status, int)
    assert answer.retry_after is None or answer.retry_after >= 0
    for text in (answer.kind, answer.description, answer.osb_error, answer.operation, answer.state):
        assert isinstance(text, str)
