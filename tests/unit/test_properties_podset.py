"""Properties of the PodSet filters (playbook_operator.workloads podset.py and rollout.py).

Pods are made with test_podset_filters' `pod` helper; rollouts run in test_podset_rollout's
simulated namespace (a fake clock, pods that start on a tick), here with random strategies,
pods that take a random number of ticks to start, and ready pods that drop out of readiness
for a while. Whatever the namespace does, each step the plan decides stays within maxSurge and
maxUnavailable, and once the namespace behaves, the rollout ends with exactly spec.replicas pods
of the new template within a bounded number of steps.
"""

from __future__ import annotations

import datetime
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit import test_podset_filters as pf
from tests.unit import test_podset_rollout as pr

pytestmark = pytest.mark.unit

f = pf.f  # the podset filters, imported once the collections are on sys.path
r = pr.r  # the rollout filters

# Fixed examples, no example database, and no deadline (a loaded machine makes timings unreliable).
SETTINGS = settings(max_examples=100, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Whole rollouts, reconcile after reconcile: each is cheap, and each covers much.
ROLLOUT_SETTINGS = settings(SETTINGS, max_examples=250)

# --- pods ---------------------------------------------------------------------------------

NAME_POOL = [f"{letter}{n}" for letter in "pqrs" for n in range(4)]
SECONDS = st.one_of(st.none(), st.integers(-120, 10**6))


@st.composite
def pod_fields(draw: st.DrawFn) -> dict[str, Any]:
    """What `pf.pod` takes, for any pod the deletion order has a rule about."""
    ready = draw(st.sampled_from([True, False, None]))
    return {
        "node": draw(st.sampled_from([None, "node-1", "node-2"])),
        "phase": draw(st.sampled_from(["Running", "Pending", "Unknown", None, "", "Succeeded", "Failed"])),
        "ready": ready,
        "ready_for": draw(SECONDS),
        "restarts": draw(st.one_of(st.none(), st.lists(st.integers(0, 5), max_size=3))),
        "age": draw(SECONDS),
    }


@st.composite
def pod_lists(draw: st.DrawFn, min_size: int = 0, max_size: int = 8) -> list[dict[str, Any]]:
    fields = draw(st.lists(pod_fields(), min_size=min_size, max_size=max_size))
    # Names are unique in a namespace; drawn so that their order says nothing about the rank.
    names = draw(st.permutations(NAME_POOL))[:len(fields)]
    return [pf.pod(name, **kwargs) for name, kwargs in zip(names, fields, strict=True)]


def ranked_names(pods: list[dict[str, Any]]) -> list[str]:
    return pf.names(f.podset_rank_for_deletion(pods, pf.NOW))


@SETTINGS
@given(pods=pod_lists(), seed=st.randoms(use_true_random=False))
def test_ranking_is_the_same_whatever_order_the_pods_come_in(pods: list[dict[str, Any]], seed: random.Random) -> None:
    shuffled = pods[:]
    seed.shuffle(shuffled)
    assert ranked_names(shuffled) == ranked_names(pods)
    assert sorted(ranked_names(pods)) == sorted(pf.names(pods))


@SETTINGS
@given(pods=pod_lists(min_size=2))
def test_ranking_is_a_total_order(pods: list[dict[str, Any]]) -> None:
    # Any two pods are ranked between themselves as in the whole list (the rank is a comparison
    # of the two, not of their company), and two distinct pods never tie.
    whole = ranked_names(pods)
    for i, a in enumerate(pods):
        for b in pods[i + 1:]:
            pair = ranked_names([a, b])
            assert pair == [name for name in whole if name in pair]
            assert ranked_names([b, a]) == pair


def _assigned(p: dict[str, Any]) -> bool:
    return bool(p["spec"].get("nodeName"))


def _phase_rank(p: dict[str, Any]) -> int:
    return {"Unknown": 1, "Running": 2}.get(p["status"].get("phase") or "", 0)


@SETTINGS
@given(pods=pod_lists(min_size=2))
def test_unready_and_pending_pods_go_before_ready_and_running_ones(pods: list[dict[str, Any]]) -> None:
    ranked = f.podset_rank_for_deletion(pods, pf.NOW)
    position = {id(p): i for i, p in enumerate(ranked)}
    for a in pods:
        for b in pods:
            before = position[id(a)] < position[id(b)]
            if not _assigned(a) and _assigned(b):
                assert before, "an unscheduled pod goes first"
            elif _assigned(a) == _assigned(b) and _phase_rank(a) < _phase_rank(b):
                assert before, "Pending before Unknown before Running"
            elif (_assigned(a) == _assigned(b) and _phase_rank(a) == _phase_rank(b)
                  and not f.podset_is_ready(a) and f.podset_is_ready(b)):
                assert before, "not ready before ready"


# --- the plan -----------------------------------------------------------------------------


@st.composite
def namespaces(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The pods of a namespace: the PodSet's, orphans, another controller's, relabelled, ended,
    terminating, in another namespace."""
    pods = draw(pod_lists(max_size=10))
    for p in pods:
        owner = draw(st.sampled_from([pf.UID, pf.UID, None, pf.OTHER_UID]))
        meta = p["metadata"]
        if owner is None:
            del meta["ownerReferences"]
        else:
            meta["ownerReferences"][0]["uid"] = owner
        meta["labels"] = draw(st.sampled_from([{"app": "web"}, {"app": "web", "rev": "2"}, {"app": "api"}, {}]))
        if draw(st.integers(0, 9)) == 0:
            meta["deletionTimestamp"] = pf.ago(1)
        if draw(st.integers(0, 9)) == 0:
            meta["namespace"] = "elsewhere"
    return pods


@SETTINGS
@given(pods=namespaces(), replicas=st.one_of(st.none(), st.integers(0, 8)), min_ready=st.integers(0, 7200),
       deleting=st.booleans(), seed=st.randoms(use_true_random=False))
def test_the_plan_reaches_the_replica_count_and_counts_are_never_negative(
        pods: list[dict[str, Any]], replicas: int | None, min_ready: int, deleting: bool, seed: random.Random) -> None:
    ps = pf.podset(replicas, min_ready=min_ready, deleting=deleting)
    plan = f.podset_plan(ps, pods, pf.NOW)
    shuffled = pods[:]
    seed.shuffle(shuffled)
    assert f.podset_plan(ps, shuffled, pf.NOW) == plan

    counts = plan["counts"]
    assert 0 <= counts["availableReplicas"] <= counts["readyReplicas"] <= counts["replicas"]
    assert 0 <= counts["fullyLabeledReplicas"] <= counts["replicas"]
    assert plan["create"] >= 0

    classes = f.podset_classify(pods, ps)
    active = [*classes["owned"], *classes["to_adopt"]]
    assert counts["replicas"] == len(active)
    if deleting:
        assert (plan["create"], plan["delete"], plan["adopt"], plan["release"]) == (0, [], [], [])
        return
    desired = 1 if replicas is None else replicas
    # Exactly the desired count once applied, by creating or by deleting, never both.
    assert len(active) + plan["create"] - len(plan["delete"]) == desired
    assert not (plan["create"] and plan["delete"])
    # What goes is the least valuable of the active pods, and only those.
    assert plan["delete"] == pf.names(f.podset_rank_for_deletion(active, pf.NOW))[:len(plan["delete"])]
    untouchable = {p["metadata"]["name"] for p in classes["ignored"]}
    assert not untouchable & {*plan["delete"], *plan["adopt"], *plan["release"], *plan["replace_terminal"]}


# --- rollouts -----------------------------------------------------------------------------

BOUND = st.one_of(st.integers(0, 3), st.sampled_from(["0%", "25%", "50%", "100%"]))


@st.composite
def strategies(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.integers(0, 4)) == 0:
        return {"type": "Recreate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": draw(BOUND), "maxUnavailable": draw(BOUND)}}


class ChaoticNamespace(pr.Namespace):
    """The simulated namespace, where a pod may take a few ticks to start and a ready pod may
    drop out of readiness for a few ticks."""

    def __init__(self, podset: dict[str, Any]) -> None:
        super().__init__(podset)
        self.starting: dict[str, int] = {}  # pod -> ticks it stays Pending
        self.unready: dict[str, int] = {}  # pod -> ticks it stays not ready

    def tick(self, seconds: float = 1) -> None:
        self.now += datetime.timedelta(seconds=seconds)
        for name, pod in self.pods.items():
            if pod["status"].get("phase") == "Pending":
                if self.starting.get(name, 0) > 0:
                    self.starting[name] -= 1
                    continue
                self.set_ready(name, True, phase="Running")
            elif name in self.unready:
                self.unready[name] -= 1
                if self.unready[name] <= 0:
                    del self.unready[name]
                    self.set_ready(name, True)

    def set_ready(self, name: str, ready: bool, phase: str = "Running") -> None:
        self.pods[name]["status"] = {"phase": phase, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": pr.stamp(self.now)}]}

    def disturb(self, rng: random.Random) -> None:
        """Pods just created start late; ready pods drop out of readiness."""
        for name, pod in self.pods.items():
            if pod["status"].get("phase") == "Pending" and name not in self.starting:
                self.starting[name] = rng.choice([0, 0, 1, 2, 3])
            elif pod["status"].get("phase") == "Running" and name not in self.unready and rng.random() < 0.1:
                self.unready[name] = rng.randint(1, 3)
                self.set_ready(name, False)

    def available(self) -> set[str]:
        min_ready = int(self.podset["spec"].get("minReadySeconds") or 0)
        return {name for name, p in self.pods.items() if f.podset_is_ready(p, min_ready, self.now)}


def checked_step(ns: ChaoticNamespace) -> dict[str, Any]:
    """One reconcile, and what its plan may do: stay within the bounds, never count below zero."""
    bounds = r.podset_rolling_bounds(ns.podset)
    replicas = ns.podset["spec"]["replicas"]
    total_before, available_before = ns.total(), ns.available()
    plan = ns.step()
    assert plan["bounds"] == bounds
    assert plan["create"] >= 0 and plan["requeue_after"] >= 0
    assert all(v >= 0 for v in plan["counts"].values())
    assert plan["status"]["updatedReplicas"] >= 0
    # maxSurge: no pod is created beyond spec.replicas + maxSurge.
    assert ns.total() <= max(total_before, replicas + bounds["maxSurge"])
    if plan["create"]:
        assert ns.total() <= replicas + bounds["maxSurge"]
    # maxUnavailable: no available pod is deleted below spec.replicas - maxUnavailable.
    available_deleted = len(available_before & set(plan["delete"]))
    if available_deleted:
        assert len(available_before) - available_deleted >= replicas - bounds["maxUnavailable"]
    return plan


def converged_on(ns: ChaoticNamespace, image: str, replicas: int) -> None:
    assert ns.images() == [image] * replicas
    status = ns.podset["status"]
    new = f"web-{r.podset_template_hash(pr.template(image))}"
    assert status["currentRevision"] == status["updateRevision"] == new
    assert status["updatedReplicas"] == status["replicas"] == replicas


@ROLLOUT_SETTINGS
@given(replicas=st.integers(0, 6), new_replicas=st.integers(0, 6), strategy=strategies(),
       chaos=st.integers(0, 12), seed=st.randoms(use_true_random=False))
def test_a_rollout_in_a_chaotic_namespace_stays_in_bounds_and_converges(
        replicas: int, new_replicas: int, strategy: dict[str, Any], chaos: int, seed: random.Random) -> None:
    ns = ChaoticNamespace(pr.make_podset(replicas, strategy=strategy))
    ns.converge()
    ns.set_image("web:2")
    ns.podset["spec"]["replicas"] = new_replicas
    # A while of pods starting late and dropping out of readiness...
    for _ in range(chaos):
        checked_step(ns)
        ns.disturb(seed)
        ns.tick()
    # ...then a quiet namespace: every pod starts on the next tick and stays ready.
    limit = 3 * max(replicas, new_replicas) + 10
    for _ in range(limit):
        plan = checked_step(ns)
        ns.tick()
        if not plan["create"] and not plan["delete"] and not plan["revisions"]["create"] and ns.settled():
            break
    else:
        raise AssertionError(f"no convergence in {limit} steps: {ns.podset['status']}")
    converged_on(ns, "web:2", new_replicas)


@ROLLOUT_SETTINGS
@given(replicas=st.integers(1, 6), strategy=strategies(), delays=st.lists(st.integers(0, 3), max_size=12))
def test_a_rolling_update_keeps_enough_pods_ready_while_new_ones_start_late(
        replicas: int, strategy: dict[str, Any], delays: list[int]) -> None:
    # Only the new pods are slow; the old ones stay ready until they are deleted, so the ready
    # count seen after any step never drops below spec.replicas - maxUnavailable.
    ns = ChaoticNamespace(pr.make_podset(replicas, strategy=strategy))
    ns.converge()
    bounds = r.podset_rolling_bounds(ns.podset)
    ns.set_image("web:2")
    ns.samples.clear()
    pending_delays = iter(delays)
    for _ in range(4 * replicas + 10):
        plan = checked_step(ns)
        for name, pod in ns.pods.items():
            if pod["status"].get("phase") == "Pending" and name not in ns.starting:
                ns.starting[name] = next(pending_delays, 0)
        ns.tick()
        if not plan["create"] and not plan["delete"] and ns.settled():
            break
    for total, ready in ns.samples:
        assert total <= replicas + bounds["maxSurge"]
        assert ready >= replicas - bounds["maxUnavailable"]
    converged_on(ns, "web:2", replicas)
