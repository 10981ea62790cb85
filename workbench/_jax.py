"""JAX set-up owned by the workbench: the persistent compilation cache.

Compiled programs are cached on disk so that a fresh process (every CLI call)
reuses them instead of compiling again. The cache lives in
``$WORKBENCH_CACHE_DIR`` or ``~/.cache/sciworkbench/jax``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

import surrogates  # noqa: F401  (float64 before any array exists)

_configured = False
# A size limit is what makes JAX's file cache take its lock (``<dir>/.lockfile``)
# around every read and write; without one, a process can read an entry another
# is still writing, and deserialising a torn executable aborts the interpreter
# (seen with two test processes sharing the cache). It also bounds the disk use:
# least recently used entries go first.
CACHE_MAX_BYTES = 1 << 30


def cache_dir() -> Path:
    root = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "sciworkbench" / "jax"


def configure_jax() -> None:
    """Turn on the persistent compilation cache (once per process)."""
    global _configured
    if _configured:
        return
    path = cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(path))
        # Cache every program: even sub-second compiles add up across CLI calls.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
    except OSError:
        pass  # a read-only home: compile in memory as usual
    _configured = True

