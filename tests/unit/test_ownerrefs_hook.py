"""Every Python process Ansible starts for a run has the owner-reference hook: modules run by
the warm servers, by a cold fallback, by a plain interpreter (``--warm-ansible=false``) and by
the controller's own interpreter (``ansible_python_interpreter: "{{ ansible_playbook_python }}"``,
as the project's playbooks set it). Without a cluster: a probe module sends a create through the
kubernetes client's ``request`` and stops it at the API client, where it shows what would have
gone over the wire, and reads a Secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runner import ansible, ownerrefs
from runner.dependents import DependentKind, ReadInterest, read_reported
from runner.warm import WarmAnsible
from tests.support import wait_for

OWNER = {"apiVersion": "cache.example.com/v1alpha1", "kind": "Memcached", "name": "mc", "namespace": "team-a",
         "uid": "0b1c"}

PROBE = '''#!/usr/bin/python
import json

from ansible.module_utils.basic import AnsibleModule


class Sent(Exception):
    pass


class ApiClient:
    def select_header_accept(self, accepts):
        return accepts[0]

    def param_serialize(self, method, path, body=None, **kwargs):
        raise Sent(body)


class Client:
    client = ApiClient()


class Secrets:
    group_version, kind, namespaced = "v1", "Secret", True

    def path(self, name=None, namespace=None):
        raise Sent(None)


def main():
    module = AnsibleModule(argument_spec={"out": {"type": "path", "required": True}})
    from kubernetes.dynamic.client import DynamicClient

    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "probe", "namespace": "team-a"}}
    try:
        DynamicClient.request(Client(), "POST", "/api/v1/namespaces/team-a/configmaps", body=body)
    except Sent as sent:
        with open(module.params["out"], "w") as f:
            json.dump(sent.args[0], f)
    try:
        DynamicClient.get(Client(), Secrets(), name="creds", namespace="team-a")
    except Sent:
        pass
    module.exit_json(changed=False)


main()
'''

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Probe with the module interpreter
      probe.hook.probe:
        out: "{{ out_dir }}/module.json"
    - name: Probe with the controller's interpreter
      probe.hook.probe:
        out: "{{ out_dir }}/controller.json"
      vars:
        ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


@pytest.fixture
def warm() -> Iterator[WarmAnsible]:
    w = WarmAnsible()
    yield w
    w.close()


@pytest.mark.parametrize("path", ["warm", "warm-fallback-to-cold", "cold"])
def test_every_module_process_of_a_run_injects_the_owner(path: str, warm: WarmAnsible, tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    # In a collection, as kubernetes.core's modules are.
    modules = tmp_path / "collections" / "ansible_collections" / "probe" / "hook" / "plugins" / "modules"
    modules.mkdir(parents=True)
    (modules / "probe.py").write_text(PROBE)
    if path == "warm":
        warm.prestart()
        wait_for(lambda: warm.servers(), what="the python server to listen")
    shims = path != "cold"
    report = tmp_path / "dependents.jsonl"
    request = ansible.RunRequest(
        target=ansible.Target(playbook=playbook), extravars={"out_dir": str(tmp_path)},
        private_data_dir=tmp_path / "run",
        env={ownerrefs.OWNER_ENV: json.dumps(OWNER), ownerrefs.DEPENDENTS_ENV: str(report),
             "ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections")},
        playbook_binary=warm.playbook_binary if shims else None, interpreter=warm.python_interpreter if shims else None,
    )
    result = ansible.run(request)
    assert result.successful, result.failed_tasks
    if path == "warm":
        # The run's modules went to the server prestart started, not to one of their own.
        assert [p.name.startswith("python-") for p in warm.servers()].count(True) == 1

    for probe in ("module", "controller"):
        sent = json.loads((tmp_path / f"{probe}.json").read_text())
        assert [(r["kind"], r["uid"], r["controller"]) for r in sent["metadata"].get("ownerReferences", [])] == \
            [("Memcached", "0b1c", True)], probe
    # What the operator watches: the kind created, and the Secret read.
    assert read_reported(report) == {DependentKind("v1", "ConfigMap", True),
                                     ReadInterest("v1", "Secret", True, namespace="team-a", name="creds")}


USER_SITE = """
import os
os.environ["USER_SITECUSTOMIZE"] = "ran"
"""

SHOW = """
import json, os, sys
print(json.dumps({"path": sys.path, "user": os.environ.get("USER_SITECUSTOMIZE"),
                  "hooked": any(type(f).__name__ == "_PatchOnImport" for f in sys.meta_path)}))
"""


def test_the_hook_keeps_the_users_pythonpath_and_sitecustomize(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / "sitecustomize.py").write_text(USER_SITE)

    def show(pythonpath: str | None) -> dict[str, object]:
        env = {k: v for k, v in os.environ.items() if k not in (ownerrefs.OWNER_ENV, "PYTHONPATH")}
        if pythonpath is not None:
            env["PYTHONPATH"] = pythonpath
        out = subprocess.run([sys.executable, "-c", SHOW], env=env, cwd=tmp_path, capture_output=True, text=True,
                             check=True)
        assert out.stderr == ""
        return dict(json.loads(out.stdout))

    plain = show(str(user))
    hooked = show(ownerrefs.pythonpath(str(user)))
    assert (plain["hooked"], hooked["hooked"]) == (False, True)
    assert hooked["path"] == plain["path"], "sys.path as the user's PYTHONPATH makes it"
    assert hooked["user"] == plain["user"] == "ran", "the user's sitecustomize still runs"

    # And with no PYTHONPATH and no other sitecustomize: the same path, nothing printed.
    plain, hooked = show(None), show(ownerrefs.pythonpath(None))
    assert (plain["hooked"], hooked["hooked"]) == (False, True)
    assert hooked["path"] == plain["path"] and hooked["user"] is plain["user"] is None
