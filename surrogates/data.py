"""Training data as every model takes it: padded to a bucket, outputs standardised.

Training sets are padded to a few bucket sizes with a mask, so a growing
campaign compiles a handful of times instead of once per experiment; outputs
are standardised inside each model, so priors and floors are in units of the
data's spread.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m`` outputs.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

# Smallest padded capacity of a training set: below it, padding costs nothing
# measurable, and a campaign's first 32 observations (its initial design and first
# proposals) share one compiled program per entry point instead of two, which a
# fresh process would each trace, lower and load.
MIN_BUCKET = 32
# Smallest padded size of point sets an acquisition holds (baselines, pending
# points): they are scored on every optimiser step, so they pad less.
MIN_POINT_BUCKET = 8
# A variance at or below this is a constant output: its scale is left at 1.
_DEGENERATE_VARIANCE = 1e-24


def bucket_size(n: int, minimum: int = MIN_BUCKET) -> int:
    """Padded capacity for ``n`` rows: the next power of two, at least ``minimum``."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


def standardise(Y, mask, xp=jnp):
    """Masked mean and standard deviation per output (scale 1 when degenerate).

    Y: (n, m) outputs, mask: (n, m) 1 where observed; xp: ``jax.numpy`` inside
    compiled fits, ``numpy`` for models prepared on the host. Returns loc,
    scale: (m,).
    """
    n = xp.sum(mask, axis=0)
    loc = xp.sum(Y * mask, axis=0) / xp.maximum(n, 1.0)
    var = xp.sum(((Y - loc) * mask) ** 2, axis=0) / xp.maximum(n - 1.0, 1.0)
    scale = xp.where((n > 1) & (var > _DEGENERATE_VARIANCE), xp.sqrt(var), 1.0)
    return loc, scale


def pad_observations(X, Y, bounds=None, capacity: int | None = None):
    """Pad (X, Y) to a bucket of at least ``capacity`` rows.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing; bounds:
    (2, d) lower/upper input bounds (default: the data's range). Returns numpy
    Xp (N, d) and Yp (N, m) with zeros in padded and missing places, mask
    (N, m) 1 where observed, and lower, span (d,) for scaling to the unit cube.
    """
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (n, d) and Y (n, m); got {X.shape} and {Y.shape}")
    n, d = X.shape
    if bounds is None:
        lower, upper = X.min(axis=0), X.max(axis=0)
    else:
        lower, upper = (np.asarray(b, dtype=np.float64) for b in bounds)
    span = np.where(upper - lower > 0, upper - lower, 1.0)
    N = bucket_size(max(n, capacity or 0))
    mask = np.zeros((N, Y.shape[1]))
    mask[:n] = np.isfinite(Y)
    Xp = np.zeros((N, d))
    Xp[:n] = X
    Yp = np.zeros((N, Y.shape[1]))
    Yp[:n] = np.where(np.isfinite(Y), Y, 0.0)
    return Xp, Yp, mask, lower, span


def pad_points(X, dim: int):
    """A point set padded to a bucket, and its mask: what an acquisition holds.

    X: (n, dim) encoded points (n may be 0). Returns jax arrays (N, dim) and
    (N,) bool. Padding repeats a real row when there is one (the middle of the
    cube otherwise), so every padded row is a valid point.
    """
    X = np.asarray(X, np.float64).reshape(-1, dim)
    n = len(X)
    size = bucket_size(max(n, 1), minimum=MIN_POINT_BUCKET)
    fill = X[:1] if n else np.full((1, dim), 0.5)
    Xp = np.concatenate([X, np.repeat(fill, size - n, axis=0)])
    mask = np.arange(size) < n
    return jnp.asarray(Xp), jnp.asarray(mask)


__all__ = ["MIN_BUCKET", "MIN_POINT_BUCKET", "bucket_size", "pad_observations", "pad_points",
           "standardise"]
