"""Modules shipped beside a role or a playbook (``library/``) and a role's own ``module_utils/``
run the same warm, warm falling back to cold, and cold.

Ansible packs such a module into its payload as ``ansible.legacy.<name>`` (ansible-core 2.18:
``ansible.modules.<name>``) and the role's module_utils as ``ansible.module_utils.<name>``: inside
the ``ansible`` package that the warm module server has already imported from the installation.
The module must find them there, see the role's copy of a module_utils file that has the name of
one of ansible-core's, and see ``ansible`` as a fresh interpreter does. Without a cluster: the
modules make no API call."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
import textwrap
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from ansible.release import __version__ as ANSIBLE_CORE

from runner import ansible, codecache
from runner.warm import WarmAnsible
from tests.support import wait_for

ROOT = Path(__file__).resolve().parents[2]
# The ansible package this interpreter has installed.
INSTALLED = Path(str(getattr(importlib.util.find_spec("ansible"), "origin", ""))).parent

# The package Ansible packs a module from a library/ folder into, as the module's __spec__ names it.
LIBRARY_PACKAGE = "ansible.legacy" if tuple(map(int, ANSIBLE_CORE.split(".")[:2])) >= (2, 19) else "ansible.modules"

# What a module reports of the Python it runs in; payload paths and the installation made comparable.
REPORT = '''
import os
import sys

import ansible
import ansible.module_utils


def where(path):
    path = str(path)
    if "_payload.zip" in path:
        return "<payload>" + path.split("_payload.zip", 1)[1]
    for entry in sys.path:
        if entry and os.path.isfile(os.path.join(entry, "ansible", "__init__.py")) and path.startswith(entry + "/"):
            return "<installed>" + path[len(entry):]
    return path


def report(module, **values):
    values.update(
        ansible_path=[where(p) for p in ansible.__path__],
        module_utils_path=[where(p) for p in ansible.module_utils.__path__],
        from_payload=sorted(name for name, m in list(sys.modules.items())
                            if name.startswith("ansible") and "_payload.zip" in str(getattr(m, "__file__", ""))),
        basic=where(ansible.module_utils.basic.__file__),
    )
    module.exit_json(changed=False, **values)
'''

GREETING = 'def greet(name):\n    return "hello, " + name\n'

HELLO = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.greeting import greet
from ansible.module_utils.report import report


def main():
    module = AnsibleModule(argument_spec={"name": {"type": "str", "required": True}})
    report(module, greeting=greet(module.params["name"]), fqn=__spec__.name if __spec__ else None)


main()
'''

# Some of what the warm module server preloads from ansible-core.
PRELOADED = ("ansible.module_utils.basic", "ansible.module_utils.common.", "ansible.module_utils.six")

# A role's module_utils file named as one of ansible-core's (one the module server preloads):
# the module gets the role's, as Ansible packs it.
URLS = 'WHO = "the role"\n'

SHADOWED = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils import urls
from ansible.module_utils.report import report


def main():
    module = AnsibleModule(argument_spec={})
    report(module, urls=getattr(urls, "WHO", "ansible-core"))


main()
'''

# Beside the playbook, not in a role.
SHOUT = '''#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec={"text": {"type": "str", "required": True}})
    module.exit_json(changed=False, shout=module.params["text"].upper())


main()
'''

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - greeter
  tasks:
    - name: Shout with the playbook's own module
      shout:
        text: "{{ greeting.greeting }}"
      register: shouted

    - name: Keep what the modules returned
      ansible.builtin.copy:
        dest: "{{ out_dir }}/result.json"
        content: "{{ {'greeting': greeting, 'shadowed': shadowed, 'shout': shouted.shout} | to_json }}"
"""

ROLE_TASKS = """
- name: Greet with the role's own module
  hello:
    name: operator
  register: greeting

- name: Import a module_utils file of the role's named as one of ansible-core's
  shadowed:
  register: shadowed
"""


def write_project(root: Path) -> Path:
    role = root / "roles" / "greeter"
    for folder, files in {
        role / "tasks": {"main.yml": ROLE_TASKS},
        role / "library": {"hello.py": HELLO, "shadowed.py": SHADOWED},
        role / "module_utils": {"greeting.py": GREETING, "report.py": REPORT, "urls.py": URLS},
        root / "library": {"shout.py": SHOUT},
    }.items():
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(textwrap.dedent(text))
    playbook = root / "play.yml"
    playbook.write_text(PLAYBOOK)
    return playbook


@pytest.fixture
def warm() -> Iterator[WarmAnsible]:
    w = WarmAnsible()
    yield w
    w.close()


def run(path: str, warm: WarmAnsible, tmp_path: Path) -> dict[str, object]:
    project = tmp_path / path
    playbook = write_project(project)
    if path == "warm":
        warm.prestart()
        wait_for(lambda: warm.servers(), what="the python server to listen")
    shims = path != "cold"
    request = ansible.RunRequest(
        target=ansible.Target(playbook=playbook), extravars={"out_dir": str(project)},
        private_data_dir=project / "run",
        playbook_binary=warm.playbook_binary if shims else None, interpreter=warm.python_interpreter if shims else None,
    )
    result = ansible.run(request)
    assert result.successful, result.failed_tasks
    if path == "warm":
        # The modules went to the server prestart started, not to one of their own.
        assert [p.name.startswith("python-") for p in warm.servers()].count(True) == 1
    out: dict[str, object] = json.loads((project / "result.json").read_text())
    return out


@pytest.mark.parametrize("path", ["warm", "warm-fallback-to-cold", "cold"])
def test_a_roles_own_modules_and_module_utils_run(path: str, warm: WarmAnsible, tmp_path: Path) -> None:
    out = run(path, warm, tmp_path)
    greeting, shadowed = out["greeting"], out["shadowed"]
    assert isinstance(greeting, dict) and isinstance(shadowed, dict)
    assert greeting["greeting"] == "hello, operator"
    assert greeting["fqn"] == f"{LIBRARY_PACKAGE}.hello"
    assert out["shout"] == "HELLO, OPERATOR"
    assert shadowed["urls"] == "the role"
    # ansible and its module_utils as a fresh interpreter has them: the payload's, then the installation's.
    for seen, role_utils in ((greeting, {"greeting", "report"}), (shadowed, {"report", "urls"})):
        assert seen["ansible_path"] == ["<payload>/ansible", "<installed>/ansible"]
        assert seen["module_utils_path"] == ["<payload>/ansible/module_utils", "<installed>/ansible/module_utils"]
        assert {f"ansible.module_utils.{name}" for name in role_utils} <= set(seen["from_payload"])
    # The role's urls.py is not ansible-core's: everything comes from the payload, as in a fresh interpreter.
    assert shadowed["basic"] == "<payload>/ansible/module_utils/basic.py"
    if path == "warm":
        # Otherwise the warm server's ansible-core stands in for the payload's identical copy.
        assert greeting["basic"] == "<installed>/ansible/module_utils/basic.py"
        assert not [name for name in greeting["from_payload"] if name.startswith(PRELOADED)]


def test_warm_and_cold_modules_see_the_same(warm: WarmAnsible, tmp_path: Path) -> None:
    hot, cold = run("warm", warm, tmp_path), run("cold", warm, tmp_path)
    for task in ("greeting", "shadowed"):
        seen_hot, seen_cold = hot[task], cold[task]
        assert isinstance(seen_hot, dict) and isinstance(seen_cold, dict)
        keys = ("ansible_path", "module_utils_path", "greeting", "urls", "fqn")
        assert {k: seen_hot.get(k) for k in keys} == {k: seen_cold.get(k) for k in keys}, task


# ---------------------------------------------------------------- codecache.Preloaded on payloads built by hand

STUB = "from pkgutil import extend_path\n__path__=extend_path(__path__,__name__)\n"

# As the module server has it: ansible-core's module_utils imported, then a payload first on sys.path.
ENTER = """
import json, sys
from pathlib import Path
import ansible.module_utils.basic, ansible.module_utils.common
from runner import codecache
codecache.install(Path(sys.argv[2]))
preloaded = codecache.Preloaded.snapshot()
basic = sys.modules["ansible.module_utils.basic"]
sys.path.insert(0, sys.argv[1])
kept = preloaded.enter(sys.argv[1])
import ansible.module_utils.basic as basic_now
import ansible.module_utils.common
from ansible.legacy import hello
print(json.dumps({"kept": kept, "same_basic": basic_now is basic, "basic": basic_now.__file__,
                  "ansible": list(sys.modules["ansible"].__path__),
                  "module_utils": list(sys.modules["ansible.module_utils"].__path__),
                  "common": list(sys.modules["ansible.module_utils.common"].__path__), "hello": hello.WHO}))
"""


def installed(member: str) -> bytes:
    return (INSTALLED.parent / member).read_bytes()


def hand_payload(folder: Path, *, compression: int = 8, level: int | None = None,
                 replace: dict[str, bytes] | None = None) -> Path:
    path = folder / "ansible_hello_payload.zip"
    files = {"ansible/__init__.py": STUB.encode(), "ansible/module_utils/__init__.py": STUB.encode(),
             "ansible/module_utils/basic.py": installed("ansible/module_utils/basic.py"),
             "ansible/module_utils/common/__init__.py": installed("ansible/module_utils/common/__init__.py"),
             "ansible/legacy/__init__.py": b"", "ansible/legacy/hello.py": b"WHO = 'hello'\n", **(replace or {})}
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=level) as z:
        for member, data in files.items():
            z.writestr(member, data)
    return path


def enter(payload: Path, tmp_path: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", ENTER, str(payload), str(tmp_path / "code")], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result: dict[str, object] = json.loads(out.stdout)
    return result


@pytest.mark.parametrize("how", ["deflated", "stored", "deflated at another level"])
def test_a_payload_of_the_same_installation_keeps_the_preloaded_modules(how: str, tmp_path: Path) -> None:
    compression, level = {"deflated": (8, None), "stored": (0, None), "deflated at another level": (8, 1)}[how]
    payload = hand_payload(tmp_path, compression=compression, level=level)
    seen = enter(payload, tmp_path)
    installed_root = str(INSTALLED)
    assert seen["kept"] is True and seen["same_basic"] is True
    assert seen["basic"] == f"{installed_root}/module_utils/basic.py"
    assert seen["ansible"] == [f"{payload}/ansible", installed_root]
    assert seen["module_utils"] == [f"{payload}/ansible/module_utils", f"{installed_root}/module_utils"]
    assert seen["common"] == [f"{payload}/ansible/module_utils/common"], "as imported from the payload"
    assert seen["hello"] == "hello"


@pytest.mark.parametrize("replace", [
    {"ansible/module_utils/basic.py": b"# a role's own basic\n"},
    # A package where ansible-core has a module.
    {"ansible/module_utils/basic/__init__.py": b"# a role's own basic\n"},
])
def test_a_payload_file_shadowing_a_preloaded_module_drops_them_all(replace: dict[str, bytes],
                                                                   tmp_path: Path) -> None:
    payload = hand_payload(tmp_path, replace=replace)
    seen = enter(payload, tmp_path)
    assert seen["kept"] is False and seen["same_basic"] is False
    member = next(iter(replace))
    assert seen["basic"] == f"{payload}/{member}"
    assert seen["ansible"][:1] == [f"{payload}/ansible"]  # type: ignore[index]
    assert seen["common"] == [f"{payload}/ansible/module_utils/common"]
    assert seen["hello"] == "hello"


def test_files_deflated_as_ansible_deflates_them_are_proven_without_inflating(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    basic = installed("ansible/module_utils/basic.py")
    deflate = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
    preloaded = codecache.Preloaded(
        {"ansible/module_utils/basic.py": hashlib.sha256(basic).hexdigest()}, {},
        {"ansible/module_utils/basic.py": hashlib.sha256(deflate.compress(basic) + deflate.flush()).hexdigest()})
    (tmp_path / "level-1").mkdir()
    same = codecache.Archive(str(hand_payload(tmp_path)))
    other_level = codecache.Archive(str(hand_payload(tmp_path / "level-1", level=1)))
    inflated: list[str] = []
    for archive in (same, other_level):
        read = archive.zip.read
        monkeypatch.setattr(archive.zip, "read", lambda member, read=read: inflated.append(member) or read(member))
    assert preloaded.differences(same) == [] and inflated == []
    assert preloaded.differences(other_level) == [] and inflated == ["ansible/module_utils/basic.py"]
