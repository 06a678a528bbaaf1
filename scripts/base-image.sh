#!/usr/bin/env bash
# A local base image for the daemon's Dockerfile (`--build-arg BASE=<it>`), made from Debian packages
# alone, for machines that reach Debian's mirror but no image registry (this one, CI):
#   debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd <release> <dir> <mirror>
#   tar -C <dir> -c . | docker import - <tag>
# The release is the host's (Debian 12: bookworm, Python 3.11), the mirror the first one the host's
# apt sources list for it (or $RECONCILER_DEBIAN_MIRROR). Prints the image's tag on stdout, progress
# on stderr. Cached twice, so a second run takes a second:
#   - the image: nothing is done while the tag exists in the engine;
#   - the root filesystem as a tarball in $RECONCILER_CACHE_DIR (default /var/cache/reconciler as
#     root, else ~/.cache/reconciler): an engine wiped since is refilled from it without a download.
# The tag and the tarball's name carry a hash of the release, mirror, package list and architecture.
# Needs root (debootstrap) the first time; scripts/setup.sh installs debootstrap.
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "base-image: $*" >&2; exit 1; }

# shellcheck source=/dev/null
release=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
[ -n "$release" ] || die "cannot tell the host's Debian release (no VERSION_CODENAME in /etc/os-release)"
arch=$(dpkg --print-architecture 2>/dev/null) || die "dpkg missing: this needs a Debian host"
packages=python3,python3-venv,ca-certificates,passwd  # passwd: useradd, for the image's non-root user

host_mirror() {  # the first URI the apt sources list for "$release" (deb822 .sources or one-line .list)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v rel="$release" '
      /^[ \t]*$/ { if (uri != "" && suite && deb) { print uri; exit } uri = ""; suite = 0; deb = 0; next }
      tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
      tolower($1) == "uris:" { uri = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == rel) suite = 1 }
      END { if (uri != "" && suite && deb) print uri }' "$f" | head -n1
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v rel="$release" '$1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
      if ($(i + 1) == rel) { print $i; exit } }' "$f"  # deb [options] URI suite components
  done
}
mirror=${RECONCILER_DEBIAN_MIRROR:-}
[ -n "$mirror" ] || mirror=$(host_mirror | head -n1 || true)
mirror=${mirror:-http://deb.debian.org/debian}

key=$(printf '%s\n' "$release" "$mirror" "$packages" "$arch" minbase v2 | sha256sum | cut -c1-12)
tag=local/reconciler-base:$release-$key
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/reconciler; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/reconciler; fi
cache=${RECONCILER_CACHE_DIR:-$default_cache}
tarball=$cache/base-$release-$arch-$key.tar.gz

docker version >/dev/null 2>&1 || die "no Docker engine answers (${DOCKER_HOST:-unix:///var/run/docker.sock}): scripts/test-env.sh start"
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi

mkdir -p "$cache" || die "cannot create the cache directory $cache"
exec 9>"$cache/base-image.lock"
flock 9  # one maker at a time; whoever waited finds the work done
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi

if [ ! -s "$tarball" ]; then
  [ "$(id -u)" = 0 ] || die "the base image is not built yet and debootstrap needs root: run $0 as root"
  command -v debootstrap >/dev/null || die "debootstrap missing: run scripts/setup.sh (or apt-get install debootstrap)"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  chmod 755 "$root"  # the image's / (mktemp made it 0700: no other user could reach anything)
  cleanup() {  # whatever debootstrap left mounted in the tree first (it unmounts on its own normally)
    awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r umount -l 2>/dev/null || true
    rm -rf "$root" "$tarball.tmp"
  }
  trap cleanup EXIT
  echo "base-image: debootstrap $release ($packages) from $mirror into $root (a few minutes)" >&2
  start=$SECONDS
  if ! debootstrap --variant=minbase --arch="$arch" --include="$packages" "$release" "$root" "$mirror" \
      >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2
    die "debootstrap failed (above; whole log: $cache/debootstrap.log$([ -e "$root/debootstrap/debootstrap.log" ] && echo ", $root/debootstrap/debootstrap.log"))"
  fi
  # What an image never needs: downloaded packages, package lists, docs; the host's name.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/* "$root"/etc/hostname
  chroot "$root" python3 -c 'import sys, ensurepip, venv, ssl; assert sys.version_info[:2] >= (3, 11)' ||
    die "the debootstrapped tree's python3 cannot make a venv or lacks ssl"
  echo "base-image: packing the tree ($(du -sh "$root" | cut -f1)) into $tarball" >&2
  tar --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -C "$root" -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  trap - EXIT
  echo "base-image: debootstrap and pack took $((SECONDS - start))s" >&2
fi

echo "base-image: importing $tarball as $tag" >&2
docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' --message "debootstrap --variant=minbase $release ($packages) from $mirror" \
  "$tarball" "$tag" >/dev/null || die "docker import of $tarball failed"
echo "$tag"
