"""Initial designs and candidate pools against truth: strata, prefixes, moments of
uniform distributions, hand-worked maximin picks, and unchunked references."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates as sg
from active_learning.design import (
    greedy_maximin,
    initial_design,
    latin_hypercube,
    maximin,
    sample_feasible,
    scrambled_sobol,
    sobol,
    user_points,
)
from active_learning.domain import Domain
from active_learning.pool import best_in_pool, score_pool

TRIANGLE = Domain(2, inequalities=(([1, 1], 1.0),))  # x + y <= 1, x, y >= 0
MIXED = Domain(6, integer=((3, 5),), onehot=((4, 5),), equalities=(([1, 1, 1, 0, 0, 0], 1.0),),
               inequalities=(([1, 0, 0, 0.5, 0, 0.3], 0.7),))


# -- designs ---------------------------------------------------------------------


@pytest.mark.parametrize("d", [1, 2, 3, 7, 40])
def test_scrambled_sobol_is_scipys_sequence(d):
    """Bit for bit SciPy's scrambled Sobol points (direction numbers, matrix scrambling,
    digital shift, Gray-code order) for every seed and block size tried, so a box's design
    is the one SciPy's engine gave."""
    from scipy.stats import qmc

    for seed in [0, 1, 2, 11, 12345, 2**40]:
        for m in [0, 1, 3, 6, 9]:
            want = qmc.Sobol(d=d, scramble=True,
                             seed=np.random.default_rng(seed)).random_base2(m)
            got = scrambled_sobol(d, m, seed)
            assert got.dtype == want.dtype and np.array_equal(got, want), (seed, m)


def test_a_box_design_imports_no_scipy_stats():
    """The Sobol design of a box (a campaign's first points) is drawn without importing
    scipy.stats (nor the scipy.optimize it brings), which a fresh process would pay for."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from active_learning.design import initial_design;"
            " from active_learning.domain import Domain;"
            " X = initial_design('sobol', 6, Domain(3), 0); assert X.shape == (6, 3);"
            " print(sorted(m for m in ('scipy.stats', 'scipy.optimize') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("domain", [Domain(3, integer=((1, 4),), onehot=((2,),)), TRIANGLE, MIXED],
                         ids=["box", "triangle", "mixed"])
def test_sobol_is_a_stable_prefix_of_valid_points(domain):
    a, b = sobol(5, domain, seed=7), sobol(23, domain, seed=7)
    np.testing.assert_array_equal(a, b[:5])
    assert domain.feasible(b).all()
    assert not np.allclose(sobol(5, domain, seed=8), a)


def test_sobol_falls_back_to_maximin_on_a_thin_simplex_and_stays_a_prefix():
    # An 8-part simplex fills 1/7! of its bounding box: rejection would starve.
    simplex = Domain(8, equalities=((np.ones(8), 1.0),))
    a, b = sobol(3, simplex, seed=1), sobol(6, simplex, seed=1)
    np.testing.assert_array_equal(a, b[:3])
    assert simplex.feasible(b).all() and len(np.unique(b, axis=0)) == 6


def test_constrained_sobol_and_hit_and_run_sample_the_triangle_uniformly():
    # Uniform on the unit right triangle: E[x] = 1/3, E[x^2] = 1/6, E[xy] = 1/12.
    for X in (sobol(1024, TRIANGLE, seed=0), sample_feasible(4096, TRIANGLE, seed=0)):
        assert TRIANGLE.feasible(X).all()
        np.testing.assert_allclose(X.mean(0), [1 / 3, 1 / 3], atol=0.015)
        np.testing.assert_allclose((X**2).mean(0), [1 / 6, 1 / 6], atol=0.01)
        assert (X[:, 0] * X[:, 1]).mean() == pytest.approx(1 / 12, abs=0.01)


def test_latin_hypercube_has_one_point_per_stratum_in_every_column():
    n = 16
    X = latin_hypercube(n, Domain(3), seed=4)
    for col in X.T:
        np.testing.assert_array_equal(np.sort(np.floor(col * n)), np.arange(n))
    np.testing.assert_array_equal(X, latin_hypercube(n, Domain(3), seed=4))
    assert not np.allclose(X, latin_hypercube(n, Domain(3), seed=5))
    mixed = Domain(4, integer=((0, 3),), onehot=((2, 3),))
    Y = latin_hypercube(n, mixed, seed=4)
    assert mixed.feasible(Y).all()
    np.testing.assert_array_equal(np.sort(np.floor(Y[:, 1] * n)), np.arange(n))
    with pytest.raises(ValueError, match="Latin hypercube"):
        latin_hypercube(4, TRIANGLE, seed=0)


def test_greedy_maximin_picks_the_hand_worked_sequence_on_a_line():
    pool = np.linspace(0.0, 1.0, 101)[:, None]
    # From the middle: both ends tie (first wins), then the other end, then quarters.
    np.testing.assert_array_equal(greedy_maximin(pool, 5, first=50), [50, 0, 100, 25, 75])


def test_maximin_is_feasible_and_better_spread_than_random_subsets():
    X = maximin(8, MIXED, seed=3, pool_size=512)
    assert X.shape == (8, 6) and MIXED.feasible(X).all()
    np.testing.assert_array_equal(X[:5], maximin(5, MIXED, seed=3, pool_size=512))

    def spread(P):
        D = np.linalg.norm(P[:, None] - P[None], axis=-1)
        return D[np.triu_indices(len(P), 1)].min()

    pool = sample_feasible(512, MIXED, seed=3)
    rng = np.random.default_rng(0)
    random_spreads = [spread(pool[rng.choice(len(pool), 8, replace=False)]) for _ in range(200)]
    assert spread(X) > max(random_spreads)


def test_user_points_are_validated_and_rounded_exactly():
    ok = [[0.2, 0.3, 0.5, 0.25 + 1e-12, 1.0, 0.0], [0.1, 0.1, 0.8, 0.0, 0.0, 1.0]]
    X = user_points(ok, MIXED)
    assert X[0, 3] == 0.25 and MIXED.feasible(X).all()
    np.testing.assert_array_equal(initial_design("points", 0, MIXED, 0, points=ok), X)
    with pytest.raises(ValueError, match=r"points\[1\] violates"):
        user_points([ok[0], [0.3, 0.3, 0.5, 0.0, 0.0, 1.0]], MIXED)  # sums to 1.1
    with pytest.raises(ValueError, match=r"points\[0\] has an integer column off its grid"):
        user_points([[0.2, 0.3, 0.5, 0.3, 1.0, 0.0]], MIXED)
    with pytest.raises(ValueError, match="shape"):
        user_points([[0.2, 0.3]], MIXED)


def test_initial_design_dispatches_by_kind():
    np.testing.assert_array_equal(initial_design("sobol", 4, TRIANGLE, 2), sobol(4, TRIANGLE, 2))
    np.testing.assert_array_equal(initial_design("lhs", 4, Domain(2), 2),
                                  latin_hypercube(4, Domain(2), 2))
    with pytest.raises(ValueError, match="unknown design"):
        initial_design("grid", 4, TRIANGLE, 0)


# -- candidate pools ---------------------------------------------------------------


class _UpperBound(eqx.Module):
    """mean + 2 std of a GP: a real acquisition over the surrogate protocol."""

    model: eqx.Module

    def __call__(self, X):
        post = self.model.posterior(X)
        return post.mean[:, 0] + 2.0 * jnp.sqrt(post.variance[:, 0])


@pytest.fixture(scope="module")
def acquisition():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(10, 6))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    theta = sg.GPHyperparameters(log_lengthscale=np.full((1, 6), np.log(0.5)),
                                 log_variance=np.zeros(1), log_noise=np.full(1, -6.0),
                                 mean=np.zeros(1))
    model = sg.gp_from_hyperparameters(X, y[:, None], theta, bounds=(np.zeros(6), np.ones(6)))
    return _UpperBound(model)


def test_chunked_pool_scores_equal_one_unchunked_call(acquisition):
    pool = np.random.default_rng(1).uniform(size=(100_003, 6))  # not a multiple of the chunk
    chunked = np.asarray(score_pool(acquisition, pool, chunk=8192))
    direct = np.asarray(acquisition(jnp.asarray(pool)))
    np.testing.assert_allclose(chunked, direct, rtol=1e-12, atol=1e-12)
    small = np.asarray(score_pool(acquisition, pool[:5]))  # smaller than one chunk
    np.testing.assert_allclose(small, direct[:5], rtol=1e-12, atol=1e-12)


def test_best_in_pool_is_the_numpy_top_q_of_the_unexcluded_rows(acquisition):
    rng = np.random.default_rng(2)
    pool = rng.uniform(size=(5000, 6))
    excluded = rng.uniform(size=5000) < 0.3
    values = np.asarray(acquisition(jnp.asarray(pool)))
    order = np.argsort(-np.where(excluded, -np.inf, values))[:7]
    top, top_values = best_in_pool(acquisition, pool, 7, excluded, chunk=1024)
    np.testing.assert_array_equal(top, order)
    np.testing.assert_allclose(top_values, values[order], rtol=1e-12)
    with pytest.raises(ValueError, match="only 2"):
        best_in_pool(acquisition, pool[:3], 3, np.array([True, False, False]))


class _Table(eqx.Module):
    """Scores looked up by a row's first column (an index), minus a penalty near picks."""

    scores: jax.Array
    picked: jax.Array  # (k, d) rows already chosen

    def __call__(self, X):
        base = self.scores[X[:, 0].astype(int)]
        if self.picked.shape[0] == 0:
            return base
        near = jnp.any(jnp.abs(X[:, None, 1] - self.picked[None, :, 1]) < 0.1, axis=1)
        return jnp.where(near, base - 10.0, base)


def test_best_in_pool_with_updates_matches_a_sequential_reference_and_skips_unusable_rows():
    rng = np.random.default_rng(3)
    n = 64
    scores = rng.normal(size=n)
    scores[5] = np.nan  # an acquisition that fails on a row: never better than any other
    pool = np.c_[np.arange(n), rng.uniform(size=n)]
    excluded = np.zeros(n, bool)
    excluded[[0, 1]] = True

    def update(acq, x):
        return _Table(acq.scores, jnp.concatenate([acq.picked, jnp.asarray(x)[None]]))

    picks, _ = best_in_pool(_Table(jnp.asarray(scores), jnp.zeros((0, 2))), pool, 4, excluded,
                            update=update)
    # Reference: score, pick the best unused row, penalise rows within 0.1 of a
    # pick in column 1, repeat.
    expected = []
    for _ in range(4):
        near = np.zeros(n, bool)
        for i in expected:
            near |= np.abs(pool[:, 1] - pool[i, 1]) < 0.1
        value = np.where(np.isnan(scores), -np.inf, scores) - 10.0 * near
        value[excluded] = -np.inf
        value[expected] = -np.inf
        expected.append(int(np.argmax(value)))
    np.testing.assert_array_equal(picks, expected)
    # Every usable row excluded but one: the unusable (NaN) row comes after it.
    only = np.ones(n, bool)
    only[[5, 9]] = False
    top, top_values = best_in_pool(_Table(jnp.asarray(scores), jnp.zeros((0, 2))), pool, 2, only)
    np.testing.assert_array_equal(top, [9, 5])
    assert top_values[1] == -np.inf
