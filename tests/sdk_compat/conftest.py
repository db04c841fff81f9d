"""Fixtures of the SDK compatibility suite (`make sdk-compat`).

Its tests get neither the `unit` nor the `e2e` marker (tests/conftest.py gives those by
directory), so `make test` never runs them. They run under xdist with `--dist loadfile`: the
tests of a module run in its order on one worker (test_e2e_cluster's are the steps of one
flow); each molecule scenario has a cluster of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import InstallCrds
from tests.sdk_compat.sdk import layout
from tests.support import Cluster

SdkCrds = Callable[[str, str], Path]


@pytest.fixture(scope="session")
def sdk_crds(install_crds: InstallCrds) -> SdkCrds:
    """`sdk_crds(operator, version)`: the operator's CRDs (its config/crd) installed; its project."""
    def install(operator: str, version: str) -> Path:
        project = layout(operator, version) / "project"
        install_crds("-k", str(project / "config" / "crd"))
        return project
    return install


@pytest.fixture(scope="module")
def module_namespace(cluster: Cluster) -> Iterator[Callable[[], str]]:
    """`module_namespace()`: a new namespace for this module's tests, deleted at its end."""
    made: list[str] = []

    def make() -> str:
        name = f"sdk-{uuid.uuid4().hex[:8]}"
        cluster.kubectl("create", "namespace", name)
        made.append(name)
        return name

    yield make
    for name in made:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
