"""Spread independent work (ensemble members, candidate chunks) over the local devices.

One 1-D ``jax.sharding.Mesh`` over the devices, with the leading axis of the
work split along it (``NamedSharding(mesh, P("devices"))``). The leading axis
is padded to a multiple of the device count with copies of its last entry
(real inputs, so no NaN appears), and the padding is dropped afterwards. On
one device every function here is a no-op and the single-device programs run
unchanged.

Sharded and single-device results agree to float rounding: the same
operations run per member or per row, but XLA may fuse a (k, ...) batch
differently from a (2k, ...) one, which changes the last bit of a sum.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "devices"


def device_mesh(devices: Sequence | None = None) -> Mesh | None:
    """A 1-D mesh over ``devices`` (default: ``jax.devices()``); None for one device."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices: got an empty list; expected at least one JAX device")
    return Mesh(np.array(devices), (AXIS,)) if len(devices) > 1 else None


def leading(mesh: Mesh) -> NamedSharding:
    """Split the leading axis over the mesh, replicate the rest."""
    return NamedSharding(mesh, PartitionSpec(AXIS))


def padded_size(n: int, mesh: Mesh | None) -> int:
    """n rounded up to a multiple of the mesh's device count."""
    parts = 1 if mesh is None else mesh.size
    return -(-n // parts) * parts


def pad_leading(x, size: int):
    """x with its leading axis padded to ``size`` by repeating the last entry."""
    extra = size - x.shape[0]
    if extra <= 0:
        return x
    return jnp.concatenate([x, jnp.repeat(x[-1:], extra, axis=0)])


def shard_leading(tree, mesh: Mesh | None, size: int | None = None):
    """Every array of ``tree`` padded to ``size`` rows and placed split over ``mesh``."""
    if mesh is None:
        return tree
    return jax.tree.map(
        lambda a: jax.device_put(pad_leading(a, size or a.shape[0]), leading(mesh)), tree)


def shard_map(fn, mesh: Mesh):
    """``fn`` applied to each device's block of the leading axis (in and out)."""
    spec = PartitionSpec(AXIS)
    if hasattr(jax, "shard_map"):
        return jax.shard_map(fn, mesh=mesh, in_specs=spec, out_specs=spec)
    from jax.experimental.shard_map import shard_map as legacy  # JAX < 0.7

    return legacy(fn, mesh=mesh, in_specs=spec, out_specs=spec)


__all__ = ["AXIS", "device_mesh", "leading", "pad_leading", "padded_size", "shard_leading",
           "shard_map"]
