#!/usr/bin/env bash
# Start (or stop) the real components the reconciler and its tests talk to, all on loopback:
#   - a Docker engine (vfs storage, no iptables/bridge: this machine has neither) on /var/run/docker.sock
#   - a distribution registry (Debian's docker-registry) on 127.0.0.1:5000
# Idempotent: components already answering are left alone.
set -euo pipefail
STATE=${RECONCILER_TEST_ENV_DIR:-/tmp/reconciler-test-env}
REGISTRY_ADDR=${RECONCILER_TEST_REGISTRY:-127.0.0.1:5000}
mkdir -p "$STATE"

wait_for() {  # wait_for <what> <seconds> <command...>
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "test-env: $what did not come up within ${secs}s; see $STATE/*.log" >&2
  return 1
}

start() {
  if ! docker version >/dev/null 2>&1; then
    command -v dockerd >/dev/null || { echo "test-env: dockerd missing: run scripts/setup.sh" >&2; exit 1; }
    nohup dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
      >"$STATE/dockerd.log" 2>&1 &
    wait_for "docker engine" 60 docker version
  fi
  if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    command -v docker-registry >/dev/null || { echo "test-env: docker-registry missing: run scripts/setup.sh" >&2; exit 1; }
    cat >"$STATE/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $STATE/registry-data}, delete: {enabled: true}}
http: {addr: $REGISTRY_ADDR}
YML
    nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
    wait_for "registry" 30 curl -fsS "http://$REGISTRY_ADDR/v2/"
  fi
  echo "test-env: docker engine and registry ($REGISTRY_ADDR) are up" >&2
}

stop() {
  pkill -f "docker-registry serve $STATE/registry.yml" || true
  pkill -x dockerd || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
