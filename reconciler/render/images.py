"""Image references from `images.yaml`: which image a runtime runs, and how a reference splits.

A digest (`repo@sha256:...`) is immutable and never re-resolved; any tag is resolved to a digest
at plan time (`render.pins`) so "the tag moved" shows up as an update. A registry host with a
port (`localhost:5000/x`) is not a tag.
"""

from __future__ import annotations

from reconciler.model.config import ImagesFile


def split_reference(ref: str) -> tuple[str, str | None, str | None]:
    """`repo[:tag][@digest]` -> (repo, tag, digest); a `:port` in the registry host is not a tag."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    tag = None
    if ":" in last:
        ref, tag = ref.rsplit(":", 1)
    return ref, tag, digest


def has_registry_host(repo: str) -> bool:
    first = repo.split("/", 1)[0]
    return "/" in repo and ("." in first or ":" in first or first == "localhost")


def image_for(runtime: str, images: ImagesFile | None) -> str | None:
    if images is None or runtime not in images.images:
        return None
    ref = images.images[runtime]
    if images.registry_prefix and not has_registry_host(ref):
        ref = f"{images.registry_prefix.rstrip('/')}/{ref}"
    return ref
