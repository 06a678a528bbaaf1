"""Progress of a long command on stderr: fetching the source, resolving pins, each tier, its actions
and its health gate.

On a terminal, what is under way is one live line rewritten in place (`fetching ...`, `resolving
pins: 3 ...`, `canary: health gate: 2/3 healthy (5s)`) and what is done stays as a line (the fetched
revision, the pins resolved, each action, how each gate and tier ended). Elsewhere (CI logs, a pipe)
there is no live line: one plain line per event, and a gate says its healthy count each time it
changes. stdout is never written: it carries the command's result (the plan, the JSON).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from reconciler.model.desired import PluginPinRef
from reconciler.model.enums import Outcome
from reconciler.model.events import ActionDone, ApplyEvent, GateDone, GateProgress, GateStarted, TierDone, TierStarted
from reconciler.pipeline.compose import Parts
from reconciler.render.pins import PinResolver
from reconciler.source.checkout import Checkout, is_git_source


def stderr_is_tty() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM", "") != "dumb"


class Progress:
    """The progress printer of one command (thread-safe: actions end on pool threads)."""

    def __init__(self, stream: TextIO | None = None, *, tty: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self.tty = stderr_is_tty() if tty is None else tty
        self.clock = clock
        self._live = ""  # the live line on screen (tty only)
        self._pins: _PinCount | None = None  # pins resolved so far, until the next step starts
        self._healthy: dict[str, int] = {}  # tier -> the healthy count last printed (plain lines)
        self._lock = threading.RLock()

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr  # looked up late: a test runner swaps sys.stderr

    def line(self, text: str) -> None:
        """A line that stays (a finished step replaces the live line)."""
        with self._lock:
            self._settle()
            self._write(("\r\x1b[K" if self._live else "") + text + "\n")
            self._live = ""

    def live(self, text: str) -> None:
        """What is under way: rewritten in place on a terminal, printed as a line elsewhere."""
        with self._lock:
            if not self.tty:
                self._write(text + "\n")
                return
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            text = text if len(text) <= width else text[: width - 1] + "…"
            self._write("\r\x1b[K" + text)
            self._live = text

    def close(self) -> None:
        """Nothing live left behind (the result comes next)."""
        with self._lock:
            self._settle()
            if self._live:
                self._write("\r\x1b[K")
                self._live = ""

    # steps of a pass -------------------------------------------------------------------------

    def fetch(self, source: str, ref: str | None, checkout: Callable[[], Checkout]) -> Checkout:
        """`checkout()` of a git source, told: `fetching S` while it runs, then `fetched S: ref at sha
        (1.2s)`. A plain directory has nothing to fetch and says nothing."""
        if not is_git_source(source):
            return checkout()
        started = self.clock()
        self.live(f"fetching {source}" + (f" ({ref})" if ref else "") + (" ..." if self.tty else ""))
        try:
            tree = checkout()
        except BaseException:
            self.close()
            raise
        self.line(f"fetched {source}: {tree.ref or 'HEAD'} at {(tree.revision or '?')[:12]} "
                  f"({self.clock() - started:.1f}s)")
        return tree

    def pin(self, what: str, resolved: str, seconds: float) -> None:
        """One pin resolved: plain line each; on a terminal a running count, then one summary line."""
        with self._lock:
            if self._pins is None:
                self._pins = _PinCount(started=self.clock() - seconds)
            self._pins.count += 1
            if self.tty:
                self.live(f"resolving pins: {self._pins.count} ({what})")
            else:
                self.line(f"pin: {what} -> {resolved} ({seconds:.1f}s)")

    def event(self, event: ApplyEvent) -> None:
        """An apply event (`on_event` of a pass)."""
        with self._lock:
            if isinstance(event, TierStarted):
                self.line(f"{event.tier}: {event.changes} change(s), {event.unchanged} unchanged")
            elif isinstance(event, ActionDone):
                r = event.result
                self.line(f"  {r.outcome}: {r.kind} {r.workspace_id} ({r.duration_s:.1f}s)"
                          + (f": {r.message}" if r.outcome is not Outcome.SUCCESS and r.message else ""))
            elif isinstance(event, GateStarted):
                if event.total:  # a tier that changed nothing has nothing to wait for: no gate lines
                    self._healthy[event.tier] = 0
                    self.line(f"{event.tier}: health gate, waiting for {event.total} workspace(s)")
            elif isinstance(event, GateProgress):
                self._gate(event)
            elif isinstance(event, GateDone):
                g = event.result
                if self._healthy.pop(g.tier, None) is not None:
                    self.line(f"{g.tier}: health gate {g.outcome}: {g.message} ({g.duration_s:.1f}s)")
            elif isinstance(event, TierDone):
                t = event.result
                rolled = f", {len(t.rolled_back)} rolled back" if t.rolled_back else ""
                self.line(f"{t.tier}: {t.outcome}{rolled} ({t.duration_s:.1f}s)")

    def _gate(self, event: GateProgress) -> None:
        text = f"{event.tier}: health gate: {event.healthy}/{event.total} healthy"
        if self.tty:
            self.live(f"{text} ({event.elapsed_s:.0f}s)")
        elif self._healthy.get(event.tier) != event.healthy:  # a line when the count moves, not every poll
            self._healthy[event.tier] = event.healthy
            self.line(text)

    def _settle(self) -> None:
        """Close the pin count: on a terminal its summary line replaces the running count."""
        pins, self._pins = self._pins, None
        if pins is not None and self.tty:
            self._write(f"\r\x1b[Kpins: {pins.count} resolved ({self.clock() - pins.started:.1f}s)\n")
            self._live = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: progress is never worth failing for
            pass


@dataclass
class _PinCount:
    started: float
    count: int = 0


class ReportingResolver:
    """A pin resolver that tells `progress` each pin it resolved (and how long it took)."""

    def __init__(self, inner: PinResolver, progress: Progress) -> None:
        self.inner, self.progress = inner, progress

    def image_digest(self, ref: str) -> str:
        started = time.monotonic()
        digest = self.inner.image_digest(ref)
        self.progress.pin(f"image {ref}", digest[:19], time.monotonic() - started)
        return digest

    def plugin(self, pin: PluginPinRef) -> tuple[str, Path]:
        started = time.monotonic()
        sha, local = self.inner.plugin(pin)
        self.progress.pin(f"plugin {pin.name} ({pin.track})", sha[:12], time.monotonic() - started)
        return sha, local


@dataclass
class ReportingParts(Parts):
    """The pass's parts, with pin resolution reported as it goes (the same resolver underneath)."""

    progress: Progress | None = None

    @classmethod
    def of(cls, parts: Parts, progress: Progress | None) -> Parts:
        if progress is None:
            return parts
        fields = {name: getattr(parts, name) for name in parts.__dataclass_fields__
                  if parts.__dataclass_fields__[name].init}
        return cls(**fields, progress=progress)

    def resolver(self) -> PinResolver:
        inner = super().resolver()
        return ReportingResolver(inner, self.progress) if self.progress is not None else inner
