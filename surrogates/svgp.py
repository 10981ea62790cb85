"""Sparse variational Gaussian process (SVGP) for thousands to millions of rows.

Hensman, Fusi and Lawrence (2013): M inducing points Z carry the GP through
inducing values u = f(Z); the posterior is approximated by q(u), and the
evidence lower bound (ELBO)

    sum_i E_q[log N(y_i | f_i, noise)] - KL(q(u) || p(u))

splits over observations, so it is maximised by stochastic gradients on
minibatches (the data term scaled by n / b) at O(b M^2 + M^3) a step,
whatever n is. q(u) is whitened (Murray and Adams, 2010): u = L v with
L L^T = K_zz, q(v) = N(m, S S^T), p(v) = N(0, I), which conditions the
optimisation. Kernel: Matérn-5/2 ARD; likelihood: Gaussian; outputs are
independent GPs, each with its own Z, q and hyperparameters, run under vmap.

For a Gaussian likelihood the best q(u) for given Z and hyperparameters is
closed form (Titsias, 2009); ``with_optimal_variational`` computes it in one
pass over the data, and ``collapsed_elbo`` is the bound it attains.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
outputs, ``M`` inducing points, ``q`` query points, ``b`` batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax
from jax.scipy.linalg import cho_solve, solve_triangular

from surrogates.ensemble import prepare_data
from surrogates.gp import Posterior
from surrogates.kernels import matern52
from surrogates.numerics import MIN_VARIANCE
from surrogates.registry import register_model
from surrogates._runtime import counts_traces

_LOG_2PI = math.log(2.0 * math.pi)
NOISE_FLOOR = 1e-6
# Rows per chunk of the full passes over the data (optimal q, bounds).
_CHUNK = 4096
# Rows from which k-means++ picks the initial inducing points.
_SEED_POOL = 8192


class SVGPHyperparameters(eqx.Module):
    """Unconstrained kernel and likelihood hyperparameters of one output (or a stack).

    log_lengthscale: (..., d) on unit-cube inputs; log_variance, log_noise,
    mean: (...,) in standardised output units; noise = NOISE_FLOOR + exp(log_noise).
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


class _Variational(eqx.Module):
    """What Adam optimises for one output: Z (M, d), m (M,), S's strict lower
    triangle and log diagonal (M, M), and the hyperparameters."""

    Z: Array
    q_mean: Array
    q_tril: Array
    q_log_diag: Array
    theta: SVGPHyperparameters

    @property
    def q_sqrt(self) -> Array:
        return jnp.tril(self.q_tril, -1) + jnp.diag(jnp.exp(self.q_log_diag))


def _kzz_cholesky(theta: SVGPHyperparameters, Z: Array, jitter: float) -> Array:
    K = matern52(Z, Z, theta.lengthscale, theta.variance)
    return jnp.linalg.cholesky(K + jitter * theta.variance * jnp.eye(Z.shape[0]))


def _inverse_cholesky(theta: SVGPHyperparameters, Z: Array, jitter: float) -> Array:
    """L^-1 with L L^T = K_zz + jitter, (M, M).

    Projections of a batch are then matrix products, which XLA fuses and
    threads, instead of a LAPACK triangular solve with b right-hand sides.
    """
    L = _kzz_cholesky(theta, Z, jitter)
    return solve_triangular(L, jnp.eye(Z.shape[0]), lower=True)


def _whitened_projection(theta, Z, Linv, X):
    """A = L^-1 K_zx, (M, b): the inputs' coordinates in the whitened inducing space."""
    return Linv @ matern52(Z, X, theta.lengthscale, theta.variance)


def _kl_whitened(q_mean: Array, S: Array) -> Array:
    """KL(N(m, S S^T) || N(0, I)) for lower-triangular S."""
    M = q_mean.shape[0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.abs(jnp.diag(S))))
    return 0.5 * (jnp.sum(S * S) + q_mean @ q_mean - M - logdet)


def _expected_log_lik(theta, A, q_mean, S, y, w):
    """sum_i w_i E_q[log N(y_i | f_i, noise)] over a batch; A: (M, b), y, w: (b,)."""
    mu = theta.mean + A.T @ q_mean
    SA = S.T @ A
    fvar = jnp.maximum(theta.variance - jnp.sum(A * A, 0) + jnp.sum(SA * SA, 0), 0.0)
    noise = theta.noise
    ell = -0.5 * jnp.log(2.0 * jnp.pi * noise) - 0.5 * ((y - mu) ** 2 + fvar) / noise
    return jnp.sum(w * ell)


def _elbo_batch(v: _Variational, X, y, w, scale, jitter: float) -> Array:
    """ELBO estimate of one output: scale * batch data term - KL."""
    A = _whitened_projection(v.theta, v.Z, _inverse_cholesky(v.theta, v.Z, jitter), X)
    S = v.q_sqrt
    return scale * _expected_log_lik(v.theta, A, v.q_mean, S, y, w) - _kl_whitened(v.q_mean, S)


@dataclass(frozen=True)
class _Config:
    steps: int
    batch: int
    full_batch: bool
    jitter: float
    train_hyperparameters: bool
    train_inducing: bool


def _kmeanspp(key: Array, X: Array, valid: Array, num: int) -> Array:
    """k-means++ seeding (Arthur and Vassilvitskii, 2007) of ``num`` centres.

    X: (N, d); valid: (N,) 1 for real rows. The centres are drawn from a pool
    of up to _SEED_POOL distinct random rows, so the cost does not grow with n.
    """
    k_pool, k_first, k_rest = jax.random.split(key, 3)
    P = min(X.shape[0], _SEED_POOL)
    u = jnp.where(valid > 0, jax.random.uniform(k_pool, valid.shape), 2.0)
    _, idx = lax.top_k(-u, P)
    pool, w = X[idx], valid[idx]
    first = jax.random.categorical(k_first, jnp.log(w))
    centres = jnp.zeros((num, X.shape[1]), X.dtype).at[0].set(pool[first])
    d2 = jnp.sum((pool - pool[first]) ** 2, axis=1)

    def add(i, carry):
        centres, d2 = carry
        # The tiny floor keeps a pool with fewer distinct rows than centres
        # sampling (duplicates) instead of producing NaN.
        j = jax.random.categorical(jax.random.fold_in(k_rest, i), jnp.log(w * (d2 + 1e-30)))
        d2 = jnp.minimum(d2, jnp.sum((pool - pool[j]) ** 2, axis=1))
        return centres.at[i].set(pool[j]), d2

    centres, _ = lax.fori_loop(1, num, add, (centres, d2))
    return centres


def _random_subset(key: Array, X: Array, valid: Array, num: int) -> Array:
    u = jnp.where(valid > 0, jax.random.uniform(key, valid.shape), 2.0)
    _, idx = lax.top_k(-u, num)
    return X[idx]


@partial(jax.jit, static_argnames=("cfg",))
@counts_traces("svgp.train")
def _train(v0: _Variational, X: Array, Y: Array, mask: Array, n: Array, key: Array,
           learning_rate: Array, cfg: _Config) -> tuple[_Variational, Array]:
    """Adam on the sum over outputs of the (minibatch) ELBOs; returns the
    variational parameters (stacked over outputs) and the ELBO trace (steps,)."""
    opt = optax.adam(learning_rate)
    params, static = eqx.partition(v0, eqx.is_array)
    frozen = jax.tree.map(lambda _: False, params)
    trainable = eqx.tree_at(lambda p: (p.q_mean, p.q_tril, p.q_log_diag), frozen,
                            (True, True, True))
    if cfg.train_inducing:
        trainable = eqx.tree_at(lambda p: p.Z, trainable, True)
    if cfg.train_hyperparameters:
        trainable = eqx.tree_at(lambda p: p.theta, trainable,
                                jax.tree.map(lambda _: True, params.theta))
    train_p, fixed_p = eqx.partition(params, trainable)
    opt_state = opt.init(train_p)

    def neg_elbo(tp, Xb, Yb, Wb, scale):
        v = eqx.combine(tp, fixed_p, static)
        per_output = jax.vmap(_elbo_batch, in_axes=(0, None, 1, 1, None, None))(
            v, Xb, Yb, Wb, scale, cfg.jitter
        )
        return -jnp.sum(per_output)

    def step(carry, t):
        tp, state = carry
        if cfg.full_batch:
            Xb, Yb, Wb, scale = X, Y, mask, 1.0
        else:
            idx = jax.random.randint(jax.random.fold_in(key, t), (cfg.batch,), 0, n)
            Xb, Yb, Wb, scale = X[idx], Y[idx], mask[idx], n / cfg.batch
        loss, grads = jax.value_and_grad(neg_elbo)(tp, Xb, Yb, Wb, scale)
        updates, state = opt.update(grads, state, tp)
        return (optax.apply_updates(tp, updates), state), -loss

    (train_p, _), trace = lax.scan(step, (train_p, opt_state), jnp.arange(cfg.steps))
    return eqx.combine(train_p, fixed_p, static), trace


def _chunks(*arrays):
    """Reshape (N, ...) arrays to (N / C, C, ...) for a scan over row chunks."""
    N = arrays[0].shape[0]
    C = min(N, _CHUNK)
    if N % C:
        raise ValueError(f"capacity {N} is not a multiple of the chunk size {C}")
    return tuple(a.reshape((N // C, C) + a.shape[1:]) for a in arrays)


def _sufficient_statistics(theta, Z, Linv, X, y, w):
    """One output's sums over observed rows: A A^T (M, M), A r (M,), r.r,
    sum of diag(K - Q), count; r = y - mean. One pass, chunk by chunk."""
    M = Z.shape[0]

    def add(acc, chunk):
        Xc, yc, wc = chunk
        A = _whitened_projection(theta, Z, Linv, Xc) * wc
        r = (yc - theta.mean) * wc
        AAt, Ar, rr, tr, cnt = acc
        return (AAt + A @ A.T, Ar + A @ r, rr + r @ r,
                tr + jnp.sum(wc * theta.variance - jnp.sum(A * A, 0)), cnt + jnp.sum(wc)), None

    zero = (jnp.zeros((M, M)), jnp.zeros(M), 0.0, 0.0, 0.0)
    acc, _ = lax.scan(add, zero, _chunks(X, y, w))
    return acc


def _optimal_q(theta, Z, X, y, w, jitter: float):
    """Titsias' optimal whitened q(v) = N(m, S S^T) and the collapsed bound."""
    Linv = _inverse_cholesky(theta, Z, jitter)
    AAt, Ar, rr, tr, n = _sufficient_statistics(theta, Z, Linv, X, y, w)
    s2 = theta.noise
    M = Z.shape[0]
    Lam = jnp.eye(M) + AAt / s2
    LL = jnp.linalg.cholesky(Lam)
    q_mean = cho_solve((LL, True), Ar) / s2
    Sigma = cho_solve((LL, True), jnp.eye(M))
    S = jnp.linalg.cholesky(0.5 * (Sigma + Sigma.T))
    # log N(r | 0, s2 I + A^T A) by the determinant lemma and Woodbury, minus
    # the trace term tr(K - Q) / (2 s2).
    quad = (rr - Ar @ q_mean) / s2
    logdet = n * jnp.log(s2) + 2.0 * jnp.sum(jnp.log(jnp.diag(LL)))
    bound = -0.5 * (n * _LOG_2PI + logdet + quad) - 0.5 * tr / s2
    return q_mean, S, bound


class SVGP(eqx.Module):
    """A fitted sparse variational GP with independent outputs.

    hyperparameters: stacked (m, ...); Z: (m, M, d) inducing inputs on the
    unit-cube scale; q_mean: (m, M), q_sqrt: (m, M, M) lower triangular, the
    whitened q(v); inverse_cholesky: (m, M, M), L^-1 for L L^T = K_zz + jitter;
    lower, span: (d,) input scaling; y_loc, y_scale: (m,) output standardisation;
    jitter: added to K_zz, relative to the signal variance.
    """

    hyperparameters: SVGPHyperparameters
    Z: Array
    q_mean: Array
    q_sqrt: Array
    inverse_cholesky: Array
    lower: Array
    span: Array
    y_loc: Array
    y_scale: Array
    jitter: float = eqx.field(static=True)

    @property
    def num_inducing(self) -> int:
        return self.Z.shape[1]

    @property
    def num_outputs(self) -> int:
        return self.Z.shape[0]

    def scale_inputs(self, Xq: Array) -> Array:
        return (jnp.atleast_2d(jnp.asarray(Xq, jnp.float64)) - self.lower) / self.span

    def posterior(self, Xq: Array, full_cov: bool = False,
                  observation_noise: bool = False) -> Posterior:
        """Latent posterior q(f(Xq)) at Xq (q, d) in original units.

        mean = mu + A^T m, cov = K_qq - A^T A + A^T S S^T A with A = L^-1 K_zq;
        ``observation_noise`` adds the Gaussian noise variance.
        """
        return _svgp_posterior(self, Xq, full_cov, observation_noise)

    def _data(self, X, Y):
        Xs, Ys, mask, *_ = prepare_data(X, Y, (self.lower, self.lower + self.span),
                                        standardisation=(self.y_loc, self.y_scale))
        return jnp.asarray(Xs), jnp.asarray(Ys), jnp.asarray(mask)

    def elbo(self, X, Y) -> Array:
        """Full-data ELBO per output, (m,), of the standardised targets.

        X: (n, d), Y: (n, m) in original units; standardised with the model's
        own y_loc, y_scale (so it compares with the exact GP's log marginal
        likelihood of the same standardised targets).
        """
        Xs, Ys, mask = self._data(X, Y)
        return _full_elbo(self, Xs, Ys, mask)

    def collapsed_elbo(self, X, Y) -> Array:
        """Titsias' collapsed bound per output, (m,): the ELBO at the optimal q(u)."""
        Xs, Ys, mask = self._data(X, Y)
        return _collapsed(self, Xs, Ys, mask)

    def with_optimal_variational(self, X, Y) -> "SVGP":
        """The same Z and hyperparameters with q(u) set to its closed-form optimum."""
        Xs, Ys, mask = self._data(X, Y)
        return _with_optimal_q(self, Xs, Ys, mask)


@partial(jax.jit, static_argnames=("full_cov", "observation_noise"))
def _svgp_posterior(model: SVGP, Xq: Array, full_cov: bool,
                    observation_noise: bool) -> Posterior:
    Xs = model.scale_inputs(Xq)

    def one(theta, Z, Linv, q_mean, S):
        A = _whitened_projection(theta, Z, Linv, Xs)
        mean = theta.mean + A.T @ q_mean
        SA = S.T @ A
        var = theta.variance - jnp.sum(A * A, 0) + jnp.sum(SA * SA, 0)
        noise = theta.noise if observation_noise else 0.0
        var = jnp.maximum(var, MIN_VARIANCE) + noise
        if not full_cov:
            return mean, var, None
        cov = (matern52(Xs, Xs, theta.lengthscale, theta.variance) - A.T @ A + SA.T @ SA
               + noise * jnp.eye(Xs.shape[0]))
        return mean, var, cov

    mean, var, cov = jax.vmap(one)(model.hyperparameters, model.Z, model.inverse_cholesky,
                                   model.q_mean, model.q_sqrt)
    mean = (mean * model.y_scale[:, None] + model.y_loc[:, None]).T
    var = (var * model.y_scale[:, None] ** 2).T
    if cov is not None:
        cov = cov * (model.y_scale**2)[:, None, None]
    return Posterior(mean=mean, variance=var, covariance=cov)


@jax.jit
def _full_elbo(model: SVGP, X, Y, mask):
    def one(theta, Z, Linv, q_mean, S, y, w):
        def add(acc, chunk):
            Xc, yc, wc = chunk
            A = _whitened_projection(theta, Z, Linv, Xc)
            return acc + _expected_log_lik(theta, A, q_mean, S, yc, wc), None

        ell, _ = lax.scan(add, 0.0, _chunks(X, y, w))
        return ell - _kl_whitened(q_mean, S)

    return jax.vmap(one, in_axes=(0, 0, 0, 0, 0, 1, 1))(
        model.hyperparameters, model.Z, model.inverse_cholesky, model.q_mean, model.q_sqrt,
        Y, mask,
    )


@jax.jit
def _collapsed(model: SVGP, X, Y, mask):
    opt = lambda theta, Z, y, w: _optimal_q(theta, Z, X, y, w, model.jitter)[2]
    return jax.vmap(opt, in_axes=(0, 0, 1, 1))(model.hyperparameters, model.Z, Y, mask)


@jax.jit
def _with_optimal_q(model: SVGP, X, Y, mask):
    opt = lambda theta, Z, y, w: _optimal_q(theta, Z, X, y, w, model.jitter)[:2]
    q_mean, S = jax.vmap(opt, in_axes=(0, 0, 1, 1))(model.hyperparameters, model.Z, Y, mask)
    return eqx.tree_at(lambda g: (g.q_mean, g.q_sqrt), model, (q_mean, S))


@partial(jax.jit, static_argnames=("num", "init", "m"))
def _initial_inducing(key, X, mask, num: int, init: str, m: int):
    valid = mask.any(axis=1).astype(X.dtype)
    seed = _kmeanspp if init == "kmeans++" else _random_subset
    Z = seed(key, X, valid, num)
    return jnp.broadcast_to(Z, (m,) + Z.shape)


def default_hyperparameters(d: int, m: int = 1) -> SVGPHyperparameters:
    """Starting values: length-scale 0.3 sqrt(d) on the unit cube, unit signal
    variance, noise 0.1 and zero mean (standardised units); stacked (m, ...)."""
    return SVGPHyperparameters(
        log_lengthscale=jnp.full((m, d), math.log(0.3 * math.sqrt(d))),
        log_variance=jnp.zeros(m), log_noise=jnp.full((m,), math.log(0.1)),
        mean=jnp.zeros(m),
    )


@register_model("svgp")
def fit_svgp(
    X,
    Y,
    *,
    key: Array,
    num_inducing: int = 128,
    batch_size: int = 1024,
    steps: int = 2000,
    learning_rate: float = 0.01,
    init: str = "kmeans++",
    inducing_points=None,
    hyperparameters: SVGPHyperparameters | None = None,
    train_hyperparameters: bool = True,
    train_inducing: bool = True,
    optimal_variational: bool = True,
    jitter: float = 1e-6,
    bounds=None,
    capacity: int | None = None,
) -> SVGP:
    """Fit an SVGP (Matérn-5/2 ARD, Gaussian noise) by Adam on the minibatch ELBO.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing;
    key: PRNG key (inducing-point seeding and minibatches);
    num_inducing: M (capped at n); batch_size: rows per step (the whole padded
    set, exactly, when it holds them all); init: ``kmeans++`` or ``random``;
    inducing_points: (M, d) starting Z in input units, overriding init;
    hyperparameters: starting values (stacked over outputs; default
    ``default_hyperparameters``); train_*: which parameters Adam moves (q(u)
    always); optimal_variational: finish by setting q(u) to its closed-form
    optimum for the final Z and hyperparameters (one pass over the data,
    O(n M^2)); jitter: added to K_zz, relative to the signal variance;
    bounds: (2, d) input bounds; steps=0 builds the model without training.
    """
    if init not in ("kmeans++", "random"):
        raise ValueError(f"init must be 'kmeans++' or 'random'; got {init!r}")
    Xs, Ys, mask, n, lower, span, y_loc, y_scale = prepare_data(X, Y, bounds, capacity)
    N, d = Xs.shape
    m = Ys.shape[1]
    Xs, Ys, mask = jnp.asarray(Xs), jnp.asarray(Ys), jnp.asarray(mask)
    k_init, k_train = jax.random.split(key)
    if inducing_points is not None:
        Z0 = (np.asarray(inducing_points, np.float64) - lower) / span
        Z = jnp.broadcast_to(jnp.asarray(Z0), (m,) + Z0.shape)
    else:
        Z = _initial_inducing(k_init, Xs, mask, num=min(num_inducing, n), init=init, m=m)
    M = Z.shape[1]
    theta = hyperparameters if hyperparameters is not None else default_hyperparameters(d, m)
    theta = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), theta)
    if theta.log_lengthscale.shape != (m, d):
        raise ValueError(
            f"hyperparameters have length-scales of shape {theta.log_lengthscale.shape};"
            f" expected {(m, d)}"
        )
    v = _Variational(Z=Z, q_mean=jnp.zeros((m, M)), q_tril=jnp.zeros((m, M, M)),
                     q_log_diag=jnp.zeros((m, M)), theta=theta)
    if steps > 0:
        cfg = _Config(steps=int(steps), batch=min(int(batch_size), N),
                      full_batch=batch_size >= N, jitter=float(jitter),
                      train_hyperparameters=train_hyperparameters,
                      train_inducing=train_inducing)
        v, _ = _train(v, Xs, Ys, mask, jnp.asarray(n, jnp.int32), k_train,
                      jnp.asarray(learning_rate, jnp.float64), cfg)
    model = _assemble(v, *(jnp.asarray(a) for a in (lower, span, y_loc, y_scale)),
                      jitter=float(jitter))
    if optimal_variational:
        model = _with_optimal_q(model, Xs, Ys, mask)
    return model


@partial(jax.jit, static_argnames=("jitter",))
def _assemble(v: _Variational, lower, span, y_loc, y_scale, jitter: float) -> SVGP:
    return SVGP(
        hyperparameters=v.theta, Z=v.Z, q_mean=v.q_mean, q_sqrt=jax.vmap(lambda a: a.q_sqrt)(v),
        inverse_cholesky=jax.vmap(_inverse_cholesky, in_axes=(0, 0, None))(v.theta, v.Z, jitter),
        lower=lower, span=span, y_loc=y_loc, y_scale=y_scale, jitter=jitter,
    )
