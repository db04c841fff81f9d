"""What one reconcile costs: a no-op run of a 4-task kubernetes.core role, three ways, in one
invocation on the same cluster.

- ``sdk-style``: what the Operator SDK does per reconcile: ``ansible-runner run --role`` with fact
  gathering, a cold ``ansible-playbook`` and a fresh interpreter per module task;
- ``cold-playbook``: a plain cold ``ansible-playbook`` of the same role (no facts);
- ``warm``: this project's path: ansible-runner with the warm fork servers (runner.warm).

Prints medians and p95 in seconds and the ratios. Needs KUBECONFIG (make bench sets it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from runner import ansible, warm

ROOT = Path(__file__).resolve().parent.parent
ROLE = ROOT / "bench" / "roles" / "noop4"


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def extravars(namespace: str) -> dict[str, object]:
    return {"ansible_operator_meta": {"name": "bench", "namespace": namespace}}


def sdk_style(workdir: Path, namespace: str) -> float:
    """ansible-runner's CLI with --role, facts gathered, as the SDK's runner invokes it."""
    (workdir / "env").mkdir(parents=True, exist_ok=True)
    (workdir / "env" / "extravars").write_text(json.dumps(extravars(namespace)))
    (workdir / "inventory").mkdir(exist_ok=True)
    (workdir / "inventory" / "hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROLE.parent),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    start = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "ansible-runner"), "run", str(workdir), "--role", ROLE.name,
                    "--hosts", "localhost", "--rotate-artifacts", "5"],
                   env=env, check=True, capture_output=True)
    return time.monotonic() - start


def cold_playbook(workdir: Path, namespace: str) -> float:
    workdir.mkdir(parents=True, exist_ok=True)
    play = workdir / "play.yml"
    play.write_text(f"- hosts: localhost\n  gather_facts: false\n  roles: [{{role: {ROLE}}}]\n")
    inventory = workdir / "hosts"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    start = time.monotonic()
    subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(play),
                    "-e", json.dumps(extravars(namespace))], check=True, capture_output=True)
    return time.monotonic() - start


def warm_run(shims: warm.WarmAnsible, workdir: Path, namespace: str) -> float:
    request = ansible.RunRequest(target=ansible.Target(role=ROLE), extravars=extravars(namespace),
                                 private_data_dir=workdir, max_artifacts=5,
                                 playbook_binary=shims.playbook_binary, interpreter=shims.python_interpreter)
    start = time.monotonic()
    result = ansible.run(request)
    elapsed = time.monotonic() - start
    if not result.successful or result.changed:
        raise SystemExit(f"warm run was not a successful no-op: {result}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the samples and summary here")
    args = parser.parse_args()
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    subprocess.run(["kubectl", "create", "namespace", namespace], check=True, capture_output=True)
    shims = warm.WarmAnsible()
    results: dict[str, list[float]] = {"sdk-style": [], "cold-playbook": [], "warm": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            cold_playbook(base / "cold", namespace)  # creates the ConfigMaps: later runs are no-ops
            shims.prestart()
            for _ in range(3):  # warm-up: servers start, caches fill
                warm_run(shims, base / "warm", namespace)
            for i in range(args.samples):
                results["sdk-style"].append(sdk_style(base / "sdk", namespace))
                results["cold-playbook"].append(cold_playbook(base / "cold", namespace))
                results["warm"].append(warm_run(shims, base / "warm", namespace))
                print(f"\rsample {i + 1}/{args.samples}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
    finally:
        shims.close()
        subprocess.run(["kubectl", "delete", "namespace", namespace, "--wait=false"], capture_output=True)
    summary = {name: {"median": statistics.median(s), "p95": p95(s)} for name, s in results.items()}
    print(f"{'no-op reconcile, 4-task kubernetes.core role':<48} {'median s':>9} {'p95 s':>7} {'vs warm':>8}")
    for name, fig in summary.items():
        ratio = fig["median"] / summary["warm"]["median"]
        print(f"{name:<48} {fig['median']:>9.3f} {fig['p95']:>7.3f} {ratio:>7.1f}x")
    if args.json:
        args.json.write_text(json.dumps({"samples": results, "summary": summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
