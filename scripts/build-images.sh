#!/usr/bin/env bash
# Build the demo agent runtime images and push them to the local registry. Idempotent and quick
# when already built (inputs are hashed into an image label; a matching image is not rebuilt).
#   1. local/busybox:latest   from /bin/busybox (busybox-static) via `docker import` when missing
#   2. workspace-template-<runtime>:latest for each runtime (keys of `images:` in
#      examples/org-repo/images.yaml when it exists, else: claude-code langgraph hermes)
#   3. tag + push $REGISTRY/workspace-template-<runtime>:latest, and also any other tag of that
#      repository that images.yaml names on this registry (digest pins: scripts/push_pinned_image.py).
# Requires a running engine and registry: scripts/test-env.sh start.
set -euo pipefail
cd "$(dirname "$0")/.."
REGISTRY=${RECONCILER_TEST_REGISTRY:-127.0.0.1:5000}
IMAGES_YAML=${IMAGES_YAML:-examples/org-repo/images.yaml}
BASE=local/busybox:latest
APPLETS="sh httpd wget sleep cat ls mv cp rm mkdir test echo find tar sed sort dirname kill touch rmdir"
export DOCKER_BUILDKIT=0  # no buildx plugin here; the classic builder needs nothing else

docker version >/dev/null 2>&1 || { echo "build-images: no docker engine: run scripts/test-env.sh start" >&2; exit 1; }

# 1. base image
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  [ -x /bin/busybox ] || { echo "build-images: /bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/configs"
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for a in $APPLETS; do ln -s busybox "$root/bin/$a"; done
  tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' --change 'CMD ["/bin/sh"]' - "$BASE" >/dev/null
  echo "build-images: imported $BASE" >&2
fi

# 2. runtimes and the refs images.yaml asks for
mapfile -t lines < <(python3 - "$IMAGES_YAML" <<'PY'
import sys, pathlib
path = pathlib.Path(sys.argv[1])
images = {}
if path.exists():
    import yaml
    images = (yaml.safe_load(path.read_text()) or {}).get("images") or {}
for runtime in images or ["claude-code", "langgraph", "hermes"]:
    print(runtime, images.get(runtime, ""))
PY
)

inputs_hash=$( (cat images/Dockerfile images/entrypoint.sh; docker image inspect -f '{{.Id}}' "$BASE") | sha256sum | cut -c1-16)
for line in "${lines[@]}"; do
  runtime=${line%% *}; ref=${line#* }
  local_tag="workspace-template-$runtime:latest"
  current=$(docker image inspect -f '{{index .Config.Labels "reconciler.demo-inputs"}}' "$local_tag" 2>/dev/null || true)
  if [ "$current" != "$inputs_hash-$runtime" ]; then
    if ! out=$(docker build -q --build-arg "RUNTIME=$runtime" --label "reconciler.demo-inputs=$inputs_hash-$runtime" \
        -t "$local_tag" images 2>&1); then
      echo "$out" >&2; echo "build-images: building $local_tag failed" >&2; exit 1
    fi
    echo "build-images: built $local_tag" >&2
  fi
  targets=("$REGISTRY/workspace-template-$runtime:latest")
  case "$ref" in
    *@sha256:*) ;;  # digest pins are built reproducibly by scripts/push_pinned_image.py
    "$REGISTRY/workspace-template-$runtime:"*) [ "$ref" = "${targets[0]}" ] || targets+=("$ref") ;;
  esac
  for target in "${targets[@]}"; do
    name=${target#"$REGISTRY"/}
    remote=$(curl -fsSI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
      "http://$REGISTRY/v2/${name%:*}/manifests/${name##*:}" 2>/dev/null \
      | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p' || true)
    same_image=$([ "$(docker image inspect -f '{{.Id}}' "$local_tag")" = \
      "$(docker image inspect -f '{{.Id}}' "$target" 2>/dev/null)" ] && echo yes || echo no)
    pushed=$(docker image inspect -f '{{join .RepoDigests " "}}' "$target" 2>/dev/null || true)
    if [ "$same_image" != yes ] || [ -z "$remote" ] || [[ " $pushed " != *" $REGISTRY/${name%:*}@$remote "* ]]; then
      docker tag "$local_tag" "$target"
      docker push -q "$target" >/dev/null
      echo "build-images: pushed $target" >&2
    fi
  done
done
