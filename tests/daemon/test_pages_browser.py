"""The run pages in a real browser: the daemon's pages app under uvicorn on loopback (as `reconciler
run` serves it), a journal holding a small history (a revision that converged, a review of the next
one, that next one failing its canary health gate), and headless Chromium loading `/runs` and
`/runs/<id>`. What is asserted is what a person sees once the browser has built the page: the DOM
(`--dump-dom`: the strip of outcomes and its links, the plan table, each action, the timeline's
bars and where it failed) and a screenshot (`--screenshot`, kept in the test's tmp dir) that shows
the bars in their colours. No JavaScript runs on these pages, and none may come from the run.

Chromium comes from `scripts/setup.sh` (Debian's `chromium` package); without it these tests fail.
"""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from reconciler.daemon.journal import Journal
from reconciler.daemon.metrics import Metrics
from reconciler.daemon.service import http_server
from reconciler.daemon.web import build_apps
from reconciler.logs import mask_secret
from reconciler.report.timeline import FAIL_COLOUR, FILL, GATE_FILL
from tests.support.run_results import BAD, GATE_MESSAGE, GOOD, HOSTILE, SECRET, write_runs

pytestmark = pytest.mark.docker  # a real browser: installed by scripts/setup.sh, not by this checkout

WINDOW = (1280, 900)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is not installed: the run-page browser tests need it. Run scripts/setup.sh "
                    "(as root: it apt-get installs Debian's chromium), then run these tests again.", pytrace=False)
    return path


@dataclass
class Site:
    url: str
    ids: dict[str, int]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    mask_secret(SECRET)
    journal = Journal(tmp_path_factory.mktemp("journal") / "journal.sqlite")
    ids = write_runs(journal)
    health = {"loop_alive": True, "branch": "main", "last_success": 1000.0}
    app, _ = build_apps(journal, Metrics(), lambda: health, None)
    server = http_server(app)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start the pages on loopback"
        time.sleep(0.02)
    try:
        yield Site(f"http://127.0.0.1:{sock.getsockname()[1]}", ids)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        journal.close()


def browse(chromium: str, profile: Path, *args: str) -> str:
    """Headless Chromium; its stdout (the DOM with `--dump-dom`)."""
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done.stdout


def dom(chromium: str, tmp_path: Path, url: str) -> Dom:
    return Dom.parse(browse(chromium, tmp_path / "profile", "--dump-dom", url))


def screenshot(chromium: str, tmp_path: Path, url: str, name: str) -> Png:
    path = tmp_path / f"{name}.png"
    browse(chromium, tmp_path / "profile", f"--screenshot={path}", f"--window-size={WINDOW[0]},{WINDOW[1]}", url)
    assert path.is_file(), f"chromium wrote no screenshot at {path}"
    return Png.read(path)


# ---- what the browser built ----------------------------------------------------------------------
@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: str = ""  # all the text inside, children's included
    parent: Element | None = None

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def title(self) -> str:
        """The `<title>` child's text: a tooltip in SVG."""
        return self.attrs.get("_title", "")


class Dom(HTMLParser):
    """The elements of a page in document order, each with its parent and its text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self._open: list[Element] = []

    @classmethod
    def parse(cls, markup: str) -> Dom:
        parsed = cls()
        parsed.feed(markup)
        parsed.close()
        return parsed

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs}, parent=self._open[-1] if self._open else None)
        self.elements.append(element)
        if tag not in ("meta", "br", "img", "input", "link", "rect", "line", "path"):
            self._open.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, {k: v or "" for k, v in attrs},
                                     parent=self._open[-1] if self._open else None))

    def handle_endtag(self, tag: str) -> None:
        if all(e.tag != tag for e in self._open):  # `</rect>` and the like: never opened, nothing to close
            return
        while self._open:
            element = self._open.pop()
            if element.tag == tag:
                if tag == "title" and element.parent is not None:
                    element.parent.attrs["_title"] = element.text
                break

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.text += data

    def all(self, tag: str, cls: str | None = None) -> list[Element]:
        return [e for e in self.elements if e.tag == tag and (cls is None or cls in e.classes)]

    def text(self) -> str:
        return " ".join(self.all("body")[0].text.split())

    def table_after(self, heading: str) -> list[list[str]]:
        """The rows of the first table after the `<h2>` saying `heading`, as cell texts."""
        index = next(i for i, e in enumerate(self.elements) if e.tag == "h2" and e.text == heading)
        table = next(e for e in self.elements[index:] if e.tag == "table")
        rows = [e for e in self.elements if e.tag == "tr" and e.parent is not None and _inside(e, table)]
        return [[" ".join(c.text.split()) for c in self.elements if c.tag in ("td", "th") and c.parent is r]
                for r in rows]


def _inside(element: Element, ancestor: Element) -> bool:
    parent = element.parent
    while parent is not None:
        if parent is ancestor:
            return True
        parent = parent.parent
    return False


@dataclass
class Png:
    """An 8-bit RGB(A) PNG decoded with zlib alone, kept as a histogram of its colours: enough to tell
    what was drawn (the common filters are undone with whole-row operations: it takes a second)."""

    width: int
    height: int
    histogram: Counter[tuple[int, int, int]]

    @classmethod
    def read(cls, path: Path) -> Png:
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
        chunks: dict[bytes, bytes] = {}
        idat, at = b"", 8
        while at < len(data):
            length, kind = struct.unpack(">I4s", data[at:at + 8])
            body = data[at + 8:at + 8 + length]
            if kind == b"IDAT":
                idat += body
            else:
                chunks[kind] = body
            at += 12 + length
        width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
        assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
        bpp = 3 if colour == 2 else 4
        raw, stride = zlib.decompress(idat), width * bpp
        low = int.from_bytes(b"\x7f" * stride, "big")
        high = int.from_bytes(b"\x80" * stride, "big")
        histogram: Counter[tuple[int, int, int]] = Counter()
        previous = bytes(stride)
        for y in range(height):
            kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
            if kind == 1:  # Sub: a running sum per channel
                for c in range(bpp):
                    summed: list[int] = list(accumulate(line[c::bpp], _add_byte))
                    line[c::bpp] = bytes(summed)
            elif kind == 2:  # Up: bytewise addition mod 256 of two whole rows, carries kept in each byte
                x, p = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
                line = bytearray((((x & low) + (p & low)) ^ ((x ^ p) & high)).to_bytes(stride, "big"))
            elif kind in (3, 4):  # Average, Paeth: byte by byte
                for i in range(stride):
                    a = line[i - bpp] if i >= bpp else 0
                    b, c = previous[i], previous[i - bpp] if i >= bpp else 0
                    if kind == 3:
                        line[i] = (line[i] + (a + b) // 2) & 255
                    else:
                        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                        line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
            previous = bytes(line)
            histogram.update(zip(previous[0::bpp], previous[1::bpp], previous[2::bpp], strict=True))
        return cls(width, height, histogram)

    def count(self, colour: str, tolerance: int = 8) -> int:
        """Pixels within `tolerance` of `colour` (#rrggbb) on each channel."""
        want = bytes.fromhex(colour.removeprefix("#"))
        return sum(n for rgb, n in self.histogram.items() if all(abs(rgb[k] - want[k]) <= tolerance for k in range(3)))

    def colours(self) -> int:
        return len(self.histogram)


def _add_byte(total: int, value: int) -> int:
    return (total + value) & 255


# ---- the pages -------------------------------------------------------------------------------------
def test_runs_page_shows_a_strip_of_outcomes_per_revision_linking_to_each_run(
        chromium: str, site: Site, tmp_path: Path) -> None:
    page = dom(chromium, tmp_path, f"{site.url}/runs")
    strip = page.all("table", "strip")[0]
    revisions = [" ".join(e.text.split()) for e in page.elements if e.tag == "code" and _inside(e, strip)]
    assert revisions == [BAD[:12], GOOD[:12]]  # newest revision first
    squares = [e for e in page.all("a", "sq") if _inside(e, strip)]
    assert [(e.attrs["href"], e.classes - {"sq"}) for e in squares] == [
        (f"runs/{site.ids['review']}", {"s-planned", "review"}),  # oldest to newest: the review, then the run
        (f"runs/{site.ids['bad']}", {"s-failed"}),
        (f"runs/{site.ids['good']}", {"s-success"}),
    ]
    bad = squares[1]
    assert bad.attrs["title"].startswith(f"run #{site.ids['bad']}: apply (push): failed, ")
    assert GATE_MESSAGE in bad.attrs["title"] and bad.attrs["aria-label"] == f"run #{site.ids['bad']}: failed"
    for square in squares:  # each square opens its run
        with urllib.request.urlopen(f"{site.url}/{square.attrs['href']}", timeout=10) as answer:
            assert answer.status == 200 and f"Run #{square.attrs['href'].split('/')[-1]}:" in answer.read().decode()
    table = page.table_after("All runs")
    assert table[0] == ["run", "kind", "commit", "trigger", "status", "started", "took", "message"]
    assert [row[:5] for row in table[1:]] == [
        [f"#{site.ids['bad']}", "apply", BAD[:12], "push", "failed"],
        [f"#{site.ids['review']}", "review", BAD[:12], "pull_request", "planned"],
        [f"#{site.ids['good']}", "apply", GOOD[:12], "push", "success"]]
    assert page.all("script") == [] and SECRET not in page.text()
    shot = screenshot(chromium, tmp_path, f"{site.url}/runs", "runs")
    assert (shot.width, shot.height) == WINDOW and shot.colours() > 8
    assert shot.count("#d12f2f") >= 100 and shot.count("#2e9d5b") >= 100  # a red and a green square at least


def test_a_failed_run_page_shows_the_plan_each_action_and_where_the_timeline_failed(
        chromium: str, site: Site, tmp_path: Path) -> None:
    url = f"{site.url}/runs/{site.ids['bad']}"
    page = dom(chromium, tmp_path, url)
    assert [" ".join(h.text.split()) for h in page.all("h1")] == [f"Run #{site.ids['bad']}: failed"]
    assert page.table_after("Plan") == [["action", "tier", "workspace", "reason"],
                                        ["update", "canary", "acme/ws0", "spec changed"],
                                        ["recreate", "canary", "acme/ws1", "spec changed"]]
    actions = page.table_after("Actions")
    assert [row[:4] for row in actions[1:]] == [["canary", "acme/ws0", "update", "success"],
                                               ["canary", "acme/ws1", "recreate", "success"]]

    svg = page.all("svg", "timeline")[0]
    bars = [e for e in page.elements if e.tag == "g" and _inside(e, svg) and e.classes & {"tier", "action", "gate"}]
    assert [(sorted(e.classes), e.attrs.get("data-workspace", e.attrs["data-tier"])) for e in bars] == [
        (["failed", "tier"], "canary"), (["action", "success"], "acme/ws0"), (["action", "success"], "acme/ws1"),
        (["failed", "gate"], "canary"), (["skipped", "tier"], "production")]
    assert [e.attrs["data-start"] for e in bars[1:4]] == ["0.200", "0.200", "2.200"]  # the gate: after ws1
    assert "not applied: canary failed" in bars[4].text
    [marker] = [e for e in page.all("g", "failure") if _inside(e, svg)]
    tooltip = marker.title()
    assert tooltip.startswith("failed here: canary health gate: failed, 1/2 healthy after 20.0s; "
                              "unhealthy: acme/ws1 — ") and GATE_MESSAGE in tooltip
    assert HOSTILE in tooltip  # quoted as text: the browser made no element of it
    assert "Failed at 22.2s: canary health gate: failed" in page.text()

    assert page.all("script") == [] and all(not k.startswith("on") for e in page.elements for k in e.attrs)
    assert SECRET not in page.text() and SECRET not in tooltip and "token=***" in tooltip
    links = {e.attrs["href"] for e in page.all("a")}
    assert "../runs" in links
    with urllib.request.urlopen(urljoin(url, "../runs"), timeout=10) as answer:
        assert answer.status == 200

    shot = screenshot(chromium, tmp_path, url, "failed-run")
    assert (shot.width, shot.height) == WINDOW and shot.colours() > 8
    assert shot.count(FILL["failed"]) >= 2000  # the failed gate's 20 s bar
    assert shot.count(FILL["success"]) >= 300  # the two actions
    assert shot.count(FAIL_COLOUR, tolerance=4) >= 20  # the marker


def test_a_passed_run_page_draws_both_tiers_with_their_gate_waits(
        chromium: str, site: Site, tmp_path: Path) -> None:
    url = f"{site.url}/runs/{site.ids['good']}"
    page = dom(chromium, tmp_path, url)
    svg = page.all("svg", "timeline")[0]
    rows = [(e.parent.attrs["data-tier"], e.text) for e in page.all("text") if e.parent is not None
            and _inside(e, svg) and e.parent.classes & {"tier", "action", "gate"}]
    assert rows == [("canary", "canary · success"), ("canary", "acme/ws0 create"), ("canary", "acme/ws1 update"),
                    ("canary", "health gate 2/2"), ("production", "production · success"),
                    ("production", "acme/ws2 recreate"), ("production", "health gate 1/1"),
                    ("production", "acme/old delete")]
    assert page.all("g", "failure") == [] and "Failed at" not in page.text()
    axis = [" ".join(e.text.split()) for e in page.elements if e.tag == "text" and e.parent is not None
            and "axis" in e.parent.classes]
    assert axis == ["0s", "2s", "4s", "6s", "8s", "10s", "12s"]
    shot = screenshot(chromium, tmp_path, url, "passed-run")
    assert shot.count(GATE_FILL["success"]) >= 1000  # the two gate waits
    assert shot.count(FILL["failed"]) <= 16 * 16  # the legend's swatch: no red bar


def test_the_pages_stay_light(site: Site) -> None:
    for path in ("/runs", f"/runs/{site.ids['bad']}"):
        with urllib.request.urlopen(f"{site.url}{path}", timeout=10) as answer:
            body: Any = answer.read().decode()
        style = re.search(r"<style>(.*?)</style>", body, re.S)
        assert style is not None and len(style.group(1)) < 3000, len(style.group(1)) if style else None
        assert len(body) < 30_000 and "<script" not in body.lower()
