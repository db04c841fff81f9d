"""The scenarios, each run against one system at a time. Each returns plain data (samples in
seconds, counts) that `report` summarizes; none of them knows which system it drives."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import measure, metrics
from bench.kube import Kube, tally, unschedulable, wait_until
from bench.progress import Progress
from bench.systems import System


@dataclass(frozen=True)
class Plan:
    """How big each scenario is (full or QUICK)."""

    quick: bool
    single_samples: int = 20
    # A cap per system for the single-PodSet series: ours and the native controller take 20
    # samples in a few minutes; the SDK needs more than a minute per iteration, so it stops after
    # some 10 (`iterations` in the results says how many), which keeps a full run near 2 hours.
    single_budget: float = 900.0
    step_timeout: float = 120.0
    burst: int = 100
    # Long enough for the SDK to finish a burst of 100, so that the burst has a ratio and not only a
    # bound: about 2.5 s per run on 2 workers and some 3 runs per set (the create, then follow-ups
    # as its pods become Ready) come to 6-7 minutes, and its last full run had 36 of the 100 Ready
    # at 300 s (about 14 minutes for all at that pace). Ours and the native controller finish well
    # before it, so it costs them nothing.
    burst_cap: float = 1500.0
    background: int = 1000
    per_namespace: int = 10
    # Converging 1,000 PodSets through Ansible on a small machine takes tens of minutes.
    converge_cap: float = 2700.0
    # While the background converges: a new set every `newcomer_every` seconds (at most
    # `new_samples`), each timed to 3 Ready for up to `newcomer_cap` seconds.
    newcomer_every: float = 15.0
    newcomer_cap: float = 600.0
    sync_cap: float = 300.0
    new_samples: int = 20
    new_budget: float = 300.0
    steady_window: float = 300.0
    # When the start-up pass did not finish within sync_cap there is no steady state to measure:
    # the idle window is this short and flagged as taken during the start-up pass.
    unsettled_window: float = 60.0
    # Before the new sets among the converged background and before the idle window: until the
    # queue is empty and no run started for `settle_quiet` seconds, at most `settle_cap` (the
    # follow-ups of 1,000 converging PodSets are about 1,000 runs).
    settle_quiet: float = 10.0
    settle_cap: float = 1800.0

    def pods_needed(self) -> int:
        """An upper bound on the pods present at once: the background with the new sets made while
        it converges and after, plus the larger of a set scaled to 10 and the burst (those run at
        other times, so it overstates)."""
        return 3 * self.background + max(10, 3 * self.burst) + 2 * 3 * self.new_samples

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(quick=True, single_samples=3, single_budget=90, step_timeout=60, burst=10, burst_cap=120,
                       background=50, converge_cap=150, newcomer_every=3, newcomer_cap=60, sync_cap=60,
                       new_samples=3, new_budget=45, steady_window=30, settle_cap=60, unsettled_window=30)
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
    return {"samples": samples, "timeouts": timeouts, "cap_seconds": plan.step_timeout, "iterations": i,
            "budget_exhausted": i < plan.single_samples}


def _root(system: System) -> int | None:
    try:
        return system.root_pid()
    except (OSError, RuntimeError):
        return None  # e.g. the native controller of a cluster that is not the local one


class Meter:
    """CPU seconds of a system's processes and its reconciles, read at the start and the end of
    a stretch of work (`measure.cost`), with the waits of its queue meanwhile."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.root = _root(system)
        self.before = self.reading()
        self.waits_before = system.queue_waits()

    def reading(self) -> measure.Reading:
        cpu = measure.read_tree(self.root).cpu_seconds if self.root is not None else None
        return measure.Reading(time.monotonic(), cpu, self.system.runs())

    def stop(self) -> dict[str, Any]:
        return {"cost": measure.cost(self.before, self.reading()),
                "queue_waits": queue_waits_since(self.system.queue_waits(), self.waits_before)}


def queue_waits_since(now: dict[str, metrics.Histogram],
                      earlier: dict[str, metrics.Histogram]) -> dict[str, dict[str, Any]]:
    """Per priority: the summary and the histogram of the waits between two readings."""
    return {priority: {**h.summary(), "histogram": h.as_dict()}
            for priority, h in sorted(metrics.histograms_since(now, earlier).items())}


def burst(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """`plan.burst` sets of 3 created at once; per set the seconds until its 3 pods were Ready,
    and the seconds until all were; the CPU and reconciles it took until then."""
    names = [f"burst-{i}" for i in range(plan.burst)]
    meter = Meter(system)
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
            "all_ready_seconds": all_ready, "create_requests_seconds": created, "cap_seconds": plan.burst_cap,
            **meter.stop()}


def background_namespaces(plan: Plan, system: System) -> list[str]:
    return [f"bench-bg-{system.key}-{i}" for i in range((plan.background + plan.per_namespace - 1)
                                                       // plan.per_namespace)]


class Newcomers:
    """New sets created one by one in a namespace of their own while the background converges
    (a thread): each timed from its create request to 3 Ready pods, polled every 0.1 s."""

    def __init__(self, kube: Kube, system: System, ns: str, plan: Plan) -> None:
        self.kube, self.system, self.ns, self.plan = kube, system, ns, plan
        self.background_ready = 0  # set by the converging loop
        self.stop_creating = threading.Event()
        self.samples: list[float] = []
        self.behind: list[int] = []  # background sets not yet Ready when each newcomer was created
        self.timeouts = 0
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="newcomers", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as err:  # reported by result()
            self.error = err

    def _loop(self) -> None:
        plan = self.plan
        pending: dict[str, float] = {}
        created, last = 0, -plan.newcomer_every
        while True:
            now = time.monotonic()
            if not self.stop_creating.is_set() and created < plan.new_samples and now - last >= plan.newcomer_every:
                name = f"newcomer-{created}"
                self.behind.append(plan.background - self.background_ready)
                last = time.monotonic()
                self.kube.create_set(self.system.kind, self.ns, name, 3)
                pending[name] = last
                created += 1
            if pending:
                counts = tally(self.kube.pods(self.ns))
                now = time.monotonic()
                for name, t in list(pending.items()):
                    live, ready, _ = counts.get(name, (0, 0, frozenset()))
                    if live == ready == 3:
                        self.samples.append(now - t)
                        del pending[name]
                    elif now - t > plan.newcomer_cap:
                        self.timeouts += 1
                        del pending[name]
            if not pending and (self.stop_creating.is_set() or created >= plan.new_samples):
                return
            time.sleep(0.1)

    def result(self) -> dict[str, Any]:
        self.stop_creating.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        return {"samples": {"new_set_ready": self.samples}, "timeouts": self.timeouts,
                "background_not_ready_at_create": self.behind, "every_seconds": self.plan.newcomer_every,
                "cap_seconds": self.plan.newcomer_cap}


def create_background(kube: Kube, system: System, plan: Plan, progress: Progress, newcomers_ns: str | None = None,
                      meter_system: System | None = None) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """`plan.background` sets of 3 across namespaces of `per_namespace` (named after `system`);
    waits for all to be Ready (up to `converge_cap`), with the CPU and reconciles it took
    (`meter_system`'s, `system`'s by default) and the most pods seen left unscheduled at once (the
    nodes too small, when above 0). With `newcomers_ns`, new sets created meanwhile
    (`Newcomers`): their figures are the second value."""
    namespaces = background_namespaces(plan, system)
    for ns in namespaces:
        kube.create_namespace(ns)
    newcomers = Newcomers(kube, system, newcomers_ns, plan) if newcomers_ns else None
    meter = Meter(meter_system or system)
    t0 = time.monotonic()
    for n, ns in enumerate(namespaces):
        names = [f"bg-{n}-{j}" for j in range(plan.per_namespace)]
        kube.create_sets(system.kind, ns, names, 3, threads=16)
    if newcomers is not None:
        newcomers.start()
    ready = unschedulable_peak = 0
    seconds = None
    try:
        while time.monotonic() - t0 < plan.converge_cap:
            pods = [pod for ns in namespaces for pod in kube.pods(ns)]
            ready = sum(1 for live, rdy, _ in tally(pods).values() if live == rdy == 3)
            unschedulable_peak = max(unschedulable_peak, unschedulable(pods))
            if newcomers is not None:
                newcomers.background_ready = ready
            progress.update(ready, plan.background)
            if ready >= plan.background:
                seconds = time.monotonic() - t0
                break
            time.sleep(1.0)
        measured = meter.stop()
    finally:
        converging = newcomers.result() if newcomers is not None else None
    return ({"sets": plan.background, "ready_sets": ready, "seconds": seconds, "cap_seconds": plan.converge_cap,
             "namespaces": namespaces, "unschedulable_pods_peak": unschedulable_peak, **measured},
            None if converging is None else {**converging, "queue_waits": measured["queue_waits"]})


class Quiet:
    """When a system has settled: its queue empty (every priority), no worker busy and its run
    count unchanged for `seconds`. What a system does not expose counts as quiet, so with no
    metrics at all it is simply `seconds` of waiting. Fed readings with their time (pure)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.since: float | None = None
        self.runs: float | None = None

    def observe(self, now: float, state: metrics.QueueState) -> bool:
        idle = not state.waiting and not state.active
        if not idle or self.since is None or state.runs != self.runs:
            self.runs = state.runs
            self.since = now if idle else None
        return self.since is not None and now - self.since >= self.seconds


def signals(state: metrics.QueueState) -> list[str]:
    """What a settle could read from a system's /metrics."""
    out = []
    if state.depth is not None:
        out.append("queue depth by priority" if set(state.depth) - {metrics.ALL} else "queue depth")
    if state.active is not None:
        out.append("busy workers")
    if state.runs is not None:
        out.append("Ansible runs")
    return out


def settle(system: System, plan: Plan, progress: Progress | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """Until the follow-ups of the last change are over (`Quiet`), at most `settle_cap` seconds;
    what it read, how long it took and whether it hit the cap."""
    quiet = Quiet(plan.settle_quiet)
    t0 = clock()
    first = state = system.queue()
    cap_hit = False
    while not quiet.observe(clock(), state):
        elapsed = clock() - t0
        if elapsed >= plan.settle_cap:
            cap_hit = True
            break
        if progress is not None:
            progress.update(int(elapsed), int(plan.settle_cap))
        sleep(1)
        state = system.queue()
    return {"seconds": clock() - t0, "cap_seconds": plan.settle_cap, "cap_hit": cap_hit,
            "quiet_seconds": plan.settle_quiet, "read": signals(state) or ["nothing: a fixed wait"],
            "depth_at_start": first.depth, "depth_at_end": state.depth, "busy_at_end": state.active,
            "runs_meanwhile": None if first.runs is None or state.runs is None else state.runs - first.runs}


def startup_pass(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress,
                 runs_expected: float) -> dict[str, Any]:
    """The system has just started with the background present: a new set created at once waits
    behind the start-up pass over every set (the SDK's operator-sdk#5246). How long it waits, and
    how long the pass takes (`runs_expected` Ansible runs), each up to `sync_cap`; the CPU and
    reconciles meanwhile."""
    meter = Meter(system)
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
            "sync_cap_seconds": plan.sync_cap, "runs_expected_for_sync": runs_expected, **meter.stop()}


def new_sets(kube: Kube, system: System, ns: str, plan: Plan, progress: Progress) -> dict[str, Any]:
    """With the background converged and the system settled: new sets one at a time, each
    timed from its create request to 3 Ready pods (its first reconcile)."""
    settled = settle(system, plan, progress)
    meter = Meter(system)
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
    return {"samples": {"new_set_ready": samples}, "timeouts": timeouts, "cap_seconds": plan.step_timeout,
            "settle": settled, **meter.stop()}


def steady(system: System, audit: measure.AuditLog, plan: Plan, progress: Progress,
           exclude_agents: tuple[str, ...], settled: bool = True) -> dict[str, Any]:
    """Nothing changes for `steady_window` seconds: what the system spends meanwhile, once the
    follow-ups of the last change have settled (when there is a steady state to wait for)."""
    settle_result = settle(system, plan, progress) if settled else None
    window = plan.steady_window if settled else plan.unsettled_window
    root = _root(system)

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
    return {"window_seconds": time.monotonic() - t0, "during_startup_pass": not settled, "settle": settle_result,
            "cpu_seconds": after.cpu_seconds - before.cpu_seconds if known else None,
            "ansible_runs": None if runs0 is None or runs1 is None else runs1 - runs0,
            "writes": sum(writes.values()) if audit.path.exists() else None, "writes_by_resource": writes,
            "rss_bytes": after.rss_bytes if known else None, "pss_bytes": after.pss_bytes if known else None,
            "peak_rss_bytes": peak_rss if known else None, "peak_pss_bytes": peak_pss if known else None,
            "processes": after.processes if known else None}
