"""Sharding's membership: a Lease per replica, and the slices this replica may act on.

With ``--sharding`` every replica holds a ``coordination.k8s.io/v1`` Lease of its own in the
operator's namespace, named ``<operator>-<member>`` and labelled with the operator's name. Every
retry period it renews its Lease, lists its peers' and works out, with `runner.sharding`'s rules:
- the members: itself and every peer whose Lease is live. A Lease deleted on a graceful stop
  goes at once; one left behind by a replica that died goes once it has expired by its
  renewTime and this replica has seen it unchanged for a whole lease duration (as leader
  election judges a holder gone, `leader.is_expired`);
- the slices it watches: its own among those members;
- the slices it may run: its own under the view it published before the list it just read, less
  any a live peer's published view still claims (`sharding.acting`);
- when the members change, which slices it must let go: no new runs start there at once, and
  the new view is published only when no run of those slices is in flight.

A replica that cannot renew within the renew deadline stops at once (`MembershipLost`), before
its Lease can expire for the others, and its runs die with it; the others take its slices over
once the Lease has expired. A graceful stop lets running reconciles finish, then deletes the
Lease so the others take over without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from runner import leader, sharding
from runner.leader import LeaseConflict, LeaseRecord, is_expired, record_of
from runner.settings import Timings

log = logging.getLogger("playbook_operator.shards")

OPERATOR_LABEL = "sharding.playbook-operator.io/operator"
"""On every member's Lease: the operator's name, which finds the peers."""
MEMBER_ANNOTATION = "sharding.playbook-operator.io/member"
VIEW_ANNOTATION = "sharding.playbook-operator.io/view"
"""The members, comma-separated, under which this member acts; absent until it acts."""
OBJECTS_ANNOTATION = "sharding.playbook-operator.io/objects"
"""How many primary objects the member holds, for `playbook-operator shards`."""


class MembershipLost(Exception):
    """This replica's Lease could not be renewed in time: it must stop acting now."""


@dataclass(frozen=True)
class Peer:
    """A member as its Lease shows it."""

    name: str
    lease: str
    view: frozenset[str] | None
    record: LeaseRecord
    version: str
    objects: int | None = None


def lease_name(operator: str, member: str) -> str:
    return f"{operator}-{member}"


def peer_of(lease: Mapping[str, Any]) -> Peer | None:
    meta = lease.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    name = annotations.get(MEMBER_ANNOTATION)
    if not name:
        return None
    view_text = annotations.get(VIEW_ANNOTATION)
    view = None if view_text is None else frozenset(v for v in view_text.split(",") if v)
    objects = annotations.get(OBJECTS_ANNOTATION)
    return Peer(name=name, lease=str(meta.get("name")), view=view, record=record_of(lease),
                version=str(meta.get("resourceVersion") or ""),
                objects=int(objects) if objects and objects.isdigit() else None)


def member_lease(lease: Mapping[str, Any] | None, *, operator: str, member: str, namespace: str,
                 view: frozenset[str] | None, objects: int, record: LeaseRecord) -> dict[str, Any]:
    """A member's Lease (new, or `lease` with its resourceVersion) carrying its record and view."""
    body = leader.lease_with(lease, record, name=lease_name(operator, member), namespace=namespace)
    meta = body.setdefault("metadata", {})
    meta.setdefault("labels", {})[OPERATOR_LABEL] = operator
    annotations = meta.setdefault("annotations", {})
    annotations[MEMBER_ANNOTATION] = member
    annotations[OBJECTS_ANNOTATION] = str(objects)
    if view is None:
        annotations.pop(VIEW_ANNOTATION, None)
    else:
        annotations[VIEW_ANNOTATION] = ",".join(sorted(view))
    return body


@dataclass(frozen=True)
class Assignment:
    """What this replica does now: the slices it watches and those it may run."""

    watched: frozenset[int] = frozenset()
    permitted: frozenset[int] = frozenset()


class MemberLeaseApi(Protocol):
    """The Lease calls membership makes; blocking (they run in threads)."""

    def list(self, namespace: str, operator: str) -> list[dict[str, Any]]: ...

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, namespace: str, name: str) -> None: ...


class KubeMemberLeaseApi(leader.KubeLeaseApi):
    """MemberLeaseApi through the kubernetes client: leader election's calls, and listing and
    deleting. A member's Lease deleted under it (404) is a conflict too: read again next round."""

    CONFLICTS = (404, 409)

    def list(self, namespace: str, operator: str) -> list[dict[str, Any]]:
        # No resourceVersion: a quorum read, newer than every write this replica made before it.
        resp = self._api.list_namespaced_lease(namespace, label_selector=f"{OPERATOR_LABEL}={operator}",
                                               _preload_content=False, _request_timeout=self._timeout)
        return list(json.loads(resp.data).get("items") or [])

    def delete(self, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._api.delete_namespaced_lease(name, namespace, _request_timeout=self._timeout)
        except ApiException as err:
            if err.status != 404:
                raise


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


@dataclass
class _Seen:
    version: str
    since: float  # monotonic: when this version was first seen


@dataclass
class ShardMember:
    """This replica's membership. `busy(slices)` says whether a run in those slices is in flight;
    `count()` how many objects the replica holds; `on_change(assignment)` is told each new
    assignment."""

    api: MemberLeaseApi
    operator: str
    member: str
    namespace: str
    busy: Callable[[frozenset[int]], bool]
    count: Callable[[], int] = lambda: 0
    on_change: Callable[[Assignment], None] = lambda assignment: None
    timings: Timings = field(default_factory=Timings)
    record_handover: Callable[[int, int, float], None] | None = None
    """Told (slices gained, slices let go, seconds spent draining) at each published view."""
    wall: Callable[[], datetime] = _utcnow
    mono: Callable[[], float] = time.monotonic
    pause: Callable[[asyncio.Event, float], Awaitable[None]] = _pause
    """Waits between rounds: until the event is set or the seconds have passed."""

    def __post_init__(self) -> None:
        self.assignment = Assignment()
        self.published: frozenset[str] | None = None  # the view our Lease carries
        self.members: frozenset[str] = frozenset({self.member})
        self._lease: dict[str, Any] | None = None
        self._acquired: datetime | None = None
        self._seen: dict[str, _Seen] = {}
        self._last_renewed = self.mono()
        self._draining_since: float | None = None
        self._waiting_for = ""
        # Who holds the Lease: this process, not merely this member name.
        self.identity = f"{self.member}_{uuid.uuid4().hex[:12]}"

    @property
    def lease(self) -> str:
        return lease_name(self.operator, self.member)

    # -- one round

    async def tick(self) -> None:
        """List the Leases, work out the assignment, renew ours (with a new view once the slices
        it takes away are drained)."""
        leases = await asyncio.to_thread(self.api.list, self.namespace, self.operator)
        now, mono = self.wall(), self.mono()
        peers: dict[str, Peer] = {}
        mine: Peer | None = None
        self._lease = None
        for lease in leases:
            peer = peer_of(lease)
            if peer is None:
                continue
            seen = self._seen.get(peer.lease)
            if seen is None or seen.version != peer.version:
                self._seen[peer.lease] = _Seen(peer.version, mono)
            if peer.name == self.member:
                mine, self._lease = peer, lease
            else:
                peers[peer.name] = peer
        for gone in set(self._seen) - {p.lease for p in (*peers.values(), *([mine] if mine else []))}:
            del self._seen[gone]
        if mine is not None and mine.record.holder != self.identity:
            if not self._dead(mine, now, mono):
                # Another process holds this member's Lease: an earlier run of this replica that
                # may still have runs in flight, or a second replica given the same name.
                self._standby(mine.record.holder)
                self._last_renewed = mono
                return
            log.info("sharding: taking Lease %s/%s over from %s, which has expired", self.namespace, self.lease,
                     mine.record.holder)
            mine = replace(mine, view=None)  # what it claimed is not ours to act on
        live = {name: p for name, p in peers.items() if not self._dead(p, now, mono)}
        self.members = frozenset(live) | {self.member}
        # What we may run is judged against the view our Lease held when the list was read.
        claimed = mine.view if mine is not None else None
        permitted = sharding.acting(self.member, claimed, {n: p.view for n, p in live.items()})
        keeping = sharding.owned(self.members, self.member)
        letting_go = sharding.owned(self.published or (), self.member) - keeping
        if self.published != self.members and not (letting_go and self.busy(letting_go)):
            self._publish(self.members, letting_go)
        elif self.published != self.members and self._draining_since is None:
            self._draining_since = mono
            log.info("sharding: letting go of %d slices; waiting for their runs to end", len(letting_go))
        self._set(Assignment(watched=keeping, permitted=permitted & keeping))
        await self._renew(now)

    def _standby(self, holder: str) -> None:
        self._set(Assignment())
        if holder != self._waiting_for:
            self._waiting_for = holder
            log.warning("sharding: Lease %s/%s is held by %s (an earlier process of this member, or another "
                        "replica with the same --sharding-member); waiting for it to expire", self.namespace,
                        self.lease, holder)

    def _publish(self, view: frozenset[str], letting_go: frozenset[int]) -> None:
        mine = sharding.owned(view, self.member)
        gained = mine - sharding.owned(self.published or (), self.member)
        drained = 0.0 if self._draining_since is None else self.mono() - self._draining_since
        self._draining_since = None
        self.published = view
        log.info("sharding: acting as one of %d members (%s): %d of %d slices in %d ranges, %d gained, %d let go",
                 len(view), ",".join(sorted(view)), len(mine), sharding.SLICES, len(sharding.ranges(mine)),
                 len(gained), len(letting_go))
        if self.record_handover is not None:
            self.record_handover(len(gained), len(letting_go), drained)

    def _dead(self, peer: Peer, now: datetime, mono: float) -> bool:
        seen = self._seen.get(peer.lease)
        unchanged = mono - seen.since if seen is not None else 0.0
        return is_expired(peer.record, now) and unchanged >= peer.record.duration_seconds

    def _set(self, assignment: Assignment) -> None:
        if assignment != self.assignment:
            self.assignment = assignment
            self.on_change(assignment)

    async def _renew(self, now: datetime) -> None:
        started = self.mono()
        if self._acquired is None:
            self._acquired = now
        record = LeaseRecord(self.identity, self.timings.lease_seconds, self._acquired, now, 0)
        body = member_lease(self._lease, operator=self.operator, member=self.member, namespace=self.namespace,
                            view=self.published, objects=self.count(), record=record)
        if self._lease is None:
            await asyncio.to_thread(self.api.create, self.namespace, body)
        else:
            await asyncio.to_thread(self.api.replace, self.namespace, self.lease, body)
        self._last_renewed = started

    # -- the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Renew and reassign every retry period until `stop`; raise MembershipLost when the
        Lease could not be renewed within the renew deadline."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(self.tick(), self.timings.renew_deadline)
            except LeaseConflict:
                pass  # someone wrote our Lease between our list and our write: the next round reads it
            except Exception as err:
                log.warning("sharding: could not renew Lease %s/%s: %s", self.namespace, self.lease, err)
            if self.mono() - self._last_renewed >= self.timings.renew_deadline:
                self._set(Assignment())
                raise MembershipLost(f"could not renew Lease {self.namespace}/{self.lease} within "
                                     f"{self.timings.renew_deadline:g}s")
            # Soon again while a new view waits to be published or read back; else a retry period.
            pending = self.published != self.members or self.assignment.permitted != self.assignment.watched
            await self.pause(stop, 0.2 if pending and self._draining_since is None else self.timings.retry_period)

    async def leave(self, drained: Awaitable[bool]) -> None:
        """A graceful stop: run nothing new, wait for the runs in flight (`drained`: whether they
        all ended), then delete the Lease so the others take over now. Runs still going keep the
        Lease: it expires by itself once this process and its runs are gone."""
        self._set(Assignment())
        if not await drained:
            log.warning("sharding: Lease %s/%s left to expire", self.namespace, self.lease)
            return
        try:
            await asyncio.to_thread(self.api.delete, self.namespace, self.lease)
            log.info("sharding: left; deleted Lease %s/%s", self.namespace, self.lease)
        except Exception as err:
            log.warning("sharding: could not delete Lease %s/%s (%s); it expires by itself",
                        self.namespace, self.lease, err)
