"""Covariance functions on scaled inputs.

Kernels are plain functions of two input matrices and the unconstrained
hyperparameters, so that they compose under ``jit``, ``vmap`` and ``grad``
without hidden state.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

# Below this squared distance the Matérn's derivative in r is zero; clamping
# keeps the gradient of sqrt at r = 0 from turning into 0 * inf = NaN.
_MIN_SQ_DIST = 1e-36


def scaled_sq_dist(X1: Array, X2: Array, lengthscale: Array) -> Array:
    """Squared distances after dividing each dimension by its length-scale.

    X1: (n, d), X2: (p, d), lengthscale: (d,). Returns (n, p).
    """
    # The difference form is exact for nearby points, where the expanded
    # GEMM form cancels catastrophically; the sizes here keep (n, p, d) small.
    diff = (X1[:, None, :] - X2[None, :, :]) / lengthscale
    return jnp.sum(diff * diff, axis=-1)


def matern52(X1: Array, X2: Array, lengthscale: Array, variance: Array) -> Array:
    """Matérn-5/2 ARD covariance.

    k(r) = s (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r), r the scaled distance.
    X1: (n, d), X2: (p, d), lengthscale: (d,), variance: (). Returns (n, p).
    """
    r2 = scaled_sq_dist(X1, X2, lengthscale)
    r = jnp.sqrt(jnp.maximum(r2, _MIN_SQ_DIST))
    s5r = jnp.sqrt(5.0) * r
    return variance * (1.0 + s5r + (5.0 / 3.0) * r2) * jnp.exp(-s5r)
