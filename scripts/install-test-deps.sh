#!/usr/bin/env bash
# Installs what the test suites need beyond npm: Debian packages (as root, with apt-get; otherwise
# prints the exact command and fails) and python-socketio for the cross-language e2e test.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v haproxy >/dev/null || need+=(haproxy)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${need[*]} with apt-get" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
if ! python3 -c 'import socketio, websocket' 2>/dev/null; then
  python3 -m pip install -q "python-socketio[client]" 2>/dev/null || python3 -m pip install -q --break-system-packages "python-socketio[client]"
fi
