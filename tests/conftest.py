"""Shared fixtures. E2e tests run against the cluster KUBECONFIG names; when it is
unset, a local control plane is started for the session and stopped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Cluster, OperatorProcess

CLUSTER_NAME = os.environ.get("TEST_CLUSTER_NAME", "pytest")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath) or "/molecule/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The cluster under test: KUBECONFIG's, or a local one started for this session."""
    if os.environ.get("KUBECONFIG"):
        kubeconfig = Path(os.environ["KUBECONFIG"]).resolve()
        # A kubeconfig of hack/cluster.py's is a local control plane (its audit log is beside it).
        local = kubeconfig.parent.name if (kubeconfig.parent / "audit.log").exists() else None
        yield Cluster(kubeconfig=kubeconfig, local_name=local)
        return
    script = [sys.executable, str(ROOT / "hack" / "cluster.py"), "--name", CLUSTER_NAME]
    proc = subprocess.run([*script, "up"], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"could not start the local cluster:\n{proc.stderr}", pytrace=False)
    kubeconfig = Path(proc.stdout.strip().splitlines()[-1])
    try:
        yield Cluster(kubeconfig=kubeconfig, local_name=CLUSTER_NAME)
    finally:
        if not os.environ.get("KEEP_CLUSTER"):
            subprocess.run([*script, "down"], check=False)


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> None:
    """The project's CRDs, installed once per session (and established)."""
    cluster.kubectl("apply", "-k", str(ROOT / "deploy" / "crd"))
    cluster.kubectl("wait", "--for", "condition=Established", "--timeout=60s", "crd", "--all")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(cluster: Cluster, crds: None, tmp_path: Path) -> Iterator[OperatorProcess]:
    """The operator with the project's watches.yaml, running as a separate process."""
    op = OperatorProcess(cluster, workdir=tmp_path, watches=ROOT / "watches.yaml")
    op.start()
    try:
        yield op
    finally:
        op.stop()
