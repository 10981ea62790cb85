"""Pareto fronts and the hypervolume reference point.

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

__all__ = ["REFERENCE_MARGIN", "pareto_mask", "pareto_mask_np", "reference_point"]


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


# The default reference point sits this far below the worst observed score, in
# units of the observed range: near enough that the front's extremes still count,
# far enough that they add volume (a point on the reference adds none).
REFERENCE_MARGIN = 0.1
# Smallest range that margin is taken of: one observation, or every score equal.
_MIN_REFERENCE_SPAN = 1e-9


def reference_point(scores: np.ndarray, ref: np.ndarray | None = None,
                    margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """The hypervolume reference point: the one rule for the whole workbench.

    ``ref`` when given (already in maximised-score units), else ``margin`` times
    the observed range (at least ``1e-9``) below the worst observed score of each
    objective. Every row counts, not only the Pareto front, so that the point
    moves only when the data widen; the acquisitions that propose and the
    hypervolume that reports progress measure from the same point.

    scores: (n, m) maximised objective values; ref: (m,) or None. Returns (m,);
    NaN where there is no row and no ``ref`` (then nothing dominates anything).
    """
    scores = np.asarray(scores, np.float64)
    if ref is not None:
        ref = np.asarray(ref, np.float64)
        if ref.shape != scores.shape[-1:]:
            raise ValueError(f"reference_point: ref has shape {ref.shape}; expected"
                             f" ({scores.shape[-1]},), one value per objective")
        return ref
    if scores.ndim != 2:
        raise ValueError(f"reference_point: scores has shape {scores.shape}; expected (n, m)")
    if len(scores) == 0:
        return np.full(scores.shape[1], np.nan)
    lo, hi = scores.min(axis=0), scores.max(axis=0)
    return lo - margin * np.maximum(hi - lo, _MIN_REFERENCE_SPAN)
