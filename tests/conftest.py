"""Test-wide settings."""

import os

# JAX's CPU linear algebra runs in the bundled OpenBLAS, whose threads spin
# against XLA's when the cores are busy (pytest -n 2 on 2 cores): a 64x64
# triangular solve measured 10 ms instead of 0.08 ms. Set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run, so CI is reproducible;
# HYPOTHESIS_PROFILE=explore draws fresh ones when hunting for bugs.
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
