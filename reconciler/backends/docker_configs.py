"""What goes into a workspace's /configs volume, and the shell that swaps it in atomically.

Two ways in, both through the engine's archive API (no host path of a volume is ever touched):

- fresh volume, container created but not started: one tar put straight into the container at
  /configs, final layout, each plugin's completion marker `plugins/<name>/.installed` (the resolved
  SHA) as that plugin's last member; nothing runs yet, so nothing can see a half-written tree.
- existing volume (update, recreate, rollback): a short-lived helper container of the runtime
  image (which therefore must ship /bin/sh and busybox-level cp/mv/rm/mkdir) gets the new content
  staged at /configs/.staging-files and /configs/plugins/.staging-<name>, then `SYNC_SCRIPT`:
    1. leftovers of an interrupted swap: a completed install is kept, else the previous is put back
    2. once per pending change, the current content is copied to the snapshot volume (/snapshot)
    3. top-level files mirror .staging-files (entries gone from files_dir are removed)
    4. each plugin: previous version renamed to plugins/.prev-<name>, staged one renamed in, then
       the marker is written; if the swap fails the previous version is renamed back
  `RESTORE_SCRIPT` puts a complete snapshot back (rollback).
The `plugins/` entry of a files_dir is reserved for plugins and skipped.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import tarfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from reconciler.model.desired import PluginPinRef

log = logging.getLogger(__name__)

STAGING_FILES = ".staging-files"
RESERVED_TOP = {"plugins", STAGING_FILES}

SYNC_SCRIPT = r"""
set -eu
cd /configs
mkdir -p plugins
for p in plugins/.prev-*; do
  [ -e "$p" ] || continue
  n=${p#plugins/.prev-}
  if [ -e "plugins/$n/.installed" ]; then rm -rf "$p"; else rm -rf "plugins/$n"; mv "$p" "plugins/$n"; fi
done
rm -rf ./.prev-files-*
if [ "$SNAPSHOT" = 1 ] && [ ! -e /snapshot/.complete ]; then
  rm -rf /snapshot/* /snapshot/.[!.]* /snapshot/..?*
  for e in * .[!.]* ..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    [ "$e" = .staging-files ] || cp -a "$e" /snapshot/
  done
  rm -rf /snapshot/plugins/.staging-* /snapshot/plugins/.prev-*
  touch /snapshot/.complete
fi
if [ -d .staging-files ]; then
  for e in * .[!.]* ..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    case $e in plugins|.staging-files) continue;; esac
    [ -e ".staging-files/$e" ] || [ -L ".staging-files/$e" ] || rm -rf "$e"
  done
  for s in .staging-files/* .staging-files/.[!.]* .staging-files/..?*; do
    [ -e "$s" ] || [ -L "$s" ] || continue
    e=${s#.staging-files/}
    if [ -d "$e" ] || [ -d "$s" ]; then rm -rf ".prev-files-$e"; [ ! -e "$e" ] || mv "$e" ".prev-files-$e"; fi
    if mv "$s" "$e"; then rm -rf ".prev-files-$e"; else
      [ ! -e ".prev-files-$e" ] || mv ".prev-files-$e" "$e"
      echo "reconciler: replacing /configs/$e failed" >&2; exit 3
    fi
  done
  rm -rf .staging-files
fi
for p in plugins/* plugins/.[!.]* plugins/..?*; do
  [ -e "$p" ] || [ -L "$p" ] || continue
  n=${p#plugins/}
  case $n in .staging-*|.prev-*) continue;; esac
  case " $PLUGINS_KEEP " in *" $n "*) ;; *) rm -rf "$p";; esac
done
for spec in $PLUGINS_INSTALL; do
  n=${spec%%=*}; sha=${spec#*=}
  rm -rf "plugins/.prev-$n"
  [ ! -e "plugins/$n" ] || mv "plugins/$n" "plugins/.prev-$n"
  if mv "plugins/.staging-$n" "plugins/$n"; then
    echo "$sha" >"plugins/$n/.installed.tmp"
    mv "plugins/$n/.installed.tmp" "plugins/$n/.installed"
    rm -rf "plugins/.prev-$n"
  else
    rm -rf "plugins/$n"; [ ! -e "plugins/.prev-$n" ] || mv "plugins/.prev-$n" "plugins/$n"
    echo "reconciler: installing plugin $n failed; the previous version is back" >&2; exit 3
  fi
done
rm -rf plugins/.staging-*
"""

RESTORE_SCRIPT = r"""
set -eu
[ -e /snapshot/.complete ] || { echo "reconciler: no complete snapshot, /configs left as is"; exit 0; }
cd /configs
rm -rf ./* ./.[!.]* ./..?*
cp -a /snapshot/. /configs/
rm -f /configs/.complete
"""


def _add_tree(tar: tarfile.TarFile, src: Path, dest: str, *, skip_top: set[str], skip_any: set[str]) -> None:
    """Add the regular files and directories under `src` as `dest/...` (symlinks are skipped)."""
    prefix = "" if dest == "." else f"{dest}/"
    if prefix:
        _add_dir(tar, dest)
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        rel = Path(dirpath).relative_to(src)
        top = rel == Path(".")
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in skip_any and not (top and d in skip_top) and not os.path.islink(os.path.join(dirpath, d))
        )
        for d in dirnames:
            _add_dir(tar, f"{prefix}{(rel / d).as_posix()}")
        for f in sorted(filenames):
            full = os.path.join(dirpath, f)
            st = os.lstat(full)
            if (top and f in skip_top) or not stat.S_ISREG(st.st_mode):
                log.warning("not copied into /configs (reserved name or not a regular file)", extra={"file": full})
                continue
            info = tarfile.TarInfo(f"{prefix}{(rel / f).as_posix()}")
            info.size = st.st_size
            info.mode = 0o755 if st.st_mode & 0o111 else 0o644
            info.mtime = int(st.st_mtime)
            with open(full, "rb") as fh:
                tar.addfile(info, fh)


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


def _add_text(tar: tarfile.TarFile, name: str, text: str) -> None:
    data = text.encode()
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def installable(plugins: Iterable[PluginPinRef]) -> list[PluginPinRef]:
    """Plugins with a local checkout to install (the others are left as they are in the volume)."""
    return [p for p in plugins if p.local_path]


def configs_archive(files_root: str | None, plugins: Sequence[PluginPinRef], *, staged: bool) -> bytes:
    """The tar for /configs: final layout (`staged=False`, fresh volume) or staged for SYNC_SCRIPT."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        files_dest = STAGING_FILES if staged else "."
        if files_root:
            _add_tree(tar, Path(files_root), files_dest, skip_top=RESERVED_TOP, skip_any=set())
        elif staged:
            _add_dir(tar, STAGING_FILES)  # no files_dir: the sync empties the top level
        _add_dir(tar, "plugins")
        for plugin in installable(plugins):
            dest = f"plugins/.staging-{plugin.name}" if staged else f"plugins/{plugin.name}"
            _add_tree(tar, Path(str(plugin.local_path)), dest, skip_top={".installed"}, skip_any={".git"})
            if not staged:
                _add_text(tar, f"{dest}/.installed", f"{plugin.resolved_sha or ''}\n")
    return buf.getvalue()


def sync_env(plugins: Sequence[PluginPinRef], *, snapshot: bool) -> dict[str, str]:
    """Environment of the sync helper: which plugins to keep and which staged ones to swap in."""
    return {
        "SNAPSHOT": "1" if snapshot else "0",
        "PLUGINS_KEEP": " ".join(sorted(p.name for p in plugins)),
        "PLUGINS_INSTALL": " ".join(f"{p.name}={p.resolved_sha or 'unknown'}" for p in installable(plugins)),
    }
