"""Exact Gaussian process regression with MAP hyperparameters.

The fitted model is an immutable ``equinox.Module`` holding the padded training
data, its Cholesky factor and the hyperparameters, so it crosses ``jit`` and
``vmap`` as a value. Training sets are padded to a bucket size with a mask so
a growing campaign compiles once per bucket, not once per observation.

Any kernel of :mod:`surrogates.kernels` works; the default is Matérn-5/2 ARD.
The marginal likelihood's gradient is exact and cheap for every kernel: with
W = K^-1 - alpha alpha^T formed once from the Cholesky factor, the gradient in
the kernel's parameters is the vector-Jacobian product of the Gram-matrix
function with cotangent W / 2, so nothing is differentiated through the
Cholesky factorisation.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
independent outputs, ``q`` query points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.flatten_util import ravel_pytree
from jax.scipy.linalg import cho_solve, solve_triangular

import surrogates._lbfgs as _lbfgs
from surrogates.data import bucket_size, pad_observations, standardise
from surrogates.kernels import (
    LOG_VARIANCE_PRIOR,
    Categorical,
    Kernel,
    Matern52,
    Params,
    Product,
    Sum,
    Warped,
    kernel_from_dict,
    kernel_to_dict,
    lengthscale_prior,
    normal_logpdf,
    parse_kernel,
)
from surrogates.numerics import JITTER, MIN_VARIANCE
from surrogates.registry import register_model

__all__ = [
    "ExactGP", "GPHyperparameters", "Posterior", "assemble_exact_gp", "bucket_size",
    "check_warm_start", "fit_gp", "scale_and_standardise",
    "gp_from_hyperparameters", "hyperparameters_from_dict", "hyperparameters_to_dict",
    "lengthscale_prior", "log_prior", "negative_log_marginal_likelihood", "resolve_kernel",
]

_LOG_2PI = math.log(2.0 * math.pi)
# Smallest noise variance in standardised units: keeps the Cholesky of a
# noiseless, densely sampled objective well conditioned.
NOISE_FLOOR = 1e-6

_LOG_VARIANCE_PRIOR = LOG_VARIANCE_PRIOR
# Noise variance (standardised units) is log-normal around 3e-4 and wide: low
# enough that noiseless simulators are fitted tightly (a prior near 1e-2 smooths
# their optima away and the search stalls), wide enough that the likelihood
# raises it for noisy lab data.
_LOG_NOISE_PRIOR = (-8.0, 2.0)
# Named log-normal priors on the noise variance (standardised units).
# "low" suits simulators and analytic functions; "lab" is BoTorch's
# LogNormal(-4, 1) (median 1.8e-2): measured yields and assays are noisy, and
# with tens of one-hot dimensions the "low" prior lets the GP interpolate every
# measurement and be confidently wrong between them.
NOISE_PRIORS = {"low": _LOG_NOISE_PRIOR, "lab": (-4.0, 1.0)}
_MEAN_PRIOR = (0.0, 1.0)
_normal_logpdf = normal_logpdf


class GPHyperparameters(eqx.Module):
    """Unconstrained hyperparameters of one output (or a stack of them).

    kernel_params: the kernel's parameter pytree; log_noise, mean: (...,).
    kernel: the covariance function (static, no array leaves); learn_noise:
    whether the homoscedastic noise is learned (static); noise_prior: the
    (mean, sd) of the log-normal prior on the learned noise (static). Noise is
    ``NOISE_FLOOR + exp(log_noise)`` in standardised output units, or just the
    floor when not learned.

    The default Matérn-5/2 can still be built and read by its old fields:
    ``GPHyperparameters(log_lengthscale=..., log_variance=..., log_noise=..., mean=...)``
    and ``theta.log_lengthscale``; any kernel by
    ``GPHyperparameters(kernel=k, kernel_params=p, log_noise=..., mean=...)``.
    """

    kernel_params: Params
    log_noise: Array
    mean: Array
    kernel: Kernel
    learn_noise: bool = eqx.field(static=True)
    noise_prior: tuple[float, float] = eqx.field(static=True)

    def __init__(self, log_lengthscale=None, log_variance=None, log_noise=None, mean=None, *,
                 kernel: Kernel | None = None, kernel_params: Params = None,
                 learn_noise: bool = True, noise_prior=_LOG_NOISE_PRIOR):
        if kernel_params is None:
            if log_lengthscale is None or log_variance is None:
                raise TypeError("GPHyperparameters needs kernel_params, or log_lengthscale"
                                " and log_variance for the default Matérn-5/2")
            kernel_params = {"log_lengthscale": log_lengthscale, "log_variance": log_variance}
        if log_noise is None or mean is None:
            raise TypeError("GPHyperparameters needs log_noise and mean")
        self.kernel_params = kernel_params
        self.log_noise = log_noise
        self.mean = mean
        self.kernel = Matern52() if kernel is None else kernel
        self.learn_noise = bool(learn_noise)
        self.noise_prior = resolve_noise_prior(noise_prior)

    def _stationary(self, name: str):
        p = self.kernel_params
        if not (isinstance(p, dict) and name in p):
            raise AttributeError(f"{name} exists for a single stationary kernel;"
                                 f" this one is {type(self.kernel).__name__}: use kernel_params")
        return p[name]

    @property
    def log_lengthscale(self) -> Array:
        return self._stationary("log_lengthscale")

    @property
    def log_variance(self) -> Array:
        return self._stationary("log_variance")

    @property
    def lengthscale(self) -> Array:
        return jnp.exp(self.log_lengthscale)

    @property
    def variance(self) -> Array:
        return jnp.exp(self.log_variance)

    @property
    def noise(self) -> Array:
        """Learned homoscedastic noise variance, standardised units."""
        learned = jnp.exp(self.log_noise) if self.learn_noise else jnp.zeros_like(self.log_noise)
        return NOISE_FLOOR + learned


def resolve_noise_prior(prior) -> tuple[float, float]:
    """A noise prior as (mean, sd) of the log variance: a name of ``NOISE_PRIORS``
    or a pair of numbers."""
    if isinstance(prior, str):
        if prior not in NOISE_PRIORS:
            raise ValueError(f"noise_prior {prior!r} is not one of {sorted(NOISE_PRIORS)}")
        return NOISE_PRIORS[prior]
    try:
        loc, scale = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise ValueError(f"noise_prior must be a name ({', '.join(sorted(NOISE_PRIORS))}) or"
                         f" (mean, sd) of the log noise variance; got {prior!r}") from None
    if not (np.isfinite(loc) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"noise_prior needs a finite mean and a positive sd; got {prior!r}")
    return (loc, scale)


def log_prior(theta: GPHyperparameters) -> Array:
    """Log prior density of one output's unconstrained hyperparameters."""
    noise = (_normal_logpdf(theta.log_noise, *theta.noise_prior) if theta.learn_noise
             else jnp.zeros(()))
    return (theta.kernel.log_prior(theta.kernel_params) + noise
            + _normal_logpdf(theta.mean, *_MEAN_PRIOR))


def _diagonal(theta: GPHyperparameters, mask: Array, noise: Array | None) -> Array:
    """Noise on observed rows, 1 on padded ones: (N,)."""
    extra = theta.noise + JITTER if noise is None else theta.noise + JITTER + noise
    return mask * extra + (1.0 - mask)


def _masked_gram(theta: GPHyperparameters, X: Array, mask: Array,
                 noise: Array | None = None) -> Array:
    """Noisy Gram matrix whose padded rows and columns are the identity.

    The identity block adds nothing to log det and, with zero targets,
    nothing to the quadratic form, so padding leaves the likelihood exact.
    """
    K = theta.kernel(theta.kernel_params, X, X)
    K = K * (mask[:, None] * mask[None, :])
    return K + jnp.diag(_diagonal(theta, mask, noise))


def negative_log_marginal_likelihood(
    theta: GPHyperparameters, X: Array, y: Array, mask: Array, noise: Array | None = None
) -> Array:
    """-log p(y | X, theta) of one output over the unmasked rows.

    X: (N, d) scaled inputs; y: (N,) standardised targets; mask: (N,) 1 for data;
    noise: (N,) known extra noise variances in standardised units, or None.
    """
    return _nll_value(theta, X, y, mask, noise)[0]


def _cholesky(K: Array) -> Array:
    """Lower Cholesky factor of a Gram matrix (NaN where it is not positive definite).

    Factors K^T without symmetrising: LAPACK's potrf reads column-major input and
    K^T (equal to K) is K's own bytes in that layout, so XLA copies nothing in, and
    jnp.linalg.cholesky's averaging of K with K^T is a no-op for a Gram matrix built
    symmetric.
    """
    return lax.linalg.cholesky(K.T, symmetrize_input=False)


def _nll_value(theta, X, y, mask, noise=None):
    """-log marginal likelihood and what its gradient reuses: (value, (L, alpha))."""
    L = _cholesky(_masked_gram(theta, X, mask, noise))
    r = (y - theta.mean) * mask
    alpha = cho_solve((L, True), r)
    n = jnp.sum(mask)
    value = 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * n * _LOG_2PI
    return value, (L, alpha)


# Below this size K^-1 comes from two triangular solves against the identity;
# above it, from the recursive blocking of _inverse_from_cholesky.
_INVERSE_BLOCK = 128


def _inverse_from_cholesky(L: Array) -> Array:
    """K^-1 for K = L L^T, L: (n, n) lower triangular.

    LAPACK's potri, which JAX lacks, in two-by-two blocks
    L = [[A, 0], [B, C]]: with X = -C^-1 B A^-1 (two half-size triangular solves),
    K^-1 = [[A^-T A^-1 + X^T X, X^T C^-1], [., C^-T C^-1]], the diagonal blocks
    recursively, and X^T C^-1 = (C^-T X)^T as a third solve, so that L^-1 is never
    formed: XLA's float64 matrix products are slower than LAPACK's triangular solves.
    """
    n = L.shape[0]
    if n <= _INVERSE_BLOCK:
        Linv = solve_triangular(L, jnp.eye(n, dtype=L.dtype), lower=True)
        return Linv.T @ Linv
    h = n // 2
    A, B, C = L[:h, :h], L[h:, :h], L[h:, h:]
    KA, KC = _inverse_from_cholesky(A), _inverse_from_cholesky(C)
    X = -solve_triangular(C, solve_triangular(A, B.T, lower=True, trans=1).T, lower=True)
    XtC = solve_triangular(C, X, lower=True, trans=1).T
    return jnp.block([[KA + X.T @ X, XtC], [XtC.T, KC]])


def _nll_grad(theta, X, y, mask, noise, L, alpha) -> GPHyperparameters:
    """Exact gradient of the -log marginal likelihood, given its Cholesky factor.

    d nll = -1/2 tr((alpha alpha^T - K^-1) dK) = 1/2 <W, dK>, W = K^-1 - alpha alpha^T:
    one K^-1 from L (about n^3 flops), then the vector-Jacobian
    product of the kernel's Gram function with cotangent W / 2 (O(n^2 d), in
    closed form for stationary kernels). Nothing is differentiated through the
    Cholesky factorisation, which ``value`` has already paid for.
    """
    mm = mask[:, None] * mask[None, :]
    if L.shape[0] <= _INVERSE_BLOCK:
        Kinv = cho_solve((L, True), jnp.eye(L.shape[0], dtype=L.dtype))
    else:
        Kinv = _inverse_from_cholesky(L)
    W = (Kinv - jnp.outer(alpha, alpha)) * mm
    g_kernel = theta.kernel.gram_vjp(theta.kernel_params, X, 0.5 * W)
    g_noise = 0.5 * jnp.trace(W) * jnp.exp(theta.log_noise) if theta.learn_noise else (
        jnp.zeros_like(theta.log_noise))
    return GPHyperparameters(kernel=theta.kernel, kernel_params=g_kernel, log_noise=g_noise,
                             mean=-jnp.sum(alpha), learn_noise=theta.learn_noise,
                             noise_prior=theta.noise_prior)


def _nll_value_and_grad(
    theta: GPHyperparameters, X: Array, y: Array, mask: Array, noise: Array | None = None
) -> tuple[Array, GPHyperparameters]:
    """-log marginal likelihood and its exact gradient (same shapes as the NLL)."""
    value, aux = _nll_value(theta, X, y, mask, noise)
    return value, _nll_grad(theta, X, y, mask, noise, *aux)


def _prior_median(kernel: Kernel, d: int, learn_noise: bool,
                  noise_prior: tuple[float, float] = _LOG_NOISE_PRIOR) -> GPHyperparameters:
    return GPHyperparameters(
        kernel=kernel, kernel_params=kernel.init(d), log_noise=jnp.asarray(noise_prior[0]),
        mean=jnp.asarray(0.0), learn_noise=learn_noise, noise_prior=noise_prior,
    )


def _perturbation_scale(path) -> float:
    last = path[-1]
    return 1.0 if getattr(last, "key", None) == "log_lengthscale" else 0.5


def _initial_hyperparameters(key: Array, restarts: int, d: int, warm: GPHyperparameters
                             ) -> GPHyperparameters:
    """Restart 0 at ``warm``, 1 at the prior medians, the others drawn around them.

    Drawn starts add N(0, 1) to log length-scales and N(0, 1/4) to the other
    kernel parameters; noise is drawn around its prior median.
    """
    kernel = warm.kernel
    k1, k2, k3 = jax.random.split(key, 3)
    median = _prior_median(kernel, d, warm.learn_noise, warm.noise_prior)
    leaves, treedef = jax.tree_util.tree_flatten_with_path(median.kernel_params)
    # Leaf i draws from k1, k2, then folds of k1: the first two leaves (the
    # default kernel's length-scales and variance) draw the same numbers
    # whatever leaves a longer kernel adds after them.
    leaf_keys = [k1, k2] + [jax.random.fold_in(k1, i) for i in range(2, len(leaves))]
    drawn_params = jax.tree.unflatten(treedef, [
        loc + _perturbation_scale(path) * jax.random.normal(k, (restarts,) + jnp.shape(loc))
        for (path, loc), k in zip(leaves, leaf_keys)
    ])
    drawn = GPHyperparameters(
        kernel=kernel, kernel_params=drawn_params,
        log_noise=warm.noise_prior[0] + jax.random.normal(k3, (restarts,)),
        mean=jnp.zeros(restarts), learn_noise=warm.learn_noise, noise_prior=warm.noise_prior,
    )
    idx = jnp.arange(restarts)

    def pick(a, b, c):
        sel = lambda i: (idx == i).reshape((-1,) + (1,) * (c.ndim - 1))  # noqa: E731
        return jnp.where(sel(0), a, jnp.where(sel(1), b, c))

    return jax.tree.map(pick, warm, median, drawn)


def map_restarts(fn, xs):
    """Apply ``fn`` to each restart stacked along the leading axis of ``xs``.

    On accelerators the restarts run as one ``vmap``. On CPU, where a batch of
    small Cholesky factorisations costs as much as the same number one by one,
    lockstep would make every restart pay for the slowest one's iterations and
    backtracks, so they run one after another
    inside the same compiled loop (``lax.map``), still with no Python loop.
    """
    if jax.default_backend() == "cpu":
        # A plain scan: no batching rule to trace, no lockstep selects to compile.
        return lax.map(fn, xs)
    return jax.vmap(fn)(xs)


# The gradient tolerance grows with n past this many observations: the
# log-likelihood's curvature grows like n, so a fixed tolerance would ask for
# ever more digits of the hyperparameters than matter.
_GTOL_REFERENCE_N = 100.0


# The first start, when no warm start is given, is the best of this grid
# around the prior medians (shift of every log length-scale, log noise), by
# value alone: at large n the medians (length-scales near 7, noise 3e-4) sit
# far out on the likelihood's exponential flank, where each quasi-Newton step
# gains a factor of e, and the grid saves those 10-20 iterations for about
# a dozen Cholesky factorisations.
# Below _SCREEN_MIN_N observations the medians are a fine start, and small
# fits skip the grid's factorisations.
_SCREEN_MIN_N = 64
_SCREEN_LENGTHSCALE_SHIFTS = (0.0, -1.0, -2.0, -3.0)
_SCREEN_LOG_NOISE = (-5.0, -2.0)  # after the noise prior's median


def _screening_grid(median: GPHyperparameters) -> GPHyperparameters:
    """Candidate starts, stacked on a leading axis."""
    shifts, noises = np.meshgrid(_SCREEN_LENGTHSCALE_SHIFTS,
                                 (median.noise_prior[0],) + _SCREEN_LOG_NOISE, indexing="ij")
    shifts, noises = jnp.asarray(shifts.ravel()), jnp.asarray(noises.ravel())

    def shift(path, leaf):
        named = getattr(path[-1], "key", None) == "log_lengthscale"
        delta = shifts.reshape((-1,) + (1,) * leaf.ndim) if named else 0.0
        return jnp.broadcast_to(leaf + delta, shifts.shape + leaf.shape)

    params = jax.tree_util.tree_map_with_path(shift, median.kernel_params)
    return GPHyperparameters(kernel=median.kernel, kernel_params=params, log_noise=noises,
                             mean=jnp.broadcast_to(median.mean, noises.shape),
                             learn_noise=median.learn_noise, noise_prior=median.noise_prior)


# From this padded capacity on (n > 512), restarts run on a random quarter of
# the padded rows, the winner is refined on a random half (containing that
# quarter), then on all rows: the hyperparameters of a few hundred rows are
# close to those of all, a subset iteration costs (subset / n)^3 of a full
# one, and each refinement starts near its optimum and with the previous
# stage's L-BFGS curvature pairs (scaled by the ratio of rows), so the full fit
# needs a handful of iterations instead of forty-odd from the prior medians
# (each costs a Cholesky and a K^-1).
_SUBSET_MIN_CAPACITY = 1024
# Refinements stop when an iteration gains less than this fraction of the
# objective (about 1e-2 nats at n = 1000): with the curvature carried over and
# the interpolating backtrack, a step that gains less is already within a
# fraction of a nat of the tight optimum, where the predictions no longer change.
_REFINE_FTOL = 3e-5


def _objective(X, y, mask, noise):
    """(value, grad) of the MAP objective on one data set, as L-BFGS wants them.

    Inner jits: traced and lowered once, however many places call them
    (screening, the first step, the line search), which keeps a fresh
    process's first fit short even when the compiled program is cached.
    """
    prior_grad = jax.grad(log_prior)

    @jax.jit
    def value(theta):
        v, aux = _nll_value(theta, X, y, mask, noise)
        return v - log_prior(theta), aux

    @jax.jit
    def grad(theta, aux):
        g = _nll_grad(theta, X, y, mask, noise, *aux)
        return jax.tree.map(jnp.subtract, g, prior_grad(theta))

    return value, grad


def _gtol(mask: Array) -> Array:
    return 1e-3 * jnp.maximum(1.0, jnp.sum(mask) / _GTOL_REFERENCE_N)


def _best_of_restarts(X, y, mask, noise, key, warm, screen, restarts: int, max_iter: int,
                      return_history: bool = False):
    """MAP hyperparameters from ``restarts`` starts, one compiled loop; the best wins
    (with ``return_history``, also the winner's L-BFGS curvature pairs)."""
    d = X.shape[-1]
    value, grad = _objective(X, y, mask, noise)

    def screened():
        grid = _screening_grid(_prior_median(warm.kernel, d, warm.learn_noise,
                                             warm.noise_prior))
        losses = lax.map(lambda t: value(t)[0], grid)
        best = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
        return jax.tree.map(lambda a: a[best], grid)

    theta0 = _initial_hyperparameters(key, restarts, d, warm)
    first = lax.cond(screen, screened, lambda: jax.tree.map(lambda a: a[0], theta0))
    theta0 = jax.tree.map(lambda a, b: a.at[0].set(b), theta0, first)
    out = map_restarts(
        lambda t: _lbfgs.minimize_with_aux(value, grad, t, max_iter=max_iter, gtol=_gtol(mask),
                                           ftol=1e-8, return_history=return_history),
        theta0,
    )
    thetas, losses = out[0], out[1]
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    best = jnp.argmin(losses)
    theta = jax.tree.map(lambda a: a[best], thetas)
    # A restart that diverged can only win if all did; fall back to restart 0.
    fallback = jax.tree.map(lambda a: a[0], theta0)
    ok = jnp.isfinite(losses[best])
    theta = jax.tree.map(lambda a, b: jnp.where(ok, a, b), theta, fallback)
    if return_history:
        history = jax.tree.map(lambda a: jnp.where(ok, a[best], jnp.zeros_like(a[best])),
                               out[3])
        return theta, history
    return theta


def _fit_one_output(X, y, mask, noise, key, warm, screen, restarts: int, max_iter: int):
    """MAP hyperparameters of one output: all restarts in one compiled loop.

    screen: (traced bool, the same for all outputs, so that ``cond`` stays a
    branch under the outputs' vmap) whether restart 0 starts at the best point
    of a small screening grid instead of ``warm``. From a capacity of
    ``_SUBSET_MIN_CAPACITY`` rows (a static choice: one program a bucket), the
    restarts run on a random quarter of the rows and the winner is refined on
    a half, then on all rows, from one start each; with a warm start (screen
    false) only the last refinement runs, from ``warm``.
    """
    N = X.shape[0]
    if N < _SUBSET_MIN_CAPACITY:
        return _best_of_restarts(X, y, mask, noise, key, warm, screen, restarts, max_iter)
    k_rows, key = jax.random.split(key)
    # Random observed rows first, nested (top_k sorts by the random score);
    # padded rows only if fewer are observed (their mask keeps them out).
    score = jnp.where(mask > 0, jax.random.uniform(k_rows, mask.shape), -1.0)
    rows = lax.top_k(score, N // 2)[1]

    def subset(r):
        return X[r], y[r], mask[r], None if noise is None else noise[r]

    def refine(theta, data, history=None, pass_on=True):
        # pass_on: the next stage starts from this one's curvature pairs; the last
        # stage's are not needed, which spares it the gradient after its last step.
        value, grad = _objective(*data)
        out = _lbfgs.minimize_with_aux(
            value, grad, theta, max_iter=max_iter, gtol=_gtol(data[2]), ftol=_REFINE_FTOL,
            history=history, return_history=pass_on, interpolate=True,
            skip_final_gradient=not pass_on)
        refined, loss = out[0], out[1]
        ok = jnp.isfinite(loss)
        theta = jax.tree.map(lambda a, b: jnp.where(ok, a, b), refined, theta)
        return (theta, out[3]) if pass_on else theta

    def scaled(history, rows_from, rows_to):
        # The likelihood's curvature grows about like the number of rows: a
        # subset's curvature pairs, scaled, start the next refinement with
        # quasi-Newton steps instead of short steepest-descent ones.
        S, Yd, rho, stored = history
        r = jnp.sum(rows_to) / jnp.maximum(jnp.sum(rows_from), 1.0)
        return S, r * Yd, rho / r, stored

    def cascade():
        quarter, half = subset(rows[:N // 4]), subset(rows)
        theta, history = _best_of_restarts(*quarter, key, warm, screen, restarts, max_iter,
                                           return_history=True)
        theta, history = refine(theta, half, scaled(history, quarter[2], half[2]))
        return theta, scaled(history, half[2], mask)

    # A warm start (a campaign's previous fit) is already near the optimum of
    # all rows, nearer than a subset's: refine it directly instead of walking to
    # a subset's optimum and back (from an empty memory: the interpolating
    # backtrack brings its long first step back in one or two values).
    theta, history = lax.cond(
        screen, cascade, lambda: (warm, _lbfgs.empty_history(ravel_pytree(warm)[0].shape[0])))
    return refine(theta, (X, y, mask, noise), history, pass_on=False)


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
        L = jnp.linalg.cholesky(self.covariance + JITTER * jnp.eye(q) * jnp.max(self.variance))
        z = jax.random.normal(key, (num_samples, self.mean.shape[1], q))
        draws = jnp.einsum("mij,smj->sim", L, z)
        return self.mean[None] + draws


class ExactGP(eqx.Module):
    """A fitted exact GP with independent outputs sharing the inputs.

    X: (N, d) scaled training inputs; Y: (N, m) standardised targets;
    mask: (N, m) 1 where an observation exists; cholesky: (m, N, N);
    alpha: (m, N) = K^-1 (y - mean); lower, span: (d,) input scaling;
    y_loc, y_scale: (m,) output standardisation; noise: (N, m) known noise
    variances in standardised units (None: none).
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
    noise: Array | None = None

    @property
    def num_outputs(self) -> int:
        return self.Y.shape[1]

    @property
    def capacity(self) -> int:
        return self.X.shape[0]

    @property
    def kernel(self) -> Kernel:
        return self.hyperparameters.kernel

    def scale_inputs(self, Xq: Array) -> Array:
        return (Xq - self.lower) / self.span

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Latent posterior at Xq: (q, d) inputs in original units."""
        Z = self.scale_inputs(jnp.atleast_2d(Xq))

        def one(theta, mask, L, alpha):
            k, p = theta.kernel, theta.kernel_params
            Kq = k(p, Z, self.X) * mask[None, :]
            mean = theta.mean + Kq @ alpha
            v = solve_triangular(L, Kq.T, lower=True)
            var = jnp.maximum(k.diag(p, Z) - jnp.sum(v * v, axis=0), MIN_VARIANCE)
            if not full_cov:
                return mean, var, None
            return mean, var, k(p, Z, Z) - v.T @ v

        mean, var, cov = jax.vmap(one, in_axes=(0, 1, 0, 0))(
            self.hyperparameters, self.mask, self.cholesky, self.alpha
        )
        scale = self.y_scale[:, None]
        mean = (mean * scale + self.y_loc[:, None]).T
        var = (var * scale**2).T
        if cov is not None:
            cov = cov * (self.y_scale**2)[:, None, None]
        return Posterior(mean=mean, variance=var, covariance=cov)

    def fixed_joint(self, X_fixed: Array) -> FixedJoint:
        """The blocks of joint posteriors over ``(X_fixed, Xq)`` that depend on Xq, with
        the fixed points' share of the work done once (see :class:`FixedJoint`)."""
        Zf = self.scale_inputs(jnp.atleast_2d(X_fixed))

        def one(theta, mask, L):
            Kf = theta.kernel(theta.kernel_params, Zf, self.X) * mask[None, :]
            return solve_triangular(L, Kf.T, lower=True)

        Vf = jax.vmap(one, in_axes=(0, 1, 0))(self.hyperparameters, self.mask, self.cholesky)
        return FixedJoint(model=self, Zf=Zf, Vf=Vf)

    def condition(self, Xnew: Array, Ynew: Array) -> ExactGP:
        """The GP conditioned on extra observations with fixed hyperparameters.

        Used for fantasies (pending points, greedy batches). The new rows take
        the first free padded slots and no known noise; Xnew: (k, d), Ynew:
        (k, m) in original units.
        """
        n = int(np.max(np.sum(np.asarray(self.mask), axis=0)))
        k = Xnew.shape[0]
        if n + k > self.capacity:
            raise ValueError(
                f"cannot condition on {k} more points: {n} of {self.capacity} slots used"
            )
        model = self if self.noise is not None else eqx.tree_at(
            lambda g: g.noise, self, jnp.zeros_like(self.Y), is_leaf=lambda x: x is None)
        return _condition(model, jnp.asarray(Xnew), jnp.asarray(Ynew), jnp.asarray(n))


class FixedJoint(eqx.Module):
    """Joint posterior blocks against a fixed point set (observed baseline, pending
    points) for many candidate batches: ``self(Xq)`` returns the candidates' mean and
    variance (q, m), their cross-covariance with the fixed points (m, p, q) and their
    covariance (m, q, q), in output units, as the full posterior over the
    concatenation would. The fixed points' whitened cross-kernel V_f = L^-1 K(X, X_f)
    is computed once, so a batch costs O(N^2 q) instead of O(N^2 (p + q)).
    """

    model: ExactGP
    Zf: Array
    Vf: Array  # (m, N, p)

    def __call__(self, Xq: Array) -> tuple[Array, Array, Array, Array]:
        g = self.model
        Z = g.scale_inputs(jnp.atleast_2d(Xq))

        def one(theta, mask, L, alpha, Vf):
            k, p = theta.kernel, theta.kernel_params
            Kq = k(p, Z, g.X) * mask[None, :]
            mean = theta.mean + Kq @ alpha
            v = solve_triangular(L, Kq.T, lower=True)
            var = jnp.maximum(k.diag(p, Z) - jnp.sum(v * v, axis=0), MIN_VARIANCE)
            return mean, var, k(p, self.Zf, Z) - Vf.T @ v, k(p, Z, Z) - v.T @ v

        mean, var, cross, cov = jax.vmap(one, in_axes=(0, 1, 0, 0, 0))(
            g.hyperparameters, g.mask, g.cholesky, g.alpha, self.Vf)
        scale = g.y_scale[:, None]
        s2 = (g.y_scale**2)[:, None, None]
        return (mean * scale + g.y_loc[:, None]).T, (var * scale**2).T, cross * s2, cov * s2


def _factorise(theta, X, y, mask, noise):
    L = _cholesky(_masked_gram(theta, X, mask, noise))
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
    noise = lax.dynamic_update_slice(model.noise, jnp.zeros_like(Ys), (start, 0))
    L, alpha = jax.vmap(_factorise, in_axes=(0, None, 1, 1, 1))(
        model.hyperparameters, X, Y, mask, noise)
    return eqx.tree_at(
        lambda g: (g.X, g.Y, g.mask, g.noise, g.cholesky, g.alpha), model,
        (X, Y, mask, noise, L, alpha),
    )


def scale_and_standardise(X, Y, mask, noise, lower, span):
    """Scaled inputs, standardised outputs and known noise: Z, Ys, noise_s, loc, scale."""
    Z = jnp.where(mask.any(axis=1, keepdims=True), (X - lower) / span, 0.5)
    loc, scale = standardise(Y, mask)
    Ys = jnp.where(mask > 0, (Y - loc) / scale, 0.0)
    return Z, Ys, noise * mask / scale**2, loc, scale


def assemble_exact_gp(theta, Z, Ys, mask, noise_s, lower, span, loc, scale) -> ExactGP:
    """The fitted GP for hyperparameters ``theta`` (m, ...) on prepared data: each
    output's Cholesky factor and weights. Z: (N, d) scaled inputs; Ys, mask,
    noise_s: (N, m) standardised; lower, span: (d,); loc, scale: (m,)."""
    L, alpha = jax.vmap(_factorise, in_axes=(0, None, 1, 1, 1))(theta, Z, Ys, mask, noise_s)
    return ExactGP(
        hyperparameters=theta, X=Z, Y=Ys, mask=mask, cholesky=L, alpha=alpha,
        lower=lower, span=span, y_loc=loc, y_scale=scale, noise=noise_s,
    )


@partial(jax.jit, static_argnames=("restarts", "max_iter"))
def _fit(X, Y, mask, noise, lower, span, key, warm, has_warm, restarts: int,
         max_iter: int) -> ExactGP:
    Z, Ys, noise_s, loc, scale = scale_and_standardise(X, Y, mask, noise, lower, span)
    keys = jax.random.split(key, Y.shape[1])
    screen = ~has_warm & (jnp.max(jnp.sum(mask, axis=0)) >= _SCREEN_MIN_N)

    def one(args):
        y, m, noise_m, k, w = args
        return _fit_one_output(Z, y, m, noise_m, k, w, screen, restarts, max_iter)

    # Outputs are independent fits: as with restarts, one after another on CPU.
    theta = map_restarts(one, (Ys.T, mask.T, noise_s.T, keys, warm))
    return assemble_exact_gp(theta, Z, Ys, mask, noise_s, lower, span, loc, scale)


def _categorical_columns(kernel: Kernel, d: int) -> set[int]:
    """Columns of the d inputs that a Categorical factor of ``kernel`` reads."""
    def walk(k: Kernel, cols: list[int]) -> set[int]:
        cols = cols if k.active_dims is None else [cols[i] for i in k.active_dims]
        if isinstance(k, Categorical):
            return {cols[c] for g in k.groups for c in g}
        if isinstance(k, (Sum, Product)):
            return set().union(*(walk(c, cols) for c in k.kernels))
        if isinstance(k, Warped):
            return walk(k.kernel, cols)
        return set()

    return walk(kernel, list(range(d)))


def resolve_kernel(kernel: Kernel | str | None, d: int,
                   warping: bool | Sequence[int] = False) -> Kernel:
    """The kernel ``fit_gp`` uses: parsed from a string, Matérn-5/2 when None,
    wrapped in a Kumaraswamy input warping when asked.

    warping: True warps every column that no categorical factor reads; a
    sequence names the columns to warp.
    """
    if kernel is None:
        kernel = Matern52()
    elif isinstance(kernel, str):
        kernel = parse_kernel(kernel)
    elif not isinstance(kernel, Kernel):
        raise TypeError(f"kernel must be a Kernel, a string or None; got {type(kernel).__name__}")
    if warping is False or warping is None:
        return kernel
    if warping is True:
        cat = _categorical_columns(kernel, d)
        dims = tuple(c for c in range(d) if c not in cat)
    else:
        dims = tuple(int(c) for c in warping)
    if not dims:
        return kernel
    if any(not 0 <= c < d for c in dims):
        raise ValueError(f"warping columns {dims} out of range for {d} inputs")
    return Warped(kernel, dims=dims)


def _float64(tree):
    # Plain float64 leaves: a weakly typed leaf would compile a second program.
    return jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), tree)


def _default_start(kernel: Kernel, d: int, m: int, learn_noise: bool,
                   noise_prior=_LOG_NOISE_PRIOR) -> GPHyperparameters:
    params = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (m,) + a.shape),
                          kernel.init(d))
    return GPHyperparameters(kernel=kernel, kernel_params=params,
                             log_noise=np.full((m,), noise_prior[0]), mean=np.zeros(m),
                             learn_noise=learn_noise, noise_prior=noise_prior)


def check_warm_start(warm: GPHyperparameters, kernel: Kernel, d: int, m: int,
                     learn_noise: bool, noise_prior=_LOG_NOISE_PRIOR) -> GPHyperparameters:
    """``warm`` with the fit's kernel and noise setting, after checking its shapes
    against d inputs and m outputs; raises ValueError when they do not match."""
    if warm.kernel != kernel:
        raise ValueError(f"warm_start was fitted with kernel {warm.kernel}; this fit uses {kernel}")
    warm = GPHyperparameters(kernel=kernel, kernel_params=warm.kernel_params,
                             log_noise=warm.log_noise, mean=warm.mean, learn_noise=learn_noise,
                             noise_prior=noise_prior)
    warm = _float64(warm)
    expected = _default_start(kernel, d, m, learn_noise, noise_prior)
    if isinstance(warm.kernel_params, dict) and "log_lengthscale" in warm.kernel_params and (
            warm.log_lengthscale.shape != expected.log_lengthscale.shape):
        raise ValueError(
            f"warm_start has length-scales of shape {warm.log_lengthscale.shape};"
            f" expected {expected.log_lengthscale.shape}"
        )
    shapes = [np.shape(a) for a in jax.tree.leaves(warm)]
    want = [np.shape(a) for a in jax.tree.leaves(expected)]
    if jax.tree.structure(warm) != jax.tree.structure(expected) or shapes != want:
        raise ValueError(f"warm_start has leaves of shapes {shapes}; expected {want}"
                         f" for {m} outputs and {d} inputs")
    return warm


@register_model("gp")
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
    kernel: Kernel | str | None = None,
    noise=None,
    learn_noise: bool = True,
    warping: bool | Sequence[int] = False,
    noise_prior: str | tuple[float, float] = "low",
) -> ExactGP:
    """Fit an exact GP (constant mean, Gaussian noise) by MAP.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where an output is missing;
    key: PRNG key for the restarts; bounds: (2, d) lower/upper input bounds
    used to scale inputs to the unit cube (default: the data's range);
    capacity: rows to pad to (default the bucket of n; raise it to leave room
    for fantasies); restarts: L-BFGS starts (run in one compiled loop);
    warm_start: hyperparameters of an earlier fit (same kernel, d and m), used
    as the first start, which makes refits in a growing campaign converge in
    fewer iterations (without one, and from 64 observations on, the first
    start is the best point of a 12-point grid around the prior medians, by
    likelihood value); kernel: a :class:`~surrogates.kernels.Kernel`, an
    expression such as ``"matern52 + linear"``, or None for Matérn-5/2 ARD;
    noise: (n, m) or (n,) known noise variances of the observations in output
    units (heteroscedastic, fixed), added to the learned homoscedastic noise;
    learn_noise: False keeps only the known noise and a 1e-6 floor;
    warping: True learns a Kumaraswamy input warping of every non-categorical
    column, or a sequence of columns to warp; noise_prior: the log-normal prior
    on the learned noise, ``"low"`` (median 3e-4 of the output variance: simulators),
    ``"lab"`` (median 1.8e-2, BoTorch's: measurements) or (mean, sd) of the log.
    """
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    d, m = Xp.shape[1], Yp.shape[1]
    kernel = resolve_kernel(kernel, d, warping)
    has_warm = warm_start is not None
    noise_prior = resolve_noise_prior(noise_prior)
    if warm_start is None:
        warm_start = _default_start(kernel, d, m, learn_noise, noise_prior)
    warm_start = check_warm_start(warm_start, kernel, d, m, learn_noise, noise_prior)
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1; got {restarts}")
    return _fit(
        jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask), jnp.asarray(_pad_noise(noise, Yp)),
        jnp.asarray(lower), jnp.asarray(span), key, warm_start, jnp.asarray(has_warm),
        restarts=restarts, max_iter=max_iter,
    )


def _pad_noise(noise, Yp: np.ndarray) -> np.ndarray:
    """Known noise variances padded like Y: (N, m), zeros when None."""
    out = np.zeros_like(Yp)
    if noise is None:
        return out
    noise = np.asarray(noise, dtype=np.float64)
    if noise.ndim == 1:
        noise = noise[:, None]
    n = noise.shape[0]
    if noise.ndim != 2 or noise.shape[1] not in (1, Yp.shape[1]) or n > Yp.shape[0]:
        raise ValueError(f"noise must be (n, m) or (n,) variances; got shape {noise.shape}")
    if np.any(noise < 0):
        raise ValueError("noise variances must be non-negative")
    out[:n] = np.where(np.isfinite(noise), noise, 0.0)
    return out


@jax.jit
def _condition_on_data(X, Y, mask, noise, lower, span, theta) -> ExactGP:
    Z, Ys, noise_s, loc, scale = scale_and_standardise(X, Y, mask, noise, lower, span)
    return assemble_exact_gp(theta, Z, Ys, mask, noise_s, lower, span, loc, scale)


def gp_from_hyperparameters(
    X, Y, hyperparameters: GPHyperparameters, *, bounds=None, capacity: int | None = None,
    noise=None,
) -> ExactGP:
    """The GP posterior on (X, Y) with given hyperparameters, no fitting.

    Same scaling, standardisation and padding as ``fit_gp``; hyperparameters
    have a leading output axis (m, ...); noise: known noise variances as in
    ``fit_gp``. For known models, tests and transfer.
    """
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    theta = _float64(hyperparameters)
    return _condition_on_data(jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask),
                              jnp.asarray(_pad_noise(noise, Yp)), jnp.asarray(lower),
                              jnp.asarray(span), theta)


# --- plain-data round trip (JSON, YAML, a campaign's warm start) --------------

def _plain(tree) -> Any:
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return [_plain(v) for v in tree]
    return np.asarray(tree).tolist()


def _params_from_plain(kernel: Kernel, plain) -> Params:
    if isinstance(kernel, (Sum, Product)):
        return tuple(_params_from_plain(k, p) for k, p in zip(kernel.kernels, plain, strict=True))
    if isinstance(kernel, Warped):
        return {"log_a": np.asarray(plain["log_a"], np.float64),
                "log_b": np.asarray(plain["log_b"], np.float64),
                "kernel": _params_from_plain(kernel.kernel, plain["kernel"])}
    return {k: np.asarray(v, np.float64) for k, v in plain.items()}


def hyperparameters_to_dict(theta: GPHyperparameters) -> dict:
    """Hyperparameters as nested dicts and lists of floats (JSON-ready).

    Keys: kernel (see ``kernel_to_dict``), kernel_params, log_noise, mean,
    learn_noise. Inverse: :func:`hyperparameters_from_dict`.
    """
    return {"kernel": kernel_to_dict(theta.kernel), "kernel_params": _plain(theta.kernel_params),
            "log_noise": _plain(theta.log_noise), "mean": _plain(theta.mean),
            "learn_noise": theta.learn_noise, "noise_prior": list(theta.noise_prior)}


def hyperparameters_from_dict(data: dict) -> GPHyperparameters:
    """Hyperparameters from :func:`hyperparameters_to_dict`'s output.

    Also reads the older flat form of the default kernel (keys log_lengthscale,
    log_variance, log_noise, mean).
    """
    if "kernel_params" not in data:
        return GPHyperparameters(**{k: np.asarray(v, np.float64) for k, v in data.items()})
    kernel = kernel_from_dict(data["kernel"])
    return GPHyperparameters(
        kernel=kernel, kernel_params=_params_from_plain(kernel, data["kernel_params"]),
        log_noise=np.asarray(data["log_noise"], np.float64),
        mean=np.asarray(data["mean"], np.float64), learn_noise=bool(data.get("learn_noise", True)),
        noise_prior=tuple(data.get("noise_prior", _LOG_NOISE_PRIOR)),
    )
