"""Write `docs/config-reference.md` from the JSON Schemas (which come from the pydantic models).

    python -m devtools.config_reference            # rewrite docs/config-reference.md
    python -m devtools.config_reference --check    # exit 1 when the committed file is stale

One section per file (the config repository's four kinds of file, then the operator's two), each a
table of its keys (type, default, description), then a table per nested object. An object the
same in two files (a workspace's `resources` and the policy's ceilings, say) is written once and
linked from the second. Nothing here is edited by hand: change a model's `Field(description=...)`,
run `python -m reconciler.render.schema` and this module, commit the three.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from reconciler.render import schema

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "config-reference.md"
SHORT_PATTERN = 60  # longer patterns (an image reference's grammar) are left to the description
TAGS = ("Include", "External")

# schema file -> (heading, where the file lives, who writes it)
FILES: dict[str, tuple[str, str]] = {
    "reconciler.schema.json": ("reconciler.yaml", "config repository, at the root; optional"),
    "plugins.schema.json": ("plugins.yaml", "config repository, at the root"),
    "images.schema.json": ("images.yaml", "config repository, at the root"),
    "org.schema.json": ("orgs/&lt;org&gt;/org.yaml", "config repository, one per org directory"),
    "workspace.schema.json": ("Files pulled in with !include", "config repository, anywhere under the org"),
    "policy.schema.json": ("policy file (--policy)", "the operator's, never in the config repository"),
    "credentials.schema.json": ("credentials file (--credentials)", "the operator's, never in the config repository"),
}

Node = dict[str, Any]


def cell(text: str) -> str:
    """One line of Markdown: pipes escaped (also inside code spans, as GFM tables want), `<` and `>`
    outside code spans as entities (`tag:<name>` is not an HTML tag)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def code(value: Any) -> str:
    return f"`{value if isinstance(value, str) else json.dumps(value)}`"


def anchor(file: str, name: str) -> str:
    return f"{file.split('.')[0]}-{name.lower()}"


class Writer:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.written: dict[str, str] = {}  # a def's JSON -> the anchor it was first written under

    # ---- types --------------------------------------------------------------------------------
    def type_of(self, node: Node, file: str, defs: dict[str, Node], nested: bool = False) -> str:
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name == "Include":
                return "`!include` path"
            if name == "External":
                return "`!external` {repo, ref, path}"
            target = defs[name]
            if "enum" in target:
                return self.type_of(target, file, defs)
            return f"[{name}](#{self.anchor_of(name, file, defs)})"
        if "anyOf" in node:
            parts: list[str] = []
            for option in node["anyOf"]:
                if option == {"type": "null"}:
                    continue
                text = self.type_of(option, file, defs)
                if text not in parts:
                    parts.append(text)
            return " or ".join(parts) if len(parts) < 3 or not nested else f"({', '.join(parts[:-1])} or {parts[-1]})"
        if "enum" in node:
            return " | ".join(code(v) for v in node["enum"])
        kind = node.get("type")
        if kind == "array":
            return "list of " + self.type_of(node.get("items", {}), file, defs, nested=True)
        if kind == "object" or "patternProperties" in node:
            for pattern, value in node.get("patternProperties", {}).items():
                key = f"name ({code(pattern)})" if len(pattern) <= SHORT_PATTERN else "name"
                return f"map: {key} → {self.type_of(value, file, defs)}"
            if isinstance(node.get("additionalProperties"), dict):
                return "map of " + self.type_of(node["additionalProperties"], file, defs)
            return "mapping"
        if kind is None:
            return "any"
        return ", ".join([("path" if node.get("format") == "path" else kind), *limits(node)])

    def anchor_of(self, name: str, file: str, defs: dict[str, Node]) -> str:
        return self.written.get(key_of(defs[name]), anchor(file, name))

    # ---- tables -------------------------------------------------------------------------------
    def table(self, obj: Node, file: str, defs: dict[str, Node]) -> None:
        required = set(obj.get("required", ()))
        self.out += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
        for key, prop in obj.get("properties", {}).items():
            default = "**required**" if key in required else code(prop["default"]) if "default" in prop else ""
            description = prop.get("description") or self.inner_description(prop, defs)
            self.out.append(f"| `{key}` | {cell(self.type_of(prop, file, defs))} | {cell(default)} | "
                            f"{cell(description)} |")
        if obj.get("additionalProperties") is not False:
            self.out += ["", "Keys not listed here are allowed."]
        self.out.append("")

    @staticmethod
    def inner_description(prop: Node, defs: dict[str, Node]) -> str:
        """A key without a description of its own: its object's (`x: Ref` or `x: Ref | None`), or the
        description of a map's values."""
        options = [o for o in prop.get("anyOf", [prop]) if o != {"type": "null"}]
        if len(options) != 1:
            return ""
        only = options[0]
        if "$ref" in only:
            return str(defs.get(only["$ref"].rsplit("/", 1)[-1], {}).get("description", ""))
        values = list(only.get("patternProperties", {}).values())
        return str(values[0].get("description", "")) if len(values) == 1 else ""

    def objects(self, file: str, defs: dict[str, Node]) -> None:
        for name, node in defs.items():
            if name in TAGS or "enum" in node or "properties" not in node:
                continue
            key = key_of(node)
            self.out += [f'<a id="{anchor(file, name)}"></a>', "", f"### {name}", ""]
            if key in self.written:
                self.out += [f"The same as [{name}](#{self.written[key]}) above.", ""]
                continue
            self.written[key] = anchor(file, name)
            if node.get("description"):
                self.out += [cell(node["description"]), ""]
            self.table(node, file, defs)

    # ---- the document -------------------------------------------------------------------------
    def document(self) -> str:
        self.out = [
            "# Configuration reference",
            "",
            "<!-- Generated by `python -m devtools.config_reference` from the JSON Schemas; do not edit by hand. -->",
            "",
            "Every file the reconciler reads, key by key, generated from the JSON Schemas (draft 2020-12) that",
            "ship in the package (`reconciler/schemas/`, linked as `schemas/`) and that the daemon serves at",
            "`<daemon URL>/schemas/<file>`. The schemas come from the same models the reconciler validates",
            "with, so this page, the schemas and `reconciler validate` cannot disagree. Unknown keys are errors",
            "everywhere.",
            "",
            "| file | schema | where |",
            "| --- | --- | --- |",
        ]
        for file, (heading, where) in self.headings().items():
            self.out.append(f"| [{heading}](#{anchor(file, 'file')}) | `{file}` | {cell(where)} |")
        self.out += [
            "",
            "Where a workspace or a list of workspaces may stand (`workspaces:`, `children:`), one of two",
            "YAML tags may stand instead (declare them in the editor's settings:",
            "`\"yaml.customTags\": [\"!include scalar\", \"!external mapping\"]`):",
            "",
            "- `!include path.yaml`: a file of the same repository, relative to the including file, holding one",
            "  workspace or a list of them ([schema](#workspace-file)).",
            "- `!external {repo, ref, path, url}`: a subtree from another repository at a ref (`url` optional);",
            "  the repository must lie under the operator policy's `sources`.",
            "",
        ]
        for file, (heading, where) in self.headings().items():
            generated = schema.generate(file)
            defs: dict[str, Node] = generated.get("$defs", {})
            self.out += [f'<a id="{anchor(file, "file")}"></a>', "", f"## {heading}", "",
                         f"Schema `{file}` ({cell(where)}). {cell(generated.get('description', ''))}".rstrip(), ""]
            if "properties" in generated:
                self.table(generated, file, defs)
            else:
                self.out += ["The file holds " + " or ".join(self.type_of(o, file, defs) for o in generated["anyOf"])
                             + ".", ""]
            self.objects(file, defs)
        return "\n".join(self.out).rstrip() + "\n"

    @staticmethod
    def headings() -> dict[str, tuple[str, str]]:
        missing = set(schema.FILES) - set(FILES)
        if missing:
            raise SystemExit(f"devtools/config_reference.py: no heading for {', '.join(sorted(missing))}")
        return {name: FILES[name] for name in schema.FILES}


def key_of(node: Node) -> str:
    return json.dumps(node, sort_keys=True)


def limits(node: Node) -> list[str]:
    """`1-200 chars`, `≥ 0`, `> 0`, `≤ 3600`, a short pattern."""
    out: list[str] = []
    low, high = node.get("minLength"), node.get("maxLength")
    if low is not None or high is not None:
        out.append(f"{low or 0}–{high} chars" if high is not None else f"at least {low} chars")
    for word, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<")):
        if word in node:
            out.append(f"{sign} {node[word]}")
    pattern = node.get("pattern")
    if pattern and len(pattern) <= SHORT_PATTERN:
        out.append(f"pattern `{pattern}`")
    return out


def render() -> str:
    return Writer().document()


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print(f"{OUTPUT.relative_to(ROOT)} is stale: run python -m devtools.config_reference", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
