"""Sharding's membership against an in-memory Lease API that enforces resourceVersions as the
apiserver does, with clocks the tests move: who acts on what as replicas join, drain, die and
leave."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from runner import sharding
from runner.leader import LeaseConflict
from runner.settings import Timings
from runner.shards import (
    OPERATOR_LABEL,
    Assignment,
    MembershipLost,
    ShardMember,
    member_lease,
    peer_of,
)

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
NAMESPACE = "operators"
OPERATOR = "9f6b61ae-playbook-operator"


class Leases:
    """Leases in memory, one namespace; writes need the resourceVersion last read."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("apiserver unreachable")

    def _stored(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        body = copy.deepcopy(body)
        body["metadata"]["resourceVersion"] = str(self.version)
        self.items[body["metadata"]["name"]] = body
        return copy.deepcopy(body)

    def list(self, namespace: str, operator: str) -> list[dict[str, Any]]:
        self._check()
        return [copy.deepcopy(b) for b in self.items.values()
                if b["metadata"].get("labels", {}).get(OPERATOR_LABEL) == operator]

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        if body["metadata"]["name"] in self.items:
            raise LeaseConflict("exists")
        return self._stored(body)

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        current = self.items.get(name)
        if current is None or current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise LeaseConflict("changed")
        return self._stored(body)

    def delete(self, namespace: str, name: str) -> None:
        self._check()
        self.items.pop(name, None)


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def wall(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds)

    def mono(self) -> float:
        return self.seconds


class Replica:
    """A member and the runs it has in flight, by slice."""

    def __init__(self, name: str, leases: Leases, clock: Clock) -> None:
        self.running: set[int] = set()
        self.changes: list[Assignment] = []
        self.member = ShardMember(leases, operator=OPERATOR, member=name, namespace=NAMESPACE,
                                  busy=lambda slices: bool(self.running & slices), count=lambda: 7,
                                  on_change=self.changes.append, timings=Timings(), wall=clock.wall, mono=clock.mono)

    @property
    def permitted(self) -> frozenset[int]:
        return self.member.assignment.permitted


def tick(*replicas: Replica, rounds: int = 1) -> None:
    for _ in range(rounds):
        for r in replicas:
            asyncio.run(r.member.tick())


def assert_exclusive(*replicas: Replica) -> None:
    for i, a in enumerate(replicas):
        for b in replicas[i + 1:]:
            assert not a.permitted & b.permitted


@pytest.fixture
def world() -> tuple[Leases, Clock]:
    return Leases(), Clock()


def test_the_lease_names_its_member_and_view() -> None:
    from runner.leader import LeaseRecord

    body = member_lease(None, operator=OPERATOR, member="r1", namespace=NAMESPACE, view=frozenset({"r2", "r1"}),
                        objects=12, record=LeaseRecord("r1", 15, T0, T0, 0))
    assert body["metadata"]["name"] == f"{OPERATOR}-r1"
    assert body["metadata"]["labels"] == {OPERATOR_LABEL: OPERATOR}
    assert body["spec"]["holderIdentity"] == "r1"
    peer = peer_of(body)
    assert peer is not None
    assert (peer.name, peer.view, peer.objects) == ("r1", frozenset({"r1", "r2"}), 12)
    unpublished = member_lease(body, operator=OPERATOR, member="r1", namespace=NAMESPACE, view=None, objects=0,
                               record=LeaseRecord("r1", 15, T0, T0, 0))
    assert peer_of(unpublished).view is None  # type: ignore[union-attr]


def test_a_lone_replica_acts_on_everything_after_reading_its_own_view_back(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a = Replica("a", leases, clock)
    tick(a)
    assert a.member.assignment.watched == sharding.ALL_SLICES
    assert a.permitted == frozenset(), "not before its published view has been read back"
    tick(a)
    assert a.permitted == sharding.ALL_SLICES


def test_two_replicas_split_the_slices_and_never_overlap(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a, b = Replica("a", leases, clock), Replica("b", leases, clock)
    tick(a, rounds=2)
    for _ in range(4):
        tick(a, b)
        assert_exclusive(a, b)
    assert a.permitted == sharding.owned({"a", "b"}, "a")
    assert b.permitted == sharding.owned({"a", "b"}, "b")
    assert a.permitted | b.permitted == sharding.ALL_SLICES


def test_a_slice_moves_only_once_its_runs_have_ended(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a = Replica("a", leases, clock)
    tick(a, rounds=2)
    moving = sharding.owned({"a", "b"}, "b")
    a.running = {min(moving)}  # a run in a slice that b will own
    b = Replica("b", leases, clock)
    for _ in range(3):
        tick(b, a)
        assert_exclusive(a, b)
    assert not a.permitted & moving, "a starts nothing new in what it is letting go"
    assert min(moving) not in b.permitted, "b waits for a's run"
    assert a.member.published == frozenset({"a"})
    a.running = set()
    tick(a, b, rounds=2)
    assert_exclusive(a, b)
    assert b.permitted == moving
    assert a.member.published == frozenset({"a", "b"})


def test_a_dead_replicas_slices_are_taken_once_its_lease_has_expired(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a, b = Replica("a", leases, clock), Replica("b", leases, clock)
    tick(a, b, rounds=3)
    bs = b.permitted
    assert bs
    # b is SIGKILLed: its Lease stays, unrenewed.
    clock.seconds += 10
    tick(a)
    assert not a.permitted & bs, "not while b's Lease may still be renewed"
    clock.seconds += 6  # past renewTime + 15s, but a has seen it unchanged only since its last read
    tick(a)
    assert not a.permitted & bs
    clock.seconds += 15
    tick(a, rounds=2)
    assert a.permitted == sharding.ALL_SLICES


def test_a_replica_that_leaves_hands_over_at_once(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a, b = Replica("a", leases, clock), Replica("b", leases, clock)
    tick(a, b, rounds=3)

    async def leave_when_drained() -> None:
        ended = asyncio.Event()

        async def runs_end() -> bool:
            await ended.wait()
            return True

        leaving = asyncio.create_task(b.member.leave(runs_end()))
        await asyncio.sleep(0)  # leave() runs up to its wait for the runs
        assert b.member.assignment == Assignment(), "nothing new starts"
        assert f"{OPERATOR}-b" in leases.items, "the Lease stays while a run is in flight"
        ended.set()
        await leaving

    asyncio.run(leave_when_drained())
    assert f"{OPERATOR}-b" not in leases.items
    tick(a, rounds=2)
    assert a.permitted == sharding.ALL_SLICES


def test_a_replica_whose_runs_outlast_the_grace_leaves_its_lease_to_expire(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    b = Replica("b", leases, clock)
    tick(b, rounds=2)

    async def runs_still_going() -> bool:
        return False

    asyncio.run(b.member.leave(runs_still_going()))
    assert b.member.assignment == Assignment()
    assert f"{OPERATOR}-b" in leases.items


def test_a_replica_that_cannot_renew_stops_before_its_lease_expires(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a = Replica("a", leases, clock)
    tick(a, rounds=2)
    renewed = clock.seconds
    leases.failing = True
    timings = Timings()

    async def pause(stop: asyncio.Event, seconds: float) -> None:
        clock.seconds += seconds

    a.member.pause = pause
    with pytest.raises(MembershipLost):
        asyncio.run(a.member.run(asyncio.Event()))
    assert timings.renew_deadline <= clock.seconds - renewed < timings.lease_duration
    assert a.member.assignment == Assignment()


def test_a_restarted_member_waits_until_its_old_process_lease_has_expired(world: tuple[Leases, Clock]) -> None:
    leases, clock = world
    a, b = Replica("a", leases, clock), Replica("b", leases, clock)
    tick(a, b, rounds=3)
    before = b.permitted
    # b's process is killed and a new one starts under the same name: its runs may still be going.
    b2 = Replica("b", leases, clock)
    tick(b2, a)
    assert b2.member.assignment == Assignment()
    clock.seconds += 10
    tick(b2)
    assert b2.member.assignment == Assignment(), "not while the old process may still renew"
    clock.seconds += 6
    tick(b2, a, rounds=3)
    assert_exclusive(a, b2)
    assert b2.permitted == before
    lease = leases.items[f"{OPERATOR}-b"]
    assert lease["spec"]["holderIdentity"] == b2.member.identity
