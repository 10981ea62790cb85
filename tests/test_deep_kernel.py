"""The deep-kernel GP learns the geometry a stationary kernel cannot: a function along a
curve wound through six dimensions. Its posterior is a proper Gaussian (PSD covariance,
joint samples), its training gradient matches finite differences, and it crosses jit."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import surrogates  # noqa: F401  (float64)
from surrogates import fit_gp
from surrogates import GPHyperparameters
from surrogates.deep_kernel import DeepKernelGP, deep_kernel_loss, fit_deep_kernel_gp
from surrogates.ensemble import MLP
from surrogates.kernels import Matern52

BOUNDS = np.array([[0.0] * 6, [1.0] * 6])
# A fixed rotation: the curve advances along Q[:, 0], a diagonal direction, and
# wiggles fast along the other five, so no axis-aligned length-scale isolates t.
Q = np.linalg.qr(np.random.default_rng(1).normal(size=(6, 6)))[0]


def curve(t):
    wiggles = 0.12 * np.stack([np.sin(2 * np.pi * k * t + k) for k in (3, 5, 7, 9, 11)], 1)
    z = np.concatenate([0.8 * (t[:, None] - 0.5), wiggles], 1)
    return 0.5 + z @ Q.T


def along(t):
    return np.sin(4 * np.pi * t) + 0.5 * t


@pytest.fixture(scope="module")
def manifold():
    rng = np.random.default_rng(1)
    t, tq = rng.uniform(0, 1, 40), rng.uniform(0, 1, 200)
    X, Xq = curve(t), curve(tq)
    model = fit_deep_kernel_gp(X, along(t), key=jax.random.PRNGKey(1), bounds=BOUNDS)
    return X, along(t), Xq, along(tq), model


def _rmse(model, Xq, yq):
    return float(np.sqrt(np.mean((np.asarray(model.posterior(Xq).mean[:, 0]) - yq) ** 2)))


def test_recovers_a_function_on_a_curve_better_than_an_ard_gp(manifold):
    X, y, Xq, yq, model = manifold
    plain = fit_gp(X, y, key=jax.random.PRNGKey(0), bounds=BOUNDS)
    deep, ard = _rmse(model, Xq, yq), _rmse(plain, Xq, yq)
    # Measured 0.03 against 0.50 (seeds 0-3: the deep kernel 3x-25x better).
    assert deep < 0.5 * ard, (deep, ard)
    assert deep < 0.15


def test_posterior_covariance_is_psd_and_samples_match_it(manifold):
    _, _, Xq, _, model = manifold
    post = model.posterior(Xq[:30], full_cov=True)
    cov = np.asarray(post.covariance[0])
    np.testing.assert_allclose(cov, cov.T, atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > -1e-9 * np.abs(cov).max()
    np.testing.assert_allclose(np.diag(cov), np.asarray(post.variance[:, 0]), rtol=1e-6,
                               atol=1e-12)
    draws = np.asarray(post.sample(jax.random.PRNGKey(0), 4000))[:, :, 0]
    np.testing.assert_allclose(draws.mean(0), np.asarray(post.mean[:, 0]),
                               atol=5 * np.sqrt(np.diag(cov).max() / 4000) + 1e-6)


def test_posterior_is_jit_compatible_and_interpolates(manifold):
    X, y, Xq, _, model = manifold
    compiled = jax.jit(lambda m, x: m.posterior(x))(model, jnp.asarray(Xq))
    eager = model.posterior(Xq)
    np.testing.assert_allclose(np.asarray(compiled.mean), np.asarray(eager.mean), atol=1e-10)
    np.testing.assert_allclose(np.asarray(compiled.variance), np.asarray(eager.variance),
                               atol=1e-10)
    # The fitted model is a pytree of arrays: vmap/grad see it as a value.
    assert isinstance(model, DeepKernelGP) and all(
        isinstance(a, jax.Array) for a in jax.tree.leaves(model))
    np.testing.assert_allclose(np.asarray(model.posterior(X).mean[:, 0]), y, atol=0.05)


def test_condition_adds_an_observation(manifold):
    X, _, Xq, yq, model = manifold
    x_new, y_new = Xq[:1], np.array([[yq[0] + 1.0]])
    before = model.posterior(x_new)
    after = model.condition(x_new, y_new).posterior(x_new)
    assert float(after.variance[0, 0]) < float(before.variance[0, 0])
    # Pulled toward the new value, by the closed-form weight var / (var + noise).
    assert abs(float(after.mean[0, 0]) - y_new[0, 0]) < abs(float(before.mean[0, 0]) - y_new[0, 0])


def test_training_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    Z = jnp.asarray(rng.uniform(size=(8, 3)))
    Ys = jnp.asarray(rng.normal(size=(8, 2)))
    mask = jnp.ones((8, 2)).at[6:, 1].set(0.0)
    # A network 3 -> 5 -> 2 features and a Matern-5/2 GP with two outputs on them, at
    # the values fit_deep_kernel_gp starts from (unit length-scales, small noise).
    net = MLP((3, 5, 2), "tanh", jnp.float64, key=jax.random.PRNGKey(3))
    theta = GPHyperparameters(kernel=Matern52(),
                              kernel_params={"log_lengthscale": jnp.zeros((2, 2)),
                                             "log_variance": jnp.zeros(2)},
                              log_noise=jnp.full(2, -4.0), mean=jnp.zeros(2))
    params, static = eqx.partition((net, theta), eqx.is_inexact_array)
    # Move the GP part off its initial values so every term is exercised.
    params = jax.tree.map(lambda a: a + 0.1 * jnp.asarray(rng.normal(size=a.shape)), params)

    @jax.jit
    def loss(p):
        return deep_kernel_loss(*eqx.combine(p, static), Z, Ys, mask)

    grad = jax.grad(loss)(params)
    for seed in range(3):
        direction = jax.tree.map(
            lambda a, s=seed: jnp.asarray(np.random.default_rng(10 + s).normal(size=a.shape)),
            params)
        eps = 1e-5
        shift = lambda sign: jax.tree.map(lambda a, v: a + sign * eps * v, params, direction)  # noqa: E731
        fd = (loss(shift(1.0)) - loss(shift(-1.0))) / (2 * eps)
        analytic = sum(jnp.vdot(g, v) for g, v in zip(jax.tree.leaves(grad),
                                                        jax.tree.leaves(direction)))
        np.testing.assert_allclose(float(analytic), float(fd), rtol=1e-6, atol=1e-8)


def test_bad_arguments_name_the_field():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="activation"):
        fit_deep_kernel_gp(X, np.zeros(4), key=jax.random.PRNGKey(0), activation="sigmoid")
    with pytest.raises(ValueError, match="features"):
        fit_deep_kernel_gp(X, np.zeros(4), key=jax.random.PRNGKey(0), features=0)
    with pytest.raises(ValueError, match="no finite observations"):
        fit_deep_kernel_gp(X, np.full(4, np.nan), key=jax.random.PRNGKey(0))
