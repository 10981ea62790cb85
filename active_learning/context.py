"""Held columns: parameters that are measured, not chosen, or fixed by the caller.

An experiment's ambient humidity or feedstock batch is known when the next
point is proposed but cannot be set; a multi-task campaign proposes for one
task. Such columns are held at given encoded values, ``fixed: {column:
value}``: :func:`reduce_domain` gives the domain over the free columns, an
optimiser searches it, :class:`FixedColumns` lets the acquisition see full
points meanwhile (inside compiled code, with the values as array leaves, so a
new value reuses the compiled program), and :func:`expand` turns the chosen
free-column points back into full ones on the host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from active_learning.domain import Cardinality, Domain


def reduce_domain(domain: Domain, fixed: dict[int, float]) -> tuple[Domain, np.ndarray]:
    """The domain over the free columns when ``fixed`` columns hold given values.

    Returns (reduced Domain, (k,) free column indices). Linear rows keep their
    free part, with the fixed part moved to the right-hand side; integer columns
    and one-hot groups that are wholly free keep their roles.
    """
    free = [j for j in range(domain.dim) if j not in fixed]
    where = {j: i for i, j in enumerate(free)}

    def rows(rs):
        out = []
        for coeffs, rhs in rs:
            rhs = rhs - sum(coeffs[j] * v for j, v in fixed.items())
            out.append((tuple(coeffs[j] for j in free), rhs))
        return tuple(out)

    integer = tuple((where[c], lv) for c, lv in domain.integer if c in where)
    onehot = tuple(tuple(where[c] for c in g) for g in domain.onehot
                   if all(c in where for c in g))
    cardinality = []
    for c in domain.cardinality:
        # A held column that is present counts against the bounds.
        held = sum(1 for j in c.columns if j in fixed and fixed[j] != 0.0)
        cols = tuple(where[j] for j in c.columns if j in where)
        if held > c.max_count:
            raise ValueError(f"cardinality: the held values already make {held} columns"
                             f" present; expected at most {c.max_count}")
        low = min(max(c.min_count - held, 0), len(cols))
        if c.min_count - held > len(cols):
            raise ValueError(f"cardinality: at most {held + len(cols)} columns can be present"
                             f" with the held values; expected at least {c.min_count}")
        if cols:
            cardinality.append(Cardinality(cols, low, c.max_count - held))
    nonlinear = tuple(Held(g, tuple(free), tuple(sorted(fixed.items())), domain.dim)
                      for g in domain.nonlinear)
    return Domain(dim=len(free), integer=integer, onehot=onehot,
                  equalities=rows(domain.equalities),
                  inequalities=rows(domain.inequalities), nonlinear=nonlinear,
                  cardinality=tuple(cardinality)), np.asarray(free)


@dataclass(frozen=True)
class Held:
    """A nonlinear constraint of full points seen from the free columns: equal (and
    hashed) by value, so the same held values reuse compiled code."""

    g: Callable
    free: tuple[int, ...]
    fixed: tuple[tuple[int, float], ...]
    dim: int

    def __call__(self, Z):
        out = jnp.zeros(Z.shape[:-1] + (self.dim,), Z.dtype)
        out = out.at[..., jnp.asarray(self.free)].set(Z)
        for j, v in self.fixed:
            out = out.at[..., j].set(v)
        return self.g(out)


def expand(Z, free: np.ndarray, fixed: dict[int, float], dim: int) -> np.ndarray:
    """Free-column points Z: (n, k) -> full encoded points (n, dim), on the host."""
    Z = np.atleast_2d(np.asarray(Z, np.float64))
    out = np.zeros((Z.shape[0], dim))
    out[:, free] = Z
    for j, v in fixed.items():
        out[:, j] = v
    return out


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

    @classmethod
    def holding(cls, acquisition, free: np.ndarray, fixed: dict[int, float], dim: int):
        """``acquisition`` with the ``fixed`` columns held (itself when none are)."""
        if not fixed:
            return acquisition
        return cls(acquisition, jnp.asarray(free), jnp.asarray(sorted(fixed)),
                   jnp.asarray([fixed[j] for j in sorted(fixed)]), dim)

    def full(self, Z: Array) -> Array:
        """Free-column points -> full encoded points."""
        out = jnp.zeros(Z.shape[:-1] + (self.dim,), Z.dtype)
        out = out.at[..., jnp.asarray(self.free)].set(Z)
        return out.at[..., jnp.asarray(self.fixed)].set(
            jnp.broadcast_to(self.values, Z.shape[:-1] + (len(self.fixed),)).astype(Z.dtype))

    def __call__(self, Z: Array) -> Array:
        return self.acquisition(self.full(Z))


__all__ = ["FixedColumns", "Held", "expand", "reduce_domain"]
