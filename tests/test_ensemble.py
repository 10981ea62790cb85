"""Deep ensembles and the Bayesian last layer against independent numpy references."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates  # noqa: F401  (enables float64)
from surrogates import ensemble as E
from surrogates import compiled_programs


def _f(x):
    return np.sin(2.0 * np.pi * x) + 0.3 * x


@pytest.fixture(scope="module")
def gap_data():
    """200 points on [0, 0.35] and [0.65, 1]: a gap and two edges to extrapolate over."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(0.0, 0.35, 100), rng.uniform(0.65, 1.0, 100)])
    X = x[:, None]
    return X, _f(x) + 0.01 * rng.normal(size=200)


@pytest.fixture(scope="module")
def ensemble(gap_data):
    X, y = gap_data
    kw = dict(key=jax.random.key(0), members=5, hidden=(32, 32), epochs=0, min_steps=2000,
              batch_size=64, learning_rate=1e-2, bounds=(np.zeros(1), np.ones(1)))
    return E.fit_ensemble(X, y, **kw), E.fit_ensemble(X, y, **kw)


def test_ensemble_is_accurate_near_data_and_uncertain_away_from_it(gap_data, ensemble):
    X, y = gap_data
    model, _ = ensemble
    rng = np.random.default_rng(1)
    xt = np.concatenate([rng.uniform(0.0, 0.35, 100), rng.uniform(0.65, 1.0, 100)])
    post = model.posterior(xt[:, None])
    rmse = np.sqrt(np.mean((np.asarray(post.mean[:, 0]) - _f(xt)) ** 2))
    assert rmse < 0.05 * y.std()
    at_data = np.median(np.asarray(model.epistemic_variance(X)))
    in_gap = np.asarray(model.epistemic_variance(np.array([[0.5]])))[0, 0]
    outside = np.asarray(model.epistemic_variance(np.array([[-0.5], [1.5]])))
    assert in_gap > 10.0 * at_data
    assert np.all(outside > 100.0 * at_data)


def test_fit_is_bit_identical_for_a_fixed_key(ensemble):
    a, b = ensemble
    same = jax.tree.map(lambda u, v: bool(jnp.array_equal(u, v)), a, b)
    assert all(jax.tree.leaves(same))


def test_posterior_is_the_mixture_of_the_members(ensemble):
    model, _ = ensemble
    Xq = np.linspace(-0.2, 1.2, 7)[:, None]
    mu, alea = (np.asarray(a) for a in model.member_predictions(Xq))  # (M, q, m)
    mean = mu.mean(axis=0)
    epistemic = ((mu - mean) ** 2).mean(axis=0)
    post = model.posterior(Xq, full_cov=True)
    np.testing.assert_allclose(post.mean, mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(post.variance, epistemic + alea.mean(axis=0), rtol=1e-12)
    cov = np.einsum("ki,kj->ij", mu[..., 0] - mean[:, 0], mu[..., 0] - mean[:, 0]) / mu.shape[0]
    np.testing.assert_allclose(post.covariance[0], cov + np.diag(alea.mean(axis=0)[:, 0]),
                               rtol=1e-10, atol=1e-14)
    latent = model.posterior(Xq, full_cov=True, observation_noise=False)
    np.testing.assert_allclose(latent.variance, epistemic, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(model.epistemic_variance(Xq), epistemic, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.diagonal(latent.covariance[0]), epistemic[:, 0], rtol=1e-10)
    draws = latent.sample(jax.random.key(2), 64)
    assert draws.shape == (64, 7, 1) and bool(jnp.all(jnp.isfinite(draws)))


@pytest.fixture(scope="module")
def small():
    """A small two-output problem with a missing value, for the cheap tests."""
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(40, 2))
    Y = np.stack([np.sin(3 * X[:, 0]) + X[:, 1], np.cos(2 * X[:, 1])], axis=1)
    Y[3, 1] = np.nan
    kw = dict(members=3, hidden=(8,), epochs=0, min_steps=30, batch_size=16,
              learning_rate=1e-2, weight_decay=1e-4)
    return X, Y, kw


def test_vmapped_members_train_exactly_as_one_by_one(small):
    """One vmapped program must train member i as if it were alone with key i: an
    ensemble of one, then of two, with the same key gives the same first members."""
    X, Y, kw = small
    key = jax.random.key(3)
    # JAX's split keys are a prefix of each other's (partitionable Threefry), so
    # member i gets the same key split(key, M)[i] whatever the number M.
    np.testing.assert_array_equal(jax.random.key_data(jax.random.split(key, 3))[:2],
                                  jax.random.key_data(jax.random.split(key, 2)))
    model = E.fit_ensemble(X, Y, key=key, **kw)
    for size in (1, 2):  # member 0 alone; member 1 beside member 0 only
        fewer = E.fit_ensemble(X, Y, key=key, **{**kw, "members": size})
        for u, v in zip(jax.tree.leaves(fewer.members), jax.tree.leaves(model.members)):
            np.testing.assert_allclose(u, v[:size], rtol=1e-4, atol=1e-5)


def test_growing_data_compiles_once_per_bucket(small):
    X, Y, kw = small
    before = compiled_programs()["ensemble.train"]
    for n in (33, 37, 40):  # all in the 64-row bucket
        model = E.fit_ensemble(X[:n], Y[:n], key=jax.random.key(n), **kw)
    assert compiled_programs()["ensemble.train"] - before <= 1
    post = model.posterior(X[:5])
    assert post.mean.shape == (5, 2) and bool(jnp.all(jnp.isfinite(post.variance)))


# -- Bayesian last layer ---------------------------------------------------------------


def _blr_numpy(Phi, y, alpha, beta, Phiq):
    """Bayesian linear regression (Bishop 3.3): posterior predictive of the latent."""
    A = alpha * np.eye(Phi.shape[1]) + beta * Phi.T @ Phi
    w = beta * np.linalg.solve(A, Phi.T @ y)
    cov = Phiq @ np.linalg.solve(A, Phiq.T)
    return Phiq @ w, cov


def _log_evidence_numpy(Phi, y, log_a, log_b):
    a, b = math.exp(log_a), math.exp(log_b)
    n, p = Phi.shape
    C = np.eye(n) / b + Phi @ Phi.T / a  # marginal covariance of y
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (y @ np.linalg.solve(C, y) + logdet + n * math.log(2 * math.pi))


@pytest.fixture(scope="module")
def bll(gap_data):
    X, y = gap_data
    noisy = y + 0.1 * np.random.default_rng(7).normal(size=y.shape)
    model = E.fit_bll(X, noisy, key=jax.random.key(4), hidden=(32, 32), epochs=0,
                      min_steps=1000, batch_size=64, learning_rate=1e-2,
                      bounds=(np.zeros(1), np.ones(1)))
    return X, noisy, model


def test_bll_matches_numpy_bayesian_linear_regression(bll):
    X, y, model = bll
    Xq = np.linspace(-0.3, 1.3, 9)[:, None]
    Phi, Phiq = np.asarray(model.design(X))[0], np.asarray(model.design(Xq))[0]
    loc, scale = float(model.y_loc[0]), float(model.y_scale[0])
    alpha, noise = float(model.prior_precision[0, 0]), float(model.noise[0, 0])
    mean, cov = _blr_numpy(Phi, (y - loc) / scale, alpha, 1.0 / noise, Phiq)
    post = model.posterior(Xq, full_cov=True)
    np.testing.assert_allclose(post.mean[:, 0], mean * scale + loc, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-8)
    noisy = model.posterior(Xq, observation_noise=True)
    np.testing.assert_allclose(noisy.variance[:, 0], (np.diag(cov) + noise) * scale**2,
                               rtol=1e-8)
    # The fit is good and the noise estimate is near the truth (0.1^2).
    assert np.sqrt(np.mean((post.mean[:, 0] - _f(Xq[:, 0]))[2:-2] ** 2)) < 0.1
    assert 0.5 < noise * scale**2 / 0.01 < 2.0


def test_bll_precisions_maximise_the_evidence(bll):
    X, y, model = bll
    Phi = np.asarray(model.design(X))[0]
    ys = (y - float(model.y_loc[0])) / float(model.y_scale[0])
    la = math.log(float(model.prior_precision[0, 0]))
    lb = -math.log(float(model.noise[0, 0]))
    best = _log_evidence_numpy(Phi, ys, la, lb)
    np.testing.assert_allclose(float(model.log_evidence[0, 0]), best, rtol=1e-9)
    h = 1e-4
    for da, db in ((h, 0), (0, h)):
        grad = (_log_evidence_numpy(Phi, ys, la + da, lb + db)
                - _log_evidence_numpy(Phi, ys, la - da, lb - db)) / (2 * h)
        assert abs(grad) < 1e-3


def test_bll_on_an_ensemble_is_the_mixture_of_member_regressions(small):
    X, Y, kw = small
    network = E.fit_ensemble(X, Y, key=jax.random.key(6), **kw)
    model = E.fit_bll(X, Y, network=network, prior_precision=2.0, noise=0.05)
    Xq = np.random.default_rng(8).uniform(size=(6, 2))
    Phi, Phiq = np.asarray(model.design(X)), np.asarray(model.design(Xq))
    post = model.posterior(Xq, full_cov=True)
    for j in range(2):
        seen = np.isfinite(Y[:, j])
        loc, scale = float(model.y_loc[j]), float(model.y_scale[j])
        ys = (Y[seen, j] - loc) / scale
        members = [_blr_numpy(Phi[k][seen], ys, 2.0, 1.0 / 0.05, Phiq[k]) for k in range(3)]
        means = np.stack([mu for mu, _ in members])
        mean = means.mean(axis=0)
        cov = (np.mean([c for _, c in members], axis=0)
               + np.einsum("ki,kj->ij", means - mean, means - mean) / 3)
        np.testing.assert_allclose(post.mean[:, j], mean * scale + loc, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(post.covariance[j], cov * scale**2, rtol=1e-8, atol=1e-10)
