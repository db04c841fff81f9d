"""Status building: the SDK's conditions, ansibleResult, and carrying the role's own status."""

from __future__ import annotations

from runner import status


def conds(st: dict) -> dict[str, dict]:
    return {c["type"]: c for c in st["conditions"]}


def test_running_keeps_what_the_role_wrote() -> None:
    st = status.running_status({"replicas": 3, "conditions": []}, at="T1")
    assert st["replicas"] == 3
    assert conds(st)["Running"] == {"type": "Running", "status": "True", "reason": "Running",
                                    "message": "Running reconciliation", "lastTransitionTime": "T1"}


def test_success_sets_successful_and_clears_failure() -> None:
    failed = status.finished_status({}, generation=1, result=status.AnsibleResult(1, 0, 0, 1, "C"),
                                    failure_message="boom", at="T1")
    assert conds(failed)["Failure"]["ansibleResult"] == {"ok": 1, "changed": 0, "skipped": 0, "failures": 1,
                                                         "completion": "C"}
    assert conds(failed)["Failure"]["message"] == "boom"
    assert "Successful" not in conds(failed)

    ok = status.finished_status(failed, generation=2, result=status.AnsibleResult(3, 1, 0, 0, "C2"),
                                failure_message=None, at="T2")
    c = conds(ok)
    assert "Failure" not in c
    assert c["Successful"]["status"] == "True" and c["Successful"]["reason"] == "Successful"
    assert c["Running"]["message"] == "Awaiting next reconciliation"
    assert ok["observedGeneration"] == 2


def test_transition_time_moves_only_when_status_changes() -> None:
    first = status.finished_status({}, generation=1, result=None, failure_message=None, at="T1")
    again = status.finished_status(first, generation=1, result=None, failure_message=None, at="T2")
    assert conds(again)["Successful"]["lastTransitionTime"] == "T1"
    failed = status.finished_status(again, generation=1, result=None, failure_message="x", at="T3")
    assert conds(failed)["Running"]["lastTransitionTime"] == "T3"


def test_unknown_reason_without_ansible_stats() -> None:
    st = status.finished_status({}, generation=None, result=None, failure_message="could not start", at="T")
    assert conds(st)["Failure"]["reason"] == "Unknown"
    assert "observedGeneration" not in st


def test_same_ignoring_times() -> None:
    a = status.finished_status({}, generation=1, result=status.AnsibleResult(1, 0, 0, 0, "C1"),
                               failure_message=None, at="T1")
    b = status.finished_status({}, generation=1, result=status.AnsibleResult(1, 0, 0, 0, "C2"),
                               failure_message=None, at="T2")
    assert status.same_ignoring_times(a, b)
    c = status.finished_status({}, generation=2, result=None, failure_message=None, at="T1")
    assert not status.same_ignoring_times(a, c)
