"""The warm shims behave like the programs they stand in for: same argv, environment,
cwd, stdin, stdout, stderr and exit code, whether a server answers or not."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hack.devkit import pid_alive
from runner.warm import WarmAnsible
from tests.support import wait_for

SCRIPT = """
import os, sys
print("argv", sys.argv)
print("cwd", os.getcwd())
print("env", os.environ.get("PROBE"))
print("to stderr", file=sys.stderr)
sys.exit(int(os.environ.get("CODE", "0")))
"""


@pytest.fixture
def warm() -> Iterator[WarmAnsible]:
    w = WarmAnsible()
    yield w
    w.close()


def run(shim: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(shim), *args], input=stdin, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_python_shim_cold_then_warm_behaves_like_python(warm: WarmAnsible, tmp_path: Path) -> None:
    expected = subprocess.run([sys.executable], input=SCRIPT, capture_output=True, text=True, cwd=tmp_path,
                              env={**os.environ, "PROBE": "p1", "CODE": "3"})
    cold = run(warm.python_interpreter, stdin=SCRIPT, env={"PROBE": "p1", "CODE": "3"}, cwd=tmp_path)
    assert (cold.returncode, cold.stdout, cold.stderr) == (3, expected.stdout, expected.stderr)

    wait_for(lambda: warm.servers(), what="the python server to listen")
    hot = run(warm.python_interpreter, stdin=SCRIPT, env={"PROBE": "p1", "CODE": "3"}, cwd=tmp_path)
    assert (hot.returncode, hot.stdout, hot.stderr) == (3, expected.stdout, expected.stderr)


def test_python_shim_keeps_the_callers_pythonpath_cold_and_warm(warm: WarmAnsible, tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "users_own.py").write_text("WHERE = 'user path'\n")
    script = "import users_own; print(users_own.WHERE)"
    cold = run(warm.python_interpreter, stdin=script, env={"PYTHONPATH": str(user)})
    assert (cold.returncode, cold.stdout) == (0, "user path\n"), cold.stderr
    wait_for(lambda: warm.servers(), what="the python server to listen")
    hot = run(warm.python_interpreter, stdin=script, env={"PYTHONPATH": str(user)})
    assert (hot.returncode, hot.stdout) == (0, "user path\n"), hot.stderr


def test_python_shim_runs_a_script_file_with_arguments(warm: WarmAnsible, tmp_path: Path) -> None:
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    warm.prestart()
    wait_for(lambda: warm.servers(), what="the python server to listen")
    out = run(warm.python_interpreter, str(script), "a b", "c", env={"PROBE": "p2"}, cwd=tmp_path)
    assert out.returncode == 0
    assert f"argv [{str(script)!r}, 'a b', 'c']" in out.stdout
    assert f"cwd {tmp_path}" in out.stdout and "env p2" in out.stdout


def test_an_uncaught_exception_exits_1_with_a_traceback(warm: WarmAnsible) -> None:
    warm.prestart()
    wait_for(lambda: warm.servers(), what="the python server to listen")
    out = run(warm.python_interpreter, stdin="raise ValueError('boom')")
    assert out.returncode == 1
    assert "ValueError: boom" in out.stderr


def test_playbook_shim_matches_ansible_playbook(warm: WarmAnsible, tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Say what the variable is
      ansible.builtin.debug:
        msg: "value={{ probe }}"
    - name: Fail on request
      ansible.builtin.fail:
        msg: "asked to fail"
      when: fail | default(false) | bool
""")
    inventory = tmp_path / "hosts"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    args = ["-i", str(inventory), str(playbook), "-e", "probe=42"]
    real = Path(sys.executable).parent / "ansible-playbook"
    expected = subprocess.run([str(real), *args], capture_output=True, text=True, timeout=120)
    assert expected.returncode == 0 and "value=42" in expected.stdout

    first = run(warm.playbook_binary, *args)  # cold: starts the server
    assert first.returncode == 0 and "value=42" in first.stdout
    wait_for(lambda: any(p.name.startswith("playbook-") for p in warm.servers()), timeout=60,
             what="the playbook server to listen")
    warm_run = run(warm.playbook_binary, *args)
    assert warm_run.returncode == 0 and "value=42" in warm_run.stdout
    assert warm_run.stdout.splitlines()[-3:] == expected.stdout.splitlines()[-3:]

    failing = run(warm.playbook_binary, *args, "-e", "fail=true")
    assert failing.returncode == 2 and "asked to fail" in failing.stdout


def test_servers_exit_when_closed(tmp_path: Path) -> None:
    w = WarmAnsible()
    w.prestart()
    wait_for(lambda: w.servers(), what="the python server to listen")
    lock = next(w.dir.glob("*.lock"))
    from runner.warm import _lock_holder

    pid = _lock_holder(lock)
    assert pid
    w.close()

    wait_for(lambda: not pid_alive(pid), what="the server to exit", timeout=10)
