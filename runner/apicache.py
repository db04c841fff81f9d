"""The operator's watch cache, and which of a run's reads it may answer (pure: no I/O).

The operator already holds the objects of the kinds it watches: its primary kinds (kopf's
events) and the dependent kinds (`runner.dependents`, list then watch). `runner.apiproxy`
answers a role's GET and LIST of those kinds from here, as the Operator SDK's proxy answers
them from its informers, and sends everything else to the apiserver.

Two promises bound what may come from the cache, both by resourceVersion (the apiserver's
are comparable integers: an etcd revision):

- *Not older than the trigger.* A run's triggering object came through the watch that feeds
  this cache, so its store has seen it before the run starts; a run also needs the store to
  have seen the operator's own status write before the run (`Freshness.require`).
- *Its own writes.* Every write a run makes through the proxy raises, for that owner and kind,
  the resourceVersion the store must have reached before it answers again; a deletion
  waits until the store has dropped the object. These are kept per owner across runs, so the
  next run does not miss the pods its last run created (the ReplicaSet controller's
  "expectations").

A store answers a LIST only for a namespace it has listed whole (or for all namespaces when it
lists them all): kopf's streams give no such mark, so primary kinds answer GETs only. A GET
of an object a complete store does not hold is a 404. What the cache cannot answer goes to the
apiserver: that is always correct, only slower.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from runner.basics import selectors


@dataclass(frozen=True)
class KindKey:
    """A kind as its URL names it: API group ("" for the core group), version and plural."""

    group: str
    version: str
    plural: str


@dataclass(frozen=True)
class ReadRequest:
    """A GET that the cache might answer: one object (`name`) or a list, in `namespace` ("" for
    cluster scope or all namespaces), with an optional label and field selector."""

    kind: KindKey
    namespace: str
    name: str
    label_selector: str = ""
    field_selector: str = ""


def parse_version(raw: object) -> int | None:
    """A resourceVersion as the number it is; None for anything else (missing, opaque)."""
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def resource_version(obj: Mapping[str, Any] | None) -> int | None:
    return parse_version(((obj or {}).get("metadata") or {}).get("resourceVersion"))


# Query parameters a cached answer can honour; anything else (limit, continue, watch, a
# resourceVersion to match) goes to the apiserver.
_SERVED_PARAMS = {"labelSelector", "fieldSelector", "resourceVersion", "pretty"}


@dataclass(frozen=True)
class ResourcePath:
    """What a request's path names: a kind, a namespace ("" for none), an object's name ("" for
    the collection) and a subresource ("" for the object itself)."""

    kind: KindKey
    namespace: str
    name: str
    subresource: str = ""


def resource_path(path: str) -> ResourcePath | None:
    """`/api/v1/namespaces/ns/pods/name[/sub]` or `/apis/group/version/...`; None for anything
    else (discovery, /version, /openapi)."""
    parts = [p for p in path.split("/") if p]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return ResourcePath(KindKey(group, version, rest[0]), namespace, rest[1] if len(rest) > 1 else "",
                        rest[2] if len(rest) > 2 else "")


def parse_read(method: str, path: str, query: str, accept: str = "") -> ReadRequest | None:
    """The read a request makes, if the cache could answer it at all."""
    if method != "GET" or ("json" not in accept and accept not in ("", "*/*")) or ";as=" in accept:
        return None
    params = parse_qs(query, keep_blank_values=True)
    if set(params) - _SERVED_PARAMS or any(len(v) != 1 for v in params.values()):
        return None
    if params.get("resourceVersion", [""])[0] not in ("", "0"):
        return None
    where = resource_path(path)
    if where is None or where.subresource:
        return None
    field = params.get("fieldSelector", [""])[0]
    if field and _field_terms(field) is None:
        return None
    return ReadRequest(where.kind, where.namespace, where.name, params.get("labelSelector", [""])[0], field)


def _field_terms(selector: str) -> dict[str, str] | None:
    """`metadata.name=x,metadata.namespace=y`: the only field selectors answered from memory."""
    terms: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        key, op, value = term.partition("=")
        if op != "=" or value.startswith("=") or key not in ("metadata.name", "metadata.namespace"):
            return None
        terms[key] = value
    return terms


@dataclass
class KindStore:
    """The objects of one kind the operator watches, by namespace and name."""

    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    watermark: int = 0  # the newest resourceVersion seen: in an object, a list or a bookmark
    complete: set[str] = field(default_factory=set)  # namespaces listed whole; "" for all of them
    kind: str = ""  # its name (Deployment), as the objects give it; the URL gives only the plural

    def hold(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        self.objects[(meta.get("namespace") or "", meta.get("name") or "")] = dict(obj)
        self.kind = self.kind or str(obj.get("kind") or "")
        self.seen(resource_version(obj))

    def seen(self, rv: int | None) -> None:
        if rv is not None and rv > self.watermark:
            self.watermark = rv

    def covers(self, namespace: str) -> bool:
        return "" in self.complete or (bool(namespace) and namespace in self.complete)


@dataclass(frozen=True)
class Answer:
    """What the cache says: `status` 200 with `body`, 404, or None (ask the apiserver)."""

    status: int
    body: dict[str, Any]


class Cache:
    """Every store, and each owner's writes that later reads must see. Thread-safe: the
    dependent watches feed it from their threads, the proxy reads it from the event loop."""

    def __init__(self) -> None:
        self._stores: dict[KindKey, KindStore] = {}
        self._lock = threading.Lock()
        # Per owner and kind: the resourceVersion its last writes reached, and what it deleted.
        self._written: dict[str, dict[KindKey, int]] = {}
        self._deleted: dict[str, set[tuple[KindKey, str, str]]] = {}

    # -- fed by the watches

    def listed(self, kind: KindKey, namespace: str, items: Iterable[Mapping[str, Any]], rv: int | None) -> None:
        """A whole namespace (or "" for all) was listed at `rv`: it replaces what was held there."""
        with self._lock:
            store = self._stores.setdefault(kind, KindStore())
            store.objects = {k: v for k, v in store.objects.items() if namespace and k[0] != namespace}
            for item in items:
                store.hold(item)
            store.seen(rv)
            store.complete.add(namespace)

    def event(self, kind: KindKey, type_: str | None, obj: Mapping[str, Any]) -> None:
        """A watch event (kopf gives the initial list's objects no type)."""
        meta = obj.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        with self._lock:
            store = self._stores.setdefault(kind, KindStore())
            if type_ == "DELETED":
                store.objects.pop(key, None)
                store.seen(resource_version(obj))
            elif type_ != "BOOKMARK":
                store.hold(obj)
            else:
                store.seen(resource_version(obj))

    def lost(self, kind: KindKey, namespace: str) -> None:
        """A watch broke: until it lists again, a missing object may be there after all."""
        with self._lock:
            store = self._stores.get(kind)
            if store is not None:
                store.complete.discard(namespace)

    # -- a run's writes

    def wrote(self, owner: str, kind: KindKey, method: str, namespace: str, name: str,
              response: Mapping[str, Any] | None) -> None:
        """A write an owner's run made, and the apiserver's answer: what reads must wait for."""
        rv = resource_version(response) if response and response.get("kind") != "Status" else None
        with self._lock:
            if method == "DELETE" and name:
                self._deleted.setdefault(owner, set()).add((kind, namespace, name))
            if rv is not None:
                written = self._written.setdefault(owner, {})
                written[kind] = max(written.get(kind, 0), rv)
            elif method == "DELETE" and not name:
                # A collection deleted: no version to wait for, so this owner's reads of the
                # kind go to the apiserver from now on.
                self._written.setdefault(owner, {})[kind] = 1 << 62

    def forget(self, owner: str) -> None:
        with self._lock:
            self._written.pop(owner, None)
            self._deleted.pop(owner, None)

    # -- a run's reads

    def read(self, owner: str, request: ReadRequest, at_least: int = 0,
             uncached: frozenset[tuple[str, str, str]] = frozenset()) -> Answer | None:
        """The answer to a read, or None when only the apiserver can give it: always for a kind
        in `uncached` (group, version, kind), which the owner's watch blacklists, as the SDK's
        proxy sends a blacklisted kind's reads to the apiserver."""
        with self._lock:
            store = self._stores.get(request.kind)
            if store is None or (request.kind.group, request.kind.version, store.kind) in uncached:
                return None
            needed = max(at_least, self._written.get(owner, {}).get(request.kind, 0))
            if store.watermark < needed or not self._deletions_seen(owner, request.kind, store):
                return None
            if request.name:
                obj = store.objects.get((request.namespace, request.name))
                if obj is not None:
                    return Answer(200, obj)
                if store.covers(request.namespace):
                    return Answer(404, not_found(request))
                return None
            if not store.covers(request.namespace):
                return None
            items = [o for (ns, _), o in store.objects.items() if not request.namespace or ns == request.namespace]
            watermark = store.watermark
        selected = _select(items, request)
        if selected is None:
            return None
        return Answer(200, {"kind": "List", "apiVersion": "v1",
                            "metadata": {"resourceVersion": str(watermark)}, "items": selected})

    def _deletions_seen(self, owner: str, kind: KindKey, store: KindStore) -> bool:
        """Whether `store` (of `kind`) has dropped every object of its kind the owner deleted;
        those it has are no longer awaited."""
        pending = self._deleted.get(owner)
        if not pending:
            return True
        of_kind = {d for d in pending if d[0] == kind}
        pending -= {d for d in of_kind if (d[1], d[2]) not in store.objects}
        return not any(d[0] == kind for d in pending)


def _select(items: list[dict[str, Any]], request: ReadRequest) -> list[dict[str, Any]] | None:
    try:
        selector = selectors.parse(request.label_selector) if request.label_selector else None
    except selectors.SelectorError:
        return None  # the apiserver says what is wrong with it
    terms = _field_terms(request.field_selector) or {}
    out = []
    for obj in items:
        meta = obj.get("metadata") or {}
        if selector is not None and not selector.matches(meta.get("labels") or {}):
            continue
        if any(meta.get(key.partition(".")[2]) != value for key, value in terms.items()):
            continue
        out.append(obj)
    return sorted(out, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"].get("name") or ""))


def not_found(request: ReadRequest) -> dict[str, Any]:
    plural = request.kind.plural
    resource = f"{plural}.{request.kind.group}" if request.kind.group else plural
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": f'{resource} "{request.name}" not found', "reason": "NotFound",
            "details": {"name": request.name, "group": request.kind.group, "kind": plural}, "code": 404}
