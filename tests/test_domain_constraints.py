"""Linear constraints on the encoded domain: validation, geometry, repair, and the
optimiser's proposals against truth (closed forms, SLSQP, brute force)."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

import active_learning as al
from active_learning.design import maximin, sobol
from active_learning.domain import Domain, geometry
from active_learning.optimize import maximize_acquisition

TOL = 1e-9
# Small, fixed search sizes: every test of one domain structure reuses one compilation.
FAST = {"raw_samples": 256, "num_restarts": 8, "steps": 80}
PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


class _Quadratic(eqx.Module):
    """-||x - centre||^2: concave, with a known constrained maximiser."""

    centre: jax.Array

    def __call__(self, X):
        return -jnp.sum((X - self.centre) ** 2, axis=-1)


# -- the Domain itself ----------------------------------------------------------


def test_constraints_are_stored_hashably_and_compare_by_value():
    a = Domain(3, equalities=((np.ones(3), 1.0),), inequalities=((np.array([1.0, -1, 0]), 0.2),))
    b = Domain(3, equalities=(([1, 1, 1], 1),), inequalities=(([1, -1, 0], 0.2),))
    assert a == b and hash(a) == hash(b)
    assert a.equalities == (((1.0, 1.0, 1.0), 1.0),)
    assert isinstance(a.inequalities[0][0], tuple)
    np.testing.assert_array_equal(a.A_ub, [[1.0, -1.0, 0.0]])
    assert a.structure == Domain(3) and a.constrained and not Domain(3).constrained


@pytest.mark.parametrize("kwargs, message", [
    ({"inequalities": (([1, 1], -0.1),)}, "leave no point"),
    ({"equalities": (([1, 1], 2.5),)}, "leave no point"),
    ({"equalities": (([1, 0], 0.2), ([1, 0], 0.3))}, "leave no point"),
    ({"equalities": (([0, 0], 1.0),)}, "can never hold"),
    ({"inequalities": (([1, 1, 1], 1.0),)}, "3 coefficients"),
    ({"inequalities": (([1, np.nan], 1.0),)}, "finite"),
    ({"integer": ((0, 3),), "equalities": (([1, 0], 0.25),)}, "valid integer levels"),
    ({"onehot": ((0, 1),), "inequalities": (([1, 1], 0.5),)}, "one-hot"),
])
def test_infeasible_or_malformed_constraints_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Domain(2, **kwargs)


def test_feasible_checks_bounds_constraints_grids_and_groups_to_tolerance():
    dom = Domain(5, integer=((3, 3),), onehot=((4,),),
                 equalities=(([1, 1, 1, 0, 0], 1.0),), inequalities=(([1, 0, 0, 1, 0], 0.8),))
    good = np.array([0.2, 0.3, 0.5, 0.5, 1.0])
    cases = {
        "good": (good, True),
        "within tolerance": (good + [1e-10, 0, 0, 0, 0], True),
        "equality off": (good + [1e-6, 0, 0, 0, 0], False),
        "inequality off": (np.array([0.4, 0.1, 0.5, 0.5, 1.0]), False),  # 0.4 + 0.5 > 0.8
        "below bound": (np.array([-1e-6, 0.5, 0.5 + 1e-6, 0.5, 1.0]), False),
        "off grid": (np.array([0.2, 0.3, 0.5, 0.4, 1.0]), False),
        "empty group": (np.array([0.2, 0.3, 0.5, 0.5, 0.0]), False),
    }
    for name, (x, expected) in cases.items():
        assert bool(dom.feasible(x)) is expected, name
    X = np.stack([c[0] for c in cases.values()])
    np.testing.assert_array_equal(dom.feasible(X), [c[1] for c in cases.values()])
    assert dom.violation(cases["inequality off"][0]) == pytest.approx(0.1)


def test_chebyshev_centre_of_a_triangle_is_its_incentre():
    geo = geometry(Domain(2, inequalities=(([1, 1], 1.0),)))
    r = 1.0 / (2.0 + np.sqrt(2.0))  # inradius of the right triangle with unit legs
    np.testing.assert_allclose(geo.centers[0], [r, r], atol=1e-9)
    assert geo.radius[0] == pytest.approx(r, abs=1e-9)
    np.testing.assert_allclose(geo.basis @ geo.basis.T, np.eye(2), atol=1e-12)


def test_an_equality_written_as_two_inequalities_is_found_and_kept():
    dom = Domain(2, inequalities=(([1, 0], 0.3), ([-1, 0], -0.3)))
    geo = geometry(dom)
    assert geo.basis.shape == (2, 1) and np.allclose(np.abs(geo.basis[:, 0]), [0, 1])
    X = sobol(8, dom, seed=0)
    np.testing.assert_allclose(X[:, 0], 0.3, atol=1e-12)
    assert dom.feasible(X).all() and np.ptp(X[:, 1]) > 0.5
    x, _ = maximize_acquisition(_Quadratic(jnp.asarray([0.9, 0.6])), dom, jax.random.key(0),
                                **FAST)
    np.testing.assert_allclose(np.asarray(x), [0.3, 0.6], atol=1e-4)


def _project_to_simplex(v):
    """Euclidean projection onto {x >= 0, sum x = 1} (sort-based, Held et al. 1974)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1.0), 0.0)


def test_repair_is_the_euclidean_projection_onto_a_simplex():
    dom = Domain(4, integer=((3, 3),), equalities=(([1, 1, 1, 0], 1.0),))
    rng = np.random.default_rng(0)
    X = np.c_[rng.uniform(-0.3, 1.2, size=(20, 3)), rng.uniform(size=20)]
    fixed, ok = dom.repair(X)
    assert ok.all() and dom.feasible(fixed).all()
    for x, y in zip(X, fixed):
        np.testing.assert_allclose(y[:3], _project_to_simplex(x[:3]), atol=1e-8)
        assert y[3] == np.round(x[3] * 2) / 2


def test_repair_moves_continuous_columns_when_a_constraint_involves_an_integer():
    # x0 + x1 = 0.9 with x0 on the grid {0, 0.5, 1}: x1 must follow the rounding.
    dom = Domain(2, integer=((0, 3),), equalities=(([1, 1], 0.9),))
    fixed, ok = dom.repair(np.array([[0.3, 0.6], [0.45, 0.45], [0.8, 0.1]]))
    np.testing.assert_array_equal(ok, [True, True, False])  # x0 = 1 leaves x1 = -0.1
    np.testing.assert_allclose(fixed[:2], [[0.5, 0.4], [0.5, 0.4]], atol=1e-12)


# -- the optimiser against truth ------------------------------------------------


def _random_polytope(seed):
    """A 4-column polytope: a simplex equality over 3 random columns and two random
    inequalities holding with margin at a known interior point."""
    rng = np.random.default_rng(seed)
    cols = rng.permutation(4)[:3]
    eq = np.zeros(4)
    eq[cols] = 1.0
    x_star = np.zeros(4)
    x_star[cols] = rng.dirichlet(np.full(3, 3.0)) * 0.8 + 0.2 / 3
    x_star[np.setdiff1d(np.arange(4), cols)] = rng.uniform(0.2, 0.8)
    A = rng.normal(size=(2, 4))
    b = A @ x_star + rng.uniform(0.03, 0.3, size=2)
    return Domain(4, equalities=((eq, 1.0),), inequalities=tuple(zip(A, b))), x_star, rng


def _slsqp(dom, centre, start):
    res = minimize(lambda x: np.sum((x - centre) ** 2), start, jac=lambda x: 2 * (x - centre),
                   method="SLSQP", bounds=[(0, 1)] * dom.dim,
                   constraints=[{"type": "eq", "fun": lambda x: dom.A_eq @ x - dom.b_eq},
                                {"type": "ineq", "fun": lambda x: dom.b_ub - dom.A_ub @ x}],
                   options={"ftol": 1e-13, "maxiter": 1000})
    # SLSQP may stop with "positive directional derivative" once it is at
    # rounding level; what matters is a feasible point, checked here.
    assert dom.violation(res.x) <= 1e-8, res
    return res.x


@PROPERTY
@given(st.integers(0, 2**32 - 1))
def test_proposals_and_designs_satisfy_random_polytopes_and_find_the_slsqp_optimum(seed):
    dom, x_star, rng = _random_polytope(seed)
    centre = rng.uniform(-0.5, 1.5, size=4)
    x, v = maximize_acquisition(_Quadratic(jnp.asarray(centre)), dom,
                                jax.random.key(seed % 1000), **FAST)
    x = np.asarray(x)
    assert dom.violation(x) <= TOL
    expected = _slsqp(dom, centre, x_star)
    # Strictly concave: the maximiser is unique, so points must agree, and no
    # feasible point may beat ours by more than the optimiser's last step (a
    # coordinate 1e-7 inside an active bound costs ~1e-7: seed 548).
    np.testing.assert_allclose(x, expected, atol=1e-4)
    assert -np.sum((x - centre) ** 2) >= -np.sum((expected - centre) ** 2) - 1e-6
    assert float(v) == pytest.approx(-np.sum((x - centre) ** 2), abs=1e-12)
    for design in (sobol(6, dom, seed=seed), maximin(6, dom, seed=seed % 7, pool_size=512)):
        assert design.shape == (6, 4) and np.all(dom.violation(design) <= TOL)


def _random_mixed_domain(seed):
    """Columns: 0-2 a simplex, 3 an integer with 5 levels, 4-5 a one-hot pair; two
    random inequalities over every column, valid (with margin) for two known points."""
    rng = np.random.default_rng(seed)
    points = []
    for combo in ([1.0, 0.0], [0.0, 1.0]):
        simplex = rng.dirichlet(np.full(3, 3.0)) * 0.8 + 0.2 / 3
        points.append(np.r_[simplex, rng.integers(0, 5) / 4, combo])
    A = rng.normal(size=(2, 6))
    b = np.max([A @ p for p in points], axis=0) + rng.uniform(0.03, 0.3, size=2)
    dom = Domain(6, integer=((3, 5),), onehot=((4, 5),),
                 equalities=(([1, 1, 1, 0, 0, 0], 1.0),), inequalities=tuple(zip(A, b)))
    return dom, rng


@PROPERTY
@given(st.integers(0, 2**32 - 1))
def test_mixed_proposals_and_designs_are_valid_and_feasible(seed):
    dom, rng = _random_mixed_domain(seed)
    centre = rng.uniform(-0.5, 1.5, size=6)
    x, v = maximize_acquisition(_Quadratic(jnp.asarray(centre)), dom,
                                jax.random.key(seed % 1000), **FAST)
    x = np.asarray(x)
    assert dom.feasible(x, TOL), (x, dom.violation(x))
    assert float(v) == pytest.approx(-np.sum((x - centre) ** 2), abs=1e-12)
    design = sobol(5, dom, seed=seed)
    assert design.shape == (5, 6) and dom.feasible(design, TOL).all()


# -- categories: exact enumeration and local search -------------------------------


class _Categorical(eqx.Module):
    """W[i, j] - (x0 - t[i])^2 for one-hot groups (1, 2, 3) -> i and (4, 5, 6) -> j,
    written multilinearly in the one-hot columns (as a model would see them)."""

    W: jax.Array
    t: jax.Array

    def __call__(self, X):
        a, b = X[:, 1:4], X[:, 4:7]
        pair = jnp.einsum("bi,ij,bj->b", a, self.W, b)
        return pair - jnp.sum(a * (X[:, :1] - self.t) ** 2, axis=1)


W = np.array([[0.2, -0.4, 0.9], [0.5, 0.3, -1.0], [1.0, -0.8, 0.1]])
T = np.array([0.2, 0.55, 0.8])
CATEGORICAL = Domain(7, onehot=((1, 2, 3), (4, 5, 6)))


def _decode(x):
    x = np.asarray(x)
    return int(np.argmax(x[1:4])), int(np.argmax(x[4:7]))


def test_enumeration_finds_the_best_category_combination():
    acq = _Categorical(jnp.asarray(W), jnp.asarray(T))
    x, v = maximize_acquisition(acq, CATEGORICAL, jax.random.key(0), **FAST)
    i, j = np.unravel_index(np.argmax(W), W.shape)
    assert _decode(x) == (i, j)
    assert float(x[0]) == pytest.approx(T[i], abs=1e-3)
    assert float(v) == pytest.approx(W[i, j], abs=1e-6)


def test_enumeration_skips_combinations_the_constraints_forbid():
    i, j = np.unravel_index(np.argmax(W), W.shape)
    # Forbid the best pair: its two one-hot columns cannot both be 1.
    row = np.zeros(7)
    row[1 + i] = row[4 + j] = 1.0
    dom = Domain(7, onehot=CATEGORICAL.onehot, inequalities=((row, 1.5),))
    acq = _Categorical(jnp.asarray(W), jnp.asarray(T))
    x, v = maximize_acquisition(acq, dom, jax.random.key(1), **FAST)
    allowed = W.copy()
    allowed[i, j] = -np.inf
    i2, j2 = np.unravel_index(np.argmax(allowed), W.shape)
    assert _decode(x) == (i2, j2) and dom.feasible(np.asarray(x))
    assert float(v) == pytest.approx(W[i2, j2], abs=1e-6)


def test_local_search_finds_the_best_combination_of_an_additive_score():
    u, w = np.array([0.1, 0.7, 0.3]), np.array([0.2, -0.1, 0.6])
    acq = _Categorical(jnp.asarray(u[:, None] + w[None, :]), jnp.asarray(T))
    # max_combinations=1 forces rounding + one-group flips instead of enumeration.
    x, v = maximize_acquisition(acq, CATEGORICAL, jax.random.key(2), max_combinations=1, **FAST)
    assert _decode(x) == (1, 2)
    assert float(x[0]) == pytest.approx(T[1], abs=1e-3)
    best = max(u[a] + w[b] for a, b in itertools.product(range(3), range(3)))
    assert float(v) == pytest.approx(best, abs=1e-6)


def test_package_exports_the_domain_used_by_the_workbench():
    dom = al.Domain(3, integer=((0, 3),))
    assert dom.snap(jnp.asarray([0.3, 0.2, 0.9]))[0] == 0.5


# -- starts near the best observations (anchors) --------------------------------


class _Needle(eqx.Module):
    """A narrow bump of height 1 at ``centre`` (width ``width``) on a gentle slope that
    pulls towards the far corner: what log-EI looks like late in a search, where
    space-filling starts climb to the corner and miss the bump."""

    centre: jax.Array
    width: float = eqx.field(static=True)

    def __call__(self, X):
        bump = jnp.exp(-jnp.sum((X - self.centre) ** 2, axis=-1) / (2 * self.width ** 2))
        return bump + 1e-3 * jnp.sum(X, axis=-1)


@pytest.mark.parametrize("case", ["box", "polytope", "categories"])
def test_anchors_find_a_narrow_optimum_that_space_filling_starts_miss(case):
    if case == "box":
        dom, p = Domain(3), np.array([0.31, 0.42, 0.27])
    elif case == "polytope":  # the bump on the face x1 + x2 + x3 = 1, as optima on constraints
        dom, p = Domain(3, inequalities=(([1.0, 1.0, 1.0], 1.0),)), np.array([0.5, 0.3, 0.2])
    else:  # continuous column 0 and two 3-way categories; the bump in combination (1, 2)
        dom, p = CATEGORICAL, np.array([0.37, 0, 1, 0, 0, 0, 1.0])
    width = {"box": 0.02, "polytope": 0.006, "categories": 0.0015}[case]
    acq = _Needle(jnp.asarray(p), width)
    near = np.repeat(p[None], 2, axis=0)
    near[:, 0] += np.array([1.5, -1.25]) * width  # observations close to, not at, the optimum
    x0, v0 = maximize_acquisition(acq, dom, jax.random.key(3), **FAST)
    x, v = maximize_acquisition(acq, dom, jax.random.key(3), anchors=near, **FAST)
    assert float(v0) < 0.5  # the control: without anchors the bump is missed
    assert float(v) > 0.98 and np.max(np.abs(np.asarray(x) - p)) < 5e-3
    assert dom.feasible(np.asarray(x))
    if case == "polytope":
        assert float(np.sum(x)) <= 1.0 + TOL


# -- finishing the best climbs ------------------------------------------------------


class _Ridge(eqx.Module):
    """Rosenbrock's curved valley, negated, on [-0.5, 1.5]^2 scaled to the unit square:
    a ridge along which gradient steps stay short (maximiser (0.75, 0.75), unconstrained)."""

    def __call__(self, X):
        u = 2.0 * X - 0.5
        return -(100.0 * (u[..., 1] - u[..., 0] ** 2) ** 2 + (1.0 - u[..., 0]) ** 2)


def test_finish_steps_take_the_best_climbs_to_the_optimum_on_a_ridge():
    # With x1 + x2 <= 1.2 the maximiser lies on the face, where the ridge meets it: the
    # default climb (80 ascent steps, 20 polish) ends 1e-5-1e-3 short of SLSQP's optimum
    # on some keys; 120 finishing steps for the best starts reach it on every key.
    dom = Domain(2, inequalities=(([1.0, 1.0], 1.2),))
    face = {"type": "ineq", "fun": lambda x: 1.2 - x[0] - x[1]}
    expected = minimize(lambda x: -float(_Ridge()(jnp.asarray(x))), np.array([0.5, 0.5]),
                        bounds=[(0, 1)] * 2, constraints=[face], method="SLSQP",
                        options={"ftol": 1e-15, "maxiter": 1000}).x
    near = np.array([[0.3, 0.3], [0.2, 0.6]])
    errors = {0: [], 120: []}
    for finish in errors:
        for key in range(4):
            x, v = maximize_acquisition(_Ridge(), dom, jax.random.key(key), anchors=near,
                                        finish_steps=finish, **FAST)
            assert dom.violation(np.asarray(x)) <= TOL
            errors[finish].append(float(np.max(np.abs(np.asarray(x) - expected))))
    assert max(errors[0]) > 1e-5  # the control: the default polish stops short
    assert max(errors[120]) < 1e-8


def test_finish_steps_never_make_the_found_value_worse():
    # The finish starts from the polished climbs and keeps each row's best point.
    near = np.array([[0.3, 0.3], [0.2, 0.6]])
    for dom in (Domain(2), Domain(2, inequalities=(([1.0, 1.0], 1.2),))):
        for key in range(4):
            _, v0 = maximize_acquisition(_Ridge(), dom, jax.random.key(key), anchors=near,
                                         **FAST)
            _, v1 = maximize_acquisition(_Ridge(), dom, jax.random.key(key), anchors=near,
                                         finish_steps=120, **FAST)
            assert float(v1) >= float(v0)
    with pytest.raises(ValueError, match="finish_steps: got -1"):
        maximize_acquisition(_Ridge(), Domain(2), jax.random.key(0), finish_steps=-1)
