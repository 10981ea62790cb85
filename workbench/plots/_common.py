"""Helpers shared by the plot modules: axes, labels, the shading of the initial design.

A private module: its names are for ``workbench.plots`` alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.campaign.design import DESIGN_STRATEGIES

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

COMPLETED, FAILED = "completed", "failed"
INITIAL_STRATEGY = "sobol"


def axes_or_new(ax: Any) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.0))
    return ax


def axis_label(objective: Any) -> str:
    unit = getattr(objective, "unit", None)
    return f"{objective.name} [{unit}]" if unit else objective.name


def contiguous_runs(ids: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted integer ids, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs




def shade_initial_design(ax: "Axes", trials: list) -> None:
    """Shade the initial (space-filling) design, as in the convergence plot."""
    initial = [t.id for t in trials if t.strategy in DESIGN_STRATEGIES]
    for k, (first, last) in enumerate(contiguous_runs(initial)):
        ax.axvspan(first - 0.5, last + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0,
                   label="initial design" if k == 0 else None)


def outcome_label(campaign: "Campaign", name: str) -> str:
    for o in campaign.outcomes:
        if o.name == name:
            return axis_label(o)
    return name


def short_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):  # a composition
        return "{" + ", ".join(f"{k}: {f:.3g}" for k, f in v.items()) + "}"
    return str(v)
