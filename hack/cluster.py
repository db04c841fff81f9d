#!/usr/bin/env python3
"""A local Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and kwok (fake nodes, fake pod lifecycle).

    hack/cluster.py up   [--name NAME] [--nodes N] [--feature-gates GATES]
                                                     start (or reuse) a cluster, print its kubeconfig
    hack/cluster.py down [--name NAME]               stop it and remove its data directory
    hack/cluster.py env  [--name NAME]               print `export KUBECONFIG=...` and PATH
    hack/cluster.py status [--name NAME]             say whether it runs

Binaries come from hack/build-control-plane.sh. Only the standard library and the
openssl command are used, so this runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from devkit import cache_dir, free_port, kube_bin_dir, pid_alive, port_in_use

HACK = Path(__file__).resolve().parent
DEFAULT_NAME = "playbook-operator"
START_ATTEMPTS = 3
READY_TIMEOUT = 90.0
# Server-side sharded list and watch (KEP-5866, alpha): what `playbook-operator run --sharding`
# uses; a cluster started with `--feature-gates ShardedListAndWatch=false` shows the fallback.
FEATURE_GATES = "ShardedListAndWatch=true"


def data_dir(name: str) -> Path:
    return cache_dir() / "clusters" / name


class ClusterError(Exception):
    pass


# ---------------------------------------------------------------- certificates


def openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {' '.join(args)} failed: {proc.stderr.strip()}")


def make_certificates(pki: Path) -> None:
    """A CA, the apiserver's serving cert, client certs per component, and the
    ServiceAccount token signing key."""
    pki.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "3650", "-subj", "/CN=playbook-operator-local-ca", cwd=pki)
    openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    san = ("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
           "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1")
    leaf("apiserver", "/CN=kube-apiserver", pki, ext=f"{san}\nextendedKeyUsage=serverAuth")
    for name, subject in (
        ("admin", "/O=system:masters/CN=kubernetes-admin"),
        ("controller-manager", "/CN=system:kube-controller-manager"),
        ("scheduler", "/CN=system:kube-scheduler"),
        ("kwok", "/O=system:masters/CN=kwok-controller"),
    ):
        leaf(name, subject, pki, ext="extendedKeyUsage=clientAuth")


def leaf(name: str, subject: str, pki: Path, ext: str) -> None:
    (pki / f"{name}.ext").write_text(ext + "\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", subject, cwd=pki)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=pki)


def write_kubeconfig(path: Path, server: str, pki: Path, user: str, context: str) -> None:
    # JSON is valid YAML; kubectl and every client read it.
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server,
                                                  "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": f"{context}-{user}", "user": {
            "client-certificate": str(pki / f"{user}.crt"),
            "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-{user}",
                                                   "namespace": "default"}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config, indent=2) + "\n")


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
"""


# ---------------------------------------------------------------- processes


@dataclass
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        ports: list[int] = []
        while len(ports) < 4:
            p = free_port()
            if p not in ports:
                ports.append(p)
        return cls(*ports)


class Cluster:
    def __init__(self, name: str) -> None:
        self.name = name
        self.dir = data_dir(name)
        self.bin = kube_bin_dir()
        self.pki = self.dir / "pki"
        self.logs = self.dir / "logs"
        self.kubeconfig = self.dir / "kubeconfig"
        self.pidfile = self.dir / "pids"
        self.state = self.dir / "state.json"

    # -- queries

    def pids(self) -> list[int]:
        if not self.pidfile.exists():
            return []
        return [int(p) for p in self.pidfile.read_text().split() if p.strip()]

    def running(self) -> bool:
        return any(pid_alive(p) for p in self.pids()) and self.kubeconfig.exists()

    def server(self) -> str:
        return str(json.loads(self.state.read_text())["server"])

    # -- lifecycle

    def up(self, nodes: int, feature_gates: str = FEATURE_GATES) -> None:
        missing = [b for b in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler",
                               "kubectl", "kwok") if not (self.bin / b).exists()]
        if missing:
            raise ClusterError(f"missing binaries in {self.bin}: {', '.join(missing)}; "
                               "run hack/build-control-plane.sh (or `make build`) first")
        if self.running() and self.healthy():
            print(f"cluster {self.name!r} already running at {self.server()}", file=sys.stderr)
            return
        self.down(quiet=True)
        last: Exception | None = None
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                self._start(nodes, feature_gates)
                return
            except ClusterError as err:
                last = err
                print(f"cluster {self.name!r}: start attempt {attempt} failed: {err}", file=sys.stderr)
                self.down(quiet=True, keep_logs=attempt == START_ATTEMPTS)
        raise ClusterError(f"cluster {self.name!r} did not start: {last}")

    def _start(self, nodes: int, feature_gates: str) -> None:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        make_certificates(self.pki)
        ports = Ports.pick()
        server = f"https://127.0.0.1:{ports.apiserver}"
        self.state.write_text(json.dumps({"name": self.name, "server": server,
                                          "ports": ports.__dict__}) + "\n")
        write_kubeconfig(self.kubeconfig, server, self.pki, "admin", self.name)
        for component in ("controller-manager", "scheduler", "kwok"):
            write_kubeconfig(self.dir / f"{component}.kubeconfig", server, self.pki, component, self.name)
        (self.dir / "audit-policy.yaml").write_text(AUDIT_POLICY)

        self._spawn("etcd", [
            "--name", self.name, "--data-dir", str(self.dir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{ports.etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{ports.etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{ports.etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{ports.etcd_peer}",
            "--initial-cluster", f"{self.name}=http://127.0.0.1:{ports.etcd_peer}",
            "--unsafe-no-fsync", "--quota-backend-bytes", str(4 << 30), "--log-level", "warn",
        ])
        self._wait(lambda: port_in_use(ports.etcd_client), "etcd listening", 20)

        pki = self.pki
        self._spawn("kube-apiserver", [
            "--etcd-servers", f"http://127.0.0.1:{ports.etcd_client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(ports.apiserver),
            "--tls-cert-file", str(pki / "apiserver.crt"), "--tls-private-key-file", str(pki / "apiserver.key"),
            "--client-ca-file", str(pki / "ca.crt"),
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pki / "sa.pub"),
            "--service-account-signing-key-file", str(pki / "sa.key"),
            "--service-cluster-ip-range", "10.96.0.0/16",
            "--authorization-mode", "Node,RBAC",
            "--allow-privileged=true",
            "--audit-policy-file", str(self.dir / "audit-policy.yaml"),
            "--audit-log-path", str(self.dir / "audit.log"), "--audit-log-format", "json",
            "--audit-log-mode", "blocking", "--audit-log-maxsize", "500",
            "--endpoint-reconciler-type", "none",
            "--feature-gates", feature_gates,
        ])
        self._wait(self.healthy, "kube-apiserver /readyz ok", READY_TIMEOUT)

        self._spawn("kube-controller-manager", [
            "--kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
            "--authentication-kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
            "--authorization-kubeconfig", str(self.dir / "controller-manager.kubeconfig"),
            "--bind-address", "127.0.0.1", "--secure-port", "0",
            "--leader-elect=false",
            "--use-service-account-credentials=true",
            "--service-account-private-key-file", str(pki / "sa.key"),
            "--root-ca-file", str(pki / "ca.crt"),
            "--cluster-signing-cert-file", str(pki / "ca.crt"),
            "--cluster-signing-key-file", str(pki / "ca.key"),
            "--controllers", "*,-nodeipam",
            "--concurrent-gc-syncs", "20",
        ])
        self._spawn("kube-scheduler", [
            "--kubeconfig", str(self.dir / "scheduler.kubeconfig"),
            "--authentication-kubeconfig", str(self.dir / "scheduler.kubeconfig"),
            "--authorization-kubeconfig", str(self.dir / "scheduler.kubeconfig"),
            "--bind-address", "127.0.0.1", "--secure-port", "0",
            "--leader-elect=false",
        ])
        self._spawn("kwok", [
            "--kubeconfig", str(self.dir / "kwok.kubeconfig"),
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--node-lease-duration-seconds", "40",
            "--cidr", "10.244.0.1/16", "--node-ip", "10.0.0.1",
            "--server-address", f"127.0.0.1:{ports.kwok}",
            "--config", str(HACK / "kwok.yaml"),
        ])
        self._create_nodes(nodes)
        self._wait(self._default_service_account, "default ServiceAccount", READY_TIMEOUT)
        self._wait(lambda: self._ready_nodes() >= nodes, f"{nodes} Ready nodes", READY_TIMEOUT)
        print(f"cluster {self.name!r} up at {server} in {time.monotonic() - started:.1f}s",
              file=sys.stderr)

    def _spawn(self, binary: str, args: list[str]) -> None:
        with open(self.logs / f"{binary}.log", "ab") as log:
            proc = subprocess.Popen([str(self.bin / binary), *args], stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.dir)
        with self.pidfile.open("a") as f:
            f.write(f"{proc.pid}\n")
        self._procs = getattr(self, "_procs", {})
        self._procs[binary] = proc

    def _wait(self, check, what: str, timeout: float) -> None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for binary, proc in getattr(self, "_procs", {}).items():
                if proc.poll() is not None:
                    tail = (self.logs / f"{binary}.log").read_text(errors="replace").splitlines()[-15:]
                    raise ClusterError(f"{binary} exited with {proc.returncode} while waiting for {what}; "
                                       f"log {self.logs / (binary + '.log')}:\n  " + "\n  ".join(tail))
            try:
                if check():
                    return
            except Exception:
                pass
            time.sleep(0.2)
        raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}; logs in {self.logs}")

    def _ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def _get(self, path: str) -> tuple[int, bytes]:
        req = urllib.request.Request(self.server() + path)
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=5) as resp:  # nosec B310  # local apiserver
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def healthy(self) -> bool:
        try:
            status, body = self._get("/readyz")
        except OSError:
            return False
        return status == 200 and body.strip() == b"ok"

    def _default_service_account(self) -> bool:
        return self._get("/api/v1/namespaces/default/serviceaccounts/default")[0] == 200

    def _ready_nodes(self) -> int:
        status, body = self._get("/api/v1/nodes")
        if status != 200:
            return 0
        ready = 0
        for node in json.loads(body)["items"]:
            for cond in node.get("status", {}).get("conditions", []):
                if cond["type"] == "Ready" and cond["status"] == "True":
                    ready += 1
        return ready

    def _create_nodes(self, count: int) -> None:
        # Room for make bench's 1,000 sets of 3 plus its bursts: kwok pods cost nothing, and a
        # kubelet's usual 110-250 pods per node would leave them Pending ("Too many pods").
        pods = "5000"
        items = []
        for i in range(count):
            items.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": f"kwok-node-{i}",
                             "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {"type": "kwok", "kubernetes.io/hostname": f"kwok-node-{i}",
                                        "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                                        "topology.kubernetes.io/zone": f"zone-{i % 3}"}},
                "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": pods},
                           "capacity": {"cpu": "32", "memory": "256Gi", "pods": pods}},
            })
        manifest = self.dir / "nodes.json"
        manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        self.kubectl("apply", "-f", str(manifest))

    def kubectl(self, *args: str) -> str:
        proc = subprocess.run([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise ClusterError(f"kubectl {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def down(self, quiet: bool = False, keep_logs: bool = False) -> None:
        pids = self.pids()
        for pid in pids:
            signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            if pid_alive(pid):
                signal_group(pid, signal.SIGKILL)
        for proc in getattr(self, "_procs", {}).values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self._procs = {}
        if self.dir.exists():
            if keep_logs:
                kept = cache_dir() / "clusters" / f"{self.name}.failed-logs"
                shutil.rmtree(kept, ignore_errors=True)
                shutil.copytree(self.logs, kept, dirs_exist_ok=True)
                print(f"cluster {self.name!r}: logs of the failed start kept in {kept}", file=sys.stderr)
            shutil.rmtree(self.dir, ignore_errors=True)
            if not quiet:
                print(f"cluster {self.name!r} stopped ({len(pids)} processes)", file=sys.stderr)
        elif not quiet:
            print(f"cluster {self.name!r} is not running", file=sys.stderr)


def signal_group(pid: int, sig: int) -> None:
    # Every component runs in its own session, so its process group id is its pid.
    for target in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            target()
            return
        except (ProcessLookupError, PermissionError):
            continue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "env", "status", "kubeconfig"])
    parser.add_argument("--name", default=os.environ.get("CLUSTER_NAME", DEFAULT_NAME))
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--feature-gates", default=FEATURE_GATES,
                        help=f"the apiserver's feature gates (default: {FEATURE_GATES})")
    args = parser.parse_args(argv)
    cluster = Cluster(args.name)
    try:
        if args.command == "up":
            cluster.up(args.nodes, args.feature_gates)
            print(cluster.kubeconfig)
        elif args.command == "down":
            cluster.down()
        elif args.command == "kubeconfig":
            print(cluster.kubeconfig)
        elif args.command == "env":
            print(f"export KUBECONFIG={cluster.kubeconfig}")
            print(f'export PATH="{cluster.bin}:$PATH"')
        elif args.command == "status":
            if cluster.running() and cluster.healthy():
                print(f"cluster {args.name!r} running at {cluster.server()}")
            else:
                print(f"cluster {args.name!r} not running")
                return 1
    except ClusterError as err:
        print(f"cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
