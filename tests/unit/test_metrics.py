"""Metric names, types and labels as Prometheus sees them, and the recording functions."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from runner import __version__, settings
from runner.metrics import Metrics, controller_name, gvk_label, task_outcome

GVK = "examples.playbook-operator.io/v1alpha1, Kind=Example"
WATCH = {"group": "examples.playbook-operator.io", "version": "v1alpha1", "kind": "Example"}


def scrape(metrics: Metrics) -> tuple[dict[str, str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """Family types by name, and every sample by (sample name, labels)."""
    body, _ = metrics.render()
    types: dict[str, str] = {}
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return types, samples


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /,
          **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def test_the_sdk_labels() -> None:
    assert gvk_label("examples.playbook-operator.io", "v1alpha1", "Example") == GVK
    assert gvk_label("", "v1", "ConfigMap") == "/v1, Kind=ConfigMap"  # as Go prints the core group
    assert controller_name("v1alpha1", "Example") == "example-v1alpha1-controller"


def test_build_info_is_a_gauge_with_commit_and_version() -> None:
    types, samples = scrape(Metrics(commit="abc123"))
    assert types["ansible_operator_build_info"] == "gauge"
    assert value(samples, "ansible_operator_build_info", commit="abc123", version=__version__) == 1.0


def test_build_info_commit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAYBOOK_OPERATOR_COMMIT", "feedbeef")
    _, samples = scrape(Metrics(commit=settings.parse().commit))
    assert value(samples, "ansible_operator_build_info", commit="feedbeef", version=__version__) == 1.0


def test_a_reconcile_counts_in_the_sdk_metrics_and_ours() -> None:
    metrics = Metrics()
    metrics.record_reconcile(**WATCH, result="succeeded", duration=0.3, changed=2)
    metrics.record_reconcile(**WATCH, result="succeeded", duration=4.0, changed=0)
    metrics.record_reconcile(**WATCH, result="failed", duration=1.0, changed=0)
    types, samples = scrape(metrics)

    # The SDK's: a gauge (not a counter) incremented per result, and a histogram in seconds.
    assert types["ansible_operator_reconcile_result"] == "gauge"
    assert value(samples, "ansible_operator_reconcile_result", GVK=GVK, result="succeeded") == 2.0
    assert value(samples, "ansible_operator_reconcile_result", GVK=GVK, result="failed") == 1.0
    assert types["ansible_operator_reconciles"] == "histogram"
    assert value(samples, "ansible_operator_reconciles_count", GVK=GVK) == 3.0
    assert value(samples, "ansible_operator_reconciles_sum", GVK=GVK) == pytest.approx(5.3)
    assert value(samples, "ansible_operator_reconciles_bucket", GVK=GVK, le="0.5") == 1.0
    assert value(samples, "ansible_operator_reconciles_bucket", GVK=GVK, le="5.0") == 3.0
    # client_golang's default buckets, no more.
    edges = sorted(float(dict(labels)["le"]) for (metric, labels) in samples
                   if metric == "ansible_operator_reconciles_bucket")
    assert edges == [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, float("inf")]

    # Ours, per watch: whether anything changed, and durations by result.
    assert types["playbook_operator_reconciles"] == "counter"
    assert value(samples, "playbook_operator_reconciles_total", **WATCH, result="succeeded", changed="true") == 1.0
    assert value(samples, "playbook_operator_reconciles_total", **WATCH, result="succeeded", changed="false") == 1.0
    assert value(samples, "playbook_operator_reconciles_total", **WATCH, result="failed", changed="false") == 1.0
    assert types["playbook_operator_reconcile_duration_seconds"] == "histogram"
    assert value(samples, "playbook_operator_reconcile_duration_seconds_count", **WATCH, result="succeeded") == 2.0


def test_a_reconcile_result_must_be_the_sdks() -> None:
    with pytest.raises(ValueError, match="result"):
        Metrics().record_reconcile(**WATCH, result="ok", duration=1.0)


def test_task_outcomes() -> None:
    assert task_outcome({"outcome": "ok", "changed": False}) == "ok"
    assert task_outcome({"outcome": "ok", "changed": True}) == "changed"
    assert task_outcome({"outcome": "failed", "changed": True}) == "failed"
    assert task_outcome({"outcome": "unreachable"}) == "failed"
    assert task_outcome({"outcome": "skipped"}) == "skipped"
    assert task_outcome({"outcome": "ignored"}) == "ignored"


def test_task_results_count_by_outcome_with_durations() -> None:
    metrics = Metrics()
    tasks = [
        {"task": "Gather", "role": "example", "outcome": "ok", "changed": False, "duration": 0.02},
        {"task": "ConfigMap", "role": "example", "outcome": "ok", "changed": True, "duration": 0.4},
        {"task": "Optional", "role": "example", "outcome": "skipped", "changed": False, "duration": None},
        {"task": "Broken", "role": "example", "outcome": "failed", "changed": False, "duration": 1.5},
        {"task": "Also ok", "role": "example", "outcome": "ok", "changed": False, "duration": 0.03},
    ]
    metrics.record_tasks(**WATCH, tasks=tasks)
    types, samples = scrape(metrics)
    assert types["playbook_operator_ansible_tasks"] == "counter"
    counts = {o: value(samples, "playbook_operator_ansible_tasks_total", **WATCH, outcome=o)
              for o in ("ok", "changed", "skipped", "failed")}
    assert counts == {"ok": 2.0, "changed": 1.0, "skipped": 1.0, "failed": 1.0}
    assert types["playbook_operator_ansible_task_duration_seconds"] == "histogram"
    duration = "playbook_operator_ansible_task_duration_seconds"
    assert value(samples, f"{duration}_count", **WATCH, outcome="ok") == 2.0
    assert value(samples, f"{duration}_sum", **WATCH, outcome="ok") == pytest.approx(0.05)
    # A result without a duration is counted but not timed.
    assert value(samples, f"{duration}_count", **WATCH, outcome="skipped") is None


def test_queues_are_read_at_scrape_time() -> None:
    metrics = Metrics()
    depth = [3]
    metrics.track_queue(**WATCH, depth=lambda: depth[0], in_flight=lambda: 1, workers=4)
    types, samples = scrape(metrics)
    name = "example-v1alpha1-controller"
    assert types["workqueue_depth"] == "gauge"
    assert value(samples, "workqueue_depth", name=name, controller=name) == 3.0
    assert value(samples, "controller_runtime_active_workers", controller=name) == 1.0
    assert value(samples, "controller_runtime_max_concurrent_reconciles", controller=name) == 4.0
    depth[0] = 0
    _, samples = scrape(metrics)
    assert value(samples, "workqueue_depth", name=name, controller=name) == 0.0


def test_queue_depth_by_priority() -> None:
    metrics = Metrics()
    waiting = {"high": 1, "low": 40}
    metrics.track_queue(**WATCH, depth=lambda: sum(waiting.values()), in_flight=lambda: 2, workers=2,
                        depth_by_priority=lambda: waiting)
    types, samples = scrape(metrics)
    name = "example-v1alpha1-controller"
    assert types["playbook_operator_workqueue_depth"] == "gauge"
    assert value(samples, "playbook_operator_workqueue_depth", controller=name, priority="high") == 1.0
    assert value(samples, "playbook_operator_workqueue_depth", controller=name, priority="low") == 40.0
    assert value(samples, "workqueue_depth", name=name, controller=name) == 41.0


def test_queue_wait_by_priority() -> None:
    metrics = Metrics()
    metrics.record_queue_wait(version="v1alpha1", kind="Example", priority="high", seconds=0.2)
    metrics.record_queue_wait(version="v1alpha1", kind="Example", priority="low", seconds=30)
    types, samples = scrape(metrics)
    name = "example-v1alpha1-controller"
    assert types["workqueue_queue_duration_seconds"] == "histogram"
    labels = {"name": name, "controller": name}
    assert value(samples, "workqueue_queue_duration_seconds_count", **labels, priority="high") == 1.0
    assert value(samples, "workqueue_queue_duration_seconds_bucket", **labels, priority="high", le="1.0") == 1.0
    assert value(samples, "workqueue_queue_duration_seconds_bucket", **labels, priority="low", le="10.0") == 0.0
    assert value(samples, "workqueue_queue_duration_seconds_sum", **labels, priority="low") == 30.0


def test_leader_status() -> None:
    metrics = Metrics()
    metrics.set_leader("abc-playbook-operator", True)
    types, samples = scrape(metrics)
    assert types["leader_election_master_status"] == "gauge"
    assert value(samples, "leader_election_master_status", name="abc-playbook-operator") == 1.0
    metrics.set_leader("abc-playbook-operator", False)
    _, samples = scrape(metrics)
    assert value(samples, "leader_election_master_status", name="abc-playbook-operator") == 0.0


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()  # a second one would collide in a shared registry
    first.record_reconcile(**WATCH, result="succeeded", duration=1.0)
    _, samples = scrape(second)
    assert value(samples, "ansible_operator_reconcile_result", GVK=GVK, result="succeeded") is None
    assert REGISTRY.get_sample_value("ansible_operator_build_info", {"commit": "unknown", "version": __version__}) \
        is None


def test_openmetrics_when_asked() -> None:
    body, content_type = Metrics().render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    body, content_type = Metrics().render()
    assert content_type.startswith("text/plain")


def test_resource_created_at_is_operator_libs_gauge() -> None:
    m = Metrics()
    obj = {"metadata": {"name": "web", "namespace": "shop", "creationTimestamp": "2026-12-02T06:00:00Z"}}
    m.set_resource_created(obj, group="examples.playbook-operator.io", version="v1alpha1", kind="Example")
    labels = {"name": "web", "namespace": "shop", "group": "examples.playbook-operator.io", "version": "v1alpha1",
              "kind": "Example"}
    assert m.registry.get_sample_value("resource_created_at_seconds", labels) == 1796191200.0
    m.forget_resource(obj, group="examples.playbook-operator.io", version="v1alpha1", kind="Example")
    assert m.registry.get_sample_value("resource_created_at_seconds", labels) is None
    m.forget_resource(obj, group="examples.playbook-operator.io", version="v1alpha1", kind="Example")  # twice: fine
    m.set_resource_created({"metadata": {"name": "new"}}, group="g", version="v", kind="K")  # no timestamp yet
    assert m.registry.get_sample_value("resource_created_at_seconds", {**labels, "name": "new"}) is None
