"""Config errors as annotations, for people and for CI: `--format text|json|github`. Pure, no I/O.

    text     error: orgs/acme/org.yaml:13:5: unknown key 'teir'; did you mean `tier`?
               3 more errors follow from this one and are not shown
    json     [{"file": "orgs/acme/org.yaml", "line": 13, "column": 5, "message": "...", "severity": "error"}]
    github   ::error file=orgs/acme/org.yaml,line=13,col=5::unknown key 'teir'; did you mean `tier`?

`github` is the workflow command syntax of GitHub Actions, which Gitea (act_runner) reads too: each
line becomes an annotation on the file and line of the pull request. Escaping follows the Actions
toolkit: in the message `%`, CR and LF; in a property value also `:` and `,`. A line that follows
from an error (`N more errors follow ...`) is a `notice` at the same place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

from reconciler.errors import ConfigError, ConfigErrors, followers_note


class OutputFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    GITHUB = "github"


SEVERITIES = ("error", "warning", "notice")


@dataclass(frozen=True)
class Annotation:
    """One message about a place in the config repo (`file` None: about no file in particular)."""

    file: str | None
    line: int | None
    column: int | None
    message: str
    severity: str = "error"

    @property
    def where(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}:{self.column or 1}"
        return self.file or ""

    def as_json(self) -> dict[str, object]:
        return asdict(self)


def from_errors(exc: ConfigError) -> list[Annotation]:
    """Every error shown, each cause followed by a notice of how many errors follow from it."""
    lines = exc.lines() if isinstance(exc, ConfigErrors) else [(exc, 0)]
    out: list[Annotation] = []
    for error, followers in lines:
        at = error.location
        file, line, column = (at.file, at.line or None, at.column or None) if at else (None, None, None)
        out.append(Annotation(file, line, column, error.message))
        if followers:
            out.append(Annotation(file, line, column, followers_note(followers), "notice"))
    return out


_LOCATED = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$", re.S)
_FILE_ONLY = re.compile(r"^(?P<file>[^\s]+\.ya?ml): (?P<message>.*)$", re.S)
_NOTE = re.compile(r"^\s+(?P<message>\d+ more errors? follows? from this one and (?:is|are) not shown)$")


def from_lines(lines: Iterable[str]) -> list[Annotation]:
    """Annotations from error lines as `str(ConfigErrors)` writes them (`file:line:col: message`, a
    cause's indented followers note under it), for outcomes that carry errors as text."""
    out: list[Annotation] = []
    for text in lines:
        if not text.strip():
            continue
        note = _NOTE.match(text)
        if note and out:
            last = out[-1]
            out.append(Annotation(last.file, last.line, last.column, note["message"], "notice"))
        elif located := _LOCATED.match(text):
            out.append(Annotation(located["file"], int(located["line"]) or None, int(located["column"]) or None,
                                  located["message"]))
        elif file_only := _FILE_ONLY.match(text):
            out.append(Annotation(file_only["file"], None, None, file_only["message"]))
        else:
            out.append(Annotation(None, None, None, text.strip()))
    return out


def count_errors(annotations: Iterable[Annotation]) -> int:
    return sum(1 for a in annotations if a.severity == "error")


# ---- the three formats ---------------------------------------------------------------------------
def to_text(annotations: Iterable[Annotation]) -> list[str]:
    """`error: file:line:col: message`; a notice under an error is indented beneath it."""
    out: list[str] = []
    for a in annotations:
        if a.severity == "notice" and out:
            out.append(f"  {a.message}")
        else:
            out.append(f"{a.severity}: {a.where}: {a.message}" if a.where else f"{a.severity}: {a.message}")
    return out


def to_json(annotations: Iterable[Annotation]) -> str:
    return json.dumps([a.as_json() for a in annotations], indent=2)


def escape_data(text: str) -> str:
    """A workflow command's message: `%`, CR and LF escaped (in that order: `%` first)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as `escape_data`, and `:` and `,` too."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def in_workspace(file: str) -> bool:
    """Whether a file name can stand as an annotation's `file`: a relative path in the checked-out
    repository (not a file of a fetched `!external` tree, `host/owner/repo@ref:path`, nor an absolute path)."""
    fetched = "@" in file and ":" in file.split("@", 1)[1]
    return not file.startswith("/") and not fetched


def to_github(annotations: Iterable[Annotation], prefix: str = "") -> list[str]:
    """`::error file=F,line=L,col=C::message`, one line each. `prefix` is where the config repo sits in
    the workspace the runner checked out (`deploy/config`), joined before each file name. A place that
    is not a file of the workspace goes into the message instead."""
    out: list[str] = []
    for a in annotations:
        severity = a.severity if a.severity in SEVERITIES else "error"
        props: list[str] = []
        message = a.message
        if a.file and in_workspace(a.file):
            file = f"{prefix.rstrip('/')}/{a.file}" if prefix else a.file
            props.append(f"file={escape_property(file)}")
            if a.line:
                props.append(f"line={a.line}")
                if a.column:
                    props.append(f"col={a.column}")
        elif a.file:
            message = f"{a.where}: {message}"
        out.append(f"::{severity}{' ' + ','.join(props) if props else ''}::{escape_data(message)}")
    return out


def render(annotations: list[Annotation], output_format: OutputFormat, prefix: str = "") -> list[str]:
    """The lines of `annotations` in `output_format` (json: one document)."""
    if output_format is OutputFormat.JSON:
        return [to_json(annotations)]
    if output_format is OutputFormat.GITHUB:
        return to_github(annotations, prefix)
    return to_text(annotations)
