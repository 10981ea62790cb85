"""Pareto fronts and reference points.

Convention: every objective is maximised. ``Y: (n, m)`` holds n points with m
objectives; the reference point ``ref: (m,)`` sits below the observed values,
so that it counts only what improves on it in every objective.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "REFERENCE_MARGIN", "pareto_mask", "pareto_mask_np", "reference_below_observed",
    "reference_point",
]


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
