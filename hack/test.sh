#!/usr/bin/env bash
# Every test: unit tests first (fast, no cluster), then e2e tests on a real cluster.
# When KUBECONFIG is unset, the pytest session starts a local control plane and stops it.
# Any non-zero pytest exit fails, including 5 (no tests collected).
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

echo "==> unit tests"
"$py" -m pytest tests/unit -q -p no:cacheprovider
echo "==> e2e tests"
"$py" -m pytest tests -q -p no:cacheprovider --ignore=tests/unit -ra
