"""runner.codecache: payload modules compiled once, found again by their source, in a fresh
interpreter each time, as a module run is."""

from __future__ import annotations

import json
import marshal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from runner import codecache

ROOT = Path(__file__).resolve().parents[2]

MODULE_UTIL = "ansible_collections/acme/tools/plugins/module_utils/calc.py"
SOURCE = "ANSWER = 42\n\ndef explode():\n    raise ValueError('boom')\n"

# Imports the payload as a module run would (zip first on sys.path), with the cache installed.
IMPORT_SCRIPT = """
import json, sys, traceback
from pathlib import Path
from runner import codecache
codecache.install(Path(sys.argv[2]))
sys.path.insert(0, sys.argv[1])
from ansible_collections.acme.tools.plugins.module_utils import calc
try:
    calc.explode()
except ValueError:
    where = traceback.extract_tb(sys.exc_info()[2])[-1]
finder = sys.path_importer_cache[sys.argv[1]]
print(json.dumps({"finder": type(finder).__name__, "answer": calc.ANSWER, "file": calc.__file__,
                  "loader": type(calc.__loader__).__name__,
                  "data": calc.__loader__.get_data(calc.__file__).decode(),
                  "traceback_file": where.filename, "traceback_line": where.line}))
"""


def payload(folder: Path, source: str = SOURCE, *, name: str = "ansible_acme.tools.calc_payload.zip",
            packages: tuple[str, ...] = ("ansible_collections", "ansible_collections/acme")) -> Path:
    """A zip laid out as Ansible's module payloads are; packages not listed are namespace packages."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with zipfile.ZipFile(path, "w") as z:
        for package in (*packages, "ansible_collections/acme/tools", "ansible_collections/acme/tools/plugins",
                        "ansible_collections/acme/tools/plugins/module_utils"):
            z.writestr(f"{package}/__init__.py", "")
        z.writestr(MODULE_UTIL, source)
    return path


def run_import(zip_path: Path, cache: Path) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", IMPORT_SCRIPT, str(zip_path), str(cache)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def entry_for(cache: Path, source: str, member: str = MODULE_UTIL) -> Path:
    return cache / f"{codecache.digest(member, source)}.code"


def test_first_run_compiles_and_stores_every_payload_file(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    result = run_import(payload(tmp_path / "one"), cache)
    assert result["answer"] == 42
    assert result["finder"] == "PayloadEntryFinder"
    assert result["loader"] == "PayloadLoader", "served from the zip without zipimport"
    assert result["data"] == SOURCE, "files in the payload stay readable through the loader"
    assert entry_for(cache, SOURCE).exists()
    assert entry_for(cache, "", "ansible_collections/__init__.py").exists(), "packages are cached too"


def test_a_later_run_takes_the_code_from_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    run_import(payload(tmp_path / "one"), cache)
    # Plant different code under the same source's digest: only a cache hit can return it.
    entry_for(cache, SOURCE).write_bytes(marshal.dumps(compile("ANSWER = 7\ndef explode(): raise ValueError()\n",
                                                               "<planted>", "exec")))
    assert run_import(payload(tmp_path / "two"), cache)["answer"] == 7


def test_changed_source_misses_and_is_compiled(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    run_import(payload(tmp_path / "one"), cache)
    newer = SOURCE.replace("42", "43")
    assert run_import(payload(tmp_path / "two", newer), cache)["answer"] == 43
    assert entry_for(cache, SOURCE).exists() and entry_for(cache, newer).exists()


def test_files_keep_their_payload_names_and_tracebacks_their_source_lines(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    run_import(payload(tmp_path / "one"), cache)
    second = payload(tmp_path / "two")
    result = run_import(second, cache)
    assert result["file"] == f"{second}/{MODULE_UTIL}", "__file__ as zipimport gives it"
    assert result["traceback_file"] == MODULE_UTIL, "the file's path inside the payload"
    assert result["traceback_line"] == "raise ValueError('boom')", "source lines come from the zip"


def test_a_corrupt_entry_is_compiled_again_and_replaced(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    run_import(payload(tmp_path / "one"), cache)
    entry_for(cache, SOURCE).write_bytes(b"not marshal data")
    assert run_import(payload(tmp_path / "two"), cache)["answer"] == 42
    assert marshal.loads(entry_for(cache, SOURCE).read_bytes()).co_filename == MODULE_UTIL


def test_namespace_packages_in_the_payload_import_as_under_zipimport(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    result = run_import(payload(tmp_path / "one", packages=()), cache)
    assert result["answer"] == 42, "ansible_collections and acme without __init__.py"


def test_zips_that_are_not_module_payloads_are_left_to_zipimport(tmp_path: Path) -> None:
    cache = tmp_path / "code"
    result = run_import(payload(tmp_path / "one", name="library.zip"), cache)
    assert result["answer"] == 42
    assert result["finder"] == "zipimporter" and result["loader"] == "zipimporter"
    assert not list(cache.glob("*.code"))


def test_the_hook_claims_payload_zips_and_folders_in_them_only(tmp_path: Path) -> None:
    hook = codecache.PayloadImporter(tmp_path / "code")
    zip_path = payload(tmp_path / "one")
    assert isinstance(hook(str(zip_path)), codecache.PayloadEntryFinder)
    inner = hook(f"{zip_path}/ansible_collections/acme")
    assert inner.find_spec("ansible_collections.acme.tools").submodule_search_locations == [
        f"{zip_path}/ansible_collections/acme/tools"]
    assert inner.find_spec("ansible_collections.acme.missing") is None
    for other in (str(tmp_path), f"{zip_path}x", str(tmp_path / "missing" / "ansible_x_payload.zip")):
        with pytest.raises(ImportError):
            hook(other)
def test_digest_is_of_the_file_name_and_the_source() -> None:
    assert codecache.digest("a.py", "a = 1\n") == codecache.digest("a.py", "a = 1\n")
    assert codecache.digest("a.py", "a = 1\n") != codecache.digest("a.py", "a = 2\n")
    assert codecache.digest("a.py", "a = 1\n") != codecache.digest("b.py", "a = 1\n")
