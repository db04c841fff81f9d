"""Leader election: the pure decisions, then the elector against an in-memory Lease API that
enforces resourceVersions as the apiserver does."""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from runner import leader, settings
from runner.leader import (
    LeaderElector,
    LeadershipLost,
    LeaseConflict,
    LeaseRecord,
    Timings,
    acquired_record,
    is_expired,
    may_acquire,
    released_record,
    renew_deadline_passed,
)
from runner.metrics import Metrics

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def held(by: str = "other", *, renewed: datetime = T0, seconds: int = 15, transitions: int = 0) -> LeaseRecord:
    return LeaseRecord(by, seconds, renewed, renewed, transitions)


# --- decisions -----------------------------------------------------------------------------------


def test_controller_runtime_defaults() -> None:
    t = Timings()
    assert (t.lease_duration, t.renew_deadline, t.retry_period) == (15.0, 10.0, 2.0)
    assert t.lease_seconds == 15
    assert Timings(2.5, 1.0, 0.5).lease_seconds == 3  # rounded up, never shortened


@pytest.mark.parametrize(("lease", "renew", "retry"), [(10, 10, 2), (15, 2.4, 2), (15, 10, 0), (-1, 10, 2)])
def test_inconsistent_timings_are_refused(lease: float, renew: float, retry: float) -> None:
    with pytest.raises(ValueError):
        Timings(lease, renew, retry)


def test_expiry_is_renew_time_plus_duration() -> None:
    record = held(renewed=T0, seconds=15)
    assert not is_expired(record, T0)
    assert not is_expired(record, T0 + timedelta(seconds=15))  # not yet: strictly after
    assert is_expired(record, T0 + timedelta(seconds=15, microseconds=1))
    assert is_expired(LeaseRecord(), T0)  # nobody holds it
    assert is_expired(replace_holder(record, ""), T0)  # released
    assert is_expired(LeaseRecord("other", 15), T0)  # never renewed


def replace_holder(record: LeaseRecord, holder: str) -> LeaseRecord:
    return LeaseRecord(holder, record.duration_seconds, record.acquire_time, record.renew_time, record.transitions)


def test_who_may_write_the_lease() -> None:
    later = T0 + timedelta(seconds=20)
    assert may_acquire(None, "me", T0, 0)  # no lease yet: create it
    assert may_acquire(held("me"), "me", T0, 0)  # our own: renew
    assert may_acquire(held(""), "me", T0, 0)  # released: take it at once
    assert not may_acquire(held("other"), "me", T0 + timedelta(seconds=5), 30)  # valid
    # Expired by its renewTime, but seen unchanged for less than a lease duration: wait.
    assert not may_acquire(held("other"), "me", later, 14.9)
    # Seen unchanged for a whole duration, but its renewTime is recent by our clock: wait.
    assert not may_acquire(held("other"), "me", T0 + timedelta(seconds=10), 15)
    assert may_acquire(held("other"), "me", later, 15)


def test_creating_renewing_and_taking_over() -> None:
    t = Timings()
    created = acquired_record(None, "me", t, T0)
    assert created == LeaseRecord("me", 15, T0, T0, 0)

    later = T0 + timedelta(seconds=2)
    renewed = acquired_record(created, "me", t, later)
    assert renewed == LeaseRecord("me", 15, T0, later, 0)  # acquireTime and transitions kept

    much_later = T0 + timedelta(minutes=1)
    taken = acquired_record(held("other", transitions=3), "me", t, much_later)
    assert taken == LeaseRecord("me", 15, much_later, much_later, 4)

    # Taking a released lease is a transition too.
    released = released_record(held("other", transitions=4), much_later)
    assert released == LeaseRecord("", 1, much_later, much_later, 4)
    assert acquired_record(released, "me", t, much_later).transitions == 5


def test_renew_deadline() -> None:
    t = Timings()
    assert not renew_deadline_passed(100.0, 109.9, t)
    assert renew_deadline_passed(100.0, 110.0, t)


def test_micro_times_keep_six_digits() -> None:
    assert leader.format_micro_time(T0) == "2026-01-02T03:04:05.000000Z"
    moment = T0.replace(microsecond=120)
    assert leader.parse_time(leader.format_micro_time(moment)) == moment
    assert leader.parse_time("2026-01-02T03:04:05Z") == T0
    assert leader.parse_time(None) is None
    assert leader.parse_time("yesterday") is None


def test_a_lease_body_keeps_metadata_and_carries_the_record() -> None:
    read = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "x", "namespace": "ns", "resourceVersion": "42", "labels": {"a": "b"}},
            "spec": {"holderIdentity": "old", "leaseDurationSeconds": 15}}
    body = leader.lease_with(read, LeaseRecord("me", 15, T0, T0, 2), name="x", namespace="ns")
    assert body["metadata"] == read["metadata"]  # resourceVersion: optimistic concurrency
    assert body["spec"] == {"holderIdentity": "me", "leaseDurationSeconds": 15, "leaseTransitions": 2,
                            "acquireTime": "2026-01-02T03:04:05.000000Z", "renewTime": "2026-01-02T03:04:05.000000Z"}
    assert read["spec"]["holderIdentity"] == "old"  # not modified in place
    assert leader.record_of(body) == LeaseRecord("me", 15, T0, T0, 2)
    new = leader.lease_with(None, LeaseRecord("me", 15, T0, T0, 0), name="x", namespace="ns")
    assert new["metadata"] == {"name": "x", "namespace": "ns"}


def test_lease_ids() -> None:
    example = ("examples.playbook-operator.io", "v1alpha1", "Example")
    other = ("cache.example.com", "v1", "Memcached")
    default = leader.default_lease_id([example])
    assert default.endswith("-playbook-operator") and len(default) == len("12345678-playbook-operator")
    assert leader.default_lease_id([example, other]) == leader.default_lease_id([other, example])
    assert leader.default_lease_id([example, other]) != default
    assert leader.lease_id(election_id(["--leader-election-id", "mine"], {"OPERATOR_NAME": "legacy"}),
                           [example]) == "mine"
    assert leader.lease_id(election_id([], {"OPERATOR_NAME": "legacy"}), [example]) == "legacy"
    assert leader.lease_id(election_id([], {}), [example]) == default


def election_id(flags: list[str], env: dict[str, str]) -> str:
    """The configured lease name, as the settings read it from the flags and the environment."""
    return settings.parse(flags, env).leader_election.id


def test_identity_is_host_and_uuid() -> None:
    first, second = leader.new_identity(), leader.new_identity()
    assert first != second
    host, _, unique = first.rpartition("_")
    assert host and len(unique) == 36


def test_the_lease_namespace(tmp_path: Path) -> None:
    account = tmp_path / "namespace"
    assert settings.default_lease_namespace({"POD_NAMESPACE": "from-env"}, account) == "from-env"
    assert settings.default_lease_namespace({}, account) is None
    account.write_text("in-cluster\n")
    assert settings.default_lease_namespace({"POD_NAMESPACE": "from-env"}, account) == "in-cluster"


def test_child_pids_from_proc(tmp_path: Path) -> None:
    for pid, stat in {"10": "10 (python) S 1 10", "11": "11 (ansible (x) y) R 10 10", "12": "12 (sh) S 11 10",
                      "13": "13 (ssh) S 10 10"}.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "stat").write_text(stat)
    assert sorted(leader.child_pids(10, tmp_path)) == [11, 13]


# --- the elector -----------------------------------------------------------------------------------


class FakeLeaseApi:
    """Leases in memory; a write must carry the resourceVersion it read, as with the apiserver."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.down = False
        self.writes = 0
        self.conflicts = 0  # the next writes that fail as if someone wrote between read and write

    def _store(self, key: tuple[str, str], body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.leases[key] = stored
        return copy.deepcopy(stored)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.down:
            raise ConnectionError("apiserver unreachable")
        lease = self.leases.get((namespace, name))
        return copy.deepcopy(lease) if lease is not None else None

    def create(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        key = (namespace, body["metadata"]["name"])
        if key in self.leases:
            raise LeaseConflict("already exists")
        return self._store(key, body)

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.conflicts:
            self.conflicts -= 1
            raise LeaseConflict("the object has been modified")
        current = self.leases.get((namespace, name))
        if current is None or current["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise LeaseConflict("the object has been modified")
        return self._store((namespace, name), body)

    def record(self) -> LeaseRecord:
        return leader.record_of(self.leases[("ns", "lease")])


class Clocks:
    def __init__(self) -> None:
        self.wall_now = T0
        self.mono_now = 1000.0

    def wall(self) -> datetime:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += timedelta(seconds=seconds)
        self.mono_now += seconds


def elector(api: FakeLeaseApi, identity: str, clocks: Clocks | None = None, timings: Timings | None = None,
            metrics: Metrics | None = None) -> LeaderElector:
    if clocks is None:
        return LeaderElector(api, name="lease", namespace="ns", identity=identity, timings=timings, metrics=metrics)
    return LeaderElector(api, name="lease", namespace="ns", identity=identity, timings=timings, metrics=metrics,
                         wall=clocks.wall, mono=clocks.mono)


async def test_first_creates_second_waits_for_expiry_then_takes_over() -> None:
    api, clocks = FakeLeaseApi(), Clocks()
    a, b = elector(api, "a", clocks), elector(api, "b", clocks)
    assert await a.try_acquire_or_renew()
    assert api.record() == LeaseRecord("a", 15, T0, T0, 0)

    assert not await b.try_acquire_or_renew()
    clocks.advance(2)
    assert await a.try_acquire_or_renew()  # renewal
    assert api.record().renew_time == T0 + timedelta(seconds=2)
    assert not await b.try_acquire_or_renew()  # b sees the renewal

    # a stops renewing: b waits a whole lease duration from the last change it saw...
    clocks.advance(14)
    assert not await b.try_acquire_or_renew()
    clocks.advance(2)
    assert await b.try_acquire_or_renew()
    record = api.record()
    assert (record.holder, record.transitions, record.acquire_time) == ("b", 1, clocks.wall_now)
    # ...and a, should it come back, finds the lease taken.
    assert not await a.try_acquire_or_renew()


async def test_a_standby_that_just_started_waits_even_for_a_stale_lease() -> None:
    api, clocks = FakeLeaseApi(), Clocks()
    assert await elector(api, "a", clocks).try_acquire_or_renew()
    clocks.advance(3600)  # long expired by its renewTime, but b has only just seen it
    b = elector(api, "b", clocks)
    assert not await b.try_acquire_or_renew()
    clocks.advance(15)
    assert await b.try_acquire_or_renew()


async def test_a_released_lease_is_taken_at_once() -> None:
    api, clocks = FakeLeaseApi(), Clocks()
    metrics = Metrics()
    a, b = elector(api, "a", clocks, metrics=metrics), elector(api, "b", clocks)
    assert await a.acquire()
    assert a.leading and a.ready() == (True, "leading")
    assert metrics.registry.get_sample_value("leader_election_master_status", {"name": "lease"}) == 1.0
    assert not await b.try_acquire_or_renew()
    await a.release()
    assert api.record() == LeaseRecord("", 1, T0, T0, 0)
    assert not a.leading
    assert metrics.registry.get_sample_value("leader_election_master_status", {"name": "lease"}) == 0.0
    assert await b.try_acquire_or_renew()
    assert (api.record().holder, api.record().transitions) == ("b", 1)


async def test_release_leaves_a_lease_that_is_no_longer_ours() -> None:
    api, clocks = FakeLeaseApi(), Clocks()
    a = elector(api, "a", clocks)
    assert await a.acquire()
    api.leases[("ns", "lease")]["spec"]["holderIdentity"] = "intruder"
    await a.release()
    assert api.record().holder == "intruder"


async def test_of_two_writers_of_one_version_only_one_wins() -> None:
    api, clocks = FakeLeaseApi(), Clocks()
    assert await elector(api, "old", clocks).try_acquire_or_renew()
    a, b = elector(api, "a", clocks), elector(api, "b", clocks)
    assert not await a.try_acquire_or_renew() and not await b.try_acquire_or_renew()
    clocks.advance(16)
    # Both read the same expired version; whoever writes second gets a conflict.
    stale = api.get("ns", "lease")
    assert await a.try_acquire_or_renew()
    assert stale is not None
    with pytest.raises(LeaseConflict):
        api.replace("ns", "lease", leader.lease_with(stale, LeaseRecord("b", 15, T0, T0, 1), name="lease",
                                                      namespace="ns"))
    assert not await b.try_acquire_or_renew()
    assert api.record().holder == "a"


FAST = Timings(lease_duration=0.6, renew_deadline=0.4, retry_period=0.1)


async def test_standby_reports_itself_ready_while_the_apiserver_answers() -> None:
    api = FakeLeaseApi()
    a, b = elector(api, "a", timings=FAST), elector(api, "b", timings=FAST)
    assert await a.acquire()
    stop = asyncio.Event()
    waiting = asyncio.create_task(b.acquire(stop))
    await asyncio.sleep(0.05)
    assert b.ready() == (True, "standing by") and b.state == "standby"
    stop.set()
    assert await waiting is False
    assert b.ready()[0] is False


async def test_the_leader_renews_and_the_standby_takes_over_when_it_stops() -> None:
    api = FakeLeaseApi()
    a, b = elector(api, "a", timings=FAST), elector(api, "b", timings=FAST)
    assert await a.acquire()
    holding = asyncio.create_task(a.hold())
    standby = asyncio.create_task(b.acquire())
    await asyncio.sleep(1.0)  # longer than a lease duration: renewals keep b out
    assert not standby.done() and api.record().holder == "a"
    assert api.writes >= 5
    holding.cancel()  # a dies without releasing
    await asyncio.wait_for(standby, 5)
    assert b.leading and api.record().holder == "b" and api.record().transitions == 1


async def test_a_leader_that_cannot_renew_stops_within_the_deadline() -> None:
    api = FakeLeaseApi()
    a = elector(api, "a", timings=FAST)
    assert await a.acquire()
    api.down = True
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(LeadershipLost, match="renew deadline"):
        await asyncio.wait_for(a.hold(), 5)
    # Gone before the lease (0.6s after the last renewal) could expire for anyone else.
    assert loop.time() - started < FAST.lease_duration
    assert a.state == "lost" and a.ready()[0] is False


async def test_a_leader_whose_lease_was_taken_stops_at_the_next_renewal() -> None:
    api = FakeLeaseApi()
    a = elector(api, "a", timings=FAST)
    assert await a.acquire()
    api.leases[("ns", "lease")]["spec"]["holderIdentity"] = "intruder"
    with pytest.raises(LeadershipLost, match="intruder"):
        await asyncio.wait_for(a.hold(), 5)


async def test_a_conflicting_write_does_not_cost_the_leader_its_lease() -> None:
    api = FakeLeaseApi()
    a = elector(api, "a", timings=FAST)
    assert await a.acquire()
    api.conflicts = 2
    holding = asyncio.create_task(a.hold())
    await asyncio.sleep(0.6)
    assert not holding.done() and a.leading
    assert api.conflicts == 0 and api.record().holder == "a"
    holding.cancel()
    await asyncio.gather(holding, return_exceptions=True)
