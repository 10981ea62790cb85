"""Multi-fidelity acquisition: improvement at the target level per unit cost.

:class:`MultiFidelityLogEI` is the augmented expected improvement of Huang,
Allen, Notz & Miller (2006, "Sequential kriging optimization using
multiple-fidelity evaluations"), in log space: the EI of the target-fidelity
posterior at x, times the posterior correlation between the evaluated
fidelity and the target at x (how much of an evaluation at level l is
information about the target), times a noise factor (repeating a noisy cheap
point teaches little); :class:`~active_learning.CostAware` then divides by
the level's cost (:class:`LevelCost`). It needs only the joint posterior of
two points, reduces to plain log-EI per unit cost at the target level, and
scores a cheap point that is already known at about zero (the correlation of
a known value with anything is zero), so the cheap level is spent where it
still says something about the target and the expensive level where the
cheap one no longer can.

The model is a :class:`surrogates.task_columns.TaskColumns` over a
multi-fidelity GP: encoded points carry their level in the fidelity columns.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

from active_learning.acquisition import log_expected_improvement_from_moments
from surrogates.numerics import MIN_VARIANCE
from surrogates.task_columns import TaskColumns, task_index

# Floor for the correlation before its log: a point already observed at a
# noiseless level has none left with the target, and its log value must stay finite.
_MIN_CORRELATION = 1e-12


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
        Xt = X if self.transform is None else self.transform(X)
        level = self.model.task_of(Xt)
        Z = self.model.inputs(Xt)
        target = self.model.levels - 1

        def joint(z, t):
            post = self.model.gp.posterior(jnp.stack([z, z]), full_cov=True,
                                           task=jnp.stack([t, jnp.asarray(target, t.dtype)]))
            return post.mean[1, 0], post.covariance[0]

        mean, cov = jax.vmap(joint)(Z, level)
        var_l = jnp.maximum(cov[:, 0, 0], MIN_VARIANCE)
        var_target = jnp.maximum(cov[:, 1, 1], MIN_VARIANCE)
        corr = jnp.clip(jnp.abs(cov[:, 0, 1]) / jnp.sqrt(var_l * var_target),
                        _MIN_CORRELATION, 1.0)
        noise = self.noise[level]
        log_noise_factor = jnp.log1p(-jnp.sqrt(noise / (var_l + noise)))
        log_ei = log_expected_improvement_from_moments(
            self.sign * mean, jnp.sqrt(var_target), self.sign * self.best)
        return log_ei + jnp.log(corr) + log_noise_factor


class LevelCost(eqx.Module):
    """Cost of one evaluation at each encoded point's level: X (b, d) -> (b,).

    costs: (levels,) positive; columns, levels, onehot: the fidelity's layout.
    """

    costs: Array
    columns: tuple[int, ...] = eqx.field(static=True)
    levels: int = eqx.field(static=True)
    onehot: bool = eqx.field(static=True)

    def __call__(self, X: Array) -> Array:
        return self.costs[task_index(X, self.columns, self.levels, self.onehot)]


__all__ = ["LevelCost", "MultiFidelityLogEI"]
