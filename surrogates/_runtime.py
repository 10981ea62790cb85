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

import functools
import importlib.util
import os
import time
import warnings
from collections import Counter
from typing import Callable, TypeVar

_F = TypeVar("_F", bound=Callable)

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


# JAX's CPU Cholesky and triangular solves call LAPACK from SciPy's OpenBLAS. By
# default OpenBLAS starts a thread per core and its idle threads spin-wait between
# calls; XLA calls LAPACK thousands of times per fit, each a small factorisation, so
# the threads burn CPU that XLA's own work needs, several times the fit's own on a
# small machine (benchmarks/results/cold_start.md). One thread is the default here; a
# value the user sets is kept.
LAPACK_THREADS_VARIABLE = "OPENBLAS_NUM_THREADS"


def single_threaded_lapack() -> bool:
    """Hold SciPy's OpenBLAS (the LAPACK under JAX's CPU linear algebra) to one thread.

    Nothing changes when ``OPENBLAS_NUM_THREADS`` is set (a value the user chose is
    kept). Otherwise SciPy's linear algebra is loaded with the variable set to 1 (OpenBLAS
    reads it when it loads) and the variable is removed again, so that processes started
    later (command oracles, executor workers) and NumPy's own OpenBLAS keep their
    defaults. If any SciPy module was loaded before, SciPy's OpenBLAS may have been
    loaded with it, without the limit (``scipy.special`` and ``scipy.fft`` load it, and
    xarray and dask import those): ``threadpoolctl`` (a dependency) then limits that
    library alone. Returns True when it limited the threads.
    """
    import sys

    if LAPACK_THREADS_VARIABLE in os.environ:
        return False
    loaded_before = any(name.startswith("scipy.") for name in sys.modules)
    if "scipy.linalg" not in sys.modules:
        os.environ[LAPACK_THREADS_VARIABLE] = "1"
        try:
            import scipy.linalg  # noqa: F401 - loads SciPy's OpenBLAS, which reads it now
        finally:
            del os.environ[LAPACK_THREADS_VARIABLE]
        if not loaded_before:
            return True
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return False
    scipy_blas = [c for c in ThreadpoolController().lib_controllers
                  if c.internal_api == "openblas" and f"scipy.libs{os.sep}" in c.filepath]
    for controller in scipy_blas:
        controller.set_num_threads(1)
    return bool(scipy_blas)


# Every compiled XLA:CPU program that a process keeps holds dozens of memory
# maps (its kernels' code and data sections: ~60 for a GP gradient program).
# Linux caps the maps of a process at ``vm.max_map_count`` (65,530 by default);
# at the cap LLVM fails to map the next program ("Cannot allocate memory") and
# the process dies with a segmentation fault inside XLA, most often while it
# loads a program from the persistent cache. A process that keeps ~1,000
# programs reaches it: a long test worker, a lab loop that runs many campaigns.
_MAPS = "/proc/self/maps"
_MAP_LIMIT = "/proc/sys/vm/max_map_count"
_last_check = [float("-inf")]


def memory_maps() -> tuple[int, int] | None:
    """(memory maps of this process, the kernel's limit), or None where Linux's /proc is absent."""
    try:
        with open(_MAPS, "rb") as f:
            used = f.read().count(b"\n")
        with open(_MAP_LIMIT, "rb") as f:
            limit = int(f.read())
    except (OSError, ValueError):
        return None
    return used, limit


def release_programs_if_crowded(fraction: float = 0.5, min_interval_s: float = 2.0) -> bool:
    """Drop JAX's in-memory compiled programs when this process nears its memory-map limit.

    Call it between computations in a long-lived process (the campaign loop
    does, before each model proposal). When the process holds more than
    ``fraction`` of ``vm.max_map_count`` maps, ``jax.clear_caches()`` frees every
    compiled program the process keeps, and with them their maps; the next call
    of a program traces it again and loads it from the persistent compilation
    cache. Checks at most once per ``min_interval_s`` seconds (counting maps
    reads all of /proc/self/maps, which grows with them). Returns True when it
    released.
    """
    now = time.monotonic()
    if now - _last_check[0] < min_interval_s:
        return False
    _last_check[0] = now
    counts = memory_maps()
    if counts is None or counts[0] <= fraction * counts[1]:
        return False
    import gc
    import logging

    import jax

    jax.clear_caches()
    gc.collect()  # executables are freed with the last Python reference to them
    after = memory_maps()
    logging.getLogger("surrogates").info(
        "released JAX's compiled programs: %d of %d memory maps in use, %s after",
        counts[0], counts[1], after[0] if after else "?")
    return True


# Traces per compiled entry point, by name: a Python counter that runs only while
# JAX traces (a call that reuses a compiled program never runs the Python body).
_TRACES: Counter[str] = Counter()


def counts_traces(name: str) -> Callable[[_F], _F]:
    """Decorator, under ``jax.jit``: count each trace of the function as ``name`` in
    :func:`compiled_programs`. The compiled program is unchanged."""
    def decorate(fn: _F) -> _F:
        _TRACES[name] += 0  # listed from import on, at zero

        @functools.wraps(fn)
        def traced(*args, **kwargs):
            _TRACES[name] += 1
            return fn(*args, **kwargs)

        return traced  # type: ignore[return-value]

    return decorate


def compiled_programs() -> dict[str, int]:
    """How many programs each compiled entry point has built in this process, by
    name (``"gp.fit"``, ``"gp.condition"``, ``"ensemble.train"``, ``"svgp.train"``,
    ``"saas.fit"``, ``"multitask.fit"``, ``"acquisition.search"``): one per trace,
    that is per new shape or static setting. A campaign whose data grow inside a padding
    bucket must not add any; compare two readings to see how many a call built.
    """
    return dict(_TRACES)
