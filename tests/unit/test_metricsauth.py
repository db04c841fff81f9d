"""--metrics-secure and --metrics-require-rbac: /metrics over HTTPS with a self-signed
certificate, and each scrape's token checked (the apiserver's answers stood in for here; the
e2e test asks the real one)."""

from __future__ import annotations

import ssl

import aiohttp
import pytest

from runner.metrics import Metrics
from runner.metricsauth import MetricsGate, self_signed_context
from runner.probes import ProbeServer
from runner.settings import BindAddress

TOKENS = {"reader-token": ("system:serviceaccount:mon:prometheus", ["system:serviceaccounts"]),
          "other-token": ("system:serviceaccount:app:web", ["system:serviceaccounts"])}


class Apiserver:
    """What TokenReviews and SubjectAccessReviews would answer, and how often they were asked."""

    def __init__(self) -> None:
        self.reviews = 0
        self.down = False

    def authenticate(self, token: str) -> tuple[str, list[str]] | None:
        self.reviews += 1
        if self.down:
            raise ConnectionError("apiserver unreachable")
        return TOKENS.get(token)

    def authorize(self, user: str, groups: list[str]) -> bool:
        return user == "system:serviceaccount:mon:prometheus"


async def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers, ssl=False) as resp:
        return resp.status, await resp.text()


async def test_metrics_over_https_for_allowed_tokens_only() -> None:
    api = Apiserver()
    server = ProbeServer(metrics=Metrics(), metrics_address=BindAddress("127.0.0.1", 0), health_address=None,
                         metrics_tls=self_signed_context(), metrics_gate=MetricsGate(api.authenticate, api.authorize))
    await server.start()
    try:
        (_, port), = server.bound["GET /metrics"]
        url = f"https://127.0.0.1:{port}/metrics"
        assert (await scrape(url))[0] == 401
        assert (await scrape(url, "made-up"))[0] == 401
        assert await scrape(url, "other-token") == (403, "Forbidden")
        status, body = await scrape(url, "reader-token")
        assert status == 200 and "ansible_operator_build_info" in body
        # The certificate is self-signed: a client that verifies refuses it, plain HTTP gets nothing.
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            async with aiohttp.ClientSession() as session, session.get(url, ssl=ssl.create_default_context()):
                pass
        with pytest.raises(aiohttp.ClientError):
            async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics"):
                pass
    finally:
        await server.stop()


async def test_decisions_are_kept_a_while_and_failures_are_not() -> None:
    api = Apiserver()
    now = [0.0]
    gate = MetricsGate(api.authenticate, api.authorize, clock=lambda: now[0])
    assert await gate.status("Bearer reader-token") == 200
    assert await gate.status("Bearer reader-token") == 200
    assert api.reviews == 1
    now[0] += 61
    assert await gate.status("Bearer reader-token") == 200
    assert api.reviews == 2
    api.down = True
    assert await gate.status("Bearer other-token") == 503
    api.down = False
    assert await gate.status("Bearer other-token") == 403  # asked again, not the failure kept
    assert await gate.status("Basic dXNlcjpwdw==") == 401
