"""Bind addresses as controller-runtime spells them, and the endpoints over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from hack.devkit import free_port
from runner.metrics import Metrics
from runner.probes import ProbeServer
from runner.settings import BindAddress, parse_bind_address


@pytest.mark.parametrize(("text", "expected"), [
    (":8080", BindAddress(None, 8080)),
    ("127.0.0.1:6789", BindAddress("127.0.0.1", 6789)),
    ("[::1]:8080", BindAddress("::1", 8080)),
    ("localhost:0", BindAddress("localhost", 0)),
    ("0", None),
    ("", None),
])
def test_bind_addresses(text: str, expected: BindAddress | None) -> None:
    assert parse_bind_address(text) == expected


@pytest.mark.parametrize("text", ["8080", "host:", ":http", ":70000", "::1:8080"])
def test_bad_bind_addresses(text: str) -> None:
    with pytest.raises(ValueError, match="bind address"):
        parse_bind_address(text)


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_metrics_and_probes_on_two_ports() -> None:
    readiness = [(False, "leader election: standby")]
    server = ProbeServer(metrics=Metrics(), metrics_address=BindAddress("127.0.0.1", 0),
                         health_address=BindAddress("127.0.0.1", 0), ready=lambda: readiness[0])
    await server.start()
    try:
        (mhost, mport), = server.bound["GET /metrics"]
        (hhost, hport), = server.bound["GET /healthz"]
        assert mport != hport

        status, content_type, text = await get(f"http://{mhost}:{mport}/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        assert "ansible_operator_build_info{" in text

        assert (await get(f"http://{hhost}:{hport}/healthz"))[::2] == (200, "ok")
        assert (await get(f"http://{hhost}:{hport}/readyz"))[::2] == (503, "leader election: standby")
        readiness[0] = (True, "leading")
        assert (await get(f"http://{hhost}:{hport}/readyz"))[::2] == (200, "ok")

        # Each endpoint only where it was asked for.
        assert (await get(f"http://{hhost}:{hport}/metrics"))[0] == 404
        assert (await get(f"http://{mhost}:{mport}/healthz"))[0] == 404
    finally:
        await server.stop()


async def test_one_address_for_everything_and_disabled_metrics() -> None:
    server = ProbeServer(metrics=Metrics(), metrics_address=None, health_address=BindAddress("127.0.0.1", 0))
    await server.start()
    try:
        assert "GET /metrics" not in server.bound
        (host, port), = server.bound["GET /readyz"]
        assert (await get(f"http://{host}:{port}/readyz"))[::2] == (200, "ok")
    finally:
        await server.stop()


async def test_a_taken_port_fails_the_start() -> None:
    first = ProbeServer(metrics=None, metrics_address=None, health_address=BindAddress("127.0.0.1", 0))
    await first.start()
    try:
        (_, port), = first.bound["GET /healthz"]
        second = ProbeServer(metrics=Metrics(), metrics_address=BindAddress("127.0.0.1", 0),
                             health_address=BindAddress("127.0.0.1", port))
        with pytest.raises(OSError):
            await second.start()
    finally:
        await first.stop()


async def test_one_explicit_address_serves_both() -> None:
    port = free_port()
    address = BindAddress("127.0.0.1", port)
    server = ProbeServer(metrics=Metrics(), metrics_address=address, health_address=address)
    await server.start()
    try:
        assert (await get(f"http://127.0.0.1:{port}/metrics"))[0] == 200
        assert (await get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
    finally:
        await server.stop()
