"""Multi-objective utilities: Pareto fronts, hypervolumes, box decompositions,
and the acquisitions built on them (qLogEHVI, qLogNEHVI, ParEGO), outcome
constraints and objective targets.

Convention: every objective is maximised. The caller multiplies minimised
objectives by -1 (or uses ``Objectives(signs=...)`` on model samples).
``Y: (n, m)`` holds n points with m objectives; ``ref: (m,)`` is the reference
point, which counts only what improves on it in every objective.

This module holds the outcome constraints and re-exports the rest from
:mod:`active_learning.pareto` (fronts, reference points),
:mod:`active_learning.dominated_region` (hypervolumes, box decompositions),
:mod:`active_learning.objectives` (signs, targets, scalarisations) and
:mod:`active_learning.mo_acquisition` (the acquisitions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.special import log_ndtr

from active_learning.dominated_region import (
    dominated_boxes,
    hypervolume,
    hypervolume_exact,
    hypervolume_improvement,
    hypervolume_jax,
    hypervolume_monte_carlo,
    nondominated_cells,
)
from active_learning.mo_acquisition import (
    LogExpectedHypervolumeImprovement,
    ScalarizedLogEI,
    as_batches,
    log_fatplus,
    qLogExpectedHypervolumeImprovement,
    qLogNoisyExpectedHypervolumeImprovement,
)
from active_learning.objectives import (
    ChebyshevScalarization,
    Objectives,
    TargetObjective,
    chebyshev_scalarization,
    expected_target_objective,
    sample_simplex,
)
from active_learning.pareto import (
    REFERENCE_MARGIN,
    pareto_mask,
    pareto_mask_np,
    reference_point,
)


# ----------------------------------------------------------------------------
# Outcome constraints


class OutcomeConstraints(eqx.Module):
    """Constraints y_output <= bound (upper) or y_output >= bound on model outputs.

    outputs: (k,) model output indices; upper: (k,) True for <=; bounds: (k,)
    in output units. ``OutcomeConstraints.from_tuples([(2, "<=", 0.05)])``.
    """

    bounds: Array
    outputs: tuple[int, ...] = eqx.field(static=True)
    upper: tuple[bool, ...] = eqx.field(static=True)

    @classmethod
    def from_tuples(cls, constraints: Sequence[tuple[int, str, float]]) -> OutcomeConstraints:
        """constraints: (output index, "<=" or ">=", bound) triples."""
        ops = {"<=": True, ">=": False}
        for output, op, _ in constraints:
            if op not in ops:
                raise ValueError(f"constraint on output {output}: operator must be <= or >=;"
                                 f" got {op!r}")
        return cls(
            bounds=jnp.asarray([float(b) for _, _, b in constraints], jnp.float64),
            outputs=tuple(int(o) for o, _, _ in constraints),
            upper=tuple(ops[op] for _, op, _ in constraints),
        )


@jax.jit
def log_probability_of_feasibility(posterior, constraints: OutcomeConstraints) -> Array:
    """sum_k log P(constraint k holds) under the marginal posterior: (q,).

    Treats constraints as independent given x (exact for independent-output
    models): sum of log Phi((bound - mu) / sigma) for <=, log Phi((mu - bound)
    / sigma) for >=, via log_ndtr so that it stays finite far outside.
    posterior: ``Posterior`` with mean, variance (q, m_model).
    """
    idx = np.asarray(constraints.outputs)
    mean = posterior.mean[:, idx]
    std = jnp.sqrt(posterior.variance[:, idx])
    sign = jnp.where(np.asarray(constraints.upper), 1.0, -1.0)
    return jnp.sum(log_ndtr(sign * (constraints.bounds - mean) / std), axis=-1)


class FeasibilityWeighted(eqx.Module):
    """A log-space acquisition plus the log probability that its points are feasible.

    acquisition(X) + sum over the q points of ``log_probability_of_feasibility``:
    multiplying EI-type acquisitions by P(feasible), in log space (so use it
    with log acquisitions: LogEI, qLogEHVI, qLogNEHVI, ScalarizedLogEI).
    Points within a batch are treated as independent for feasibility.
    X: (b, d) or (b, q, d) -> (b,).
    """

    acquisition: Callable
    model: eqx.Module
    constraints: OutcomeConstraints

    def __call__(self, X: Array) -> Array:
        Xb = as_batches(X)
        b, q, d = Xb.shape
        log_pof = log_probability_of_feasibility(self.model.posterior(Xb.reshape(b * q, d)),
                                                 self.constraints)
        return self.acquisition(X) + jnp.sum(log_pof.reshape(b, q), axis=1)


def feasibility_weighted(acquisition: Callable, model, constraints: OutcomeConstraints
                         ) -> FeasibilityWeighted:
    """Wrap a log-space acquisition with the log probability of feasibility."""
    return FeasibilityWeighted(acquisition, model, constraints)


__all__ = [
    "ChebyshevScalarization",
    "LogExpectedHypervolumeImprovement",
    "REFERENCE_MARGIN",
    "FeasibilityWeighted",
    "Objectives",
    "OutcomeConstraints",
    "ScalarizedLogEI",
    "TargetObjective",
    "chebyshev_scalarization",
    "dominated_boxes",
    "expected_target_objective",
    "feasibility_weighted",
    "hypervolume",
    "hypervolume_exact",
    "hypervolume_improvement",
    "hypervolume_jax",
    "hypervolume_monte_carlo",
    "log_fatplus",
    "log_probability_of_feasibility",
    "nondominated_cells",
    "pareto_mask",
    "pareto_mask_np",
    "qLogExpectedHypervolumeImprovement",
    "qLogNoisyExpectedHypervolumeImprovement",
    "reference_point",
    "sample_simplex",
]
