"""The encoded search domain: the unit cube, integer grids, one-hot groups,
linear constraints, nonlinear constraints and cardinality constraints.

``workbench`` encodes every parameter into ``[0, 1]`` columns; this module only
knows which columns are integer-valued (with how many levels), which groups
of columns are one-hot categorical, and which linear equalities and
inequalities the encoded point must satisfy, so that optimisers and designs
return valid points. Because the encoding is affine per column, a linear
constraint in user units is a linear constraint here too.

Nonlinear constraints are JAX-traceable functions ``g(X) -> (...)`` of encoded
points ``X (..., dim)``, feasible where ``g <= 0``; a cardinality constraint
bounds how many of its columns are nonzero ("present"). Both are kept as given
(functions compare by identity), so build them once per domain: they are part
of compile keys.

The host-side geometry of the feasible polytope (an interior point, a basis of
the directions that keep the equalities, the inequalities in those
coordinates) is computed once per domain with ``scipy.optimize.linprog`` and
cached; the optimisers take it as arrays into ``jit``. SciPy's optimisers are imported
where a domain with constraints needs them: a box has no polytope to solve.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, replace
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from scipy.linalg import null_space

Row = tuple[tuple[float, ...], float]

# An inequality whose largest slack over the polytope is below this is an
# equality in disguise (e.g. x <= 0.3 and x >= 0.3), treated as one.
_IMPLICIT_TOL = 1e-9
# Points returned by optimisers and designs satisfy every constraint to this.
FEASIBILITY_TOL = 1e-9


def _rows(rows, dim: int, name: str) -> tuple[Row, ...]:
    """Normalise ((coefficients, rhs), ...) to hashable tuples, checking each row."""
    out = []
    for i, row in enumerate(rows):
        try:
            coeffs, rhs = row
        except (TypeError, ValueError):
            raise ValueError(f"{name}[{i}]: expected (coefficients, rhs), got {row!r}") from None
        c = np.asarray(coeffs, dtype=float).reshape(-1)
        if c.shape != (dim,):
            raise ValueError(f"{name}[{i}]: {c.size} coefficients for a {dim}-column domain")
        r = float(rhs)
        if not (np.all(np.isfinite(c)) and math.isfinite(r)):
            raise ValueError(f"{name}[{i}]: coefficients and right-hand side must be finite")
        if not np.any(c):
            holds = r == 0.0 if name == "equalities" else r >= 0.0
            if not holds:
                op = "=" if name == "equalities" else "<="
                raise ValueError(f"{name}[{i}]: 0 {op} {r} can never hold")
            continue  # trivially true: nothing to keep
        out.append((tuple(float(v) for v in c), r))
    return tuple(out)


@dataclass(frozen=True)
class Cardinality:
    """Between ``min_count`` and ``max_count`` of ``columns`` are nonzero.

    columns: encoded columns whose value 0 means "absent" (a parameter with
    lower bound 0); an integer or continuous column, never a one-hot one.
    """

    columns: tuple[int, ...]
    min_count: int
    max_count: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(int(c) for c in self.columns))
        object.__setattr__(self, "min_count", int(self.min_count))
        object.__setattr__(self, "max_count", int(self.max_count))
        if not 0 <= self.min_count <= self.max_count or self.min_count > len(self.columns):
            raise ValueError(f"cardinality: got min_count {self.min_count}, max_count"
                             f" {self.max_count} over {len(self.columns)} columns; expected"
                             " 0 <= min_count <= max_count and min_count <= columns")
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(f"cardinality: got repeated columns {self.columns}")

    def counts(self, X: np.ndarray) -> np.ndarray:
        """Number of present (nonzero) columns per point: (..., dim) -> (...)."""
        return np.count_nonzero(np.asarray(X)[..., list(self.columns)], axis=-1)


@functools.lru_cache(maxsize=64)
def _jitted(g: Callable) -> Callable:
    return jax.jit(g)


def _bucket(n: int) -> int:
    """The padded row count for n rows: the next power of two, at least 64."""
    return max(64, 1 << max(n - 1, 0).bit_length())


@dataclass(frozen=True)
class Domain:
    """Encoded domain: ``[0, 1]^dim`` intersected with linear constraints.

    integer: ((column, levels), ...) columns that take ``levels`` equally
    spaced values 0, 1/(levels-1), ..., 1; onehot: tuples of columns of which
    exactly one is 1; equalities: ((coefficients (dim,), rhs), ...) meaning
    ``a @ x == rhs``; inequalities: the same rows meaning ``a @ x <= rhs``.
    A composition is an equality (its columns sum to 1) plus the bounds.
    nonlinear: JAX-traceable functions of encoded points (..., dim) -> (...),
    feasible where <= 0; cardinality: Cardinality constraints on disjoint
    columns. Rows may be given as arrays; they are stored as tuples, so a Domain is
    hashable and can be a static argument of ``jit``. Raises ValueError when
    no valid point satisfies the constraints.
    """

    dim: int
    integer: tuple[tuple[int, int], ...] = ()
    onehot: tuple[tuple[int, ...], ...] = ()
    equalities: tuple[Row, ...] = ()
    inequalities: tuple[Row, ...] = ()
    nonlinear: tuple[Callable, ...] = ()
    cardinality: tuple[Cardinality, ...] = ()

    def __post_init__(self) -> None:
        set_ = functools.partial(object.__setattr__, self)
        set_("dim", int(self.dim))
        set_("integer", tuple((int(c), int(levels)) for c, levels in self.integer))
        set_("onehot", tuple(tuple(int(c) for c in g) for g in self.onehot))
        seen = [c for c, _ in self.integer] + [c for g in self.onehot for c in g]
        if len(seen) != len(set(seen)) or any(not 0 <= c < self.dim for c in seen):
            raise ValueError(f"integer and one-hot columns must be distinct and in [0, {self.dim})")
        if any(levels < 2 for _, levels in self.integer):
            raise ValueError("an integer column needs at least 2 levels")
        if any(len(g) < 1 for g in self.onehot):
            raise ValueError("a one-hot group needs at least one column")
        set_("equalities", _rows(self.equalities, self.dim, "equalities"))
        set_("inequalities", _rows(self.inequalities, self.dim, "inequalities"))
        set_("nonlinear", tuple(self.nonlinear))
        if not all(callable(g) for g in self.nonlinear):
            raise ValueError("nonlinear: expected callables g(X) -> (...) meaning g <= 0")
        set_("cardinality", tuple(c if isinstance(c, Cardinality) else Cardinality(*c)
                                  for c in self.cardinality))
        counted = [j for c in self.cardinality for j in c.columns]
        if len(counted) != len(set(counted)) or any(
                not 0 <= j < self.dim or j in set(self.onehot_columns) for j in counted):
            raise ValueError(f"cardinality: columns must be distinct across constraints, in"
                             f" [0, {self.dim}) and not one-hot; got {counted}")
        if self.constrained:
            _validate(self)

    # -- structure ---------------------------------------------------------

    @property
    def constrained(self) -> bool:
        """Whether any linear equality or inequality applies."""
        return bool(self.equalities or self.inequalities)

    @property
    def linear_only(self) -> Domain:
        """The same domain without its nonlinear and cardinality constraints."""
        if not (self.nonlinear or self.cardinality):
            return self
        return replace(self, nonlinear=(), cardinality=())

    def nonlinear_values(self, X) -> np.ndarray:
        """Every nonlinear constraint at points (..., dim): (..., m), feasible where <= 0."""
        X = np.asarray(X, float)
        if not self.nonlinear:
            return np.zeros(X.shape[:-1] + (0,))
        if X.shape[0] == 0:
            return np.zeros(X.shape[:-1] + (len(self.nonlinear),))
        flat = X.reshape(-1, self.dim)
        # Rows padded to a power of two: a handful of compiled shapes serve every call.
        n = len(flat)
        padded = np.concatenate([flat, np.repeat(flat[:1], _bucket(n) - n, axis=0)])
        values = [np.broadcast_to(np.asarray(_jitted(g)(jnp.asarray(padded))), (len(padded),))[:n]
                  for g in self.nonlinear]
        return np.stack(values, axis=-1).reshape(X.shape[:-1] + (len(self.nonlinear),))

    def cardinality_ok(self, X) -> np.ndarray:
        """Whether each point's present counts are within every cardinality bound: (...)."""
        X = np.asarray(X, float)
        ok = np.ones(X.shape[:-1], bool)
        for c in self.cardinality:
            n = c.counts(X)
            ok &= (n >= c.min_count) & (n <= c.max_count)
        return ok

    @property
    def A_eq(self) -> np.ndarray:
        """(m_eq, dim) equality coefficients."""
        return np.asarray([c for c, _ in self.equalities], float).reshape(-1, self.dim)

    @property
    def b_eq(self) -> np.ndarray:
        """(m_eq,) equality right-hand sides."""
        return np.asarray([r for _, r in self.equalities], float)

    @property
    def A_ub(self) -> np.ndarray:
        """(m_ub, dim) inequality coefficients (``A_ub @ x <= b_ub``)."""
        return np.asarray([c for c, _ in self.inequalities], float).reshape(-1, self.dim)

    @property
    def b_ub(self) -> np.ndarray:
        """(m_ub,) inequality right-hand sides."""
        return np.asarray([r for _, r in self.inequalities], float)

    @property
    def onehot_columns(self) -> tuple[int, ...]:
        """Every one-hot column, group after group."""
        return tuple(c for g in self.onehot for c in g)

    @property
    def discrete_columns(self) -> tuple[int, ...]:
        """Integer and one-hot columns, sorted."""
        return tuple(sorted([c for c, _ in self.integer] + list(self.onehot_columns)))

    @property
    def n_combinations(self) -> int:
        """Number of category combinations: the product of the one-hot group sizes."""
        return math.prod(len(g) for g in self.onehot)

    def combinations(self) -> np.ndarray:
        """Every category combination as values of ``onehot_columns``: (C, n_onehot_cols)."""
        per_group = [np.eye(len(g)) for g in self.onehot]
        if not per_group:
            return np.zeros((1, 0))
        return np.asarray([np.concatenate(rows) for rows in itertools.product(*per_group)])

    @property
    def structure(self) -> Domain:
        """The same columns without constraints: the static part of a ``jit`` key, so
        that new constraint values reuse compiled code (they travel as arrays)."""
        plain = not (self.constrained or self.nonlinear or self.cardinality)
        return self if plain else Domain(self.dim, self.integer, self.onehot)

    def constraints_touch(self, columns) -> bool:
        """Whether any linear constraint has a non-zero coefficient on ``columns``."""
        cols = list(columns)
        if not cols or not self.constrained:
            return False
        A = np.concatenate([self.A_eq, self.A_ub])
        return bool(np.any(A[:, cols] != 0.0))

    # -- rounding and checking ---------------------------------------------

    def snap(self, X: Array) -> Array:
        """Round relaxed points (..., dim) to valid integer and one-hot values (JAX)."""
        X = jnp.clip(X, 0.0, 1.0)
        for col, levels in self.integer:
            step = levels - 1
            X = X.at[..., col].set(jnp.round(X[..., col] * step) / step)
        for group in self.onehot:
            idx = jnp.asarray(group)
            winner = jnp.argmax(X[..., idx], axis=-1)
            X = X.at[..., idx].set(jnp.eye(len(group), dtype=X.dtype)[winner])
        return X

    def snap_numpy(self, X: np.ndarray) -> np.ndarray:
        """The same rounding in numpy, for designs made outside JAX."""
        X = np.clip(np.array(X, dtype=float), 0.0, 1.0)
        for col, levels in self.integer:
            step = levels - 1
            X[..., col] = np.round(X[..., col] * step) / step
        for group in self.onehot:
            winner = np.argmax(X[..., list(group)], axis=-1)
            X[..., list(group)] = np.eye(len(group))[winner]
        return X

    def violation(self, X) -> np.ndarray:
        """Largest violation of bounds, equalities and inequalities: (..., dim) -> (...)."""
        X = np.asarray(X, float)
        parts = [np.maximum(-X, 0.0).max(-1), np.maximum(X - 1.0, 0.0).max(-1)]
        if self.equalities:
            parts.append(np.abs(X @ self.A_eq.T - self.b_eq).max(-1))
        if self.inequalities:
            parts.append(np.maximum(X @ self.A_ub.T - self.b_ub, 0.0).max(-1))
        return np.max(np.stack(parts), axis=0)

    def valid_discrete(self, X, tol: float = FEASIBILITY_TOL) -> np.ndarray:
        """Whether integer columns sit on their grid and one-hot groups hold one 1: (...)."""
        X = np.asarray(X, float)
        ok = np.ones(X.shape[:-1], bool)
        for col, levels in self.integer:
            scaled = X[..., col] * (levels - 1)
            ok &= np.abs(scaled - np.round(scaled)) <= tol * (levels - 1)
        for group in self.onehot:
            g = X[..., list(group)]
            binary = np.all((np.abs(g) <= tol) | (np.abs(g - 1.0) <= tol), axis=-1)
            ok &= binary & (np.abs(g.sum(-1) - 1.0) <= tol)
        return ok

    def feasible(self, X, tol: float = FEASIBILITY_TOL) -> np.ndarray:
        """Whether points (..., dim) are valid: bounds, linear constraints, integers,
        one-hot, nonlinear constraints (``g <= tol``; NaN is infeasible) and
        cardinality (a column is present when it is not exactly 0)."""
        ok = (self.violation(X) <= tol) & self.valid_discrete(X, tol)
        if self.nonlinear:
            ok &= np.all(self.nonlinear_values(X) <= tol, axis=-1)
        if self.cardinality:
            ok &= self.cardinality_ok(X)
        return ok

    def repair(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Snap discrete columns, then move the continuous ones to a nearby feasible point.

        X: (n, dim) relaxed or slightly infeasible points. Returns (n, dim)
        points and an (n,) mask, False where no continuous completion of the
        snapped discrete values satisfies the constraints (those rows are
        returned snapped but infeasible). Runs on the host: one LP per distinct
        set of discrete values, then a vectorised projection.
        """
        X = np.atleast_2d(np.asarray(X, float))
        if self.nonlinear or self.cardinality:
            # Only the linear part can be repaired; the rest is checked.
            X, ok = self.linear_only.repair(X)
            return X, ok & self.feasible(X)
        if not self.constrained:
            return self.snap_numpy(X), np.ones(len(X), bool)
        fixed = list(self.discrete_columns)
        # Round the discrete columns only: the projection needs the continuous
        # ones as given, not clipped to the box first.
        X = X.copy()
        X[:, fixed] = self.snap_numpy(X)[:, fixed]
        out, ok = X.copy(), self.feasible(X)
        todo = np.flatnonzero(~ok)
        if len(todo) == 0:
            return out, ok
        if self.constraints_touch(fixed):
            keys, group = np.unique(X[np.ix_(todo, fixed)], axis=0, return_inverse=True)
        else:
            # The constraints factorise: every slice has the same continuous part.
            keys, group = np.zeros((1, len(fixed))), np.zeros(len(todo), int)
        group = group.reshape(-1)
        for j, key in enumerate(keys):
            geo = slice_geometry(self, tuple(fixed), (tuple(float(v) for v in key),))
            if not geo.ok[0]:
                continue
            rows = todo[group == j]
            out[rows] = geo.project(X[rows], 0)
            out[np.ix_(rows, fixed)] = X[np.ix_(rows, fixed)]
            ok[rows] = self.feasible(out[rows])
        return out, ok


# -- host-side geometry ------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Geometry:
    """The polytope ``{x valid : x[fixed] = v}`` for m values v, in null-space coordinates.

    Every feasible x of slice j is ``centers[j] + basis @ z`` with
    ``G @ z <= h[j]``. basis: (dim, k) orthonormal, zero on fixed columns and
    orthogonal to every (explicit or implicit) equality; G: (p, k) rows of unit
    norm; centers: (m, dim) Chebyshev centres (interior points); h: (m, p)
    slacks at the centres, all >= radius; ok: (m,) False for empty slices.
    """

    basis: np.ndarray
    G: np.ndarray
    centers: np.ndarray
    h: np.ndarray
    radius: np.ndarray
    ok: np.ndarray

    @property
    def lipschitz(self) -> float:
        """Largest eigenvalue of G G^T: the step bound for dual projection."""
        if self.G.size == 0:
            return 1.0
        return float(np.linalg.norm(self.G, 2) ** 2)

    def project(self, X: np.ndarray, j: int, iters: int = 5000) -> np.ndarray:
        """Points of slice j near X (n, dim), exactly feasible: (n, dim).

        The affine part is exact (an orthogonal projection); the inequalities
        are solved by dual FISTA (converged to ~1e-10 in practice) and then
        made exact by moving towards the interior centre just far enough:
        every point of the segment to an interior point is feasible.
        """
        X = np.atleast_2d(X)
        c = self.centers[j]
        if self.basis.shape[1] == 0:
            return np.repeat(c[None], len(X), axis=0)
        Y = (X - c) @ self.basis
        if self.G.shape[0]:
            h = self.h[j]
            step = 1.0 / self.lipschitz
            lam = np.zeros((len(Y), len(h)))
            mu, t = lam, 1.0
            active = np.ones(len(Y), bool)
            for _ in range(iters):
                lam_next = np.maximum(0.0, mu + step * ((Y - mu @ self.G) @ self.G.T - h))
                t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
                mu_next = lam_next + ((t - 1.0) / t_next) * (lam_next - lam)
                # Rows stop on their own, so a row's result does not depend on
                # which other rows share the batch.
                still = active & (np.max(np.abs(lam_next - lam), axis=1) >= 1e-13)
                lam = np.where(active[:, None], lam_next, lam)
                mu = np.where(still[:, None], mu_next, mu)
                active, t = still, t_next
                if not active.any():
                    break
            Z = Y - lam @ self.G
            Y = Z * shrink_to_polytope(Z, self.G, h[None])[:, None]
        return np.clip(c + Y @ self.basis.T, 0.0, 1.0)


def shrink_to_polytope(Z: np.ndarray, G: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Largest t in [0, 1] with G (t z) <= h for each row z of Z (h > 0): (n,).

    The segment from the interior point z = 0 to z leaves the polytope at
    t = min h_i / (G_i z) over the violated rows.
    """
    Gz = Z @ G.T
    ratio = np.where(Gz > h, h / np.where(Gz > h, Gz, 1.0), 1.0)
    return ratio.min(-1) if ratio.shape[-1] else np.ones(len(Z))


def _all_inequalities(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Inequalities and bounds as one system: (m_ub + 2 dim, dim), (m_ub + 2 dim,)."""
    eye = np.eye(domain.dim)
    A = np.concatenate([domain.A_ub, eye, -eye])
    b = np.concatenate([domain.b_ub, np.ones(domain.dim), np.zeros(domain.dim)])
    return A, b


def _chebyshev(E, e, A, b, norms):
    """Centre and radius of the largest ball in {E x = e, A x <= b} (radius within E's
    null space: ``norms`` are the rows' norms there). None when infeasible."""
    from scipy.optimize import linprog

    n = A.shape[1]
    res = linprog(
        c=np.r_[np.zeros(n), -1.0],
        A_ub=np.c_[A, norms], b_ub=b,
        A_eq=np.c_[E, np.zeros(len(E))] if len(E) else None, b_eq=e if len(E) else None,
        bounds=[(None, None)] * n + [(0.0, 1.0)], method="highs",
    )
    if res.status != 0:
        return None
    x = res.x[:n]
    if len(E):
        # Remove the LP's equality residual exactly (least-squares correction).
        x = x - np.linalg.lstsq(E, E @ x - e, rcond=None)[0]
    return x, float(res.x[n])


@functools.lru_cache(maxsize=256)
def _implicit_equalities(domain: Domain) -> tuple[int, ...]:
    """Rows of the bounds-and-inequalities system that hold with equality everywhere."""
    from scipy.optimize import linprog

    A, b = _all_inequalities(domain)
    E, e = domain.A_eq, domain.b_eq
    basis = null_space(E, rcond=1e-10) if len(E) else np.eye(domain.dim)
    norms = np.linalg.norm(A @ basis, axis=1)
    found = _chebyshev(E, e, A, b, norms)
    if found is None:
        raise ValueError(_infeasible_message(domain))
    if found[1] > _IMPLICIT_TOL:
        return ()
    tight = []
    for i in range(len(A)):
        # Largest slack of row i over the polytope: b_i - min a_i x.
        res = linprog(A[i], A_ub=A, b_ub=b, A_eq=E if len(E) else None,
                      b_eq=e if len(E) else None, bounds=[(None, None)] * domain.dim,
                      method="highs")
        if res.status == 0 and b[i] - res.fun <= _IMPLICIT_TOL:
            tight.append(i)
    return tuple(tight)


@functools.lru_cache(maxsize=1024)
def slice_geometry(domain: Domain, fixed: tuple[int, ...],
                   values: tuple[tuple[float, ...], ...]) -> Geometry:
    """Geometry of the polytope with columns ``fixed`` set to each row of ``values``.

    fixed: columns held constant (e.g. one-hot columns of a category
    combination); values: m tuples of their values. Cached per domain.
    """
    d = domain.dim
    A, b = _all_inequalities(domain)
    tight = list(_implicit_equalities(domain))
    E = np.concatenate([domain.A_eq, A[tight]])
    e = np.concatenate([domain.b_eq, b[tight]])
    keep = np.setdiff1d(np.arange(len(A)), tight)
    A, b = A[keep], b[keep]
    fixed_ = list(fixed)
    free = [j for j in range(d) if j not in set(fixed_)]
    E_R, A_R = E[:, free], A[:, free]
    basis_R = null_space(E_R, rcond=1e-10) if len(E_R) else np.eye(len(free))
    GR = A_R @ basis_R
    norms = np.linalg.norm(GR, axis=1)
    # Rows constant over the slice's affine hull are checked by the LP only.
    rows = norms > 1e-12
    G = GR[rows] / norms[rows, None]
    basis = np.zeros((d, basis_R.shape[1]))
    basis[free] = basis_R
    m = len(values)
    centers, h = np.full((m, d), np.nan), np.zeros((m, int(rows.sum())))
    radius, ok = np.zeros(m), np.zeros(m, bool)
    for j, v in enumerate(values):
        v = np.asarray(v, float)
        e_j = e - E[:, fixed_] @ v
        b_j = b - A[:, fixed_] @ v
        found = _chebyshev(E_R, e_j, A_R, b_j, norms)
        if found is None:
            continue
        x_R, r = found
        slack = b_j - A_R @ x_R
        if np.any(slack < -FEASIBILITY_TOL) or (
            len(E_R) and np.max(np.abs(E_R @ x_R - e_j)) > FEASIBILITY_TOL
        ):
            continue
        centers[j, free], centers[j, fixed_] = x_R, v
        h[j] = slack[rows] / norms[rows]
        radius[j], ok[j] = r, True
    return Geometry(basis=basis, G=G, centers=centers, h=h, radius=radius, ok=ok)


def geometry(domain: Domain) -> Geometry:
    """Geometry of the whole (relaxed) polytope: integers and one-hot columns continuous."""
    return slice_geometry(domain, (), ((),))


@functools.lru_cache(maxsize=256)
def bounding_box(domain: Domain) -> tuple[np.ndarray, np.ndarray]:
    """Per-coordinate range of z over the relaxed polytope, in ``geometry(domain)``'s basis.

    Returns (lower (k,), upper (k,)): 2k small LPs, cached.
    """
    from scipy.optimize import linprog

    geo = geometry(domain)
    k = geo.basis.shape[1]
    lo, hi = np.zeros(k), np.zeros(k)
    for i in range(k):
        for sign, out in ((1.0, lo), (-1.0, hi)):
            c = np.zeros(k)
            c[i] = sign
            res = linprog(c, A_ub=geo.G, b_ub=geo.h[0], bounds=[(None, None)] * k,
                          method="highs")
            out[i] = res.x[i]
    return lo, hi


def _infeasible_message(domain: Domain) -> str:
    return (
        f"the linear constraints ({len(domain.equalities)} equalities,"
        f" {len(domain.inequalities)} inequalities) leave no point in [0, 1]^{domain.dim};"
        " check their signs and right-hand sides"
    )


def _validate(domain: Domain) -> None:
    """Raise ValueError when the constraints admit no (valid) point."""
    geo = geometry(domain)
    if not geo.ok[0]:
        raise ValueError(_infeasible_message(domain))
    if domain.constraints_touch(domain.discrete_columns) and not _mixed_feasible(domain):
        raise ValueError(
            "the linear constraints admit points in [0, 1]^dim, but none with valid"
            " integer levels and one-hot categories"
        )


@functools.lru_cache(maxsize=256)
def _mixed_feasible(domain: Domain) -> bool:
    """Whether a point with valid integer and one-hot values satisfies the constraints."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    d = domain.dim
    # Integer column j is s_j * k_j with k_j an integer in [0, levels - 1].
    scale = np.ones(d)
    integrality = np.zeros(d)
    upper = np.ones(d)
    for col, levels in domain.integer:
        scale[col] = 1.0 / (levels - 1)
        integrality[col], upper[col] = 1, levels - 1
    for col in domain.onehot_columns:
        integrality[col] = 1
    cons = []
    if domain.equalities:
        cons.append(LinearConstraint(domain.A_eq * scale, domain.b_eq, domain.b_eq))
    if domain.inequalities:
        cons.append(LinearConstraint(domain.A_ub * scale, -np.inf, domain.b_ub))
    for group in domain.onehot:
        row = np.zeros(d)
        row[list(group)] = 1.0
        cons.append(LinearConstraint(row[None], 1.0, 1.0))
    res = milp(np.zeros(d), constraints=cons, integrality=integrality,
               bounds=Bounds(np.zeros(d), upper))
    return res.status == 0


__all__ = [
    "FEASIBILITY_TOL",
    "Cardinality",
    "Domain",
    "Geometry",
    "bounding_box",
    "geometry",
    "shrink_to_polytope",
    "slice_geometry",
]
