"""Monte-Carlo batch acquisitions and Thompson sampling against independent references.

Three kinds of truth: the same reparameterised average recomputed in numpy
from a closed-form numpy GP and the same base samples (exact to rounding);
brute-force Monte Carlo with many independent draws (within derived standard
errors); and central finite differences for every gradient.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from active_learning import mc
from active_learning.acquisition import (PRUNE_SAMPLES, LogNoisyExpectedImprovement,
                                         likely_best, sobol_normal_samples)
from surrogates.gp import NOISE_FLOOR
from acquisition_checks import fixed_gp, values, values_checked

_LS = np.array([0.3, 0.45])
_NOISE = 0.02  # standardised units


def _np_matern52(A, B):
    r = np.sqrt(np.sum(((A[:, None, :] - B[None, :, :]) / _LS) ** 2, axis=-1))
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


class _NumpyGP:
    """Closed-form posterior of a zero-mean, unit-variance Matérn-5/2 GP on standardised y."""

    def __init__(self, X, y, noise):
        self.X, self.loc, self.scale = X, y.mean(), y.std(ddof=1)
        K = _np_matern52(X, X) + (noise + NOISE_FLOOR) * np.eye(len(X))
        self.Kinv = np.linalg.inv(K)
        self.alpha = self.Kinv @ ((y - self.loc) / self.scale)

    def posterior(self, Xq):
        """Mean (q,) and covariance (q, q) of f at Xq, in output units."""
        Kq = _np_matern52(Xq, self.X)
        cov = _np_matern52(Xq, Xq) - Kq @ self.Kinv @ Kq.T
        return self.loc + self.scale * Kq @ self.alpha, self.scale**2 * cov

    def draws(self, X_all, num_samples, seed=0):
        """Reparameterised joint draws (S, len(X_all)) from the acquisitions' base samples."""
        mean, cov = self.posterior(X_all)
        L = np.linalg.cholesky(cov + 1e-9 * np.diag(cov).max() * np.eye(len(cov)))
        return mean + sobol_normal_samples(num_samples, len(X_all), seed) @ L.T


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


def _values_checked(acq, X, h=1e-6, rtol=1e-4, atol=1e-6):
    return values_checked(acq, X, h=h, rtol=rtol, atol=atol)


# numpy versions of the smoothing, written from their definitions.
def _np_log_fatplus(x, tau):
    u = x / tau
    return np.log(np.logaddexp(u, 0.0) + 0.1 / (1 + u * u)) + np.log(tau)


def _np_fatmax(x, tau):
    M = x.max(axis=-1, keepdims=True)
    t = (M - x) / tau
    return M[..., 0] + tau * np.log(np.sum(2 / (2 + 2 * t + t * t), axis=-1))


def _np_logmeanexp(x, axis):
    return np.log(np.mean(np.exp(x - x.max(axis, keepdims=True)), axis)) + x.max(axis)


def _closed_form_ei_moments(mean, std, best):
    """EI and E[max(f - best, 0)^2] for f ~ N(mean, std^2)."""
    z = (mean - best) / std
    pdf, cdf = stats.norm.pdf(z), stats.norm.cdf(z)
    return std * (pdf + z * cdf), std**2 * ((z * z + 1) * cdf + z * pdf)


def test_smoothing_functions_approach_relu_and_max():
    x = jnp.asarray([[-3.0, 0.2, 0.5], [1.0, 1.0, 1.0], [0.7, -50.0, 2.0]])
    fm, fm1, lf = jax.jit(lambda x: (mc.fatmax(x, 0.01), mc.fatmax(x[:, :1], 0.01),
                                     mc.log_fatplus(x, 1e-3)))(x)
    xm = np.asarray(x).max(axis=1)
    assert np.all(np.asarray(fm) >= xm) and np.all(np.asarray(fm) <= xm + 0.01 * np.log(3))
    np.testing.assert_allclose(np.asarray(fm1), np.asarray(x)[:, 0], rtol=1e-15)
    positive = np.asarray(x) > 0.1
    np.testing.assert_allclose(np.asarray(lf)[positive], np.log(np.asarray(x)[positive]),
                               atol=1e-5)
    # The fat tail: about log(0.1 tau^3 / x^2) below zero, not -x / tau.
    assert float(lf[2, 1]) == pytest.approx(np.log(0.1 * 1e-9 / 2500), rel=1e-6)


def test_q1_log_ei_is_the_sample_average_and_agrees_with_analytic_log_ei(noisy, data):
    model, ref = noisy
    _, y, Xq = data
    best, S = np.quantile(y, 0.8), 1024
    got = _values_checked(mc.qLogExpectedImprovement(model, jnp.asarray(best), num_samples=S),
                          Xq)
    mean, cov = ref.posterior(Xq)
    std = np.sqrt(np.diag(cov))
    # Same base samples through numpy: exact up to rounding.
    f = mean + std * sobol_normal_samples(S, 1, 0)
    expected = _np_logmeanexp(_np_log_fatplus(f - best, mc.TAU_RELU), axis=0)
    np.testing.assert_allclose(got, expected, rtol=1e-7)
    # Against closed-form EI, within 4 (iid) standard errors of the average.
    ei, second = _closed_form_ei_moments(mean, std, best)
    rel_se = np.sqrt(second - ei**2) / (np.sqrt(S) * ei)
    np.testing.assert_array_less(np.abs(got - np.log(ei)), 4 * rel_se)
    assert np.sum(ei > 1e-2) >= 3  # most of the comparison is where EI is sizeable


def test_q1_ucb_and_simple_regret_agree_with_the_posterior(noisy, data):
    model, ref = noisy
    Xq = data[2]
    mean, cov = ref.posterior(Xq)
    std = np.sqrt(np.diag(cov))
    z = sobol_normal_samples(512, 1, 0)[:, 0]
    ucb = np.asarray(_values(mc.qUpperConfidenceBound(model, beta=2.0), Xq))
    np.testing.assert_allclose(ucb, mean + np.sqrt(2.0 * np.pi / 2) * std * np.abs(z).mean(),
                               rtol=1e-7)
    # E|z| = sqrt(2 / pi), so this is mean + sqrt(beta) std up to MC error.
    se = np.sqrt(np.pi) * std * np.abs(z).std() / np.sqrt(512)
    np.testing.assert_array_less(np.abs(ucb - (mean + np.sqrt(2.0) * std)), 4 * se)
    sr = np.asarray(_values(mc.qSimpleRegret(model), Xq))
    np.testing.assert_allclose(sr, mean + std * z.mean(), rtol=1e-7)


def _brute_force(ref, X_all, improvement, n=400_000, seed=0):
    """Mean and standard error of improvement(f) over iid joint draws f: (n, len(X_all))."""
    mean, cov = ref.posterior(X_all)
    f = np.random.default_rng(seed).multivariate_normal(mean, cov, size=n, method="cholesky")
    imp = improvement(f)
    return imp.mean(), imp.std() / np.sqrt(n), imp.std()


def test_q2_log_ei_matches_brute_force(noisy, data):
    model, ref = noisy
    _, y, _ = data
    best, S, tau_max = y.max(), 2048, 1e-3
    batches = np.array([[[0.5, 0.5], [0.6, 0.45]], [[0.9, 0.1], [0.15, 0.8]],
                        [[0.35, 0.3], [0.3, 0.95]]])
    got = _values_checked(mc.qLogExpectedImprovement(model, jnp.asarray(best), num_samples=S,
                                                     tau_max=tau_max), batches)
    for value, Xb in zip(got, batches):
        m, se, sd = _brute_force(ref, Xb, lambda f: np.maximum(f.max(1) - best, 0.0))
        # Smooth max over 2 overshoots by at most tau_max log 2 in log space.
        tol = 4 * (se + sd / np.sqrt(S)) / m + tau_max * np.log(2)
        assert value == pytest.approx(np.log(m), abs=tol)


def test_q_log_nei_without_noise_is_q_log_ei(noiseless, data):
    model, ref = noiseless
    X, y, Xq = data
    S = 1024
    nei = _values_checked(mc.qLogNoisyExpectedImprovement(model, jnp.asarray(X), num_samples=S),
                          Xq)
    ei = _values_checked(mc.qLogExpectedImprovement(model, jnp.asarray(y.max()), num_samples=S),
                         Xq)
    # Two estimates with different base samples, plus the latent incumbent's
    # spread (posterior std at the data, ~1e-3 of y's scale) to first order.
    mean, cov = ref.posterior(Xq)
    std = np.sqrt(np.diag(cov))
    e, second = _closed_form_ei_moments(mean, std, y.max())
    rel_se = np.sqrt(second - e**2) / (np.sqrt(S) * e)
    spread = 3 * np.sqrt(np.diag(ref.posterior(X)[1]).max())
    z = (mean - y.max()) / std
    np.testing.assert_array_less(np.abs(nei - ei),
                                 8 * rel_se + stats.norm.cdf(z) / e * spread)


def test_q_log_nei_with_pending_points_matches_brute_force(noisy, data):
    model, ref = noisy
    X, _, _ = data
    n, S = len(X), 2048
    pending = np.array([[0.55, 0.5]])
    batches = np.array([[[0.5, 0.5], [0.2, 0.6]], [[0.9, 0.1], [0.15, 0.8]],
                        [[0.56, 0.52], [0.45, 0.55]]])
    acq = mc.qLogNoisyExpectedImprovement(model, jnp.asarray(X), X_pending=jnp.asarray(pending),
                                          num_samples=S, tau_max=1e-3)
    got = _values_checked(acq, batches)
    for value, Xb in zip(got, batches):
        # Gain of the batch over the best latent value at the data and the pending point.
        m, se, sd = _brute_force(ref, np.concatenate([X, pending, Xb]),
                                 lambda f: np.maximum(f[:, n + 1:].max(1)
                                                      - f[:, :n + 1].max(1), 0.0))
        tol = 4 * (se + sd / np.sqrt(S)) / m + 1e-3 * np.log(2)
        assert value == pytest.approx(np.log(m), abs=tol)


def test_likely_best_keeps_the_points_most_often_best_in_joint_draws(noisy, data):
    model, ref = noisy
    X, _, _ = data
    k = 3
    kept, mask = likely_best(model, jnp.asarray(X), jnp.ones(len(X)), k, seed=4)
    # The same base samples through the numpy posterior: how often each point is the max.
    wins = np.bincount(np.argmax(ref.draws(X, PRUNE_SAMPLES, seed=4), axis=1),
                       minlength=len(X))
    assert np.asarray(kept).shape == (k, X.shape[1])
    winners = np.argsort(-wins, kind="stable")[:min(k, np.sum(wins > 0))]
    real = np.asarray(mask) > 0
    np.testing.assert_array_equal(np.asarray(kept)[real], X[winners])
    assert real.sum() == len(winners) and wins[winners].min() > 0
    # Padding rows are never kept as winners.
    padded = np.concatenate([X, np.repeat(X[:1], 3, axis=0)])
    _, mask = likely_best(model, jnp.asarray(padded),
                             jnp.asarray(np.r_[np.ones(len(X)), np.zeros(3)]), len(padded))
    assert float(np.asarray(mask)[-3:].sum()) == 0.0


@pytest.mark.parametrize("kind", ["qlog_nei", "log_nei"])
def test_noisy_ei_on_the_likely_best_points_matches_brute_force_over_all(noisy, data, kind):
    """Keeping only the points that can be the best leaves the noisy EI over the whole
    baseline as it was, within the Monte-Carlo error."""
    model, ref = noisy
    X, _, _ = data
    n, S = len(X), 2048
    wins = np.bincount(np.argmax(ref.draws(X, PRUNE_SAMPLES), axis=1), minlength=n)
    k = int(np.sum(wins > 0))
    assert k < n  # something is pruned
    batches = np.array([[0.5, 0.5], [0.9, 0.1], [0.15, 0.8], [0.35, 0.3]])
    cls = (mc.qLogNoisyExpectedImprovement if kind == "qlog_nei"
           else LogNoisyExpectedImprovement)
    acq = cls(model, jnp.asarray(X), num_samples=S, max_baseline=k)
    got = _values_checked(acq, batches)
    for value, x in zip(got, batches):
        m, se, sd = _brute_force(ref, np.concatenate([X, x[None]]),
                                 lambda f: np.maximum(f[:, n] - f[:, :n].max(1), 0.0))
        assert value == pytest.approx(np.log(m), abs=4 * (se + sd / np.sqrt(S)) / m)


def test_a_pending_point_devalues_its_location(noisy, data):
    model, ref = noisy
    _, y, _ = data
    best, S = y.max(), 1024
    x0 = np.array([0.5, 0.5])
    # Right next to x0 (at x0 itself the value has a cusp, so no gradient check).
    Xq = np.array([x0 + [2e-3, 0.0], [0.3, 0.4], [0.9, 0.1], [0.15, 0.8]])
    plain = _values_checked(mc.qLogExpectedImprovement(model, jnp.asarray(best), num_samples=S),
                            Xq)
    with_pending = _values_checked(mc.qLogExpectedImprovement(
        model, jnp.asarray(best), X_pending=jnp.asarray(x0[None]), num_samples=S), Xq)
    # Next to x0 the new point nearly duplicates the pending one and gains ~nothing.
    assert plain[0] > np.log(1e-3) and with_pending[0] < plain[0] - 4
    assert np.all(with_pending <= plain + 1e-12)
    # The value is E[max(f(x) - max(best, f(x0)), 0)] = qEI({x, x0}) - qEI({x0}).
    for value, x in zip(with_pending, Xq):
        m, se, sd = _brute_force(ref, np.stack([x0, x]),
                                 lambda f: np.maximum(f[:, 1] - np.maximum(best, f[:, 0]), 0.0))
        assert value == pytest.approx(np.log(m), abs=4 * (se + sd / np.sqrt(S)) / m)
    # Padding rows are ignored whatever they hold: static shapes for a growing pending set.
    padded = [mc.qLogExpectedImprovement(model, jnp.asarray(best), num_samples=S,
                                         X_pending=jnp.asarray([x0, junk]),
                                         pending_mask=jnp.asarray([1.0, 0.0]))
              for junk in ([0.3, 0.4], [0.0, 1.0])]
    a, b = (np.asarray(_values(p, Xq)) for p in padded)
    np.testing.assert_allclose(a, b, rtol=1e-10)
    assert a[0] < plain[0] - 4


@pytest.mark.parametrize("kind", ["ucb", "simple_regret"])
def test_batch_ucb_and_simple_regret_with_pending_points(noisy, kind):
    model, ref = noisy
    S, beta = 512, 3.0
    pending = np.array([[0.55, 0.5]])
    batches = np.array([[[0.5, 0.5], [0.2, 0.6]], [[0.9, 0.1], [0.15, 0.8]]])
    cls = mc.qUpperConfidenceBound if kind == "ucb" else mc.qSimpleRegret
    extra = {"beta": beta} if kind == "ucb" else {}
    got = _values_checked(cls(model, X_pending=jnp.asarray(pending), num_samples=S, **extra),
                          batches)
    for value, Xb in zip(got, batches):
        X_all = np.concatenate([pending, Xb])
        f = ref.draws(X_all, S)
        if kind == "ucb":
            mean = ref.posterior(X_all)[0]
            f = mean + np.sqrt(beta * np.pi / 2) * np.abs(f - mean)
        gain = np.maximum(f[:, 1:].max(1), f[:, 0]) - f[:, 0]
        assert value == pytest.approx(gain.mean(), rel=1e-6)


def test_thompson_sampling_picks_the_clear_maxima_without_repeats():
    C = np.array([[0.1, 0.1], [0.2, 0.9], [0.5, 0.5], [0.8, 0.2], [0.9, 0.9], [0.4, 0.1]])
    y = np.array([0.0, 3.0, 1.0, 2.0, -1.0, 0.5])
    model = _gp(C, y, 0.0)  # posterior std at C ~ 1e-3 of y's spread
    # Minimising: the four lowest, in order, each once.
    idx = mc.thompson_sample(model, jnp.asarray(C), jax.random.key(0), 4, sign=-1.0)
    np.testing.assert_array_equal(np.asarray(idx), [4, 0, 5, 2])
    with pytest.raises(ValueError, match="q must be"):
        mc.thompson_sample(model, jnp.asarray(C), jax.random.key(0), 7)


def test_thompson_sampling_frequencies_are_argmax_probabilities(noisy):
    model, ref = noisy
    C = np.array([[0.5, 0.5], [0.6, 0.45], [0.9, 0.1], [0.3, 0.9]])
    keys = jax.random.split(jax.random.key(1), 400)
    picks = np.asarray(jax.vmap(lambda k: mc.thompson_sample(model, jnp.asarray(C), k)[0])(keys))
    mean, cov = ref.posterior(C)
    p = np.bincount(np.random.default_rng(0).multivariate_normal(mean, cov, 200_000).argmax(1),
                    minlength=4) / 200_000
    freq = np.bincount(picks, minlength=4) / len(picks)
    np.testing.assert_array_less(np.abs(freq - p), 4 * np.sqrt(p * (1 - p) / len(picks)) + 1e-3)
