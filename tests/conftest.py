"""Test-wide settings."""

import os
import sys
from pathlib import Path

# JAX's CPU linear algebra runs in the bundled OpenBLAS, whose threads spin
# against XLA's when the cores are busy (pytest -n 2 on 2 cores): a 64x64
# triangular solve measured 10 ms instead of 0.08 ms. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Every `workbench ask` a test runs as a subprocess answers in its own process and leaves
# no warm worker behind (tests/test_worker.py turns the worker on for its own processes).
os.environ["WORKBENCH_WORKER"] = "0"

from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run, so CI is reproducible;
# HYPOTHESIS_PROFILE=explore draws fresh ones when hunting for bugs.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Keep a test worker's compiled programs under the kernel's memory-map limit.

    A worker of the full suite keeps over a thousand XLA programs (~45-60 memory maps
    each) and crossed ``vm.max_map_count``, which ends the worker with a
    segmentation fault inside XLA (see ``surrogates/_runtime.py``).
    """
    yield
    if "jax" not in sys.modules:  # nothing compiled; and the check must not import JAX
        return
    from surrogates import release_programs_if_crowded

    release_programs_if_crowded(min_interval_s=0.0)


CHECKOUT = Path(__file__).resolve().parents[1]


def cli_env(columns: int | None = 200) -> dict[str, str]:
    """Environment for a ``python -m workbench`` subprocess: this checkout's packages
    first (whatever is installed), no tracking URI or debug flag from outside, and
    rich tables ``columns`` wide (None: as the terminal says)."""
    env = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "WORKBENCH_DEBUG"):
        env.pop(key, None)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(CHECKOUT), env.get("PYTHONPATH")) if p)
    return env
