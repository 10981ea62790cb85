"""The sparse variational GP against the exact GP and closed forms in numpy."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates  # noqa: F401  (enables float64)
from surrogates import svgp as S
from surrogates import compiled_programs


@pytest.fixture(scope="module", autouse=True)
def _one_blas_thread():
    """jaxlib runs CPU Cholesky and triangular solves in scipy's OpenBLAS; on a
    busy machine its threads contend with XLA's and a 64 x 64 Cholesky
    gradient took 17 ms instead of 0.2 ms, so this file uses one BLAS thread.
    threadpoolctl limits only libraries already loaded: import scipy.linalg first."""
    try:
        import scipy.linalg  # noqa: F401
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only speed depends on it
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def _matern52_np(A, B, ls, var):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return var * (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def _theta_np(model, j=0):
    th = jax.tree.map(lambda a: np.asarray(a)[j], model.hyperparameters)
    return (np.exp(th.log_lengthscale), float(np.exp(th.log_variance)),
            float(S.NOISE_FLOOR + np.exp(th.log_noise)), float(th.mean))


def _scaled(model, X, y, j=0):
    Xs = (X - np.asarray(model.lower)) / np.asarray(model.span)
    return Xs, (y - float(model.y_loc[j])) / float(model.y_scale[j])


def _exact_np(model, X, y, Xq):
    """Exact GP mean at Xq (output units) and log marginal likelihood of the
    standardised targets, with the SVGP's hyperparameters."""
    ls, var, noise, mean = _theta_np(model)
    Xs, ys = _scaled(model, X, y)
    Xqs = (Xq - np.asarray(model.lower)) / np.asarray(model.span)
    K = _matern52_np(Xs, Xs, ls, var) + noise * np.eye(len(Xs))
    L = np.linalg.cholesky(K)
    alpha = np.linalg.solve(K, ys - mean)
    mu = mean + _matern52_np(Xqs, Xs, ls, var) @ alpha
    lml = (-0.5 * (ys - mean) @ alpha - np.sum(np.log(np.diag(L)))
           - 0.5 * len(Xs) * math.log(2 * math.pi))
    return mu * float(model.y_scale[0]) + float(model.y_loc[0]), lml


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(300, 1))
    return X, np.sin(8.0 * X[:, 0]) + 0.1 * rng.normal(size=300)


# Enough steps to converge (at 300 the result depended on the XLA thread count).
FIT = dict(num_inducing=64, batch_size=512, steps=1000, learning_rate=0.02)


@pytest.fixture(scope="module")
def model(data):
    X, y = data
    return S.fit_svgp(X, y, key=jax.random.key(0), **FIT)


def test_posterior_mean_matches_the_exact_gp(data, model):
    X, y = data
    Xq = np.linspace(0.0, 1.0, 101)[:, None]
    exact, _ = _exact_np(model, X, y, Xq)
    post = model.posterior(Xq)
    assert np.max(np.abs(np.asarray(post.mean[:, 0]) - exact)) < 0.05 * y.std()


def test_elbo_is_a_lower_bound_on_the_exact_marginal_likelihood(data, model):
    X, y = data
    _, lml = _exact_np(model, X, y, X[:2])
    collapsed = float(model.collapsed_elbo(X, y)[0])
    worse = eqx.tree_at(lambda g: (g.q_mean, g.q_sqrt), model,
                        (model.q_mean + 0.1, 0.5 * model.q_sqrt))
    assert float(worse.elbo(X, y)[0]) < collapsed
    assert collapsed <= lml
    # and a tight one with 64 inducing points (gap 0.23 nats of 129 when converged)
    assert lml - collapsed < 0.1 * abs(lml)


def test_optimal_q_attains_the_collapsed_bound(data, model):
    X, y = data
    collapsed = float(model.collapsed_elbo(X, y)[0])
    np.testing.assert_allclose(float(model.elbo(X, y)[0]), collapsed, rtol=1e-9)
    worse = eqx.tree_at(lambda g: g.q_mean, model, model.q_mean + 0.1)
    restored = worse.with_optimal_variational(X, y)
    np.testing.assert_allclose(restored.q_mean, model.q_mean, rtol=1e-8, atol=1e-10)


def test_inducing_points_at_the_data_recover_the_exact_marginal_likelihood(data):
    X, y = data
    X, y = X[:40], y[:40]
    theta = S.SVGPHyperparameters(
        log_lengthscale=np.log([[0.2]]), log_variance=np.log([1.3]),
        log_noise=np.log([0.05]), mean=np.array([0.1]),
    )
    model = S.fit_svgp(X, y, key=jax.random.key(1), inducing_points=X, hyperparameters=theta,
                       steps=0, jitter=1e-12)
    _, lml = _exact_np(model, X, y, X[:2])
    np.testing.assert_allclose(float(model.collapsed_elbo(X, y)[0]), lml, rtol=1e-6)
    np.testing.assert_allclose(float(model.elbo(X, y)[0]), lml, rtol=1e-6)


def test_predictive_matches_the_svgp_closed_form(model):
    ls, var, noise, mean = _theta_np(model)
    Z = np.asarray(model.Z[0])
    Kzz = _matern52_np(Z, Z, ls, var) + model.jitter * var * np.eye(len(Z))
    L = np.linalg.cholesky(Kzz)
    m, Sq = np.asarray(model.q_mean[0]), np.asarray(model.q_sqrt[0])
    Xq = np.linspace(-0.2, 1.2, 9)[:, None]
    Xqs = (Xq - np.asarray(model.lower)) / np.asarray(model.span)
    A = np.linalg.solve(L, _matern52_np(Z, Xqs, ls, var))
    mu = mean + A.T @ m
    cov = _matern52_np(Xqs, Xqs, ls, var) - A.T @ A + A.T @ Sq @ Sq.T @ A
    loc, scale = float(model.y_loc[0]), float(model.y_scale[0])
    post = model.posterior(Xq, full_cov=True)
    np.testing.assert_allclose(post.mean[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-6)
    noisy = model.posterior(Xq, observation_noise=True)
    np.testing.assert_allclose(noisy.variance[:, 0], (np.diag(cov) + noise) * scale**2,
                               rtol=1e-6)
    draws = post.sample(jax.random.key(3), 16)
    assert draws.shape == (16, 9, 1) and bool(jnp.all(jnp.isfinite(draws)))


def test_fit_is_bit_identical_for_a_fixed_key(data, model):
    X, y = data
    again = S.fit_svgp(X, y, key=jax.random.key(0), **FIT)
    same = jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), model, again)
    assert all(jax.tree.leaves(same))


def test_kmeanspp_seeds_one_centre_per_cluster():
    rng = np.random.default_rng(2)
    centres = np.array([[0.1, 0.1], [0.9, 0.2], [0.5, 0.9]])
    X = np.concatenate([c + 1e-3 * rng.normal(size=(50, 2)) for c in centres])
    model = S.fit_svgp(X, X[:, 0], key=jax.random.key(4), num_inducing=3, steps=0,
                       optimal_variational=False, bounds=(np.zeros(2), np.ones(2)))
    Z = np.asarray(model.Z[0])
    nearest = np.argmin(((Z[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert sorted(nearest) == [0, 1, 2]
    assert all(np.any(np.all(X == z, axis=1)) for z in Z)  # centres are data rows


def test_minibatch_training_with_two_outputs_and_missing_values():
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(3000, 2))
    f = np.stack([np.sin(4 * X[:, 0]) + X[:, 1], np.cos(3 * X[:, 1])], axis=1)
    Y = f + 0.05 * rng.normal(size=f.shape)
    Y[rng.uniform(size=3000) < 0.2, 1] = np.nan
    kw = dict(num_inducing=32, batch_size=256, steps=300, learning_rate=0.02)
    before = compiled_programs()["svgp.train"]
    model = S.fit_svgp(X, Y, key=jax.random.key(5), **kw)
    S.fit_svgp(X[:2900], Y[:2900], key=jax.random.key(6), **kw)  # same 4096-row bucket
    assert compiled_programs()["svgp.train"] - before == 1
    Xq = rng.uniform(size=(200, 2))
    fq = np.stack([np.sin(4 * Xq[:, 0]) + Xq[:, 1], np.cos(3 * Xq[:, 1])], axis=1)
    post = model.posterior(Xq)
    rmse = np.sqrt(np.mean((np.asarray(post.mean) - fq) ** 2, axis=0))
    assert np.all(rmse < 0.1 * f.std(axis=0))
    assert np.all(model.elbo(X, Y) <= model.collapsed_elbo(X, Y) + 1e-9)
