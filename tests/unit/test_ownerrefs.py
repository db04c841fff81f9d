"""Owner references added on create, as the Operator SDK's proxy adds them."""

from __future__ import annotations

import json

from runner import ownerrefs

OWNER = {"apiVersion": "examples.playbook-operator.io/v1alpha1", "kind": "Example", "name": "hello",
         "namespace": "team-a", "uid": "1234"}


def test_same_namespace_gets_a_controller_reference() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "team-a"}}
    out = ownerrefs.inject(body, "/api/v1/namespaces/team-a/configmaps", OWNER)
    assert out["metadata"]["ownerReferences"] == [{
        "apiVersion": OWNER["apiVersion"], "kind": "Example", "name": "hello", "uid": "1234",
        "controller": True, "blockOwnerDeletion": True,
    }]
    assert "ownerReferences" not in body["metadata"], "the caller's body must not change"


def test_namespace_from_the_path_when_the_body_has_none() -> None:
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}
    out = ownerrefs.inject(body, "/api/v1/namespaces/team-a/configmaps", OWNER)
    assert out["metadata"]["ownerReferences"][0]["uid"] == "1234"


def test_existing_controller_is_kept_and_ours_is_not_a_controller() -> None:
    other = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "9", "controller": True}
    body = {"metadata": {"name": "x", "namespace": "team-a", "ownerReferences": [other]}}
    refs = ownerrefs.inject(body, "/api/v1/namespaces/team-a/pods", OWNER)["metadata"]["ownerReferences"]
    assert refs[0] == other
    assert refs[1]["uid"] == "1234" and refs[1]["controller"] is False


def test_a_body_that_names_the_owner_is_left_alone() -> None:
    body = {"metadata": {"name": "x", "namespace": "team-a",
                         "ownerReferences": [{"uid": "1234", "kind": "Example", "name": "hello"}]}}
    assert ownerrefs.inject(body, "/api/v1/namespaces/team-a/pods", OWNER) is body


def test_other_namespace_and_cluster_scope_get_the_sdk_annotations() -> None:
    for body, path in (
        ({"metadata": {"name": "x", "namespace": "team-b"}}, "/api/v1/namespaces/team-b/configmaps"),
        ({"metadata": {"name": "x"}}, "/apis/rbac.authorization.k8s.io/v1/clusterroles"),
    ):
        meta = ownerrefs.inject(body, path, OWNER)["metadata"]
        assert "ownerReferences" not in meta
        assert meta["annotations"] == {
            "operator-sdk/primary-resource": "team-a/hello",
            "operator-sdk/primary-resource-type": "Example.examples.playbook-operator.io",
        }


def test_owner_from_env_needs_every_field() -> None:
    assert ownerrefs.owner_from_env({ownerrefs.OWNER_ENV: json.dumps(OWNER)}) == OWNER
    assert ownerrefs.owner_from_env({ownerrefs.OWNER_ENV: json.dumps({**OWNER, "uid": ""})}) is None
    assert ownerrefs.owner_from_env({ownerrefs.OWNER_ENV: "not json"}) is None
    assert ownerrefs.owner_from_env({}) is None
