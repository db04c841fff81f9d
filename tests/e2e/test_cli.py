"""The command line: one reconcile from a file (a dry run shows what would change and changes
nothing), JSON logs with one line per reconcile, and a bad watches file stops start-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support import ROOT, Cluster, StartOperator, example_manifest, wait_for

EXE = Path(sys.executable).parent / "playbook-operator"


def test_reconcile_from_a_file_in_check_mode_changes_nothing(cluster: Cluster, crds: None, namespace: str,
                                                             tmp_path: Path) -> None:
    cr = tmp_path / "cr.yaml"
    cr.write_text(example_manifest("dry", {"greeting": "hi"}, namespace))
    proc = subprocess.run([str(EXE), "reconcile", "-f", str(cr), "--check", "--diff"], cwd=ROOT,
                          env=cluster.env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "changed  Keep the ConfigMap in step with spec.data" in proc.stdout
    assert "+  greeting: hi" in proc.stdout or "greeting: hi" in proc.stdout
    assert "check mode: nothing was changed" in proc.stdout
    assert cluster.get("configmap", "dry-example", namespace) is None

    # Without --check it does the work, and a second run finds nothing to do.
    done = subprocess.run([str(EXE), "reconcile", "-f", str(cr)], cwd=ROOT, env=cluster.env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (cluster.get("configmap", "dry-example", namespace) or {}).get("data") == {"greeting": "hi"}
    again = subprocess.run([str(EXE), "reconcile", "-f", str(cr), "--check"], cwd=ROOT, env=cluster.env,
                           capture_output=True, text=True, timeout=300)
    assert "changed=0" in again.stdout, again.stdout


def test_invalid_watches_file_exits_2_naming_entry_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "watches.yaml"
    bad.write_text("- version: v1\n  group: a.example.com\n  kind: A\n  role: example\n  reconcilePeriod: soon\n")
    proc = subprocess.run([str(EXE), "run", "--watches-file", str(bad)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "entry 1" in proc.stderr and "reconcilePeriod" in proc.stderr


def test_json_logs_one_line_per_reconcile(cluster: Cluster, namespace: str, start_operator: StartOperator) -> None:
    op = start_operator(args=["--log-format", "json"])
    cluster.apply(example_manifest("logged", {"k": "v"}), namespace)

    def reconcile_line() -> dict | None:
        for line in op.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("name") == "logged" and entry.get("namespace") == namespace:
                return entry
        return None

    entry = wait_for(reconcile_line, what="a JSON reconcile line", timeout=90)
    assert entry["kind"] == "Example" and entry["result"] == "ok" and entry["changed"] == 1
    assert isinstance(entry["duration"], float)
