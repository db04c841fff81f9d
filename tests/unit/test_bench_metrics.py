"""bench.metrics: Prometheus text, labels, queue state and queue-wait histograms."""

from __future__ import annotations

import math

import pytest

from bench import metrics

C = "podset-v1alpha1-controller"
GVK = "workloads.playbook-operator.io/v1alpha1, Kind=PodSet"


def _ours(high: float, low: float, active: float, runs: float, waits: dict[str, list[float]]) -> str:
    """An exposition as playbook-operator's runner/metrics.py writes it."""
    lines = [
        f'ansible_operator_reconciles_count{{GVK="{GVK}"}} {runs}',
        f'workqueue_depth{{controller="{C}",name="{C}"}} {high + low}',
        f'playbook_operator_workqueue_depth{{controller="{C}",priority="high"}} {high}',
        f'playbook_operator_workqueue_depth{{controller="{C}",priority="low"}} {low}',
        f'controller_runtime_active_workers{{controller="{C}"}} {active}',
    ]
    for priority, cumulative in waits.items():
        bounds = ["0.01", "0.1", "1.0", "10.0", "100.0", "1000.0", "+Inf"]
        for le, n in zip(bounds, cumulative, strict=True):
            lines.append(f'workqueue_queue_duration_seconds_bucket{{controller="{C}",le="{le}",name="{C}",'
                         f'priority="{priority}"}} {n}')
        lines.append(f'workqueue_queue_duration_seconds_count{{controller="{C}",name="{C}",priority="{priority}"}} '
                     f'{cumulative[-1]}')
        lines.append(f'workqueue_queue_duration_seconds_sum{{controller="{C}",name="{C}",priority="{priority}"}} '
                     f'{cumulative[-1] * 2.0}')
    return "# HELP x y\n# TYPE x gauge\n" + "\n".join(lines) + "\n"


def test_prometheus_parsing_and_sums() -> None:
    text = """# HELP ansible_operator_reconciles How long
# TYPE ansible_operator_reconciles histogram
ansible_operator_reconciles_bucket{GVK="g/v, Kind=PodSet",le="1"} 2
ansible_operator_reconciles_count{GVK="g/v, Kind=PodSet"} 7
ansible_operator_reconciles_count{GVK="g/v, Kind=Example"} 3
workqueue_depth{name="x"} 0
"""
    samples = metrics.parse_prometheus(text)
    assert metrics.metric_sum(samples, "ansible_operator_reconciles_count") == 10
    assert metrics.metric_sum(samples, "ansible_operator_reconciles_count", "PodSet") == 7
    assert metrics.metric_sum(samples, "missing") == 0


def test_labels_with_commas_and_escapes() -> None:
    name, labels = metrics.split_key('m{GVK="g/v, Kind=PodSet",msg="say \\"hi\\"",le="+Inf"}')
    assert name == "m"
    assert labels == {"GVK": "g/v, Kind=PodSet", "msg": 'say "hi"', "le": "+Inf"}
    assert metrics.split_key("plain") == ("plain", {})


def test_our_queue_by_priority() -> None:
    samples = metrics.parse_prometheus(_ours(high=2, low=5, active=1, runs=40, waits={}))
    state = metrics.queue_state(samples, "podset", "PodSet")
    assert state.depth == {"high": 2.0, "low": 5.0}
    assert state.waiting == 7.0
    assert state.active == 1.0
    assert state.runs == 40.0


def test_the_sdks_queue_has_one_depth() -> None:
    text = (f'workqueue_depth{{name="podset-controller"}} 3\n'
            f'workqueue_depth{{name="other-controller"}} 9\n'
            f'controller_runtime_active_workers{{controller="podset-controller"}} 2\n'
            f'ansible_operator_reconciles_count{{GVK="{GVK}"}} 11\n')
    state = metrics.queue_state(metrics.parse_prometheus(text), "podset", "PodSet")
    assert state.depth == {metrics.ALL: 3.0}
    assert state.active == 2.0 and state.runs == 11.0


def test_a_queue_that_says_nothing() -> None:
    state = metrics.queue_state({}, "podset", "PodSet")
    assert state == metrics.QueueState(None, None, None)
    assert state.waiting is None


def test_queue_wait_histograms_by_priority_and_since_a_reading() -> None:
    before = metrics.histograms(metrics.parse_prometheus(_ours(0, 0, 0, 0, {
        "high": [0, 1, 1, 1, 1, 1, 1], "low": [0, 0, 0, 2, 2, 2, 2]})), metrics.QUEUE_WAIT, "podset")
    after = metrics.histograms(metrics.parse_prometheus(_ours(0, 0, 0, 0, {
        "high": [0, 5, 10, 11, 11, 11, 11], "low": [0, 0, 0, 2, 10, 50, 52]})), metrics.QUEUE_WAIT, "podset")
    assert set(after) == {"high", "low"}
    assert after["high"].buckets[-1] == (math.inf, 11.0)
    since = metrics.histograms_since(after, before)
    high, low = since["high"], since["low"]
    assert high.count == 10 and low.count == 50
    assert high.total == pytest.approx(20.0)  # the fake sum is 2 s per observation
    assert high.mean() == pytest.approx(2.0)
    # 4 of the 10 new high waits within 0.1 s, 9 within 1 s, all within 10 s.
    assert high.quantile_bound(0.4) == 0.1
    assert high.quantile_bound(0.5) == 1.0
    assert high.quantile_bound(0.95) == 10.0
    # 8 low within 100 s, 48 within 1,000 s, 2 beyond.
    assert low.quantile_bound(0.5) == 1000.0
    assert math.isinf(low.quantile_bound(0.99) or 0)
    assert low.summary() == {"n": 50, "mean": pytest.approx(2.0), "p50_at_most": 1000.0, "p95_at_most": 1000.0}


def test_an_empty_histogram() -> None:
    h = metrics.Histogram(((1.0, 0.0), (math.inf, 0.0)), 0.0, 0.0)
    assert h.mean() is None and h.quantile_bound(0.5) is None
    assert h.summary() == {"n": 0.0, "mean": None, "p50_at_most": None, "p95_at_most": None}
    assert h.as_dict() == {"buckets": [[1.0, 0.0], ["+Inf", 0.0]], "count": 0.0, "sum": 0.0}


def test_the_sdks_histogram_has_no_priority() -> None:
    text = ('workqueue_queue_duration_seconds_bucket{name="podset-controller",le="1"} 3\n'
            'workqueue_queue_duration_seconds_bucket{name="podset-controller",le="+Inf"} 4\n'
            'workqueue_queue_duration_seconds_count{name="podset-controller"} 4\n'
            'workqueue_queue_duration_seconds_sum{name="podset-controller"} 6\n')
    waits = metrics.histograms(metrics.parse_prometheus(text), metrics.QUEUE_WAIT, "podset")
    assert list(waits) == [metrics.ALL]
    assert waits[metrics.ALL].quantile_bound(0.5) == 1.0
    assert math.isinf(waits[metrics.ALL].quantile_bound(0.95) or 0)
