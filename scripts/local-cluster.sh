#!/usr/bin/env bash
# The local cluster: Redis (AOF), N gateways, M workers and HAProxy round-robin per request (the
# local stand-in for the ingress), all in the background. No stickiness by default: a polling
# request or an upgrade that lands on a gateway other than its session's is forwarded there by the
# gateways themselves. LB_STICKY=1 adds HAProxy cookie insertion (like ingress-nginx cookie
# affinity), which saves that hop.
#   scripts/local-cluster.sh up|down|status|token <user> [roles]
#   scripts/local-cluster.sh start-one <name>   (re)start one process of a running cluster with the
#                                               settings `up` used: gateway-<i>, worker-<i>, redis, haproxy
#   scripts/local-cluster.sh scale <n>          add or remove gateways of the running cluster (make scale
#                                               GATEWAYS=<n>): new ones start on the next ports, removed
#                                               ones (the highest numbers) leave the balancer first, then
#                                               drain (SIGTERM); HAProxy reloads its configuration in place
# Everything is overridable through the environment (see the defaults below); RUN_DIR holds
# pids, logs, generated secrets and configs (git-ignored).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${RUN_DIR:-$ROOT/.run}"
LB_HOST="${LB_HOST:-127.0.0.1}"
LB_PORT="${LB_PORT:-8080}"
GATEWAYS="${GATEWAYS:-3}"
WORKERS="${WORKERS:-2}"
REDIS_PORT="${REDIS_PORT:-6391}"
GATEWAY_BASE_PORT="${GATEWAY_BASE_PORT:-3001}"
GATEWAY_METRICS_BASE_PORT="${GATEWAY_METRICS_BASE_PORT:-9101}"
WORKER_BASE_PORT="${WORKER_BASE_PORT:-3101}"
WORKER_METRICS_BASE_PORT="${WORKER_METRICS_BASE_PORT:-9201}"
LB_STICKY="${LB_STICKY:-0}"
READY_TIMEOUT="${READY_TIMEOUT:-60}"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_tools() {
  local missing=()
  command -v node >/dev/null || die "Node.js 20+ is required (https://nodejs.org or your distribution's nodejs package)"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [ "$major" -ge 20 ] || die "Node.js 20+ is required, found $(node --version)"
  command -v redis-server >/dev/null || missing+=(redis-server)
  command -v haproxy >/dev/null || missing+=(haproxy)
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      log "installing ${missing[*]} with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
      log "missing: ${missing[*]}"
      log "install them with:  sudo apt-get install -y ${missing[*]}"
      exit 1
    fi
  fi
  [ -f "$ROOT/dist/services/gateway/main.js" ] || die "dist/ is missing: run 'make build' (make up does it for you)"
}

# True while the process runs. A killed process whose parent does not reap it (an init that is
# not a reaper, as in some containers) stays a zombie that `kill -0` still finds: that counts as dead.
alive() {
  local pid="$1" state
  kill -0 "$pid" 2>/dev/null || return 1
  [ -r "/proc/$pid/stat" ] || return 0
  state="$(sed -E 's/^.*\) (.).*$/\1/' "/proc/$pid/stat" 2>/dev/null || true)"
  [ "$state" != Z ]
}
pid_alive() { [ -f "$RUN_DIR/$1.pid" ] && alive "$(cat "$RUN_DIR/$1.pid")"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && { exec 3>&- 3<&-; return 0; }; return 1; }

secrets() {
  mkdir -p "$RUN_DIR/logs"
  if [ ! -f "$RUN_DIR/secrets.env" ]; then
    umask 077
    {
      echo "JWT_SECRET=$(node -e 'console.log(require("crypto").randomBytes(32).toString("hex"))')"
      echo "API_KEY=$(node -e 'console.log("dev-" + require("crypto").randomBytes(16).toString("hex"))')"
    } >"$RUN_DIR/secrets.env"
  fi
  # shellcheck disable=SC1091
  . "$RUN_DIR/secrets.env"
}

start_bg() { # name logfile cmd...
  local name="$1" logfile="$2"
  shift 2
  nohup "$@" >>"$logfile" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

wait_ready() { # url name
  local url="$1" name="$2" i last=""
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    if last="$(curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$url" 2>&1)" && [ "$last" = 200 ]; then return 0; fi
    sleep 0.1
  done
  die "$name did not become ready at $url within ${READY_TIMEOUT}s (last answer: ${last:-none}; see $RUN_DIR/logs)"
}

haproxy_cfg() {
  local cfg="$RUN_DIR/haproxy.cfg" i
  {
    cat <<EOF
global
  maxconn 8000
  log stdout format raw local0 warning
defaults
  mode http
  log global
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout tunnel 1h
  timeout http-keep-alive 10s
  option redispatch
  retries 3
frontend public
  bind ${LB_HOST}:${LB_PORT}
  # Only gateways mark a request as forwarded to the pod holding its session: never a client.
  http-request del-header x-rtg-forwarded
  default_backend gateways
backend gateways
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
  default-server inter 500ms fall 2 rise 1
EOF
    # Not `indirect`: the gateways see the cookie (REBALANCE_AFFINITY_COOKIE), and `preserve` lets a
    # rebalancing gateway expire it so that a client it moved lands on another gateway.
    if [ "$LB_STICKY" = 1 ]; then echo "  cookie RTGSRV insert preserve nocache httponly"; fi
    for ((i = 1; i <= GATEWAYS; i++)); do
      if [ "$LB_STICKY" = 1 ]; then
        echo "  server gw$i 127.0.0.1:$((GATEWAY_BASE_PORT + i - 1)) check cookie gw$i"
      else
        echo "  server gw$i 127.0.0.1:$((GATEWAY_BASE_PORT + i - 1)) check"
      fi
    done
  } >"$cfg"
  echo "$cfg"
}

common_env() {
  echo "REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
  echo "JWT_SECRET=$JWT_SECRET"
  echo "API_KEYS=$API_KEY"
  echo "HOST=127.0.0.1"
  echo "LOG_LEVEL=${LOG_LEVEL:-info}"
}

# The settings `up` used, so that `start-one` restarts a process exactly as it was started.
save_settings() {
  local v
  {
    for v in LB_HOST LB_PORT GATEWAYS WORKERS REDIS_PORT GATEWAY_BASE_PORT GATEWAY_METRICS_BASE_PORT WORKER_BASE_PORT \
      WORKER_METRICS_BASE_PORT LB_STICKY LOG_LEVEL DEV_LOGIN GATEWAY_ENV WORKER_ENV; do
      printf '%s=%q\n' "$v" "${!v:-}"
    done
  } >"$RUN_DIR/cluster.env"
}

start_redis() {
  local i
  mkdir -p "$RUN_DIR/redis"
  start_bg redis "$RUN_DIR/logs/redis.log" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN_DIR/redis" \
    --appendonly yes --appendfsync everysec --save ''
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "redis did not answer on port $REDIS_PORT within ${READY_TIMEOUT}s (see $RUN_DIR/logs/redis.log)"
}

# This script's own settings are not the services' (they would warn about unknown variables).
OWN_VARS=(-u GATEWAY_ENV -u WORKER_ENV -u GATEWAY_BASE_PORT -u GATEWAY_METRICS_BASE_PORT -u WORKER_BASE_PORT -u WORKER_METRICS_BASE_PORT)

start_gateway() { # index
  local i="$1" env_lines gw_extra
  mapfile -t env_lines < <(common_env)
  read -r -a gw_extra <<<"${GATEWAY_ENV:-}"
  if [ "$LB_STICKY" = 1 ]; then env_lines+=("REBALANCE_AFFINITY_COOKIE=RTGSRV"); fi
  start_bg "gateway-$i" "$RUN_DIR/logs/gateway-$i.log" env "${OWN_VARS[@]}" "${env_lines[@]}" POD_NAME="gateway-$i" \
    PORT="$((GATEWAY_BASE_PORT + i - 1))" METRICS_PORT="$((GATEWAY_METRICS_BASE_PORT + i - 1))" \
    DEV_LOGIN="${DEV_LOGIN:-true}" "${gw_extra[@]}" node "$ROOT/dist/services/gateway/main.js"
}

start_worker() { # index
  local i="$1" env_lines wk_extra
  mapfile -t env_lines < <(common_env)
  read -r -a wk_extra <<<"${WORKER_ENV:-}"
  start_bg "worker-$i" "$RUN_DIR/logs/worker-$i.log" env "${OWN_VARS[@]}" "${env_lines[@]}" POD_NAME="worker-$i" \
    PORT="$((WORKER_BASE_PORT + i - 1))" METRICS_PORT="$((WORKER_METRICS_BASE_PORT + i - 1))" \
    "${wk_extra[@]}" node "$ROOT/dist/services/worker/main.js"
}

# HAProxy runs in master-worker mode (-W): `scale` reloads it with SIGUSR2 to the master (the pid in
# haproxy.pid), which starts a worker on the new configuration; the old worker keeps the
# connections it holds (websockets) until they end, and stopping the master stops them all.
start_haproxy() {
  local cfg
  cfg="$(haproxy_cfg)"
  haproxy -c -q -f "$cfg" || die "invalid HAProxy config $cfg"
  start_bg haproxy "$RUN_DIR/logs/haproxy.log" haproxy -W -db -f "$cfg"
  wait_ready "http://$LB_HOST:$LB_PORT/readyz" "haproxy"
}

haproxy_workers() { pgrep -P "$(cat "$RUN_DIR/haproxy.pid")" 2>/dev/null | sort || true; }

# Rewrites the configuration for $GATEWAYS gateways and has HAProxy load it without a restart.
reload_haproxy() {
  local cfg before i
  pid_alive haproxy || die "haproxy is not running (make up first)"
  cfg="$(haproxy_cfg)"
  haproxy -c -q -f "$cfg" || die "invalid HAProxy config $cfg"
  before="$(haproxy_workers)"
  kill -USR2 "$(cat "$RUN_DIR/haproxy.pid")"
  for ((i = 0; i < READY_TIMEOUT * 10; i++)); do
    if [ -n "$(comm -13 <(echo "$before") <(haproxy_workers))" ]; then
      sleep 1 # the new worker's first health checks (inter 500ms, rise 1)
      wait_ready "http://$LB_HOST:$LB_PORT/readyz" "haproxy"
      return 0
    fi
    sleep 0.1
  done
  die "haproxy did not start a worker on the new configuration within ${READY_TIMEOUT}s (see $RUN_DIR/logs/haproxy.log)"
}

up() {
  need_tools
  secrets
  if pid_alive redis; then
    die "a local cluster is already running from $RUN_DIR (make down first)"
  fi
  local p i
  for p in "$LB_PORT" "$REDIS_PORT"; do port_busy "$p" && die "port $p is in use (override LB_PORT / REDIS_PORT)"; done
  save_settings
  start_redis
  for ((i = 1; i <= GATEWAYS; i++)); do start_gateway "$i"; done
  for ((i = 1; i <= WORKERS; i++)); do start_worker "$i"; done
  for ((i = 1; i <= GATEWAYS; i++)); do wait_ready "http://127.0.0.1:$((GATEWAY_BASE_PORT + i - 1))/readyz" "gateway-$i"; done
  for ((i = 1; i <= WORKERS; i++)); do wait_ready "http://127.0.0.1:$((WORKER_METRICS_BASE_PORT + i - 1))/readyz" "worker-$i"; done
  start_haproxy
  cat <<EOF

realtime-gateway local cluster is up
  URL (demo page, Socket.IO, publish API):  http://$LB_HOST:$LB_PORT/
  balancer: HAProxy round-robin, $(if [ "$LB_STICKY" = 1 ]; then echo "cookie affinity (LB_STICKY=1)"; else echo "no cookies (LB_STICKY=1 adds cookie affinity)"; fi)
  gateways: $GATEWAYS (ports $GATEWAY_BASE_PORT..$((GATEWAY_BASE_PORT + GATEWAYS - 1)), metrics $GATEWAY_METRICS_BASE_PORT..)
  workers:  $WORKERS (ports $WORKER_BASE_PORT.., metrics $WORKER_METRICS_BASE_PORT..)
  redis:    redis://127.0.0.1:$REDIS_PORT (AOF in $RUN_DIR/redis)
  token:    make token USER=alice        (a JWT valid for this cluster; ROLES=admin for /admin)
  API key:  $API_KEY
            curl -X POST http://$LB_HOST:$LB_PORT/api/v1/publish -H 'Authorization: Bearer $API_KEY' \\
                 -H 'content-type: application/json' -d '{"room":"lobby","event":"news","data":{"hello":"world"}}'
  logs:     $RUN_DIR/logs/
  stop:     make down
EOF
}

start_one() { # name
  local name="${1:-}" i
  [ -n "$name" ] || die "usage: $0 start-one gateway-<i>|worker-<i>|redis|haproxy"
  [ -f "$RUN_DIR/cluster.env" ] || die "no cluster was started from $RUN_DIR (run up first)"
  # shellcheck disable=SC1091
  . "$RUN_DIR/cluster.env"
  need_tools
  secrets
  if pid_alive "$name"; then die "$name is already running (pid $(cat "$RUN_DIR/$name.pid"))"; fi
  case "$name" in
    redis) start_redis ;;
    haproxy) start_haproxy ;;
    gateway-*)
      i="${name#gateway-}"
      if ! [[ "$i" =~ ^[0-9]+$ ]] || [ "$i" -lt 1 ] || [ "$i" -gt "$GATEWAYS" ]; then die "no such gateway: $name (1..$GATEWAYS)"; fi
      start_gateway "$i"
      wait_ready "http://127.0.0.1:$((GATEWAY_BASE_PORT + i - 1))/readyz" "$name"
      ;;
    worker-*)
      i="${name#worker-}"
      if ! [[ "$i" =~ ^[0-9]+$ ]] || [ "$i" -lt 1 ] || [ "$i" -gt "$WORKERS" ]; then die "no such worker: $name (1..$WORKERS)"; fi
      start_worker "$i"
      wait_ready "http://127.0.0.1:$((WORKER_METRICS_BASE_PORT + i - 1))/readyz" "$name"
      ;;
    *) die "unknown process $name (gateway-<i>, worker-<i>, redis, haproxy)" ;;
  esac
  log "$name started (pid $(cat "$RUN_DIR/$name.pid"))"
}

scale() { # n
  local n="${1:-}" cur i p pids=()
  if ! [[ "$n" =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ]; then
    die "usage: make scale GATEWAYS=<n> (a whole number of gateways, 1 or more; got \"$n\")"
  fi
  [ -f "$RUN_DIR/cluster.env" ] || die "no cluster was started from $RUN_DIR (run make up first)"
  # shellcheck disable=SC1091
  . "$RUN_DIR/cluster.env"
  need_tools
  secrets
  pid_alive haproxy || die "haproxy is not running (make up first)"
  cur="$GATEWAYS"
  if [ "$n" -eq "$cur" ]; then
    log "the cluster already runs $cur gateways"
    return 0
  fi
  if [ "$n" -gt "$cur" ]; then
    for ((i = cur + 1; i <= n; i++)); do
      pid_alive "gateway-$i" && die "gateway-$i is already running (pid $(cat "$RUN_DIR/gateway-$i.pid"))"
      for p in "$((GATEWAY_BASE_PORT + i - 1))" "$((GATEWAY_METRICS_BASE_PORT + i - 1))"; do
        port_busy "$p" && die "port $p (gateway-$i) is in use: free it, or start the cluster with another GATEWAY_BASE_PORT / GATEWAY_METRICS_BASE_PORT"
      done
    done
    for ((i = cur + 1; i <= n; i++)); do start_gateway "$i"; done
    for ((i = cur + 1; i <= n; i++)); do wait_ready "http://127.0.0.1:$((GATEWAY_BASE_PORT + i - 1))/readyz" "gateway-$i"; done
    GATEWAYS="$n"
    save_settings
    reload_haproxy
    log "scaled out to $n gateways (started gateway-$((cur + 1))..gateway-$n); the others move connections to them (rebalancing)"
  else
    # Out of the balancer first, so that the clients they drain reconnect to the remaining ones.
    GATEWAYS="$n"
    save_settings
    reload_haproxy
    for ((i = n + 1; i <= cur; i++)); do
      stop_pid "gateway-$i" TERM &
      pids+=("$!")
    done
    wait "${pids[@]}"
    log "scaled in to $n gateways (gateway-$((n + 1))..gateway-$cur drained and stopped)"
  fi
}

stop_pid() { # name signal
  local f="$RUN_DIR/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid="$(cat "$f")"
  if alive "$pid"; then
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a paused (SIGSTOP) process acts on the signal only once resumed
    for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
    if alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$f"
}

down() {
  [ -d "$RUN_DIR" ] || { log "nothing is running ($RUN_DIR does not exist)"; return 0; }
  local f name
  stop_pid haproxy
  for f in "$RUN_DIR"/gateway-*.pid "$RUN_DIR"/worker-*.pid; do
    [ -e "$f" ] || continue
    name="$(basename "$f" .pid)"
    stop_pid "$name" TERM &
  done
  wait
  stop_pid redis
  log "local cluster stopped"
}

status() {
  local f pid
  for f in "$RUN_DIR"/*.pid; do
    [ -e "$f" ] || { log "nothing is running"; return 0; }
    pid="$(cat "$f")"
    if alive "$pid"; then echo "$(basename "$f" .pid) running (pid $pid)"; else echo "$(basename "$f" .pid) dead"; fi
  done
}

token() {
  local user="${1:-}" roles="${2:-}"
  [ -n "$user" ] || die "usage: make token USER=<id> [ROLES=admin]"
  secrets
  JWT_SECRET="$JWT_SECRET" node "$ROOT/scripts/dev-token.js" "$user" "$roles"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  token) shift; token "$@" ;;
  start-one) shift; start_one "$@" ;;
  scale) shift; scale "$@" ;;
  *) die "usage: $0 up|down|status|token <user> [roles]|start-one <name>|scale <n>" ;;
esac
