"""Where playbook-operator's reconcile time goes, from what it leaves behind: its JSON log (one
line per reconcile: end time and duration), the artifacts of each Ansible run (job_events with
timestamps and per-task durations) and the apiserver's audit log (when each PodSet was created).

Per Ansible run kept in the artifacts (each object keeps its last `maxRunnerArtifacts` runs):

- ``queue``: the PodSet's create request (audit log) -> its reconcile starting; only for a set's
  first reconcile: watch delivery plus waiting for a worker;
- ``before_ansible``: reconcile start -> Ansible's first event: building vars, ansible-runner's
  set-up, the warm fork server forking `ansible-playbook`;
- ``playbook_start``: first event -> first task starting: parsing the playbook and role, the play;
- ``api_tasks``: durations of tasks whose module calls the apiserver (kubernetes.core.*,
  operator_sdk.util.*); each includes its module's start in a warm interpreter;
- ``local_tasks``: durations of the other tasks (set_fact, include_tasks, argument validation);
- ``between_tasks``: the rest of the task phase: Ansible's strategy, templating, callbacks;
- ``after_ansible``: last event -> reconcile end: the stats, the status write, artifacts.

And per task (name and module): in how many runs it ran (skipped ones do not count), how often
per run, its duration.

`python -m bench.profile OPERATOR_WORKDIR AUDIT_LOG [RESULTS_JSON]` prints it (and adds it to a
results file).
"""

from __future__ import annotations

import datetime
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.stats import summarize

API_PREFIXES = ("kubernetes.core.", "operator_sdk.util.", "k8s")
PARTS = ("queue", "before_ansible", "playbook_start", "api_tasks", "local_tasks", "between_tasks",
         "after_ansible")
TASK_END_EVENTS = {"runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"}
TASK_RAN_EVENTS = TASK_END_EVENTS - {"runner_on_skipped"}


def _ts(value: str) -> float:
    moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def _log_ts(value: str) -> float:
    # The operator's JSON log: "2026-11-25 16:30:23,845", the machine's local time.
    return datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def run_breakdown(events: list[dict[str, Any]]) -> dict[str, float] | None:
    """Split one Ansible run's job_events into the phases above (all but queue, before and after)."""
    events = sorted(events, key=lambda e: e.get("counter", 0))
    timed = [e for e in events if e.get("created")]
    tasks = [e for e in events if e.get("event") in TASK_END_EVENTS and e.get("event_data", {}).get("start")]
    if not timed or not tasks:
        return None
    first, last = _ts(timed[0]["created"]), _ts(timed[-1]["created"])
    task_start = min(_ts(e["event_data"]["start"]) for e in tasks)
    task_end = max(_ts(e["event_data"]["end"]) for e in tasks if e["event_data"].get("end"))
    api = local = 0.0
    for e in tasks:
        data = e["event_data"]
        duration = float(data.get("duration") or 0.0)
        if str(data.get("task_action", "")).startswith(API_PREFIXES):
            api += duration
        else:
            local += duration
    return {"first_event": first, "last_event": last, "playbook_start": task_start - first, "api_tasks": api,
            "local_tasks": local, "between_tasks": max(0.0, (task_end - task_start) - api - local)}


def task_durations(events: list[dict[str, Any]]) -> list[tuple[str, str, float]]:
    """Each task that ran in one Ansible run (skipped ones left out): its name, its module and its
    duration (seconds)."""
    out = []
    for e in events:
        data = e.get("event_data", {})
        if e.get("event") in TASK_RAN_EVENTS and data.get("start"):
            out.append((str(data.get("task", "")), str(data.get("task_action", "")),
                        float(data.get("duration") or 0.0)))
    return out


def task_table(per_run: list[list[tuple[str, str, float]]]) -> list[dict[str, Any]]:
    """Per task over `per_run` (each run's `task_durations`): in how many runs it ran, how many
    times per run on average, its duration summary and its seconds per run on average; costliest
    first."""
    durations: dict[tuple[str, str], list[float]] = {}
    runs_with: dict[tuple[str, str], int] = {}
    for tasks in per_run:
        for name, action, seconds in tasks:
            durations.setdefault((name, action), []).append(seconds)
        for key in {(name, action) for name, action, _ in tasks}:
            runs_with[key] = runs_with.get(key, 0) + 1
    rows = [{"task": name, "action": action, "runs": runs_with[(name, action)],
             "per_run": len(seconds) / len(per_run), "seconds_per_run": sum(seconds) / len(per_run),
             **summarize(seconds)} for (name, action), seconds in durations.items()]
    return sorted(rows, key=lambda row: -row["seconds_per_run"])


def reconcile_lines(log: Path) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(namespace, name) -> [(start, end)] of every reconcile in the operator's JSON log."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{") or '"duration"' not in line:
            continue
        try:
            rec = json.loads(line)
            end = _log_ts(rec["ts"])
            out.setdefault((rec["namespace"], rec["name"]), []).append((end - float(rec["duration"]), end))
        except (ValueError, KeyError):
            continue
    return out


def creations(audit_events: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[float]]:
    """(namespace, name) -> when the apiserver received each create request of that PodSet."""
    out: dict[tuple[str, str], list[float]] = {}
    for ev in audit_events:
        ref = ev.get("objectRef", {})
        if ev.get("verb") == "create" and ref.get("resource") == "podsets" and ev.get("stage") == "ResponseComplete":
            name = ref.get("name") or (ev.get("responseObject") or {}).get("metadata", {}).get("name")
            if name:
                out.setdefault((ref.get("namespace", ""), name), []).append(_ts(ev["requestReceivedTimestamp"]))
    return out


def first_reconcile_starts(lines: dict[tuple[str, str], list[tuple[float, float]]],
                           created: dict[tuple[str, str], list[float]], namespace: str) -> list[float]:
    """For each PodSet created in `namespace`: seconds from its (latest) create request to the
    start of its first reconcile after it (pure). One not reconciled at all is left out."""
    out = []
    for (ns, name), times in sorted(created.items()):
        if ns != namespace:
            continue
        made = max(times)
        # The log's times are to the millisecond, the audit log's to the microsecond.
        start = min((s for s, _ in lines.get((ns, name), []) if s >= made - 0.002), default=None)
        if start is not None:
            out.append(max(0.0, start - made))
    return out


def podset_creates(audit: Path) -> Iterable[dict[str, Any]]:
    """The PodSet create requests of an audit log (a cheap text filter before parsing)."""
    if not audit.exists():
        return
    with audit.open("rb") as f:
        for line in f:
            if b'"podsets"' in line and b'"verb":"create"' in line:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue


def profile(workdir: Path, audit_events: Iterable[dict[str, Any]], namespaces: set[str]) -> dict[str, Any]:
    """Per phase: summary over every kept run in `namespaces` (seconds)."""
    lines = reconcile_lines(workdir / "operator.log")
    created = creations(audit_events)
    parts: dict[str, list[float]] = {p: [] for p in PARTS}
    totals: list[float] = []
    tasks: list[list[tuple[str, str, float]]] = []
    root = workdir / "artifacts"
    for ns in namespaces:
        for obj_dir in sorted(root.glob(f"*/*/*/{ns}/*")):
            name = obj_dir.name
            spans = sorted(lines.get((ns, name), []))
            for run_dir in obj_dir.glob("artifacts/*"):
                events = [json.loads(p.read_text()) for p in (run_dir / "job_events").glob("*.json")]
                br = run_breakdown(events)
                if br is None:
                    continue
                # The reconcile this run belongs to: the one whose span holds its events.
                span = next(((s, e) for s, e in spans if s <= br["first_event"] and br["last_event"] <= e + 0.5),
                            None)
                if span is None:
                    continue
                start, end = span
                for key in ("playbook_start", "api_tasks", "local_tasks", "between_tasks"):
                    parts[key].append(br[key])
                parts["before_ansible"].append(max(0.0, br["first_event"] - start))
                parts["after_ansible"].append(max(0.0, end - br["last_event"]))
                totals.append(end - start)
                tasks.append(task_durations(events))
                # A set's first reconcile after its (latest) creation: how long it waited to start.
                made = max((c for c in created.get((ns, name), []) if c <= start), default=None)
                if made is not None and not any(made <= s < start for s, _ in spans):
                    parts["queue"].append(start - made)
    return {"runs": len(totals), "reconcile": summarize(totals),
            "parts": {p: summarize(v) for p, v in parts.items()}, "tasks": task_table(tasks)}


def text(prof: dict[str, Any]) -> str:
    rows = [f"where a reconcile's time goes ({prof['runs']} Ansible runs; median / p95 seconds):"]
    rec = prof["reconcile"]
    if rec["n"]:
        rows.append(f"  {'whole reconcile':<16} {rec['median']:7.3f} {rec['p95']:7.3f}")
    for part in PARTS:
        s = prof["parts"][part]
        if s["n"]:
            rows.append(f"  {part:<16} {s['median']:7.3f} {s['p95']:7.3f}   (n={s['n']})")
    if prof.get("tasks"):
        rows.append("per task (costliest first): runs with it, times per run, median / p95 s, s per run")
        for t in prof["tasks"]:
            label = f"{t['task'][:48]} ({t['action'].rsplit('.', 1)[-1]})"
            rows.append(f"  {label:<62} {t['runs']:4d} {t['per_run']:5.2f} {t['median']:7.3f} {t['p95']:7.3f}"
                        f" {t['seconds_per_run']:7.3f}")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    workdir, audit_path = Path(argv[0]), Path(argv[1])
    namespaces = {p.name for p in (workdir / "artifacts").glob("*/*/*/*")
                  if p.name.startswith(("bench-single-", "bench-among-"))}
    prof = profile(workdir, podset_creates(audit_path), namespaces)
    print(text(prof))
    if len(argv) > 2:
        results = Path(argv[2])
        doc = json.loads(results.read_text())
        doc["profile"] = prof
        results.write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
