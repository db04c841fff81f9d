"""ServiceBinding (servicebinding.io spec v1.1) on a real cluster: the conformance suite's
scenarios that can be checked on pod templates (pods do not really run under kwok, so files are
checked as the volumes and mounts that would hold them), plus unbinding, rotation and refusal."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import InstallCrds
from tests.e2e.servicebindings import (
    binding,
    condition,
    deployment,
    env_of,
    events_for,
    mount_of,
    pod_spec,
    secret,
    volume_of,
    wait_event,
    wait_ready,
)
from tests.support import Cluster, OperatorProcess, wait_for

ROOT_ENV = "SERVICE_BINDING_ROOT"


def open_crd(kind: str, plural: str) -> dict[str, Any]:
    """A namespaced sbtest.playbook-operator.io/v1 kind that takes any object."""
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.sbtest.playbook-operator.io"},
            "spec": {"group": "sbtest.playbook-operator.io", "scope": "Namespaced",
                     "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                     "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                         "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


# A Provisioned Service kind (status.binding.name) and a workload kind that needs a mapping.
TEST_CRDS = [open_crd("Database", "databases"), open_crd("Runner", "runners")]

RUNNER_MAPPING = {
    "apiVersion": "servicebinding.io/v1", "kind": "ClusterWorkloadResourceMapping",
    "metadata": {"name": "runners.sbtest.playbook-operator.io"},
    "spec": {"versions": [{"version": "*", "annotations": ".spec.podAnnotations", "volumes": ".spec.volumes",
                           "containers": [{"path": ".spec.steps[*]", "name": ".id", "env": ".environment",
                                           "volumeMounts": ".mounts"}]}]},
}


@pytest.fixture(scope="module")
def test_kinds(install_crds: InstallCrds, crds: None) -> None:
    install_crds("-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": TEST_CRDS}))


def test_direct_secret_env_type_provider_root_and_container_filter(cluster: Cluster, namespace: str,
                                                                   operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("web", containers=[
        {"name": "app", "image": "registry.example/app:1"},
        {"name": "custom-root", "image": "registry.example/app:1",
         "env": [{"name": ROOT_ENV, "value": "/bindings/external"}]},
        {"name": "sidecar", "image": "registry.example/sidecar:1"},
    ]), namespace)
    cluster.apply(binding("account-db", type="mysql", provider="acme",
                          workload={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                    "containers": ["app", "custom-root"]},
                          env=[{"name": "DB_PASSWORD", "key": "password"}, {"name": "DB_TYPE", "key": "type"}]),
                  namespace)
    sb = wait_ready(cluster, namespace, "account-db", reason="ServiceBound")
    assert sb["status"]["binding"] == {"name": "creds"}
    assert condition(cluster, namespace, "account-db", "ServiceAvailable")["status"] == "True"  # type: ignore[index]
    assert condition(cluster, namespace, "account-db", "WorkloadProjected")["status"] == "True"  # type: ignore[index]

    spec = pod_spec(cluster, "deployment", "web", namespace)
    volume = volume_of(spec, sb)
    assert volume is not None
    sources = volume["projected"]["sources"]
    assert sources[0] == {"secret": {"name": "creds"}}
    assert [s["downwardAPI"]["items"][0]["path"] for s in sources[1:]] == ["type", "provider"]
    annotations = cluster.get("deployment", "web", namespace)["spec"]["template"]["metadata"]["annotations"]  # type: ignore[index]
    uid = sb["metadata"]["uid"]
    assert annotations[f"servicebinding.playbook-operator.io/type-{uid}"] == "mysql"
    assert annotations[f"servicebinding.playbook-operator.io/provider-{uid}"] == "acme"

    app, custom, sidecar = spec["containers"]
    assert mount_of(app, sb) == {"name": volume["name"], "mountPath": "/bindings/account-db", "readOnly": True}
    assert env_of(app)[ROOT_ENV] == "/bindings"
    assert env_of(app)["DB_PASSWORD"] == {"secretKeyRef": {"name": "creds", "key": "password"}}
    type_path = f"metadata.annotations['servicebinding.playbook-operator.io/type-{uid}']"
    assert env_of(app)["DB_TYPE"]["fieldRef"]["fieldPath"] == type_path
    assert mount_of(custom, sb)["mountPath"] == "/bindings/external/account-db"  # type: ignore[index]
    assert env_of(custom)[ROOT_ENV] == "/bindings/external"
    assert mount_of(sidecar, sb) is None and "env" not in sidecar
    assert "s3cret" not in json.dumps(cluster.get("deployment", "web", namespace)), "values are referenced, not copied"
    wait_event(cluster, namespace, "account-db", "ServiceBound")
    assert [e["reason"] for e in events_for(cluster, namespace, "account-db")] == ["ServiceBound"]

    # A second reconcile (the Secret's labels change, which the binding follows) writes nothing.
    before = cluster.get("deployment", "web", namespace)["metadata"]["resourceVersion"]  # type: ignore[index]
    runs = operator.log().count("reconciled ServiceBinding")
    cluster.kubectl("label", "secret", "creds", "-n", namespace, "touched=yes")
    wait_for(lambda: operator.log().count("reconciled ServiceBinding") > runs, what="another reconcile")
    assert cluster.get("deployment", "web", namespace)["metadata"]["resourceVersion"] == before  # type: ignore[index]
    operator.assert_alive()


@pytest.mark.slow
def test_provisioned_service_missing_then_created_then_rotated(cluster: Cluster, namespace: str, test_kinds: None,
                                                                operator: OperatorProcess) -> None:
    cluster.apply(deployment("web"), namespace)
    service = {"apiVersion": "sbtest.playbook-operator.io/v1", "kind": "Database", "name": "pg"}
    cluster.apply(binding("pg", service=service), namespace)
    wait_ready(cluster, namespace, "pg", "False", "ServiceNotFound")
    wait_event(cluster, namespace, "pg", "ServiceNotFound")
    assert volume_of(pod_spec(cluster, "deployment", "web", namespace), cluster.get("sb", "pg", namespace)) is None

    db = {"apiVersion": "sbtest.playbook-operator.io/v1", "kind": "Database", "metadata": {"name": "pg"}}
    cluster.apply(json.dumps(db), namespace)
    wait_ready(cluster, namespace, "pg", "False", "ServiceNotProvisioned")
    cluster.apply(json.dumps({**db, "status": {"binding": {"name": "pg-creds-1"}}}), namespace)
    wait_ready(cluster, namespace, "pg", "False", "SecretNotFound")
    cluster.apply(secret("pg-creds-1"), namespace)
    sb = wait_ready(cluster, namespace, "pg", "True")
    assert sb["status"]["binding"] == {"name": "pg-creds-1"}
    volume = volume_of(pod_spec(cluster, "deployment", "web", namespace), sb)
    assert volume is not None and volume["projected"]["sources"] == [{"secret": {"name": "pg-creds-1"}}]

    # Rotation: the service now exposes another Secret, and the workload follows.
    cluster.apply(secret("pg-creds-2"), namespace)
    cluster.apply(json.dumps({**db, "status": {"binding": {"name": "pg-creds-2"}}}), namespace)
    wait_for(lambda: (volume_of(pod_spec(cluster, "deployment", "web", namespace), sb) or {}).get("projected", {})
             .get("sources") == [{"secret": {"name": "pg-creds-2"}}], what="the volume to follow the rotation")
    wait_for(lambda: (cluster.get("sb", "pg", namespace) or {}).get("status", {}).get("binding")
             == {"name": "pg-creds-2"}, what="status.binding to follow")
    operator.assert_alive()


def test_secret_deleted_and_recreated(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("web"), namespace)
    cluster.apply(binding("db"), namespace)
    wait_ready(cluster, namespace, "db")
    cluster.kubectl("delete", "secret", "creds", "-n", namespace)
    wait_ready(cluster, namespace, "db", "False", "SecretNotFound")
    # The workload keeps its projection meanwhile: nothing is half-removed.
    assert volume_of(pod_spec(cluster, "deployment", "web", namespace), cluster.get("sb", "db", namespace)) is not None
    cluster.apply(secret("creds"), namespace)
    wait_ready(cluster, namespace, "db", "True")


@pytest.mark.slow
def test_label_selected_workloads_including_later_ones_and_relabelled(cluster: Cluster, namespace: str,
                                                                      operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("one", {"app-custom": "x"}), namespace)
    cluster.apply(deployment("other", {"app-custom": "y"}), namespace)
    cluster.apply(binding("sel", workload={"apiVersion": "apps/v1", "kind": "Deployment",
                                           "selector": {"matchLabels": {"app-custom": "x"}}}), namespace)
    sb = wait_ready(cluster, namespace, "sel")
    assert volume_of(pod_spec(cluster, "deployment", "one", namespace), sb) is not None
    assert volume_of(pod_spec(cluster, "deployment", "other", namespace), sb) is None

    cluster.apply(deployment("two", {"app-custom": "x"}), namespace)
    wait_for(lambda: volume_of(pod_spec(cluster, "deployment", "two", namespace), sb),
             what="the workload created after the binding to be bound")
    original = json.loads(deployment("one", {"app-custom": "x"}))["spec"]["template"]["spec"]
    cluster.kubectl("label", "deployment", "one", "-n", namespace, "app-custom=z", "--overwrite")
    wait_for(lambda: volume_of(pod_spec(cluster, "deployment", "one", namespace), sb) is None,
             what="the relabelled workload to be unbound")
    spec = pod_spec(cluster, "deployment", "one", namespace)
    assert [c.get("env") for c in spec["containers"]] == [None] and "volumes" not in spec
    assert spec["containers"][0]["image"] == original["containers"][0]["image"]


def test_cronjob_and_podset(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(json.dumps({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly"},
                              "spec": {"schedule": "0 3 * * *", "suspend": True, "jobTemplate": {"spec": {"template": {
                                  "spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "job", "image": "registry.example/job:1"}]}}}}}}),
                  namespace)
    cluster.apply(json.dumps({"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                              "metadata": {"name": "ps"},
                              "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "ps"}},
                                       "template": {"metadata": {"labels": {"app": "ps"}}, "spec": {
                                           "containers": [{"name": "main", "image": "registry.example/ps:1"}]}}}}),
                  namespace)
    cluster.apply(binding("cron", workload={"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly"}),
                  namespace)
    cluster.apply(binding("ps", workload={"apiVersion": "workloads.playbook-operator.io/v1alpha1", "kind": "PodSet",
                                          "name": "ps"}), namespace)
    cron_sb, ps_sb = wait_ready(cluster, namespace, "cron"), wait_ready(cluster, namespace, "ps")
    cron = cluster.get("cronjob", "nightly", namespace)["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[index]
    assert volume_of(cron, cron_sb) is not None
    assert mount_of(cron["containers"][0], cron_sb)["mountPath"] == "/bindings/cron"  # type: ignore[index]
    ps = cluster.get("podset", "ps", namespace)["spec"]["template"]["spec"]  # type: ignore[index]
    assert volume_of(ps, ps_sb) is not None
    assert mount_of(ps["containers"][0], ps_sb)["mountPath"] == "/bindings/ps"  # type: ignore[index]

    # Unbinding the PodSet (a custom resource: nothing drops empty lists for us) restores it exactly.
    cluster.kubectl("delete", "servicebinding", "ps", "-n", namespace)
    wait_for(lambda: cluster.get("servicebinding", "ps", namespace) is None, what="the binding to go")
    ps_after = cluster.get("podset", "ps", namespace)
    assert ps_after is not None
    assert ps_after["spec"]["template"]["spec"] == {"containers": [{"name": "main", "image": "registry.example/ps:1"}]}
    assert "annotations" not in ps_after["metadata"] or not any(
        k.startswith("servicebinding.playbook-operator.io/") for k in ps_after["metadata"]["annotations"])


def test_custom_mapping_and_a_malformed_one(cluster: Cluster, namespace: str, test_kinds: None,
                                            operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    runner = {"apiVersion": "sbtest.playbook-operator.io/v1", "kind": "Runner", "metadata": {"name": "r"},
              "spec": {"steps": [{"id": "build", "image": "b"}, {"id": "test", "image": "t"}]}}
    cluster.apply(json.dumps(runner), namespace)
    broken = {**RUNNER_MAPPING, "spec": {"versions": [{"version": "*", "volumes": ".spec.volumes[0]"}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(broken))
    try:
        cluster.apply(binding("run", type="custom", workload={
            "apiVersion": "sbtest.playbook-operator.io/v1", "kind": "Runner", "name": "r", "containers": ["test"]}),
            namespace)
        wait_ready(cluster, namespace, "run", "False", "InvalidMapping")
        wait_event(cluster, namespace, "run", "InvalidMapping")
        assert cluster.get("runner", "r", namespace)["spec"] == runner["spec"], "nothing half-projected"  # type: ignore[index]

        # Mending the mapping rebinds (the binding follows the mapping it read).
        cluster.kubectl("apply", "-f", "-", input=json.dumps(RUNNER_MAPPING))
        sb = wait_ready(cluster, namespace, "run", "True")
        spec = cluster.get("runner", "r", namespace)["spec"]  # type: ignore[index]
        assert volume_of(spec, sb) is not None
        build, test = spec["steps"]
        assert "mounts" not in build and "environment" not in build
        assert mount_of({"volumeMounts": test["mounts"]}, sb)["mountPath"] == "/bindings/run"  # type: ignore[index]
        assert {"name": ROOT_ENV, "value": "/bindings"} in test["environment"]
        assert spec["podAnnotations"] == {f"servicebinding.playbook-operator.io/type-{sb['metadata']['uid']}": "custom"}

        cluster.kubectl("delete", "servicebinding", "run", "-n", namespace)
        wait_for(lambda: cluster.get("runner", "r", namespace)["spec"] == runner["spec"],  # type: ignore[index]
                 what="the runner as it was")
    finally:
        cluster.kubectl("delete", "clusterworkloadresourcemapping", RUNNER_MAPPING["metadata"]["name"],
                        check=False)


def test_unbinding_removes_exactly_what_was_added_after_hand_edits(cluster: Cluster, namespace: str,
                                                                   operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("web", containers=[{"name": "app", "image": "registry.example/app:1",
                                                 "env": [{"name": "MINE", "value": "1"}]}]), namespace)
    original = pod_spec(cluster, "deployment", "web", namespace)
    cluster.apply(binding("db", env=[{"name": "DB_USER", "key": "username"}], type="t"), namespace)
    sb = wait_ready(cluster, namespace, "db")
    assert volume_of(pod_spec(cluster, "deployment", "web", namespace), sb) is not None

    # By hand, in between: a volume and mount of one's own, another variable.
    patch = [{"op": "add", "path": "/spec/template/spec/volumes/-", "value": {"name": "cache", "emptyDir": {}}},
             {"op": "add", "path": "/spec/template/spec/containers/0/volumeMounts/-",
              "value": {"name": "cache", "mountPath": "/cache"}},
             {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "LATER", "value": "2"}}]
    cluster.kubectl("patch", "deployment", "web", "-n", namespace, "--type=json", "-p", json.dumps(patch))
    cluster.kubectl("delete", "servicebinding", "db", "-n", namespace)
    wait_for(lambda: cluster.get("servicebinding", "db", namespace) is None, what="the binding to go")
    spec = pod_spec(cluster, "deployment", "web", namespace)
    assert spec["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    assert spec["containers"][0]["env"] == [{"name": "MINE", "value": "1"}, {"name": "LATER", "value": "2"}]
    meta = cluster.get("deployment", "web", namespace)
    assert not any(k.startswith("servicebinding.playbook-operator.io/")
                   for k in (meta["metadata"].get("annotations") or {}))  # type: ignore[index]
    assert not (meta["spec"]["template"]["metadata"].get("annotations"))  # type: ignore[index]
    assert {k: v for k, v in spec.items() if k not in ("volumes", "containers")} == \
        {k: v for k, v in original.items() if k not in ("volumes", "containers")}


def test_cross_namespace_references_are_refused(cluster: Cluster, namespace: str, operator: OperatorProcess) -> None:
    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("web"), namespace)
    cluster.apply(binding("far", service={"apiVersion": "v1", "kind": "Secret", "name": "creds",
                                          "namespace": "kube-system"}), namespace)
    c = wait_ready(cluster, namespace, "far", "False", "NamespaceNotAllowed")
    assert c["status"].get("binding") is None
    assert volume_of(pod_spec(cluster, "deployment", "web", namespace), c) is None
    wait_event(cluster, namespace, "far", "NamespaceNotAllowed")


def test_check_mode_shows_the_projection_and_changes_nothing(cluster: Cluster, crds: None, namespace: str,
                                                             tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    from tests.support import ROOT

    cluster.apply(secret("creds"), namespace)
    cluster.apply(deployment("web"), namespace)
    manifest = json.loads(binding("db", env=[{"name": "DB_USER", "key": "username"}]))
    manifest["metadata"]["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    path = tmp_path / "binding.yaml"
    path.write_text(json.dumps(manifest))
    before = cluster.get("deployment", "web", namespace)
    proc = subprocess.run([str(Path(sys.executable).parent / "playbook-operator"), "reconcile", "-f", str(path),
                           "--check", "--diff"], cwd=ROOT, env=cluster.env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "+        - mountPath: /bindings/db" in proc.stdout or "mountPath: /bindings/db" in proc.stdout
    assert "secretKeyRef" in proc.stdout
    assert cluster.get("deployment", "web", namespace)["metadata"]["resourceVersion"] == \
        before["metadata"]["resourceVersion"]  # type: ignore[index]
