"""Parameter relevance: 1 / ARD length-scale of the last proposing model, per input column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.engine.relevance import ard_relevance
from workbench.plots._common import axes_or_new, outcome_label

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

# -- length-scales -----------------------------------------------------------------------


def column_labels(space: Any, n_columns: int) -> list[tuple[str, list[int]]]:
    """(label, encoded columns) per bar: one per parameter, one per composition
    element, then the descriptors a feature transform appends."""
    from workbench.space import Composition

    bars, col, extra = [], 0, []
    for p in space.parameters:
        if isinstance(p, Composition):
            bars += [(f"{p.name}.{e}", [col + i]) for i, e in enumerate(p.elements)]
            extra += [f"{p.name} mean {f}" for f in p.features]
            extra += [f"{p.name} spread {f}" for f in p.features]
        else:
            bars.append((p.name, list(range(col, col + p.columns))))
        col += p.columns
    n_extra = n_columns - col
    if n_extra and len(extra) != n_extra:  # substance descriptors too: number them
        extra = [f"descriptor {j + 1}" for j in range(n_extra)]
    bars += [(label, [col + j]) for j, label in enumerate(extra[:max(n_extra, 0)])]
    return bars


def model_columns(campaign: "Campaign") -> int:
    """Input columns the surrogate sees: the encoded space, then any descriptors."""
    transform = campaign.problem.feature_transform()
    if transform is None:
        return campaign.space.dim
    import jax.numpy as jnp

    return int(transform(jnp.full((1, campaign.space.dim), 0.5)).shape[-1])


def last_hyperparameters(campaign: "Campaign") -> tuple[int, dict] | None:
    import json

    for t in sorted(campaign.trials, key=lambda t: t.id, reverse=True):
        if t.audit:
            hyper = json.loads(t.audit).get("hyperparameters")
            if hyper:
                return t.id, hyper
    return None


def plot_lengthscales(campaign: "Campaign", output: str | None = None,
                      ax: "Axes | None" = None) -> "Axes":
    """Parameter relevance (1 / ARD length-scale) of the last model that proposed a trial.

    Read from that trial's audit (``json.loads(trial.audit)["hyperparameters"]``),
    so it shows why the model proposed what it did. One bar per parameter (per
    element for a composition; a categorical parameter's bar is its group's
    relevance). output: which modelled outcome (default the first objective).
    Returns the Axes.
    """
    own = ax is None
    ax = axes_or_new(ax)
    found = last_hyperparameters(campaign)
    if found is None:
        ax.text(0.5, 0.5, "no model-proposed trial with fitted hyperparameters yet",
                transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_title(f"{campaign.name}: parameter relevance")
        return ax
    trial_id, hyper = found
    outputs = list(campaign.problem.outputs)
    name = output or campaign.objectives[0].name
    if name not in outputs:
        raise ValueError(f"plot_lengthscales: output {name!r} is not modelled; expected one of"
                         f" {outputs}")
    n_columns = model_columns(campaign)
    rel = ard_relevance(hyper, n_columns)
    row = rel[min(outputs.index(name), rel.shape[0] - 1)]
    bars = column_labels(campaign.space, n_columns)
    labels = [label for label, _ in bars]
    values = [float(np.nanmax(row[cols])) if np.any(np.isfinite(row[cols])) else 0.0
              for _, cols in bars]
    pos = np.arange(len(bars))[::-1]  # first parameter on top
    container = ax.barh(pos, values, color="C0", gid="relevance")
    container.set_label("1 / length-scale")
    ax.set_yticks(pos, labels)
    ax.set_xlabel("relevance: 1 / length-scale (inputs scaled to [0, 1])")
    ax.set_title(f"{campaign.name}: parameter relevance for {outcome_label(campaign, name)}"
                 f" (model of trial {trial_id})", fontsize="medium")
    if own:
        ax.figure.tight_layout()  # room for long parameter names
    return ax
