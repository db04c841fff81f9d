"""The in-tree operator_sdk.util collection without a cluster: condition validation and
merging, the status merge rules (lists, replace, replace_lists), the write decision and
conflict retries against a fake resource, Event counting, and requeue_after. Go durations and
condition merging are the shared ones (tests/unit/test_durations.py, test_conditions.py)."""

from __future__ import annotations

import copy
import datetime
import json
import sys
from typing import Any

import pytest

from tests.support import ROOT

# The collection lives in-tree; Python finds it as ansible_collections.operator_sdk.util.
sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.operator_sdk.util.plugins.module_utils import kube
from ansible_collections.operator_sdk.util.plugins.module_utils.event import (
    event_name,
    next_event,
)
from ansible_collections.operator_sdk.util.plugins.module_utils.status import (
    StatusError,
    desired_status,
    merge_patch,
    now_rfc3339,
    validate_condition,
)
from ansible_collections.operator_sdk.util.plugins.modules import (
    k8s_status,
    requeue_after,
)
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from tests.unit.module_args import patch_module_args

T0, T1 = "2024-01-01T00:00:00Z", "2024-06-01T12:00:00Z"


def by_type(conditions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conditions}


def run_module(main: Any, args: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    with patch_module_args(args), pytest.raises(SystemExit):
        main()
    return dict(json.loads(capsys.readouterr().out))


def test_requeue_after_returns_seconds_and_changes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_module(requeue_after.main, {"time": "1h30m"}, capsys)
    assert result["changed"] is False
    assert result["requeue_after"] == 5400.0
    assert result["time"] == result["period"] == "1h30m"
    assert "failed" not in result

    bad = run_module(requeue_after.main, {"time": "soon"}, capsys)
    assert bad["failed"] is True
    assert "invalid duration 'soon'" in bad["msg"]

    # Go reads a negative duration; a requeue delay cannot be one (tests/unit/test_durations.py
    # has the parser itself).
    negative = run_module(requeue_after.main, {"time": "-1s"}, capsys)
    assert negative["failed"] is True
    assert "cannot be negative" in negative["msg"]


# --- conditions -----------------------------------------------------------------------


def test_condition_validation_cleans_and_accepts_the_conventions() -> None:
    cleaned = validate_condition(
        {"type": "Ready", "status": True, "reason": "AllGood", "message": None, "lastTransitionTime": T0}
    )
    assert cleaned == {"type": "Ready", "status": "True", "reason": "AllGood", "lastTransitionTime": T0}
    # What `date --rfc-3339 seconds` prints, as in the SDK's documentation.
    date_output = "2024-01-02 03:04:05+00:00"
    assert validate_condition({"type": "A", "status": "Unknown", "lastHeartbeatTime": date_output})
    assert validate_condition({"type": "A", "status": "False", "reason": "Retry_2"})


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"type": "A", "status": "Maybe"}, "status must be one of True, False, Unknown"),
        ({"status": "True"}, "'type' must be set"),
        ({"type": "A"}, "'status' must be set"),
        ({"type": "A", "status": "True", "reason": "two words"}, "CamelCase"),
        ({"type": "A", "status": "True", "reason": "9Lives"}, "CamelCase"),
        ({"type": "A", "status": "True", "lastTransitionTime": "yesterday"}, "RFC 3339"),
        ({"type": "A", "status": "True", "severity": "high"}, "severity is not a valid field"),
        ("Ready", "must be an object"),
    ],
)
def test_invalid_conditions_are_refused(condition: Any, message: str) -> None:
    with pytest.raises(StatusError, match=message):
        validate_condition(condition)


# --- status -----------------------------------------------------------------------------


def test_status_is_merged_like_a_merge_patch() -> None:
    current = {"phase": "Pending", "nested": {"a": 1, "b": 2}, "keep": True}
    after = desired_status(current, {"phase": "Ready", "nested": {"b": None, "c": 3}}, None, now=T1)
    assert after == {"phase": "Ready", "nested": {"a": 1, "c": 3}, "keep": True}
    assert current == {"phase": "Pending", "nested": {"a": 1, "b": 2}, "keep": True}  # not mutated


def test_lists_follow_the_sdk_subset_rule_unless_replace_lists() -> None:
    current = {"nodes": ["a", "b"], "deep": {"ports": [80, 443]}}
    # Every given item is already there: the list stays as it is.
    assert desired_status(current, {"nodes": ["b"]}, None, now=T1) == current
    assert desired_status(current, {"deep": {"ports": [443]}}, None, now=T1) == current
    # A new item: the list becomes the given one.
    assert desired_status(current, {"nodes": ["c"]}, None, now=T1)["nodes"] == ["c"]
    # replace_lists: any difference replaces it.
    given = {"nodes": ["b"], "deep": {"ports": [443]}}
    assert desired_status(current, given, None, now=T1, replace_lists=True) == given


def test_conditions_are_merged_by_type_even_with_replace_lists() -> None:
    current = {"conditions": [{"type": "A", "status": "True", "lastTransitionTime": T0}]}
    given = {"conditions": [{"type": "B", "status": "True"}]}
    after = desired_status(current, given, None, now=T1, replace_lists=True)
    assert by_type(after["conditions"]) == {
        "A": {"type": "A", "status": "True", "lastTransitionTime": T0},
        "B": {"type": "B", "status": "True", "lastTransitionTime": T1},
    }


def test_conditions_under_status_are_merged_but_not_validated() -> None:
    custom = {"type": "Custom", "status": "Sometimes", "extra": 1}
    after = desired_status({}, {"conditions": [custom]}, None, now=T1)
    assert after["conditions"] == [{**custom, "lastTransitionTime": T1}]
    with pytest.raises(StatusError, match="status must be one of"):
        desired_status({}, None, [{"type": "Custom", "status": "Sometimes"}], now=T1)


def test_conditions_in_both_places_are_refused() -> None:
    a, b = {"type": "A", "status": "True"}, {"type": "B", "status": "True"}
    with pytest.raises(StatusError, match="both"):
        desired_status({}, {"conditions": [a]}, [b], now=T1)


def test_replace_sets_the_whole_status_and_keeps_unchanged_transition_times() -> None:
    current = {
        "phase": "Ready",
        "nodes": ["a"],
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": T0},
            {"type": "Running", "status": "True", "lastTransitionTime": T0},
        ],
    }
    after = desired_status(
        current, {"hello": "world", "gone": None}, [{"type": "Ready", "status": "True"}], now=T1, replace=True
    )
    assert after == {
        "hello": "world",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": T0}],
    }
    assert desired_status(current, None, None, now=T1, replace=True) == {}


def test_nothing_given_changes_nothing() -> None:
    current = {"phase": "Ready", "conditions": [{"type": "A", "status": "True", "lastTransitionTime": T0}]}
    assert desired_status(current, None, None, now=T1) == current
    assert desired_status(None, None, None, now=T1) == {}


def test_a_second_run_with_the_same_parameters_is_a_no_op() -> None:
    status = {"phase": "Ready", "nodes": ["a", "b"], "nested": {"x": 1, "drop": None}}
    conditions = [{"type": "Ready", "status": "True", "reason": "Up", "message": "all good"}]
    for replace in (False, True):
        first = desired_status({"old": 1}, status, conditions, now=T0, replace=replace)
        assert desired_status(first, status, conditions, now=T1, replace=replace) == first


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"a": 1}),
        ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 2}}),
        ({"a": [1, 2]}, {"a": [2]}),
        ({"a": {"b": 1}}, {"a": 5}),
        ({"a": 5}, {"a": {"b": 1}}),
        ({"a": {"b": 1}}, {"a": {}}),
        ({"a": 1, "b": 2}, {}),
    ],
)
def test_merge_patch_turns_before_into_after(before: dict[str, Any], after: dict[str, Any]) -> None:
    def apply(target: Any, patch: Any) -> Any:  # RFC 7386, section 2
        if not isinstance(patch, dict):
            return patch
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if value is None:
                result.pop(key, None)
            else:
                result[key] = apply(result.get(key), value)
        return result

    assert apply(before, merge_patch(before, after)) == after
    assert merge_patch(after, after) == {}


# --- the write decision, against a fake resource ------------------------------------------


class FakeObject:
    def __init__(self, data: dict[str, Any]) -> None:
        self.data = copy.deepcopy(data)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self.data)


class FakeStatusResource:
    """The status subresource: records writes; the first `conflicts` writes get a 409."""

    def __init__(self, parent: FakeResource, conflicts: int) -> None:
        self.parent = parent
        self.conflicts = conflicts
        self.writes: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    def _write(self, verb: str, body: dict[str, Any], **kwargs: Any) -> FakeObject:
        self.writes.append((verb, copy.deepcopy(body), kwargs))
        if self.conflicts:
            self.conflicts -= 1
            self.parent.bump()  # someone else wrote in between
            raise ConflictError(ApiException(status=409, reason="Conflict"))
        assert body["metadata"]["resourceVersion"] == self.parent.obj["metadata"]["resourceVersion"]
        if verb == "patch":
            status = self.parent.obj.setdefault("status", {})
            for key, value in body["status"].items():
                if value is None:
                    status.pop(key, None)
                else:
                    status[key] = value  # one level deep is enough for these tests
        else:
            self.parent.obj["status"] = body["status"]
        self.parent.bump()
        return FakeObject(self.parent.obj)

    def patch(self, body: dict[str, Any], **kwargs: Any) -> FakeObject:
        return self._write("patch", body, **kwargs)

    def replace(self, body: dict[str, Any], **kwargs: Any) -> FakeObject:
        return self._write("replace", body, **kwargs)


class FakeResource:
    def __init__(self, obj: dict[str, Any], conflicts: int = 0) -> None:
        self.obj = copy.deepcopy(obj)
        self.api_version, self.kind = obj["apiVersion"], obj["kind"]
        self.reads = 0
        self.subresources = {"status": FakeStatusResource(self, conflicts)}

    def bump(self) -> None:
        self.obj["metadata"]["resourceVersion"] = str(int(self.obj["metadata"]["resourceVersion"]) + 1)

    def get(self, name: str, namespace: str | None) -> FakeObject:
        self.reads += 1
        if name != self.obj["metadata"]["name"]:
            raise NotFoundError(ApiException(status=404, reason="Not Found"))
        return FakeObject(self.obj)

    @property
    def writes(self) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
        return self.subresources["status"].writes


EXAMPLE = {
    "apiVersion": "examples.playbook-operator.io/v1alpha1",
    "kind": "Example",
    "metadata": {"name": "ex", "namespace": "ns", "resourceVersion": "10"},
    "spec": {"data": {"a": "b"}},
    "status": {
        "phase": "Pending",
        "conditions": [{"type": "Running", "status": "True", "lastTransitionTime": T0}],
    },
}


def update(resource: FakeResource, **kwargs: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "status": None,
        "conditions": None,
        "replace": False,
        "replace_lists": False,
        "now": T1,
        "check_mode": False,
    }
    args.update(kwargs)
    return k8s_status.update_status(resource, "ex", "ns", **args)


def test_a_change_is_one_merge_patch_of_what_differs_with_the_resource_version() -> None:
    resource = FakeResource(EXAMPLE)
    outcome = update(resource, status={"phase": "Ready"}, conditions=[{"type": "Ready", "status": "True"}])
    assert outcome["changed"] is True
    [(verb, body, kwargs)] = resource.writes
    assert verb == "patch" and kwargs["content_type"] == "application/merge-patch+json"
    assert body["metadata"] == {"resourceVersion": "10"}
    assert body["status"]["phase"] == "Ready"
    assert [c["type"] for c in body["status"]["conditions"]] == ["Running", "Ready"]
    assert outcome["result"]["status"]["phase"] == "Ready"
    assert outcome["diff"]["before"]["status"]["phase"] == "Pending"
    assert outcome["diff"]["after"]["status"]["phase"] == "Ready"


def test_no_write_when_the_status_already_matches() -> None:
    resource = FakeResource(EXAMPLE)
    running = [{"type": "Running", "status": "True"}]
    outcome = update(resource, status={"phase": "Pending"}, conditions=running)
    assert outcome["changed"] is False
    assert resource.writes == []
    assert outcome["result"] == EXAMPLE


def test_check_mode_reports_the_change_without_writing() -> None:
    resource = FakeResource(EXAMPLE)
    outcome = update(resource, status={"phase": "Ready"}, check_mode=True)
    assert outcome["changed"] is True
    assert resource.writes == []
    assert outcome["result"]["status"]["phase"] == "Ready"
    assert resource.obj == EXAMPLE


def test_replace_is_a_put_of_the_whole_status() -> None:
    resource = FakeResource(EXAMPLE)
    outcome = update(resource, status={"hello": "world"}, replace=True)
    [(verb, body, _)] = resource.writes
    assert verb == "replace"
    assert body["status"] == {"hello": "world"} and body["spec"] == EXAMPLE["spec"]
    assert outcome["result"]["status"] == {"hello": "world"}


def test_a_conflict_is_retried_on_a_fresh_read() -> None:
    resource = FakeResource(EXAMPLE, conflicts=2)
    outcome = update(resource, status={"phase": "Ready"})
    assert outcome["changed"] is True
    assert [body["metadata"]["resourceVersion"] for _, body, _ in resource.writes] == ["10", "11", "12"]
    assert resource.reads == 3
    assert resource.obj["status"]["phase"] == "Ready"


def test_conflicts_give_up_after_a_few_attempts() -> None:
    resource = FakeResource(EXAMPLE, conflicts=100)
    with pytest.raises(ConflictError):
        update(resource, status={"phase": "Ready"})
    assert len(resource.writes) == kube.CONFLICT_ATTEMPTS


def test_a_missing_object_is_an_api_error_not_a_retry() -> None:
    resource = FakeResource({**EXAMPLE, "metadata": {**EXAMPLE["metadata"], "name": "other"}})
    with pytest.raises(NotFoundError):
        update(resource, status={"phase": "Ready"})
    assert resource.reads == 1


def test_check_mode_on_an_object_not_created_yet_reports_the_status_it_would_get() -> None:
    # A dry run of a manifest before it is applied: nothing to read, nothing written.
    resource = FakeResource({**EXAMPLE, "metadata": {**EXAMPLE["metadata"], "name": "other"}})
    outcome = update(resource, status={"phase": "Ready"}, conditions=[{"type": "Ready", "status": "True"}],
                     check_mode=True)
    assert outcome["changed"] is True
    assert resource.writes == []
    assert outcome["diff"]["before"] == {"status": {}}
    assert outcome["diff"]["after"]["status"]["phase"] == "Ready"
    assert outcome["result"]["metadata"] == {"name": "ex", "namespace": "ns"}
    assert outcome["result"]["kind"] == "Example"


def test_the_argument_spec_matches_the_sdk_and_keeps_secrets_out_of_logs() -> None:
    spec = k8s_status.argument_spec()
    assert spec["replace"] == {"type": "bool", "default": False, "aliases": ["force"]}
    assert spec["replace_lists"]["default"] is False
    assert spec["api_version"]["default"] == "v1" and spec["api_version"]["aliases"] == ["api", "version"]
    assert spec["kind"]["required"] and spec["name"]["required"]
    assert spec["conditions"]["options"]["status"]["choices"] == ["True", "False", "Unknown"]
    for secret in ("api_key", "password", "kubeconfig"):
        assert spec[secret]["no_log"] is True


# --- events -------------------------------------------------------------------------------


def test_event_names_get_a_hex_timestamp_only_when_asked() -> None:
    assert event_name("scaled", False, 255) == "scaled"
    assert event_name("scaled", True, 255) == "scaled.ff"


def test_a_repeated_event_counts_up_and_keeps_its_first_timestamp() -> None:
    fields = {"message": "m", "reason": "Scaled", "type": "Normal", "source": {"component": "op"}}
    first = next_event(None, name="e", namespace="ns", fields=fields, now=T0)
    assert first["count"] == 1
    assert first["firstTimestamp"] == first["lastTimestamp"] == T0
    assert first["metadata"] == {"name": "e", "namespace": "ns"}
    assert "reportingComponent" not in first  # not given, not written

    stored = {**first, "metadata": {**first["metadata"], "resourceVersion": "7"}}
    again = next_event(stored, name="e", namespace="ns", fields={**fields, "message": "m2"}, now=T1)
    assert (again["count"], again["firstTimestamp"], again["lastTimestamp"]) == (2, T0, T1)
    assert again["message"] == "m2"
    assert again["metadata"]["resourceVersion"] == "7"  # the PUT is conditional on what was read

    other = next_event(again, name="e", namespace="ns", fields={**fields, "reason": "Failed"}, now=T1)
    assert (other["count"], other["firstTimestamp"]) == (1, T1)


def test_timestamps_are_utc_seconds() -> None:
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    moment = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two)
    assert now_rfc3339(moment) == "2024-05-06T05:08:09Z"
