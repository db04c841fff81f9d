"""Condition merging, written once (playbook_operator.kube's module_utils) for the status the
operator writes (runner/status.py) and the one k8s_status writes: by type, a given condition
replacing the current one as a whole, lastTransitionTime as apimachinery's SetStatusCondition
keeps it; and the malformed lists the older copies read differently (duplicate types, items
that are not conditions, a list that is not a list)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from runner import status
from runner.basics import conditions

T0, T1 = "2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z"
merge_conditions = conditions.merge_conditions
set_condition = conditions.set_condition


def test_the_runner_and_k8s_status_share_one_merge() -> None:
    from ansible_collections.operator_sdk.util.plugins.module_utils import status as k8s_status_rules

    assert k8s_status_rules.merge_conditions is merge_conditions
    assert status.set_condition is set_condition
    assert status.remove_condition is conditions.remove_condition


def test_a_new_condition_gets_the_current_time_and_others_stay_in_place() -> None:
    current = [
        {"type": "Running", "status": "True", "lastTransitionTime": T0, "ansibleResult": {"ok": 1}},
        {"type": "Successful", "status": "True", "lastTransitionTime": T0},
    ]
    merged = merge_conditions(current, [{"type": "Available", "status": "False", "reason": "PingFailed"}], T1)
    assert [c["type"] for c in merged] == ["Running", "Successful", "Available"]
    assert merged[0] == current[0]  # fields the operator writes are not touched
    assert merged[2] == {
        "type": "Available",
        "status": "False",
        "reason": "PingFailed",
        "lastTransitionTime": T1,
    }


def test_transition_time_moves_only_when_the_status_changes() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "Up"}
    current = [{**ready, "message": "old", "lastTransitionTime": T0}]

    same = merge_conditions(current, [{**ready, "message": "new"}], T1)
    assert same == [{**ready, "message": "new", "lastTransitionTime": T0}]

    # A given lastTransitionTime does not move an unchanged condition (the SDK's own example
    # passes the current date on every run).
    given_time = merge_conditions(current, [{**ready, "lastTransitionTime": T1}], T1)
    assert given_time[0]["lastTransitionTime"] == T0

    flipped = merge_conditions(current, [{"type": "Ready", "status": "False", "reason": "Down"}], T1)
    assert flipped == [{"type": "Ready", "status": "False", "reason": "Down", "lastTransitionTime": T1}]

    flipped_at = merge_conditions(
        current, [{"type": "Ready", "status": "False", "lastTransitionTime": "2024-03-03T03:03:03Z"}], T1
    )
    assert flipped_at[0]["lastTransitionTime"] == "2024-03-03T03:03:03Z"

    # A new condition takes a given time too, as SetStatusCondition does.
    new_at = merge_conditions([], [{"type": "Ready", "status": "True", "lastTransitionTime": T0}], T1)
    assert new_at[0]["lastTransitionTime"] == T0


def test_a_current_condition_without_a_time_gets_one() -> None:
    current = [{"type": "Ready", "status": "True"}]
    assert set_condition(current, {"type": "Ready", "status": "True"}, T1)[0]["lastTransitionTime"] == T1
    assert set_condition([{"type": "Ready", "status": "True", "lastTransitionTime": None}],
                         {"type": "Ready", "status": "True"}, T1)[0]["lastTransitionTime"] == T1


def test_a_given_condition_replaces_the_current_one_as_a_whole() -> None:
    current = [{"type": "Ready", "status": "True", "reason": "Up", "message": "m", "lastTransitionTime": T0}]
    merged = merge_conditions(current, [{"type": "Ready", "status": "True"}], T1)
    assert merged == [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]


def test_replacing_the_whole_list_still_carries_transition_times() -> None:
    current = [{"type": "Ready", "status": "True", "lastTransitionTime": T0},
               {"type": "Degraded", "status": "False", "lastTransitionTime": T0}]
    merged = merge_conditions(current, [{"type": "Ready", "status": "True"}], T1, keep_unlisted=False)
    assert merged == [{"type": "Ready", "status": "True", "lastTransitionTime": T0}]


def test_nothing_given_is_mutated_and_the_result_shares_nothing() -> None:
    current = [{"type": "Running", "status": "True", "lastTransitionTime": T0, "ansibleResult": {"ok": 1}}]
    given = {"type": "Ready", "status": "True", "extra": {"a": [1]}}
    before = copy.deepcopy((current, given))
    merged = set_condition(current, given, T1)
    assert (current, given) == before
    merged[0]["ansibleResult"]["ok"] = 9
    merged[1]["extra"]["a"].append(2)
    assert (current, given) == before


def test_remove_and_find() -> None:
    current: list[Any] = [{"type": "A", "status": "True"}, {"type": "B", "status": "False"},
                          {"type": "A", "status": "False"}]
    assert conditions.remove_condition(current, "A") == [{"type": "B", "status": "False"}]
    assert conditions.remove_condition(current, "C") == current
    assert conditions.find_condition(current, "A") == {"type": "A", "status": "True"}  # the first
    assert conditions.find_condition(current, "C") is None
    assert conditions.find_condition(None, "A") is None


# --- malformed input, decided once ---------------------------------------------------------


def test_a_duplicated_type_ends_as_one_condition_in_the_place_of_the_first() -> None:
    # The apiserver refuses a condition list with a type twice (listType=map). One copy replaced
    # each duplicate with the merged condition, the other only the first; now the first takes
    # it and the others go. Its transition time is the first one's, as FindStatusCondition finds it.
    current = [{"type": "Ready", "status": "True", "lastTransitionTime": T0},
               {"type": "Other", "status": "True", "lastTransitionTime": T0},
               {"type": "Ready", "status": "False", "lastTransitionTime": "2023-01-01T00:00:00Z"}]
    merged = set_condition(current, {"type": "Ready", "status": "True", "reason": "Up"}, T1)
    assert merged == [{"type": "Ready", "status": "True", "reason": "Up", "lastTransitionTime": T0},
                      {"type": "Other", "status": "True", "lastTransitionTime": T0}]


@pytest.mark.parametrize("current", [None, "Ready", {"type": "Ready"}, 3])
def test_conditions_that_are_not_a_list_count_as_none(current: Any) -> None:
    assert set_condition(current, {"type": "Ready", "status": "True"}, T1) == [
        {"type": "Ready", "status": "True", "lastTransitionTime": T1}]
    assert conditions.remove_condition(current, "Ready") == []


def test_items_that_are_not_conditions_are_kept_where_they_are() -> None:
    # One copy failed on them (AttributeError); they are not ours to drop.
    current: list[Any] = ["junk", {"status": "True"}, {"type": 7}, {"type": "Ready", "status": "False"}]
    merged = set_condition(current, {"type": "Ready", "status": "True"}, T1)
    assert merged == ["junk", {"status": "True"}, {"type": 7},
                      {"type": "Ready", "status": "True", "lastTransitionTime": T1}]
    assert conditions.remove_condition(current, "Ready") == current[:3]


def test_the_operator_s_status_survives_a_malformed_condition_list() -> None:
    running = status.running_status({"conditions": "garbage"}, at="T1")
    assert running["conditions"] == [{"type": "Running", "status": "True", "reason": "Running",
                                      "message": "Running reconciliation", "lastTransitionTime": "T1"}]
    done = status.finished_status({"conditions": ["junk"]}, generation=1, result=None, failure_message=None,
                                  at="T2")
    assert done["conditions"][0] == "junk"
    assert [c["type"] for c in done["conditions"][1:]] == ["Running", "Successful"]
