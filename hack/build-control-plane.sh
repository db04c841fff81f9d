#!/usr/bin/env bash
# Build the local control plane from the Go module proxy, once per version:
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl  (k8s.io/kubernetes)
#   etcd                                                              (go.etcd.io/etcd/server/v3)
#   kwok                                                              (sigs.k8s.io/kwok)
# Binaries land in $PLAYBOOK_OPERATOR_CACHE/bin/$KUBE_VERSION (default ~/.cache/playbook-operator).
# A binary that is already there is not rebuilt.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

cache="${PLAYBOOK_OPERATOR_CACHE:-$HOME/.cache/playbook-operator}"
bin="$cache/bin/$KUBE_VERSION"
work="$cache/build"
logs="$work/logs"
mkdir -p "$bin" "$logs"

export CGO_ENABLED=0 GOFLAGS="-mod=mod -trimpath" GOTOOLCHAIN=local
# A build cache of our own (several GiB of compiled packages), removed once every binary is
# built: the binaries are what is kept.
export GOCACHE="$work/gocache"

# run STEP CMD...: run a build command with its output in a log; on failure say what and where.
run() {
  local step="$1"; shift
  local log="$logs/$step.log"
  if ! "$@" >"$log" 2>&1; then
    echo "build-control-plane: FAILED step '$step'" >&2
    echo "  command: $*" >&2
    echo "  full log: $log" >&2
    tail -n 20 "$log" | sed 's/^/  | /' >&2
    exit 1
  fi
}

have() { [[ -x "$bin/$1" ]]; }

build_kubernetes() {
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  local missing=()
  for c in "${cmds[@]}"; do have "$c" || missing+=("$c"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0

  local mod="$work/kubernetes-$KUBE_VERSION"
  local staging="v0.${KUBE_VERSION#v1.}"
  mkdir -p "$mod"
  echo "==> kubernetes $KUBE_VERSION: resolving modules (staging at $staging)"
  # k8s.io/kubernetes points its staging modules at local folders; a wrapper module
  # replaces each of them with its published v0.Y.Z release.
  local gomod_json upstream_mod
  gomod_json="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION")" || {
    echo "build-control-plane: FAILED: go mod download k8s.io/kubernetes@$KUBE_VERSION" >&2; exit 1; }
  upstream_mod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$gomod_json")"
  {
    echo "module playbook-operator.local/kubernetes-build"
    echo
    echo "go 1.26"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\t\1 => \1 '"$staging"'#p' "$upstream_mod"
    echo ")"
  } >"$mod/go.mod"
  local pkgs=()
  for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c@$KUBE_VERSION"); done
  run kubernetes-get bash -c "cd '$mod' && go get ${pkgs[*]}"

  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local date; date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  local ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$date"
  done
  for c in "${missing[@]}"; do
    echo "==> building $c $KUBE_VERSION"
    run "build-$c" bash -c "cd '$mod' && go build -ldflags '$ld' -o '$bin/$c.tmp' k8s.io/kubernetes/cmd/$c"
    mv "$bin/$c.tmp" "$bin/$c"
  done
}

build_etcd() {
  have etcd && return 0
  local mod="$work/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  echo "==> building etcd $ETCD_VERSION"
  # A module of its own, so etcd's dependencies do not move Kubernetes' pins.
  printf 'module playbook-operator.local/etcd-build\n\ngo 1.26\n' >"$mod/go.mod"
  run etcd-get bash -c "cd '$mod' && go get go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  run etcd-build bash -c "cd '$mod' && go build -ldflags '-s -w' -o '$bin/etcd.tmp' go.etcd.io/etcd/server/v3"
  mv "$bin/etcd.tmp" "$bin/etcd"
}

build_kwok() {
  have kwok && return 0
  echo "==> building kwok $KWOK_VERSION"
  run kwok-install bash -c "GOBIN='$bin' go install -ldflags '-s -w' sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

start=$(date +%s)
build_etcd
build_kwok
build_kubernetes
rm -rf "$GOCACHE"
echo "control plane binaries ready in $bin ($(( $(date +%s) - start ))s, $(du -sh "$bin" | cut -f1))"
