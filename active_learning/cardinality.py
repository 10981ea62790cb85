"""Cardinality (NChooseK) constraints: supports, the linear domains they leave.

A cardinality constraint bounds how many of its columns are nonzero ("present").
Its feasible set is a union of pieces, one per *support*: for every constraint,
which of its columns are present. A support holds its absent columns at exactly
0 (equalities) and, where a constraint has a minimum count, its present columns
at least one step above 0 (inequalities), so each piece is a plain linear domain
and the optimisers and designs of linear domains work on it unchanged.

When the supports are few (at most ``MAX_ENUMERATED_SUPPORTS``) every one is
searched. Otherwise a sample is: the supports of hint points (the best
observations, the optimum of the relaxed problem without cardinality: a greedy
choice of the largest columns) and seeded random ones, ``SAMPLED_SUPPORTS`` in all.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np

from active_learning.domain import Cardinality, Domain

# Every support is optimised when there are at most this many (e.g. C(6, 3) = 20);
# beyond, a sample of SAMPLED_SUPPORTS is.
MAX_ENUMERATED_SUPPORTS = 32
SAMPLED_SUPPORTS = 16
# Where a constraint has a minimum count, a present continuous column is at least
# this far above 0 in encoded units (an integer column at least its first level), so
# that "present" cannot collapse to absent at the optimum.
PRESENCE_FLOOR = 1e-6
# Random draws tried for one feasible support before giving up.
_SUPPORT_DRAWS = 200


@dataclass(frozen=True)
class Support:
    """Which cardinality columns are present: absent ones are 0, ``floor`` ones > 0."""

    absent: tuple[int, ...]
    floor: tuple[int, ...]


def sizes(c: Cardinality) -> tuple[int, ...]:
    """Support sizes searched for a constraint: without a minimum, the largest only (its
    present columns may still be 0, which covers the smaller ones); with one, each size
    from the minimum to the maximum, present columns held above 0."""
    top = min(c.max_count, len(c.columns))
    return (top,) if c.min_count == 0 else tuple(range(c.min_count, top + 1))


def count_supports(domain: Domain) -> int:
    """Number of supports of the domain's cardinality constraints."""
    return math.prod(sum(math.comb(len(c.columns), s) for s in sizes(c))
                     for c in domain.cardinality)


def _support(domain: Domain, present: tuple[tuple[int, ...], ...]) -> Support:
    absent, floor = [], []
    for c, cols in zip(domain.cardinality, present):
        absent += [j for j in c.columns if j not in cols]
        if c.min_count > 0:
            floor += list(cols)
    return Support(tuple(sorted(absent)), tuple(sorted(floor)))


def all_supports(domain: Domain) -> list[Support]:
    """Every support, in a fixed order."""
    per_constraint = [[cols for s in sizes(c) for cols in itertools.combinations(c.columns, s)]
                      for c in domain.cardinality]
    return [_support(domain, p) for p in itertools.product(*per_constraint)]


def random_support(domain: Domain, rng: np.random.Generator) -> Support:
    """A random support: per constraint a size (weighted by how many supports have it)
    and that many random columns."""
    present = []
    for c in domain.cardinality:
        options = sizes(c)
        weights = np.asarray([math.comb(len(c.columns), s) for s in options], float)
        s = int(rng.choice(options, p=weights / weights.sum()))
        present.append(tuple(sorted(int(j) for j in rng.choice(c.columns, s, replace=False))))
    return _support(domain, tuple(present))


def support_of(domain: Domain, x: np.ndarray) -> Support:
    """The support nearest a point (d,): per constraint its largest columns, as many as
    it has nonzero ones (within the allowed sizes)."""
    x = np.asarray(x, float)
    present = []
    for c in domain.cardinality:
        vals = x[list(c.columns)]
        allowed = sizes(c)
        n = int(np.count_nonzero(vals > PRESENCE_FLOOR))
        s = min(allowed, key=lambda a: (abs(a - n), -a))
        order = np.argsort(-vals, kind="stable")[:s]
        present.append(tuple(sorted(c.columns[i] for i in order)))
    return _support(domain, tuple(present))


@functools.lru_cache(maxsize=4096)
def support_domain(domain: Domain, support: Support) -> Domain | None:
    """The linear domain of one support (nonlinear constraints kept, cardinality
    dropped), or None when no valid point has that support."""
    levels = dict(domain.integer)
    eq, ub = list(domain.equalities), list(domain.inequalities)
    for j in support.absent:
        row = np.zeros(domain.dim)
        row[j] = 1.0
        eq.append((row, 0.0))
    for j in support.floor:
        row = np.zeros(domain.dim)
        row[j] = -1.0
        ub.append((row, -(1.0 / (levels[j] - 1) if j in levels else PRESENCE_FLOOR)))
    try:
        return Domain(domain.dim, domain.integer, domain.onehot, tuple(eq), tuple(ub),
                      nonlinear=domain.nonlinear)
    except ValueError:
        return None


def clean(X: np.ndarray, support: Support) -> np.ndarray:
    """Points (n, d) with the support's absent columns exactly 0 (the optimiser's
    geometry leaves round-off of ~1e-17 there)."""
    X = np.array(X, float)
    X[..., list(support.absent)] = 0.0
    return X


def search_supports(domain: Domain, seed: int, hints=None) -> list[Support]:
    """The feasible supports to search: all of them when there are at most
    ``MAX_ENUMERATED_SUPPORTS``; else the supports of ``hints`` (n, d) points and
    seeded random ones, ``SAMPLED_SUPPORTS`` in all. Raises ValueError when none is
    feasible."""
    if count_supports(domain) <= MAX_ENUMERATED_SUPPORTS:
        found = [s for s in all_supports(domain) if support_domain(domain, s) is not None]
    else:
        rng = np.random.default_rng(seed)
        found = []
        for x in ([] if hints is None else np.atleast_2d(hints)):
            s = support_of(domain, x)
            if s not in found and support_domain(domain, s) is not None:
                found.append(s)
        draws = 0
        while len(found) < SAMPLED_SUPPORTS and draws < _SUPPORT_DRAWS * SAMPLED_SUPPORTS:
            s = random_support(domain, rng)
            draws += 1
            if s not in found and support_domain(domain, s) is not None:
                found.append(s)
    if not found:
        raise ValueError(infeasible_message(domain))
    return found


def infeasible_message(domain: Domain) -> str:
    groups = ", ".join(f"{c.min_count}..{c.max_count} of {len(c.columns)} columns"
                       for c in domain.cardinality)
    return (f"no choice of present columns ({groups}) satisfies the linear constraints;"
            " expected cardinality bounds that a valid point can meet")


def design_supports(domain: Domain, n: int, seed: int) -> list[Support]:
    """The support of each of n design points, point i's independent of n: the feasible
    supports in a seeded order, cycled, when they are few; else a seeded random
    feasible support per point."""
    if count_supports(domain) <= MAX_ENUMERATED_SUPPORTS:
        found = search_supports(domain, seed)
        order = np.random.default_rng(seed).permutation(len(found))
        return [found[order[i % len(found)]] for i in range(n)]
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        for _ in range(_SUPPORT_DRAWS):
            s = random_support(domain, rng)
            if support_domain(domain, s) is not None:
                break
        else:
            found = search_supports(domain, seed)
            s = found[i % len(found)]
        out.append(s)
    return out


__all__ = ["MAX_ENUMERATED_SUPPORTS", "PRESENCE_FLOOR", "SAMPLED_SUPPORTS", "Support",
           "all_supports", "clean", "count_supports", "design_supports", "random_support",
           "search_supports", "sizes", "support_domain", "support_of"]
