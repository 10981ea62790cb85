"""Maximising an acquisition function over the encoded domain.

Multi-start gradient ascent: score many space-filling points, start from the
best, climb all starts at once (they are rows of one batch, so one posterior
call serves them all), round to valid integer and categorical values, and keep
the best valid point. Everything runs in one compiled call.

- Box domains climb with Adam and clip to ``[0, 1]`` (clipping is the exact
  projection onto a box in Adam's diagonal metric).
- Linear constraints: points are ``x = c + N z`` with ``c`` an interior point
  and ``N`` an orthonormal basis of the directions that keep every equality,
  so equalities hold by construction. Inequalities and bounds ``G z <= h`` are
  kept by Euclidean projection (a dual FISTA solve, warm-started across
  steps) after each step of a momentum ascent whose step is scaled by one
  number per start, not per coordinate: projection in the Euclidean metric
  then has the true constrained optima as fixed points. Starts are
  quasi-random points pulled into the polytope and moved by a few hit-and-run
  steps. Final candidates are made exactly feasible by moving them towards
  ``c`` just far enough (the segment to an interior point stays inside), and a
  feasibility filter drops the rest.
- Outside the plain box path, the ascent ends with a few projected
  Barzilai-Borwein steps, which finish a smooth optimum to ~1e-8 where Adam
  alone stalls at ~1e-4. With ``finish_steps``, the ``FINISH_STARTS`` best
  climbs then take that many more such steps: where the optimum lies on a
  ridge (the predicted boundary of an outcome constraint) or against bounds,
  the steps stay short and the default polish ends short of it.
- One-hot groups: when the product of group sizes is small (<= 64), every
  category combination is optimised exactly, with its columns fixed (each gets
  at least one climbed start); otherwise the relaxed optimum is rounded and
  improved by local search, flipping one group at a time.
- Integers are climbed relaxed and rounded. Where a constraint involves a
  rounded column, the best rounded candidates that broke it are repaired on
  the host (``Domain.repair``: one LP per distinct rounding, then a
  projection) and re-scored in a second compiled call.
- Nonlinear constraints ``g(x) <= 0``: the climb maximises the acquisition
  minus a steep quadratic penalty on the scaled violation (so infeasible starts
  rank low and climbs end just outside the boundary at most); the best infeasible end points are
  then moved along the segment to the best feasible candidate with the same
  discrete values, by bisection, to the last feasible point; a final check
  drops the rest. If no candidate is feasible, sampled feasible points are
  scored instead; a point breaking a constraint is never returned
  (``active_learning.nonlinear``).
- Cardinality constraints: each support (which columns may be nonzero) is a
  linear domain (``active_learning.cardinality``); every support is searched
  when there are few, else a sample including the supports of the anchors and
  of the relaxed optimum; the best point over the supports wins. The search
  budget is split across the supports, so their searches share one compilation
  per support size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax

from surrogates import counts_traces

from active_learning.acquisition import prepared
from active_learning.domain import FEASIBILITY_TOL, Domain, slice_geometry
from active_learning.nonlinear import (Penalized, bisect_to_feasible, inside,
                                       penalty_scales, polish_nonlinear)
from active_learning.polytope import hit_and_run, shrink_into_polytope

# Least raw samples and restarts per support when the budget is split across supports.
_MIN_RAW_PER_SUPPORT = 64
_MIN_RESTARTS_PER_SUPPORT = 2
# Sampled feasible points scored when no climbed candidate is feasible.
_FALLBACK_SAMPLES = 512
# Runners-up closer than this in every encoded column (a fraction of each column's
# [0, 1] range) to the maximiser or to a better runner-up are the same point: climbs
# that converge to one optimum end within the optimiser's tolerance of each other.
DISTINCT_TOLERANCE = 1e-3
# The best climbs that take the extra spectral steps of ``finish_steps``.
FINISH_STARTS = 4


def _kronecker_constants(d: int) -> Array:
    """Additive-recurrence (R_d) constants: 1/phi_d^(j+1), phi_d the root of x^(d+1) = x + 1."""
    phi = 2.0
    for _ in range(50):
        phi = (1.0 + phi) ** (1.0 / (d + 1))
    return jnp.asarray([(1.0 / phi) ** (j + 1) % 1.0 for j in range(d)])


def quasi_random(key: Array, n: int, d: int) -> Array:
    """n low-discrepancy points in [0, 1]^d: the R_d sequence with a random shift."""
    shift = jax.random.uniform(key, (d,))
    i = jnp.arange(1, n + 1, dtype=jnp.float64)[:, None]
    return (shift + i * _kronecker_constants(d)) % 1.0


# Starts near the best observations, as BoTorch's ``sample_around_best`` and
# Optuna's local search from the best trial: late in a search the acquisition's
# mass sits in a small region around the incumbent that space-filling points
# miss, and ascent from them ends at far corners where the surface is flat.
_PER_ANCHOR = 8
_ANCHOR_SIGMAS = (1e-3, 1e-2)  # in unit-cube coordinates, alternating


def _around(key: Array, anchors: Array) -> Array:
    """Each anchor (A, k) and _PER_ANCHOR - 1 Gaussian perturbations of it: (A * _PER_ANCHOR, k)."""
    A, k = anchors.shape
    sigma = jnp.asarray(_ANCHOR_SIGMAS)[jnp.arange(_PER_ANCHOR) % len(_ANCHOR_SIGMAS)]
    noise = jax.random.normal(key, (A, _PER_ANCHOR, k)) * sigma[None, :, None]
    noise = noise.at[:, 0].set(0.0)
    return (anchors[:, None, :] + noise).reshape(A * _PER_ANCHOR, k)


# -- the unconstrained, continuous path without anchors: one small compiled call --


@eqx.filter_jit
def _maximize(acquisition, key, domain: Domain, raw_samples: int, num_restarts: int,
              steps: int, learning_rate: float):
    raw = quasi_random(key, raw_samples, domain.dim)
    raw_values = acquisition(raw)
    raw_values = jnp.where(jnp.isfinite(raw_values), raw_values, -jnp.inf)
    top = jnp.argsort(-raw_values)[:num_restarts]
    X0 = raw[top]

    def total(X):
        return jnp.sum(acquisition(X))

    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)
    opt = optax.adam(schedule)

    def step(carry, _):
        X, state = carry
        g = jax.grad(total)(X)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        updates, state = opt.update(-g, state, X)
        X = jnp.clip(optax.apply_updates(X, updates), 0.0, 1.0)
        return (X, state), None

    (X, _), _ = jax.lax.scan(step, (X0, opt.init(X0)), None, length=steps)
    # Candidates: the optima and their starts, all rounded to valid points.
    candidates = domain.snap(jnp.concatenate([X, X0], axis=0))
    values = acquisition(candidates)
    values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
    return candidates, values


# -- polytope primitives (jit-able) -------------------------------------------


def project_polytope(Y: Array, lam: Array, G: Array, h: Array, inv_lipschitz: Array,
                     iters: int) -> tuple[Array, Array]:
    """Approximate Euclidean projection of Y onto ``{z : G z <= h}`` by dual FISTA.

    Y: (n, k) points; lam: (n, p) dual warm start (zeros when unknown);
    G: (p, k); h: (n, p); inv_lipschitz: 1 / ||G||_2^2. The dual of
    min ||z - y||^2 / 2 s.t. G z <= h is a non-negative quadratic program with
    z = y - G^T lam. Returns (z (n, k), lam (n, p)); z may violate the
    constraints by the solver's remaining error.
    """

    def body(_, carry):
        lam, mu, t = carry
        lam_next = jnp.maximum(0.0, mu + inv_lipschitz * ((Y - mu @ G) @ G.T - h))
        t_next = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t * t))
        mu = lam_next + ((t - 1.0) / t_next) * (lam_next - lam)
        return lam_next, mu, t_next

    lam, _, _ = lax.fori_loop(0, iters, body, (lam, lam, jnp.asarray(1.0, Y.dtype)))
    return Y - lam @ G, lam


# -- the general path -----------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """Everything static about one search (hashable: part of the compile key)."""

    structure: Domain  # columns only; constraint values travel as arrays
    polytope: bool
    enumerate: bool
    local: bool
    per_combo: int
    num_restarts: int
    steps: int
    learning_rate: float
    walk_steps: int
    projection_iters: int
    final_projection_iters: int
    polish_steps: int
    finish_steps: int
    search_rounds: int


class _Arrays(eqx.Module):
    """The constraint data of one search (traced, so new values do not recompile)."""

    combos: Array  # (C, n_onehot_cols) values of the one-hot columns per combination
    basis: Array  # (d, k)
    G: Array  # (p, k)
    inv_lipschitz: Array  # ()
    centers: Array  # (C, d)
    h: Array  # (C, p)
    A_eq: Array
    b_eq: Array
    A_ub: Array
    b_ub: Array


def _violation(X: Array, a: _Arrays) -> Array:
    """Largest violation of bounds and linear constraints: (..., d) -> (...)."""
    v = jnp.maximum(jnp.max(-X, axis=-1), jnp.max(X - 1.0, axis=-1))
    if a.A_eq.shape[0]:
        v = jnp.maximum(v, jnp.max(jnp.abs(X @ a.A_eq.T - a.b_eq), axis=-1))
    if a.A_ub.shape[0]:
        v = jnp.maximum(v, jnp.max(X @ a.A_ub.T - a.b_ub, axis=-1))
    return v


def _finite(v: Array) -> Array:
    return jnp.where(jnp.isfinite(v), v, -jnp.inf)


def _climb_box(acquisition, X0: Array, free: Array, steps: int, learning_rate: float,
               polish_steps: int, finish_steps: int = 0) -> Array:
    """Adam ascent clipped to the unit box, then a spectral polish from the best point
    each row visited (Adam's steps do not shrink with a narrow optimum, so a start
    near one can step off it), then ``finish_steps`` more for the best rows
    (``_finish``); columns with ``free == 0`` stay put."""
    value_and_grad = _value_and_grad(acquisition, lambda X: X, free)
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05))

    def step(carry, _):
        X, state, best_X, best_v = carry
        v, g = value_and_grad(X)
        better = (v > best_v)[:, None]
        best_X, best_v = jnp.where(better, X, best_X), jnp.maximum(v, best_v)
        updates, state = opt.update(-g, state, X)
        return (jnp.clip(optax.apply_updates(X, updates), 0.0, 1.0), state, best_X,
                best_v), None

    init = (X0, opt.init(X0), X0, jnp.full(X0.shape[0], -jnp.inf, X0.dtype))
    (X, _, best_X, best_v), _ = lax.scan(step, init, None, length=steps)
    v, _ = value_and_grad(X)
    X = jnp.where((v >= best_v)[:, None], X, best_X)

    def project(Y, state):
        return jnp.clip(Y, 0.0, 1.0), state

    X = _spectral_polish(value_and_grad, X, project, (), polish_steps)
    return _finish(value_and_grad, X, lambda rows: (value_and_grad, project, ()), finish_steps)


def _climb_polytope(acquisition, Z0: Array, centers: Array, h: Array, a: _Arrays,
                    plan: _Plan) -> Array:
    """Projected momentum ascent in null-space coordinates; returns feasible (B, k)."""
    basis, G = a.basis, a.G
    schedule = optax.cosine_decay_schedule(plan.learning_rate, plan.steps, alpha=0.05)
    b1, b2, eps = 0.9, 0.999, 1e-12

    value_and_grad = _value_and_grad(acquisition, lambda Z: centers + Z @ basis.T)

    def step(carry, t):
        Z, _, m, v, lam, best_Z, best_v = carry
        values, g = value_and_grad(Z)
        better = (values > best_v)[:, None]
        best_Z, best_v = jnp.where(better, Z, best_Z), jnp.maximum(values, best_v)
        m = b1 * m + (1 - b1) * g
        # One second moment per start: the step is a scaled gradient, so that
        # the Euclidean projection keeps the KKT points as fixed points.
        v = b2 * v + (1 - b2) * jnp.mean(g * g, axis=-1, keepdims=True)
        m_hat = m / (1 - b1 ** (t + 1.0))
        v_hat = v / (1 - b2 ** (t + 1.0))
        Y = Z + schedule(t) * m_hat / (jnp.sqrt(v_hat) + eps)
        Z, lam = project_polytope(Y, lam, G, h, a.inv_lipschitz, plan.projection_iters)
        return (Z, Y, m, v, lam, best_Z, best_v), None

    B = Z0.shape[0]
    init = (Z0, Z0, jnp.zeros_like(Z0), jnp.zeros((B, 1), Z0.dtype),
            jnp.zeros((B, G.shape[0]), Z0.dtype), Z0, jnp.full(B, -jnp.inf, Z0.dtype))
    (_, Y, _, _, lam, best_Z, best_v), _ = lax.scan(step, init,
                                                     jnp.arange(plan.steps, dtype=Z0.dtype))
    Z, lam = project_polytope(Y, lam, G, h, a.inv_lipschitz, plan.final_projection_iters)
    Z = shrink_into_polytope(Z, G, h)
    # The polish starts from the best feasible point each row visited (the iterates
    # are projected; the best may be an early one, near a start by an anchor).
    values, _ = value_and_grad(Z)
    Z = jnp.where((values >= best_v)[:, None], Z, shrink_into_polytope(best_Z, G, h))

    def project_into(h):
        """The polish's projection onto the slices h (rows, p) of its rows."""

        def project(Y, lam):
            Z, lam = project_polytope(Y, lam, G, h, a.inv_lipschitz,
                                      plan.final_projection_iters // 10)
            return shrink_into_polytope(Z, G, h), lam

        return project

    def polish_of(rows):
        # A subset of rows climbs in its own slices, from cold duals.
        c = centers[rows]
        return (_value_and_grad(acquisition, lambda Z: c + Z @ basis.T),
                project_into(h[rows]), jnp.zeros((rows.shape[0], G.shape[0]), Z.dtype))

    Z = _spectral_polish(value_and_grad, Z, project_into(h), lam, plan.polish_steps)
    return _finish(value_and_grad, Z, polish_of, plan.finish_steps)


def _finish(value_and_grad, Z: Array, polish_of, steps: int) -> Array:
    """``steps`` more spectral steps for the ``FINISH_STARTS`` best rows of Z (B, k);
    the other rows are returned as they are. polish_of: row indices (K,) -> the
    value-and-gradient, projection and projection state for those rows."""
    if steps < 1:
        return Z
    values, _ = value_and_grad(Z)
    rows = jnp.argsort(-values)[: min(FINISH_STARTS, Z.shape[0])]
    vg, project, state = polish_of(rows)
    return Z.at[rows].set(_spectral_polish(vg, Z[rows], project, state, steps))


def _spectral_polish(value_and_grad, Z: Array, project, state, steps: int) -> Array:
    """Projected gradient with Barzilai-Borwein steps from the ascent's end point.

    Adam-type steps stall near an optimum (their second moment remembers the
    large early gradients); a spectral step uses the local curvature instead,
    which finishes a smooth optimum to high accuracy in a few steps. The best
    point seen per row is kept, so the polish never makes a row worse.
    value_and_grad: Z (B, k) -> values (B,), gradients (B, k);
    project: (Y, state) -> (feasible Z, state), state e.g. dual warm starts.
    Returns each row's best point (B, k).
    """

    def step(carry, _):
        Z, g, Z_prev, g_prev, state, best_Z, best_v = carry
        s, y = Z - Z_prev, g_prev - g
        sy, ss = jnp.sum(s * y, -1, keepdims=True), jnp.sum(s * s, -1, keepdims=True)
        alpha = jnp.where(sy > 1e-30, ss / jnp.where(sy > 1e-30, sy, 1.0), 1e-3)
        Z_next, state = project(Z + jnp.clip(alpha, 1e-8, 1e2) * g, state)
        v_next, g_next = value_and_grad(Z_next)
        better = (v_next > best_v)[:, None]
        return (Z_next, g_next, Z, g, state, jnp.where(better, Z_next, best_Z),
                jnp.maximum(v_next, best_v)), None

    v, g = value_and_grad(Z)
    # A first small step gives the curvature estimate for the next ones.
    rms = jnp.sqrt(jnp.mean(g * g, axis=-1, keepdims=True)) + 1e-30
    Z1, state = project(Z + 1e-3 * g / rms, state)
    v1, g1 = value_and_grad(Z1)
    better = (v1 > v)[:, None]
    init = (Z1, g1, Z, g, state, jnp.where(better, Z1, Z), jnp.maximum(v1, v))
    (*_, best_Z, _), _ = lax.scan(step, init, None, length=steps)
    return best_Z


def _value_and_grad(acquisition, to_x, free=None):
    """Per-row values and gradients of acquisition(to_x(Z)) in one pass."""

    def fn(Z):
        values, pullback = jax.vjp(lambda Z: acquisition(to_x(Z)), Z)
        (g,) = pullback(jnp.ones_like(values))
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        return _finite(values), g if free is None else g * free

    return fn


def _flip_table(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Single-group moves: (M, d) masks of a group's columns and (M, d) values setting one."""
    masks, values = [], []
    for group in domain.onehot:
        for col in group:
            mask, value = np.zeros(domain.dim, bool), np.zeros(domain.dim)
            mask[list(group)] = True
            value[col] = 1.0
            masks.append(mask)
            values.append(value)
    return np.asarray(masks), np.asarray(values)


def _local_search(acquisition, X: Array, a: _Arrays, plan: _Plan) -> Array:
    """Greedy one-group flips from each row of X (K, d); returns (K, d), never worse."""
    domain = plan.structure
    masks, values = (jnp.asarray(t) for t in _flip_table(domain))
    K, d, M = X.shape[0], domain.dim, masks.shape[0]

    def one_round(X, _):
        neighbours = jnp.where(masks[None], values[None], X[:, None, :])  # (K, M, d)
        v = _finite(acquisition(neighbours.reshape(K * M, d))).reshape(K, M)
        if plan.polytope:
            v = jnp.where(_violation(neighbours, a) <= FEASIBILITY_TOL, v, -jnp.inf)
        best = jnp.argmax(v, axis=1)
        moved = neighbours[jnp.arange(K), best]
        return jnp.where(jnp.isfinite(v.max(axis=1))[:, None], moved, X), None

    X, _ = lax.scan(one_round, X, None, length=plan.search_rounds)
    return X


@eqx.filter_jit
@counts_traces("acquisition.search")
def _search(acquisition, key: Array, a: _Arrays, plan: _Plan, anchors: Array | None = None):
    """All candidates of one search: (M, d) points, (M,) values, (M,) feasible."""
    acquisition = prepared(acquisition)
    domain = plan.structure
    d, C, S = domain.dim, a.combos.shape[0], plan.per_combo
    oh = list(domain.onehot_columns)
    k_raw, k_walk = jax.random.split(key)

    # 1. Space-filling points, per category combination when enumerating.
    if plan.polytope:
        k = a.basis.shape[1]
        h_raw = jnp.repeat(a.h, S, axis=0)
        c_raw = jnp.repeat(a.centers, S, axis=0)
        # Quasi-random points of a box around each slice (the unit cube seen
        # in z), pulled into the polytope towards its centre, then a few
        # hit-and-run moves: coverage up to the boundary, where acquisition
        # optima often are, without a long walk from the centre.
        to_zero, to_one = -a.centers[:, :, None] * a.basis, (1 - a.centers[:, :, None]) * a.basis
        lo = jnp.sum(jnp.minimum(to_zero, to_one), axis=1)
        hi = jnp.sum(jnp.maximum(to_zero, to_one), axis=1)
        U = jnp.tile(quasi_random(k_raw, S, k), (C, 1))
        Z_raw = jnp.repeat(lo, S, axis=0) + U * jnp.repeat(hi - lo, S, axis=0)
        Z_raw = shrink_into_polytope(Z_raw, a.G, h_raw)
        Z_raw = hit_and_run(k_walk, Z_raw, a.G, h_raw, plan.walk_steps)
        Z_raw = shrink_into_polytope(Z_raw, a.G, h_raw)
        X_raw = c_raw + Z_raw @ a.basis.T
    else:
        X_raw = jnp.tile(quasi_random(k_raw, S, d), (C, 1))
        if plan.enumerate:
            X_raw = X_raw.at[:, oh].set(jnp.repeat(a.combos, S, axis=0))
    combo_of = jnp.repeat(jnp.arange(C), S)
    if anchors is not None:
        # Each anchor in the slice of its own category combination.
        combo_anchor = (jnp.argmin(jnp.sum(jnp.abs(anchors[:, oh][:, None, :]
                                               - a.combos[None]), axis=-1), axis=1)
                        if C > 1 and oh else jnp.zeros(anchors.shape[0], int))
        combo_a = jnp.repeat(combo_anchor, _PER_ANCHOR)
        k_near = jax.random.fold_in(key, 7)
        if plan.polytope:
            Z_a = _around(k_near, (anchors - a.centers[combo_anchor]) @ a.basis)
            Z_a = shrink_into_polytope(Z_a, a.G, a.h[combo_a])
            Z_raw = jnp.concatenate([Z_raw, Z_a], axis=0)
            X_a = a.centers[combo_a] + Z_a @ a.basis.T
        else:
            X_a = jnp.clip(_around(k_near, anchors), 0.0, 1.0)
            if plan.enumerate:
                X_a = X_a.at[:, oh].set(a.combos[combo_a])
        X_raw = jnp.concatenate([X_raw, X_a], axis=0)
        combo_of = jnp.concatenate([combo_of, combo_a])
    raw_values = _finite(acquisition(X_raw))

    # 2. Starts: the best space-filling points, the best point near each anchor (so
    # that the anchors add starts rather than crowd out other basins), and the best
    # of every category combination.
    if anchors is None:
        starts = jnp.argsort(-raw_values)[: plan.num_restarts]
    else:
        A = anchors.shape[0]
        near_best = (jnp.argmax(raw_values[C * S:].reshape(A, _PER_ANCHOR), axis=1)
                     + jnp.arange(A) * _PER_ANCHOR + C * S)
        starts = jnp.concatenate([jnp.argsort(-raw_values[: C * S])[
            : max(plan.num_restarts - A, 1)], near_best])
    if C > 1:
        starts = jnp.concatenate([starts, jnp.argmax(raw_values[: C * S].reshape(C, S), axis=1)
                                  + jnp.arange(C) * S])
    X0, combo0 = X_raw[starts], combo_of[starts]

    # 3. Climb.
    if plan.polytope and a.basis.shape[1]:
        centers, h = a.centers[combo0], a.h[combo0]
        Z = _climb_polytope(acquisition, Z_raw[starts], centers, h, a, plan)
        X = centers + Z @ a.basis.T
    elif plan.polytope:
        X = X0
    else:
        free = jnp.ones(d).at[jnp.asarray(oh, int)].set(0.0) if plan.enumerate else jnp.ones(d)
        X = _climb_box(acquisition, X0, free, plan.steps, plan.learning_rate,
                       plan.polish_steps, plan.finish_steps)

    # 4. Round; improve the categories by local search when not enumerated.
    candidates = domain.snap(jnp.concatenate([X, X0], axis=0))
    if plan.local:
        values = _finite(acquisition(candidates))
        top = candidates[jnp.argsort(-values)[: plan.num_restarts]]
        found = _local_search(acquisition, top, a, plan)
        if not plan.polytope:
            free = jnp.ones(d).at[jnp.asarray(oh, int)].set(0.0)
            polished = domain.snap(_climb_box(acquisition, found, free, max(plan.steps // 2, 1),
                                              plan.learning_rate, plan.polish_steps,
                                              plan.finish_steps))
            found = jnp.concatenate([found, polished], axis=0)
        candidates = jnp.concatenate([candidates, found], axis=0)
    if plan.polytope:
        # Rounding can leave a bound off by 1e-17; clipping moves nothing else.
        candidates = jnp.clip(candidates, 0.0, 1.0)
        feasible = _violation(candidates, a) <= FEASIBILITY_TOL
    else:
        feasible = jnp.ones(candidates.shape[0], bool)
    return candidates, _finite(acquisition(candidates)), feasible


@eqx.filter_jit
def _evaluate(acquisition, X: Array) -> Array:
    return _finite(acquisition(X))


def _arrays(domain: Domain, plan_polytope: bool, enumerate_: bool) -> _Arrays | None:
    """Host-side geometry for a search; None when no category combination is feasible."""
    d = domain.dim
    combos = domain.combinations() if enumerate_ else np.zeros((1, 0))
    empty = (np.zeros((d, 0)), np.zeros((0, 0)), np.zeros((len(combos), d)),
             np.zeros((len(combos), 0)))
    basis, G, centers, h = empty
    inv_l = 1.0
    if plan_polytope:
        fixed = domain.onehot_columns if enumerate_ else ()
        if enumerate_ and not domain.constraints_touch(fixed):
            # The constraints do not see the categories: one slice serves all.
            geo = slice_geometry(domain, fixed, (tuple(combos[0]),))
            centers = np.repeat(geo.centers, len(combos), axis=0)
            centers[:, list(fixed)] = combos
            h, ok = np.repeat(geo.h, len(combos), axis=0), np.repeat(geo.ok, len(combos))
        else:
            geo = slice_geometry(domain, fixed, tuple(tuple(c) for c in combos))
            centers, h, ok = geo.centers, geo.h, geo.ok
        if not ok.any():
            return None
        combos, centers, h = combos[ok], centers[ok], h[ok]
        basis, G, inv_l = geo.basis, geo.G, 1.0 / geo.lipschitz
    f = lambda v: jnp.asarray(v, dtype=jnp.float64)
    return _Arrays(combos=f(combos), basis=f(basis), G=f(G), inv_lipschitz=f(inv_l),
                   centers=f(centers), h=f(h), A_eq=f(domain.A_eq), b_eq=f(domain.b_eq),
                   A_ub=f(domain.A_ub), b_ub=f(domain.b_ub))


def maximize_acquisition(
    acquisition: eqx.Module,
    domain: Domain,
    key: Array,
    *,
    raw_samples: int = 1024,
    num_restarts: int = 16,
    steps: int = 100,
    learning_rate: float = 0.05,
    max_combinations: int = 64,
    anchors: Array | None = None,
    finish_steps: int = 0,
) -> tuple[Array, Array]:
    """The best valid point found for ``acquisition`` and its value.

    acquisition: maps (b, dim) encoded points to (b,) values;
    domain: the encoded domain; every returned point satisfies its bounds,
    equalities and inequalities to 1e-9, its nonlinear constraints (g <= 1e-9)
    and cardinality constraints exactly, and has valid integer and one-hot values;
    raw_samples: space-filling points scored to pick the starts;
    num_restarts: starts climbed together; steps: ascent steps per start;
    max_combinations: enumerate every category combination when there are at
    most this many, else search them locally;
    anchors: (A, dim) valid encoded points to start near (the best observations):
    each and _PER_ANCHOR - 1 small perturbations of it join the space-filling points
    (keep A fixed across calls: it is part of the compiled shape);
    finish_steps: spectral steps more for the FINISH_STARTS best climbs, after the
    polish every climb ends with (0: none; outside the plain box path, see the
    module docstring).
    Returns x: (dim,) and its acquisition value ().
    """
    X, values = maximize_acquisition_top(
        acquisition, domain, key, k=1, raw_samples=raw_samples, num_restarts=num_restarts,
        steps=steps, learning_rate=learning_rate, max_combinations=max_combinations,
        anchors=anchors, finish_steps=finish_steps)
    return jnp.asarray(X[0]), jnp.asarray(values[0])


def maximize_acquisition_top(
    acquisition: eqx.Module,
    domain: Domain,
    key: Array,
    *,
    k: int,
    raw_samples: int = 1024,
    num_restarts: int = 16,
    steps: int = 100,
    learning_rate: float = 0.05,
    max_combinations: int = 64,
    anchors: Array | None = None,
    finish_steps: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`maximize_acquisition` with the runners-up it found on the way, at no
    extra cost: up to ``k`` distinct valid candidates (the climbs' ends and starts;
    with cardinality constraints, each support's best) and their values, best first.

    Row 0 is the point :func:`maximize_acquisition` returns. Returns X: (k', dim)
    and values: (k',), numpy, 1 <= k' <= k.
    """
    if k < 1:
        raise ValueError(f"k: got {k}; expected at least 1 candidate")
    if num_restarts > raw_samples:
        raise ValueError(
            f"num_restarts ({num_restarts}) cannot exceed raw_samples ({raw_samples})"
        )
    if finish_steps < 0:
        raise ValueError(f"finish_steps: got {finish_steps}; expected 0 or more")
    settings = dict(raw_samples=raw_samples, num_restarts=num_restarts, steps=steps,
                    learning_rate=learning_rate, max_combinations=max_combinations,
                    finish_steps=finish_steps)
    if domain.cardinality:
        return _over_supports(acquisition, domain, key, anchors, settings, k)
    candidates, values, best = _maximize_linear(acquisition, domain, key, anchors, **settings)
    return top_distinct(candidates, values, best, k)


def top_distinct(candidates, values, best: int, k: int,
                 tolerance: float = DISTINCT_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Row ``best`` first, then up to k - 1 other candidates with finite values, highest
    value first, each more than ``tolerance`` from every row kept before it in some
    column (Chebyshev distance in the encoded space). candidates: (m, dim); values:
    (m,), -inf where invalid. Returns the kept rows and their values."""
    candidates, values = np.asarray(candidates), np.asarray(values)
    points = candidates.astype(np.float64)
    rows = [int(best)]
    for i in np.argsort(-values, kind="stable"):
        if len(rows) >= k:
            break
        if not np.isfinite(values[i]):
            continue
        if np.abs(points[rows] - points[i]).max(axis=1).min() > tolerance:
            rows.append(int(i))
    return candidates[rows], values[rows]


def _over_supports(acquisition, domain: Domain, key: Array, anchors, settings: dict, k: int = 1):
    """The best point over the supports of the cardinality constraints (see the module
    docstring); each support's search gets an equal share of the budget. Returns up to
    k points (the best, then other supports' bests) and their values, as top_distinct
    does."""
    from active_learning.cardinality import (MAX_ENUMERATED_SUPPORTS, clean, count_supports,
                                             search_supports, support_domain)

    hints = [] if anchors is None else list(np.asarray(anchors))
    if count_supports(domain) > MAX_ENUMERATED_SUPPORTS:
        # Greedy: the relaxed optimum's largest columns are a likely support.
        cands, _, i = _maximize_linear(acquisition, replace(domain, cardinality=()),
                                       jax.random.fold_in(key, 1), anchors, **settings)
        hints.append(np.asarray(cands[i]))
    seed = int(jax.random.randint(jax.random.fold_in(key, 2), (), 0, 2**31 - 1))
    supports = search_supports(domain, seed, np.asarray(hints) if hints else None)
    share = dict(settings)
    share["raw_samples"] = max(settings["raw_samples"] // len(supports), _MIN_RAW_PER_SUPPORT)
    share["num_restarts"] = min(max(settings["num_restarts"] // len(supports),
                                    _MIN_RESTARTS_PER_SUPPORT), share["raw_samples"])
    best_x, best_v = None, -np.inf
    found: list[tuple[np.ndarray, float]] = []
    for i, support in enumerate(supports):
        sub = support_domain(domain, support)
        try:
            cands, vals, j = _maximize_linear(acquisition, sub, jax.random.fold_in(key, 3 + i),
                                              anchors, **share)
        except NoFeasiblePoint:
            continue
        x = clean(np.asarray(cands[j])[None], support)
        if not domain.feasible(x)[0]:
            continue
        v = float(vals[j])
        found.append((x[0], v))
        if best_x is None or v > best_v:
            best_x, best_v = x[0], v
    if best_x is None:
        raise NoFeasiblePoint("no support of the cardinality constraints gave a feasible"
                              " point; the feasible region is empty or too small to sample")
    x, v = _drop_floored(acquisition, domain, best_x, best_v)
    others = [(c, w) for c, w in found if c is not best_x]
    candidates = np.stack([np.asarray(x)] + [c for c, _ in others])
    values = np.array([float(v)] + [w for _, w in others])
    return top_distinct(candidates, values, 0, k)


def _drop_floored(acquisition, domain: Domain, x: np.ndarray, v: float):
    """``x`` with present columns held at their floor set to 0 where that stays feasible
    and scores as well: a support may win by a hair with a column the optimum does not
    want, which the lab would otherwise dose at the floor."""
    from active_learning.cardinality import PRESENCE_FLOOR

    y = np.array(x)
    levels = dict(domain.integer)
    for c in domain.cardinality:
        for j in c.columns:
            floor = 1.0 / (levels[j] - 1) if j in levels else PRESENCE_FLOOR
            if 0.0 < y[j] <= floor * (1 + 1e-6):
                y[j] = 0.0
    if np.array_equal(y, x) or not domain.feasible(y[None])[0]:
        return jnp.asarray(x), jnp.asarray(v)
    w = float(np.asarray(_evaluate(acquisition, jnp.asarray(np.stack([y, x]))))[0])
    if w >= v - 1e-9 * max(1.0, abs(v)):
        return jnp.asarray(y), jnp.asarray(w)
    return jnp.asarray(x), jnp.asarray(v)


class NoFeasiblePoint(ValueError):
    """The search found no point satisfying every constraint."""


def _maximize_linear(acquisition, domain: Domain, key: Array, anchors, *, raw_samples: int,
                     num_restarts: int, steps: int, learning_rate: float,
                     max_combinations: int, finish_steps: int = 0):
    """maximize_acquisition for a domain without cardinality constraints: every
    candidate (m, dim), their values (m,) (-inf where infeasible) and the best's row."""
    if domain.nonlinear:
        acquisition = Penalized(acquisition, jnp.asarray(penalty_scales(domain)),
                                domain.nonlinear)
    elif not domain.constrained and not domain.onehot and anchors is None:
        # Anchors take the general path, whose polish refines the narrow optima they find.
        candidates, values = _maximize(acquisition, key, domain, raw_samples, num_restarts,
                                       steps, learning_rate)
        return candidates, values, int(jnp.argmax(values))
    enumerate_ = bool(domain.onehot) and domain.n_combinations <= max_combinations
    a = _arrays(domain, domain.constrained, enumerate_)
    if a is None:
        raise NoFeasiblePoint("no category combination satisfies the linear constraints")
    C = a.combos.shape[0]
    k = a.basis.shape[1]
    plan = _Plan(
        structure=domain.structure, polytope=domain.constrained, enumerate=enumerate_,
        local=bool(domain.onehot) and not enumerate_,
        per_combo=max(math.ceil(raw_samples / C), min(raw_samples, 32)),
        num_restarts=num_restarts, steps=steps, learning_rate=learning_rate,
        walk_steps=k + 4, projection_iters=10, final_projection_iters=200,
        polish_steps=max(steps // 4, 1), finish_steps=finish_steps,
        search_rounds=min(len(domain.onehot) + 1, 8),
    )
    candidates, values, feasible = (np.asarray(t) for t in _search(
        acquisition, key, a, plan, None if anchors is None else jnp.asarray(anchors)))
    rounded = [c for c, _ in domain.integer] + (list(domain.onehot_columns) if plan.local else [])
    if domain.constraints_touch(rounded):
        candidates, values, feasible = _repair(acquisition, domain, candidates, values,
                                               feasible, num_restarts)
    if domain.nonlinear:
        feasible = feasible & inside(domain, candidates)
        candidates, values, feasible = bisect_to_feasible(acquisition, domain, candidates,
                                                          values, feasible, num_restarts)
        if not feasible.any():
            candidates, values, feasible = _sampled(acquisition, domain, key)
        candidates, values, feasible = polish_nonlinear(acquisition, domain, candidates,
                                                        values, feasible)
    if not feasible.any():
        raise RuntimeError("the optimiser found no feasible point; please report this domain")
    best = int(np.argmax(np.where(feasible, values, -np.inf)))
    if not np.isfinite(values[best]) and not np.isfinite(values[feasible]).any():
        best = int(np.flatnonzero(feasible)[0])
    return candidates, np.where(feasible, values, -np.inf), best


def _sampled(acquisition, domain: Domain, key: Array):
    """Sampled feasible points and their values, when no climb ended feasible; raises
    NoFeasiblePoint when sampling finds none either."""
    from active_learning.design import sample_feasible

    seed = int(jax.random.randint(jax.random.fold_in(key, 5), (), 0, 2**31 - 1))
    X = sample_feasible(_FALLBACK_SAMPLES, domain, seed)
    if not len(X):
        raise NoFeasiblePoint(
            f"none of {_FALLBACK_SAMPLES} sampled points satisfies the nonlinear constraints;"
            " the feasible region is empty or too small to sample")
    return X, np.asarray(_evaluate(acquisition, jnp.asarray(X))), inside(domain, X)


def _repair(acquisition, domain: Domain, candidates, values, feasible, n: int):
    """Repair the best rounded-but-infeasible candidates on the host and re-score them."""
    best_feasible = np.max(np.where(feasible, values, -np.inf))
    order = np.argsort(-values)[:n]
    todo = order[~feasible[order] & (values[order] > best_feasible)]
    if len(todo) == 0:
        return candidates, values, feasible
    fixed, ok = domain.repair(candidates[todo])
    # Re-score at a fixed batch size, so repeated calls reuse one compilation.
    padded = np.concatenate([fixed, np.repeat(fixed[:1], n - len(todo), axis=0)])
    scores = np.asarray(_evaluate(acquisition, jnp.asarray(padded)))[: len(todo)]
    candidates, values, feasible = candidates.copy(), values.copy(), feasible.copy()
    candidates[todo], values[todo] = fixed, scores
    feasible[todo] = ok & domain.feasible(fixed)
    return candidates, values, feasible


__all__ = ["DISTINCT_TOLERANCE", "NoFeasiblePoint", "hit_and_run", "maximize_acquisition",
           "maximize_acquisition_top", "project_polytope", "quasi_random",
           "shrink_into_polytope", "top_distinct"]
