"""Acquisitions against high-precision closed forms, numpy GP references and
finite differences; the optimiser against known optima."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy import stats

import active_learning as al
import surrogates as sg
from active_learning import acquisition as aq
from surrogates.gp import NOISE_FLOOR
from acquisition_checks import fixed_gp, values, values_checked

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


# -- analytic acquisitions against independent references ---------------------
#
# The model is a small GP with fixed hyperparameters; the references use a
# closed-form numpy GP posterior written here, independent of surrogates.gp.

_LS, _NOISE = np.array([0.3, 0.45]), 0.02  # noise in standardised units


def _np_matern52(A, B, ls):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


class _NumpyGP:
    """Closed-form posterior of a zero-mean, unit-variance Matérn-5/2 GP on standardised y."""

    def __init__(self, X, y, noise):
        self.X, self.loc, self.scale = X, y.mean(), y.std(ddof=1)
        K = _np_matern52(X, X, _LS) + (noise + NOISE_FLOOR) * np.eye(len(X))
        self.Kinv = np.linalg.inv(K)
        self.alpha = self.Kinv @ ((y - self.loc) / self.scale)
        self.noise = (noise + NOISE_FLOOR) * self.scale**2  # in output units

    def posterior(self, Xq):
        """Mean (q,) and covariance (q, q) of f at Xq, in output units."""
        Kq = _np_matern52(Xq, self.X, _LS)
        cov = _np_matern52(Xq, Xq, _LS) - Kq @ self.Kinv @ Kq.T
        return self.loc + self.scale * Kq @ self.alpha, self.scale**2 * cov


def _gp(X, y, noise):
    return fixed_gp(X, y, noise, _LS)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(7, 2))
    y = np.sin(5 * X[:, 0]) + 0.5 * X[:, 1]
    Xq = np.array([[0.5, 0.5], [0.9, 0.1], [0.15, 0.8], [0.35, 0.3]])
    return X, y, Xq


@pytest.fixture(scope="module")
def noisy(data):
    X, y, _ = data
    return _gp(X, y, _NOISE), _NumpyGP(X, y, _NOISE)


@pytest.fixture(scope="module")
def noiseless(data):
    X, y, _ = data
    return _gp(X, y, 0.0), _NumpyGP(X, y, 0.0)


_values = values


def _values_checked(acq, X, h=1e-6, rtol=1e-5, atol=1e-7):
    return values_checked(acq, X, h=h, rtol=rtol, atol=atol)


def _log_ncdf(z):
    # log1p keeps log Phi(z) ~ -Phi(-z) for large z, where Phi(z) rounds to 1.
    return mpmath.log(mpmath.ncdf(z)) if z < 0 else mpmath.log1p(-mpmath.ncdf(-z))


_posterior = eqx.filter_jit(lambda model, X: model.posterior(X))


def _moments(model, X):
    post = _posterior(model, jnp.asarray(X))
    return np.asarray(post.mean[:, 0]), np.sqrt(np.asarray(post.variance[:, 0]))


def test_log_pi_matches_high_precision_with_exact_slope():
    zs = [-40.0, -25.0, -20.5, -8.0, -1.0, 0.0, 3.0, 9.0, 30.0]
    f = lambda m: aq.log_probability_of_improvement_from_moments(m, 1.0, 0.0)  # noqa: E731
    values, slopes = jax.jit(jax.vmap(jax.value_and_grad(f)))(jnp.asarray(zs))
    for z, value, slope in zip(zs, np.asarray(values), np.asarray(slopes)):
        zz = mpmath.mpf(z)
        assert value == pytest.approx(float(_log_ncdf(zz)), rel=1e-12)
        assert slope == pytest.approx(float(mpmath.npdf(zz) / mpmath.ncdf(zz)), rel=1e-9)


def test_log_pi_on_a_gp_matches_the_closed_form(noisy, data):
    model, ref = noisy
    _, y, Xq = data
    best = np.median(y)
    # Minimising: the probability of going below the incumbent.
    got = _values_checked(aq.LogProbabilityOfImprovement(model, jnp.asarray(best), sign=-1.0),
                          Xq)
    mean, cov = ref.posterior(Xq)
    np.testing.assert_allclose(got, stats.norm.logcdf((best - mean) / np.sqrt(np.diag(cov))),
                               rtol=1e-7)


def test_posterior_variance_is_the_closed_form_variance(noisy, data):
    model, ref = noisy
    got = _values_checked(aq.PosteriorVariance(model), data[2])
    np.testing.assert_allclose(got, np.diag(ref.posterior(data[2])[1]), rtol=1e-7)
    assert aq.MaxVariance is aq.PosteriorVariance


def test_integrated_variance_reduction_matches_numpy(noisy, data):
    model, ref = noisy
    Xq = np.random.default_rng(4).uniform(size=(10, 2))
    R = np.random.default_rng(5).uniform(size=(6, 2))
    w = np.linspace(1.0, 2.0, 6)
    cov = ref.posterior(np.concatenate([Xq, R]))[1]
    cross, var = cov[:10, 10:], np.diag(cov)[:10]
    got = _values_checked(
        aq.IntegratedVarianceReduction(model, jnp.asarray(R), ref.noise, jnp.asarray(w)), Xq[:3])
    np.testing.assert_allclose(got, (cross[:3] ** 2 @ w) / (var[:3] + ref.noise), rtol=1e-6)
    # Blocked evaluation (3 blocks, the last padded) gives the same values;
    # the default weights average over the reference set.
    blocked = _values(aq.IntegratedVarianceReduction(model, jnp.asarray(R), ref.noise, block=4),
                      Xq)
    np.testing.assert_allclose(np.asarray(blocked), (cross**2).mean(1) / (var + ref.noise),
                               rtol=1e-6)
    # It is the variance that observing x removes from the reference points:
    # compare with a numpy GP that has x among its (noisy) observations.
    after = _NumpyGP(np.concatenate([ref.X, Xq[:1]]), np.arange(len(ref.X) + 1.0), _NOISE)
    var_after = np.diag(after.posterior(R)[1]) / after.scale**2 * ref.scale**2
    assert got[0] == pytest.approx((np.diag(cov)[10:] - var_after) @ w, rel=1e-6)


def _mes_term_reference(g):
    g = mpmath.mpf(g)
    return mpmath.log(g * mpmath.npdf(g) / (2 * mpmath.ncdf(g)) - _log_ncdf(g))


def test_mes_term_is_accurate_in_both_tails():
    gs = [-1e6, -1e3, -30.0, -29.5, -3.0, -0.2, 0.0, 0.4, 2.0, 7.0, 30.0, 45.0]
    values, slopes = jax.jit(jax.vmap(jax.value_and_grad(aq.log_max_value_entropy_term)))(
        jnp.asarray(gs))
    for g, value, slope in zip(gs, np.asarray(values), np.asarray(slopes)):
        assert value == pytest.approx(float(_mes_term_reference(g)), rel=1e-10)
        assert slope == pytest.approx(float(mpmath.diff(_mes_term_reference, g)), rel=1e-7)


def test_mes_matches_its_per_sample_closed_form(noisy, data):
    model, _ = noisy
    _, y, Xq = data
    # Minimising: samples of the minimum value, below the data.
    y_star = y.min() - np.array([0.05, 0.4, 1.1])
    got = _values_checked(aq.MaxValueEntropySearch(model, jnp.asarray(y_star), sign=-1.0), Xq)
    mean, std = _moments(model, Xq)
    g = (mean[:, None] - y_star[None, :]) / std[:, None]
    terms = g * stats.norm.pdf(g) / (2 * stats.norm.cdf(g)) - stats.norm.logcdf(g)
    np.testing.assert_allclose(np.exp(got), terms.mean(axis=1), rtol=1e-9)


def test_exact_optimal_values_follow_the_posterior_maximum(noisy):
    model, ref = noisy
    C = np.random.default_rng(6).uniform(size=(40, 2))
    k = 2000
    got = np.asarray(aq.sample_optimal_values(model, jnp.asarray(C), jax.random.key(0), k))
    mean, cov = ref.posterior(C)
    draws = np.random.default_rng(7).multivariate_normal(mean, cov, size=200_000,
                                                         method="cholesky").max(axis=1)
    se = np.sqrt(draws.var() / k + draws.var() / draws.size)
    assert got.mean() == pytest.approx(draws.mean(), abs=4 * se)
    assert got.std() == pytest.approx(draws.std(), rel=0.1)


def test_gumbel_optimal_values_match_the_quartiles_of_the_independent_maximum(noisy):
    from scipy.optimize import brentq

    model, ref = noisy
    C = np.random.default_rng(6).uniform(size=(40, 2))
    mean, cov = ref.posterior(C)
    std = np.sqrt(np.diag(cov))
    quartile = [brentq(lambda t, p=p: stats.norm.logcdf((t - mean) / std).sum() - np.log(p),
                       -10, 10, xtol=1e-12) for p in (0.25, 0.5, 0.75)]
    k = 20_000
    got = np.asarray(aq.sample_optimal_values(model, jnp.asarray(C), jax.random.key(1), k,
                                              method="gumbel"))
    # Sample quantiles: standard error sqrt(p (1 - p) / k) / density.
    b = (quartile[2] - quartile[0]) / (np.log(-np.log(0.25)) - np.log(-np.log(0.75)))
    for p, q in zip((0.25, 0.5, 0.75), quartile):
        density = -np.log(p) * p / b
        se = np.sqrt(p * (1 - p) / k) / density
        assert np.quantile(got, p) == pytest.approx(q, abs=4 * se)
    with pytest.raises(ValueError, match="method"):
        aq.sample_optimal_values(model, jnp.asarray(C), jax.random.key(1), 3, method="typo")


def _log_nei(model, X):
    return aq.LogNoisyExpectedImprovement(model, jnp.asarray(X), num_samples=1024)


def test_log_nei_without_noise_is_log_ei_at_the_best_observation(noiseless, data):
    model, ref = noiseless
    X, y, Xq = data
    nei = _values_checked(_log_nei(model, X), Xq, rtol=1e-4)
    mean, std = _moments(model, Xq)
    z = (mean - y.max()) / std
    h = stats.norm.pdf(z) + z * stats.norm.cdf(z)
    # The only difference is the latent incumbent's spread (posterior std at
    # the data, ~1e-3 of y's scale): bound its effect to first order.
    spread = 3 * np.sqrt(np.diag(ref.posterior(X)[1]).max())
    dlog_ei_dbest = stats.norm.cdf(z) / (std * h)
    np.testing.assert_array_less(np.abs(nei - np.log(std * h)), dlog_ei_dbest * spread + 1e-6)


def test_log_nei_matches_brute_force_monte_carlo(noisy, data):
    model, ref = noisy
    X, _, Xq = data
    n = len(X)
    got = _values_checked(_log_nei(model, X), Xq, rtol=1e-4)
    rng = np.random.default_rng(9)
    for i, x in enumerate(Xq):
        mean, cov = ref.posterior(np.concatenate([X, x[None]]))
        f = rng.multivariate_normal(mean, cov, size=400_000, method="cholesky")
        imp = np.maximum(f[:, n] - f[:, :n].max(axis=1), 0.0)
        # Error budget: brute force's standard error plus an iid bound on the
        # acquisition's own 1024 incumbent draws (Sobol does better).
        rel = imp.std() / imp.mean() * (1 / np.sqrt(imp.size) + 1 / np.sqrt(1024))
        assert got[i] == pytest.approx(np.log(imp.mean()), abs=4 * rel)


def test_cost_aware_divides_by_the_cost(noisy, data):
    model, _ = noisy
    _, y, Xq = data
    cost = lambda X: 1.0 + 3.0 * X[..., 0] ** 2  # noqa: E731
    c = 1.0 + 3.0 * Xq[:, 0] ** 2
    mean, std = _moments(model, Xq)
    z = (mean - y.max()) / std
    log_ei = np.log(std * (stats.norm.pdf(z) + z * stats.norm.cdf(z)))
    got = _values_checked(
        aq.CostAware(aq.LogExpectedImprovement(model, jnp.asarray(y.max())), cost, exponent=0.5),
        Xq)
    np.testing.assert_allclose(got, log_ei - 0.5 * np.log(c), rtol=1e-9)
    got = _values(aq.CostAware(aq.PosteriorVariance(model), cost), Xq)
    np.testing.assert_allclose(np.asarray(got), std**2 / c, rtol=1e-9)
    with pytest.raises(ValueError, match="log_space"):
        aq.CostAware(_Quadratic(jnp.zeros(2)), cost)
    assert aq.CostAware(_Quadratic(jnp.zeros(2)), cost, log_space=False).log_space is False
