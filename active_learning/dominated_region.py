"""Hypervolumes and the box decompositions behind hypervolume improvement.

Convention: every objective is maximised; ``Y: (n, m)``, ``ref: (m,)`` the
reference point, which counts only what improves on it in every objective.
Hypervolume is exact for m = 2 (one sort) and m = 3 (slicing along the last
objective into 2-D sweeps), both in numpy and as jit-able JAX; for m > 3 it is
estimated by Monte Carlo with a standard error. The box decompositions used by
EHVI are static-shaped (padded with empty cells), so they live inside ``jit``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from active_learning.pareto import pareto_mask_np

__all__ = [
    "dominated_boxes", "hypervolume", "hypervolume_exact", "hypervolume_improvement",
    "hypervolume_jax", "hypervolume_monte_carlo", "inclusion_exclusion_subsets",
    "nondominated_cells",
]

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


def inclusion_exclusion_subsets(q: int) -> tuple[np.ndarray, np.ndarray]:
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
    members, odd = inclusion_exclusion_subsets(Y_new.shape[0])
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

