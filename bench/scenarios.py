"""The scenarios, each run against one system at a time. Each returns plain data (samples in
seconds, counts) that `report` summarizes; none of them knows which system it drives."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import measure
from bench.kube import Kube, tally, wait_until
from bench.progress import Progress
from bench.systems import System


@dataclass(frozen=True)
class Plan:
    """How big each scenario is (full or QUICK)."""

    quick: bool
    single_samples: int = 20
    # A safety cap per system for the single-PodSet series, not a budget: the SDK needs about a
    # minute per iteration, so 20 samples of it take about 25 minutes.
    single_budget: float = 2400.0
    step_timeout: float = 120.0
    burst: int = 100
    burst_cap: float = 300.0
    background: int = 1000
    per_namespace: int = 10
    # Converging 1,000 PodSets through Ansible on a small machine takes tens of minutes.
    converge_cap: float = 2700.0
    sync_cap: float = 300.0
    new_samples: int = 20
    new_budget: float = 300.0
    steady_window: float = 300.0
    # When the start-up pass did not finish within sync_cap there is no steady state to measure:
    # the idle window is this short and flagged as taken during the start-up pass.
    unsettled_window: float = 60.0
    settle_cap: float = 60.0  # before the idle window: until no Ansible run for 10 s, at most this long

    def pods_needed(self) -> int:
        """An upper bound on the pods present at once: the background with its new sets, plus the
        larger of a set scaled to 10 and the burst (those run at other times, so it overstates)."""
        return 3 * self.background + max(10, 3 * self.burst) + 3 * self.new_samples

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, single_samples=3, single_budget=90, step_timeout=60, burst=10, burst_cap=90,
                       background=50, converge_cap=150, sync_cap=60, new_samples=3, new_budget=45,
                       steady_window=30, settle_cap=30, unsettled_window=30)
        return cls(quick=False)


def ready_count(kube: Kube, ns: str, name: str) -> tuple[int, int]:
    live, ready, _ = tally(kube.pods(ns, f"bench-set={name}")).get(name, (0, 0, frozenset()))
    return live, ready


def converged(kube: Kube, ns: str, name: str, replicas: int) -> Callable[[], bool]:
    def check() -> bool:
        live, ready = ready_count(kube, ns, name)
        return live == replicas and ready == replicas
    return check


STEPS = ("create_to_3_ready", "scale_3_to_10", "scale_10_to_3", "pod_deleted_to_replaced")


def _single_once(kube: Kube, kind: str, ns: str, name: str, plan: Plan, samples: dict[str, list[float]],
                 timeouts: dict[str, int]) -> None:
    def step(key: str, action: Callable[[], None], done: Callable[[], bool]) -> bool:
        t0 = time.monotonic()
        action()
        if wait_until(done, plan.step_timeout) is None:
            timeouts[key] += 1
            return False
        samples[key].append(time.monotonic() - t0)
        return True

    ok = step("create_to_3_ready", lambda: kube.create_set(kind, ns, name, 3), converged(kube, ns, name, 3)) \
        and step("scale_3_to_10", lambda: kube.scale_set(kind, ns, name, 10), converged(kube, ns, name, 10)) \
        and step("scale_10_to_3", lambda: kube.scale_set(kind, ns, name, 3), converged(kube, ns, name, 3))
    if not ok:
        return
    victim = sorted(tally(kube.pods(ns, f"bench-set={name}"))[name][2])[0]

    def replaced() -> bool:
        _, _, names = tally(kube.pods(ns, f"bench-set={name}")).get(name, (0, 0, frozenset()))
        return len(names) == 3 and victim not in names

    step("pod_deleted_to_replaced", lambda: kube.delete_pod(ns, victim), replaced)


def single(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """One set of 3, again and again: create -> 3 Ready; scale 3 -> 10 (10 Ready); 10 -> 3 (3
    pods left); delete a pod -> replaced (3 Ready again). Stops at `single_samples` or when
    `single_budget` seconds are spent."""
    samples: dict[str, list[float]] = {s: [] for s in STEPS}
    timeouts: dict[str, int] = {s: 0 for s in STEPS}
    started = time.monotonic()
    i = 0
    while i < plan.single_samples and time.monotonic() - started < plan.single_budget:
        name = f"single-{i}"
        _single_once(kube, system.kind, ns, name, plan, samples, timeouts)
        kube.delete_set(system.kind, ns, name)
        i += 1
        progress.update(i, plan.single_samples)
    return {"samples": samples, "timeouts": timeouts, "iterations": i,
            "budget_exhausted": i < plan.single_samples}


def burst(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """`plan.burst` sets of 3 created at once; per set the seconds until its 3 pods were Ready,
    and the seconds until all were."""
    names = [f"burst-{i}" for i in range(plan.burst)]
    t0 = time.monotonic()
    kube.create_sets(system.kind, ns, names, 3, threads=16)
    created = time.monotonic() - t0
    done: dict[str, float] = {}
    while len(done) < len(names) and time.monotonic() - t0 < plan.burst_cap:
        counts = tally(kube.pods(ns))
        now = time.monotonic() - t0
        for name in names:
            live, ready, _ = counts.get(name, (0, 0, frozenset()))
            if name not in done and ready == 3 and live == 3:
                done[name] = now
        progress.update(len(done), len(names))
        time.sleep(0.2)
    all_ready = max(done.values()) if len(done) == len(names) else None
    return {"samples": {"per_set_ready": sorted(done.values())}, "sets": len(names), "ready_sets": len(done),
            "all_ready_seconds": all_ready, "create_requests_seconds": created, "cap_seconds": plan.burst_cap}


def background_namespaces(plan: Plan, system: System) -> list[str]:
    return [f"bench-bg-{system.key}-{i}" for i in range((plan.background + plan.per_namespace - 1)
                                                       // plan.per_namespace)]


def create_background(kube: Kube, system: System, plan: Plan, progress: Progress) -> dict[str, Any]:
    """`plan.background` sets of 3 across namespaces of `per_namespace`; waits for all to be Ready
    (up to `converge_cap`)."""
    namespaces = background_namespaces(plan, system)
    for ns in namespaces:
        kube.create_namespace(ns)
    t0 = time.monotonic()
    for n, ns in enumerate(namespaces):
        names = [f"bg-{n}-{j}" for j in range(plan.per_namespace)]
        kube.create_sets(system.kind, ns, names, 3, threads=16)
    ready = 0
    while time.monotonic() - t0 < plan.converge_cap:
        ready = sum(1 for ns in namespaces for live, rdy, _ in tally(kube.pods(ns)).values() if live == rdy == 3)
        progress.update(ready, plan.background)
        if ready >= plan.background:
            break
        time.sleep(1.0)
    return {"sets": plan.background, "ready_sets": ready,
            "seconds": time.monotonic() - t0 if ready >= plan.background else None,
            "cap_seconds": plan.converge_cap, "namespaces": namespaces}


def settle(system: System, plan: Plan) -> None:
    """Until the follow-ups of the last change are over: no Ansible run for 10 s (at most
    `settle_cap`); 10 s for a system without Ansible."""
    t0 = time.monotonic()
    last, quiet_since = system.runs(), time.monotonic()
    while time.monotonic() - t0 < plan.settle_cap and time.monotonic() - quiet_since < 10:
        time.sleep(1)
        now = system.runs()
        if now != last:
            last, quiet_since = now, time.monotonic()


def startup_pass(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress,
                 runs_expected: float) -> dict[str, Any]:
    """The system has just started with the background present: a new set created at once waits
    behind the start-up pass over every set (the SDK's operator-sdk#5246). How long it waits, and
    how long the pass takes (`runs_expected` Ansible runs), each up to `sync_cap`."""
    t0 = time.monotonic()
    kube.create_set(system.kind, ns, "new-at-start", 3)
    at_start = None
    sync_seconds = None
    while time.monotonic() - t0 < plan.sync_cap:
        now = time.monotonic() - t0
        if at_start is None and converged(kube, ns, "new-at-start", 3)():
            at_start = now
        runs = system.runs()
        if sync_seconds is None and runs is not None and runs >= runs_expected:
            sync_seconds = now
        progress.update(int(runs or 0), int(runs_expected))
        if at_start is not None and sync_seconds is not None:
            break
        time.sleep(0.25)
    return {"new_at_start_seconds": at_start, "startup_sync_seconds": sync_seconds,
            "sync_cap_seconds": plan.sync_cap, "runs_expected_for_sync": runs_expected}


def new_sets(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """With the background converged and the system settled: new sets one at a time, each
    timed from its create request to 3 Ready pods (its first reconcile)."""
    settle(system, plan)
    samples: list[float] = []
    timeouts = 0
    started = time.monotonic()
    i = 0
    while i < plan.new_samples and time.monotonic() - started < plan.new_budget:
        name = f"new-{i}"
        t1 = time.monotonic()
        kube.create_set(system.kind, ns, name, 3)
        if wait_until(converged(kube, ns, name, 3), plan.step_timeout) is None:
            timeouts += 1
        else:
            samples.append(time.monotonic() - t1)
        i += 1
        progress.update(i, plan.new_samples)
    return {"samples": {"new_set_ready": samples}, "timeouts": timeouts}


def steady(system: System, audit: measure.AuditLog, plan: Plan, progress: Progress,
           exclude_agents: tuple[str, ...], settled: bool = True) -> dict[str, Any]:
    """Nothing changes for `steady_window` seconds: what the system spends meanwhile, once the
    follow-ups of the last change have settled (when there is a steady state to wait for)."""
    if settled:
        settle(system, plan)
    window = plan.steady_window if settled else plan.unsettled_window
    try:
        root: int | None = system.root_pid()
    except (OSError, RuntimeError):
        root = None  # e.g. the native controller of a cluster that is not the local one

    def read() -> measure.TreeReading:
        return measure.read_tree(root) if root is not None else measure.TreeReading(0, 0.0, 0, 0)

    audit.mark()
    runs0 = system.runs()
    before = read()
    t0 = time.monotonic()
    peak_rss, peak_pss = before.rss_bytes, before.pss_bytes
    while (elapsed := time.monotonic() - t0) < window:
        reading = read()
        peak_rss, peak_pss = max(peak_rss, reading.rss_bytes), max(peak_pss, reading.pss_bytes)
        progress.update(int(elapsed), int(window))
        time.sleep(max(0.0, min(5.0, window - elapsed)))
    after = read()
    runs1 = system.runs()
    writes = measure.count_writes(audit.events_since_mark(), users=system.write_users(),
                                  exclude_agents=exclude_agents)
    known = root is not None
    return {"window_seconds": time.monotonic() - t0, "during_startup_pass": not settled,
            "cpu_seconds": after.cpu_seconds - before.cpu_seconds if known else None,
            "ansible_runs": None if runs0 is None or runs1 is None else runs1 - runs0,
            "writes": sum(writes.values()) if audit.path.exists() else None, "writes_by_resource": writes,
            "rss_bytes": after.rss_bytes if known else None, "pss_bytes": after.pss_bytes if known else None,
            "peak_rss_bytes": peak_rss if known else None, "peak_pss_bytes": peak_pss if known else None,
            "processes": after.processes if known else None}
