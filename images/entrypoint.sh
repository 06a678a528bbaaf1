#!/bin/sh
# Demo agent runtime: plays the part of a real agent image for tests and demos.
#  - reads /configs and prints what it found (files, plugins with their install markers);
#  - serves an HTTP health endpoint with busybox httpd on ${HEALTH_PORT:-8080}${HEALTH_PATH:-/health};
#  - FAILS that endpoint while AGENT_FAIL_HEALTH=1 is set or the file /configs/FAIL_HEALTH exists
#    (checked every second, so an in-place config update can flip it), so a canary can fail on purpose;
#  - stays running until SIGTERM/SIGINT, which it honours at once (fast `docker stop`).
set -u
CONFIGS=${CONFIGS_DIR:-/configs}
PORT=${HEALTH_PORT:-8080}
HPATH=${HEALTH_PATH:-/health}
WWW=/tmp/www

echo "agent: workspace=${WORKSPACE_ID:-?} parent=${PARENT_ID:-} model=${MODEL:-?} runtime=${RUNTIME:-?}"
if [ -d "$CONFIGS" ]; then
  echo "agent: files in $CONFIGS:"
  find "$CONFIGS" -type f ! -path "$CONFIGS/plugins/*" | sort | sed 's/^/agent:   /'
  for marker in "$CONFIGS"/plugins/*/.installed; do
    [ -f "$marker" ] || continue
    name=${marker%/.installed}; name=${name##*/}
    echo "agent: plugin $name at $(cat "$marker")"
  done
else
  echo "agent: no $CONFIGS directory"
fi

mkdir -p "$WWW$(dirname "$HPATH")"
should_fail() {
  [ "${AGENT_FAIL_HEALTH:-0}" = "1" ] || [ -e "$CONFIGS/FAIL_HEALTH" ]
}
update_health() {
  if should_fail; then rm -f "$WWW$HPATH"; else echo ok >"$WWW$HPATH"; fi
}
update_health
should_fail && echo "agent: told to fail its health check"

httpd -f -p "127.0.0.1:$PORT" -h "$WWW" &
HTTPD=$!
trap 'kill "$HTTPD" 2>/dev/null; echo "agent: stopping"; exit 0' TERM INT

while :; do
  update_health
  kill -0 "$HTTPD" 2>/dev/null || { echo "agent: health server died" >&2; exit 1; }
  sleep 1 &
  wait $!
done
