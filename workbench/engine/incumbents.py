"""The observations a proposal builds on: the incumbent it must beat and the
best points the acquisition search starts near.

Shapes: ``n`` observations, ``d`` encoded columns, ``k`` free columns.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from active_learning import pareto_mask_np
from surrogates import posterior_moments
from workbench.engine.problem import Problem

# Best observations the acquisition search also starts near, beside its
# quasi-random starts. More anchors exploit harder, which cost regret on
# multimodal and noisy problems in the benchmark suite (benchmarks/RESULTS.md).
ANCHORS = 1


def incumbent(problem: Problem, Y: np.ndarray, X: np.ndarray | None = None,
              model=None, noisy: bool = False) -> float:
    """Best observed score of the single objective among feasible rows (the worst
    score when none is feasible, so that feasibility drives the search).

    noisy (observations told with standard errors; X and the model given): the
    best posterior mean at the observed points instead of the best observation,
    which the noise biases upwards.

    Y: (n, outputs) observations. Multi-task and multi-fidelity campaigns (X
    (n, d) and the fitted model given): among rows at the target task /
    fidelity; before there is one, the best lower confidence score (mean - std)
    of the target's posterior at the observed points, Huang et al.'s (2006)
    effective best.
    """
    ok = problem.feasible(Y)
    if noisy and model is not None and X is not None and len(X):
        Y = np.asarray(posterior_moments(model, jnp.asarray(X))[0])
    s = problem.scores(Y)[:, 0]
    if problem.tasks is not None and X is not None:
        on_target = problem.target_rows(X)
        if not on_target.any():
            return effective_best(problem, model, X) if model is not None and len(X) \
                else float(np.min(s))
        ok, s = ok[on_target], s[on_target]
    return float(np.max(s[ok])) if ok.any() else float(np.min(s))


def effective_best(problem: Problem, model, X: np.ndarray) -> float:
    """max_i sign * mean(x_i) - std(x_i) of the target's posterior at the observed
    points X (n, d) moved to the target task / fidelity, as a score."""
    at_target = X.copy()
    tasks = problem.tasks
    for j, v in problem.fixed_columns({tasks.parameter: tasks.target}).items():
        at_target[:, j] = v
    mean, var = posterior_moments(model, jnp.asarray(at_target))
    sign = problem.goals[0].sign
    return float(np.max(sign * np.asarray(mean)[:, 0] - np.sqrt(np.asarray(var)[:, 0])))


def anchors(problem: Problem, X: np.ndarray, Y: np.ndarray, free: np.ndarray,
            model=None) -> np.ndarray | None:
    """The ANCHORS best observed points, on the free columns: (ANCHORS, k) or None.

    Ranked by the score of the single objective, or spread along the Pareto
    front for several; feasible ones first. With ``model`` (noisy observations)
    the ranking uses its posterior mean at the observed points, not the
    observations, whose best is biased upwards by the noise. Multi-task
    campaigns take rows at the target task only.
    """
    if not len(X):
        return None
    rows = np.arange(len(X))
    if problem.tasks is not None:
        rows = rows[problem.target_rows(X)]
        if not len(rows):
            return None
    ranked = Y if model is None else np.asarray(posterior_moments(model, jnp.asarray(X))[0])
    s, ok = problem.scores(ranked[rows]), problem.feasible(Y[rows])
    if ok.any():
        rows, s = rows[ok], s[ok]
    if s.shape[1] == 1:
        order = rows[np.argsort(-s[:, 0], kind="stable")][:ANCHORS]
    else:
        front = np.flatnonzero(pareto_mask_np(s))
        front = front[np.argsort(s[front, 0], kind="stable")]
        k = min(ANCHORS, len(front))  # evenly along the front, centred: one is its middle
        order = rows[front[((np.arange(k) + 0.5) * len(front) / k).astype(int)]]
    return X[np.resize(order, ANCHORS)][:, free]


__all__ = ["ANCHORS", "anchors", "effective_best", "incumbent"]
