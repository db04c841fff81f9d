"""The ServiceBinding and ClusterWorkloadResourceMapping CRDs against a real apiserver: the spec's
schema, the CEL rules and their messages, v1beta1 served, the short name and printer columns. No
operator runs here; everything is the apiserver's own doing."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Cluster

SAMPLE: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "samples" / "servicebinding.yaml").read_text())


def apply(cluster: Cluster, obj: dict[str, Any], namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    args = ["apply", "-f", "-"] + (["-n", namespace] if namespace else [])
    return cluster.kubectl(*args, input=json.dumps(obj), check=False)


def test_sample_is_accepted_and_listed_with_its_columns(cluster: Cluster, crds: None, namespace: str) -> None:
    assert apply(cluster, SAMPLE, namespace).returncode == 0
    table = cluster.kubectl("get", "sb", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "REASON", "AGE"]
    assert table[1].split()[0] == "web-db"


def test_v1beta1_is_served_with_the_same_schema(cluster: Cluster, crds: None, namespace: str) -> None:
    obj = copy.deepcopy(SAMPLE)
    obj["apiVersion"] = "servicebinding.io/v1beta1"
    obj["metadata"]["name"] = "beta"
    assert apply(cluster, obj, namespace).returncode == 0
    stored = json.loads(cluster.kubectl("get", "servicebindings.v1.servicebinding.io", "beta", "-n", namespace,
                                        "-o", "json").stdout)
    assert stored["apiVersion"] == "servicebinding.io/v1" and stored["spec"] == SAMPLE["spec"]


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda s: s["workload"].update(selector={"matchLabels": {"a": "b"}}), "either a name or a selector, not both"),
    (lambda s: s["workload"].pop("name"), "either a name or a selector, not both"),
    (lambda s: s["service"].update(apiVersion="v2"), "a direct Secret reference needs apiVersion v1"),
    (lambda s: s.update(name="Not_Valid"), "spec.name"),
    (lambda s: s.pop("service"), "spec.service: Required value"),
    (lambda s: s["env"].append({"name": "X"}), "spec.env[1].key: Required value"),
    (lambda s: s["workload"].update(name=None, selector={"matchExpressions": [{"key": "a", "operator": "Near"}]}),
     "Unsupported value: \"Near\""),
])
def test_invalid_bindings_are_refused(cluster: Cluster, crds: None, namespace: str, mutate: Any,
                                      message: str) -> None:
    obj = copy.deepcopy(SAMPLE)
    obj["metadata"]["name"] = f"bad-{uuid.uuid4().hex[:6]}"
    mutate(obj["spec"])
    if obj["spec"].get("workload", {}).get("name", "") is None:
        del obj["spec"]["workload"]["name"]
    proc = apply(cluster, obj, namespace)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_mapping_schema(cluster: Cluster, crds: None) -> None:
    name = f"things{uuid.uuid4().hex[:6]}.example.com"
    good = {"apiVersion": "servicebinding.io/v1", "kind": "ClusterWorkloadResourceMapping", "metadata": {"name": name},
            "spec": {"versions": [{"version": "*", "volumes": ".spec.volumes",
                                   "containers": [{"path": ".spec.containers[*]", "name": ".name"}]}]}}
    try:
        assert apply(cluster, good).returncode == 0
        assert cluster.kubectl("get", "cwrm", name).returncode == 0
        twice = copy.deepcopy(good)
        twice["spec"]["versions"].append({"version": "*"})
        proc = apply(cluster, twice)
        assert proc.returncode != 0 and "each version may be mapped only once" in proc.stderr
        pathless = copy.deepcopy(good)
        pathless["spec"]["versions"][0]["containers"] = [{"name": ".name"}]
        proc = apply(cluster, pathless)
        assert proc.returncode != 0 and "path: Required value" in proc.stderr
    finally:
        cluster.kubectl("delete", "cwrm", name, check=False)
