"""The multi-task (ICM / LCM) GP against Kronecker closed forms and a transfer task."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates as sg
from surrogates import multitask as mt
from surrogates import compiled_programs


def _matern52_np(A, B, ls):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))
    return (1 + math.sqrt(5) * r + 5.0 / 3.0 * r**2) * np.exp(-math.sqrt(5) * r)


def _hyperparameters(T=3, Q=2, rank=2, seed=0):
    rng = np.random.default_rng(seed)
    return mt.MultiTaskHyperparameters(
        log_lengthscale=np.log(rng.uniform(0.2, 1.0, size=(Q, 2))),
        W=rng.normal(size=(Q, T, rank)), log_kappa=rng.normal(-2.0, 0.5, size=(Q, T)),
        log_noise=np.log(rng.uniform(0.01, 0.05, size=T)), mean=rng.normal(size=T),
    )


def _numpy_parameters(theta):
    """B_q = W_q W_q^T + diag(kappa_q), written out independently of to_lcm."""
    W, kappa = np.asarray(theta.W), np.exp(np.asarray(theta.log_kappa))
    B = np.stack([W[q] @ W[q].T + np.diag(kappa[q]) for q in range(W.shape[0])])
    noise = mt.NOISE_FLOOR + np.exp(np.asarray(theta.log_noise))
    return np.exp(np.asarray(theta.log_lengthscale)), B, noise, np.asarray(theta.mean)


@pytest.fixture(scope="module")
def isotopic():
    """Three tasks observed on one grid of 7 inputs, minus a few (task, input) pairs."""
    rng = np.random.default_rng(1)
    Xg = rng.uniform(0.0, 2.0, size=(7, 2))
    T = 3
    keep = np.ones((T, 7), bool)
    keep[2, [0, 3, 4, 6]] = False  # the target task has only 3 points
    keep[1, 5] = False
    # Row t * 7 + i of the grid is (task t, input i), the order of kron(B, Kx).
    rows = np.flatnonzero(keep.ravel())
    X = np.tile(Xg, (T, 1))[rows]
    task = np.repeat(np.arange(T), 7)[rows]
    y = np.sin(X[:, 0]) * (1 + task) + X[:, 1] + rng.normal(0, 0.1, size=len(rows))
    bounds = (np.zeros(2), np.full(2, 2.0))
    return Xg, rows, X, task, y, bounds


def test_posterior_equals_the_kronecker_closed_form(isotopic):
    Xg, rows, X, task, y, bounds = isotopic
    theta = _hyperparameters()
    model = mt.multitask_gp_from_hyperparameters(X, y, task, theta, target_task=2, bounds=bounds)
    Xq = np.random.default_rng(2).uniform(0.0, 2.0, size=(4, 2))

    ls, B, noise, mean = _numpy_parameters(theta)
    Zg, Zq = Xg / 2.0, Xq / 2.0
    loc, scale = y.mean(), y.std(ddof=1)
    ys = (y - loc) / scale
    T = 3
    # The full isotopic covariance sum_q B_q (x) K_q, then the observed rows.
    K = sum(np.kron(B[q], _matern52_np(Zg, Zg, ls[q])) for q in range(2))
    K = K[np.ix_(rows, rows)] + np.diag(np.repeat(noise, 7)[rows] + 1e-9)
    resid = ys - np.repeat(mean, 7)[rows]
    for tq in (2, np.array([0, 2, 1, 2])):
        t_of = np.broadcast_to(tq, (4,))
        # Cross-covariance: row t of B_q times K_q(query, grid), per query task.
        Ks = sum(np.kron(B[q], _matern52_np(Zq, Zg, ls[q])) for q in range(2))
        Ks = Ks.reshape(T, 4, T * 7)[t_of, np.arange(4)][:, rows]
        Kqq = sum(np.kron(B[q], _matern52_np(Zq, Zq, ls[q])) for q in range(2))
        sel = t_of * 4 + np.arange(4)
        Kqq = Kqq[np.ix_(sel, sel)]
        mu = mean[t_of] + Ks @ np.linalg.solve(K, resid)
        cov = Kqq - Ks @ np.linalg.solve(K, Ks.T)
        post = model.posterior(Xq, full_cov=True, task=tq)
        np.testing.assert_allclose(post.mean[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-8,
                                   atol=1e-10)
        np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-8, atol=1e-10)

    # The marginal likelihood is the Gaussian density of the same covariance.
    value = mt.negative_log_marginal_likelihood(model.params, model.X, model.task, model.y,
                                                model.mask)
    sign, logdet = np.linalg.slogdet(K)
    expected = 0.5 * resid @ np.linalg.solve(K, resid) + 0.5 * logdet \
        + 0.5 * len(rows) * math.log(2 * math.pi)
    assert sign > 0 and float(value) == pytest.approx(expected, rel=1e-10)

    # The default task is the target; the view is the plain protocol for one task.
    view = model.for_task(0)
    np.testing.assert_allclose(model.posterior(Xq).mean, model.posterior(Xq, task=2).mean)
    np.testing.assert_allclose(view.posterior(Xq, True).covariance,
                               model.posterior(Xq, full_cov=True, task=0).covariance)
    # Padding to a larger bucket changes nothing.
    wide = mt.multitask_gp_from_hyperparameters(X, y, task, theta, target_task=2, bounds=bounds,
                                                capacity=50)
    np.testing.assert_allclose(wide.posterior(Xq).mean, model.posterior(Xq).mean, atol=1e-10)


def test_condition_equals_the_closed_form_on_all_data(isotopic):
    _, _, X, task, y, bounds = isotopic
    theta = _hyperparameters(Q=1, rank=1, seed=3)
    base = mt.multitask_gp_from_hyperparameters(X[:-3], y[:-3], task[:-3], theta, target_task=2,
                                                num_tasks=3, bounds=bounds)
    cond = base.for_task(int(task[-1])).condition(jnp.asarray(X[-3:]), jnp.asarray(y[-3:]))
    assert np.all(task[-3:] == task[-1])
    Xq = X[:3] + 0.05
    ls, B, noise, mean = _numpy_parameters(theta)
    # Hadamard form B[t, t'] k(x, x'), in the first fit's output units.
    Z, Zq = X / 2.0, Xq / 2.0
    loc, scale = float(base.y_loc), float(base.y_scale)
    K = B[0][np.ix_(task, task)] * _matern52_np(Z, Z, ls[0]) + np.diag(noise[task] + 1e-9)
    Ks = B[0][task[-1]][task][None, :] * _matern52_np(Zq, Z, ls[0])
    mu = mean[task[-1]] + Ks @ np.linalg.solve(K, (y - loc) / scale - mean[task])
    np.testing.assert_allclose(cond.posterior(Xq).mean[:, 0], mu * scale + loc, rtol=1e-8,
                               atol=1e-8)
    # A missing output inside the data is masked, not a free slot to overwrite.
    y_gap = y[:-3].copy()
    y_gap[2] = np.nan
    gap = mt.multitask_gp_from_hyperparameters(X[:-3], y_gap, task[:-3], theta, target_task=2,
                                               num_tasks=3, bounds=bounds)
    grown = gap.condition(jnp.asarray(X[-1:]), jnp.asarray(y[-1:]))
    n = len(y) - 3
    assert float(np.sum(grown.mask)) == n
    np.testing.assert_allclose(grown.X[n - 1 : n + 1], np.vstack([X[-4], X[-1]]) / 2.0)
    assert int(grown.task[n]) == 2 and float(grown.mask[2]) == 0.0


def test_map_objective_gradient_matches_finite_differences(isotopic):
    _, _, X, task, y, bounds = isotopic
    theta = jax.tree.map(jnp.asarray, _hyperparameters(seed=4))
    model = mt.multitask_gp_from_hyperparameters(X, y, task, theta, target_task=2, bounds=bounds)
    args = (model.X, model.task, model.y, model.mask)
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


def _related(X):
    return np.sin(6 * X[:, 0]) + np.cos(4 * X[:, 1]) + 2 * X[:, 0] * X[:, 1]


def _target(X):  # the same response, shifted and scaled: another plant
    return 1.5 * _related(X) + 2.0


@jax.jit
def _mean(model, Xq):
    """Posterior mean of any model, compiled once per model type and shape."""
    return model.posterior(Xq).mean[:, 0]


def test_transfer_from_a_related_task_beats_a_single_task_gp():
    bounds = (np.zeros(2), np.ones(2))
    before = compiled_programs()["multitask.fit"]
    ratios = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        Xr, Xt, Xq = rng.uniform(size=(40, 2)), rng.uniform(size=(5, 2)), rng.uniform(size=(200, 2))
        X = np.vstack([Xr, Xt])
        y = np.concatenate([_related(Xr), _target(Xt)])
        task = np.r_[np.zeros(40, int), np.ones(5, int)]
        model = mt.fit_multitask_gp(X, y, task, key=jax.random.key(seed), target_task=1,
                                    bounds=bounds)
        single = sg.fit_gp(Xt, _target(Xt), key=jax.random.key(seed), bounds=bounds)
        rmse_mt = np.sqrt(np.mean((np.asarray(_mean(model, Xq)) - _target(Xq)) ** 2))
        rmse_st = np.sqrt(np.mean((np.asarray(_mean(single, Xq)) - _target(Xq)) ** 2))
        ratios.append(rmse_mt / rmse_st)
        assert float(model.task_correlation[0, 1]) > 0.9
    assert max(ratios) < 0.5 and np.mean(ratios) < 0.25, ratios
    # Three fits of one bucket compile one program.
    assert compiled_programs()["multitask.fit"] - before == 1


def test_invalid_tasks_are_refused():
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="non-negative integers"):
        mt.fit_multitask_gp(X, y, [0, 1, 1.5, 0], key=jax.random.key(0), target_task=0)
    with pytest.raises(ValueError, match="target_task"):
        mt.fit_multitask_gp(X, y, [0, 1, 1, 0], key=jax.random.key(0), target_task=2)
    with pytest.raises(ValueError, match="num_tasks"):
        mt.fit_multitask_gp(X, y, [0, 1, 3, 0], key=jax.random.key(0), target_task=0,
                            num_tasks=3)
