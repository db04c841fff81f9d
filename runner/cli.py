"""`playbook-operator run|reconcile|rollout|version`.

Flag names and defaults follow the Operator SDK's ansible-operator where it has them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from runner import __version__, rollout
from runner.watches import Watch, WatchDefaults, WatchesError, load_watches, parse_duration

EXIT_CONFIG = 2
# The uid a dry run gives an object that is not created yet (the nil UUID: valid wherever a uid
# is, owner references included, and plainly no object's). playbooks/tasks/custom_resource.yml
# uses the same.
STAND_IN_UID = "00000000-0000-0000-0000-000000000000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="playbook-operator",
                                     description="A Kubernetes operator whose logic lives in Ansible roles.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current KUBECONFIG")
    run.add_argument("--watches-file", default="./watches.yaml", help="path to the watches file")
    run.add_argument("--reconcile-period", default=None,
                     help="default reconcile period for watches that set none (Go duration, e.g. 10h)")
    run.add_argument("--max-concurrent-reconciles", type=int, default=os.cpu_count() or 1,
                     help="default number of concurrent reconciles per watch (default: number of CPUs)")
    run.add_argument("--ansible-verbosity", type=int, default=2, help="default Ansible verbosity (0-7)")
    run.add_argument("--ansible-args", default="", help="extra arguments for every ansible-playbook run")
    run.add_argument("--ansible-artifacts-dir", default=None,
                     help="where ansible-runner artifacts go (default: $TMPDIR/playbook-operator/runner)")
    run.add_argument("--inject-owner-ref", type=_boolean, default=True,
                     help="add an owner reference to what roles create (default true)")
    run.add_argument("--warm-ansible", type=_boolean, default=True,
                     help="run Ansible and its modules in warm fork servers (default true); false runs "
                          "a cold ansible-playbook and a fresh interpreter per task, as the SDK does")
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", default="INFO")
    # Operations: metrics, probes and leader election, with the SDK's flag names and defaults.
    run.add_argument("--metrics-bind-address", default=":8080",
                     help="where /metrics is served: HOST:PORT, :PORT for every interface, 0 to disable")
    run.add_argument("--health-probe-bind-address", default=":6789",
                     help="where /healthz and /readyz are served: HOST:PORT, :PORT, or 0 to disable")
    run.add_argument("--leader-elect", action="store_true",
                     help="run as one replica of several: only the holder of a Lease watches and reconciles")
    run.add_argument("--leader-election-id", default=None,
                     help="name of the Lease (default: $OPERATOR_NAME, else <hash of the watched kinds>"
                          "-playbook-operator)")
    run.add_argument("--leader-election-namespace", default=None,
                     help="namespace of the Lease (default: the pod's own; required outside a cluster)")
    run.add_argument("--leader-elect-lease-duration", type=parse_duration, default=15.0, metavar="DURATION",
                     help="how long a standby waits before taking an unrenewed lease (Go duration, default 15s)")
    run.add_argument("--leader-elect-renew-deadline", type=parse_duration, default=10.0, metavar="DURATION",
                     help="how long the leader keeps trying to renew before it stops (default 10s)")
    run.add_argument("--leader-elect-retry-period", type=parse_duration, default=2.0, metavar="DURATION",
                     help="how often the lease is renewed or tried (default 2s)")

    rec = sub.add_parser("reconcile", help="run one reconcile of a custom resource from a file")
    rec.add_argument("-f", "--filename", required=True, help="the custom resource (YAML or JSON)")
    rec.add_argument("--watches-file", default="./watches.yaml")
    rec.add_argument("--check", action="store_true", help="dry run: report changes without making them")
    rec.add_argument("--diff", action="store_true", help="show the changes each task makes or would make")
    rec.add_argument("--ansible-verbosity", type=int, default=0)

    rollout.add_parser(sub)
    sub.add_parser("version", help="print the version")
    return parser


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _load(path: str, args: argparse.Namespace) -> list[Watch]:
    defaults = WatchDefaults(
        max_concurrent_reconciles=getattr(args, "max_concurrent_reconciles", 1),
        ansible_verbosity=getattr(args, "ansible_verbosity", 2),
        reconcile_period=getattr(args, "reconcile_period", None),
    )
    return load_watches(Path(path), env=os.environ, defaults=defaults)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"playbook-operator {__version__}")
        return 0
    if args.command == "rollout":
        return rollout.main(args)
    try:
        watches = _load(args.watches_file, args)
    except WatchesError as err:
        print(f"playbook-operator: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as err:
        print(f"playbook-operator: watches file not found: {err.filename}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run":
        return _run(args, watches)
    return _reconcile_once(args, watches)


def _setup_logging(fmt: str, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    # kopf is chatty at INFO about every handler; its warnings and errors still show.
    logging.getLogger("kopf").setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {"ts": self.formatTime(record), "level": record.levelname.lower(),
                                 "logger": record.name, "msg": record.getMessage()}
        # Structured fields a caller passed as extra={"fields": {...}} (LogRecord reserves `name`).
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _run(args: argparse.Namespace, watches: list[Watch]) -> int:
    from runner import kube, leader, probes
    from runner.metrics import Metrics
    from runner.operator import run_operator

    try:
        metrics_address = probes.parse_bind_address(args.metrics_bind_address)
        health_address = probes.parse_bind_address(args.health_probe_bind_address)
        timings = leader.Timings(args.leader_elect_lease_duration, args.leader_elect_renew_deadline,
                                 args.leader_elect_retry_period)
    except ValueError as err:
        print(f"playbook-operator: {err}", file=sys.stderr)
        return EXIT_CONFIG
    lease_namespace = args.leader_election_namespace or leader.default_namespace()
    if args.leader_elect and not lease_namespace:
        print("playbook-operator: --leader-election-namespace is required with --leader-elect outside a cluster",
              file=sys.stderr)
        return EXIT_CONFIG

    _setup_logging(args.log_format, args.log_level)
    log = logging.getLogger("playbook_operator")
    kube.load_config()
    artifacts = Path(args.ansible_artifacts_dir or Path(tempfile.gettempdir()) / "playbook-operator" / "runner")
    reconciler = _make_reconciler(args, kube.Kube(), artifacts)
    namespaces = [n.strip() for n in os.environ.get("WATCH_NAMESPACE", "").split(",") if n.strip()]
    metrics = Metrics()
    elector = None
    if args.leader_elect:
        assert lease_namespace is not None
        name = leader.lease_id(args.leader_election_id, [(w.group, w.version, w.kind) for w in watches])
        elector = leader.LeaderElector(leader.KubeLeaseApi(timeout=timings.renew_deadline), name=name,
                                       namespace=lease_namespace, timings=timings, metrics=metrics)
    log.info("starting playbook-operator %s: %d watches, namespaces=%s, leader election=%s", __version__,
             len(watches), ",".join(namespaces) or "<all>", elector.where if elector else "off")

    async def serve() -> int:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        watching = asyncio.Event()

        def ready() -> tuple[bool, str]:
            if elector is not None and not elector.leading:
                return elector.ready()
            return (True, "ok") if watching.is_set() else (False, "starting")

        server = probes.ProbeServer(metrics=metrics, metrics_address=metrics_address,
                                    health_address=health_address, ready=ready)
        try:
            await server.start()
        except OSError as err:
            log.error("cannot serve metrics and probes: %s", err)
            return 1
        try:
            await run_operator(watches, reconciler, namespaces=namespaces, stop=stop, metrics=metrics,
                               elector=elector, ready=watching)
        except leader.LeadershipLost:
            leader.exit_now(1)  # as controller-runtime does: never run on without the lease
        finally:
            await server.stop()
        return 0

    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(serve())
        return 0
    finally:
        if reconciler.settings.warm is not None:
            reconciler.settings.warm.close()


def _make_reconciler(args: argparse.Namespace, client: Any, artifacts: Path) -> Any:
    """The reconciler with its Ansible settings; warm fork servers are started here."""
    from runner.reconcile import Reconciler, Settings
    from runner.warm import WarmAnsible

    warm = WarmAnsible() if args.warm_ansible else None
    if warm is not None:
        warm.prestart()
    return Reconciler(client, Settings(artifacts_root=artifacts, ansible_args=args.ansible_args,
                                       inject_owner_ref=args.inject_owner_ref, warm=warm))


def _reconcile_once(args: argparse.Namespace, watches: list[Watch]) -> int:
    from runner import ansible, kube
    from runner.dependents import read_reported
    from runner.reconcile import DEPENDENTS_FILE, Settings, build_run_request, target_of
    from runner.warm import WarmAnsible

    docs = [d for d in yaml.safe_load_all(Path(args.filename).read_text()) if isinstance(d, dict)]
    # The file's first document of a watched kind (a file may carry what the object needs too).
    found = next(((d, w) for d in docs for w in watches
                  if (w.api_version, w.kind) == (d.get("apiVersion"), d.get("kind"))), None)
    if found is None:
        kinds = ", ".join(f"{d.get('apiVersion', '')} {d.get('kind', '')}" for d in docs) or "nothing"
        print(f"playbook-operator: {args.filename} holds no kind {args.watches_file} watches (it holds {kinds})",
              file=sys.stderr)
        return EXIT_CONFIG
    obj, watch = found
    kind = watch.kind
    group, version = watch.group, watch.version
    obj.setdefault("metadata", {}).setdefault("namespace", "default")
    kube.load_config()
    client = kube.Kube()
    live = None
    try:
        ref = client.plural_for(group, version, kind)
        live = client.get(ref, obj["metadata"]["namespace"], obj["metadata"]["name"])
    except Exception as err:
        print(f"note: could not read the live object ({err}); using the file as it is", file=sys.stderr)
    if live is not None:
        # The live object's identity (uid, for owner references) with the file's spec.
        obj["metadata"] = {**live["metadata"], **{k: v for k, v in obj["metadata"].items()
                                                   if k in ("labels", "annotations")}}
        obj.setdefault("status", live.get("status"))
    elif args.check:
        # A dry run of a manifest not applied yet: the identity the apiserver would give it.
        obj["metadata"].setdefault("generation", 1)
        obj["metadata"].setdefault("uid", STAND_IN_UID)

    def show(task: dict[str, Any]) -> None:
        mark = {"ok": "changed" if task["changed"] else "ok"}.get(task["outcome"], task["outcome"])
        print(f"{mark:>8}  {task['task']}")
        if args.diff and task.get("diff"):
            for d in task["diff"] if isinstance(task["diff"], list) else [task["diff"]]:
                _print_diff(d)

    # The operator's own way of running a role (owner references included), one time, verbosely.
    root = Path(tempfile.gettempdir()) / "playbook-operator" / "reconcile"
    warm = WarmAnsible()
    try:
        settings = Settings(artifacts_root=root, check=args.check, diff=args.diff, warm=warm)
        request, _ = build_run_request(settings, watch, obj, target=target_of(watch))
        result = ansible.run(dataclasses.replace(request, verbosity=args.ansible_verbosity), on_task=show)
        read_reported(request.private_data_dir / DEPENDENTS_FILE)  # nothing watches them here
    finally:
        warm.close()
    print(f"\n{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}: {result.status}  "
          f"ok={result.ok} changed={result.changed} skipped={result.skipped} failed={result.failures}"
          f"{'  (check mode: nothing was changed)' if args.check else ''}")
    for failed in result.failed_tasks:
        print(f"  failed: {failed.task}: {failed.message}", file=sys.stderr)
    print(f"artifacts: {result.artifact_dir}")
    return 0 if result.successful else 1


def _print_diff(diff: Any) -> None:
    if not isinstance(diff, dict):
        return
    if "prepared" in diff:
        print(diff["prepared"])
        return
    before, after = diff.get("before"), diff.get("after")
    if before is None and after is None:
        return
    import difflib

    def lines(v: Any) -> list[str]:
        if v is None or v == {}:
            return []
        text = v if isinstance(v, str) else yaml.safe_dump(v, sort_keys=True)
        return text.splitlines()

    header = diff.get("before_header", "before"), diff.get("after_header", "after")
    for line in difflib.unified_diff(lines(before), lines(after), *header, lineterm=""):
        print(f"      {line}")
