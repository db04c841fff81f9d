"""The API endpoint the roles talk to: reads from the operator's watch cache, everything else
to the apiserver over kept-alive connections.

Each run gets a kubeconfig of its own (`RunAccess.kubeconfig`), which points its modules at
this endpoint on 127.0.0.1 with a bearer token that names the run's owner and lives as long as
the run. `kubernetes.core` and every other client read it as any kubeconfig, so roles are
unchanged. A GET or LIST that `runner.apicache` can answer is answered from memory; the rest
(writes, watches, subresources, discovery, exec) is sent on with the operator's own
credentials, and each write's answer tells the cache what that owner's later reads must see.
Owner references are still added inside the run's processes (`runner.ownerrefs`), before a
request leaves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web

from runner.apicache import Cache, KindKey, parse_read, resource_path

log = logging.getLogger("playbook_operator.apiproxy")

# Hop-by-hop headers, and those this endpoint sets itself, are not passed on.
_NOT_FORWARDED = {"host", "authorization", "connection", "keep-alive", "proxy-authorization", "te", "trailer",
                  "transfer-encoding", "upgrade", "content-length", "accept-encoding", "content-encoding"}
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@dataclass(frozen=True)
class Upstream:
    """The apiserver and the operator's credentials for it (the kubernetes client's)."""

    host: str
    ssl_context: ssl.SSLContext | bool
    authorization: Callable[[], str | None]

    @classmethod
    def from_client(cls) -> Upstream:
        from kubernetes import client

        cfg = client.Configuration.get_default_copy()
        context: ssl.SSLContext | bool = False
        if cfg.host.startswith("https"):
            if cfg.verify_ssl:
                context = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
            else:
                context = ssl.create_default_context()
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if cfg.cert_file:
                context.load_cert_chain(cfg.cert_file, cfg.key_file)

        def authorization() -> str | None:
            if cfg.refresh_api_key_hook is not None:  # the in-cluster token is re-read as it rotates
                cfg.refresh_api_key_hook(cfg)
            # However the client holds the token (its key has changed between versions).
            settings: Mapping[str, Mapping[str, Any]] = cfg.auth_settings()  # type: ignore[assignment]
            for setting in settings.values():
                if setting.get("in") == "header" and str(setting.get("key")).lower() == "authorization":
                    return str(setting["value"])
            return None

        return cls(cfg.host.rstrip("/"), context, authorization)


@dataclass
class RunAccess:
    """One run's way in: its token, whose run it is, and what its reads must at least see."""

    token: str
    owner: str
    at_least: dict[KindKey, int] = field(default_factory=dict)
    uncached: frozenset[tuple[str, str, str]] = frozenset()  # (group, version, kind) read from the apiserver

    def kubeconfig(self, url: str) -> str:
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "run",
            "clusters": [{"name": "playbook-operator", "cluster": {"server": url}}],
            "users": [{"name": "run", "user": {"token": self.token}}],
            "contexts": [{"name": "run", "context": {"cluster": "playbook-operator", "user": "run"}}],
        })

    def write_kubeconfig(self, path: Path, url: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text(self.kubeconfig(url))
        return path


Record = Callable[[str, str], None]  # (verb, answered_by): for /metrics


class ApiProxy:
    """The endpoint, in the operator's event loop. `cache_reads=False` sends every read on."""

    def __init__(self, cache: Cache, upstream: Upstream, *, cache_reads: bool = True,
                 record: Record | None = None) -> None:
        self.cache = cache
        self.upstream = upstream
        self.cache_reads = cache_reads
        self.record = record
        self._runs: dict[str, RunAccess] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.upstream.ssl_context, limit=64, keepalive_timeout=60),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30), auto_decompress=True)
        log.info("roles' API requests go through %s (reads from the watch cache: %s)", self.url,
                 "yes" if self.cache_reads else "no")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- runs

    def open_run(self, owner: str, at_least: Mapping[KindKey, int] | None = None,
                 uncached: frozenset[tuple[str, str, str]] = frozenset()) -> RunAccess:
        access = RunAccess(secrets.token_urlsafe(32), owner, dict(at_least or {}), uncached)
        self._runs[access.token] = access
        return access

    def close_run(self, access: RunAccess) -> None:
        self._runs.pop(access.token, None)

    # -- requests

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        access = self._access(request)
        if access is None:
            return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                      "reason": "Unauthorized", "message": "Unauthorized", "code": 401}, status=401)
        if self.cache_reads:
            read = parse_read(request.method, request.path, request.query_string, request.headers.get("Accept", ""))
            if read is not None:
                answer = self.cache.read(access.owner, read, access.at_least.get(read.kind, 0), access.uncached)
                if answer is not None:
                    self._count(request.method, "cache")
                    return web.Response(status=answer.status, body=json.dumps(answer.body).encode(),
                                        content_type="application/json")
        self._count(request.method, "apiserver")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._relay_websocket(request)
        return await self._forward(request, access)

    def _access(self, request: web.Request) -> RunAccess | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return self._runs.get(token) if scheme.lower() == "bearer" and token else None

    def _count(self, verb: str, answered_by: str) -> None:
        if self.record is not None:
            self.record(verb, answered_by)

    def _headers(self, request: web.Request) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
        authorization = self.upstream.authorization()
        if authorization:
            headers["Authorization"] = authorization
        return headers

    async def _forward(self, request: web.Request, access: RunAccess) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        url = self.upstream.host + request.rel_url.raw_path_qs
        # A body without a Content-Type stays without one (the apiserver reads it as JSON), rather
        # than becoming application/octet-stream, which it refuses.
        async with self._session.request(request.method, url, headers=self._headers(request), data=body or None,
                                         allow_redirects=False, skip_auto_headers=("Content-Type",)) as upstream:
            headers = {k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_FORWARDED}
            if request.query.get("watch") in ("1", "true") or request.query.get("follow") in ("1", "true"):
                stream = web.StreamResponse(status=upstream.status, headers=headers)
                await stream.prepare(request)
                with contextlib.suppress(ConnectionResetError, aiohttp.ClientPayloadError):
                    async for chunk in upstream.content.iter_any():
                        await stream.write(chunk)
                return stream
            data = await upstream.read()
        if request.method in WRITES and upstream.status < 300:
            self._note_write(access, request, data)
        return web.Response(status=upstream.status, body=data, headers=headers)

    def _note_write(self, access: RunAccess, request: web.Request, data: bytes) -> None:
        where = resource_path(request.path)
        if where is None:
            return
        try:
            answer = json.loads(data) if data else None
        except ValueError:
            answer = None
        self.cache.wrote(access.owner, where.kind, request.method, where.namespace, where.name,
                         answer if isinstance(answer, dict) else None)

    async def _relay_websocket(self, request: web.Request) -> web.StreamResponse:
        """exec, attach and port-forward: the websocket relayed frame by frame."""
        assert self._session is not None
        protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        url = self.upstream.host + request.rel_url.raw_path_qs
        headers = {k: v for k, v in self._headers(request).items() if not k.lower().startswith("sec-websocket")}
        async with self._session.ws_connect(url, protocols=protocols, headers=headers) as upstream:
            downstream = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else [])
            await downstream.prepare(request)

            async def pump(source: Any, target: Any) -> None:
                async for message in source:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        await target.send_bytes(message.data)
                    elif message.type == aiohttp.WSMsgType.TEXT:
                        await target.send_str(message.data)
                    else:
                        break
                await target.close()

            await asyncio.gather(pump(upstream, downstream), pump(downstream, upstream), return_exceptions=True)
        return downstream
