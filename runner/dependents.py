"""Dependent watches (the SDK's `watchDependentResources`): once a role has created or
read an object its custom resource owns, changes to objects of that kind reconcile the
owner, so deleting or editing a ConfigMap a role made brings it back.

Roles report the kinds they touch through `runner.ownerrefs` (a file per run); this
module keeps one watch per kind, in a thread, and maps each change to its owners:
owner references in the same namespace, the SDK's `operator-sdk/primary-resource`
annotations elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.ownerrefs import PRIMARY_RESOURCE, PRIMARY_RESOURCE_TYPE

log = logging.getLogger("playbook_operator.dependents")


@dataclass(frozen=True)
class DependentKind:
    api_version: str
    kind: str
    namespaced: bool


@dataclass(frozen=True)
class OwnerKey:
    """Whom to reconcile: a kind (apiVersion as the owner reference names it) and its key."""

    group: str
    kind: str
    namespace: str
    name: str


def read_reported(path: Path) -> set[DependentKind]:
    """The kinds a run reported (and the file removed, so the next run starts afresh)."""
    kinds: set[DependentKind] = set()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return kinds
    path.unlink(missing_ok=True)
    for line in lines:
        try:
            entry = json.loads(line)
            kinds.add(DependentKind(str(entry["apiVersion"]), str(entry["kind"]), bool(entry["namespaced"])))
        except (ValueError, KeyError, TypeError):
            continue
    return kinds


def owners_of(obj: Mapping[str, Any]) -> list[OwnerKey]:
    """Every owner an object names: its owner references (same namespace) and the SDK's
    primary-resource annotations (any namespace, or cluster scope)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or ""
    out = []
    for ref in meta.get("ownerReferences") or []:
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        if ref.get("kind") and ref.get("name"):
            out.append(OwnerKey(group, str(ref["kind"]), namespace, str(ref["name"])))
    annotations = meta.get("annotations") or {}
    primary, kind_group = annotations.get(PRIMARY_RESOURCE), annotations.get(PRIMARY_RESOURCE_TYPE)
    if primary and kind_group and "/" in primary:
        owner_ns, _, owner_name = primary.partition("/")
        kind, _, group = kind_group.partition(".")
        out.append(OwnerKey(group, kind, owner_ns, owner_name))
    return out


Notify = Callable[[OwnerKey], None]


class DependentWatches:
    """One watch per dependent kind, each in a daemon thread, reporting owners to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notify: Notify, api_client: Any = None) -> None:
        self.loop = loop
        self.notify = notify
        self.api_client = api_client
        self._watching: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def ensure(self, kinds: Iterable[DependentKind]) -> None:
        for dep in kinds:
            key = (dep.api_version, dep.kind)
            with self._lock:
                if key in self._watching:
                    continue
                self._watching.add(key)
            log.info("watching dependent kind %s %s", dep.api_version, dep.kind)
            threading.Thread(target=self._watch, args=(dep,), name=f"dependents-{dep.kind}", daemon=True).start()

    def watching(self) -> set[tuple[str, str]]:
        with self._lock:
            return set(self._watching)

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self, dep: DependentKind) -> None:
        from kubernetes import client, dynamic
        from kubernetes.client.exceptions import ApiException

        api = dynamic.DynamicClient(self.api_client or client.ApiClient())  # type: ignore[no-untyped-call]
        delay = 1.0
        while not self._stopped.is_set():
            try:
                resource = api.resources.get(api_version=dep.api_version, kind=dep.kind)
                listing = resource.get()
                version = listing.metadata.resourceVersion
                # What exists may have changed between its run and this watch: its owners run once
                # more (as an informer's initial list does for the SDK).
                for item in listing.to_dict().get("items") or []:
                    for owner in owners_of(item):
                        self.loop.call_soon_threadsafe(self.notify, owner)
                while not self._stopped.is_set():
                    stream = api.watch(  # type: ignore[no-untyped-call]
                        resource, resource_version=version, timeout=300, allow_watch_bookmarks=True)
                    for event in stream:
                        obj = event["raw_object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if event["type"] in ("MODIFIED", "DELETED", "ADDED"):
                            for owner in owners_of(obj):
                                self.loop.call_soon_threadsafe(self.notify, owner)
                        if self._stopped.is_set():
                            return
                delay = 1.0
            except ApiException as err:
                if err.status == 410:  # resourceVersion too old: list again
                    continue
                log.warning("watch of %s %s failed (%s); retrying in %.0fs", dep.api_version, dep.kind,
                            err.reason, delay)
            except Exception as err:
                log.warning("watch of %s %s failed (%s); retrying in %.0fs", dep.api_version, dep.kind, err, delay)
            time.sleep(delay)
            delay = min(delay * 2, 60.0)
