"""`python -m bench.sharding`: Example objects converged by 1, 2 and 4 sharded replicas of
playbook-operator on one cluster, then by 4 replicas on a cluster without sharded list and watch
(each receives every object and keeps its share). `make bench-sharding` runs it.

For each: the time from the replicas' start to every object converged (the objects exist before,
as after a restart or a scale-out), the peak memory of each replica (its process tree: operator and
warm servers, RSS and PSS), and what the apiserver sent for the custom resources and for the
ConfigMaps the role makes (watch events and LIST responses, in bytes, from its /metrics: the whole
apiserver's, so the controllers' own watches are in every figure alike; the bench's own lists, which
poll for convergence every 5 s, are taken off).

This machine has 2 cores: replicas share them, so the time to converge cannot fall much with
more replicas, while each replica's memory falls with its share. The report says so beside the
figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bench import measure, metrics
from bench.__main__ import machine
from bench.kube import Kube
from hack import devkit

ROOT = Path(__file__).resolve().parent.parent
GROUP, VERSION, PLURAL = "examples.playbook-operator.io", "v1alpha1", "examples"
FALLBACK_CLUSTER = "bench-fallback"
CONFIGS = (("server", 1), ("server", 2), ("server", 4), ("client", 4))
NOTE = ("2 cores: the replicas share them, so the time to converge cannot fall much with more replicas; "
        "what sharding divides here is each replica's memory and what the apiserver sends it. Dependent "
        "ConfigMaps are watched unsharded: every replica receives all of them.")


@dataclass
class Run:
    """One configuration's figures."""

    mode: str  # server (shardSelector) | client (filtered on the replicas' side)
    replicas: int
    objects: int
    converge_seconds: float | None = None
    converged: int = 0
    peak_rss_bytes: list[int] = field(default_factory=list)
    peak_pss_bytes: list[int] = field(default_factory=list)
    objects_per_replica: list[int] = field(default_factory=list)
    apiserver_bytes: dict[str, float] = field(default_factory=dict)


# --- the apiserver's counters -----------------------------------------------------------------------

TRAFFIC = {
    "examples_watch": ("apiserver_watch_events_sizes_sum", 'resource="examples"'),
    "examples_list": ("apiserver_response_sizes_sum", 'resource="examples",scope="namespace",verb="LIST"'),
    "configmaps_watch": ("apiserver_watch_events_sizes_sum", 'resource="configmaps"'),
}


def traffic(samples: dict[str, float]) -> dict[str, float]:
    """Bytes sent so far, by what (`TRAFFIC`), from the apiserver's /metrics."""
    out = {}
    for key, (name, labels) in TRAFFIC.items():
        out[key] = sum(value for series, value in samples.items()
                       if series.startswith(name + "{") and all(part in series for part in labels.split(",")))
    return out


def apiserver_metrics(kubeconfig: Path) -> dict[str, float]:
    text = subprocess.run([str(devkit.kube_bin_dir() / "kubectl"), "get", "--raw", "/metrics"], check=True,
                          capture_output=True, text=True, env={**os.environ, "KUBECONFIG": str(kubeconfig)}).stdout
    return metrics.parse_prometheus(text)


# --- objects ----------------------------------------------------------------------------------------


def example(name: str, i: int) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Example", "metadata": {"name": name},
            "spec": {"data": {"index": str(i)}}}


def create_examples(kube: Kube, namespace: str, count: int) -> None:
    def create(i: int) -> None:
        kube.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, example(f"ex-{i:05d}", i))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(count)))


def converged(items: list[dict[str, Any]]) -> int:
    """How many Examples have a Successful status for their generation."""
    done = 0
    for obj in items:
        status = obj.get("status") or {}
        ok = any(c.get("type") == "Successful" and c.get("status") == "True" for c in status.get("conditions") or [])
        done += ok and status.get("observedGeneration") == obj["metadata"].get("generation")
    return done


def examples(kube: Kube, namespace: str) -> tuple[list[dict[str, Any]], int]:
    """The Examples in `namespace`, and the bytes of the list response (the bench's own lists are
    taken off the apiserver's count: they are not the replicas')."""
    resp = kube.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, _preload_content=False)
    data = cast(bytes, resp.data)
    return list(json.loads(data)["items"]), len(data)


# --- replicas ---------------------------------------------------------------------------------------


class Replica:
    def __init__(self, member: str, namespace: str, kubeconfig: Path, workdir: Path) -> None:
        self.member = member
        self.metrics_port = devkit.free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        watches = workdir / "watches.yaml"
        watches.write_text(json.dumps([{"version": VERSION, "group": GROUP, "kind": "Example",
                                        "role": str(ROOT / "roles" / "example")}]))
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "WATCH_NAMESPACE": namespace}
        self.log_path = workdir / "operator.log"
        self.log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "playbook-operator"), "run", "--watches-file", str(watches),
             "--sharding", "--sharding-member", member, "--leader-election-namespace", namespace,
             "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
             "--health-probe-bind-address", f"127.0.0.1:{devkit.free_port()}",
             "--user-metrics-bind-address", f"127.0.0.1:{devkit.free_port()}",
             "--ansible-artifacts-dir", str(workdir / "artifacts"), "--log-format", "json"],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        self.peak_rss = self.peak_pss = 0

    def how_it_watches(self) -> str | None:
        """server or client, once the replica has said at start-up; None before."""
        text = (self.log_path).read_text(errors="replace")
        if "the apiserver filters by shard" in text:
            return "server"
        if "does not offer sharded list and watch" in text:
            return "client"
        return None

    def sample(self) -> None:
        reading = measure.read_tree(self.proc.pid)
        self.peak_rss = max(self.peak_rss, reading.rss_bytes)
        self.peak_pss = max(self.peak_pss, reading.pss_bytes)

    def objects(self) -> int:
        try:
            samples = metrics.scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except OSError:
            return 0
        return int(metrics.metric_sum(samples, "playbook_operator_shard_objects"))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# --- one configuration ------------------------------------------------------------------------------


def run_config(kubeconfig: Path, mode: str, replicas: int, objects: int, cap: float, workdir: Path) -> Run:
    kube = Kube(kubeconfig)
    namespace = f"bench-shard-{mode}-{replicas}"
    kube.create_namespace(namespace)
    result = Run(mode, replicas, objects)
    try:
        create_examples(kube, namespace, objects)
        before = traffic(apiserver_metrics(kubeconfig))
        started = time.monotonic()
        members = [Replica(f"r{i + 1}", namespace, kubeconfig, workdir / f"{mode}-{replicas}" / f"r{i + 1}")
                   for i in range(replicas)]
        try:
            while any(m.how_it_watches() is None for m in members) and time.monotonic() - started < 120:
                time.sleep(0.5)
            found = {m.how_it_watches() for m in members}
            if found != {mode}:
                raise SystemExit(f"{mode} x{replicas}: the replicas watch {found}, not {mode}-side sharded: "
                                 "a cluster started before hack/cluster.py enabled ShardedListAndWatch? "
                                 "make cluster-down, then again")
            last_count = 0.0
            own_list_bytes = 0
            while time.monotonic() - started < cap:
                for m in members:
                    m.sample()
                if time.monotonic() - last_count >= 5:
                    last_count = time.monotonic()
                    items, size = examples(kube, namespace)
                    own_list_bytes += size
                    result.converged = converged(items)
                    print(f"  {mode} x{replicas}: {result.converged}/{objects} converged after "
                          f"{time.monotonic() - started:.0f}s", flush=True)
                    if result.converged == objects:
                        result.converge_seconds = round(time.monotonic() - started, 1)
                        break
                time.sleep(1)
            result.objects_per_replica = [m.objects() for m in members]
            after = traffic(apiserver_metrics(kubeconfig))
            result.apiserver_bytes = {k: after[k] - before[k] for k in after}
            result.apiserver_bytes["examples_list"] -= own_list_bytes
            result.apiserver_bytes["bench_own_examples_list"] = own_list_bytes
            result.peak_rss_bytes = [m.peak_rss for m in members]
            result.peak_pss_bytes = [m.peak_pss for m in members]
        finally:
            for m in members:
                m.stop()
    finally:
        kube.delete_namespace(namespace)
        deadline = time.monotonic() + 900
        while not kube.namespace_gone(namespace) and time.monotonic() < deadline:
            time.sleep(2)
    return result


def fallback_cluster() -> Path:
    """A cluster of its own without the ShardedListAndWatch gate, the CRDs installed."""
    script = [sys.executable, str(ROOT / "hack" / "cluster.py"), "--name", FALLBACK_CLUSTER]
    out = subprocess.run([*script, "up", "--nodes", "1", "--feature-gates", "ShardedListAndWatch=false"],
                         capture_output=True, text=True, check=True)
    kubeconfig = Path(out.stdout.strip().splitlines()[-1])
    kubectl = devkit.kube_bin_dir() / "kubectl"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run([str(kubectl), "apply", "-k", str(ROOT / "deploy" / "crd")], env=env, check=True,
                   capture_output=True)
    subprocess.run([str(kubectl), "wait", "--for", "condition=Established", "--timeout=60s", "crd", "--all"],
                   env=env, check=True, capture_output=True)
    return kubeconfig


# --- the report -------------------------------------------------------------------------------------


def table(runs: list[dict[str, Any]]) -> str:
    mib = 1 << 20
    rows = [("replicas", "watch", "converge", "peak RSS/replica (MiB)", "peak PSS/replica (MiB)",
             "objects/replica", "Examples watched (MiB)", "Examples listed (MiB)", "ConfigMaps watched (MiB)")]
    for r in runs:
        sent = r["apiserver_bytes"]
        rows.append((str(r["replicas"]), "shardSelector" if r["mode"] == "server" else "filtered here",
                     f"{r['converge_seconds']:.0f}s" if r["converge_seconds"] is not None
                     else f"not in cap ({r['converged']}/{r['objects']})",
                     " ".join(f"{b / mib:.0f}" for b in r["peak_rss_bytes"]),
                     " ".join(f"{b / mib:.0f}" for b in r["peak_pss_bytes"]),
                     " ".join(str(n) for n in r["objects_per_replica"]),
                     f"{sent.get('examples_watch', 0) / mib:.1f}", f"{sent.get('examples_list', 0) / mib:.1f}",
                     f"{sent.get('configmaps_watch', 0) / mib:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sharding", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000, help="Example objects per configuration")
    parser.add_argument("--cap", type=float, default=1200, help="seconds each configuration may take to converge")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("KUBECONFIG is not set (make bench-sharding sets it)")
    workdir = Path(tempfile.mkdtemp(prefix="playbook-operator-bench-sharding-"))
    started = datetime.datetime.now(datetime.UTC)
    runs: list[dict[str, Any]] = []
    fallback: Path | None = None
    try:
        for mode, replicas in CONFIGS:
            if mode == "client" and fallback is None:
                fallback = fallback_cluster()
            kubeconfig = fallback if mode == "client" else args.kubeconfig
            assert kubeconfig is not None
            print(f"{replicas} replica(s), {'sharded watches' if mode == 'server' else 'filtered here'}: "
                  f"{args.objects} Examples", flush=True)
            runs.append(run_config(kubeconfig, mode, replicas, args.objects, args.cap, workdir).__dict__)
    finally:
        if fallback is not None:
            subprocess.run([sys.executable, str(ROOT / "hack" / "cluster.py"), "--name", FALLBACK_CLUSTER, "down"],
                           capture_output=True, check=False)
    doc = {"schema": 1, "kind": "sharding", "date": started.strftime("%Y-%m-%d"),
           "started": started.isoformat(timespec="seconds"),
           "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "machine": machine(), "versions": {**devkit.versions(), "git_commit": _commit()},
           "objects": args.objects, "note": NOTE, "runs": runs}
    print("\n" + table(runs) + "\n\n" + NOTE)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{doc['date']}-{doc['machine']['name']}-sharding.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nresults: {out}")
    return 0


def _commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
