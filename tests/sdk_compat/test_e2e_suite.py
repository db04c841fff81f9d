"""The SDK's test/e2e/ansible/suite_test.go: what its BeforeSuite does before the specs, on the
memcached-molecule-operator, for each ansible-core version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.sdk_compat.conftest import SdkCrds
from tests.sdk_compat.sdk import ANSIBLE_VERSIONS, SdkOperator, http_ok, layout
from tests.support import Cluster, wait_for


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_enabling_debug_logging_in_the_manager(cluster: Cluster, sdk_crds: SdkCrds, version: str,
                                               module_namespace: Callable[[], str], tmp_path: Path) -> None:
    """"enabling debug logging in the manager": the suite adds `--zap-log-level=2` to the
    manager's args in config/manager/manager.yaml. The operator must start with it."""
    sdk_crds("memcached", version)
    op = SdkOperator(cluster, workdir=tmp_path, operator="memcached", version=version,
                     namespace=module_namespace(), args=["--zap-log-level=2"])
    op.start()
    try:
        wait_for(lambda: http_ok(op.url("/healthz")) or op.proc is None or op.proc.poll() is not None,
                 timeout=60, what="the operator to serve /healthz or exit")
        op.assert_alive()
    finally:
        op.stop()


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_checking_api_resources_applied_on_cluster(cluster: Cluster, sdk_crds: SdkCrds, version: str) -> None:
    """"checking API resources applied on Cluster": `kubectl api-resources` (the suite looks for
    servicemonitors in it); here also the operator's kinds, once its CRDs are installed."""
    sdk_crds("memcached", version)
    out = cluster.kubectl("api-resources").stdout
    for plural in ("memcacheds", "foos", "memfins"):
        assert f"{plural} " in out


def test_installing_prometheus() -> None:
    """"installing Prometheus", "ensuring provisioned Prometheus Manager Service"."""
    pytest.skip("the Prometheus operator runs in pods, which kwok cannot run")


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_building_the_project_image(version: str) -> None:
    """"building the project image": here the image's file layout (hack/sdkcompat.py): what the
    Dockerfile copies into /opt/ansible, and every role and playbook watches.yaml names found
    from there (relative to WORKDIR /opt/ansible; roles also under roles_path /opt/ansible/roles)."""
    home = layout("memcached", version) / "opt" / "ansible"
    watches = yaml.safe_load((home / "watches.yaml").read_text())
    assert watches
    for watch in watches:
        for entry in (watch, watch.get("finalizer") or {}):
            if "playbook" in entry:
                assert (home / entry["playbook"]).is_file(), entry["playbook"]
            if "role" in entry:
                assert (home / "roles" / entry["role"] / "tasks" / "main.yml").is_file(), entry["role"]
    cfg = (layout("memcached", version) / "etc" / "ansible" / "ansible.cfg").read_text()
    assert "roles_path = /opt/ansible/roles" in cfg


def test_loading_the_required_images_into_kind_cluster() -> None:
    """"loading the required images into Kind cluster"."""
    pytest.skip("no kind and no image: the operator runs on the host, from the image's layout")
