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
command -v chromium >/dev/null || need_apt+=(chromium)  # headless, for tests/daemon/test_pages_browser.py
command -v git >/dev/null || need_apt+=(git)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

scripts/test-env.sh start
scripts/build-images.sh
pinned=$(python3 scripts/push_pinned_image.py --runtime hermes)
grep -q "$pinned" examples/org-repo/images.yaml || {
  echo "setup: the reproducible hermes image is $pinned but examples/org-repo/images.yaml pins another digest;" \
       "images/entrypoint.sh changed? update the pin" >&2; exit 1; }
scripts/demo-forge.sh

# A demo value for the secret the example names (values never live in git).
secrets_dir=${RECONCILER_SECRETS_DIR:-$HOME/.config/reconciler/secrets}
if [ ! -e "$secrets_dir/ANTHROPIC_API_KEY" ]; then
  mkdir -p "$secrets_dir" && chmod 700 "$secrets_dir"
  (umask 077; echo "demo-not-a-real-key" >"$secrets_dir/ANTHROPIC_API_KEY")
  echo "setup: wrote a demo ANTHROPIC_API_KEY to $secrets_dir (replace it for real use)" >&2
fi
# The operator policy of the example as this machine's default (never read from a config repo).
policy=${XDG_CONFIG_HOME:-$HOME/.config}/reconciler/policy.yaml
if [ ! -e "$policy" ]; then
  mkdir -p "$(dirname "$policy")" && cp examples/policy.yaml "$policy"
  echo "setup: installed the example operator policy as $policy (edit it for real use)" >&2
fi
echo "setup: done. Next: reconciler apply --source examples/org-repo" >&2
