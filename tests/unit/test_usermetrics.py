"""User metrics (operator_sdk.util.osdk_metric): the SDK's request semantics, both exposition
formats, the endpoint over real HTTP, and the module run by a real ansible-playbook."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from runner.metrics import Metrics
from runner.probes import ProbeServer
from runner.settings import BindAddress
from runner.usermetrics import USER_METRICS_ENV, UserMetricError, UserMetrics
from tests.support import ROOT


def request(name: str, kind: str, **spec: Any) -> dict[str, Any]:
    return {"name": name, "description": f"{name} help", kind: spec}


# The memcached-molecule operator's metric tasks, in order (ansible-operator-plugins v1.42.2,
# testdata/memcached-molecule-operator/roles/memcached/tasks/main.yml).
SDK_ROLE = [
    request("sanity_counter", "counter"), request("sanity_gauge", "gauge"),
    request("sanity_histogram", "histogram"), request("sanity_summary", "summary"),
    request("counter_inc_test", "counter"), request("counter_inc_test", "counter", increment=True),
    request("counter_add_test", "counter"), request("counter_add_test", "counter", add=2),
    request("gauge_set_test", "gauge", set=5),
    request("gauge_add_test", "gauge"), request("gauge_add_test", "gauge", add=7),
    request("gauge_sub_test", "gauge"), request("gauge_sub_test", "gauge", subtract=7),
    request("gauge_time_test", "gauge", set_to_current_time=True),
    request("summary_test", "summary"), request("summary_test", "summary", observe=2),
    request("histogram_test", "histogram"), request("histogram_test", "histogram", observe=2),
]
# What that operator's molecule verify looks for in /metrics (molecule/default/tasks/memcached_test.yml).
SDK_EXPECTS = ["sanity_counter 0", "sanity_gauge 0", "sanity_histogram_bucket", "sanity_summary summary",
               "counter_inc_test 1", "counter_add_test 2", "gauge_set_test 5", "gauge_add_test 7",
               "gauge_sub_test -7", "gauge_time_test 1", "summary_test_sum 2", "histogram_test_sum 2"]


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """By (name, labels); the parser names a counter's sample `<name>_total` whatever the text says."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_sdk_test_operators_metrics_read_as_its_verify_expects() -> None:
    metrics = Metrics()
    for r in SDK_ROLE:
        metrics.user.apply(r)
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for expected in SDK_EXPECTS:
        assert expected in text, expected
    got = samples(text)
    assert got[("counter_inc_test_total", frozenset())] == 1
    assert got[("gauge_sub_test", frozenset())] == -7
    # Created without an observation: nothing observed (the SDK would record a 0).
    assert got[("histogram_test_count", frozenset())] == 1
    assert got[("histogram_test_bucket", frozenset({("le", "2.5")}))] == 1
    assert got[("histogram_test_bucket", frozenset({("le", "1.0")}))] == 0
    assert got[("sanity_summary_count", frozenset())] == 0
    # The operator's own metrics are all still there beside them.
    assert ("ansible_operator_build_info", frozenset({("commit", "unknown"), ("version", "0.1.0")})) in got


def test_openmetrics_has_one_eof_and_counters_end_in_total() -> None:
    metrics = Metrics()
    for r in SDK_ROLE:
        metrics.user.apply(r)
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    text = body.decode()
    assert content_type.startswith("application/openmetrics-text")
    assert text.count("# EOF") == 1 and text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}  # the strict parser accepts it whole
    assert families["counter_inc_test"].type == "counter"
    assert [s.value for s in families["counter_inc_test"].samples if s.name == "counter_inc_test_total"] == [1]
    assert families["gauge_add_test"].samples[0].value == 7


def test_histogram_buckets_count_up_to_each_edge() -> None:
    user = UserMetrics()
    for value in (0.001, 0.3, 0.3, 7, 100):
        user.apply(request("lat", "histogram", observe=value))
    got = samples(user.text())
    assert got[("lat_bucket", frozenset({("le", "0.005")}))] == 1
    assert got[("lat_bucket", frozenset({("le", "0.5")}))] == 3
    assert got[("lat_bucket", frozenset({("le", "10.0")}))] == 4
    assert got[("lat_bucket", frozenset({("le", "+Inf")}))] == got[("lat_count", frozenset())] == 5
    assert got[("lat_sum", frozenset())] == pytest.approx(107.601)


def test_operations_follow_the_sdks_order_and_a_set_of_zero_is_none() -> None:
    user = UserMetrics()
    user.apply(request("g", "gauge", set=4))
    user.apply(request("g", "gauge", increment=True, add=10))  # increment first
    user.apply(request("g", "gauge", set=0))
    assert samples(user.text())[("g", frozenset())] == 5


@pytest.mark.parametrize(("body", "message"), [
    (request("c", "counter", add=-1), "cannot decrease"),
    ({"name": "c", "counter": {}, "gauge": {}}, "exactly one of counter, gauge, histogram or summary, got counter and "
                                                "gauge"),
    ({"name": "c"}, "exactly one of"),
    (request("bad-name", "gauge"), "Prometheus metric name"),
    (request("ansible_operator_build_info", "gauge"), "the operator's own"),
    (request("ansible_operator_reconciles_bucket", "counter"), "the operator's own"),
    (request("g", "gauge", add="7"), "finite number"),
    (request("g", "gauge", set=float("nan")), "finite number"),
    (request("c", "counter", increment=True) | {"counter": [1]}, "must be an object"),
    ([1, 2], "JSON object"),
])
def test_bad_requests_are_refused_with_the_reason(body: Any, message: str) -> None:
    user = Metrics().user
    with pytest.raises(UserMetricError, match=message):
        user.apply(body)
    assert user.text() == ""  # a refused request creates nothing


def test_the_first_request_fixes_the_kind() -> None:
    user = UserMetrics()
    user.apply(request("jobs", "counter", increment=True))
    with pytest.raises(UserMetricError, match="cannot change metric type of jobs, which is a counter"):
        user.apply(request("jobs", "gauge", set=3))
    assert samples(user.text())[("jobs_total", frozenset())] == 1


async def test_the_endpoint_takes_posts_and_metrics_serves_them() -> None:
    metrics = Metrics()
    server = ProbeServer(metrics=metrics, metrics_address=BindAddress("127.0.0.1", 0), health_address=None,
                         user_metrics_address=BindAddress("127.0.0.1", 0))
    await server.start()
    try:
        (_, post_port), = server.bound["POST /metrics"]
        (_, get_port), = server.bound["GET /metrics"]
        assert post_port != get_port
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{post_port}/metrics",
                                    json=request("jobs", "counter", add=3)) as resp:
                assert resp.status == 200
            async with session.post(f"http://127.0.0.1:{post_port}/metrics",
                                    json=request("jobs", "counter", add=-3)) as resp:
                assert (resp.status, await resp.text()) == (400, "counter metrics cannot decrease in value")
            async with session.post(f"http://127.0.0.1:{post_port}/metrics", data=b"{not json") as resp:
                assert resp.status == 400 and "not JSON" in await resp.text()
            # Posting is only for the user-metrics address: the scrape address takes no writes.
            async with session.post(f"http://127.0.0.1:{get_port}/metrics", json=request("x", "gauge")) as resp:
                assert resp.status == 405
            async with session.get(f"http://127.0.0.1:{get_port}/metrics") as resp:
                text = await resp.text()
        assert samples(text)[("jobs_total", frozenset())] == 3
        assert "# HELP jobs jobs help" in text
    finally:
        await server.stop()


PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Count a job
      operator_sdk.util.osdk_metric:
        name: jobs_done
        description: Jobs done
        counter:
          increment: true
      register: counted
    - name: Try to decrease it
      operator_sdk.util.osdk_metric:
        name: jobs_done
        description: Jobs done
        counter:
          add: -1
      ignore_errors: true
      register: refused
    - name: Report
      ansible.builtin.copy:
        content: "{{ {'counted': counted, 'refused': refused} | to_json }}"
        dest: "{{ out }}"
      check_mode: false
"""


async def run_play(tmp_path: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    out = tmp_path / "out.json"
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
        "-e", f"out={out}", "-e", f"ansible_python_interpreter={sys.executable}", *args, str(play),
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
             **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    assert proc.returncode == 0, output.decode()
    return dict(json.loads(out.read_text()))


async def test_the_module_posts_to_the_endpoint_the_run_names(tmp_path: Path) -> None:
    metrics = Metrics()
    server = ProbeServer(metrics=metrics, metrics_address=None, health_address=None,
                         user_metrics_address=BindAddress("127.0.0.1", 0))
    await server.start()
    try:
        (_, port), = server.bound["POST /metrics"]
        result = await run_play(tmp_path, {USER_METRICS_ENV: f"http://127.0.0.1:{port}/metrics"})
    finally:
        await server.stop()
    assert result["counted"]["changed"] is False  # a metric is not cluster state: roles stay idempotent
    assert result["refused"]["failed"] is True
    assert result["refused"]["msg"] == "metric jobs_done: counter metrics cannot decrease in value"
    assert samples(metrics.user.text())[("jobs_done_total", frozenset())] == 1


async def test_the_module_sends_nothing_in_check_mode_or_without_an_endpoint(tmp_path: Path) -> None:
    metrics = Metrics()
    server = ProbeServer(metrics=metrics, metrics_address=None, health_address=None,
                         user_metrics_address=BindAddress("127.0.0.1", 0))
    await server.start()
    try:
        (_, port), = server.bound["POST /metrics"]
        checked = await run_play(tmp_path, {USER_METRICS_ENV: f"http://127.0.0.1:{port}/metrics"}, "--check")
    finally:
        await server.stop()
    assert metrics.user.text() == ""
    assert checked["counted"]["metric"] == {"name": "jobs_done", "description": "Jobs done",
                                            "counter": {"increment": True}}
    nowhere = await run_play(tmp_path, {USER_METRICS_ENV: ""})
    assert not nowhere["refused"]["failed"]  # nothing to refuse it: not recorded, with a warning
    assert any("not recorded" in w for w in nowhere["counted"]["warnings"])
