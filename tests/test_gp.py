"""The exact GP against closed forms computed independently with numpy."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates as sg
from surrogates import gp, gp_fit, gp_likelihood
from surrogates import kernels as K
from surrogates import compiled_programs


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
    assert small.capacity == 32 and large.capacity == 128  # MIN_BUCKET: 10 rows padded
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
    value, grad = gp_likelihood.nll_value_and_grad(theta, Z, ys, mask)
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
    before = compiled_programs()["gp.fit"]
    key = jax.random.key(0)
    for n in range(2, 65, 3):
        X = rng.uniform(size=(n, 4))
        sg.fit_gp(X, X.sum(1), key=key, bounds=(np.zeros(4), np.ones(4)), restarts=2)
    # n from 2 to 64 spans the buckets 32 and 64: two programs, not 21.
    assert compiled_programs()["gp.fit"] - before <= 2


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
    before = compiled_programs()["gp.condition"]
    for n in range(3, 15):
        base = sg.gp_from_hyperparameters(X[:n], y[:n], theta, capacity=32)
        base.condition(jnp.asarray(X[n:n + 1]), jnp.asarray(y[n:n + 1, None]))
    assert compiled_programs()["gp.condition"] - before <= 1


# --- any kernel, known noise, warping, plain-data round trips -----------------


def _rbf_plus_linear_np(A, B, ls, var, v):
    r2 = np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1)
    return var * np.exp(-0.5 * r2) + (A - 0.5) @ np.diag(v) @ (B - 0.5).T


def test_posterior_with_known_noise_matches_closed_form_for_a_non_default_kernel(data):
    X, y, bounds = data
    ls, var, v = np.array([0.3, 0.5, 0.8]), 1.3, np.array([0.2, 0.5, 0.1])
    learned, mean = 0.01, 0.2
    theta = sg.GPHyperparameters(
        kernel=K.RBF() + K.Linear(),
        kernel_params=({"log_lengthscale": np.log(ls)[None], "log_variance": np.log([var])},
                       {"log_variance": np.log(v)[None]}),
        log_noise=np.log([learned - gp.NOISE_FLOOR]), mean=np.array([mean]),
    )
    known = np.random.default_rng(8).uniform(0.001, 0.5, size=len(y))  # output units
    model = sg.gp_from_hyperparameters(X, y, theta, bounds=bounds, noise=known)
    Xq = np.random.default_rng(4).uniform(-2.0, 5.0, size=(6, 3))
    post = model.posterior(Xq, full_cov=True)

    lower, span = bounds[0], bounds[1] - bounds[0]
    Z, Zq = (X - lower) / span, (Xq - lower) / span
    loc, scale = y.mean(), y.std(ddof=1)
    ys = (y - loc) / scale
    Kxx = _rbf_plus_linear_np(Z, Z, ls, var, v) + np.diag(learned + 1e-9 + known / scale**2)
    Ks = _rbf_plus_linear_np(Zq, Z, ls, var, v)
    mu = mean + Ks @ np.linalg.solve(Kxx, ys - mean)
    cov = _rbf_plus_linear_np(Zq, Zq, ls, var, v) - Ks @ np.linalg.solve(Kxx, Ks.T)
    np.testing.assert_allclose(post.mean[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(post.variance[:, 0], np.diag(cov) * scale**2, rtol=1e-8,
                               atol=1e-10)
    np.testing.assert_allclose(post.covariance[0], cov * scale**2, rtol=1e-8, atol=1e-10)


GRAD_KERNELS = {
    "matern12": K.Matern12(), "matern32": K.Matern32(), "matern52": K.Matern52(),
    "rbf": K.RBF(), "linear": K.Linear(), "periodic": K.Periodic(),
    "sum": K.Matern52() + K.Linear(), "product": K.Matern32(active_dims=(0, 1)) * K.Periodic(
        active_dims=(2,)),
    "warped": K.Warped(K.Matern52(), dims=(0, 2)),
    "categorical": K.with_categorical(K.RBF(), [(3, 4), (5, 6, 7)], d=8),
    "categorical_additive": K.with_categorical(K.RBF(), [(3, 4), (5, 6, 7)], d=8,
                                               structure="additive"),
}


def _perturbed(theta, seed):
    leaves, treedef = jax.tree.flatten(theta)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [jnp.asarray(np.asarray(x, float)
                                                    + rng.normal(scale=0.3, size=np.shape(x)))
                                        for x in leaves])


# Fixed noise is kernel-independent: the categorical product covers it.
GRAD_CASES = [(name, name != "categorical") for name in sorted(GRAD_KERNELS)]


@pytest.mark.parametrize(("name", "learn_noise"), GRAD_CASES,
                         ids=[f"{k}-{'learned' if n else 'fixed'}-noise" for k, n in GRAD_CASES])
def test_map_objective_gradient_matches_finite_differences(name, learn_noise):
    """-log p(y | theta) - log p(theta), with padding and known noise, for every kernel."""
    kernel = GRAD_KERNELS[name]
    rng = np.random.default_rng(1)
    n, N = 11, 16
    X = rng.uniform(size=(N, 8 if name.startswith("categorical") else 3))
    if name.startswith("categorical"):
        X[:, 3:5] = np.eye(2)[rng.integers(2, size=N)]
        X[:, 5:8] = np.eye(3)[rng.integers(3, size=N)]
    X[5] = X[2]  # a repeated experiment: r = 0 off the diagonal
    mask = (np.arange(N) < n).astype(float)
    y = np.where(mask > 0, np.sin(4 * X[:, 0]) + X[:, 1] ** 2, 0.0)
    noise = mask * rng.uniform(0.0, 0.05, size=N)
    theta = _perturbed(sg.GPHyperparameters(
        kernel=kernel, kernel_params=kernel.init(X.shape[1]), log_noise=np.array(-4.0),
        mean=np.array(0.1), learn_noise=learn_noise), seed=2)
    flat, unravel = jax.flatten_util.ravel_pytree(theta)
    args = (jnp.asarray(X), jnp.asarray(y), jnp.asarray(mask), jnp.asarray(noise))
    h = 1e-5

    @jax.jit
    def check(flat):
        def objective(v):
            t = unravel(v)
            return gp.negative_log_marginal_likelihood(t, *args) - gp.log_prior(t)

        t = unravel(flat)
        value, g = gp_likelihood.nll_value_and_grad(t, *args)
        g = jax.tree.map(jnp.subtract, g, jax.grad(gp.log_prior)(t))
        steps = h * jnp.eye(flat.size)
        f = jax.vmap(objective)(flat + jnp.concatenate([steps, -steps]))
        fd = (f[:flat.size] - f[flat.size:]) / (2 * h)
        return value - gp.log_prior(t), objective(flat), jax.flatten_util.ravel_pytree(g)[0], fd

    value, reference, grad, fd = check(flat)
    assert float(value) == pytest.approx(float(reference), rel=1e-12)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)
    if not learn_noise:
        assert float(theta.noise) == gp.NOISE_FLOOR


@pytest.fixture(scope="module")
def mixed():
    """A fit on one continuous input and a 3-level categorical, with known noise:
    rows 0-3 are outliers whose known noise variance (100) says so."""
    rng = np.random.default_rng(21)
    n = 30
    x = rng.uniform(size=n)
    cat = np.arange(n) % 3
    X = np.column_stack([x, np.eye(3)[cat]])
    offsets = np.array([0.0, 1.5, -1.0])

    def f(x, cat):
        return np.sin(5 * x) + offsets[cat]

    y = f(x, cat)
    noise = np.full(n, 1e-4)
    y[:4] += 8.0
    noise[:4] = 100.0
    kernel = K.with_categorical(K.Matern52(), [(1, 2, 3)], d=4)
    unit = (np.zeros(4), np.ones(4))
    before = compiled_programs()["gp.fit"]
    model = sg.fit_gp(X, y, key=jax.random.key(0), bounds=unit, kernel=kernel, noise=noise,
                      learn_noise=False, warping=True, restarts=2, max_iter=40)
    return dict(X=X, y=y, noise=noise, f=f, kernel=kernel, unit=unit, model=model,
                compiles=compiled_programs()["gp.fit"] - before)


_posterior_mean = jax.jit(lambda model, Xq: model.posterior(Xq).mean)


def test_categorical_fit_with_known_noise_and_warping(mixed):
    model = mixed["model"]
    # Warping covers the continuous column only.
    assert model.kernel == K.Warped(mixed["kernel"], dims=(0,))
    assert float(model.hyperparameters.noise[0]) == gp.NOISE_FLOOR
    xq = np.linspace(0.05, 0.95, 12)
    for c in range(3):
        Xq = np.column_stack([xq, np.tile(np.eye(3)[c], (12, 1))])
        mean = np.asarray(_posterior_mean(model, Xq)[:, 0])
        # The +8 outliers carry variance-100 known noise and barely move the fit.
        np.testing.assert_allclose(mean, mixed["f"](xq, np.full(12, c)), atol=0.15)


def test_refits_inside_a_bucket_reuse_the_program_for_any_kernel(mixed):
    X, y, noise = mixed["X"], mixed["y"], mixed["noise"]
    assert mixed["compiles"] == 1
    warm = mixed["model"].hyperparameters

    def refit(n, w):
        Xn = np.vstack([X, X[:2] * 0.9])[:n]
        yn, nn = np.concatenate([y, y[:2]])[:n], np.concatenate([noise, noise[:2]])[:n]
        sg.fit_gp(Xn, yn, key=jax.random.key(n), bounds=mixed["unit"], kernel=mixed["kernel"],
                  noise=nn, learn_noise=False, warping=True, restarts=2, max_iter=40,
                  warm_start=w)

    # The fixture's program may have been released since (the suite's workers drop their
    # programs between tests when crowded): one fit brings it back, then none compiles.
    refit(20, None)
    before = compiled_programs()["gp.fit"]
    for n, w in [(20, None), (26, warm), (32, warm)]:  # all in the 32-row bucket
        refit(n, w)
    assert compiled_programs()["gp.fit"] == before


def test_hyperparameters_round_trip_through_json(mixed):
    model = mixed["model"]
    data = json.loads(json.dumps(gp.hyperparameters_to_dict(model.hyperparameters)))
    theta = gp.hyperparameters_from_dict(data)
    assert jax.tree.structure(theta) == jax.tree.structure(model.hyperparameters)
    for a, b in zip(jax.tree.leaves(theta), jax.tree.leaves(model.hyperparameters)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again = sg.gp_from_hyperparameters(mixed["X"], mixed["y"], theta, bounds=mixed["unit"],
                                       noise=mixed["noise"])
    Xq = mixed["X"][:5] + 0.01
    np.testing.assert_allclose(_posterior_mean(again, Xq), _posterior_mean(model, Xq),
                               rtol=1e-12)
    # A warm start must come from the same kernel.
    with pytest.raises(ValueError, match="fitted with kernel"):
        sg.fit_gp(mixed["X"], mixed["y"], key=jax.random.key(0), warm_start=theta)


def test_default_kernel_keeps_its_flat_fields_and_legacy_dicts():
    legacy = {"log_lengthscale": [[0.1, 0.2]], "log_variance": [0.3], "log_noise": [-5.0],
              "mean": [0.0]}
    theta = gp.hyperparameters_from_dict(legacy)
    assert theta.kernel == K.Matern52() and theta.learn_noise
    np.testing.assert_array_equal(theta.log_lengthscale, [[0.1, 0.2]])
    np.testing.assert_array_equal(sg.GPHyperparameters(**legacy).log_variance, [0.3])
    assert gp.hyperparameters_from_dict(gp.hyperparameters_to_dict(theta)).kernel == K.Matern52()


def test_screened_start_fits_a_larger_design():
    # n >= 64 without a warm start: restart 0 starts from the screening grid.
    # (d = 2, 64 rows, default restarts: the program of the smooth-function test.)
    rng = np.random.default_rng(2)
    X = rng.uniform(size=(64, 2))
    f = lambda x: np.sin(6 * x[:, 0]) * np.cos(3 * x[:, 1])  # noqa: E731
    model = sg.fit_gp(X, f(X), key=jax.random.key(3), bounds=(np.zeros(2), np.ones(2)))
    objective = jax.jit(jax.vmap(lambda t: gp.negative_log_marginal_likelihood(
        t, model.X, model.Y[:, 0], model.mask[:, 0]) - gp.log_prior(t)))
    grid = gp_fit.screening_grid(gp_fit.prior_median(K.Matern52(), 2, True))
    assert float(objective(model.hyperparameters)[0]) < float(jnp.min(objective(grid)))
    Xq = rng.uniform(size=(200, 2))
    assert np.median(np.abs(np.asarray(_posterior_mean(model, Xq)[:, 0]) - f(Xq))) < 0.02


@pytest.mark.parametrize("n", [100, 300, 512])
def test_blocked_inverse_from_cholesky_matches_numpy(n):
    # The recursive potri behind every gradient above 128 rows (300: uneven halves).
    A = np.random.default_rng(n).normal(size=(n, n))
    K = A @ A.T / n + 1e-2 * np.eye(n)
    inverse = jax.jit(gp_likelihood.inverse_from_cholesky)
    L = np.asarray(jax.jit(gp_likelihood.cholesky)(jnp.asarray(K)))
    np.testing.assert_allclose(L @ L.T, K, atol=1e-12 * np.abs(K).max())
    assert np.all(np.triu(L, 1) == 0)
    Kinv = np.asarray(inverse(jnp.asarray(L)))
    np.testing.assert_allclose(Kinv, np.linalg.inv(K), rtol=1e-9, atol=1e-9 * np.abs(Kinv).max())
    np.testing.assert_allclose(Kinv @ K, np.eye(n), atol=1e-10)


def test_noise_prior_enters_the_map_objective_and_the_fit():
    """The noise prior is a log-normal on the learned noise variance: log_prior
    changes by exactly the difference of the two normal log densities, a tight
    prior pins the fitted noise at its median, and the setting survives JSON."""
    theta = _theta(2, [0.3, 0.5], 1.2, 0.05, 0.1)
    lab = sg.GPHyperparameters(kernel=theta.kernel, kernel_params=theta.kernel_params,
                               log_noise=theta.log_noise, mean=theta.mean, noise_prior="lab")
    z = float(theta.log_noise[0])

    def logpdf(x, mu, sd):
        return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))

    one = lambda t: jax.tree.map(lambda a: a[0], t)  # noqa: E731
    diff = float(gp.log_prior(one(lab)) - gp.log_prior(one(theta)))
    assert diff == pytest.approx(logpdf(z, -4.0, 1.0) - logpdf(z, -8.0, 2.0), rel=1e-12)
    assert gp.NOISE_PRIORS["lab"] == (-4.0, 1.0) and lab.noise_prior == (-4.0, 1.0)
    # A tight prior at log 0.02 holds the learned noise there whatever the data say.
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(20, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1]
    model = sg.fit_gp(X, y, key=jax.random.key(0), noise_prior=(math.log(0.02), 1e-3))
    assert float(model.hyperparameters.noise[0]) == pytest.approx(0.02 + gp.NOISE_FLOOR, rel=1e-2)
    data = json.loads(json.dumps(gp.hyperparameters_to_dict(model.hyperparameters)))
    assert gp.hyperparameters_from_dict(data).noise_prior == (math.log(0.02), 1e-3)
    for bad in ("loud", (0.0, -1.0), (0.0,), "x"):
        with pytest.raises(ValueError, match="noise_prior"):
            gp.resolve_noise_prior(bad)


def test_lbfgs_started_with_a_related_problems_curvature_reaches_the_minimum():
    """The curvature pairs of one problem, scaled as the fit scales a subset's to all rows,
    start a related problem (the same quadratic, twice as steep, new start and minimum):
    both the informed and the fresh run reach the exact minimum. How many iterations the
    pairs save depends on the last bits of every step, so it is measured where such counts
    belong, in benchmarks/gp_fit.py (full-data gradients per fit), not asserted here."""
    from surrogates import lbfgs

    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    A = jnp.asarray(Q @ np.diag(np.logspace(0, 3, 8)) @ Q.T)
    c1, c2 = jnp.asarray(rng.normal(size=8)), jnp.asarray(rng.normal(size=8))

    def problem(scale, c):
        f = lambda x: 0.5 * scale * (x - c) @ A @ (x - c)  # noqa: E731
        return lambda x: (f(x), None), lambda x, aux: jax.grad(f)(x)

    value, grad = problem(1.0, c1)
    x, _, _, (S, Yd, rho, stored) = lbfgs.minimize_with_aux(
        value, grad, jnp.zeros(8), gtol=1e-9, ftol=0.0, max_iter=200, return_history=True)
    assert np.allclose(x, c1, atol=1e-6) and int(stored) > 0
    value, grad = problem(2.0, c2)
    kw = dict(gtol=1e-6, ftol=0.0, max_iter=200)
    fresh, _, it_fresh = lbfgs.minimize_with_aux(value, grad, jnp.zeros(8), **kw)
    warm, _, it_warm = lbfgs.minimize_with_aux(value, grad, jnp.zeros(8),
                                                history=(S, 2.0 * Yd, rho / 2.0, stored), **kw)
    assert np.allclose(fresh, c2, atol=1e-6) and np.allclose(warm, c2, atol=1e-6)
    assert 0 < int(it_warm) < 200 and 0 < int(it_fresh) < 200  # converged, not stopped by max_iter


def test_lbfgs_interpolating_backtrack_reaches_the_minimum_in_fewer_values():
    """A first step that overshoots a steep valley a thousandfold: halving needs about ten
    values to come back, the quadratic-interpolation backtrack a few; same minimum."""
    from surrogates import lbfgs

    counted = []

    def value(x):
        jax.debug.callback(lambda: counted.append(1))
        return 0.5 * 1e4 * jnp.sum((x - 0.3) ** 2), None

    def grad(x, aux):
        return 1e4 * (x - 0.3)

    found = {}
    for interpolate in (False, True):
        counted.clear()
        x, f, _ = lbfgs.minimize_with_aux(value, grad, jnp.full(2, 0.301), gtol=1e-8,
                                           ftol=0.0, interpolate=interpolate)
        jax.block_until_ready(x)
        assert np.allclose(x, 0.3, atol=1e-9)
        found[interpolate] = len(counted)
    assert found[True] < found[False]


def test_large_n_fit_takes_the_subset_path_and_reaches_the_map_optimum():
    """From a padded capacity of 1,024 rows (n > 512) the restarts run on a quarter of the
    rows and the winner is refined on half, then all: the result is within 5e-3 nats (of
    about 290) of the full MAP objective's optimum, recovers the known noise level, and
    predicts the noiseless function to well within the noise."""
    rng = np.random.default_rng(11)
    n, sd = 600, 0.05
    X = rng.uniform(size=(n, 3))
    f = lambda x: np.sin(3 * x[:, 0]) + np.cos(2 * x[:, 1]) * x[:, 2]  # noqa: E731
    y = f(X) + sd * rng.normal(size=n)
    unit = (np.zeros(3), np.ones(3))
    model = sg.fit_gp(X, y, key=jax.random.key(0), bounds=unit)
    assert model.capacity == 1024 and gp_fit.SUBSET_MIN_CAPACITY == 1024
    theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
    args = (model.X, model.Y[:, 0], model.mask[:, 0])

    def objective(t):
        return gp.negative_log_marginal_likelihood(t, *args) - gp.log_prior(t)

    # Against the optimum a tight L-BFGS reaches from the fit's result.
    from surrogates import lbfgs

    _, tight, _ = lbfgs.minimize(jax.value_and_grad(objective), theta, gtol=1e-7, ftol=0.0,
                                  max_iter=300)
    assert float(objective(theta)) - float(tight) < 5e-3
    noise_sd = math.sqrt(float(theta.noise)) * float(model.y_scale[0])
    assert noise_sd == pytest.approx(sd, rel=0.1)
    Xt = rng.uniform(size=(500, 3))
    rmse = float(np.sqrt(np.mean((np.asarray(model.posterior(Xt).mean)[:, 0] - f(Xt)) ** 2)))
    assert rmse < 0.4 * sd


def test_fixed_joint_blocks_equal_the_full_joint_posterior(data):
    """FixedJoint shares the fixed points' work across candidate batches; its blocks are
    those of the posterior over the concatenation (two outputs, a padded model)."""
    X, y, bounds = data
    Y = np.stack([y, np.cos(X[:, 1])], axis=1)
    model = sg.fit_gp(X, Y, key=jax.random.key(2), bounds=bounds, capacity=16)
    rng = np.random.default_rng(4)
    X_fixed, Xq = rng.uniform(-2, 5, size=(6, 3)), rng.uniform(-2, 5, size=(3, 3))
    mean, var, cross, cov = model.fixed_joint(X_fixed)(Xq)
    full = model.posterior(np.concatenate([X_fixed, Xq]), full_cov=True)
    np.testing.assert_allclose(mean, full.mean[6:], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(var, full.variance[6:], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(cross, full.covariance[:, :6, 6:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cov, full.covariance[:, 6:, 6:], rtol=1e-9, atol=1e-12)


def test_leave_out_chi2_is_the_block_held_out_posteriors_statistic():
    """leave_out_chi2 from the stored factor against conditioning on the other rows with
    numpy: squared z-scores of rows 30..34 under their joint held-out posterior."""
    rng = np.random.default_rng(3)
    X = rng.random((35, 2))
    Y = np.stack([np.sin(5 * X[:, 0]) + 0.1 * rng.standard_normal(35), 4 * X[:, 1] ** 2], 1)
    Y[32, 1] = np.nan  # a missing value: not counted
    g = sg.fit_gp(X, Y, key=jax.random.key(0))
    statistic, dof = (np.asarray(v) for v in g.leave_out_chi2(30, 5))
    assert dof.tolist() == [5, 4]
    for j in range(2):
        th = jax.tree.map(lambda a, j=j: a[j], g.hyperparameters)
        Z, y = np.asarray(g.X[:35]), np.asarray(g.Y[:35, j])
        K = np.asarray(th.kernel(th.kernel_params, Z, Z)) + np.eye(35) * float(th.noise)
        A = list(range(30))
        B = [i for i in range(30, 35) if np.isfinite(Y[i, j])]
        solve = np.linalg.solve
        mu = float(th.mean) + K[np.ix_(B, A)] @ solve(K[np.ix_(A, A)], y[A] - float(th.mean))
        C = K[np.ix_(B, B)] - K[np.ix_(B, A)] @ solve(K[np.ix_(A, A)], K[np.ix_(A, B)])
        r = y[B] - mu
        assert statistic[j] == pytest.approx(r @ solve(C, r), rel=1e-3)
    with pytest.raises(ValueError, match="rows 30"):
        g.leave_out_chi2(30, g.capacity)
