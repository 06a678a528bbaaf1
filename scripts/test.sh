#!/usr/bin/env bash
# The test command: make sure the real components are up (Docker engine, registry, demo images),
# then lint (ruff), type-check (mypy) and run the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test-env.sh start
[ -x scripts/build-images.sh ] && scripts/build-images.sh >/dev/null
python3 -m ruff check --quiet . || { echo "test: ruff found problems (above)" >&2; exit 1; }
python3 -m mypy --no-error-summary || { echo "test: mypy found problems (above)" >&2; exit 1; }
lint-imports --no-cache >/dev/null || { lint-imports --no-cache; echo "test: an import contract is broken (above)" >&2; exit 1; }
exec python3 -m pytest -q -p no:cacheprovider "$@"
