"""The Operator SDK's test operators on playbook-operator: their layouts (hack/sdkcompat.py), the
operator run as their image runs it, and their molecule scenarios."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from hack import sdkcompat
from hack.devkit import free_port, kube_bin_dir
from tests.support import ROOT, Cluster, OperatorProcess, wait_for

# ansible-core versions the SDK operators run on: the project's (.venv) and the SDK image's.
ANSIBLE_VERSIONS = ["2.19", "2.18"]
# Bind addresses the manager's args name: several operators run at once here, each on free ports.
ADDRESS_FLAGS = ("--health-probe-bind-address", "--metrics-bind-address")


@functools.cache
def venv(version: str) -> Path:
    """The virtualenv with the project on that ansible-core (hack/ansible-venv.sh)."""
    out = subprocess.run(["bash", str(ROOT / "hack" / "ansible-venv.sh"), version], capture_output=True,
                         text=True, check=True).stdout
    return Path(out.strip().splitlines()[-1])


@functools.cache
def layout(operator: str, version: str) -> Path:
    return sdkcompat.layout(operator, venv(version))


def manager(project: Path, overlay: str | None = None) -> dict[str, Any]:
    """The manager container of the operator's Deployment: config/manager/manager.yaml's, or the
    one a kustomize overlay (config/default, ...) builds."""
    if overlay is None:
        docs = yaml.safe_load_all((project / "config" / "manager" / "manager.yaml").read_text())
    else:
        out = subprocess.run(["kubectl", "kustomize", str(project / "config" / overlay)], capture_output=True,
                             text=True, check=True, env=_kubectl_env()).stdout
        docs = yaml.safe_load_all(out)
    deployment = next(d for d in docs if d and d["kind"] == "Deployment")
    return dict(next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "manager"))


def manager_args(project: Path, overlay: str | None = None) -> list[str]:
    return [a for a in manager(project, overlay).get("args") or [] if not a.startswith(ADDRESS_FLAGS)]


def manager_env(project: Path) -> dict[str, str]:
    """Its env with values (valueFrom ones, WATCH_NAMESPACE in the testing overlay, are the test's)."""
    return {e["name"]: e["value"] for e in manager(project).get("env") or [] if "value" in e}


def _kubectl_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{kube_bin_dir()}:{os.environ.get('PATH', '')}"}


class SdkOperator(OperatorProcess):
    """`playbook-operator run` as the SDK's image runs ansible-operator: from /opt/ansible with
    `--watches-file=./watches.yaml`, HOME and ansible.cfg the image's, in the layout's mount
    namespace (hack/sdkcompat.py), with the manager's args and env. Its /tmp is workdir/tmp: the
    run artifacts are in workdir/tmp/artifacts."""

    def __init__(self, cluster: Cluster, *, workdir: Path, operator: str, version: str, namespace: str,
                 args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.layout = layout(operator, version)
        self.venv = venv(version)
        project = self.layout / "project"
        # POD_NAMESPACE: the namespace a pod's service account names, for the leader election Lease.
        env = {**manager_env(project), "POD_NAMESPACE": namespace, **sdkcompat.image_env(self.layout),
               **(env or {})}
        super().__init__(cluster, workdir=workdir, namespaces=[namespace], args=[*manager_args(project), *args],
                         env=env)
        if not any(a.startswith("--user-metrics-bind-address") for a in self.args):
            self.args += ["--user-metrics-bind-address", f"127.0.0.1:{free_port()}"]

    @property
    def project(self) -> Path:
        return self.layout / "project"

    @property
    def artifacts(self) -> Path:
        return self.workdir / "tmp" / "artifacts"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        argv = [str(self.venv / "bin" / "playbook-operator"), "run", "--watches-file=./watches.yaml",
                "--ansible-artifacts-dir=/tmp/artifacts", *self.args]
        self.proc = subprocess.Popen(sdkcompat.namespaced(self.layout, self.workdir / "tmp", argv),
                                     env={**self.cluster.env, **self.extra_env}, stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def artifacts_text(self) -> str:
        """Every run's artifacts (ansible-runner's stdout and job events), as one text."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.artifacts.rglob("*")) if p.is_file())


def drop_finalizers(cluster: Cluster, namespace: str, *kinds: str) -> None:
    """No finalizer left on the namespace's objects of those kinds once their operator has stopped
    (a test that failed half way): else the namespace, and the CRDs, could never be deleted."""
    for kind in kinds:
        names = cluster.kubectl("get", kind, "-n", namespace, "-o", "name", check=False).stdout.split()
        for name in names:
            cluster.kubectl("patch", name, "-n", namespace, "--type", "merge",
                            "-p", '{"metadata":{"finalizers":null}}', check=False)


def sample(project: Path, name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((project / "config" / "samples" / name).read_text()))


def apply(cluster: Cluster, obj: Mapping[str, Any], namespace: str) -> None:
    cluster.apply(json.dumps(obj), namespace)


class Molecule:
    """One of the SDK operator's molecule scenarios, run from a copy of its project on the host,
    with the virtualenv's molecule and Ansible, beside an operator the test runs.

    The base config turns off what needs Galaxy (the dependency step, the prerun install of
    requirements.yml); the driver has the name molecule 6 gave it; KUSTOMIZE_PATH is
    hack/sdkcompat.py's, which leaves out the manager Deployment. Tasks that need a real kubelet
    are removed from the copy (`without`)."""

    def __init__(self, cluster: Cluster, *, operator: str, version: str, workdir: Path, namespace: str,
                 without: Mapping[str, Sequence[str] | None] = {}) -> None:
        self.cluster = cluster
        self.venv = venv(version)
        self.project = workdir / "project"
        shutil.copytree(layout(operator, version) / "project", self.project)
        # Molecule 6 renamed its `delegated` driver `default`; the scaffolded scenarios predate that.
        scenario = self.project / "molecule" / "default" / "molecule.yml"
        scenario.write_text(scenario.read_text().replace("name: delegated", "name: default"))
        for path, tasks in without.items():
            remove_tasks(self.project / "molecule" / "default" / path, tasks)
        base = workdir / "molecule-base.yml"
        base.write_text("prerun: false\ndependency:\n  name: galaxy\n  enabled: false\n")
        self.base = base
        self.log_path = workdir / "molecule.log"
        bin_dir = self.venv / "bin"
        self.env = {**cluster.env, "PATH": f"{bin_dir}:{cluster.env['PATH']}",
                    "TEST_OPERATOR_NAMESPACE": namespace, "OPERATOR_IMAGE": "playbook-operator.local/on-the-host",
                    "KUSTOMIZE_PATH": f"{bin_dir / 'python'} {ROOT / 'hack' / 'sdkcompat.py'} kustomize",
                    "MOLECULE_EPHEMERAL_DIRECTORY": str(workdir / "molecule-ephemeral"),
                    "ANSIBLE_FORCE_COLOR": "0", "NO_COLOR": "1", "PY_COLORS": "0"}
        for name in ("ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_CONFIG", "ANSIBLE_ROLES_PATH"):
            self.env.pop(name, None)

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.venv / "bin" / "molecule"), "-c", str(self.base), command],
                              cwd=self.project, env=self.env, capture_output=True, text=True, timeout=900)
        with self.log_path.open("a") as log:
            log.write(f"==> molecule {command} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}\n")
        return proc


def remove_tasks(path: Path, names: Sequence[str] | None) -> None:
    """A scenario's task file without the named tasks (None: the whole file)."""
    if names is None:
        path.unlink()
        return
    tasks = yaml.safe_load(path.read_text())
    kept = [t for t in tasks if t.get("name") not in names]
    missing = set(names) - {t.get("name") for t in tasks}
    assert not missing, f"{path.name} has no tasks named {sorted(missing)}"
    path.write_text(yaml.safe_dump(kept, sort_keys=False))


def http_ok(url: str) -> bool:
    """Whether GET url answers 200 (False while nothing listens there yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def run_scenario(cluster: Cluster, *, operator: str, version: str, workdir: Path,
                 without: Mapping[str, Sequence[str] | None]) -> None:
    """The operator's molecule/default as converge, idempotence, verify and destroy, on a cluster
    of its own (`cluster`), as the SDK's CI gives each scenario its kind cluster: the scenarios make
    cluster-wide objects of the same names (the osdk- ClusterRoles and their bindings, the CRDs,
    which destroy deletes), and the advanced one's playbooks name the namespace osdk-test, the
    scenarios' default, where both run. The operator starts after converge, which makes the
    namespace and installs the CRDs it watches."""
    namespace = "osdk-test"
    molecule = Molecule(cluster, operator=operator, version=version, workdir=workdir, namespace=namespace,
                        without=without)
    op = SdkOperator(cluster, workdir=workdir / "operator", operator=operator, version=version,
                     namespace=namespace)
    try:
        converge = molecule.run("converge")
        assert converge.returncode == 0, molecule.log_path.read_text()[-6000:]
        op.start()
        wait_for(lambda: http_ok(op.url("/readyz")), timeout=120, what="the operator to be ready")
        for step in ("idempotence", "verify"):
            proc = molecule.run(step)
            assert proc.returncode == 0, f"molecule {step}:\n{(proc.stdout + proc.stderr)[-6000:]}\n" \
                                         f"operator log:\n{op.log()[-4000:]}"
        op.assert_alive()
    finally:
        destroy = molecule.run("destroy")
        op.stop()
    assert destroy.returncode == 0, (destroy.stdout + destroy.stderr)[-4000:]
