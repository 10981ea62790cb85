"""Posterior moments of any surrogate in one compiled call."""

from __future__ import annotations

import jax
from jax import Array

from surrogates.protocol import Surrogate


@jax.jit
def posterior_moments(model: Surrogate, X: Array) -> tuple[Array, Array]:
    """Posterior mean and variance, (q, m) each, at X: (q, d) encoded points.

    One jitted program per model structure and q, instead of one dispatch per
    small operation of ``model.posterior`` when called eagerly.
    """
    post = model.posterior(X)
    return post.mean, post.variance


__all__ = ["posterior_moments"]
