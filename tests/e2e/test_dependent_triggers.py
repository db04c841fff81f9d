"""Which dependent changes reconcile an owner, on a real cluster: a Deployment the role only
writes reconciles its Example when it drifts or goes, not for its own creation nor for the
status the Deployment controller keeps writing; an object the role lists reconciles it on any
change, status included."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.podsets import podset
from tests.support import Cluster, OperatorProcess, StartOperator, example_manifest, wait_for

WRITER_ROLE = """---
- name: Run one nginx replica for the Example
  kubernetes.core.k8s:
    definition:
      apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: "{{ ansible_operator_meta.name }}-web"
        namespace: "{{ ansible_operator_meta.namespace }}"
      spec:
        replicas: 1
        selector: {matchLabels: {app: "{{ ansible_operator_meta.name }}"}}
        template:
          metadata: {labels: {app: "{{ ansible_operator_meta.name }}"}}
          spec:
            containers: [{name: web, image: nginx}]
"""

READER_ROLE = """---
- name: List the PodSets the Example selects
  kubernetes.core.k8s_info:
    api_version: workloads.playbook-operator.io/v1alpha1
    kind: PodSet
    namespace: "{{ ansible_operator_meta.namespace }}"
    label_selectors: ["tier={{ data.tier }}"]
  register: found
- name: Mirror how many of their replicas are ready
  kubernetes.core.k8s:
    definition:
      apiVersion: v1
      kind: ConfigMap
      metadata:
        name: "{{ ansible_operator_meta.name }}-seen"
        namespace: "{{ ansible_operator_meta.namespace }}"
      data:
        ready: "{{ found.resources | map(attribute='status', default={}) | map(attribute='readyReplicas', default=0)
                   | sum | string }}"
"""


def operator_with(role_text: str, tmp_path: Path, start_operator: StartOperator) -> OperatorProcess:
    role = tmp_path / "roles" / "r"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(role_text)
    watches = tmp_path / "watches.yaml"
    watches.write_text(json.dumps([{"version": "v1alpha1", "group": "examples.playbook-operator.io",
                                    "kind": "Example", "role": str(role)}]))
    return start_operator(watches=watches)


def runs(op: OperatorProcess, namespace: str, name: str) -> int:
    """The runs of an Example logged so far."""
    return op.log().count(f"reconciled Example {namespace}/{name} ")


def available(cluster: Cluster, namespace: str, name: str) -> bool:
    status = (cluster.get("deployment", name, namespace) or {}).get("status") or {}
    return bool(status.get("availableReplicas"))


def test_a_written_dependent_reconciles_on_drift_and_deletion_only(
        cluster: Cluster, crds: None, namespace: str, start_operator: StartOperator, tmp_path: Path) -> None:
    op = operator_with(WRITER_ROLE, tmp_path, start_operator)
    cluster.apply(example_manifest("w", {"k": "v"}), namespace)
    wait_for(lambda: runs(op, namespace, "w") == 1, what="the first run", timeout=90)
    # The Deployment's creation, the first list of its kind, and the status the controller and kwok
    # write over several seconds until it is available: none of them is a reason to run again.
    wait_for(lambda: available(cluster, namespace, "w-web"), what="the Deployment available", timeout=90)
    assert runs(op, namespace, "w") == 1, "a run for the Deployment's creation or its status"
    # Drift: someone scales it; the owner runs and puts it back.
    cluster.kubectl("scale", "deployment", "w-web", "-n", namespace, "--replicas=3")
    wait_for(lambda: (cluster.get("deployment", "w-web", namespace) or {}).get("spec", {}).get("replicas") == 1,
             what="the drift undone", timeout=60)
    # Deletion: the owner runs and makes it again.
    cluster.kubectl("delete", "deployment", "w-web", "-n", namespace)
    wait_for(lambda: (cluster.get("deployment", "w-web", namespace) or {}).get("metadata", {}).get("generation") == 1,
             what="the Deployment made again", timeout=60)
    op.assert_alive()


def test_a_listed_dependent_reconciles_on_any_change_status_included(
        cluster: Cluster, crds: None, namespace: str, start_operator: StartOperator, tmp_path: Path) -> None:
    # A PodSet nothing else reconciles here: only this test writes its status.
    cluster.apply(podset("app", 2), namespace)
    cluster.kubectl("label", "podset", "app", "-n", namespace, "tier=web")
    op = operator_with(READER_ROLE, tmp_path, start_operator)
    cluster.apply(example_manifest("r", {"tier": "web"}), namespace)

    def seen() -> str | None:
        return ((cluster.get("configmap", "r-seen", namespace) or {}).get("data") or {}).get("ready")

    wait_for(lambda: seen() == "0", what="the first run's ConfigMap", timeout=90)
    # Only its status changes, twice: each time the role that lists it runs again and mirrors it
    # (the second long after any follow-up of the first run).
    for ready in ("1", "2"):
        cluster.kubectl("patch", "podset", "app", "-n", namespace, "--subresource=status", "--type=merge",
                        "-p", f'{{"status":{{"replicas":2,"readyReplicas":{ready}}}}}')
        wait_for(lambda: seen() == ready, what=f"the lister to see {ready} ready", timeout=60)  # noqa: B023
    op.assert_alive()
