"""Status building: the SDK's conditions, ansibleResult, and carrying the role's own status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

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


def test_success_puts_the_counts_on_running_as_the_sdk_does() -> None:
    ok = status.finished_status({}, generation=1, result=status.AnsibleResult(7, 2, 1, 0, "2024-06-01T12:00:00Z"),
                                failure_message=None, at="T1")
    c = conds(ok)
    assert c["Running"] == {"type": "Running", "status": "True", "reason": "Successful",
                            "message": "Awaiting next reconciliation", "lastTransitionTime": "T1",
                            "ansibleResult": {"ok": 7, "changed": 2, "skipped": 1, "failures": 0,
                                              "completion": "2024-06-01T12:00:00+00:00"}}
    assert "ansibleResult" not in c["Successful"]
    # The next run starts as the SDK's markRunning does: Running without counts.
    assert "ansibleResult" not in conds(status.running_status(ok, at="T2"))["Running"]
    # Without stats there are no counts to write.
    bare = status.finished_status({}, generation=1, result=None, failure_message=None, at="T1")
    assert "ansibleResult" not in conds(bare)["Running"]


def test_failure_puts_the_counts_on_failure_only() -> None:
    ok = status.finished_status({}, generation=1, result=status.AnsibleResult(7, 2, 1, 0, "2024-06-01T12:00:00Z"),
                                failure_message=None, at="T1")
    failed = status.finished_status(ok, generation=1, result=status.AnsibleResult(3, 0, 0, 1, "2024-06-01T12:01:00Z"),
                                    failure_message="boom", at="T2")
    c = conds(failed)
    assert c["Failure"]["ansibleResult"]["failures"] == 1
    assert "ansibleResult" not in c["Running"], "the successful run's counts do not linger"
    again = status.finished_status(failed, generation=1,
                                   result=status.AnsibleResult(7, 0, 1, 0, "2024-06-01T12:02:00Z"),
                                   failure_message=None, at="T3")
    assert conds(again)["Running"]["ansibleResult"]["ok"] == 7
    assert "Failure" not in conds(again)


def test_completion_is_written_in_the_sdks_layout() -> None:
    # Go's "2006-01-02T15:04:05.99999999+00:00": UTC, no trailing zeros in the fraction.
    at = datetime(2024, 6, 1, 12, 0, 5, 120000, tzinfo=UTC)
    assert status.completion_time(at) == "2024-06-01T12:00:05.12+00:00"
    assert status.completion_time(at.replace(microsecond=0)) == "2024-06-01T12:00:05+00:00"
    assert status.completion_time(at.replace(microsecond=7)) == "2024-06-01T12:00:05.000007+00:00"
    assert status.completion_time("2024-06-01T12:00:05Z") == "2024-06-01T12:00:05+00:00"
    assert status.completion_time(datetime(2024, 6, 1, 12, 0, 5)) == "2024-06-01T12:00:05+00:00"  # naive is UTC
    east = timezone(timedelta(hours=2))
    assert status.completion_time(datetime(2024, 6, 1, 14, 0, 5, tzinfo=east)) == "2024-06-01T12:00:05+00:00"
    assert status.completion_time("not a time") == "not a time"
    assert status.completion_time(status.now()).endswith("+00:00")


def test_counts_that_did_not_change_cost_no_write() -> None:
    def after(previous: dict, changed: int, completion: str) -> dict:
        return status.finished_status(previous, generation=1,
                                      result=status.AnsibleResult(9, changed, 2, 0, completion),
                                      failure_message=None, at=completion)

    changing = after({}, 3, "2024-06-01T12:00:00Z")
    first_converged = after(changing, 0, "2024-06-01T12:01:00Z")
    # The first converged run after a changing one writes once: changed goes from 3 to 0 ...
    assert not status.same_ignoring_times(first_converged, changing)
    # ... and every converged run after it writes nothing, though its completion time moves.
    second_converged = after(first_converged, 0, "2024-06-01T12:02:00Z")
    assert conds(second_converged)["Running"]["ansibleResult"]["completion"] == "2024-06-01T12:02:00+00:00"
    assert status.same_ignoring_times(second_converged, first_converged)
