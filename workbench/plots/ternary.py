"""Compositions of three elements on a ternary diagram, coloured by an outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.plots._common import COMPLETED, axes_or_new, outcome_label

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

# -- compositions ------------------------------------------------------------------------

_SQRT3_2 = float(np.sqrt(3.0) / 2.0)


def ternary_xy(fractions: Any) -> np.ndarray:
    """Cartesian points on the unit ternary diagram, (n, 2), from fractions (n, 3).

    Corners: the first component at (0, 0), the second at (1, 0), the third at
    (1/2, sqrt(3)/2). Rows are normalised to sum to one first (other elements
    of a larger composition are left out).
    """
    F = np.atleast_2d(np.asarray(fractions, np.float64))
    if F.shape[-1] != 3:
        raise ValueError(f"fractions: got shape {F.shape}; expected (n, 3)")
    total = F.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("fractions: a row sums to zero; expected some of the three components")
    F = F / total
    return np.stack([F[:, 1] + 0.5 * F[:, 2], _SQRT3_2 * F[:, 2]], axis=1)


def _ternary_frame(ax: "Axes", corners: list[str], steps: int = 5) -> None:
    ax.plot([0, 1, 0.5, 0], [0, 0, _SQRT3_2, 0], color="k", lw=1, gid="triangle")
    for f in np.arange(1, steps) / steps:  # grid lines of constant fraction
        for k in range(3):
            ends = np.zeros((2, 3))
            ends[:, k] = f
            ends[0, (k + 1) % 3] = 1 - f
            ends[1, (k + 2) % 3] = 1 - f
            xy = ternary_xy(ends)
            ax.plot(xy[:, 0], xy[:, 1], color="0.85", lw=0.7, zorder=0)
    for (x, y), label, ha, va in zip([(0, 0), (1, 0), (0.5, _SQRT3_2)], corners,
                                     ["right", "left", "center"], ["top", "top", "bottom"]):
        ax.text(x, y, label, ha=ha, va=va, fontsize="medium", fontweight="bold")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.08, _SQRT3_2 + 0.08)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_ternary(campaign: "Campaign", name: str, elements: list[str] | None = None,
                 objective: str | None = None, ax: "Axes | None" = None) -> "Axes":
    """Compositions of three elements on a ternary diagram, coloured by an outcome.

    name: the Composition parameter; elements: three of its elements (default:
    all of them when it has three); objective: the outcome to colour by
    (default the first objective). With more elements in the composition the
    three fractions are renormalised (the title says so). The best trial is a
    star. Returns the Axes.
    """
    from workbench.space import Composition

    comp = next((p for p in campaign.space.parameters if p.name == name), None)
    if not isinstance(comp, Composition):
        names = [p.name for p in campaign.space.parameters if isinstance(p, Composition)]
        raise ValueError(f"plot_ternary: {name!r} is not a composition parameter; expected one"
                         f" of {names}")
    elements = list(comp.elements) if elements is None else list(elements)
    if len(elements) != 3 or len(set(elements)) != 3 or any(e not in comp.elements
                                                            for e in elements):
        raise ValueError(f"plot_ternary: elements: got {elements}; expected three different"
                         f" elements of {comp.elements}")
    obj_name = objective or campaign.objectives[0].name
    if obj_name not in [o.name for o in campaign.outcomes]:
        raise ValueError(f"plot_ternary: objective {obj_name!r} is not an outcome; expected one"
                         f" of {[o.name for o in campaign.outcomes]}")
    ax = axes_or_new(ax)
    unit = f" [{comp.unit}]" if comp.unit else ""
    _ternary_frame(ax, [f"{e}{unit}" for e in elements])
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == COMPLETED
            and sum(float(t.params[name].get(e, 0.0)) for e in elements) > 0]
    partial = len(comp.elements) > 3
    title = f"{campaign.name}: {name} " + "-".join(elements)
    ax.set_title(title + (" (fractions renormalised over these three)" if partial else ""),
                 fontsize="medium")
    if not done:
        ax.text(0.5, 0.4, "no completed trials yet", ha="center", va="center", color="0.4")
        return ax
    F = np.asarray([[float(t.params[name].get(e, 0.0)) for e in elements] for t in done])
    xy = ternary_xy(F)
    values = np.asarray([t.outcomes[obj_name] for t in done], dtype=np.float64)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=36,
                        edgecolors="k", linewidths=0.4, zorder=3, gid="trials")
    ax.figure.colorbar(points, ax=ax, shrink=0.8, label=outcome_label(campaign, obj_name))
    best = campaign.best()
    if best is not None and any(t.id == best.id for t in done):
        bxy = xy[[t.id for t in done].index(best.id)]
        ax.plot([bxy[0]], [bxy[1]], linestyle="none", marker="*", markersize=16,
                markerfacecolor="none", markeredgecolor="C3", mew=1.5, zorder=4,
                label=f"best trial ({best.id})", gid="best")
        ax.legend(loc="upper right", fontsize="small")
    return ax
