"""What the campaign's model believes: the surrogate refitted as the next ``ask`` would,
slices through the best trial, 2-D posterior maps and their pairs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.plots._common import COMPLETED, axis_label, outcome_label, short_value
from workbench.plots.relevance import (ard_relevance, column_labels, last_hyperparameters,
                                       model_columns)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from workbench.campaign import Campaign

# -- the campaign's model ----------------------------------------------------------------


class CampaignModel:
    """The surrogate a campaign would fit now, on its completed trials.

    Built with the spec's surrogate, the same PRNG key and warm start as the
    next ``ask`` uses, so it is the model that proposes the next trial.
    refit=False instead conditions a plain GP with the hyperparameters of the last
    proposal (``campaign.surrogate_state``) on every completed trial, without
    optimising them (quick: what a report shows), and fits only where that cannot
    be done (another surrogate, no proposal yet). ``outputs``: the modelled
    outcomes (objectives, then constraint outcomes); ``model``: the surrogate,
    queried with encoded points; ``description``: which model this is, in words.
    """

    def __init__(self, campaign: "Campaign", refit: bool = True):
        import jax

        from workbench._jax import configure_jax
        from workbench.engine import condition_surrogate, fit_surrogate

        trials = campaign.trials
        done = [t for t in trials if t.status == COMPLETED]
        if len(done) < 2:
            raise ValueError(f"campaign {campaign.name!r} has {len(done)} completed trials;"
                             " expected at least 2 to fit a model")
        configure_jax()
        X, Y = campaign.training_data(done)
        self.space = campaign.space
        self.outputs = list(campaign.problem.outputs)
        surrogate = campaign.problem.surrogate
        self.model = None if refit else condition_surrogate(
            campaign.problem, X, Y, len(X), campaign.surrogate_state)
        if self.model is not None:
            self.description = (f"{surrogate} with the hyperparameters of the last proposal,"
                                f" conditioned on the {len(done)} completed trials")
            return
        key = jax.random.fold_in(jax.random.key(campaign.spec.seed), len(trials))
        k_fit, _ = jax.random.split(key)
        self.model, _ = fit_surrogate(campaign.problem, X, Y, k_fit, len(X),
                                      campaign.surrogate_state)
        self.description = (f"{surrogate} fitted on the {len(done)} completed trials, as the"
                            " next ask would fit it")

    def predict(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation, (n, outputs) each in user units, at
        ``rows`` (parameter dicts as in ``Trial.params``)."""
        import jax.numpy as jnp

        from surrogates import posterior_moments

        mean, var = posterior_moments(self.model, jnp.asarray(self.space.encode(rows)))
        return np.asarray(mean), np.sqrt(np.maximum(np.asarray(var), 0.0))


def campaign_model(campaign: "Campaign", refit: bool = True) -> CampaignModel:
    """The campaign's surrogate on its completed trials (see :class:`CampaignModel`):
    refitted as the next ``ask`` would (default), or with refit=False the last
    proposal's hyperparameters conditioned on them."""
    return CampaignModel(campaign, refit)


def _slice_grid(p: Any, at: float, points: int) -> np.ndarray:
    grid = (np.geomspace(p.low, p.high, points) if getattr(p, "log", False)
            else np.linspace(p.low, p.high, points))
    return np.unique(np.append(grid, at))  # the best point itself lies on the curve


def plot_slices(campaign: "Campaign", objective: str | None = None, *, points: int = 101,
                model: CampaignModel | None = None) -> Any:
    """1-D slices of the posterior mean ± 2 sd through the best trial.

    One panel per continuous parameter: that parameter swept over its range,
    every other held at the best trial's value. The best trial is a star at its
    observed value. objective: any modelled outcome (default the first
    objective); model: a :func:`campaign_model` to reuse (default: fit one).
    Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from workbench.space import Continuous

    best = campaign.best()
    if best is None:
        raise ValueError(f"plot_slices: campaign {campaign.name!r} has no feasible completed"
                         " trial yet; expected one to slice through")
    params = [p for p in campaign.space.parameters if isinstance(p, Continuous)
              and p.name not in campaign.spec.context]
    if not params:
        raise ValueError(f"plot_slices: campaign {campaign.name!r} has no continuous parameter"
                         " to slice along")
    model = model if model is not None else campaign_model(campaign)
    name = objective or campaign.objectives[0].name
    if name not in model.outputs:
        raise ValueError(f"plot_slices: objective {name!r} is not modelled; expected one of"
                         f" {model.outputs}")
    k = model.outputs.index(name)
    ncol = min(3, len(params))
    nrow = -(-len(params) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.3 * nrow), squeeze=False,
                             sharey=True)
    for ax, p in zip(axes.ravel(), params):
        grid = _slice_grid(p, best.params[p.name], points)
        mean, std = model.predict([dict(best.params, **{p.name: v}) for v in grid])
        mu, sd = mean[:, k], std[:, k]
        band = ax.fill_between(grid, mu - 2 * sd, mu + 2 * sd, color="C0", alpha=0.2, lw=0,
                               label="± 2 sd")
        band.set_gid(f"band:{p.name}")
        ax.plot(grid, mu, color="C0", lw=1.5, label="posterior mean", gid=f"mean:{p.name}")
        ax.plot([best.params[p.name]], [best.outcomes[name]], linestyle="none", marker="*",
                markersize=12, color="C3", label=f"best trial ({best.id})",
                gid=f"best:{p.name}")
        if getattr(p, "log", False):
            ax.set_xscale("log")
        ax.set_xlabel(axis_label(p))
    for ax in axes.ravel()[len(params):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(outcome_label(campaign, name))
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{campaign.name}: slices of the model through the best trial")
    fig.tight_layout()
    return fig


# -- 2-D posterior maps ------------------------------------------------------------------


@dataclass(frozen=True)
class PosteriorMap:
    """The model's posterior over a grid of two parameters, the others held fixed.

    x, y: parameter names; xs (nx,), ys (ny,): grid values in user units;
    mean, std: (ny, nx) posterior mean and standard deviation of ``output`` at
    (ys[i], xs[j]), NaN where the point breaks a linear constraint; at: the
    parameter values held fixed (the best trial's); trial: that trial's id.
    """

    x: str
    y: str
    output: str
    xs: np.ndarray
    ys: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    at: dict
    trial: int


def map_parameters(campaign: "Campaign") -> list:
    """Continuous and integer parameters a map can sweep (context ones are measured)."""
    from workbench.space import Continuous, Integer

    return [p for p in campaign.space.parameters if isinstance(p, (Continuous, Integer))
            and p.name not in campaign.spec.context]


def relevant_parameters(campaign: "Campaign", output: str | None = None) -> list[str]:
    """Continuous and integer parameters, most relevant first: by 1 / length-scale of the
    last proposing model (:func:`plot_lengthscales`), in space order without one."""
    names = [p.name for p in map_parameters(campaign)]
    found = last_hyperparameters(campaign)
    if found is None:
        return names
    outputs = list(campaign.problem.outputs)
    name = output or campaign.objectives[0].name
    n_columns = model_columns(campaign)
    rel = ard_relevance(found[1], n_columns)
    row = rel[min(outputs.index(name) if name in outputs else 0, rel.shape[0] - 1)]
    score = {label: float(np.nanmax(row[cols])) if np.any(np.isfinite(row[cols])) else 0.0
             for label, cols in column_labels(campaign.space, n_columns)}
    return sorted(names, key=lambda n: -score.get(n, 0.0))  # stable: ties keep space order


def _map_grid(p: Any, points: int) -> np.ndarray:
    from workbench.space import Integer

    if isinstance(p, Integer):
        if p.high - p.low + 1 <= points:
            return np.arange(p.low, p.high + 1, dtype=np.float64)
        return np.unique(np.round(np.linspace(p.low, p.high, points)))
    return (np.geomspace(p.low, p.high, points) if getattr(p, "log", False)
            else np.linspace(p.low, p.high, points))


def posterior_map(campaign: "Campaign", x: str | None = None, y: str | None = None,
                  objective: str | None = None, *, points: int = 41,
                  model: CampaignModel | None = None) -> PosteriorMap:
    """Posterior mean and sd over a grid of parameters ``x`` and ``y`` through the best trial.

    x, y: continuous or integer parameters (default the two most relevant,
    :func:`relevant_parameters`); every other parameter is held at the best
    trial's value. points: grid points per axis (integers: one per level up
    to that many; log-scaled parameters: a geometric grid). objective: any
    modelled outcome (default the first objective); model: a
    :func:`campaign_model` to reuse. Returns a :class:`PosteriorMap`.
    """
    best = campaign.best()
    if best is None:
        raise ValueError(f"posterior_map: campaign {campaign.name!r} has no feasible completed"
                         " trial yet; expected one to hold the other parameters at")
    usable = {p.name: p for p in map_parameters(campaign)}
    if x is None or y is None:
        order = [n for n in relevant_parameters(campaign, objective) if n not in (x, y)]
        if x is None:
            x = order.pop(0) if order else None
        if y is None:
            y = order.pop(0) if order else None
    for axis, name in (("x", x), ("y", y)):
        if name not in usable:
            raise ValueError(f"posterior_map: {axis}: got {name!r}; expected one of the"
                             f" continuous or integer parameters {list(usable)}"
                             + (" (two are needed)" if len(usable) < 2 else ""))
    if x == y:
        raise ValueError(f"posterior_map: x and y are both {x!r}; expected two parameters")
    if points < 2:
        raise ValueError(f"posterior_map: points: got {points}; expected at least 2")
    model = model if model is not None else campaign_model(campaign)
    name = objective or campaign.objectives[0].name
    if name not in model.outputs:
        raise ValueError(f"posterior_map: objective {name!r} is not modelled; expected one of"
                         f" {model.outputs}")
    xs, ys = _map_grid(usable[x], points), _map_grid(usable[y], points)
    from workbench.space import Integer

    cast = {n: int if isinstance(usable[n], Integer) else float for n in (x, y)}
    rows = [dict(best.params, **{x: cast[x](a), y: cast[y](b)}) for b in ys for a in xs]
    mean, std = model.predict(rows)
    k = model.outputs.index(name)
    shape = (ys.size, xs.size)
    ok = campaign.space.feasible(rows).reshape(shape)
    return PosteriorMap(x, y, name, xs, ys, np.where(ok, mean[:, k].reshape(shape), np.nan),
                        np.where(ok, std[:, k].reshape(shape), np.nan),
                        {n: v for n, v in best.params.items() if n not in (x, y)}, best.id)


def plot_map(campaign: "Campaign", x: str | None = None, y: str | None = None,
             objective: str | None = None, *, points: int = 41,
             model: CampaignModel | None = None) -> Any:
    """2-D map of the model through the best trial: posterior mean and sd over two parameters.

    Two panels over the same grid (:func:`posterior_map`): the posterior mean
    as filled contours, its standard deviation as filled contours, each with
    the completed trials (dots) and the best trial (star). The sd is small
    near observations and large where the model has not looked. x, y:
    default the two most relevant parameters by length-scale. Returns the
    Figure.
    """
    import matplotlib.pyplot as plt

    m = posterior_map(campaign, x, y, objective, points=points, model=model)
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == COMPLETED]
    best = next(t for t in done if t.id == m.trial)
    px, py = campaign.space[m.x], campaign.space[m.y]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.3), sharex=True, sharey=True)
    panels = ((axes[0], m.mean, "viridis", "mean", "posterior mean"),
              (axes[1], m.std, "magma", "std", "posterior sd"))
    for ax, Z, cmap, gid, title in panels:
        filled = ax.contourf(m.xs, m.ys, Z, levels=14, cmap=cmap)
        filled.set_gid(gid)
        fig.colorbar(filled, ax=ax, label=f"{title}: {outcome_label(campaign, m.output)}")
        ax.plot([t.params[m.x] for t in done], [t.params[m.y] for t in done],
                linestyle="none", marker="o", markersize=4, markerfacecolor="white",
                markeredgecolor="k", mew=0.6, label=f"trials ({len(done)})",
                gid=f"observed:{gid}")
        ax.plot([best.params[m.x]], [best.params[m.y]], linestyle="none", marker="*",
                markersize=14, color="C3", markeredgecolor="k", mew=0.5,
                label=f"best trial ({best.id})", gid=f"best:{gid}")
        for p, set_scale in ((px, ax.set_xscale), (py, ax.set_yscale)):
            if getattr(p, "log", False):
                set_scale("log")
        ax.set_xlabel(axis_label(px))
        ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel(axis_label(py))
    axes[0].legend(loc="best", fontsize="small")
    held = ", ".join(f"{k}={short_value(v)}" for k, v in m.at.items())
    fig.suptitle(f"{campaign.name}: {m.output} over {m.x} and {m.y}"
                 + (f" (others at trial {m.trial}: {held})" if held else ""),
                 fontsize="medium")
    fig.tight_layout()
    return fig


def plot_pairs(campaign: "Campaign", parameters: list[str] | None = None,
               objective: str | None = None, *, top: int = 3, points: int = 25,
               model: CampaignModel | None = None) -> Any:
    """Posterior mean over every pair of the most relevant parameters, as a grid of maps.

    parameters: continuous or integer parameters to pair (default the ``top``
    most relevant by length-scale, :func:`relevant_parameters`). Panel (i, j)
    below the diagonal is the :func:`posterior_map` of parameter j (x) and i
    (y) through the best trial, all on one colour scale so that panels compare;
    trials are dots, the best one a star. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    names = list(parameters) if parameters is not None else \
        relevant_parameters(campaign, objective)[:top]
    if len(names) < 2:
        raise ValueError(f"plot_pairs: parameters: got {names}; expected at least two"
                         " continuous or integer parameters")
    model = model if model is not None else campaign_model(campaign)
    maps = {(i, j): posterior_map(campaign, names[j], names[i], objective, points=points,
                                  model=model)
            for i in range(1, len(names)) for j in range(i)}
    values = np.concatenate([m.mean.ravel() for m in maps.values()])
    if not np.any(np.isfinite(values)):
        raise ValueError(f"plot_pairs: every grid point of {names} breaks the constraints"
                         " with the others held at the best trial; expected some to hold")
    levels = np.linspace(np.nanmin(values), np.nanmax(values), 15)  # one scale for all
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == COMPLETED]
    k = len(names) - 1
    # A corner plot: a column shares its x parameter, a row its y parameter.
    fig, axes = plt.subplots(k, k, figsize=(3.4 * k + 1.4, 3.0 * k + 0.6), squeeze=False,
                             sharex="col", sharey="row", layout="constrained")
    filled = None
    for (i, j), m in maps.items():
        ax = axes[i - 1][j]
        filled = ax.contourf(m.xs, m.ys, m.mean, levels=levels, cmap="viridis")
        filled.set_gid(f"mean:{m.x}:{m.y}")
        ax.plot([t.params[m.x] for t in done], [t.params[m.y] for t in done],
                linestyle="none", marker="o", markersize=3, markerfacecolor="white",
                markeredgecolor="k", mew=0.5, gid=f"observed:{m.x}:{m.y}")
        best = next(t for t in done if t.id == m.trial)
        ax.plot([best.params[m.x]], [best.params[m.y]], linestyle="none", marker="*",
                markersize=12, color="C3", markeredgecolor="k", mew=0.5,
                gid=f"best:{m.x}:{m.y}")
        for name, set_scale in ((m.x, ax.set_xscale), (m.y, ax.set_yscale)):
            if getattr(campaign.space[name], "log", False):
                set_scale("log")
        if i == k:
            ax.set_xlabel(axis_label(campaign.space[m.x]))
        if j == 0:
            ax.set_ylabel(axis_label(campaign.space[m.y]))
    for i in range(1, len(names)):
        for j in range(i, k):
            axes[i - 1][j].set_visible(False)  # above the diagonal: the same pairs again
    name = next(iter(maps.values())).output
    fig.colorbar(filled, ax=axes.ravel().tolist(), label=f"posterior mean:"
                 f" {outcome_label(campaign, name)}")
    fig.suptitle(f"{campaign.name}: {name} over pairs of {', '.join(names)} (others at"
                 f" trial {next(iter(maps.values())).trial}'s values)", fontsize="medium")
    return fig
