"""`python -m bench [--quick]`: PodSet under playbook-operator, the SDK's ansible-operator and the
native ReplicaSet controller, one system at a time on the cluster KUBECONFIG names; a table on
the terminal, bench/results/<date>-<machine>[-quick].json and a PNG beside it.

Order (one system runs at a time, so none competes with another for the CPUs):
  1. no-op reconcile cost, three ways (bench/reconcile_cost.py)
  2. per system: one set of 3 again and again; a burst of sets at once
  3. native: the background of ReplicaSets, with new ones created while it converges; new ones
     among the converged background; an idle window
  4. playbook-operator: creates and converges the background PodSets, with new ones created while
     they converge; once its queue is empty, new PodSets among them; an idle window; then a restart
     with them present: a new PodSet at start-up, the start-up pass
  5. SDK: starts with the same converged PodSets present (as after a restart or an upgrade): a new
     PodSet at start-up, the start-up pass; if that pass finishes within its cap, new PodSets
     among them and an idle window, else a short idle window during the pass
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import measure, profile, report, scenarios, systems
from bench.kube import USER_AGENT, Kube
from bench.progress import Progress
from hack import devkit

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1]) * 1024
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"name": os.environ.get("BENCH_MACHINE") or socket.gethostname(), "cpus": os.cpu_count(),
            "cpu_model": cpu, "memory_bytes": mem, "kernel": platform.release(),
            "python": platform.python_version(), "load_average_at_start": list(os.getloadavg())}


def versions(sys_objs: dict[str, systems.System]) -> dict[str, str]:
    env = devkit.versions()
    out = {key: obj.version() for key, obj in sys_objs.items()}
    out.update({"kubernetes": env["KUBE_VERSION"], "etcd": env["ETCD_VERSION"], "kwok": env["KWOK_VERSION"],
                "sdk_ansible_operator": env["SDK_ANSIBLE_OPERATOR_VERSION"]})
    from importlib.metadata import PackageNotFoundError, version
    for package in ("ansible-core", "ansible-runner", "kubernetes", "kopf"):
        with contextlib.suppress(PackageNotFoundError):
            out[f"ours_{package.replace('-', '_')}"] = version(package)
    sdk_py = devkit.cache_dir() / "sdk" / env["SDK_ANSIBLE_OPERATOR_VERSION"] / "venv" / "bin" / "python"
    if sdk_py.exists():
        probe = ("from importlib.metadata import version as v; "
                 "print(v('ansible-core'), v('ansible-runner'), v('kubernetes'))")
        got = subprocess.run([str(sdk_py), "-c", probe], capture_output=True, text=True).stdout.split()
        if len(got) == 3:
            out["sdk_ansible_core"], out["sdk_ansible_runner"], out["sdk_kubernetes_client"] = got
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "roles/podset", "collections", "runner"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        out["work_tree"] = "modified (roles/podset, collections or runner)" if dirty else "clean"
    except OSError:
        pass
    return out


def reconcile_cost(samples: int, progress: Progress) -> dict[str, Any] | None:
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        proc = subprocess.run([sys.executable, str(ROOT / "bench" / "reconcile_cost.py"), "--samples", str(samples),
                               "--json", out.name], capture_output=True, text=True)
        if proc.returncode != 0:
            progress.note(f"reconcile cost failed: {proc.stderr.strip()[-800:]}")
            return None
        progress.note(proc.stdout.rstrip())
        return dict(json.loads(Path(out.name).read_text()))


def first_reconcile_starts(ours: systems.System, audit: measure.AuditLog, scen: dict[str, Any]) -> None:
    """Beside each new PodSet's create -> 3 Ready: create -> its first reconcile's start, from our
    operator's log and the audit log (`profile.first_reconcile_starts`)."""
    log = ours.workdir / "operator.log"
    if not log.exists():
        return
    lines = profile.reconcile_lines(log)
    created = profile.creations(profile.podset_creates(audit.path))
    for name in ("converging", "among"):
        if name in scen:
            scen[name]["samples"]["first_reconcile_start"] = profile.first_reconcile_starts(
                lines, created, f"bench-{name}-ours")


def wait_namespaces_gone(kube: Kube, namespaces: list[str], progress: Progress, cap: float = 600) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < cap:
        left = [ns for ns in namespaces if not kube.namespace_gone(ns)]
        progress.update(len(namespaces) - len(left), len(namespaces))
        if not left:
            return
        time.sleep(2)
    progress.note(f"namespaces still terminating after {cap:.0f}s: {len(left)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smaller run of a few minutes")
    parser.add_argument("--systems", default="ours,sdk,native", help="comma-separated subset")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--roles-from", metavar="COMMIT",
                        help="run roles/ and collections/ as committed at COMMIT (git archive) rather than as they "
                             "are in the work tree")
    parser.add_argument("--kubeconfig", type=Path, default=os.environ.get("KUBECONFIG"))
    args = parser.parse_args(argv)
    if not args.kubeconfig:
        parser.error("KUBECONFIG is not set (make bench sets it)")
    plan = scenarios.Plan.make(args.quick)
    keys = [k for k in ("ours", "sdk", "native") if k in args.systems.split(",")]
    kube = Kube(args.kubeconfig)
    capacity, needed = kube.pod_capacity(), plan.pods_needed()
    if capacity < needed:
        parser.error(f"the cluster's nodes take {capacity} pods and this run needs {needed}: pods "
                     "beyond that stay Pending and every figure after them would measure the scheduler. A cluster "
                     "from an older hack/cluster.py has smaller nodes: make cluster-down CLUSTER_NAME=..., then again.")
    workdir = Path(tempfile.mkdtemp(prefix="playbook-operator-bench-"))
    audit = measure.AuditLog(args.kubeconfig.parent / "audit.log")
    source = ROOT
    if args.roles_from:
        source = workdir / "source"
        source.mkdir()
        archive = subprocess.run(["git", "archive", args.roles_from, "roles", "collections"], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    sys_objs = {k: systems.make(k, workdir, args.kubeconfig, source) for k in keys}
    podset_keys = [k for k in keys if k != "native"]
    steps = (1 + 3 * len(keys) + (4 if "native" in keys else 0) + (3 if podset_keys else 0)
             + 4 * len(podset_keys))
    progress = Progress(steps)
    started = datetime.datetime.now(datetime.UTC)
    data: dict[str, dict[str, Any]] = {k: {"title": sys_objs[k].title, "kind": sys_objs[k].kind, "scenarios": {}}
                                       for k in keys}
    meta: dict[str, Any] = {"schema": 1, "quick": plan.quick,
                            "date": started.strftime("%Y-%m-%d"), "started": started.isoformat(timespec="seconds"),
                            "machine": machine(), "plan": plan.__dict__, "sdk_notes": systems.SDK_NOTES}
    meta["versions"] = versions(sys_objs)
    meta["cluster"] = kube.nodes()
    if args.roles_from:
        commit = subprocess.run(["git", "rev-parse", "--short", args.roles_from], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip()
        meta["versions"]["roles"] = f"roles/ and collections/ as committed at {commit}"
    else:
        meta["versions"]["roles"] = f"work tree ({meta['versions'].get('work_tree', '?')})"
    exclude = (USER_AGENT,)
    current: systems.System | None = None
    try:
        progress.begin("no-op reconcile, three ways")
        cost = reconcile_cost(int(os.environ.get("BENCH_COST_SAMPLES", 5 if plan.quick else 20)), progress)

        # -- 2. single and burst, each system on its own
        for key in keys:
            s = sys_objs[key]
            current = s
            s.start()
            for name, fn in (("single", scenarios.single), ("burst", scenarios.burst)):
                ns = f"bench-{name}-{key}"
                kube.create_namespace(ns)
                progress.begin(f"{s.title}: {name}")
                data[key]["scenarios"][name] = fn(kube, s, ns, plan, progress)
                kube.delete_namespace(ns)
            s.stop()
            current = None
            progress.begin("cleaning up")
            wait_namespaces_gone(kube, [f"bench-single-{key}", f"bench-burst-{key}"], progress)

        def among(s: systems.System, settled: bool = True) -> None:
            """New sets among the converged background, then the idle window."""
            ns = f"bench-among-{s.key}"
            kube.create_namespace(ns)
            if settled:
                progress.begin(f"{s.title}: new sets among {plan.background}")
                data[s.key]["scenarios"]["among"] = scenarios.new_sets(kube, s, ns, plan, progress)
            progress.begin(f"{s.title}: idle {plan.steady_window:.0f}s with {plan.background} sets")
            data[s.key]["scenarios"]["steady"] = scenarios.steady(s, audit, plan, progress, exclude, settled)
            kube.delete_namespace(ns)

        def converging(s: systems.System, names: systems.System) -> None:
            """The background (its namespaces named after `names`), and new sets while it converges."""
            ns = f"bench-converging-{s.key}"
            kube.create_namespace(ns)
            background, newcomers = scenarios.create_background(kube, names, plan, progress, newcomers_ns=ns,
                                                                meter_system=s)
            data[s.key]["scenarios"]["background"] = background
            if newcomers is not None:
                data[s.key]["scenarios"]["converging"] = newcomers
            kube.delete_namespace(ns)

        def restart(s: systems.System) -> bool:
            """(Re)start with the background present; True when the start-up pass finished."""
            ns = f"bench-restart-{s.key}"
            kube.create_namespace(ns)
            s.start()
            progress.begin(f"{s.title}: start-up with {plan.background} sets")
            result = scenarios.startup_pass(kube, s, ns, plan, progress, float(plan.background + 1))
            data[s.key]["scenarios"]["restart"] = result
            kube.delete_namespace(ns)
            return result["startup_sync_seconds"] is not None

        # -- 3. native with its own background
        if "native" in keys:
            s = sys_objs["native"]
            progress.begin(f"{s.title}: background of {plan.background}")
            converging(s, s)
            among(s)
            for ns in scenarios.background_namespaces(plan, s):
                kube.delete_namespace(ns)
            progress.begin("cleaning up")
            wait_namespaces_gone(kube, [*scenarios.background_namespaces(plan, s), "bench-among-native",
                                        "bench-converging-native"], progress)

        # -- 4./5. PodSet background: converged by playbook-operator, which then measures new sets
        # among it and idles; then each operator starts with it present (the start-up pass).
        if podset_keys:
            bg_owner = sys_objs["ours"] if "ours" in keys else sys_objs[podset_keys[0]]
            bg = systems.System("podsets", "", "PodSet", workdir, args.kubeconfig)  # names the namespaces
            current = bg_owner
            bg_owner.start()
            progress.begin(f"{bg_owner.title}: converging {plan.background} PodSets")
            converging(bg_owner, bg)
            among(bg_owner)
            bg_owner.stop()
            current = None
            for key in podset_keys:
                s = sys_objs[key]
                current = s
                finished = restart(s)
                if s is not bg_owner:
                    among(s, settled=finished)
                s.stop()
                current = None
                progress.begin("cleaning up")
                wait_namespaces_gone(kube, [f"bench-among-{key}", f"bench-restart-{key}",
                                            f"bench-converging-{key}"], progress)
            for ns in scenarios.background_namespaces(plan, bg):
                kube.delete_namespace(ns)
    finally:
        if current is not None:
            current.stop()
        progress.finish()

    prof = None
    if "ours" in keys:
        prof = profile.profile(sys_objs["ours"].workdir, profile.podset_creates(audit.path),
                               {"bench-single-ours", "bench-among-ours", "bench-restart-ours"})
        meta["profile"] = prof
        first_reconcile_starts(sys_objs["ours"], audit, data["ours"]["scenarios"])
    meta["machine"]["load_average_at_end"] = list(os.getloadavg())
    doc = report.results_document(meta={**meta, "finished": datetime.datetime.now(datetime.UTC).isoformat(
        timespec="seconds")}, systems=data, reconcile_cost=cost)
    rows = report.rows_from_document(doc)
    titles = {k: v["title"] for k, v in data.items()}
    print(report.table(rows, titles))
    for text in (report.queue_waits_text(doc), report.settles_text(doc)):
        if text:
            print("\n" + text)
    print("\ntargets (playbook-operator):")
    print(report.targets_text(doc["targets"], quick=plan.quick))
    if prof is not None:
        print("\n" + profile.text(prof))
    print("\nwhat the SDK needed here:\n" + "\n".join(f"  - {n}" for n in systems.SDK_NOTES))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{doc['date']}-{doc['machine']['name']}" + ("-quick" if plan.quick else "")
    out = args.results_dir / f"{stem}.json"
    out.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    try:
        report.chart(doc, out.with_suffix(".png"))
    except ImportError:
        print("matplotlib missing: no chart", file=sys.stderr)
    print(f"\nresults: {out}\nchart:   {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
