"""Context columns: parameters that are measured, not chosen.

An experiment's ambient humidity or feedstock batch is known when the next
point is proposed but cannot be set. ``FixedColumns`` lets an optimiser work on
the free columns while the acquisition sees full points, with the context
values as array leaves: a new context value reuses the compiled program.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax import Array


class FixedColumns(eqx.Module):
    """``acquisition`` on full points built from free columns and fixed values.

    free: (k,) indices of the optimised columns; fixed: (d - k,) indices of the
    held columns; values: (d - k,) their encoded values; dim: d.
    Z: (b, k) or (b, q, k) -> acquisition of the (b, [q,] d) full points.
    """

    acquisition: eqx.Module
    values: Array
    free: tuple[int, ...] = eqx.field(static=True)
    fixed: tuple[int, ...] = eqx.field(static=True)
    dim: int = eqx.field(static=True)

    def __init__(self, acquisition, free, fixed, values, dim: int):
        self.acquisition = acquisition
        self.free = tuple(int(j) for j in free)
        self.fixed = tuple(int(j) for j in fixed)
        self.values = jnp.asarray(values, jnp.float64)
        self.dim = int(dim)

    def full(self, Z: Array) -> Array:
        """Free-column points -> full encoded points."""
        out = jnp.zeros(Z.shape[:-1] + (self.dim,), Z.dtype)
        out = out.at[..., jnp.asarray(self.free)].set(Z)
        return out.at[..., jnp.asarray(self.fixed)].set(
            jnp.broadcast_to(self.values, Z.shape[:-1] + (len(self.fixed),)).astype(Z.dtype))

    def __call__(self, Z: Array) -> Array:
        return self.acquisition(self.full(Z))


__all__ = ["FixedColumns"]
