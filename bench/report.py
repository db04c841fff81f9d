"""From raw scenario data to figures, ratios, target checks, a terminal table, the results
JSON and a PNG chart. Everything but `chart` is pure and unit-tested."""

from __future__ import annotations

import math
from dataclasses import dataclass
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

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "unit": self.unit, "values": self.values,
                "notes": self.notes, "ratios": ratios(self.values)}


def ratios(values: dict[str, float | None]) -> dict[str, float | None]:
    """How many times the SDK's and the native controller's figure is ours (higher is better for us)."""
    ours = values.get("ours")
    out = {"vs_sdk": ratio(ours, values.get("sdk")), "vs_native": ratio(ours, values.get("native"))}
    # JSON has no infinity: "ours is zero and the other is not" is left as None.
    return {k: None if v is not None and math.isinf(v) else v for k, v in out.items()}


def _get(data: dict[str, Any], *path: str) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def summaries(systems: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per system, per latency series: n, median, p95, min, max."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key, sysdata in systems.items():
        series: dict[str, dict[str, Any]] = {}
        for scenario, data in (sysdata.get("scenarios") or {}).items():
            for name, samples in (data.get("samples") or {}).items():
                series[f"{scenario}.{name}"] = summarize(samples)
        out[key] = series
    return out


def figures(systems: dict[str, dict[str, Any]], reconcile_cost: dict[str, Any] | None = None) -> list[Figure]:
    """The headline figures, one row each, from the raw data of every system."""
    summ = summaries(systems)
    rows: list[Figure] = []

    def latency(key: str, label: str, series: str, stat: str) -> None:
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for s in systems:
            fig = summ.get(s, {}).get(series)
            values[s] = fig[stat] if fig else None
            if fig and fig["n"]:
                notes[s] = f"n={fig['n']}"
        rows.append(Figure(key, label, "s", values, notes))

    def scalar(key: str, label: str, unit: str, path: tuple[str, ...], scale: float = 1.0,
               cap_path: tuple[str, ...] | None = None) -> None:
        values: dict[str, float | None] = {}
        notes: dict[str, str] = {}
        for s, data in systems.items():
            v = _get(data, *path)
            values[s] = None if v is None else v / scale
            if v is None and cap_path is not None and _get(data, *cap_path) is not None \
                    and _get(data, *path[:-1]) is not None:
                notes[s] = f"not within {_get(data, *cap_path):.0f} s"
        rows.append(Figure(key, label, unit, values, notes))

    latency("create_median", "create -> 3 Ready, median", "single.create_to_3_ready", "median")
    latency("create_p95", "create -> 3 Ready, p95", "single.create_to_3_ready", "p95")
    latency("scale_up_median", "scale 3 -> 10, median", "single.scale_3_to_10", "median")
    latency("scale_down_median", "scale 10 -> 3, median", "single.scale_10_to_3", "median")
    latency("replace_median", "delete a pod -> replaced, median", "single.pod_deleted_to_replaced", "median")
    scalar("burst_all", "burst: all sets Ready", "s", ("scenarios", "burst", "all_ready_seconds"),
           cap_path=("scenarios", "burst", "cap_seconds"))
    latency("burst_set_median", "burst: one set Ready, median", "burst.per_set_ready", "median")
    latency("burst_set_p95", "burst: one set Ready, p95", "burst.per_set_ready", "p95")
    scalar("bg_converge", "background: all sets Ready", "s", ("scenarios", "background", "seconds"),
           cap_path=("scenarios", "background", "cap_seconds"))
    scalar("new_at_start", "new set at start-up -> 3 Ready", "s",
           ("scenarios", "restart", "new_at_start_seconds"), cap_path=("scenarios", "restart", "sync_cap_seconds"))
    scalar("startup_sync", "start-up: every set reconciled once", "s",
           ("scenarios", "restart", "startup_sync_seconds"), cap_path=("scenarios", "restart", "sync_cap_seconds"))
    latency("new_median", "new set among many -> 3 Ready, median", "among.new_set_ready", "median")
    latency("new_p95", "new set among many -> 3 Ready, p95", "among.new_set_ready", "p95")
    scalar("idle_cpu", "idle window: CPU seconds", "s", ("scenarios", "steady", "cpu_seconds"))
    idle_start = len(rows) - 1
    scalar("idle_runs", "idle window: Ansible runs", "", ("scenarios", "steady", "ansible_runs"))
    scalar("idle_writes", "idle window: write requests", "", ("scenarios", "steady", "writes"))
    scalar("rss", "RSS, all processes", "MB", ("scenarios", "steady", "rss_bytes"), scale=MB)
    scalar("pss", "PSS, all processes", "MB", ("scenarios", "steady", "pss_bytes"), scale=MB)
    for s, data in systems.items():
        steady = _get(data, "scenarios", "steady") or {}
        if steady.get("during_startup_pass"):
            for row in rows[idle_start:]:
                row.notes[s] = f"{DURING} ({steady.get('window_seconds', 0):.0f} s window)"
    if reconcile_cost:
        summary = reconcile_cost.get("summary", {})
        rows.append(Figure("noop_reconcile", "no-op reconcile (4 k8s tasks), median", "s",
                           {"ours": _get(summary, "warm", "median"), "sdk": _get(summary, "sdk-style", "median"),
                            "native": None},
                           {"sdk": "SDK-style run", "ours": "warm"}))
    return rows


@dataclass(frozen=True)
class Target:
    label: str
    figure: str
    check: str  # "<" threshold, ">=" ratio vs sdk, "==" 0
    threshold: float


TARGETS = (
    Target("create -> 3 Ready median under 1 s", "create_median", "<", 1.0),
    Target("single PodSet at least 5x faster than the SDK", "create_median", "ratio", 5.0),
    Target("burst at least 5x faster than the SDK", "burst_all", "ratio", 5.0),
    Target("no-op reconcile under 0.3 s", "noop_reconcile", "<", 0.3),
    Target("first reconcile of a new PodSet among the background under 2 s", "new_median", "<", 2.0),
    Target("zero Ansible runs at idle", "idle_runs", "==", 0.0),
    Target("zero writes at idle", "idle_writes", "==", 0.0),
    Target("RSS under 150 MB with the background", "rss", "<", 150.0),
)


def targets(rows: list[Figure]) -> list[dict[str, Any]]:
    by_key = {f.key: f for f in rows}
    out = []
    for t in TARGETS:
        fig = by_key.get(t.figure)
        value = fig.values.get("ours") if fig else None
        met: bool | None
        if t.check == "ratio":
            value = fig.as_dict()["ratios"]["vs_sdk"] if fig else None
            if value is None and fig and fig.values.get("ours") is not None and fig.values.get("sdk") is None \
                    and "sdk" in fig.notes:
                met = None  # the SDK did not finish within the cap: at least cap/ours, see the notes
            else:
                met = None if value is None else value >= t.threshold
        elif t.check == "<":
            met = None if value is None else value < t.threshold
        else:
            met = None if value is None else value == t.threshold
        out.append({"target": t.label, "figure": t.figure, "value": value, "met": met})
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
    return f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}x"


def table(rows: list[Figure], titles: dict[str, str]) -> str:
    """The terminal table: each figure per system, then ours as a ratio of the SDK's and the
    native controller's (SDK / ours: above 1 we are faster or lighter)."""
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
    return "\n".join(lines)


def _cell(f: Figure, system: str, over: str) -> str:
    value, note = f.values.get(system), f.notes.get(system, "")
    if value is None and note.startswith("not within "):
        return note.replace("not within ", over)
    text = fmt(value, f.unit)
    return text + "*" if value is not None and note.startswith(DURING) else text


def targets_text(checks: list[dict[str, Any]]) -> str:
    mark = {True: "met", False: "NOT met", None: "n/a"}
    return "\n".join(f"  {mark[c['met']]:<8} {c['target']} (ours: {fmt(c['value'])})" for c in checks)


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


def rows_from_document(doc: dict[str, Any]) -> list[Figure]:
    return [Figure(f["key"], f["label"], f["unit"], f["values"], f.get("notes", {})) for f in doc["figures"]]


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
                           "new_at_start", "new_median", "noop_reconcile") if k in rows]
    idle = [k for k in ("idle_cpu", "idle_runs", "idle_writes", "rss") if k in rows]
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
    print(markdown_table(rows_from_document(doc), titles))
    print()
    print(targets_text(doc["targets"]))
    if "--chart" in argv:
        chart(doc, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
