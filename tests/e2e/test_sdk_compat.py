"""The Operator SDK's memcached-molecule-operator runs unchanged: the core of `make sdk-compat`
(tests/sdk_compat) on the project's ansible-core, for `make test`.

Its watches, playbooks and roles come from the SDK's Go module at run time, laid out as its
image lays them out (hack/sdkcompat.py), and run with the args and env of its manager.yaml. Its
roles write a Service and delete a ConfigMap in `default` (they name it): nothing else here
uses those names.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import InstallCrds
from tests.sdk_compat.sdk import SdkOperator, apply, drop_finalizers, http_get, http_ok, layout, sample
from tests.support import Cluster, conditions_of, wait_for


def test_memcached_molecule_operator(cluster: Cluster, install_crds: InstallCrds, namespace: str,
                                     tmp_path: Path) -> None:
    """The SDK's e2e flow (test/e2e/ansible/cluster_test.go) in short: the CR reconciled, its
    Deployment kept at `size` against a scale, resized, its status and metrics, its finalizer."""
    project = layout("memcached", "2.19") / "project"
    install_crds("-k", str(project / "config" / "crd"))
    op = SdkOperator(cluster, workdir=tmp_path, operator="memcached", version="2.19", namespace=namespace)
    op.start()
    try:
        wait_for(lambda: http_ok(op.url("/readyz")) or op.proc is None or op.proc.poll() is not None, timeout=60,
                 what="the operator to be ready")
        op.assert_alive()
        memcached = sample(project, "cache_v1alpha1_memcached.yaml")
        apply(cluster, memcached, namespace)

        def runs() -> int:
            return len(re.findall(f"reconciled Memcached {namespace}/memcached-sample result=ok", op.log()))

        def replicas() -> int | None:
            deployment = cluster.get("deployment", "memcached-sample-memcached", namespace)
            return deployment["spec"]["replicas"] if deployment else None

        wait_for(runs, timeout=60, what="a successful run")
        assert replicas() == 1
        obj = cluster.get("memcached", "memcached-sample", namespace)
        assert obj is not None
        assert obj["status"]["test"] == "hello world"  # the role's k8s_status
        assert conditions_of(obj)["Successful"]["status"] == "True"
        cm = cluster.get("configmap", "test-blacklist-watches", namespace)
        assert cm is not None and [r["name"] for r in cm["metadata"]["ownerReferences"]] == ["memcached-sample"]
        assert "failed=1" not in op.artifacts_text()

        # A dependent's change brings the CR's run, which puts replicas back.
        cluster.kubectl("scale", "deployment", "memcached-sample-memcached", "--replicas", "2", "-n", namespace)
        wait_for(lambda: replicas() == 1, timeout=60, what="replicas back to 1")
        memcached["spec"]["size"] = 2
        apply(cluster, memcached, namespace)
        wait_for(lambda: replicas() == 2, timeout=60, what="replicas 2")

        metric = (f'resource_created_at_seconds{{group="cache.example.com",kind="Memcached",name="memcached-sample",'
                  f'namespace="{namespace}",version="v1alpha1"}}')
        assert metric in http_get(op.url("/metrics"))

        before = runs()
        cluster.kubectl("delete", "memcached", "memcached-sample", "-n", namespace, "--wait=false")
        wait_for(lambda: cluster.get("memcached", "memcached-sample", namespace) is None, timeout=60,
                 what="the finalizer's run and the CR gone")
        assert runs() > before
        assert "result=failed" not in op.log()
        op.assert_alive()
    finally:
        op.stop()
        drop_finalizers(cluster, namespace, "memcached")
