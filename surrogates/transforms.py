"""Input transforms in front of any surrogate.

``InputTransformed`` fits and queries a model on ``transform(X)`` while callers
keep passing encoded points, so acquisitions, fantasies and optimisers see the
usual protocol. ``SimplexFeatures`` appends descriptors of compositions:
fraction-weighted means and spreads of element properties, which let a model
generalise across element sets (Ward et al., npj Comput. Mater. 2016).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array


class SimplexFeatures(eqx.Module):
    """Encoded points (..., d) -> (..., d + 2 f): appends, per property, the
    fraction-weighted mean and standard deviation over a composition's elements,
    scaled to [0, 1] by their ranges over the simplex.

    columns: (k,) encoded columns of the k element fractions; lows, spans: (k,)
    fraction = low + span * z; properties: (k, f) element property table.
    """

    lows: Array
    spans: Array
    properties: Array
    columns: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, columns, lows, spans, properties):
        self.columns = tuple(int(c) for c in columns)
        self.lows = jnp.asarray(lows, jnp.float64)
        self.spans = jnp.asarray(spans, jnp.float64)
        self.properties = jnp.asarray(properties, jnp.float64)

    def __call__(self, X: Array) -> Array:
        z = X[..., jnp.asarray(self.columns)]
        fractions = self.lows + self.spans * z
        fractions = fractions / jnp.sum(fractions, axis=-1, keepdims=True)
        P = self.properties
        p_min, p_max = jnp.min(P, axis=0), jnp.max(P, axis=0)
        width = jnp.where(p_max > p_min, p_max - p_min, 1.0)
        mean = fractions @ P
        var = jnp.einsum("...k,...kf->...f", fractions, (P - mean[..., None, :]) ** 2)
        # sqrt is not differentiable at 0 (a pure element): a tiny floor keeps gradients finite.
        std = jnp.sqrt(var + 1e-12)
        return jnp.concatenate([X, (mean - p_min) / width, 2.0 * std / width], axis=-1)


class OneHotFeatures(eqx.Module):
    """Encoded points (..., d) -> (..., d + f): appends the feature row of the chosen
    category (one-hot columns times a (k, f) table; a relaxed one-hot, as the
    optimiser sees between rounding steps, mixes rows smoothly)."""

    table: Array
    columns: tuple[int, ...] = eqx.field(static=True)

    def __init__(self, columns, table):
        self.columns = tuple(int(c) for c in columns)
        self.table = jnp.asarray(table, jnp.float64)

    def __call__(self, X: Array) -> Array:
        return jnp.concatenate([X, X[..., jnp.asarray(self.columns)] @ self.table], axis=-1)


class Chain(eqx.Module):
    """Transforms applied one after the other."""

    transforms: tuple

    def __call__(self, X: Array) -> Array:
        for t in self.transforms:
            X = t(X)
        return X


class InputTransformed(eqx.Module):
    """``model`` queried on ``transform(X)``: the surrogate protocol on encoded points."""

    model: eqx.Module
    transform: eqx.Module

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    def posterior(self, Xq: Array, full_cov: bool = False):
        return self.model.posterior(self.transform(Xq), full_cov=full_cov)

    def condition(self, Xnew: Array, Ynew: Array) -> "InputTransformed":
        return InputTransformed(self.model.condition(self.transform(Xnew), Ynew), self.transform)


class Latent(eqx.Module):
    """A model seen through its latent posterior (``observation_noise=False``): what
    acquisitions want from a deep ensemble, so that a repeated point gains nothing."""

    model: eqx.Module

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    def posterior(self, Xq: Array, full_cov: bool = False):
        return self.model.posterior(Xq, full_cov=full_cov, observation_noise=False)


__all__ = ["Chain", "InputTransformed", "Latent", "OneHotFeatures", "SimplexFeatures"]
