"""`playbook-operator run|reconcile|rollout|shards|version`.

The flags of `run` and `reconcile`, their defaults and the environment are read in
`runner.settings`; this module starts what the settings it gets back describe.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from runner import __version__, rollout, settings, shardstatus
from runner.settings import OperatorSettings
from runner.watches import Watch, load_watches

EXIT_CONFIG = 2
# The uid a dry run gives an object that is not created yet (the nil UUID: valid wherever a uid
# is, owner references included, and plainly no object's). playbooks/tasks/custom_resource.yml
# uses the same.
STAND_IN_UID = "00000000-0000-0000-0000-000000000000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="playbook-operator",
                                     description="A Kubernetes operator whose logic lives in Ansible roles.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the operator against the current KUBECONFIG",
                         epilog=settings.environment_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    settings.add_flags(run, settings.RUN_FLAGS)

    rec = sub.add_parser("reconcile", help="run one reconcile of a custom resource from a file")
    rec.add_argument("-f", "--filename", required=True, help="the custom resource (YAML or JSON)")
    settings.add_flags(rec, settings.RECONCILE_FLAGS)

    rollout.add_parser(sub)
    shardstatus.add_parser(sub)
    sub.add_parser("version", help="print the version")
    return parser


def _load(config: OperatorSettings) -> list[Watch]:
    return load_watches(Path(config.watching.watches_file), env=config.environment,
                        defaults=config.watching.defaults)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"playbook-operator {__version__}")
        return 0
    if args.command == "rollout":
        return rollout.main(args)
    if args.command == "shards":
        return shardstatus.main(args)
    try:
        config = OperatorSettings.from_args(args)
        watches = _load(config)
    except ValueError as err:  # a WatchesError too
        print(f"playbook-operator: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as err:
        print(f"playbook-operator: watches file not found: {err.filename}", file=sys.stderr)
        return EXIT_CONFIG
    if args.command == "run":
        return _run(config, watches)
    return _reconcile_once(args.filename, config, watches)


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


def _run(config: OperatorSettings, watches: list[Watch]) -> int:
    from runner import kube, leader, metricsauth, probes, shards
    from runner.metrics import Metrics
    from runner.operator import run_operator

    _setup_logging(config.logging.format, config.logging.level)
    log = logging.getLogger("playbook_operator")
    kube.load_config()
    reconciler = _make_reconciler(config, kube.Kube())
    namespaces = list(config.watching.namespaces)
    metrics = Metrics(commit=config.commit or None)
    election = config.leader_election
    elector = None
    if election.enabled:
        assert election.namespace is not None  # OperatorSettings requires one with leader election
        name = leader.lease_id(election.id, [(w.group, w.version, w.kind) for w in watches])
        elector = leader.LeaderElector(leader.KubeLeaseApi(timeout=election.timings.renew_deadline), name=name,
                                       namespace=election.namespace, timings=election.timings, metrics=metrics)
    member = None
    if config.sharding.enabled:
        assert election.namespace is not None  # OperatorSettings requires one with sharding
        member = shards.ShardMember(
            shards.KubeMemberLeaseApi(timeout=election.timings.renew_deadline),
            operator=leader.lease_id(election.id, [(w.group, w.version, w.kind) for w in watches]),
            member=config.sharding.member, namespace=election.namespace, busy=lambda slices: False,
            timings=election.timings)
    log.info("starting playbook-operator %s: %d watches, namespaces=%s, leader election=%s%s", __version__,
             len(watches), ",".join(namespaces) or "<all>", elector.where if elector else "off",
             f", sharding as {member.member} (Lease {member.namespace}/{member.lease})" if member else "")

    async def serve() -> int:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        watching = asyncio.Event()

        def ready() -> tuple[bool, str]:
            if elector is not None and not elector.leading:
                return elector.ready()
            return (True, "ok") if watching.is_set() else (False, "starting")

        serving = config.serving
        server = probes.ProbeServer(metrics=metrics, metrics_address=serving.metrics_address,
                                    health_address=serving.health_address, ready=ready,
                                    user_metrics_address=serving.user_metrics_address,
                                    metrics_tls=metricsauth.self_signed_context() if serving.metrics_secure else None,
                                    metrics_gate=metricsauth.kube_gate() if serving.metrics_require_rbac else None)
        try:
            await server.start()
        except OSError as err:
            log.error("cannot serve metrics and probes: %s", err)
            return 1
        if served := server.bound.get("POST /metrics"):
            host, port = served[0]
            reconciler.user_metrics_url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
        try:
            await run_operator(watches, reconciler, namespaces=namespaces, stop=stop, metrics=metrics,
                               elector=elector, ready=watching, member=member)
        except (leader.LeadershipLost, shards.MembershipLost):
            leader.exit_now(1)  # as controller-runtime does: never run on without the lease
        finally:
            await server.stop()
        return 0

    try:
        with contextlib.suppress(KeyboardInterrupt):
            return asyncio.run(serve())
        return 0
    finally:
        if reconciler.warm is not None:
            reconciler.warm.close()


def _make_reconciler(config: OperatorSettings, client: Any) -> Any:
    """The reconciler with its Ansible settings; warm fork servers are started here."""
    from runner.reconcile import Reconciler
    from runner.warm import WarmAnsible

    warm = WarmAnsible() if config.ansible.warm else None
    if warm is not None:
        warm.prestart()
    return Reconciler(client, config.ansible, warm)


def _reconcile_once(filename: str, config: OperatorSettings, watches: list[Watch]) -> int:
    from runner import ansible, kube
    from runner.dependents import read_reported
    from runner.reconcile import DEPENDENTS_FILE, build_run_request, target_of
    from runner.warm import WarmAnsible

    check, diff = config.ansible.check, config.ansible.diff
    docs = [d for d in yaml.safe_load_all(Path(filename).read_text()) if isinstance(d, dict)]
    # The file's first document of a watched kind (a file may carry what the object needs too).
    found = next(((d, w) for d in docs for w in watches
                  if (w.api_version, w.kind) == (d.get("apiVersion"), d.get("kind"))), None)
    if found is None:
        kinds = ", ".join(f"{d.get('apiVersion', '')} {d.get('kind', '')}" for d in docs) or "nothing"
        print(f"playbook-operator: {filename} holds no kind {config.watching.watches_file} watches "
              f"(it holds {kinds})",
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
    elif check:
        # A dry run of a manifest not applied yet: the identity the apiserver would give it.
        obj["metadata"].setdefault("generation", 1)
        obj["metadata"].setdefault("uid", STAND_IN_UID)

    def show(task: dict[str, Any]) -> None:
        mark = {"ok": "changed" if task["changed"] else "ok"}.get(task["outcome"], task["outcome"])
        print(f"{mark:>8}  {task['task']}")
        if diff and task.get("diff"):
            for d in task["diff"] if isinstance(task["diff"], list) else [task["diff"]]:
                _print_diff(d)

    # The operator's own way of running a role (owner references included), one time, verbosely.
    warm = WarmAnsible()
    try:
        request, _ = build_run_request(config.ansible, warm, watch, obj, target=target_of(watch))
        result = ansible.run(request, on_task=show)
        read_reported(request.private_data_dir / DEPENDENTS_FILE)  # nothing watches them here
    finally:
        warm.close()
    print(f"\n{kind} {obj['metadata']['namespace']}/{obj['metadata']['name']}: {result.status}  "
          f"ok={result.ok} changed={result.changed} skipped={result.skipped} failed={result.failures}"
          f"{'  (check mode: nothing was changed)' if check else ''}")
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
