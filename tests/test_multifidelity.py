"""The autoregressive multi-fidelity GP against its recursive closed form and Forrester's
two-fidelity benchmark."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates as sg
from surrogates import multifidelity as mf
from surrogates import multitask as mt


def _matern52_np(A, B, ls, var):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return var * (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def _ar_cov(a, A, b, B, ls, var, rho):
    """cov(f_a(A), f_b(B)) by Kennedy & O'Hagan's recursion f_l = rho f_{l-1} + delta_l."""
    if a > b:
        return _ar_cov(b, B, a, A, ls, var, rho).T
    if a < b:
        return rho[b - 1] * _ar_cov(a, A, b - 1, B, ls, var, rho)
    k = _matern52_np(A, B, ls[a], var[a])
    return k + (rho[a - 1] ** 2 * _ar_cov(a - 1, A, a - 1, B, ls, var, rho) if a > 0 else 0.0)


def _block_cov(levels_a, A, levels_b, B, ls, var, rho):
    out = np.zeros((len(A), len(B)))
    for i, (la, xa) in enumerate(zip(levels_a, A)):
        for j, (lb, xb) in enumerate(zip(levels_b, B)):
            out[i, j] = _ar_cov(la, xa[None], lb, xb[None], ls, var, rho)[0, 0]
    return out


@pytest.fixture(scope="module")
def three_levels():
    """Non-nested data at three fidelities, 8 / 5 / 3 points in 2-D."""
    rng = np.random.default_rng(0)
    fid = np.r_[np.zeros(8, int), np.ones(5, int), np.full(3, 2)]
    X = rng.uniform(size=(16, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1] * (1 + fid) + 0.3 * fid
    theta = mf.AutoregressiveHyperparameters(
        log_lengthscale=np.log([[0.4, 0.7], [0.3, 0.9], [0.6, 0.5]]),
        log_variance=np.log([1.2, 0.3, 0.1]), rho=np.array([0.8, 1.4]),
        log_noise=np.log([1e-3, 5e-3, 2e-2]), mean=np.array([0.1, -0.2, 0.4]),
    )
    return X, y, fid, theta


def test_posterior_equals_the_recursive_closed_form(three_levels):
    X, y, fid, theta = three_levels
    bounds = (np.zeros(2), np.ones(2))
    model = mf.multifidelity_gp_from_hyperparameters(X, y, fid, theta, costs=(1, 5, 40),
                                                     bounds=bounds)
    assert model.costs == (1.0, 5.0, 40.0) and model.highest == 2
    ls, var = np.exp(theta.log_lengthscale), np.exp(theta.log_variance)
    noise = mf.NOISE_FLOOR + np.exp(theta.log_noise)
    loc, scale = y.mean(), y.std(ddof=1)
    ys = (y - loc) / scale
    K = _block_cov(fid, X, fid, X, ls, var, theta.rho) + np.diag(noise[fid] + 1e-9)
    resid = ys - theta.mean[fid]
    Xq = np.random.default_rng(1).uniform(size=(4, 2))
    for levels in (np.full(4, 2), np.array([0, 2, 1, 2])):
        Ks = _block_cov(levels, Xq, fid, X, ls, var, theta.rho)
        Kqq = _block_cov(levels, Xq, levels, Xq, ls, var, theta.rho)
        mu = theta.mean[levels] + Ks @ np.linalg.solve(K, resid)
        cov = Kqq - Ks @ np.linalg.solve(K, Ks.T)
        post = model.posterior(Xq, full_cov=True, fidelity=None if levels[0] == 2 else levels)
        np.testing.assert_allclose(post.mean[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-8, atol=1e-10)
    view = model.for_fidelity(1)
    np.testing.assert_allclose(view.posterior(Xq).mean, model.posterior(Xq, fidelity=1).mean)


def test_condition_at_the_highest_fidelity_equals_the_closed_form(three_levels):
    X, y, fid, theta = three_levels
    bounds = (np.zeros(2), np.ones(2))
    base = mf.multifidelity_gp_from_hyperparameters(X[:-2], y[:-2], fid[:-2], theta,
                                                    bounds=bounds)
    cond = base.condition(jnp.asarray(X[-2:]), jnp.asarray(y[-2:]))
    assert np.all(fid[-2:] == 2) and cond.costs == (1.0, 1.0, 1.0)
    ls, var = np.exp(theta.log_lengthscale), np.exp(theta.log_variance)
    noise = mf.NOISE_FLOOR + np.exp(theta.log_noise)
    loc, scale = float(base.gp.y_loc), float(base.gp.y_scale)
    K = _block_cov(fid, X, fid, X, ls, var, theta.rho) + np.diag(noise[fid] + 1e-9)
    Xq = X[:3] + 0.05
    Ks = _block_cov(np.full(3, 2), Xq, fid, X, ls, var, theta.rho)
    mu = theta.mean[2] + Ks @ np.linalg.solve(K, (y - loc) / scale - theta.mean[fid])
    np.testing.assert_allclose(cond.posterior(Xq).mean[:, 0], mu * scale + loc, rtol=1e-8,
                               atol=1e-8)


def test_map_objective_gradient_matches_finite_differences(three_levels):
    X, y, fid, theta = three_levels
    theta = jax.tree.map(jnp.asarray, theta)
    model = mf.multifidelity_gp_from_hyperparameters(X, y, fid, theta)
    args = (model.gp.X, model.gp.task, model.gp.y, model.gp.mask)
    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    # One compiled program for all the 2p evaluations.
    objective = jax.jit(lambda v: mt.negative_log_posterior(unravel(v), *args))
    f = lambda v: float(objective(v))  # noqa: E731
    gradient = jax.jit(jax.grad(mt.negative_log_posterior))
    grad, _ = jax.flatten_util.ravel_pytree(gradient(theta, *args))
    h = 1e-6
    fd = np.array([(f(flat.at[i].add(h)) - f(flat.at[i].add(-h))) / (2 * h)
                   for i in range(flat.size)])
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-5, atol=1e-6)


def _forrester_high(x):
    return (6 * x - 2) ** 2 * np.sin(12 * x - 4)


def _forrester_low(x):
    return 0.5 * _forrester_high(x) + 10 * (x - 0.5) - 5


@jax.jit
def _mean(model, Xq):
    return model.posterior(Xq).mean[:, 0]


@pytest.mark.parametrize("x_low", [np.linspace(0, 1, 11), np.linspace(0.05, 0.95, 11)],
                         ids=["nested", "non-nested"])
def test_forrester_cheap_data_beat_a_high_fidelity_gp(x_low):
    x_high = np.array([0.0, 0.4, 0.6, 1.0])
    X = np.r_[x_low, x_high][:, None]
    y = np.r_[_forrester_low(x_low), _forrester_high(x_high)]
    fid = np.r_[np.zeros(11, int), np.ones(4, int)]
    bounds = (np.zeros(1), np.ones(1))
    model = mf.fit_multifidelity_gp(X, y, fid, key=jax.random.key(0), costs=(1, 20),
                                    bounds=bounds)
    single = sg.fit_gp(x_high[:, None], _forrester_high(x_high), key=jax.random.key(0),
                       bounds=bounds)
    xq = np.linspace(0, 1, 101)[:, None]
    truth = _forrester_high(xq[:, 0])
    rmse_mf = np.sqrt(np.mean((np.asarray(model.posterior(xq).mean[:, 0]) - truth) ** 2))
    rmse_gp = np.sqrt(np.mean((np.asarray(_mean(single, xq)) - truth) ** 2))
    assert rmse_mf < 0.5 * rmse_gp, (rmse_mf, rmse_gp)
    # The cheap level itself is learned from its 11 points.
    low = np.asarray(model.posterior(xq, fidelity=0).mean[:, 0])
    assert np.sqrt(np.mean((low - _forrester_low(xq[:, 0])) ** 2)) < 0.1 * np.std(truth)
    assert model.costs == (1.0, 20.0) and float(model.rho[0]) > 0


def test_invalid_costs_and_levels_are_refused():
    X, y = np.zeros((4, 1)), np.zeros(4)
    with pytest.raises(ValueError, match="costs"):
        mf.fit_multifidelity_gp(X, y, [0, 1, 1, 0], key=jax.random.key(0), costs=(1, -2))
    with pytest.raises(ValueError, match="at least 2 fidelities"):
        mf.fit_multifidelity_gp(X, y, [0, 0, 0, 0], key=jax.random.key(0))
