"""`playbook-operator run|reconcile|version`.

Flag names and defaults follow the Operator SDK's ansible-operator where it has them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from runner import __version__
from runner.watches import Watch, WatchDefaults, WatchesError, load_watches

EXIT_CONFIG = 2


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
    run.add_argument("--log-format", choices=["text", "json"], default="text")
    run.add_argument("--log-level", default="INFO")

    rec = sub.add_parser("reconcile", help="run one reconcile of a custom resource from a file")
    rec.add_argument("-f", "--filename", required=True, help="the custom resource (YAML or JSON)")
    rec.add_argument("--watches-file", default="./watches.yaml")
    rec.add_argument("--check", action="store_true", help="dry run: report changes without making them")
    rec.add_argument("--diff", action="store_true", help="show the changes each task makes or would make")
    rec.add_argument("--ansible-verbosity", type=int, default=0)

    sub.add_parser("version", help="print the version")
    return parser


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
        for key in ("kind", "namespace", "name", "result", "duration", "changed"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _run(args: argparse.Namespace, watches: list[Watch]) -> int:
    from runner import kube
    from runner.operator import run_operator
    from runner.reconcile import Reconciler, Settings

    _setup_logging(args.log_format, args.log_level)
    kube.load_config()
    artifacts = Path(args.ansible_artifacts_dir or Path(tempfile.gettempdir()) / "playbook-operator" / "runner")
    reconciler = Reconciler(kube.Kube(), Settings(artifacts_root=artifacts, ansible_args=args.ansible_args))
    namespaces = [n.strip() for n in os.environ.get("WATCH_NAMESPACE", "").split(",") if n.strip()]
    logging.getLogger("playbook_operator").info(
        "starting playbook-operator %s: %d watches, namespaces=%s", __version__, len(watches),
        ",".join(namespaces) or "<all>")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_operator(watches, reconciler, namespaces=namespaces))
    return 0


def _reconcile_once(args: argparse.Namespace, watches: list[Watch]) -> int:
    from runner import ansible, kube
    from runner.extravars import build_extra_vars
    from runner.reconcile import artifact_dir, target_of

    obj = yaml.safe_load(Path(args.filename).read_text())
    api_version, kind = obj.get("apiVersion", ""), obj.get("kind", "")
    group, _, version = api_version.rpartition("/")
    watch = next((w for w in watches if (w.group, w.version, w.kind) == (group, version, kind)), None)
    if watch is None:
        print(f"playbook-operator: no watch for {api_version} {kind} in {args.watches_file}", file=sys.stderr)
        return EXIT_CONFIG
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

    def show(task: dict[str, Any]) -> None:
        mark = {"ok": "changed" if task["changed"] else "ok"}.get(task["outcome"], task["outcome"])
        print(f"{mark:>8}  {task['task']}")
        if args.diff and task.get("diff"):
            for d in task["diff"] if isinstance(task["diff"], list) else [task["diff"]]:
                _print_diff(d)

    root = Path(tempfile.gettempdir()) / "playbook-operator" / "reconcile"
    request = ansible.RunRequest(
        target=target_of(watch), extravars=build_extra_vars(watch, obj),
        private_data_dir=artifact_dir(root, watch, obj), max_artifacts=watch.max_runner_artifacts,
        verbosity=args.ansible_verbosity, check=args.check, diff=args.diff,
    )
    result = ansible.run(request, on_task=show)
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
