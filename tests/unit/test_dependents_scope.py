"""Where dependent watches look: an operator given namespaces (WATCH_NAMESPACE) lists and
watches namespaced kinds only there, and a kind its account may not list and watch is reported
once and never requested; kopf is kept from cluster-wide observation it may not make."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import kopf
import kubernetes.dynamic
import pytest

from runner import kube, operator
from runner.apicache import Cache, KindKey, ReadRequest
from runner.dependents import DependentKind, DependentWatches, OwnerKey, ReadInterest, WatchScope, watch_scopes

POD = DependentKind("v1", "Pod", True)
MAPPING = DependentKind("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False)
OWNER = OwnerKey("workloads.playbook-operator.io", "PodSet", "team-a", "web")


def test_a_namespaced_kind_is_watched_in_each_watched_namespace_only() -> None:
    assert watch_scopes(POD, ["team-a", "team-b", "team-a"]) == [
        WatchScope("v1", "Pod", True, "team-a"), WatchScope("v1", "Pod", True, "team-b")]
    # A read names its own namespace, but the watch is the operator's: the same scopes.
    read = ReadInterest("v1", "Secret", True, namespace="team-a", name="creds")
    assert watch_scopes(read, ["team-b"]) == [WatchScope("v1", "Secret", True, "team-b")]


def test_without_namespaces_and_for_cluster_scoped_kinds_the_watch_is_cluster_wide() -> None:
    assert watch_scopes(POD, []) == [WatchScope("v1", "Pod", True, "")]
    assert watch_scopes(MAPPING, ["team-a", "team-b"]) == [
        WatchScope("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False, "")]
    assert WatchScope("v1", "Pod", True, "team-a").where == "in namespace team-a"
    assert WatchScope("v1", "Pod", True).where == "cluster-wide"


async def test_ensure_starts_one_watch_per_scope_and_each_once() -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None, namespaces=["team-a", "team-b"])
    started: list[WatchScope] = []
    watches._watch = started.append  # type: ignore[method-assign]
    watches.ensure([POD, MAPPING], owner=OWNER)
    watches.ensure([POD, ReadInterest("v1", "Pod", True, namespace="team-a", name="x")], owner=OWNER)
    assert watches.scopes() == {WatchScope("v1", "Pod", True, "team-a"), WatchScope("v1", "Pod", True, "team-b"),
                                WatchScope("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False, "")}
    await asyncio.sleep(0)  # the threads have run (each only records its scope)
    assert sorted(started, key=repr) == sorted(watches.scopes(), key=repr)
    assert watches.watching() == {("v1", "Pod"), ("servicebinding.io/v1", "ClusterWorkloadResourceMapping")}


async def test_events_a_role_posts_are_not_watched() -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None, namespaces=["team-a"])
    watches._watch = lambda scope: None  # type: ignore[method-assign]
    watches.ensure([DependentKind("v1", "Event", True), DependentKind("events.k8s.io/v1", "Event", True)],
                   owner=OWNER)
    assert watches.scopes() == set()


class FakeApi:
    """The dynamic client as `_watch` uses it: a resource that lists one owned pod, and a watch
    that stops the watches, each call recorded with the namespace it was made in."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.watches: DependentWatches | None = None
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {
            "name": "p", "namespace": "team-a", "uid": "u",
            "ownerReferences": [{"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                                 "name": "web", "uid": "1"}]}}

        def get(namespace: str | None = None) -> Any:
            self.calls.append(("list", namespace))
            return SimpleNamespace(metadata=SimpleNamespace(resourceVersion="1"), to_dict=lambda: {"items": [pod]})

        self.resource = SimpleNamespace(group="", api_version="v1", name="pods", get=get)
        self.resources = SimpleNamespace(get=lambda api_version, kind: self.resource)

    def watch(self, resource: Any, namespace: str | None = None, **_: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch", namespace))
        assert self.watches is not None
        self.watches.stop()
        return iter([])

    def run(self, watches: DependentWatches, scope: WatchScope) -> None:
        """The watch thread's body, run here until it stops."""
        self.watches = watches
        DependentWatches._watch(watches, scope)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi()
    monkeypatch.setattr(kubernetes.dynamic, "DynamicClient", lambda _client: fake)
    return fake


async def test_a_watch_lists_and_watches_in_its_namespace(api: FakeApi) -> None:
    notified: list[OwnerKey] = []
    watches = DependentWatches(asyncio.get_running_loop(), notified.append, api_client=object(),
                               namespaces=["team-a"])
    watches._permitted = lambda resource, scope: True  # type: ignore[method-assign]
    watches._watch = lambda scope: None  # type: ignore[method-assign]
    watches.ensure([ReadInterest("v1", "Pod", True, namespace="team-a")], owner=OWNER)  # it lists its pods
    api.run(watches, WatchScope("v1", "Pod", True, "team-a"))
    assert api.calls == [("list", "team-a"), ("watch", "team-a")]
    await asyncio.sleep(0)
    assert notified == [OWNER]  # a list tells those that read the kind there
    # Without namespaces, the same kind is listed and watched across the cluster.
    api.calls.clear()
    everywhere = DependentWatches(asyncio.get_running_loop(), notified.append, api_client=object())
    everywhere._permitted = lambda resource, scope: True  # type: ignore[method-assign]
    api.run(everywhere, WatchScope("v1", "Pod", True))
    assert api.calls == [("list", None), ("watch", None)]


async def test_a_watch_keeps_what_it_lists_for_the_roles_reads(api: FakeApi) -> None:
    cache = Cache()
    watches = DependentWatches(asyncio.get_running_loop(), lambda owner: None, api_client=object(),
                               namespaces=["team-a"], cache=cache)
    watches._permitted = lambda resource, scope: True  # type: ignore[method-assign]
    api.run(watches, WatchScope("v1", "Pod", True, "team-a"))
    answer = cache.read("owner", ReadRequest(KindKey("", "v1", "pods"), "team-a", ""))
    assert answer is not None
    assert [(o["kind"], o["metadata"]["name"]) for o in answer.body["items"]] == [("Pod", "p")]


async def test_a_watch_not_permitted_is_reported_once_and_requested_only_once_permitted(
        api: FakeApi, caplog: pytest.LogCaptureFixture) -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None, api_client=object(),
                               namespaces=["team-a"])
    watches.review_period = 0
    answers = iter([False, False, False, True])
    watches._permitted = lambda resource, scope: next(answers)  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="playbook_operator.dependents"):
        api.run(watches, WatchScope("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["not watching servicebinding.io/v1 ClusterWorkloadResourceMapping cluster-wide: this "
                        "operator's account may not list and watch it there, so its changes reconcile nothing "
                        "(checked again every 0s)"]
    assert caplog.records[-1].getMessage() == ("watching dependent kind servicebinding.io/v1 "
                                               "ClusterWorkloadResourceMapping cluster-wide")
    assert api.calls == [("list", None), ("watch", None)]


async def test_a_refused_watch_makes_no_request_and_is_not_counted_as_watching(api: FakeApi) -> None:
    watches = DependentWatches(asyncio.get_running_loop(), lambda _: None, api_client=object(),
                               namespaces=["team-a"])
    watches._watch = lambda scope: None  # type: ignore[method-assign]
    watches.ensure([MAPPING, POD])

    def refused(resource: Any, scope: WatchScope) -> bool:
        watches.stop()  # the wait for the next review then ends the watch at once
        return False

    watches._permitted = refused  # type: ignore[method-assign]
    api.run(watches, WatchScope("servicebinding.io/v1", "ClusterWorkloadResourceMapping", False))
    assert api.calls == []
    assert watches.watching() == {("v1", "Pod")}
    assert len(watches.scopes()) == 2


def test_the_access_review_asks_each_verb_in_the_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Any] = []

    class Auth:
        def __init__(self, _client: Any) -> None:
            pass

        def create_self_subject_access_review(self, review: Any) -> Any:
            attrs = review.spec.resource_attributes
            asked.append((attrs.verb, attrs.group, attrs.resource, attrs.namespace))
            return SimpleNamespace(status=SimpleNamespace(allowed=attrs.verb == "list"))

    monkeypatch.setattr(kube.client, "AuthorizationV1Api", Auth)
    assert kube.may(("list",), "", "pods", "team-a", api_client=object()) is True  # type: ignore[arg-type]
    assert kube.may(("list", "watch", "get"), "servicebinding.io", "clusterworkloadresourcemappings",
                    api_client=object()) is False  # type: ignore[arg-type]
    assert asked == [("list", "", "pods", "team-a"),
                     ("list", "servicebinding.io", "clusterworkloadresourcemappings", None),
                     ("watch", "servicebinding.io", "clusterworkloadresourcemappings", None)]


async def test_kopf_observes_the_cluster_only_when_watching_it_or_permitted(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str]] = []

    def may(verbs: tuple[str, ...], group: str, resource: str) -> bool:
        asked.append((group, resource))
        return resource == "namespaces"

    monkeypatch.setattr(kube, "may", may)
    assert await operator.may_observe_cluster([]) is True
    assert asked == []  # a cluster-wide operator needs those rights anyway
    assert await operator.may_observe_cluster(["team-a"]) is False
    assert asked == [("", "namespaces"), ("apiextensions.k8s.io", "customresourcedefinitions")]
    settings = kopf.OperatorSettings()
    operator.configure(settings, observe_cluster=False)
    assert settings.scanning.disabled is True
    operator.configure(settings)
    assert settings.scanning.disabled is False


async def test_a_namespaced_operator_leaves_out_cluster_scoped_kinds_it_may_not_watch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Discovery:
        def plural_for(self, group: str, version: str, kind: str) -> kube.ResourceRef:
            if kind == "Missing":
                raise LookupError("no such kind")
            return kube.ResourceRef(group, version, kind, kind.lower() + "s", namespaced=kind.startswith("Ns"))

    reviewed: list[str] = []

    def may(verbs: tuple[str, ...], group: str, resource: str) -> bool:
        reviewed.append(resource)
        return resource == "clusterallowedas"

    monkeypatch.setattr(kube, "may", may)
    watches = [SimpleNamespace(group="g.io", version="v1", kind=kind)
               for kind in ("NsThing", "ClusterAllowedA", "ClusterDenied", "Missing")]
    kept = await operator.servable(watches, ["team-a"], Discovery())  # type: ignore[arg-type]
    assert [w.kind for w in kept] == ["NsThing", "ClusterAllowedA", "Missing"]
    assert reviewed == ["clusterallowedas", "clusterdenieds"]
    # A cluster-wide operator needs every kind anyway: nothing is asked.
    reviewed.clear()
    assert await operator.servable(watches, [], Discovery()) == watches  # type: ignore[arg-type]
    assert reviewed == []
