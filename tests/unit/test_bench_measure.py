"""bench.measure: /proc parsing, the processes of a system, CPU cost arithmetic, audit-log write counting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench import measure


def test_parse_stat_handles_spaces_and_parentheses_in_the_name() -> None:
    ticks = measure.CLOCK_TICKS
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0",
              str(3 * ticks), str(1 * ticks), str(4 * ticks), str(2 * ticks)] + ["0"] * 30
    line = "123 (ansible (fork) x) " + " ".join(fields)
    assert measure.parse_stat(line) == (4.0, 6.0)


def test_read_tree_of_this_process() -> None:
    reading = measure.read_tree(os.getpid())
    assert reading.processes >= 1
    assert reading.rss_bytes > 0
    assert reading.cpu_seconds > 0


def test_parse_pss() -> None:
    assert measure.parse_pss("Rss: 10 kB\nPss:   2048 kB\nShared: 1 kB\n") == 2048 * 1024
    assert measure.parse_pss("") == 0


def _event(verb: str, user: str, resource: str, ns: str = "a", agent: str = "op", sub: str | None = None,
           stage: str = "ResponseComplete") -> dict[str, object]:
    ref: dict[str, str] = {"resource": resource, "namespace": ns}
    if sub:
        ref["subresource"] = sub
    return {"stage": stage, "verb": verb, "user": {"username": user}, "userAgent": agent, "objectRef": ref}


def test_count_writes_filters_by_verb_user_agent_namespace_and_stage() -> None:
    events = [
        _event("create", "admin", "pods"),
        _event("patch", "admin", "podsets", sub="status"),
        _event("get", "admin", "pods"),
        _event("list", "admin", "pods"),
        _event("delete", "other", "pods"),
        _event("create", "admin", "pods", agent="playbook-operator-bench/1"),
        _event("create", "admin", "pods", ns="b"),
        _event("create", "admin", "pods", stage="ResponseStarted"),
    ]
    counts = measure.count_writes(events, users={"admin"}, exclude_agents=("playbook-operator-bench",),
                                  namespaces={"a"})
    assert counts == {"pods": 1, "podsets/status": 1}


def test_audit_log_reads_from_the_mark(tmp_path: Path) -> None:
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(_event("create", "admin", "pods")) + "\n")
    audit = measure.AuditLog(log)
    audit.mark()
    with log.open("a") as f:
        f.write(json.dumps(_event("delete", "admin", "pods")) + "\n")
        f.write('{"half a line')
    events = list(audit.events_since_mark())
    assert [e["verb"] for e in events] == ["delete"]


def _procs() -> dict[int, measure.Proc]:
    py = "/venv/bin/python"
    return {
        1: measure.Proc(0, ("/sbin/init",)),
        100: measure.Proc(1, ("playbook-operator", "run")),
        101: measure.Proc(100, (py, "-m", "ansible_runner")),
        102: measure.Proc(101, ("ansible-playbook",)),
        # Fork servers detach (parent 1) and name their owner last; their jobs are their children.
        200: measure.Proc(1, (py, "-m", "runner.forkserver", "playbook", "/tmp/w/p.sock", "100")),
        201: measure.Proc(200, (py, "-m", "runner.forkserver", "playbook", "/tmp/w/p.sock", "100")),
        202: measure.Proc(201, (py, "module")),
        300: measure.Proc(1, (py, "-m", "runner.forkserver", "python", "/tmp/w/y.sock", "101")),
        # Another operator's server, and an unrelated process.
        400: measure.Proc(1, (py, "-m", "runner.forkserver", "python", "/tmp/x/y.sock", "999")),
        500: measure.Proc(1, ("bash",)),
    }


def test_a_systems_processes_are_its_tree_and_the_fork_servers_it_owns() -> None:
    pids = measure.system_pids(_procs(), 100)
    assert sorted(pids) == [100, 101, 102, 200, 201, 202, 300]
    assert pids[0] == 100


def test_a_system_without_fork_servers_is_its_tree() -> None:
    assert sorted(measure.system_pids(_procs(), 101)) == [101, 102, 300]
    assert measure.system_pids(_procs(), 500) == [500]


def test_cost_per_reconcile_and_per_second() -> None:
    cost = measure.cost(measure.Reading(10.0, 5.0, 100.0), measure.Reading(30.0, 17.0, 140.0))
    assert cost["seconds"] == 20.0
    assert cost["cpu_seconds"] == 12.0
    assert cost["reconciles"] == 40.0
    assert cost["cpu_seconds_per_reconcile"] == pytest.approx(0.3)
    assert cost["reconciles_per_second"] == pytest.approx(2.0)
    assert cost["cores"] == pytest.approx(0.6)


def test_cost_without_reconciles_or_cpu() -> None:
    native = measure.cost(measure.Reading(0.0, 1.0, None), measure.Reading(4.0, 3.0, None))
    assert native["cpu_seconds"] == 2.0
    assert native["reconciles"] is None
    assert native["cpu_seconds_per_reconcile"] is None and native["reconciles_per_second"] is None
    idle = measure.cost(measure.Reading(0.0, 1.0, 7.0), measure.Reading(4.0, 1.5, 7.0))
    assert idle["reconciles"] == 0.0 and idle["cpu_seconds_per_reconcile"] is None
    assert idle["reconciles_per_second"] == 0.0
    unknown = measure.cost(measure.Reading(0.0, None, None), measure.Reading(4.0, None, None))
    assert unknown["cpu_seconds"] is None and unknown["cores"] is None
