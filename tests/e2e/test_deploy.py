"""The shipped manifests: accepted by the real apiserver, and the RBAC they grant is enough
for the operator to do its work when it runs as its own ServiceAccount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.e2e.servicebindings import wait_ready
from tests.support import ROOT, Cluster, StartOperator, example_manifest, service_account_cluster, wait_for

SYSTEM_NS = "playbook-operator-system"


def test_manifests_pass_server_side_validation(cluster: Cluster, crds: None) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "manager" / "namespace.yaml"))
    out = cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / "deploy")).stdout
    for expected in ("customresourcedefinition.apiextensions.k8s.io/examples.examples.playbook-operator.io",
                     "clusterrole.rbac.authorization.k8s.io/playbook-operator",
                     "deployment.apps/playbook-operator"):
        assert expected in out, out
    # The sharded variant: the same objects, its Deployment's replicas split the work.
    sharded = cluster.kubectl("apply", "--dry-run=server", "-k", str(ROOT / "deploy" / "sharded")).stdout
    assert "deployment.apps/playbook-operator" in sharded, sharded
    rendered = [doc for doc in yaml.safe_load_all(cluster.kubectl("kustomize", str(ROOT / "deploy" / "sharded")).stdout)
                if doc and doc["kind"] == "Deployment"]
    args = rendered[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--sharding" in args and "--leader-elect" not in args and rendered[0]["spec"]["replicas"] == 3
    samples = cluster.kubectl("apply", "--dry-run=server", "-n", "default", "-f",
                              str(ROOT / "deploy" / "samples")).stdout
    assert "example.examples.playbook-operator.io/hello" in samples


@pytest.mark.serial
def test_operator_works_as_its_service_account(cluster: Cluster, namespace: str, tmp_path: Path,
                                               start_operator: StartOperator) -> None:
    cluster.kubectl("apply", "-f", str(ROOT / "deploy" / "manager" / "namespace.yaml"))
    cluster.kubectl("apply", "-k", str(ROOT / "deploy" / "rbac"))
    as_operator = service_account_cluster(cluster, "playbook-operator", SYSTEM_NS, tmp_path / "sa.kubeconfig")
    # The account is really limited: it reads and writes Secrets (ServiceBindings project them,
    # ServiceCredentials hold credentials in them) but cannot make a ServiceAccount, nor read what
    # no role needs.
    for denied in (as_operator.kubectl("create", "serviceaccount", "x", "-n", namespace, check=False),
                   as_operator.kubectl("get", "serviceaccounts", "-n", namespace, check=False)):
        assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr

    # Cluster-wide, as deployed: it would reconcile the objects of tests beside it, hence `serial`.
    op = start_operator(cluster=as_operator, namespaces=None,
                        args=["--leader-elect", "--leader-election-namespace", SYSTEM_NS,
                              "--leader-election-id", f"rbac-test-{namespace}"])
    cluster.apply(example_manifest("rbac", {"k": "v"}), namespace)
    wait_for(lambda: cluster.get("configmap", "rbac-example", namespace), what="the ConfigMap", timeout=90)

    def successful() -> bool:
        ex = cluster.get("example", "rbac", namespace) or {}
        return any(c["type"] == "Successful" and c["status"] == "True"
                   for c in ex.get("status", {}).get("conditions", []))

    wait_for(successful, what="status written by the ServiceAccount")

    # A ServiceBinding: the aggregated servicebinding.io ClusterRole is enough to read the
    # Secret, patch the Deployment, and follow both.
    cluster.kubectl("create", "secret", "generic", "creds", "-n", namespace, "--from-literal=type=db")
    cluster.kubectl("create", "deployment", "web", "-n", namespace, "--image=registry.example/web:1",
                    "--replicas=0")
    cluster.apply(json.dumps({"apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding",
                              "metadata": {"name": "rbac"},
                              "spec": {"service": {"apiVersion": "v1", "kind": "Secret", "name": "creds"},
                                       "workload": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                    "name": "web"}}}), namespace)

    def bound() -> bool:
        web = cluster.get("deployment", "web", namespace) or {}
        return any(v["name"].startswith("servicebinding-")
                   for v in web.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or [])

    wait_for(bound, what="the Deployment bound by the ServiceAccount", timeout=90)
    # The whole run succeeds, its Events and status included, not only the patch.
    wait_ready(cluster, namespace, "rbac", timeout=90)
    op.assert_alive()
    # Nothing refused for want of rights (objects left in namespaces other tests are deleting
    # may be refused for that, which is no RBAC matter).
    refused = [line for line in op.log().lower().splitlines()
               if "forbidden" in line and "being terminated" not in line]
    assert refused == [], op.log()[-3000:]
