"""bench.scenarios: when a system has settled, and the new sets made while the background converges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench import metrics, scenarios

Q = metrics.QueueState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_quiet_needs_an_empty_queue_idle_workers_and_no_new_run_for_its_seconds() -> None:
    quiet = scenarios.Quiet(10)
    assert not quiet.observe(0, Q(5, {"high": 0, "low": 3}, 0))  # low priority still waiting
    assert not quiet.observe(1, Q(6, {"high": 0, "low": 0}, 1))  # a worker busy
    assert not quiet.observe(2, Q(7, {"high": 0, "low": 0}, 0))  # quiet from here
    assert not quiet.observe(11, Q(7, {"high": 0, "low": 0}, 0))
    assert quiet.observe(12, Q(7, {"high": 0, "low": 0}, 0))


def test_quiet_starts_again_when_a_run_ends() -> None:
    quiet = scenarios.Quiet(10)
    quiet.observe(0, Q(7, {"high": 0, "low": 0}, 0))
    assert not quiet.observe(9, Q(8, {"high": 0, "low": 0}, 0))  # a run started and ended between scrapes
    assert not quiet.observe(18, Q(8, {"high": 0, "low": 0}, 0))
    assert quiet.observe(19, Q(8, {"high": 0, "low": 0}, 0))


def test_quiet_without_metrics_is_a_fixed_wait() -> None:
    quiet = scenarios.Quiet(10)
    assert not quiet.observe(0, Q(None, None, None))
    assert quiet.observe(10, Q(None, None, None))


@dataclass
class FakeSystem:
    states: list[metrics.QueueState]
    seen: list[metrics.QueueState] = field(default_factory=list)

    def queue(self) -> metrics.QueueState:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        self.seen.append(state)
        return state


def test_settle_waits_out_the_backlog() -> None:
    clock = Clock()
    backlog = [Q(float(n), {"high": 0.0, "low": float(20 - n)}, 1.0) for n in range(20)]
    system = FakeSystem([*backlog, Q(20.0, {"high": 0.0, "low": 0.0}, 0.0)])
    plan = scenarios.Plan.make(False)
    got = scenarios.settle(system, plan, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert got["cap_hit"] is False
    assert got["seconds"] == 30.0  # 20 s of backlog, then 10 quiet
    assert got["runs_meanwhile"] == 20.0
    assert got["depth_at_start"] == {"high": 0.0, "low": 20.0}
    assert got["depth_at_end"] == {"high": 0.0, "low": 0.0}
    assert got["read"] == ["queue depth by priority", "busy workers", "Ansible runs"]


def test_settle_stops_at_its_cap_and_says_so() -> None:
    clock = Clock()
    system = FakeSystem([Q(1.0, {"all": 4.0}, 2.0)])
    plan = scenarios.Plan.make(True)
    got = scenarios.settle(system, plan, clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]
    assert got["cap_hit"] is True
    assert got["seconds"] == plan.settle_cap
    assert got["read"] == ["queue depth", "busy workers", "Ansible runs"]


def test_settle_of_a_system_without_metrics() -> None:
    clock = Clock()
    got = scenarios.settle(FakeSystem([Q(None, None, None)]), scenarios.Plan.make(True),  # type: ignore[arg-type]
                           clock=clock, sleep=clock.sleep)
    assert got["seconds"] == 10.0 and got["read"] == ["nothing: a fixed wait"]


class FakeKube:
    """Sets whose 3 pods are Ready on the second look."""

    def __init__(self) -> None:
        self.created: list[str] = []
        self.looks: dict[str, int] = {}

    def create_set(self, kind: str, ns: str, name: str, replicas: int) -> None:
        self.created.append(name)

    def pods(self, ns: str, selector: str | None = None) -> list[dict[str, Any]]:
        out = []
        for name in self.created:
            self.looks[name] = self.looks.get(name, 0) + 1
            if self.looks[name] >= 2:
                out += [{"metadata": {"name": f"{name}-{i}", "labels": {"bench-set": name}},
                         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
                        for i in range(3)]
        return out


def test_newcomers_are_made_while_the_background_converges_and_timed_to_ready() -> None:
    kube = FakeKube()
    plan = scenarios.Plan(quick=True, new_samples=2, newcomer_every=0.0, newcomer_cap=5.0, background=10)
    system = scenarios.System("ours", "ours", "PodSet", None, None)  # type: ignore[arg-type]
    newcomers = scenarios.Newcomers(kube, system, "ns", plan)  # type: ignore[arg-type]
    newcomers.background_ready = 4
    newcomers.start()
    newcomers.thread.join(timeout=5)
    got = newcomers.result()
    assert kube.created == ["newcomer-0", "newcomer-1"]
    assert len(got["samples"]["new_set_ready"]) == 2 and got["timeouts"] == 0
    assert got["background_not_ready_at_create"] == [6, 6]
