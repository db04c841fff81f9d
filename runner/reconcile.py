"""One reconcile of one object: build the vars, run Ansible, write status and Events.

This module knows the order of things (finalizer, Running, run, result) and
nothing of how events arrive or are queued (that is `operator`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner import ansible, status
from runner.apicache import KindKey, resource_version
from runner.dependents import DependentKind, read_reported
from runner.extravars import Overrides, build_extra_vars, object_overrides
from runner.kube import Kube, ResourceRef
from runner.ownerrefs import DEPENDENTS_ENV, OWNER_ENV
from runner.settings import AnsibleSettings
from runner.usermetrics import USER_METRICS_ENV
from runner.warm import WarmAnsible
from runner.watches import Watch

if TYPE_CHECKING:
    from runner.apiproxy import ApiProxy

log = logging.getLogger("playbook_operator.reconcile")


def run_env(settings: AnsibleSettings, obj: Mapping[str, Any], dependents_file: Path | None = None) -> dict[str, str]:
    """Environment for one run: the cluster to talk to and, for owner references, the owner."""
    env: dict[str, str] = {USER_METRICS_ENV: ""}  # the operator names its endpoint when it serves one
    if dependents_file is not None:
        env[DEPENDENTS_ENV] = str(dependents_file)
    if settings.kubeconfig:
        env["K8S_AUTH_KUBECONFIG"] = settings.kubeconfig
    meta = obj.get("metadata") or {}
    if settings.inject_owner_ref and meta.get("uid"):
        env[OWNER_ENV] = json.dumps({"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                     "name": meta.get("name"), "namespace": meta.get("namespace") or "",
                                     "uid": meta["uid"]})
    return env


@dataclass(frozen=True)
class Outcome:
    """What the queue needs to know after a reconcile."""

    ok: bool
    changed: int = 0
    duration: float = 0.0
    message: str = ""
    requeue_after: float | None = None
    skipped: bool = False
    # Kinds the role created or read that the object owns (for dependent watches).
    dependents: frozenset[DependentKind] = frozenset()
    task_results: tuple[dict[str, Any], ...] = ()


def owner_id(watch: Watch, obj: Mapping[str, Any]) -> str:
    """Who a run works for, as the API endpoint's cache knows its writes across runs."""
    meta = obj["metadata"]
    return f"{watch.group}/{watch.kind}/{meta.get('namespace') or ''}/{meta['name']}"


def artifact_dir(root: Path, watch: Watch, obj: Mapping[str, Any]) -> Path:
    meta = obj["metadata"]
    namespace: str = meta.get("namespace") or "_cluster"
    name: str = meta["name"]
    return root / watch.group / watch.version / watch.kind / namespace / name


DEPENDENTS_FILE = "dependents.jsonl"


def target_of(watch: Watch) -> ansible.Target:
    return ansible.Target(role=watch.role, playbook=watch.playbook)


def finalizer_target(watch: Watch) -> ansible.Target:
    """The finalizer's own role or playbook; with only vars, the watch's own."""
    fin = watch.finalizer
    if fin is not None and (fin.role or fin.playbook):
        return ansible.Target(role=fin.role, playbook=fin.playbook)
    return target_of(watch)


def _is_deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def _failure_text(result: ansible.RunResult) -> str:
    if result.failed_tasks:
        first = result.failed_tasks[0]
        return f"{first.message}" if first.message else f"task {first.task!r} failed"
    return f"ansible ended {result.status} (rc={result.rc})"


def _event_text(result: ansible.RunResult) -> str:
    if result.failed_tasks and result.failed_tasks[0].task:
        first = result.failed_tasks[0]
        task = f"{first.role} : {first.task}" if first.role and first.role not in first.task else first.task
        return f"task {task!r} failed: {first.message}"
    return _failure_text(result)


def build_run_request(settings: AnsibleSettings, warm: WarmAnsible | None, watch: Watch, obj: Mapping[str, Any],
                      *, target: ansible.Target,
                      finalizer_run: bool = False) -> tuple[ansible.RunRequest, Overrides]:
    """The Ansible run for one object, and the object's own overrides of the watch's settings.

    Shared by the operator and `playbook-operator reconcile`, so both run a role the same way
    (extra vars, owner references, warm shims, artifacts). `warm` holds the shims from
    runner.warm, or is None for a cold ansible-playbook and a fresh interpreter per task."""
    private_dir = artifact_dir(settings.artifacts_dir, watch, obj)
    overrides = object_overrides(watch, obj)
    request = ansible.RunRequest(
        target=target,
        extravars=build_extra_vars(watch, obj, finalizer=finalizer_run),
        private_data_dir=private_dir,
        # 0 keeps every artifact directory (the SDK's annotation); ansible-runner's 0 means the same.
        max_artifacts=overrides.max_runner_artifacts,
        verbosity=overrides.verbosity if settings.verbosity is None else settings.verbosity,
        check=settings.check,
        diff=settings.diff,
        extra_args=settings.args,
        env=run_env(settings, obj, private_dir / DEPENDENTS_FILE),
        playbook_binary=warm.playbook_binary if warm else None,
        interpreter=warm.python_interpreter if warm else None,
        timeout=watch.run_timeout,
    )
    return request, overrides


@dataclass(frozen=True)
class Run:
    """One finished Ansible run, with what the reconcile needs from it besides the result."""

    result: ansible.RunResult
    reconcile_period: float
    dependents: frozenset[DependentKind]


class Reconciler:
    def __init__(self, kube: Kube, settings: AnsibleSettings, warm: WarmAnsible | None = None) -> None:
        self.kube = kube
        self.settings = settings
        self.warm = warm  # the warm fork servers' shims; None runs Ansible cold
        # The API endpoint runs talk to (set once it listens); None: the apiserver itself.
        self.proxy: ApiProxy | None = None
        # Where runs' osdk_metric requests go (set once the operator listens); empty: nowhere.
        self.user_metrics_url = ""

    async def reconcile(self, watch: Watch, ref: ResourceRef, obj: dict[str, Any]) -> Outcome:
        started = time.monotonic()
        meta = obj["metadata"]
        finalizer = watch.finalizer.name if watch.finalizer else None

        if _is_deleting(obj):
            if not finalizer or finalizer not in (meta.get("finalizers") or []):
                return Outcome(ok=True, skipped=True)
            return await self._finalize(watch, ref, obj, finalizer, started)

        if finalizer and finalizer not in (meta.get("finalizers") or []):
            obj = await asyncio.to_thread(
                self.kube.set_finalizers, ref, obj, [*(meta.get("finalizers") or []), finalizer])
        # The newest version of the object this reconcile knows of: the run's reads see no older.
        seen = resource_version(obj) or 0

        if watch.manage_status and not self._converged(obj):
            def to_running(fresh: dict[str, Any]) -> dict[str, Any] | None:
                # The queued state can trail our own last status write; judge by what is there now.
                if self._converged(fresh):
                    return None
                running = status.running_status(fresh.get("status"))
                return None if status.same_ignoring_times(running, fresh.get("status")) else running

            written = await asyncio.to_thread(self.kube.update_status, ref, meta.get("namespace"), meta["name"],
                                              to_running)
            seen = max(seen, resource_version(written) or 0)

        run = await self._run(watch, ref, obj, target=target_of(watch), finalizer_run=False, seen=seen)
        return await self._finish(watch, ref, obj, run, started)

    def _converged(self, obj: Mapping[str, Any]) -> bool:
        # A reconcile of an object whose generation was already handled successfully
        # (a resync or a restart) should not cost a Running write.
        st = obj.get("status") or {}
        if st.get("observedGeneration") != obj["metadata"].get("generation"):
            return False
        return any(c.get("type") == status.SUCCESSFUL and c.get("status") == "True"
                   for c in st.get("conditions") or [])

    async def _run(self, watch: Watch, ref: ResourceRef, obj: Mapping[str, Any], *, target: ansible.Target,
                   finalizer_run: bool, seen: int) -> Run:
        request, overrides = build_run_request(self.settings, self.warm, watch, obj, target=target,
                                               finalizer_run=finalizer_run)
        for warning in overrides.warnings:
            log.warning("%s %s/%s: %s", watch.kind, obj["metadata"].get("namespace", ""), obj["metadata"]["name"],
                        warning)
        if self.user_metrics_url:
            request = replace(request, env={**request.env, USER_METRICS_ENV: self.user_metrics_url})
        proxy = self.proxy
        if proxy is None:
            result = await asyncio.to_thread(ansible.run, request)
        else:
            # Its own way in to the API endpoint, valid for this run only.
            access = proxy.open_run(owner_id(watch, obj), {KindKey(ref.group, ref.version, ref.plural): seen},
                                    uncached=frozenset((b.group, b.version, b.kind) for b in watch.blacklist))
            kubeconfig = access.write_kubeconfig(request.private_data_dir / "kubeconfig", proxy.url)
            request = replace(request, env={**request.env, "K8S_AUTH_KUBECONFIG": str(kubeconfig)})
            try:
                result = await asyncio.to_thread(ansible.run, request)
            finally:
                proxy.close_run(access)
                kubeconfig.unlink(missing_ok=True)
        # Read (and remove) what this run reported, so the next run starts afresh.
        dependents = read_reported(request.private_data_dir / DEPENDENTS_FILE)
        return Run(result, overrides.reconcile_period, frozenset(dependents))

    async def _finalize(self, watch: Watch, ref: ResourceRef, obj: dict[str, Any], finalizer: str,
                        started: float) -> Outcome:
        assert watch.finalizer is not None
        target = finalizer_target(watch)
        run = await self._run(watch, ref, obj, target=target, finalizer_run=True, seen=resource_version(obj) or 0)
        if not run.result.successful:
            return await self._finish(watch, ref, obj, run, started)
        if watch.finalizer.keep_while_requeued and run.result.requeue_after:
            # Not done yet (a broker still deprovisioning, dependents still there): the role
            # wrote why in the status; the finalizer stays until a run ends without a requeue.
            return Outcome(ok=True, changed=run.result.changed, duration=time.monotonic() - started,
                           requeue_after=run.result.requeue_after, dependents=run.dependents,
                           task_results=tuple(run.result.task_results))
        fresh = await asyncio.to_thread(self.kube.get, ref, obj["metadata"].get("namespace"),
                                        obj["metadata"]["name"])
        if fresh is not None:
            remaining = [f for f in fresh["metadata"].get("finalizers") or [] if f != finalizer]
            await asyncio.to_thread(self.kube.set_finalizers, ref, fresh, remaining)
        return Outcome(ok=True, changed=run.result.changed, duration=time.monotonic() - started)

    async def _finish(self, watch: Watch, ref: ResourceRef, obj: dict[str, Any], run: Run,
                      started: float) -> Outcome:
        result = run.result
        failure = None if result.successful else _failure_text(result)
        if watch.manage_status:
            meta = obj["metadata"]
            counts = status.AnsibleResult(result.ok, result.changed, result.skipped, result.failures,
                                          status.now())

            def to_finished(fresh: dict[str, Any]) -> dict[str, Any] | None:
                # `fresh` carries whatever status the role wrote itself (k8s_status): it survives.
                # While a finalizer holds the object, only a failure is worth writing.
                if _is_deleting(fresh) and failure is None:
                    return None
                new = status.finished_status(fresh.get("status"), generation=meta.get("generation"),
                                             result=counts, failure_message=failure)
                return None if status.same_ignoring_times(new, fresh.get("status")) else new

            await asyncio.to_thread(self.kube.update_status, ref, meta.get("namespace"), meta["name"],
                                    to_finished)
        if failure is not None:
            await asyncio.to_thread(self.kube.event, obj, type_="Warning", reason="ReconcileFailed",
                                    message=_event_text(result))
        return Outcome(ok=failure is None, changed=result.changed, duration=time.monotonic() - started,
                       message=failure or "", requeue_after=result.requeue_after or run.reconcile_period or None,
                       dependents=run.dependents, task_results=tuple(result.task_results))
