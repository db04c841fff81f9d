"""The PodSet CRD against a real apiserver: defaults, the CEL rules and their messages, the
scale and status subresources and the printer columns. No operator runs here; everything is
the apiserver's own doing."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Cluster

SAMPLE_PATH = ROOT / "deploy" / "samples" / "podset.yaml"
SAMPLE: dict[str, Any] = yaml.safe_load(SAMPLE_PATH.read_text())
API = "/apis/workloads.playbook-operator.io/v1alpha1"

Mutation = Callable[[dict[str, Any]], None]


def podset(mutate: Mutation | None = None, name: str = "web") -> dict[str, Any]:
    obj = copy.deepcopy(SAMPLE)
    obj["metadata"]["name"] = name
    if mutate is not None:
        mutate(obj["spec"])
    return obj


def apply(cluster: Cluster, obj: dict[str, Any], namespace: str,
          check: bool = False) -> subprocess.CompletedProcess[str]:
    return cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=check)


def setter(path: str, value: Any) -> Mutation:
    """A mutation that sets spec.<path> (dotted) to `value`, creating maps on the way."""
    def mutate(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return mutate


def expressions(*exprs: dict[str, Any]) -> Mutation:
    return setter("selector", {"matchExpressions": list(exprs)})


def test_sample_is_accepted_and_defaulted(cluster: Cluster, crds: None, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(SAMPLE_PATH))
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    spec = obj["spec"]
    assert spec["replicas"] == 3
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["revisionHistoryLimit"] == 10
    assert spec["minReadySeconds"] == 0
    assert spec["paused"] is False
    assert spec["rollback"] == {"enabled": True}
    assert spec["template"]["spec"]["containers"] == [{"name": "web", "image": "registry.example/web:1.0"}]


def test_replicas_and_partial_strategy_defaults(cluster: Cluster, crds: None, namespace: str) -> None:
    def mutate(spec: dict[str, Any]) -> None:
        del spec["replicas"]
        spec["strategy"] = {"rollingUpdate": {"maxSurge": 1}}

    apply(cluster, podset(mutate), namespace, check=True)
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    assert obj["spec"]["replicas"] == 1
    # A given strategy is completed field by field, not replaced by the whole default.
    assert obj["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxSurge": 1, "maxUnavailable": "25%"}}


def test_server_side_dry_run_of_the_sample(cluster: Cluster, crds: None, namespace: str) -> None:
    proc = cluster.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(SAMPLE_PATH))
    assert "podset.workloads.playbook-operator.io/web created (server dry run)" in proc.stdout
    assert cluster.get("podset", "web", namespace) is None


REJECTED: dict[str, tuple[Mutation, str]] = {
    "negative-replicas": (setter("replicas", -1),
                          "spec.replicas in body should be greater than or equal to 0"),
    "selector-not-matching-labels": (setter("selector", {"matchLabels": {"app": "api"}}),
                                     "spec.selector: Invalid value: spec.selector does not match "
                                     "spec.template.metadata.labels"),
    "selector-key-missing-from-labels": (setter("selector", {"matchLabels": {"app": "web", "tier": "db"}}),
                                         "spec.selector does not match spec.template.metadata.labels"),
    "expression-in-not-matching": (expressions({"key": "app", "operator": "In", "values": ["api", "db"]}),
                                   "spec.selector does not match spec.template.metadata.labels"),
    "expression-notin-matching": (expressions({"key": "app", "operator": "NotIn", "values": ["web"]}),
                                  "spec.selector does not match spec.template.metadata.labels"),
    "expression-exists-absent": (expressions({"key": "tier", "operator": "Exists"}),
                                 "spec.selector does not match spec.template.metadata.labels"),
    "expression-doesnotexist-present": (expressions({"key": "app", "operator": "DoesNotExist"}),
                                        "spec.selector does not match spec.template.metadata.labels"),
    "expression-exists-with-values": (expressions({"key": "app", "operator": "Exists", "values": ["web"]}),
                                      "values must be non-empty for In and NotIn, and empty for Exists"),
    "expression-in-without-values": (expressions({"key": "app", "operator": "In", "values": []}),
                                     "values must be non-empty for In and NotIn, and empty for Exists"),
    "empty-containers": (setter("template.spec.containers", []),
                         "spec.template.spec: Required value: spec.template.spec.containers must list at least "
                         "one container"),
    "no-containers-field": (setter("template.spec", {"restartPolicy": "Always"}),
                            "spec.template.spec.containers must list at least one container"),
    "empty-selector": (setter("selector", {}), "spec.selector must not be empty"),
    "empty-match-labels": (setter("selector", {"matchLabels": {}}), "spec.selector must not be empty"),
    "max-surge-150-percent": (setter("strategy", {"rollingUpdate": {"maxSurge": "150%"}}),
                              'spec.strategy.rollingUpdate.maxSurge: Invalid value: "150%": '
                              "must not be more than 100%"),
    "max-unavailable-minus-one-string": (setter("strategy", {"rollingUpdate": {"maxUnavailable": "-1"}}),
                                         'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "-1": '
                                         "must be a non-negative integer or a percentage such as '25%'"),
    "max-unavailable-minus-one-int": (setter("strategy", {"rollingUpdate": {"maxUnavailable": -1}}),
                                      "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: -1: "
                                      "must be a non-negative integer or a percentage such as '25%'"),
    "max-surge-not-a-percentage": (setter("strategy", {"rollingUpdate": {"maxSurge": "ten"}}),
                                   "must be a non-negative integer or a percentage such as '25%'"),
    "both-zero": (setter("strategy", {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}),
                  "spec.strategy.rollingUpdate.maxSurge and maxUnavailable must not both be zero"),
    "rolling-update-with-recreate": (setter("strategy", {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
                                     "spec.strategy.rollingUpdate: Forbidden: spec.strategy.rollingUpdate is "
                                     "forbidden when spec.strategy.type is Recreate"),
    "unknown-strategy-type": (setter("strategy", {"type": "BlueGreen"}), 'Unsupported value: "BlueGreen"'),
    "zero-progress-deadline": (setter("progressDeadlineSeconds", 0),
                               "spec.progressDeadlineSeconds in body should be greater than or equal to 1"),
    "negative-history-limit": (setter("revisionHistoryLimit", -1),
                               "spec.revisionHistoryLimit in body should be greater than or equal to 0"),
    "negative-min-ready-seconds": (setter("minReadySeconds", -5),
                                   "spec.minReadySeconds in body should be greater than or equal to 0"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_invalid_podset_is_rejected(cluster: Cluster, crds: None, namespace: str, case: str) -> None:
    mutate, message = REJECTED[case]
    proc = apply(cluster, podset(mutate), namespace)
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr
    assert cluster.get("podset", "web", namespace) is None


# Near misses of the rules above: each must still be accepted.
ACCEPTED: dict[str, Mutation] = {
    "zero-replicas": setter("replicas", 0),
    "selector-subset-of-labels": setter("template.metadata.labels", {"app": "web", "tier": "front"}),
    "all-expression-operators": expressions(
        {"key": "app", "operator": "In", "values": ["api", "web"]},
        {"key": "app", "operator": "NotIn", "values": ["db"]},
        {"key": "app", "operator": "Exists"},
        {"key": "tier", "operator": "DoesNotExist"},
    ),
    "max-surge-100-percent": setter("strategy", {"rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}}),
    "max-unavailable-zero-int": setter("strategy", {"rollingUpdate": {"maxUnavailable": 0}}),
    "integers": setter("strategy", {"rollingUpdate": {"maxSurge": 3, "maxUnavailable": 1}}),
    "recreate": setter("strategy", {"type": "Recreate"}),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_valid_variant_is_accepted(cluster: Cluster, crds: None, namespace: str, case: str) -> None:
    proc = apply(cluster, podset(ACCEPTED[case]), namespace)
    assert proc.returncode == 0, proc.stderr
    assert cluster.get("podset", "web", namespace) is not None


def test_a_name_too_long_for_a_label_value_is_rejected(cluster: Cluster, crds: None, namespace: str) -> None:
    proc = apply(cluster, podset(name="w" * 64), namespace)
    assert proc.returncode != 0, proc.stdout
    assert "metadata.name must be no more than 63 characters" in proc.stderr
    assert apply(cluster, podset(name="w" * 63), namespace).returncode == 0


def test_selector_is_immutable(cluster: Cluster, crds: None, namespace: str) -> None:
    apply(cluster, podset(), namespace, check=True)

    def relabel(spec: dict[str, Any]) -> None:
        spec["selector"] = {"matchLabels": {"app": "web", "track": "canary"}}
        spec["template"]["metadata"]["labels"] = {"app": "web", "track": "canary"}

    proc = apply(cluster, podset(relabel), namespace)
    assert proc.returncode != 0
    assert "spec.selector: Invalid value: spec.selector is immutable" in proc.stderr
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "web"}}

    # Everything else may still change, including the template's other labels.
    apply(cluster, podset(setter("template.metadata.labels", {"app": "web", "rev": "2"})), namespace, check=True)
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    assert obj["spec"]["template"]["metadata"]["labels"] == {"app": "web", "rev": "2"}


def test_scale_subresource_status_and_printer_columns(cluster: Cluster, crds: None, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", str(SAMPLE_PATH))
    cluster.kubectl("scale", "-n", namespace, "ps/web", "--replicas=5")
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    assert obj["spec"]["replicas"] == 5
    assert obj["metadata"]["generation"] == 2

    # What the operator will write: its generic conditions (with ansibleResult) and the counts.
    status = {
        "replicas": 4, "readyReplicas": 2, "availableReplicas": 2, "fullyLabeledReplicas": 4,
        "observedGeneration": 2, "selector": "app=web", "updatedReplicas": 1,
        # What the rollout records.
        "currentRevision": "web-83ff9b7ede", "updateRevision": "web-8a2e41910b",
        "failedRevision": "web-372a85b0a6", "collisionCount": 1,
        "conditions": [{
            "type": "Failure", "status": "True", "reason": "Failed", "message": "task failed",
            "lastTransitionTime": "2024-01-01T00:00:00Z",
            "ansibleResult": {"ok": 3, "changed": 1, "skipped": 0, "failures": 1,
                              "completion": "2024-01-01T00:00:00.000001"},
        }],
        "notInTheSchema": True,
    }
    cluster.kubectl("patch", "-n", namespace, "ps", "web", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": status}))
    obj = cluster.get("podset", "web", namespace)
    assert obj is not None
    expected = {k: v for k, v in status.items() if k != "notInTheSchema"}
    assert obj["status"] == expected  # unknown status fields are pruned, ansibleResult is kept
    assert obj["metadata"]["generation"] == 2  # status writes do not bump the generation

    scale = json.loads(cluster.kubectl(
        "get", "--raw", f"{API}/namespaces/{namespace}/podsets/web/scale").stdout)
    assert scale["spec"] == {"replicas": 5}
    assert scale["status"] == {"replicas": 4, "selector": "app=web"}

    table = cluster.kubectl("get", "ps", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:6] == ["web", "5", "4", "2", "1", "2"]

    # categories: [all]
    assert "podset.workloads.playbook-operator.io/web" in cluster.kubectl("get", "all", "-n", namespace).stdout

