"""A run's reads are registered only when it ends: what changed while it ran, or was listed
again, must still reconcile it (runner.dependents: record, listed, missed)."""

from __future__ import annotations

import asyncio
from typing import Any

from runner.dependents import CHANGE_MEMORY, DependentWatches, OwnerKey, ReadInterest, WatchScope

BINDING = OwnerKey("servicebinding.io", "ServiceBinding", "team-a", "db")
SECRETS = WatchScope("v1", "Secret", True)
DEPLOYMENTS = WatchScope("apps/v1", "Deployment", True)
CREDS = ReadInterest("v1", "Secret", True, namespace="team-a", name="creds")
WORKLOADS = ReadInterest("apps/v1", "Deployment", True, namespace="team-a")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def obj(name: str, uid: str, namespace: str = "team-a", **rest: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid, "labels": {}}, **rest}


async def watches_with_clock() -> tuple[DependentWatches, list[OwnerKey], Clock]:
    told: list[OwnerKey] = []
    watches = DependentWatches(asyncio.get_running_loop(), told.append)
    watches._watch = lambda scope: None  # type: ignore[method-assign]
    clock = Clock()
    watches.clock = clock
    watches.listed(SECRETS, [])
    watches.listed(DEPLOYMENTS, [])
    clock.now += 1
    return watches, told, clock


async def test_a_read_object_deleted_while_the_run_ran_reconciles_it_again() -> None:
    watches, told, clock = await watches_with_clock()
    started = clock.now
    clock.now += 1
    watches.record(SECRETS, "DELETED", obj("creds", "s1"))  # no reader known yet: nobody is told
    clock.now += 1
    watches.ensure([CREDS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == [BINDING]


async def test_changes_before_the_run_or_to_other_objects_reconcile_nothing() -> None:
    watches, told, clock = await watches_with_clock()
    watches.record(SECRETS, "DELETED", obj("creds", "s1"))
    clock.now += 1
    started = clock.now
    watches.record(SECRETS, "MODIFIED", obj("other", "s2"))
    watches.record(SECRETS, "MODIFIED", obj("creds", "s3", namespace="team-b"))
    watches.ensure([CREDS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == []


async def test_a_listed_object_counts_on_any_change_its_status_included() -> None:
    watches, told, clock = await watches_with_clock()
    web = obj("web", "d1", spec={"replicas": 1})
    watches.record(DEPLOYMENTS, "ADDED", web)
    clock.now += 1
    started = clock.now
    watches.ensure([WORKLOADS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == []  # nothing changed while it ran
    clock.now += 1
    started = clock.now
    clock.now += 1
    watches.record(DEPLOYMENTS, "MODIFIED", {**web, "status": {"replicas": 1}})
    watches.ensure([WORKLOADS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == [BINDING]


async def test_a_kind_listed_while_the_run_ran_reconciles_it_and_a_list_tells_its_readers() -> None:
    told: list[OwnerKey] = []
    watches = DependentWatches(asyncio.get_running_loop(), told.append)
    watches._watch = lambda scope: None  # type: ignore[method-assign]
    clock = Clock()
    watches.clock = clock
    started = clock.now
    clock.now += 1
    # Another owner's run started the watch; the Secret this run read had gone before the list.
    assert watches.listed(SECRETS, []) == []
    watches.ensure([CREDS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == [BINDING]
    # A later (re)list tells every reader of the kind, whether what it read is there or not.
    assert watches.listed(SECRETS, []) == [BINDING]
    assert watches.listed(DEPLOYMENTS, []) == []


async def test_a_run_older_than_the_changes_kept_is_reconciled_again() -> None:
    watches, told, clock = await watches_with_clock()
    started = clock.now
    clock.now += CHANGE_MEMORY + 1
    watches.ensure([CREDS], owner=BINDING, started=started)
    await asyncio.sleep(0)
    assert told == [BINDING]


async def test_a_relist_tells_owners_what_changed_or_went_while_nothing_watched() -> None:
    watches, _, _ = await watches_with_clock()
    owner = OwnerKey("examples.playbook-operator.io", "Example", "team-a", "ex")
    refs = [{"apiVersion": "examples.playbook-operator.io/v1alpha1", "kind": "Example", "name": "ex", "uid": "9"}]
    a, b = (obj(n, f"u-{n}", spec={"x": 1}) for n in ("a", "b"))
    for made in (a, b):
        made["metadata"]["ownerReferences"] = refs
    assert watches.listed(DEPLOYMENTS, [a, b]) == []  # first sight: the owner's own runs made them
    assert watches.listed(DEPLOYMENTS, [a, {**b, "status": {"ready": 1}}]) == []  # status only
    assert watches.listed(DEPLOYMENTS, [{**a, "spec": {"x": 2}}, b]) == [owner]  # drifted
    assert watches.listed(DEPLOYMENTS, [{**a, "spec": {"x": 2}}]) == [owner]  # b went
    assert watches.listed(DEPLOYMENTS, [{**a, "spec": {"x": 2}}]) == []
