"""A namespaced operator stays in its namespaces. Run with WATCH_NAMESPACE as a ServiceAccount
that holds a Role only in the namespace it watches (deploy/rbac/namespaced/: the Role, its
RoleBinding, and read access to ClusterWorkloadResourceMappings, which the ServiceBinding role
reads by name), it converges a PodSet and a ServiceBinding, follows their pods and Secrets, and
neither it nor kopf makes a request the apiserver refuses, nor lists or watches a namespaced
kind anywhere but there."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.podsets import active_pods, converged, podset
from tests.e2e.servicebindings import binding, deployment, pod_spec, secret, volume_of, wait_ready
from tests.support import ROOT, Cluster, OperatorProcess, service_account_cluster, wait_for

ACCOUNT = "namespaced-operator"
MAPPINGS = "clusterworkloadresourcemappings"


def namespaced_rbac(namespace: str, mapping_verbs: list[str] | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """deploy/rbac/namespaced/ for this test's account, and the cluster-scoped objects in it (named
    after the namespace, so that tests side by side keep apart). `mapping_verbs` [] leaves the
    cluster-scoped grant out: the account holds namespaced Roles only."""
    docs, cluster_scoped = [], []
    for path in sorted((ROOT / "deploy" / "rbac" / "namespaced").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or (mapping_verbs == [] and doc["kind"].startswith("Cluster")):
                continue
            if "subjects" in doc:
                doc["subjects"] = [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}]
            if doc["kind"].startswith("Cluster"):
                doc["metadata"]["name"] += f"-{namespace}"
                if doc["kind"] == "ClusterRoleBinding":
                    doc["roleRef"]["name"] += f"-{namespace}"
                elif mapping_verbs is not None:
                    doc["rules"][0]["verbs"] = mapping_verbs
                cluster_scoped.append(f"{doc['kind'].lower()}/{doc['metadata']['name']}")
            docs.append(doc)
    return docs, cluster_scoped


@contextmanager
def namespaced_operator(cluster: Cluster, namespace: str, tmp_path: Path,
                        mapping_verbs: list[str] | None = None) -> Iterator[OperatorProcess]:
    """The operator watching `namespace` only, as an account with the shipped namespaced RBAC."""
    docs, cluster_scoped = namespaced_rbac(namespace, mapping_verbs)
    cluster.kubectl("create", "serviceaccount", ACCOUNT, "-n", namespace)
    cluster.kubectl("apply", "-n", namespace, "-f", "-",
                    input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    op: OperatorProcess | None = None
    try:
        as_operator = service_account_cluster(cluster, ACCOUNT, namespace, tmp_path / "sa.kubeconfig")
        # The account really is namespaced: pods here, but neither pods elsewhere nor namespaces.
        as_operator.kubectl("get", "pods", "-n", namespace)
        for denied in (as_operator.kubectl("get", "pods", "--all-namespaces", check=False),
                       as_operator.kubectl("get", "namespaces", check=False)):
            assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
        op = OperatorProcess(as_operator, workdir=tmp_path, namespaces=[namespace],
                             args=["--leader-elect", "--leader-election-namespace", namespace,
                                   "--leader-election-id", "namespaced"])
        op.start()
        yield op
    finally:
        if op is not None:
            op.stop()
        cluster.kubectl("delete", "--ignore-not-found", *cluster_scoped, check=False)


def audit_offset(cluster: Cluster) -> int:
    return cluster.audit_log.stat().st_size if cluster.audit_log is not None else 0


def requests_out_of_bounds(cluster: Cluster, namespace: str, offset: int, *,
                           mappings_refused: bool = False) -> list[str]:
    """The operator's requests since `offset` that were refused, or that listed or watched
    anything but this namespace's objects and the mappings (the test's own kubectl, refused on
    purpose, left out): none is expected, but a refused read of a mapping when
    `mappings_refused`."""
    if cluster.audit_log is None:
        return []
    user = f"system:serviceaccount:{namespace}:{ACCOUNT}"
    out = []
    with cluster.audit_log.open() as f:
        f.seek(offset)
        for line in f:
            event = json.loads(line)
            if (event.get("user", {}).get("username") != user or event.get("stage") != "ResponseComplete"
                    or event.get("userAgent", "").startswith("kubectl")):
                continue
            ref = event.get("objectRef") or {}
            code = (event.get("responseStatus") or {}).get("code")
            elsewhere = (event["verb"] in ("list", "watch") and ref.get("namespace") != namespace
                         and ref.get("resource") != MAPPINGS)
            if mappings_refused and code == 403 and event["verb"] == "get" and ref.get("resource") == MAPPINGS:
                continue
            if code == 403 or elsewhere:
                out.append(f"{code} {event['verb']} {event.get('requestURI')}")
    return out


def assert_stayed_in_namespace(cluster: Cluster, op: OperatorProcess, namespace: str, offset: int, *,
                               mappings_refused: bool = False) -> None:
    op.assert_alive()
    # The binding is Ready before its run ends, and its reads are watched once it has ended.
    watching = f"watching dependent kind v1 Secret in namespace {namespace}"
    wait_for(lambda: watching in op.log(), what="the Secret watched in the namespace")
    log = op.log()
    for refused in ("forbidden", " 403"):
        assert refused not in log.lower(), log[-4000:]
    assert "apps/v1 Deployment cluster-wide" not in log and "v1 Secret cluster-wide" not in log, log[-4000:]
    assert requests_out_of_bounds(cluster, namespace, offset, mappings_refused=mappings_refused) == []


def bind(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """A Secret projected into a Deployment; the binding once Ready, after checking the projection."""
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("shop"), namespace)
    cluster.apply(binding("db", workload={"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop"}), namespace)
    sb = wait_ready(cluster, namespace, "db", timeout=120)
    assert sb["status"]["binding"] == {"name": "creds"}
    assert volume_of(pod_spec(cluster, "deployment", "shop", namespace), sb) is not None
    return sb


def test_a_namespaced_operator_converges_with_roles_only(cluster: Cluster, crds: None, namespace: str,
                                                         tmp_path: Path) -> None:
    offset = audit_offset(cluster)
    with namespaced_operator(cluster, namespace, tmp_path) as op:
        cluster.apply(podset("web", 2), namespace)
        wait_for(lambda: converged(cluster, namespace, "web", 2), what="PodSet web converged", timeout=120)
        # Its pods are watched in this namespace: one deleted is replaced.
        gone = active_pods(cluster, namespace, "web")[0]["metadata"]["name"]
        cluster.kubectl("delete", "pod", gone, "-n", namespace, "--wait=false")
        wait_for(lambda: converged(cluster, namespace, "web", 2)
                 and gone not in {p["metadata"]["name"] for p in active_pods(cluster, namespace, "web")},
                 what="the deleted pod replaced", timeout=120)

        bind(cluster, namespace)
        # The Secret it read is followed in this namespace too: gone, then back.
        cluster.kubectl("delete", "secret", "creds", "-n", namespace)
        wait_ready(cluster, namespace, "db", status="False", reason="SecretNotFound", timeout=120)
        cluster.apply(secret("creds"), namespace)
        wait_ready(cluster, namespace, "db", timeout=120)

        assert_stayed_in_namespace(cluster, op, namespace, offset)
        log = op.log()
        assert "watching dependent kind servicebinding.io/v1 ClusterWorkloadResourceMapping cluster-wide" in log
        assert "dependents: not watching" not in log
        # kopf was kept to the namespace too (it may not list namespaces or watch CRDs).
        assert "not watching namespaces and CRDs cluster-wide (not permitted)" in log


def test_without_rights_to_watch_mappings_it_says_so_once_and_carries_on(cluster: Cluster, crds: None,
                                                                         namespace: str, tmp_path: Path) -> None:
    offset = audit_offset(cluster)
    # `get` only: the role can read a mapping, the operator cannot follow them.
    with namespaced_operator(cluster, namespace, tmp_path, mapping_verbs=["get"]) as op:
        bind(cluster, namespace)
        warning = "not watching servicebinding.io/v1 ClusterWorkloadResourceMapping cluster-wide"
        wait_for(lambda: warning in op.log(), what="the warning about mappings")
        # Another reconcile of the binding (its Secret changed) brings no second warning.
        runs = op.log().count("reconciled ServiceBinding")
        cluster.kubectl("label", "secret", "creds", "-n", namespace, "rotated=1")
        wait_for(lambda: op.log().count("reconciled ServiceBinding") > runs, what="the binding reconciled again")
        assert op.log().count(warning) == 1, op.log()[-4000:]
        assert op.log().count("dependents: not watching") == 1, op.log()[-4000:]
        assert_stayed_in_namespace(cluster, op, namespace, offset)


def test_with_namespaced_roles_only_bindings_use_the_built_in_mapping_and_say_so(cluster: Cluster, crds: None,
                                                                                namespace: str,
                                                                                tmp_path: Path) -> None:
    offset = audit_offset(cluster)
    with namespaced_operator(cluster, namespace, tmp_path, mapping_verbs=[]) as op:
        cluster.apply(podset("web", 2), namespace)
        wait_for(lambda: converged(cluster, namespace, "web", 2), what="PodSet web converged", timeout=120)
        sb = bind(cluster, namespace)
        projected = next(c for c in sb["status"]["conditions"] if c["type"] == "WorkloadProjected")
        assert projected["status"] == "True"
        assert "could not be read (403 Forbidden" in projected["message"], projected
        assert "built-in mapping was used" in projected["message"]
        assert_stayed_in_namespace(cluster, op, namespace, offset, mappings_refused=True)


def test_the_namespaced_rbac_passes_server_side_validation(cluster: Cluster, namespace: str) -> None:
    out = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f",
                          str(ROOT / "deploy" / "rbac" / "namespaced")).stdout
    for expected in ("role.rbac.authorization.k8s.io/playbook-operator",
                     "rolebinding.rbac.authorization.k8s.io/playbook-operator",
                     "clusterrole.rbac.authorization.k8s.io/playbook-operator-mappings",
                     "clusterrolebinding.rbac.authorization.k8s.io/playbook-operator-mappings"):
        assert expected in out, out
