"""Warm interpreters that fork per job: the reason a reconcile costs tenths of a second.

Two kinds of server, each a long-lived process that imports what its jobs need once,
then forks a child per job:

- ``playbook``: Ansible itself is imported (CLI, executor, plugin loaders). A child
  runs ``ansible-playbook`` in-process with the job's argv, environment and cwd.
- ``python``: the libraries Ansible modules load (the kubernetes client, yaml,
  jsonpatch) and ansible-core's module_utils are imported. A child runs the module's
  script as ``__main__``; when AnsiballZ hands it the module's payload, the payload's
  ``ansible`` package is entered into the preloaded one, so a module from a role's
  ``library/`` and a role's own module_utils are found there, and the preloaded modules
  stay only where the payload's copies are the same files (`runner.codecache.Preloaded`).

A job reaches a server through a shim (see `runner.warm`): a tiny script in place of
the ``ansible-playbook`` binary or the module interpreter. It connects to the server's
Unix socket and hands over argv, environment, cwd and its own stdin/stdout/stderr (as
file descriptors), waits for the exit code, and forwards signals to the child. The
child writes straight into the shim's stdio, so ansible-runner and Ansible see the
same bytes and exit codes as with the real programs.

Ansible reads much of its configuration (``ANSIBLE_*``, ansible.cfg) at import time,
so a ``playbook`` server serves one configuration only: the shim picks the server by
a digest of it and starts one when none answers, running that job cold meanwhile. A
server exits when the process that owns the warm directory is gone (checked every second),
or on SIGTERM, and kills the jobs still running with it, so no run outlives its operator.

The digest covers the ``PYTHON*`` variables, PYTHONPATH included, and a server starts with
its jobs' PYTHONPATH, so its jobs import from the same path and get what a fresh interpreter
of theirs installs at start-up (the owner-reference hook, `runner.ownerrefs`), which
nothing here needs to know of.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

from runner import codecache

HEADER = struct.Struct("!I")
MAX_REQUEST = 16 << 20


# ---------------------------------------------------------------- wire format (shared with the shim)


def read_request(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """One request: a length-prefixed JSON document, with the caller's stdio fds attached."""
    data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 3)
    if len(data) < HEADER.size:
        raise ConnectionError("short request")
    (length,) = HEADER.unpack_from(data)
    if length > MAX_REQUEST:
        raise ConnectionError("request too large")
    body = bytearray(data[HEADER.size:])
    while len(body) < length:
        chunk = conn.recv(min(1 << 20, length - len(body)))
        if not chunk:
            raise ConnectionError("request cut short")
        body += chunk
    return json.loads(bytes(body)), list(fds)


# ---------------------------------------------------------------- preloading


# The kubernetes client and what it loads, preloaded by both servers: modules use it, and so do
# the lookups that run in Ansible's own processes.
CLIENT_LIBRARIES = ("kubernetes.client", "kubernetes.config", "kubernetes.dynamic", "urllib3", "yaml", "jsonpatch")


def preload(kind: str) -> None:
    if kind == "playbook":
        # What `ansible-playbook` imports before it reads a playbook; config is read here, once.
        for name in ("ansible.cli.playbook", "ansible.executor.playbook_executor", "ansible.executor.process.worker",
                     "ansible.executor.task_queue_manager", "ansible.inventory.manager", "ansible.parsing.dataloader",
                     "ansible.playbook", "ansible.template", "ansible.vars.manager"):
            importlib.import_module(name)
        # Lookups (kubernetes.core.k8s) run in Ansible's own processes: their client, once.
        for name in CLIENT_LIBRARIES:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        from ansible.plugins import loader

        # The collection loader and the plugins every run looks at (their modules and config
        # definitions), found once. A child's own init_plugin_loader then finds it configured.
        # Callback plugins are left alone: ansible-runner's reads the run's artifact directory
        # from the environment when it is imported. So are vars plugins: on ansible-core 2.18,
        # host_group_vars found here as a class is never run on an inventory's group_vars.
        loader.init_plugin_loader()
        for plugins in (loader.connection_loader, loader.shell_loader, loader.become_loader,
                        loader.inventory_loader, loader.strategy_loader):
            with contextlib.suppress(Exception):
                for _plugin in plugins.all(class_only=True):
                    pass
    elif kind == "python":
        # The libraries modules load. ansible-core's module_utils come from this very
        # installation, the one the controller builds every module payload from, so loading
        # them here once changes nothing a module sees. Collections' own module_utils are not
        # preloaded: those still come from each payload, whatever collection version built it;
        # only their compiled code is kept, by digest of their source (`runner.codecache`).
        for name in (*CLIENT_LIBRARIES, "kubernetes.watch", "requests", "json", "tempfile", "zipfile", "base64",
                     "shutil", "datetime", "hashlib", "uuid", "copy", "runpy", "traceback", "types",
                     "ansible.module_utils.basic", "ansible.module_utils._internal._ansiballz._loader",
                     "ansible.module_utils.common.dict_transformations", "ansible.module_utils.common.text.converters",
                     "ansible.module_utils.common.validation", "ansible.module_utils.common.arg_spec",
                     "ansible.module_utils.common.json", "ansible.module_utils.six",
                     "ansible.module_utils.urls"):
            with contextlib.suppress(ImportError):
                __import__(name)
        _enter_payloads()
    else:
        raise SystemExit(f"unknown server kind {kind!r}")


ANSIBALLZ_LOADER = "ansible.module_utils._internal._ansiballz._loader"


def _enter_payloads() -> None:
    """Square the preloaded ansible-core with each module's payload before the module runs.

    AnsiballZ's wrapper puts the payload first on sys.path, then runs the module through one
    call that names the payload: ``run_module`` of `ANSIBALLZ_LOADER` (ansible-core 2.19) or
    ``runpy.run_module`` with ``_modlib_path`` in its globals (2.18). That call enters the payload
    first (`codecache.Preloaded.enter`). When the preloaded modules had to go, the module runs on
    the payload's own, as in a fresh interpreter.
    """
    preloaded = codecache.Preloaded.snapshot()
    loader = sys.modules.get(ANSIBALLZ_LOADER)
    run_module = getattr(loader, "run_module", None)
    if loader is not None and run_module is not None:

        def run_module_in_payload(**kwargs: Any) -> Any:
            payload = kwargs.get("modlib_path")
            if not isinstance(payload, str) or preloaded.enter(payload):
                return run_module(**kwargs)
            return importlib.import_module(ANSIBALLZ_LOADER).run_module(**kwargs)

        loader.run_module = run_module_in_payload  # type: ignore[attr-defined]
    else:
        _enter_payloads_from_runpy(preloaded)


def _enter_payloads_from_runpy(preloaded: codecache.Preloaded) -> None:
    """ansible-core 2.18: the wrapper imports ``basic`` from the payload (here: the preloaded one),
    hands it the module's arguments, then calls ``runpy.run_module``."""
    import runpy

    run_module = runpy.run_module

    def run_module_in_payload(mod_name: str, init_globals: dict[str, Any] | None = None,
                              run_name: str | None = None, alter_sys: bool = False) -> Any:
        payload = (init_globals or {}).get("_modlib_path")
        if isinstance(payload, str):
            args = getattr(sys.modules.get("ansible.module_utils.basic"), "_ANSIBLE_ARGS", None)
            if not preloaded.enter(payload):
                # The payload's own basic, which must be handed the arguments in turn.
                basic = importlib.import_module("ansible.module_utils.basic")
                basic._ANSIBLE_ARGS = args  # type: ignore[attr-defined]
        return run_module(mod_name, init_globals=init_globals, run_name=run_name, alter_sys=alter_sys)

    runpy.run_module = run_module_in_payload


# ---------------------------------------------------------------- the child side of a job


def _become_job(req: dict[str, Any], fds: list[int], conn: socket.socket) -> None:
    """Turn this freshly forked process into the job's process."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(req["env"])
    os.chdir(req["cwd"])
    os.umask(req.get("umask", 0o022))
    # The job gets a process group of its own, so a forwarded signal reaches Ansible's workers too.
    os.setpgid(0, 0)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # as CPython itself sets it up
    random.seed()
    conn.sendall(json.dumps({"pid": os.getpid()}).encode() + b"\n")
    # sys.stdin/stdout/stderr keep working: they sit on descriptors 0, 1 and 2, which now are the
    # caller's. (Ansible wraps those very objects for fork safety; they must not be replaced.)


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_playbook(argv: list[str]) -> int:
    import warnings

    from ansible.cli.playbook import PlaybookCLI

    # The server configured the collection loader already (see preload).
    warnings.filterwarnings("ignore", message="AnsibleCollectionFinder has already been configured")

    sys.argv = list(argv)
    try:
        PlaybookCLI.cli_executor(list(argv))
    except SystemExit as exc:
        return _exit_code(exc)
    return 0


def run_python(argv: list[str]) -> int:
    """`python SCRIPT ARGS...` or `python` with the script on stdin, as a fresh interpreter would."""
    import runpy
    import traceback
    import types

    args = argv[1:]
    main = types.ModuleType("__main__")
    sys.modules["__main__"] = main
    try:
        if args:
            sys.argv = list(args)
            sys.path.insert(0, os.path.dirname(os.path.abspath(args[0])))
            runpy.run_path(args[0], run_name="__main__")
        else:
            sys.argv = [""]
            sys.path.insert(0, "")
            source = sys.stdin.buffer.read()
            code = compile(source, "<stdin>", "exec")
            main.__dict__.update({"__name__": "__main__", "__builtins__": __builtins__})
            exec(code, main.__dict__)  # nosec B102  # the script Ansible pipes to `python`, run as python would
    except SystemExit as exc:
        return _exit_code(exc)
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _run_job(kind: str, req: dict[str, Any], fds: list[int], conn: socket.socket) -> None:
    code = 1
    try:
        _become_job(req, fds, conn)
        code = run_playbook(req["argv"]) if kind == "playbook" else run_python(req["argv"])
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        with contextlib.suppress(OSError):
            conn.sendall(json.dumps({"rc": code}).encode() + b"\n")
        os._exit(code & 0xFF)


# ---------------------------------------------------------------- the server loop


def _owner_fd(pid: int) -> int | None:
    """A descriptor that becomes readable the moment the owner exits (a pidfd): the server then
    ends its jobs at once, not at its next look. None where the kernel has none (the look every
    second remains); -1 when the owner is already gone."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return -1
    except (AttributeError, OSError):
        return None


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# The jobs forked and not yet reaped, each the leader of its own process group (see _become_job),
# and the server's ends of their callers' connections.
_jobs: set[int] = set()
_callers: set[socket.socket] = set()


def serve(kind: str, socket_path: Path, owner_pid: int) -> int:
    lock = open(f"{socket_path}.lock", "w")  # noqa: SIM115 - held for the server's lifetime
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another server for this socket is starting or running
    # SIGTERM ends the loop like an owner gone, so Ansible's own exit handlers remove its temp dirs.
    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    preload(kind)
    if kind == "python":
        # Beside the socket, so it goes with the warm directory.
        codecache.install(socket_path.parent / "code")
    socket_path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(socket_path))
    os.chmod(socket_path, 0o600)
    server.listen(128)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ)
    owner = _owner_fd(owner_pid)
    if owner is not None and owner >= 0:
        selector.register(owner, selectors.EVENT_READ)
    last_check = time.monotonic()
    try:
        if owner == -1:
            return 0
        while True:
            for key, _ in selector.select(timeout=1.0):
                if key.fileobj == owner:
                    return 0  # the operator is gone: so are its runs (finally, below)
                if key.fileobj is server:
                    conn, _ = server.accept()
                    pid = _handle(kind, server, conn)
                    if pid is not None:
                        selector.register(conn, selectors.EVENT_READ, pid)
                    continue
                _caller_gone(selector, key.fileobj, key.data)  # type: ignore[arg-type]
            _reap()
            if time.monotonic() - last_check > 1.0:
                last_check = time.monotonic()
                if not _owner_alive(owner_pid) or not socket_path.exists():
                    return 0
    finally:
        server.close()
        if socket_path.exists():
            socket_path.unlink(missing_ok=True)
        _end_jobs()


def _handle(kind: str, server: socket.socket, conn: socket.socket) -> int | None:
    """Fork a job for a request; its pid. The server keeps its end of the connection: the caller
    closing it (the job done, or the caller killed) is how the server learns it is gone."""
    try:
        conn.settimeout(10)
        req, fds = read_request(conn)
        conn.settimeout(None)
    except (OSError, ValueError, ConnectionError):
        conn.close()
        return None
    pid = os.fork()
    if pid == 0:
        server.close()
        for other in _callers:  # or a job would keep another's caller connected after it left
            other.close()
        _run_job(kind, req, fds, conn)
    _jobs.add(pid)
    _callers.add(conn)
    for fd in fds:
        os.close(fd)
    return pid


def _caller_gone(selector: selectors.BaseSelector, conn: socket.socket, pid: int) -> None:
    """The caller of job `pid` closed its connection: the job has answered, or the caller died (a
    run timed out or cancelled, which ansible-runner ends with SIGKILL, so no signal is passed
    on). A job still running then goes, with its process group, as it would have with the caller."""
    selector.unregister(conn)
    _callers.discard(conn)
    conn.close()
    _reap()
    if pid in _jobs:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _jobs.discard(pid)


def _end_jobs() -> None:
    """The server is going because its owner is gone or told it to: the jobs still running go
    with it, each with its process group (Ansible's workers), so no run outlives the operator."""
    for pid in sorted(_jobs):
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    _reap()


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 3:
        print("usage: python -m runner.forkserver playbook|python SOCKET OWNER_PID", file=sys.stderr)
        return 2
    kind, path, owner = args
    return serve(kind, Path(path), int(owner))


if __name__ == "__main__":
    sys.exit(main())
