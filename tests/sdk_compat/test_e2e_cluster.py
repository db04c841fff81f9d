"""The SDK's test/e2e/ansible/cluster_test.go, "Running ansible projects built with operator-sdk
should run correctly in a cluster", step by step (one test per `By`, in its order) on the
memcached-molecule-operator, for each ansible-core version.

The SDK deploys the operator with `make deploy` (config/default) as a pod; here
`playbook-operator run` runs on the host as that pod's image would (tests/sdk_compat/sdk.py),
with the args and env of config/manager/manager.yaml, watching a namespace of its own (the
SDK's kubectl works in the operator's namespace; the samples go there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.sdk_compat.conftest import SdkCrds
from tests.sdk_compat.sdk import (
    ANSIBLE_VERSIONS,
    SdkOperator,
    apply,
    drop_finalizers,
    http_get,
    http_ok,
    manager_args,
    sample,
)
from tests.support import Cluster, wait_for

GROUP, VERSION = "cache.example.com", "v1alpha1"
SAMPLES = {"Memcached": "cache_v1alpha1_memcached.yaml", "Foo": "cache_v1alpha1_foo.yaml",
           "Memfin": "cache_v1alpha1_memfin.yaml"}


@dataclass
class Deployed:
    cluster: Cluster
    operator: SdkOperator
    namespace: str
    project: Path
    version: str
    state: dict[str, str] = field(default_factory=dict)

    def kubectl(self, *args: str, check: bool = True) -> str:
        return self.cluster.kubectl(*args, "-n", self.namespace, check=check).stdout

    def reconciled(self, kind: str, name: str) -> int:
        """How many runs of the object ended well, by the operator's log."""
        return len(re.findall(rf"reconciled {kind} {self.namespace}/{name} result=ok", self.operator.log()))


@pytest.fixture(scope="module", params=ANSIBLE_VERSIONS)
def deployed(request: pytest.FixtureRequest, cluster: Cluster, sdk_crds: SdkCrds,
             module_namespace: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """BeforeEach: "installing the CRDs on the cluster", "deploying project on the cluster"."""
    version = request.param
    project = sdk_crds("memcached", version)
    namespace = module_namespace()
    op = SdkOperator(cluster, workdir=tmp_path_factory.mktemp(f"memcached-{version}"), operator="memcached",
                     version=version, namespace=namespace)
    op.start()
    try:
        yield Deployed(cluster, op, namespace, project, version)
    finally:
        # AfterEach: "cleaning up created API objects during test process" (the curl pod and the
        # metrics ClusterRoleBinding are not made here).
        op.stop()
        drop_finalizers(cluster, namespace, "memcached")


def test_deploying_project_on_the_cluster(deployed: Deployed, tmp_path: Path) -> None:
    """BeforeEach "deploying project on the cluster": `make deploy` deploys config/default, whose
    manager_metrics_patch.yaml adds --metrics-bind-address=:8443, --metrics-secure and
    --metrics-require-rbac to the manager's args. The operator must start with them."""
    args = manager_args(deployed.project, "default")
    op = SdkOperator(deployed.cluster, workdir=tmp_path, operator="memcached", version=deployed.version,
                     namespace=deployed.namespace, args=[a for a in args if a not in manager_args(deployed.project)])
    op.start()
    try:
        wait_for(lambda: http_ok(op.url("/healthz")) or op.proc is None or op.proc.poll() is not None,
                 timeout=60, what="the operator to serve /healthz or exit")
        op.assert_alive()
    finally:
        op.stop()


def test_checking_if_the_operator_project_pod_is_running(deployed: Deployed) -> None:
    """"checking if the Operator project Pod is running" (EnsureOperatorRunning: one manager pod,
    Running). Here: the one operator process is up, ready, and leads (--leader-elect)."""
    wait_for(lambda: http_ok(deployed.operator.url("/readyz")), timeout=120, what="/readyz")
    deployed.operator.assert_alive()
    lease = json.loads(deployed.kubectl("get", "lease", "memcached-molecule-operator", "-o", "json"))
    assert lease["spec"]["holderIdentity"]


def test_ensuring_the_created_servicemonitor_for_the_manager(deployed: Deployed) -> None:
    """"ensuring the created ServiceMonitor for the manager"."""
    pytest.skip("ServiceMonitor is the Prometheus operator's kind: the suite installs that operator, whose pods "
                "kwok cannot run, and config/default's prometheus/ monitors the manager pod, which is not made here")


def test_ensuring_the_created_metrics_service_for_the_manager(deployed: Deployed) -> None:
    """"ensuring the created metrics Service for the manager"."""
    pytest.skip("the metrics Service of config/default fronts the manager pod, which kwok cannot run; the operator "
                "serves its metrics on the host (read by the resource_created_at tests below)")


def test_create_custom_resources(deployed: Deployed) -> None:
    """"create custom resource (Memcached CR)", "(Foo CR)", "(Memfin CR)": the config/samples files."""
    for name in SAMPLES.values():
        apply(deployed.cluster, sample(deployed.project, name), deployed.namespace)
    for kind in SAMPLES:
        assert deployed.kubectl("get", kind.lower(), "-o", "name").strip()


def test_ensuring_the_cr_gets_reconciled(deployed: Deployed) -> None:
    """"ensuring the CR gets reconciled": the manager's log shows a successful ansible-runner run,
    no failed task (`failed=1`) and no fact gathering (`[Gathering Facts]`)."""
    wait_for(lambda: deployed.reconciled("Memcached", "memcached-sample"), timeout=60,
             what="a successful run of memcached-sample")
    assert "result=failed" not in deployed.operator.log()
    runs = deployed.operator.artifacts_text()
    assert "memcached-sample" in runs
    assert "failed=1" not in runs
    assert "Gathering Facts" not in runs


def test_ensuring_no_liveness_probe_fail_events(deployed: Deployed) -> None:
    """"ensuring no liveness probe fail events": no `Killing` events of the manager pod, which a
    failed /healthz brings. Here: /healthz answers and the operator never restarted."""
    assert http_ok(deployed.operator.url("/healthz"))
    deployed.operator.assert_alive()
    assert deployed.operator.log().count("starting playbook-operator") == 1


def test_getting_memcached_deploy_by_labels(deployed: Deployed) -> None:
    """"getting memcached deploy by labels" (app=memcached)."""
    name = wait_for(lambda: deployed.kubectl("get", "deployment", "-l", "app=memcached",
                                             "-o", "jsonpath={..metadata.name}").strip(),
                    timeout=120, what="the memcached Deployment")
    deployed.state["deployment"] = name


def test_checking_the_memcached_cr_deployment_status(deployed: Deployed) -> None:
    """"checking the Memcached CR deployment status": `kubectl rollout status` says it rolled out
    (kwok makes the pods Running and Ready)."""
    out = deployed.kubectl("rollout", "status", "deployment", deployed.state["deployment"], "--timeout=60s")
    assert "successfully rolled out" in out


def test_ensuring_the_created_service_for_the_memcached_cr(deployed: Deployed) -> None:
    """"ensuring the created Service for the Memcached CR": the SDK asserts only that
    `kubectl get Service -l app=memcached` succeeds with some output (the role makes no Service:
    kubectl's "No resources found" is that output)."""
    proc = deployed.cluster.kubectl("get", "Service", "-l", "app=memcached", "-n", deployed.namespace)
    assert (proc.stdout + proc.stderr).strip()


def test_verifying_that_a_config_map_owned_by_the_cr_has_been_created(deployed: Deployed) -> None:
    """"Verifying that a config map owned by the CR has been created" (test-blacklist-watches)."""
    cm = wait_for(lambda: deployed.cluster.get("configmap", "test-blacklist-watches", deployed.namespace),
                  timeout=120, what="the test-blacklist-watches ConfigMap")
    assert cm is not None
    assert [r["name"] for r in cm["metadata"].get("ownerReferences", [])] == ["memcached-sample"]


def test_ensuring_that_config_map_requests_skip_the_cache(deployed: Deployed) -> None:
    """"Ensuring that config map requests skip the cache": ConfigMaps are blacklisted in the
    Memcached watch, so the role's GET of test-blacklist-watches is not answered from the
    operator's cache (the SDK's proxy logs "Skipping cache lookup"). Here: it reached the
    apiserver, by its audit log."""
    audit = deployed.cluster.audit_log
    if audit is None:
        pytest.skip("the audit log is only known for the local control plane")
    path = f"/api/v1/namespaces/{deployed.namespace}/configmaps/test-blacklist-watches"

    def role_gets() -> list[dict[str, str]]:
        events = (json.loads(line) for line in audit.read_text().splitlines() if path in line)
        return [e for e in events if e["verb"] == "get" and e["requestURI"].split("?")[0] == path
                and not e.get("userAgent", "").startswith("kubectl")]

    wait_for(role_gets, timeout=30, what="a GET of the ConfigMap from a run at the apiserver")


def test_scaling_deployment_replicas_to_2(deployed: Deployed) -> None:
    """"scaling deployment replicas to 2"."""
    deployed.state["runs_before_scale"] = str(deployed.reconciled("Memcached", "memcached-sample"))
    deployed.kubectl("scale", "deployment", deployed.state["deployment"], "--replicas", "2")


def test_verifying_the_deployment_automatically_scales_back_down_to_1(deployed: Deployed) -> None:
    """"verifying the deployment automatically scales back down to 1": the Deployment is a
    dependent of the CR; its change reconciles the CR, whose role sets replicas back to size."""
    def replicas() -> bool:
        return deployed.kubectl("get", "deployment", deployed.state["deployment"],
                                "-o", "jsonpath={..spec.replicas}").strip() == "1" and \
            deployed.reconciled("Memcached", "memcached-sample") > int(deployed.state["runs_before_scale"])

    wait_for(replicas, timeout=60, what="replicas back to 1 by a run")


def test_updating_size_to_2_in_the_cr_manifest(deployed: Deployed) -> None:
    """"updating size to 2 in the CR manifest", "applying CR manifest with size: 2"."""
    obj = sample(deployed.project, SAMPLES["Memcached"])
    assert obj["spec"] == {"size": 1}
    obj["spec"]["size"] = 2
    deployed.state["runs_before_update"] = str(deployed.reconciled("Memcached", "memcached-sample"))
    apply(deployed.cluster, obj, deployed.namespace)


def test_ensuring_the_cr_gets_reconciled_after_patching_it(deployed: Deployed) -> None:
    """"ensuring the CR gets reconciled after patching it": another successful run, no failed task."""
    wait_for(lambda: deployed.reconciled("Memcached", "memcached-sample") > int(deployed.state["runs_before_update"]),
             timeout=60, what="a run after the update")
    assert "result=failed" not in deployed.operator.log()
    assert "failed=1" not in deployed.operator.artifacts_text()


def test_checking_deployment_replicas_spec_is_equals_2(deployed: Deployed) -> None:
    """"checking Deployment replicas spec is equals 2"."""
    wait_for(lambda: deployed.kubectl("get", "deployment", deployed.state["deployment"],
                                      "-o", "jsonpath={..spec.replicas}").strip() == "2",
             timeout=60, what="replicas 2")


def test_getting_the_cr_namespace_token(deployed: Deployed) -> None:
    """"getting the CR namespace token": the Memcached CR's namespace, for the metric labels."""
    ns = deployed.kubectl("get", "Memcached", "memcached-sample", "-o=jsonpath={..metadata.namespace}").strip()
    assert ns == deployed.namespace


@pytest.mark.parametrize("kind", list(SAMPLES))
def test_ensuring_the_operator_metrics_contains_a_resource_created_at_metric(deployed: Deployed, kind: str) -> None:
    """"ensuring the operator metrics contains a `resource_created_at` metric for the Memcached
    CR", "... for the Foo CR", "... for the Memfin CR". The SDK reads /metrics through a curl pod
    with a service account token; here the operator's metrics address on the host."""
    metric = (f'resource_created_at_seconds{{group="{GROUP}",kind="{kind}",name="{kind.lower()}-sample",'
              f'namespace="{deployed.namespace}",version="{VERSION}"}}')
    wait_for(lambda: metric in http_get(deployed.operator.url("/metrics")), timeout=30, what=metric)


def test_creating_a_configmap_that_the_finalizer_should_remove(deployed: Deployed) -> None:
    """"creating a configmap that the finalizer should remove" (deleteme)."""
    deployed.kubectl("create", "configmap", "deleteme")


def test_deleting_memcached_cr_manifest(deployed: Deployed) -> None:
    """"deleting Memcached CR manifest"."""
    deployed.state["runs_before_delete"] = str(deployed.reconciled("Memcached", "memcached-sample"))
    deployed.kubectl("delete", "memcached", "memcached-sample", "--wait=false")


def test_ensuring_the_cr_gets_reconciled_successfully(deployed: Deployed) -> None:
    """"ensuring the CR gets reconciled successfully" after the delete: the finalizer's run (role
    memfin) ends well and the log has no "error"."""
    wait_for(lambda: deployed.cluster.get("memcached", "memcached-sample", deployed.namespace) is None,
             timeout=60, what="the finalizer to run and the CR to go")
    assert deployed.reconciled("Memcached", "memcached-sample") > int(deployed.state["runs_before_delete"])
    assert "error" not in deployed.operator.log()


def test_ensuring_that_memcached_deployment_was_removed(deployed: Deployed) -> None:
    """"ensuring that Memchaced Deployment was removed" (garbage-collected through its owner reference)."""
    wait_for(lambda: deployed.cluster.get("deployment", deployed.state["deployment"], deployed.namespace) is None,
             timeout=120, what="the Deployment to go")
