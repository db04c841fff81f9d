"""What a system costs, read from outside it: CPU seconds and memory of its process tree
(/proc), write requests to the apiserver (the audit log), Ansible runs (its /metrics).

CPU: for every live process of the tree, utime + stime + cutime + cstime. A child that exits is
reaped by its parent, and its time (with its own reaped children's) moves into the parent's
cutime/cstime, so the sum only grows and counts short-lived children (ansible-runner,
ansible-playbook, module processes) too. The cost over a window is the difference of two readings.

Memory: RSS summed over the tree (shared pages counted once per process, as `ps` would add them
up) and PSS (shared pages divided among the processes that share them, so it adds up honestly).
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants."""
    children = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def parse_stat(text: str) -> tuple[float, float]:
    """(own CPU seconds, reaped children's CPU seconds) from a /proc/PID/stat line."""
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime, stime, cutime, cstime are fields 14..17.
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def parse_pss(smaps_rollup: str) -> int:
    match = re.search(r"^Pss:\s+(\d+) kB", smaps_rollup, re.M)
    return int(match.group(1)) * 1024 if match else 0


@dataclass(frozen=True)
class TreeReading:
    processes: int
    cpu_seconds: float
    rss_bytes: int
    pss_bytes: int


def read_tree(root: int) -> TreeReading:
    cpu = 0.0
    rss = pss = count = 0
    for pid in process_tree(root):
        try:
            own, reaped = parse_stat(Path(f"/proc/{pid}/stat").read_text())
            statm = Path(f"/proc/{pid}/statm").read_text().split()
            smaps = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue  # exited meanwhile
        count += 1
        cpu += own + reaped
        rss += int(statm[1]) * PAGE
        pss += parse_pss(smaps)
    return TreeReading(count, cpu, rss, pss)


# ---------------------------------------------------------------- audit log


class AuditLog:
    """The apiserver's JSON audit log, read from a remembered offset onwards."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def mark(self) -> None:
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def events_since_mark(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():  # a cluster that is not the local one: no audit log to read
            return
        with self.path.open("rb") as f:
            f.seek(self.offset)
            for line in f:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line being written as we read


def count_writes(events: Iterable[dict[str, Any]], *, users: set[str], exclude_agents: tuple[str, ...] = (),
                 namespaces: set[str] | None = None) -> dict[str, int]:
    """Write requests (create/update/patch/delete) that completed, by `resource[/subresource]`, made
    by one of `users`, not by a user agent starting with one of `exclude_agents`, optionally only
    in `namespaces`."""
    counts: dict[str, int] = {}
    for ev in events:
        if ev.get("stage") != "ResponseComplete" or ev.get("verb") not in WRITE_VERBS:
            continue
        if ev.get("user", {}).get("username") not in users:
            continue
        if exclude_agents and str(ev.get("userAgent", "")).startswith(exclude_agents):
            continue
        ref = ev.get("objectRef", {})
        if namespaces is not None and ref.get("namespace") not in namespaces:
            continue
        key = ref.get("resource", "?") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        counts[key] = counts.get(key, 0) + 1
    return counts


# ---------------------------------------------------------------- metrics


def parse_prometheus(text: str) -> dict[str, float]:
    """`name{labels}` -> value for every sample line of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
        except ValueError:
            continue
    return out


def metric_sum(samples: dict[str, float], name: str, label_contains: str = "") -> float:
    """The sum of every sample of `name` (any labels) whose labels contain `label_contains`."""
    total = 0.0
    for key, value in samples.items():
        base = key.split("{", 1)[0]
        if base == name and label_contains in key:
            total += value
    return total


def scrape(url: str, timeout: float = 5.0) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return parse_prometheus(resp.read().decode())
