"""The SAAS fully Bayesian GP against closed forms and a known sparse function."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import surrogates  # noqa: F401  (enables float64)
from surrogates import saas
from surrogates import compiled_programs


def _matern52_np(A, B, ls, var):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return var * (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def _samples(ls, outputscale, noise, mean):
    """Hyperparameters with leading (m, S) axes from per-sample lists."""
    ls = np.asarray(ls, float)
    return saas.SAASHyperparameters(
        tau=np.ones(ls.shape[:-1]), inverse_lengthscale=1.0 / ls,
        outputscale=np.asarray(outputscale, float), noise=np.asarray(noise, float),
        mean=np.asarray(mean, float),
    )


def _component_np(Z, ys, Zq, ls, s, noise, mean):
    """Exact GP posterior mean and covariance in standardised units (numpy)."""
    K = _matern52_np(Z, Z, ls, s) + (noise + 1e-9) * np.eye(len(Z))
    Ks = _matern52_np(Zq, Z, ls, s)
    mu = mean + Ks @ np.linalg.solve(K, ys - mean)
    cov = _matern52_np(Zq, Zq, ls, s) - Ks @ np.linalg.solve(K, Ks.T)
    return mu, cov


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1.0, 3.0, size=(11, 3))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] ** 2, np.cos(X[:, 2]) - X[:, 0]], axis=1)
    bounds = (np.full(3, -1.0), np.full(3, 3.0))
    Xq = rng.uniform(-1.0, 3.0, size=(5, 3))
    return X, Y, bounds, Xq


def _standardised(X, Y, Xq, bounds):
    lower, span = bounds[0], bounds[1] - bounds[0]
    loc, scale = Y.mean(axis=0), Y.std(axis=0, ddof=1)
    return (X - lower) / span, (Y - loc) / scale, (Xq - lower) / span, loc, scale


def test_single_sample_equals_the_exact_gp(data):
    X, Y, bounds, Xq = data
    ls = [[[0.3, 0.7, 1.5]], [[0.9, 0.4, 0.6]]]  # (m=2, S=1, d=3)
    theta = _samples(ls, [[1.3], [0.7]], [[0.01], [0.05]], [[0.2], [-0.1]])
    model = saas.saas_gp_from_samples(X, Y, theta, bounds=bounds)
    post = model.posterior(Xq, full_cov=True)
    Z, Ys, Zq, loc, scale = _standardised(X, Y, Xq, bounds)
    for j in range(2):
        mu, cov = _component_np(Z, Ys[:, j], Zq, np.asarray(ls[j][0]), theta.outputscale[j, 0],
                                theta.noise[j, 0], theta.mean[j, 0])
        np.testing.assert_allclose(post.mean[:, j], mu * scale[j] + loc[j], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(post.variance[:, j], np.diag(cov) * scale[j] ** 2, rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(post.covariance[j], cov * scale[j] ** 2, rtol=1e-8,
                                   atol=1e-10)


def test_mixture_moments_follow_the_law_of_total_variance(data):
    X, Y, bounds, Xq = data
    y = Y[:, :1]
    ls = [[[0.3, 0.7, 1.5], [2.0, 0.2, 0.5]]]  # (m=1, S=2, d=3)
    theta = _samples(ls, [[1.3, 0.4]], [[0.01, 0.1]], [[0.2, -0.5]])
    model = saas.saas_gp_from_samples(X, y, theta, bounds=bounds)
    post = model.posterior(Xq, full_cov=True)
    Z, ys, Zq, loc, scale = _standardised(X, y, Xq, bounds)
    (m1, c1), (m2, c2) = (
        _component_np(Z, ys[:, 0], Zq, np.asarray(ls[0][s]), theta.outputscale[0, s],
                      theta.noise[0, s], theta.mean[0, s])
        for s in range(2)
    )
    # By hand for two equal-weight components: E[cov] + (m1 - m2)(m1 - m2)^T / 4.
    mean = 0.5 * (m1 + m2)
    cov = 0.5 * (c1 + c2) + np.outer(m1 - m2, m1 - m2) / 4.0
    np.testing.assert_allclose(post.mean[:, 0], mean * scale[0] + loc[0], rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale[0] ** 2, rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_allclose(post.covariance[0], cov * scale[0] ** 2, rtol=1e-8, atol=1e-10)
    # Padding to a larger bucket changes nothing.
    wide = saas.saas_gp_from_samples(X, y, theta, bounds=bounds, capacity=40).posterior(Xq)
    np.testing.assert_allclose(wide.mean, post.mean, atol=1e-10)
    np.testing.assert_allclose(wide.variance, post.variance, atol=1e-10)
    # Joint samples of the moment-matched Gaussian have those moments.
    draws = post.sample(jax.random.key(0), 20000)
    assert draws.shape == (20000, 5, 1)
    np.testing.assert_allclose(np.cov(np.asarray(draws[:, :, 0]).T), post.covariance[0],
                               rtol=0.1, atol=0.02 * float(np.max(post.variance)))


def test_condition_equals_the_closed_form_on_all_data(data):
    X, Y, bounds, Xq = data
    y = Y[:, 1:]
    ls = [[[0.5, 0.5, 0.8], [0.3, 1.0, 0.4]]]
    theta = _samples(ls, [[1.0, 2.0]], [[0.02, 0.01]], [[0.0, 0.3]])
    base = saas.saas_gp_from_samples(X[:8], y[:8], theta, bounds=bounds, capacity=11)
    cond = base.condition(jnp.asarray(X[8:]), jnp.asarray(y[8:]))
    # Conditioning keeps the first fit's standardisation.
    loc, scale = float(base.y_loc[0]), float(base.y_scale[0])
    lower, span = bounds[0], bounds[1] - bounds[0]
    Z, Zq, ys = (X - lower) / span, (Xq - lower) / span, (y[:, 0] - loc) / scale
    mus = [_component_np(Z, ys, Zq, np.asarray(ls[0][s]), theta.outputscale[0, s],
                         theta.noise[0, s], theta.mean[0, s])[0] for s in range(2)]
    np.testing.assert_allclose(cond.posterior(Xq).mean[:, 0], np.mean(mus, axis=0) * scale + loc,
                               rtol=1e-8, atol=1e-8)
    assert cond.capacity == 32  # the smallest bucket: 11 used, 21 free
    more = np.tile(X, (2, 1))[:22]
    with pytest.raises(ValueError, match="slots"):
        cond.condition(jnp.asarray(more), jnp.asarray(np.tile(y, (2, 1))[:22]))


def test_log_prior_is_the_saas_prior_in_log_coordinates():
    z = {"log_tau": jnp.asarray(-1.7), "log_raw": jnp.asarray([0.3, -2.0, 1.1]),
         "log_outputscale": jnp.asarray(0.4), "log_noise": jnp.asarray(-3.0),
         "mean": jnp.asarray(0.25)}
    tau, raw = math.exp(-1.7), np.exp([0.3, -2.0, 1.1])
    # rho_i = tau * raw_i with raw_i ~ HC(1) is rho_i ~ HC(tau); densities of
    # the log coordinates carry the Jacobian |d x / d log x| = x.
    expected = (
        stats.halfcauchy.logpdf(tau, scale=0.1) + math.log(tau)
        + np.sum(stats.halfcauchy.logpdf(raw) + np.log(raw))
        + stats.gamma.logpdf(math.exp(0.4), 2.0, scale=1 / 0.15) + 0.4
        + stats.gamma.logpdf(math.exp(-3.0), 0.9, scale=1 / 10.0) - 3.0
        + stats.norm.logpdf(0.25)
    )
    assert float(saas.log_prior(z)) == pytest.approx(expected, rel=1e-12)


def test_potential_gradient_matches_finite_differences(data):
    X, Y, bounds, _ = data
    Z = jnp.asarray((X - bounds[0]) / (bounds[1] - bounds[0]))
    y = jnp.asarray((Y[:, 0] - Y[:, 0].mean()) / Y[:, 0].std())
    mask = jnp.ones(len(y)).at[-2:].set(0.0)  # padded rows must not matter either
    z = {"log_tau": jnp.asarray(-1.0), "log_raw": jnp.asarray([0.5, -0.2, 1.0]),
         "log_outputscale": jnp.asarray(0.1), "log_noise": jnp.asarray(-2.5),
         "mean": jnp.asarray(0.1)}
    flat, unravel = jax.flatten_util.ravel_pytree(z)
    # One compiled program for all the 2p evaluations.
    objective = jax.jit(lambda v: saas.potential_energy(unravel(v), Z, y, mask))
    f = lambda v: float(objective(v))  # noqa: E731
    grad, _ = jax.flatten_util.ravel_pytree(jax.jit(jax.grad(saas.potential_energy))(z, Z, y, mask))
    h = 1e-6
    fd = np.array([(f(flat.at[i].add(h)) - f(flat.at[i].add(-h))) / (2 * h)
                   for i in range(flat.size)])
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-6, atol=1e-6)


def _sparse_function(X):
    """A sum of quadratics in the first three of many inputs."""
    return 4.0 * ((X[:, 0] - 0.2) ** 2 + (X[:, 1] - 0.8) ** 2 + (X[:, 2] - 0.35) ** 2)


_NUTS = dict(num_warmup=128, num_samples=64, num_chains=2, thinning=8)


def test_nuts_finds_the_three_active_dimensions_of_thirty():
    d, n = 30, 32
    X = np.random.default_rng(0).uniform(size=(n, d))
    bounds = (np.zeros(d), np.ones(d))
    before = compiled_programs()["saas.fit"]
    model = saas.fit_saas_gp(X, _sparse_function(X), key=jax.random.key(0), bounds=bounds,
                             **_NUTS)
    assert model.lengthscale.shape == (1, 16, d) and model.cholesky.shape == (1, 16, 32, 32)
    ls = np.asarray(model.median_lengthscale[0])
    assert np.max(ls[:3]) < np.min(ls[3:]) / 3.0, ls
    assert int(model.num_divergent[0]) <= 4
    Xq = np.random.default_rng(1).uniform(size=(100, d))
    post = model.posterior(Xq)
    err = np.asarray(post.mean[:, 0]) - _sparse_function(Xq)
    # Having found the subspace, it predicts out of sample.
    assert np.sqrt(np.mean(err**2)) < 0.25 * np.std(_sparse_function(Xq))
    # A refit on fewer points in the same bucket reuses the compiled sampler.
    saas.fit_saas_gp(X[:29], _sparse_function(X[:29]), key=jax.random.key(1), bounds=bounds,
                     **_NUTS)
    assert compiled_programs()["saas.fit"] - before == 1


def test_vectorized_chains_draw_what_sequential_chains_draw():
    # numpyro's "vectorized" chains (vmap, the accelerator default) and the CPU
    # default's lax.map must be the same sampler; a few steps, before rounding
    # differences between batched and unbatched algebra grow, agree exactly.
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(10, 2))
    Y = np.stack([np.sin(4 * X[:, 0]) + X[:, 1], X[:, 0] - X[:, 1] ** 2], axis=1)
    tiny = dict(num_warmup=2, num_samples=2, num_chains=3, thinning=1)
    fits = [saas.fit_saas_gp(X, Y, key=jax.random.key(3), chain_method=method, **tiny)
            for method in ("sequential", "vectorized")]
    assert fits[0].lengthscale.shape == (2, 6, 2)
    for a, b in zip(jax.tree.leaves(fits[0].hyperparameters),
                    jax.tree.leaves(fits[1].hyperparameters)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_invalid_sampler_settings_are_refused():
    X = np.zeros((3, 2))
    with pytest.raises(ValueError, match="thinning"):
        saas.fit_saas_gp(X, X[:, 0], key=jax.random.key(0), num_samples=4, thinning=8)
    with pytest.raises(ValueError, match="chain_method"):
        saas.fit_saas_gp(X, X[:, 0], key=jax.random.key(0), chain_method="parallel")
