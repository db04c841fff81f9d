"""The playbook_operator.bindings ServiceBinding filters without a cluster: projection as the
servicebinding.io spec v1.1 says (volume, mounts, SERVICE_BINDING_ROOT, env, type/provider,
container filter), mappings and Fixed JSONPaths, exact unbinding (also after hand edits and with
several bindings), idempotence, the reconcile plan with its conditions and Events, and one run
through ansible-playbook to prove the plugin loads."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

sys.path.insert(0, str(ROOT / "collections"))

from ansible_collections.playbook_operator.bindings.plugins.filter import servicebinding as f
from ansible_collections.playbook_operator.bindings.plugins.module_utils import jsonpath

NS = "apps"
UID = "0b0b0b0b-0000-4000-8000-000000000001"
OTHER = "0b0b0b0b-0000-4000-8000-000000000002"
VOLUME = f"servicebinding-{UID}"
RECORD = f"servicebinding.playbook-operator.io/{UID}"


def binding(uid: str = UID, name: str = "db", **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "service": {"apiVersion": "v1", "kind": "Secret", "name": "creds"},
        "workload": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
    }
    base.update(spec)
    return {"apiVersion": "servicebinding.io/v1", "kind": "ServiceBinding",
            "metadata": {"name": name, "namespace": NS, "uid": uid, "generation": 1}, "spec": base}


def deployment(name: str = "web", labels: dict[str, str] | None = None, containers: list[Any] | None = None,
               **pod_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": "10", "labels": labels or {"app": name}},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": name}},
                                                 "spec": {"containers": containers or [{"name": "app", "image": "a"}],
                                                          **pod_spec}}}}


def applied(workload: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The workload as the apiserver would have it after the patch (with a new resourceVersion)."""
    new = copy.deepcopy(result["workload"])
    new["metadata"]["resourceVersion"] = str(int(workload["metadata"]["resourceVersion"]) + 1)
    return new


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]["spec"]


def container(workload: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return pod(workload)["containers"][i]


# --- projection ------------------------------------------------------------------------------


def test_direct_secret_projects_volume_mount_and_root() -> None:
    w = deployment()
    out = f.projection(w, binding(), "creds")
    new = out["workload"]
    assert out["changed"] and out["projected"] and out["error"] is None
    assert pod(new)["volumes"] == [{"name": VOLUME, "projected": {"defaultMode": 0o644,
                                                                   "sources": [{"secret": {"name": "creds"}}]}}]
    assert container(new)["volumeMounts"] == [{"name": VOLUME, "mountPath": "/bindings/db", "readOnly": True}]
    assert container(new)["env"] == [{"name": "SERVICE_BINDING_ROOT", "value": "/bindings"}]
    assert out["patch"][0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "10"}
    assert w == deployment(), "the input must not change"


def test_spec_name_names_the_directory() -> None:
    b = binding(name="my-binding")
    b["spec"]["name"] = "account-db"
    new = f.projection(deployment(), b, "creds")["workload"]
    assert container(new)["volumeMounts"][0]["mountPath"] == "/bindings/account-db"


def test_existing_service_binding_root_is_respected_and_kept() -> None:
    w = deployment(containers=[{"name": "app", "env": [{"name": "SERVICE_BINDING_ROOT", "value": "/custom"}]}])
    new = f.projection(w, binding(), "creds")["workload"]
    assert container(new)["env"] == [{"name": "SERVICE_BINDING_ROOT", "value": "/custom"}]
    assert container(new)["volumeMounts"][0]["mountPath"] == "/custom/db"
    unbound = f.projection(applied(w, {"workload": new}), binding(), None)["workload"]
    assert container(unbound)["env"] == [{"name": "SERVICE_BINDING_ROOT", "value": "/custom"}]


def test_env_references_the_secret_and_never_copies_values() -> None:
    b = binding(env=[{"name": "DB_USER", "key": "username"}, {"name": "DB_PASSWORD", "key": "password"}])
    env = container(f.projection(deployment(), b, "creds")["workload"])["env"]
    assert env[1:] == [
        {"name": "DB_USER", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "username"}}},
        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
    ]


def test_type_and_provider_override_through_the_downward_api() -> None:
    b = binding(type="postgresql", provider="acme", env=[{"name": "KIND", "key": "type"}])
    new = f.projection(deployment(), b, "creds")["workload"]
    annotations = new["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {f"servicebinding.playbook-operator.io/type-{UID}": "postgresql",
                           f"servicebinding.playbook-operator.io/provider-{UID}": "acme"}
    sources = pod(new)["volumes"][0]["projected"]["sources"]
    assert sources[0] == {"secret": {"name": "creds"}}
    assert [s["downwardAPI"]["items"][0]["path"] for s in sources[1:]] == ["type", "provider"]
    assert sources[1]["downwardAPI"]["items"][0]["fieldRef"] == {
        "apiVersion": "v1", "fieldPath": f"metadata.annotations['servicebinding.playbook-operator.io/type-{UID}']"}
    assert container(new)["env"][1] == {"name": "KIND", "valueFrom": {"fieldRef": {
        "apiVersion": "v1", "fieldPath": f"metadata.annotations['servicebinding.playbook-operator.io/type-{UID}']"}}}


def test_container_filter_and_init_containers() -> None:
    w = deployment(containers=[{"name": "app"}, {"name": "sidecar"}], initContainers=[{"name": "init"}])
    b = binding(workload={"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                          "containers": ["app", "init", "missing"]})
    new = f.projection(w, b, "creds")["workload"]
    assert "volumeMounts" in container(new, 0)
    assert "volumeMounts" not in container(new, 1) and "env" not in container(new, 1)
    assert pod(new)["initContainers"][0]["volumeMounts"][0]["name"] == VOLUME
    everything = f.projection(w, binding(), "creds")["workload"]
    assert all("volumeMounts" in c for c in pod(everything)["containers"] + pod(everything)["initContainers"])


def test_cronjob_gets_its_pod_template_one_level_deeper() -> None:
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly", "resourceVersion": "3"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "job"}], "restartPolicy": "Never"}}}}}}
    b = binding(workload={"apiVersion": "batch/v1", "kind": "CronJob", "name": "nightly"})
    new = f.projection(cron, b, "creds")["workload"]
    spec = new["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert spec["volumes"][0]["name"] == VOLUME
    assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == "/bindings/db"


CUSTOM = {"apiVersion": "example.com/v1", "kind": "Runner", "metadata": {"name": "r", "resourceVersion": "1"},
          "spec": {"pod": {"main": {"name": "main"}, "helpers": [{"id": "h1"}]}}}
CUSTOM_MAPPING = {"metadata": {"name": "runners.example.com"}, "spec": {"versions": [
    {"version": "v0", "volumes": ".nowhere"},
    {"version": "*", "annotations": ".spec.pod.annotations", "volumes": ".spec.pod['vols']",
     "containers": [{"path": ".spec.pod.main", "name": ".name", "env": ".vars", "volumeMounts": ".mounts"},
                    {"path": ".spec.pod.helpers[*]"}]},
]}}


def test_custom_mapping_with_wildcard_version_and_created_locations() -> None:
    b = binding(workload={"apiVersion": "example.com/v1", "kind": "Runner", "name": "r", "containers": ["main"]},
                type="t")
    out = f.projection(CUSTOM, b, "creds", [CUSTOM_MAPPING])
    spec = out["workload"]["spec"]["pod"]
    assert spec["vols"][0]["name"] == VOLUME
    assert spec["main"]["mounts"][0]["mountPath"] == "/bindings/db"
    assert spec["main"]["vars"][0]["name"] == "SERVICE_BINDING_ROOT"
    # A container without a name expression is always bound (the filter cannot apply).
    assert spec["helpers"][0]["volumeMounts"][0]["name"] == VOLUME
    assert spec["annotations"][f"servicebinding.playbook-operator.io/type-{UID}"] == "t"
    record = json.loads(out["workload"]["metadata"]["annotations"][RECORD])
    assert record["mapping"]["volumes"] == ".spec.pod['vols']"
    # Unbinding removes the lists and maps it created: the workload is as it was.
    unbound = f.projection(applied(CUSTOM, out), b, None, [CUSTOM_MAPPING])["workload"]
    assert unbound["spec"] == CUSTOM["spec"]
    assert "annotations" not in unbound["metadata"]


def test_unbinding_uses_the_mapping_recorded_at_projection() -> None:
    b = binding(workload={"apiVersion": "example.com/v1", "kind": "Runner", "name": "r"})
    bound = applied(CUSTOM, f.projection(CUSTOM, b, "creds", [CUSTOM_MAPPING]))
    changed = copy.deepcopy(CUSTOM_MAPPING)
    changed["spec"]["versions"][1]["volumes"] = ".spec.elsewhere"
    unbound = f.projection(bound, b, None, [changed])["workload"]
    assert unbound["spec"] == CUSTOM["spec"]


@pytest.mark.parametrize("bad", [
    {"version": "*", "volumes": ".spec[0]"},
    {"version": "*", "volumes": ".spec.*"},
    {"version": "*", "annotations": "spec..x"},
    {"version": "*", "containers": [{"name": ".name"}]},
    {"version": "*", "containers": "nope"},
    {"version": "*", "containers": [{"path": ".spec.pod.main", "env": ".a[*]"}]},
])
def test_malformed_mapping_is_an_error_and_no_change(bad: dict[str, Any]) -> None:
    mapping = {"metadata": {"name": "runners.example.com"}, "spec": {"versions": [bad]}}
    b = binding(workload={"apiVersion": "example.com/v1", "kind": "Runner", "name": "r"})
    out = f.projection(CUSTOM, b, "creds", [mapping])
    assert out["error"] and not out["changed"] and out["patch"] == [] and out["workload"] == CUSTOM


def test_a_mapping_that_finds_no_container_is_an_error() -> None:
    mapping = {"metadata": {"name": "runners.example.com"}, "spec": {"versions": [
        {"version": "*", "containers": [{"path": ".spec.nothing[*]"}]}]}}
    b = binding(workload={"apiVersion": "example.com/v1", "kind": "Runner", "name": "r"})
    assert "no containers" in f.projection(CUSTOM, b, "creds", [mapping])["error"]


def test_a_path_through_a_scalar_is_an_error() -> None:
    w = deployment()
    w["spec"]["template"]["spec"]["volumes"] = "not a list"
    assert "not a list" in f.projection(w, binding(), "creds")["error"]


def test_paths_parse() -> None:
    assert jsonpath.parse_path(".spec.template.spec.volumes") == ["spec", "template", "spec", "volumes"]
    assert jsonpath.parse_path(".spec['template'].spec[\"volumes\"]") == ["spec", "template", "spec", "volumes"]
    assert jsonpath.parse_path("{.spec.containers[*]}", fixed=False) == ["spec", "containers", "*"]
    assert f.mapping_name("apps/v1", "Deployment") == "deployments.apps"
    assert f.mapping_name("example.com/v1", "Policy") == "policies.example.com"
    assert f.mapping_name("example.com/v1", "Class") == "classes.example.com"


# --- idempotence and unbinding ---------------------------------------------------------------


def test_a_second_projection_changes_nothing() -> None:
    b = binding(type="t", env=[{"name": "A", "key": "a"}])
    first = f.projection(deployment(), b, "creds")
    again = f.projection(applied(deployment(), first), b, "creds")
    assert again == {**again, "changed": False, "patch": [], "projected": True}


def test_unbinding_restores_the_workload_exactly() -> None:
    for w in (deployment(), deployment(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}],
                                                     "volumeMounts": [{"name": "data", "mountPath": "/d"}]}],
                                       volumes=[{"name": "data", "emptyDir": {}}])):
        b = binding(type="t", provider="p", env=[{"name": "A", "key": "a"}, {"name": "T", "key": "type"}])
        bound = applied(w, f.projection(w, b, "creds"))
        unbound = f.projection(bound, b, None)["workload"]
        assert unbound["spec"] == w["spec"]
        assert unbound["metadata"]["annotations"] if "annotations" in w["metadata"] else True
        assert "annotations" not in unbound["metadata"]


def test_unbinding_after_hand_edits_removes_only_what_it_added() -> None:
    b = binding(env=[{"name": "PASSWORD", "key": "password"}, {"name": "USER", "key": "username"}])
    bound = applied(deployment(), f.projection(deployment(), b, "creds"))
    c = container(bound)
    # By hand: a variable and a mount of one's own, one of ours taken over with a literal value,
    # a new container, and a volume of one's own in front of ours.
    c["env"].append({"name": "MINE", "value": "x"})
    c["env"][[e["name"] for e in c["env"]].index("USER")] = {"name": "USER", "value": "admin"}
    c["volumeMounts"].append({"name": "cache", "mountPath": "/cache"})
    pod(bound)["containers"].append({"name": "late", "image": "l"})
    pod(bound)["volumes"].insert(0, {"name": "cache", "emptyDir": {}})
    unbound = f.projection(bound, b, None)["workload"]
    assert container(unbound)["env"] == [{"name": "USER", "value": "admin"}, {"name": "MINE", "value": "x"}]
    assert container(unbound)["volumeMounts"] == [{"name": "cache", "mountPath": "/cache"}]
    assert pod(unbound)["volumes"] == [{"name": "cache", "emptyDir": {}}]
    assert pod(unbound)["containers"][1] == {"name": "late", "image": "l"}


def test_two_bindings_share_the_root_and_the_last_one_removes_it() -> None:
    a, b = binding(UID, "one"), binding(OTHER, "two", service={"apiVersion": "v1", "kind": "Secret", "name": "s2"})
    w = deployment()
    w1 = applied(w, f.projection(w, a, "creds"))
    w2 = applied(w1, f.projection(w1, b, "s2"))
    assert [e["name"] for e in container(w2)["env"]] == ["SERVICE_BINDING_ROOT"]
    # Each reconciling again changes nothing, in either order (no ping-pong between them).
    for x, secret in ((a, "creds"), (b, "s2"), (a, "creds")):
        assert not f.projection(w2, x, secret)["changed"]
    w3 = applied(w2, f.projection(w2, a, None))
    assert [e["name"] for e in container(w3)["env"]] == ["SERVICE_BINDING_ROOT"], "still used by the other"
    assert [v["name"] for v in pod(w3)["volumes"]] == [f"servicebinding-{OTHER}"]
    w4 = f.projection(w3, b, None)["workload"]
    assert w4["spec"] == w["spec"] and "annotations" not in w4["metadata"]


def test_label_selected_workload_is_unbound_when_its_labels_stop_matching() -> None:
    b = binding(workload={"apiVersion": "apps/v1", "kind": "Deployment", "selector": {"matchLabels": {"tier": "db"}}})
    w = deployment(labels={"tier": "db"})
    bound = applied(w, f.projection(w, b, "creds"))
    assert f.projection(bound, b, "creds")["changed"] is False
    bound["metadata"]["labels"] = {"tier": "other"}
    out = f.projection(bound, b, "creds")
    assert out["changed"] and not out["projected"] and out["workload"]["spec"] == w["spec"]


def test_secret_rotation_re_points_volume_and_env() -> None:
    b = binding(env=[{"name": "P", "key": "password"}])
    bound = applied(deployment(), f.projection(deployment(), b, "creds-v1"))
    rotated = f.projection(bound, b, "creds-v2")["workload"]
    assert pod(rotated)["volumes"][0]["projected"]["sources"] == [{"secret": {"name": "creds-v2"}}]
    assert container(rotated)["env"][1]["valueFrom"]["secretKeyRef"]["name"] == "creds-v2"
    assert len(container(rotated)["env"]) == 2


def test_patch_is_guarded_by_generation_and_the_values_it_replaces() -> None:
    w = deployment(containers=[{"name": "a", "env": [{"name": "X", "value": "1"}]}])
    w["metadata"]["generation"] = 7
    patch = f.projection(w, binding(), "creds")["patch"]
    tests = [op for op in patch if op["op"] == "test"]
    assert tests == [{"op": "test", "path": "/metadata/generation", "value": 7},
                     {"op": "test", "path": "/spec/template/spec/containers/0/env",
                      "value": [{"name": "X", "value": "1"}]}]
    assert all(op["op"] != "test" for op in patch[len(tests):])


def test_patch_applies_to_the_original() -> None:
    jsonpatch = pytest.importorskip("jsonpatch")
    w = deployment(containers=[{"name": "a"}, {"name": "b", "env": [{"name": "SERVICE_BINDING_ROOT", "value": "/x"}]}])
    b = binding(type="t", env=[{"name": "A", "key": "a"}])
    out = f.projection(w, b, "creds")
    assert jsonpatch.apply_patch(w, out["patch"]) == out["workload"]
    back = f.projection(applied(w, out), b, None)
    patched = jsonpatch.apply_patch(applied(w, out), back["patch"])
    assert patched["spec"] == w["spec"]


# --- the plan --------------------------------------------------------------------------------


def conditions(plan: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in plan["conditions"]}


def test_plan_direct_secret_ready() -> None:
    p = f.servicebinding_plan(binding(), {"namespace": NS, "secret_found": True, "workloads": [deployment()]})
    assert conditions(p) == {"Ready": ("True", "ServiceBound"), "ServiceAvailable": ("True", "ResolvedBindingSecret"),
                             "WorkloadProjected": ("True", "WorkloadProjected")}
    assert p["binding"] == {"name": "creds"} and [c["name"] for c in p["changes"]] == ["web"]
    assert [(e["type"], e["reason"]) for e in p["events"]] == [("Normal", "ServiceBound")]


def test_plan_provisioned_service() -> None:
    b = binding(service={"apiVersion": "example.com/v1", "kind": "Database", "name": "pg"})
    service = {"apiVersion": "example.com/v1", "kind": "Database", "metadata": {"name": "pg"},
               "status": {"binding": {"name": "pg-creds"}}}
    p = f.servicebinding_plan(b, {"namespace": NS, "service": service, "secret_found": True,
                                  "workloads": [deployment()]})
    assert p["binding"] == {"name": "pg-creds"}
    assert conditions(p)["Ready"] == ("True", "ServiceBound")
    unprovisioned = f.servicebinding_plan(b, {"namespace": NS, "service": {**service, "status": {}},
                                              "workloads": [deployment()]})
    assert conditions(unprovisioned)["ServiceAvailable"] == ("False", "ServiceNotProvisioned")
    assert unprovisioned["changes"] == []


@pytest.mark.parametrize(("facts", "reason"), [
    ({"service": None}, "ServiceNotFound"),
    ({"service_error": "no kind Database in example.com/v1"}, "ServiceUnavailable"),
    ({"service": {"metadata": {"name": "pg"}, "status": {"binding": {"name": "gone"}}}}, "SecretNotFound"),
])
def test_plan_missing_service_or_secret_changes_no_workload(facts: dict[str, Any], reason: str) -> None:
    b = binding(service={"apiVersion": "example.com/v1", "kind": "Database", "name": "pg"})
    bound = applied(deployment(), f.projection(deployment(), binding(), "creds"))
    p = f.servicebinding_plan(b, {"namespace": NS, "workloads": [bound], **facts})
    assert conditions(p)["Ready"] == ("False", reason) and conditions(p)["ServiceAvailable"] == ("False", reason)
    assert conditions(p)["WorkloadProjected"][0] == "Unknown"
    assert p["changes"] == [] and p["binding"] is None
    assert next((e["type"], e["reason"]) for e in p["events"]) == ("Warning", reason)


# A k8s_info read refused by RBAC, registered with failed_when: false (as kubernetes.core words it).
FORBIDDEN_READ = {"changed": False, "failed": False, "failed_when_result": False, "msg": (
    "Exception '403\nReason: Forbidden\nHTTP response headers: HTTPHeaderDict({'Audit-Id': 'ed8f69ea', "
    "'Content-Type': 'application/json', 'Content-Length': '463'})\nHTTP response body: "
    '{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":'
    '"clusterworkloadresourcemappings.servicebinding.io \\"deployments.apps\\" is forbidden: User '
    '\\"system:serviceaccount:default:nobody\\" cannot get resource \\"clusterworkloadresourcemappings\\" '
    'in API group \\"servicebinding.io\\" at the cluster scope","reason":"Forbidden","details":'
    '{"name":"deployments.apps","group":"servicebinding.io","kind":"clusterworkloadresourcemappings"},'
    '"code":403}\n\nOriginal traceback: \n  File \"/x/kubernetes/dynamic/client.py\", line 54, in inner\n'
    "' raised while trying to get resource using (name=deployments.apps, namespace=None)")}


def test_read_error_is_the_apiservers_message_in_a_line() -> None:
    said = f.servicebinding_read_error(FORBIDDEN_READ)
    assert said == ('403 Forbidden: clusterworkloadresourcemappings.servicebinding.io "deployments.apps" is '
                    'forbidden: User "system:serviceaccount:default:nobody" cannot get resource '
                    '"clusterworkloadresourcemappings" in API group "servicebinding.io" at the cluster scope')
    assert f.servicebinding_read_error({"msg": "Exception 'boom\nHTTP response headers: x' raised"}) == "boom"


@pytest.mark.parametrize("result", [
    {"changed": False, "failed": False, "resources": []},  # read, found nothing
    {"api_found": False, "msg": "Failed to find API for resource", "resources": []},  # no such kind: nothing there
    {"changed": False, "skipped": True, "skip_reason": "Conditional result was False"},
])
def test_reads_that_did_not_fail_have_no_error(result: dict[str, Any]) -> None:
    assert f.servicebinding_read_error(result) == ""


def test_plan_a_refused_read_of_the_service_or_workloads_is_said_and_changes_nothing() -> None:
    bound = applied(deployment(), f.projection(deployment(), binding(), "creds"))
    error = f.servicebinding_read_error(FORBIDDEN_READ)
    p = f.servicebinding_plan(binding(), {"namespace": NS, "secret_found": True, "workloads": [bound],
                                          "workloads_error": error})
    assert conditions(p)["Ready"] == ("False", "WorkloadUnavailable") and p["changes"] == []


def test_plan_an_unreadable_mapping_uses_the_built_in_one_and_says_so() -> None:
    error = f.servicebinding_read_error(FORBIDDEN_READ)
    p = f.servicebinding_plan(binding(), {"namespace": NS, "secret_found": True, "workloads": [deployment()],
                                          "mappings_error": error})
    assert conditions(p)["Ready"] == ("True", "ServiceBound")
    assert p["changes"] == f.servicebinding_plan(binding(), {"namespace": NS, "secret_found": True,
                                                             "workloads": [deployment()]})["changes"] != []
    projected = next(c for c in p["conditions"] if c["type"] == "WorkloadProjected")["message"]
    assert "could not be read (403 Forbidden" in projected and "built-in mapping was used" in projected


def test_plan_missing_workload() -> None:
    p = f.servicebinding_plan(binding(), {"namespace": NS, "secret_found": True, "workloads": [deployment("other")]})
    assert conditions(p)["Ready"] == ("False", "WorkloadNotFound")
    assert conditions(p)["ServiceAvailable"] == ("True", "ResolvedBindingSecret")


def test_plan_cross_namespace_is_refused() -> None:
    for field in ("service", "workload"):
        b = binding()
        b["spec"][field]["namespace"] = "elsewhere"
        p = f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": [deployment()]})
        assert {c["type"]: (c["status"], c["reason"]) for c in p["conditions"]}["Ready"] == (
            "False", "NamespaceNotAllowed")
        assert p["changes"] == []
    same = binding()
    same["spec"]["service"]["namespace"] = NS
    assert conditions(f.servicebinding_plan(same, {"namespace": NS, "secret_found": True,
                                                   "workloads": [deployment()]}))["Ready"][0] == "True"


def test_plan_malformed_mapping_gives_a_condition_and_leaves_the_workload() -> None:
    mapping = {"metadata": {"name": "runners.example.com"}, "spec": {"versions": [{"version": "*", "volumes": "x[0]"}]}}
    b = binding(workload={"apiVersion": "example.com/v1", "kind": "Runner", "name": "r"})
    p = f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": [CUSTOM], "mappings": [mapping]})
    assert conditions(p)["WorkloadProjected"] == ("False", "InvalidMapping")
    assert conditions(p)["Ready"] == ("False", "InvalidMapping") and p["changes"] == []


def test_plan_selector_binds_each_match_and_unbinds_the_rest() -> None:
    b = binding(workload={"apiVersion": "apps/v1", "kind": "Deployment",
                          "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]}})
    one, two = deployment("one", {"tier": "db"}), deployment("two", {"tier": "db"})
    stale = applied(deployment("old"), f.projection(deployment("old", {"tier": "db"}), b, "creds"))
    stale["metadata"]["labels"] = {"tier": "web"}
    p = f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": [two, stale, one]})
    assert [c["name"] for c in p["changes"]] == ["old", "one", "two"]
    assert "one, two" in p["conditions"][0]["message"]
    none = f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": []})
    assert conditions(none)["Ready"] == ("True", "ServiceBound")
    assert conditions(none)["WorkloadProjected"] == ("True", "NoMatchingWorkloads")


def test_plan_deleting_unbinds_every_recorded_workload_and_reports_nothing() -> None:
    bound = applied(deployment(), f.projection(deployment(), binding(), "creds"))
    p = f.servicebinding_plan(binding(), {"namespace": NS, "deleting": True, "workloads": [bound, deployment("x")]})
    assert [c["name"] for c in p["changes"]] == ["web"] and p["conditions"] == [] and p["events"] == []


def test_events_only_on_transitions() -> None:
    b = binding()
    p = f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": [deployment()]})
    b["status"] = {"conditions": p["conditions"]}
    assert f.servicebinding_plan(b, {"namespace": NS, "secret_found": True, "workloads": [deployment()]})[
        "events"] == []
    gone = f.servicebinding_plan(b, {"namespace": NS, "secret_found": False, "workloads": [deployment()]})
    assert {e["reason"] for e in gone["events"]} == {"SecretNotFound", "ServiceUnavailable"}


def test_the_plugin_loads_in_ansible() -> None:
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [{
        "name": "Project", "vars": {"w": deployment(), "b": binding()},
        "ansible.builtin.debug": {"msg": "{{ w | playbook_operator.bindings.servicebinding_projection(b, 'creds') }}"},
    }]}]
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_LOCALHOST_WARNING": "false", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    playbook = ROOT / ".pytest_cache" / "servicebinding-filter-play.json"
    playbook.parent.mkdir(exist_ok=True)
    playbook.write_text(json.dumps(play))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                           str(playbook)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert VOLUME in proc.stdout
