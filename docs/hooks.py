"""MkDocs hook: the YAML reference, rendered at build time from the spec's JSON Schema.

``docs/reference/yaml.md`` holds the marker ``<!-- yaml-reference -->``; this hook
replaces it with one table per pydantic model of the experiment spec (field,
type, default, description), taken from ``workbench.CampaignSpec``'s JSON Schema.
Nothing about the fields is written by hand, so the page follows the models.
"""

from __future__ import annotations

import json
import re
from typing import Any

from mkdocs.exceptions import PluginError

MARKER = "<!-- yaml-reference -->"
PAGE = "reference/yaml.md"


def spec_schema() -> dict:
    """The JSON Schema of the experiment spec (what a YAML file must satisfy)."""
    import workbench

    return workbench.CampaignSpec.model_json_schema()


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise PluginError(f"{PAGE}: the marker {MARKER} is missing")
    return markdown.replace(MARKER, render_schema(spec_schema(), _loader_defaults()))


# -- rendering ---------------------------------------------------------------


def render_schema(schema: dict, top_defaults: dict[str, str] | None = None) -> str:
    """Markdown tables for the root model and every model it refers to, in the
    order a reader meets them (breadth first from the top-level keys).

    top_defaults: text for the default column of top-level keys whose default is
    applied on loading rather than by the model.
    """
    defs = schema.get("$defs", {})
    root = schema.get("title", "spec")
    order = [root]
    bodies = {root: schema}
    queue = [schema]
    while queue:
        for name in _refs(queue.pop(0)):
            if name not in bodies:
                bodies[name] = defs[name]
                order.append(name)
                queue.append(defs[name])
    for name in sorted(set(defs) - set(bodies)):  # reachable only in odd ways: still shown
        bodies[name] = defs[name]
        order.append(name)
    return "\n\n".join(_model(name, bodies[name], top_defaults if name == root else None,
                               top=name == root) for name in order) + "\n"


def _refs(node: Any) -> list[str]:
    """Model names referred to anywhere inside ``node``, in document order."""
    found: list[str] = []
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            found.append(ref.rsplit("/", 1)[-1])
        for key, value in node.items():
            if key != "$defs":
                found += [r for r in _refs(value) if r not in found]
    elif isinstance(node, list):
        for value in node:
            found += [r for r in _refs(value) if r not in found]
    return found


def _loader_defaults() -> dict[str, str]:
    """Defaults that loading a spec fills in when a key is absent (the model's own
    default is null, which turns the feature off when written explicitly)."""
    from workbench import spec

    found = {}
    for key, constant, off in (("store", "DEFAULT_STORE", "in memory"),
                               ("tracking", "DEFAULT_TRACKING", "off")):
        value = getattr(spec, constant, None)
        if value is not None:
            found[key] = f"absent: `{value}`; `null`: {off}"
    return found


def _model(name: str, body: dict, filled: dict[str, str] | None, top: bool) -> str:
    heading = f"Top level (`{name}`)" if top else f"`{name}`"
    lines = [f"## {heading} {{ #{_anchor(name)} }}", ""]
    if body.get("description"):
        lines += [_prose(body["description"]), ""]
    props = body.get("properties", {})
    required = set(body.get("required", []))
    if body.get("additionalProperties") is False:
        lines += ["Other keys are errors.", ""]
    lines += ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    filled = filled or {}
    for key, prop in props.items():
        if key in filled:
            default = filled[key]
        elif key in required:
            default = "**required**"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:
            default = "optional"
        cells = [f"`{key}`", _type(prop), default, _prose(prop.get("description", ""))]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _anchor(name: str) -> str:
    return "spec-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _type(node: dict) -> str:
    """A short, readable type: links for models, values for enums, bounds for numbers."""
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    if "const" in node:
        return f"`{json.dumps(node['const'])}`"
    if "enum" in node:
        return "one of " + ", ".join(f"`{json.dumps(v)}`" for v in node["enum"])
    for union in ("oneOf", "anyOf"):
        if union in node:
            options = [_type(option) for option in node[union]]
            nullable = "null" in options
            options = [o for o in options if o != "null"]
            text = " or ".join(options)
            if "discriminator" in node and len(options) > 1:
                tag = node["discriminator"]["propertyName"]
                text = f"{', '.join(options[:-1])} or {options[-1]} (chosen by `{tag}`)"
            return f"{text}, or null" if nullable else text
    if "allOf" in node and len(node["allOf"]) == 1:
        return _type(node["allOf"][0])
    kind = node.get("type")
    if kind == "array":
        if "prefixItems" in node:  # a fixed-length tuple such as [low, high]
            return "[" + ", ".join(_type(item) for item in node["prefixItems"]) + "]"
        text = "list"
        if "items" in node:
            text += f" of {_type(node['items'])}"
        return text + _limits(node, "entries")
    if kind == "object":
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"mapping of string to {_type(extra)}"
        return "mapping"
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind is None:
        return "any"
    text = kind + _range(node)
    if kind == "string":
        text += _limits(node, "characters")
    if "pattern" in node:
        text += f", matching `{node['pattern']}`"
    return text


def _range(node: dict) -> str:
    """Numeric bounds, e.g. ' > 0, ≤ 0.5'."""
    parts = [f"{sign} {node[key]}" for key, sign in (
        ("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in node]
    return " " + ", ".join(parts) if parts else ""


def _limits(node: dict, what: str) -> str:
    """Length bounds of a list or a string, e.g. ', at least 2 entries'."""
    low = node.get("minItems", node.get("minLength"))
    high = node.get("maxItems", node.get("maxLength"))
    def count(n: int) -> str:
        return f"{n} {what if n != 1 else what.rstrip('s').replace('entrie', 'entry')}"

    if low is not None and high is not None:
        return f", {low} to {count(high)}" if low != high else f", exactly {count(low)}"
    if low is not None:
        return f", at least {count(low)}"
    if high is not None:
        return f", at most {count(high)}"
    return ""


def _prose(text: str) -> str:
    """Docstring text as markdown: reStructuredText ``code`` becomes `code`, and angle
    brackets outside code are escaped (``runs:/<run_id>`` is not an HTML tag)."""
    text = re.sub(r"``(.+?)``", r"`\1`", text)
    parts = re.split(r"(`[^`]*`)", text)
    text = "".join(p if p.startswith("`") else p.replace("<", "&lt;").replace(">", "&gt;")
                   for p in parts)
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text.strip())]
    return "\n\n".join(p for p in paragraphs if p)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
