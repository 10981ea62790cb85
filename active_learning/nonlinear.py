"""Nonlinear constraints ``g(x) <= 0`` in the acquisition optimiser.

The multi-start ascent of ``active_learning.optimize`` climbs a penalised
acquisition (:class:`Penalized`), so that starts and climbs stay near the
feasible set; this module then makes its candidates exact: the best end points
that ended outside are moved along the segment to a feasible candidate, by
bisection, to the last feasible point (:func:`bisect_to_feasible`), and the best
feasible ones are finished by SLSQP with every constraint (:func:`polish_nonlinear`),
where an ascent with a penalty stalls short of a curved boundary. :func:`inside` is
the strict check every returned point passes.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from active_learning.domain import Domain

# Weight of the quadratic penalty on nonlinear constraint violations (each scaled
# to order one over the domain). A smooth penalty keeps the ascent's steps steady
# at the boundary; its optimum lies just outside the feasible set (by about
# |grad acquisition| / (2 PENALTY_WEIGHT |grad g|)), from where bisection towards a
# feasible point lands on the boundary next to the constrained optimum.
PENALTY_WEIGHT = 1e4
# Bisection steps that move an infeasible end point back towards a feasible one.
_BISECTION_STEPS = 48
# Best feasible candidates polished by SLSQP under nonlinear constraints, and its
# iteration limit.
POLISHED = 3
POLISH_ITERATIONS = 100


@eqx.filter_jit
def _scores(acquisition, X: Array) -> Array:
    v = acquisition(X)
    return jnp.where(jnp.isfinite(v), v, -jnp.inf)


class Penalized(eqx.Module):
    """``acquisition(X) - PENALTY_WEIGHT * sum(max(g_i(X) / scale_i, 0)^2)``.

    constraints: the domain's nonlinear functions (static: built once per domain,
    they are part of the compile key); scales: (m,) typical |g_i| over the domain.
    Equal to the acquisition wherever every constraint holds.
    """

    acquisition: eqx.Module
    scales: Array
    constraints: tuple = eqx.field(static=True)

    def __call__(self, X: Array) -> Array:
        g = jnp.stack([jnp.broadcast_to(c(X), X.shape[:-1]) for c in self.constraints], -1)
        violation = jnp.sum(jnp.maximum(g / self.scales, 0.0) ** 2, axis=-1)
        return self.acquisition(X) - PENALTY_WEIGHT * jnp.where(jnp.isnan(violation),
                                                                 jnp.inf, violation)


@functools.lru_cache(maxsize=64)
def penalty_scales(domain: Domain) -> np.ndarray:
    """(m,) median |g_i| over quasi-random points of the box (at least 1e-9), so that
    each nonlinear constraint's violation is of order one in the penalty."""
    from scipy.stats import qmc

    X = qmc.Sobol(domain.dim, scramble=True, seed=0).random(256)
    g = np.abs(domain.nonlinear_values(X))
    g = np.where(np.isfinite(g), g, np.nan)
    med = np.nanmedian(np.where(np.isnan(g).all(0, keepdims=True), 1.0, g), axis=0)
    return np.maximum(med, 1e-9)


def inside(domain: Domain, X) -> np.ndarray:
    """Feasible, with every nonlinear constraint at most 0 (not only within the 1e-9
    tolerance), so that a check in user units agrees up to round-off."""
    return domain.feasible(X) & np.all(domain.nonlinear_values(X) <= 0.0, axis=-1)


class _Stacked(eqx.Module):
    """The nonlinear constraints of one domain as one function: (..., d) -> (..., m)."""

    constraints: tuple = eqx.field(static=True)

    def __call__(self, X: Array) -> Array:
        return jnp.stack([jnp.broadcast_to(c(X), X.shape[:-1]) for c in self.constraints], -1)


@eqx.filter_jit
def _point_value_and_grad(acquisition, x: Array):
    return jax.value_and_grad(lambda x: acquisition(x[None])[0])(x)


@eqx.filter_jit
def _point_constraints(stacked: _Stacked, x: Array):
    return stacked(x), jax.jacfwd(stacked)(x)


def polish_nonlinear(acquisition, domain: Domain, candidates: np.ndarray, values: np.ndarray,
                     feasible: np.ndarray, k: int = POLISHED) -> tuple:
    """SLSQP from the k best feasible candidates, with the nonlinear constraints,
    the linear ones and the bounds, discrete columns held: an ascent with a penalty
    stalls short of a curved boundary, where the constrained optimum often lies.
    An end point that misses a constraint by round-off goes back along the segment
    to its (feasible) start by bisection. Returns the candidates with the polished
    points appended."""
    from scipy.optimize import minimize

    order = np.argsort(-np.where(feasible, values, -np.inf))[:k]
    order = order[feasible[order]]
    if not len(order):
        return candidates, values, feasible
    stacked = _Stacked(domain.nonlinear)
    disc = list(domain.discrete_columns)
    cons = [{"type": "ineq",
             "fun": lambda x: -np.asarray(_point_constraints(stacked, jnp.asarray(x))[0]),
             "jac": lambda x: -np.asarray(_point_constraints(stacked, jnp.asarray(x))[1])}]
    if domain.equalities:
        cons.append({"type": "eq", "fun": lambda x: domain.A_eq @ x - domain.b_eq,
                     "jac": lambda x: domain.A_eq})
    if domain.inequalities:
        cons.append({"type": "ineq", "fun": lambda x: domain.b_ub - domain.A_ub @ x,
                     "jac": lambda x: -domain.A_ub})

    def negative(x):
        v, g = _point_value_and_grad(acquisition, jnp.asarray(x))
        v, g = float(v), np.asarray(g)
        return (-v, -g) if np.isfinite(v) and np.all(np.isfinite(g)) else (1e30, np.zeros_like(x))

    polished = []
    for i in order:
        x0 = candidates[i]
        lo, hi = np.zeros(domain.dim), np.ones(domain.dim)
        lo[disc] = hi[disc] = x0[disc]
        res = minimize(negative, x0, jac=True, method="SLSQP", bounds=list(zip(lo, hi)),
                       constraints=cons, options={"maxiter": POLISH_ITERATIONS})
        x = np.clip(res.x, lo, hi)
        x[disc] = x0[disc]
        polished.append((x, x0))
    X = np.asarray([x for x, _ in polished])
    X0 = np.asarray([x0 for _, x0 in polished])
    ok = inside(domain, X)
    lo, hi = np.where(ok, 1.0, 0.0), np.ones(len(X))
    for _ in range(_BISECTION_STEPS):
        mid = np.where(ok, 1.0, 0.5 * (lo + hi))
        good = inside(domain, X0 + mid[:, None] * (X - X0))
        lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
    X = X0 + lo[:, None] * (X - X0)
    pad = max(len(X), k)
    scores = np.asarray(_scores(acquisition, jnp.asarray(np.concatenate(
        [X, np.repeat(X[:1], pad - len(X), axis=0)]))))[: len(X)]
    return (np.concatenate([candidates, X]), np.concatenate([values, scores]),
            np.concatenate([feasible, inside(domain, X)]))


def bisect_to_feasible(acquisition, domain: Domain, candidates: np.ndarray, values: np.ndarray,
                       feasible: np.ndarray, n: int) -> tuple:
    """Move the best infeasible candidates towards the best feasible one with the same
    discrete values, to the last feasible point of the segment, and re-score them."""
    if feasible.all() or not feasible.any():
        return candidates, values, feasible
    order = np.argsort(-values)[:n]
    todo = order[~feasible[order]]
    disc = list(domain.discrete_columns)
    ranked = np.argsort(-np.where(feasible, values, -np.inf))
    ranked = ranked[feasible[ranked]]
    pairs = []
    for i in todo:
        same = ranked[np.all(candidates[ranked][:, disc] == candidates[i, disc], axis=1)] \
            if disc else ranked
        if len(same):
            pairs.append((i, same[0]))
    if not pairs:
        return candidates, values, feasible
    idx, base = (np.asarray(t) for t in zip(*pairs))
    x, xf = candidates[idx], candidates[base]
    lo, hi = np.zeros(len(idx)), np.ones(len(idx))
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        ok = inside(domain, xf + mid[:, None] * (x - xf))
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    moved = xf + lo[:, None] * (x - xf)
    padded = np.concatenate([moved, np.repeat(moved[:1], n - len(idx), axis=0)])
    scores = np.asarray(_scores(acquisition, jnp.asarray(padded)))[: len(idx)]
    candidates, values, feasible = candidates.copy(), values.copy(), feasible.copy()
    candidates[idx], values[idx] = moved, scores
    feasible[idx] = inside(domain, moved)
    return candidates, values, feasible


__all__ = ["PENALTY_WEIGHT", "POLISHED", "Penalized", "bisect_to_feasible", "inside",
           "penalty_scales", "polish_nonlinear"]
