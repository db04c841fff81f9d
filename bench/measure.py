"""What a system costs, read from outside it: CPU seconds and memory of its processes (/proc)
and write requests to the apiserver (the audit log); `bench.metrics` reads its /metrics.

Its processes: the one the bench started and all its descendants, plus playbook-operator's warm
fork servers (`runner.forkserver`), which detach themselves (a new session, reparented away from
the operator) and name their owner's pid as their last argument, with their descendants.

CPU: for every live process of those, utime + stime + cutime + cstime. A child that exits is
reaped by its parent, and its time (with its own reaped children's) moves into the parent's
cutime/cstime, so the sum only grows and counts short-lived children (ansible-runner,
ansible-playbook, forked jobs, module processes) too. The cost over a window is the difference of
two readings; divided by the reconciles counted on /metrics meanwhile, the CPU of one reconcile.
Time lost to the sum: a process that exits without a parent among them to reap it (a fork server
ending mid-window), none in a steady run.

Memory: RSS summed over the tree (shared pages counted once per process, as `ps` would add them
up) and PSS (shared pages divided among the processes that share them, so it adds up honestly).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


FORK_SERVER = "runner.forkserver"


@dataclass(frozen=True)
class Proc:
    ppid: int
    argv: tuple[str, ...]


def processes() -> dict[int, Proc]:
    """Every live process: pid -> parent and command line."""
    out: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        out[int(entry)] = Proc(int(stat.rsplit(")", 1)[1].split()[1]), tuple(a for a in argv if a))
    return out


def _descendants(procs: dict[int, Proc], roots: list[int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    out, seen, todo = [], set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def system_pids(procs: dict[int, Proc], root: int) -> list[int]:
    """`root` and its descendants, and the fork servers any of them owns with theirs (pure)."""
    tree = _descendants(procs, [root])
    owners = {str(pid) for pid in tree}
    servers = [pid for pid, proc in procs.items()
               if FORK_SERVER in proc.argv and proc.argv[-1] in owners and pid not in tree]
    return tree + [pid for pid in _descendants(procs, servers) if pid not in tree]


def process_tree(root: int) -> list[int]:
    """`root` and all its live descendants, with the fork servers it owns (`system_pids`)."""
    return system_pids(processes(), root)


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
    """CPU seconds so far and memory now of `root`'s processes (`process_tree`)."""
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


# ---------------------------------------------------------------- cost of a stretch of work


@dataclass(frozen=True)
class Reading:
    """Where a system stood at one moment: monotonic seconds, CPU seconds of its processes so
    far, reconciles so far (None where not counted)."""

    at: float
    cpu_seconds: float | None
    reconciles: float | None


def cost(before: Reading, after: Reading) -> dict[str, float | None]:
    """CPU seconds, reconciles and seconds between two readings, and what follows: CPU seconds
    per reconcile, reconciles per second, cores busy on average (pure)."""
    seconds = after.at - before.at
    cpu = None if before.cpu_seconds is None or after.cpu_seconds is None else after.cpu_seconds - before.cpu_seconds
    runs = None if before.reconciles is None or after.reconciles is None else after.reconciles - before.reconciles
    return {"seconds": seconds, "cpu_seconds": cpu, "reconciles": runs,
            "cpu_seconds_per_reconcile": cpu / runs if cpu is not None and runs else None,
            "reconciles_per_second": runs / seconds if runs is not None and seconds > 0 else None,
            "cores": cpu / seconds if cpu is not None and seconds > 0 else None}
