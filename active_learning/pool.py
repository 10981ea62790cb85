"""Acquisition over a finite candidate pool (a library of molecules, a catalogue
of recipes, a grid): score every row, pick the best unused ones.

Pools can hold millions of rows, more than one acquisition call should see at
once (a GP posterior over a chunk of b rows holds a b x n cross-covariance),
so rows are scored in chunks of fixed size with ``lax.map``; the last chunk is
padded, so shapes stay static and a pool of a given size compiles once. With
several devices the chunks are split over them (``surrogates.sharding``):
each device scores its own chunks, and the values come back laid out over
the devices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import Mesh

from surrogates.sharding import device_mesh, leading, padded_size, shard_map


def _chunk_size(n: int, chunk: int) -> int:
    """The chunk actually used: ``chunk``, or the next power of two above n if smaller."""
    return int(min(chunk, 1 << max(n - 1, 0).bit_length()))


@eqx.filter_jit
def _score_chunks(acquisition, candidates: Array, size: int, mesh: Mesh | None) -> Array:
    n = candidates.shape[0]
    n_chunks = padded_size(-(-n // size), mesh)  # every device gets as many chunks
    pad = n_chunks * size - n
    if pad:
        # Pad with copies of the last row: real inputs, so no NaN leaks in.
        filler = jnp.broadcast_to(candidates[-1:], (pad,) + candidates.shape[1:])
        candidates = jnp.concatenate([candidates, filler])
    chunks = candidates.reshape((n_chunks, size) + candidates.shape[1:])
    if mesh is None:
        values = lax.map(acquisition, chunks).reshape(-1)[:n]
    else:
        chunks = lax.with_sharding_constraint(chunks, leading(mesh))
        values = shard_map(lambda c: lax.map(acquisition, c).reshape(-1), mesh)(chunks)[:n]
    values = jnp.where(jnp.isfinite(values), values, -jnp.inf)
    if mesh is not None and n % mesh.size == 0:  # an uneven split would be replicated
        values = lax.with_sharding_constraint(values, leading(mesh))
    return values


def score_pool(acquisition: Callable[[Array], Array], candidates, chunk: int = 65536,
               devices: Sequence | None = None) -> Array:
    """Acquisition values of every candidate, ``chunk`` rows at a time.

    acquisition: maps (b, ...) rows to (b,) values (``(b, d)`` for pointwise
    acquisitions, ``(b, q, d)`` for batch ones); candidates: (N, ...) rows;
    chunk: rows per acquisition call (bounds memory); devices: where to score
    (default ``jax.devices()``): with several, the chunks are split over them
    and the result is laid out over them when N is a multiple of their
    number. Non-finite values become -inf. Returns (N,).
    """
    candidates = jnp.asarray(candidates)
    if candidates.shape[0] == 0:
        return jnp.zeros((0,), candidates.dtype)
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    mesh = device_mesh(devices)
    per_device = -(-candidates.shape[0] // (1 if mesh is None else mesh.size))
    return _score_chunks(acquisition, candidates, _chunk_size(per_device, chunk), mesh)


def best_in_pool(
    acquisition: Callable[[Array], Array],
    candidates,
    q: int,
    exclude_mask=None,
    *,
    chunk: int = 65536,
    update: Callable | None = None,
    devices: Sequence | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The q best candidates, never one that is excluded.

    candidates: (N, d) pool; q: how many to pick; exclude_mask: (N,) bool,
    True for rows already observed or pending; update: optional
    ``update(acquisition, x (d,)) -> acquisition`` applied after each pick
    (e.g. conditioning the model on a believed outcome), in which case the
    pool is re-scored before the next pick; without it the picks are the
    top q of one scoring; devices: as in ``score_pool``. Returns indices (q,)
    int and their values (q,).
    """
    candidates = jnp.asarray(candidates)
    n = candidates.shape[0]
    excluded = np.zeros(n, bool) if exclude_mask is None else np.array(exclude_mask, bool)
    if excluded.shape != (n,):
        raise ValueError(f"exclude_mask: expected shape ({n},), got {excluded.shape}")
    if q > n - excluded.sum():
        raise ValueError(f"asked for {q} candidates; only {n - excluded.sum()} are not excluded")
    if update is None:
        values = score_pool(acquisition, candidates, chunk, devices)
        # Rank unusable (-inf) rows above excluded ones, so an excluded row is
        # never picked while another remains.
        lowest = jnp.finfo(values.dtype).min
        ranking = jnp.where(jnp.asarray(excluded), -jnp.inf, jnp.maximum(values, lowest))
        _, top = lax.top_k(ranking, q)
        return np.asarray(top), np.asarray(values[top])
    picks, picked_values = [], []
    for _ in range(q):  # sequential by definition: each pick changes the next scores
        values = np.asarray(score_pool(acquisition, candidates, chunk, devices))
        ranking = np.where(excluded, -np.inf, np.maximum(values, np.finfo(values.dtype).min))
        i = int(np.argmax(ranking))
        picks.append(i)
        picked_values.append(values[i])
        excluded[i] = True
        acquisition = update(acquisition, candidates[i])
    return np.asarray(picks), np.asarray(picked_values)


__all__ = ["best_in_pool", "score_pool"]
