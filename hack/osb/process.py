"""A broker of hack/osb as a child process, for tests and ``make demo``.

    broker = BrokerProcess("edgebroker", tmp / "edge.json", extra_args=["--async-seconds", "1"])
    with broker:                   # start(), and stop() on the way out
        urlopen(broker.url + "/v2/catalog" ...)
        broker.restart()           # same port, same state file
        broker.requests()          # GET /admin/requests
        broker.set_maintenance("3.0.0")  # edgebroker: POST /admin/maintenance

The broker's stdout (its ``listening on`` line) and stderr (one line per request) are appended
to files beside the state file (``<state>.out`` and ``<state>.log``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from hack.devkit import free_port, port_in_use

ROOT = Path(__file__).resolve().parents[2]
Kind = Literal["openbroker", "edgebroker"]


class BrokerProcess:
    def __init__(self, kind: Kind, state: Path, username: str = "broker", password: str | None = None,
                 extra_args: Sequence[str] = (), port: int | None = None) -> None:
        self.kind = kind
        self.state = state
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.extra_args = list(extra_args)
        # Kept across restarts, so that what a client holds (the URL) stays right.
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stdout_file(self) -> Path:
        return self.state.with_name(self.state.name + ".out")

    @property
    def log_file(self) -> Path:
        return self.state.with_name(self.state.name + ".log")

    def command(self) -> list[str]:
        # --opt=value: a generated password starts with "-" one time in 64, which argparse would
        # take for an option after a separate --password.
        return [sys.executable, "-m", f"hack.osb.{self.kind}", "--port", str(self.port), "--state", str(self.state),
                f"--username={self.username}", f"--password={self.password}", *self.extra_args]

    def start(self, timeout: float = 20.0) -> BrokerProcess:
        """Start the broker and return once it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError(f"{self.kind} already runs (pid {self.proc.pid})")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with self.stdout_file.open("ab") as out, self.log_file.open("ab") as err:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while not port_in_use(self.port):
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.kind} did not listen on {self.port} within {timeout}s:\n{self.log_tail()}")
            try:
                # The pause between polls, cut short if the broker exits.
                code = self.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"{self.kind} exited with {code} before listening:\n{self.log_tail()}")
        if self.proc.poll() is not None:  # the port was someone else's
            raise RuntimeError(f"{self.kind} exited with {self.proc.returncode}:\n{self.log_tail()}")
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: the broker gets no chance to tidy up (a crash, as far as its state file goes)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, timeout: float = 20.0) -> BrokerProcess:
        self.stop()
        return self.start(timeout)

    def requests(self) -> list[dict[str, Any]]:
        """The broker's request log (``GET /admin/requests``), oldest first."""
        with urllib.request.urlopen(self.url + "/admin/requests", timeout=10) as response:  # nosec B310  # 127.0.0.1
            log: list[dict[str, Any]] = json.load(response)
        return log

    def set_maintenance(self, version: str) -> None:
        """Make the edge broker's ``maintained`` plan advertise `version` (``POST /admin/maintenance``),
        so that a client's cached catalog goes stale."""
        request = urllib.request.Request(self.url + "/admin/maintenance", method="POST",
                                         data=json.dumps({"version": version}).encode())
        with urllib.request.urlopen(request, timeout=10):  # nosec B310  # the broker's http://127.0.0.1 URL
            pass

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> BrokerProcess:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
