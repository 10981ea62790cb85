"""Kernels against independent numpy formulas, by hand, and by their algebra."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

import surrogates  # noqa: F401  (float64)
from surrogates import kernels as K

D = 3


def _np_r(A, B, ls):
    return np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / ls) ** 2, axis=-1))


def _np_stationary(name, A, B, ls, var):
    r = _np_r(A, B, ls)
    if name == "matern12":
        return var * np.exp(-r)
    if name == "matern32":
        return var * (1 + math.sqrt(3) * r) * np.exp(-math.sqrt(3) * r)
    if name == "matern52":
        return var * (1 + math.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-math.sqrt(5) * r)
    if name == "rbf":
        return var * np.exp(-0.5 * r**2)
    raise ValueError(name)


def _np_periodic(A, B, ls, period, var):
    s = np.sin(np.pi * np.abs(A[:, None, :] - B[None, :, :]) / period) / ls
    return var * np.exp(-2 * np.sum(s**2, axis=-1))


def _np_linear(A, B, v, c=0.5):
    return (A - c) @ np.diag(v) @ (B - c).T


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(11)
    return rng.uniform(size=(7, D)), rng.uniform(size=(5, D))


def _random_params(kernel, d, seed=0):
    """The kernel's parameter pytree with every leaf moved randomly off its median."""
    params = kernel.init(d)
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(treedef, [
        jnp.asarray(np.asarray(x) + rng.normal(scale=0.4, size=np.shape(x))) for x in leaves])


@pytest.mark.parametrize("name", ["matern12", "matern32", "matern52", "rbf"])
def test_stationary_kernels_match_numpy(inputs, name):
    A, B = inputs
    kernel = K.parse_kernel(name)
    p = _random_params(kernel, D)
    ls, var = np.exp(p["log_lengthscale"]), math.exp(p["log_variance"])
    np.testing.assert_allclose(kernel(p, A, B), _np_stationary(name, A, B, ls, var),
                               rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kernel.diag(p, A), np.full(len(A), var), rtol=1e-14)


def test_linear_and_periodic_kernels_match_numpy(inputs):
    A, B = inputs
    lin, per = K.Linear(), K.Periodic()
    pl, pp = _random_params(lin, D, 1), _random_params(per, D, 2)
    np.testing.assert_allclose(lin(pl, A, B), _np_linear(A, B, np.exp(pl["log_variance"])),
                               rtol=1e-12, atol=1e-14)
    expected = _np_periodic(A, B, np.exp(pp["log_lengthscale"]), np.exp(pp["log_period"]),
                            math.exp(pp["log_variance"]))
    np.testing.assert_allclose(per(pp, A, B), expected, rtol=1e-12, atol=1e-14)
    # Shifting one input by its period leaves the periodic kernel unchanged.
    shifted = A.copy()
    shifted[:, 1] += float(np.exp(pp["log_period"][1]))
    np.testing.assert_allclose(per(pp, shifted, B), expected, rtol=1e-10, atol=1e-12)


def test_sums_products_and_active_dims(inputs):
    A, B = inputs
    kernel = K.Matern32(active_dims=(0, 2)) * K.Periodic(active_dims=(1,)) + K.Linear()
    assert isinstance(kernel, K.Sum) and isinstance(kernel.kernels[0], K.Product)
    p = _random_params(kernel, D, 3)
    (pm, pp), pl = p
    expected = (
        _np_stationary("matern32", A[:, [0, 2]], B[:, [0, 2]], np.exp(pm["log_lengthscale"]),
                       math.exp(pm["log_variance"]))
        * _np_periodic(A[:, [1]], B[:, [1]], np.exp(pp["log_lengthscale"]),
                       np.exp(pp["log_period"]), math.exp(pp["log_variance"]))
        + _np_linear(A, B, np.exp(pl["log_variance"]))
    )
    np.testing.assert_allclose(kernel(p, A, B), expected, rtol=1e-12, atol=1e-14)
    # Sums flatten: (a + b) + c has three parts, with one parameter entry each.
    three = (K.RBF() + K.Linear()) + K.Matern12()
    assert len(three.kernels) == 3 and len(three.init(D)) == 3


def test_categorical_kernel_by_hand():
    # Two groups: a 3-level and a 2-level categorical, one-hot in columns 0-2 and 3-4.
    kernel = K.Categorical(groups=((0, 1, 2), (3, 4)))
    p = {"log_weight": jnp.log(jnp.array([0.5, 2.0]))}
    X = np.array([[1, 0, 0, 1, 0],    # (a, x)
                  [0, 1, 0, 1, 0],    # (b, x): first group differs
                  [1, 0, 0, 0, 1],    # (a, y): second group differs
                  [0, 0, 1, 0, 1]],   # (c, y): both differ from row 0
                 dtype=float)
    expected = np.array([
        [1.0, math.exp(-0.5), math.exp(-2.0), math.exp(-2.5)],
        [math.exp(-0.5), 1.0, math.exp(-2.5), math.exp(-2.5)],
        [math.exp(-2.0), math.exp(-2.5), 1.0, math.exp(-0.5)],
        [math.exp(-2.5), math.exp(-2.5), math.exp(-0.5), 1.0],
    ])
    np.testing.assert_allclose(kernel(p, X, X), expected, rtol=1e-14)
    # Multiplied with a continuous kernel on the other columns.
    Xc = np.hstack([np.array([[0.1], [0.4], [0.7], [0.2]]), X])
    mixed = K.with_categorical(K.Matern52(), [(1, 2, 3), (4, 5)], d=6)
    assert mixed.kernels[0].active_dims == (0,)
    pm = mixed.init(6)
    pm = (pm[0], p)
    cont = _np_stationary("matern52", Xc[:, :1], Xc[:, :1],
                          np.exp(np.asarray(pm[0]["log_lengthscale"])), 1.0)
    np.testing.assert_allclose(mixed(pm, Xc, Xc), cont * expected, rtol=1e-12)


def test_additive_categorical_structure_by_hand():
    """Main effects plus interaction: on a purely categorical space each factor's
    scaled exchangeable kernel plus a scaled product over all factors; with
    continuous columns the continuous kernel, the categorical main effects and
    their product."""
    groups = ((0, 1, 2), (3, 4))
    X = np.array([[1, 0, 0, 1, 0], [0, 1, 0, 1, 0], [1, 0, 0, 0, 1], [0, 0, 1, 0, 1]], float)
    w, s = np.array([0.5, 2.0]), np.array([0.3, 1.7, 0.6])  # weights; variances of 3 terms
    same = [(X[:, list(g)] @ X[:, list(g)].T) for g in groups]  # 1 where the factor agrees
    main = [s[i] * np.exp(-w[i] * (1 - same[i])) for i in range(2)]
    inter = s[2] * np.exp(-w[0] * (1 - same[0]) - w[1] * (1 - same[1]))
    kernel = K.with_categorical(K.Matern52(), groups, d=5, structure="additive")
    assert kernel == K.Sum((K.Categorical(groups=(groups[0],), scaled=True),
                            K.Categorical(groups=(groups[1],), scaled=True),
                            K.Categorical(groups=groups, scaled=True)))
    p = tuple({"log_weight": jnp.log(jnp.array([w[i]])), "log_variance": jnp.log(s[i])}
              for i in range(2)) + ({"log_weight": jnp.log(jnp.asarray(w)),
                                     "log_variance": jnp.log(s[2])},)
    np.testing.assert_allclose(kernel(p, X, X), main[0] + main[1] + inter, rtol=1e-13)
    # With a continuous column: k_cont + sum of mains + k_cont * unit-variance product.
    Xc = np.hstack([np.array([[0.1], [0.4], [0.7], [0.2]]), X])
    mixed = K.with_categorical(K.Matern52(), [(1, 2, 3), (4, 5)], d=6, structure="additive")
    pm = mixed.init(6)
    cont = _np_stationary("matern52", Xc[:, :1], Xc[:, :1],
                          np.exp(np.asarray(pm[2]["log_lengthscale"])), 1.0)
    unit = np.exp(-(1 - same[0]) - (1 - same[1]))  # weights at their prior median, e^0
    mains = np.exp(-(1 - same[0])) + np.exp(-(1 - same[1]))  # unit variances at init
    np.testing.assert_allclose(mixed(pm, Xc, Xc), cont + mains + cont * unit, rtol=1e-12)
    with pytest.raises(ValueError, match="structure"):
        K.with_categorical(K.Matern52(), groups, d=5, structure="sum")


KERNELS = {
    "matern12": K.Matern12(), "matern32": K.Matern32(), "matern52": K.Matern52(),
    "rbf": K.RBF(), "linear": K.Linear(), "periodic": K.Periodic(),
    "sum": K.Matern52() + K.Linear(), "product": K.RBF() * K.Periodic(),
    "warped": K.Warped(K.Matern32()),
    "categorical": K.with_categorical(K.Matern52(), [(1, 2), (3, 4, 5)], d=6),
    "categorical_additive": K.with_categorical(K.Matern52(), [(1, 2), (3, 4, 5)], d=6,
                                               structure="additive"),
}


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_gram_matrices_are_positive_semidefinite(name):
    kernel = KERNELS[name]
    d = 6 if name.startswith("categorical") else D
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(40, d))
    if name.startswith("categorical"):
        # Exact one-hots in half the rows, relaxed (as an optimiser passes) in the other.
        X[:20, 1:3] = np.eye(2)[rng.integers(2, size=20)]
        X[:20, 3:6] = np.eye(3)[rng.integers(3, size=20)]
    p = _random_params(kernel, d, 7)
    G = np.asarray(kernel(p, X, X))
    np.testing.assert_allclose(G, G.T, atol=1e-13)
    eig = np.linalg.eigvalsh(G)
    assert eig.min() > -1e-10 * max(1.0, eig.max())
    np.testing.assert_allclose(kernel.diag(p, X), np.diag(G), rtol=1e-12, atol=1e-14)


def test_warping_is_the_identity_at_a_equal_b_equal_1(inputs):
    A, B = inputs
    warped = K.Warped(K.Matern52())
    p = warped.init(D)
    assert np.all(np.asarray(p["log_a"]) == 0) and np.all(np.asarray(p["log_b"]) == 0)
    np.testing.assert_allclose(warped(p, A, B), K.Matern52()(p["kernel"], A, B), rtol=1e-13,
                               atol=1e-15)
    # Away from the identity: the Kumaraswamy CDF, and only the named columns move.
    x = np.linspace(0.05, 0.95, 7)
    a, b = 2.0, 0.5
    np.testing.assert_allclose(K.kumaraswamy_cdf(x, math.log(a), math.log(b)),
                               1 - (1 - x**a) ** b, rtol=1e-13)
    partial = K.Warped(K.Matern52(), dims=(1,))
    q = {"log_a": jnp.array([math.log(a)]), "log_b": jnp.array([math.log(b)]),
         "kernel": p["kernel"]}
    W = np.asarray(partial.warp(q, jnp.asarray(A)))
    np.testing.assert_allclose(W[:, [0, 2]], A[:, [0, 2]], rtol=0)
    np.testing.assert_allclose(W[:, 1], 1 - (1 - A[:, 1] ** a) ** b, rtol=1e-13)


# Optuna's prior -(0.1 / lam + 0.1 lam) on lam = l^-2 is -0.2 cosh(2u) in u = log l:
# curvature 0.8 at its mode u = 0, the normal's 1 / scale^2.
FLAT_SCALE = 1 / math.sqrt(0.8)


def test_log_priors_match_scipy():
    d = 4
    kernel = K.Matern52() + K.Linear()
    p = _random_params(kernel, d, 9)
    (pm, pl) = p
    expected = (norm.logpdf(np.asarray(pm["log_lengthscale"]), 0.0, FLAT_SCALE).sum()
                + norm.logpdf(float(pm["log_variance"]), 0, 1)
                + norm.logpdf(np.asarray(pl["log_variance"]), math.log(4 / d), 2).sum())
    assert float(kernel.log_prior(p)) == pytest.approx(expected, rel=1e-12)


def test_descriptor_columns_get_the_dimension_scaled_prior_over_their_number():
    """Columns 3-7 of 8 describe a substance: they share Hvarfner et al.'s (2024)
    N(sqrt2 + log(5) / 2, 3) on log length-scales; the parameters' columns keep the
    flat prior. The marking follows active_dims through a product and a warping."""
    d, marked = 8, (3, 4, 5, 6, 7)
    inner = K.Matern52(active_dims=(1, 2, 3, 4, 5, 6, 7)) * K.Categorical(groups=((0,),))
    kernel = K.with_descriptor_columns(K.Warped(inner, dims=(1, 2)), marked)
    matern = kernel.kernel.kernels[0]
    assert matern.descriptor_dims == marked
    p = _random_params(kernel, d, 3)
    ll = np.asarray(p["kernel"][0]["log_lengthscale"])  # columns 1..7
    loc = math.sqrt(2) + 0.5 * math.log(len(marked))
    expected = (norm.logpdf(ll[:2], 0.0, FLAT_SCALE).sum()
                + norm.logpdf(ll[2:], loc, math.sqrt(3)).sum()
                + norm.logpdf(float(p["kernel"][0]["log_variance"]), 0, 1)
                + norm.logpdf(np.asarray(p["kernel"][1]["log_weight"]), 0, 1.5).sum()
                + norm.logpdf(np.asarray(p["log_a"]), 0, math.sqrt(0.75)).sum()
                + norm.logpdf(np.asarray(p["log_b"]), 0, math.sqrt(0.75)).sum())
    assert float(kernel.log_prior(p)) == pytest.approx(expected, rel=1e-12)
    # Initial values are the priors' medians, column by column.
    np.testing.assert_array_equal(np.asarray(kernel.init(d)["kernel"][0]["log_lengthscale"]),
                                  [0.0, 0.0] + [loc] * 5)
    # A column selection in between renumbers: the sum sees columns 2..7 as 0..5.
    nested = K.with_descriptor_columns(K.Sum((K.RBF(), K.Linear()), active_dims=(2, 3, 4, 5, 6, 7)),
                                       marked)
    assert nested.kernels[0].descriptor_dims == (1, 2, 3, 4, 5)
    data = json.loads(json.dumps(K.kernel_to_dict(kernel)))
    assert K.kernel_from_dict(data) == kernel
    with pytest.raises(ValueError, match="out of range"):
        K.lengthscale_priors(3, [3])


def test_sq_dist_derivatives_match_finite_differences(inputs):
    A, B = (jnp.asarray(x) for x in inputs)
    ls0 = jnp.array([0.3, 0.7, 1.1])

    def f(log_ls):
        return jnp.sum(jnp.sin(K.scaled_sq_dist(A, B, jnp.exp(log_ls))))

    x0 = jnp.log(ls0)
    h = 1e-6
    fd = np.array([(f(x0.at[i].add(h)) - f(x0.at[i].add(-h))) / (2 * h) for i in range(3)])
    np.testing.assert_allclose(jax.grad(f)(x0), fd, rtol=1e-7)
    np.testing.assert_allclose(jax.jacfwd(f)(x0), fd, rtol=1e-7)  # forward mode works too


def test_parse_and_round_trip_through_plain_data():
    k = K.parse_kernel("matern52[0, 1] * (rbf + linear[2]) + periodic")
    assert k == K.Matern52(active_dims=(0, 1)) * (K.RBF() + K.Linear(active_dims=(2,))) \
        + K.Periodic()
    for kernel in [k, *KERNELS.values()]:
        data = json.loads(json.dumps(K.kernel_to_dict(kernel)))
        assert K.kernel_from_dict(data) == kernel
    with pytest.raises(ValueError, match="unknown kernel 'matern72'"):
        K.parse_kernel("matern72 + linear")
    with pytest.raises(ValueError, match="unexpected"):
        K.parse_kernel("matern52 +")


@pytest.mark.parametrize("name", ["matern12", "matern32", "matern52", "rbf"])
def test_closed_form_gram_vjp_equals_reverse_mode(inputs, name):
    A, _ = inputs
    kernel = K.parse_kernel(name)
    p = _random_params(kernel, D, 4)
    ct = np.random.default_rng(6).normal(size=(len(A), len(A)))
    closed = kernel.gram_vjp(p, A, ct)
    generic = K.Kernel.gram_vjp(kernel, p, A, ct)  # reverse mode through the Gram
    for key in ("log_lengthscale", "log_variance"):
        np.testing.assert_allclose(closed[key], generic[key], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sum", "product", "categorical", "categorical_additive"])
def test_composite_gram_vjp_equals_reverse_mode(name):
    kernel = {"sum": K.Matern52() + K.Linear(active_dims=(1,)),
              "product": K.Matern32(active_dims=(0, 2)) * K.Periodic() * K.RBF(active_dims=(1,)),
              "categorical": K.with_categorical(K.Matern52() + K.Linear(), [(3, 4)], d=5),
              "categorical_additive": K.with_categorical(K.Matern52(), [(3, 4)], d=5,
                                                         structure="additive")}[name]
    rng = np.random.default_rng(8)
    X = rng.uniform(size=(9, 5 if name.startswith("categorical") else 3))
    p = _random_params(kernel, X.shape[1], 5)
    ct = rng.normal(size=(9, 9))
    closed = jax.tree.leaves(kernel.gram_vjp(p, X, ct))
    generic = jax.tree.leaves(K.Kernel.gram_vjp(kernel, p, X, ct))
    for a, b in zip(closed, generic, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
