#!/usr/bin/env bash
# Start the demo forge (the example's plugin repositories over smart-HTTP git) on 127.0.0.1:3000
# in the background, unless something already answers there. Logs: /tmp/reconciler-demo-forge.log
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${RECONCILER_DEMO_FORGE_PORT:-3000}
if curl -fs -o /dev/null "http://127.0.0.1:$PORT/agents/notes.git/info/refs?service=git-upload-pack"; then
  echo "demo-forge: already serving on 127.0.0.1:$PORT" >&2
  exit 0
fi
nohup python3 scripts/demo_forge.py --port "$PORT" >/tmp/reconciler-demo-forge.log 2>&1 &
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$PORT/agents/notes.git/info/refs?service=git-upload-pack" && {
    echo "demo-forge: serving the example's plugin repos on 127.0.0.1:$PORT" >&2; exit 0; }
  sleep 0.1
done
echo "demo-forge: did not start; see /tmp/reconciler-demo-forge.log" >&2
exit 1
