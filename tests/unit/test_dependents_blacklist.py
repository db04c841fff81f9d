"""A watch's blacklist and watchDependentResources hold per owner: a kind one watch blacklists
reconciles none of its owners, even while another watch has that kind watched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runner.dependents import DependentKind, DependentWatches, OwnerKey, WatchScope
from runner.operator import WatchController, _dependents_accepted
from runner.watches import GroupVersionKind, Watch

GROUP = "cache.example.com"
CONFIGMAP = DependentKind("v1", "ConfigMap", True)
DEPLOYMENT = DependentKind("apps/v1", "Deployment", True)


def controller(kind: str, **fields: Any) -> WatchController:
    watch = Watch(GROUP, "v1alpha1", kind, role=Path("/roles/x"), **fields)
    return WatchController(watch, SimpleNamespace())  # type: ignore[arg-type]


def owned_by(*kinds: str, kind: str = "ConfigMap", api_version: str = "v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "metadata": {
        "namespace": "ns", "name": "shared", "uid": "u1",
        "ownerReferences": [{"apiVersion": f"{GROUP}/v1alpha1", "kind": k, "name": "one", "uid": f"o-{k}"}
                            for k in kinds]}}


def test_a_blacklisted_kind_reconciles_none_of_the_owners_of_the_watch_that_lists_it() -> None:
    memcached = controller("Memcached", blacklist=(GroupVersionKind("", "v1", "ConfigMap"),))
    memfin = controller("Memfin")
    quiet = controller("Quiet", watch_dependent_resources=False)
    accepts = _dependents_accepted([memcached, memfin, quiet])
    deps = DependentWatches(asyncio.new_event_loop(), lambda owner: None, accepts=accepts)

    # Memfin has ConfigMaps watched; a ConfigMap owned by both, deleted, reaches Memfin alone.
    owners = deps.interested(owned_by("Memcached", "Memfin", "Quiet"), CONFIGMAP, "DELETED")
    assert owners == [OwnerKey(GROUP, "Memfin", "ns", "one")]
    # What Memcached does not blacklist still reaches it; a watch of no dependents hears nothing.
    owners = deps.interested(owned_by("Memcached", "Quiet", kind="Deployment", api_version="apps/v1"), DEPLOYMENT,
                             "DELETED")
    assert owners == [OwnerKey(GROUP, "Memcached", "ns", "one")]
    # A relist is told the same way, of what went while nothing watched.
    scope = WatchScope("v1", "ConfigMap", True, "")
    assert deps.listed(scope, [owned_by("Memcached", "Memfin")]) == []  # first sight: the owners made it
    assert deps.listed(scope, []) == [OwnerKey(GROUP, "Memfin", "ns", "one")]
