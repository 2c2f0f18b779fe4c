#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager, etcd and helm (and, on request,
# opa for the policy benchmarks) from Go modules
# (no release downloads are possible here) and caches them outside the repo,
# keyed by version. Prints the bin directory. Safe to run repeatedly: a cached
# binary is reused.
set -euo pipefail
shopt -s inherit_errexit # a failed build inside $(build_x) must fail the script
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$here/versions.env"
cache="${DATAMESH_CACHE:-$HOME/.cache/datamesh}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

log() { echo "toolchain: $*" >&2; }

# lock NAME: one build of a tool at a time (parallel `cluster.sh up`s, CI steps);
# callers re-check the cache after taking it. Released when the build's subshell exits.
lock() {
  mkdir -p "$cache"
  exec {lock_fd}>"$cache/.$1.lock"
  flock "$lock_fd"
}

# install_bin SRC DEST: move a finished binary into the cache in one step, so an
# interrupted build never leaves a half-written binary that looks cached.
install_bin() { chmod +x "$1" && mv -f "$1" "$2"; }

# Kubernetes: k8s.io/kubernetes replaces its staging modules with local paths,
# so it cannot be `go install`ed. A wrapper module requires it and pins every
# staging module to the matching v0.x tag, generated from its own go.mod.
build_kubernetes() {
  local out="$cache/kubernetes-$KUBERNETES_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" ]]; then echo "$out"; return; fi
  lock "kubernetes-$KUBERNETES_VERSION"
  if [[ -x "$out/kube-apiserver" && -x "$out/kube-controller-manager" ]]; then echo "$out"; return; fi
  log "building kube-apiserver and kube-controller-manager $KUBERNETES_VERSION (once; several minutes)"
  local work="$cache/src/kubernetes-$KUBERNETES_VERSION"
  rm -rf "$work"; mkdir -p "$work" "$out"
  local gomod
  gomod="$(cd "$work" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local staging_version="v0${KUBERNETES_VERSION#v1}"
  local gover
  gover="$(sed -n 's/^go \([0-9.]*\).*/\1/p' "$gomod" | head -1)"
  {
    echo "module datamesh.dev/toolchain/kubernetes"
    echo "go $gover"
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo "replace ("
    # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.N.M`
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
    echo ")"
  } > "$work/go.mod"
  cat > "$work/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  local pkg=k8s.io/component-base/version
  local minor="${KUBERNETES_VERSION#v1.}"; minor="${minor%%.*}"
  local ldflags="-s -w -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  ldflags="$ldflags -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$work" && go mod tidy -e >/dev/null 2>&1 || true
   cd "$work" && go get "k8s.io/kubernetes@$KUBERNETES_VERSION" >/dev/null
   go build -tags tools -ldflags "$ldflags" -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
   go build -ldflags "$ldflags" -o "$work/kube-controller-manager" k8s.io/kubernetes/cmd/kube-controller-manager) ||
    { log "building Kubernetes $KUBERNETES_VERSION failed (see above)"; exit 1; }
  install_bin "$work/kube-apiserver" "$out/kube-apiserver"
  install_bin "$work/kube-controller-manager" "$out/kube-controller-manager"
  echo "$out"
}

build_etcd() {
  local out="$cache/etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then echo "$out"; return; fi
  lock "etcd-$ETCD_VERSION"
  if [[ -x "$out/etcd" ]]; then echo "$out"; return; fi
  log "building etcd $ETCD_VERSION (once)"
  local work="$cache/src/etcd-$ETCD_VERSION"
  rm -rf "$work"; mkdir -p "$work" "$out"
  (cd "$work" && go mod init datamesh.dev/toolchain/etcd >/dev/null 2>&1 \
     && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null \
     && go build -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3) ||
    { log "building etcd $ETCD_VERSION failed (see above)"; exit 1; }
  install_bin "$work/etcd" "$out/etcd"
  echo "$out"
}

build_helm() {
  if command -v helm >/dev/null 2>&1 && [[ -z "${DATAMESH_BUILD_HELM:-}" ]]; then dirname "$(command -v helm)"; return; fi
  local out="$cache/helm-$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then echo "$out"; return; fi
  lock "helm-$HELM_VERSION"
  if [[ -x "$out/helm" ]]; then echo "$out"; return; fi
  log "building helm $HELM_VERSION (once)"
  local work="$cache/src/helm-$HELM_VERSION"
  rm -rf "$work"; mkdir -p "$work" "$out"
  (cd "$work" && go mod init datamesh.dev/toolchain/helm >/dev/null 2>&1 \
     && go get "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >/dev/null \
     && go build -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$work/helm" helm.sh/helm/v3/cmd/helm) ||
    { log "building helm $HELM_VERSION failed (see above)"; exit 1; }
  install_bin "$work/helm" "$out/helm"
  echo "$out"
}

# OPA, only for the policy benchmarks (scripts/bench-policies.sh): the same
# default rules in Rego, timed with `opa bench` next to the Cedar engine.
build_opa() {
  local out="$cache/opa-$OPA_VERSION"
  if [[ -x "$out/opa" ]]; then echo "$out"; return; fi
  lock "opa-$OPA_VERSION"
  if [[ -x "$out/opa" ]]; then echo "$out"; return; fi
  log "building opa $OPA_VERSION (once)"
  local work="$cache/src/opa-$OPA_VERSION"
  rm -rf "$work"; mkdir -p "$work" "$out"
  (cd "$work" && go mod init datamesh.dev/toolchain/opa >/dev/null 2>&1 \
     && go get "github.com/open-policy-agent/opa@$OPA_VERSION" >/dev/null \
     && go build -ldflags "-s -w -X github.com/open-policy-agent/opa/v1/version.Version=${OPA_VERSION#v}" -o "$work/opa" github.com/open-policy-agent/opa) ||
    { log "building opa $OPA_VERSION failed (see above)"; exit 1; }
  install_bin "$work/opa" "$out/opa"
  echo "$out"
}

case "${1:-all}" in
  kubernetes) build_kubernetes ;;
  etcd) build_etcd ;;
  helm) build_helm ;;
  opa) build_opa ;;
  all)
    k="$(build_kubernetes)"; e="$(build_etcd)"; h="$(build_helm)"
    echo "KUBE_BIN=$k"; echo "ETCD_BIN=$e"; echo "HELM_BIN=$h" ;;
  *) echo "usage: $0 [all|kubernetes|etcd|helm|opa]" >&2; exit 2 ;;
esac
