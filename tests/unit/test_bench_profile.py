"""bench.profile: splitting an Ansible run's job_events into phases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import profile


def _task(counter: int, action: str, start: str, end: str, duration: float) -> dict[str, object]:
    return {"counter": counter, "event": "runner_on_ok", "created": end,
            "event_data": {"task_action": action, "start": start, "end": end, "duration": duration}}


def _events() -> list[dict[str, object]]:
    return [
        {"counter": 1, "event": "verbose", "created": "2026-01-01T00:00:00.000000+00:00"},
        {"counter": 2, "event": "playbook_on_start", "created": "2026-01-01T00:00:00.400000+00:00"},
        _task(3, "kubernetes.core.k8s_info", "2026-01-01T00:00:00.500000+00:00",
              "2026-01-01T00:00:00.700000+00:00", 0.2),
        _task(4, "ansible.builtin.set_fact", "2026-01-01T00:00:00.750000+00:00",
              "2026-01-01T00:00:00.800000+00:00", 0.05),
        _task(5, "operator_sdk.util.k8s_status", "2026-01-01T00:00:00.900000+00:00",
              "2026-01-01T00:00:01.000000+00:00", 0.1),
        {"counter": 6, "event": "playbook_on_stats", "created": "2026-01-01T00:00:01.100000+00:00"},
    ]


def test_run_breakdown() -> None:
    br = profile.run_breakdown(_events())
    assert br is not None
    assert br["playbook_start"] == pytest.approx(0.5)
    assert br["api_tasks"] == pytest.approx(0.3)
    assert br["local_tasks"] == pytest.approx(0.05)
    assert br["between_tasks"] == pytest.approx(0.5 - 0.35)
    assert br["last_event"] - br["first_event"] == pytest.approx(1.1)


def test_a_run_without_tasks_has_no_breakdown() -> None:
    assert profile.run_breakdown([{"counter": 1, "event": "verbose", "created": "2026-01-01T00:00:00"}]) is None


def test_profile_matches_runs_to_reconciles_and_creations(tmp_path: Path) -> None:
    run = tmp_path / "artifacts" / "g" / "v1" / "PodSet" / "ns" / "web" / "artifacts" / "uuid" / "job_events"
    run.mkdir(parents=True)
    for e in _events():
        (run / f"{e['counter']}.json").write_text(json.dumps(e))
    start = profile._ts("2026-01-01T00:00:00+00:00") - 0.3
    end = profile._ts("2026-01-01T00:00:01.100000+00:00") + 0.2
    import datetime

    def log_ts(t: float) -> str:
        return datetime.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]

    (tmp_path / "operator.log").write_text("not json\n" + json.dumps(
        {"ts": log_ts(end), "namespace": "ns", "name": "web", "duration": round(end - start, 3)}) + "\n")
    created = [{"verb": "create", "stage": "ResponseComplete", "objectRef": {"resource": "podsets", "namespace": "ns",
                                                                              "name": "web"},
                "requestReceivedTimestamp": "2026-01-01T00:00:00.000000Z"}]
    # The creation is 0.3 s before the reconcile started.
    created[0]["requestReceivedTimestamp"] = datetime.datetime.fromtimestamp(
        start - 0.3, tz=datetime.UTC).isoformat()
    prof = profile.profile(tmp_path, created, {"ns"})
    assert prof["runs"] == 1
    assert prof["parts"]["queue"]["median"] == pytest.approx(0.3, abs=0.01)
    assert prof["parts"]["before_ansible"]["median"] == pytest.approx(0.3, abs=0.01)
    assert prof["parts"]["after_ansible"]["median"] == pytest.approx(0.2, abs=0.01)
    assert "whole reconcile" in profile.text(prof)
    assert [t["action"] for t in prof["tasks"]] == ["kubernetes.core.k8s_info", "operator_sdk.util.k8s_status",
                                                    "ansible.builtin.set_fact"]


def test_skipped_tasks_are_not_counted_as_run() -> None:
    skipped = {"counter": 7, "event": "runner_on_skipped", "created": "2026-01-01T00:00:01.000000+00:00",
               "event_data": {"task": "Create pods", "task_action": "kubernetes.core.k8s",
                              "start": "2026-01-01T00:00:00.990000+00:00", "duration": 0.01}}
    assert [name for name, _, _ in profile.task_durations([*_events(), skipped])] == ["", "", ""]


def test_task_table_counts_runs_and_times_per_run() -> None:
    runs = [[("Read pods", "kubernetes.core.k8s_info", 0.2), ("Apply", "kubernetes.core.k8s", 0.3),
             ("Apply", "kubernetes.core.k8s", 0.5)],
            [("Read pods", "kubernetes.core.k8s_info", 0.4)]]
    table = profile.task_table(runs)
    assert [(t["task"], t["runs"], t["per_run"]) for t in table] == [("Apply", 1, 1.0), ("Read pods", 2, 1.0)]
    assert table[0]["seconds_per_run"] == pytest.approx(0.4) and table[0]["median"] == pytest.approx(0.4)
    assert table[1]["seconds_per_run"] == pytest.approx(0.3)
    assert "Read pods (k8s_info)" in profile.text({"runs": 2, "reconcile": {"n": 0}, "parts": {
        part: {"n": 0} for part in profile.PARTS}, "tasks": table})


def test_first_reconcile_start_after_each_create() -> None:
    lines = {("ns", "a"): [(100.0, 101.0), (105.0, 106.0)],  # an earlier life of "a", then its reconcile
             ("ns", "b"): [(200.4995, 201.0)],  # the log's millisecond times may fall just before the create
             ("other", "c"): [(10.0, 11.0)]}
    created = {("ns", "a"): [50.0, 104.5], ("ns", "b"): [200.5], ("ns", "never"): [300.0], ("other", "c"): [9.0]}
    assert profile.first_reconcile_starts(lines, created, "ns") == pytest.approx([0.5, 0.0])
    assert profile.first_reconcile_starts(lines, created, "other") == pytest.approx([1.0])
