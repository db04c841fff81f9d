"""operator_sdk.util on a real apiserver, through ansible-playbook as a role would call it:
k8s_status on an Example (status subresource, condition merging, idempotence, check mode,
force), k8s_event (create, then count up), and requeue_after (seconds, play goes on)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import ROOT, Cluster, conditions_of, example_manifest

OLD = "2020-01-01T00:00:00Z"


def play(cluster: Cluster, tmp_path: Path, tasks: list[dict[str, Any]], *args: str) -> dict[str, Any]:
    """Run `tasks` on localhost with ansible-playbook and return what each registered."""
    out = tmp_path / f"registered-{uuid.uuid4().hex[:8]}.json"
    names = [task["register"] for task in tasks if "register" in task]
    dump = {
        "name": "Save what the tasks registered",
        "check_mode": False,  # written in check mode runs too
        "ansible.builtin.copy": {
            "dest": str(out),
            "content": "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} | to_json }}",
        },
    }
    playbook = tmp_path / f"play-{uuid.uuid4().hex[:8]}.yml"
    plays = [{"hosts": "localhost", "gather_facts": False, "tasks": [*tasks, dump]}]
    playbook.write_text(yaml.safe_dump(plays))
    env = {
        **cluster.env,
        "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
    }
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i", "localhost,", "-c", "local",
        "-e", f"ansible_python_interpreter={sys.executable}",
        *args, str(playbook),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, f"ansible-playbook failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(out.read_text()))


def status_task(register: str, namespace: str, name: str, **params: Any) -> dict[str, Any]:
    return {
        "name": register,
        "register": register,
        "operator_sdk.util.k8s_status": {
            "api_version": "examples.playbook-operator.io/v1alpha1",
            "kind": "Example",
            "name": name,
            "namespace": namespace,
            **params,
        },
    }


def example(cluster: Cluster, name: str, namespace: str) -> dict[str, Any]:
    obj = cluster.get("example", name, namespace)
    assert obj is not None
    return obj


@pytest.mark.slow
def test_k8s_status_writes_merges_and_is_idempotent(
    cluster: Cluster, crds: None, namespace: str, tmp_path: Path
) -> None:
    cluster.apply(example_manifest("st", {"greeting": "hello"}), namespace)
    first_conditions = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "AllGood",
            "message": "first",
            "lastTransitionTime": OLD,
        }
    ]
    first_status = {"phase": "Ready", "replicas": 2, "nodes": ["a", "b"]}

    got = play(
        cluster,
        tmp_path,
        [
            status_task("first", namespace, "st", status=first_status, conditions=first_conditions),
            status_task("again", namespace, "st", status=first_status, conditions=first_conditions),
        ],
    )
    assert got["first"]["changed"] is True
    assert got["again"]["changed"] is False
    obj = example(cluster, "st", namespace)
    assert {k: obj["status"][k] for k in ("phase", "replicas", "nodes")} == first_status
    assert conditions_of(obj)["Ready"] == {**first_conditions[0]}
    # The second run wrote nothing: the object is at the version the first write produced.
    written_version = got["first"]["result"]["metadata"]["resourceVersion"]
    assert got["again"]["result"]["metadata"]["resourceVersion"] == written_version
    assert obj["metadata"]["resourceVersion"] == written_version
    # Only the status subresource was written: the spec is untouched and generation did not move.
    assert obj["spec"] == {"data": {"greeting": "hello"}} and obj["metadata"]["generation"] == 1

    # Merge: a new condition is added, Ready keeps its transition time while its status
    # stays True; keys not given stay; a list whose items are all present is left alone.
    got = play(
        cluster,
        tmp_path,
        [
            status_task(
                "merge",
                namespace,
                "st",
                status={"phase": "Scaling", "nodes": ["b"]},
                conditions=[
                    {"type": "Ready", "status": "True", "reason": "AllGood", "message": "second"},
                    {"type": "Degraded", "status": "False", "reason": "Fine"},
                ],
            )
        ],
    )
    assert got["merge"]["changed"] is True
    obj = example(cluster, "st", namespace)
    assert obj["status"]["phase"] == "Scaling" and obj["status"]["replicas"] == 2
    assert obj["status"]["nodes"] == ["a", "b"]
    conds = conditions_of(obj)
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Ready", "Degraded"]
    assert conds["Ready"]["message"] == "second" and conds["Ready"]["lastTransitionTime"] == OLD
    assert conds["Degraded"]["status"] == "False" and conds["Degraded"]["lastTransitionTime"] != OLD

    # A status flip moves the transition time.
    play(
        cluster,
        tmp_path,
        [status_task("flip", namespace, "st", conditions=[{"type": "Ready", "status": "False"}])],
    )
    flipped = conditions_of(example(cluster, "st", namespace))["Ready"]
    assert flipped["status"] == "False" and flipped["lastTransitionTime"] != OLD
    assert "reason" not in flipped  # a given condition replaces the old one as a whole

    # Check mode: reports the change and the diff, writes nothing.
    before = example(cluster, "st", namespace)
    got = play(
        cluster,
        tmp_path,
        [status_task("dry", namespace, "st", status={"phase": "Gone"})],
        "--check",
        "--diff",
    )
    assert got["dry"]["changed"] is True
    assert got["dry"]["result"]["status"]["phase"] == "Gone"
    assert got["dry"]["diff"]["before"]["status"]["phase"] == "Scaling"
    assert got["dry"]["diff"]["after"]["status"]["phase"] == "Gone"
    after = example(cluster, "st", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert after["status"] == before["status"]

    # force: the given status is the whole status.
    forced = status_task("force", namespace, "st", status={"only": "this"}, force=True)
    got = play(cluster, tmp_path, [forced])
    assert got["force"]["changed"] is True
    assert example(cluster, "st", namespace)["status"] == {"only": "this"}


def test_k8s_status_fails_clearly(cluster: Cluster, crds: None, namespace: str, tmp_path: Path) -> None:
    cluster.kubectl("create", "configmap", "plain", "-n", namespace)
    not_camel = [{"type": "Ready", "status": "True", "reason": "not camel"}]
    tasks = [
        {
            "name": "no status subresource",
            "register": "configmap",
            "ignore_errors": True,
            "operator_sdk.util.k8s_status": {
                "kind": "ConfigMap",
                "name": "plain",
                "namespace": namespace,
                "status": {"a": "b"},
            },
        },
        {**status_task("missing", namespace, "nope", status={"a": "b"}), "ignore_errors": True},
        {**status_task("invalid", namespace, "nope", conditions=not_camel), "ignore_errors": True},
    ]
    got = play(cluster, tmp_path, tasks)
    assert got["configmap"]["failed"] is True
    assert "v1.ConfigMap does not support the status subresource" in got["configmap"]["msg"]
    assert got["missing"]["failed"] is True and got["missing"]["error"]["status"] == 404
    assert got["invalid"]["failed"] is True and "CamelCase" in got["invalid"]["msg"]


def test_k8s_event_creates_then_counts(cluster: Cluster, crds: None, namespace: str, tmp_path: Path) -> None:
    cluster.apply(example_manifest("ev", {"greeting": "hello"}), namespace)
    uid = example(cluster, "ev", namespace)["metadata"]["uid"]
    event = {
        "name": "ev-reconciled",
        "namespace": namespace,
        "reason": "Reconciled",
        "message": "The example was reconciled",
        "type": "Normal",
        "reportingComponent": "playbook-operator",
        "source": {"component": "playbook-operator"},
        "involvedObject": {
            "apiVersion": "examples.playbook-operator.io/v1alpha1",
            "kind": "Example",
            "name": "ev",
        },
    }
    tasks = [
        {"name": "first", "register": "first", "operator_sdk.util.k8s_event": event},
        {"name": "second", "register": "second", "operator_sdk.util.k8s_event": event},
    ]
    got = play(cluster, tmp_path, tasks)
    assert got["first"]["changed"] is True and got["first"]["result"]["count"] == 1
    assert got["second"]["result"]["count"] == 2

    stored = cluster.get("event", "ev-reconciled", namespace)
    assert stored is not None
    assert stored["count"] == 2
    assert stored["reason"] == "Reconciled" and stored["type"] == "Normal"
    assert stored["firstTimestamp"] == got["first"]["result"]["firstTimestamp"]
    involved = stored["involvedObject"]
    assert (involved["kind"], involved["name"], involved["namespace"], involved["uid"]) == (
        "Example",
        "ev",
        namespace,
        uid,
    )
    # `kubectl describe` finds it by the object's uid.
    found = cluster.list("event", namespace)
    about = [e["metadata"]["name"] for e in found if e["involvedObject"].get("uid") == uid]
    assert about == ["ev-reconciled"]

    # Check mode: would count up, writes nothing. appendTimestamp: a new Event per run.
    got = play(
        cluster,
        tmp_path,
        [
            {"name": "dry", "register": "dry", "check_mode": True, "operator_sdk.util.k8s_event": event},
            {
                "name": "fresh",
                "register": "fresh",
                "operator_sdk.util.k8s_event": {**event, "appendTimestamp": True},
            },
        ],
    )
    assert got["dry"]["changed"] is True and got["dry"]["result"]["count"] == 3
    assert (cluster.get("event", "ev-reconciled", namespace) or {})["count"] == 2
    fresh_name = got["fresh"]["result"]["metadata"]["name"]
    assert fresh_name.startswith("ev-reconciled.") and got["fresh"]["result"]["count"] == 1
    assert cluster.get("event", fresh_name, namespace) is not None


def test_requeue_after_returns_seconds_and_the_play_goes_on(cluster: Cluster, tmp_path: Path) -> None:
    tasks = [
        {"name": "requeue", "register": "requeue", "operator_sdk.util.requeue_after": {"time": "1h30m"}},
        {"name": "after", "register": "after", "ansible.builtin.set_fact": {"went_on": True}},
        {
            "name": "bad",
            "register": "bad",
            "ignore_errors": True,
            "operator_sdk.util.requeue_after": {"time": "5 minutes"},
        },
    ]
    got = play(cluster, tmp_path, tasks)
    assert got["requeue"]["changed"] is False
    assert got["requeue"]["requeue_after"] == 5400.0
    assert got["requeue"]["time"] == "1h30m"
    assert got["after"]["ansible_facts"] == {"went_on": True}
    assert got["bad"]["failed"] is True and "invalid duration '5 minutes'" in got["bad"]["msg"]
