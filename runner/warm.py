"""The operator's side of warm Ansible: shims that stand in for `ansible-playbook` and
for the modules' Python interpreter, and route each job to a warm fork server
(`runner.forkserver`).

ansible-runner runs the ``ansible-playbook`` shim as its binary, and the inventory
names the ``python`` shim as ``ansible_python_interpreter``. Everything else
(artifacts, events, check mode, diff, no_log, return values) is Ansible's and
ansible-runner's own. If no server answers, a shim starts one and runs the job with
the real program, so a job never depends on a server being there.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from runner import ownerrefs

# Variables ansible-runner changes on every run that Ansible reads while running, not at
# import: they do not make a playbook server's configuration differ.
RUNTIME_VARIABLES = ("ANSIBLE_CACHE_PLUGIN_CONNECTION",)

# The shim is run for every job, so it imports only what a bare interpreter has (-S -I).
_SHIM = r'''#!{python} -SI
import hashlib, json, os, signal, socket, struct, sys

KIND = {kind!r}
REAL = {real!r}
DIR = {dir!r}
PYTHON = {python!r}
PROJECT_ROOT = {project_root!r}
OWNER = {owner!r}
RUNTIME = {runtime!r}


def config_signature(env, cwd):
    """What the server's imports depend on: Ansible's configuration and Python's own (its path too)."""
    sig = sorted((k, v) for k, v in env.items() if k.startswith("PYTHON"))
    if KIND == "playbook":
        sig += sorted((k, v) for k, v in env.items() if k.startswith("ANSIBLE_") and k not in RUNTIME)
        for candidate in (env.get("ANSIBLE_CONFIG"), os.path.join(cwd, "ansible.cfg"),
                          os.path.expanduser("~/.ansible.cfg"), "/etc/ansible/ansible.cfg"):
            if candidate and os.path.exists(candidate):
                sig.append(("config-file", os.path.abspath(candidate)))
                break
    return hashlib.sha256(json.dumps(sig).encode()).hexdigest()[:16]


def cold():
    os.execv(REAL, [REAL] + sys.argv[1:])


def start_server(path, env, cwd):
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        server_env = {{k: v for k, v in env.items() if k not in RUNTIME}}
        # The job's own path first, as its interpreter would have it; the project last, for runner.forkserver.
        server_env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), PROJECT_ROOT]))
        os.chdir(cwd)
        os.execve(PYTHON, [PYTHON, "-m", "runner.forkserver", KIND, path, str(OWNER)], server_env)
    finally:
        os._exit(1)


def main():
    env = dict(os.environ)
    cwd = os.getcwd()
    path = os.path.join(DIR, KIND + "-" + config_signature(env, cwd) + ".sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        start_server(path, env, cwd)
        cold()
    umask = os.umask(0)
    os.umask(umask)
    body = json.dumps({{"argv": [REAL] + sys.argv[1:], "env": env, "cwd": cwd, "umask": umask}}).encode()
    data = struct.pack("!I", len(body)) + body
    sent = socket.send_fds(sock, [data[:65536]], [0, 1, 2])
    if sent < len(data):
        sock.sendall(data[sent:])
    reader = sock.makefile("rb")
    first = reader.readline()
    if not first:
        sys.exit(1)
    child = json.loads(first)["pid"]

    def forward(signum, _frame):
        try:
            os.killpg(child, signum)
        except OSError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    last = reader.readline()
    sys.exit(json.loads(last)["rc"] if last else 1)


main()
'''


class WarmAnsible:
    """Shims in a private directory, and the fork servers they start, for one process.

    The servers exit by themselves once this process is gone or `close()` removed the
    directory.
    """

    def __init__(self, root: Path | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="playbook-operator-warm-", dir=root))
        os.chmod(self.dir, 0o700)
        self.bin = Path(sys.executable).parent
        self.playbook_binary = self._write_shim("playbook", self.bin / "ansible-playbook")
        self.python_interpreter = self._write_shim("python", Path(sys.executable))

    def _write_shim(self, kind: str, real: Path) -> Path:
        project_root = Path(__file__).resolve().parent.parent
        text = _SHIM.format(
            python=sys.executable, kind=kind, real=str(real), dir=str(self.dir),
            project_root=str(project_root), owner=os.getpid(), runtime=RUNTIME_VARIABLES,
        )
        path = self.dir / ("ansible-playbook" if kind == "playbook" else "python")
        path.write_text(text)
        path.chmod(0o700)
        return path

    def prestart(self) -> None:
        """Start the module server now, so the first reconciles find it warm."""
        # With the PYTHONPATH runs have (`runner.ansible`), or they would not pick this server.
        env = {**os.environ, "PYTHONPATH": ownerrefs.pythonpath(os.environ.get("PYTHONPATH"))}
        subprocess.run([str(self.python_interpreter)], input=b"", check=False, timeout=60,
                       capture_output=True, env=env)

    def servers(self) -> list[Path]:
        return sorted(self.dir.glob("*.sock"))

    def close(self) -> None:
        for lock in self.dir.glob("*.sock.lock"):
            pid = _lock_holder(lock)
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGTERM)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- Ansible's side: a module job without the shim

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def python_server(command: str, env: Mapping[str, str]) -> tuple[Path, dict[str, str]] | None:
    """The warm python server a pipelined module command would reach through the shim, and the
    environment the shim would hand it; None when the command is anything else.

    Ansible runs a pipelined module as ``/bin/sh -c '[NAME=value ...] INTERPRETER && sleep 0'``
    with the payload on stdin. When INTERPRETER is a python shim whose server is listening, the
    job can go to the server directly: the two shells, the shim's interpreter and ``sleep`` are
    what the shim path adds to every module run.
    """
    try:
        outer = shlex.split(command)
        if len(outer) != 3 or os.path.basename(outer[0]) != "sh" or outer[1] != "-c":
            return None
        words = shlex.split(outer[2])
    except ValueError:
        return None
    job_env = dict(env)
    while words and _ASSIGNMENT.match(words[0]):
        name, _, value = words.pop(0).partition("=")
        job_env[name] = value
    if len(words) != 4 or words[1:] != ["&&", "sleep", "0"] or os.path.basename(words[0]) != "python":
        return None
    path = Path(words[0]).parent / f"python-{python_signature(job_env)}.sock"
    return (path, job_env) if path.exists() else None


def python_signature(env: Mapping[str, str]) -> str:
    """The python server's key, as the shim's ``config_signature`` computes it (a unit test holds
    the two together): the interpreter's own variables, PYTHONPATH included."""
    sig = sorted((k, v) for k, v in env.items() if k.startswith("PYTHON"))
    return hashlib.sha256(json.dumps(sig).encode()).hexdigest()[:16]


_PR_SET_PDEATHSIG = 1
_dies_with_parent = False


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent ends. Ansible's workers start
    sessions of their own, so a run ended by SIGKILL to its process group (a timeout) leaves them
    behind, each holding a module job in the python server; a worker that dies with the run
    closes its connection, and the server ends the job (`forkserver._caller_gone`)."""
    global _dies_with_parent
    if _dies_with_parent:
        return
    _dies_with_parent = True
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return  # not Linux: the server's look at its owner remains
    if os.getppid() == 1:  # the parent went before the call
        os._exit(1)


def run_python_job(server: Path, env: Mapping[str, str], cwd: str, stdin: bytes) -> tuple[int, bytes, bytes] | None:
    """Run a module payload in a child of the warm python server, as the shim would, and return
    its exit code, stdout and stderr; None when the server does not answer (the caller then
    takes the shim's path, which starts one)."""
    die_with_parent()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(server))
    except OSError:
        sock.close()
        return None
    umask = os.umask(0)
    os.umask(umask)
    body = json.dumps({"argv": [sys.executable], "env": dict(env), "cwd": cwd, "umask": umask}).encode()
    data = len(body).to_bytes(4, "big") + body
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    stderr_r, stderr_w = os.pipe()
    ours = {stdin_w, stdout_r, stderr_r}
    child = None
    try:
        try:
            sent = socket.send_fds(sock, [data[:65536]], [stdin_r, stdout_w, stderr_w])
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):  # the child has its copies now
                os.close(fd)
        if sent < len(data):
            sock.sendall(data[sent:])
        reader = sock.makefile("rb")
        first = reader.readline()
        if not first:
            return None
        child = json.loads(first)["pid"]
        with _signals_forwarded_to(child):
            out, err = _exchange(stdin_w, stdout_r, stderr_r, stdin, ours)
            last = reader.readline()
        child = None
        return (json.loads(last)["rc"] if last else 1), out, err
    finally:
        if child is not None:  # interrupted (a task's timeout): the job must not outlive its task
            with contextlib.suppress(OSError):
                os.killpg(child, signal.SIGTERM)
        for fd in ours:
            with contextlib.suppress(OSError):
                os.close(fd)
        sock.close()


@contextlib.contextmanager
def _signals_forwarded_to(child: int) -> Iterator[None]:
    """As the shim does: a signal that ends the caller (Ansible's worker) ends the job as well,
    which has a process group of its own; then the caller's own handler runs."""
    forwarded = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous: dict[int, Any] = {}

    def forward(signum: int, frame: Any) -> None:
        with contextlib.suppress(OSError):
            os.killpg(child, signum)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)
        elif handler != signal.SIG_IGN:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    try:
        for sig in forwarded:
            previous[sig] = signal.signal(sig, forward)
    except ValueError:  # not the main thread: signals are not ours to handle
        pass
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _exchange(stdin_fd: int, stdout_fd: int, stderr_fd: int, data: bytes, open_fds: set[int]) -> tuple[bytes, bytes]:
    """Write the payload and read both outputs at once, as ``Popen.communicate`` does: a payload
    larger than a pipe's buffer must not block on a child that is writing. Each descriptor is
    closed, and taken out of `open_fds`, once done with."""
    outputs = {stdout_fd: bytearray(), stderr_fd: bytearray()}
    view = memoryview(data)

    def done(fd: int) -> None:
        selector.unregister(fd)
        open_fds.discard(fd)
        os.close(fd)

    with selectors.DefaultSelector() as selector:
        os.set_blocking(stdin_fd, False)
        selector.register(stdin_fd, selectors.EVENT_WRITE)
        for fd in outputs:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            for key, _events in selector.select():
                if key.fd == stdin_fd:
                    try:
                        view = view[os.write(stdin_fd, view[:65536]):]
                    except BrokenPipeError:  # the child stopped reading: its output says why
                        view = view[:0]
                    if not view:
                        done(stdin_fd)
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    outputs[key.fd] += chunk
                else:
                    done(key.fd)
    return bytes(outputs[stdout_fd]), bytes(outputs[stderr_fd])


def _lock_holder(lock: Path) -> int | None:
    # /proc/locks names the pid holding each flock; enough to stop servers promptly.
    try:
        inode = os.stat(lock).st_ino
        for line in Path("/proc/locks").read_text().splitlines():
            fields = line.split()
            if len(fields) > 5 and fields[5].endswith(f":{inode}"):
                return int(fields[4])
    except (OSError, ValueError):
        return None
    return None
