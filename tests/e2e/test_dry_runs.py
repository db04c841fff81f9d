"""Every dry run the README shows, run verbatim from the repository root, on the samples as a
newcomer has them: before they are applied (the dry run shows what applying would do) and after
(it shows what the next reconcile would do). Either way nothing in the cluster changes.

The samples name no namespace, so these tests work in `default`, as the README's commands do."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ROOT, Cluster

BIN = Path(sys.executable).parent
SAMPLES = ROOT / "deploy" / "samples"
STAND_IN_UID = "00000000-0000-0000-0000-000000000000"
# What the samples and their dry runs could create or change in `default`.
WATCHED = ("pods,podsets,controllerrevisions,configmaps,secrets,deployments,servicebindings,examples,events,"
           "serviceinstances,servicecredentials")


def readme_dry_runs() -> list[str]:
    """The dry-run command lines of the README's shell blocks, without their trailing comments
    (usage synopses, with their [--check], are not commands)."""
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return sorted({line for line in lines if "--check" in line and "[--check]" not in line})


DRY_RUNS = readme_dry_runs()
PODSET_PLAYBOOK = "ansible-playbook playbooks/podset.yml -e podset_file=deploy/samples/podset.yaml --check --diff"
PODSET_CLI = "playbook-operator reconcile -f deploy/samples/podset.yaml --check --diff"
BINDING_CLI = "playbook-operator reconcile -f deploy/samples/servicebinding.yaml --check --diff"
EXAMPLE_CLI = "playbook-operator reconcile -f deploy/samples/example.yaml --check --diff"
INSTANCE_CLI = "playbook-operator reconcile -f deploy/samples/servicecatalog-instance.yaml --check --diff"


def test_the_readme_shows_the_dry_runs_tested_here() -> None:
    # A dry run added to the README without a test here fails this, not silently nothing.
    assert sorted([PODSET_PLAYBOOK, PODSET_CLI, BINDING_CLI, EXAMPLE_CLI, INSTANCE_CLI]) == DRY_RUNS


def run(cluster: Cluster, command: str) -> subprocess.CompletedProcess[str]:
    """A README command line as a user types it at the repository root."""
    env = {**cluster.env, "PATH": f"{BIN}:{cluster.env['PATH']}"}
    return subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def snapshot(cluster: Cluster) -> dict[str, str]:
    """Every object of the kinds a dry run could touch in `default`, by resourceVersion."""
    items = json.loads(cluster.kubectl("get", WATCHED, "-n", "default", "-o", "json").stdout)["items"]
    return {f'{i["kind"]}/{i["metadata"]["name"]}': i["metadata"]["resourceVersion"] for i in items}


def delete_samples(cluster: Cluster) -> None:
    # Foreground: the Deployment's pods are gone too, not being deleted under the next snapshot.
    cluster.kubectl("delete", "-n", "default", "--ignore-not-found", "--wait=true", "--cascade=foreground",
                    "-f", str(SAMPLES / "podset.yaml"), "-f", str(SAMPLES / "servicebinding.yaml"),
                    "-f", str(SAMPLES / "servicebinding-service.yaml"), "-f", str(SAMPLES / "example.yaml"),
                    "-f", str(SAMPLES / "servicecatalog-instance.yaml"))
    cluster.kubectl("delete", "configmap", "hello-example", "-n", "default", "--ignore-not-found")


@pytest.fixture
def samples_absent(cluster: Cluster, crds: None, default_namespace: str) -> Iterator[None]:
    delete_samples(cluster)
    yield
    delete_samples(cluster)


def apply_samples(cluster: Cluster, *names: str) -> None:
    for name in names:
        cluster.kubectl("apply", "-n", "default", "-f", str(SAMPLES / name))


def dry_run(cluster: Cluster, command: str) -> str:
    """A README dry run's output, once it has succeeded and changed nothing in the cluster."""
    before = snapshot(cluster)
    proc = run(cluster, command)
    assert proc.returncode == 0, command + "\n" + proc.stdout[-4000:] + proc.stderr[-2000:]
    assert snapshot(cluster) == before
    return proc.stdout


def pods_to_create(output: str, podset: str = "web") -> int:
    """The pods the playbook's dry run would create: its create task changed, and its closing list
    of what the reconcile would change has a line for each pod."""
    assert re.search(r"TASK \[podset : Create the missing pods from the template\] \**\nchanged: \[localhost\]",
                     output), output
    return len(re.findall(rf'"create Pod {podset}-\* \(\d+ of \d+\), revision {podset}-[0-9a-f]{{10}}"', output))


# --------------------------------------------------------------------------- not applied yet


def test_podset_playbook_dry_run_of_a_new_podset(cluster: Cluster, samples_absent: None) -> None:
    out = dry_run(cluster, PODSET_PLAYBOOK)
    assert "TASK [podset : Record a new revision of the pod template]" in out
    assert "TASK [podset : Create the missing pods from the template]" in out
    assert pods_to_create(out) == 3, out
    # The revision and the pods name the PodSet-to-be as their controller, by the stand-in uid.
    assert STAND_IN_UID in out
    assert '"namespace": "default"' in out
    assert "TASK [podset : Report replica counts" in out and '"selector": "app=web"' in out


def test_podset_reconcile_dry_run_of_a_new_podset(cluster: Cluster, samples_absent: None) -> None:
    out = dry_run(cluster, PODSET_CLI)
    for task in ("Record a new revision of the pod template", "Create the missing pods from the template",
                 "Report replica counts, revisions, the selector for the scale subresource, and conditions"):
        assert f"changed  {task}" in out, out
    assert STAND_IN_UID in out
    assert "check mode: nothing was changed" in out


def test_servicebinding_dry_run_of_a_new_binding_shows_the_projection(cluster: Cluster, samples_absent: None) -> None:
    # What it binds exists; the binding does not yet.
    apply_samples(cluster, "servicebinding-service.yaml", "podset.yaml")
    out = dry_run(cluster, BINDING_CLI)
    assert "changed  Patch, guarded by what it replaces, the workload PodSet web" in out, out
    assert "changed  Report the projected Secret and the conditions" in out
    # The projection: the Secret by reference, the env variable, and the status it would report.
    assert "sample-db" in out and "DB_PASSWORD" in out and "not-a-real-password" not in out
    assert "servicebinding-" + STAND_IN_UID in out
    assert "check mode: nothing was changed" in out


def test_servicebinding_dry_run_with_nothing_to_bind_reports_what_is_missing(cluster: Cluster,
                                                                             samples_absent: None) -> None:
    out = dry_run(cluster, BINDING_CLI)
    assert "changed  Report the projected Secret and the conditions" in out
    assert "SecretNotFound" in out


def test_example_dry_run_of_a_new_example(cluster: Cluster, samples_absent: None) -> None:
    out = dry_run(cluster, EXAMPLE_CLI)
    assert "changed  Keep the ConfigMap in step with spec.data" in out
    assert "greeting: hello" in out


def test_serviceinstance_dry_run_of_a_new_instance_says_what_it_lacks(cluster: Cluster,
                                                                       samples_absent: None) -> None:
    # No broker lists the class here: the dry run says so, as the status the instance would get.
    out = dry_run(cluster, INSTANCE_CLI)
    assert "changed  Write the status fields and conditions" in out, out
    assert "ReferencesNonexistentServiceClass" in out and "'sync-db'" in out
    assert "skipped  Send the request to the broker" in out
    assert "check mode: nothing was changed" in out


def test_the_playbook_without_check_refuses_a_new_object_with_what_to_do(cluster: Cluster,
                                                                        samples_absent: None) -> None:
    before = snapshot(cluster)
    proc = run(cluster, PODSET_PLAYBOOK.replace(" --check --diff", ""))
    assert proc.returncode != 0
    assert "default/web does not exist yet" in proc.stdout and "add --check" in proc.stdout, proc.stdout[-3000:]
    assert snapshot(cluster) == before


# --------------------------------------------------------------------------- applied, no operator


def test_dry_runs_of_applied_samples_show_the_next_reconcile(cluster: Cluster, samples_absent: None) -> None:
    apply_samples(cluster, "servicebinding-service.yaml", "podset.yaml", "servicebinding.yaml", "example.yaml",
                  "servicecatalog-instance.yaml")
    uid = cluster.kubectl("get", "podset", "web", "-n", "default", "-o", "jsonpath={.metadata.uid}").stdout

    play = dry_run(cluster, PODSET_PLAYBOOK)
    assert pods_to_create(play) == 3, play
    assert uid in play and STAND_IN_UID not in play
    for command in (PODSET_CLI, BINDING_CLI, EXAMPLE_CLI, INSTANCE_CLI):
        out = dry_run(cluster, command)
        assert "check mode: nothing was changed" in out
        assert STAND_IN_UID not in out
