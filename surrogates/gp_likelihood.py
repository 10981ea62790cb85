"""The exact GP's negative log marginal likelihood and its gradient.

The gradient is exact and cheap for every kernel: with W = K^-1 - alpha alpha^T
formed once from the Cholesky factor, the gradient in the kernel's parameters is
the vector-Jacobian product of the Gram-matrix function with cotangent W / 2, so
nothing is differentiated through the Cholesky factorisation.

Shapes: ``N`` padded rows, ``d`` inputs; one output at a time.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.linalg import cho_solve, solve_triangular

from surrogates.gp_hyperparameters import GPHyperparameters
from surrogates.numerics import JITTER

__all__ = [
    "cholesky", "inverse_from_cholesky", "masked_gram", "negative_log_marginal_likelihood",
    "nll_grad", "nll_value", "nll_value_and_grad",
]

_LOG_2PI = math.log(2.0 * math.pi)


def _diagonal(theta: GPHyperparameters, mask: Array, noise: Array | None) -> Array:
    """Noise on observed rows, 1 on padded ones: (N,)."""
    extra = theta.noise + JITTER if noise is None else theta.noise + JITTER + noise
    return mask * extra + (1.0 - mask)


def masked_gram(theta: GPHyperparameters, X: Array, mask: Array,
                 noise: Array | None = None) -> Array:
    """Noisy Gram matrix whose padded rows and columns are the identity.

    The identity block adds nothing to log det and, with zero targets,
    nothing to the quadratic form, so padding leaves the likelihood exact.
    """
    K = theta.kernel(theta.kernel_params, X, X)
    K = K * (mask[:, None] * mask[None, :])
    return K + jnp.diag(_diagonal(theta, mask, noise))


def negative_log_marginal_likelihood(
    theta: GPHyperparameters, X: Array, y: Array, mask: Array, noise: Array | None = None
) -> Array:
    """-log p(y | X, theta) of one output over the unmasked rows.

    X: (N, d) scaled inputs; y: (N,) standardised targets; mask: (N,) 1 for data;
    noise: (N,) known extra noise variances in standardised units, or None.
    """
    return nll_value(theta, X, y, mask, noise)[0]


def cholesky(K: Array) -> Array:
    """Lower Cholesky factor of a Gram matrix (NaN where it is not positive definite).

    Factors K^T without symmetrising: LAPACK's potrf reads column-major input and
    K^T (equal to K) is K's own bytes in that layout, so XLA copies nothing in, and
    jnp.linalg.cholesky's averaging of K with K^T is a no-op for a Gram matrix built
    symmetric.
    """
    return lax.linalg.cholesky(K.T, symmetrize_input=False)


def nll_value(theta, X, y, mask, noise=None):
    """-log marginal likelihood and what its gradient reuses: (value, (L, alpha))."""
    L = cholesky(masked_gram(theta, X, mask, noise))
    r = (y - theta.mean) * mask
    alpha = cho_solve((L, True), r)
    n = jnp.sum(mask)
    value = 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * n * _LOG_2PI
    return value, (L, alpha)


# Below this size K^-1 comes from two triangular solves against the identity;
# above it, from the recursive blocking of inverse_from_cholesky.
_INVERSE_BLOCK = 128


def inverse_from_cholesky(L: Array) -> Array:
    """K^-1 for K = L L^T, L: (n, n) lower triangular; returns (n, n).

    LAPACK's potri, which JAX lacks, in two-by-two blocks
    L = [[A, 0], [B, C]]: with X = -C^-1 B A^-1 (two half-size triangular solves),
    K^-1 = [[A^-T A^-1 + X^T X, X^T C^-1], [., C^-T C^-1]], the diagonal blocks
    recursively, and X^T C^-1 = (C^-T X)^T as a third solve, so that L^-1 is never
    formed: XLA's float64 matrix products are slower than LAPACK's triangular solves.
    """
    n = L.shape[0]
    if n <= _INVERSE_BLOCK:
        Linv = solve_triangular(L, jnp.eye(n, dtype=L.dtype), lower=True)
        return Linv.T @ Linv
    h = n // 2
    A, B, C = L[:h, :h], L[h:, :h], L[h:, h:]
    KA, KC = inverse_from_cholesky(A), inverse_from_cholesky(C)
    X = -solve_triangular(C, solve_triangular(A, B.T, lower=True, trans=1).T, lower=True)
    XtC = solve_triangular(C, X, lower=True, trans=1).T
    return jnp.block([[KA + X.T @ X, XtC], [XtC.T, KC]])


def nll_grad(theta, X, y, mask, noise, L, alpha) -> GPHyperparameters:
    """Exact gradient of the -log marginal likelihood, given its Cholesky factor.

    d nll = -1/2 tr((alpha alpha^T - K^-1) dK) = 1/2 <W, dK>, W = K^-1 - alpha alpha^T:
    one K^-1 from L (about n^3 flops), then the vector-Jacobian
    product of the kernel's Gram function with cotangent W / 2 (O(n^2 d), in
    closed form for stationary kernels). Nothing is differentiated through the
    Cholesky factorisation, which ``value`` has already paid for.
    """
    mm = mask[:, None] * mask[None, :]
    if L.shape[0] <= _INVERSE_BLOCK:
        Kinv = cho_solve((L, True), jnp.eye(L.shape[0], dtype=L.dtype))
    else:
        Kinv = inverse_from_cholesky(L)
    W = (Kinv - jnp.outer(alpha, alpha)) * mm
    g_kernel = theta.kernel.gram_vjp(theta.kernel_params, X, 0.5 * W)
    g_noise = 0.5 * jnp.trace(W) * jnp.exp(theta.log_noise) if theta.learn_noise else (
        jnp.zeros_like(theta.log_noise))
    return GPHyperparameters(kernel=theta.kernel, kernel_params=g_kernel, log_noise=g_noise,
                             mean=-jnp.sum(alpha), learn_noise=theta.learn_noise,
                             noise_prior=theta.noise_prior)


def nll_value_and_grad(
    theta: GPHyperparameters, X: Array, y: Array, mask: Array, noise: Array | None = None
) -> tuple[Array, GPHyperparameters]:
    """-log marginal likelihood of one output and its exact gradient, the pair the MAP
    fit's L-BFGS steps on (one Cholesky factor serves both; see :func:`nll_grad`).

    theta: hyperparameters of one output; X: (N, d) scaled inputs; y: (N,)
    standardised outputs; mask: (N,) 1 for observed rows, 0 for padding; noise:
    (N,) known noise variances or None. Returns (a scalar, a GPHyperparameters of
    theta's shapes).
    """
    value, aux = nll_value(theta, X, y, mask, noise)
    return value, nll_grad(theta, X, y, mask, noise, *aux)
