#!/usr/bin/env bash
# The test command: make sure the real components are up (Docker engine, registry, demo images),
# then lint (ruff), type-check (mypy), check the import contracts, lint both Dockerfiles (hadolint)
# and run the whole suite, all with the virtual environment scripts/setup.sh made (.venv, or
# $RECONCILER_VENV): its python runs the tools, and is the `python3` of every script and subprocess
# the tests start. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RECONCILER_VENV:-$PWD/.venv}
PY=$VENV/bin/python
if [ ! -x "$PY" ] || [ ! -x "$VENV/bin/lint-imports" ] || [ ! -x "$VENV/bin/hadolint" ]; then
  echo "test: no virtual environment with the test extras at $VENV: run scripts/setup.sh first" >&2; exit 1
fi
export VIRTUAL_ENV=$VENV PATH=$VENV/bin:$PATH
scripts/test-env.sh start
[ -x scripts/build-images.sh ] && scripts/build-images.sh >/dev/null
if [ $# -eq 0 ]; then  # the whole suite: the daemon image test's local base (debootstrap, minutes the
  # first time on a machine) is made in the background meanwhile; the test waits for it (one maker at
  # a time) and, should this attempt fail, makes it again itself and says why
  scripts/base-image.sh >"${TMPDIR:-/tmp}/reconciler-base-image.log" 2>&1 &
fi
"$PY" -m ruff check --quiet . || { echo "test: ruff found problems (above)" >&2; exit 1; }
"$PY" -m mypy --no-error-summary || { echo "test: mypy found problems (above)" >&2; exit 1; }
"$VENV/bin/lint-imports" --no-cache >/dev/null || {
  "$VENV/bin/lint-imports" --no-cache; echo "test: an import contract is broken (above)" >&2; exit 1; }
"$VENV/bin/hadolint" Dockerfile images/Dockerfile || { echo "test: hadolint found problems in a Dockerfile (above)" >&2; exit 1; }
exec "$PY" -m pytest -q -p no:cacheprovider "$@"
