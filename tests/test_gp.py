"""The exact GP against closed forms computed independently with numpy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates as sg
from surrogates import gp


def _matern52_np(A, B, ls, var):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return var * (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def _theta(d, ls, var, noise, mean, m=1):
    return sg.GPHyperparameters(
        log_lengthscale=np.log(np.tile(np.asarray(ls, float), (m, 1))),
        log_variance=np.full(m, math.log(var)),
        log_noise=np.full(m, math.log(noise - gp.NOISE_FLOOR)),
        mean=np.full(m, mean),
    )


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(-2.0, 5.0, size=(9, 3))
    y = np.sin(X[:, 0]) + 0.5 * X[:, 1] - 0.2 * X[:, 2] ** 2
    bounds = (np.array([-2.0, -2.0, -2.0]), np.array([5.0, 5.0, 5.0]))
    return X, y, bounds


def test_posterior_matches_closed_form(data):
    X, y, bounds = data
    ls, var, noise, mean = [0.3, 0.5, 0.8], 1.3, 0.01, 0.2
    model = sg.gp_from_hyperparameters(X, y, _theta(3, ls, var, noise, mean), bounds=bounds)
    Xq = np.random.default_rng(4).uniform(-2.0, 5.0, size=(6, 3))
    post = model.posterior(Xq, full_cov=True)

    # Independent numpy reference: scale inputs, standardise outputs, condition.
    lower, span = bounds[0], bounds[1] - bounds[0]
    Z, Zq = (X - lower) / span, (Xq - lower) / span
    loc, scale = y.mean(), y.std(ddof=1)
    ys = (y - loc) / scale
    K = _matern52_np(Z, Z, ls, var) + (noise + 1e-9) * np.eye(len(Z))
    Ks = _matern52_np(Zq, Z, ls, var)
    mu = mean + Ks @ np.linalg.solve(K, ys - mean)
    cov = _matern52_np(Zq, Zq, ls, var) - Ks @ np.linalg.solve(K, Ks.T)
    np.testing.assert_allclose(post.mean[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-8, atol=1e-10)


def test_padding_does_not_change_the_posterior(data):
    X, y, bounds = data
    theta = _theta(3, [0.4, 0.4, 0.9], 0.8, 0.02, 0.0)
    small = sg.gp_from_hyperparameters(X, y, theta, bounds=bounds)
    large = sg.gp_from_hyperparameters(X, y, theta, bounds=bounds, capacity=100)
    assert small.capacity == 16 and large.capacity == 128
    Xq = np.linspace(-2, 5, 7)[:, None].repeat(3, axis=1)
    np.testing.assert_allclose(small.posterior(Xq).mean, large.posterior(Xq).mean, atol=1e-10)
    np.testing.assert_allclose(small.posterior(Xq).variance, large.posterior(Xq).variance,
                               atol=1e-10)


def test_marginal_likelihood_matches_closed_form(data):
    X, y, bounds = data
    model = sg.fit_gp(X, y, key=jax.random.key(0), bounds=bounds)
    theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
    value = gp.negative_log_marginal_likelihood(theta, model.X, model.Y[:, 0], model.mask[:, 0])
    n = len(y)
    Z, ys = np.asarray(model.X[:n]), np.asarray(model.Y[:n, 0])
    K = _matern52_np(Z, Z, np.asarray(theta.lengthscale), float(theta.variance))
    K += (float(theta.noise) + 1e-9) * np.eye(n)
    r = ys - float(theta.mean)
    sign, logdet = np.linalg.slogdet(K)
    expected = 0.5 * r @ np.linalg.solve(K, r) + 0.5 * logdet + 0.5 * n * math.log(2 * math.pi)
    assert sign > 0
    assert float(value) == pytest.approx(expected, rel=1e-10)


def test_analytic_gradient_matches_finite_differences(data):
    X, y, bounds = data
    model = sg.gp_from_hyperparameters(X, y, _theta(3, [0.3, 0.6, 1.1], 0.9, 0.05, 0.1),
                                       bounds=bounds)
    theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
    Z, ys, mask = model.X, model.Y[:, 0], model.mask[:, 0]
    sqdiff = (Z[:, None, :] - Z[None, :, :]) ** 2
    value, grad = gp._nll_value_and_grad(theta, sqdiff, ys, mask)
    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    grad_flat, _ = jax.flatten_util.ravel_pytree(grad)

    def f(v):
        return float(gp.negative_log_marginal_likelihood(unravel(v), Z, ys, mask))

    assert float(value) == pytest.approx(f(flat), rel=1e-12)
    h = 1e-6
    fd = np.array([(f(flat.at[i].add(h)) - f(flat.at[i].add(-h))) / (2 * h)
                   for i in range(flat.size)])
    np.testing.assert_allclose(np.asarray(grad_flat), fd, rtol=1e-6, atol=1e-6)
    autodiff, _ = jax.flatten_util.ravel_pytree(
        jax.grad(gp.negative_log_marginal_likelihood)(theta, Z, ys, mask))
    np.testing.assert_allclose(np.asarray(grad_flat), np.asarray(autodiff), rtol=1e-9, atol=1e-9)


def test_map_fit_beats_every_restart_start_and_recovers_a_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 2))
    f = lambda x: np.sin(6 * x[:, 0]) + np.cos(4 * x[:, 1])  # noqa: E731
    model = sg.fit_gp(X, f(X), key=jax.random.key(1), bounds=(np.zeros(2), np.ones(2)))
    Xq = rng.uniform(size=(200, 2))
    post = model.posterior(Xq)
    err = np.abs(np.asarray(post.mean[:, 0]) - f(Xq))
    assert np.median(err) < 0.02
    # Calibrated: most errors inside two posterior standard deviations.
    assert np.mean(err < 2 * np.sqrt(np.asarray(post.variance[:, 0])) + 1e-3) > 0.9
    # Noise is learned small for a noiseless function.
    assert float(model.hyperparameters.noise[0]) < 1e-3


def test_fit_recompiles_once_per_bucket():
    rng = np.random.default_rng(5)
    before = gp._fit._cache_size()
    key = jax.random.key(0)
    for n in range(2, 65, 3):
        X = rng.uniform(size=(n, 4))
        sg.fit_gp(X, X.sum(1), key=key, bounds=(np.zeros(4), np.ones(4)), restarts=2)
    # n from 2 to 64 spans the buckets 16, 32 and 64: three programs, not 21.
    assert gp._fit._cache_size() - before <= 3


def test_missing_outputs_are_masked_per_output():
    rng = np.random.default_rng(7)
    X = rng.uniform(size=(12, 2))
    Y = np.stack([X.sum(1), X[:, 0] - X[:, 1]], axis=1)
    Y[3, 1] = np.nan
    model = sg.fit_gp(X, Y, key=jax.random.key(0), bounds=(np.zeros(2), np.ones(2)))
    assert float(model.mask[3, 1]) == 0.0 and float(model.mask[3, 0]) == 1.0
    assert np.all(np.isfinite(np.asarray(model.posterior(X).mean)))


def test_condition_equals_refit_with_fixed_hyperparameters(data):
    X, y, bounds = data
    theta = _theta(3, [0.5, 0.5, 0.5], 1.0, 0.01, 0.0)
    base = sg.gp_from_hyperparameters(X[:6], y[:6], theta, bounds=bounds, capacity=9)
    cond = base.condition(jnp.asarray(X[6:]), jnp.asarray(y[6:, None]))
    # Conditioning keeps the first fit's standardisation; compare against a GP
    # built on all data in the same output units.
    Xq = X[:4] + 0.1
    ref_mean = _posterior_mean_np(X, y, Xq, bounds, theta, base)
    np.testing.assert_allclose(np.asarray(cond.posterior(Xq).mean[:, 0]), ref_mean, rtol=1e-8,
                               atol=1e-8)


def _posterior_mean_np(X, y, Xq, bounds, theta, base):
    lower, span = bounds[0], bounds[1] - bounds[0]
    Z, Zq = (X - lower) / span, (Xq - lower) / span
    loc, scale = float(base.y_loc[0]), float(base.y_scale[0])
    ls = np.exp(theta.log_lengthscale[0])
    var = math.exp(theta.log_variance[0])
    noise = gp.NOISE_FLOOR + math.exp(theta.log_noise[0])
    K = _matern52_np(Z, Z, ls, var) + (noise + 1e-9) * np.eye(len(Z))
    ys = (y - loc) / scale
    mu = theta.mean[0] + _matern52_np(Zq, Z, ls, var) @ np.linalg.solve(K, ys - theta.mean[0])
    return mu * scale + loc


def test_joint_samples_have_the_posterior_moments(data):
    X, y, bounds = data
    model = sg.gp_from_hyperparameters(X, y, _theta(3, [0.5, 0.5, 0.5], 1.0, 0.01, 0.0),
                                       bounds=bounds)
    post = model.posterior(X[:3] + 0.3, full_cov=True)
    draws = post.sample(jax.random.key(0), 20000)
    assert draws.shape == (20000, 3, 1)
    np.testing.assert_allclose(np.mean(draws, axis=0), post.mean, atol=0.03)
    np.testing.assert_allclose(np.cov(np.asarray(draws[:, :, 0]).T), post.covariance[0],
                               rtol=0.1, atol=2e-3)


def test_conditioning_compiles_once_per_capacity_not_per_observation():
    rng = np.random.default_rng(9)
    X = rng.uniform(size=(20, 2))
    y = X.sum(1)
    theta = _theta(2, [0.5, 0.5], 1.0, 0.01, 0.0)
    before = gp._condition._cache_size()
    for n in range(3, 15):
        base = sg.gp_from_hyperparameters(X[:n], y[:n], theta, capacity=32)
        base.condition(jnp.asarray(X[n:n + 1]), jnp.asarray(y[n:n + 1, None]))
    assert gp._condition._cache_size() - before <= 1
