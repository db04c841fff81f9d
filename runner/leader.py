"""Leader election on a ``coordination.k8s.io/v1`` Lease, with controller-runtime's rules.

Replicas race for one Lease. The holder renews it every retry period; a standby takes it only
once it has expired, and then increments ``leaseTransitions``. A holder that cannot renew within
the renew deadline stops at once, before the lease can expire for anyone else, so two leaders
never act together. On a graceful stop the holder releases the lease (empty holder, a one-second
duration) so that a standby takes over without waiting for the expiry.

Every write carries the ``resourceVersion`` that was read: of two replicas writing the same
version, one gets a conflict and loses. The decisions are pure functions (below, first) so they
can be tested without a cluster or a clock; `LeaderElector` runs them against the apiserver.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import random
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn, Protocol

from runner.metrics import Metrics, gvk_label
from runner.settings import JITTER, RENEW_DEADLINE, Timings
from runner.status import parse_time

log = logging.getLogger("playbook_operator.leader")

LEASE_ID_SUFFIX = "-playbook-operator"


class LeadershipLost(Exception):
    """The lease could not be kept: this replica must stop acting now."""


class LeaseConflict(Exception):
    """Another writer changed (or created) the lease first."""


# --- the decisions -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaseRecord:
    """The election's part of a Lease's spec."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0


def is_expired(record: LeaseRecord, now: datetime) -> bool:
    """Whether nobody holds the lease any more: no holder, or renewTime + leaseDurationSeconds < now."""
    if not record.holder or record.renew_time is None:
        return True
    return record.renew_time + timedelta(seconds=record.duration_seconds) < now


def may_acquire(record: LeaseRecord | None, identity: str, now: datetime, unchanged_for: float) -> bool:
    """Whether `identity` may write itself into the lease (take it, or renew its own).

    A lease held by another is taken only when it has expired by its renewTime *and* this replica
    has seen it unchanged for a whole lease duration on its own monotonic clock, as client-go
    judges it: the first alone would trust the clocks of two machines to agree, the second alone
    would let a replica that just started take a lease a moment before its holder renews it.
    """
    if record is None or record.holder == identity or not record.holder:
        return True
    return is_expired(record, now) and unchanged_for >= record.duration_seconds


def acquired_record(current: LeaseRecord | None, identity: str, timings: Timings, now: datetime) -> LeaseRecord:
    """The record to write to renew (holder unchanged) or to take the lease (a new transition)."""
    if current is not None and current.holder == identity:
        return replace(current, duration_seconds=timings.lease_seconds, renew_time=now)
    transitions = 0 if current is None else current.transitions + 1
    return LeaseRecord(identity, timings.lease_seconds, now, now, transitions)


def released_record(current: LeaseRecord, now: datetime) -> LeaseRecord:
    """The record a leader leaves behind on a graceful stop: no holder, expired in a second."""
    return LeaseRecord("", 1, now, now, current.transitions)


def renew_deadline_passed(last_renewed: float, now: float, timings: Timings) -> bool:
    """Whether a leader that last renewed at `last_renewed` (monotonic) must give up at `now`."""
    return now - last_renewed >= timings.renew_deadline


# --- the Lease as JSON -------------------------------------------------------------------------------


def format_micro_time(moment: datetime) -> str:
    """A metav1.MicroTime: RFC 3339 with exactly six fractional digits, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=spec.get("holderIdentity") or "",
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquire_time=parse_time(spec.get("acquireTime")),
        renew_time=parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_with(lease: Mapping[str, Any] | None, record: LeaseRecord, *, name: str,
               namespace: str) -> dict[str, Any]:
    """`lease` (or a new Lease) carrying `record`; metadata, resourceVersion included, is kept."""
    body: dict[str, Any] = copy.deepcopy(dict(lease)) if lease is not None else {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace},
    }
    body.setdefault("apiVersion", "coordination.k8s.io/v1")
    body.setdefault("kind", "Lease")
    spec = body.setdefault("spec", {})
    spec["holderIdentity"] = record.holder
    spec["leaseDurationSeconds"] = record.duration_seconds
    spec["leaseTransitions"] = record.transitions
    for key, moment in (("acquireTime", record.acquire_time), ("renewTime", record.renew_time)):
        if moment is None:
            spec.pop(key, None)
        else:
            spec[key] = format_micro_time(moment)
    return body


def resource_version(lease: Mapping[str, Any] | None) -> str | None:
    return None if lease is None else (lease.get("metadata") or {}).get("resourceVersion")


# --- defaults ----------------------------------------------------------------------------------------


def new_identity() -> str:
    """hostname_uuid, as controller-runtime makes it: unique even for two replicas on one host."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _fnv1a_32(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def default_lease_id(gvks: Iterable[tuple[str, str, str]]) -> str:
    """``<hash>-playbook-operator``: an FNV-1a hash of the watched kinds, as kubebuilder names its
    leases after a hash of the project, so replicas of one operator share a lease and two different
    operators in one namespace do not."""
    text = "\n".join(sorted(gvk_label(*gvk) for gvk in gvks))
    return f"{_fnv1a_32(text.encode()):08x}{LEASE_ID_SUFFIX}"


def lease_id(configured: str | None, gvks: Iterable[tuple[str, str, str]]) -> str:
    """The configured name (--leader-election-id, else OPERATOR_NAME, which the SDK still honours:
    `LeaderElection.id`), else the default."""
    return configured or default_lease_id(gvks)


# --- the apiserver -----------------------------------------------------------------------------------


class LeaseApi(Protocol):
    """The three calls leader election makes; blocking (the elector runs them in threads)."""

    def get(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class KubeLeaseApi:
    """LeaseApi through the kubernetes client, with raw JSON bodies so MicroTimes are written
    exactly as the apiserver parses them. A write refused with a status in `CONFLICTS` raises
    LeaseConflict: another writer came first."""

    CONFLICTS: tuple[int, ...] = (409,)

    def __init__(self, api_client: Any = None, *, timeout: float = RENEW_DEADLINE) -> None:
        from kubernetes import client

        # Any: the client's annotations know typed models only, not raw bodies and responses.
        self._api: Any = client.CoordinationV1Api(api_client or client.ApiClient())
        self._timeout = timeout

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self._api.read_namespaced_lease(name, namespace, _preload_content=False,
                                                   _request_timeout=self._timeout)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return dict(json.loads(resp.data))

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write(lambda: self._api.create_namespaced_lease(
            namespace, body, _preload_content=False, _request_timeout=self._timeout))

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write(lambda: self._api.replace_namespaced_lease(
            name, namespace, body, _preload_content=False, _request_timeout=self._timeout))

    def _write(self, call: Callable[[], Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            resp = call()
        except ApiException as err:
            if err.status in self.CONFLICTS:
                raise LeaseConflict(str(err.reason)) from None
            raise
        return dict(json.loads(resp.data))


# --- the election ------------------------------------------------------------------------------------


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LeaderElector:
    """One replica's side of the election for the lease `namespace`/`name`."""

    def __init__(self, api: LeaseApi, *, name: str, namespace: str, identity: str | None = None,
                 timings: Timings | None = None, metrics: Metrics | None = None,
                 wall: Callable[[], datetime] = _utcnow, mono: Callable[[], float] = time.monotonic) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity or new_identity()
        self.timings = timings or Timings()
        self.metrics = metrics
        self._wall = wall
        self._mono = mono
        self.state = "starting"  # starting | standby | leading | released | stopped | lost
        self._observed_version: str | None = None
        self._observed_at = 0.0
        self._last_renewed = 0.0
        self._last_contact: float | None = None
        self._reported_holder: str | None = None
        self._failing = False

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def leading(self) -> bool:
        return self.state == "leading"

    def ready(self) -> tuple[bool, str]:
        """Ready while leading, or while standing by with the apiserver answering."""
        if self.leading:
            return True, "leading"
        if self.state == "standby" and self._last_contact is not None \
                and self._mono() - self._last_contact <= self.timings.lease_duration:
            return True, "standing by"
        return False, f"leader election: {self.state}"

    async def try_acquire_or_renew(self) -> bool:
        """One round: read the lease, write ourselves into it if the rules allow. True if we hold it;
        LeaseConflict if another writer came between our read and our write."""
        now = self._wall()
        lease = await asyncio.to_thread(self.api.get, self.namespace, self.name)
        self._contact()
        current = None if lease is None else record_of(lease)
        if lease is not None:
            self._observe(lease)
        if not may_acquire(current, self.identity, now, self._mono() - self._observed_at):
            assert current is not None
            self._report_holder(current)
            return False
        body = lease_with(lease, acquired_record(current, self.identity, self.timings, now),
                          name=self.name, namespace=self.namespace)
        if lease is None:
            written = await asyncio.to_thread(self.api.create, self.namespace, body)
        else:
            written = await asyncio.to_thread(self.api.replace, self.namespace, self.name, body)
        self._contact()
        self._observe(written)
        if not self.leading:
            log.info("acquired leader lease %s as %s (transitions: %d)", self.where, self.identity,
                     record_of(written).transitions)
        return True

    async def acquire(self, stop: asyncio.Event | None = None) -> bool:
        """Stand by until the lease is ours (True) or `stop` is set (False)."""
        self._set_state("standby")
        log.info("leader election: trying to acquire lease %s as %s", self.where, self.identity)
        while True:
            started = self._mono()
            if await self._attempt("acquire"):
                self._last_renewed = started
                self._set_state("leading")
                return True
            pause = self.timings.retry_period * (1 + random.random() * JITTER)
            if stop is None:
                await asyncio.sleep(pause)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    self._set_state("stopped")
                    return False

    async def hold(self) -> NoReturn:
        """Renew every retry period; raise LeadershipLost once that fails for the renew deadline."""
        while True:
            await asyncio.sleep(self.timings.retry_period)
            while True:
                remaining = self.timings.renew_deadline - (self._mono() - self._last_renewed)
                if renew_deadline_passed(self._last_renewed, self._mono(), self.timings):
                    self._lose(f"could not renew it within the renew deadline ({self.timings.renew_deadline:g}s)")
                started = self._mono()
                try:
                    held = await asyncio.wait_for(self._attempt("renew", raise_errors=True), remaining)
                except TimeoutError:
                    continue  # the deadline check above ends it
                except Exception:
                    await asyncio.sleep(min(self.timings.retry_period, max(remaining - 0.01, 0)))
                    continue
                if held:
                    self._last_renewed = started
                    break
                self._lose(f"it is held by {self._reported_holder or 'another replica'}")

    async def release(self) -> None:
        """Give the lease up (empty holder, one-second duration) if we still hold it."""
        if not self.leading:
            return
        self._set_state("released")
        try:
            lease = await asyncio.wait_for(asyncio.to_thread(self.api.get, self.namespace, self.name),
                                           self.timings.renew_deadline)
            if lease is None or record_of(lease).holder != self.identity:
                return
            body = lease_with(lease, released_record(record_of(lease), self._wall()), name=self.name,
                              namespace=self.namespace)
            await asyncio.wait_for(asyncio.to_thread(self.api.replace, self.namespace, self.name, body),
                                   self.timings.renew_deadline)
            log.info("released leader lease %s", self.where)
        except Exception as err:
            log.warning("could not release leader lease %s (%s); it expires by itself", self.where, err)

    # -- internals

    async def _attempt(self, what: str, *, raise_errors: bool = False) -> bool:
        try:
            held = await self.try_acquire_or_renew()
        except LeaseConflict:
            # Someone wrote first: a standby lost a race (fine), a leader reads again (and keeps
            # the lease if the write was not a takeover, a label edit say).
            if raise_errors:
                raise
            return False
        except Exception as err:
            if not self._failing or raise_errors:
                log.warning("leader election: could not %s lease %s: %s", what, self.where, err)
            self._failing = True
            if raise_errors:
                raise
            return False
        if self._failing:
            log.info("leader election: the apiserver answers again")
            self._failing = False
        return held

    def _observe(self, lease: Mapping[str, Any]) -> None:
        version = resource_version(lease)
        if version != self._observed_version:
            self._observed_version = version
            self._observed_at = self._mono()

    def _contact(self) -> None:
        self._last_contact = self._mono()

    def _report_holder(self, record: LeaseRecord) -> None:
        if record.holder == self._reported_holder:
            return
        self._reported_holder = record.holder
        if self.state == "standby":
            log.info("leader election: standing by, lease %s is held by %s (renewed %s)", self.where, record.holder,
                     format_micro_time(record.renew_time) if record.renew_time else "never")

    def _set_state(self, state: str) -> None:
        self.state = state
        if self.metrics is not None:
            self.metrics.set_leader(self.name, state == "leading")

    def _lose(self, why: str) -> NoReturn:
        self._set_state("lost")
        log.error("leader election: lost lease %s: %s; stopping", self.where, why)
        raise LeadershipLost(f"lost lease {self.where}: {why}")


# --- stopping ----------------------------------------------------------------------------------------


def child_pids(pid: int | None = None, proc: Path = Path("/proc")) -> list[int]:
    """The direct children of `pid` (this process by default), from /proc; empty elsewhere."""
    parent = os.getpid() if pid is None else pid
    children = []
    for stat in proc.glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # The command name may hold spaces and parentheses: the fields start after the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                children.append(int(stat.parent.name))
    return children


def exit_now(code: int = 1) -> NoReturn:
    """End this process at once, as a replica that lost its lease must: its children (Ansible
    runs) are told to stop and no cleanup runs, since cleanup would wait for reconciles to end."""
    for pid in child_pids():
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
