#!/usr/bin/env bash
# make audit: a security audit of the project's own code (bandit over runner, hack, collections,
# bench) and of the packages installed in the virtualenv (pip-audit, which asks PyPI's
# vulnerability service about each one). Not part of `make test`: it needs the network.
# README.md, "### Audit", says what is checked and which findings are accepted and why.
#
# It fails on a bandit finding of medium severity and medium confidence or more that no
# `# nosec BXXX` on its line accepts; on a known vulnerability that hack/audit-ignore.txt does
# not list, or lists past its date; and on packages the service could not tell about, so that
# an unreachable service is never taken for a clean result. The last line sums it up.
#
# Environment: VENV (.venv); PIP_AUDIT_ARGS, more pip-audit arguments (another service, for
# one: "-s osv --osv-url URL"); AUDIT_IGNORE_FILE (hack/audit-ignore.txt); AUDIT_TODAY (today's
# date, against the list's dates); PY, BANDIT and PIP_AUDIT, the commands (the venv's; the unit
# tests put stand-ins there).
set -uo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PY:-$VENV/bin/python}
BANDIT=${BANDIT:-$VENV/bin/bandit}
PIP_AUDIT=${PIP_AUDIT:-$VENV/bin/pip-audit}
IGNORE_FILE=${AUDIT_IGNORE_FILE:-hack/audit-ignore.txt}
TODAY=${AUDIT_TODAY:-$(date +%F)}
CODE=(runner hack collections bench)

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== bandit over ${CODE[*]}: findings of medium severity and medium confidence or more"
"$BANDIT" -r "${CODE[@]}" -q --severity-level medium --confidence-level medium \
    -f json -o "$out/bandit.json" || true

echo "== pip-audit of the packages in $VENV"
# shellcheck disable=SC2086 # PIP_AUDIT_ARGS is split into arguments on purpose
if ! "$PIP_AUDIT" --local --skip-editable --progress-spinner off -f json -o "$out/pip-audit.json" \
        ${PIP_AUDIT_ARGS:-} 2>"$out/pip-audit.err"; then
    # It exits 1 when it found vulnerabilities too; without its report, say why it stopped.
    [[ -s "$out/pip-audit.json" ]] || tail -n 5 "$out/pip-audit.err"
fi

"$PY" - "$out" "$IGNORE_FILE" "$TODAY" "$VENV" "${CODE[@]}" <<'EOF'
"""Reads bandit's and pip-audit's JSON reports and the ignore list, prints what fails, and
the one line that sums the audit up. Exit status 1 when anything failed."""
import datetime
import json
import sys
import tomllib
from pathlib import Path

out, ignore_file, today, venv, code = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
failures: list[str] = []


def fail(message: str) -> None:
    failures.append(message)
    print(f"FAIL {message}")


# ---- the ignore list: id, date to look again, reason
ignored: dict[str, str] = {}
for number, raw in enumerate(ignore_file.read_text().splitlines(), 1):
    line = raw.strip()
    if not line or line.startswith("#"):
        continue
    parts = line.split(None, 2)
    try:
        when = datetime.date.fromisoformat(parts[1]) if len(parts) == 3 else None
    except ValueError:
        when = None
    if when is None:
        fail(f"{ignore_file}:{number}: not '<id> <YYYY-MM-DD> <why>': {line!r}")
        continue
    vuln_id, _, reason = parts
    if when.isoformat() < today:
        fail(f"{ignore_file}:{number}: {vuln_id}: look again, its date {when} has passed")
    ignored[vuln_id] = reason

# ---- bandit
bandit_file = out / "bandit.json"
if not bandit_file.exists():
    fail("bandit did not run (see above)")
    bandit_line = "bandit did not run"
else:
    report = json.loads(bandit_file.read_text())
    totals = report["metrics"]["_totals"]
    files = len(report["metrics"]) - 1
    for error in report["errors"]:
        fail(f"bandit could not read {error['filename']}: {error['reason']}")
    for r in report["results"]:
        fail(f"{r['filename']}:{r['line_number']}: {r['test_id']} ({r['issue_severity'].lower()} severity, "
             f"{r['issue_confidence'].lower()} confidence) {r['issue_text']}")
    accepted = totals.get("skipped_tests", 0) + totals.get("nosec", 0)
    bandit_line = (f"bandit: {files} files ({totals['loc']:,} lines) in {' '.join(code)}, "
                   f"{len(report['results'])} findings ({accepted} accepted with # nosec)")

# ---- pip-audit
audit_file = out / "pip-audit.json"
if not audit_file.exists():
    fail("pip-audit did not run (see above)")
    audit_line = "pip-audit did not run"
else:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]["name"]
    # The project itself is installed editable and skipped: bandit audits its code.
    deps = [d for d in json.loads(audit_file.read_text())["dependencies"] if d["name"] != project]
    audited = [d for d in deps if "skip_reason" not in d]
    unaudited = [d for d in deps if "skip_reason" in d]
    found, accepted, accepted_ids = 0, 0, set()
    for dep in audited:
        for vuln in dep["vulns"]:
            ids = {vuln["id"], *vuln.get("aliases", [])}
            listed = sorted(ids & ignored.keys())
            if listed:
                accepted += 1
                accepted_ids.update(listed)
                print(f"accepted {dep['name']} {dep['version']}: {vuln['id']} ({listed[0]}: {ignored[listed[0]]})")
                continue
            found += 1
            fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed release"
            aliases = ", ".join(sorted(ids - {vuln["id"]}))
            fail(f"{dep['name']} {dep['version']}: {vuln['id']}{f' ({aliases})' if aliases else ''}, fixed in {fixed}")
    if unaudited:
        fail(f"{len(unaudited)} of {len(deps)} packages could not be audited (is the vulnerability service "
             f"reachable? PIP_AUDIT_ARGS picks another), {unaudited[0]['name']} for one: {unaudited[0]['skip_reason']}")
    else:
        for vuln_id in sorted(ignored.keys() - accepted_ids):
            print(f"note: {vuln_id} in {ignore_file} matches no vulnerability now; drop the line?")
    audit_line = (f"pip-audit: {len(audited)} of {len(deps)} packages in {venv} audited, {found} known "
                  f"vulnerabilities, {accepted} accepted in {ignore_file}")

result = f"FAILED ({len(failures)} above)" if failures else "passed"
print(f"audit {result}: {bandit_line}; {audit_line}")
sys.exit(1 if failures else 0)
EOF
