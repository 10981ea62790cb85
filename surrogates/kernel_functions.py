"""The functions the kernel classes of :mod:`surrogates.kernels` are built from:
squared distances with a cheap exact derivative, the closed-form Matérn-5/2
covariance, the Kumaraswamy CDF of input warping, and the normal priors on
unconstrained hyperparameters.

Inputs are scaled to the unit cube: X1: (n, d), X2: (p, d); distances and
Gram matrices are (n, p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = [
    "FLAT_LENGTHSCALE_PRIOR", "LOG_PERIOD_PRIOR", "LOG_PERIODIC_LENGTHSCALE_PRIOR",
    "LOG_VARIANCE_PRIOR", "LOG_WARP_PRIOR", "LOG_WEIGHT_PRIOR", "MIN_SQ_DIST", "Params",
    "float64_full", "kumaraswamy_cdf", "lengthscale_prior", "lengthscale_priors", "matern52",
    "matern52_profile", "normal_logpdf", "scaled_sq_dist", "sq_dist",
]

Params = Any  # a pytree of unconstrained arrays

# Below this squared distance the Matérn's derivative in r is zero; clamping
# keeps the gradient of sqrt at r = 0 from turning into 0 * inf = NaN.
MIN_SQ_DIST = 1e-36
_LOG_2PI = math.log(2.0 * math.pi)
# Kumaraswamy warping clips inputs away from 0 and 1, where x^a has an
# infinite derivative in a.
_WARP_EPS = 1e-9

# Priors on unconstrained values: (location, scale) of a normal.
LOG_VARIANCE_PRIOR = (0.0, 1.0)
LOG_WEIGHT_PRIOR = (0.0, 1.5)  # categorical: correlation exp(-w) between categories
LOG_PERIOD_PRIOR = (math.log(0.5), 1.0)  # unit-cube units
LOG_PERIODIC_LENGTHSCALE_PRIOR = (0.0, 1.0)
LOG_WARP_PRIOR = (0.0, math.sqrt(0.75))  # Kumaraswamy a, b near 1 (as BoTorch's Warp)


def float64_full(shape: tuple[int, ...], value: float) -> Array:
    """An array of ``shape`` filled with ``value``, float64: a kernel's initial parameters."""
    # A strongly typed float64 leaf (a weakly typed one compiles a second
    # program), built by numpy: an eager jnp.full is a compiled program too.
    return jnp.asarray(np.full(shape, value, dtype=np.float64))


def lengthscale_prior(d: int) -> tuple[float, float]:
    """Location and scale of the dimension-scaled normal prior on log length-scales
    of d columns (Hvarfner et al., 2024): the median length-scale grows like
    sqrt(d). The GP kernels use it for descriptor columns (``lengthscale_priors``);
    the multi-task and multi-fidelity models for every column.
    """
    return math.sqrt(2.0) + 0.5 * math.log(d), math.sqrt(3.0)


# The prior on the log length-scale of a column that measures a quantity of its
# own (a parameter's column): mode 1 in unit-cube units whatever the dimension.
# It is the normal with the curvature, at its mode, of Optuna's GPSampler prior
# -(0.1 / lam + 0.1 lam) on lam = l^-2: -0.2 cosh(2 log l), so scale 1 / sqrt(0.8).
FLAT_LENGTHSCALE_PRIOR = (0.0, 1.0 / math.sqrt(0.8))


def lengthscale_priors(k: int, descriptor_columns: Sequence[int] = ()
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per-column location and scale, each (k,), of the normal prior on log length-scales.

    A parameter's own column gets ``FLAT_LENGTHSCALE_PRIOR``: each may matter on
    the scale of the unit cube, in any dimension. The ``descriptor_columns``
    (positions among the k) describe one quantity together, a substance's
    one-hot, descriptors or fingerprint bits, so a distance between two
    substances sums over many of them; they share the dimension-scaled prior
    over their number (``lengthscale_prior``), which keeps substances close
    enough that what is learned about one carries over to similar ones.
    """
    loc = np.full(k, FLAT_LENGTHSCALE_PRIOR[0])
    scale = np.full(k, FLAT_LENGTHSCALE_PRIOR[1])
    cols = sorted({int(c) for c in descriptor_columns})
    if cols:
        if not 0 <= cols[0] <= cols[-1] < k:
            raise ValueError(f"descriptor columns {cols} out of range for {k} columns")
        loc[cols], scale[cols] = lengthscale_prior(len(cols))
    return loc, scale


def normal_logpdf(x: Array, loc: float | Array, scale: float | Array) -> Array:
    """Elementwise log density of N(loc, scale^2)."""
    z = (x - loc) / scale
    return -0.5 * z * z - np.log(scale) - 0.5 * _LOG_2PI


@jax.custom_jvp
def sq_dist(A: Array, B: Array) -> Array:
    """Squared Euclidean distances between rows: A (n, k), B (p, k) -> (n, p).

    The difference form is exact for nearby points, where the expanded GEMM
    form cancels catastrophically. Its derivative, though, is written in the
    GEMM form (a linear map of the tangents, so reverse mode transposes it
    into two matrix products): autodiff of the difference form would
    materialise (n, p, k) arrays and cost as much as a Cholesky at n = 1000.
    """
    # Column by column: XLA vectorises (n, p) planes well and a reduction over
    # a short minor axis of an (n, p, k) array badly.
    out = jnp.zeros((A.shape[0], B.shape[0]), dtype=jnp.result_type(A, B))
    for j in range(A.shape[-1]):
        diff = A[:, j, None] - B[None, :, j]
        out = out + diff * diff
    return out


@sq_dist.defjvp
def _sq_dist_jvp(primals, tangents):
    A, B = primals
    dA, dB = tangents
    t = jnp.sum(A * dA, axis=-1)[:, None] + jnp.sum(B * dB, axis=-1)[None, :]
    return sq_dist(A, B), 2.0 * (t - dA @ B.T - A @ dB.T)


def scaled_sq_dist(X1: Array, X2: Array, lengthscale: Array) -> Array:
    """Squared distances after dividing each dimension by its length-scale.

    X1: (n, d), X2: (p, d), lengthscale: (d,). Returns (n, p).
    """
    return sq_dist(X1 / lengthscale, X2 / lengthscale)


def matern52_profile(r2: Array) -> Array:
    """Unit-variance Matérn-5/2 of squared scaled distances r2, elementwise (any shape)."""
    r = jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST))
    s5r = math.sqrt(5.0) * r
    return (1.0 + s5r + (5.0 / 3.0) * r2) * jnp.exp(-s5r)


def matern52(X1: Array, X2: Array, lengthscale: Array, variance: Array) -> Array:
    """Matérn-5/2 ARD covariance.

    k(r) = s (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r), r the scaled distance.
    X1: (n, d), X2: (p, d), lengthscale: (d,), variance: (). Returns (n, p).
    """
    return variance * matern52_profile(scaled_sq_dist(X1, X2, lengthscale))



def kumaraswamy_cdf(x: Array, log_a: Array, log_b: Array) -> Array:
    """1 - (1 - x^a)^b on x clipped into (0, 1); the identity at a = b = 1."""
    x = jnp.clip(x, _WARP_EPS, 1.0 - _WARP_EPS)
    return 1.0 - (1.0 - x ** jnp.exp(log_a)) ** jnp.exp(log_b)

