#!/usr/bin/env bash
# Every test: unit tests first (fast, no cluster), then e2e tests on one real cluster: side by side
# on E2E_WORKERS pytest-xdist workers, each test in namespaces of its own, then the `serial` ones
# (they need the cluster to themselves) one after another.
# When KUBECONFIG is unset, a local control plane is started for the run and stopped afterwards.
# Any non-zero pytest exit fails, including 5 (no tests collected).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
# The e2e tests mostly wait on the apiserver and the operators they start, so more workers than
# cores pay; beyond 4 on 2 cores the Ansible runs queue for CPU and the tests' deadlines tighten.
workers=${E2E_WORKERS:-4}
cluster=(python3 hack/cluster.py --name "${TEST_CLUSTER_NAME:-test}")

echo "==> unit tests"
"$py" -m pytest -m unit -q -p no:cacheprovider

if [[ -z "${KUBECONFIG:-}" ]]; then
    echo "==> local cluster"
    KUBECONFIG=$("${cluster[@]}" up | tail -n 1)
    export KUBECONFIG
    [[ -n "${KEEP_CLUSTER:-}" ]] || trap '"${cluster[@]}" down' EXIT
fi

echo "==> e2e tests, ${workers} side by side"
"$py" -m pytest -m "e2e and not serial" -n "$workers" --dist load -q -p no:cacheprovider -ra --durations=15
echo "==> e2e tests that need the cluster to themselves"
"$py" -m pytest -m "e2e and serial" -q -p no:cacheprovider -ra
