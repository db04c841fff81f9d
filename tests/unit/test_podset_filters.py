"""The playbook_operator.workloads PodSet filters without a cluster: the ReplicaSet deletion
order rule by rule and combined, readiness and availability, label selectors and their string
form, status counts, classification of a namespace's pods, the reconcile plan, and one run
through ansible-playbook to prove the plugin loads."""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

# The collection lives in-tree; Python finds it as ansible_collections.playbook_operator.workloads.
sys.path.insert(0, str(ROOT / "collections"))

from ansible.errors import AnsibleFilterError
from ansible_collections.operator_sdk.util.plugins.module_utils.status import desired_status
from ansible_collections.playbook_operator.workloads.plugins.filter import podset as f

NOW = datetime.datetime(2024, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
UID = "3c1a9a5e-0000-4000-8000-000000000001"
OTHER_UID = "3c1a9a5e-0000-4000-8000-0000000000ff"
NS = "apps"
SELECTOR = {"matchLabels": {"app": "web"}}


def ago(seconds: float) -> str:
    moment = NOW - datetime.timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name: str, *, node: str | None = "node-1", phase: str | None = "Running", ready: bool | None = True,
        ready_for: float | None = 3600, restarts: list[int] | None = None, age: float | None = 7200,
        labels: dict[str, str] | None = None, owner: str | None = UID, controller: bool = True,
        deleting: bool = False, namespace: str = NS) -> dict[str, Any]:
    """A pod as the API returns it. By default: the PodSet's, scheduled, Running, ready for an
    hour, created two hours ago, no restarts, labels app=web."""
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                            "labels": {"app": "web"} if labels is None else labels}
    if age is not None:
        meta["creationTimestamp"] = ago(age)
    if owner is not None:
        meta["ownerReferences"] = [{"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                                    "name": "web", "uid": owner, "controller": controller,
                                    "blockOwnerDeletion": True}]
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if ready is not None:
        condition: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
        if ready_for is not None:
            condition["lastTransitionTime"] = ago(ready_for)
        status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": ago(7000)},
                                condition]
    if restarts is not None:
        status["containerStatuses"] = [{"name": f"c{i}", "restartCount": n} for i, n in enumerate(restarts)]
    spec: dict[str, Any] = {"containers": [{"name": "web", "image": "registry.example/web:1.0"}]}
    if node is not None:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status}


def podset(replicas: int | None = 3, *, selector: dict[str, Any] | None = None, min_ready: int = 0,
           labels: dict[str, str] | None = None, deleting: bool = False, uid: str | None = UID) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web", "namespace": NS, "generation": 1}
    if uid is not None:
        meta["uid"] = uid
    if deleting:
        meta["deletionTimestamp"] = ago(1)
    spec: dict[str, Any] = {
        "selector": copy.deepcopy(SELECTOR) if selector is None else selector,
        "minReadySeconds": min_ready,
        "template": {"metadata": {"labels": {"app": "web"} if labels is None else labels},
                     "spec": {"containers": [{"name": "web", "image": "registry.example/web:1.0"}]}},
    }
    if replicas is not None:
        spec["replicas"] = replicas
    return {"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet", "metadata": meta,
            "spec": spec}


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def ranked(*pods: dict[str, Any]) -> list[str]:
    return names(f.podset_rank_for_deletion(list(pods), NOW))


def assert_order(*expected: dict[str, Any]) -> None:
    """The rank is `expected` whatever the input order (every permutation is tried)."""
    want = names(list(expected))
    for perm in itertools.permutations(expected):
        assert ranked(*perm) == want


# --- ranking, one rule at a time --------------------------------------------------------
# Names are chosen against the rule under test, so the final tie-break by name alone would
# give the opposite order.


def test_unassigned_before_assigned() -> None:
    assert_order(pod("z-unassigned", node=None), pod("a-assigned"))


def test_unassigned_before_assigned_wins_over_every_later_rule() -> None:
    # The unassigned pod is Running, ready for long, old and never restarted; the assigned one
    # is Pending, not ready, new and restarting: only rule 1 puts the unassigned one first.
    assert_order(pod("z-unassigned", node=None, ready_for=10**6, age=10**6),
                 pod("a-assigned", phase="Pending", ready=False, restarts=[9], age=5))


def test_two_assigned_pods_on_different_nodes_are_not_ordered_by_node() -> None:
    assert_order(pod("a", node="node-9"), pod("b", node="node-1"))


@pytest.mark.parametrize(("first", "second"), [("Pending", "Unknown"), ("Unknown", "Running"), ("Pending", "Running")])
def test_phase_order(first: str, second: str) -> None:
    assert_order(pod("z-first", phase=first, ready=False), pod("a-second", phase=second, ready=False))


@pytest.mark.parametrize("phase", [None, "", "Succeeded", "Failed"])
def test_missing_or_other_phase_ranks_as_pending(phase: str | None) -> None:
    assert_order(pod("z-other", phase=phase, ready=False), pod("a-unknown", phase="Unknown", ready=False))
    # ...and level with Pending: the name decides.
    assert_order(pod("a-other", phase=phase, ready=False), pod("b-pending", phase="Pending", ready=False))
    assert_order(pod("a-pending", phase="Pending", ready=False), pod("b-other", phase=phase, ready=False))


def test_phase_wins_over_readiness() -> None:
    # A ready Pending pod (odd but possible in a report) still goes before a not-ready Running one.
    assert_order(pod("z-pending", phase="Pending", ready=True), pod("a-running", ready=False))


@pytest.mark.parametrize("not_ready", [{"ready": False}, {"ready": None}])
def test_not_ready_before_ready(not_ready: dict[str, Any]) -> None:
    assert_order(pod("z-not-ready", **not_ready), pod("a-ready"))


def test_ready_condition_unknown_is_not_ready() -> None:
    unknown = pod("z-unknown")
    unknown["status"]["conditions"][1]["status"] = "Unknown"
    assert_order(unknown, pod("a-ready"))


def test_readiness_wins_over_ready_time_restarts_and_age() -> None:
    assert_order(pod("z-not-ready", ready=False, age=10**6), pod("a-ready", ready_for=1, restarts=[7], age=5))


def test_shorter_ready_before_longer() -> None:
    assert_order(pod("z-recent", ready_for=60), pod("a-long", ready_for=3600))


def test_ready_without_transition_time_goes_first() -> None:
    assert_order(pod("z-no-time", ready_for=None), pod("a-recent", ready_for=1))


def test_ready_time_wins_over_restarts_and_age() -> None:
    assert_order(pod("z-recent", ready_for=60, age=10**6), pod("a-long", ready_for=3600, restarts=[5], age=5))


def test_ready_time_is_ignored_between_pods_that_are_not_ready() -> None:
    # Their Ready=False transition times differ, but only the restarts (next rule) may decide.
    assert_order(pod("z-restarts", ready=False, ready_for=3600, restarts=[2]),
                 pod("a-none", ready=False, ready_for=60, restarts=[0]))


def test_ready_times_in_the_future_count_as_just_ready() -> None:
    # Both ready "in the future" (clock skew): ready for no time at all, so level, and the
    # restarts decide; comparing the raw timestamps would put z-later first.
    assert_order(pod("a-restarts", ready_for=-10, restarts=[2]), pod("z-later", ready_for=-60))


def test_more_restarts_before_fewer_by_the_highest_container_count() -> None:
    # a: highest 5 (total 5); b: highest 4 (total 8): the highest count decides, not the total.
    assert_order(pod("z-five", restarts=[0, 5]), pod("a-four-four", restarts=[4, 4]))


def test_no_container_statuses_count_as_no_restarts() -> None:
    assert_order(pod("z-one", restarts=[1]), pod("a-none", restarts=None))


def test_restarts_win_over_age() -> None:
    assert_order(pod("z-restarted-old", restarts=[1], age=10**6), pod("a-new", age=5))


def test_newer_before_older() -> None:
    assert_order(pod("z-new", age=10), pod("a-old", age=10**5))


def test_missing_creation_time_goes_first() -> None:
    assert_order(pod("z-no-time", age=None), pod("a-new", age=1))


def test_name_breaks_remaining_ties() -> None:
    assert_order(pod("a"), pod("b"), pod("c"))


def test_full_order_of_a_mixed_set_is_independent_of_input_order() -> None:
    expected = [
        pod("p01", node=None, phase="Pending", ready=False, age=10),
        pod("p02", node=None, phase="Running", ready=True, age=20),
        pod("p03", phase="Pending", ready=False),
        pod("p04", phase="Unknown", ready=False),
        pod("p05", ready=False, restarts=[3]),
        pod("p06", ready=False, restarts=[1]),
        pod("p07", ready_for=None),
        pod("p08", ready_for=30, age=100),
        pod("p09", ready_for=600, restarts=[2], age=50),
        pod("p10", ready_for=600, restarts=[1], age=50),
        pod("p11", ready_for=600, restarts=[1], age=500),
        pod("p12", ready_for=600, restarts=[1], age=500),
        pod("p13", ready_for=86400, age=10**6),
    ]
    rng = random.Random(7)
    for _ in range(50):
        shuffled = expected[:]
        rng.shuffle(shuffled)
        assert ranked(*shuffled) == names(expected)


def test_rank_returns_the_given_objects_and_leaves_the_input_alone() -> None:
    pods = [pod("b"), pod("a", node=None)]
    before = copy.deepcopy(pods)
    out = f.podset_rank_for_deletion(pods, NOW)
    assert out[0] is pods[1] and out[1] is pods[0]
    assert pods == before


@pytest.mark.parametrize("now", [NOW, NOW.replace(tzinfo=None), "2024-06-01T12:00:00Z",
                                 "2024-06-01T14:00:00+02:00", NOW.timestamp()])
def test_now_in_every_accepted_form(now: Any) -> None:
    # Right at the availability boundary: a second off either way flips one of these.
    assert f.podset_is_ready(pod("a", ready_for=300), 300, now) is True
    assert f.podset_is_ready(pod("a", ready_for=299), 300, now) is False


def test_invalid_now_and_timestamps_fail_clearly() -> None:
    with pytest.raises(AnsibleFilterError, match="now must be an RFC 3339 timestamp"):
        f.podset_rank_for_deletion([pod("a")], "yesterday")
    bad = pod("a")
    bad["metadata"]["creationTimestamp"] = "not a time"
    with pytest.raises(AnsibleFilterError, match="creationTimestamp"):
        f.podset_rank_for_deletion([bad, pod("b")], NOW)
    with pytest.raises(AnsibleFilterError, match="must be a list of pods"):
        f.podset_rank_for_deletion({"items": []}, NOW)  # type: ignore[arg-type]
    with pytest.raises(AnsibleFilterError, match="must be a list of pods"):
        f.podset_rank_for_deletion(["a"], NOW)  # type: ignore[list-item]


def test_empty_list_ranks_to_empty_list() -> None:
    assert f.podset_rank_for_deletion([], NOW) == []


# --- activity, readiness, availability --------------------------------------------------


@pytest.mark.parametrize(("kwargs", "active"), [
    ({}, True),
    ({"phase": "Pending", "ready": False}, True),
    ({"phase": "Unknown"}, True),
    ({"phase": None}, True),
    ({"phase": "Succeeded"}, False),
    ({"phase": "Failed"}, False),
    ({"deleting": True}, False),
])
def test_is_active(kwargs: dict[str, Any], active: bool) -> None:
    assert f.podset_is_active(pod("a", **kwargs)) is active


@pytest.mark.parametrize(("kwargs", "ready"), [({}, True), ({"ready": False}, False), ({"ready": None}, False)])
def test_is_ready_follows_the_ready_condition(kwargs: dict[str, Any], ready: bool) -> None:
    assert f.podset_is_ready(pod("a", **kwargs)) is ready


def test_available_after_min_ready_seconds_inclusive() -> None:
    assert f.podset_is_ready(pod("a", ready_for=10), 10, NOW) is True
    assert f.podset_is_ready(pod("a", ready_for=9), 10, NOW) is False
    assert f.podset_is_ready(pod("a", ready_for=9), 0, NOW) is True
    assert f.podset_is_ready(pod("a", ready=False, ready_for=10**5), 10, NOW) is False


def test_available_needs_a_transition_time_only_with_min_ready_seconds() -> None:
    assert f.podset_is_ready(pod("a", ready_for=None), 0, NOW) is True
    assert f.podset_is_ready(pod("a", ready_for=None), 1, NOW) is False


def test_min_ready_seconds_as_a_string_from_a_template() -> None:
    assert f.podset_is_ready(pod("a", ready_for=30), "20", NOW) is True  # type: ignore[arg-type]
    assert f.podset_is_ready(pod("a", ready_for=10), "20", NOW) is False  # type: ignore[arg-type]


# --- selectors --------------------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "track": "stable"}


@pytest.mark.parametrize(("selector", "matches"), [
    ({"matchLabels": {"app": "web"}}, True),
    ({"matchLabels": {"app": "web", "tier": "front"}}, True),
    ({"matchLabels": {"app": "api"}}, False),
    ({"matchLabels": {"app": "web", "zone": "a"}}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back", "front"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front", "back"]}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, True),
    ({"matchExpressions": [{"key": "track", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "track", "operator": "DoesNotExist"}]}, False),
    # Requirements are ANDed: one failing expression among passing ones fails the selector.
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                           {"key": "track", "operator": "DoesNotExist"}]}, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]},
                           {"key": "zone", "operator": "DoesNotExist"}]}, True),
    ({}, True),
    ({"matchLabels": {}, "matchExpressions": []}, True),
    (None, False),
])
def test_selector_matches(selector: dict[str, Any] | None, matches: bool) -> None:
    assert f.podset_selector_matches(LABELS, selector) is matches


def test_selector_against_no_labels() -> None:
    assert f.podset_selector_matches(None, {"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}) is True
    assert f.podset_selector_matches({}, {"matchLabels": {"app": "web"}}) is False
    assert f.podset_selector_matches(None, {}) is True


@pytest.mark.parametrize(("selector", "message"), [
    ({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}, "not a valid label selector"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}, "must not be empty for operator In"),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn"}]}, "must not be empty for operator NotIn"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "must be empty for operator Exists"),
    ({"matchExpressions": [{"operator": "Exists"}]}, r"key: is required"),
    ({"matchLabels": ["app=web"]}, "matchLabels: must be a mapping"),
    ("app=web", "must be a mapping"),
    # Not a string (once taken as str(1)): the apiserver refuses it (tests/unit/test_selectors.py).
    ({"matchLabels": {"app": 1}}, r"matchLabels.app: must be a string"),
])
def test_invalid_selector_fails(selector: Any, message: str) -> None:
    with pytest.raises(AnsibleFilterError, match=message):
        f.podset_selector_matches(LABELS, selector)


@pytest.mark.parametrize(("selector", "text"), [
    ({"matchLabels": {"app": "web"}}, "app=web"),
    ({"matchLabels": {"tier": "front", "app": "web"}}, "app=web,tier=front"),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}, "tier in (a,b)"),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a"]}]}, "tier in (a)"),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod", "dev"]}]}, "env notin (dev,prod)"),
    ({"matchExpressions": [{"key": "track", "operator": "Exists"}]}, "track"),
    ({"matchExpressions": [{"key": "legacy", "operator": "DoesNotExist"}]}, "!legacy"),
    # What the apiserver gives a ReplicaSet with this selector in its scale subresource.
    ({"matchLabels": {"zeta": "z", "app": "web"},
      "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a", "c"]},
                           {"key": "env", "operator": "NotIn", "values": ["prod"]},
                           {"key": "track", "operator": "Exists"},
                           {"key": "legacy", "operator": "DoesNotExist"},
                           {"key": "app", "operator": "In", "values": ["web", "api"]}]},
     "app=web,app in (api,web),env notin (prod),!legacy,tier in (a,b,c),track,zeta=z"),
    ({}, ""),
])
def test_selector_string(selector: dict[str, Any], text: str) -> None:
    assert f.podset_selector_string(selector) == text


def test_selector_string_of_a_missing_or_invalid_selector_fails() -> None:
    with pytest.raises(AnsibleFilterError, match="missing selector"):
        f.podset_selector_string(None)  # type: ignore[arg-type]
    with pytest.raises(AnsibleFilterError, match="not a valid label selector"):
        f.podset_selector_string({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})


# --- counts -----------------------------------------------------------------------------


def test_counts() -> None:
    pods = [
        pod("available", ready_for=100),
        pod("ready-not-yet-available", ready_for=5),
        pod("not-ready", ready=False),
        pod("partly-labeled", labels={"app": "web"}, ready_for=100),
        pod("failed", phase="Failed", ready=False),
        pod("succeeded", phase="Succeeded", ready=False),
        pod("deleting", deleting=True),
        pod("other-app", labels={"app": "api", "rev": "1"}),
    ]
    for p in pods[:3]:
        p["metadata"]["labels"] = {"app": "web", "rev": "1"}
    counts = f.podset_counts(pods, SELECTOR, 30, NOW, {"app": "web", "rev": "1"})
    assert counts == {"replicas": 4, "readyReplicas": 3, "availableReplicas": 2, "fullyLabeledReplicas": 3}


def test_counts_defaults() -> None:
    pods = [pod("a", ready_for=1), pod("b", ready=False)]
    # No minReadySeconds: ready is available; no template labels: every pod is fully labeled.
    assert f.podset_counts(pods, SELECTOR, now=NOW) == \
        {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "fullyLabeledReplicas": 2}
    # A missing selector selects nothing; an empty one everything.
    assert f.podset_counts(pods, None, now=NOW)["replicas"] == 0
    assert f.podset_counts([*pods, pod("c", labels={})], {}, now=NOW)["replicas"] == 3


# --- classification ---------------------------------------------------------------------


def classify(pods: list[dict[str, Any]], ps: dict[str, Any] | None = None) -> dict[str, list[str]]:
    out = f.podset_classify(pods, ps or podset())
    # Every pod lands in exactly one class.
    assert sorted(itertools.chain.from_iterable(names(v) for v in out.values())) == sorted(names(pods))
    return {k: names(v) for k, v in out.items()}


def test_classify_every_case() -> None:
    pods = [
        pod("owned"),
        pod("owned-not-ready", phase="Pending", ready=False),
        pod("relabeled", labels={"app": "web-debug"}),
        pod("owned-failed", phase="Failed", ready=False),
        pod("owned-succeeded-relabeled", phase="Succeeded", ready=False, labels={}),
        pod("owned-deleting", deleting=True),
        pod("owned-failed-deleting", phase="Failed", deleting=True),
        pod("orphan", owner=None),
        pod("orphan-with-non-controller-owner", owner=OTHER_UID, controller=False),
        pod("orphan-not-matching", owner=None, labels={"app": "api"}),
        pod("orphan-failed", owner=None, phase="Failed", ready=False),
        pod("orphan-deleting", owner=None, deleting=True),
        pod("other-controller", owner=OTHER_UID),
        pod("other-controller-failed", owner=OTHER_UID, phase="Failed"),
        pod("other-namespace-orphan", owner=None, namespace="elsewhere"),
        pod("other-namespace-owned", namespace="elsewhere"),
    ]
    assert classify(pods) == {
        "owned": ["owned", "owned-not-ready"],
        "to_adopt": ["orphan", "orphan-with-non-controller-owner"],
        "to_release": ["relabeled"],
        "terminal": ["owned-failed", "owned-succeeded-relabeled"],
        "terminating": ["owned-deleting", "owned-failed-deleting"],
        "ignored": ["orphan-not-matching", "orphan-failed", "orphan-deleting", "other-controller",
                    "other-controller-failed", "other-namespace-orphan", "other-namespace-owned"],
    }


def test_a_podset_being_deleted_adopts_and_releases_nothing() -> None:
    pods = [pod("owned"), pod("relabeled", labels={"app": "x"}), pod("orphan", owner=None),
            pod("failed", phase="Failed")]
    assert classify(pods, podset(deleting=True)) == {
        "owned": ["owned"], "to_adopt": [], "to_release": [], "terminal": ["failed"], "terminating": [],
        "ignored": ["relabeled", "orphan"],
    }


def test_a_podset_without_uid_owns_nothing() -> None:
    out = classify([pod("a", owner=""), pod("b")], podset(uid=None))
    assert out["owned"] == [] and out["ignored"] == ["a", "b"]


def test_classify_with_a_selector_expression() -> None:
    selector = {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "web-canary"]}]}
    pods = [pod("web"), pod("canary", labels={"app": "web-canary"}), pod("other", labels={"app": "db"}),
            pod("orphan-canary", owner=None, labels={"app": "web-canary"})]
    out = classify(pods, podset(selector=selector))
    assert out["owned"] == ["web", "canary"]
    assert out["to_release"] == ["other"]
    assert out["to_adopt"] == ["orphan-canary"]


# --- the plan ---------------------------------------------------------------------------


def plan(ps: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    result = f.podset_plan(ps, pods, NOW)
    # Pure and deterministic: the order pods are listed in changes nothing.
    for seed in range(3):
        shuffled = pods[:]
        random.Random(seed).shuffle(shuffled)
        assert f.podset_plan(ps, shuffled, NOW) == result
    return result


def test_plan_scale_up_from_nothing() -> None:
    assert plan(podset(3), []) == {
        "create": 3, "delete": [], "adopt": [], "release": [], "replace_terminal": [],
        "counts": {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "fullyLabeledReplicas": 0},
    }


def test_plan_scale_up() -> None:
    result = plan(podset(5), [pod("a"), pod("b", ready=False)])
    assert result["create"] == 3 and result["delete"] == []
    assert result["counts"] == {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "fullyLabeledReplicas": 2}


def test_plan_steady() -> None:
    result = plan(podset(2), [pod("a"), pod("b")])
    assert (result["create"], result["delete"]) == (0, [])


def test_plan_scale_down_deletes_the_least_valuable() -> None:
    pods = [pod("old-ready", ready_for=10**5, age=10**5), pod("pending", phase="Pending", ready=False),
            pod("restarting", restarts=[4]), pod("unscheduled", node=None, phase="Pending", ready=False),
            pod("fresh", ready_for=10, age=20)]
    result = plan(podset(2), pods)
    assert result["create"] == 0
    assert result["delete"] == ["unscheduled", "pending", "fresh"]


def test_plan_scale_to_zero_deletes_all_in_rank_order() -> None:
    pods = [pod("b", ready_for=100), pod("a", ready=False), pod("c", ready_for=50)]
    assert plan(podset(0), pods)["delete"] == ["a", "c", "b"]


def test_plan_replicas_default_to_one() -> None:
    assert plan(podset(None), [])["create"] == 1
    assert plan(podset(None), [pod("a"), pod("b", ready=False)])["delete"] == ["b"]


def test_plan_adopts_orphans_and_counts_them() -> None:
    result = plan(podset(3), [pod("owned"), pod("orphan-1", owner=None), pod("orphan-2", owner=None)])
    assert result["adopt"] == ["orphan-1", "orphan-2"]
    assert (result["create"], result["delete"]) == (0, [])
    assert result["counts"]["replicas"] == 3


def test_plan_may_delete_a_pod_it_adopts() -> None:
    result = plan(podset(2), [pod("a"), pod("b"), pod("orphan", owner=None, phase="Pending", ready=False)])
    assert result["adopt"] == ["orphan"]
    assert result["delete"] == ["orphan"]


def test_plan_replaces_terminal_pods() -> None:
    result = plan(podset(3), [pod("a"), pod("b"), pod("failed", phase="Failed", ready=False),
                              pod("done", phase="Succeeded", ready=False)])
    assert result["replace_terminal"] == ["done", "failed"]
    assert result["create"] == 1
    assert result["counts"]["replicas"] == 2


def test_plan_releases_relabeled_pods_and_replaces_them() -> None:
    result = plan(podset(2), [pod("a"), pod("debug", labels={"app": "web", "debug": "1"}),
                              pod("pulled-out", labels={"app": "quarantine"})])
    assert result["release"] == ["pulled-out"]
    assert result["create"] == 0  # "debug" still matches app=web
    result = plan(podset(2), [pod("a"), pod("pulled-out", labels={"app": "quarantine"})])
    assert (result["release"], result["create"]) == (["pulled-out"], 1)


def test_plan_does_not_count_terminating_pods() -> None:
    result = plan(podset(2), [pod("a"), pod("going", deleting=True)])
    assert result["create"] == 1 and result["delete"] == []


def test_plan_never_touches_pods_of_another_controller() -> None:
    others = [pod(f"rs-{i}", owner=OTHER_UID) for i in range(3)]
    result = plan(podset(1), [*others, pod("mine")])
    assert result == {"create": 0, "delete": [], "adopt": [], "release": [], "replace_terminal": [],
                      "counts": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                                 "fullyLabeledReplicas": 1}}
    result = plan(podset(0), others)
    assert result["delete"] == [] and result["create"] == 0


def test_plan_of_a_podset_being_deleted_is_empty_but_counted() -> None:
    result = plan(podset(5, deleting=True), [pod("a"), pod("orphan", owner=None), pod("f", phase="Failed")])
    assert result == {"create": 0, "delete": [], "adopt": [], "release": [], "replace_terminal": [],
                      "counts": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                                 "fullyLabeledReplicas": 1}}


def test_plan_counts_use_min_ready_seconds_template_labels_and_now() -> None:
    ps = podset(3, min_ready=60, labels={"app": "web", "rev": "2"})
    pods = [pod("a", ready_for=120, labels={"app": "web", "rev": "2"}), pod("b", ready_for=30),
            pod("orphan", owner=None, ready_for=600)]
    assert plan(ps, pods)["counts"] == \
        {"replicas": 3, "readyReplicas": 3, "availableReplicas": 2, "fullyLabeledReplicas": 1}
    later = f.podset_plan(ps, pods, NOW + datetime.timedelta(seconds=30))
    assert later["counts"]["availableReplicas"] == 3


def test_plan_rejects_a_podset_that_is_not_an_object() -> None:
    with pytest.raises(AnsibleFilterError, match="podset must be a PodSet object"):
        f.podset_plan([], [])  # type: ignore[arg-type]


# --- through Ansible --------------------------------------------------------------------

PLAYBOOK = """
- name: The PodSet filters inside Ansible
  hosts: localhost
  gather_facts: false
  vars:
    ps: {podset}
    pods: {pods}
  tasks:
    - name: Plan with Ansible's own now()
      ansible.builtin.debug:
        msg: "{{{{ ps | playbook_operator.workloads.podset_plan(pods, now(utc=true)) }}}}"

    - name: Every filter, with a fixed time
      ansible.builtin.copy:
        dest: "{{{{ out }}}}"
        mode: "0600"
        content: >-
          {{{{ {{
            'plan': ps | playbook_operator.workloads.podset_plan(pods, '{now}'),
            'ranked': pods | playbook_operator.workloads.podset_rank_for_deletion('{now}')
                           | map(attribute='metadata.name'),
            'active': pods | map('playbook_operator.workloads.podset_is_active'),
            'available': pods[0] | playbook_operator.workloads.podset_is_ready(60, '{now}'),
            'counts': pods | playbook_operator.workloads.podset_counts(ps.spec.selector, 0, '{now}'),
            'selector': ps.spec.selector | playbook_operator.workloads.podset_selector_string,
            'matches': {{'app': 'web'}} | playbook_operator.workloads.podset_selector_matches(ps.spec.selector),
            'classes': (pods | playbook_operator.workloads.podset_classify(ps)).keys() | sort,
          }} | to_json }}}}
"""


def test_filters_load_and_run_in_ansible_playbook(tmp_path: Path) -> None:
    pods = [pod("a", ready_for=3600), pod("b", ready=False), pod("orphan", owner=None),
            pod("failed", phase="Failed", ready=False)]
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK.format(podset=json.dumps(podset(2)), pods=json.dumps(pods),
                                        now=NOW.strftime("%Y-%m-%dT%H:%M:%SZ")))
    out = tmp_path / "out.json"
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
           "ANSIBLE_NOCOLOR": "true"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"out={out}", "-e", f"ansible_python_interpreter={sys.executable}", str(playbook)],
        capture_output=True, text=True, env=env, timeout=180, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "'create': 0" in proc.stdout or '"create": 0' in proc.stdout  # the now() run printed a plan
    result = json.loads(out.read_text())
    assert result["plan"] == {
        "create": 0, "delete": ["b"], "adopt": ["orphan"], "release": [], "replace_terminal": ["failed"],
        "counts": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2, "fullyLabeledReplicas": 3},
    }
    # "failed" has no rank of its own phase, so it ranks as Pending, before the Running pods.
    assert result["ranked"] == ["failed", "b", "a", "orphan"]
    assert result["active"] == [True, True, True, False]
    assert result["available"] is True
    assert result["counts"] == {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                                "fullyLabeledReplicas": 3}
    assert result["selector"] == "app=web"
    assert result["matches"] is True
    assert result["classes"] == ["ignored", "owned", "terminal", "terminating", "to_adopt", "to_release"]


# --- podset_status_differs: skipped only when k8s_status would write nothing -----------------

CONDITIONS = [{"type": "ReplicaFailure", "status": "False", "reason": "PodsCreated", "message": "ok"},
              {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "3 of 3"}]


def written(current: dict[str, Any], status: dict[str, Any], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    """What operator_sdk.util.k8s_status makes of it: the reference the filter must agree with."""
    return desired_status(current, status, conditions, now="2024-06-01T12:00:00Z")


@pytest.mark.parametrize("status, conditions", [
    ({"replicas": 3, "readyReplicas": 3}, CONDITIONS),
    ({"replicas": 3, "readyReplicas": 2}, CONDITIONS),
    ({"replicas": 3, "readyReplicas": 3, "failedRevision": None}, CONDITIONS),
    ({"replicas": 3, "readyReplicas": 3, "currentRevision": None}, CONDITIONS),
    ({"replicas": 3}, [{**CONDITIONS[1], "status": "False", "reason": "MinimumReplicasUnavailable"}]),
    ({"replicas": 3}, [{**CONDITIONS[1], "message": "2 of 3"}]),
    ({"replicas": 3}, [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]),
    ({"selector": "app=web"}, []),
    ({}, CONDITIONS[:1]),
])
def test_status_differs_exactly_when_k8s_status_would_write(status: dict[str, Any],
                                                             conditions: list[dict[str, Any]]) -> None:
    current = written({"currentRevision": "web-1"}, {"replicas": 3, "readyReplicas": 3}, CONDITIONS)
    podset = {"metadata": {"name": "web"}, "status": current}
    expected = written(current, status, conditions) != current
    assert f.podset_status_differs(podset, status, conditions) is expected
    assert f.podset_status_differs([podset], status, conditions) is expected


def test_status_differs_when_unsure_or_the_object_is_missing() -> None:
    podset = {"metadata": {"name": "web"}, "status": {"replicas": 3, "nested": {"a": 1}}}
    assert f.podset_status_differs([], {"replicas": 3}) is True
    assert f.podset_status_differs(None, {"replicas": 3}) is True
    assert f.podset_status_differs([podset, podset], {"replicas": 3}) is True
    assert f.podset_status_differs(podset, {"nested": {"a": 1}}) is True
    assert f.podset_status_differs({"status": "odd"}, {"replicas": 3}) is True
    assert f.podset_status_differs(podset, {"replicas": 3}) is False
    assert f.podset_status_differs({"metadata": {}}, {}) is False
