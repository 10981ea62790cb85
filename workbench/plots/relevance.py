"""Parameter relevance: 1 / ARD length-scale of the last proposing model, per input column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.plots._common import axes_or_new, outcome_label

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

# -- length-scales -----------------------------------------------------------------------

_STATIONARY = {"matern12", "matern32", "matern52", "rbf", "periodic"}


def ard_relevance(hyperparameters: dict, n_columns: int) -> np.ndarray:
    """Relevance of each encoded input column, (outputs, n_columns), from an audit's
    ``hyperparameters``.

    Relevance is 1 / length-scale (inputs scaled to [0, 1]): a large value means
    the outcome changes quickly along that column. A categorical kernel's weight
    w enters as sqrt(w), the 1 / length-scale of the RBF kernel that gives the
    same correlation between two different one-hot levels. Columns that no
    kernel measures (e.g. only a linear kernel) are NaN; a column under several
    kernels keeps the largest relevance. Also reads a SAAS model's
    ``median_lengthscale``.
    """
    if "median_lengthscale" in hyperparameters:
        ls = np.atleast_2d(np.asarray(hyperparameters["median_lengthscale"], np.float64))
        out = np.full((ls.shape[0], n_columns), np.nan)
        out[:, :ls.shape[1]] = 1.0 / ls
        return out
    if "kernel_params" not in hyperparameters:
        raise ValueError("hyperparameters: expected 'kernel_params' (a GP) or"
                         f" 'median_lengthscale' (SAAS); got keys {sorted(hyperparameters)}")
    found: list[tuple[list[int], np.ndarray]] = []

    def walk(kernel: dict, params: Any, dims: list[int]) -> None:
        if kernel.get("active_dims") is not None:
            dims = [dims[i] for i in kernel["active_dims"]]
        kind = kernel["type"]
        if kind in ("sum", "product"):
            for sub, sub_params in zip(kernel["kernels"], params):
                walk(sub, sub_params, dims)
        elif kind == "warped":
            walk(kernel["kernel"], params["kernel"], dims)
        elif kind == "categorical":
            w = np.atleast_2d(np.exp(np.asarray(params["log_weight"], np.float64)))
            for g, group in enumerate(kernel["groups"]):
                cols = [dims[c] for c in group]
                found.append((cols, np.repeat(np.sqrt(w[:, g:g + 1]), len(cols), axis=1)))
        elif kind in _STATIONARY and "log_lengthscale" in params:
            ls = np.atleast_2d(np.exp(np.asarray(params["log_lengthscale"], np.float64)))
            if ls.shape[1] == 1 and len(dims) > 1:  # one shared length-scale
                ls = np.repeat(ls, len(dims), axis=1)
            found.append((dims, 1.0 / ls))

    walk(hyperparameters["kernel"], hyperparameters["kernel_params"], list(range(n_columns)))
    m = max((r.shape[0] for _, r in found), default=1)
    out = np.full((m, n_columns), np.nan)
    for cols, rel in found:
        rel = np.broadcast_to(rel, (m, len(cols)))
        out[:, cols] = np.fmax(out[:, cols], rel)
    return out


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
