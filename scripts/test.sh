#!/usr/bin/env bash
# The test command: make sure the real components are up (Docker engine, registry, demo images),
# then run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh start
[ -x scripts/build-images.sh ] && scripts/build-images.sh >/dev/null
exec python3 -m pytest -q -p no:cacheprovider "$@"
