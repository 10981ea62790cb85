"""Random walks and moves inside a polytope ``{z : G z <= h}`` (jit-able).

Shared by the acquisition optimiser (starts spread up to the boundary) and the
designs (about-uniform feasible points), which is why they sit apart from both.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax


def hit_and_run(key: Array, Z: Array, G: Array, h: Array, steps: int) -> Array:
    """Random walk that stays inside ``{z : G z <= h}`` (uniform in the limit).

    Z: (n, k) interior starts; G: (p, k) rows; h: (n, p) right-hand sides
    (one polytope per chain); steps: moves per chain. Returns (n, k).
    Each move picks a random direction and a uniform point of the chord.
    """
    if Z.shape[-1] == 0 or steps == 0:
        return Z

    def move(Z, key):
        k_dir, k_len = jax.random.split(key)
        u = jax.random.normal(k_dir, Z.shape, dtype=Z.dtype)
        u = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
        Gu = u @ G.T
        slack = jnp.maximum(h - Z @ G.T, 0.0)
        up, down = Gu > 1e-12, Gu < -1e-12
        t_hi = jnp.min(jnp.where(up, slack / jnp.where(up, Gu, 1.0), jnp.inf), axis=-1)
        t_lo = jnp.max(jnp.where(down, slack / jnp.where(down, Gu, -1.0), -jnp.inf), axis=-1)
        t = jax.random.uniform(k_len, t_hi.shape, dtype=Z.dtype, minval=t_lo, maxval=t_hi)
        return Z + t[:, None] * u, None

    Z, _ = lax.scan(move, Z, jax.random.split(key, steps))
    return Z


def shrink_into_polytope(Z: Array, G: Array, h: Array) -> Array:
    """Move each row of Z towards the interior point z = 0 until ``G z <= h`` (h > 0).

    Z: (n, k); h: (n, p). The segment from an interior point to z leaves the
    polytope at t = min h_i / (G_i z) over the violated rows, so the result is
    feasible up to rounding and equal to Z wherever Z was already feasible.
    """
    if Z.shape[-1] == 0:
        return Z
    Gz = Z @ G.T
    out = Gz > h
    ratio = jnp.where(out, h / jnp.where(out, Gz, 1.0), 1.0)
    return Z * jnp.min(ratio, axis=-1, keepdims=True)


__all__ = ["hit_and_run", "shrink_into_polytope"]
