"""docs/ARCHITECTURE.md names every runner module and every in-tree collection plugin, so the
map cannot fall behind the code without this failing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import ROOT

DOC = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
COLLECTIONS = ROOT / "collections" / "ansible_collections"


def runner_modules() -> list[str]:
    return sorted(str(p.relative_to(ROOT / "runner")) for p in (ROOT / "runner").rglob("*.py")
                  if p.name != "__init__.py")


def collection_plugins() -> list[str]:
    return sorted(str(p.relative_to(COLLECTIONS)) for p in COLLECTIONS.glob("*/*/plugins/*/*.py"))


def test_there_is_something_to_check() -> None:
    assert "ownerrefs.py" in runner_modules() and "pythonpath/sitecustomize.py" in runner_modules()
    assert "operator_sdk/util/plugins/modules/k8s_status.py" in collection_plugins()


@pytest.mark.parametrize("module", runner_modules())
def test_every_runner_module_is_on_the_map(module: str) -> None:
    assert f"`{module}`" in DOC, f"runner/{module} is not named in docs/ARCHITECTURE.md"


@pytest.mark.parametrize("plugin", collection_plugins())
def test_every_collection_plugin_is_on_the_map(plugin: str) -> None:
    assert f"`{plugin}`" in DOC, f"collections/ansible_collections/{plugin} is not named in docs/ARCHITECTURE.md"


def test_the_readme_points_to_the_map() -> None:
    assert "docs/ARCHITECTURE.md" in (ROOT / "README.md").read_text()


def test_the_processes_that_run_ansible_do_not_import_the_shared_basics() -> None:
    # runner/basics.py makes the in-tree ansible_collections a plain namespace package; where
    # Ansible runs, its own collection loader must be the one to import ansible_collections.
    code = ("import sys; import runner.forkserver, runner.warm, runner.ownerrefs, runner.codecache; "
            "print(sorted(m for m in sys.modules if m == 'runner.basics' or m.startswith('ansible_collections')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
