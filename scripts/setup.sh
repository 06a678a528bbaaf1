#!/usr/bin/env bash
# One-time setup on a fresh Debian 12 machine (as root): system packages, the Python package with
# its test extras, the local Docker engine + registry, and the demo runtime images.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v dockerd >/dev/null || need_apt+=(docker.io)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v docker-registry >/dev/null || need_apt+=(docker-registry)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v git >/dev/null || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

scripts/test-env.sh start
scripts/build-images.sh
