"""Sharding on the real cluster: replicas split the objects between them, join, die, come back
and leave while the objects change, and no object is ever run by two of them at once.

The role of these tests records each run's start and end per object, and which replica ran
it, in one file that every replica's runs append to; a replica that is SIGKILLed has its runs
cut at that moment, and none of them may write an end afterwards (they die with it)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import leader, sharding
from runner.watches import load_watches
from tests.e2e.test_namespaced import ACCOUNT, audit_offset, namespaced_rbac
from tests.e2e.test_operations import sample, scrape
from tests.support import (
    ROOT,
    Cluster,
    OperatorProcess,
    StartOperator,
    conditions_of,
    example_manifest,
    service_account_cluster,
    wait_for,
)

# Short, consistent leases: a dead replica's slices are taken over in seconds.
FAST_LEASE = ["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
              "--leader-elect-retry-period", "500ms"]
OBJECTS = 24
# How long a SIGKILLed replica's in-flight runs may take to die after it (the fork server notices
# through a pidfd); the probe's 0.8 s of work is longer, so a run that escaped would still show.
KILL_REACH = 0.5

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
        # With a finalizer: objects deleted after handovers are let go by their last owner.
        self.watches.write_text(json.dumps([{"version": "v1alpha1", "group": "examples.playbook-operator.io",
                                             "kind": "Example", "role": str(role),
                                             "finalizer": {"name": "probe.playbook-operator.io/cleanup",
                                                           "vars": {"finalizing": True}}}]))
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


def apply_examples(cluster: Cluster, namespace: str, data: dict[str, dict[str, str]]) -> None:
    """Example objects, name -> spec.data, in one apply."""
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List",
                              "items": [json.loads(example_manifest(n, d)) for n, d in data.items()]}), namespace)


def owners_of(cluster: Cluster, namespace: str, members: set[str]) -> dict[str, str]:
    """Each Example's owner among `members`, by the split every replica computes from its uid."""
    split = sharding.assign(members)
    return {o["metadata"]["name"]: split[sharding.slice_of(o["metadata"]["uid"])]
            for o in cluster.list("examples", namespace)}


def apply_and_wait_for_configmaps(cluster: Cluster, namespace: str, names: list[str]) -> None:
    """Examples whose spec.data is their name, and the ConfigMap roles/example makes of each."""
    apply_examples(cluster, namespace, {n: {"k": n} for n in names})
    wait_for(lambda: all(cluster.get("configmap", f"{n}-example", namespace) for n in names),
             what="every Example's ConfigMap", timeout=120)


def change_all(cluster: Cluster, namespace: str, round_: int) -> None:
    apply_examples(cluster, namespace, {f"ex{i:02d}": {"round": str(round_)} for i in range(OBJECTS)})


def converged(cluster: Cluster, namespace: str) -> bool:
    items = cluster.list("examples", namespace)
    return len(items) == OBJECTS and all(
        (obj.get("status") or {}).get("observedGeneration") == obj["metadata"]["generation"]
        and conditions_of(obj).get("Successful", {}).get("status") == "True" for obj in items)


def agreed(cluster: Cluster, namespace: str, expected: set[str]) -> bool:
    """Whether each of `expected` acts under the view `expected` (a dead member's Lease stays
    behind with its last view, until it is taken over again under its name)."""
    found = members_of(cluster, namespace, "probe")
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
    final = {"r2", "r3", "r4"}
    owner = owners_of(cluster, namespace, final)
    cluster.kubectl("delete", "examples", "--all", "-n", namespace, "--wait=false")
    wait_for(lambda: not cluster.list("examples", namespace), what="every object finalized and gone", timeout=120)
    for op in replicas.running.values():
        op.assert_alive()

    # No two runs of one object overlap. A run cut by a SIGKILL ends at the kill: the fork server
    # sees its caller gone (a pidfd) and kills the run's process group a moment later, far inside
    # the lease the next owner waits out, and nothing the killed replica started writes after that.
    killed_at = dict(replicas.killed)
    spans: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    open_runs: dict[tuple[str, str], float] = {}
    cut = False  # whether a run of r2's first process was under way when it was killed
    for what, obj, member, at in sorted(runs(replicas.log), key=lambda r: r[3]):
        if what == "start":
            open_runs[(obj, member)] = at
        else:
            started = open_runs.pop((obj, member))
            if member in killed_at and started < killed_at[member]:
                assert at <= killed_at[member] + KILL_REACH, f"a run of {obj} outlived {member} by more than a moment"
                cut = cut or (member == "r2.1" and at > killed_at[member])
            spans[obj].append((started, at, member))
    cut = cut or any(process == "r2.1" for _, process in open_runs)
    assert cut, "r2 was killed with a run in flight"
    # A run the killed replica had set going may log its start a moment after the kill, as its end.
    for (obj, member), started in open_runs.items():
        assert member in killed_at and started <= killed_at[member] + KILL_REACH, \
            f"a run of {obj} by {member} never ended"
        spans[obj].append((started, killed_at[member], member))
    assert len(spans) == OBJECTS
    for obj, intervals in spans.items():
        intervals.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(intervals):
            assert start >= end, f"{obj}: a run by {b} started while one by {a} ran"

    # Every object ends with exactly one owner: the last run of each (its finalizer's) was made by
    # the member that the final split gives its slice to.
    for obj, intervals in spans.items():
        last = max(intervals)[2].split(".")[0]
        assert last == owner[obj], f"{obj} last run by {last}"


def reconciles(op: OperatorProcess, namespace: str, name: str) -> int:
    return op.log().count(f"reconciled Example {namespace}/{name} ")


def wait_for_owners_runs(ops: dict[str, OperatorProcess], namespace: str, owner: dict[str, str]) -> None:
    """Until each object's owner has logged a run of it (a run makes the ConfigMap, then logs)."""
    wait_for(lambda: all(reconciles(ops[m], namespace, n) >= 1 for n, m in owner.items()),
             what="each owner's run logged", timeout=60)


def test_sharded_replicas_as_the_namespaced_account(cluster: Cluster, crds: None, namespace: str,
                                                    tmp_path: Path) -> None:
    """Two replicas with the shipped namespaced RBAC: each object is reconciled by its owner
    alone, a dependent's change reaches the owner's replica, the primary kind is listed and
    watched with a shard selector, and a replica that leaves deletes its Lease."""
    docs, cluster_scoped = namespaced_rbac(namespace)
    cluster.kubectl("create", "serviceaccount", ACCOUNT, "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    as_operator = service_account_cluster(cluster, ACCOUNT, namespace, tmp_path / "sa.kubeconfig")
    offset = audit_offset(cluster)
    ops = {member: OperatorProcess(as_operator, workdir=tmp_path / member, namespaces=[namespace],
                                   args=["--sharding", "--sharding-member", member, "--leader-election-namespace",
                                         namespace, "--leader-election-id", "sharded", *FAST_LEASE])
           for member in ("s1", "s2")}
    try:
        for op in ops.values():
            op.start()
        # Both first (one alone would take everything, then hand half over).
        wait_for(lambda: members_of(cluster, namespace, "sharded") == {"s1": {"s1", "s2"}, "s2": {"s1", "s2"}},
                 what="both members agreeing", timeout=60)
        names = [f"shared{i}" for i in range(8)]
        apply_and_wait_for_configmaps(cluster, namespace, names)
        owner = owners_of(cluster, namespace, {"s1", "s2"})
        wait_for_owners_runs(ops, namespace, owner)
        for n in names:
            other = "s2" if owner[n] == "s1" else "s1"
            assert reconciles(ops[other], namespace, n) == 0, n

        # A dependent's change reaches the owner's replica, and only it.
        name = names[0]
        before = {m: reconciles(op, namespace, name) for m, op in ops.items()}
        cluster.kubectl("delete", "configmap", f"{name}-example", "-n", namespace)
        wait_for(lambda: cluster.get("configmap", f"{name}-example", namespace), what="the ConfigMap made again",
                 timeout=60)
        # The run made the ConfigMap before it ended and logged: wait for its line.
        wait_for(lambda: reconciles(ops[owner[name]], namespace, name) > before[owner[name]],
                 what="the owner's run logged", timeout=60)
        other = "s2" if owner[name] == "s1" else "s1"
        assert reconciles(ops[other], namespace, name) == before[other]

        # A graceful stop deletes the Lease: the other replica takes every object over at once.
        ops["s1"].stop()
        wait_for(lambda: members_of(cluster, namespace, "sharded") == {"s2": {"s2"}}, what="s1's Lease gone",
                 timeout=30)
        moved = next(n for n in names if owner[n] == "s1")
        cluster.apply(example_manifest(moved, {"k": "changed"}), namespace)
        wait_for(lambda: (cluster.get("configmap", f"{moved}-example", namespace) or {}).get("data")
                 == {"k": "changed"}, what="s1's object reconciled by s2", timeout=60)

        for op in ops.values():
            assert "forbidden" not in op.log().lower(), op.log()[-3000:]
        ops["s2"].assert_alive()
        # The custom resources were listed and watched with a shard selector, and nothing refused.
        user = f"system:serviceaccount:{namespace}:{ACCOUNT}"
        sharded_reads, refused = 0, []
        assert cluster.audit_log is not None
        with cluster.audit_log.open() as f:
            f.seek(offset)
            for line in f:
                event = json.loads(line)
                if event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete":
                    continue
                if (event.get("responseStatus") or {}).get("code") == 403:
                    refused.append(event.get("requestURI"))
                if (event.get("objectRef") or {}).get("resource") == "examples" and event["verb"] in ("list", "watch"):
                    assert "shardSelector=" in event["requestURI"], event["requestURI"]
                    sharded_reads += 1
        assert refused == [] and sharded_reads >= 4
    finally:
        for op in ops.values():
            op.stop()
        cluster.kubectl("delete", "--ignore-not-found", *cluster_scoped, check=False)


def members_of(cluster: Cluster, namespace: str, operator: str) -> dict[str, set[str]]:
    """Each member Lease of `operator`: its member and the members of the view it published."""
    found = {}
    for lease in cluster.list("leases", namespace, f"sharding.playbook-operator.io/operator={operator}"):
        annotations = lease["metadata"].get("annotations") or {}
        found[annotations["sharding.playbook-operator.io/member"]] = \
            set((annotations.get("sharding.playbook-operator.io/view") or "").split(",")) - {""}
    return found


@pytest.fixture
def own_cluster_args() -> list[str]:
    return ["--feature-gates", "ShardedListAndWatch=false"]


def test_without_sharded_watches_replicas_filter_by_the_same_hash(own_cluster: Cluster, tmp_path: Path) -> None:
    """An apiserver without the ShardedListAndWatch gate: each replica says so at start-up,
    receives every object and keeps its own share, and /metrics shows the split."""
    cluster = own_cluster
    cluster.kubectl("apply", "-k", str(ROOT / "deploy" / "crd"))
    cluster.kubectl("wait", "--for", "condition=Established", "--timeout=60s", "crd", "--all")
    namespace = "fallback"
    cluster.kubectl("create", "namespace", namespace)
    ops = {member: OperatorProcess(cluster, workdir=tmp_path / member, namespaces=[namespace],
                                   args=["--sharding", "--sharding-member", member, "--leader-election-namespace",
                                         namespace, *FAST_LEASE])
           for member in ("f1", "f2")}
    try:
        for op in ops.values():
            op.start()
        # The default name, which `shards` finds too: a hash of watches.yaml's kinds.
        operator = leader.lease_id(None, [(w.group, w.version, w.kind)
                                          for w in load_watches(ROOT / "watches.yaml", env={})])
        wait_for(lambda: members_of(cluster, namespace, operator) == {"f1": {"f1", "f2"}, "f2": {"f1", "f2"}},
                 what="both members agreeing", timeout=60)
        names = [f"plain{i}" for i in range(6)]
        apply_and_wait_for_configmaps(cluster, namespace, names)
        for op in ops.values():
            assert "the apiserver does not offer sharded list and watch" in op.log(), op.log()[-2000:]
        owner = owners_of(cluster, namespace, {"f1", "f2"})
        wait_for_owners_runs(ops, namespace, owner)
        for n in names:
            assert [m for m, op in ops.items() if reconciles(op, namespace, n)] == [owner[n]], n

        def split() -> tuple[float, float] | None:
            samples = [scrape(op) for op in ops.values()]
            objects = sum(sample(s, "playbook_operator_shard_objects", member=m) or 0
                          for s, m in zip(samples, ops, strict=True))
            permitted = sum(sample(s, "playbook_operator_shard_slices", member=m, state="permitted") or 0
                            for s, m in zip(samples, ops, strict=True))
            return (objects, permitted) if (objects, permitted) == (len(names), sharding.SLICES) else None

        wait_for(split, what="the objects and slices split between the members in /metrics", timeout=30)
        handovers = sample(scrape(ops["f1"]), "playbook_operator_shard_handovers_total", member="f1")
        assert handovers is not None and handovers >= 1
        shown = subprocess.run([str(Path(sys.executable).parent / "playbook-operator"), "shards", "-n", namespace],
                               capture_output=True, text=True, env=cluster.env, cwd=ROOT, timeout=60)
        assert shown.returncode == 0, shown.stderr
        rows = {line.split()[0]: line.split() for line in shown.stdout.splitlines()[1:]}
        assert sorted(rows) == ["f1", "f2"] and all(row[1] == "acting" for row in rows.values()), shown.stdout
        assert sum(int(row[3]) for row in rows.values()) == len(names), shown.stdout
    finally:
        for op in ops.values():
            op.stop()


RETRY_ROLE = """---
- name: Fail when the object asks to
  ansible.builtin.fail:
    msg: asked to fail
  when: (data | default({})).get('fail') == 'yes'
"""


def test_requeues_and_retries_carry_on_after_a_handover(start_operator: StartOperator, cluster: Cluster,
                                                        namespace: str, tmp_path: Path) -> None:
    """Objects a new replica takes over go on being requeued (reconcilePeriod) and, when they
    fail, retried with backoff, by the new owner and no longer by the old one."""
    role = tmp_path / "roles" / "retry"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(RETRY_ROLE)
    watches = tmp_path / "watches.yaml"
    watches.write_text(json.dumps([{"version": "v1alpha1", "group": "examples.playbook-operator.io",
                                    "kind": "Example", "role": str(role), "reconcilePeriod": "2s"}]))

    def start(member: str) -> OperatorProcess:
        return start_operator(watches=watches, args=["--sharding", "--sharding-member", member,
                                                     "--leader-election-namespace", namespace,
                                                     "--leader-election-id", "retry", *FAST_LEASE])

    a = start("a")
    wait_for(lambda: members_of(cluster, namespace, "retry") == {"a": {"a"}}, what="a alone", timeout=60)
    steady = [f"steady{i}" for i in range(8)]
    failing = [f"failing{i}" for i in range(8)]
    apply_examples(cluster, namespace, {**{n: {"fail": "no"} for n in steady}, **{n: {"fail": "yes"} for n in failing}})
    wait_for(lambda: all(reconciles(a, namespace, n) >= 1 for n in steady + failing), what="a's first runs",
             timeout=120)

    b = start("b")
    wait_for(lambda: members_of(cluster, namespace, "retry") == {"a": {"a", "b"}, "b": {"a", "b"}},
             what="a and b agreeing", timeout=60)
    handed_over = {n: reconciles(a, namespace, n) for n in steady + failing}  # a drained before it let go
    owner = owners_of(cluster, namespace, {"a", "b"})
    b_steady = [n for n in steady if owner[n] == "b"]
    b_failing = [n for n in failing if owner[n] == "b"]
    assert b_steady and b_failing, "b takes some of each (8 of each, about half)"

    def failed(op: OperatorProcess, name: str) -> int:
        return op.log().count(f"reconciled Example {namespace}/{name} result=failed")

    wait_for(lambda: all(reconciles(b, namespace, n) >= 2 for n in b_steady), what="b requeueing what it took",
             timeout=60)
    wait_for(lambda: all(failed(b, n) >= 2 for n in b_failing), what="b retrying what fails", timeout=60)
    assert all(reconciles(a, namespace, n) == handed_over[n] for n in b_steady + b_failing), \
        "a reconciled nothing it had let go"
    a.assert_alive()
    b.assert_alive()
