#!/usr/bin/env bash
# Build the Operator SDK's Ansible operator for `make bench`, once per version:
#   ansible-operator   github.com/operator-framework/ansible-operator-plugins/cmd/ansible-operator
#                      (Go module proxy, $SDK_ANSIBLE_OPERATOR_VERSION in versions.env)
#   its Python side    a virtualenv of its own with the versions its image pins
#                      (images/ansible-operator/Pipfile.lock of that release, from PyPI), plus the
#                      ansible_runner_http event plugin its image installs from the same module
#   kubernetes.core    copied from this project's virtualenv (the `ansible` package), so both
#                      operators run the same collection version
# Everything lands in $PLAYBOOK_OPERATOR_CACHE/sdk/$SDK_ANSIBLE_OPERATOR_VERSION (default
# ~/.cache/playbook-operator): bin/ansible-operator, venv/, collections/. What is there is kept.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
# shellcheck source=versions.env
source "$here/versions.env"

version="$SDK_ANSIBLE_OPERATOR_VERSION"
module=github.com/operator-framework/ansible-operator-plugins
cache="${PLAYBOOK_OPERATOR_CACHE:-$HOME/.cache/playbook-operator}"
dest="$cache/sdk/$version"
work="$cache/build"
logs="$work/logs"
project_python="${PROJECT_PYTHON:-$root/.venv/bin/python}"
mkdir -p "$dest/bin" "$logs"

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local
export GOCACHE="$work/gocache-sdk"

run() {
  local step="$1"; shift
  local log="$logs/$step.log"
  if ! "$@" >"$log" 2>&1; then
    echo "build-sdk-operator: FAILED step '$step'" >&2
    echo "  command: $*" >&2
    echo "  full log: $log" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
}

build_binary() {
  [[ -x "$dest/bin/ansible-operator" ]] && return 0
  echo "==> building ansible-operator $version"
  # A module of its own (as for etcd): `go install pkg@version` asks the proxy for the module's
  # version list, which it does not serve for this module.
  local mod="$work/ansible-operator-$version"
  mkdir -p "$mod"
  printf 'module playbook-operator.local/ansible-operator-build\n\ngo 1.26\n\nrequire %s %s\n' \
    "$module" "$version" >"$mod/go.mod"
  run sdk-get bash -c "cd '$mod' && go mod download -json $module@$version >/dev/null && go get $module/cmd/ansible-operator@$version"
  local pkg="$module/internal/version"
  local ld="-s -w -X '$pkg.Version=$version' -X '$pkg.GitVersion=$version' -X '$pkg.ImageVersion=$version'"
  run sdk-build bash -c "cd '$mod' && go build -ldflags \"$ld\" -o '$dest/bin/ansible-operator.tmp' $module/cmd/ansible-operator"
  mv "$dest/bin/ansible-operator.tmp" "$dest/bin/ansible-operator"
  rm -rf "$GOCACHE"
}

build_venv() {
  [[ -f "$dest/venv/.installed" ]] && return 0
  echo "==> ansible-operator $version: Python side (virtualenv from PyPI)"
  local src
  src="$(cd "$work" && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [[ -d "$src" ]] || { echo "build-sdk-operator: FAILED: go mod download $module@$version" >&2; exit 1; }
  rm -rf "$dest/venv"
  run sdk-venv python3 -m venv "$dest/venv"
  # The versions images/ansible-operator/Pipfile.lock of this release pins.
  run sdk-pip "$dest/venv/bin/pip" install --quiet \
    "ansible-runner==2.4.2" "ansible-core==2.18.14" "kubernetes==33.1.0" \
    "requests==2.32.5" "requests-unixsocket==0.4.1" "urllib3==2.6.3"
  # The image's own ansible_runner_http (it replaces the unmaintained PyPI ansible-runner-http
  # 1.0.0 with this copy); it ships inside the Go module, read-only, so build it from a copy.
  rm -rf "$work/ansible_runner_http"
  cp -r "$src/images/ansible-operator/ansible_runner_http" "$work/ansible_runner_http"
  chmod -R u+w "$work/ansible_runner_http"
  run sdk-pip-http "$dest/venv/bin/pip" install --quiet "$work/ansible_runner_http"
  touch "$dest/venv/.installed"
}

copy_collections() {
  [[ -d "$dest/collections/ansible_collections/kubernetes/core" ]] && return 0
  echo "==> kubernetes.core for ansible-operator $version (from this project's virtualenv)"
  local site
  site="$("$project_python" -c 'import ansible_collections, os; print(os.path.dirname(ansible_collections.__path__[0]))')"
  mkdir -p "$dest/collections/ansible_collections/kubernetes"
  cp -r "$site/ansible_collections/kubernetes/core" "$dest/collections/ansible_collections/kubernetes/core.tmp"
  mv "$dest/collections/ansible_collections/kubernetes/core.tmp" "$dest/collections/ansible_collections/kubernetes/core"
}

start=$(date +%s)
build_binary
build_venv
copy_collections
echo "ansible-operator $version ready in $dest ($(( $(date +%s) - start ))s)"
