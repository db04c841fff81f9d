"""Sharding on the real cluster: replicas split the objects between them, join, die, come back
and leave while the objects change, and no object is ever run by two of them at once.

The role of these tests records each run's start and end per object, and which replica ran
it, in one file that every replica's runs append to; a replica that is SIGKILLed has its runs
cut at that moment, and none of them may write an end afterwards (they die with it)."""

from __future__ import annotations

import itertools
import json
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import sharding
from tests.support import Cluster, OperatorProcess, StartOperator, conditions_of, example_manifest, wait_for

# Short, consistent leases: a dead replica's slices are taken over in seconds.
FAST_LEASE = ["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
              "--leader-elect-retry-period", "500ms"]
OBJECTS = 24

PROBE = """#!/bin/sh
# start|end, the object, the replica, the wall time: one line each, appended.
echo "start $1 $2 $(date +%s.%N)" >> "$SHARD_PROBE_LOG"
sleep 0.8
echo "end $1 $2 $(date +%s.%N)" >> "$SHARD_PROBE_LOG"
"""

ROLE = """---
- name: Record this run's start, work a while, record its end
  ansible.builtin.command:
    argv:
      - "{{ lookup('ansible.builtin.env', 'SHARD_PROBE') }}"
      - "{{ ansible_operator_meta.name }}"
      - "{{ lookup('ansible.builtin.env', 'SHARD_PROBE_REPLICA') }}"
  changed_when: false
"""


class Replicas:
    """Sharded operators on one probe log, started, killed and stopped by member name."""

    def __init__(self, start_operator: StartOperator, namespace: str, tmp_path: Path) -> None:
        self.start_operator = start_operator
        self.namespace = namespace
        self.log = tmp_path / "runs.log"
        self.log.touch()
        probe = tmp_path / "probe.sh"
        probe.write_text(PROBE)
        probe.chmod(0o755)
        role = tmp_path / "roles" / "probe"
        (role / "tasks").mkdir(parents=True)
        (role / "tasks" / "main.yml").write_text(ROLE)
        self.watches = tmp_path / "watches.yaml"
        self.watches.write_text(json.dumps([{"version": "v1alpha1", "group": "examples.playbook-operator.io",
                                             "kind": "Example", "role": str(role)}]))
        self.env = {"SHARD_PROBE": str(probe), "SHARD_PROBE_LOG": str(self.log)}
        self.running: dict[str, OperatorProcess] = {}
        self.process: dict[str, str] = {}  # member -> the name its current process's runs record
        self.killed: list[tuple[str, float]] = []  # (process, wall time of the SIGKILL)

    def start(self, member: str) -> OperatorProcess:
        # Each process of a member records runs under a name of its own (r2.1, then r2.2).
        process = f"{member}.{sum(1 for p in self.process.values() if p.startswith(member + '.')) + 1}"
        self.process[member] = process
        op = self.start_operator(watches=self.watches, env={**self.env, "SHARD_PROBE_REPLICA": process},
                                 args=["--sharding", "--sharding-member", member, "--leader-election-namespace",
                                       self.namespace, "--leader-election-id", "probe", *FAST_LEASE])
        self.running[member] = op
        return op

    def kill(self, member: str) -> None:
        op = self.running.pop(member)
        assert op.proc is not None
        op.proc.send_signal(signal.SIGKILL)
        self.killed.append((self.process[member], time.time()))
        op.proc.wait()

    def in_flight(self, member: str) -> set[str]:
        """The objects whose run by `member`'s current process has started and not ended."""
        started: set[str] = set()
        for what, obj, by, _ in runs(self.log):
            if by == self.process[member]:
                (started.add if what == "start" else started.discard)(obj)
        return started

    def stop(self, member: str) -> None:
        self.running.pop(member).stop()


@pytest.fixture
def replicas(start_operator: StartOperator, namespace: str, tmp_path: Path) -> Iterator[Replicas]:
    yield Replicas(start_operator, namespace, tmp_path)


def change_all(cluster: Cluster, namespace: str, round_: int) -> None:
    manifests = [json.loads(example_manifest(f"ex{i:02d}", {"round": str(round_)})) for i in range(OBJECTS)]
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}), namespace)


def converged(cluster: Cluster, namespace: str) -> bool:
    items = cluster.list("examples", namespace)
    return len(items) == OBJECTS and all(
        (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        and conditions_of(obj).get("Successful", {}).get("status") == "True" for obj in items)


def members(cluster: Cluster, namespace: str) -> dict[str, frozenset[str] | None]:
    """Each member Lease's member and the view it published."""
    found = {}
    for lease in cluster.list("leases", namespace, "sharding.playbook-operator.io/operator=probe"):
        annotations = lease["metadata"].get("annotations") or {}
        view = annotations.get("sharding.playbook-operator.io/view")
        found[annotations["sharding.playbook-operator.io/member"]] = \
            None if view is None else frozenset(v for v in view.split(",") if v)
    return found


def agreed(cluster: Cluster, namespace: str, expected: set[str]) -> bool:
    """Whether each of `expected` acts under the view `expected` (a dead member's Lease stays
    behind with its last view, until it is taken over again under its name)."""
    found = members(cluster, namespace)
    return all(found.get(member) == expected for member in expected)


def runs(log: Path) -> list[tuple[str, str, str, float]]:
    lines = [line.split() for line in log.read_text().splitlines() if line.strip()]
    return [(what, obj, member, float(at)) for what, obj, member, at in lines]


def test_replicas_never_run_one_object_at_once(cluster: Cluster, namespace: str, replicas: Replicas) -> None:
    for member in ("r1", "r2", "r3"):
        replicas.start(member)
    change_all(cluster, namespace, 0)
    wait_for(lambda: agreed(cluster, namespace, {"r1", "r2", "r3"}), what="three members agreeing", timeout=60)
    wait_for(lambda: converged(cluster, namespace), what="every object reconciled", timeout=180)

    change_all(cluster, namespace, 1)
    wait_for(lambda: replicas.in_flight("r2"), what="a run of r2 in flight", timeout=60)
    replicas.kill("r2")  # its runs die with it; its Lease stays until it expires
    change_all(cluster, namespace, 2)
    wait_for(lambda: agreed(cluster, namespace, {"r1", "r3"}), what="r2's slices taken over", timeout=60)
    replicas.start("r2")  # back under its own name: takes its Lease again
    replicas.start("r4")
    change_all(cluster, namespace, 3)
    wait_for(lambda: agreed(cluster, namespace, {"r1", "r2", "r3", "r4"}), what="four members", timeout=60)
    replicas.stop("r1")  # graceful: drains, deletes its Lease
    change_all(cluster, namespace, 4)
    wait_for(lambda: agreed(cluster, namespace, {"r2", "r3", "r4"}), what="r1 gone", timeout=60)
    wait_for(lambda: converged(cluster, namespace), what="every object converged", timeout=240)
    for op in replicas.running.values():
        op.assert_alive()

    # No two runs of one object overlap. A run cut by a SIGKILL ends at the kill, and nothing a
    # killed replica started writes anything after it.
    killed_at = dict(replicas.killed)
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    open_runs: dict[tuple[str, str], float] = {}
    for what, obj, member, at in sorted(runs(replicas.log), key=lambda r: r[3]):
        if what == "start":
            open_runs[(obj, member)] = at
        else:
            started = open_runs.pop((obj, member))
            if member in killed_at and started < killed_at[member]:
                assert at <= killed_at[member], f"a run of {obj} outlived {member}, SIGKILLed before it ended"
            spans[obj].append((started, at, member))
    assert any(process == "r2.1" for _, process in open_runs), "r2 was killed with a run in flight"
    for (obj, member), started in open_runs.items():
        assert member in killed_at and started <= killed_at[member], f"a run of {obj} by {member} never ended"
        spans[obj].append((started, killed_at[member], member))
    assert len(spans) == OBJECTS
    for obj, intervals in spans.items():
        intervals.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(intervals):
            assert start >= end, f"{obj}: a run by {b} started while one by {a} ran"

    # Every object ends with exactly one owner: the last run of each was made by the member that
    # the final split gives its slice to.
    final = {"r2", "r3", "r4"}
    owners = sharding.assign(final)
    uids = {obj["metadata"]["name"]: obj["metadata"]["uid"] for obj in cluster.list("examples", namespace)}
    for obj, intervals in spans.items():
        last = max(intervals)[2].split(".")[0]
        assert last == owners[sharding.slice_of(uids[obj])], f"{obj} last run by {last}"
