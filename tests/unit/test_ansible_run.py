"""The front door to Ansible, without a cluster: results, failures, requeue requests, and
errors that stop Ansible before any task runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from runner import ansible


def run_play(tmp_path: Path, play: str, **extravars: object) -> ansible.RunResult:
    tmp_path.mkdir(exist_ok=True)
    playbook = tmp_path / "play.yml"
    playbook.write_text(play)
    return ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars=extravars,
                                          private_data_dir=tmp_path / "run"))


def test_counts_and_failed_task(tmp_path: Path) -> None:
    result = run_play(tmp_path, """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Fine
      ansible.builtin.debug: {msg: ok}
    - name: Changes something
      ansible.builtin.command: "true"
    - name: Breaks
      ansible.builtin.fail: {msg: "broken by {{ reason }}"}
""", reason="design")
    assert not result.successful
    assert (result.ok, result.changed, result.failures) == (2, 1, 1)
    assert [(f.task, f.message) for f in result.failed_tasks] == [("Breaks", "broken by design")]
    assert not (tmp_path / "run" / "env" / "extravars").exists(), "extra vars must not outlive the run"


def test_a_failed_loop_reports_the_failed_item(tmp_path: Path) -> None:
    result = run_play(tmp_path, """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Loops
      ansible.builtin.fail: {msg: "item {{ item }} is bad"}
      when: item == 2
      loop: [1, 2, 3]
""")
    assert [(f.task, f.message) for f in result.failed_tasks] == [("Loops", "item 2 is bad")]


def test_requeue_after_is_read_from_the_task_result(tmp_path: Path) -> None:
    result = run_play(tmp_path, """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Ask to come back
      operator_sdk.util.requeue_after: {time: 1m30s}
""")
    assert result.successful and result.requeue_after == 90.0
    # Answered by the collection's action plugin, in Ansible's own process: a module run would
    # have reported its `invocation`.
    results = [json.loads(f.read_text())["event_data"]["res"]
               for f in (tmp_path / "run" / "artifacts").glob("*/job_events/*.json")
               if json.loads(f.read_text())["event"] == "runner_on_ok"]
    assert [r["requeue_after"] for r in results] == [90.0]
    assert "invocation" not in results[0]


def test_requeue_after_refuses_what_is_not_a_delay(tmp_path: Path) -> None:
    for given, message in (("soon", "invalid duration 'soon'"), ("-1s", "cannot be negative")):
        result = run_play(tmp_path / given, f"""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Ask to come back
      operator_sdk.util.requeue_after: {{time: "{given}"}}
""")
        assert not result.successful and result.requeue_after is None
        assert message in result.failed_tasks[0].message


def test_an_error_before_any_task_is_reported(tmp_path: Path) -> None:
    result = run_play(tmp_path, "- hosts: localhost\n  tasks:\n    - name: Bad\n      no.such.module: {}\n")
    assert not result.successful
    assert result.failed_tasks and "no.such.module" in result.failed_tasks[0].message


def test_artifacts_are_rotated_to_the_limit(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        "    - name: Nothing\n      ansible.builtin.debug: {msg: hi}\n")
    for _ in range(3):
        result = ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars={},
                                                private_data_dir=tmp_path / "run", max_artifacts=2))
        assert result.successful
    assert len(list((tmp_path / "run" / "artifacts").iterdir())) == 2


def test_a_loop_and_a_list_of_definitions_show_the_diff_of_each_item() -> None:
    one, two = {"before": {}, "after": {"a": 1}}, {"before": {"b": 1}, "after": {}}
    assert ansible._diff_of({"diff": one}) == one
    assert ansible._diff_of({"results": [{"diff": one}, {"changed": False}, {"diff": [two]}]}) == [one, two]
    assert ansible._diff_of({"results": [{"changed": False}]}) is None
    # kubernetes.core.k8s given a list of definitions: a result per object, under result.results.
    assert ansible._diff_of({"changed": True, "result": {"results": [{"diff": one}, {"diff": two}]}}) == [one, two]
    assert ansible._diff_of({"changed": False, "result": {"results": [{"changed": False}]}}) is None
    assert ansible._diff_of({"changed": True, "result": {"kind": "Pod", "metadata": {}}}) is None


def test_runs_are_closed_without_pexpects_delay_and_still_reaped() -> None:
    import time

    import pexpect

    ansible._close_without_delay()
    ansible._close_without_delay()  # once is enough; twice changes nothing
    assert pexpect.spawn.closes_without_delay
    assert not getattr(pexpect.spawn.__mro__[1], "closes_without_delay", False), "wrapped once, not twice"
    # As ansible-runner does: read to the end, wait for the child to exit, then close.
    child = pexpect.spawn("sh", ["-c", "exit 3"])
    child.expect(pexpect.EOF)
    deadline = time.monotonic() + 30
    while child.isalive() and time.monotonic() < deadline:
        child.expect([pexpect.EOF, pexpect.TIMEOUT], timeout=0.05)
    assert child.ptyproc.delayafterclose == 0
    child.close()
    assert child.exitstatus == 3, "the exit status is still collected"


def test_the_sdks_quoted_ansible_args_reach_ansible_as_words(tmp_path: Path) -> None:
    """The advanced molecule operator's --ansible-args='--vault-password-file ...': read as the
    SDK reads it, every run gets the file; kept as one word, ansible-playbook refuses it."""
    from runner import settings

    password = tmp_path / "pwd.yml"
    password.write_text("secret\n")
    args = settings.parse([f"--ansible-args='--vault-password-file {password}'"], {}).ansible.args
    tmp_path.mkdir(exist_ok=True)
    playbook = tmp_path / "play.yml"
    playbook.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Fine
      ansible.builtin.debug: {msg: ok}
""")

    def run(extra_args: str) -> ansible.RunResult:
        return ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars={},
                                              private_data_dir=tmp_path / "run", extra_args=extra_args))

    assert run(args).successful
    assert not run(f"'--vault-password-file {password}'").successful


PROBE_MODULE = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

AnsibleModule(argument_spec={}).exit_json(changed=False, found="installed")
'''


def install_collection(tmp_path: Path, into: Path) -> None:
    """An operator_sdk.util of the user's own, built and installed with ansible-galaxy (no Galaxy
    here) into `into`: one module, osdk_probe, that ours does not have."""
    src = tmp_path / "src" / "util"
    if not src.exists():
        (src / "plugins" / "modules").mkdir(parents=True)
        (src / "galaxy.yml").write_text("namespace: operator_sdk\nname: util\nversion: 0.5.0\nreadme: README.md\n"
                                        "authors: [someone]\n")
        (src / "README.md").write_text("a user's operator_sdk.util\n")
        (src / "plugins" / "modules" / "osdk_probe.py").write_text(PROBE_MODULE)
    galaxy = str(Path(sys.executable).parent / "ansible-galaxy")
    dist = tmp_path / "dist"
    if not dist.exists():
        subprocess.run([galaxy, "collection", "build", str(src), "--output-path", str(dist)], check=True,
                       capture_output=True)
    # --force: the repository's ansible.cfg names collections/, where ours would count as installed.
    subprocess.run([galaxy, "collection", "install", "--offline", "--force", "-p", str(into),
                    str(dist / "operator_sdk-util-0.5.0.tar.gz")], check=True, capture_output=True)


def test_a_collection_the_user_installed_comes_before_the_in_tree_one(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANSIBLE_COLLECTIONS_PATH", raising=False)
    monkeypatch.delenv("ANSIBLE_HOME", raising=False)
    # Modules are resolved when the play is read: one play for each collection's module.
    probe, requeue = tmp_path / "probe.yml", tmp_path / "requeue.yml"
    probe.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Use the user's operator_sdk.util
      operator_sdk.util.osdk_probe:
      register: probe
    - name: It answered
      ansible.builtin.assert: {that: probe.found == "installed"}
""")
    requeue.write_text("""
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Use the in-tree operator_sdk.util
      operator_sdk.util.requeue_after: {time: 5s}
""")

    def run(env: dict[str, str], installed: bool) -> ansible.RunResult:
        return ansible.run(ansible.RunRequest(target=ansible.Target(playbook=probe if installed else requeue),
                                              extravars={}, private_data_dir=tmp_path / "run", env=env))

    # Nothing installed: ours is the fallback.
    empty_home = tmp_path / "empty-home"
    fallback = run({"ANSIBLE_HOME": str(empty_home)}, False)
    assert fallback.successful and fallback.requeue_after == 5.0
    # Installed on ANSIBLE_COLLECTIONS_PATH, or where Ansible looks by default (ANSIBLE_HOME's
    # collections, as the SDK's image installs requirements.yml): theirs, not ours.
    on_path = tmp_path / "on-path"
    install_collection(tmp_path, on_path)
    assert run({"ANSIBLE_COLLECTIONS_PATH": str(on_path)}, True).successful
    home = tmp_path / "home"
    install_collection(tmp_path, home / "collections")
    assert run({"ANSIBLE_HOME": str(home)}, True).successful
    assert not run({"ANSIBLE_HOME": str(empty_home)}, True).successful, "the probe is not ours"


INVENTORY_PLAY = """
- hosts: test
  gather_facts: false
  tasks:
    - name: See the inventory's group and its vars
      ansible.builtin.assert: {that: [sentinel == "test", "'test' in groups"]}
"""


@pytest.mark.parametrize("layout", ["directory", "yaml file"])
def test_ansible_inventory_is_the_runs_inventory_as_in_the_sdk(tmp_path: Path, layout: str) -> None:
    """The advanced molecule operator's ANSIBLE_INVENTORY (a group `test` with group_vars): copied
    into the run, in whatever format, so a play for `hosts: test` runs there."""
    if layout == "directory":
        inventory = tmp_path / "inventory"
        (inventory / "group_vars").mkdir(parents=True)
        (inventory / "hosts").write_text("[test]\n127.0.0.1 ansible_connection=local\n")
        (inventory / "group_vars" / "test.yml").write_text("---\nsentinel: test\n")
    else:
        inventory = tmp_path / "inventory.yml"
        inventory.write_text("all:\n  children:\n    test:\n      hosts:\n        127.0.0.1:\n"
                             "          ansible_connection: local\n      vars:\n        sentinel: test\n")
    playbook = tmp_path / "play.yml"
    playbook.write_text(INVENTORY_PLAY)
    result = ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars={},
                                            private_data_dir=tmp_path / "run",
                                            env={"ANSIBLE_INVENTORY": str(inventory),
                                                 "ANSIBLE_PYTHON_INTERPRETER": sys.executable}))
    assert result.successful and result.ok == 1, result.failed_tasks
    # Without it, localhost alone, as before.
    again = ansible.run(ansible.RunRequest(target=ansible.Target(playbook=playbook), extravars={},
                                           private_data_dir=tmp_path / "run"))
    assert again.successful and again.ok == 0
