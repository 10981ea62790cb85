"""Acquisition functions over the surrogate protocol.

An acquisition is a small ``equinox.Module`` holding what it needs (the fitted
model, the incumbent) and mapping encoded candidates ``X: (b, d)`` to values
``(b,)``, larger is better. Batch (q-point) Monte-Carlo acquisitions live in
``active_learning.mc`` and map ``X: (b, q, d)`` to ``(b,)``. Every
acquisition reads one model ``output`` (static) and, where direction matters,
a static ``sign``: +1 to maximise that output, -1 to minimise it. The class
attribute ``log_space`` says whether values are logarithms, which
``CostAware`` needs to know to divide by a cost.

Improvement-based values are computed in log space (after Ament et al., 2023,
"Unexpected improvements to expected improvement"): plain EI and PI underflow
to exactly zero a few standard deviations away from the incumbent and their
gradients vanish with them, which leaves a gradient-based optimiser stranded.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import solve_triangular
from jax.scipy.special import log_ndtr, logsumexp, ndtr

from surrogates.numerics import JITTER
from surrogates.protocol import SharesFixedJoint

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
# Asymptotic-series depth for log Phi below z = -20: the default (3) leaves a
# 4e-9 error there, 12 leaves none in float64 (at |z| >= 20 the series' terms
# keep shrinking for the first ~z^2 / 2 = 200 of them).
_LOG_NDTR_ORDER = 12
# Conditional variances are floored at this fraction of the unconditional
# one: a candidate on an observed, noiseless point has none left.
_MIN_VARIANCE_FRACTION = 1e-12
# Below this z, phi(z) + z Phi(z) loses relative accuracy to cancellation
# (error ~ eps z^2) and we switch to its asymptotic series.
_TAIL = -20.0


def _log_phi(z: Array) -> Array:
    return -0.5 * z * z - _LOG_SQRT_2PI


def log_h(z: Array) -> Array:
    """log(phi(z) + z Phi(z)), accurate and with exact slope for every z.

    EI = sigma * h((mu - best) / sigma). For z <= -20 uses
    h(z) = phi(z) / z^2 * (1 - 3/z^2 + 15/z^4 - ...), whose truncation
    error there is below 1e-12.
    """
    # Clamp with where, not max/min: at z = _TAIL exactly the chosen branch
    # must carry the whole gradient (max/min would split it in two).
    z_mid = jnp.where(z > _TAIL, z, _TAIL)
    phi = jnp.exp(_log_phi(z_mid))
    direct = jnp.log(phi + z_mid * ndtr(z_mid))
    z_tail = jnp.where(z > _TAIL, _TAIL, z)
    u = 1.0 / (z_tail * z_tail)
    # Horner form of sum_k (-1)^k (2k+1)!! u^k, k = 0..7.
    coefficients = (-2027025.0, 135135.0, -10395.0, 945.0, -105.0, 15.0, -3.0, 1.0)
    series = jnp.zeros_like(u)
    for c in coefficients:
        series = series * u + c
    tail = _log_phi(z_tail) - jnp.log(z_tail * z_tail) + jnp.log(series)
    return jnp.where(z > _TAIL, direct, tail)


def expected_improvement(mean: Array, std: Array, best: Array) -> Array:
    """Closed-form EI for maximisation: E[max(f - best, 0)], f ~ N(mean, std^2)."""
    z = (mean - best) / std
    return std * (jnp.exp(_log_phi(z)) + z * ndtr(z))


def log_expected_improvement_from_moments(mean: Array, std: Array, best: Array) -> Array:
    """log EI for maximisation, finite wherever std > 0."""
    return log_h((mean - best) / std) + jnp.log(std)


class LogExpectedImprovement(eqx.Module):
    """log EI of one output of a surrogate, in the direction of maximisation.

    model: any surrogate with ``posterior(X)``; best: the incumbent value in
    the model's output units; output: which output; sign: +1 to maximise the
    output, -1 to minimise it. Called on X: (b, d), returns (b,).
    """

    model: eqx.Module
    best: Array
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        post = self.model.posterior(X)
        mean = self.sign * post.mean[:, self.output]
        std = jnp.sqrt(post.variance[:, self.output])
        return log_expected_improvement_from_moments(mean, std, self.sign * self.best)


class UpperConfidenceBound(eqx.Module):
    """mean + beta^(1/2) std (sign-adjusted): optimism in the face of uncertainty.

    X: (b, d) -> (b,), in the output's units.
    """

    model: eqx.Module
    beta: float = 4.0
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    log_space: ClassVar[bool] = False

    def __call__(self, X: Array) -> Array:
        post = self.model.posterior(X)
        return self.sign * post.mean[:, self.output] + jnp.sqrt(
            self.beta * post.variance[:, self.output]
        )


# -- shared numerics ----------------------------------------------------------


def log_probability_of_improvement_from_moments(mean: Array, std: Array, best: Array) -> Array:
    """log P(f > best), f ~ N(mean, std^2): log Phi(z), finite with exact slope for every z."""
    return log_ndtr((mean - best) / std, series_order=_LOG_NDTR_ORDER)


def logmeanexp(x: Array, axis: int = 0) -> Array:
    """log(mean(exp(x), axis)): averages values that are held as logarithms."""
    return logsumexp(x, axis=axis) - math.log(x.shape[axis])


@functools.lru_cache(maxsize=128)
def _sobol_normal(num_samples: int, dim: int, seed: int) -> np.ndarray:
    # scipy.stats is imported where it is used: off the import path of a fresh
    # process (every CLI call), since analytic acquisitions never get here.
    from scipy.stats import norm, qmc

    if dim == 0:
        return np.zeros((num_samples, 0))
    if dim > qmc.Sobol.MAXDIM:
        return np.random.default_rng(seed).standard_normal((num_samples, dim))
    with warnings.catch_warnings():
        # Balance is best at powers of two; other counts are still valid QMC.
        warnings.simplefilter("ignore", UserWarning)
        u = qmc.Sobol(dim, scramble=True, seed=seed).random(num_samples)
    eps = np.finfo(np.float64).eps
    z = norm.ppf(np.clip(u, eps, 1.0 - eps))
    z.setflags(write=False)
    return z


def sobol_normal_samples(num_samples: int, dim: int, seed: int = 0) -> np.ndarray:
    """Fixed quasi-random standard normal base samples, (num_samples, dim).

    Scrambled Sobol points pushed through the normal quantile function. The
    same (num_samples, dim, seed) always gives the same array, so a Monte-Carlo
    acquisition built on them is a deterministic, smooth function of X that a
    gradient optimiser can climb (sample average approximation).
    """
    return _sobol_normal(int(num_samples), int(dim), int(seed))


def _marginal(model: eqx.Module, X: Array, output: int, sign: float) -> tuple[Array, Array]:
    """Sign-adjusted posterior mean and standard deviation of one output: (b,), (b,)."""
    post = model.posterior(X)
    return sign * post.mean[:, output], jnp.sqrt(post.variance[:, output])


def regularised_cholesky(A: Array, scale: Array) -> Array:
    """Lower Cholesky factor of a PSD matrix with jitter relative to ``scale``."""
    return jnp.linalg.cholesky(A + JITTER * scale * jnp.eye(A.shape[-1], dtype=A.dtype))


def fixed_joint(model: eqx.Module, X_fixed: Array) -> Callable[[Array], tuple]:
    """``Xq -> (mean (q, m), variance (q, m), cross (m, p, q), covariance (m, q, q))``:
    the blocks of the joint posterior over ``(X_fixed, Xq)`` that depend on Xq.

    A model that shares the fixed points' work (``SharesFixedJoint``: the exact GP)
    does it once for every call, which for a baseline of the training points makes a
    candidate batch O(N^2 q) instead of O(N^3); any other model goes through its full
    joint posterior.
    """
    if isinstance(model, SharesFixedJoint):
        return model.fixed_joint(X_fixed)
    p = X_fixed.shape[0]

    def blocks(Xq: Array) -> tuple[Array, Array, Array, Array]:
        post = model.posterior(jnp.concatenate([X_fixed, Xq], axis=0), full_cov=True)
        return (post.mean[p:], post.variance[p:], post.covariance[:, :p, p:],
                post.covariance[:, p:, p:])

    return blocks


def fixed_block(
    model: eqx.Module, X_fixed: Array, mask: Array, output: int, sign: float
) -> tuple[Array, Array]:
    """Sign-adjusted mean (p,) and Cholesky factor (p, p) at points held fixed.

    Masked-out (padding) rows are decoupled: their covariance rows become a
    scaled identity, so they neither condition anything nor break the factor.
    """
    post = model.posterior(X_fixed, full_cov=True)
    mean = sign * post.mean[:, output]
    cov = post.covariance[output]
    scale = jnp.maximum(jnp.max(post.variance[:, output] * mask), 1e-300)
    cov = cov * (mask[:, None] * mask[None, :]) + jnp.diag((1.0 - mask) * scale)
    return mean, regularised_cholesky(cov, scale)


# Joint draws over the baseline from which ``likely_best`` counts each point's wins.
PRUNE_SAMPLES = 1024


def likely_best(model: eqx.Module, X: Array, mask: Array, k: int, *, output: int = 0,
                sign: float = 1.0, seed: int = 0) -> tuple[Array, Array]:
    """The k of the points X (p, d) (real where mask (p,) is 1) most often the best in
    ``PRUNE_SAMPLES`` joint posterior draws, as (k, d) points and their (k,) mask: 0
    where a point was never the best (or is padding). Static shapes: k rows always."""
    mean, L = fixed_block(model, X, mask, output, sign)
    z = jnp.asarray(sobol_normal_samples(PRUNE_SAMPLES, X.shape[0], seed))
    g = jnp.where(mask > 0, mean + z @ L.T, -jnp.inf)
    wins = jnp.zeros(X.shape[0], X.dtype).at[jnp.argmax(g, axis=1)].add(1.0)
    # Ties in the counts go to the better mean, so the sure best comes first.
    order = jnp.lexsort((-jnp.where(mask > 0, mean, -jnp.inf), -wins))[:k]
    return X[order], (wins[order] > 0).astype(X.dtype) * mask[order]


def ones_mask(X: Array, mask: Array | None) -> Array:
    return jnp.ones(X.shape[0], dtype=X.dtype) if mask is None else jnp.asarray(mask, X.dtype)


def _map_blocks(fn: Callable[[Array], Array], X: Array, block: int) -> Array:
    """fn: (c, d) -> (c,) applied over row blocks of X: (b, d), returns (b,).

    Acquisitions that need covariances between candidates and a fixed point
    set compute one joint posterior per block: the fixed set's share of the
    work is paid once per block, not once per candidate, and memory stays
    bounded for large pools. Padding repeats the last row (a valid point).
    """
    b, d = X.shape
    if b <= block:
        return fn(X)
    nb = -(-b // block)
    Xp = jnp.concatenate([X, jnp.broadcast_to(X[-1:], (nb * block - b, d))], axis=0)
    return lax.map(fn, Xp.reshape(nb, block, d)).reshape(-1)[:b]


# -- analytic acquisitions ----------------------------------------------------


class LogProbabilityOfImprovement(eqx.Module):
    """log P(sign f(x) > sign best): log PI, finite far below the incumbent.

    model: any surrogate; best: the incumbent in the model's output units;
    output, sign: as in ``LogExpectedImprovement``. X: (b, d) -> (b,).
    PI ignores how large the improvement is, so it exploits more than EI;
    add a margin to ``best`` to push it outwards.
    """

    model: eqx.Module
    best: Array
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        mean, std = _marginal(self.model, X, self.output, self.sign)
        return log_probability_of_improvement_from_moments(mean, std, self.sign * self.best)


class LogNoisyExpectedImprovement(eqx.Module):
    """log noisy EI: EI against an incumbent that is itself uncertain.

    With noisy observations the best observed y is a biased, noisy incumbent.
    Following BoTorch's NEI, the incumbent is max_j f(x_j) over the observed
    points X_baseline, averaged over the joint posterior. For each of S fixed
    quasi-random draws g_s of f(X_baseline), f(x) given f(X_baseline) = g_s is
    Gaussian (its correlation with the baseline is kept), so the improvement
    over max_j g_s is integrated in closed form (log-EI) and only the incumbent
    is sampled:

        log NEI(x) = log mean_s EI(mu_s(x), sigma(x) | max_j g_s).

    The base draws are fixed, so the value is deterministic and smooth in x.
    With noiseless data it reduces to ``LogExpectedImprovement`` with
    best = max y.

    model: any surrogate with ``posterior(X, full_cov=True)``;
    X_baseline: (n, d) observed points (padding allowed);
    baseline_mask: (n,) 1 for real rows, 0 for padding (None: all real);
    num_samples: incumbent draws; seed: their Sobol scrambling seed;
    block: candidates per joint posterior; max_baseline: keep at most this many
    baseline points, those most often the best in joint draws (``likely_best``;
    None: all). X: (b, d) -> (b,).
    """

    model: eqx.Module
    X_baseline: Array
    baseline_mask: Array | None = None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    num_samples: int = eqx.field(static=True, default=256)
    seed: int = eqx.field(static=True, default=0)
    block: int = eqx.field(static=True, default=128)
    max_baseline: int | None = eqx.field(static=True, default=None)
    log_space: ClassVar[bool] = True

    def prepare(self) -> "_PreparedLogNEI":
        """The same acquisition with the baseline's share computed once: its joint
        posterior's factor, the incumbent draws and (for a model that shares it) the
        whitened cross-kernel to the training points."""
        XB, mask = self.X_baseline, ones_mask(self.X_baseline, self.baseline_mask)
        if self.max_baseline is not None and XB.shape[0] > self.max_baseline:
            XB, mask = likely_best(self.model, XB, mask, self.max_baseline,
                                   output=self.output, sign=self.sign, seed=self.seed)
        mean_B, L_B = fixed_block(self.model, XB, mask, self.output, self.sign)
        z = jnp.asarray(sobol_normal_samples(self.num_samples, XB.shape[0], self.seed))
        incumbent = jnp.max(jnp.where(mask > 0, mean_B + z @ L_B.T, -jnp.inf), axis=1)
        blocks = self.model.fixed_joint(XB) if isinstance(self.model, SharesFixedJoint) else None
        return _PreparedLogNEI(self.model, XB, mask, L_B, z, incumbent, blocks,
                               output=self.output, sign=self.sign, block=self.block)

    def __call__(self, X: Array) -> Array:
        return self.prepare()(X)


class _PreparedLogNEI(eqx.Module):
    """``LogNoisyExpectedImprovement`` with its baseline's share precomputed."""

    model: eqx.Module
    X_baseline: Array
    mask: Array
    L_B: Array
    z: Array
    incumbent: Array
    blocks: eqx.Module | None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    block: int = eqx.field(static=True, default=128)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        blocks = self.blocks if self.blocks is not None else fixed_joint(self.model,
                                                                         self.X_baseline)

        def one_block(Xc: Array) -> Array:
            mean_c, var_c, cross, _ = blocks(Xc)
            var = var_c[:, self.output]
            W = solve_triangular(self.L_B, cross[self.output] * self.mask[:, None],
                                 lower=True)  # (n, c)
            cond_var = jnp.maximum(var - jnp.sum(W * W, axis=0), _MIN_VARIANCE_FRACTION * var)
            cond_mean = self.sign * mean_c[:, self.output] + self.z @ W  # (S, c)
            log_ei = log_expected_improvement_from_moments(
                cond_mean, jnp.sqrt(cond_var), self.incumbent[:, None]
            )
            return logmeanexp(log_ei, axis=0)

        return _map_blocks(one_block, X, self.block)


def _preparable(node) -> bool:
    return hasattr(node, "prepare") and isinstance(node, eqx.Module)


def prepared(acquisition):
    """``acquisition`` with each part that can (``prepare()``) computing what does not
    depend on the candidates once: for an optimiser that calls it many times."""
    return jax.tree_util.tree_map(lambda a: a.prepare() if _preparable(a) else a, acquisition,
                                  is_leaf=_preparable)


class PosteriorVariance(eqx.Module):
    """Posterior variance of one output: pure exploration (uncertainty sampling).

    Picks where the model knows least; for learning a response surface, not
    for optimising it. X: (b, d) -> (b,), in squared output units.
    """

    model: eqx.Module
    output: int = eqx.field(static=True, default=0)
    log_space: ClassVar[bool] = False

    def __call__(self, X: Array) -> Array:
        return self.model.posterior(X).variance[:, self.output]


MaxVariance = PosteriorVariance


class IntegratedVarianceReduction(eqx.Module):
    """How much observing x (with noise) lowers the posterior variance over a region.

    For a GP, observing y = f(x) + eps, eps ~ N(0, noise), reduces the
    variance at each reference point x_r by cov(x_r, x)^2 / (var(x) + noise),
    whatever y turns out to be. The acquisition is its weighted sum,

        IVR(x) = sum_r w_r cov(x_r, x)^2 / (var(x) + noise),

    an estimate of the integrated variance reduction (IMSE / "ALC", Cohn 1996)
    over the region the reference set covers. Unlike ``PosteriorVariance`` it
    does not chase the corners of the domain, where variance is high but
    nothing else is learnt.

    model: any surrogate with ``posterior(X, full_cov=True)``;
    reference: (r, d) points covering the region of interest (e.g. Sobol);
    noise: observation noise variance in squared output units;
    weights: (r,) defaults to 1/r (the average over the reference set);
    block: candidates per joint posterior. X: (b, d) -> (b,).
    """

    model: eqx.Module
    reference: Array
    noise: Array
    weights: Array | None = None
    output: int = eqx.field(static=True, default=0)
    block: int = eqx.field(static=True, default=128)
    log_space: ClassVar[bool] = False

    def __call__(self, X: Array) -> Array:
        r = self.reference.shape[0]
        w = jnp.full((r,), 1.0 / r) if self.weights is None else self.weights

        def one_block(Xc: Array) -> Array:
            c = Xc.shape[0]
            post = self.model.posterior(
                jnp.concatenate([Xc, self.reference], axis=0), full_cov=True
            )
            cross = post.covariance[self.output][:c, c:]  # (c, r)
            return (cross * cross) @ w / (post.variance[:c, self.output] + self.noise)

        return _map_blocks(one_block, X, self.block)


# Below this gamma the direct MES term cancels two numbers ~ gamma^2 / 2
# (error ~ eps gamma^4) and an asymptotic series takes over.
_MES_FAR = -30.0


def log_max_value_entropy_term(gamma: Array) -> Array:
    """log of gamma phi(gamma) / (2 Phi(gamma)) - log Phi(gamma), for every gamma.

    The information one noiseless observation at x gives about the optimum
    value y* (Wang & Jegelka, 2017), gamma = (y* - mu(x)) / sigma(x). The term
    decreases from +inf to 0 as gamma grows and underflows beyond gamma ~ 38.
    For gamma > 0 it is rewritten as phi(gamma) [gamma / (2 Phi(gamma))
    + r(u) u / phi(gamma)], u = Phi(-gamma), r(u) = -log(1 - u) / u, whose
    logarithm stays finite with the right slope; below gamma = -30 the Mills
    ratio's asymptotic series replaces the cancelling direct form.
    """
    # Each branch sees gamma only where it is chosen (where, not clip: at a
    # boundary the chosen branch must carry the whole gradient).
    mid = (gamma > _MES_FAR) & (gamma <= 0.0)
    g_mid = jnp.where(mid, gamma, -1.0)
    log_cdf = log_ndtr(g_mid, series_order=_LOG_NDTR_ORDER)
    direct = jnp.log(0.5 * g_mid * jnp.exp(_log_phi(g_mid) - log_cdf) - log_cdf)

    # gamma = -t, t >= 30: t M(t) = S(u), u = 1 / t^2, M the Mills ratio, and
    # term = -P / (2 S) + log sqrt(2 pi) + log t + log1p(u P / S), P = (1 - S) / u.
    t = -jnp.where(gamma > _MES_FAR, _MES_FAR, gamma)
    u = 1.0 / (t * t)
    coefficients = (2027025.0, -135135.0, 10395.0, -945.0, 105.0, -15.0, 3.0, -1.0)
    P = jnp.zeros_like(u)
    for c in coefficients:
        P = P * u + c
    P = -P  # sum_k (-1)^k (2k + 1)!! u^k, k = 0..7
    S = 1.0 - u * P
    far = jnp.log(-0.5 * P / S + _LOG_SQRT_2PI + jnp.log(t) + jnp.log1p(u * P / S))

    g_pos = jnp.where(gamma > 0.0, gamma, 0.0)
    log_u = log_ndtr(-g_pos, series_order=_LOG_NDTR_ORDER)
    v = jnp.exp(log_u)
    v_safe = jnp.where(v > 1e-8, v, 0.5)
    r = jnp.where(v > 1e-8, -jnp.log1p(-v_safe) / v_safe, 1.0 + 0.5 * v)
    mills = jnp.exp(log_u - _log_phi(g_pos))
    tail = _log_phi(g_pos) + jnp.log(0.5 * g_pos / ndtr(g_pos) + r * mills)
    return jnp.where(gamma > 0.0, tail, jnp.where(gamma > _MES_FAR, direct, far))


class MaxValueEntropySearch(eqx.Module):
    """Max-value entropy search (Wang & Jegelka, 2017), as a logarithm.

    The expected reduction in the entropy of the optimum value y* from a
    noiseless observation at x, averaged over K samples of y*:

        MES(x) = mean_k [gamma_k phi(gamma_k) / (2 Phi(gamma_k)) - log Phi(gamma_k)],
        gamma_k = (y*_k - mu(x)) / sigma(x)   (sign-adjusted),

    returned as log MES (nats, in log space like log-EI: the terms underflow
    far below y*). Cheap (one marginal posterior per candidate), and balances
    exploration and exploitation without an incumbent.

    model: any surrogate; optimal_values: (K,) samples of the optimum of the
    output in its own units (the maximum for sign=+1, the minimum for
    sign=-1), e.g. from ``sample_optimal_values``. X: (b, d) -> (b,).
    """

    model: eqx.Module
    optimal_values: Array
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        mean, std = _marginal(self.model, X, self.output, self.sign)
        gamma = (self.sign * self.optimal_values[None, :] - mean[:, None]) / std[:, None]
        return logmeanexp(log_max_value_entropy_term(gamma), axis=1)


@eqx.filter_jit
def _exact_optimal_values(model, candidates, key, num_samples: int, output: int, sign: float):
    draws = model.posterior(candidates, full_cov=True).sample(key, num_samples)
    return sign * jnp.max(sign * draws[:, :, output], axis=1)


@eqx.filter_jit
def _gumbel_optimal_values(model, candidates, key, num_samples: int, output: int, sign: float):
    mean, std = _marginal(model, candidates, output, sign)

    def log_cdf(y):  # log P(max_i g_i <= y), the candidates taken as independent
        return jnp.sum(log_ndtr((y - mean) / std, series_order=_LOG_NDTR_ORDER))

    probs = jnp.asarray([0.25, 0.5, 0.75])
    lo = jnp.full(3, jnp.max(mean) - 5.0 * jnp.max(std))
    hi = jnp.full(3, jnp.max(mean + 5.0 * std))

    def bisect(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = jax.vmap(log_cdf)(mid) < jnp.log(probs)
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = lax.fori_loop(0, 100, bisect, (lo, hi))
    q25, q50, q75 = 0.5 * (lo + hi)
    # Gumbel quantiles: y_p = a - b log(-log p).
    ll = jnp.log(-jnp.log(probs))
    b = jnp.maximum((q75 - q25) / (ll[0] - ll[2]), 1e-12 * jnp.max(std))
    a = q50 + b * ll[1]
    u = jax.random.uniform(key, (num_samples,), minval=1e-300, maxval=1.0)
    return sign * (a - b * jnp.log(-jnp.log(u)))


def sample_optimal_values(
    model: eqx.Module,
    candidates: Array,
    key: Array,
    num_samples: int = 16,
    *,
    output: int = 0,
    sign: float = 1.0,
    method: str = "exact",
) -> Array:
    """Samples of the optimum value of one output over a candidate set, (num_samples,).

    candidates: (n, d) points covering the domain; include the observed
    points so that samples are not below the incumbent.
    method "exact": maxima of joint posterior draws (an (n, n) Cholesky);
    "gumbel": draws from a Gumbel fitted to the quartiles of
    prod_i Phi((y - mu_i) / sigma_i), which treats candidates as independent
    (Wang & Jegelka, 2017); cheap for large n, and slightly too high.
    Returned in the output's units: maxima for sign=+1, minima for sign=-1.
    """
    if method == "exact":
        return _exact_optimal_values(model, candidates, key, num_samples, output, sign)
    if method == "gumbel":
        return _gumbel_optimal_values(model, candidates, key, num_samples, output, sign)
    raise ValueError(f"method must be 'exact' or 'gumbel'; got {method!r}")


class CostAware(eqx.Module):
    """An acquisition per unit cost: log a(x) - exponent log c(x), or a(x) / c(x)^exponent.

    For experiments whose cost depends on the inputs (temperature, time,
    precursor price): value per unit cost (Snoek et al., 2012, "EI per
    second"). exponent < 1 softens the cost penalty. The division form is for
    non-negative acquisitions (variance, IVR); log-space acquisitions are
    shifted instead.

    acquisition: any acquisition; cost: callable (a function or an
    ``eqx.Module``, e.g. a cost model) mapping the acquisition's input (b, d)
    or (b, q, d) to positive costs (b,); log_space: whether the acquisition's
    values are logarithms (default: its ``log_space`` class attribute).
    """

    acquisition: eqx.Module
    cost: Callable[[Array], Array]
    exponent: float = eqx.field(static=True)
    log_space: bool = eqx.field(static=True)

    def __init__(
        self,
        acquisition: eqx.Module,
        cost: Callable[[Array], Array],
        exponent: float = 1.0,
        log_space: bool | None = None,
    ):
        if log_space is None:
            log_space = getattr(acquisition, "log_space", None)
            if log_space is None:
                raise ValueError(
                    f"{type(acquisition).__name__} has no log_space attribute; pass log_space="
                )
        self.acquisition = acquisition
        self.cost = cost
        self.exponent = float(exponent)
        self.log_space = bool(log_space)

    def __call__(self, X: Array) -> Array:
        value, cost = self.acquisition(X), self.cost(X)
        if self.log_space:
            return value - self.exponent * jnp.log(cost)
        return value / cost**self.exponent
