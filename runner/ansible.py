"""The one front door to Ansible: run a role or playbook for one object, get a result.

Nothing else in the package touches ansible-runner. A run gets its own
ansible-runner private data directory per object (artifacts kept there, rotated),
runs against localhost with the runner's own interpreter, and comes back as a
:class:`RunResult` with the play stats and the failed tasks.
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from runner import ownerrefs
from runner.artifacts import Scrubber

# Extra directories Ansible must search, relative to the project root: the in-tree
# collections (operator_sdk.util and the project's own plugins).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_TREE_COLLECTIONS = PROJECT_ROOT / "collections"
CONNECTION_PLUGINS = Path(__file__).resolve().parent / "plugins" / "connection"


@dataclass(frozen=True)
class Target:
    """What to run: a role directory or a playbook file (exactly one)."""

    role: Path | None = None
    playbook: Path | None = None

    def __post_init__(self) -> None:
        if (self.role is None) == (self.playbook is None):
            raise ValueError("a Target needs exactly one of role or playbook")


@dataclass(frozen=True)
class RunRequest:
    target: Target
    extravars: Mapping[str, Any]
    # Where this object's artifacts live: <artifacts root>/<group>/<version>/<kind>/<ns>/<name>.
    private_data_dir: Path
    max_artifacts: int = 20
    verbosity: int = 0
    check: bool = False
    diff: bool = False
    extra_args: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    # Stand-ins from `runner.warm` for ansible-playbook and the modules' interpreter;
    # None runs the real ones.
    playbook_binary: Path | None = None
    interpreter: Path | None = None
    # Seconds the run may take before ansible-runner ends it (status "timeout"); 0: no limit.
    timeout: float = 0.0


@dataclass(frozen=True)
class FailedTask:
    task: str
    message: str
    role: str = ""


@dataclass
class RunResult:
    status: str  # successful | failed | timeout | canceled
    rc: int
    ok: int = 0
    changed: int = 0
    skipped: int = 0
    failures: int = 0
    failed_tasks: list[FailedTask] = field(default_factory=list)
    artifact_dir: str = ""
    task_results: list[dict[str, Any]] = field(default_factory=list)
    # Asked for by operator_sdk.util.requeue_after (the last one wins).
    requeue_after: float | None = None

    @property
    def successful(self) -> bool:
        return self.status == "successful" and self.rc == 0


TaskCallback = Callable[[dict[str, Any]], None]


def _inventory(interpreter: Path | None) -> str:
    # Modules run with this interpreter: discovery would pick a Python without our packages. A warm
    # interpreter's modules go straight to its server (runner/plugins/connection/warm_local.py).
    connection = "warm_local" if interpreter is not None else "local"
    return f"localhost ansible_connection={connection} ansible_python_interpreter={interpreter or sys.executable}\n"


def _write_inventory(where: Path, user_inventory: str | None, interpreter: Path | None) -> None:
    """The run's inventory: as the SDK does, a copy of ANSIBLE_INVENTORY (a file or a directory,
    in any format Ansible reads) when it names one, else localhost alone (`_inventory`)."""
    if where.exists():
        shutil.rmtree(where)
    source = Path(user_inventory) if user_inventory else None
    if source is not None and source.is_dir():
        shutil.copytree(source, where)
        return
    where.mkdir(parents=True)
    if source is not None and source.is_file():
        shutil.copyfile(source, where / "hosts")
        return
    (where / "hosts").write_text(_inventory(interpreter))


def _playbook_for(target: Target, workdir: Path) -> Path:
    if target.playbook is not None:
        return target.playbook
    assert target.role is not None
    play = [{
        "name": f"Reconcile with role {target.role.name}",
        "hosts": "localhost",
        "gather_facts": False,
        "roles": [{"role": str(target.role)}],
    }]
    path = workdir / "project" / "reconcile.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(play, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def _collections_path(env: Mapping[str, str]) -> str:
    """Where the run finds collections: where the user's Ansible would (ANSIBLE_COLLECTIONS_PATH,
    else Ansible's default, ANSIBLE_HOME's collections then /usr/share/ansible/collections), and the
    project's in-tree collections last, as the fallback. So an `operator_sdk.util` the user
    installed (as the SDK's image does from requirements.yml) is the one their roles get."""
    configured = env.get("ANSIBLE_COLLECTIONS_PATH") or os.environ.get("ANSIBLE_COLLECTIONS_PATH")
    if not configured:
        home = env.get("ANSIBLE_HOME") or os.environ.get("ANSIBLE_HOME") or \
            os.path.join(env.get("HOME") or os.environ.get("HOME") or os.path.expanduser("~"), ".ansible")
        configured = f"{os.path.join(home, 'collections')}:/usr/share/ansible/collections"
    return f"{configured}:{IN_TREE_COLLECTIONS}"


def _first_on_path(ours: Path, name: str, env: Mapping[str, str]) -> str:
    # The run's environment, handed on from the operator's with our directory first
    # (runner.settings lists the modules that may read the environment, and why).
    paths = [str(ours)]
    existing = env.get(name) or os.environ.get(name)
    if existing:
        paths.append(existing)
    return ":".join(paths)


def _close_without_delay() -> None:
    """ansible-runner runs Ansible under pexpect, whose close() sleeps 0.1 s after closing the
    terminal, to give the kernel time before it checks on the child. ansible-runner closes only
    after the child has exited, so on every run that sleep was pure latency. The child is still
    checked and reaped; it is only not waited for."""
    import pexpect

    if getattr(pexpect.spawn, "closes_without_delay", False):
        return

    class Spawn(pexpect.spawn):  # type: ignore[misc]
        closes_without_delay = True

        def _spawnpty(self, args: Any, **kwargs: Any) -> Any:
            pty = super()._spawnpty(args, **kwargs)
            pty.delayafterclose = 0
            return pty

    pexpect.spawn = Spawn


def run(request: RunRequest, on_task: TaskCallback | None = None) -> RunResult:
    """Run the request's role or playbook and wait for it (call it from a worker thread)."""
    import ansible_runner  # imported late: the CLI's pure commands do not need it

    _close_without_delay()

    request.private_data_dir.mkdir(parents=True, exist_ok=True)
    playbook = _playbook_for(request.target, request.private_data_dir)
    failed: list[FailedTask] = []
    task_results: list[dict[str, Any]] = []
    requeue: list[float | None] = [None]
    # Secret values a role registered or printed without no_log (see runner.artifacts).
    scrubber = Scrubber()

    def handle(event: dict[str, Any]) -> bool:
        # In place, before ansible-runner writes the event to job_events/ and before on_task sees it.
        scrubber.scrub(event)
        data = event.get("event_data") or {}
        kind = event.get("event", "")
        if kind in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            res = data.get("res") or {}
            outcome = {
                "runner_on_ok": "ok", "runner_on_failed": "failed",
                "runner_on_skipped": "skipped", "runner_on_unreachable": "unreachable",
            }[kind]
            if outcome == "failed" and data.get("ignore_errors"):
                outcome = "ignored"
            entry = {
                "task": data.get("task", ""),
                "role": data.get("role", ""),
                "outcome": outcome,
                "changed": bool(res.get("changed")),
                "diff": _diff_of(res),
                "duration": data.get("duration"),
            }
            task_results.append(entry)
            if outcome == "ok" and isinstance(res.get("requeue_after"), (int, float)):
                requeue[0] = float(res["requeue_after"])
            if outcome in ("failed", "unreachable"):
                failed.append(FailedTask(task=entry["task"], role=entry["role"],
                                         message=_failure_message(res)))
            if on_task is not None:
                on_task(entry)
        return True

    cmdline = []
    if request.check:
        cmdline.append("--check")
    if request.diff:
        cmdline.append("--diff")
    if request.extra_args:
        cmdline.append(request.extra_args)

    envvars = {
        "ANSIBLE_COLLECTIONS_PATH": _collections_path(request.env),
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "ANSIBLE_LOCALHOST_WARNING": "False",
        # Modules get their code on stdin: no temporary files and no extra commands per task.
        "ANSIBLE_PIPELINING": "True",
        **request.env,
        # Every Python process of the run, Ansible's and each module's, installs the owner-reference
        # hook at start-up, whichever interpreter runs it, warm or not (see runner.ownerrefs).
        "ANSIBLE_CONNECTION_PLUGINS": _first_on_path(CONNECTION_PLUGINS, "ANSIBLE_CONNECTION_PLUGINS", request.env),
        "PYTHONPATH": ownerrefs.pythonpath(request.env.get("PYTHONPATH", os.environ.get("PYTHONPATH"))),
    }
    user_inventory = request.env.get("ANSIBLE_INVENTORY") or os.environ.get("ANSIBLE_INVENTORY")
    if not user_inventory:
        # The inventory is the ini file written here: skip probing every other plugin.
        envvars.setdefault("ANSIBLE_INVENTORY_ENABLED", "ini")
    _write_inventory(request.private_data_dir / "inventory", user_inventory, request.interpreter)

    # Extra vars go through a private file, never the command line (which ansible-runner keeps in
    # its `command` artifact and `ps` shows): they may carry Secret data. Removed after the run.
    env_dir = request.private_data_dir / "env"
    env_dir.mkdir(exist_ok=True)
    extravars_file = env_dir / "extravars"
    fd = os.open(extravars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(dict(request.extravars), f, default=str)
    # The ansible-playbook installed beside this interpreter, whatever PATH says. Given as a
    # binary, ansible-runner leaves the playbook to the command line.
    playbook_bin = request.playbook_binary or Path(sys.executable).parent / "ansible-playbook"
    cmdline.append(shlex.quote(str(playbook)))
    try:
        r = ansible_runner.run(
            private_data_dir=str(request.private_data_dir),
            binary=str(playbook_bin),
            envvars=envvars,
            cmdline=" ".join(cmdline),
            verbosity=request.verbosity or None,
            rotate_artifacts=request.max_artifacts,
            quiet=True,
            event_handler=handle,
            suppress_env_files=True,
            # ansible-runner counts whole seconds; never end a run before its time.
            timeout=math.ceil(request.timeout) if request.timeout > 0 else None,
        )
    finally:
        extravars_file.unlink(missing_ok=True)
    # stdout, stderr and events that came before the Secret was read; failures built from those.
    scrubber.scrub_run(Path(r.config.artifact_dir))
    failed = [replace(f, message=scrubber.mask_text(f.message)[0]) for f in failed]
    scrubber.scrub(task_results)
    if r.status == "timeout":
        failed.append(FailedTask(task="", message=f"the run did not end within {_seconds(request.timeout)} "
                                                  "(runTimeout) and was ended"))
    elif not failed and r.status != "successful":
        # Ansible stopped before any task failed (a syntax error, a missing role): say why.
        reason = _error_from_stdout(Path(r.config.artifact_dir) / "stdout")
        if reason:
            failed.append(FailedTask(task="", message=scrubber.mask_text(reason)[0]))
    stats = r.stats or {}
    result = RunResult(
        status=r.status,
        rc=r.rc if r.rc is not None else 1,
        ok=sum((stats.get("ok") or {}).values()),
        changed=sum((stats.get("changed") or {}).values()),
        skipped=sum((stats.get("skipped") or {}).values()),
        failures=sum((stats.get("failures") or {}).values()) + sum((stats.get("dark") or {}).values()),
        failed_tasks=failed,
        artifact_dir=str(r.config.artifact_dir),
        task_results=task_results,
        requeue_after=requeue[0],
    )
    return result


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _error_from_stdout(stdout: Path) -> str:
    try:
        lines = [_ANSI.sub("", line).strip() for line in stdout.read_text(errors="replace").splitlines()]
    except OSError:
        return ""
    for i, line in enumerate(lines):
        if line.startswith(("ERROR!", "[ERROR]:")):
            # The error and its first lines of context, not the whole usage text.
            return " ".join(part for part in lines[i:i + 3] if part)[:1024]
    return ""


def _diff_of(res: Mapping[str, Any]) -> Any:
    """A task's diff; for a loop, the diffs of its items; for a kubernetes.core module given a
    list of definitions, the diffs of its objects (under ``result.results``)."""
    inner = res.get("result")
    items = res.get("results")
    if not isinstance(items, list) and isinstance(inner, Mapping):
        items = inner.get("results")
    if res.get("diff") is not None or not isinstance(items, list):
        return res.get("diff")
    diffs: list[Any] = []
    for item in items:
        if isinstance(item, Mapping) and item.get("diff"):
            diff = item["diff"]
            diffs.extend(diff if isinstance(diff, list) else [diff])
    return diffs or None


def _failure_message(res: Mapping[str, Any]) -> str:
    if res.get("_ansible_no_log"):
        return "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
    # A loop fails with "One or more items failed": the first failed item says what went wrong.
    items = res.get("results")
    if isinstance(items, list):
        for item in items:
            if isinstance(item, Mapping) and item.get("failed"):
                return _failure_message(item)
    msg = res.get("msg") or res.get("message") or res.get("stderr") or res.get("reason") or ""
    if not isinstance(msg, str):
        msg = json.dumps(msg, default=str)
    return msg.strip()[:1024]
