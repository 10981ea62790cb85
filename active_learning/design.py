"""Initial designs: space-filling points before any model exists."""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

from active_learning.domain import Domain


def sobol(n: int, domain: Domain, seed: int) -> np.ndarray:
    """The first ``n`` points of a scrambled Sobol sequence, snapped to ``domain``.

    The sequence depends only on ``seed``, so point i is the same whatever n
    is asked for: a resumed campaign continues its design where it stopped.
    Returns (n, dim) encoded points.
    """
    if n <= 0:
        return np.zeros((0, domain.dim))
    engine = qmc.Sobol(d=domain.dim, scramble=True, seed=np.random.default_rng(seed))
    # Sobol is balanced in blocks of powers of two; drawing the whole block
    # keeps the prefix identical for every n.
    m = int(np.ceil(np.log2(max(n, 2))))
    X = engine.random_base2(m)[:n]
    return domain.snap_numpy(X)
