"""Task and fidelity columns: coregionalised GPs behind the plain protocol.

A campaign keeps a multi-task GP's task (or a multi-fidelity GP's fidelity)
as an ordinary encoded column, so every trial records it. The coregionalised
GPs of :mod:`surrogates.multitask` and :mod:`surrogates.multifidelity` take
the task as an integer beside the inputs instead; :class:`TaskColumns` reads
it back from the encoded columns, so the fitted model follows the plain
surrogate protocol on full encoded points and every acquisition, fantasy and
optimiser works unchanged.

Shapes: ``n`` observations, ``d`` encoded columns (task columns included),
``m`` outputs, ``q`` query points.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from surrogates.gp import Posterior
from surrogates.multifidelity import fit_multifidelity_gp
from surrogates.multitask import fit_multitask_gp
from surrogates.registry import register_model


class TaskLayout(NamedTuple):
    """Where the task lives among the encoded columns.

    columns: the task's own columns; keep: every other column; levels: the
    number of tasks (or fidelities, cheapest first); onehot: whether the task
    is one-hot encoded (else one column on the grid of ``levels`` values).
    """

    columns: tuple[int, ...]
    keep: tuple[int, ...]
    levels: int
    onehot: bool


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
    columns, keep, levels, onehot: the :class:`TaskLayout`. ``posterior(X)``
    predicts, at each row, the task its columns name.
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

    @property
    def noise_variances(self) -> Array:
        """(levels,) observation noise variance per level of the first output, in
        output units."""
        return self.gp.params.noise * self.gp.y_scale**2

    def task_of(self, X: Array) -> Array:
        """(..., d) -> (...,) task index of each encoded point."""
        return task_index(X, self.columns, self.levels, self.onehot)

    def inputs(self, X: Array) -> Array:
        """(..., d) -> (..., d - task columns): what the GP sees."""
        return X[..., jnp.asarray(self.keep)]

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Posterior of each row's own task; Xq: (q, d). Mean, variance (q, m);
        covariance (m, q, q) when full_cov (outputs are independent)."""
        Xq = jnp.atleast_2d(Xq)
        Z, task = self.inputs(Xq), self.task_of(Xq)
        posts = [gp.posterior(Z, full_cov=full_cov, task=task) for gp in self.gps]
        if len(posts) == 1:
            return posts[0]
        return Posterior(
            mean=jnp.concatenate([p.mean for p in posts], axis=1),
            variance=jnp.concatenate([p.variance for p in posts], axis=1),
            covariance=jnp.concatenate([p.covariance for p in posts]) if full_cov else None)

    def condition(self, Xnew: Array, Ynew: Array) -> TaskColumns:
        """Conditioned on (k, d) points at their own tasks, Ynew (k, m) (or (k,) for m = 1)."""
        Xnew = jnp.atleast_2d(jnp.asarray(Xnew))
        Ynew = jnp.reshape(jnp.asarray(Ynew), (Xnew.shape[0], len(self.gps)))
        Z, task = self.inputs(Xnew), self.task_of(Xnew)
        gps = tuple(gp.condition(Z, Ynew[:, k], task=task) for k, gp in enumerate(self.gps))
        return TaskColumns(gps, self.columns, self.keep, self.levels, self.onehot)


def _split(X, Y, layout: TaskLayout):
    """Encoded X (n, d), Y -> the GP's inputs (n, d - task columns), the task
    index (n,), Y as (n, m), and the unit bounds of the inputs."""
    X = np.asarray(X, np.float64)
    task = np.asarray(task_index(jnp.asarray(X), layout.columns, layout.levels, layout.onehot))
    unit = (np.zeros(len(layout.keep)), np.ones(len(layout.keep)))
    Y = np.asarray(Y, np.float64).reshape(len(X), -1)
    return X[:, list(layout.keep)], task, Y, unit


@register_model("multitask")
def fit_multitask_columns(X, Y, *, key: Array, layout: TaskLayout, target: int | None = None,
                          rank: int = 1, capacity: int | None = None,
                          restarts: int = 4) -> TaskColumns:
    """A multi-task GP per output on encoded points whose task sits in ``layout``.

    X: (n, d) encoded points in [0, 1]; Y: (n, m); target: the index of the
    task proposals are for (default the last); rank: of the task covariance.
    """
    layout = TaskLayout(*layout)
    Xk, task, Y, unit = _split(X, Y, layout)
    target = layout.levels - 1 if target is None else target
    # A handful of outputs, each its own task covariance: one fit each.
    gps = tuple(fit_multitask_gp(Xk, Y[:, k], task,
                                 key=key if k == 0 else jax.random.fold_in(key, k),
                                 target_task=target, num_tasks=layout.levels, rank=rank,
                                 bounds=unit, capacity=capacity, restarts=restarts)
                for k in range(Y.shape[1]))
    return TaskColumns(gps, *layout)


@register_model("multifidelity")
def fit_multifidelity_columns(X, Y, *, key: Array, layout: TaskLayout, costs=None,
                              capacity: int | None = None, restarts: int = 4) -> TaskColumns:
    """An autoregressive multi-fidelity GP on encoded points whose fidelity sits in
    ``layout`` (levels cheapest first). X: (n, d) encoded points in [0, 1]; Y:
    (n, 1), one output; costs: (levels,) per evaluation."""
    layout = TaskLayout(*layout)
    Xk, task, Y, unit = _split(X, Y, layout)
    mf = fit_multifidelity_gp(Xk, Y[:, 0], task, key=key, costs=costs,
                              num_fidelities=layout.levels, bounds=unit, capacity=capacity,
                              restarts=restarts)
    return TaskColumns((mf.gp,), *layout)


def fit_summary(model: TaskColumns) -> dict:
    """JSON-ready summary of a fit: observations per level, and the task
    correlation per output (multi-task) or the autoregressive scale factors
    rho (multi-fidelity)."""
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


__all__ = ["TaskColumns", "TaskLayout", "fit_multifidelity_columns", "fit_multitask_columns",
           "fit_summary", "task_index"]
