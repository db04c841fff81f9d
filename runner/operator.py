"""kopf glue: one raw-event handler and one work queue per watch.

kopf is used for what it is good at (discovery, watch streams, reconnects,
namespaces); reconciliation state lives here, in memory, as in the Operator SDK:
no annotations or status are written for bookkeeping, so a converged object costs
no writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from runner import kube, sharding
from runner.apicache import Cache, KindKey
from runner.apiproxy import ApiProxy, Upstream
from runner.dependents import DependentKind, DependentWatches, OwnerKey
from runner.kube import ResourceRef
from runner.leader import LeaderElector
from runner.metrics import FAILED, SUCCEEDED, Metrics
from runner.reconcile import Outcome, Reconciler, owner_id
from runner.shards import Assignment, ShardMember
from runner.shardwatch import SliceWatch, in_slices, server_side_sharding
from runner.watches import Watch
from runner.workqueue import Priority, Result, WorkQueue

log = logging.getLogger("playbook_operator")


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}/{meta['name']}"


# Dependents change in bursts (a PodSet's pods are scheduled, start and become ready one by one,
# within a fraction of a second): their owner's follow-up waits this long, so one run records
# them all instead of one run each.
FOLLOW_UP_GATHER = 0.5


@dataclass
class Trigger:
    """Which events start a run, as the SDK's predicates decide: a new generation, no
    generation at all, deletion, or (with watchAnnotationsChanges) new annotations.
    Status writes change none of these, so they never cause a run."""

    watch_annotations: bool
    _seen: dict[str, tuple[Any, Any, bool]] = field(default_factory=dict)

    def should_run(self, obj: Mapping[str, Any]) -> bool:
        meta = obj["metadata"]
        key = object_key(obj)
        generation = meta.get("generation")
        annotations = dict(meta.get("annotations") or {}) if self.watch_annotations else None
        deleting = bool(meta.get("deletionTimestamp"))
        signature = (generation, annotations, deleting)
        previous = self._seen.get(key)
        self._seen[key] = signature
        if previous is None or generation is None:
            return True
        return previous != signature

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


class WatchController:
    """Everything for one watches.yaml entry: trigger, queue, reconciler."""

    def __init__(self, watch: Watch, reconciler: Reconciler, metrics: Metrics | None = None,
                 cache: Cache | None = None) -> None:
        self.watch = watch
        self.cache = cache  # fed with every event, for the roles' reads (runner.apiproxy)
        self.reconciler = reconciler
        self.metrics = metrics
        self.trigger = Trigger(watch.watch_annotations_changes)
        self.queue = WorkQueue(name=f"{watch.kind}.{watch.group}", handler=self._handle,
                               concurrency=watch.max_concurrent_reconciles,
                               on_wait=self._waited if metrics is not None else None)
        self.ref: ResourceRef | None = None
        self.dependents: DependentWatches | None = None
        # Sharded (`runner.shards`): the slices this replica watches and may run; None: all of them.
        self.assignment: Assignment | None = None
        self._running: dict[str, int] = {}  # key -> its slice, while a run is in flight
        self._parked: set[str] = set()  # keys that waited for a slice this replica may not run yet

    # -- sharding

    def busy(self, slices: frozenset[int]) -> bool:
        """Whether a run of an object in these slices is in flight."""
        return any(s in slices for s in self._running.values())

    def count(self) -> int:
        return len(self.queue.known_keys())

    def reassign(self, assignment: Assignment) -> None:
        """New slices: forget the objects this replica no longer watches, and queue those that
        waited for a slice it may run now."""
        self.assignment = assignment
        for key in self.queue.known_keys():
            latest = self.queue.latest(key)
            if latest is not None and not in_slices(latest, assignment.watched):
                self._let_go(key, latest)
        for key in list(self._parked):
            latest = self.queue.latest(key)
            if latest is None:
                self._parked.discard(key)
            elif in_slices(latest, assignment.permitted):
                self._parked.discard(key)
                self.queue.add(key, latest, Priority.LOW)

    def _forget_created(self, obj: Mapping[str, Any]) -> None:
        if self.metrics is not None:
            self.metrics.forget_resource(obj, group=self.watch.group, version=self.watch.version,
                                         kind=self.watch.kind)

    def _let_go(self, key: str, obj: Mapping[str, Any]) -> None:
        self._forget_created(obj)
        self.queue.forget(key)
        self.trigger.forget(key)
        self._parked.discard(key)
        if self.cache is not None:
            self.cache.forget(owner_id(self.watch, obj))
        if self.dependents is not None:
            self.dependents.forget(self.owner_key(obj))

    def reconcile_owner(self, key: str) -> None:
        """A dependent changed: run again on the latest state we know, once the changes that
        come with it have arrived too (`FOLLOW_UP_GATHER`)."""
        latest = self.queue.latest(key)
        if latest is not None:
            self.queue.add(key, latest, Priority.LOW, gather=FOLLOW_UP_GATHER)

    def owner_key(self, obj: Mapping[str, Any]) -> OwnerKey:
        meta = obj["metadata"]
        return OwnerKey(self.watch.group, self.watch.kind, meta.get("namespace") or "", meta["name"])

    def _watch_dependents(self, obj: Mapping[str, Any], kinds: frozenset[DependentKind], started: float) -> None:
        w = self.watch
        if self.dependents is None or not w.watch_dependent_resources:
            return
        blocked = {(b.api_version, b.kind) for b in w.blacklist}
        self.dependents.ensure((k for k in kinds if (k.api_version, k.kind) not in blocked
                                and (k.namespaced or w.watch_cluster_scoped_resources)), owner=self.owner_key(obj),
                               started=started)

    async def on_event(self, event: Mapping[str, Any], resource: Any) -> None:
        obj = event.get("object") or {}
        if not obj.get("metadata"):
            return
        if self.ref is None:
            self.ref = ResourceRef(resource.group, resource.version, resource.kind, resource.plural,
                                   resource.namespaced)
        key = object_key(obj)
        if self.assignment is not None and not in_slices(obj, self.assignment.watched):
            return  # another replica's (an event that crossed a change of slices)
        if self.cache is not None:
            self.cache.event(KindKey(resource.group, resource.version, resource.plural), event.get("type"), obj)
        if event.get("type") == "DELETED":
            self._forget_created(obj)
            if self.cache is not None:
                self.cache.forget(owner_id(self.watch, obj))
            self.queue.forget(key)
            self.trigger.forget(key)
            if self.dependents is not None:
                self.dependents.forget(self.owner_key(obj))
            return
        if not self.watch.selects(obj):
            return
        if self.metrics is not None:
            self.metrics.set_resource_created(obj, group=self.watch.group, version=self.watch.version,
                                              kind=self.watch.kind)
        if self.trigger.should_run(obj):
            # kopf gives the initial list (and a re-list after a broken watch) no event type: it
            # waits behind what users change while it runs.
            self.queue.add(key, obj, Priority.HIGH if event.get("type") else Priority.LOW)
        else:
            self.queue.refresh(key, obj)

    async def _handle(self, key: str, obj: dict[str, Any]) -> Result:
        assert self.ref is not None
        if self.assignment is not None:
            if not in_slices(obj, self.assignment.permitted):
                self._parked.add(key)  # queued again by `reassign` once this replica may run it
                return Result(ok=True)
            self._running[key] = sharding.slice_of(str(obj["metadata"]["uid"]))
        try:
            return await self._reconcile(key, obj)
        finally:
            self._running.pop(key, None)

    async def _reconcile(self, key: str, obj: dict[str, Any]) -> Result:
        assert self.ref is not None
        started = time.monotonic()  # what the run reads may change before its reads are known
        outcome = await self.reconciler.reconcile(self.watch, self.ref, obj)
        if not outcome.skipped:
            meta = obj["metadata"]
            result = "ok" if outcome.ok else "failed"
            # One line per reconcile; with --log-format json its fields are keys of their own.
            log.info("reconciled %s %s/%s result=%s changed=%d duration=%.2fs%s",
                     self.watch.kind, meta.get("namespace", ""), meta["name"], result, outcome.changed,
                     outcome.duration, f" message={outcome.message!r}" if outcome.message else "",
                     extra={"fields": {"kind": self.watch.kind, "namespace": meta.get("namespace", ""),
                                       "name": meta["name"], "result": result,
                                       "duration": round(outcome.duration, 3), "changed": outcome.changed}})
            self._count(outcome)
            self._watch_dependents(obj, outcome.dependents, started)
        requeue = outcome.requeue_after  # the requeue_after module, else the (annotated) reconcilePeriod
        return Result(ok=outcome.ok, requeue_after=requeue if outcome.ok else None)

    def _waited(self, priority: Priority, seconds: float) -> None:
        assert self.metrics is not None
        self.metrics.record_queue_wait(version=self.watch.version, kind=self.watch.kind,
                                       priority=priority.name.lower(), seconds=seconds)

    def _count(self, outcome: Outcome) -> None:
        if self.metrics is None:
            return
        w = self.watch
        self.metrics.record_reconcile(group=w.group, version=w.version, kind=w.kind,
                                      result=SUCCEEDED if outcome.ok else FAILED, duration=outcome.duration,
                                      changed=outcome.changed)
        self.metrics.record_tasks(group=w.group, version=w.version, kind=w.kind, tasks=outcome.task_results)


def controller_for(watch: Watch, reconciler: Reconciler, metrics: Metrics | None = None,
                   cache: Cache | None = None) -> WatchController:
    controller = WatchController(watch, reconciler, metrics, cache)
    if metrics is not None:
        metrics.track_queue(group=watch.group, version=watch.version, kind=watch.kind,
                            depth=controller.queue.depth, in_flight=controller.queue.in_flight,
                            depth_by_priority=controller.queue.depth_by_priority,
                            workers=watch.max_concurrent_reconciles)
    return controller


def register(watches: list[Watch], reconciler: Reconciler, registry: kopf.OperatorRegistry,
             metrics: Metrics | None = None, cache: Cache | None = None) -> list[WatchController]:
    controllers = []
    for watch in watches:
        controller = controller_for(watch, reconciler, metrics, cache)

        async def handler(event: Mapping[str, Any], resource: Any, controller: WatchController = controller,
                          **_: Any) -> None:
            await controller.on_event(event, resource)

        kopf.on.event(group=watch.group, version=watch.version, kind=watch.kind,
                      registry=registry, id=f"watch-{watch.kind}")(handler)
        controllers.append(controller)
    return controllers


def _dependents_accepted(controllers: list[WatchController]) -> Callable[[OwnerKey, str, str], bool]:
    """Whether a dependent of a kind may reconcile an owner, as the SDK decides per watch: not when
    its watch blacklists the kind or watches no dependents (another watch may watch the kind)."""
    by_kind = {(c.watch.group, c.watch.kind): c.watch for c in controllers}

    def accepts(owner: OwnerKey, api_version: str, kind: str) -> bool:
        watch = by_kind.get((owner.group, owner.kind))
        if watch is None:
            return True  # not ours: the router drops it
        return watch.watch_dependent_resources and \
            (api_version, kind) not in {(b.api_version, b.kind) for b in watch.blacklist}

    return accepts


def _owner_router(controllers: list[WatchController]) -> Callable[[OwnerKey], None]:
    by_kind = {(c.watch.group, c.watch.kind): c for c in controllers}

    def route(owner: OwnerKey) -> None:
        controller = by_kind.get((owner.group, owner.kind))
        if controller is not None:
            controller.reconcile_owner(f"{owner.namespace}/{owner.name}")

    return route


def configure(settings: kopf.OperatorSettings, *, observe_cluster: bool = True) -> None:
    """kopf's settings. Without `observe_cluster`, kopf neither lists nor watches namespaces and
    CRDs across the cluster: the kinds are found once by discovery (which every account may
    read) and the named namespaces are taken as they are."""
    # Our own Events say what matters; kopf's per-handler Events would be noise and writes.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60
    settings.scanning.disabled = not observe_cluster


# What kopf reads cluster-wide to notice namespaces and CRDs that come and go.
_CLUSTER_OBSERVATION = (("", "namespaces"), ("apiextensions.k8s.io", "customresourcedefinitions"))


async def may_observe_cluster(namespaces: list[str]) -> bool:
    """Whether kopf may watch namespaces and CRDs across the cluster. A cluster-wide operator
    must; one limited to namespaces often holds only Roles there, and kopf would then be
    refused and warn at every start, so it is asked first and kopf left to what it may do."""
    if not namespaces:
        return True
    try:
        return await asyncio.to_thread(lambda: all(kube.may(("list", "watch"), group, resource)
                                                   for group, resource in _CLUSTER_OBSERVATION))
    except Exception as err:  # the review failed: let kopf try and report for itself
        log.debug("could not review access to namespaces and CRDs: %s", err)
        return True


async def servable(watches: list[Watch], namespaces: list[str], kube_: kube.Kube) -> list[Watch]:
    """The watches this operator can serve. One limited to namespaces may hold Roles only: a
    cluster-scoped kind it may not list and watch cluster-wide (ClusterServiceBrokers, say) is left
    to a cluster-wide operator, with a warning, rather than refused at every start and retry."""
    if not namespaces:
        return watches
    kept = []
    for watch in watches:
        try:
            ref = await asyncio.to_thread(kube_.plural_for, watch.group, watch.version, watch.kind)
            allowed = ref.namespaced or await asyncio.to_thread(kube.may, ("list", "watch"), watch.group,
                                                                ref.plural)
        except Exception as err:  # not installed yet, or the review failed: kopf reports for itself
            log.debug("could not check the scope of %s: %s", watch.kind, err)
            allowed = True
        if allowed:
            kept.append(watch)
        else:
            log.warning("not watching %s.%s: it is cluster-scoped, and this operator (watching %s) may not list "
                        "and watch it cluster-wide", watch.kind, watch.group, ",".join(namespaces))
    return kept


# How long a stopping leader waits for running reconciles before it gives the lease up
# (the SDK's --graceful-shutdown-timeout default).
GRACEFUL_SHUTDOWN = 30.0


async def run_operator(watches: list[Watch], reconciler: Reconciler, *, namespaces: list[str],
                       stop: asyncio.Event | None = None, metrics: Metrics | None = None,
                       elector: LeaderElector | None = None, ready: asyncio.Event | None = None,
                       grace: float = GRACEFUL_SHUTDOWN, member: ShardMember | None = None) -> None:
    """Watch and reconcile until `stop` is set or a signal arrives.

    With an `elector`, nothing is watched before the lease is ours; LeadershipLost is raised
    the moment it cannot be kept (the caller must then end the process without cleanup), and a
    graceful stop lets running reconciles finish, then releases the lease. `ready` is set once
    kopf is watching.

    With a `member` (``--sharding``), the primary kinds are watched by `runner.shardwatch`, only
    this replica's slices, and run only while `runner.shards` permits; MembershipLost is raised
    as LeadershipLost is, and a graceful stop drains, then deletes the member's Lease.
    """
    if elector is not None and not await elector.acquire(stop):
        return  # stopped while standing by
    watches = await servable(watches, namespaces, reconciler.kube)
    registry = kopf.OperatorRegistry()
    # The same credentials as the kubernetes client (KUBECONFIG or the in-cluster account).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    cache = proxy = None
    if reconciler.settings.cache_reads:
        cache = Cache()
        proxy = ApiProxy(cache, Upstream.from_client(),
                         record=metrics.record_api_request if metrics is not None else None)
        await proxy.start()
        reconciler.proxy = proxy
    try:
        if member is not None:
            await _shard_and_reconcile(watches, reconciler, namespaces=namespaces, stop=stop or asyncio.Event(),
                                       metrics=metrics, member=member, ready=ready, grace=grace, cache=cache)
        else:
            await _watch_and_reconcile(watches, reconciler, namespaces=namespaces, stop=stop, metrics=metrics,
                                       elector=elector, ready=ready, grace=grace, cache=cache, registry=registry)
    finally:
        if proxy is not None:
            reconciler.proxy = None
            await proxy.stop()


def _start(controllers: list[WatchController], namespaces: list[str], cache: Cache | None) -> DependentWatches:
    """The controllers' dependent watches, shared by them all, and their queues started."""
    dependents = DependentWatches(asyncio.get_running_loop(), _owner_router(controllers), namespaces=namespaces,
                                  cache=cache, accepts=_dependents_accepted(controllers))
    for c in controllers:
        c.dependents = dependents
        c.queue.start()
    return dependents


async def _watch_and_reconcile(watches: list[Watch], reconciler: Reconciler, *, namespaces: list[str],
                               stop: asyncio.Event | None, metrics: Metrics | None, elector: LeaderElector | None,
                               ready: asyncio.Event | None, grace: float, cache: Cache | None,
                               registry: kopf.OperatorRegistry) -> None:
    controllers = register(watches, reconciler, registry, metrics, cache)
    _start(controllers, namespaces, cache)
    settings = kopf.OperatorSettings()
    observe_cluster = await may_observe_cluster(namespaces)
    if not observe_cluster:
        log.info("not watching namespaces and CRDs cluster-wide (not permitted): watching %s as named; "
                 "a kind installed after start-up is served after a restart", ",".join(namespaces))
    configure(settings, observe_cluster=observe_cluster)
    # Created before kopf starts, so that kopf's shutdown (which cancels the tasks it finds
    # were started after it) leaves the renewals alone.
    holding = asyncio.create_task(elector.hold(), name="leader-lease") if elector is not None else None
    operator = asyncio.create_task(kopf.operator(
        registry=registry, settings=settings, standalone=True,
        clusterwide=not namespaces, namespaces=namespaces,
        stop_flag=stop, ready_flag=ready,
    ), name="kopf")
    lost = False
    try:
        await asyncio.wait([t for t in (operator, holding) if t is not None], return_when=asyncio.FIRST_COMPLETED)
        if holding is not None and holding.done():
            lost = True
            operator.cancel()
            holding.result()  # raises LeadershipLost
        await operator
    finally:
        # Once the lease is lost nothing may wait (not even for reconciles): the caller ends the process.
        if not lost:
            await _wind_down(controllers, elector, holding, grace)


async def _wind_down(controllers: list[WatchController], elector: LeaderElector | None,
                     holding: asyncio.Task[None] | None, grace: float) -> None:
    """A graceful stop: with a lease, keep renewing it while running reconciles finish, then
    release it; a lease lost meanwhile still raises LeadershipLost."""
    if holding is not None:
        draining = asyncio.create_task(_drain(controllers, grace))
        await asyncio.wait([draining, holding], return_when=asyncio.FIRST_COMPLETED)
        if holding.done():
            draining.cancel()
            holding.result()
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
    for c in controllers:
        await c.queue.stop()
    if elector is not None:
        await elector.release()


async def _drain(controllers: list[WatchController], grace: float) -> bool:
    """Wait up to `grace` seconds for the running reconciles to end, so the lease is released
    only when nothing of ours still acts on the cluster; whether they all ended."""
    deadline = asyncio.get_running_loop().time() + grace
    while any(c.queue.in_flight() for c in controllers):
        if asyncio.get_running_loop().time() >= deadline:
            log.warning("stopping with reconciles still running after %.0fs", grace)
            return False
        await asyncio.sleep(0.1)
    return True


# How often a sharded replica looks again for a primary kind the cluster does not serve yet.
DISCOVERY_RETRY = 5.0


async def _discover(reconciler: Reconciler, watch: Watch, stop: asyncio.Event) -> ResourceRef | None:
    """The watch's kind through discovery, once the cluster serves it (None if stopped first)."""
    told = False
    while not stop.is_set():
        try:
            return await asyncio.to_thread(reconciler.kube.plural_for, watch.group, watch.version, watch.kind)
        except Exception as err:
            if not told:
                log.warning("sharding: cannot watch %s yet (%s); looking again every %.0fs", watch.kind, err,
                            DISCOVERY_RETRY)
                told = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), DISCOVERY_RETRY)
    return None


async def _shard_and_reconcile(watches: list[Watch], reconciler: Reconciler, *, namespaces: list[str],
                               stop: asyncio.Event, metrics: Metrics | None, member: ShardMember,
                               ready: asyncio.Event | None, grace: float, cache: Cache | None) -> None:
    controllers = [controller_for(watch, reconciler, metrics, cache) for watch in watches]
    for c in controllers:
        c.assignment = Assignment()  # nothing until the first round of membership
    # Unsharded: a dependent's change reaches its owner's replica alone (`_owner_router`).
    dependents = _start(controllers, namespaces, cache)
    upstream = Upstream.from_client()
    scopes = namespaces or [""]
    watchers: list[SliceWatch] = []
    server_side: bool | None = None
    for c in controllers:
        ref = await _discover(reconciler, c.watch, stop)
        if ref is None:
            return
        c.ref = ref
        while server_side is None:
            try:
                server_side = await server_side_sharding(upstream, ref, scopes[0])
            except Exception as err:
                log.warning("sharding: could not ask the apiserver whether it shards lists (%s); asking again in "
                            "%.0fs", err, DISCOVERY_RETRY)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), DISCOVERY_RETRY)
                if stop.is_set():
                    return
                continue
            log.info("sharding: %s", "the apiserver filters by shard (sharded list and watch)" if server_side else
                     "the apiserver does not offer sharded list and watch: every object is received and "
                     "filtered by the same hash here")
        for scope in scopes:
            watchers.append(SliceWatch(upstream, ref, scope, functools.partial(c.on_event, resource=ref),
                                       server_side=bool(server_side)))

    def changed(assignment: Assignment) -> None:
        for c in controllers:
            c.reassign(assignment)
        for w in watchers:
            w.retarget(assignment.watched)
        if metrics is not None:
            metrics.set_shard(member.member, len(assignment.watched), len(assignment.permitted))

    member.busy = lambda slices: any(c.busy(slices) for c in controllers)
    member.count = lambda: sum(c.count() for c in controllers)
    member.on_change = changed
    if metrics is not None:
        metrics.track_shard_objects(member.member, member.count)
        member.record_handover = functools.partial(metrics.record_handover, member.member)
    tasks = [asyncio.create_task(w.run(), name=f"shard-watch-{w.where}") for w in watchers]
    membership = asyncio.create_task(member.run(stop), name="shard-membership")
    if ready is not None:
        tasks.append(asyncio.create_task(_ready_when_listed(member, watchers, ready), name="shard-ready"))
    stopping = asyncio.create_task(stop.wait())
    lost = False
    try:
        await asyncio.wait([membership, stopping], return_when=asyncio.FIRST_COMPLETED)
        if membership.done():
            lost = membership.exception() is not None
            membership.result()  # raises MembershipLost
    finally:
        for task in (*tasks, stopping, membership):
            task.cancel()
        await asyncio.gather(*tasks, stopping, membership, return_exceptions=True)
        dependents.stop()
        if not lost:  # once the Lease is lost nothing may wait: the caller ends the process
            await member.leave(_drain(controllers, grace))
            for c in controllers:
                await c.queue.stop()


async def _ready_when_listed(member: ShardMember, watchers: list[SliceWatch], ready: asyncio.Event) -> None:
    """Ready once the member has published a view and every watch has listed its slices."""
    while member.published is None or not all(w.listed.is_set() for w in watchers):
        await asyncio.sleep(0.1)
    ready.set()
