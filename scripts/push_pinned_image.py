"""Push a byte-for-byte reproducible demo runtime image to the local registry and print its digest.

`docker build` stamps build times into images, so the same Dockerfile gives a new digest on every
machine. The example repo pins one runtime by digest (`images.yaml`), so that image is assembled
here instead: one uncompressed OCI layer (busybox-static + images/entrypoint.sh, fixed mtimes and
owners), a config with a fixed creation date, pushed through the registry v2 API.

    python3 scripts/push_pinned_image.py [--registry 127.0.0.1:5000] [--name workspace-template-hermes]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
APPLETS = [
    "sh",
    "httpd",
    "wget",
    "sleep",
    "cat",
    "ls",
    "mv",
    "cp",
    "rm",
    "mkdir",
    "test",
    "echo",
    "find",
    "tar",
    "sed",
    "sort",
    "dirname",
    "kill",
    "touch",
    "rmdir",
]
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def _add(
    tar: tarfile.TarFile,
    name: str,
    data: bytes | None = None,
    mode: int = 0o755,
    link: str | None = None,
    directory: bool = False,
) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", mode
    if directory:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    else:
        info.size = len(data or b"")
        tar.addfile(info, io.BytesIO(data or b""))


def build_layer(runtime: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for d in ("bin", "configs", "tmp"):
            _add(tar, d, directory=True, mode=0o1777 if d == "tmp" else 0o755)
        _add(tar, "bin/busybox", Path("/bin/busybox").read_bytes())
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", link="busybox", mode=0o777)
        _add(tar, "entrypoint.sh", (ROOT / "images" / "entrypoint.sh").read_bytes())
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def push(registry: str, name: str, runtime: str, tag: str) -> str:
    layer = build_layer(runtime)
    config = canonical(
        {
            "architecture": "amd64" if not Path("/lib/ld-linux-aarch64.so.1").exists() else "arm64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {
                "Entrypoint": ["/entrypoint.sh"],
                "Env": ["PATH=/bin", f"RUNTIME={runtime}", "HEALTH_PORT=8080", "HEALTH_PATH=/health"],
            },
            "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "scripts/push_pinned_image.py"}],
        }
    )
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [{"mediaType": LAYER_TYPE, "digest": sha(layer), "size": len(layer)}],
        }
    )
    base = f"http://{registry}/v2/{name}"
    with httpx.Client(timeout=30) as client:
        for blob in (layer, config):
            if client.head(f"{base}/blobs/{sha(blob)}").status_code == 200:
                continue
            start = client.post(f"{base}/blobs/uploads/")
            start.raise_for_status()
            location = start.headers["Location"]
            sep = "&" if "?" in location else "?"
            url = location if location.startswith("http") else f"http://{registry}{location}"
            client.put(
                f"{url}{sep}digest={sha(blob)}", content=blob, headers={"Content-Type": "application/octet-stream"}
            ).raise_for_status()
        put = client.put(
            f"{base}/manifests/{tag}",
            content=manifest,
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
        put.raise_for_status()
        return put.headers.get("Docker-Content-Digest", sha(manifest))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", default="127.0.0.1:5000")
    parser.add_argument("--runtime", default="hermes")
    parser.add_argument("--tag", default="pinned")
    args = parser.parse_args()
    try:
        digest = push(args.registry, f"workspace-template-{args.runtime}", args.runtime, args.tag)
    except (httpx.HTTPError, OSError) as exc:
        print(f"push_pinned_image: {exc}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
