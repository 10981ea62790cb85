"""Acquisition builders by name: the Problem's choice on a fitted surrogate.

``ACQUISITIONS[problem.acquisition.type]`` builds the acquisition from
:class:`AcquisitionInputs`; each builder is registered where it is defined
(``@acquisition("ucb", log_space=False)``), so adding one is one entry here.
Outcome constraints multiply log-space acquisitions by the probability of
feasibility (:func:`build_acquisition`).

Pending points: models that can be conditioned carry them as believed
observations (the caller conditions the model); otherwise builders score the
joint gain over them with a Monte-Carlo acquisition.

Shapes: ``n`` observations, ``p`` pending points, ``d`` encoded columns,
``m`` modelled outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

import active_learning as al
from surrogates import Surrogate, pad_points
from workbench.engine.problem import Problem

# Integrated variance reduction: the region is covered by this many quasi-random
# points (the acquisition's cost is linear in it), and observations are assumed
# this noisy (in squared output units) so that a point on the data still counts.
_IVR_REFERENCE_POINTS = 256
_IVR_NOISE = 1e-6
# Max-value entropy search: the optimum's value is sampled from joint posterior
# draws on this many quasi-random candidates, this many times.
_MES_CANDIDATES = 1024
_MES_OPTIMUM_SAMPLES = 16
# Noisy EI keeps at most this many observed points in its joint with a candidate: those
# most often the best in joint draws (``active_learning.likely_best``), as BoTorch's
# ``prune_inferior_points`` does. Each point kept costs every candidate its share of the
# Monte-Carlo draws, while a point never the best in them does not move the incumbent;
# the suite's noisy campaigns have at most about forty such points at 100 observations
# (benchmarks/results/running_campaign.md), so 64 prunes what never wins and keeps one
# program per data bucket.
NEI_MAX_BASELINE = 64
# qLogNEHVI's joint samples over the baseline and the batch: its cost grows with
# the samples times the box decomposition, so it takes at most this many.
_NEHVI_MAX_SAMPLES = 64


@dataclass(frozen=True)
class AcquisitionInputs:
    """What a builder may use.

    model: the surrogate (conditioned on believed points, if any); X: (n, d),
    Y: (n, m) observations; best: the single objective's incumbent (maximised
    score; NaN with several objectives); key: PRNG key for Monte-Carlo samples;
    baseline: X padded with its mask; pending: (p, d) points to score jointly
    with, or None; believed: (b, d) points the model was conditioned on at their
    predicted values (Kriging believer), or None.
    """

    problem: Problem
    model: Surrogate
    X: np.ndarray
    Y: np.ndarray
    best: float
    key: Array
    baseline: tuple[Array, Array]
    pending: np.ndarray | None
    believed: np.ndarray | None

    @property
    def pending_padded(self) -> tuple[Array, Array] | None:
        """The pending points padded to a bucket with their mask, or None."""
        return None if self.pending is None else pad_points(self.pending, self.problem.dim)

    @property
    def sign(self) -> float:
        return self.problem.goals[0].sign


Build = Callable[[AcquisitionInputs], Any]


@dataclass(frozen=True)
class AcquisitionBuilder:
    """build(inputs) -> acquisition; log_space: whether its values are logarithms
    (feasibility weighting then adds a log probability); objectives: how many
    objectives it serves ("one", "several" or "any")."""

    build: Build
    log_space: bool
    objectives: Literal["one", "several", "any"]


#: Acquisition name (``Problem.acquisition.type``) -> its builder.
ACQUISITIONS: dict[str, AcquisitionBuilder] = {}


def acquisition(name: str, *, log_space: bool,
                objectives: Literal["one", "several", "any"] = "one") -> Callable[[Build], Build]:
    """Decorator: register ``build`` in :data:`ACQUISITIONS` under ``name``."""

    def register(build: Build) -> Build:
        ACQUISITIONS[name] = AcquisitionBuilder(build, log_space, objectives)
        return build

    return register


def build_acquisition(problem: Problem, model, X: np.ndarray, Y: np.ndarray, best: float,
                      key, X_pending: np.ndarray | None,
                      X_believed: np.ndarray | None = None):
    """The Problem's acquisition on ``model``: encoded candidates (b, d) -> (b,).

    X (n, d), Y (n, m): observations; best: the single objective's incumbent
    (maximised score); X_pending: (p, d) points to score jointly with (models
    that cannot be conditioned, and qLogNEHVI); X_believed: points the model was
    conditioned on at their predicted values (log EHVI counts them in the front).
    """
    kind = problem.acquisition.type
    builder = ACQUISITIONS[kind]
    wanted = "several" if problem.several else "one"
    if builder.objectives not in ("any", wanted):
        raise ValueError(f"acquisition.type {kind!r} with {len(problem.goals)} objective(s)")
    pending = None if X_pending is None or not len(X_pending) else np.asarray(X_pending)
    inputs = AcquisitionInputs(problem, model, X, Y, best, key, pad_points(X, problem.dim),
                               pending, X_believed)
    acq = builder.build(inputs)
    constraints = outcome_constraints(problem)
    if constraints is not None and builder.log_space:
        acq = al.feasibility_weighted(acq, model, constraints)
    return acq


def objective_map(problem: Problem) -> al.Objectives:
    """The objectives as model outputs 0..k-1 with their signs and targets."""
    return al.Objectives(outputs=tuple(range(len(problem.goals))),
                         signs=tuple(g.sign for g in problem.goals),
                         targets=tuple(g.target for g in problem.goals))


def outcome_constraints(problem: Problem) -> al.OutcomeConstraints | None:
    """The outcome constraints on their model outputs, or None."""
    if not problem.constraints:
        return None
    return al.OutcomeConstraints.from_tuples(
        [(problem.outputs.index(c.name), c.op, c.bound) for c in problem.constraints])


def reference(problem: Problem, Y: np.ndarray) -> np.ndarray:
    """Hypervolume reference point in maximised-objective units, by
    :func:`active_learning.reference_point`: the spec's, or a margin below the
    worst observed score of each objective. Y: (n, outputs) observed outputs."""
    return al.reference_point(problem.scores(Y), problem.acquisition.ref_point)


# -- one objective --------------------------------------------------------------


def _target(inputs: AcquisitionInputs):
    """Log EI of -(value - target)^2, by Monte Carlo: an objective with a target."""
    goal = inputs.problem.goals[0]
    return al.ScalarizedLogEI(inputs.model, al.TargetObjective(goal.target, output=0),
                              inputs.best, inputs.key,
                              num_samples=inputs.problem.acquisition.mc_samples)


def _joint_noisy_ei(inputs: AcquisitionInputs):
    """qLogNEI over the baseline, jointly with the pending points when there are any."""
    X_train, mask = inputs.baseline
    extra = {}
    if inputs.pending is not None:
        X_pending, pending_mask = inputs.pending_padded
        extra = {"X_pending": X_pending, "pending_mask": pending_mask}
    return al.qLogNoisyExpectedImprovement(inputs.model, X_train, baseline_mask=mask,
                                           sign=inputs.sign,
                                           num_samples=inputs.problem.acquisition.mc_samples,
                                           max_baseline=NEI_MAX_BASELINE, **extra)


@acquisition("log_ei", log_space=True)
def _log_ei(inputs: AcquisitionInputs):
    if inputs.problem.goals[0].target is not None:
        return _target(inputs)
    if inputs.pending is not None:  # no conditioning: the joint gain over the pending points
        return _joint_noisy_ei(inputs)
    return al.LogExpectedImprovement(inputs.model, jnp.asarray(inputs.sign * inputs.best),
                                     sign=inputs.sign)


@acquisition("log_nei", log_space=True)
def _log_nei(inputs: AcquisitionInputs):
    if inputs.problem.goals[0].target is not None:
        return _target(inputs)
    if inputs.pending is not None:
        return _joint_noisy_ei(inputs)
    X_train, mask = inputs.baseline
    return al.LogNoisyExpectedImprovement(inputs.model, X_train, baseline_mask=mask,
                                          sign=inputs.sign,
                                          num_samples=inputs.problem.acquisition.mc_samples,
                                          max_baseline=NEI_MAX_BASELINE)


@acquisition("qlog_nei", log_space=True)
def _qlog_nei(inputs: AcquisitionInputs):
    if inputs.problem.goals[0].target is not None:
        return _target(inputs)
    return _joint_noisy_ei(inputs)


@acquisition("log_pi", log_space=True)
def _log_pi(inputs: AcquisitionInputs):
    if inputs.pending is not None:
        return _joint_noisy_ei(inputs)
    return al.LogProbabilityOfImprovement(inputs.model, jnp.asarray(inputs.sign * inputs.best),
                                          sign=inputs.sign)


@acquisition("ucb", log_space=False)
def _ucb(inputs: AcquisitionInputs):
    beta = inputs.problem.acquisition.beta
    if inputs.pending is not None:
        X_pending, pending_mask = inputs.pending_padded
        return al.qUpperConfidenceBound(inputs.model, beta=beta, sign=inputs.sign,
                                        X_pending=X_pending, pending_mask=pending_mask)
    return al.UpperConfidenceBound(inputs.model, beta=beta, sign=inputs.sign)


@acquisition("ivr", log_space=False)
def _ivr(inputs: AcquisitionInputs):
    reference_set = al.quasi_random(inputs.key, _IVR_REFERENCE_POINTS, inputs.problem.dim)
    return al.IntegratedVarianceReduction(inputs.model, reference_set, jnp.asarray(_IVR_NOISE))


@acquisition("mes", log_space=False)
def _mes(inputs: AcquisitionInputs):
    candidates = al.quasi_random(inputs.key, _MES_CANDIDATES, inputs.problem.dim)
    optima = al.sample_optimal_values(inputs.model, candidates, inputs.key,
                                      num_samples=_MES_OPTIMUM_SAMPLES, sign=inputs.sign)
    return al.MaxValueEntropySearch(inputs.model, optima, sign=inputs.sign)


@acquisition("max_variance", log_space=False, objectives="any")
def _max_variance(inputs: AcquisitionInputs):
    return al.PosteriorVariance(inputs.model)


# -- several objectives ------------------------------------------------------------


@acquisition("parego", log_space=True, objectives="several")
def _parego(inputs: AcquisitionInputs):
    """Log EI of a Chebyshev scalarisation with random weights (ParEGO)."""
    problem = inputs.problem
    k_w, key = jax.random.split(inputs.key)
    weights = al.sample_simplex(k_w, len(problem.goals))
    scal = al.ChebyshevScalarization.from_observations(
        weights, jnp.asarray(problem.scores(inputs.Y)), objectives=objective_map(problem))
    best = float(jnp.max(scal(jnp.asarray(inputs.Y))))
    return al.ScalarizedLogEI(inputs.model, scal, best, key,
                              num_samples=problem.acquisition.mc_samples)


@acquisition("log_ehvi", log_space=True, objectives="several")
def _log_ehvi(inputs: AcquisitionInputs):
    """Analytic log EHVI of one point over the feasible observed front and the
    believed points; with points pending, their joint gain needs samples (qLogNEHVI)."""
    if inputs.pending is not None:
        return _qlog_nehvi(inputs)
    problem = inputs.problem
    front = inputs.X[problem.feasible(inputs.Y)]  # infeasible rows are no part of any front
    if inputs.believed is not None and len(inputs.believed):
        front = np.concatenate([front, np.asarray(inputs.believed)])
    Xp, mask = pad_points(front, problem.dim)
    omap = objective_map(problem)
    return al.LogExpectedHypervolumeImprovement(
        inputs.model, Xp, reference(problem, inputs.Y), outputs=omap.outputs, signs=omap.signs,
        baseline_mask=mask)


@acquisition("qlog_nehvi", log_space=True, objectives="several")
def _qlog_nehvi(inputs: AcquisitionInputs):
    """qLogNEHVI over the feasible observations, pending points joining the
    baseline (padded with it to one bucket)."""
    problem = inputs.problem
    base = inputs.X[problem.feasible(inputs.Y)]  # infeasible rows are no part of any front
    if inputs.pending is not None:
        base = np.concatenate([base, inputs.pending])
    Xp, mask = pad_points(base, problem.dim)
    return al.qLogNoisyExpectedHypervolumeImprovement(
        inputs.model, Xp, reference(problem, inputs.Y), inputs.key, baseline_mask=mask,
        objectives=objective_map(problem),
        num_samples=min(problem.acquisition.mc_samples, _NEHVI_MAX_SAMPLES))


#: Names of the acquisitions whose values are logarithms.
LOG_SPACE = frozenset(k for k, b in ACQUISITIONS.items() if b.log_space)

__all__ = ["ACQUISITIONS", "AcquisitionBuilder", "AcquisitionInputs", "LOG_SPACE",
           "acquisition", "build_acquisition", "objective_map", "outcome_constraints",
           "reference"]
