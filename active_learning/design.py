"""Initial designs: space-filling points before any model exists.

Every design returns encoded points ``(n, dim)`` that are valid for the domain:
integer columns on their grid, one-hot groups with exactly one 1, and every
linear constraint satisfied to 1e-9. Designs depend only on ``seed`` (and
``n``), so a resumed campaign can rebuild them; ``sobol`` is moreover a stable
prefix (point i does not depend on n), and the others are resumable by asking
for the same ``n`` again and slicing.

- ``sobol``: scrambled Sobol; with linear constraints, the Sobol sequence
  over the polytope's bounding box (in its own coordinates) with the outside
  points rejected, which keeps both uniformity and the prefix property.
- ``latin_hypercube``: one point per stratum per dimension (box domains).
- ``maximin``: greedy maximin selection from a large uniform sample of the
  feasible set (hit-and-run from an interior point), for any domain.
- ``user_points``: points a user supplies, validated.

Nonlinear constraints are met by rejection: the design of the linear domain is
drawn in growing prefixes and the points that break a nonlinear constraint are
skipped (so ``sobol`` stays a stable prefix); when fewer than
``MIN_NONLINEAR_ACCEPTANCE`` of ``MAX_REJECTION_DRAWS`` draws are feasible, the
design raises a ValueError naming the fraction. Cardinality constraints: each
design point gets a support (which columns may be nonzero) chosen from the seed
and its index only, and is the next point of that support's own design.
"""

from __future__ import annotations

import functools
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from active_learning.domain import FEASIBILITY_TOL, Domain, bounding_box, geometry
from active_learning.polytope import hit_and_run, shrink_into_polytope

# Rejection sampling is used when at least _MIN_ACCEPTED of the first _PROBE
# Sobol draws are valid (acceptance >= 1e-3); otherwise ``sobol`` is ``maximin``.
_BLOCK = 2**12
_PROBE = 2**14
_MIN_ACCEPTED = 16
# Rejection for nonlinear constraints: draws are doubled up to this many, and a
# design needs at least this fraction of them feasible.
MAX_REJECTION_DRAWS = 2**16
MIN_NONLINEAR_ACCEPTANCE = 1e-3


def _finish(X: np.ndarray, domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Round discrete columns and restore the constraints: points (n, d), valid mask (n,)."""
    if not domain.constrained:
        return domain.snap_numpy(X), np.ones(len(X), bool)
    if not domain.constraints_touch(domain.discrete_columns):
        # Rounding discrete columns cannot break constraints that ignore them.
        X = domain.snap_numpy(X)
        return X, domain.feasible(X)
    X, ok = domain.repair(X)
    return X, ok & domain.feasible(X)


def sobol(n: int, domain: Domain, seed: int) -> np.ndarray:
    """The first ``n`` points of a scrambled Sobol sequence, valid for ``domain``.

    The sequence depends only on ``seed``, so point i is the same whatever n
    is asked for: a resumed campaign continues its design where it stopped.
    With linear constraints, Sobol points of the polytope's bounding box that
    fall outside are skipped (the prefix property survives); where fewer than
    1 in 1000 fall inside (a simplex of many components), the design is
    ``maximin`` instead. Returns (n, dim) encoded points.
    """
    if n <= 0:
        return np.zeros((0, domain.dim))
    if domain.cardinality:
        return _per_support(sobol, n, domain, seed)
    if domain.nonlinear:
        return _rejecting(sobol, n, domain, seed)
    if domain.constrained:
        X = _sobol_in_polytope(n, domain, seed)
        return X if X is not None else maximin(n, domain, seed)
    # Sobol is balanced in blocks of powers of two; drawing the whole block
    # keeps the prefix identical for every n.
    m = int(np.ceil(np.log2(max(n, 2))))
    X = scrambled_sobol(domain.dim, m, seed)[:n]
    return domain.snap_numpy(X)


# SciPy's Sobol engine: 30-bit integers, Joe and Kuo's direction numbers (its data file).
_SOBOL_BITS = 30
_SOBOL_DATA = ("stats", "_sobol_direction_numbers.npz")


@functools.lru_cache(maxsize=8)
def _sobol_directions(d: int) -> np.ndarray | None:
    """(d, bits) direction numbers as SciPy's Sobol engine builds them, from the data
    file SciPy ships; None where that file is not found (another SciPy layout)."""
    import importlib.util

    scipy = importlib.util.find_spec("scipy")  # finds the package; runs nothing of it
    folders = list(scipy.submodule_search_locations or []) if scipy else []
    paths = [os.path.join(f, *_SOBOL_DATA) for f in folders]
    path = next((p for p in paths if os.path.isfile(p)), None)
    if path is None:
        return None
    with np.load(path) as data:
        if d > len(data["poly"]):
            return None
        poly, vinit = data["poly"][:d], data["vinit"][:d]
    bits = _SOBOL_BITS
    v = np.ones((d, bits), dtype=np.uint64)
    for k in range(1, d):
        # Bratley and Fox's recurrence over the primitive polynomial of degree m.
        p = int(poly[k])
        m = p.bit_length() - 1
        row = [int(x) for x in vinit[k, :m]]
        for j in range(m, bits):
            new = row[j - m]
            for i in range(m):
                if (p >> (m - 1 - i)) & 1:
                    new ^= row[j - i - 1] << (i + 1)
            row.append(new)
        v[k] = row[:bits]
    return v << np.arange(bits - 1, -1, -1, dtype=np.uint64)


def scrambled_sobol(d: int, m: int, seed: int) -> np.ndarray:
    """The first ``2**m`` points (2**m, d) of the scrambled Sobol sequence of ``seed``:
    exactly ``scipy.stats.qmc.Sobol(d, scramble=True,
    seed=np.random.default_rng(seed)).random_base2(m)`` (linear matrix scrambling and
    a digital shift drawn from the same generator), computed without importing
    ``scipy.stats``, whose import costs a fresh process more than the whole design."""
    directions = _sobol_directions(d)
    if directions is None:
        from scipy.stats import qmc

        engine = qmc.Sobol(d=d, scramble=True, seed=np.random.default_rng(seed))
        return engine.random_base2(m)
    bits = _SOBOL_BITS
    parent = np.random.default_rng(seed)
    # SciPy's engine owns a child of the generator it is given (spawned from its seed).
    bit_generator = parent.bit_generator
    rng = np.random.Generator(type(bit_generator)(bit_generator.seed_seq.spawn(1)[0]))
    shift = rng.integers(2, size=(d, bits), dtype=np.uint32) \
        @ (2 ** np.arange(bits, dtype=np.uint32))
    ltm = np.tril(rng.integers(2, size=(d, bits, bits), dtype=np.uint32)).astype(np.int64)
    ltm[:, np.arange(bits), np.arange(bits)] = 1
    # Scrambled direction number j: bit p (from the top) is the parity of row p of the
    # lower-triangular matrix with direction number j, both read from the top bit.
    place = np.arange(bits - 1, -1, -1, dtype=np.uint64)
    digits = ((directions[:, :, None] >> place) & np.uint64(1)).astype(np.int64)
    parity = np.einsum("dji,dpi->djp", digits, ltm) % 2
    scrambled = (parity.astype(np.uint64) << place).sum(axis=2, dtype=np.uint64)
    # Gray-code order: point i + 1 is point i with the direction numbers of the lowest
    # zero bit of i flipped; point 0 is the shift.
    i = np.arange(2**m - 1, dtype=np.int64)
    lowest_zero = np.frexp((~i & (i + 1)).astype(np.float64))[1] - 1
    steps = np.vstack([shift.astype(np.uint64)[None, :], scrambled[:, lowest_zero].T])
    return np.bitwise_xor.accumulate(steps, axis=0).astype(np.float64) * (1.0 / 2**bits)


def _rejecting(design, n: int, domain: Domain, seed: int) -> np.ndarray:
    """The first n points of ``design`` over the linear domain that satisfy the
    nonlinear constraints: prefixes of growing length, so point i does not depend
    on n for a prefix-stable design."""
    linear = domain.linear_only
    m = max(2 * n, 256)
    while True:
        X = design(m, linear, seed)
        ok = domain.feasible(X)
        if ok.sum() >= n:
            return X[ok][:n]
        if m >= MAX_REJECTION_DRAWS:
            break
        if ok.sum() < MIN_NONLINEAR_ACCEPTANCE * m and m >= 4096:
            break
        m = min(2 * m, MAX_REJECTION_DRAWS)
    raise ValueError(
        f"only {int(ok.sum())} of {m} points sampled inside the bounds and linear"
        f" constraints satisfy the nonlinear constraints (needed {n}); expected"
        " constraints that leave a larger part of the space (check their direction and"
        " bounds)")


def _per_support(design, n: int, domain: Domain, seed: int) -> np.ndarray:
    """n design points under cardinality constraints: point i takes the support
    ``design_supports`` gives it and the next point of that support's design."""
    from active_learning.cardinality import clean, design_supports, support_domain

    supports = design_supports(domain, n, seed)
    out = np.zeros((n, domain.dim))
    for k, support in enumerate(dict.fromkeys(supports)):
        rows = [i for i, s in enumerate(supports) if s == support]
        X = design(len(rows), support_domain(domain, support), seed + 7919 * k)
        if len(X) < len(rows):
            raise ValueError(f"could only place {len(X)} of {len(rows)} design points with"
                             f" support {support}; the constraints leave too little room")
        out[rows] = clean(X[:len(rows)], support)
    return out


def _sobol_in_polytope(n: int, domain: Domain, seed: int) -> np.ndarray | None:
    """Sobol points of the polytope's bounding box that fall inside; None when too few do.

    Whether rejection is used depends only on the acceptance among the first
    ``_PROBE`` draws (not on n), and each accepted point is rounded and
    repaired on its own, so the prefix property holds for every n.
    """
    geo = geometry(domain)
    k = geo.basis.shape[1]
    if k == 0:
        return np.repeat(_finish(geo.centers[:1], domain)[0], n, axis=0)
    lo, hi = bounding_box(domain)
    from scipy.stats import qmc  # here: off the import path of a fresh process

    engine = qmc.Sobol(d=k, scramble=True, seed=np.random.default_rng(seed))
    inside: list[np.ndarray] = []
    valid: list[np.ndarray] = []
    count = draws = done = 0
    while count < n or draws < _PROBE:
        Z = lo + (hi - lo) * engine.random(_BLOCK)
        draws += _BLOCK
        inside.append(Z[np.all(Z @ geo.G.T <= geo.h[0], axis=1)])
        if draws == _PROBE and sum(len(z) for z in inside) < _MIN_ACCEPTED:
            return None
        # Round and repair only as many accepted points as are still needed.
        pending = np.concatenate(inside)[done:]
        while count < n and len(pending):
            batch, pending = pending[: 2 * (n - count)], pending[2 * (n - count):]
            done += len(batch)
            X, ok = _finish(geo.centers[0] + batch @ geo.basis.T, domain)
            valid.append(X[ok])
            count += int(ok.sum())
    return np.concatenate(valid)[:n]


def latin_hypercube(n: int, domain: Domain, seed: int) -> np.ndarray:
    """A Latin hypercube of ``n`` points: each column has one point in each of its
    n equal strata (before integer and one-hot rounding). Box domains only;
    with linear constraints use ``maximin`` or ``sobol``. Returns (n, dim)."""
    if domain.constrained or domain.nonlinear or domain.cardinality:
        raise ValueError(
            "a Latin hypercube is defined on the box; with constraints use a"
            " 'sobol' or 'maximin' design, which sample inside the constraints"
        )
    if n <= 0:
        return np.zeros((0, domain.dim))
    from scipy.stats import qmc  # here: off the import path of a fresh process

    engine = qmc.LatinHypercube(d=domain.dim, rng=np.random.default_rng(seed))
    return domain.snap_numpy(engine.random(n))


@partial(jax.jit, static_argnames=("n", "steps"))
def _walk(key, center, basis, G, h, n: int, steps: int):
    Z = hit_and_run(key, jnp.zeros((n, basis.shape[1])), G, jnp.broadcast_to(h, (n, h.shape[0])),
                    steps)
    Z = shrink_into_polytope(Z, G, jnp.broadcast_to(h, Z.shape[:1] + h.shape))
    return center + Z @ basis.T


def sample_feasible(n: int, domain: Domain, seed: int, steps: int | None = None) -> np.ndarray:
    """About-uniform valid points of the domain: hit-and-run chains from its centre.

    n: number of chains (one point each); steps: moves per chain (default
    20 k + 50 for a k-dimensional polytope). Discrete columns are rounded and,
    where constraints involve them, the continuous ones repaired; points that
    cannot be repaired are dropped, so fewer than n may return. Returns (<= n, dim).
    """
    if domain.cardinality:
        from active_learning.cardinality import clean, design_supports, support_domain

        supports = design_supports(domain, n, seed)
        parts = []
        for k, support in enumerate(dict.fromkeys(supports)):
            count = sum(1 for s in supports if s == support)
            X = sample_feasible(count, support_domain(domain, support), seed + 7919 * k, steps)
            parts.append(clean(X, support))
        X = np.concatenate(parts) if parts else np.zeros((0, domain.dim))
        return X[domain.feasible(X)]
    if not domain.constrained:
        rng = np.random.default_rng(seed)
        X = domain.snap_numpy(rng.uniform(size=(n, domain.dim)))
        return X[domain.feasible(X)] if domain.nonlinear else X
    geo = geometry(domain)
    k = geo.basis.shape[1]
    steps = 20 * k + 50 if steps is None else steps
    X = np.asarray(_walk(jax.random.key(seed), jnp.asarray(geo.centers[0]),
                         jnp.asarray(geo.basis), jnp.asarray(geo.G), jnp.asarray(geo.h[0]),
                         n, steps))
    X, ok = _finish(X, domain)
    return X[ok]


def greedy_maximin(pool: np.ndarray, n: int, first: int = 0) -> np.ndarray:
    """Indices of n rows of ``pool`` (m, d) chosen one at a time, each the farthest
    (Euclidean) from those already chosen, starting from row ``first``. The
    choice of the first i rows does not depend on n. Returns (n,) int."""
    chosen = [first]
    dist = np.linalg.norm(pool - pool[first], axis=1)
    for _ in range(1, n):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(pool - pool[j], axis=1))
    return np.asarray(chosen[:n], int)


def maximin(n: int, domain: Domain, seed: int, pool_size: int | None = None) -> np.ndarray:
    """Space-filling points inside the constraints: greedy maximin from a uniform pool.

    pool_size: points sampled (hit-and-run) to choose from; default
    max(4096, 8 n), so designs of up to 512 points are stable prefixes of each
    other. The first point is the pool point nearest the domain's centre.
    Returns (n, dim).
    """
    if n <= 0:
        return np.zeros((0, domain.dim))
    pool_size = max(4096, 8 * n) if pool_size is None else pool_size
    if domain.cardinality:
        return _per_support(partial(maximin, pool_size=pool_size), n, domain, seed)
    pool = sample_feasible(pool_size, domain, seed)
    if len(pool) == 0:
        raise ValueError("could not sample any valid point of this domain; expected"
                         " constraints that leave room for one")
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} of {pool_size} points sampled inside the bounds"
                         f" and linear constraints satisfy the nonlinear constraints (needed"
                         f" {n}); expected constraints that leave a larger part of the space")
    centre = geometry(domain).centers[0] if domain.constrained else np.full(domain.dim, 0.5)
    first = int(np.argmin(np.linalg.norm(pool - centre, axis=1)))
    return pool[greedy_maximin(pool, min(n, len(pool)), first)]


def user_points(points, domain: Domain, tol: float = FEASIBILITY_TOL) -> np.ndarray:
    """Validate user-supplied encoded points (n, dim) and return them exactly valid.

    Raises ValueError naming the first row that breaks a bound, a constraint,
    an integer grid or a one-hot group by more than ``tol``; rows within
    ``tol`` are rounded exactly onto their grid and bounds.
    """
    X = np.asarray(points, dtype=float)
    if X.ndim != 2 or X.shape[1] != domain.dim:
        raise ValueError(f"points: expected shape (n, {domain.dim}), got {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError("points: every value must be finite")
    bad = ~domain.feasible(X, tol)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if domain.violation(X[i]) > tol:
            what = f"violates a bound or linear constraint by {float(domain.violation(X[i])):.3g}"
        elif not domain.valid_discrete(X[i], tol):
            what = "has an integer column off its grid or an invalid one-hot group"
        elif not domain.cardinality_ok(X[i]):
            what = "has a number of nonzero columns outside a cardinality constraint's bounds"
        else:
            what = "violates a nonlinear constraint"
        raise ValueError(f"points[{i}] {what}")
    return np.clip(domain.snap_numpy(X), 0.0, 1.0)


def initial_design(kind: str, n: int, domain: Domain, seed: int,
                   points=None) -> np.ndarray:
    """Dispatch on ``kind``: 'sobol', 'lhs', 'maximin' or 'points' (n ignored). Returns (n, dim)."""
    if kind == "sobol":
        return sobol(n, domain, seed)
    if kind == "lhs":
        return latin_hypercube(n, domain, seed)
    if kind == "maximin":
        return maximin(n, domain, seed)
    if kind == "points":
        if points is None:
            raise ValueError("a 'points' design needs points")
        return user_points(points, domain)
    raise ValueError(f"unknown design {kind!r}; expected sobol, lhs, maximin or points")


__all__ = ["greedy_maximin", "initial_design", "latin_hypercube", "maximin", "sample_feasible",
           "scrambled_sobol", "sobol", "user_points"]
