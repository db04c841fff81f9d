"""Helpers for e2e tests: kubectl against the cluster under test, polling with a
deadline (never sleeping to synchronise), and the operator as a child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hack.devkit import free_port, kube_bin_dir

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# ClusterServiceBrokers are cluster-scoped, so every test's operator would reconcile every test's
# brokers: an operator limited to namespaces takes only those labelled with its first namespace.
BROKER_TEST_LABEL = "servicecatalog.playbook-operator.io/test"


def example_manifest(name: str, data: dict[str, str], namespace: str | None = None) -> str:
    """An Example custom resource (roles/example mirrors spec.data into a ConfigMap), as JSON."""
    metadata: dict[str, str] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return json.dumps({"apiVersion": "examples.playbook-operator.io/v1alpha1", "kind": "Example",
                       "metadata": metadata, "spec": {"data": data}})


def wait_for(check: Callable[[], T], *, timeout: float = 60, what: str = "condition",
             interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
            if last:
                return last
        except AssertionError as err:
            last = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


@dataclass
class Cluster:
    kubeconfig: Path
    local_name: str | None

    @property
    def env(self) -> dict[str, str]:
        kubectl_dir = kube_bin_dir()
        path = f"{kubectl_dir}:{os.environ.get('PATH', '')}" if (kubectl_dir / "kubectl").exists() \
            else os.environ.get("PATH", "")
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "PATH": path}

    @property
    def audit_log(self) -> Path | None:
        if self.local_name is None:
            return None
        return self.kubeconfig.parent / "audit.log"

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["kubectl", *args], capture_output=True, text=True, env=self.env, input=input,
                              timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        proc = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            raise AssertionError(proc.stderr)
        return dict(json.loads(proc.stdout))

    def list(self, kind: str, namespace: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["get", kind, "-n", namespace, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return list(json.loads(self.kubectl(*args).stdout)["items"])

    def apply(self, manifest: str, namespace: str) -> None:
        self.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def cluster_script(name: str) -> list[str]:
    """`hack/cluster.py --name NAME` run by this interpreter: add `up`, `down`, ... to it."""
    return [sys.executable, str(ROOT / "hack" / "cluster.py"), "--name", name]


def service_account_cluster(cluster: Cluster, name: str, namespace: str, path: Path) -> Cluster:
    """The same cluster seen as a ServiceAccount: a kubeconfig at `path` with a token of its own
    (`kubectl create token`), for an OperatorProcess that must hold only that account's rights."""
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    server = admin["clusters"][0]
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "clusters": [server],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": server["name"], "user": name}}],
        "current-context": name,
    }))
    return Cluster(kubeconfig=path, local_name=None)  # its audit log is read through `cluster`


def conditions_of(obj: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """An object's status conditions by type ({} for none, or for no object)."""
    return {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}


def watches_for_namespace(path: Path, namespace: str, *, kinds: Sequence[str] | None = None,
                          role_vars: Mapping[str, Any] | None = None) -> Path:
    """The project's watches.yaml written to `path` for a test working in `namespace`: its broker
    watch selects that test's brokers only; `kinds` keeps only those entries; `role_vars` go to
    the entries whose role has variables of that prefix (`serviceinstance_request_timeout`)."""
    import yaml

    entries = [e for e in yaml.safe_load((ROOT / "watches.yaml").read_text()) if kinds is None or e["kind"] in kinds]
    for entry in entries:
        if entry["kind"] == "ClusterServiceBroker":
            entry["selector"] = {"matchLabels": {BROKER_TEST_LABEL: namespace}}
        own = {k: v for k, v in (role_vars or {}).items() if k.startswith(f"{entry['role']}_")}
        if own:
            entry["vars"] = {**entry.get("vars", {}), **own}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(entries))
    return path


class OperatorProcess:
    """`playbook-operator run` as a child process, its log in the test's tmp dir.

    It watches `namespaces` (WATCH_NAMESPACE), or every namespace when that is None. Tests run side
    by side on one cluster, so a cluster-wide operator would reconcile other tests' objects: only a
    test marked `serial` may start one (see tests/conftest.py).

    Metrics, probes and the user-metrics endpoint are served on free ports of 127.0.0.1 unless
    `args` names addresses: several operators run at once on one machine, and the SDK's default
    ports would collide.
    """

    def __init__(self, cluster: Cluster, *, workdir: Path, namespaces: Sequence[str] | None,
                 watches: Path = ROOT / "watches.yaml", args: Sequence[str] = (),
                 env: Mapping[str, str] | None = None) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.watches = watches
        self.namespaces = list(namespaces) if namespaces is not None else None
        self.args = list(args)
        self.extra_env = dict(env or {})
        if self.namespaces is not None:
            self.extra_env["WATCH_NAMESPACE"] = ",".join(self.namespaces)
        self.log_path = workdir / "operator.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_address = self._address("--metrics-bind-address")
        self.health_address = self._address("--health-probe-bind-address")
        self.user_metrics_address = self._address("--user-metrics-bind-address")

    def _address(self, flag: str) -> str:
        for i, arg in enumerate(self.args):
            if arg == flag and i + 1 < len(self.args):
                return self.args[i + 1]
            if arg.startswith(f"{flag}="):
                return arg.split("=", 1)[1]
        address = f"127.0.0.1:{free_port()}"
        self.args = [*self.args, flag, address]
        return address

    def url(self, path: str) -> str:
        """http://HOST:PORT/path of this operator's /metrics, /healthz or /readyz."""
        address = self.metrics_address if path.startswith("/metrics") else self.health_address
        host, _, port = address.rpartition(":")
        return f"http://{host or '127.0.0.1'}:{port}{path}"

    def start(self) -> None:
        if self.namespaces is None and os.environ.get("PYTEST_XDIST_WORKER"):
            raise AssertionError("a cluster-wide operator would reconcile the objects of the tests beside it: "
                                 "give it namespaces, or mark the test serial")
        exe = Path(sys.executable).parent / "playbook-operator"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.namespaces and self.watches == ROOT / "watches.yaml":
            self.watches = watches_for_namespace(self.workdir / "watches.yaml", self.namespaces[0])
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(exe), "run", "--watches-file", str(self.watches),
             "--ansible-artifacts-dir", str(self.workdir / "artifacts"), *self.args],
            cwd=ROOT, env={**self.cluster.env, **self.extra_env}, stdout=self._log, stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_alive(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, f"operator exited:\n{self.log()[-4000:]}"

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.proc = None


# The `start_operator` fixture's type (tests/conftest.py): keyword arguments, an OperatorProcess started.
StartOperator = Callable[..., OperatorProcess]
