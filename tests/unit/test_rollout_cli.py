"""`playbook-operator rollout` without a cluster: naming the PodSet, the status messages
kubectl prints for a Deployment, the history table and which revision `undo` goes back to."""

from __future__ import annotations

from typing import Any

import pytest

from runner import rollout


def podset(generation: int = 2, observed: int = 2, replicas: int = 3, updated: int = 3, total: int = 3,
           available: int = 3, current: str = "web-b", update: str = "web-b", reason: str = "NewReplicaSetAvailable",
           paused: bool = False, failed: str | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {
        "observedGeneration": observed, "updatedReplicas": updated, "replicas": total,
        "availableReplicas": available, "currentRevision": current, "updateRevision": update,
        "conditions": [{"type": "Progressing", "status": "True", "reason": reason, "message": "m"}],
    }
    if failed:
        status["failedRevision"] = failed
    return {"metadata": {"name": "web", "generation": generation, "uid": "u"},
            "spec": {"replicas": replicas, "paused": paused}, "status": status}


def record(name: str, number: int, cause: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if cause:
        meta["annotations"] = {rollout.CHANGE_CAUSE: cause}
    return {"metadata": meta, "revision": number, "data": {"template": {"spec": {"containers": [{"image": name}]}}}}


@pytest.mark.parametrize(("words", "name"), [(["ps/web"], "web"), (["podset", "web"], "web"),
                                             (["podsets.workloads.playbook-operator.io/web"], "web")])
def test_podset_names(words: list[str], name: str) -> None:
    assert rollout._podset_name(words) == name


@pytest.mark.parametrize("words", [["deployment/web"], ["web"], ["ps/"], ["a", "b", "c"]])
def test_bad_names_are_refused(words: list[str]) -> None:
    with pytest.raises(rollout.RolloutError):
        rollout._podset_name(words)


@pytest.mark.parametrize(("kwargs", "expected", "done"), [
    ({"observed": 1}, "Waiting for podset spec update to be observed...", False),
    ({"updated": 1, "current": "web-a"}, "1 out of 3 new replicas have been updated", False),
    ({"total": 4, "current": "web-a"}, "1 old replicas are pending termination", False),
    ({"available": 2, "current": "web-a"}, "2 of 3 updated replicas are available", False),
    ({"current": "web-a"}, "revision is being recorded", False),
    ({}, 'podset "web" successfully rolled out', True),
    ({"paused": True, "updated": 1}, "is paused: 1 of 3 replicas are updated", True),
])
def test_status_messages(kwargs: dict[str, Any], expected: str, done: bool) -> None:
    message, finished = rollout.rollout_state(podset(**kwargs))
    assert expected in message and finished is done


def test_a_missed_deadline_is_an_error() -> None:
    with pytest.raises(rollout.RolloutError, match="exceeded its progress deadline"):
        rollout.rollout_state(podset(reason="ProgressDeadlineExceeded"))


def test_history_marks_current_rolling_and_failed_revisions() -> None:
    table = rollout.history_table(podset(current="web-a", update="web-b", failed="web-c"),
                                  [record("web-a", 1, "first"), record("web-b", 2), record("web-c", 3)])
    lines = table.splitlines()
    assert lines[0].split() == ["REVISION", "NAME", "STATE", "CHANGE-CAUSE"]
    assert lines[1].split() == ["1", "web-a", "current", "first"]
    assert lines[2].split() == ["2", "web-b", "rolling", "out", "<none>"]
    assert lines[3].split() == ["3", "web-c", "failed,", "rolled", "back", "<none>"]


def test_undo_goes_to_the_revision_before_the_update_revision_or_the_one_asked_for() -> None:
    records = [record("web-a", 1), record("web-b", 2), record("web-c", 3)]
    assert rollout.undo_target(podset(update="web-c"), records, 0)["metadata"]["name"] == "web-b"
    assert rollout.undo_target(podset(update="web-b"), records, 0)["metadata"]["name"] == "web-a"
    assert rollout.undo_target(podset(), records, 1)["metadata"]["name"] == "web-a"
    with pytest.raises(rollout.RolloutError, match="revision 7"):
        rollout.undo_target(podset(), records, 7)
    with pytest.raises(rollout.RolloutError, match="no rollout history"):
        rollout.undo_target(podset(update="web-a"), records[:1], 0)
