"""What the ``workbench`` command shows in a terminal: tables that fit its width and
one trial as labelled lines.

Text from the campaign (units such as ``[degC]``, failure reasons, categorical
labels) is escaped before rich sees it, so that nothing in brackets is taken for
markup and dropped. Only rich is imported here, so the CLI stays quick to start.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rich.console import Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

# What a rich table adds per column (a space either side and a rule) and at its edge.
COLUMN_EDGES = 3
# A wrapping column (failure reasons) is packed at this width at most; its text wraps.
WRAP_WIDTH = 24
# Decimals of a Sobol index and its spread in the importance table.
INDEX_DECIMALS = 3
# A header's trailing "[unit]" (markup-escaped) or "(direction)".
_SUFFIX = re.compile(r"^(.*\S)\s+(\\?\[[^\]]*\]|\([^)]*\))$")


def format_value(v: Any) -> str:
    """A cell's text: floats to 6 significant digits, NaN as empty."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def fit_width(table: Table, width: int) -> RenderableType:
    """``table`` if it fits ``width`` characters, else its columns in consecutive tables
    that each fit, every one led by the first (trial) column, so that no header or value
    is cut or folded; headers then put a ``[unit]`` or ``(direction)`` on a line of
    their own. Text in wrapping columns (``overflow="fold"``) wraps instead."""
    columns = table.columns
    cells = [[Text.from_markup(str(c)) for c in col.cells] for col in columns]

    def needed(i: int, header: str) -> int:
        lines = [Text.from_markup(h).cell_len for h in header.split("\n")]
        values = max((c.cell_len for c in cells[i]), default=0)
        if columns[i].overflow == "fold":
            values = min(values, WRAP_WIDTH)
        return max([values, *lines])

    headers = [str(col.header) for col in columns]
    if 1 + sum(needed(i, h) + COLUMN_EDGES for i, h in enumerate(headers)) <= width:
        return table
    for col in columns:
        col.overflow = "fold"  # never an ellipsis, even where one column alone is too wide
    headers = [_two_lines(h) for h in headers]
    groups: list[list[int]] = [[0]]
    used = 1 + needed(0, headers[0]) + COLUMN_EDGES
    for i in range(1, len(columns)):
        w = needed(i, headers[i]) + COLUMN_EDGES
        if used + w > width and len(groups[-1]) > 1:
            groups.append([0])
            used = 1 + needed(0, headers[0]) + COLUMN_EDGES
        groups[-1].append(i)
        used += w
    tables = []
    for k, group in enumerate(groups):
        title = table.title if k == 0 or not table.title else f"{table.title} (continued)"
        part = Table(title=title, title_justify=table.title_justify)
        for i in group:
            col = columns[i]
            part.add_column(headers[i], justify=col.justify, overflow=col.overflow,
                            no_wrap=col.no_wrap, min_width=needed(i, headers[i]))
        for row in zip(*(list(columns[i].cells) for i in group)):
            part.add_row(*row)
        tables.append(part)
    return Group(*tables)


def _two_lines(header: str) -> str:
    """``name [unit]`` or ``name (dir)`` as two lines, so a narrow column keeps both whole."""
    m = _SUFFIX.match(header)
    return f"{m.group(1)}\n{m.group(2)}" if m else header


def trial_table(campaign, trials, title: str, width: int) -> RenderableType:
    """Trials as a table that fits ``width``: parameters with units, outcomes with their
    role (an objective's direction, a constraint's bound), the prediction at proposal."""
    table = Table(title=escape(title), title_justify="left")
    table.add_column("trial", justify="right")
    table.add_column("status")
    units = {}
    for p in campaign.space.parameters:
        for n in (p.column_names() if hasattr(p, "column_names") else [p.name]):
            units[n] = getattr(p, "unit", None)
    for n in campaign.space.flat_names:
        table.add_column(escape(f"{n} [{units[n]}]" if units[n] else n), justify="right")
    from workbench.campaign.results import outcome_roles

    roles = outcome_roles(campaign.objectives, campaign.spec.outcome_constraints)
    for o in campaign.outcomes:  # an objective's direction, a constraint's bound
        table.add_column(escape(f"{o.name} ({roles[o.name]})"), justify="right")
    table.add_column("predicted", justify="right")
    table.add_column("strategy")
    failed = any(t.status == "failed" for t in trials)
    if failed:  # only then: a table of good trials stays narrow
        table.add_column("reason")
    for t in trials:
        obj = campaign.objectives[0].name
        pred = (t.prediction or {}).get(obj)
        status = {"completed": "[green]completed[/]", "failed": "[red]failed[/]"}.get(
            t.status, "[yellow]pending[/]")
        flat = campaign.space.flatten(t.params)
        row = [str(t.id), status]
        row += [escape(format_value(flat[n])) for n in campaign.space.flat_names]
        row += [format_value(t.outcomes.get(o.name, math.nan)) for o in campaign.outcomes]
        row += [f"{pred.mean:.4g} ± {pred.std:.2g}" if pred else "", escape(t.strategy)]
        if failed:
            row.append(escape(t.failure_reason or ""))
        table.add_row(*row)
    return fit_width(table, width)


def importance_table(title: str, rows: list[dict], width: int) -> RenderableType:
    """One output's Sobol indices (rows as ``ImportanceRowOut`` documents) under a
    ``title`` line, as a table that fits ``width``: parameter, total ± spread, first
    order ± spread, the largest total first (a spread that is None is left out)."""
    table = Table()
    table.add_column("parameter")
    table.add_column("total", justify="right")
    table.add_column("first order", justify="right")
    ranked = sorted(rows, key=lambda r: -math.inf if r["total"] is None else r["total"],
                    reverse=True)
    for r in ranked:
        table.add_row(escape(r["parameter"]), _index(r["total"], r["total_std"]),
                      _index(r["first_order"], r["first_order_std"]))
    return Group(Text(title, style="italic"), fit_width(table, width))


def _index(value: float | None, spread: float | None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.{INDEX_DECIMALS}f}"
    return text if spread is None else f"{text} ± {spread:.{INDEX_DECIMALS}f}"


def trial_detail(campaign, trial) -> Table:
    """One trial as labelled lines: what was tried, what came out, what the model
    expected, and why it was proposed; times in ISO 8601 with their UTC offset."""
    from workbench.record import format_time

    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")

    def section(title: str, rows: list[tuple[str, Any]]) -> None:
        grid.add_row(f"[bold]{escape(title)}[/]", "")
        for key, value in rows:
            grid.add_row(f"  {escape(key)}", escape(format_value(value)))

    t = trial
    units = campaign.space.flat_units()
    facts = [("status", t.status), ("batch", t.batch), ("strategy", t.strategy),
             ("asked at", format_time(t.asked_at)), ("told at", format_time(t.told_at))]
    if t.failure_reason:
        facts.append(("failure reason", t.failure_reason))
    facts += [(label, who) for label, who in (("asked by", t.asked_by), ("told by", t.told_by))
              if who]
    section(f"trial {t.id} of campaign {campaign.name!r}", facts)
    section("parameters", [(f"{n} [{units[n]}]" if units.get(n) else n, v)
                           for n, v in campaign.space.flatten(t.params).items()])
    section("outcomes", [(f"{o.name} ({o.direction})", t.outcomes.get(o.name, ""))
                         for o in campaign.outcomes])
    if t.prediction:
        section("predicted when proposed (mean ± sd)",
                [(k, f"{p.mean:.6g} ± {p.std:.3g}") for k, p in t.prediction.items()])
    if t.acquisition_value is not None or t.audit:
        audit = json.loads(t.audit) if t.audit else {}
        if t.acquisition_value is not None:
            audit.setdefault("acquisition_value", t.acquisition_value)
        section("why proposed", flatten(audit))
    return grid


def flatten(value: Any, key: str = "") -> list[tuple[str, str]]:
    """A JSON value as (dotted key, text) rows; a list of plain values (or of such lists)
    on one line."""
    if isinstance(value, dict):
        if not value:
            return [(key, "none")] if key else []
        return [row for k, v in sorted(value.items())
                for row in flatten(v, f"{key}.{k}" if key else str(k))]
    if isinstance(value, list):
        if not any(isinstance(v, (dict, list)) for v in value):
            return [(key, ", ".join(format_value(v) for v in value))]
        if all(isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v)
               for v in value):  # a matrix: rows separated by semicolons
            return [(key, "; ".join(", ".join(format_value(x) for x in v) for v in value))]
        return [row for i, v in enumerate(value) for row in flatten(v, f"{key}[{i}]")]
    return [(key, "none" if value is None else format_value(value))]
