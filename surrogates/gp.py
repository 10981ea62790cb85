"""Exact Gaussian process regression with MAP hyperparameters.

The fitted model is an immutable ``equinox.Module`` holding the padded training
data, its Cholesky factor and the hyperparameters, so it crosses ``jit`` and
``vmap`` as a value. Training sets are padded to a bucket size with a mask so
a growing campaign compiles once per bucket, not once per observation.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
independent outputs, ``q`` query points.
"""

from __future__ import annotations

import math
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import cho_solve, solve_triangular

from surrogates import _lbfgs
from surrogates.kernels import matern52

_LOG_2PI = math.log(2.0 * math.pi)
# Smallest noise variance in standardised units: keeps the Cholesky of a
# noiseless, densely sampled objective well conditioned.
NOISE_FLOOR = 1e-6
_JITTER = 1e-9
_MIN_VARIANCE = 1e-12
MIN_BUCKET = 16


def bucket_size(n: int, minimum: int = MIN_BUCKET) -> int:
    """Padded capacity for ``n`` rows: the next power of two, at least ``minimum``."""
    return max(minimum, 1 << max(0, math.ceil(math.log2(max(n, 1)))))


class GPHyperparameters(eqx.Module):
    """Unconstrained hyperparameters of one output (or a stack of them).

    log_lengthscale: (..., d); log_variance, log_noise, mean: (...,).
    Noise is ``NOISE_FLOOR + exp(log_noise)`` in standardised output units.
    """

    log_lengthscale: Array
    log_variance: Array
    log_noise: Array
    mean: Array

    @property
    def lengthscale(self) -> Array:
        return jnp.exp(self.log_lengthscale)

    @property
    def variance(self) -> Array:
        return jnp.exp(self.log_variance)

    @property
    def noise(self) -> Array:
        return NOISE_FLOOR + jnp.exp(self.log_noise)


def lengthscale_prior(d: int) -> tuple[float, float]:
    """Location and scale of the normal prior on log length-scales.

    Dimension-scaled (Hvarfner et al., 2024): the median length-scale grows
    like sqrt(d), which keeps plain GP-BO from overfitting in many dimensions.
    """
    return math.sqrt(2.0) + 0.5 * math.log(d), math.sqrt(3.0)


_LOG_VARIANCE_PRIOR = (0.0, 1.0)
# Noise variance (standardised units) is log-normal around 3e-4 and wide: low
# enough that noiseless simulators are fitted tightly (a prior at 1e-2 cost a
# factor of 10-100 in regret on Branin and Hartmann-6), wide enough that the
# likelihood raises it for noisy lab data.
_LOG_NOISE_PRIOR = (-8.0, 2.0)
_MEAN_PRIOR = (0.0, 1.0)


def _normal_logpdf(x: Array, loc: float, scale: float) -> Array:
    z = (x - loc) / scale
    return -0.5 * z * z - math.log(scale) - 0.5 * _LOG_2PI


def log_prior(theta: GPHyperparameters) -> Array:
    """Log prior density of one output's unconstrained hyperparameters."""
    d = theta.log_lengthscale.shape[-1]
    loc, scale = lengthscale_prior(d)
    return (
        jnp.sum(_normal_logpdf(theta.log_lengthscale, loc, scale))
        + _normal_logpdf(theta.log_variance, *_LOG_VARIANCE_PRIOR)
        + _normal_logpdf(theta.log_noise, *_LOG_NOISE_PRIOR)
        + _normal_logpdf(theta.mean, *_MEAN_PRIOR)
    )


def _masked_gram(theta: GPHyperparameters, X: Array, mask: Array) -> Array:
    """Noisy Gram matrix whose padded rows and columns are the identity.

    The identity block adds nothing to log det and, with zero targets,
    nothing to the quadratic form, so padding leaves the likelihood exact.
    """
    K = matern52(X, X, theta.lengthscale, theta.variance)
    K = K * (mask[:, None] * mask[None, :])
    diag = mask * (theta.noise + _JITTER) + (1.0 - mask)
    return K + jnp.diag(diag)


def negative_log_marginal_likelihood(
    theta: GPHyperparameters, X: Array, y: Array, mask: Array
) -> Array:
    """-log p(y | X, theta) of one output over the unmasked rows.

    X: (N, d) scaled inputs; y: (N,) standardised targets; mask: (N,) 1 for data.
    """
    L = jnp.linalg.cholesky(_masked_gram(theta, X, mask))
    r = (y - theta.mean) * mask
    alpha = cho_solve((L, True), r)
    n = jnp.sum(mask)
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * n * _LOG_2PI


def _nll_value_and_grad(
    theta: GPHyperparameters, sqdiff: Array, y: Array, mask: Array
) -> tuple[Array, GPHyperparameters]:
    """-log marginal likelihood and its analytic gradient for the Matérn-5/2.

    sqdiff: (N, N, d) squared input differences, computed once per fit.
    Uses d nll = -1/2 tr((alpha alpha^T - K^-1) dK); about twice as fast as
    differentiating through the Cholesky, which dominates the fit's time.
    """
    inv_ls2 = jnp.exp(-2.0 * theta.log_lengthscale)
    D = sqdiff * inv_ls2
    r2 = jnp.sum(D, axis=-1)
    r = jnp.sqrt(jnp.maximum(r2, 1e-36))
    s5r = jnp.sqrt(5.0) * r
    e = jnp.exp(-s5r)
    mm = mask[:, None] * mask[None, :]
    Ks = theta.variance * (1.0 + s5r + (5.0 / 3.0) * r2) * e * mm
    K = Ks + jnp.diag(mask * (theta.noise + _JITTER) + (1.0 - mask))
    L = jnp.linalg.cholesky(K)
    res = (y - theta.mean) * mask
    Linv = solve_triangular(L, jnp.eye(K.shape[0]), lower=True)
    Kinv = Linv.T @ Linv
    alpha = Kinv @ res
    n = jnp.sum(mask)
    value = 0.5 * res @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * n * _LOG_2PI
    W = (Kinv - jnp.outer(alpha, alpha)) * mm
    # dK/dlog(l_j) = s 5/3 (1 + sqrt5 r) exp(-sqrt5 r) D_j: no 1/r singularity.
    G = theta.variance * (5.0 / 3.0) * (1.0 + s5r) * e
    grad = GPHyperparameters(
        log_lengthscale=0.5 * jnp.einsum("ab,abd->d", W * G, D),
        log_variance=0.5 * jnp.sum(W * Ks),
        log_noise=0.5 * jnp.trace(W) * jnp.exp(theta.log_noise),
        mean=-jnp.sum(alpha),
    )
    return value, grad


def _initial_hyperparameters(
    key: Array, restarts: int, d: int, warm: GPHyperparameters | None = None
) -> GPHyperparameters:
    """Restart 0 at ``warm`` (or the prior medians), 1 at the prior medians,
    the others drawn around them."""
    loc, _ = lengthscale_prior(d)
    k1, k2, k3 = jax.random.split(key, 3)
    median = GPHyperparameters(
        log_lengthscale=jnp.full((d,), loc), log_variance=jnp.asarray(0.0),
        log_noise=jnp.asarray(_LOG_NOISE_PRIOR[0]), mean=jnp.asarray(0.0),
    )
    first = warm if warm is not None else median
    drawn = GPHyperparameters(
        log_lengthscale=loc + jax.random.normal(k1, (restarts, d)),
        log_variance=0.5 * jax.random.normal(k2, (restarts,)),
        log_noise=_LOG_NOISE_PRIOR[0] + jax.random.normal(k3, (restarts,)),
        mean=jnp.zeros(restarts),
    )
    idx = jnp.arange(restarts)

    def pick(a, b, c):
        sel = lambda i: (idx == i).reshape((-1,) + (1,) * (c.ndim - 1))
        return jnp.where(sel(0), a, jnp.where(sel(1), b, c))

    return jax.tree.map(pick, first, median, drawn)


def map_restarts(fn, xs):
    """Apply ``fn`` to each restart stacked along the leading axis of ``xs``.

    On accelerators the restarts run as one ``vmap``. On CPU, where a batch of
    small Cholesky factorisations costs as much as the same number one by one,
    lockstep would make every restart pay for the slowest one's iterations and
    backtracks (measured 2x slower at n = 40), so they run one after another
    inside the same compiled loop (``lax.map``), still with no Python loop.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    batch = n if jax.default_backend() != "cpu" else 1
    return lax.map(fn, xs, batch_size=batch)


def _fit_one_output(X, y, mask, key, warm, restarts: int, max_iter: int):
    """MAP hyperparameters of one output: all restarts run under one vmap."""
    d = X.shape[-1]
    sqdiff = (X[:, None, :] - X[None, :, :]) ** 2
    prior_grad = jax.value_and_grad(log_prior)

    def value_and_grad(theta):
        v, g = _nll_value_and_grad(theta, sqdiff, y, mask)
        pv, pg = prior_grad(theta)
        return v - pv, jax.tree.map(jnp.subtract, g, pg)

    theta0 = _initial_hyperparameters(key, restarts, d, warm)
    thetas, losses, _ = map_restarts(
        lambda t: _lbfgs.minimize(value_and_grad, t, max_iter=max_iter, gtol=1e-3, ftol=1e-8),
        theta0,
    )
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    best = jnp.argmin(losses)
    theta = jax.tree.map(lambda a: a[best], thetas)
    # A restart that diverged can only win if all did; fall back to restart 0.
    fallback = jax.tree.map(lambda a: a[0], theta0)
    ok = jnp.isfinite(losses[best])
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), theta, fallback)


def _standardise(Y: Array, mask: Array) -> tuple[Array, Array]:
    """Masked mean and standard deviation per output (scale 1 when degenerate)."""
    n = jnp.sum(mask, axis=0)
    loc = jnp.sum(Y * mask, axis=0) / jnp.maximum(n, 1.0)
    var = jnp.sum(((Y - loc) * mask) ** 2, axis=0) / jnp.maximum(n - 1.0, 1.0)
    scale = jnp.where((n > 1) & (var > 1e-24), jnp.sqrt(var), 1.0)
    return loc, scale


class Posterior(eqx.Module):
    """Marginal (and optionally joint) posterior at q points, in output units.

    mean, variance: (q, m); covariance: (m, q, q) or None.
    """

    mean: Array
    variance: Array
    covariance: Array | None = None

    @property
    def std(self) -> Array:
        return jnp.sqrt(self.variance)

    def sample(self, key: Array, num_samples: int) -> Array:
        """Joint reparameterised samples, (num_samples, q, m); needs covariance."""
        if self.covariance is None:
            raise ValueError("posterior(..., full_cov=True) is needed for joint samples")
        q = self.mean.shape[0]
        L = jnp.linalg.cholesky(self.covariance + 1e-9 * jnp.eye(q) * jnp.max(self.variance))
        z = jax.random.normal(key, (num_samples, self.mean.shape[1], q))
        draws = jnp.einsum("mij,smj->sim", L, z)
        return self.mean[None] + draws


class ExactGP(eqx.Module):
    """A fitted exact GP with independent outputs sharing the inputs.

    X: (N, d) scaled training inputs; Y: (N, m) standardised targets;
    mask: (N, m) 1 where an observation exists; cholesky: (m, N, N);
    alpha: (m, N) = K^-1 (y - mean); lower, span: (d,) input scaling;
    y_loc, y_scale: (m,) output standardisation.
    """

    hyperparameters: GPHyperparameters
    X: Array
    Y: Array
    mask: Array
    cholesky: Array
    alpha: Array
    lower: Array
    span: Array
    y_loc: Array
    y_scale: Array

    @property
    def num_outputs(self) -> int:
        return self.Y.shape[1]

    @property
    def capacity(self) -> int:
        return self.X.shape[0]

    def scale_inputs(self, Xq: Array) -> Array:
        return (Xq - self.lower) / self.span

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Latent posterior at Xq: (q, d) inputs in original units."""
        Z = self.scale_inputs(jnp.atleast_2d(Xq))

        def one(theta, mask, L, alpha):
            Kq = matern52(Z, self.X, theta.lengthscale, theta.variance) * mask[None, :]
            mean = theta.mean + Kq @ alpha
            v = solve_triangular(L, Kq.T, lower=True)
            var = jnp.maximum(theta.variance - jnp.sum(v * v, axis=0), _MIN_VARIANCE)
            if not full_cov:
                return mean, var, None
            cov = matern52(Z, Z, theta.lengthscale, theta.variance) - v.T @ v
            return mean, var, cov

        mean, var, cov = jax.vmap(one, in_axes=(0, 1, 0, 0))(
            self.hyperparameters, self.mask, self.cholesky, self.alpha
        )
        scale = self.y_scale[:, None]
        mean = (mean * scale + self.y_loc[:, None]).T
        var = (var * scale**2).T
        if cov is not None:
            cov = cov * (self.y_scale**2)[:, None, None]
        return Posterior(mean=mean, variance=var, covariance=cov)

    def condition(self, Xnew: Array, Ynew: Array) -> "ExactGP":
        """The GP conditioned on extra observations with fixed hyperparameters.

        Used for fantasies (pending points, greedy batches). The new rows take
        the first free padded slots; Xnew: (k, d), Ynew: (k, m) in original units.
        """
        n = int(np.max(np.sum(np.asarray(self.mask), axis=0)))
        k = Xnew.shape[0]
        if n + k > self.capacity:
            raise ValueError(
                f"cannot condition on {k} more points: {n} of {self.capacity} slots used"
            )
        return _condition(self, jnp.asarray(Xnew), jnp.asarray(Ynew), jnp.asarray(n))


def _factorise(theta, X, y, mask):
    L = jnp.linalg.cholesky(_masked_gram(theta, X, mask))
    alpha = cho_solve((L, True), (y - theta.mean) * mask)
    return L, alpha


@jax.jit
def _condition(model: ExactGP, Xnew: Array, Ynew: Array, start: Array) -> ExactGP:
    # ``start`` is traced: one program per (capacity, k), whatever n is.
    Z = model.scale_inputs(Xnew)
    Ys = (Ynew - model.y_loc) / model.y_scale
    X = lax.dynamic_update_slice(model.X, Z, (start, 0))
    Y = lax.dynamic_update_slice(model.Y, Ys, (start, 0))
    mask = lax.dynamic_update_slice(model.mask, jnp.ones_like(Ys), (start, 0))
    L, alpha = jax.vmap(_factorise, in_axes=(0, None, 1, 1))(model.hyperparameters, X, Y, mask)
    return eqx.tree_at(
        lambda g: (g.X, g.Y, g.mask, g.cholesky, g.alpha), model, (X, Y, mask, L, alpha)
    )


@partial(jax.jit, static_argnames=("restarts", "max_iter"))
def _fit(X, Y, mask, lower, span, key, warm, restarts: int, max_iter: int) -> ExactGP:
    Z = jnp.where(mask.any(axis=1, keepdims=True), (X - lower) / span, 0.5)
    loc, scale = _standardise(Y, mask)
    Ys = jnp.where(mask > 0, (Y - loc) / scale, 0.0)
    keys = jax.random.split(key, Y.shape[1])
    theta = jax.vmap(_fit_one_output, in_axes=(None, 1, 1, 0, 0, None, None))(
        Z, Ys, mask, keys, warm, restarts, max_iter
    )
    L, alpha = jax.vmap(_factorise, in_axes=(0, None, 1, 1))(theta, Z, Ys, mask)
    return ExactGP(
        hyperparameters=theta, X=Z, Y=Ys, mask=mask, cholesky=L, alpha=alpha,
        lower=lower, span=span, y_loc=loc, y_scale=scale,
    )


def fit_gp(
    X,
    Y,
    *,
    key: Array,
    bounds=None,
    capacity: int | None = None,
    restarts: int = 4,
    max_iter: int = 60,
    warm_start: GPHyperparameters | None = None,
) -> ExactGP:
    """Fit an exact GP (Matérn-5/2 ARD, constant mean, Gaussian noise) by MAP.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where an output is missing;
    key: PRNG key for the restarts; bounds: (2, d) lower/upper input bounds
    used to scale inputs to the unit cube (default: the data's range);
    capacity: rows to pad to (default the bucket of n; raise it to leave room
    for fantasies); restarts: L-BFGS starts optimised together under vmap;
    warm_start: hyperparameters of an earlier fit (same d and m), used as the
    first start, which makes refits in a growing campaign converge in a few
    iterations.
    """
    Xp, Yp, mask, lower, span = _pad(X, Y, bounds, capacity)
    d, m = Xp.shape[1], Yp.shape[1]
    if warm_start is None:
        loc, _ = lengthscale_prior(d)
        warm_start = GPHyperparameters(
            log_lengthscale=np.full((m, d), loc), log_variance=np.zeros(m),
            log_noise=np.full((m,), _LOG_NOISE_PRIOR[0]), mean=np.zeros(m),
        )
    # Plain float64 leaves: a weakly typed leaf would compile a second program.
    warm_start = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), warm_start)
    if warm_start.log_lengthscale.shape != (m, d):
        raise ValueError(
            f"warm_start has length-scales of shape {warm_start.log_lengthscale.shape};"
            f" expected {(m, d)}"
        )
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1; got {restarts}")
    return _fit(
        jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask), jnp.asarray(lower),
        jnp.asarray(span), key, warm_start, restarts=restarts, max_iter=max_iter,
    )


def _pad(X, Y, bounds, capacity):
    """Pad (X, Y) to a bucket; returns Xp, Yp, mask, lower, span as numpy arrays."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    if Y.ndim == 1:
        Y = Y[:, None]
    if X.ndim != 2 or Y.ndim != 2 or X.shape[0] != Y.shape[0]:
        raise ValueError(f"X must be (n, d) and Y (n, m); got {X.shape} and {Y.shape}")
    n, d = X.shape
    if bounds is None:
        lower, upper = X.min(axis=0), X.max(axis=0)
    else:
        lower, upper = (np.asarray(b, dtype=np.float64) for b in bounds)
    span = np.where(upper - lower > 0, upper - lower, 1.0)
    N = bucket_size(max(n, capacity or 0))
    mask = np.zeros((N, Y.shape[1]))
    mask[:n] = np.isfinite(Y)
    Xp = np.zeros((N, d))
    Xp[:n] = X
    Yp = np.zeros((N, Y.shape[1]))
    Yp[:n] = np.where(np.isfinite(Y), Y, 0.0)
    return Xp, Yp, mask, lower, span


@jax.jit
def _condition_on_data(X, Y, mask, lower, span, theta) -> ExactGP:
    Z = jnp.where(mask.any(axis=1, keepdims=True), (X - lower) / span, 0.5)
    loc, scale = _standardise(Y, mask)
    Ys = jnp.where(mask > 0, (Y - loc) / scale, 0.0)
    L, alpha = jax.vmap(_factorise, in_axes=(0, None, 1, 1))(theta, Z, Ys, mask)
    return ExactGP(
        hyperparameters=theta, X=Z, Y=Ys, mask=mask, cholesky=L, alpha=alpha,
        lower=lower, span=span, y_loc=loc, y_scale=scale,
    )


def gp_from_hyperparameters(
    X, Y, hyperparameters: GPHyperparameters, *, bounds=None, capacity: int | None = None
) -> ExactGP:
    """The GP posterior on (X, Y) with given hyperparameters, no fitting.

    Same scaling, standardisation and padding as ``fit_gp``; hyperparameters
    have a leading output axis (m, ...). For known models, tests and transfer.
    """
    Xp, Yp, mask, lower, span = _pad(X, Y, bounds, capacity)
    theta = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), hyperparameters)
    return _condition_on_data(jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask),
                              jnp.asarray(lower), jnp.asarray(span), theta)
