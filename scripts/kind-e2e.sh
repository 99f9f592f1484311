#!/usr/bin/env bash
# End-to-end test on a real Kubernetes cluster (kind):
#   kind cluster (k8s/kind-config.yaml) -> ingress-nginx (pinned upstream kind manifest) -> image built
#   and loaded into kind -> Secret with a generated dev JWT secret and API key -> helm install with
#   helm/realtime-gateway/ci/kind-values.yaml (bundled Redis, 3 gateways, 2 workers, sticky ingress)
#   -> the e2e suite against the ingress (E2E_BASE_URL) while a gateway pod and the Redis pod are
#   deleted in the background -> recovery check. Logs go to .run/kind-logs/ on failure; the cluster is
#   deleted at the end unless KEEP_CLUSTER=1.
#
# Exit codes: 0 passed, 1 failed, 3 a prerequisite is missing (docker, a running Docker engine, kind,
# kubectl, helm, node/npx, curl).
#
# Environment (all optional):
#   KIND_CLUSTER_NAME (rtg-e2e)   KIND_NODE_IMAGE (kind's default)   KIND_HTTP_PORT (8080)   KIND_HTTPS_PORT (8443)
#   E2E_NAMESPACE (rtg-e2e)        E2E_RELEASE (rtg)                  E2E_IMAGE (realtime-gateway:e2e)
#   INGRESS_NGINX_VERSION (controller-v1.13.3)   INGRESS_NGINX_MANIFEST (URL or file; default: upstream kind manifest of that version)
#   KEEP_CLUSTER=1 (keep the cluster)   REUSE_CLUSTER=1 (use an existing cluster of that name)
#   CHAOS=0 (no pod deletions)   CHAOS_GATEWAY_AFTER (20 s)   CHAOS_REDIS_AFTER (40 s)
#   KIND_LOG_DIR (.run/kind-logs)   HELM (helm binary; default .tools/bin/helm, else helm on PATH)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart_dir="$repo_root/helm/realtime-gateway"

CLUSTER_NAME="${KIND_CLUSTER_NAME:-rtg-e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
KIND_HTTP_PORT="${KIND_HTTP_PORT:-8080}"
KIND_HTTPS_PORT="${KIND_HTTPS_PORT:-8443}"
NAMESPACE="${E2E_NAMESPACE:-rtg-e2e}"
RELEASE="${E2E_RELEASE:-rtg}"
IMAGE="${E2E_IMAGE:-realtime-gateway:e2e}"
INGRESS_NGINX_VERSION="${INGRESS_NGINX_VERSION:-controller-v1.13.3}"
INGRESS_NGINX_MANIFEST="${INGRESS_NGINX_MANIFEST:-https://raw.githubusercontent.com/kubernetes/ingress-nginx/${INGRESS_NGINX_VERSION}/deploy/static/provider/kind/deploy.yaml}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
REUSE_CLUSTER="${REUSE_CLUSTER:-0}"
CHAOS="${CHAOS:-1}"
CHAOS_GATEWAY_AFTER="${CHAOS_GATEWAY_AFTER:-20}"
CHAOS_REDIS_AFTER="${CHAOS_REDIS_AFTER:-40}"
LOG_DIR="${KIND_LOG_DIR:-$repo_root/.run/kind-logs}"
# The Secret that ci/kind-values.yaml references (keys jwt-secret and api-keys).
AUTH_SECRET=rtg-e2e-auth

log() { printf 'kind-e2e: %s\n' "$*" >&2; }
missing() {
  log "prerequisite missing: $*"
  log "this test needs a machine with a Docker engine, kind, kubectl and helm; nothing was created"
  exit 3
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then usage; exit 0; fi

# ---- preflight: nothing is created before every prerequisite is there ----
for tool in docker kind kubectl node npx curl; do
  command -v "$tool" >/dev/null 2>&1 || missing "'$tool' is not on PATH"
done
if [[ -n "${HELM:-}" ]]; then
  command -v "$HELM" >/dev/null 2>&1 || missing "HELM=$HELM is not executable"
elif [[ -x "$repo_root/.tools/bin/helm" ]]; then
  HELM="$repo_root/.tools/bin/helm"
elif command -v helm >/dev/null 2>&1; then
  HELM="$(command -v helm)"
else
  missing "'helm' not found (run scripts/install-helm.sh or make helm-install)"
fi
if ! docker info >/dev/null 2>&1; then
  missing "the Docker engine does not answer ('docker info' failed): start Docker (kind runs its nodes as containers)"
fi

context="kind-$CLUSTER_NAME"
kc() { kubectl --context "$context" "$@"; }
selector="app.kubernetes.io/instance=$RELEASE"
cluster_created=0
chaos_pid=""
tmp_dir="$(mktemp -d)"

collect_logs() {
  local dir
  dir="$LOG_DIR/$(date +%Y%m%d-%H%M%S)"
  mkdir -p "$dir/pods"
  log "collecting logs into $dir"
  kc get nodes,all,ingress,pvc,pdb,hpa,networkpolicy -A -o wide >"$dir/get-all.txt" 2>&1 || true
  kc -n "$NAMESPACE" describe pods >"$dir/describe-pods.txt" 2>&1 || true
  kc -n "$NAMESPACE" describe deployments,statefulsets,services,ingress >"$dir/describe-workloads.txt" 2>&1 || true
  kc get events -A --sort-by=.lastTimestamp >"$dir/events.txt" 2>&1 || true
  local pod
  for pod in $(kc -n "$NAMESPACE" get pods -o name 2>/dev/null); do
    kc -n "$NAMESPACE" logs "$pod" --all-containers --timestamps >"$dir/pods/${pod#pod/}.log" 2>&1 || true
    kc -n "$NAMESPACE" logs "$pod" --all-containers --timestamps --previous >"$dir/pods/${pod#pod/}.previous.log" 2>/dev/null || true
  done
  kc -n ingress-nginx logs deployment/ingress-nginx-controller --timestamps >"$dir/ingress-nginx.log" 2>&1 || true
  kind export logs "$dir/kind" --name "$CLUSTER_NAME" >/dev/null 2>&1 || true
  log "logs are in $dir"
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n "$chaos_pid" ]]; then
    kill "$chaos_pid" 2>/dev/null
    wait "$chaos_pid" 2>/dev/null
  fi
  if [[ $rc -ne 0 && $cluster_created -eq 1 ]]; then collect_logs; fi
  if [[ $cluster_created -eq 1 ]]; then
    if [[ "$KEEP_CLUSTER" == 1 ]]; then
      log "keeping cluster $CLUSTER_NAME (kubectl --context $context ...; delete: kind delete cluster --name $CLUSTER_NAME)"
    else
      log "deleting cluster $CLUSTER_NAME"
      kind delete cluster --name "$CLUSTER_NAME" >/dev/null 2>&1
    fi
  fi
  rm -rf "$tmp_dir"
  if [[ $rc -eq 0 ]]; then log "PASSED"; else log "FAILED (exit $rc)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- cluster ----
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  if [[ "$REUSE_CLUSTER" != 1 ]]; then
    log "a kind cluster named $CLUSTER_NAME exists: delete it (kind delete cluster --name $CLUSTER_NAME) or set REUSE_CLUSTER=1"
    exit 1
  fi
  log "reusing cluster $CLUSTER_NAME"
else
  sed -e "s/hostPort: 80\$/hostPort: ${KIND_HTTP_PORT}/" -e "s/hostPort: 443\$/hostPort: ${KIND_HTTPS_PORT}/" \
    "$repo_root/k8s/kind-config.yaml" >"$tmp_dir/kind-config.yaml"
  create_args=(create cluster --name "$CLUSTER_NAME" --config "$tmp_dir/kind-config.yaml" --wait 180s)
  if [[ -n "$KIND_NODE_IMAGE" ]]; then create_args+=(--image "$KIND_NODE_IMAGE"); fi
  log "creating cluster $CLUSTER_NAME (ingress on 127.0.0.1:$KIND_HTTP_PORT)"
  cluster_created=1
  kind "${create_args[@]}"
fi

# ---- ingress-nginx ----
log "installing ingress-nginx ($INGRESS_NGINX_MANIFEST)"
kc apply -f "$INGRESS_NGINX_MANIFEST"
# The controller starts only once the admission jobs made its webhook certificate, so its rollout
# also means the webhook that validates our Ingress answers.
kc -n ingress-nginx rollout status deployment/ingress-nginx-controller --timeout=300s

# ---- image ----
log "building $IMAGE"
docker build -t "$IMAGE" "$repo_root"
kind load docker-image "$IMAGE" --name "$CLUSTER_NAME"
# Preloading Redis saves a registry pull per node; kind pulls it itself when this fails.
if docker pull redis:7-alpine >/dev/null 2>&1; then
  kind load docker-image redis:7-alpine --name "$CLUSTER_NAME" || log "warning: could not preload redis:7-alpine"
fi

# ---- secrets (generated per run, development only) ----
jwt_secret="$(node -e "process.stdout.write(require('crypto').randomBytes(32).toString('hex'))")"
api_key="$(node -e "process.stdout.write(require('crypto').randomBytes(24).toString('hex'))")"
kc create namespace "$NAMESPACE" --dry-run=client -o yaml | kc apply -f -
kc -n "$NAMESPACE" create secret generic "$AUTH_SECRET" \
  --from-literal=jwt-secret="$jwt_secret" --from-literal=api-keys="$api_key" \
  --dry-run=client -o yaml | kc apply -f -

# ---- release ----
image_repo="${IMAGE%:*}"
image_tag="${IMAGE##*:}"
log "installing release $RELEASE"
"$HELM" upgrade --install "$RELEASE" "$chart_dir" --kube-context "$context" -n "$NAMESPACE" \
  -f "$chart_dir/ci/kind-values.yaml" --set image.repository="$image_repo" --set image.tag="$image_tag" \
  --wait --timeout 6m

rollout() {
  local w
  for w in $(kc -n "$NAMESPACE" get deployments,statefulsets -l "$selector" -o name); do
    kc -n "$NAMESPACE" rollout status "$w" --timeout=180s
  done
}
rollout

base_url="http://127.0.0.1:${KIND_HTTP_PORT}"
wait_ready() {
  for _ in $(seq 1 90); do
    if curl -fsS -o /dev/null --max-time 2 "$base_url/readyz"; then return 0; fi
    sleep 2
  done
  log "the gateway did not answer $base_url/readyz through the ingress"
  return 1
}
wait_ready

# ---- chaos: delete a gateway pod, then the Redis pod, while the suite runs ----
chaos() {
  local pod
  sleep "$CHAOS_GATEWAY_AFTER"
  pod="$(kc -n "$NAMESPACE" get pods -l "$selector,app.kubernetes.io/component=gateway" -o jsonpath='{.items[0].metadata.name}')"
  log "chaos: deleting gateway pod $pod"
  kc -n "$NAMESPACE" delete pod "$pod" --wait=false
  sleep "$((CHAOS_REDIS_AFTER > CHAOS_GATEWAY_AFTER ? CHAOS_REDIS_AFTER - CHAOS_GATEWAY_AFTER : 0))"
  pod="$(kc -n "$NAMESPACE" get pods -l "$selector,app.kubernetes.io/component=redis" -o jsonpath='{.items[0].metadata.name}')"
  log "chaos: deleting Redis pod $pod"
  kc -n "$NAMESPACE" delete pod "$pod" --wait=false
}
if [[ "$CHAOS" == 1 ]]; then
  chaos &
  chaos_pid=$!
fi

# ---- the e2e suite against the cluster ----
export E2E_BASE_URL="$base_url" E2E_JWT_SECRET="$jwt_secret" E2E_API_KEY="$api_key"
log "running the e2e suite against $E2E_BASE_URL"
(cd "$repo_root" && npx jest --selectProjects e2e --runInBand)

# ---- recovery: after the deletions every workload is back and the gateway is ready again ----
if [[ -n "$chaos_pid" ]]; then
  wait "$chaos_pid"
  chaos_pid=""
fi
rollout
wait_ready
log "cluster recovered after the pod deletions"
