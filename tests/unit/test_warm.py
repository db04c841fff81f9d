"""The warm shims behave like the programs they stand in for: same argv, environment,
cwd, stdin, stdout, stderr and exit code, whether a server answers or not."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hack.devkit import pid_alive
from runner import ansible, ownerrefs
from runner import warm as warm_module
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


# ---------------------------------------------------------------- modules sent straight to the server


def module_command(shim: Path, *assignments: str) -> str:
    """What Ansible's local connection runs for a pipelined module."""
    inner = " ".join([*assignments, str(shim), "&&", "sleep", "0"])
    return f"/bin/sh -c {shlex.quote(inner)}"


def test_a_module_command_finds_the_server_its_shim_would_reach(warm: WarmAnsible) -> None:
    env = {**os.environ, "PYTHONPATH": ownerrefs.pythonpath(os.environ.get("PYTHONPATH"))}
    assert warm_module.python_server(module_command(warm.python_interpreter), env) is None  # none listening yet
    warm.prestart()  # the shim starts the server, keyed by its own digest of the environment
    wait_for(lambda: warm.servers(), what="the python server to listen")
    found = warm_module.python_server(module_command(warm.python_interpreter), env)
    assert found is not None and found[0] == warm.servers()[0]

    # Another PYTHONPATH is another server, which is not there.
    assert warm_module.python_server(module_command(warm.python_interpreter, "PYTHONPATH=/elsewhere"), env) is None
    # A task's `environment:` comes as assignments before the interpreter, and reaches the job.
    found = warm_module.python_server(module_command(warm.python_interpreter, "PROBE='a b'"), env)
    assert found is not None and found[1]["PROBE"] == "a b"


@pytest.mark.parametrize("command", [
    "/bin/sh -c 'echo hi'",
    "/bin/sh -c '/usr/bin/python3 && sleep 0'",  # another interpreter, not a shim
    "/bin/sh -c 'python && sleep 0; rm -rf x'",
    "/bin/sh -c '/tmp/x/python script.py && sleep 0'",
    "sudo -u root /bin/sh -c '/tmp/x/python && sleep 0'",
    "/bin/sh -c 'unbalanced",
])
def test_anything_but_a_pipelined_module_is_left_to_the_local_connection(command: str) -> None:
    assert warm_module.python_server(command, os.environ) is None


def test_a_job_sent_to_the_server_behaves_like_python(warm: WarmAnsible, tmp_path: Path) -> None:
    warm.prestart()
    wait_for(lambda: warm.servers(), what="the python server to listen")
    server = warm.servers()[0]
    env = {**os.environ, "PROBE": "p3", "CODE": "4"}
    expected = subprocess.run([sys.executable], input=SCRIPT.encode(), capture_output=True, cwd=tmp_path, env=env)
    result = warm_module.run_python_job(server, env, str(tmp_path), SCRIPT.encode())
    assert result == (4, expected.stdout, expected.stderr)


def test_a_large_payload_and_large_outputs_do_not_block(warm: WarmAnsible) -> None:
    # Module payloads are larger than a pipe's buffer, and so can their output be.
    warm.prestart()
    wait_for(lambda: warm.servers(), what="the python server to listen")
    filler = "#" + "x" * (4 << 20) + "\n"
    script = filler + "import sys\nsys.stdout.write('o' * (3 << 20))\nsys.stderr.write('e' * (3 << 20))\n"
    result = warm_module.run_python_job(warm.servers()[0], dict(os.environ), os.getcwd(), script.encode())
    assert result is not None
    rc, out, err = result
    assert (rc, len(out), len(err)) == (0, 3 << 20, 3 << 20)
    assert set(out) == {ord("o")} and set(err) == {ord("e")}


def test_no_server_means_none(tmp_path: Path) -> None:
    assert warm_module.run_python_job(tmp_path / "python-0.sock", dict(os.environ), str(tmp_path), b"") is None


def test_ansibles_modules_reach_the_server_without_the_shim(warm: WarmAnsible, tmp_path: Path) -> None:
    """The inventory of a warm run names the warm_local connection: module runs go straight to the
    server. Proof: they still work when the shim itself can no longer be executed."""
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run a module with a task environment
      ansible.builtin.command: printenv PROBE
      environment:
        PROBE: "from the task"
      register: printed
      changed_when: false
    - name: Fail a module on request
      ansible.builtin.command: /bin/false
      when: fail | default(false) | bool
""")
    inventory = tmp_path / "hosts"
    inventory.write_text(ansible._inventory(warm.python_interpreter))
    env = {**os.environ, "ANSIBLE_PIPELINING": "True", "ANSIBLE_CONNECTION_PLUGINS": str(ansible.CONNECTION_PLUGINS),
           "PYTHONPATH": ownerrefs.pythonpath(os.environ.get("PYTHONPATH")), "ANSIBLE_NOCOLOR": "1"}
    playbook_cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook), "-v"]
    subprocess.run([str(warm.python_interpreter)], input=b"", env=env, check=True, timeout=60)  # starts the server
    wait_for(lambda: warm.servers(), what="the python server to listen")
    warm.python_interpreter.chmod(0o000)

    ok = subprocess.run(playbook_cmd, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert '"stdout": "from the task"' in ok.stdout

    failed = subprocess.run([*playbook_cmd, "-e", "fail=true"], env=env, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and '"rc": 1' in failed.stdout

    # The local connection, which goes through the shim, cannot run them now.
    local = subprocess.run([*playbook_cmd, "-e", "ansible_connection=local"], env=env, capture_output=True, text=True,
                           timeout=120)
    assert local.returncode != 0


OWNER_SCRIPT = """
import os, subprocess, sys, time
from runner import ownerrefs
from runner.warm import WarmAnsible
w = WarmAnsible()
w.prestart()
deadline = time.monotonic() + 60
while not w.servers() and time.monotonic() < deadline:
    time.sleep(0.1)
job = sys.argv[1] + ".py"
with open(job, "w") as f:
    f.write("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(300)")
# A script file, in the environment the servers start with (see WarmAnsible.prestart): a server runs it.
env = {**os.environ, "PYTHONPATH": ownerrefs.pythonpath(os.environ.get("PYTHONPATH"))}
shim = subprocess.Popen([str(w.python_interpreter), job, sys.argv[1]], env=env)
open(sys.argv[1] + ".shim", "w").write(str(shim.pid))
time.sleep(300)
"""


@contextmanager
def operator_with_a_job(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, int]]:
    """A stand-in operator (OWNER_SCRIPT) with a long job in its warm python server: the
    operator's process, the job's pid and its caller's (the shim's), the operator killed after."""
    pid_file = tmp_path / "job.pid"
    shim_file = Path(f"{pid_file}.shim")
    owner = subprocess.Popen([sys.executable, "-c", OWNER_SCRIPT, str(pid_file)], cwd=Path(__file__).parents[2])
    try:
        wait_for(lambda: all(f.exists() and f.read_text() for f in (pid_file, shim_file)), what="the job to start",
                 timeout=60)
        yield owner, int(pid_file.read_text()), int(shim_file.read_text())
    finally:
        owner.kill()


def test_a_job_dies_with_its_operator(tmp_path: Path) -> None:
    with operator_with_a_job(tmp_path) as (owner, job, _):
        assert pid_alive(job)
        owner.kill()  # as SIGKILL ends an operator: nothing of its own runs after it
        owner.wait()
        wait_for(lambda: not pid_alive(job), what="the job to end with its operator", timeout=15)


def test_a_job_dies_with_its_caller(tmp_path: Path) -> None:
    with operator_with_a_job(tmp_path) as (owner, job, shim):
        # ansible-runner ends a run that timed out, or was cancelled, with SIGKILL to the shim's
        # group: no signal reaches the job, and the operator lives on.
        os.kill(shim, signal.SIGKILL)
        wait_for(lambda: not pid_alive(job), what="the job to end with its caller", timeout=15)
        assert owner.poll() is None


def test_a_run_that_outlasts_its_timeout_is_ended_with_its_tasks(warm: WarmAnsible, tmp_path: Path) -> None:
    pid_file = tmp_path / "task.pid"
    playbook = tmp_path / "play.yml"
    playbook.write_text(f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Hang
      ansible.builtin.shell: echo $$ > {pid_file}; exec sleep 300
      when: hang | bool
""")

    def run_play(hang: bool, timeout: float) -> ansible.RunResult:
        return ansible.run(ansible.RunRequest(
            target=ansible.Target(playbook=playbook), extravars={"hang": hang}, private_data_dir=tmp_path / "run",
            playbook_binary=warm.playbook_binary, interpreter=warm.python_interpreter, timeout=timeout))

    warm.prestart()
    assert run_play(False, 0).successful  # the first run starts the playbook server
    wait_for(lambda: len(warm.servers()) == 2, what="both warm servers", timeout=60)
    result = run_play(True, 3)
    assert result.status == "timeout" and not result.successful
    assert [f.message for f in result.failed_tasks] == ["the run did not end within 3s (runTimeout) and was ended"]
    task = int(pid_file.read_text())
    wait_for(lambda: not pid_alive(task), what="the hanging task to end with its run", timeout=15)


def test_a_warm_playbook_reads_an_inventorys_group_vars(warm: WarmAnsible, tmp_path: Path) -> None:
    """The advanced SDK test operator's inventory: a group with group_vars beside its hosts file
    (the preloaded plugins must not keep the vars plugin from reading them, as on 2.18 they did)."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts").write_text(f"[test]\n127.0.0.1 ansible_connection=local "
                                     f"ansible_python_interpreter={sys.executable}\n")
    (inventory / "group_vars" / "test.yml").write_text("---\nsentinel: from-group-vars\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: test\n  gather_facts: false\n  tasks:\n"
                        "    - ansible.builtin.debug: {msg: \"sentinel={{ sentinel }}\"}\n")
    run(warm.playbook_binary, "--version")  # cold: starts the server
    wait_for(lambda: any(p.name.startswith("playbook-") for p in warm.servers()), timeout=60,
             what="the playbook server to listen")
    warm_run = run(warm.playbook_binary, "-i", str(inventory), str(playbook))
    assert warm_run.returncode == 0 and "sentinel=from-group-vars" in warm_run.stdout, warm_run.stdout
