"""Calibration: what the model predicted against what was observed, and the coverage
of its predictive intervals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.plots._common import COMPLETED, axes_or_new, axis_label

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

def plot_predictions(campaign: "Campaign", ax: "Axes | None" = None) -> "Axes":
    """Predicted mean ± 2 std against the observed value, for model-proposed trials.

    Points near the identity line, with about 95 % of the error bars crossing
    it, mean the surrogate's predictions (made when each trial was proposed)
    were calibrated. Returns the Axes.
    """
    ax = axes_or_new(ax)
    obj = campaign.objectives[0]
    rows = [t for t in sorted(campaign.trials, key=lambda t: t.id)
            if t.status == COMPLETED and t.prediction and obj.name in t.prediction]
    label = axis_label(obj)
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


# Nominal coverages drawn by default: every 5 %, so the 50/90/95 % intervals
# that the benchmarks and metrics report are points of the curve.
CALIBRATION_LEVELS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def coverage_curve(mean: Any, std: Any, observed: Any, levels: Any = CALIBRATION_LEVELS
                   ) -> np.ndarray:
    """Observed coverage of central Gaussian intervals at each nominal level.

    mean, std, observed: arrays of one shape (any; flattened together), the
    predictive mean and standard deviation and what was then observed;
    levels: (k,) nominal coverages in (0, 1). Returns (k,) fractions of the
    observations inside ``mean ± z std``, z the standard normal quantile of
    (1 + level) / 2. A calibrated model gives about ``levels``; below the
    diagonal the model is over-confident, above it under-confident.
    """
    from scipy.special import ndtri

    mean, std, observed = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, std, observed))
    if not mean.shape == std.shape == observed.shape:
        raise ValueError(f"mean, std and observed must have one shape; got {mean.shape},"
                         f" {std.shape} and {observed.shape}")
    levels = np.asarray(levels, dtype=np.float64)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must lie strictly between 0 and 1; got {levels.tolist()}")
    if np.any(std < 0):
        raise ValueError("std must be non-negative")
    ok = np.isfinite(mean) & np.isfinite(std) & np.isfinite(observed)
    z = np.abs(observed[ok] - mean[ok]) / np.maximum(std[ok], 1e-300)
    if z.size == 0:
        return np.full(levels.shape, np.nan)
    half = ndtri(0.5 * (1.0 + levels))
    return np.mean(z[None, :] <= half[:, None], axis=1)


def campaign_predictions(campaign: "Campaign") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std and observed value of completed model-proposed trials, first objective."""
    obj = campaign.objectives[0]
    rows = [t for t in sorted(campaign.trials, key=lambda t: t.id)
            if t.status == COMPLETED and t.prediction and obj.name in t.prediction]
    return (np.asarray([t.prediction[obj.name].mean for t in rows], dtype=np.float64),
            np.asarray([t.prediction[obj.name].std for t in rows], dtype=np.float64),
            np.asarray([t.outcomes[obj.name] for t in rows], dtype=np.float64))


def plot_calibration(source: Any, std: Any = None, observed: Any = None, *,
                     levels: Any = CALIBRATION_LEVELS, label: str | None = None,
                     ax: "Axes | None" = None) -> "Axes":
    """Expected against observed coverage of central predictive intervals.

    source: a Campaign (its model-proposed, completed trials: the prediction
    made at proposal time against the outcome) or an array of predictive
    means, with ``std`` and ``observed`` arrays of the same shape (e.g. a
    held-out test set). Draws the diagonal (perfect calibration), a band of
    ±2 binomial standard errors around it for this many observations (what
    chance alone explains), and the observed curve. Call again on the same
    ``ax`` with another ``label`` to compare models. Returns the Axes.
    """
    ax = axes_or_new(ax)
    if hasattr(source, "trials") and hasattr(source, "objectives"):
        if std is not None or observed is not None:
            raise ValueError("std and observed are read from the campaign; pass arrays instead")
        mean, std, observed = campaign_predictions(source)
        title = f"{source.name}: calibration"
        label = label or f"trials ({len(mean)})"
    else:
        if std is None or observed is None:
            raise ValueError("plot_calibration(mean, std, observed): std and observed are needed"
                             " with an array of means")
        mean = np.asarray(source, dtype=np.float64)
        title = "calibration"
        label = label or f"predictions ({mean.size})"
    levels = np.asarray(levels, dtype=np.float64)
    curve = coverage_curve(mean, std, observed, levels)
    n = int(np.sum(np.isfinite(np.asarray(mean, np.float64))))

    if not any(ln.get_gid() == "identity" for ln in ax.get_lines()):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", lw=1, label="calibrated",
                gid="identity")
        if n > 0:
            se = 2.0 * np.sqrt(levels * (1.0 - levels) / n)
            band = ax.fill_between(levels, np.clip(levels - se, 0, 1), np.clip(levels + se, 0, 1),
                                   color="0.85", lw=0, label=f"±2 s.e. (n = {n})")
            band.set_gid("chance_band")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("expected coverage of the central interval")
        ax.set_ylabel("observed coverage")
        ax.set_title(title)
    if n == 0:
        ax.text(0.5, 0.5, "no predictions with observed values yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
        return ax
    ax.plot(levels, curve, marker="o", markersize=4, lw=1.5, label=label, gid="calibration")
    ax.legend(loc="upper left", fontsize="small")
    return ax
