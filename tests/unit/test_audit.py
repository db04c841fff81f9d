"""hack/audit.sh (`make audit`): what passes and what fails, with stand-ins for bandit and
pip-audit that write the JSON reports the real ones would (no network, no tools needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

TODAY = "2026-12-02"
CLEAN_PACKAGES = [
    {"name": "playbook-operator", "skip_reason": "distribution marked as editable"},
    {"name": "pyyaml", "version": "6.0.2", "vulns": []},
]
VULN = {"id": "PYSEC-2099-1", "aliases": ["CVE-2099-1", "GHSA-aaaa-bbbb-cccc"], "fix_versions": ["3.9.9"],
        "description": "something bad"}


def bandit_report(*results: dict[str, Any], nosec: int = 2) -> dict[str, Any]:
    return {"errors": [], "results": list(results),
            "metrics": {"_totals": {"loc": 1200, "nosec": 0, "skipped_tests": nosec},
                        "runner/a.py": {}, "hack/b.py": {}}}


def pip_audit_report(*deps: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": [*CLEAN_PACKAGES, *deps], "fixes": []}


def stand_in(where: Path, name: str, report: dict[str, Any] | None, rc: int = 0) -> Path:
    """A command that writes `report` where `-o` says (or, without one, only complains) and exits `rc`."""
    path = where / name
    data = where / f"{name}.json"
    data.write_text(json.dumps(report))
    write = (f"shutil.copy({str(data)!r}, args[args.index('-o') + 1])\n" if report is not None
             else "print('could not reach the service', file=sys.stderr)\n")
    path.write_text(f"#!{sys.executable}\nimport shutil, sys\nargs = sys.argv[1:]\n{write}sys.exit({rc})\n")
    path.chmod(0o755)
    return path


def audit(tmp_path: Path, bandit: dict[str, Any] | None = None, pip_audit: dict[str, Any] | None = None,
          ignore: str = "", today: str = TODAY, bandit_rc: int = 0, pip_audit_rc: int = 0,
          ignore_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    if ignore_file is None:
        ignore_file = tmp_path / "ignore.txt"
        ignore_file.write_text(ignore)
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_AUDIT_ARGS", "VENV")}
    env.update(PY=sys.executable, AUDIT_TODAY=today, AUDIT_IGNORE_FILE=str(ignore_file),
               BANDIT=str(stand_in(tmp_path, "bandit", bandit, bandit_rc)),
               PIP_AUDIT=str(stand_in(tmp_path, "pip-audit", pip_audit, pip_audit_rc)))
    return subprocess.run(["bash", str(ROOT / "hack" / "audit.sh")], env=env, capture_output=True, text=True,
                          timeout=60)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_a_clean_audit_passes_and_says_what_it_checked(tmp_path: Path) -> None:
    result = audit(tmp_path, bandit_report(), pip_audit_report())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert last_line(result) == (
        "audit passed: bandit: 2 files (1,200 lines) in runner hack collections bench, 0 findings "
        "(2 accepted with # nosec); pip-audit: 1 of 1 packages in .venv audited, 0 known vulnerabilities, "
        f"0 accepted in {tmp_path / 'ignore.txt'}")


def test_a_bandit_finding_fails_naming_where(tmp_path: Path) -> None:
    finding = {"filename": "runner/a.py", "line_number": 7, "test_id": "B102", "issue_severity": "MEDIUM",
               "issue_confidence": "HIGH", "issue_text": "Use of exec detected."}
    result = audit(tmp_path, bandit_report(finding), pip_audit_report(), bandit_rc=1)
    assert result.returncode == 1
    assert "FAIL runner/a.py:7: B102 (medium severity, high confidence) Use of exec detected." in result.stdout
    assert last_line(result).startswith("audit FAILED (1 above): bandit: 2 files (1,200 lines) in runner hack "
                                        "collections bench, 1 findings")


def test_a_known_vulnerability_fails_naming_the_fix(tmp_path: Path) -> None:
    result = audit(tmp_path, bandit_report(), pip_audit_report({"name": "aiohttp", "version": "3.9.0",
                                                                "vulns": [VULN]}), pip_audit_rc=1)
    assert result.returncode == 1
    assert ("FAIL aiohttp 3.9.0: PYSEC-2099-1 (CVE-2099-1, GHSA-aaaa-bbbb-cccc), fixed in 3.9.9"
            in result.stdout)
    assert "2 of 2 packages in .venv audited, 1 known vulnerabilities" in last_line(result)


@pytest.mark.parametrize("listed", ["PYSEC-2099-1", "CVE-2099-1"])
def test_a_vulnerability_the_list_accepts_by_id_or_alias_passes_with_its_reason(tmp_path: Path, listed: str) -> None:
    ignore = f"# a comment\n\n{listed}  2027-03-01  only the client is used, never the server\n"
    result = audit(tmp_path, bandit_report(), pip_audit_report({"name": "aiohttp", "version": "3.9.0",
                                                                "vulns": [VULN]}), ignore=ignore, pip_audit_rc=1)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (f"accepted aiohttp 3.9.0: PYSEC-2099-1 ({listed}: only the client is used, never the server)"
            in result.stdout)
    assert "0 known vulnerabilities, 1 accepted in" in last_line(result)


def test_an_entry_past_its_date_fails_until_someone_looks_again(tmp_path: Path) -> None:
    ignore = "PYSEC-2099-1 2026-12-01 only the client is used\n"
    result = audit(tmp_path, bandit_report(), pip_audit_report({"name": "aiohttp", "version": "3.9.0",
                                                                "vulns": [VULN]}), ignore=ignore)
    assert result.returncode == 1
    assert "ignore.txt:1: PYSEC-2099-1: look again, its date 2026-12-01 has passed" in result.stdout
    # On its last day it still holds.
    assert audit(tmp_path, bandit_report(), pip_audit_report(), ignore=ignore, today="2026-12-01").returncode == 0


def test_an_entry_that_matches_nothing_is_pointed_out_without_failing(tmp_path: Path) -> None:
    result = audit(tmp_path, bandit_report(), pip_audit_report(), ignore="GHSA-gone 2027-01-01 fixed upstream\n")
    assert result.returncode == 0
    assert "note: GHSA-gone in" in result.stdout


@pytest.mark.parametrize("line", ["PYSEC-2099-1 2027-01-01", "PYSEC-2099-1 next-year some reason",
                                  "PYSEC-2099-1 2027-02-30 no such day", "PYSEC-2099-1"])
def test_an_entry_without_an_id_a_date_and_a_reason_fails(tmp_path: Path, line: str) -> None:
    result = audit(tmp_path, bandit_report(), pip_audit_report(), ignore=f"# header\n{line}\n")
    assert result.returncode == 1
    assert f"ignore.txt:2: not '<id> <YYYY-MM-DD> <why>': {line!r}" in result.stdout


def test_packages_the_service_could_not_tell_about_fail(tmp_path: Path) -> None:
    # What pip-audit reports when PyPI's per-version JSON does not answer: no vulnerabilities, all skipped.
    skipped = {"name": "aiohttp",
               "skip_reason": "Dependency not found on PyPI and could not be audited: aiohttp (3.9.0)"}
    result = audit(tmp_path, bandit_report(), pip_audit_report(skipped))
    assert result.returncode == 1
    assert "FAIL 1 of 2 packages could not be audited" in result.stdout
    assert "1 of 2 packages in .venv audited, 0 known vulnerabilities" in last_line(result)


def test_a_tool_that_did_not_run_fails_and_shows_why(tmp_path: Path) -> None:
    result = audit(tmp_path, bandit_report(), None, pip_audit_rc=1)
    assert result.returncode == 1
    assert "could not reach the service" in result.stdout
    assert "FAIL pip-audit did not run" in result.stdout
    assert last_line(result).endswith("pip-audit did not run")


def test_the_repositorys_ignore_list_is_well_formed(tmp_path: Path) -> None:
    result = audit(tmp_path, bandit_report(), pip_audit_report(), today="2000-01-01",
                   ignore_file=ROOT / "hack" / "audit-ignore.txt")
    assert result.returncode == 0, result.stdout + result.stderr
