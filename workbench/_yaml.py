"""Safe YAML loading that remembers the line of every field.

Only plain data is accepted: PyYAML's SafeLoader refuses Python tags, we
refuse duplicate keys (YAML would keep the last silently) and documents whose
aliases would expand past a size limit (the "billion laughs" bomb), measured on
the node graph before anything is built.
"""

from __future__ import annotations

from typing import Any

import yaml

from workbench.errors import SpecIssue

# A spec has tens to hundreds of nodes; this is generous and still instant. Data
# (candidate pools, past experiments) belongs in CSV files, not in the spec.
MAX_EXPANDED_NODES = 100_000
MAX_BYTES = 1_000_000
# libyaml's parser where PyYAML was built with it: the pure-Python one takes seconds
# on a document near the size limit.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path = tuple  # tuple of str keys and int indices


class _Refused(Exception):
    def __init__(self, issue: SpecIssue):
        self.issue = issue


def _expanded_size(node: yaml.Node, memo: dict[int, int], depth: int = 0) -> int:
    """Number of nodes the document has once aliases are expanded (memoised)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > 200:
        raise _Refused(SpecIssue("", "nesting deeper than 200 levels; expected a flat spec",
                                 node.start_mark.line + 1))
    memo[key] = 1  # guards against recursive aliases while we count
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
                       for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo, depth + 1) for v in node.value)
    else:
        size = 1
    memo[key] = size
    return size


def _record_lines(node: yaml.Node, path: Path, lines: dict[Path, int], seen: set[int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[Any, int] = {}
        for k, v in node.value:
            kval = k.value if isinstance(k, yaml.ScalarNode) else None
            if kval in keys:
                raise _Refused(SpecIssue(
                    ".".join(str(p) for p in (*path, kval)),
                    f"duplicate key '{kval}' (first on line {keys[kval]}); expected each key once",
                    k.start_mark.line + 1,
                ))
            keys[kval] = k.start_mark.line + 1
            lines[(*path, kval)] = k.start_mark.line + 1
            _record_lines(v, (*path, kval), lines, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _record_lines(v, (*path, i), lines, seen)


def load_yaml(text: str) -> tuple[Any, dict[Path, int], list[SpecIssue]]:
    """Parse ``text`` into plain data and a map from field path to line.

    Returns (data, lines, issues); when issues is non-empty, data is None.
    """
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        return None, {}, [SpecIssue("", f"the file has more than {MAX_BYTES} bytes; expected"
                                    f" at most {MAX_BYTES} (a spec is small: put data such as"
                                    " candidate pools in a CSV file)")]
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except RecursionError:
        return None, {}, [SpecIssue("", "nesting too deep to read; expected a spec nested at"
                                    " most a few levels")]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(e, "problem", None) or str(e)
        return None, {}, [SpecIssue("", f"not valid YAML: {problem}", line)]
    if node is None:
        return None, {}, [SpecIssue(
            "", "the spec is empty; expected a mapping with at least name, space and objectives"
        )]
    lines: dict[Path, int] = {}
    try:
        memo: dict[int, int] = {}
        size = _expanded_size(node, memo)
        if size > MAX_EXPANDED_NODES:
            written = len(memo)  # distinct nodes, before aliases are expanded
            what = (f"the document has {written} nodes" if written > MAX_EXPANDED_NODES else
                    f"aliases expand the document to {size} nodes (an alias bomb)")
            raise _Refused(SpecIssue(
                "", f"{what}; expected at most {MAX_EXPANDED_NODES} (a spec is small: put"
                " data such as candidate pools in a CSV file)", node.start_mark.line + 1))
        _record_lines(node, (), lines, set())
    except _Refused as r:
        return None, {}, [r.issue]
    if not isinstance(node, yaml.MappingNode):
        kind = {"SequenceNode": "a list", "ScalarNode": "a single value"}.get(
            type(node).__name__, type(node).__name__)
        return None, {}, [SpecIssue(
            "", f"the document is {kind}; expected a mapping with keys such as name, space,"
            " objectives", node.start_mark.line + 1)]
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.constructor.ConstructorError as e:
        mark = e.problem_mark
        return None, {}, [SpecIssue(
            "", f"{e.problem}; only plain YAML data is allowed (no language-specific tags)",
            mark.line + 1 if mark else None)]
    except yaml.YAMLError as e:
        return None, {}, [SpecIssue("", f"not valid YAML: {e}")]
    return data, lines, []


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """Line of ``path`` or of its nearest ancestor present in the document."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
