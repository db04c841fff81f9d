"""The whole pipe on a real cluster: watches.yaml -> kopf watcher -> ansible-runner ->
kubernetes.core -> apiserver, and the real garbage collector on deletion."""

from __future__ import annotations

from tests.support import Cluster, OperatorProcess, example_manifest, wait_for


def configmap_data(cluster: Cluster, namespace: str) -> dict[str, str] | None:
    cm = cluster.get("configmap", "hello-example", namespace)
    return None if cm is None else cm.get("data", {})


def test_configmap_follows_the_custom_resource(cluster: Cluster, namespace: str,
                                               operator: OperatorProcess) -> None:
    cluster.apply(example_manifest("hello", {"greeting": "hello", "audience": "world"}), namespace)

    data = wait_for(lambda: configmap_data(cluster, namespace), what="the ConfigMap to appear", timeout=90)
    assert data == {"greeting": "hello", "audience": "world"}

    example = cluster.get("example", "hello", namespace)
    assert example is not None
    cm = cluster.get("configmap", "hello-example", namespace)
    assert cm is not None
    owners = cm["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"], o["uid"], o.get("controller")) for o in owners] == \
        [("Example", "hello", example["metadata"]["uid"], True)]

    # The status says the run succeeded, for this generation.
    def successful() -> bool:
        ex = cluster.get("example", "hello", namespace) or {}
        st = ex.get("status", {})
        conds = {c["type"]: c for c in st.get("conditions", [])}
        return (st.get("observedGeneration") == ex["metadata"]["generation"]
                and conds.get("Successful", {}).get("status") == "True")

    wait_for(successful, what="status Successful for the first generation")

    # Change the spec, including removing a key: the ConfigMap follows exactly.
    cluster.kubectl("patch", "example", "hello", "-n", namespace, "--type=json", "-p",
                    '[{"op":"replace","path":"/spec/data","value":{"greeting":"bonjour"}}]')
    wait_for(lambda: configmap_data(cluster, namespace) == {"greeting": "bonjour"},
             what="the ConfigMap to follow the new spec")
    wait_for(successful, what="status Successful for the second generation")

    # Delete the custom resource: kube-controller-manager's garbage collector removes the ConfigMap.
    cluster.kubectl("delete", "example", "hello", "-n", namespace)
    wait_for(lambda: cluster.get("configmap", "hello-example", namespace) is None,
             what="the garbage collector to remove the ConfigMap", timeout=90)
    operator.assert_alive()
