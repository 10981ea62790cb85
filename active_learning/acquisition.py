"""Acquisition functions over the surrogate protocol.

An acquisition is a small ``equinox.Module`` holding what it needs (the fitted
model, the incumbent) and mapping encoded points ``X: (q, d)`` to values
``(q,)``, larger is better. Expected improvement is computed in log space
(after Ament et al., 2023, "Unexpected improvements to expected improvement"):
plain EI underflows to exactly zero a few standard deviations away from the
incumbent and its gradient vanishes with it, which leaves a gradient-based
optimiser stranded.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import ndtr

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Below this z, phi(z) + z Phi(z) loses relative accuracy to cancellation
# (error ~ eps z^2) and we switch to its asymptotic series.
_TAIL = -20.0


def _log_phi(z: Array) -> Array:
    return -0.5 * z * z - _LOG_SQRT_2PI


def log_h(z: Array) -> Array:
    """log(phi(z) + z Phi(z)), accurate and with exact slope for every z.

    EI = sigma * h((mu - best) / sigma). For z <= -20 uses
    h(z) = phi(z) / z^2 * (1 - 3/z^2 + 15/z^4 - ...), whose truncation
    error there is below 1e-12.
    """
    z_mid = jnp.maximum(z, _TAIL)
    phi = jnp.exp(_log_phi(z_mid))
    direct = jnp.log(phi + z_mid * ndtr(z_mid))
    z_tail = jnp.minimum(z, _TAIL)
    u = 1.0 / (z_tail * z_tail)
    # Horner form of sum_k (-1)^k (2k+1)!! u^k, k = 0..7.
    coefficients = (-2027025.0, 135135.0, -10395.0, 945.0, -105.0, 15.0, -3.0, 1.0)
    series = jnp.zeros_like(u)
    for c in coefficients:
        series = series * u + c
    tail = _log_phi(z_tail) - jnp.log(z_tail * z_tail) + jnp.log(series)
    return jnp.where(z > _TAIL, direct, tail)


def expected_improvement(mean: Array, std: Array, best: Array) -> Array:
    """Closed-form EI for maximisation: E[max(f - best, 0)], f ~ N(mean, std^2)."""
    z = (mean - best) / std
    return std * (jnp.exp(_log_phi(z)) + z * ndtr(z))


def log_expected_improvement_from_moments(mean: Array, std: Array, best: Array) -> Array:
    """log EI for maximisation, finite wherever std > 0."""
    return log_h((mean - best) / std) + jnp.log(std)


class LogExpectedImprovement(eqx.Module):
    """log EI of one output of a surrogate, in the direction of maximisation.

    model: any surrogate with ``posterior(X)``; best: the incumbent value in
    the model's output units; output: which output; sign: +1 to maximise the
    output, -1 to minimise it.
    """

    model: eqx.Module
    best: Array
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)

    def __call__(self, X: Array) -> Array:
        post = self.model.posterior(X)
        mean = self.sign * post.mean[:, self.output]
        std = jnp.sqrt(post.variance[:, self.output])
        return log_expected_improvement_from_moments(mean, std, self.sign * self.best)


class UpperConfidenceBound(eqx.Module):
    """mean + beta^(1/2) std (sign-adjusted): optimism in the face of uncertainty."""

    model: eqx.Module
    beta: float = 4.0
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)

    def __call__(self, X: Array) -> Array:
        post = self.model.posterior(X)
        return self.sign * post.mean[:, self.output] + jnp.sqrt(
            self.beta * post.variance[:, self.output]
        )
