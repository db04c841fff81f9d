"""Dependent watches (the SDK's `watchDependentResources`): once a role has created or
read an object its custom resource owns, changes to objects of that kind reconcile the
owner, so deleting or editing a ConfigMap a role made brings it back.

Roles report the kinds they touch through `runner.ownerrefs` (a file per run); this
module keeps one watch per kind, in a thread, and maps each change to its owners:
owner references in the same namespace, the SDK's `operator-sdk/primary-resource`
annotations elsewhere.

Objects a run only read are followed as well (`ReadInterest`): each owner's latest run
says what it read (a name, or a list with or without a label selector, in a namespace), and
a change to a matching object of that kind reconciles it. That is how a role that depends on
objects it does not own (a Secret it projects, workloads it selects, a service that does not
exist yet) sees them change, without writing anything onto them.

Which changes reconcile whom (`interested`):
- a role that read an object (by name, or in a list) depends on all of it: any change, its
  status included, reconciles it (a PodSet counts its pods' readiness; a Provisioned Service
  publishes its Secret in its status);
- an owner that only wrote the object is reconciled when it is deleted, or when more than its
  status and bookkeeping changed (drift to undo); never for its creation (the owner's own
  doing) nor for the status its controller writes, as the SDK's DependentPredicate filters.

A run's reads are known only once it ends, so a change made while it ran would reach no
reader. Changes are therefore kept for a while (`CHANGE_MEMORY`), and when a run's reads are
registered, a change to something it read since it started, or a (re)list of a kind it read
since it started, reconciles it again; so does every (re)list for the owners that read its
kind (something may have gone while nothing watched), as an informer's initial list does. A
relist tells the owners that only wrote what changed or went while nothing watched.

An operator limited to some namespaces (WATCH_NAMESPACE) watches namespaced kinds only there
(`watch_scopes`), and every watch is first cleared with a SelfSubjectAccessReview: a kind the
operator may not list and watch (a cluster-scoped one, for an operator that holds only Roles)
is reported once and left unwatched until a later review says it may, so no request is ever
refused over and over.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.apicache import Cache, KindKey, parse_version
from runner.basics import selectors
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


@dataclass(frozen=True)
class ReadInterest(DependentKind):
    """An object or a list a run read: its kind, namespace ("" for all namespaces or cluster
    scope), and a name or a label selector ("" for none: every object of the kind there)."""

    namespace: str = ""
    name: str = ""
    label_selector: str = ""

    def matches(self, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        if self.namespace and (meta.get("namespace") or "") != self.namespace:
            return False
        if self.name:
            return bool(meta.get("name") == self.name)
        return not self.label_selector or selector_matches(self.label_selector, meta.get("labels") or {})


@dataclass(frozen=True)
class WatchScope(DependentKind):
    """One list-and-watch of a kind: in one namespace, or everywhere ("")."""

    namespace: str = ""

    @property
    def where(self) -> str:
        return f"in namespace {self.namespace}" if self.namespace else "cluster-wide"


def watch_scopes(dep: DependentKind, namespaces: Sequence[str]) -> list[WatchScope]:
    """Where a kind is listed and watched. An operator given namespaces watches a namespaced kind
    in each of them and never across the cluster, as the SDK's cache does: its account may hold
    Roles only there, and what happens elsewhere is no more its business than custom resources
    elsewhere. A cluster-scoped kind has one scope, the cluster (whether it is watched at all is
    the watch's `watchClusterScopedResources` and the account's rights)."""
    if dep.namespaced and namespaces:
        return [WatchScope(dep.api_version, dep.kind, True, ns) for ns in dict.fromkeys(namespaces)]
    return [WatchScope(dep.api_version, dep.kind, dep.namespaced)]


def read_reported(path: Path) -> set[DependentKind]:
    """The kinds a run reported, created or read (and the file removed, so the next run starts
    afresh). Reads come back as ReadInterests."""
    kinds: set[DependentKind] = set()
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return kinds
    path.unlink(missing_ok=True)
    for line in lines:
        try:
            entry = json.loads(line)
            kind = (str(entry["apiVersion"]), str(entry["kind"]), bool(entry["namespaced"]))
            read = entry.get("read")
            if isinstance(read, dict):
                kinds.add(ReadInterest(*kind, namespace=str(read.get("namespace") or ""),
                                       name=str(read.get("name") or ""),
                                       label_selector=str(read.get("labelSelector") or "")))
            else:
                kinds.add(DependentKind(*kind))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    return kinds


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """A label selector in its string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) against
    labels. A selector that does not parse matches, so a doubt costs a reconcile, never a
    missed one."""
    try:
        return selectors.parse(selector).matches(labels)
    except selectors.SelectorError:
        return True


def fingerprint(obj: Mapping[str, Any]) -> str:
    """What a reader can depend on: the object without its status and bookkeeping metadata, so
    the status writes that live objects see all the time reconcile none of their readers."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in ("resourceVersion", "managedFields", "generation")}
    rest = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    return hashlib.sha256(json.dumps([meta, rest], sort_keys=True, default=str).encode()).hexdigest()


def readers_of(obj: Mapping[str, Any], api_version: str, kind: str,
               interests: Mapping[OwnerKey, frozenset[ReadInterest]]) -> list[OwnerKey]:
    """The owners whose latest run read this object (by name, or by a list that includes it)."""
    return [owner for owner, reads in interests.items()
            if any(r.api_version == api_version and r.kind == kind and r.matches(obj) for r in reads)]


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
# Whether a change to a dependent of a kind (apiVersion, kind) may reconcile an owner: not when
# the owner's watch blacklists the kind or watches no dependents, even while another watch has
# the kind watched (`runner.operator` decides, from the watches).
Accepts = Callable[[OwnerKey, str, str], bool]


def _everyone(owner: OwnerKey, api_version: str, kind: str) -> bool:
    return True

# Events a role posts carry an owner reference like anything it creates, but no role depends on
# them (reads of Events are not reported either): watching them would reconcile owners for
# their own Events, and need rights to list Events that a role posting them never needs.
NOT_DEPENDED_ON = frozenset({("v1", "Event"), ("events.k8s.io/v1", "Event")})


# How often a watch the operator may not make asks again whether it may (a grant takes effect
# without a restart, and no refused request is ever sent).
REVIEW_PERIOD = 300.0
MAX_DELAY = 60.0
# How long changes are kept for the runs that were going on meanwhile; a run that started
# earlier than that is reconciled again, as nobody can say what it missed.
CHANGE_MEMORY = 600.0


@dataclass(frozen=True)
class Change:
    """A change a watch saw: when (monotonic), and to which object."""

    at: float
    api_version: str
    kind: str
    obj: Mapping[str, Any]


@dataclass(frozen=True)
class Seen:
    """What the watches last saw of an object, by uid: where, its `fingerprint`, and its owners
    (whom its disappearance concerns, once it is gone)."""

    scope: WatchScope | None
    fingerprint: str
    owners: tuple[OwnerKey, ...]


class DependentWatches:
    """One watch per dependent kind and scope (`watch_scopes`), each in a daemon thread,
    reporting owners to the loop. `namespaces` are WATCH_NAMESPACE's; none means the cluster."""

    def __init__(self, loop: asyncio.AbstractEventLoop, notify: Notify, api_client: Any = None,
                 namespaces: Sequence[str] = (), cache: Cache | None = None, accepts: Accepts = _everyone) -> None:
        self.loop = loop
        self.accepts = accepts
        self.cache = cache  # what the watches see, kept for the roles' reads (runner.apiproxy)
        self.notify = notify
        self.api_client = api_client
        self.namespaces = tuple(namespaces)
        self.review_period = REVIEW_PERIOD
        self._watching: set[WatchScope] = set()
        # Scopes started but not permitted (yet): the SelfSubjectAccessReview said no.
        self._refused: set[WatchScope] = set()
        self._reads: dict[OwnerKey, frozenset[ReadInterest]] = {}
        # Recent changes (CHANGE_MEMORY), when each scope was last listed, and what the watches
        # last saw of each object, by uid (what was more than a status change, what went).
        self._changes: deque[Change] = deque()
        self._listed: dict[WatchScope, float] = {}
        self._seen: dict[str, Seen] = {}
        self.clock: Callable[[], float] = time.monotonic
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def ensure(self, kinds: Iterable[DependentKind], owner: OwnerKey | None = None,
               started: float | None = None) -> None:
        """Watch these kinds; with an `owner`, its reads among them replace those of its last run.
        With the run's start (`clock` time), the owner is reconciled again if something it read
        changed while it ran."""
        kinds = list(kinds)
        if owner is not None:
            reads = frozenset(k for k in kinds if isinstance(k, ReadInterest))
            with self._lock:
                if reads:
                    self._reads[owner] = reads
                else:
                    self._reads.pop(owner, None)
            if reads and started is not None and self.missed(reads, started):
                self.loop.call_soon_threadsafe(self.notify, owner)
        for dep in kinds:
            if (dep.api_version, dep.kind) in NOT_DEPENDED_ON:
                continue
            for scope in watch_scopes(dep, self.namespaces):
                with self._lock:
                    if scope in self._watching:
                        continue
                    self._watching.add(scope)
                threading.Thread(target=self._watch, args=(scope,), daemon=True,
                                 name=f"dependents-{scope.kind}-{scope.namespace or 'cluster'}").start()

    def watching(self) -> set[tuple[str, str]]:
        """The kinds watched somewhere (those the operator may not watch anywhere left out)."""
        with self._lock:
            return {(s.api_version, s.kind) for s in self._watching - self._refused}

    def scopes(self) -> set[WatchScope]:
        """Every list-and-watch started, permitted or not."""
        with self._lock:
            return set(self._watching)

    def forget(self, owner: OwnerKey) -> None:
        """The owner is gone: its reads no longer reconcile anything."""
        with self._lock:
            self._reads.pop(owner, None)

    def interested(self, obj: Mapping[str, Any], dep: DependentKind, event: str = "ADDED",
                   whole: bool | None = None) -> list[OwnerKey]:
        """Everyone to reconcile for a change to `obj` (see the module's rule): whoever read it, on
        any change; its owners that only wrote it, when it is deleted or more than its status and
        bookkeeping changed since the watches last saw it (`whole`, from `record`, else worked
        out here)."""
        if whole is None:
            whole = self._whole(obj, event)
        with self._lock:
            reads = dict(self._reads)
        readers = readers_of(obj, dep.api_version, dep.kind, reads)
        drifted = event == "DELETED" or (event == "MODIFIED" and whole)
        writers = [o for o in owners_of(obj) if o not in readers] if drifted else []
        return [o for o in readers + writers if self.accepts(o, dep.api_version, dep.kind)]

    def _whole(self, obj: Mapping[str, Any], event: str, scope: WatchScope | None = None) -> bool:
        """Whether more than an object's status and bookkeeping changed since the watches last saw
        it (always, for one added or deleted); notes what they saw, by uid."""
        uid = str((obj.get("metadata") or {}).get("uid") or "")
        new = fingerprint(obj)
        with self._lock:
            before = self._seen.get(uid)
            whole = event != "MODIFIED" or not uid or before is None or before.fingerprint != new
            if event == "DELETED":
                self._seen.pop(uid, None)
            elif uid:
                self._seen[uid] = Seen(scope or (before.scope if before else None), new, tuple(owners_of(obj)))
        return whole

    def missed(self, reads: Iterable[ReadInterest], started: float) -> bool:
        """Whether a run that started at `started` and read `reads` may have missed a change:
        one came since to an object it read, a kind it read was (re)listed since, or it started
        before the changes kept."""
        now = self.clock()
        with self._lock:
            while self._changes and self._changes[0].at < now - CHANGE_MEMORY:
                self._changes.popleft()
            changes = [c for c in self._changes if c.at >= started]
            listed = dict(self._listed)
        if started < now - CHANGE_MEMORY:
            return True
        for read in reads:
            if any(listed.get(scope, started) > started for scope in watch_scopes(read, self.namespaces)):
                return True
            if any(c.api_version == read.api_version and c.kind == read.kind and read.matches(c.obj)
                   for c in changes):
                return True
        return False

    def record(self, scope: WatchScope, event: str, obj: Mapping[str, Any]) -> bool:
        """Keep a change a watch saw, for the runs going on meanwhile (see `missed`); returns
        whether more than its status changed, for `interested`."""
        meta = obj.get("metadata") or {}
        whole = self._whole(obj, event, scope)
        with self._lock:
            self._changes.append(Change(self.clock(), scope.api_version, scope.kind, {
                "metadata": {k: meta.get(k) for k in ("namespace", "name", "labels")}}))
        return whole

    def listed(self, scope: WatchScope, items: Iterable[Mapping[str, Any]]) -> list[OwnerKey]:
        """A scope was (re)listed: note when, and return whom to reconcile, as an informer's
        relist does: every owner that read this kind there (what it read may have gone while
        nothing watched), and the owners of what changed or went since the watches last saw it
        (nothing, on a first list: the owners' own runs made what is there)."""
        with self._lock:
            self._listed[scope] = self.clock()
            reads = dict(self._reads)
            gone = {uid: seen for uid, seen in self._seen.items() if seen.scope == scope}
        told: list[OwnerKey] = []
        for item in items:
            known = gone.pop(str((item.get("metadata") or {}).get("uid") or ""), None) is not None
            if self._whole(item, "MODIFIED", scope) and known:  # changed while nothing watched
                told += owners_of(item)
        with self._lock:
            for uid in gone:
                self._seen.pop(uid, None)
        told += [o for seen in gone.values() for o in seen.owners]  # went while nothing watched
        told += [owner for owner, rs in reads.items()
                 if any(r.api_version == scope.api_version and r.kind == scope.kind
                        and scope in watch_scopes(r, self.namespaces) for r in rs)]
        return [o for o in dict.fromkeys(told) if self.accepts(o, scope.api_version, scope.kind)]

    def stop(self) -> None:
        self._stopped.set()

    def _permitted(self, resource: Any, scope: WatchScope) -> bool:
        from runner import kube

        try:
            return kube.may(("list", "watch"), str(resource.group or ""), str(resource.name), scope.namespace,
                            self.api_client)
        except Exception as err:  # the review itself failed: let the watch try and report
            log.debug("could not review access to %s %s: %s", scope.api_version, scope.kind, err)
            return True

    def _wait_until_permitted(self, resource: Any, scope: WatchScope) -> bool:
        """Ask before the first list, and every REVIEW_PERIOD while the answer is no; say so once.
        False once stopped."""
        refused = False
        while not self._permitted(resource, scope):
            if not refused:
                refused = True
                with self._lock:
                    self._refused.add(scope)
                log.warning("not watching %s %s %s: this operator's account may not list and watch it there, "
                            "so its changes reconcile nothing (checked again every %.0fs)",
                            scope.api_version, scope.kind, scope.where, self.review_period)
            if self._stopped.wait(self.review_period):
                return False
        if refused:
            with self._lock:
                self._refused.discard(scope)
        log.info("watching dependent kind %s %s %s", scope.api_version, scope.kind, scope.where)
        return True

    def _lost(self, kind: KindKey | None, scope: WatchScope) -> None:
        """The watch broke: until it lists again, the cache cannot say what is missing there."""
        if self.cache is not None and kind is not None:
            self.cache.lost(kind, scope.namespace)

    def _watch(self, scope: WatchScope) -> None:
        from kubernetes import client, dynamic
        from kubernetes.client.exceptions import ApiException

        api = dynamic.DynamicClient(self.api_client or client.ApiClient())  # type: ignore[no-untyped-call]
        namespace = scope.namespace or None
        delay = 1.0
        reviewed = False
        kind: KindKey | None = None
        while not self._stopped.is_set():
            try:
                resource = api.resources.get(api_version=scope.api_version, kind=scope.kind)
                if not reviewed:
                    if not self._wait_until_permitted(resource, scope):
                        return
                    reviewed = True
                if self.cache is not None:
                    kind = KindKey(str(resource.group or ""), str(resource.api_version), str(resource.name))
                listing = resource.get(namespace=namespace)
                version = listing.metadata.resourceVersion
                items = listing.to_dict().get("items") or []
                if self.cache is not None and kind is not None:
                    # Items of a list carry no kind; the cache answers them as a watch gives them.
                    self.cache.listed(kind, scope.namespace, [{"apiVersion": scope.api_version, "kind": scope.kind,
                                                               **item} for item in items],
                                      parse_version(version))
                for owner in self.listed(scope, items):
                    self.loop.call_soon_threadsafe(self.notify, owner)
                while not self._stopped.is_set():
                    stream = api.watch(  # type: ignore[no-untyped-call]
                        resource, namespace=namespace, resource_version=version, timeout=300,
                        allow_watch_bookmarks=True)
                    for event in stream:
                        obj = event["raw_object"]
                        version = obj.get("metadata", {}).get("resourceVersion", version)
                        if self.cache is not None and kind is not None:  # before the owners hear of it
                            self.cache.event(kind, event["type"], obj)
                        if event["type"] in ("MODIFIED", "DELETED", "ADDED"):
                            whole = self.record(scope, event["type"], obj)
                            for owner in self.interested(obj, scope, event["type"], whole):
                                self.loop.call_soon_threadsafe(self.notify, owner)
                        if self._stopped.is_set():
                            return
                delay = 1.0
            except ApiException as err:
                self._lost(kind, scope)
                if err.status == 410:  # resourceVersion too old: list again
                    continue
                if err.status == 403:  # the rights were taken away since: review before trying again
                    reviewed = False
                log.warning("watch of %s %s %s failed (%s); retrying in %.0fs", scope.api_version, scope.kind,
                            scope.where, err.reason, delay)
            except Exception as err:
                self._lost(kind, scope)
                log.warning("watch of %s %s %s failed (%s); retrying in %.0fs", scope.api_version, scope.kind,
                            scope.where, err, delay)
            if self._stopped.wait(delay):
                return
            delay = min(delay * 2, MAX_DELAY)
