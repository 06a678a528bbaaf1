"""Safe YAML loading with positions: every mapping and list remembers where it and its items came from.

Only plain YAML data plus two custom tags are accepted: `!include path.yaml` and
`!external {repo, ref, path, url?}`. Both are returned as unresolved references (`IncludeRef`,
`ExternalRef`) so the renderer resolves them only where a workspace may stand, and only for
subtrees that are spawned: a `spawning: false` subtree never causes a fetch.

Hostile input is bounded: file size, alias expansion (billion laughs), recursive aliases, duplicate
keys, any other tag (e.g. `!!python/object`) is a `ConfigError` naming file:line:column.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import ConfigError, Location

MAX_FILE_BYTES = 1024 * 1024
MAX_EXPANDED_NODES = 200_000
MAX_DEPTH = 100  # YAML nesting levels (a workspace tree 16 deep is ~50)

_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",  # kept as the string written
}
_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class TreeContext:
    """Where a file sits: the tree it may not leave, the base `files_dir` resolves against, and
    how to name it in messages. An `!external` subtree gets a context of its own."""

    root: Path  # realpath of the tree (repo root or fetched tree)
    files_base: Path  # directory `files_dir` is relative to
    label: str = ""  # prefix for display names of files in a fetched tree ("repo@ref:")
    external_depth: int = 0

    def display(self, path: Path) -> str:
        try:
            rel = path.relative_to(self.root).as_posix()
        except ValueError:
            rel = path.as_posix()
        return f"{self.label}{rel}"


class LocDict(dict[str, Any]):
    """A mapping that knows its own location, its keys' and its values' locations."""

    loc: Location
    key_locs: dict[str, Location]
    value_locs: dict[str, Location]
    written: dict[str, str]  # how a non-string scalar value was written (`0755`, `off`, `1:30`), for messages
    ctx: TreeContext

    def without(self, *keys: str) -> LocDict:
        """A copy without `keys`, keeping every location."""
        out = LocDict((k, v) for k, v in self.items() if k not in keys)
        out.loc, out.ctx = self.loc, self.ctx
        out.key_locs, out.value_locs, out.written = self.key_locs, self.value_locs, self.written
        return out


class LocList(list[Any]):
    loc: Location
    item_locs: list[Location]
    ctx: TreeContext


@dataclass(frozen=True)
class IncludeRef:
    path: str
    loc: Location
    ctx: TreeContext
    file: Path  # the including file
    chain: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class ExternalRef:
    repo: str
    ref: str
    path: str
    url: str | None
    loc: Location
    ctx: TreeContext


def location_of(node: yaml.Node, display: str) -> Location:
    return Location(display, node.start_mark.line + 1, node.start_mark.column + 1)


def read_bounded(path: Path, display: str, at: Location | None = None) -> str:
    """Read a config file, refusing anything over MAX_FILE_BYTES before reading it whole."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ConfigError(
                f"{display} is {size} bytes, over the {MAX_FILE_BYTES} byte limit; split it with !include",
                at or Location(display),
            )
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{display} is not UTF-8 text ({exc.reason})", at or Location(display)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {display}: {exc.strerror}", at or Location(display)) from None


def confine(root: Path, base: Path, relative: str, what: str, at: Location) -> Path:
    """Resolve `relative` against `base`, following symlinks, and refuse anything outside `root`."""
    if not relative or os.path.isabs(relative) or relative.startswith("~"):
        raise ConfigError(f"{what} {relative!r} must be a relative path inside the repository", at)
    if "\x00" in relative:
        raise ConfigError(f"{what} {relative!r} contains a NUL byte", at)
    resolved = Path(os.path.realpath(base / relative))
    if resolved != root and root not in resolved.parents:
        raise ConfigError(
            f"{what} {relative!r} resolves outside the repository (by '..' or a symlink); keep it inside the repo",
            at,
        )
    return resolved


class _Builder:
    """Turns a composed node graph into LocDict/LocList/scalars for one file."""

    def __init__(self, file: Path, ctx: TreeContext, chain: tuple[str, ...]) -> None:
        self.file = file
        self.ctx = ctx
        self.display = ctx.display(file)
        self.chain = chain
        self.scalars = yaml.constructor.SafeConstructor()

    def loc(self, node: yaml.Node) -> Location:
        return location_of(node, self.display)

    def build(self, node: yaml.Node) -> Any:
        if node.tag == "!include":
            if not isinstance(node, yaml.ScalarNode):
                raise ConfigError("!include takes a path, e.g. `!include team.yaml`", self.loc(node))
            return IncludeRef(str(node.value), self.loc(node), self.ctx, self.file, self.chain)
        if node.tag == "!external":
            return self._external(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ:
                raise self._bad_tag(node)
            out = LocList(self.build(item) for item in node.value)
            out.loc, out.ctx = self.loc(node), self.ctx
            out.item_locs = [self.loc(item) for item in node.value]
            return out
        if node.tag not in _SCALAR_TAGS:
            raise self._bad_tag(node)
        if node.tag in (_STR, "tag:yaml.org,2002:timestamp"):
            return str(node.value)
        return self.scalars.construct_object(node)

    def _mapping(self, node: yaml.MappingNode) -> LocDict:
        if node.tag != _MAP:
            raise self._bad_tag(node)
        out = LocDict()
        out.loc, out.ctx, out.key_locs, out.value_locs, out.written = self.loc(node), self.ctx, {}, {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConfigError("YAML merge keys (<<) are not supported; use org `defaults`", self.loc(key_node))
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                raise ConfigError("mapping keys must be plain strings", self.loc(key_node))
            key = str(key_node.value)
            if key in out:
                first = out.key_locs[key]
                raise ConfigError(
                    f"duplicate key {key!r} (first at line {first.line}); remove one of them", self.loc(key_node)
                )
            out[key] = self.build(value_node)
            out.key_locs[key] = self.loc(key_node)
            out.value_locs[key] = self.loc(value_node)
            if isinstance(value_node, yaml.ScalarNode) and value_node.tag in _SCALAR_TAGS - {_STR}:
                out.written[key] = str(value_node.value)
        return out

    def _external(self, node: yaml.Node) -> ExternalRef:
        if not isinstance(node, yaml.MappingNode):
            raise ConfigError("!external takes a mapping {repo, ref, path, url?}", self.loc(node))
        node.tag = _MAP
        spec = self._mapping(node)
        unknown = sorted(set(spec) - {"repo", "ref", "path", "url"})
        missing = sorted({"repo", "ref", "path"} - set(spec))
        if unknown or missing:
            parts = ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing {missing}"] if missing else [])
            raise ConfigError(f"!external: {', '.join(parts)}; it takes repo, ref, path and optional url", spec.loc)
        if not all(isinstance(spec[k], str) for k in spec):
            raise ConfigError("!external: repo, ref, path and url must be strings", spec.loc)
        return ExternalRef(spec["repo"], spec["ref"], spec["path"], spec.get("url"), spec.loc, self.ctx)

    def _bad_tag(self, node: yaml.Node) -> ConfigError:
        return ConfigError(
            f"tag {node.tag!r} is not allowed; only plain YAML, !include and !external are accepted", self.loc(node)
        )


def _measure(root: yaml.Node, display: str) -> tuple[int, int]:
    """(node count with aliases expanded, nesting depth), computed without expanding aliases and
    without recursion, so neither an alias bomb nor a 10,000-deep document can blow the stack.

    An alias inside the node it refers to (`a: &a [*a]`) makes the graph a cycle that no builder
    could finish: it is a ConfigError at the node holding the alias. The nodes on the current
    path are those entered and not yet finished (`open`)."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    depth = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, level, done = stack.pop()
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size.get(id(c), 1) for c in _children(node))
            continue
        if level > depth:
            depth = level
            if depth > MAX_DEPTH:
                return 0, depth
        if id(node) in size or isinstance(node, yaml.ScalarNode):
            continue  # measured already (a shared alias is measured once), or a leaf: size 1
        children = _children(node)
        open_.add(id(node))
        back = next((c for c in children if id(c) in open_), None)
        if back is not None:
            anchored = location_of(back, display)
            raise ConfigError(
                f"recursive alias: it refers to the node anchored at line {anchored.line}, column "
                f"{anchored.column}, which contains it; an alias may not stand inside its own anchor",
                location_of(node, display),
            )
        size[id(node)] = 1  # placeholder until finished
        stack.append((node, level, True))
        stack.extend((c, level + 1, False) for c in children if id(c) not in size)
    return size.get(id(root), 1), depth


def _depth(root: yaml.Node) -> tuple[int, int]:
    """(node count, nesting depth) of a document without aliases (a tree), iteratively."""
    count = depth = 0
    stack = [(root, 1)]
    while stack:
        node, level = stack.pop()
        count += 1
        if level > depth:
            depth = level
            if depth > MAX_DEPTH:
                break
        if not isinstance(node, yaml.ScalarNode):
            stack.extend((child, level + 1) for child in _children(node))
    return count, depth


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def yaml_problem(exc: yaml.MarkedYAMLError, display: str) -> ConfigError:
    """A YAML syntax error in words, at the place to fix: where an unclosed quote or bracket opens,
    else where the parser stopped."""
    problem, context = exc.problem or "", exc.context or ""
    opened = exc.context_mark
    at_open = f"line {opened.line + 1}, column {opened.column + 1}" if opened else "above"
    mark = exc.problem_mark or opened
    words = f"{problem or context}"
    if "tab character" in problem:
        words = "a tab character in the indentation: YAML indents with spaces only"
    elif "quoted scalar" in context and "end of stream" in problem:
        words, mark = f"a quoted string that is never closed (it opens at {at_open})", opened or mark
    elif "flow sequence" in context or "flow mapping" in context:
        pair = "[]" if "sequence" in context else "{}"
        words, mark = f"the `{pair[0]}` at {at_open} is never closed with `{pair[1]}`", opened or mark
    elif "flow node" in context and ("expected node content" in problem or "stream end" in problem):
        words = "the file ends inside a `[` or `{` that is never closed"
    elif "mapping values are not allowed" in problem:
        words = "a `: ` where no key can start: quote a value that contains `: `, or check this line's indentation"
    elif "expected key" in problem and "block mapping" in context:
        words = f"this line's indentation does not match the mapping it is in (which starts at {at_open})"
    elif "expected '-' indicator" in problem:
        words = f"a list item without `- ` (the list starts at {at_open}), or a key indented like a list item"
    elif "cannot start any token" in problem:
        words = "a character that cannot start a plain value (such as @ or `): quote the value"
    where = Location(display, mark.line + 1, mark.column + 1) if mark else Location(display)
    return ConfigError(f"invalid YAML: {words}", where)


def load_yaml(file: Path, ctx: TreeContext, chain: tuple[str, ...] = (), at: Location | None = None) -> Any:
    """Load one file into located data. Raises ConfigError with file:line:col on any problem."""
    display = ctx.display(file)
    real = Path(os.path.realpath(file))
    if real != ctx.root and ctx.root not in real.parents:
        raise ConfigError(
            f"{display} is a link to outside the repository; commit the file itself", at or Location(display)
        )
    text = read_bounded(file, display, at)
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
    except yaml.MarkedYAMLError as exc:
        raise yaml_problem(exc, display) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", Location(display)) from None
    if node is None:
        return None
    # no `&` in the text: no anchor, so no alias; only the depth needs measuring (the cheap walk)
    expanded, depth = _measure(node, display) if "&" in text else _depth(node)
    if depth > MAX_DEPTH:
        raise ConfigError(f"document nests deeper than {MAX_DEPTH} levels; flatten it", location_of(node, display))
    if expanded > MAX_EXPANDED_NODES:
        raise ConfigError(
            f"document expands to more than {MAX_EXPANDED_NODES} nodes (alias bomb?); write it out plainly",
            location_of(node, display),
        )
    return _Builder(file, ctx, chain + (display,)).build(node)
