"""The encoded search domain: the unit cube with integer grids and one-hot groups.

``workbench`` encodes every parameter into ``[0, 1]`` columns; this module only
knows which columns are integer-valued (with how many levels) and which groups
of columns are one-hot categorical, so that optimisers can return valid points.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
from jax import Array


@dataclass(frozen=True)
class Domain:
    """Encoded domain ``[0, 1]^dim``.

    integer: ((column, levels), ...) columns that take ``levels`` equally
    spaced values 0, 1/(levels-1), ..., 1; onehot: tuples of columns of which
    exactly one is 1. Hashable, so it can be a static argument of ``jit``.
    """

    dim: int
    integer: tuple[tuple[int, int], ...] = ()
    onehot: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        seen = [c for c, _ in self.integer] + [c for g in self.onehot for c in g]
        if len(seen) != len(set(seen)) or any(not 0 <= c < self.dim for c in seen):
            raise ValueError(f"integer and one-hot columns must be distinct and in [0, {self.dim})")
        if any(levels < 2 for _, levels in self.integer):
            raise ValueError("an integer column needs at least 2 levels")
        if any(len(g) < 1 for g in self.onehot):
            raise ValueError("a one-hot group needs at least one column")

    def snap(self, X: Array) -> Array:
        """Round relaxed points (..., dim) to valid encoded points."""
        X = jnp.clip(X, 0.0, 1.0)
        for col, levels in self.integer:
            step = levels - 1
            X = X.at[..., col].set(jnp.round(X[..., col] * step) / step)
        for group in self.onehot:
            idx = jnp.asarray(group)
            winner = jnp.argmax(X[..., idx], axis=-1)
            X = X.at[..., idx].set(jnp.eye(len(group), dtype=X.dtype)[winner])
        return X

    def snap_numpy(self, X: np.ndarray) -> np.ndarray:
        """The same rounding in numpy, for designs made outside JAX."""
        return np.asarray(self.snap(jnp.asarray(X)))
