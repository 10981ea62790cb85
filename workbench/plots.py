"""Plots of a campaign for the people running it (matplotlib, imported lazily).

    ax = campaign.plot()              # best so far against trial number
    ax = campaign.plot_predictions()  # what the model expected against what happened

Each function draws on ``ax`` when given (or on a new figure) and returns the
Axes. matplotlib is imported only when a plot is drawn, so the workbench
itself does not depend on it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

__all__ = ["plot_convergence", "plot_predictions", "running_best"]

_COMPLETED, _FAILED = "completed", "failed"
_INITIAL_STRATEGY = "sobol"


def _axes(ax: Any) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.0))
    return ax


def _label(objective: Any) -> str:
    unit = getattr(objective, "unit", None)
    return f"{objective.name} [{unit}]" if unit else objective.name


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted integer ids, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def running_best(values: Any, direction: str) -> np.ndarray:
    """Best value so far along ``values``: running min to minimise, running max to maximise."""
    y = np.asarray(values, dtype=np.float64)
    if y.size == 0:
        return y
    return np.minimum.accumulate(y) if direction == "minimize" else np.maximum.accumulate(y)


def plot_convergence(campaign: "Campaign", ax: "Axes | None" = None) -> "Axes":
    """Best-so-far of the objective against trial number.

    Observed values of completed trials are dots, the best so far a step line,
    failed trials red crosses on the bottom axis, and the initial (Sobol)
    design is shaded. Returns the Axes.
    """
    ax = _axes(ax)
    obj = campaign.objectives[0]
    trials = sorted(campaign.trials, key=lambda t: t.id)
    done = [t for t in trials if t.status == _COMPLETED]
    failed = [t for t in trials if t.status == _FAILED]
    initial = [t.id for t in trials if t.strategy == _INITIAL_STRATEGY]

    for k, (first, last) in enumerate(_runs(initial)):
        ax.axvspan(first - 0.5, last + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0,
                   label="initial design (Sobol)" if k == 0 else None)

    if done:
        x = np.asarray([t.id for t in done], dtype=np.float64)
        y = np.asarray([t.outcomes[obj.name] for t in done], dtype=np.float64)
        ax.plot(x, y, linestyle="none", marker="o", markersize=4, color="C0", alpha=0.7,
                label="observed", gid="observed")
        ax.plot(x, running_best(y, obj.direction), drawstyle="steps-post", color="C1", lw=2,
                label="best so far", gid="best_so_far")
    else:
        ax.text(0.5, 0.5, "no completed trials yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")

    if failed:
        # x in data units, y in axes units: the crosses sit on the bottom axis.
        ax.plot([t.id for t in failed], [0.0] * len(failed), linestyle="none", marker="x",
                markersize=8, mew=2, color="red", clip_on=False,
                transform=ax.get_xaxis_transform(), label=f"failed ({len(failed)})",
                gid="failed")

    ax.set_xlabel("trial")
    ax.set_ylabel(f"{_label(obj)} ({obj.direction})")
    ax.set_title(campaign.name)
    if trials:
        ax.set_xlim(-0.5, max(t.id for t in trials) + 0.5)
    if done or failed or initial:
        ax.legend(loc="best", fontsize="small")
    return ax


def plot_predictions(campaign: "Campaign", ax: "Axes | None" = None) -> "Axes":
    """Predicted mean ± 2 std against the observed value, for model-proposed trials.

    Points near the identity line, with about 95 % of the error bars crossing
    it, mean the surrogate's predictions (made when each trial was proposed)
    were calibrated. Returns the Axes.
    """
    ax = _axes(ax)
    obj = campaign.objectives[0]
    rows = [t for t in sorted(campaign.trials, key=lambda t: t.id)
            if t.status == _COMPLETED and t.prediction and obj.name in t.prediction]
    label = _label(obj)
    ax.set_xlabel(f"predicted {label} (mean ± 2 sd)")
    ax.set_ylabel(f"observed {label}")
    if not rows:
        ax.text(0.5, 0.5, "no completed model-proposed trials yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
        ax.set_title(f"{campaign.name}: predicted vs observed")
        return ax

    mean = np.asarray([t.prediction[obj.name].mean for t in rows], dtype=np.float64)
    std = np.asarray([t.prediction[obj.name].std for t in rows], dtype=np.float64)
    observed = np.asarray([t.outcomes[obj.name] for t in rows], dtype=np.float64)
    inside = int(np.sum(np.abs(observed - mean) <= 2 * std))

    lo = float(min(np.min(mean - 2 * std), np.min(observed)))
    hi = float(max(np.max(mean + 2 * std), np.max(observed)))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], linestyle="--", color="0.5", lw=1,
            label="predicted = observed", gid="identity")
    ax.errorbar(mean, observed, xerr=2 * std, fmt="o", markersize=4, color="C0",
                ecolor="C0", elinewidth=1, capsize=2, alpha=0.8,
                label=f"trials ({inside}/{len(rows)} within ±2 sd)", gid="predictions")
    ax.set_title(f"{campaign.name}: predicted vs observed")
    ax.legend(loc="best", fontsize="small")
    return ax
