#!/usr/bin/env bash
# Start (or stop) the real components the reconciler and its tests talk to, all on loopback:
#   - a Docker engine (vfs storage, no iptables/bridge: this machine has neither) on /var/run/docker.sock,
#     or on the unix socket DOCKER_HOST names (then with its data under $STATE: a second engine that
#     leaves a workstation's own alone)
#   - a distribution registry (Debian's docker-registry) on 127.0.0.1:5000
# Idempotent: components already answering are left alone. `stop` stops only what `start` started,
# by the pid (and that process's start time) it recorded in $STATE/<name>.pid: an engine or registry
# that was already running, a workstation's own dockerd say, is never touched.
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

started_at() {  # started_at <pid>: the process's start time (ticks since boot); empty once it is gone
  local stat fields
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  read -r -a fields <<<"${stat##*) }"  # the fields after "(comm)": state is [0], starttime [19]
  [ "${fields[0]}" = Z ] || echo "${fields[19]}"
}

record() {  # record <name> <pid>
  echo "$2 $(started_at "$2")" >"$STATE/$1.pid"
}

recorded() {  # recorded <name>: prints the pid `start` recorded for <name> while that very process runs
  local pid="" since=""
  if [ -r "$STATE/$1.pid" ]; then read -r pid since <"$STATE/$1.pid" || true; fi
  [ -n "$pid" ] && [ -n "$since" ] && [ "$(started_at "$pid")" = "$since" ] && echo "$pid"
}

engine_args() {  # dockerd's arguments for DOCKER_HOST (none for the default socket)
  case "${DOCKER_HOST:-}" in
    "" | unix:///var/run/docker.sock | unix:///run/docker.sock) ;;
    unix://*) echo "-H $DOCKER_HOST --data-root $STATE/docker-data --exec-root $STATE/docker-exec" \
                   "--pidfile $STATE/docker-engine.pid" ;;
    *) echo "test-env: DOCKER_HOST=$DOCKER_HOST: only an engine on a unix socket can be started here" >&2
       return 1 ;;
  esac
}

start() {
  if ! docker version >/dev/null 2>&1; then
    command -v dockerd >/dev/null || { echo "test-env: dockerd missing: run scripts/setup.sh" >&2; exit 1; }
    if ! recorded dockerd >/dev/null; then  # not one of ours that is still coming up
      local args; args=$(engine_args)
      # shellcheck disable=SC2086  # engine_args prints paths without spaces
      nohup dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none $args \
        >"$STATE/dockerd.log" 2>&1 &
      record dockerd $!
    fi
    wait_for "docker engine" 60 docker version
  fi
  if ! curl -fsS "http://$REGISTRY_ADDR/v2/" >/dev/null 2>&1; then
    command -v docker-registry >/dev/null || { echo "test-env: docker-registry missing: run scripts/setup.sh" >&2; exit 1; }
    if ! recorded registry >/dev/null; then
      cat >"$STATE/registry.yml" <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $STATE/registry-data}, delete: {enabled: true}}
http: {addr: $REGISTRY_ADDR}
YML
      nohup docker-registry serve "$STATE/registry.yml" >"$STATE/registry.log" 2>&1 &
      record registry $!
    fi
    wait_for "registry" 30 curl -fsS "http://$REGISTRY_ADDR/v2/"
  fi
  echo "test-env: docker engine and registry ($REGISTRY_ADDR) are up" >&2
}

stop_one() {  # stop_one <name> <seconds to wait before SIGKILL>
  local name=$1 secs=$2 pid
  if ! pid=$(recorded "$name"); then
    if [ -e "$STATE/$name.pid" ]; then
      rm -f "$STATE/$name.pid"
      echo "test-env: the $name this script started has already exited" >&2
    else
      echo "test-env: no $name started by this script (none recorded in $STATE): any running one is left alone" >&2
    fi
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 $((secs * 10))); do [ -n "$(started_at "$pid")" ] || break; sleep 0.1; done
  if [ -n "$(started_at "$pid")" ]; then
    echo "test-env: $name (pid $pid) did not stop within ${secs}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/$name.pid"
  echo "test-env: stopped the $name it had started (pid $pid)" >&2
}

stop() {
  stop_one registry 10
  stop_one dockerd 60  # it stops its containers first (up to its shutdown timeout, 15 s)
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
