"""log-EI against high-precision closed forms; the optimiser against known optima."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import active_learning as al
import surrogates as sg

mpmath.mp.dps = 60


def _log_h_reference(z: float) -> float:
    zz = mpmath.mpf(z)
    h = mpmath.npdf(zz) + zz * mpmath.ncdf(zz)
    return float(mpmath.log(h))


@pytest.mark.parametrize("z", [-35.0, -25.0, -20.5, -20.0, -19.5, -12.0, -5.0, -1.0,
                               -0.3, 0.0, 0.7, 3.0, 8.0])
def test_log_h_matches_high_precision(z):
    assert float(al.log_h(jnp.asarray(z))) == pytest.approx(_log_h_reference(z), rel=1e-10,
                                                            abs=1e-10)


def test_log_ei_equals_log_of_closed_form_where_representable():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=200)
    std = np.exp(rng.normal(size=200))
    best = 0.4
    ei = np.asarray(al.expected_improvement(mean, std, best))
    log_ei = np.asarray(al.log_expected_improvement_from_moments(mean, std, best))
    ok = ei > 1e-300
    assert ok.sum() > 150
    np.testing.assert_allclose(log_ei[ok], np.log(ei[ok]), rtol=1e-9, atol=1e-9)


def test_log_ei_is_finite_with_the_right_slope_far_from_the_incumbent():
    # Plain EI underflows to 0 here; log-EI keeps value and gradient.
    zs = jnp.asarray([-40.0, -1e3, -1e6])
    assert float(al.expected_improvement(jnp.asarray(-40.0), 1.0, 0.0)) == 0.0
    values = al.log_h(zs)
    slopes = jax.vmap(jax.grad(al.log_h))(zs)
    assert np.all(np.isfinite(np.asarray(values))) and np.all(np.isfinite(np.asarray(slopes)))
    # Exact slope, from 60-digit arithmetic (about -z - 2/z out here).
    exact = [float(mpmath.diff(lambda t: mpmath.log(mpmath.npdf(t) + t * mpmath.ncdf(t)),
                               mpmath.mpf(float(z)))) for z in zs]
    np.testing.assert_allclose(np.asarray(slopes), exact, rtol=1e-9)
    # Continuity at the switch between the direct formula and the tail series.
    left, right = al.log_h(jnp.asarray(-20.0 - 1e-9)), al.log_h(jnp.asarray(-20.0 + 1e-9))
    assert abs(float(left) - float(right)) < 1e-7


def test_log_ei_gradient_matches_finite_differences():
    f = lambda m: al.log_expected_improvement_from_moments(m, 0.3, 1.0)  # noqa: E731
    for m in [-4.0, 0.2, 0.9, 1.5]:
        h = 1e-6
        fd = (float(f(m + h)) - float(f(m - h))) / (2 * h)
        assert float(jax.grad(f)(m)) == pytest.approx(fd, rel=1e-6)


class _Quadratic(eqx.Module):
    """An acquisition with a known maximiser, to test the optimiser alone."""

    centre: jax.Array

    def __call__(self, X):
        return -jnp.sum((X - self.centre) ** 2, axis=-1)


def test_optimiser_finds_interior_and_boundary_maxima():
    for centre in ([0.3, 0.7, 0.55], [1.4, -0.2, 0.5]):
        x, v = al.maximize_acquisition(_Quadratic(jnp.asarray(centre)), al.Domain(3),
                                       jax.random.key(0))
        expected = np.clip(centre, 0.0, 1.0)
        np.testing.assert_allclose(np.asarray(x), expected, atol=1e-3)


def test_optimiser_returns_valid_integer_and_categorical_values():
    domain = al.Domain(dim=5, integer=((0, 5),), onehot=((2, 3, 4),))
    # Best relaxed point: column 0 at 0.62 (between grid points 0.5 and 0.75),
    # category 1 preferred.
    centre = jnp.asarray([0.62, 0.4, 0.1, 0.9, 0.2])
    x, _ = al.maximize_acquisition(_Quadratic(centre), domain, jax.random.key(1))
    x = np.asarray(x)
    assert x[0] * 4 == pytest.approx(round(x[0] * 4))
    assert x[0] == pytest.approx(0.5)
    np.testing.assert_array_equal(x[2:], [0.0, 1.0, 0.0])
    assert x[1] == pytest.approx(0.4, abs=1e-3)


def test_log_ei_optimum_on_a_fitted_gp_beats_random_candidates():
    rng = np.random.default_rng(1)
    X = rng.uniform(size=(12, 2))
    y = np.sin(5 * X[:, 0]) * np.cos(3 * X[:, 1])
    model = sg.fit_gp(X, y, key=jax.random.key(0), bounds=(np.zeros(2), np.ones(2)))
    acq = al.LogExpectedImprovement(model, jnp.asarray(y.max()))
    x, v = al.maximize_acquisition(acq, al.Domain(2), jax.random.key(2))
    dense = jnp.asarray(np.stack(np.meshgrid(np.linspace(0, 1, 201), np.linspace(0, 1, 201)),
                                 -1).reshape(-1, 2))
    assert float(v) >= float(jnp.max(acq(dense))) - 1e-3
    assert float(v) == pytest.approx(float(acq(x[None])[0]))


def test_sobol_design_is_a_stable_prefix():
    d = al.Domain(3)
    a = al.sobol(5, d, seed=7)
    b = al.sobol(12, d, seed=7)
    np.testing.assert_array_equal(a, b[:5])
    assert not np.allclose(al.sobol(5, d, seed=8), a)
    assert np.all((b >= 0) & (b <= 1))


def test_quasi_random_points_fill_the_cube():
    pts = np.asarray(al.quasi_random(jax.random.key(0), 1024, 2))
    counts, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=8, range=[[0, 1], [0, 1]])
    # 16 expected per cell; a low-discrepancy set stays close to it.
    assert counts.min() >= 10 and counts.max() <= 22
    assert math.isclose(pts.mean(), 0.5, abs_tol=0.02)
