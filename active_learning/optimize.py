"""Maximising an acquisition function over the encoded domain.

Multi-start projected gradient ascent: score many quasi-random points, start
from the best, climb all starts at once (they are rows of one batch, so one
posterior call serves them all), round to valid integer and categorical
values, and keep the best valid point. Everything runs in one compiled call.
"""

from __future__ import annotations


import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import Array

from active_learning.domain import Domain


def _kronecker_constants(d: int) -> Array:
    """Additive-recurrence (R_d) constants: 1/phi_d^(j+1), phi_d the root of x^(d+1) = x + 1."""
    phi = 2.0
    for _ in range(50):
        phi = (1.0 + phi) ** (1.0 / (d + 1))
    return jnp.asarray([(1.0 / phi) ** (j + 1) % 1.0 for j in range(d)])


def quasi_random(key: Array, n: int, d: int) -> Array:
    """n low-discrepancy points in [0, 1]^d: the R_d sequence with a random shift."""
    shift = jax.random.uniform(key, (d,))
    i = jnp.arange(1, n + 1, dtype=jnp.float64)[:, None]
    return (shift + i * _kronecker_constants(d)) % 1.0


@eqx.filter_jit
def _maximize(acquisition, key, domain: Domain, raw_samples: int, num_restarts: int,
              steps: int, learning_rate: float):
    raw = quasi_random(key, raw_samples, domain.dim)
    raw_values = acquisition(raw)
    raw_values = jnp.where(jnp.isfinite(raw_values), raw_values, -jnp.inf)
    top = jnp.argsort(-raw_values)[:num_restarts]
    X0 = raw[top]

    def total(X):
        return jnp.sum(acquisition(X))

    schedule = optax.cosine_decay_schedule(learning_rate, steps, alpha=0.05)
    opt = optax.adam(schedule)

    def step(carry, _):
        X, state = carry
        g = jax.grad(total)(X)
        g = jnp.where(jnp.isfinite(g), g, 0.0)
        updates, state = opt.update(-g, state, X)
        X = jnp.clip(optax.apply_updates(X, updates), 0.0, 1.0)
        return (X, state), None

    (X, _), _ = jax.lax.scan(step, (X0, opt.init(X0)), None, length=steps)
    # Candidates: the optima and their starts, all rounded to valid points.
    candidates = domain.snap(jnp.concatenate([X, X0], axis=0))
    values = acquisition(candidates)
    values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
    best = jnp.argmax(values)
    return candidates[best], values[best]


def maximize_acquisition(
    acquisition: eqx.Module,
    domain: Domain,
    key: Array,
    *,
    raw_samples: int = 1024,
    num_restarts: int = 16,
    steps: int = 100,
    learning_rate: float = 0.05,
) -> tuple[Array, Array]:
    """The best valid point found for ``acquisition`` and its value.

    acquisition: maps (q, dim) encoded points to (q,) values;
    raw_samples: quasi-random points scored to pick the starts;
    num_restarts: starts climbed together; steps: Adam steps per start.
    Returns x: (dim,) and its acquisition value ().
    """
    if num_restarts > raw_samples:
        raise ValueError(
            f"num_restarts ({num_restarts}) cannot exceed raw_samples ({raw_samples})"
        )
    return _maximize(acquisition, key, domain, raw_samples, num_restarts, steps,
                     learning_rate)


__all__ = ["maximize_acquisition", "quasi_random"]
