"""Process-wide JAX settings that have to be made before the CPU backend starts.

jaxlib 0.10 splits a batched LAPACK call on CPU (triangular solve, Cholesky, ...
over a batch of matrices, e.g. one per restart or per output) into pieces that
it queues on XLA's intra-op thread pool, and blocks the pool thread that made
the call until they are done. XLA runs the independent operations of one
program concurrently on that same pool, so when every pool thread (two on a
two-core machine) is inside such a call at once, nothing is left to run the
pieces and the program never finishes: ``block_until_ready`` waits forever at
0% CPU. An acquisition search with an outcome constraint has many independent
batched solves and hangs this way. With a pool of one thread jaxlib runs every
batch inline, so we ask for that; XLA reads the pool size from ``PJRT_NPROC``
once, when the CPU client is created. jaxlib 0.9 has no such path.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

# jaxlib releases whose CPU LAPACK kernels block a pool thread on queued pieces:
# 0.10.0 introduced it; open-source builds leave it out again from 0.11.1.
_AFFECTED = ((0, 10, 0), (0, 11, 1))


def _jaxlib_version() -> tuple[int, ...]:
    from jaxlib import version

    return tuple(version.__version_info__[:3])


def _accelerator_plugin() -> bool:
    """A GPU or TPU plugin is installed: linear algebra runs there, not in LAPACK."""
    if os.environ.get("JAX_PLATFORMS", "").strip().lower() == "cpu":
        return False
    return any(importlib.util.find_spec(name) is not None
               for name in ("jax_plugins", "jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu"))


def avoid_cpu_lapack_deadlock() -> bool:
    """Give XLA's CPU client a single intra-op thread where jaxlib can deadlock.

    Sets ``PJRT_NPROC=1`` when the installed jaxlib is affected, no accelerator
    plugin is installed and the variable is not set already (a value the user
    chose is kept). Returns True when it set it. Call before any JAX array
    exists; if the CPU backend has started already the setting cannot take
    effect, and a warning says how to set it instead.
    """
    low, high = _AFFECTED
    if "PJRT_NPROC" in os.environ or not low <= _jaxlib_version() < high:
        return False
    if _accelerator_plugin():
        return False
    os.environ["PJRT_NPROC"] = "1"
    try:
        from jax._src import xla_bridge

        started = xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a jax without this private helper
        started = False
    if started:
        warnings.warn(
            "JAX started before surrogates was imported; with this jaxlib a batched "
            "linear solve on CPU can hang. Set PJRT_NPROC=1 in the environment before "
            "starting Python.", RuntimeWarning, stacklevel=3)
    return True
