"""bench.measure: /proc parsing, audit-log write counting, Prometheus text."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def test_prometheus_parsing_and_sums() -> None:
    text = """# HELP ansible_operator_reconciles How long
# TYPE ansible_operator_reconciles histogram
ansible_operator_reconciles_bucket{GVK="g/v, Kind=PodSet",le="1"} 2
ansible_operator_reconciles_count{GVK="g/v, Kind=PodSet"} 7
ansible_operator_reconciles_count{GVK="g/v, Kind=Example"} 3
workqueue_depth{name="x"} 0
"""
    samples = measure.parse_prometheus(text)
    assert measure.metric_sum(samples, "ansible_operator_reconciles_count") == 10
    assert measure.metric_sum(samples, "ansible_operator_reconciles_count", "PodSet") == 7
    assert measure.metric_sum(samples, "missing") == 0
