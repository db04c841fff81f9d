"""bench.report and bench.kube.tally: figures, ratios, targets, the table and the results file."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bench import report, scenarios
from bench.kube import podset, replicaset, tally


def _systems() -> dict[str, dict[str, Any]]:
    def single(create: list[float]) -> dict[str, Any]:
        return {"samples": {"create_to_3_ready": create, "scale_3_to_10": create, "scale_10_to_3": create,
                            "pod_deleted_to_replaced": create}, "timeouts": {}, "iterations": len(create)}

    def cost(cpu: float, runs: float | None, seconds: float) -> dict[str, Any]:
        return {"cpu_seconds": cpu, "reconciles": runs, "seconds": seconds,
                "cpu_seconds_per_reconcile": cpu / runs if runs else None,
                "reconciles_per_second": runs / seconds if runs is not None else None}

    settle = {"seconds": 12.0, "cap_seconds": 1800, "cap_hit": False, "quiet_seconds": 10,
              "read": ["queue depth by priority", "busy workers", "Ansible runs"], "depth_at_end": {"high": 0},
              "runs_meanwhile": 4.0}
    waits = {"high": {"n": 2, "mean": 0.01, "p50_at_most": 0.1, "p95_at_most": 0.1},
             "low": {"n": 3, "mean": 20.0, "p50_at_most": 100.0, "p95_at_most": 100.0}}
    return {
        "ours": {"title": "playbook-operator", "scenarios": {
            "single": single([0.5, 0.6, 0.7]),
            "burst": {"samples": {"per_set_ready": [1.0, 2.0]}, "sets": 2, "ready_sets": 2, "all_ready_seconds": 2.0,
                      "cap_seconds": 90, "cost": cost(2.0, 4.0, 2.0)},
            "background": {"sets": 10, "ready_sets": 10, "seconds": 200.0, "cap_seconds": 900,
                           "unschedulable_pods_peak": 0, "cost": cost(30.0, 25.0, 200.0)},
            "steady": {"cpu_seconds": 0.5, "ansible_runs": 0, "writes": 0, "rss_bytes": 100 * report.MB,
                       "pss_bytes": 60 * report.MB, "settle": settle},
            "among": {"samples": {"new_set_ready": [1.0, 1.5], "first_reconcile_start": [0.04, 0.06]},
                      "timeouts": 0, "cap_seconds": 120, "settle": settle, "queue_waits": waits},
            "restart": {"new_at_start_seconds": 3.0, "startup_sync_seconds": 10.0, "sync_cap_seconds": 60}}},
        "sdk": {"title": "SDK ansible-operator", "scenarios": {
            "single": single([5.0, 6.0, 7.0]),
            "burst": {"samples": {"per_set_ready": [30.0]}, "sets": 2, "ready_sets": 1, "all_ready_seconds": None,
                      "cap_seconds": 90, "cost": cost(8.0, 4.0, 8.0)},
            "steady": {"cpu_seconds": 2.0, "ansible_runs": 0, "writes": 0, "rss_bytes": 300 * report.MB,
                       "pss_bytes": 200 * report.MB},
            "restart": {"new_at_start_seconds": None, "startup_sync_seconds": None, "sync_cap_seconds": 60}}},
        "native": {"title": "native ReplicaSet", "scenarios": {
            "single": single([0.2, 0.25, 0.3]),
            "burst": {"samples": {"per_set_ready": [0.5]}, "sets": 2, "ready_sets": 2, "all_ready_seconds": 1.0,
                      "cap_seconds": 90, "cost": cost(0.4, None, 1.0)},
            "background": {"sets": 10, "ready_sets": 10, "seconds": 120.0, "cap_seconds": 900,
                           "unschedulable_pods_peak": 0, "cost": cost(3.0, None, 120.0)},
            "steady": {"cpu_seconds": 0.25, "ansible_runs": None, "writes": 0, "rss_bytes": 120 * report.MB,
                       "pss_bytes": 70 * report.MB}}},
    }


def _by_key(rows: list[report.Figure]) -> dict[str, report.Figure]:
    return {f.key: f for f in rows}


def test_figures_medians_and_ratios() -> None:
    rows = _by_key(report.figures(_systems(), {"summary": {"warm": {"median": 0.25}, "sdk-style": {"median": 2.5}}}))
    create = rows["create_median"]
    assert create.values == {"ours": 0.6, "sdk": 6.0, "native": 0.25}
    assert create.as_dict()["ratios"]["vs_sdk"] == pytest.approx(10.0)
    assert create.as_dict()["ratios"]["vs_native"] == pytest.approx(0.25 / 0.6)
    assert create.notes["ours"] == "n=3"
    assert rows["noop_reconcile"].values == {"ours": 0.25, "sdk": 2.5, "native": None}
    assert rows["rss"].values["sdk"] == 300


def test_a_capped_figure_says_so() -> None:
    rows = _by_key(report.figures(_systems()))
    burst = rows["burst_all"]
    assert burst.values["sdk"] is None
    assert burst.notes["sdk"] == "not within 90 s"
    assert rows["startup_sync"].notes["sdk"] == "not within 60 s"
    assert "sdk" not in rows["create_median"].notes or rows["create_median"].notes["sdk"] == "n=3"


def test_zero_over_zero_is_no_ratio() -> None:
    rows = _by_key(report.figures(_systems()))
    assert rows["idle_writes"].as_dict()["ratios"] == {"vs_sdk": None, "vs_native": None}


def _target(checks: list[dict[str, Any]], start: str) -> dict[str, Any]:
    return next(c for c in checks if c["target"].startswith(start))


def test_targets() -> None:
    rows = report.figures(_systems(), {"summary": {"warm": {"median": 0.2}, "sdk-style": {"median": 2.5}}})
    checks = report.targets(rows)
    assert [c["target"] for c in checks] == [t.label for t in report.TARGETS]
    assert _target(checks, "create -> 3 Ready")["met"] is True  # 0.6 < 0.8
    assert _target(checks, "No-op reconcile")["met"] is True
    converged = _target(checks, "A new PodSet's first reconcile among 1,000 converged")
    assert converged["met"] is True  # its first reconcile starts 0.05 s after create
    assert [c["met"] for c in converged["checks"]] == [True, True]
    assert converged["also"][0]["value"] == pytest.approx(1.25)  # 3 Ready, shown beside
    converging = _target(checks, "A new PodSet's first reconcile among 1,000 converging")
    assert converging["met"] is None  # the scenario did not run
    assert _target(checks, "Idle after")["met"] is True
    assert _target(checks, "PSS")["met"] is True
    # ours 200 s against native 120 s: within 2x
    assert _target(checks, "1,000 PodSets converge")["checks"][0]["value"] == pytest.approx(200 / 120)
    assert _target(checks, "1,000 PodSets converge")["met"] is True


def test_the_sdks_capped_burst_gives_a_lower_bound() -> None:
    rows = {f.key: f for f in report.figures(_systems())}
    burst = rows["burst_all"]
    assert burst.capped == {"sdk": 90}
    check = report.Check("SDK/ours", "burst_all", "sdk/ours", ">=", 5.0)
    got = report.evaluate(check, burst)
    assert got["value"] == pytest.approx(45.0) and got["at_least"] is True
    assert got["met"] is True  # at least 45x is at least 5x
    assert report.evaluate(report.Check("x", "burst_all", "sdk/ours", ">=", 50.0), burst)["met"] is None
    native = report.evaluate(report.Check("ours/native", "burst_all", "ours/native", "<=", 3.0), burst)
    assert native["value"] == pytest.approx(2.0) and native["met"] is True
    burst_target = _target(report.targets(list(rows.values())), "Burst of 100")
    assert burst_target["met"] is True
    assert ">= 45.0x" in report.targets_text([burst_target])


def test_a_capped_figure_of_ours_decides_a_limit_only_when_the_cap_breaks_it() -> None:
    fig = report.Figure("f", "f", "s", {"ours": None, "sdk": 10.0, "native": 1.0}, {}, capped={"ours": 3.0})
    assert report.evaluate(report.Check("m", "f", "ours", "<", 2.0), fig)["met"] is False
    assert report.evaluate(report.Check("m", "f", "ours", "<", 5.0), fig)["met"] is None
    assert report.evaluate(report.Check("m", "f", "ours/native", "<=", 2.0), fig)["met"] is False
    assert report.evaluate(report.Check("m", "f", "sdk/ours", ">=", 2.0), fig)["met"] is None
    zero = report.Figure("z", "z", "", {"ours": None}, {}, capped={"ours": 4.0})
    assert report.evaluate(report.Check("runs", "z", "ours", "==", 0.0), zero)["met"] is False
    missing = report.evaluate(report.Check("m", "nope", "ours", "<", 1.0), None)
    assert missing["value"] is None and missing["met"] is None


def test_a_missed_check_misses_the_target_whatever_the_others() -> None:
    assert report._all([True, None, False]) is False
    assert report._all([True, None]) is None
    assert report._all([True, True]) is True


def test_targets_text_says_where_each_figure_stands() -> None:
    rows = report.figures(_systems(), {"summary": {"warm": {"median": 0.3}, "sdk-style": {"median": 2.5}}})
    text = report.targets_text(report.targets(rows), quick=True)
    assert "QUICK" in text.splitlines()[0]
    assert "MISSED  No-op reconcile of the 4-task role: under 0.25 s" in text
    assert "median 0.30 s (< 0.25 s)" in text
    assert "n/a     A new PodSet's first reconcile among 1,000 converging" in text
    assert "| create -> 3 Ready: median under 0.8 s | median 0.60 s (< 0.8 s) | met |" in report.markdown_targets(
        report.targets(rows))


def test_idle_figures_after_a_settle_that_hit_its_cap_say_so() -> None:
    systems = _systems()
    systems["ours"]["scenarios"]["steady"]["settle"] = {"cap_hit": True, "cap_seconds": 1800, "seconds": 1800,
                                                        "read": ["queue depth by priority"]}
    rows = report.figures(systems)
    idle = _target(report.targets(rows), "Idle after")
    assert idle["notes"] == ["after a settle that hit its 1800 s cap"]


def test_cpu_per_reconcile_and_throughput_rows() -> None:
    rows = _by_key(report.figures(_systems()))
    assert rows["burst_cpu_per_reconcile"].values == {"ours": 0.5, "sdk": 2.0, "native": None}
    assert rows["burst_cpu_per_set"].values["native"] == pytest.approx(0.2)
    rate = rows["burst_rate"]
    assert rate.better == "higher"
    assert rate.as_dict()["ratios"]["vs_sdk"] == pytest.approx(4.0)  # ours 2/s against the SDK's 0.5/s


def test_timeouts_count_as_beyond_the_cap() -> None:
    systems = _systems()
    systems["ours"]["scenarios"]["converging"] = {"samples": {"new_set_ready": [0.5, 0.7, 0.9]}, "timeouts": 1,
                                                  "cap_seconds": 600}
    rows = _by_key(report.figures(systems))
    assert rows["conv_median"].values["ours"] == pytest.approx(0.8)
    assert rows["conv_median"].notes["ours"] == "n=3, 1 over the cap"
    assert rows["conv_p95"].values["ours"] is None
    assert rows["conv_p95"].capped == {"ours": 600}
    assert rows["conv_p95"].notes["ours"] == "not within 600 s"
    # The SDK's burst: 1 of 2 sets Ready by the cap, so its median is beyond it.
    assert rows["burst_set_median"].values["sdk"] is None


def test_the_native_floor_says_when_pods_were_unschedulable() -> None:
    systems = _systems()
    systems["native"]["scenarios"]["background"]["unschedulable_pods_peak"] = 250
    rows = _by_key(report.figures(systems))
    assert "250 pods unschedulable" in rows["bg_converge"].notes["native"]


def test_queue_waits_and_settles_text() -> None:
    doc = report.results_document(meta={"cluster": {"nodes": 3, "pods_allocatable": 15000,
                                                    "pods_per_node": [5000]}},
                                  systems=_systems(), reconcile_cost=None)
    waits = report.queue_waits_text(doc)
    assert "playbook-operator, among the converged background: high n=2 mean 0.01 s median <= 0.10 s" in waits
    assert "low n=3" in waits
    settles = report.settles_text(doc)
    assert "nodes: 3, 15000 pods allocatable (5000 per node)" in settles
    assert "native ReplicaSet: background converging, most pods unschedulable at once: 0" in settles
    assert "playbook-operator: before the idle window: settled in 12 s (reads: queue depth by priority" in settles


def test_table_has_a_row_per_figure_and_the_ratio_columns() -> None:
    rows = report.figures(_systems())
    text = report.table(rows, {"ours": "playbook-operator", "sdk": "SDK", "native": "native"})
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["figure", "unit"]
    assert "SDK/ours" in lines[0] and "native/ours" in lines[0]
    assert len(lines) == 3 + len(rows)  # head, rule, rows, what the ratios mean
    create = next(line for line in lines if line.startswith("create -> 3 Ready, median"))
    assert create.split()[-2:] == ["10.0x", "0.4x"]
    burst = next(line for line in lines if line.startswith("burst: all sets Ready"))
    assert ">90 s" in burst


def test_markdown_table() -> None:
    text = report.markdown_table(report.figures(_systems()), {"ours": "ours", "sdk": "SDK", "native": "RS"})
    assert text.splitlines()[0] == "|  | ours | SDK | RS | SDK / ours | native / ours |"
    assert "| create -> 3 Ready, median (s) | 0.60 | 6.00 | 0.25 | 10.0x | 0.4x |" in text


def test_results_document_shape_is_json() -> None:
    doc = report.results_document(meta={"schema": 1, "quick": True, "date": "2026-01-01",
                                        "machine": {"name": "m"}, "versions": {"sdk": "v1"}},
                                  systems=_systems(), reconcile_cost=None)
    again = json.loads(json.dumps(doc, allow_nan=False))
    assert set(again) >= {"schema", "quick", "date", "machine", "versions", "systems", "summaries", "figures",
                          "targets", "reconcile_cost"}
    assert again["summaries"]["ours"]["single.create_to_3_ready"]["median"] == 0.6
    assert again["systems"]["sdk"]["scenarios"]["single"]["samples"]["create_to_3_ready"] == [5.0, 6.0, 7.0]
    figure = again["figures"][0]
    assert set(figure) == {"key", "label", "unit", "values", "notes", "capped", "better", "ratios"}
    assert [f.key for f in report.rows_from_document(again)] == [f["key"] for f in again["figures"]]


def test_fmt() -> None:
    assert report.fmt(None) == "n/a"
    assert report.fmt(3.0) == "3"
    assert report.fmt(0.123, "s") == "0.12"
    assert report.fmt(12.34, "s") == "12.3"
    assert report.fmt(148.6, "MB") == "149"


def _pod(name: str, owner: str, *, ready: bool = True, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"bench-set": owner}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": "Running",
                                         "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_tally_counts_live_and_ready_pods_per_set() -> None:
    counts = tally([_pod("a-1", "a"), _pod("a-2", "a", ready=False), _pod("a-3", "a", deleting=True),
                    _pod("b-1", "b"), {"metadata": {"name": "x", "labels": {}}}])
    assert counts["a"] == (2, 1, frozenset({"a-1"}))
    assert counts["b"] == (1, 1, frozenset({"b-1"}))
    assert "x" not in counts


def test_manifests_select_their_own_pods() -> None:
    for manifest in (podset("web", 3), replicaset("web", 3)):
        spec = manifest["spec"]
        assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"] == {"bench-set": "web"}
        assert spec["replicas"] == 3


def test_the_plan_says_how_many_pods_the_cluster_must_take() -> None:
    full, quick = scenarios.Plan.make(False), scenarios.Plan.make(True)
    assert full.pods_needed() == 3 * 1000 + 3 * 100 + 2 * 3 * 20
    assert quick.pods_needed() == 3 * 50 + 3 * 10 + 2 * 3 * 3
    assert full.pods_needed() > 750, "more than the 3 nodes of 250 pods the local cluster used to have"


def test_an_older_results_file_gets_its_caps_from_the_notes() -> None:
    doc = {"figures": [{"key": "burst_all", "label": "burst", "unit": "s",
                        "values": {"ours": 250.0, "sdk": None, "native": 23.0},
                        "notes": {"sdk": "not within 300 s"}}]}
    rows = report.rows_from_document(doc)
    assert rows[0].capped == {"sdk": 300.0}
    burst = _target(report.targets(rows), "Burst of 100")
    assert burst["checks"][0]["value"] == pytest.approx(1.2) and burst["checks"][0]["at_least"] is True
    assert burst["met"] is False  # ours is 10.9x the native controller's time
