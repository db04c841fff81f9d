"""Read tracking, the runner's side of ServiceBinding: a role's reads (GET by name, LIST with or
without a label selector, found or not) are reported by the module interpreter's client, come
back as ReadInterests, and a change to a matching object reconciles the owner that read it,
without anything being written onto the object."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runner import ownerrefs
from runner.dependents import (
    DependentKind,
    DependentWatches,
    OwnerKey,
    ReadInterest,
    read_reported,
    readers_of,
    selector_matches,
)

OWNER = {"apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding", "name": "db", "namespace": "team-a",
         "uid": "1234"}
BINDING = OwnerKey("servicebinding.io", "ServiceBinding", "team-a", "db")


def obj(kind: str, name: str, namespace: str = "team-a", labels: dict[str, str] | None = None,
        api_version: str = "v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind,
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}}}


def test_read_entry_for_gets_and_lists() -> None:
    entry = ownerrefs.read_entry("v1", "Secret", True, namespace="team-a", name="creds", label_selector=None,
                                 owner=OWNER)
    assert entry == {"apiVersion": "v1", "kind": "Secret", "namespaced": True,
                     "read": {"namespace": "team-a", "name": "creds", "labelSelector": ""}}
    listing = ownerrefs.read_entry("apps/v1", "Deployment", True, namespace="team-a", name=None,
                                   label_selector="tier=db", owner=OWNER)
    assert listing is not None and listing["read"] == {"namespace": "team-a", "name": "", "labelSelector": "tier=db"}


def test_reads_of_the_owner_itself_lists_and_events_are_not_reported() -> None:
    assert ownerrefs.read_entry("servicebinding.io/v1", "ServiceBinding", True, namespace="team-a", name="db",
                                label_selector=None, owner=OWNER) is None
    assert ownerrefs.read_entry("v1", "Event", True, namespace="team-a", name="x", label_selector=None,
                                owner=OWNER) is None
    assert ownerrefs.read_entry("v1", "List", True, namespace="team-a", name=None, label_selector=None,
                                owner=OWNER) is None
    # Another binding of the same kind is an ordinary read.
    assert ownerrefs.read_entry("servicebinding.io/v1", "ServiceBinding", True, namespace="team-a", name="other",
                                label_selector=None, owner=OWNER) is not None


def test_the_wrapped_client_reports_reads_even_when_nothing_is_found(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    report = tmp_path / "dependents.jsonl"
    monkeypatch.setenv(ownerrefs.OWNER_ENV, json.dumps(OWNER))
    monkeypatch.setenv(ownerrefs.DEPENDENTS_ENV, str(report))

    class NotFound(Exception):
        pass

    class Client:
        def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
            return None

        def get(self, resource: Any, name: Any = None, namespace: Any = None, **params: Any) -> Any:
            raise NotFound(name)

    ownerrefs._wrap(Client)
    secret = SimpleNamespace(group_version="v1", kind="Secret", namespaced=True)
    with pytest.raises(NotFound):
        Client().get(secret, name="later", namespace="team-a")
    workloads = SimpleNamespace(group_version="apps/v1", kind="Deployment", namespaced=True)
    with pytest.raises(NotFound):
        Client().get(workloads, namespace="team-a", label_selector="tier=db")
    reads = read_reported(report)
    assert reads == {
        ReadInterest("v1", "Secret", True, namespace="team-a", name="later"),
        ReadInterest("apps/v1", "Deployment", True, namespace="team-a", label_selector="tier=db"),
    }
    assert not report.exists()


def test_without_an_owner_nothing_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report = tmp_path / "dependents.jsonl"
    monkeypatch.delenv(ownerrefs.OWNER_ENV, raising=False)
    monkeypatch.setenv(ownerrefs.DEPENDENTS_ENV, str(report))

    class Client:
        def request(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
            return None

        def get(self, resource: Any, name: Any = None, namespace: Any = None, **params: Any) -> Any:
            return "ok"

    ownerrefs._wrap(Client)
    assert Client().get(SimpleNamespace(group_version="v1", kind="Secret", namespaced=True), name="x") == "ok"
    assert not report.exists()


def test_created_kinds_and_reads_come_back_side_by_side(tmp_path: Path) -> None:
    report = tmp_path / "dependents.jsonl"
    report.write_text("\n".join([
        json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "namespaced": True}),
        json.dumps({"apiVersion": "v1", "kind": "Secret", "namespaced": True,
                    "read": {"namespace": "team-a", "name": "creds", "labelSelector": ""}}),
        "not json",
        json.dumps({"apiVersion": "v1"}),
    ]))
    assert read_reported(report) == {DependentKind("v1", "ConfigMap", True),
                                     ReadInterest("v1", "Secret", True, namespace="team-a", name="creds")}


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ("tier=db", {"tier": "db"}, True),
    ("tier==db", {"tier": "web"}, False),
    ("tier!=db", {"tier": "web"}, True),
    ("tier!=db", {}, True),
    ("tier in (db, cache),env", {"tier": "cache", "env": "x"}, True),
    ("tier in (db, cache),env", {"tier": "cache"}, False),
    ("tier notin (db)", {"tier": "db"}, False),
    ("!legacy", {"legacy": "1"}, False),
    ("!legacy", {}, True),
    ("", {}, True),
])
def test_selector_strings(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_readers_of_an_object() -> None:
    other = OwnerKey("servicebinding.io", "ServiceBinding", "team-b", "db")
    interests = {
        BINDING: frozenset({ReadInterest("v1", "Secret", True, namespace="team-a", name="creds"),
                            ReadInterest("apps/v1", "Deployment", True, namespace="team-a")}),
        other: frozenset({ReadInterest("apps/v1", "Deployment", True, namespace="team-b", label_selector="tier=db")}),
    }
    assert readers_of(obj("Secret", "creds"), "v1", "Secret", interests) == [BINDING]
    assert readers_of(obj("Secret", "other"), "v1", "Secret", interests) == []
    assert readers_of(obj("Secret", "creds", "team-b"), "v1", "Secret", interests) == []
    # A new workload: the list without a selector sees every one in its namespace.
    new = obj("Deployment", "late", labels={"tier": "db"}, api_version="apps/v1")
    assert readers_of(new, "apps/v1", "Deployment", interests) == [BINDING]
    in_b = obj("Deployment", "late", "team-b", {"tier": "db"}, "apps/v1")
    assert readers_of(in_b, "apps/v1", "Deployment", interests) == [other]
    assert readers_of({**in_b, "metadata": {**in_b["metadata"], "labels": {}}}, "apps/v1", "Deployment",
                      interests) == []
    cluster = ReadInterest("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False,
                           name="runners.example.com")
    mapping = {"metadata": {"name": "runners.example.com"}}
    assert readers_of(mapping, "servicebinding.io/v1", "ClusterWorkloadResourceMapping",
                      {BINDING: frozenset({cluster})}) == [BINDING]


async def test_readers_hear_of_every_change_and_owners_that_only_wrote_of_drift_and_deletion() -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None)
    watches._watch = lambda dep: None  # type: ignore[method-assign]
    read = ReadInterest("apps/v1", "Deployment", True, namespace="team-a")
    watches.ensure([read], owner=BINDING)
    web = {**obj("Deployment", "web", api_version="apps/v1"), "spec": {"replicas": 1}}
    web["metadata"] = {**web["metadata"], "uid": "w1", "resourceVersion": "1", "generation": 1}
    assert watches.interested(web, read, "ADDED") == [BINDING]
    # A reader depends on all it read: a status write reconciles the lister (a PodSet counts its
    # pods' readiness) as it does a reader by name.
    status_only = {**web, "status": {"replicas": 1}, "metadata": {**web["metadata"], "resourceVersion": "2"}}
    assert watches.interested(status_only, read, "MODIFIED") == [BINDING]
    relabelled = {**status_only, "metadata": {**status_only["metadata"], "labels": {"tier": "x"}}}
    assert watches.interested(relabelled, read, "MODIFIED") == [BINDING]
    assert watches.interested(relabelled, read, "DELETED") == [BINDING]
    # An owner that only wrote it: not for its creation nor its status, but for drift and deletion.
    other_ns = ReadInterest("apps/v1", "Deployment", True, namespace="team-b")
    made = {**web, "metadata": {**web["metadata"], "namespace": "team-b", "uid": "w2", "ownerReferences": [
        {"apiVersion": "examples.playbook-operator.io/v1alpha1", "kind": "Example", "name": "ex", "uid": "9"}]}}
    example = OwnerKey("examples.playbook-operator.io", "Example", "team-b", "ex")
    assert watches.interested(made, other_ns, "ADDED") == []
    assert watches.interested({**made, "status": {"replicas": 1}}, other_ns, "MODIFIED") == []
    assert watches.interested({**made, "status": {"replicas": 1}, "spec": {"replicas": 3}}, other_ns,
                              "MODIFIED") == [example]
    assert watches.interested(made, other_ns, "DELETED") == [example]
    # Read by name, an object is depended on whole: a Provisioned Service's Secret is in its status.
    service = ReadInterest("example.com/v1", "Database", True, namespace="team-a", name="pg")
    watches.ensure([service], owner=BINDING)
    db = {**obj("Database", "pg", api_version="example.com/v1"), "status": {"binding": {"name": "s1"}}}
    db["metadata"] = {**db["metadata"], "uid": "d1"}
    assert watches.interested(db, service, "ADDED") == [BINDING]
    rotated = {**db, "status": {"binding": {"name": "s2"}}}
    assert watches.interested(rotated, service, "MODIFIED") == [BINDING]


async def test_an_owner_that_also_reads_hears_of_every_change() -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None)
    watches._watch = lambda dep: None  # type: ignore[method-assign]
    podset = OwnerKey("workloads.playbook-operator.io", "PodSet", "team-a", "web")
    pods = ReadInterest("v1", "Pod", True, namespace="team-a", label_selector="app=web")
    watches.ensure([pods], owner=podset)
    pod = obj("Pod", "web-1", labels={"app": "web"})
    pod["metadata"] = {**pod["metadata"], "uid": "p1", "ownerReferences": [
        {"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet", "name": "web", "uid": "9"}]}
    assert watches.interested(pod, pods, "ADDED") == [podset]
    ready = {**pod, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    assert watches.interested(ready, pods, "MODIFIED") == [podset]


async def test_watches_route_a_change_to_owners_and_readers_and_a_new_run_replaces_reads() -> None:
    seen: list[OwnerKey] = []
    watches = DependentWatches(asyncio.get_running_loop(), seen.append)
    started: list[Any] = []
    watches._watch = started.append  # type: ignore[method-assign]
    secret_read = ReadInterest("v1", "Secret", True, namespace="team-a", name="creds")
    watches.ensure([secret_read], owner=BINDING)
    await asyncio.sleep(0.05)
    assert watches.watching() == {("v1", "Secret")}
    owned = {**obj("Secret", "creds"), "metadata": {**obj("Secret", "creds")["metadata"], "ownerReferences": [
        {"apiVersion": "examples.playbook-operator.io/v1alpha1", "kind": "Example", "name": "ex", "uid": "9"}]}}
    assert watches.interested(owned, secret_read, "MODIFIED") == [
        BINDING, OwnerKey("examples.playbook-operator.io", "Example", "team-a", "ex")]
    # The binding's next run read another Secret: the first one no longer concerns it.
    watches.ensure([ReadInterest("v1", "Secret", True, namespace="team-a", name="rotated")], owner=BINDING)
    assert watches.interested(obj("Secret", "creds"), secret_read) == []
    assert watches.interested(obj("Secret", "rotated"), secret_read) == [BINDING]
    watches.forget(BINDING)
    assert watches.interested(obj("Secret", "rotated"), secret_read) == []
