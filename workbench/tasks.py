"""Task and fidelity columns: multi-task and multi-fidelity GPs on the encoded domain.

A campaign with ``surrogate: {type: multitask, task: plant, target: B}`` or
``{type: multifidelity, fidelity: level, costs: [...]}`` keeps the task (or
fidelity) as an ordinary parameter, so every trial records it. The
coregionalised GPs of ``surrogates.multitask`` / ``surrogates.multifidelity``
take the task as an integer beside the inputs instead; :class:`TaskColumns`
reads it back from the parameter's encoded columns, so the fitted model follows
the plain surrogate protocol on full encoded points and every acquisition,
fantasy and optimiser of the engine works unchanged.

The multi-fidelity acquisition (:class:`MultiFidelityLogEI`) is the augmented
expected improvement of Huang, Allen, Notz & Miller (2006, "Sequential kriging
optimization using multiple-fidelity evaluations"), in log space: the EI of
the target-fidelity posterior at x, times the posterior correlation between
the evaluated fidelity and the target at x (how much of an evaluation at level
l is information about the target), times a noise factor (repeating a noisy
cheap point teaches little); ``active_learning.CostAware`` then divides by the
level's cost. It needs only the joint posterior of two points, reduces to
plain log-EI per unit cost at the target level, and scores a cheap point that
is already known at ~zero (the correlation of a known value with anything is
zero), so the cheap level is spent where it still says something about the
target and the expensive level where the cheap one no longer can.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

# Floors for log(correlation) and variances: a point already observed at a
# noiseless level has none left, and its log value must stay finite.
_MIN_CORRELATION = 1e-12
_MIN_VARIANCE = 1e-12


def task_layout(space, name: str) -> tuple[tuple[int, ...], tuple[int, ...], int, bool]:
    """Where parameter ``name`` lives in the encoded points of ``space``.

    Returns (its columns, every other column, number of levels, whether it is
    one-hot). Levels are the categorical choices in order, or the integers
    low..high.
    """
    from workbench.space import Categorical

    col = 0
    for p in space.parameters:
        if p.name == name:
            columns = tuple(range(col, col + p.columns))
            keep = tuple(j for j in range(space.dim) if j not in columns)
            onehot = isinstance(p, Categorical)
            return columns, keep, (len(p.choices) if onehot else p.levels), onehot
        col += p.columns
    raise KeyError(name)


def task_index(X: Array, columns: tuple[int, ...], levels: int, onehot: bool) -> Array:
    """Encoded points (..., d) -> the task / fidelity index (...,) in 0..levels - 1."""
    Z = X[..., jnp.asarray(columns)]
    if onehot:
        return jnp.argmax(Z, axis=-1).astype(jnp.int32)
    return jnp.clip(jnp.rint(Z[..., 0] * (levels - 1)), 0, levels - 1).astype(jnp.int32)


class TaskColumns(eqx.Module):
    """Coregionalised GPs behind the plain protocol on full encoded points.

    gps: one ``surrogates.MultiTaskGP`` per output (objectives, then constrained
    outcomes), fitted on the other columns (a multi-fidelity GP's ``.gp``);
    columns: the task parameter's encoded columns; keep: the other columns;
    levels: number of tasks; onehot: whether the task is a one-hot categorical
    (else an integer on a grid). ``posterior(X)`` predicts, at each row, the
    task its columns name.
    """

    gps: tuple
    columns: tuple[int, ...] = eqx.field(static=True)
    keep: tuple[int, ...] = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    onehot: bool = eqx.field(static=True)

    @property
    def num_outputs(self) -> int:
        return len(self.gps)

    @property
    def gp(self) -> eqx.Module:
        """The first output's GP (the objective's)."""
        return self.gps[0]

    def task_of(self, X: Array) -> Array:
        """(..., d) -> (...,) task index of each encoded point."""
        return task_index(X, self.columns, self.levels, self.onehot)

    def inputs(self, X: Array) -> Array:
        """(..., d) -> (..., d - task columns): what the GP sees."""
        return X[..., jnp.asarray(self.keep)]

    def posterior(self, Xq: Array, full_cov: bool = False):
        """Posterior of each row's own task; Xq: (q, d). Mean, variance (q, m);
        covariance (m, q, q) when full_cov (outputs are independent)."""
        from surrogates.gp import Posterior

        Xq = jnp.atleast_2d(Xq)
        Z, task = self.inputs(Xq), self.task_of(Xq)
        posts = [gp.posterior(Z, full_cov=full_cov, task=task) for gp in self.gps]
        if len(posts) == 1:
            return posts[0]
        return Posterior(
            mean=jnp.concatenate([p.mean for p in posts], axis=1),
            variance=jnp.concatenate([p.variance for p in posts], axis=1),
            covariance=jnp.concatenate([p.covariance for p in posts]) if full_cov else None)

    def condition(self, Xnew: Array, Ynew: Array) -> "TaskColumns":
        """Conditioned on (k, d) points at their own tasks, Ynew (k, m) (or (k,) for m = 1)."""
        Xnew = jnp.atleast_2d(jnp.asarray(Xnew))
        Ynew = jnp.reshape(jnp.asarray(Ynew), (Xnew.shape[0], len(self.gps)))
        Z, task = self.inputs(Xnew), self.task_of(Xnew)
        gps = tuple(gp.condition(Z, Ynew[:, k], task=task) for k, gp in enumerate(self.gps))
        return TaskColumns(gps, self.columns, self.keep, self.levels, self.onehot)


def fit_task_columns(kind: str, X: np.ndarray, Y: np.ndarray, layout, *, key, target: int,
                     costs=None, rank: int = 1, capacity: int | None = None,
                     restarts: int = 4) -> TaskColumns:
    """Fit a multi-task (``kind`` "multitask") or multi-fidelity GP on encoded
    points whose task / fidelity sits in ``layout`` (from :func:`task_layout`).

    X: (n, d) encoded points in [0, 1]; Y: (n, m), one GP per output (the
    multi-fidelity GP models one); target: the target task's index
    (multi-fidelity: the highest level); costs: (levels,) per evaluation.
    """
    import surrogates as sg

    columns, keep, levels, onehot = layout
    X = np.asarray(X, np.float64)
    task = np.asarray(task_index(jnp.asarray(X), columns, levels, onehot))
    Xk = X[:, list(keep)]
    unit = (np.zeros(len(keep)), np.ones(len(keep)))
    Y = np.asarray(Y, np.float64).reshape(len(X), -1)
    if kind == "multitask":
        # A handful of outputs, each its own task covariance: one fit each.
        gps = tuple(sg.fit_multitask_gp(Xk, Y[:, k], task,
                                        key=key if k == 0 else jax.random.fold_in(key, k),
                                        target_task=target, num_tasks=levels, rank=rank,
                                        bounds=unit, capacity=capacity, restarts=restarts)
                    for k in range(Y.shape[1]))
    else:
        mf = sg.fit_multifidelity_gp(Xk, Y[:, 0], task, key=key, costs=costs,
                                     num_fidelities=levels, bounds=unit, capacity=capacity,
                                     restarts=restarts)
        gps = (mf.gp,)
    return TaskColumns(gps, columns, keep, levels, onehot)


def fit_summary(model: TaskColumns) -> dict:
    """JSON-ready summary of a fit for the proposal's audit: observations per
    level, and the task correlation per output (multi-task) or the
    autoregressive scale factors rho (multi-fidelity)."""
    gp = model.gp
    observed = np.asarray(gp.task)[np.asarray(gp.mask) > 0]
    out = {"observations_per_level": np.bincount(observed, minlength=model.levels).tolist()}
    rho = getattr(gp.hyperparameters, "rho", None)
    if rho is not None:
        out["rho"] = np.asarray(rho).round(6).tolist()
    else:
        out["task_correlation"] = [np.asarray(g.task_correlation).round(6).tolist()
                                   for g in model.gps]
    return out


class MultiFidelityLogEI(eqx.Module):
    """log of Huang et al.'s (2006) augmented EI before the cost: at x and level l,

        log EI_L(x) + log |corr(f_l(x), f_L(x))| + log(1 - sqrt(n_l / (s_l^2(x) + n_l))),

    with EI_L the expected improvement of the target (highest) level's latent
    posterior over ``best``, the correlation from the joint posterior of the two
    levels at x, s_l^2 the latent variance and n_l the noise variance at level l.
    Wrap it in ``CostAware`` with the level's cost.

    model: a :class:`TaskColumns` of a multi-fidelity GP; best: incumbent in
    output units; noise: (levels,) noise variances in output units; sign: +1 to
    maximise, -1 to minimise; transform: input features applied first (or None).
    X: (b, d) encoded points, their level in the fidelity columns -> (b,).
    """

    model: TaskColumns
    best: Array
    noise: Array
    transform: eqx.Module | None = None
    sign: float = eqx.field(static=True, default=1.0)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        from active_learning.acquisition import log_expected_improvement_from_moments

        Xt = X if self.transform is None else self.transform(X)
        level = self.model.task_of(Xt)
        Z = self.model.inputs(Xt)
        target = self.model.levels - 1

        def joint(z, t):
            post = self.model.gp.posterior(jnp.stack([z, z]), full_cov=True,
                                           task=jnp.stack([t, jnp.asarray(target, t.dtype)]))
            return post.mean[1, 0], post.covariance[0]

        mean, cov = jax.vmap(joint)(Z, level)
        var_l = jnp.maximum(cov[:, 0, 0], _MIN_VARIANCE)
        var_target = jnp.maximum(cov[:, 1, 1], _MIN_VARIANCE)
        corr = jnp.clip(jnp.abs(cov[:, 0, 1]) / jnp.sqrt(var_l * var_target),
                        _MIN_CORRELATION, 1.0)
        noise = self.noise[level]
        log_noise_factor = jnp.log1p(-jnp.sqrt(noise / (var_l + noise)))
        log_ei = log_expected_improvement_from_moments(
            self.sign * mean, jnp.sqrt(var_target), self.sign * self.best)
        return log_ei + jnp.log(corr) + log_noise_factor


class LevelCost(eqx.Module):
    """Cost of one evaluation at each encoded point's level: (b, d) -> (b,).

    costs: (levels,) positive; columns, levels, onehot: the fidelity's layout.
    """

    costs: Array
    columns: tuple[int, ...] = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    onehot: bool = eqx.field(static=True)

    def __call__(self, X: Array) -> Array:
        return self.costs[task_index(X, self.columns, self.levels, self.onehot)]


def noise_variances(model: TaskColumns) -> Array:
    """(levels,) observation noise variance per level, in output units."""
    gp = model.gp
    return gp.params.noise * gp.y_scale**2


__all__ = ["LevelCost", "MultiFidelityLogEI", "TaskColumns", "fit_summary", "fit_task_columns",
           "noise_variances", "task_index", "task_layout"]
