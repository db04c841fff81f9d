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
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

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
