"""The three systems under test and how to start, stop and read each.

- ``playbook-operator``: this project's `playbook-operator run`, the PodSet entry of watches.yaml.
- ``sdk``: the Operator SDK's `ansible-operator run` (hack/build-sdk-operator.sh), the same entry
  and the same roles/podset. What differs from its container image, and why, is in `SDK_NOTES`.
- ``native``: the cluster's own ReplicaSet controller (kube-controller-manager), as the floor.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench import metrics
from hack.devkit import cache_dir, free_port, port_in_use, versions

ROOT = Path(__file__).resolve().parent.parent
ADMIN_USER = "kubernetes-admin"
REPLICASET_USER = "system:serviceaccount:kube-system:replicaset-controller"
# ansible-operator writes http://localhost:8888 into each run's kubeconfig whatever --proxy-port says.
SDK_PROXY_PORT = 8888
# Its API for user metrics listens on localhost:5050, a fixed port.
SDK_METRICS_API_PORT = 5050
PODSET_GVK = "workloads.playbook-operator.io/v1alpha1, Kind=PodSet"
# Both operators name the PodSet's controller after the kind ("podset-..."), as controller-runtime does.
CONTROLLER = "podset"

SDK_NOTES = [
    "kubernetes.core: the SDK image has none (operators install it from Galaxy at image build); "
    "the bench copies this project's kubernetes.core (the `ansible` package) so both run the same version.",
    "operator_sdk.util: the SDK image's Galaxy collection is replaced by this project's compatible one "
    "(collections/, same k8s_status/k8s_event interface), on ANSIBLE_COLLECTIONS_PATH with "
    "playbook_operator.workloads, which roles/podset's filters need.",
    "Python: the image's pins (ansible-core 2.18.14, ansible-runner 2.4.2, kubernetes 33.1.0, "
    "requests-unixsocket 0.4.1) in a virtualenv; modules run with its interpreter "
    "(ANSIBLE_PYTHON_INTERPRETER), as the image's only python3 would.",
    "Templating: roles/podset writes integers into status with \"{{ ... }}\", which ansible-core 2.19 keeps "
    "as integers; the SDK's ansible-core 2.18.14 renders them as strings and the CRD refuses the status. "
    "The bench sets ANSIBLE_JINJA2_NATIVE=true (ansible-core's own setting for native types) for the SDK.",
    "ansible_runner_http: the copy the image installs (images/ansible-operator in the same module), "
    "which replaces the unmaintained PyPI ansible-runner-http 1.0.0.",
    "Owner references: roles/podset writes the controller reference on the pods it creates itself; "
    "the SDK's proxy would inject the same one (it is left on, as by default).",
    "Proxy port: each run's kubeconfig names http://localhost:8888 whatever --proxy-port says "
    "(internal/ansible/controller/reconcile.go), so the SDK runs on 8888, which must be free.",
    "Defaults otherwise: --max-concurrent-reconciles = CPU count, --reconcile-period 10h, "
    "--ansible-verbosity 2, --inject-owner-ref=true, leader election off; ours likewise.",
]


def require_sdk_ports_free() -> None:
    """Fail early when a port the SDK's operator cannot move is taken (checked by both operators,
    so a run stops before it spends time on playbook-operator's scenarios)."""
    for port in (SDK_PROXY_PORT, SDK_METRICS_API_PORT):
        if port_in_use(port):
            raise RuntimeError(f"127.0.0.1:{port} is taken: ansible-operator needs it (the proxy its runs "
                               "reach the apiserver through, and its fixed user-metrics API)")


def podset_watch_file(path: Path) -> Path:
    """watches.yaml's PodSet entry, unchanged, alone in a file (the bench watches nothing else)."""
    entries = yaml.safe_load((ROOT / "watches.yaml").read_text())
    entry = next(e for e in entries if e["kind"] == "PodSet")
    path.write_text(yaml.safe_dump([entry], sort_keys=False))
    return path


@dataclass
class System:
    key: str
    title: str
    kind: str  # what the bench creates: PodSet or ReplicaSet
    workdir: Path
    kubeconfig: Path
    source: Path = ROOT  # where roles/ and collections/ come from (the work tree by default)
    proc: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    # -- what subclasses say

    def start(self) -> None:
        raise NotImplementedError

    def root_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def write_users(self) -> set[str]:
        return {ADMIN_USER}

    def version(self) -> str:
        raise NotImplementedError

    def scrape(self) -> dict[str, float] | None:
        """Its /metrics now; None when nothing answers (or there is nothing to ask)."""
        try:
            return metrics.scrape(f"http://127.0.0.1:{self.metrics_port}/metrics")
        except OSError:
            return None

    def runs(self) -> float | None:
        """Ansible runs so far (the SDK's and our `ansible_operator_reconciles` histogram count:
        one observation per Ansible run); None where there is no Ansible."""
        samples = self.scrape()
        return None if samples is None else metrics.metric_sum(samples, metrics.RUNS, "PodSet")

    def queue(self) -> metrics.QueueState:
        """Its PodSet queue: runs so far, keys waiting (by priority where it has them), busy workers."""
        samples = self.scrape()
        if samples is None:
            return metrics.QueueState(None, None, None)
        return metrics.queue_state(samples, CONTROLLER, "PodSet")

    def queue_waits(self) -> dict[str, metrics.Histogram]:
        """How long keys waited in its PodSet queue so far, by priority (`metrics.ALL` without)."""
        samples = self.scrape()
        return {} if samples is None else metrics.histograms(samples, metrics.QUEUE_WAIT, CONTROLLER)

    # -- shared

    def _spawn(self, argv: list[str], env: dict[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "operator.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(argv, cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.title} exited ({self.proc.returncode}); log {self.log_path}:\n"
                                   + self.log_path.read_text(errors="replace")[-3000:])
            if self.runs() is not None:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.title}: no /metrics after {timeout}s; log {self.log_path}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        # Whatever the group left behind (Ansible children) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        self.proc = None


class Ours(System):
    def start(self) -> None:
        require_sdk_ports_free()
        self.metrics_port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        watches = podset_watch_file(self.workdir / "watches.yaml")
        exe = Path(sys.executable).parent / "playbook-operator"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "ANSIBLE_ROLES_PATH": str(self.source / "roles")}
        self._spawn([str(exe), "run", "--watches-file", str(watches),
                     "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
                     "--health-probe-bind-address", f"127.0.0.1:{free_port()}",
                     "--user-metrics-bind-address", f"127.0.0.1:{free_port()}",
                     "--ansible-artifacts-dir", str(self.workdir / "artifacts"),
                     "--log-format", "json"], env)
        self.wait_ready()

    def version(self) -> str:
        out = subprocess.run([str(Path(sys.executable).parent / "playbook-operator"), "version"],
                             capture_output=True, text=True)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else "unknown"


class Sdk(System):
    def sdk_dir(self) -> Path:
        return cache_dir() / "sdk" / versions()["SDK_ANSIBLE_OPERATOR_VERSION"]

    def start(self) -> None:
        sdk = self.sdk_dir()
        binary = sdk / "bin" / "ansible-operator"
        if not binary.exists():
            raise RuntimeError(f"{binary} missing: run hack/build-sdk-operator.sh")
        require_sdk_ports_free()
        self.metrics_port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        watches = podset_watch_file(self.workdir / "watches.yaml")
        env = {**os.environ,
               "KUBECONFIG": str(self.kubeconfig),
               "PATH": f"{sdk / 'venv' / 'bin'}:{os.environ.get('PATH', '')}",
               "ANSIBLE_ROLES_PATH": str(self.source / "roles"),
               "ANSIBLE_COLLECTIONS_PATH": f"{sdk / 'collections'}:{self.source / 'collections'}",
               "ANSIBLE_PYTHON_INTERPRETER": str(sdk / "venv" / "bin" / "python"),
               "ANSIBLE_LOCALHOST_WARNING": "false",
               # See SDK_NOTES: ansible-core 2.18 renders "{{ n }}" as a string unless told otherwise.
               "ANSIBLE_JINJA2_NATIVE": "true",
               "HOME": str(self.workdir),  # the image's HOME is /opt/ansible; keep ~/.ansible out of ours
               "TMPDIR": str(self.workdir / "tmp")}
        (self.workdir / "tmp").mkdir(exist_ok=True)
        env.pop("VIRTUAL_ENV", None)
        self._spawn([str(binary), "run", "--watches-file", str(watches),
                     "--metrics-bind-address", f"127.0.0.1:{self.metrics_port}",
                     "--health-probe-bind-address", f"127.0.0.1:{free_port()}",
                     "--proxy-port", str(SDK_PROXY_PORT)], env)
        self.wait_ready()

    def version(self) -> str:
        binary = self.sdk_dir() / "bin" / "ansible-operator"
        out = subprocess.run([str(binary), "version"], capture_output=True, text=True)
        return out.stdout.strip() or versions()["SDK_ANSIBLE_OPERATOR_VERSION"]


class Native(System):
    """The ReplicaSet controller inside the cluster's kube-controller-manager: nothing to start;
    its process is the whole kube-controller-manager (every controller, so it is a ceiling on the
    floor's CPU and memory)."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def root_pid(self) -> int:
        pids = [int(p) for p in (self.kubeconfig.parent / "pids").read_text().split()]
        for pid in pids:
            try:
                if "kube-controller-manager" in Path(f"/proc/{pid}/cmdline").read_text():
                    return pid
            except OSError:
                continue
        raise RuntimeError("kube-controller-manager not found among the cluster's processes")

    def write_users(self) -> set[str]:
        return {REPLICASET_USER}

    def scrape(self) -> dict[str, float] | None:
        # The local cluster's kube-controller-manager serves no /metrics (--secure-port 0).
        return None

    def version(self) -> str:
        return f"kube-controller-manager {versions()['KUBE_VERSION']}"


def make(key: str, workdir: Path, kubeconfig: Path, source: Path = ROOT) -> System:
    if key == "ours":
        return Ours("ours", "playbook-operator", "PodSet", workdir / "ours", kubeconfig, source)
    if key == "sdk":
        return Sdk("sdk", "SDK ansible-operator", "PodSet", workdir / "sdk", kubeconfig, source)
    if key == "native":
        return Native("native", "native ReplicaSet", "ReplicaSet", workdir / "native", kubeconfig, source)
    raise ValueError(key)
