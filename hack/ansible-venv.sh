#!/usr/bin/env bash
# A virtualenv with this project on a given ansible-core minor (docs/ANSIBLE-VERSIONS.md):
#   hack/ansible-venv.sh 2.18   $PLAYBOOK_OPERATOR_CACHE/venvs/ansible-2.18 (default cache
#                               ~/.cache/playbook-operator): `pip install -e '.[dev]'` from PyPI
#                               under hack/constraints/ansible-2.18.txt, made once and kept while
#                               that file and pyproject.toml stay the same; kubernetes.core is
#                               the project venv's (`ansible` 11 ships 5.x, the roles need 6.x,
#                               requirements.yml), as hack/build-sdk-operator.sh does
#   hack/ansible-venv.sh 2.19   the project's own .venv (`make venv`), 2.19 being the default
# The last line printed is the virtualenv's path, for VENV=$(hack/ansible-venv.sh 2.18 | tail -n 1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
version="${1:-}"
cache="${PLAYBOOK_OPERATOR_CACHE:-$HOME/.cache/playbook-operator}"
python="${PYTHON:-python3}"

case "$version" in
  2.19)
    [[ -x "$root/.venv/bin/python" ]] || { echo "ansible-venv: no $root/.venv; run make venv" >&2; exit 1; }
    echo "$root/.venv"
    exit 0
    ;;
  "")
    echo "usage: $0 VERSION   (2.19, or one of: $(cd "$here/constraints" && ls ansible-*.txt | sed 's/ansible-\(.*\)\.txt/\1/' | tr '\n' ' '))" >&2
    exit 2
    ;;
esac

constraints="$here/constraints/ansible-$version.txt"
[[ -f "$constraints" ]] || { echo "ansible-venv: no $constraints" >&2; exit 2; }
venv="$cache/venvs/ansible-$version"
logs="$cache/build/logs"
mkdir -p "$logs"

run() {
  local step="$1"; shift
  local log="$logs/$step.log"
  if ! "$@" >"$log" 2>&1; then
    echo "ansible-venv: FAILED step '$step'" >&2
    echo "  command: $*" >&2
    echo "  full log: $log" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
}

collections_of() {
  "$1" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))'
}

[[ -x "$root/.venv/bin/python" ]] || { echo "ansible-venv: no $root/.venv; run make venv" >&2; exit 1; }
kubernetes_core="$(collections_of "$root/.venv/bin/python")/ansible_collections/kubernetes/core"

copy_kubernetes_core() {
  local theirs
  theirs="$(collections_of "$venv/bin/python")/ansible_collections/kubernetes/core"
  rm -rf "$theirs"
  cp -r "$kubernetes_core" "$theirs"
}

# The marker holds what the venv was made from: a change to any of it rebuilds the venv.
key="$(cat "$constraints" "$root/pyproject.toml" "${BASH_SOURCE[0]}" "$kubernetes_core/MANIFEST.json" \
  | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$key" ]]; then
  echo "==> ansible $version: virtualenv $venv (from PyPI)" >&2
  start=$(date +%s)
  rm -rf "$venv"
  run "venv-$version" "$python" -m venv "$venv"
  run "pip-$version" "$venv/bin/pip" install --quiet --upgrade pip
  run "install-$version" bash -c "cd '$root' && '$venv/bin/pip' install --quiet -e '.[dev]' -c '$constraints'"
  copy_kubernetes_core
  echo "$key" >"$venv/.installed"
  echo "ansible $version ready ($(( $(date +%s) - start ))s): $("$venv/bin/ansible" --version | head -n 1)" >&2
fi
echo "$venv"
