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

    return {
        "ours": {"title": "playbook-operator", "scenarios": {
            "single": single([0.5, 0.6, 0.7]),
            "burst": {"samples": {"per_set_ready": [1.0, 2.0]}, "all_ready_seconds": 2.0, "cap_seconds": 90},
            "steady": {"cpu_seconds": 0.5, "ansible_runs": 0, "writes": 0, "rss_bytes": 100 * report.MB,
                       "pss_bytes": 60 * report.MB},
            "among": {"samples": {"new_set_ready": [1.0, 1.5]}},
            "restart": {"new_at_start_seconds": 3.0, "startup_sync_seconds": 10.0, "sync_cap_seconds": 60}}},
        "sdk": {"title": "SDK ansible-operator", "scenarios": {
            "single": single([5.0, 6.0, 7.0]),
            "burst": {"samples": {"per_set_ready": [30.0]}, "all_ready_seconds": None, "cap_seconds": 90},
            "steady": {"cpu_seconds": 2.0, "ansible_runs": 0, "writes": 0, "rss_bytes": 300 * report.MB,
                       "pss_bytes": 200 * report.MB},
            "restart": {"new_at_start_seconds": None, "startup_sync_seconds": None, "sync_cap_seconds": 60}}},
        "native": {"title": "native ReplicaSet", "scenarios": {
            "single": single([0.2, 0.25, 0.3]),
            "burst": {"samples": {"per_set_ready": [0.5]}, "all_ready_seconds": 1.0, "cap_seconds": 90},
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


def test_targets() -> None:
    rows = report.figures(_systems(), {"summary": {"warm": {"median": 0.25}, "sdk-style": {"median": 2.5}}})
    checks = {c["figure"] + ":" + c["target"]: c for c in report.targets(rows)}
    by_target = {c["target"]: c for c in checks.values()}
    assert by_target["create -> 3 Ready median under 1 s"]["met"] is True
    assert by_target["single PodSet at least 5x faster than the SDK"]["met"] is True
    assert by_target["burst at least 5x faster than the SDK"]["met"] is None  # the SDK hit its cap
    assert by_target["no-op reconcile under 0.3 s"]["met"] is True
    assert by_target["zero Ansible runs at idle"]["met"] is True
    assert by_target["RSS under 150 MB with the background"]["met"] is True


def test_table_has_a_row_per_figure_and_the_ratio_columns() -> None:
    rows = report.figures(_systems())
    text = report.table(rows, {"ours": "playbook-operator", "sdk": "SDK", "native": "native"})
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["figure", "unit"]
    assert "SDK/ours" in lines[0] and "native/ours" in lines[0]
    assert len(lines) == 2 + len(rows)
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
    assert set(figure) == {"key", "label", "unit", "values", "notes", "ratios"}
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
    assert full.pods_needed() == 3 * 1000 + 3 * 100 + 3 * 20
    assert quick.pods_needed() == 3 * 50 + 3 * 10 + 3 * 3
    assert full.pods_needed() > 750, "more than the 3 nodes of 250 pods the local cluster used to have"
