"""Operating the operator on a real cluster: metrics and probes over HTTP, and leader election
between two replicas (one reconciles, the other stands by and takes over when the first dies)."""

from __future__ import annotations

import json
import signal
import ssl
import urllib.error
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_dependent_triggers import operator_with
from tests.support import Cluster, OperatorProcess, StartOperator, example_manifest, wait_for

GVK = "examples.playbook-operator.io/v1alpha1, Kind=Example"
CONTROLLER = "example-v1alpha1-controller"
# Short, but consistent (lease > renew deadline > 1.2 x retry), so a failover takes seconds.
FAST_LEASE = ["--leader-elect-lease-duration", "4s", "--leader-elect-renew-deadline", "3s",
              "--leader-elect-retry-period", "500ms"]

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def http_get(url: str) -> tuple[int, str]:
    """(status, body); status 0 while nothing listens."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def scrape(op: OperatorProcess) -> Samples:
    status, text = http_get(op.url("/metrics"))
    assert status == 200, f"/metrics answered {status}"
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: Samples, metric: str, /, **labels: str) -> float | None:
    return samples.get((metric, frozenset(labels.items())))


def names(samples: Samples) -> set[str]:
    return {metric for metric, _ in samples}


def configmap(cluster: Cluster, namespace: str, example: str) -> bool:
    return cluster.get("configmap", f"{example}-example", namespace) is not None


def lease_spec(cluster: Cluster, namespace: str, name: str) -> dict[str, object]:
    lease = cluster.get("lease", name, namespace)
    return dict((lease or {}).get("spec") or {})


def test_metrics_and_probes(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    op = start_operator()
    wait_for(lambda: http_get(op.url("/healthz")) == (200, "ok"), what="/healthz to answer 200")
    wait_for(lambda: http_get(op.url("/readyz")) == (200, "ok"), what="/readyz to answer 200")

    cluster.apply(example_manifest("metered", {"greeting": "hello"}), namespace)
    wait_for(lambda: configmap(cluster, namespace, "metered"), what="the ConfigMap", timeout=90)

    def reconciled() -> Samples | None:
        samples = scrape(op)
        return samples if sample(samples, "ansible_operator_reconcile_result", GVK=GVK, result="succeeded") \
            else None

    samples = wait_for(reconciled, what="a succeeded reconcile in /metrics")
    # operator-lib's gauge, which the SDK's e2e test reads: the resource's creation time.
    created = (cluster.get("example", "metered", namespace) or {})["metadata"]["creationTimestamp"]
    assert sample(samples, "resource_created_at_seconds", name="metered", namespace=namespace,
                  group="examples.playbook-operator.io", version="v1alpha1", kind="Example") == \
        datetime.fromisoformat(created).timestamp()
    # The SDK's names, types and labels.
    assert sample(samples, "ansible_operator_build_info", commit="unknown", version="0.1.0") == 1.0
    count = sample(samples, "ansible_operator_reconciles_count", GVK=GVK)
    assert count is not None and count >= 1
    assert sample(samples, "ansible_operator_reconciles_bucket", GVK=GVK, le="+Inf") == count
    # controller-runtime's, as the SDK's binary serves them, and ours.
    assert sample(samples, "workqueue_depth", name=CONTROLLER, controller=CONTROLLER) is not None
    assert sample(samples, "controller_runtime_active_workers", controller=CONTROLLER) is not None
    watch = {"group": "examples.playbook-operator.io", "version": "v1alpha1", "kind": "Example"}
    assert sample(samples, "playbook_operator_reconciles_total", **watch, result="succeeded", changed="true") == 1.0
    # The role's one task created the ConfigMap: one changed task, timed.
    assert sample(samples, "playbook_operator_ansible_tasks_total", **watch, outcome="changed") == 1.0
    assert sample(samples, "playbook_operator_ansible_task_duration_seconds_count", **watch,
                  outcome="changed") == 1.0
    assert "process_resident_memory_bytes" in names(samples)
    # Without --leader-elect there is no lease and no leader metric.
    assert "leader_election_master_status" not in names(samples)

    # Probes and metrics each on their own port.
    assert http_get(op.url("/metrics").replace(op.metrics_address, op.health_address))[0] == 404
    op.assert_alive()


def test_leader_failover(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    lease = f"ops-{uuid.uuid4().hex[:8]}"
    args = ["--leader-elect", "--leader-election-id", lease, "--leader-election-namespace", namespace, *FAST_LEASE]
    replicas = [start_operator(args=args) for _ in ("a", "b")]
    holder = wait_for(lambda: lease_spec(cluster, namespace, lease).get("holderIdentity"),
                      what="a replica to take the lease")
    acquired = f"acquired leader lease {namespace}/{lease} as {holder}"
    leader = wait_for(lambda: next((op for op in replicas if acquired in op.log()), None),
                      what="the holder's log to say it acquired the lease")
    standby = next(op for op in replicas if op is not leader)
    wait_for(lambda: f"standing by, lease {namespace}/{lease} is held by {holder}" in standby.log(),
             what="the other replica's log to say it stands by")
    assert acquired not in standby.log()

    # Both are ready (one leading, one standing by); each says which it is.
    for op in replicas:
        wait_for(lambda op=op: http_get(op.url("/readyz")) == (200, "ok"), what="/readyz to answer 200")
    wait_for(lambda: sample(scrape(leader), "leader_election_master_status", name=lease) == 1.0,
             what="the leader's master status to be 1")
    assert sample(scrape(standby), "leader_election_master_status", name=lease) == 0.0

    # Exactly one reconciles.
    cluster.apply(example_manifest("before", {"greeting": "hello"}), namespace)
    wait_for(lambda: configmap(cluster, namespace, "before"), what="the leader to reconcile", timeout=90)
    wait_for(lambda: f"reconciled Example {namespace}/before" in leader.log(), what="the leader's log")
    assert "reconciled Example" not in standby.log()
    assert "ansible_operator_reconcile_result" not in names(scrape(standby))
    transitions = int(str(lease_spec(cluster, namespace, lease).get("leaseTransitions", 0)))

    # The leader dies without a word; the standby takes over once the lease expires.
    assert leader.proc is not None
    leader.proc.kill()
    leader.proc.wait()
    def successor() -> str | None:
        current = lease_spec(cluster, namespace, lease).get("holderIdentity")
        return str(current) if current and current != holder else None

    new_holder = wait_for(successor, what="the standby to take the lease", timeout=30)
    assert f"acquired leader lease {namespace}/{lease} as {new_holder}" in standby.log()
    assert lease_spec(cluster, namespace, lease).get("leaseTransitions") == transitions + 1
    cluster.apply(example_manifest("after", {"greeting": "hello"}), namespace)
    wait_for(lambda: configmap(cluster, namespace, "after"), what="the new leader to reconcile", timeout=90)
    wait_for(lambda: f"reconciled Example {namespace}/after" in standby.log(), what="the new leader's log")
    assert sample(scrape(standby), "leader_election_master_status", name=lease) == 1.0

    # A graceful stop gives the lease up at once, so a successor need not wait for it to expire.
    assert standby.proc is not None
    standby.proc.send_signal(signal.SIGTERM)
    assert standby.proc.wait(timeout=30) == 0, standby.log()[-4000:]
    spec = lease_spec(cluster, namespace, lease)
    assert (spec.get("holderIdentity") or "", spec.get("leaseDurationSeconds")) == ("", 1)


def test_a_leader_that_loses_its_lease_exits(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    lease = f"ops-{uuid.uuid4().hex[:8]}"
    op = start_operator(args=["--leader-elect", "--leader-election-id", lease,
                              "--leader-election-namespace", namespace, *FAST_LEASE])
    wait_for(lambda: lease_spec(cluster, namespace, lease).get("holderIdentity"), what="the lease to be taken")
    # Someone else writes itself into the lease: the operator must stop acting, and say so.
    cluster.kubectl("patch", "lease", lease, "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"holderIdentity":"intruder"}}')
    assert op.proc is not None
    wait_for(lambda: op.proc is not None and op.proc.poll() is not None, what="the operator to exit", timeout=30)
    assert op.proc.returncode == 1
    assert f"lost lease {namespace}/{lease}" in op.log()


def test_a_new_object_goes_ahead_of_the_initial_list(cluster: Cluster, namespace: str,
                                                    start_operator: StartOperator) -> None:
    listed = [f"listed-{i:02d}" for i in range(15)]
    cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List",
                              "items": [json.loads(example_manifest(name, {"k": "v"})) for name in listed]}),
                  namespace)
    # One worker, so the order of the runs is the queue's.
    op = start_operator(args=["--max-concurrent-reconciles", "1"])

    def order() -> list[str]:
        prefix = f"reconciled Example {namespace}/"
        return [line.split(prefix, 1)[1].split()[0] for line in op.log().splitlines() if prefix in line]

    wait_for(order, what="the first run of the initial list", timeout=90)
    backlog = wait_for(lambda: sample(scrape(op), "playbook_operator_workqueue_depth", controller=CONTROLLER,
                                      priority="low"), what="the initial list waiting at low priority")
    assert backlog is not None and backlog >= 5, backlog
    cluster.apply(example_manifest("late", {"k": "v"}), namespace)
    queued = len(order())  # runs done by the time it was created: late is queued from about now
    runs = wait_for(lambda: order() if {*listed, "late"} <= set(order()) else None,
                    what="every object's run", timeout=120)
    # Next after the run in flight when it came (give or take one that started before its event
    # reached the operator), and so ahead of the listed objects still waiting.
    assert runs.index("late") <= queued + 2, runs
    assert runs.index("late") < len(runs) - 1, f"the list was done before the new object came: {runs}"
    # How long each waited, by the priority it ran at, in controller-runtime's histogram.
    waited = scrape(op)
    labels = {"name": CONTROLLER, "controller": CONTROLLER}
    assert sample(waited, "workqueue_queue_duration_seconds_count", **labels, priority="high") == 1.0
    low = sample(waited, "workqueue_queue_duration_seconds_count", **labels, priority="low")
    assert low is not None and low >= len(listed), waited


METERED_ROLE = """---
- name: Count this run in a metric of the role's own
  operator_sdk.util.osdk_metric:
    name: example_runs
    description: Runs of the Example role
    counter:
      increment: true
- name: Record the greeting's length
  operator_sdk.util.osdk_metric:
    name: example_greeting_length
    description: Length of spec.data.greeting
    gauge:
      set: "{{ data.greeting | length }}"
"""


def test_roles_define_metrics_with_osdk_metric(cluster: Cluster, namespace: str, start_operator: StartOperator,
                                               tmp_path: Path) -> None:
    op = operator_with(METERED_ROLE, tmp_path, start_operator)
    cluster.apply(example_manifest("metered", {"greeting": "hello"}), namespace)
    # Each run posts to the endpoint the operator named for it (a free port here, not the SDK's 5050).
    wait_for(lambda: sample(scrape(op), "example_greeting_length") == 5.0, what="the role's gauge set")
    assert sample(scrape(op), "example_runs_total") == 1.0  # posted by the task before
    cluster.apply(example_manifest("metered", {"greeting": "hello, world"}), namespace)
    wait_for(lambda: sample(scrape(op), "example_greeting_length") == 12.0, what="the gauge set by the next run")
    _, text = http_get(op.url("/metrics"))
    assert "# TYPE example_runs counter" in text  # under the role's own name, as the SDK serves it
    op.assert_alive()


def https_get(url: str, token: str | None = None) -> tuple[int, str]:
    """(status, body) over HTTPS without checking the certificate (it is self-signed)."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=ssl._create_unverified_context()) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except OSError:
        return 0, ""


def test_secure_metrics_need_a_token_allowed_to_read_them(cluster: Cluster, namespace: str,
                                                          start_operator: StartOperator) -> None:
    reader = f"metrics-reader-{namespace}"  # cluster-scoped: named after the test's namespace
    cluster.kubectl("create", "serviceaccount", "prometheus", "-n", namespace)
    cluster.kubectl("create", "serviceaccount", "web", "-n", namespace)
    cluster.kubectl("create", "clusterrole", reader, "--verb=get", "--non-resource-url=/metrics")
    try:
        cluster.kubectl("create", "clusterrolebinding", reader, f"--clusterrole={reader}",
                        f"--serviceaccount={namespace}:prometheus")
        op = start_operator(args=["--metrics-secure", "--metrics-require-rbac"])
        url = f"https://{op.metrics_address}/metrics"
        allowed = cluster.kubectl("create", "token", "prometheus", "-n", namespace).stdout.strip()
        other = cluster.kubectl("create", "token", "web", "-n", namespace).stdout.strip()

        def answered() -> tuple[int, str] | None:
            answer = https_get(url, allowed)
            return answer if answer[0] else None  # 0: not listening yet

        status, body = wait_for(answered, what="/metrics to answer over HTTPS")
        assert status == 200 and "ansible_operator_build_info" in body
        assert https_get(url, other)[0] == 403  # authenticated, but not allowed to get /metrics
        assert https_get(url)[0] == 401
        assert https_get(url, "not-a-token")[0] == 401
        assert http_get(f"http://{op.metrics_address}/metrics")[0] != 200  # never in clear
        op.assert_alive()
    finally:
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", reader, "--ignore-not-found")
