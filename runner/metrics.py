"""Prometheus metrics, named as the Operator SDK's ansible-operator names them where it has them.

From the SDK (internal/ansible/metrics/metrics.go), so existing dashboards keep working:

- ``ansible_operator_build_info{commit,version}``: gauge, always 1;
- ``ansible_operator_reconcile_result{GVK,result}``: gauge, incremented once per reconcile,
  ``result`` is ``succeeded`` or ``failed``;
- ``ansible_operator_reconciles{GVK}``: histogram of reconcile seconds.

``GVK`` is spelt as Go's ``schema.GroupVersionKind.String()``: ``group/version, Kind=Kind``.

From operator-lib's instrumented event handler, which the SDK's ansible-operator uses for its
primary kinds: ``resource_created_at_seconds{name,namespace,group,version,kind}``, each custom
resource's creationTimestamp, gone when the resource is.

From controller-runtime, which the SDK's binary also serves (the controller label is the SDK's
controller name, ``<kind>-<version>-controller``): ``workqueue_depth{name,controller}``,
``controller_runtime_active_workers{controller}``,
``controller_runtime_max_concurrent_reconciles{controller}`` and
``leader_election_master_status{name}``; plus the ``process_*`` collector.

The project's own, per watch (labels ``group``, ``version``, ``kind``):
``playbook_operator_reconciles_total{result,changed}``,
``playbook_operator_reconcile_duration_seconds{result}``,
``playbook_operator_ansible_tasks_total{outcome}`` and
``playbook_operator_ansible_task_duration_seconds{outcome}``.

With ``--sharding`` (label ``member``): ``playbook_operator_shard_objects`` (the primary objects
this replica holds), ``playbook_operator_shard_slices{state}`` (``watched``: its own among the
live members; ``permitted``: those it may run now), ``playbook_operator_shard_handovers_total``
and ``playbook_operator_shard_slices_moved_total{direction}`` (each view it published, and the
slices ``gained`` and ``let_go``), and ``playbook_operator_shard_drain_seconds`` (how long it
waited for its runs in slices it let go).

And the metrics roles define with ``operator_sdk.util.osdk_metric`` (`runner.usermetrics`),
under the names the roles give them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from runner import __version__
from runner.status import parse_time
from runner.usermetrics import GO_DEFAULT_BUCKETS, UserMetrics

SUCCEEDED = "succeeded"
FAILED = "failed"
RESULTS = (SUCCEEDED, FAILED)

# Task outcomes as the Ansible recap counts them ("ignored" is a failure the task tolerated).
TASK_OUTCOMES = ("ok", "changed", "failed", "skipped", "ignored")

# controller-runtime's workqueue buckets: 10 ns to 1,000 s, ten to a bucket.
QUEUE_BUCKETS = tuple(1e-8 * 10**i for i in range(12))
# An Ansible run takes seconds to minutes; a task milliseconds to minutes.
RECONCILE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_WATCH_LABELS = ("group", "version", "kind")
# The samples a metric family's name stands for: no user metric may take one of these either.
_SAMPLE_SUFFIXES = ("_total", "_created", "_bucket", "_sum", "_count")


def gvk_label(group: str, version: str, kind: str) -> str:
    """The SDK's ``GVK`` label value: ``group/version, Kind=Kind``."""
    return f"{group}/{version}, Kind={kind}"


def controller_name(version: str, kind: str) -> str:
    """The SDK's controller name for a watch: ``<kind>-<version>-controller``, lower case."""
    return f"{kind.lower()}-{version.lower()}-controller"


def task_outcome(task: Mapping[str, Any]) -> str:
    """One task result's outcome label: ok, changed, failed, skipped or ignored."""
    outcome = task.get("outcome")
    if outcome in ("failed", "unreachable"):
        return "failed"
    if outcome in ("skipped", "ignored"):
        return str(outcome)
    return "changed" if task.get("changed") else "ok"


@dataclass(frozen=True)
class _Queue:
    version: str
    kind: str
    depth: Callable[[], int]
    in_flight: Callable[[], int]
    workers: int
    # Keys waiting by priority ("high", "low"), for a queue that has priorities.
    depth_by_priority: Callable[[], Mapping[str, int]] | None = None


class _QueueCollector(Collector):
    """Reads the work queues at scrape time, so the numbers are never stale."""

    def __init__(self) -> None:
        self.queues: dict[tuple[str, str, str], _Queue] = {}

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("workqueue_depth", "Current depth of workqueue", labels=["name", "controller"]),
            GaugeMetricFamily("playbook_operator_workqueue_depth",
                              "Keys waiting in a controller's work queue, by priority: high for what users "
                              "changed, low for the initial list, requeues, retries and dependents' changes",
                              labels=["controller", "priority"]),
            GaugeMetricFamily("controller_runtime_active_workers",
                              "Number of currently used workers per controller", labels=["controller"]),
            GaugeMetricFamily("controller_runtime_max_concurrent_reconciles",
                              "Maximum number of concurrent reconciles per controller", labels=["controller"]),
        )

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def collect(self) -> Iterator[Metric]:
        depth, by_priority, active, workers = self._families()
        for queue in self.queues.values():
            name = controller_name(queue.version, queue.kind)
            depth.add_metric([name, name], queue.depth())
            if queue.depth_by_priority is not None:
                for priority, waiting in sorted(queue.depth_by_priority().items()):
                    by_priority.add_metric([name, priority], waiting)
            active.add_metric([name], queue.in_flight())
            workers.add_metric([name], queue.workers)
        yield from (depth, by_priority, active, workers)


class Metrics:
    """The operator's metrics, in a registry of their own (never the process-global one)."""

    def __init__(self, *, version: str = __version__, commit: str | None = None) -> None:
        """`commit` is the build's (`OperatorSettings.commit`); without one, build info says unknown."""
        self.registry = CollectorRegistry()
        reg = self.registry
        self.build_info = Gauge("ansible_operator_build_info", "Build information for the ansible-operator binary",
                                ["commit", "version"], registry=reg)
        self.build_info.labels(commit=commit or "unknown", version=version).set(1)
        self.reconcile_result = Gauge("ansible_operator_reconcile_result", "Gauge of reconciles and their results.",
                                      ["GVK", "result"], registry=reg)
        self.reconciles = Histogram("ansible_operator_reconciles", "How long in seconds a reconcile takes.",
                                    ["GVK"], buckets=GO_DEFAULT_BUCKETS, registry=reg)
        self.leader = Gauge("leader_election_master_status",
                            "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, "
                            "1 indicates master. 'name' is the string used to identify the lease.",
                            ["name"], registry=reg)
        self.reconciles_total = Counter("playbook_operator_reconciles_total",
                                        "Reconciles per watch, by result and by whether any task changed something.",
                                        [*_WATCH_LABELS, "result", "changed"], registry=reg)
        self.reconcile_duration = Histogram("playbook_operator_reconcile_duration_seconds",
                                            "How long a reconcile takes, per watch and result.",
                                            [*_WATCH_LABELS, "result"], buckets=RECONCILE_BUCKETS, registry=reg)
        self.tasks_total = Counter("playbook_operator_ansible_tasks_total",
                                   "Ansible task results per watch, by outcome.",
                                   [*_WATCH_LABELS, "outcome"], registry=reg)
        self.task_duration = Histogram("playbook_operator_ansible_task_duration_seconds",
                                       "How long an Ansible task takes, per watch and outcome.",
                                       [*_WATCH_LABELS, "outcome"], buckets=TASK_BUCKETS, registry=reg)
        # controller-runtime's name, with the priority the key ran at as a label of its own.
        self.queue_wait = Histogram("workqueue_queue_duration_seconds",
                                    "How long in seconds an item stays in workqueue before being requested",
                                    ["name", "controller", "priority"], buckets=QUEUE_BUCKETS, registry=reg)
        self.api_requests = Counter("playbook_operator_api_requests_total",
                                    "Requests the roles made through the operator's API endpoint, by verb and by "
                                    "what answered them: the watch cache or the apiserver.",
                                    ["verb", "answered_by"], registry=reg)
        self.resource_created = Gauge("resource_created_at_seconds", "Timestamp at which a resource was created",
                                      ["name", "namespace", "group", "version", "kind"], registry=reg)
        self.shard_slices = Gauge("playbook_operator_shard_slices",
                                  "Slices of the hash space (256 in all) this sharded replica watches (its own "
                                  "among the live members) and may run (no other member still claims them).",
                                  ["member", "state"], registry=reg)
        self.shard_objects = Gauge("playbook_operator_shard_objects",
                                   "Primary objects this sharded replica holds.", ["member"], registry=reg)
        self.shard_handovers = Counter("playbook_operator_shard_handovers_total",
                                       "Views this sharded replica published: each is a handover of slices.",
                                       ["member"], registry=reg)
        self.shard_moved = Counter("playbook_operator_shard_slices_moved_total",
                                   "Slices this sharded replica gained or let go of.", ["member", "direction"],
                                   registry=reg)
        self.shard_drain = Histogram("playbook_operator_shard_drain_seconds",
                                     "How long this sharded replica waited for its runs in slices it let go.",
                                     ["member"], buckets=RECONCILE_BUCKETS, registry=reg)
        self._queues = _QueueCollector()
        reg.register(self._queues)
        ProcessCollector(registry=reg)
        own = {m.name for m in reg.collect()}
        # What roles define with osdk_metric (runner.usermetrics), served beside these.
        self.user = UserMetrics(reserved=frozenset(n + s for n in own for s in ("", *_SAMPLE_SUFFIXES)))

    # -- recording

    def record_reconcile(self, *, group: str, version: str, kind: str, result: str, duration: float,
                         changed: int = 0) -> None:
        """One finished reconcile: ``result`` is ``succeeded`` or ``failed``, ``changed`` the
        number of tasks that changed something, ``duration`` seconds."""
        if result not in RESULTS:
            raise ValueError(f"result must be one of {RESULTS}, got {result!r}")
        gvk = gvk_label(group, version, kind)
        self.reconcile_result.labels(GVK=gvk, result=result).inc()
        self.reconciles.labels(GVK=gvk).observe(duration)
        self.reconciles_total.labels(group, version, kind, result, "true" if changed else "false").inc()
        self.reconcile_duration.labels(group, version, kind, result).observe(duration)

    def record_api_request(self, verb: str, answered_by: str) -> None:
        """A request a role made through `runner.apiproxy`, answered by ``cache`` or ``apiserver``."""
        self.api_requests.labels(verb=verb, answered_by=answered_by).inc()

    def record_queue_wait(self, *, version: str, kind: str, priority: str, seconds: float) -> None:
        """How long a key waited in a watch's queue before a worker took it, at `priority`."""
        name = controller_name(version, kind)
        self.queue_wait.labels(name=name, controller=name, priority=priority).observe(seconds)

    def record_tasks(self, *, group: str, version: str, kind: str, tasks: Iterable[Mapping[str, Any]]) -> None:
        """The task results of one Ansible run (``RunResult.task_results``: dicts with
        task, role, outcome, changed, duration)."""
        for task in tasks:
            outcome = task_outcome(task)
            self.tasks_total.labels(group, version, kind, outcome).inc()
            duration = task.get("duration")
            if isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0:
                self.task_duration.labels(group, version, kind, outcome).observe(duration)

    def track_queue(self, *, group: str, version: str, kind: str, depth: Callable[[], int],
                    in_flight: Callable[[], int], workers: int,
                    depth_by_priority: Callable[[], Mapping[str, int]] | None = None) -> None:
        """Report a watch's work queue: read through the callables at every scrape."""
        self._queues.queues[(group, version, kind)] = _Queue(version, kind, depth, in_flight, workers,
                                                             depth_by_priority)

    def set_resource_created(self, obj: Mapping[str, Any], *, group: str, version: str, kind: str) -> None:
        """A custom resource seen: its creationTimestamp, as operator-lib reports it."""
        meta = obj.get("metadata") or {}
        created = parse_time(meta.get("creationTimestamp"))
        if created is not None:
            self.resource_created.labels(name=meta.get("name", ""), namespace=meta.get("namespace") or "",
                                         group=group, version=version, kind=kind).set(created.timestamp())

    def forget_resource(self, obj: Mapping[str, Any], *, group: str, version: str, kind: str) -> None:
        """A custom resource gone (or, sharded, handed to another replica)."""
        meta = obj.get("metadata") or {}
        with contextlib.suppress(KeyError):
            self.resource_created.remove(meta.get("name", ""), meta.get("namespace") or "", group, version, kind)

    def set_shard(self, member: str, watched: int, permitted: int) -> None:
        self.shard_slices.labels(member=member, state="watched").set(watched)
        self.shard_slices.labels(member=member, state="permitted").set(permitted)

    def track_shard_objects(self, member: str, count: Callable[[], int]) -> None:
        """The objects a sharded replica holds, counted at every scrape."""
        self.shard_objects.labels(member=member).set_function(count)

    def record_handover(self, member: str, gained: int, let_go: int, drained: float) -> None:
        self.shard_handovers.labels(member=member).inc()
        self.shard_moved.labels(member=member, direction="gained").inc(gained)
        self.shard_moved.labels(member=member, direction="let_go").inc(let_go)
        self.shard_drain.labels(member=member).observe(drained)

    def set_leader(self, lease: str, leading: bool) -> None:
        self.leader.labels(name=lease).set(1 if leading else 0)

    # -- exposition

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The registry and the user metrics in the format the ``Accept`` header asks for, and its
        content type."""
        encoder, content_type = choose_encoder(accept)
        if not content_type.startswith("application/openmetrics-text"):
            return encoder(self.registry) + self.user.text().encode(), content_type
        # OpenMetrics ends with one `# EOF`: the user metrics go before it.
        ours = encoder(self.registry).removesuffix(b"# EOF\n")
        return ours + encoder(_Families(self.user)), content_type


class _Families:
    """Anything with collect(), as the exposition functions want a registry."""

    def __init__(self, source: UserMetrics) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        return self.source.collect()
