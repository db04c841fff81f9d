"""What the API endpoint hands each run."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml

from runner.apiproxy import RunAccess


def test_a_runs_kubeconfig_is_private_and_names_only_the_endpoint_and_its_token(tmp_path: Path) -> None:
    access = RunAccess("t0ken", "owner")
    path = access.write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1234")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["clusters"][0]["cluster"] == {"server": "http://127.0.0.1:1234"}
    assert config["users"][0]["user"] == {"token": "t0ken"}
    assert config["current-context"] == "run"
