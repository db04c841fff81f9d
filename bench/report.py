"""From raw scenario data to figures, ratios, target checks, a terminal table, the results
JSON and a PNG chart. Everything but `chart` is pure and unit-tested."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import ratio, summarize

SYSTEMS = ("ours", "sdk", "native")
DURING = "during the start-up pass"
FOOTNOTE = ("* measured in a short window during the start-up pass over the background, which did not finish "
            "within its cap: not a steady state")
MB = 1024 * 1024


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    values: dict[str, float | None]
    notes: dict[str, str]
    # Per system, the cap in seconds it did not finish within (its value is None: more than that).
    capped: dict[str, float] = field(default_factory=dict)
    # "lower" for times and costs, "higher" for throughput: the ratios read "above 1: ours is better".
    better: str = "lower"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "values": self.values,
                "notes": self.notes, "capped": self.capped, "better": self.better,
                "ratios": ratios(self.values, self.better)}


def ratios(values: dict[str, float | None], better: str = "lower") -> dict[str, float | None]:
    """How many times better ours is than the SDK's and the native controller's figure: the other's
    over ours for times and costs, ours over the other's for throughput (above 1: ours is better)."""
    ours = values.get("ours")
    if better == "higher":
        out = {"vs_sdk": ratio(values.get("sdk"), ours), "vs_native": ratio(values.get("native"), ours)}
    else:
        out = {"vs_sdk": ratio(ours, values.get("sdk")), "vs_native": ratio(ours, values.get("native"))}
    # JSON has no infinity: "ours is zero and the other is not" is left as None.
    return {k: None if v is not None and math.isinf(v) else v for k, v in out.items()}


def _get(data: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def _timeouts(data: dict[str, Any], series: str) -> int:
    """Samples of a series that did not finish within their cap."""
    timeouts = data.get("timeouts")
    if isinstance(timeouts, dict):
        return int(timeouts.get(series, 0))
    if isinstance(timeouts, int) and series == "new_set_ready":
        return timeouts
    if series == "per_set_ready" and isinstance(data.get("sets"), int):
        # A burst's sets not Ready by its cap.
        return max(0, int(data["sets"]) - int(data.get("ready_sets", data["sets"])))
    return 0


def summaries(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per system, per latency series: n, median, p95, min, max (timeouts counted as beyond the cap)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, sysdata in systems.items():
        series: dict[str, dict[str, Any]] = {}
        for scenario, data in (sysdata.get("scenarios") or {}).items():
            for name, samples in (data.get("samples") or {}).items():
                series[f"{scenario}.{name}"] = summarize(samples, _timeouts(data, name))
        out[key] = series
    return out


def _per_set(scenario: str) -> Callable[[dict[str, Any]], float | None]:
    def get(data: dict[str, Any]) -> float | None:
        cpu, sets = _get(data, "scenarios", scenario, "cost", "cpu_seconds"), _get(data, "scenarios", scenario, "sets")
        return cpu / sets if cpu is not None and sets else None
    return get


def figures(systems: dict[str, dict[str, Any]], reconcile_cost: dict[str, Any] | None = None) -> list[Figure]:
    """The headline figures, one row each, from the raw data of every system."""
    summ = summaries(systems)
    rows: list[Figure] = []

    def latency(key: str, label: str, series: str, stat: str) -> None:
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        capped: dict[str, float] = {}
        scenario = series.split(".", 1)[0]
        for s, data in systems.items():
            fig = summ.get(s, {}).get(series)
            values[s] = fig[stat] if fig else None
            if fig and stat in fig.get("over_cap", []):
                cap = _get(data, "scenarios", scenario, "cap_seconds")
                if cap is not None:
                    capped[s] = cap
                    notes[s] = f"not within {cap:.0f} s"
            elif fig and fig["n"]:
                notes[s] = f"n={fig['n']}" + (f", {fig['timeouts']} over the cap" if fig.get("timeouts") else "")
        rows.append(Figure(key, label, "s", values, notes, capped))

    def scalar(key: str, label: str, unit: str, path: tuple[str, ...], scale: float = 1.0,
               cap_path: tuple[str, ...] | None = None, better: str = "lower") -> None:
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        capped: dict[str, float] = {}
        for s, data in systems.items():
            v = _get(data, *path)
            values[s] = None if v is None else v / scale
            cap = _get(data, *cap_path) if cap_path is not None else None
            if v is None and cap is not None and _get(data, *path[:-1]) is not None:
                notes[s] = f"not within {cap:.0f} s"
                capped[s] = cap
        rows.append(Figure(key, label, unit, values, notes, capped, better))

    def derived(key: str, label: str, unit: str, get: Callable[[dict[str, Any]], float | None]) -> None:
        rows.append(Figure(key, label, unit, {s: get(data) for s, data in systems.items()}, {}))

    latency("create_median", "create -> 3 Ready, median", "single.create_to_3_ready", "median")
    latency("create_p95", "create -> 3 Ready, p95", "single.create_to_3_ready", "p95")
    latency("scale_up_median", "scale 3 -> 10, median", "single.scale_3_to_10", "median")
    latency("scale_down_median", "scale 10 -> 3, median", "single.scale_10_to_3", "median")
    latency("replace_median", "delete a pod -> replaced, median", "single.pod_deleted_to_replaced", "median")
    scalar("burst_all", "burst: all sets Ready", "s", ("scenarios", "burst", "all_ready_seconds"),
           cap_path=("scenarios", "burst", "cap_seconds"))
    latency("burst_set_median", "burst: one set Ready, median", "burst.per_set_ready", "median")
    latency("burst_set_p95", "burst: one set Ready, p95", "burst.per_set_ready", "p95")
    scalar("burst_rate", "burst: reconciles per second", "/s",
           ("scenarios", "burst", "cost", "reconciles_per_second"), better="higher")
    scalar("burst_cpu_per_reconcile", "burst: CPU seconds per reconcile", "s",
           ("scenarios", "burst", "cost", "cpu_seconds_per_reconcile"))
    derived("burst_cpu_per_set", "burst: CPU seconds per set", "s", _per_set("burst"))
    scalar("bg_converge", "background: all sets Ready", "s", ("scenarios", "background", "seconds"),
           cap_path=("scenarios", "background", "cap_seconds"))
    scalar("bg_rate", "background: reconciles per second", "/s",
           ("scenarios", "background", "cost", "reconciles_per_second"), better="higher")
    scalar("bg_cpu_per_reconcile", "background: CPU seconds per reconcile", "s",
           ("scenarios", "background", "cost", "cpu_seconds_per_reconcile"))
    derived("bg_cpu_per_set", "background: CPU seconds per set", "s", _per_set("background"))
    latency("conv_median", "new set among converging -> 3 Ready, median", "converging.new_set_ready", "median")
    latency("conv_p95", "new set among converging -> 3 Ready, p95", "converging.new_set_ready", "p95")
    latency("conv_start_median", "new set among converging -> first reconcile starts, median",
            "converging.first_reconcile_start", "median")
    latency("conv_start_p95", "new set among converging -> first reconcile starts, p95",
            "converging.first_reconcile_start", "p95")
    latency("new_median", "new set among converged -> 3 Ready, median", "among.new_set_ready", "median")
    latency("new_p95", "new set among converged -> 3 Ready, p95", "among.new_set_ready", "p95")
    latency("new_start_median", "new set among converged -> first reconcile starts, median",
            "among.first_reconcile_start", "median")
    latency("new_start_p95", "new set among converged -> first reconcile starts, p95",
            "among.first_reconcile_start", "p95")
    scalar("new_at_start", "new set at start-up -> 3 Ready", "s",
           ("scenarios", "restart", "new_at_start_seconds"), cap_path=("scenarios", "restart", "sync_cap_seconds"))
    scalar("startup_sync", "start-up: every set reconciled once", "s",
           ("scenarios", "restart", "startup_sync_seconds"), cap_path=("scenarios", "restart", "sync_cap_seconds"))
    scalar("startup_rate", "start-up pass: reconciles per second", "/s",
           ("scenarios", "restart", "cost", "reconciles_per_second"), better="higher")
    scalar("startup_cpu_per_reconcile", "start-up pass: CPU seconds per reconcile", "s",
           ("scenarios", "restart", "cost", "cpu_seconds_per_reconcile"))
    scalar("idle_cpu", "idle window: CPU seconds", "s", ("scenarios", "steady", "cpu_seconds"))
    idle_start = len(rows) - 1
    scalar("idle_runs", "idle window: Ansible runs", "", ("scenarios", "steady", "ansible_runs"))
    scalar("idle_writes", "idle window: write requests", "", ("scenarios", "steady", "writes"))
    scalar("rss", "RSS, all processes", "MB", ("scenarios", "steady", "rss_bytes"), scale=MB)
    scalar("pss", "PSS, all processes", "MB", ("scenarios", "steady", "pss_bytes"), scale=MB)
    for s, data in systems.items():
        steady = _get(data, "scenarios", "steady") or {}
        settle = steady.get("settle") or {}
        if steady.get("during_startup_pass"):
            for row in rows[idle_start:]:
                row.notes[s] = f"{DURING} ({steady.get('window_seconds', 0):.0f} s window)"
        elif settle.get("cap_hit"):
            for row in rows[idle_start:]:
                row.notes[s] = f"after a settle that hit its {settle.get('cap_seconds', 0):.0f} s cap"
        peak = _get(data, "scenarios", "background", "unschedulable_pods_peak")
        if peak:
            by_key = {r.key: r for r in rows}
            by_key["bg_converge"].notes[s] = f"up to {peak} pods unschedulable: it measures the scheduler too"
    if reconcile_cost:
        summary = reconcile_cost.get("summary", {})
        rows.append(Figure("noop_reconcile", "no-op reconcile (4 k8s tasks, ours warm), median", "s",
                           {"ours": _get(summary, "warm", "median"), "sdk": _get(summary, "sdk-style", "median"),
                            "native": None},
                           {"sdk": "SDK-style run"}))
    return rows


# ---------------------------------------------------------------- targets

# How a check reads a figure: ours alone, the SDK's over ours (times: how many times faster), or
# ours over the native controller's (how many times its time).
MEASURES = {"ours": "ours", "sdk/ours": "SDK/ours", "ours/native": "ours/native"}
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": lambda v, t: v < t, "<=": lambda v, t: v <= t, ">=": lambda v, t: v >= t, "==": lambda v, t: v == t}


@dataclass(frozen=True)
class Check:
    name: str  # how the table names it: "median", "SDK/ours", "runs"
    figure: str
    measure: str  # a key of MEASURES
    op: str  # a key of OPS
    threshold: float


@dataclass(frozen=True)
class Target:
    label: str
    checks: tuple[Check, ...]
    also: tuple[str, ...] = ()  # figures shown beside it, not judged


TARGETS = (
    Target("A new PodSet's first reconcile among 1,000 converging: median under 1 s, p95 under 2 s "
           "(create -> first reconcile starts)",
           (Check("median", "conv_start_median", "ours", "<", 1.0), Check("p95", "conv_start_p95", "ours", "<", 2.0)),
           also=("conv_median", "conv_p95")),
    Target("A new PodSet's first reconcile among 1,000 converged: median under 1 s, p95 under 2 s "
           "(create -> first reconcile starts)",
           (Check("median", "new_start_median", "ours", "<", 1.0), Check("p95", "new_start_p95", "ours", "<", 2.0)),
           also=("new_median", "new_p95")),
    Target("create -> 3 Ready: median under 0.8 s", (Check("median", "create_median", "ours", "<", 0.8),)),
    Target("No-op reconcile of the 4-task role: under 0.25 s",
           (Check("median", "noop_reconcile", "ours", "<", 0.25),)),
    Target("1,000 PodSets converge within 2x the native ReplicaSet's time",
           (Check("ours/native", "bg_converge", "ours/native", "<=", 2.0),)),
    Target("Burst of 100: at least 5x faster than the SDK, and within 3x of native",
           (Check("SDK/ours", "burst_all", "sdk/ours", ">=", 5.0),
            Check("ours/native", "burst_all", "ours/native", "<=", 3.0))),
    Target("Idle after 1,000 PodSets: 0 runs, 0 writes",
           (Check("runs", "idle_runs", "ours", "==", 0.0), Check("writes", "idle_writes", "ours", "==", 0.0))),
    Target("PSS of all the operator's processes: under 150 MB", (Check("PSS", "pss", "ours", "<", 150.0),)),
)


def _reading(fig: Figure, system: str) -> tuple[float | None, bool]:
    """A system's figure, and whether it is only a lower bound (it did not finish within a cap)."""
    value = fig.values.get(system)
    if value is None and system in fig.capped:
        return fig.capped[system], True
    return value, False


def evaluate(check: Check, fig: Figure | None) -> dict[str, Any]:
    """The value a check reads, whether it is a lower bound ("at least"), and met: True, False,
    or None when it cannot be told (a figure missing, or a bound that does not decide it)."""
    value: float | None = None
    bound = False
    if fig is not None:
        ours, ours_bound = _reading(fig, "ours")
        if check.measure == "ours":
            value, bound = ours, ours_bound
        elif check.measure == "sdk/ours":
            sdk, sdk_bound = _reading(fig, "sdk")
            if ours is not None and sdk is not None and ours > 0 and not ours_bound:
                value, bound = sdk / ours, sdk_bound
        elif check.measure == "ours/native":
            native, native_bound = _reading(fig, "native")
            if ours is not None and native is not None and native > 0 and not native_bound:
                value, bound = ours / native, ours_bound
    met: bool | None = None
    if value is not None:
        holds = OPS[check.op](value, check.threshold)
        if not bound:
            met = holds
        elif check.op == ">=":
            met = True if holds else None  # at least `value`: enough once that meets it
        elif check.op == "==":
            met = False if value > check.threshold else None
        else:
            met = None if holds else False  # at least `value`: too much once that breaks the limit
    unit = "x" if check.measure != "ours" else fig.unit if fig is not None else ""
    return {"name": check.name, "figure": check.figure, "measure": check.measure, "op": check.op,
            "threshold": check.threshold, "unit": unit, "value": value, "at_least": bound, "met": met}


def _all(results: list[bool | None]) -> bool | None:
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def targets(rows: list[Figure]) -> list[dict[str, Any]]:
    """Each target with its checks, the figures shown beside it and the notes on ours."""
    by_key = {f.key: f for f in rows}
    out = []
    for t in TARGETS:
        checks = [evaluate(c, by_key.get(c.figure)) for c in t.checks]
        notes = sorted({by_key[c.figure].notes["ours"] for c in t.checks
                        if c.figure in by_key and "ours" in by_key[c.figure].notes
                        and not by_key[c.figure].notes["ours"].startswith("n=")})
        also = [{"figure": k, "label": by_key[k].label, "value": by_key[k].values.get("ours"), "unit": by_key[k].unit}
                for k in t.also if k in by_key]
        out.append({"target": t.label, "met": _all([c["met"] for c in checks]), "checks": checks,
                    "also": also, "notes": notes})
    return out


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "MB":
        return f"{value:.0f}"
    if value == int(value) and unit in ("",):
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def table(rows: list[Figure], titles: dict[str, str]) -> str:
    """The terminal table: each figure per system, then how many times better ours is than the
    SDK's and the native controller's (above 1 we are faster, lighter or quicker through)."""
    head = ["figure", "unit", *(titles.get(s, s) for s in SYSTEMS), "SDK/ours", "native/ours"]
    body = []
    for f in rows:
        r = f.as_dict()["ratios"]
        cells = [_cell(f, s, ">") for s in SYSTEMS]
        body.append([f.label, f.unit, *cells, fmt_ratio(r["vs_sdk"]), fmt_ratio(r["vs_native"])])
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    lines = []
    for n, row in enumerate([head, *body]):
        lines.append("  ".join(str(c).ljust(widths[i]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(row)))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if any(_cell(f, s, ">").endswith("*") for f in rows for s in SYSTEMS):
        lines.append(FOOTNOTE)
    lines.append("SDK/ours, native/ours: how many times better ours is (their time over ours; for reconciles "
                 "per second, ours over theirs)")
    return "\n".join(lines)


def _cell(f: Figure, system: str, over: str) -> str:
    value, note = f.values.get(system), f.notes.get(system, "")
    if value is None and note.startswith("not within "):
        return note.replace("not within ", over)
    text = fmt(value, f.unit)
    return text + "*" if value is not None and note.startswith(DURING) else text


def _with_unit(text: str, unit: str) -> str:
    return text if not unit or text == "n/a" else f"{text}x" if unit == "x" else f"{text} {unit}"


def _check_text(c: dict[str, Any]) -> str:
    """`median 1.93 s (< 0.8 s)`; a lower bound reads `>= 45.0x`."""
    op = {"<": "<", "<=": "<=", ">=": ">=", "==": "="}[c["op"]]
    unit = c.get("unit", "")
    value = _with_unit(fmt(c["value"]) if unit != "x" or c["value"] is None else f"{c['value']:.1f}", unit)
    if c["at_least"]:
        value = ">= " + value
    limit = _with_unit(f"{c['threshold']:g}", unit)
    return f"{c['name']} {value} ({op} {limit})"


MARKS = {True: "met", False: "MISSED", None: "n/a"}


def targets_text(checks: list[dict[str, Any]], quick: bool = False) -> str:
    """One line per target: met / MISSED / n/a, the target, and each check's figure against its limit."""
    lines = []
    if quick:
        lines.append("  (QUICK: a smaller background and burst than the targets name; a check of the bench only)")
    for t in checks:
        lines.append(f"  {MARKS[t['met']]:<7} {t['target']}")
        measured = "; ".join(_check_text(c) for c in t["checks"])
        beside = "; ".join(f"{a['label']}: {_with_unit(fmt(a['value']), a.get('unit', ''))}" for a in t.get("also", []))
        lines.append(f"          {measured}" + (f" [{beside}]" if beside else ""))
        for note in t.get("notes", []):
            lines.append(f"          note: {note}")
    return "\n".join(lines)


def markdown_targets(checks: list[dict[str, Any]]) -> str:
    lines = ["| target | measured (ours) | |", "|---|---|---|"]
    for t in checks:
        measured = "; ".join(_check_text(c) for c in t["checks"])
        beside = "; ".join(f"{a['label']}: {_with_unit(fmt(a['value']), a.get('unit', ''))}" for a in t.get("also", []))
        if beside:
            measured += f" ({beside})"
        lines.append(f"| {t['target']} | {measured} | {MARKS[t['met']]} |")
    return "\n".join(lines)


SCENARIO_NAMES = {"burst": "the burst", "converging": "while the background converges",
                  "among": "among the converged background", "restart": "the start-up pass"}


def _wait(v: float | None) -> str:
    return "n/a" if v is None else f"{fmt(v)} s"


def queue_waits_text(doc: dict[str, Any]) -> str:
    """How long keys waited in each operator's queue, by priority, per scenario (/metrics)."""
    lines = ["queue waits (workqueue_queue_duration_seconds on /metrics; n, mean, and the bucket bounds that "
             "hold the median and p95):"]
    for key, data in doc["systems"].items():
        for scenario, name in SCENARIO_NAMES.items():
            waits = _get(data, "scenarios", scenario, "queue_waits")
            if not waits:
                continue
            parts = [f"{priority} n={w['n']:.0f} mean {_wait(w['mean'])} median <= {_wait(w['p50_at_most'])} "
                     f"p95 <= {_wait(w['p95_at_most'])}" for priority, w in waits.items() if w["n"]]
            if parts:
                lines.append(f"  {data.get('title', key)}, {name}: " + "; ".join(parts))
    return "\n".join(lines) if len(lines) > 1 else ""


def settles_text(doc: dict[str, Any]) -> str:
    """The cluster's nodes, pods left unscheduled, and each settle before the new sets and the idle window."""
    lines = []
    cluster = doc.get("cluster")
    if cluster:
        lines.append(f"nodes: {cluster['nodes']}, {cluster['pods_allocatable']} pods allocatable "
                     f"({'/'.join(str(p) for p in cluster['pods_per_node'])} per node)")
    for key, data in doc["systems"].items():
        title = data.get("title", key)
        peak = _get(data, "scenarios", "background", "unschedulable_pods_peak")
        if peak is not None:
            lines.append(f"  {title}: background converging, most pods unschedulable at once: {peak}")
        for scenario, name in (("among", "before the new sets"), ("steady", "before the idle window")):
            settle = _get(data, "scenarios", scenario, "settle")
            if not settle:
                continue
            how = "CAP HIT after" if settle["cap_hit"] else "settled in"
            runs = settle.get("runs_meanwhile")
            depth = settle.get("depth_at_end")
            queue = "" if depth is None else "; waiting at the end: " + ", ".join(
                f"{priority} {n:.0f}" for priority, n in sorted(depth.items()))
            lines.append(f"  {title}: {name}: {how} {settle['seconds']:.0f} s (reads: {', '.join(settle['read'])}"
                         f"{'' if runs is None else f'; {runs:.0f} runs meanwhile'}{queue})")
    return "settles and conditions:\n" + "\n".join(lines) if lines else ""


def markdown_table(rows: list[Figure], titles: dict[str, str]) -> str:
    head = ["", *(titles.get(s, s) for s in SYSTEMS), "SDK / ours", "native / ours"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for f in rows:
        r = f.as_dict()["ratios"]
        cells = [_cell(f, s, "> ") for s in SYSTEMS]
        label = f"{f.label} ({f.unit})" if f.unit else f.label
        lines.append("| " + " | ".join([label, *cells, fmt_ratio(r["vs_sdk"]), fmt_ratio(r["vs_native"])]) + " |")
    if any(_cell(f, s, ">").endswith("*") for f in rows for s in SYSTEMS):
        lines += ["", FOOTNOTE]
    return "\n".join(lines)


def results_document(*, meta: dict[str, Any], systems: dict[str, dict[str, Any]],
                     reconcile_cost: dict[str, Any] | None) -> dict[str, Any]:
    """The results file: raw samples per system and scenario, summaries, figures with ratios,
    target checks, versions and machine (in `meta`)."""
    rows = figures(systems, reconcile_cost)
    return {**meta, "systems": systems, "summaries": summaries(systems),
            "figures": [f.as_dict() for f in rows], "targets": targets(rows), "reconcile_cost": reconcile_cost}


def _capped_from_notes(notes: dict[str, str]) -> dict[str, float]:
    # Files written before figures kept their caps said them only in the notes.
    return {s: float(n.split()[2]) for s, n in notes.items() if n.startswith("not within ")}


def rows_from_document(doc: dict[str, Any]) -> list[Figure]:
    return [Figure(f["key"], f["label"], f["unit"], f["values"], f.get("notes", {}),
                   f.get("capped", _capped_from_notes(f.get("notes", {}))), f.get("better", "lower"))
            for f in doc["figures"]]


def chart(doc: dict[str, Any], path: Path) -> None:
    """A PNG: the latency figures (log scale, seconds) beside the idle window's costs, a bar per system."""
    import textwrap

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {f.key: f for f in rows_from_document(doc)}
    present = [s for s in SYSTEMS if s in doc["systems"]]
    titles = {k: v.get("title", k) for k, v in doc["systems"].items()}
    colors = {"ours": "#2a7ab0", "sdk": "#d0703c", "native": "#7a7a7a"}
    latency = [k for k in ("create_median", "scale_up_median", "scale_down_median", "replace_median", "burst_all",
                           "bg_converge", "conv_median", "new_median", "new_at_start", "noop_reconcile") if k in rows]
    idle = [k for k in ("idle_cpu", "idle_runs", "idle_writes", "pss") if k in rows]
    fig = plt.figure(figsize=(15, 6))
    grid = fig.add_gridspec(2, 4, width_ratios=[3.2, 3.2, 1, 1])
    ax = fig.add_subplot(grid[:, :2])
    width = 0.8 / max(len(present), 1)
    for n, s in enumerate(present):
        xs = [i + (n - (len(present) - 1) / 2) * width for i, k in enumerate(latency)
              if (rows[k].values.get(s) or 0) > 0]
        ys = [rows[k].values[s] for k in latency if (rows[k].values.get(s) or 0) > 0]
        ax.bar(xs, ys, width, label=titles.get(s, s), color=colors[s])
    ax.set_xticks(range(len(latency)))
    ax.set_xticklabels([textwrap.fill(rows[k].label.replace(", median", " (median)"), 16) for k in latency],
                       fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("seconds (log scale); missing bar: n/a or over its cap")
    ax.set_title("Latency")
    ax.legend(fontsize=8)
    for i, k in enumerate(idle):
        sub = fig.add_subplot(grid[i // 2, 2 + i % 2])
        vals = [rows[k].values.get(s) for s in present]
        sub.bar(range(len(present)), [v or 0 for v in vals], color=[colors[s] for s in present])
        for j, v in enumerate(vals):
            sub.text(j, (v or 0), fmt(v, rows[k].unit), ha="center", va="bottom", fontsize=7)
        sub.set_xticks(range(len(present)))
        sub.set_xticklabels([s for s in present], fontsize=7)
        sub.set_title(textwrap.fill(rows[k].label + (f" ({rows[k].unit})" if rows[k].unit else ""), 22),
                      fontsize=8)
        sub.tick_params(axis="y", labelsize=7)
    mode = "QUICK" if doc.get("quick") else "full"
    background = doc.get("plan", {}).get("background", "")
    fig.suptitle(f"PodSet: playbook-operator vs the SDK's ansible-operator vs the native ReplicaSet controller "
                 f"({mode}: background of {background}; {doc.get('date', '')}, "
                 f"{doc.get('machine', {}).get('name', '')})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str]) -> int:
    """`python -m bench.report RESULTS.json [--recompute] [--chart]`: the figures as a Markdown
    table (for the README) and the targets; `--recompute` derives the figures again from the raw
    samples, `--chart` draws the PNG again."""
    import json

    path = Path(argv[0])
    doc = json.loads(path.read_text())
    if "--recompute" in argv:
        # Figures, summaries and targets again from the raw data, with this version of the code.
        for data in doc["systems"].values():
            scen = data.get("scenarios", {})
            if "restart" not in scen and "new_at_start_seconds" in scen.get("among", {}):
                # Results of the first layout, when the start-up pass was part of "among".
                among = scen["among"]
                scen["restart"] = {k: among.pop(k) for k in ("new_at_start_seconds", "startup_sync_seconds",
                                                             "sync_cap_seconds", "runs_expected_for_sync")
                                   if k in among}
            if "steady" in scen and "during_startup_pass" not in scen["steady"] and "restart" in scen:
                scen["steady"]["during_startup_pass"] = scen["restart"].get("startup_sync_seconds") is None
        meta = {k: v for k, v in doc.items() if k not in ("systems", "summaries", "figures", "targets",
                                                          "reconcile_cost")}
        doc = results_document(meta=meta, systems=doc["systems"], reconcile_cost=doc.get("reconcile_cost"))
        path.write_text(json.dumps(doc, indent=1) + "\n")
    titles = {k: v.get("title", k) for k, v in doc["systems"].items()}
    rows = rows_from_document(doc)
    print(markdown_table(rows, titles))
    print()
    # The targets of this version of the code, against the file's figures (older files kept others).
    print(markdown_targets(targets(rows)))
    for text in (queue_waits_text(doc), settles_text(doc)):
        if text:
            print("\n" + text)
    if "--chart" in argv:
        chart(doc, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
