"""The watch cache answers only what it can answer correctly: the reads it understands, from
stores fresh enough for the run's trigger and the owner's own writes."""

from __future__ import annotations

from typing import Any

import pytest

from runner.apicache import Cache, KindKey, ReadRequest, ResourcePath, parse_read, resource_path

PODS = KindKey("", "v1", "pods")
PODSETS = KindKey("workloads.playbook-operator.io", "v1alpha1", "podsets")
OWNER = "workloads.playbook-operator.io/PodSet/ns/web"


def pod(name: str, rv: int, namespace: str = "ns", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv), "labels": labels}}


def get(name: str, namespace: str = "ns", kind: KindKey = PODS) -> ReadRequest:
    return ReadRequest(kind, namespace, name)


def listing(namespace: str = "ns", labels: str = "", fields: str = "") -> ReadRequest:
    return ReadRequest(PODS, namespace, "", labels, fields)


@pytest.fixture
def cache() -> Cache:
    c = Cache()
    c.listed(PODS, "ns", [pod("a", 10, app="web"), pod("b", 11, app="db")], 12)
    return c


# -- which requests are reads the cache may answer


@pytest.mark.parametrize(("path", "expected"), [
    ("/api/v1/namespaces/ns/pods/a", ResourcePath(PODS, "ns", "a")),
    ("/api/v1/namespaces/ns/pods", ResourcePath(PODS, "ns", "")),
    ("/api/v1/pods", ResourcePath(PODS, "", "")),
    ("/api/v1/namespaces/ns", ResourcePath(KindKey("", "v1", "namespaces"), "", "ns")),
    ("/api/v1/namespaces", ResourcePath(KindKey("", "v1", "namespaces"), "", "")),
    ("/api/v1/namespaces/ns/pods/a/log", ResourcePath(PODS, "ns", "a", "log")),
    ("/apis/workloads.playbook-operator.io/v1alpha1/namespaces/ns/podsets/web/status",
     ResourcePath(PODSETS, "ns", "web", "status")),
    ("/apis/rbac.authorization.k8s.io/v1/clusterroles/admin",
     ResourcePath(KindKey("rbac.authorization.k8s.io", "v1", "clusterroles"), "", "admin")),
    ("/api", None), ("/apis", None), ("/apis/apps/v1", None), ("/version", None), ("/openapi/v2", None),
])
def test_request_paths_are_read_as_the_apiserver_reads_them(path: str, expected: ResourcePath | None) -> None:
    assert resource_path(path) == expected


@pytest.mark.parametrize(("method", "path", "query", "accept"), [
    ("POST", "/api/v1/namespaces/ns/pods", "", ""),
    ("GET", "/api/v1/namespaces/ns/pods", "watch=true", ""),
    ("GET", "/api/v1/namespaces/ns/pods", "limit=500", ""),
    ("GET", "/api/v1/namespaces/ns/pods", "resourceVersion=12&resourceVersionMatch=Exact", ""),
    ("GET", "/api/v1/namespaces/ns/pods", "fieldSelector=status.phase%3DRunning", ""),
    ("GET", "/api/v1/namespaces/ns/pods/a/log", "", ""),
    ("GET", "/api/v1/namespaces/ns/pods", "", "application/json;as=Table;v=v1;g=meta.k8s.io"),
    ("GET", "/api/v1/namespaces/ns/pods", "", "application/vnd.kubernetes.protobuf"),
    ("GET", "/apis/apps/v1", "", "application/json"),
])
def test_what_only_the_apiserver_can_answer_is_not_a_cached_read(method: str, path: str, query: str,
                                                                  accept: str) -> None:
    assert parse_read(method, path, query, accept) is None


def test_reads_with_selectors_are_cached_reads() -> None:
    read = parse_read("GET", "/api/v1/namespaces/ns/pods",
                      "labelSelector=app%3Dweb&fieldSelector=metadata.name%3Da&resourceVersion=0", "application/json")
    assert read == ReadRequest(PODS, "ns", "", "app=web", "metadata.name=a")


# -- answers


def test_a_get_is_answered_from_the_store(cache: Cache) -> None:
    answer = cache.read(OWNER, get("a"))
    assert answer is not None and answer.status == 200 and answer.body["metadata"]["name"] == "a"


def test_a_kind_the_owners_watch_blacklists_is_read_from_the_apiserver(cache: Cache) -> None:
    # Another watch has pods watched; this owner's blacklist sends its reads of them past the cache.
    blacklisted = frozenset({("", "v1", "Pod")})
    assert cache.read(OWNER, get("a"), uncached=blacklisted) is None
    assert cache.read(OWNER, listing(), uncached=blacklisted) is None
    assert cache.read(OWNER, get("a"), uncached=frozenset({("", "v1", "ConfigMap")})) is not None


def test_a_missing_object_is_a_404_only_where_the_store_listed_everything(cache: Cache) -> None:
    answer = cache.read(OWNER, get("zzz"))
    assert answer is not None and answer.status == 404 and answer.body["reason"] == "NotFound"
    assert cache.read(OWNER, get("zzz", namespace="other")) is None  # never listed there: ask the apiserver


def test_a_list_honours_label_and_field_selectors(cache: Cache) -> None:
    def names(request: ReadRequest) -> list[str]:
        answer = cache.read(OWNER, request)
        assert answer is not None and answer.status == 200
        return [o["metadata"]["name"] for o in answer.body["items"]]

    assert names(listing()) == ["a", "b"]
    assert names(listing(labels="app=web")) == ["a"]
    assert names(listing(labels="app in (web,db),app!=db")) == ["a"]
    assert names(listing(fields="metadata.name=b")) == ["b"]
    assert cache.read(OWNER, listing(labels="app in (")) is None  # the apiserver explains the mistake


def test_a_list_of_all_namespaces_needs_a_store_of_all_namespaces(cache: Cache) -> None:
    assert cache.read(OWNER, listing(namespace="")) is None
    cache.listed(PODS, "", [pod("a", 10), pod("c", 13, namespace="other")], 13)
    answer = cache.read(OWNER, listing(namespace=""))
    assert answer is not None and [o["metadata"]["name"] for o in answer.body["items"]] == ["a", "c"]


def test_watch_events_keep_the_store_current(cache: Cache) -> None:
    cache.event(PODS, "ADDED", pod("c", 20))
    cache.event(PODS, "DELETED", pod("a", 21))
    cache.event(PODS, "MODIFIED", pod("b", 22, app="changed"))
    answer = cache.read(OWNER, listing())
    assert answer is not None
    assert [(o["metadata"]["name"], o["metadata"]["labels"]) for o in answer.body["items"]] == \
        [("b", {"app": "changed"}), ("c", {})]
    assert answer.body["metadata"]["resourceVersion"] == "22"


def test_a_relist_replaces_what_was_held_in_that_namespace_only(cache: Cache) -> None:
    cache.listed(PODS, "other", [pod("x", 30, namespace="other")], 30)
    cache.listed(PODS, "ns", [pod("b", 31)], 31)
    gone, kept = cache.read(OWNER, get("a")), cache.read(OWNER, get("x", namespace="other"))
    assert gone is not None and gone.status == 404
    assert kept is not None and kept.status == 200


def test_a_broken_watch_leaves_no_404s_and_no_lists_until_it_lists_again(cache: Cache) -> None:
    cache.lost(PODS, "ns")
    assert cache.read(OWNER, get("zzz")) is None
    assert cache.read(OWNER, listing()) is None
    assert cache.read(OWNER, get("a")) is not None  # what it holds is still the newest it saw


def test_primary_kinds_from_kopf_answer_gets_but_never_lists() -> None:
    c = Cache()
    c.event(PODSETS, None, {"metadata": {"name": "web", "namespace": "ns", "resourceVersion": "5"}})
    assert c.read(OWNER, get("web", kind=PODSETS)) is not None
    assert c.read(OWNER, get("other", kind=PODSETS)) is None
    assert c.read(OWNER, ReadRequest(PODSETS, "ns", "")) is None


def test_a_kind_nobody_watches_goes_to_the_apiserver(cache: Cache) -> None:
    assert cache.read(OWNER, get("cm", kind=KindKey("", "v1", "configmaps"))) is None


# -- freshness: the trigger, and the owner's own writes


def test_a_run_never_reads_older_than_what_triggered_it(cache: Cache) -> None:
    assert cache.read(OWNER, get("a"), at_least=12) is not None
    assert cache.read(OWNER, get("a"), at_least=13) is None  # the store has not seen version 13 yet
    cache.event(PODS, "BOOKMARK", {"metadata": {"resourceVersion": "13"}})
    assert cache.read(OWNER, get("a"), at_least=13) is not None


def test_an_owner_reads_its_own_writes_in_this_run_and_the_next(cache: Cache) -> None:
    cache.wrote(OWNER, PODS, "POST", "ns", "", pod("c", 40))
    assert cache.read(OWNER, listing()) is None  # the watch has not brought pod c yet
    assert cache.read("someone/else", listing()) is not None  # other owners are not held back
    cache.event(PODS, "ADDED", pod("c", 40))
    answer = cache.read(OWNER, listing())
    assert answer is not None and [o["metadata"]["name"] for o in answer.body["items"]] == ["a", "b", "c"]


def test_an_owner_does_not_see_what_it_deleted_until_the_store_has_dropped_it(cache: Cache) -> None:
    # An immediate deletion answers with a Status: there is no version to wait for.
    cache.wrote(OWNER, PODS, "DELETE", "ns", "a", {"kind": "Status", "status": "Success"})
    assert cache.read(OWNER, listing()) is None
    cache.event(PODS, "DELETED", pod("a", 41))
    answer = cache.read(OWNER, listing())
    assert answer is not None and [o["metadata"]["name"] for o in answer.body["items"]] == ["b"]


def test_a_collection_deleted_sends_that_owners_reads_of_the_kind_to_the_apiserver(cache: Cache) -> None:
    cache.wrote(OWNER, PODS, "DELETE", "ns", "", {"kind": "Status", "status": "Success"})
    cache.event(PODS, "DELETED", pod("a", 50))
    assert cache.read(OWNER, listing()) is None
    cache.forget(OWNER)  # the owner is gone: nothing is kept for it
    assert cache.read(OWNER, listing()) is not None


def test_a_deletion_of_one_kind_is_still_awaited_after_a_read_of_another(cache: Cache) -> None:
    configmaps = KindKey("", "v1", "configmaps")
    cache.listed(configmaps, "ns", [{"metadata": {"name": "cm", "namespace": "ns", "resourceVersion": "12"}}], 12)
    cache.wrote(OWNER, configmaps, "DELETE", "ns", "cm", {"kind": "Status", "status": "Success"})
    # The pod store holds no object named ns/cm: that says nothing of the config map.
    assert cache.read(OWNER, listing()) is not None
    assert cache.read(OWNER, get("cm", kind=configmaps)) is None
