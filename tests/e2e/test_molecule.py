"""Every molecule scenario (converge, idempotence, verify) against the cluster under test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT, Cluster

pytestmark = pytest.mark.slow  # a scenario takes minutes

SCENARIOS = sorted(p.parent.name for p in (ROOT / "molecule").glob("*/molecule.yml"))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(cluster: Cluster, crds: None, scenario: str) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**cluster.env, "PATH": f"{bin_dir}:{cluster.env['PATH']}", "ANSIBLE_FORCE_COLOR": "0",
           "NO_COLOR": "1", "PY_COLORS": "0"}
    env.pop("ANSIBLE_COLLECTIONS_PATH", None)
    proc = subprocess.run([str(bin_dir / "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert "idempotence" in proc.stdout + proc.stderr


def test_there_are_scenarios() -> None:
    assert SCENARIOS, "no molecule scenarios found"
    assert os.path.isdir(ROOT / "molecule")
