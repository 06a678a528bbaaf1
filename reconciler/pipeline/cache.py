"""What a long-running process keeps between passes so a pass that finds nothing to do is cheap.

A tree exported at one commit never changes, so its render is kept by (revision, secrets
fingerprint); the pinned state by that plus what upstream answered (digests, plugin SHAs) and the
`track: none` SHAs that run. A tree that used `!external` is not kept: its refs may move upstream.
Plain directories (no revision) are never kept. A few entries only (the head and the one before).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from reconciler.model.desired import DesiredState


class PassCache:
    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, DesiredState] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> DesiredState | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: Hashable, state: DesiredState) -> None:
        with self._lock:
            self._entries[key] = state
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def through(self, key: Hashable | None, make: Callable[[], DesiredState]) -> DesiredState:
        """The kept value for `key`, or `make()` kept under it (`key` None: not kept)."""
        if key is None:
            return make()
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found
