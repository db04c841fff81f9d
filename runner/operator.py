"""kopf glue: one raw-event handler and one work queue per watch.

kopf is used for what it is good at (discovery, watch streams, reconnects,
namespaces); reconciliation state lives here, in memory, as in the Operator SDK:
no annotations or status are written for bookkeeping, so a converged object costs
no writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import kopf

from runner.kube import ResourceRef
from runner.reconcile import Reconciler
from runner.watches import Watch
from runner.workqueue import Result, WorkQueue

log = logging.getLogger("playbook_operator")


def object_key(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace') or ''}/{meta['name']}"


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

    def __init__(self, watch: Watch, reconciler: Reconciler) -> None:
        self.watch = watch
        self.reconciler = reconciler
        self.trigger = Trigger(watch.watch_annotations_changes)
        self.queue = WorkQueue(name=f"{watch.kind}.{watch.group}", handler=self._handle,
                               concurrency=watch.max_concurrent_reconciles)
        self.ref: ResourceRef | None = None

    async def on_event(self, event: Mapping[str, Any], resource: Any) -> None:
        obj = event.get("object") or {}
        if not obj.get("metadata"):
            return
        if self.ref is None:
            self.ref = ResourceRef(resource.group, resource.version, resource.kind, resource.plural,
                                   resource.namespaced)
        key = object_key(obj)
        if event.get("type") == "DELETED":
            self.queue.forget(key)
            self.trigger.forget(key)
            return
        if not self.watch.selects(obj):
            return
        if self.trigger.should_run(obj):
            self.queue.add(key, obj)
        else:
            self.queue.refresh(key, obj)

    async def _handle(self, key: str, obj: dict[str, Any]) -> Result:
        assert self.ref is not None
        outcome = await self.reconciler.reconcile(self.watch, self.ref, obj)
        if not outcome.skipped:
            meta = obj["metadata"]
            log.info("reconciled %s %s/%s result=%s changed=%d duration=%.2fs%s",
                     self.watch.kind, meta.get("namespace", ""), meta["name"],
                     "ok" if outcome.ok else "failed", outcome.changed, outcome.duration,
                     f" message={outcome.message!r}" if outcome.message else "")
        requeue = outcome.requeue_after or (self.watch.reconcile_period or None)
        return Result(ok=outcome.ok, requeue_after=requeue if outcome.ok else None)


def register(watches: list[Watch], reconciler: Reconciler,
             registry: kopf.OperatorRegistry) -> list[WatchController]:
    controllers = []
    for watch in watches:
        controller = WatchController(watch, reconciler)

        async def handler(event: Mapping[str, Any], resource: Any, controller: WatchController = controller,
                          **_: Any) -> None:
            await controller.on_event(event, resource)

        kopf.on.event(group=watch.group, version=watch.version, kind=watch.kind,
                      registry=registry, id=f"watch-{watch.kind}")(handler)
        controllers.append(controller)
    return controllers


def configure(settings: kopf.OperatorSettings) -> None:
    # Our own Events say what matters; kopf's per-handler Events would be noise and writes.
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.networking.request_timeout = 60


async def run_operator(watches: list[Watch], reconciler: Reconciler, *, namespaces: list[str],
                       stop: asyncio.Event | None = None) -> None:
    registry = kopf.OperatorRegistry()
    # The same credentials as the kubernetes client (KUBECONFIG or the in-cluster account).
    kopf.on.login(registry=registry)(kopf.login_via_client)
    controllers = register(watches, reconciler, registry)
    for c in controllers:
        c.queue.start()
    settings = kopf.OperatorSettings()
    configure(settings)
    try:
        await kopf.operator(
            registry=registry, settings=settings, standalone=True,
            clusterwide=not namespaces, namespaces=namespaces,
            stop_flag=stop,
        )
    finally:
        for c in controllers:
            await c.queue.stop()
