"""Objectives on model outputs, means or samples: signs and targets
(``Objectives``, ``TargetObjective``) and ParEGO's random Chebyshev
scalarisation.

Convention: every objective is maximised; model outputs ``(..., m_model)`` map
to objectives ``(..., m)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array

__all__ = [
    "ChebyshevScalarization", "Objectives", "TargetObjective", "chebyshev_scalarization",
    "expected_target_objective", "sample_simplex",
]


class Objectives(eqx.Module):
    """Maps model outputs to maximised objectives, on means or samples.

    outputs: model output index of each objective; signs: +1 to maximise, -1
    to minimise; targets: None, or a value t per objective (None for none)
    for "as close as possible to t", which becomes -(y - t)^2 (the sign is
    then ignored). Y: (..., m_model) -> (..., len(outputs)).
    """

    outputs: tuple[int, ...] = eqx.field(static=True)
    signs: tuple[float, ...] | None = eqx.field(static=True, default=None)
    targets: tuple[float | None, ...] | None = eqx.field(static=True, default=None)

    def __call__(self, Y: Array) -> Array:
        columns = []
        for k, out in enumerate(self.outputs):
            y = Y[..., out]
            target = None if self.targets is None else self.targets[k]
            if target is not None:
                y = -((y - target) ** 2)
            elif self.signs is not None:
                y = self.signs[k] * y
            columns.append(y)
        return jnp.stack(columns, axis=-1)


def expected_target_objective(mean: Array, variance: Array, target: Array) -> Array:
    """E[-(y - t)^2] = -((mu - t)^2 + var) for y ~ N(mu, var).

    The posterior expectation of the target objective: it rewards a mean on
    target and penalises uncertainty, so it is for picking a recommendation,
    not for exploring (use ``ScalarizedLogEI`` with ``TargetObjective``).
    """
    return -((mean - target) ** 2 + variance)


class TargetObjective(eqx.Module):
    """-(y_output - target)^2 of samples: (..., m_model) -> (...)."""

    target: Array = eqx.field(converter=lambda t: jnp.asarray(t, jnp.float64))
    output: int = eqx.field(static=True, default=0)

    def __call__(self, Y: Array) -> Array:
        return -((Y[..., self.output] - self.target) ** 2)


def sample_simplex(key: Array, m: int, shape: tuple[int, ...] = ()) -> Array:
    """Weights drawn uniformly from the (m-1)-simplex: shape + (m,).

    Normalised standard exponentials are flat-Dirichlet distributed.
    """
    size = math.prod(shape) * m
    e = jax.random.exponential(key, (size,)).reshape(*shape, m)
    return e / jnp.sum(e, axis=-1, keepdims=True)


def chebyshev_scalarization(weights: Array, Y: Array, ideal: Array, nadir: Array,
                            rho: float = 0.05) -> Array:
    """Augmented Chebyshev scalarisation of Knowles's ParEGO, for maximisation.

    With z = (Y - nadir) / (ideal - nadir) (1 at the ideal, 0 at the nadir),
    s = min_k w_k (z_k - 1) + rho sum_k w_k (z_k - 1): minus the weighted
    Chebyshev distance to the ideal point plus a small linear term that breaks
    ties between weakly Pareto-optimal points. 0 at the ideal, larger is better.
    weights: (m,) on the simplex; Y: (..., m); ideal, nadir: (m,). Returns (...).
    """
    span = ideal - nadir
    span = jnp.where(span > 0, span, 1.0)
    gap = weights * ((Y - nadir) / span - 1.0)
    return jnp.min(gap, axis=-1) + rho * jnp.sum(gap, axis=-1)


class ChebyshevScalarization(eqx.Module):
    """``chebyshev_scalarization`` with fixed weights and normalisation: (..., m) -> (...).

    objectives: optional map from model outputs to maximised objectives
    applied first (defaults to all outputs as they are).
    """

    weights: Array
    ideal: Array
    nadir: Array
    rho: float = 0.05
    objectives: Objectives | None = None

    @classmethod
    def from_observations(cls, weights: Array, Y: Array, rho: float = 0.05,
                          objectives: Objectives | None = None) -> ChebyshevScalarization:
        """Normalise by the observed range: ideal = max Y, nadir = min Y per objective.

        Y: (n, m) observed objectives (already maximised)."""
        Y = jnp.asarray(Y)
        return cls(jnp.asarray(weights), Y.max(axis=0), Y.min(axis=0), rho, objectives)

    def __call__(self, Y: Array) -> Array:
        if self.objectives is not None:
            Y = self.objectives(Y)
        return chebyshev_scalarization(self.weights, Y, self.ideal, self.nadir, self.rho)

