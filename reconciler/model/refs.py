"""The shapes of git names every layer checks: a full commit SHA and a ref name. Pure, no I/O."""

from __future__ import annotations

import re

SHA_HEX = r"[0-9a-f]{40}"
REF_CHARS = r"[A-Za-z0-9_./-]+"
FULL_SHA = re.compile(rf"^{SHA_HEX}$")
REF_PATTERN = re.compile(rf"^{REF_CHARS}$")


def is_safe_ref(ref: str) -> bool:
    """A branch or tag name of letters, digits and `_ . / -` only, without `..`."""
    return REF_PATTERN.fullmatch(ref) is not None and ".." not in ref
