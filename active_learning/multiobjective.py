"""Multi-objective utilities: Pareto fronts, hypervolumes, box decompositions,
and the acquisitions built on them (qLogEHVI, qLogNEHVI, ParEGO), outcome
constraints and objective targets.

Convention: every objective is maximised. The caller multiplies minimised
objectives by -1 (or uses ``Objectives(signs=...)`` on model samples).
``Y: (n, m)`` holds n points with m objectives; ``ref: (m,)`` is the reference
point, which counts only what improves on it in every objective.

Hypervolume is exact for m = 2 (one sort) and m = 3 (slicing along the last
objective into 2-D sweeps), both in numpy and as jit-able JAX; for m > 3 it is
estimated by Monte Carlo with a standard error. The box decompositions used by
EHVI are static-shaped (padded with empty cells), so they live inside ``jit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import log_ndtr

from active_learning.acquisition import fixed_joint, log_h
from surrogates.numerics import JITTER

# ----------------------------------------------------------------------------
# Pareto fronts


@partial(jax.jit, static_argnames=("deduplicate",))
def pareto_mask(Y: Array, mask: Array | None = None, *, deduplicate: bool = False) -> Array:
    """Non-dominated rows of Y (maximisation), O(n^2 m) and jit-able.

    Y: (n, m) objective values; mask: (n,) bool, False for padded rows, which
    neither dominate nor belong to the front. Identical points do not dominate
    each other, so all copies are kept unless ``deduplicate`` keeps the first.
    Rows containing NaN are never dominated; mask them out.
    Returns (n,) bool.
    """
    Y = jnp.asarray(Y)
    n = Y.shape[0]
    valid = jnp.ones(n, bool) if mask is None else jnp.asarray(mask, bool)
    # [i, j]: does row j weakly dominate row i?
    geq = jnp.all(Y[None, :, :] >= Y[:, None, :], axis=-1)
    gt = jnp.any(Y[None, :, :] > Y[:, None, :], axis=-1)
    keep = valid & ~jnp.any(geq & gt & valid[None, :], axis=1)
    if deduplicate:
        earlier = jnp.arange(n)[None, :] < jnp.arange(n)[:, None]
        keep = keep & ~jnp.any(geq & ~gt & earlier & valid[None, :], axis=1)
    return keep


def pareto_mask_np(Y: np.ndarray) -> np.ndarray:
    """(n,) which rows of Y: (n, m) (maximised) no other row dominates, on the host."""
    geq = np.all(Y[None, :, :] >= Y[:, None, :], axis=-1)
    gt = np.any(Y[None, :, :] > Y[:, None, :], axis=-1)
    return ~np.any(geq & gt, axis=1)


def reference_point(Y, mask=None, margin: float = 0.1) -> Array:
    """A reference point just below the observed Pareto front.

    The front's worst value per objective minus ``margin`` times its range
    (or times its magnitude when the range is zero), as BoTorch's
    ``infer_reference_point``. Y: (n, m); mask: (n,) bool. Returns (m,).
    """
    Y = jnp.asarray(Y)
    front = pareto_mask(Y, mask)
    lo = jnp.min(jnp.where(front[:, None], Y, jnp.inf), axis=0)
    hi = jnp.max(jnp.where(front[:, None], Y, -jnp.inf), axis=0)
    span = jnp.where(hi > lo, hi - lo, jnp.maximum(jnp.abs(lo), 1.0))
    return lo - margin * span



# A campaign without a reference point measures improvement from this far below
# the worst observed score, in units of the observed range: near enough that the
# front's extremes still count, far enough that they add volume.
REFERENCE_MARGIN = 0.1
# Smallest range that margin is taken of: one observation, or every score equal.
_MIN_REFERENCE_SPAN = 1e-9


def reference_below_observed(scores: np.ndarray, margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """The reference point a campaign's hypervolume acquisitions use when the spec
    gives none: ``margin`` times the observed range below the worst observed
    score of each objective, over every row (not only the front, unlike
    :func:`reference_point`, so that it moves only when the data widen).

    scores: (n, m) maximised objective values. Returns (m,).
    """
    lo, hi = scores.min(axis=0), scores.max(axis=0)
    return lo - margin * np.maximum(hi - lo, _MIN_REFERENCE_SPAN)

# ----------------------------------------------------------------------------
# Exact hypervolume, numpy


def _check(Y, ref) -> tuple[np.ndarray, np.ndarray]:
    Y = np.asarray(Y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if Y.ndim != 2 or ref.shape != (Y.shape[1],):
        raise ValueError(f"Y must be (n, m) and ref (m,); got {Y.shape} and {ref.shape}")
    if not (np.all(np.isfinite(Y)) and np.all(np.isfinite(ref))):
        raise ValueError("Y and ref must be finite (drop or mask missing outcomes first)")
    return Y, ref


def _hv2_np(P: np.ndarray, ref: np.ndarray) -> float:
    # The union of boxes [ref, p] at abscissa x in (a_{i+1}, a_i] reaches the
    # highest ordinate among the points with y0 >= x: a running max after a sort.
    order = np.argsort(-P[:, 0], kind="stable")
    a = P[order, 0]
    height = np.maximum.accumulate(P[order, 1]) - ref[1]
    a_next = np.append(a[1:], ref[0])
    return float(np.sum((a - a_next) * height))


def _hv_np(P: np.ndarray, ref: np.ndarray) -> float:
    P = P[np.all(P > ref, axis=1)]
    if P.shape[0] == 0:
        return 0.0
    m = P.shape[1]
    if m == 1:
        return float(P.max() - ref[0])
    if m == 2:
        return _hv2_np(P, ref)
    P = P[pareto_mask_np(P)]
    P = P[np.argsort(-P[:, -1], kind="stable")]
    c_next = np.append(P[1:, -1], ref[-1])
    total = 0.0
    for i in range(P.shape[0]):
        height = P[i, -1] - c_next[i]
        if height > 0:
            total += height * _hv_np(P[: i + 1, :-1], ref[:-1])
    return total


def hypervolume_exact(Y, ref) -> float:
    """Exact hypervolume dominated by Y above ref (numpy, any m).

    Slices along the last objective down to 2-D sweeps (the HSO scheme):
    O(n log n) for m = 2, O(n^2 log n) for m = 3, growing like n^(m-1).
    Y: (n, m); ref: (m,). Points not above ref in every objective add nothing.
    """
    Y, ref = _check(Y, ref)
    return _hv_np(Y, ref)


def hypervolume(Y, ref, *, key: Array | None = None, num_samples: int = 1 << 16) -> float:
    """Hypervolume of Y above ref: exact for m <= 3, Monte Carlo for m > 3.

    Y: (n, m); ref: (m,); key: PRNG key, required for m > 3 (use
    ``hypervolume_exact`` for an exact value there, at n^(m-1) cost, or
    ``hypervolume_monte_carlo`` for the standard error).
    """
    Y, ref = _check(Y, ref)
    if Y.shape[1] <= 3:
        return _hv_np(Y, ref)
    if key is None:
        raise ValueError(
            f"m = {Y.shape[1]} objectives: pass key= for a Monte Carlo estimate,"
            " or call hypervolume_exact"
        )
    estimate, _ = hypervolume_monte_carlo(jnp.asarray(Y), jnp.asarray(ref), key,
                                          num_samples=num_samples)
    return float(estimate)


# ----------------------------------------------------------------------------
# Box decompositions and hypervolume, JAX


def _clip_to_ref(Y: Array, ref: Array, mask: Array | None) -> Array:
    # A point below ref in some objective dominates an empty box; moving it onto
    # ref keeps the union of boxes unchanged and its own box empty. Padded rows
    # go to ref too.
    Y = jnp.maximum(Y, ref)
    if mask is not None:
        Y = jnp.where(jnp.asarray(mask, bool)[:, None], Y, ref)
    return Y


def _sweep2(P: Array, ref: Array) -> tuple[Array, Array, Array]:
    """Sorted abscissae a (desc), the next ones, and the running max ordinate."""
    order = jnp.argsort(-P[:, 0])
    a = P[order, 0]
    a_next = jnp.concatenate([a[1:], ref[:1]])
    height = lax.cummax(P[order, 1], axis=0)
    return a, a_next, height


def _dominated_boxes_2d(P: Array, ref: Array) -> tuple[Array, Array]:
    a, a_next, height = _sweep2(P, ref)
    lower = jnp.stack([a_next, jnp.full_like(a, ref[1])], axis=-1)
    upper = jnp.stack([a, height], axis=-1)
    return lower, upper


def _nondominated_cells_2d(P: Array, ref: Array) -> tuple[Array, Array]:
    a, a_next, height = _sweep2(P, ref)
    inf = jnp.full_like(a, jnp.inf)
    lower = jnp.concatenate([jnp.stack([a[:1], ref[1:2]], -1),
                             jnp.stack([a_next, height], -1)])
    upper = jnp.concatenate([jnp.full((1, 2), jnp.inf), jnp.stack([a, inf], -1)])
    return lower, upper


def _slices_3d(P: Array, ref: Array):
    """Sort by the last objective; slab i holds the 2-D section of points 0..i."""
    n = P.shape[0]
    P = P[jnp.argsort(-P[:, 2])]
    c = P[:, 2]
    c_next = jnp.concatenate([c[1:], ref[2:3]])
    active = jnp.arange(n)[None, :] <= jnp.arange(n)[:, None]  # (slab, point)
    sections = jnp.where(active[:, :, None], P[None, :, :2], ref[:2])
    return sections, c, c_next


def _extrude(lower2: Array, upper2: Array, z_lo: Array, z_hi: Array) -> tuple[Array, Array]:
    # (slabs, cells, 2) x (slabs,) -> (slabs * cells, 3)
    s, k, _ = lower2.shape
    lower = jnp.concatenate([lower2, jnp.broadcast_to(z_lo[:, None, None], (s, k, 1))], -1)
    upper = jnp.concatenate([upper2, jnp.broadcast_to(z_hi[:, None, None], (s, k, 1))], -1)
    return lower.reshape(s * k, 3), upper.reshape(s * k, 3)


def _check_m(m: int) -> None:
    if m not in (2, 3):
        raise ValueError(f"box decompositions are implemented for 2 or 3 objectives; got {m}")


@jax.jit
def dominated_boxes(Y: Array, ref: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """The region dominated by Y above ref as disjoint boxes, static-shaped.

    Y: (n, m), m in {2, 3}; ref: (m,); mask: (n,) bool for padded rows.
    Returns lower, upper: (n, m) for m = 2, (n^2, m) for m = 3; padding
    boxes are empty (zero width), so box volumes sum to the hypervolume.
    """
    Y = jnp.asarray(Y, jnp.float64)
    ref = jnp.asarray(ref, jnp.float64)
    _check_m(Y.shape[1])
    P = _clip_to_ref(Y, ref, mask)
    if Y.shape[1] == 2:
        return _dominated_boxes_2d(P, ref)
    sections, c, c_next = _slices_3d(P, ref)
    lower2, upper2 = jax.vmap(_dominated_boxes_2d, in_axes=(0, None))(sections, ref[:2])
    return _extrude(lower2, upper2, c_next, c)


@jax.jit
def nondominated_cells(Y: Array, ref: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """The part of [ref, inf)^m not dominated by Y as disjoint cells, static-shaped.

    The hypervolume improvement of a point y is the volume of [ref, y] inside
    these cells: sum_j prod_k max(0, min(y_k, upper_jk) - lower_jk).
    Y: (n, m), m in {2, 3}; ref: (m,); mask: (n,) bool for padded rows.
    Returns lower, upper: (n + 1, m) for m = 2, (n (n + 1) + 1, m) for m = 3,
    upper = +inf where a cell is unbounded; padding cells have zero width.
    """
    Y = jnp.asarray(Y, jnp.float64)
    ref = jnp.asarray(ref, jnp.float64)
    _check_m(Y.shape[1])
    P = _clip_to_ref(Y, ref, mask)
    if Y.shape[1] == 2:
        return _nondominated_cells_2d(P, ref)
    sections, c, c_next = _slices_3d(P, ref)
    lower2, upper2 = jax.vmap(_nondominated_cells_2d, in_axes=(0, None))(sections, ref[:2])
    lower, upper = _extrude(lower2, upper2, c_next, c)
    # Above the highest point nothing is dominated.
    top_lower = jnp.stack([ref[0], ref[1], c[0]])[None]
    return (jnp.concatenate([top_lower, lower]),
            jnp.concatenate([jnp.full((1, 3), jnp.inf), upper]))


@jax.jit
def hypervolume_jax(Y: Array, ref: Array, mask: Array | None = None) -> Array:
    """Exact hypervolume for m in {2, 3}, jit-able and differentiable in Y.

    Y: (n, m); ref: (m,); mask: (n,) bool for padded rows. Returns ().
    Costs O(n log n) for m = 2 and O(n^2 log n) time, O(n^2) memory for m = 3.
    """
    lower, upper = dominated_boxes(Y, ref, mask)
    return jnp.sum(jnp.prod(upper - lower, axis=-1))


def _subsets(q: int) -> tuple[np.ndarray, np.ndarray]:
    """All non-empty subsets of q points as a (2^q - 1, q) membership matrix, and
    whether each has odd size (inclusion-exclusion sign +)."""
    codes = np.arange(1, 1 << q)
    members = (codes[:, None] >> np.arange(q)[None, :]) & 1
    return members.astype(bool), members.sum(axis=1) % 2 == 1


@jax.jit
def hypervolume_improvement(Y_new: Array, cell_lower: Array, cell_upper: Array) -> Array:
    """Exact hypervolume improvement of q new points over a decomposed front.

    Inclusion-exclusion over the 2^q - 1 subsets: the boxes [ref, y_i] of a
    subset intersect in [ref, min_i y_i]. Y_new: (q, m); cell_lower,
    cell_upper: (C, m) from ``nondominated_cells``. Returns ().
    """
    Y_new = jnp.asarray(Y_new)
    members, odd = _subsets(Y_new.shape[0])
    corner = jnp.min(jnp.where(members[:, :, None], Y_new[None], jnp.inf), axis=1)  # (P, m)
    sides = jnp.clip(jnp.minimum(corner[:, None], cell_upper) - cell_lower, 0.0)  # (P, C, m)
    volume = jnp.sum(jnp.prod(sides, axis=-1), axis=-1)
    return jnp.sum(jnp.where(odd, volume, -volume))


# ----------------------------------------------------------------------------
# Monte Carlo hypervolume


@partial(jax.jit, static_argnames=("num_samples", "chunk"))
def hypervolume_monte_carlo(
    Y: Array, ref: Array, key: Array, num_samples: int = 1 << 16,
    mask: Array | None = None, chunk: int = 4096,
) -> tuple[Array, Array]:
    """Monte Carlo hypervolume for any m: estimate and its standard error.

    Uniform points in the bounding box [ref, max Y]; the dominated fraction
    times the box volume. Y: (n, m); ref: (m,); key: PRNG key; num_samples:
    rounded up to a multiple of ``chunk`` (points tested per step, bounding
    memory to chunk * n * m); mask: (n,) bool for padded rows.
    """
    P = _clip_to_ref(jnp.asarray(Y, jnp.float64), jnp.asarray(ref, jnp.float64), mask)
    ref = jnp.asarray(ref, jnp.float64)
    top = jnp.max(P, axis=0)
    volume = jnp.prod(top - ref)
    chunk = min(chunk, num_samples)
    num_chunks = -(-num_samples // chunk)

    def hits(k):
        # A flat draw compiles far faster than an (chunk, m) one under
        # partitionable threefry; the values are equally uniform.
        u = ref + (top - ref) * jax.random.uniform(k, (chunk * P.shape[1],)).reshape(chunk, -1)
        return jnp.sum(jnp.any(jnp.all(P[None] >= u[:, None], axis=-1), axis=-1))

    total = num_chunks * chunk
    p = jnp.sum(lax.map(hits, jax.random.split(key, num_chunks))) / total
    return volume * p, volume * jnp.sqrt(p * (1.0 - p) / (total - 1))


# ----------------------------------------------------------------------------
# Smooth, log-space building blocks (Ament et al., 2023)

_BIG = 1e10  # stands in for +inf cell bounds, in normalised units
_LOG_EMPTY = -1e3  # log of a zero width: exp underflows, gradients stay finite
_MIN_GAP = 1e-12


def log_fatplus(x: Array, tau: Array | float) -> Array:
    """log of a smooth ReLU with a heavy left tail: tau (softplus(x/tau) + 0.1/(1 + (x/tau)^2)).

    Unlike log softplus, whose slope grows like 1/tau left of zero, the
    Cauchy term decays polynomially so a point with no improvement still gets
    a usable gradient (Ament et al., 2023, "fat" approximations).
    """
    z = jnp.maximum(x / tau, -1e100)
    return jnp.log(tau) + jnp.log(jax.nn.softplus(z) + 0.1 / (1.0 + z * z))


def _log1mexp(x: Array) -> Array:
    """log(1 - exp(x)) for x < 0, accurate on both sides of -log 2."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def _logdiffexp(log_a: Array, log_b: Array) -> Array:
    # Exact inclusion-exclusion keeps a > b; smoothing can close the gap, and a
    # floor keeps the value finite instead of NaN.
    return log_a + _log1mexp(jnp.minimum(log_b - log_a, -_MIN_GAP))


def _logmeanexp(x: Array, axis: int = 0) -> Array:
    return jax.nn.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def _log_hvi_smooth(Y: Array, lower: Array, upper: Array, log_weight: Array | None,
                    tau_relu: Array, tau_max: Array) -> Array:
    """Smoothed log hypervolume improvement of q points for one sample.

    Y: (q, m) normalised objectives; lower, upper: (C, m) normalised cells;
    log_weight: (q,) log feasibility of each point or None. Each side length
    min(min_{i in S} y_ik, u_k) - l_k becomes a soft minimum, in log space, of
    log fatplus(y_ik - l_k) and log(u_k - l_k); subsets combine by
    inclusion-exclusion with positive and negative parts kept separately.
    """
    q = Y.shape[0]
    members, odd = _subsets(q)
    log_improvement = log_fatplus(Y[None] - lower[:, None], tau_relu)  # (C, q, m)
    width = jnp.minimum(upper - lower, _BIG)
    positive = width > 0
    log_width = jnp.where(positive, jnp.log(jnp.where(positive, width, 1.0)), _LOG_EMPTY)
    if q == 1 and log_weight is None:
        # One point: the soft minimum of two terms in closed form, the same value as
        # the logsumexp below with one exponential and one log1p instead of two and a
        # log (this is the innermost loop of every batch-of-one proposal).
        a, b = log_improvement[:, 0], log_width  # (C, m)
        log_side = jnp.minimum(a, b) - tau_max * jnp.log1p(jnp.exp(-jnp.abs(a - b) / tau_max))
        return jax.nn.logsumexp(jnp.sum(log_side, axis=-1))
    terms = jnp.concatenate([log_improvement, log_width[:, None]], axis=1)  # (C, q+1, m)
    select = np.concatenate([members, np.ones((members.shape[0], 1), bool)], axis=1)
    log_side = -tau_max * jax.nn.logsumexp(
        -terms[:, None] / tau_max, axis=2, where=select[None, :, :, None]
    )  # (C, P, m)
    log_area = jnp.sum(log_side, axis=-1)  # (C, P)
    if log_weight is not None:
        log_area = log_area + jnp.sum(jnp.where(members, log_weight[None], 0.0), axis=1)
    if q == 1:
        per_cell = log_area[:, 0]
    else:
        log_plus = jax.nn.logsumexp(log_area, axis=1, where=odd[None])
        log_minus = jax.nn.logsumexp(log_area, axis=1, where=~odd[None])
        per_cell = _logdiffexp(log_plus, log_minus)
    return jax.nn.logsumexp(per_cell)


# ----------------------------------------------------------------------------
# Objectives on model samples


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


# ----------------------------------------------------------------------------
# Acquisitions


def _float_array(value) -> Array:
    # A float64 array leaf, not a Python float, which filter_jit would treat as
    # static: a new temperature or incumbent then reuses the compiled program.
    return jnp.asarray(value, jnp.float64)


def _as_batches(X: Array) -> Array:
    """(b, d) -> (b, 1, d); (b, q, d) unchanged."""
    X = jnp.asarray(X)
    if X.ndim == 2:
        return X[:, None, :]
    if X.ndim != 3:
        raise ValueError(f"X must be (b, d) or (b, q, d); got shape {X.shape}")
    return X


_BLOCK = 32


def _objective_samples(model, X: Array, key: Array, num_samples: int,
                       objectives: Callable | None) -> Array:
    samples = model.posterior(X, full_cov=True).sample(key, num_samples)  # (s, q, m_model)
    return samples if objectives is None else objectives(samples)


@eqx.filter_jit
def _objective_means(model, X: Array, objectives: Callable | None) -> Array:
    mean = model.posterior(X).mean
    return mean if objectives is None else objectives(mean)


def _scale_from(Y: Array, ref: Array, mask: Array | None) -> Array:
    """Per-objective span of the data above/below ref, so that the smoothing
    temperatures are relative to the problem's units."""
    dist = jnp.abs(Y - ref)
    if mask is not None:
        dist = jnp.where(jnp.asarray(mask, bool)[:, None], dist, 0.0)
    span = jnp.max(dist, axis=0)
    return jnp.where(span > 0, span, 1.0)


def _normalised(f: Array, objectives: Callable | None, ref: Array, scale: Array) -> Array:
    Y = f if objectives is None else objectives(f)
    return (Y - ref) / scale


@eqx.filter_jit
def _nehvi_baseline(model, X_baseline: Array, mask: Array, key: Array, num_samples: int,
                    objectives: Callable | None, ref: Array, scale: Array):
    """Cholesky factors (m_model, n, n) of the baseline's posterior, its base samples
    (S, m_model, n) and the non-dominated cells (S, C, m) of each sampled front.

    Padded rows are decoupled (identity rows scaled like the data), so they
    neither condition anything nor enter a front.
    """
    n = X_baseline.shape[0]
    post = model.posterior(X_baseline, full_cov=True)
    m_model = post.mean.shape[1]
    z = jax.random.normal(key, (num_samples, m_model, n))
    w = mask.astype(post.mean.dtype)
    var = jnp.maximum(jnp.max(post.variance * w[:, None], axis=0), 1e-300)  # (m_model,)
    cov = (post.covariance * (w[:, None] * w[None, :])[None]
           + jax.vmap(jnp.diag)((1.0 - w)[None] * var[:, None]))
    L = jnp.linalg.cholesky(cov + JITTER * var[:, None, None] * jnp.eye(n))
    f = post.mean[None] + jnp.einsum("mij,smj->sim", L, z)
    zero = jnp.zeros_like(ref)
    lower, upper = jax.vmap(lambda y: nondominated_cells(y, zero, mask))(
        _normalised(f, objectives, ref, scale))
    return L, z, lower, upper


# Cells kept per sample: the non-empty ones padded to a power of two, at least
# this many. The acquisition's cost is linear in the cells; each new count
# compiles once, which costs more than the cells it saves on small fronts, so
# the floor keeps the smallest fronts from compiling twice for little gain.
_MIN_CELLS = 16


def _trim_cells(lower: Array, upper: Array) -> tuple[Array, Array]:
    """Drop the empty cells that padding and dominated points leave, keeping a power
    of two (at least _MIN_CELLS) per sample, so that the acquisition's cost follows
    the sampled fronts' size instead of n (n (n + 1) + 1 cells for three objectives).
    Empty cells add exactly nothing (their log width underflows), so the values
    do not change. Under a trace (no concrete values) the cells stay as they are."""
    if isinstance(lower, jax.core.Tracer) or isinstance(upper, jax.core.Tracer):
        return lower, upper
    lo, up = np.asarray(lower), np.asarray(upper)
    nonempty = np.all(up > lo, axis=-1)  # (S, C)
    count = int(nonempty.sum(axis=1).max(initial=1))
    keep = min(lo.shape[1], max(_MIN_CELLS, 1 << (count - 1).bit_length()))
    order = np.argsort(~nonempty, axis=1, kind="stable")[:, :keep]
    take = lambda a: np.take_along_axis(a, order[..., None], axis=1)  # noqa: E731
    return jnp.asarray(take(lo)), jnp.asarray(take(up))


class qLogExpectedHypervolumeImprovement(eqx.Module):
    """qLogEHVI: log E[HVI(f(X_1..q))] over a fixed (observed) Pareto front.

    MC over joint posterior samples with fixed base samples (``key``), the
    front's non-dominated cells precomputed once, and smooth log-space side
    lengths (Ament et al., 2023). Use qLogNEHVI when observations are noisy.

    model: surrogate with ``posterior(X, full_cov=True).sample``; Y: (n, m)
    observed maximised objectives that define the front; ref_point: (m,);
    key: base-sample key; mask: (n,) bool for padded Y; objectives: map from
    model outputs (..., m_model) to maximised objectives (..., m), default all
    outputs; X_pending: (p, d) points already chosen, joined to each batch
    (cost grows as 2^(q+p)). Temperatures are in units of the span of Y
    above ref. X: (b, d) or (b, q, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    cell_lower: Array
    cell_upper: Array
    ref_point: Array
    scale: Array
    key: Array
    X_pending: Array | None
    objectives: Callable | None
    tau_relu: Array
    tau_max: Array
    num_samples: int = eqx.field(static=True)

    def __init__(self, model, Y, ref_point, key, *, mask=None, objectives=None,
                 X_pending=None, num_samples: int = 128, tau_relu: float = 1e-6,
                 tau_max: float = 1e-2):
        Y = jnp.asarray(Y, jnp.float64)
        ref = jnp.asarray(ref_point, jnp.float64)
        self.scale = _scale_from(Y, ref, mask)
        lower, upper = nondominated_cells((Y - ref) / self.scale, jnp.zeros_like(ref), mask)
        self.cell_lower, self.cell_upper = lower, upper
        self.model, self.ref_point, self.key = model, ref, key
        self.X_pending = None if X_pending is None else jnp.asarray(X_pending)
        self.objectives = objectives
        self.num_samples = num_samples
        self.tau_relu, self.tau_max = _float_array(tau_relu), _float_array(tau_max)

    def __call__(self, X: Array) -> Array:
        return jax.vmap(self._one)(_as_batches(X))

    def _one(self, Xq: Array) -> Array:
        if self.X_pending is not None:
            Xq = jnp.concatenate([self.X_pending, Xq])
        Y = _objective_samples(self.model, Xq, self.key, self.num_samples, self.objectives)
        Y = (Y - self.ref_point) / self.scale
        log_hvi = jax.vmap(
            lambda y: _log_hvi_smooth(y, self.cell_lower, self.cell_upper, None,
                                      self.tau_relu, self.tau_max)
        )(Y)
        return _logmeanexp(log_hvi) + jnp.sum(jnp.log(self.scale))


class qLogNoisyExpectedHypervolumeImprovement(eqx.Module):
    """qLogNEHVI (Daulton et al., 2021; log-space smoothing of Ament et al., 2023).

    For each joint posterior sample of f at (X_baseline, X_pending, X_1..q),
    the Pareto front of the sampled baseline values defines the cells, and the
    q candidates' smoothed log HVI over them is averaged (log-mean-exp) over
    samples. Fixed base samples (``key``) make it a deterministic, smooth
    function of X. Pending points join the baseline, as in BoTorch.

    model: surrogate protocol; X_baseline: (n, d) observed inputs (padded, with
    baseline_mask: (n,) bool); ref_point: (m,); key: base-sample key;
    objectives: model outputs -> maximised objectives; X_pending: (p, d).
    Cost per batch: one joint posterior over n + p + q points, and per sample
    a box decomposition with O(n) cells for m = 2, O(n^2) for m = 3, times
    2^q - 1 subsets: keep q <= 4 (greedy batches beyond) and n moderate
    (pass the observed Pareto points and their neighbours when n is large).
    X: (b, d) or (b, q, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    X_baseline: Array
    baseline_mask: Array
    ref_point: Array
    scale: Array
    key: Array
    objectives: Callable | None
    tau_relu: Array
    tau_max: Array
    L_base: Array
    z_base: Array
    cell_lower: Array
    cell_upper: Array
    num_samples: int = eqx.field(static=True)

    def __init__(self, model, X_baseline, ref_point, key, *, baseline_mask=None,
                 objectives=None, X_pending=None, num_samples: int = 64,
                 tau_relu: float = 1e-6, tau_max: float = 1e-2):
        X_baseline = jnp.asarray(X_baseline, jnp.float64)
        mask = (jnp.ones(X_baseline.shape[0], bool) if baseline_mask is None
                else jnp.asarray(baseline_mask, bool))
        if X_pending is not None:
            X_pending = jnp.asarray(X_pending, jnp.float64)
            X_baseline = jnp.concatenate([X_baseline, X_pending])
            mask = jnp.concatenate([mask, jnp.ones(X_pending.shape[0], bool)])
        ref = jnp.asarray(ref_point, jnp.float64)
        self.scale = _scale_from(_objective_means(model, X_baseline, objectives), ref, mask)
        self.model, self.X_baseline, self.baseline_mask = model, X_baseline, mask
        self.ref_point, self.key, self.objectives = ref, key, objectives
        self.num_samples = num_samples
        self.tau_relu, self.tau_max = _float_array(tau_relu), _float_array(tau_max)
        # The baseline's draws do not depend on the candidates: its block of the
        # joint is factored, sampled and box-decomposed once here and shared by
        # every evaluation (BoTorch's cached root and box decompositions). The
        # candidates' draws continue the same Cholesky factor of the joint.
        self.L_base, self.z_base, lower, upper = _nehvi_baseline(
            model, X_baseline, mask, key, num_samples, objectives, ref, self.scale)
        self.cell_lower, self.cell_upper = _trim_cells(lower, upper)

    def __call__(self, X: Array) -> Array:
        X = _as_batches(X)
        n, q = self.X_baseline.shape[0], X.shape[1]
        m_model = self.z_base.shape[1]
        z_new = jax.random.normal(jax.random.fold_in(self.key, 1),
                                  (self.num_samples, m_model, q))
        mask = self.baseline_mask.astype(self.X_baseline.dtype)
        blocks = fixed_joint(self.model, self.X_baseline)

        def one(Xq: Array) -> Array:
            mean_q, var_q, cross, cov_q = blocks(Xq)
            cross = cross * mask[None, :, None]  # (m_model, n, q)
            C = jax.vmap(lambda L, B: solve_triangular(L, B, lower=True))(self.L_base, cross)
            schur = cov_q - jnp.einsum("mnq,mnr->mqr", C, C)
            var_new = jnp.max(var_q, axis=0)  # (m_model,)
            L_new = jnp.linalg.cholesky(schur + JITTER * var_new[:, None, None]
                                        * jnp.eye(q))
            f_new = (mean_q[None] + jnp.einsum("mnq,smn->sqm", C, self.z_base)
                     + jnp.einsum("mij,smj->sim", L_new, z_new))
            values = jax.vmap(lambda y, lo, up: _log_hvi_smooth(
                y, lo, up, None, self.tau_relu, self.tau_max))(
                _normalised(f_new, self.objectives, self.ref_point, self.scale),
                self.cell_lower, self.cell_upper)
            return _logmeanexp(values) + jnp.sum(jnp.log(self.scale))

        # Blocks of candidates: (b, samples, cells, m) intermediates of a whole
        # raw-sample screen would stream through memory several times.
        return jax.vmap(one)(X) if X.shape[0] <= _BLOCK else lax.map(one, X, batch_size=_BLOCK)



def _distinct_sides(lower: Array, upper: Array) -> tuple[Array, Array, Array]:
    """Per objective, the distinct (lower, upper) sides of the cells, padded to a power of
    two (at least 8) with a harmless [0, 1), and each cell's index into them: (m, P),
    (m, P), (C, m). Under a trace (no concrete values) every cell is its own side."""
    C, m = lower.shape
    if isinstance(lower, jax.core.Tracer) or isinstance(upper, jax.core.Tracer):
        return lower.T, upper.T, jnp.tile(jnp.arange(C)[:, None], (1, m))
    lo, up = np.asarray(lower), np.asarray(upper)
    sides, index = [], np.zeros((C, m), np.int32)
    for j in range(m):
        pairs, inverse = np.unique(np.stack([lo[:, j], up[:, j]], axis=1), axis=0,
                                   return_inverse=True)
        sides.append(pairs)
        index[:, j] = inverse.reshape(-1)
    P = max(8, 1 << (max(len(p) for p in sides) - 1).bit_length())
    pad = lambda p: np.concatenate([p, np.tile([[0.0, 1.0]], (P - len(p), 1))])  # noqa: E731
    stacked = np.stack([pad(p) for p in sides])  # (m, P, 2)
    return jnp.asarray(stacked[..., 0]), jnp.asarray(stacked[..., 1]), jnp.asarray(index)


class LogExpectedHypervolumeImprovement(eqx.Module):
    """Analytic log EHVI of one point, for independently modelled objectives.

    With independent Gaussian objectives Y_j ~ N(mu_j, sigma_j^2) the expected
    hypervolume improvement factorises per non-dominated cell [l, u) of the front
    (Emmerich et al., 2006; Yang et al., 2019):

        E[HVI] = sum_c prod_j E[clip(Y_j, l_cj, u_cj) - l_cj]
               = sum_c prod_j sigma_j (h((mu_j - l_cj) / sigma_j) - h((mu_j - u_cj) / sigma_j)),

    h(z) = phi(z) + z Phi(z), evaluated in log space (``log_h`` and a log
    difference), so that points far from improving keep a finite value and a
    gradient. No Monte-Carlo samples: one posterior per candidate and m x cells
    closed forms, where qLogNEHVI draws 64 joint samples over the baseline.
    The front is the posterior mean at the observed points (noise-free
    observations: their values), fixed while the candidate varies; use
    qLogNEHVI for batches scored jointly or when the front itself is uncertain.

    model: surrogate with ``posterior(X)`` (mean, variance per output);
    X_baseline: (n, d) observed inputs, baseline_mask: (n,) bool for padding;
    ref_point: (m,) in maximised objective units; outputs, signs: the model output
    and direction (+1 maximise, -1 minimise) of each objective (no targets: they
    are not Gaussian). X: (b, d) or (b, 1, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    cell_nonempty: Array  # (C,) False for padding and emptied cells
    side_lower: Array  # (m, P) the distinct [lower, upper) sides per objective
    side_upper: Array
    side_index: Array  # (C, m) which side each cell has along each objective
    ref_point: Array
    scale: Array
    outputs: tuple[int, ...] = eqx.field(static=True)
    signs: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, model, X_baseline, ref_point, *, outputs: Sequence[int],
                 signs: Sequence[float], baseline_mask=None):
        X_baseline = jnp.asarray(X_baseline, jnp.float64)
        mask = (jnp.ones(X_baseline.shape[0], bool) if baseline_mask is None
                else jnp.asarray(baseline_mask, bool))
        self.outputs, self.signs = tuple(int(o) for o in outputs), tuple(float(s) for s in signs)
        if len(self.outputs) not in (2, 3) or len(self.signs) != len(self.outputs):
            raise ValueError(f"outputs: got {len(self.outputs)} objectives with"
                             f" {len(self.signs)} signs; expected 2 or 3 of each")
        ref = jnp.asarray(ref_point, jnp.float64)
        objectives = Objectives(outputs=self.outputs, signs=self.signs)
        front = _objective_means(model, X_baseline, objectives)
        self.scale = _scale_from(front, ref, mask)
        lower, upper = nondominated_cells((front - ref) / self.scale, jnp.zeros_like(ref), mask)
        lower, upper = _trim_cells(lower[None], upper[None])
        self.cell_nonempty = jnp.all(upper[0] > lower[0], axis=-1)
        self.side_lower, self.side_upper, self.side_index = _distinct_sides(lower[0], upper[0])
        self.model, self.ref_point = model, ref

    def __call__(self, X: Array) -> Array:
        X = _as_batches(X)
        if X.shape[1] != 1:
            raise ValueError(f"X: got q = {X.shape[1]} points per batch; analytic EHVI"
                             " scores one (use qLogNEHVI for joint batches)")
        post = self.model.posterior(X[:, 0])
        cols = jnp.asarray(self.outputs)
        signs = jnp.asarray(self.signs)
        mu = (signs * post.mean[:, cols] - self.ref_point) / self.scale  # (b, m)
        sigma = jnp.sqrt(jnp.maximum(post.variance[:, cols], 1e-300)) / self.scale
        # The closed forms per distinct side (O(n) per objective), then per cell a
        # sum of m of them: cells number O(n^2) for three objectives.
        lo, up = self.side_lower[None], self.side_upper[None]  # (1, m, P)
        bounded = jnp.isfinite(up)
        z_lo = (mu[:, :, None] - lo) / sigma[:, :, None]
        # Clamp with where: an unbounded side contributes h(-inf) = 0, and its
        # branch must carry no gradient.
        z_up = (mu[:, :, None] - jnp.where(bounded, up, 0.0)) / sigma[:, :, None]
        log_lo = log_h(z_lo)
        log_up = jnp.where(bounded, log_h(jnp.where(bounded, z_up, 0.0)), -jnp.inf)
        side = jnp.log(sigma)[:, :, None] + _logdiffexp(log_lo, log_up)  # (b, m, P)
        m = side.shape[1]
        per_cell = sum(side[:, j, self.side_index[:, j]] for j in range(m))  # (b, C)
        per_cell = jnp.where(self.cell_nonempty, per_cell, -jnp.inf)
        return jax.nn.logsumexp(per_cell, axis=-1) + jnp.sum(jnp.log(self.scale))


class ScalarizedLogEI(eqx.Module):
    """MC log expected improvement of a scalarisation of joint samples.

    value = log E[max_i max(g(f(x_i)) - best, 0)], g: (..., m_model) -> (...)
    e.g. ``ChebyshevScalarization`` (ParEGO on a multi-output model: a fresh
    ``sample_simplex`` weight each iteration) or ``TargetObjective``. A
    scalarisation of Gaussian outputs is not Gaussian, hence samples.
    model: surrogate protocol; best: () the best g over the observations;
    key: base-sample key; tau_relu: smoothing in units of g; tau_max: soft
    max over the q points in log space. X: (b, d) or (b, q, d) -> (b,).
    """

    model: eqx.Module
    scalarization: Callable
    best: Array = eqx.field(converter=_float_array)
    key: Array
    num_samples: int = eqx.field(static=True, default=128)
    tau_relu: Array = eqx.field(default=1e-6, converter=_float_array)
    tau_max: Array = eqx.field(default=1e-2, converter=_float_array)

    def __call__(self, X: Array) -> Array:
        return jax.vmap(self._one)(_as_batches(X))

    def _one(self, Xq: Array) -> Array:
        g = _objective_samples(self.model, Xq, self.key, self.num_samples, self.scalarization)
        log_improvement = log_fatplus(g - self.best, self.tau_relu)  # (s, q)
        per_sample = self.tau_max * jax.nn.logsumexp(log_improvement / self.tau_max, axis=1)
        return _logmeanexp(per_sample)


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
        Xb = _as_batches(X)
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
    "reference_below_observed",
    "reference_point",
    "sample_simplex",
]
