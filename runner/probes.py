"""The operator's HTTP endpoints: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for
the kubelet's probes, and ``POST /metrics`` on the user-metrics address for the runs'
``osdk_metric`` requests (`runner.usermetrics`). One small aiohttp server on the event loop the
operator runs on, so an answer from ``/healthz`` is itself the proof that the loop is alive.

Addresses are spelt as controller-runtime spells them: ``:8080`` is every interface,
``127.0.0.1:8080`` (or ``[::1]:8080``) one host, and ``0`` turns the endpoint off; they are read
with the other settings (``runner.settings.parse_bind_address``).
"""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Callable

from aiohttp import web

from runner.metrics import Metrics
from runner.metricsauth import MetricsGate
from runner.settings import BindAddress
from runner.usermetrics import UserMetricError

# A user-metric request is a few hundred bytes; anything near this is not one.
MAX_USER_METRIC_REQUEST = 64 * 1024

log = logging.getLogger("playbook_operator.probes")

# (ok, why not): what a readiness or liveness check says.
Check = Callable[[], tuple[bool, str]]


def always_ok() -> tuple[bool, str]:
    return True, "ok"


class ProbeServer:
    """Serves /metrics on one address and /healthz, /readyz on another (or all on one)."""

    def __init__(self, *, metrics: Metrics | None, metrics_address: BindAddress | None,
                 health_address: BindAddress | None, ready: Check = always_ok, healthy: Check = always_ok,
                 user_metrics_address: BindAddress | None = None, metrics_tls: ssl.SSLContext | None = None,
                 metrics_gate: MetricsGate | None = None) -> None:
        """`metrics_tls` serves /metrics over HTTPS (and whatever shares its address); with
        `metrics_gate`, each scrape must show a token allowed to read it (runner.metricsauth)."""
        self.metrics = metrics
        self.ready = ready
        self.healthy = healthy
        self.metrics_gate = metrics_gate
        self._tls: dict[BindAddress, ssl.SSLContext] = {}
        self._routes: list[tuple[BindAddress, list[web.RouteDef]]] = []
        if metrics is not None and metrics_address is not None:
            self._add(metrics_address, [web.get("/metrics", self._metrics)])
            if metrics_tls is not None:
                self._tls[metrics_address] = metrics_tls
        if health_address is not None:
            self._add(health_address, [web.get("/healthz", self._healthz), web.get("/readyz", self._readyz)])
        if metrics is not None and user_metrics_address is not None:
            self._add(user_metrics_address, [web.post("/metrics", self._user_metric)])
        self._runners: list[web.AppRunner] = []
        # "GET /metrics", "POST /metrics", ... -> where it is served, once started.
        self.bound: dict[str, list[tuple[str, int]]] = {}

    def _add(self, address: BindAddress, routes: list[web.RouteDef]) -> None:
        # One address named twice is one listener; two requests for any free port are two.
        for bound, existing in self._routes:
            if bound == address and address.port != 0:
                existing.extend(routes)
                return
        self._routes.append((address, routes))

    async def start(self) -> None:
        """Bind every address; raises OSError if one is taken (nothing stays bound then)."""
        try:
            for address, routes in self._routes:
                app = web.Application(client_max_size=MAX_USER_METRIC_REQUEST)
                app.add_routes(routes)
                runner = web.AppRunner(app, access_log=None, handle_signals=False)
                await runner.setup()
                self._runners.append(runner)
                site = web.TCPSite(runner, address.host, address.port, ssl_context=self._tls.get(address))
                await site.start()
                sockets = [(str(a[0]), int(a[1])) for a in runner.addresses]
                for route in routes:
                    served = f"{route.method} {route.path}"
                    self.bound.setdefault(served, []).extend(sockets)
                    log.info("serving %s on %s", served, ", ".join(f"{h}:{p}" for h, p in sockets) or str(address))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def _metrics(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        if self.metrics_gate is not None:
            status = await self.metrics_gate.status(request.headers.get("Authorization", ""))
            if status != 200:
                return web.Response(status=status, text={401: "Unauthorized", 403: "Forbidden"}.get(
                    status, "cannot check the token now"))
        body, content_type = self.metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _user_metric(self, request: web.Request) -> web.Response:
        assert self.metrics is not None
        try:
            self.metrics.user.apply(json.loads(await request.read()))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return web.Response(status=400, text=f"the request is not JSON: {err}")
        except UserMetricError as err:
            return web.Response(status=400, text=str(err))
        return web.Response(text="ok")

    async def _healthz(self, request: web.Request) -> web.Response:
        return _answer(self.healthy())

    async def _readyz(self, request: web.Request) -> web.Response:
        return _answer(self.ready())


def _answer(check: tuple[bool, str]) -> web.Response:
    ok, why = check
    return web.Response(status=200 if ok else 503, text="ok" if ok else why)
