"""molecule/default of the SDK's memcached-molecule-operator (`molecule test` in the SDK's CI),
for each ansible-core version, beside the operator on the host (tests/sdk_compat/sdk.py:
run_scenario). Its tasks that need a real kubelet are left out of its copy; what they check
without one is ported as test_memcached_metrics."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sdk_compat.conftest import SdkCrds
from tests.sdk_compat.sdk import (
    ANSIBLE_VERSIONS,
    SdkOperator,
    apply,
    drop_finalizers,
    http_get,
    run_scenario,
    sample,
)
from tests.support import Cluster, wait_for

# Tasks of molecule/default/tasks/memcached_test.yml that read the metrics through `k8s_exec` of
# curl in the manager pod: kwok runs no containers. test_memcached_metrics checks the same.
METRIC_TASKS = ["Search for all running pods", "Curl the metrics from the manager",
                "Assert sanity metrics were created", "Assert Counter works as expected",
                "Assert Gauge works as expected", "Assert Summary works as expected",
                "Assert Histogram works as expected"]


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_molecule_default_scenario(own_cluster: Cluster, version: str, tmp_path: Path) -> None:
    """molecule/default of the memcached-molecule-operator: converge, idempotence, verify, destroy."""
    run_scenario(own_cluster, operator="memcached", version=version, workdir=tmp_path,
                 without={"tasks/memcached_test.yml": METRIC_TASKS})


@pytest.mark.parametrize("version", ANSIBLE_VERSIONS)
def test_memcached_metrics(cluster: Cluster, sdk_crds: SdkCrds, namespace: str, version: str,
                           tmp_path: Path) -> None:
    """The metric asserts of molecule/default/tasks/memcached_test.yml ("Assert sanity metrics
    were created", "Assert Counter/Gauge/Summary/Histogram works as expected"): what the memcached
    role's operator_sdk.util.osdk_metric tasks record, on the operator's /metrics. The scenario
    reads them with curl in the manager pod; here from the host."""
    project = sdk_crds("memcached", version)
    op = SdkOperator(cluster, workdir=tmp_path, operator="memcached", version=version, namespace=namespace)
    op.start()
    try:
        apply(cluster, sample(project, "cache_v1alpha1_memcached.yaml"), namespace)
        wait_for(lambda: f"reconciled Memcached {namespace}/memcached-sample result=ok" in op.log(), timeout=90,
                 what="a successful run of memcached-sample")
        metrics = http_get(op.url("/metrics"))
        expected = ["sanity_counter 0", "sanity_gauge 0", "sanity_histogram_bucket", "sanity_summary summary",
                    "counter_inc_test 1", "counter_add_test 2",
                    "gauge_set_test 5", "gauge_add_test 7", "gauge_sub_test -7", "gauge_time_test 1",
                    "summary_test_sum 2", "histogram_test_sum 2"]
        assert [m for m in expected if m not in metrics] == []
    finally:
        op.stop()
        drop_finalizers(cluster, namespace, "memcached")
