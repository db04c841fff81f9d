"""The list and watch of a primary kind when sharded: only this replica's slices.

kopf's watch streams keep one selector for their whole life, and a sharded replica's slices
change as members come and go, so with ``--sharding`` the primary kinds are listed and watched
here instead, in the operator's event loop, with the credentials of its API endpoint
(`runner.apiproxy.Upstream`). Each change of slices ends the stream and lists again: the new
list holds what the replica gained.

Where the apiserver offers sharded list and watch (KEP-5866, the ``ShardedListAndWatch`` gate),
the requests carry a ``shardSelector``, so only this replica's share crosses the wire and sits in
its memory. Elsewhere the same hash is applied here, on every object received (the fallback,
found at start-up by `server_side_sharding` and logged). Events reach the controller as kopf's
do: ``type`` None for what a list found.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import aiohttp

from runner import sharding
from runner.apiproxy import Upstream
from runner.kube import ResourceRef

log = logging.getLogger("playbook_operator.shardwatch")

Deliver = Callable[[Mapping[str, Any]], Awaitable[None]]

PAGE = 500
WATCH_TIMEOUT = 300  # seconds the apiserver keeps a watch open before this watcher opens the next
MAX_DELAY = 30.0
# A selector every apiserver that shards must refuse: its range is empty.
PROBE_SELECTOR = f"shardRange({sharding.UID_FIELD}, '0x0000000000000001', '0x0000000000000001')"


class Gone(Exception):
    """The watch's resourceVersion is too old: list again."""


def collection_path(ref: ResourceRef, namespace: str) -> str:
    base = f"/apis/{ref.group}/{ref.version}" if ref.group else f"/api/{ref.version}"
    where = f"/namespaces/{namespace}" if namespace and ref.namespaced else ""
    return f"{base}{where}/{ref.plural}"


def new_session(upstream: Upstream) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=upstream.ssl_context),
                                 timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))


def _headers(upstream: Upstream) -> dict[str, str]:
    authorization = upstream.authorization()
    return {"Accept": "application/json", **({"Authorization": authorization} if authorization else {})}


async def server_side_sharding(upstream: Upstream, ref: ResourceRef, namespace: str = "") -> bool:
    """Whether the apiserver applies shard selectors. It is asked for a list with a selector it
    must refuse (an empty range): one that applies them answers "invalid shard selector",
    one without the feature ignores the parameter and lists. Other errors are raised."""
    params = {"limit": "1", "shardSelector": PROBE_SELECTOR}
    async with new_session(upstream) as session, session.get(
            upstream.host + collection_path(ref, namespace), params=params, headers=_headers(upstream)) as resp:
        body = await resp.json(content_type=None)
    message = str((body or {}).get("message") or "")
    if resp.status >= 400 and "invalid shard selector" in message:
        return True
    if resp.status >= 400:
        raise RuntimeError(f"{resp.status} {message}".strip())
    return False


def in_slices(obj: Mapping[str, Any], slices: frozenset[int]) -> bool:
    uid = (obj.get("metadata") or {}).get("uid")
    return bool(uid) and sharding.slice_of(str(uid)) in slices


class SliceWatch:
    """One primary kind in one scope (a namespace, or "" for all), for the slices `retarget` names."""

    def __init__(self, upstream: Upstream, ref: ResourceRef, namespace: str, deliver: Deliver, *,
                 server_side: bool) -> None:
        self.upstream = upstream
        self.ref = ref
        self.namespace = namespace
        self.deliver = deliver
        self.server_side = server_side
        self.slices: frozenset[int] = frozenset()
        self.listed = asyncio.Event()  # set once a list of the current slices has been delivered
        self._moved = asyncio.Event()

    @property
    def where(self) -> str:
        return f"{self.ref.plural}.{self.ref.group or 'core'} " + \
            (f"in {self.namespace}" if self.namespace else "cluster-wide")

    def retarget(self, slices: frozenset[int]) -> None:
        if slices != self.slices:
            self.slices = slices
            self.listed.clear()
            self._moved.set()

    async def run(self) -> None:
        delay = 1.0
        async with new_session(self.upstream) as session:
            while True:
                self._moved.clear()
                slices = self.slices
                if not slices:
                    self.listed.set()  # nothing to list
                    await self._moved.wait()
                    continue
                try:
                    version = await self._list(session, slices)
                    self.listed.set()
                    await self._until_moved(self._watch(session, slices, version))
                    delay = 1.0
                except Gone:
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as err:
                    log.warning("sharded watch of %s failed (%s); retrying in %.0fs", self.where, err, delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._moved.wait(), delay)
                    delay = min(delay * 2, MAX_DELAY)

    def _params(self, slices: frozenset[int], **extra: str) -> dict[str, str]:
        params = dict(extra)
        if self.server_side:
            params["shardSelector"] = sharding.shard_selector(slices)
        return params

    async def _get(self, session: aiohttp.ClientSession, params: Mapping[str, str]) -> dict[str, Any]:
        url = self.upstream.host + collection_path(self.ref, self.namespace)
        async with session.get(url, params=params, headers=_headers(self.upstream)) as resp:
            body = await resp.json(content_type=None)
            if resp.status == 410:
                raise Gone()
            if resp.status >= 400:
                raise RuntimeError(f"{resp.status} {(body or {}).get('message', '')}".strip())
            return dict(body)

    async def _list(self, session: aiohttp.ClientSession, slices: frozenset[int]) -> str:
        """List the slices page by page, delivering each object; the list's resourceVersion."""
        token = ""
        while True:
            params = self._params(slices, limit=str(PAGE), **({"continue": token} if token else {}))
            body = await self._get(session, params)
            for item in body.get("items") or []:
                if in_slices(item, slices):
                    # A list's items carry no kind; the cache keeps them as a watch gives them.
                    await self.deliver({"type": None, "object": {"apiVersion": self.ref.api_version,
                                                                 "kind": self.ref.kind, **item}})
            meta = body.get("metadata") or {}
            token = meta.get("continue") or ""
            if not token:
                return str(meta.get("resourceVersion") or "")

    async def _watch(self, session: aiohttp.ClientSession, slices: frozenset[int], version: str) -> None:
        """Watch from `version` on, one watch request after another; Gone when it is too old."""
        url = self.upstream.host + collection_path(self.ref, self.namespace)
        while True:
            params = self._params(slices, watch="true", allowWatchBookmarks="true", resourceVersion=version,
                                  timeoutSeconds=str(WATCH_TIMEOUT))
            async with session.get(url, params=params, headers=_headers(self.upstream)) as resp:
                if resp.status == 410:
                    raise Gone()
                if resp.status >= 400:
                    raise RuntimeError(f"{resp.status} {(await resp.text())[:200]}")
                async for event in _events(resp):
                    obj = event.get("object") or {}
                    if event.get("type") == "ERROR":
                        if obj.get("code") == 410:
                            raise Gone()
                        raise RuntimeError(f"watch error: {obj.get('message')}")
                    version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED") and in_slices(obj, slices):
                        await self.deliver(event)

    async def _until_moved(self, work: Awaitable[None]) -> None:
        """Run `work` until it ends or the slices change, whichever comes first."""
        task = asyncio.ensure_future(work)
        moved = asyncio.ensure_future(self._moved.wait())
        try:
            await asyncio.wait({task, moved}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, moved):
                pending.cancel()
            await asyncio.gather(moved, return_exceptions=True)
        if not task.cancelled() and task.done():
            task.result()  # raises what the watch raised (Gone, errors)
        else:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """A watch response's events: one JSON object per line, of any length."""
    buffer = b""
    async for chunk in resp.content.iter_any():
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield json.loads(line)
