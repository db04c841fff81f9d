"""The SDK's test/e2e/ansible/local_test.go, "Running Ansible projects built with operator-sdk
Should run correctly when run locally", on the memcached-molecule-operator, for each
ansible-core version."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hack.devkit import free_port
from tests.sdk_compat.conftest import SdkCrds
from tests.sdk_compat.sdk import ANSIBLE_VERSIONS, http_ok, venv
from tests.support import Cluster, wait_for


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_should_run_correctly_when_run_locally(cluster: Cluster, sdk_crds: SdkCrds, version: str,
                                               module_namespace: Callable[[], str], tmp_path: Path) -> None:
    """"Should run correctly when run locally": BeforeEach "Installing CRD's", then "Running the
    project" (`make run` in the project: the operator run from there with
    ANSIBLE_ROLES_PATH=$(pwd)/roles, as its Makefile does) and "Killing the project". The SDK
    only starts and kills it; here it must also come up (ready) in between.

    Its AfterEach ("Uninstalling CRD's") is left out: the CRDs are shared with the tests beside it.
    """
    project = sdk_crds("memcached", version)
    namespace = module_namespace()
    # The Makefile's `run` target: ANSIBLE_ROLES_PATH and `$(ANSIBLE_OPERATOR) run`, no flags but
    # free ports for the probes and metrics (several operators run at once here).
    health = f"127.0.0.1:{free_port()}"
    env = {**cluster.env, "ANSIBLE_ROLES_PATH": str(project / "roles"), "WATCH_NAMESPACE": namespace}
    env.pop("ANSIBLE_CONFIG", None)
    log = tmp_path / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(venv(version) / "bin" / "playbook-operator"), "run", "--health-probe-bind-address", health,
             "--metrics-bind-address", f"127.0.0.1:{free_port()}",
             "--user-metrics-bind-address", f"127.0.0.1:{free_port()}",
             "--ansible-artifacts-dir", str(tmp_path / "artifacts")],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_ok(f"http://{health}/readyz") or proc.poll() is not None, timeout=60,
                 what="the operator to be ready")
        assert proc.poll() is None, log.read_text()
        assert "4 watches" in log.read_text()
    finally:
        proc.kill()  # cmd.Process.Kill()
        proc.wait()
    assert proc.returncode == -9
