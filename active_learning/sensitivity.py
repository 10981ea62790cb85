"""Global sensitivity: first-order and total Sobol indices by Saltelli's design.

For a function f of independent inputs uniform on [0, 1]^d, split into g groups
of columns (a categorical's one-hot columns are one group), the first-order
index S1_j is the share of Var f explained by group j alone, the total index
ST_j the share in which group j takes part at all (alone or with others).

Estimators on two independent quasi-random matrices A and B (n, d) and the g
matrices AB_j (A with group j's columns taken from B):

    S1_j = mean(f(B) * (f(AB_j) - f(A))) / V        (Saltelli et al. 2010)
    ST_j = mean((f(A) - f(AB_j))^2) / (2 V)         (Jansen 1999)

with V the variance of [f(A), f(B)]. Outputs are centred on the mean of all
evaluations first (as SALib does), which lowers the first-order estimator's
variance. Evaluation points are stacked ``[A; B; AB_1; ...; AB_g]``:
``n (g + 2)`` rows.

Shapes: ``n`` base rows, ``d`` columns, ``g`` groups, ``s`` output series
(outputs or posterior draws).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

__all__ = ["SobolIndices", "saltelli_design", "saltelli_points", "sobol_indices",
           "sobol_sensitivity"]


class SobolIndices(NamedTuple):
    """first_order, total: (..., g) indices per group; variance: (...,) Var f."""

    first_order: Array
    total: Array
    variance: Array


def saltelli_design(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A and B, (n, d) each: the two halves of an n-point scrambled Sobol sequence in
    2d dimensions (so A and B are independent and each low-discrepancy). n is best a
    power of two."""
    if n < 2:
        raise ValueError(f"n: got {n}; expected at least 2 base rows")
    from scipy.stats import qmc  # here: off the import path of a fresh process

    engine = qmc.Sobol(d=2 * d, scramble=True, seed=np.random.default_rng(seed))
    with warnings.catch_warnings():  # n not a power of two: still unbiased
        warnings.filterwarnings("ignore", message=".*balance properties.*")
        AB = engine.random(n)
    return AB[:, :d], AB[:, d:]


def saltelli_points(A: np.ndarray, B: np.ndarray,
                    groups: Sequence[Sequence[int]]) -> np.ndarray:
    """The evaluation points ``[A; B; AB_1; ...; AB_g]``: (n (g + 2), d).

    A, B: (n, d); groups: the columns of each group (disjoint)."""
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    blocks = [A, B]
    for cols in groups:
        AB = A.copy()
        AB[:, list(cols)] = B[:, list(cols)]
        blocks.append(AB)
    return np.concatenate(blocks)


def _one_series(y: Array, n: int) -> SobolIndices:
    y = y - jnp.mean(y)
    blocks = y.reshape(-1, n)                  # (g + 2, n)
    fA, fB, fAB = blocks[0], blocks[1], blocks[2:]
    V = jnp.var(jnp.concatenate([fA, fB]))
    safe = jnp.where(V > 0, V, 1.0)
    first = jnp.mean(fB * (fAB - fA), axis=-1) / safe
    total = 0.5 * jnp.mean((fA - fAB) ** 2, axis=-1) / safe
    zero = jnp.zeros_like(first)
    return SobolIndices(jnp.where(V > 0, first, zero), jnp.where(V > 0, total, zero), V)


# One compiled program per (series count, length, n): the estimator vmapped over series.
_batched = jax.jit(jax.vmap(_one_series, in_axes=(0, None)), static_argnums=1)


def sobol_indices(Y: Array, n: int) -> SobolIndices:
    """Sobol indices of each series of evaluations.

    Y: (..., n (g + 2)) values at ``saltelli_points`` (any leading dims: outputs,
    posterior draws); n: base rows. Returns indices (..., g) and variance (...,).
    A constant series has indices 0.
    """
    Y = jnp.asarray(Y, jnp.float64)
    if Y.shape[-1] % n or Y.shape[-1] // n < 3:
        raise ValueError(f"Y: got {Y.shape[-1]} evaluations per series; expected"
                         f" n (g + 2) with n = {n} and g >= 1")
    lead = Y.shape[:-1]
    flat = Y.reshape(-1, Y.shape[-1])
    out = _batched(flat, n)
    return SobolIndices(*(a.reshape(lead + a.shape[1:]) for a in out))


def sobol_sensitivity(f: Callable[[Array], Array], d: int,
                      groups: Sequence[Sequence[int]] | None = None, *, n: int = 1024,
                      seed: int = 0) -> SobolIndices:
    """Sobol indices of f over the unit cube [0, 1]^d.

    f: (N, d) -> (N,) or (N, s) (several outputs at once); groups: columns of each
    group (default: one group per column); n: base rows of the Saltelli design
    (evaluations: n (g + 2)); seed: the scrambled Sobol sequence's. Returns
    indices (g,) or (s, g).
    """
    groups = [[j] for j in range(d)] if groups is None else [list(c) for c in groups]
    A, B = saltelli_design(n, d, seed)
    X = jnp.asarray(saltelli_points(A, B, groups))
    Y = jnp.asarray(f(X))
    if Y.ndim == 2:
        Y = Y.T
    return sobol_indices(Y, n)
