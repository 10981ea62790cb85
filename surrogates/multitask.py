"""Multi-task GP: the intrinsic and linear coregionalisation models (ICM / LCM).

Related tasks (plants, substrates, reactors, batches of a material) share
structure: f(x, t) = sum_q a_q(t) u_q(x) with independent latent GPs u_q, so

    cov(f(x, t), f(x', t')) = sum_q B_q[t, t'] k_q(x, x'),
    B_q = W_q W_q^T + diag(kappa_q),   W_q: (T, rank).

One latent (Q = 1) is the ICM of Bonilla et al. (2008); several latents with
their own length-scales are the LCM (Alvarez, Rosasco & Lawrence, 2012). A
target task with a handful of observations borrows strength from related
tasks with many. Data are heterotopic: every row carries its own task, so
tasks need not be observed at the same inputs.

Hyperparameters are MAP estimates (L-BFGS restarts mapped in one compiled
program, gradients by ``jax.grad`` through the Cholesky). Every task has its
own constant mean and noise; outputs are standardised over all tasks together
so that the coregionalisation matrices carry the relative scales.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``T``
tasks, ``Q`` latent processes, ``q`` query points. One output.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import cho_solve, solve_triangular

import surrogates.lbfgs as lbfgs
from surrogates.data import pad_observations, standardise as standardise_outputs
from surrogates.gp import Posterior
from surrogates.kernel_functions import lengthscale_prior, normal_logpdf
from surrogates.kernels import matern52
from surrogates.numerics import JITTER, MIN_VARIANCE
from surrogates._runtime import counts_traces

_LOG_2PI = math.log(2.0 * math.pi)
NOISE_FLOOR = 1e-6
# Priors in unit-cube inputs and standardised outputs. Length-scales: the
# dimension-scaled log-normal of Hvarfner et al. (2024), as the plain GP.
LOG_NOISE_PRIOR = (-8.0, 2.0)
MEAN_PRIOR = (0.0, 1.0)
_W_PRIOR = (0.0, 1.0)
# Task-specific variance small a priori: tasks are assumed related until the
# data say otherwise, which is what makes a few target points useful.
_LOG_KAPPA_PRIOR = (-3.0, 1.5)


class LCMParameters(eqx.Module):
    """Constrained parameters of a coregionalised GP, the form the posterior uses.

    lengthscale: (Q, d) per latent; coregionalisation: (Q, T, T) the B_q;
    noise: (T,) variance per task incl. the floor; mean: (T,) per task.
    All in unit-cube inputs and standardised outputs.
    """

    lengthscale: Array
    coregionalisation: Array
    noise: Array
    mean: Array

    @property
    def num_tasks(self) -> int:
        return self.noise.shape[-1]


def lcm_kernel(Z1: Array, t1: Array, Z2: Array, t2: Array, params: LCMParameters) -> Array:
    """sum_q B_q[t1, t2] k_q(Z1, Z2), Matérn-5/2 latents of unit variance.

    Z1: (n, d), t1: (n,) int, Z2: (p, d), t2: (p,) int. Returns (n, p).
    """

    def latent(ls, B):
        return B[t1[:, None], t2[None, :]] * matern52(Z1, Z2, ls, jnp.asarray(1.0))

    return jnp.sum(jax.vmap(latent)(params.lengthscale, params.coregionalisation), axis=0)


def _masked_gram(params: LCMParameters, Z: Array, task: Array, mask: Array) -> Array:
    """Noisy Gram matrix whose padded rows and columns are the identity,
    which leaves the likelihood of the unmasked rows exact."""
    K = lcm_kernel(Z, task, Z, task, params) * (mask[:, None] * mask[None, :])
    return K + jnp.diag(mask * (params.noise[task] + JITTER) + (1.0 - mask))


def negative_log_marginal_likelihood(
    params: LCMParameters, Z: Array, task: Array, y: Array, mask: Array
) -> Array:
    """-log p(y | Z, task, params) over the unmasked rows.

    Z: (N, d) unit-cube inputs; task: (N,) int; y: (N,) standardised; mask: (N,).
    """
    L = jnp.linalg.cholesky(_masked_gram(params, Z, task, mask))
    r = (y - params.mean[task]) * mask
    alpha = cho_solve((L, True), r)
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * jnp.sum(mask) * _LOG_2PI


class MultiTaskHyperparameters(eqx.Module):
    """Unconstrained ICM/LCM hyperparameters.

    log_lengthscale: (Q, d); W: (Q, T, rank); log_kappa: (Q, T);
    log_noise: (T,) with noise = NOISE_FLOOR + exp(log_noise); mean: (T,).
    """

    log_lengthscale: Array
    W: Array
    log_kappa: Array
    log_noise: Array
    mean: Array

    def to_lcm(self) -> LCMParameters:
        B = jnp.einsum("qtr,qsr->qts", self.W, self.W)
        B = B + jax.vmap(jnp.diag)(jnp.exp(self.log_kappa))
        return LCMParameters(
            lengthscale=jnp.exp(self.log_lengthscale), coregionalisation=B,
            noise=NOISE_FLOOR + jnp.exp(self.log_noise), mean=self.mean,
        )

    def log_prior(self) -> Array:
        loc, scale = lengthscale_prior(self.log_lengthscale.shape[-1])
        return (
            jnp.sum(normal_logpdf(self.log_lengthscale, loc, scale))
            + jnp.sum(normal_logpdf(self.W, *_W_PRIOR))
            + jnp.sum(normal_logpdf(self.log_kappa, *_LOG_KAPPA_PRIOR))
            + jnp.sum(normal_logpdf(self.log_noise, *LOG_NOISE_PRIOR))
            + jnp.sum(normal_logpdf(self.mean, *MEAN_PRIOR))
        )


def negative_log_posterior(theta, Z: Array, task: Array, y: Array, mask: Array) -> Array:
    """MAP objective: -log p(y | theta) - log p(theta), for any hyperparameters
    with ``to_lcm()`` and ``log_prior()``. Shapes as in the likelihood."""
    return negative_log_marginal_likelihood(theta.to_lcm(), Z, task, y, mask) - theta.log_prior()


def map_restarts(fn: Callable, xs):
    """Apply ``fn`` to each restart stacked along the leading axis of ``xs``.

    One ``vmap`` on accelerators; on CPU, where a batch of small Cholesky
    factorisations costs as much as the same number one by one, a ``lax.map``
    so that no restart waits on the slowest one's iterations.
    """
    n = jax.tree.leaves(xs)[0].shape[0]
    return lax.map(fn, xs, batch_size=n if jax.default_backend() != "cpu" else 1)


def map_estimate(objective: Callable, theta0, max_iter: int):
    """Minimise ``objective`` from every restart in ``theta0`` (leaves (R, ...))
    with L-BFGS; returns the best finite optimum (restart 0's start if none is)."""
    value_and_grad = jax.value_and_grad(objective)
    thetas, losses, _ = map_restarts(
        lambda t: lbfgs.minimize(value_and_grad, t, max_iter=max_iter, gtol=1e-3, ftol=1e-8),
        theta0,
    )
    losses = jnp.where(jnp.isfinite(losses), losses, jnp.inf)
    best = jnp.argmin(losses)
    theta = jax.tree.map(lambda a: a[best], thetas)
    fallback = jax.tree.map(lambda a: a[0], theta0)
    ok = jnp.isfinite(losses[best])
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), theta, fallback)


def standardise(y: Array, mask: Array) -> tuple[Array, Array]:
    """Masked mean and standard deviation of y: (N,) (scale 1 when degenerate)."""
    loc, scale = standardise_outputs(y[:, None], mask[:, None])
    return loc[0], scale[0]


def scale_data(X, y, mask, lower, span):
    """Unit-cube inputs (padded rows at 0.5) and standardised targets."""
    Z = jnp.where(mask[:, None] > 0, (X - lower) / span, 0.5)
    loc, scale = standardise(y, mask)
    return Z, jnp.where(mask > 0, (y - loc) / scale, 0.0), loc, scale


class MultiTaskGP(eqx.Module):
    """A fitted coregionalised GP; ``posterior`` predicts one task at a time.

    params: the LCM parameters used; hyperparameters: the unconstrained ones
    they came from (for warm starts); X: (N, d) unit-cube inputs; task: (N,)
    int; y: (N,) standardised targets; mask: (N,); cholesky: (N, N);
    alpha: (N,) = K^-1 (y - mean); lower, span: (d,); y_loc, y_scale: ();
    target_task: the task ``posterior`` predicts by default.
    """

    params: LCMParameters
    hyperparameters: Any
    X: Array
    task: Array
    y: Array
    mask: Array
    cholesky: Array
    alpha: Array
    lower: Array
    span: Array
    y_loc: Array
    y_scale: Array
    target_task: int = eqx.field(static=True)

    @property
    def num_tasks(self) -> int:
        return self.params.num_tasks

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def capacity(self) -> int:
        return self.X.shape[0]

    @property
    def task_covariance(self) -> Array:
        """sum_q B_q: the task covariance at zero input distance, (T, T), standardised."""
        return jnp.sum(self.params.coregionalisation, axis=0)

    @property
    def task_correlation(self) -> Array:
        """Correlation between tasks at the same input, (T, T)."""
        B = self.task_covariance
        s = jnp.sqrt(jnp.diag(B))
        return B / (s[:, None] * s[None, :])

    def scale_inputs(self, Xq: Array) -> Array:
        return (Xq - self.lower) / self.span

    def _query_tasks(self, task, q: int) -> Array:
        t = self.target_task if task is None else task
        if isinstance(t, (int, np.integer)) and not 0 <= t < self.num_tasks:
            raise ValueError(f"task {t} is not in 0..{self.num_tasks - 1}")
        return jnp.broadcast_to(jnp.asarray(t, dtype=self.task.dtype), (q,))

    def posterior(self, Xq: Array, full_cov: bool = False, task=None) -> Posterior:
        """Latent posterior of task ``task`` (default ``target_task``) at Xq.

        Xq: (q, d) inputs in original units; task: an int, or (q,) ints to
        predict a different task at each point (joint covariance included).
        Mean and variance (q, 1); covariance (1, q, q) when full_cov.
        """
        Xq = jnp.atleast_2d(jnp.asarray(Xq))
        return _posterior(self, Xq, self._query_tasks(task, Xq.shape[0]), full_cov)

    def for_task(self, task: int) -> "TaskView":
        """This model seen as a plain single-task surrogate of ``task``."""
        if not 0 <= task < self.num_tasks:
            raise ValueError(f"task {task} is not in 0..{self.num_tasks - 1}")
        return TaskView(self, int(task))

    def condition(self, Xnew: Array, Ynew: Array, task=None) -> "MultiTaskGP":
        """The GP conditioned on extra observations of ``task`` (default the
        target), fixed hyperparameters: fantasies for pending points.

        Xnew: (k, d), Ynew: (k,) or (k, 1) in original units; task: int or (k,).
        """
        # The first slot after the last observed row: missing outputs inside
        # the data are masked but not free.
        used = np.flatnonzero(np.asarray(self.mask))
        n = int(used[-1]) + 1 if used.size else 0
        k = Xnew.shape[0]
        if n + k > self.capacity:
            raise ValueError(
                f"cannot condition on {k} more points: {n} of {self.capacity} slots used"
            )
        tnew = self._query_tasks(task, k)
        return _condition(self, jnp.asarray(Xnew), jnp.reshape(jnp.asarray(Ynew), (k,)), tnew,
                          jnp.asarray(n))


class TaskView(eqx.Module):
    """One task of a multi-task (or multi-fidelity) GP behind the plain protocol."""

    model: MultiTaskGP
    task: int = eqx.field(static=True)

    @property
    def num_outputs(self) -> int:
        return 1

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        return self.model.posterior(Xq, full_cov=full_cov, task=self.task)

    def condition(self, Xnew: Array, Ynew: Array) -> "TaskView":
        return TaskView(self.model.condition(Xnew, Ynew, task=self.task), self.task)


@partial(jax.jit, static_argnames=("full_cov",))
def _posterior(model: MultiTaskGP, Xq: Array, tq: Array, full_cov: bool) -> Posterior:
    # Compiled here so that notebooks calling ``posterior`` eagerly do not
    # dispatch every small operation on its own; inside a caller's jit it inlines.
    Z = model.scale_inputs(Xq)
    p = model.params
    Kq = lcm_kernel(Z, tq, model.X, model.task, p) * model.mask[None, :]
    mean = p.mean[tq] + Kq @ model.alpha
    v = solve_triangular(model.cholesky, Kq.T, lower=True)
    prior_var = jnp.sum(p.coregionalisation[:, tq, tq], axis=0)
    var = jnp.maximum(prior_var - jnp.sum(v * v, axis=0), MIN_VARIANCE)
    cov = None
    if full_cov:
        cov = (lcm_kernel(Z, tq, Z, tq, p) - v.T @ v)[None] * model.y_scale**2
    return Posterior(mean=(mean * model.y_scale + model.y_loc)[:, None],
                     variance=(var * model.y_scale**2)[:, None], covariance=cov)


def _factorise(params: LCMParameters, Z, task, y, mask):
    L = jnp.linalg.cholesky(_masked_gram(params, Z, task, mask))
    return L, cho_solve((L, True), (y - params.mean[task]) * mask)


@jax.jit
def _condition(model: MultiTaskGP, Xnew, Ynew, tnew, start) -> MultiTaskGP:
    # ``start`` is traced: one program per (capacity, k), whatever n is.
    X = lax.dynamic_update_slice(model.X, model.scale_inputs(Xnew), (start, 0))
    y = lax.dynamic_update_slice(model.y, (Ynew - model.y_loc) / model.y_scale, (start,))
    task = lax.dynamic_update_slice(model.task, tnew, (start,))
    mask = lax.dynamic_update_slice(model.mask, jnp.ones_like(Ynew), (start,))
    L, alpha = _factorise(model.params, X, task, y, mask)
    return eqx.tree_at(
        lambda g: (g.X, g.task, g.y, g.mask, g.cholesky, g.alpha), model,
        (X, task, y, mask, L, alpha),
    )


def build_model(theta, Z, task, ys, mask, lower, span, loc, scale, target_task: int):
    """A ``MultiTaskGP`` from hyperparameters (anything with ``to_lcm()``) and scaled data."""
    params = theta.to_lcm()
    L, alpha = _factorise(params, Z, task, ys, mask)
    return MultiTaskGP(
        params=params, hyperparameters=theta, X=Z, task=task, y=ys, mask=mask, cholesky=L,
        alpha=alpha, lower=lower, span=span, y_loc=loc, y_scale=scale, target_task=target_task,
    )


def pad_tasks(X, Y, task, bounds, capacity, num_tasks):
    """Validate and pad heterotopic data to a bucket.

    Returns numpy Xp (N, d), yp (N,), taskp (N,) int32, mask (N,), lower, span,
    and the number of tasks.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(Y, dtype=np.float64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    t = np.asarray(task)
    if X.ndim != 2 or y.ndim != 1 or t.shape != y.shape or X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X must be (n, d), Y (n,) or (n, 1) and task (n,); got {X.shape}, "
            f"{np.shape(Y)} and {t.shape}"
        )
    if not np.all(np.equal(np.mod(t, 1), 0)) or (t.size and t.min() < 0):
        raise ValueError("task indices must be non-negative integers")
    t = t.astype(np.int32)
    T = int(num_tasks) if num_tasks is not None else int(t.max()) + 1
    if t.size and t.max() >= T:
        raise ValueError(f"task index {int(t.max())} is not below num_tasks={T}")
    Xp, Yp, mask, lower, span = pad_observations(X, y, bounds, capacity)
    tp = np.zeros(len(Xp), np.int32)
    tp[:len(t)] = t
    return Xp, Yp[:, 0], tp, mask[:, 0], lower, span, T


def _initial_hyperparameters(key, restarts: int, d: int, T: int, rank: int, Q: int,
                             warm: MultiTaskHyperparameters | None):
    """Restart 0 at ``warm`` or at a related-tasks start, the others drawn around it."""
    loc, _ = lengthscale_prior(d)
    # Latents start at different length-scales so that the LCM's are not symmetric.
    ls_offsets = -0.7 * jnp.arange(Q)[:, None]
    W_centre = jnp.zeros((Q, T, rank)).at[:, :, 0].set(0.8)
    first = warm if warm is not None else MultiTaskHyperparameters(
        log_lengthscale=jnp.broadcast_to(loc + ls_offsets, (Q, d)),
        W=W_centre + 0.05 * jnp.arange(rank) / max(rank, 1),
        log_kappa=jnp.full((Q, T), _LOG_KAPPA_PRIOR[0]),
        log_noise=jnp.full((T,), LOG_NOISE_PRIOR[0]), mean=jnp.zeros(T),
    )
    k1, k2, k3, k4 = jax.random.split(key, 4)
    drawn = MultiTaskHyperparameters(
        log_lengthscale=loc + ls_offsets + jax.random.normal(k1, (restarts, Q, d)),
        W=W_centre + 0.3 * jax.random.normal(k2, (restarts, Q, T, rank)),
        log_kappa=_LOG_KAPPA_PRIOR[0] + 0.5 * jax.random.normal(k3, (restarts, Q, T)),
        log_noise=LOG_NOISE_PRIOR[0] + jax.random.normal(k4, (restarts, T)),
        mean=jnp.zeros((restarts, T)),
    )
    return jax.tree.map(lambda a, b: b.at[0].set(a), first, drawn)


@partial(jax.jit, static_argnames=("num_tasks", "rank", "num_latents", "restarts", "max_iter",
                                   "target_task"))
@counts_traces("multitask.fit")
def _fit(X, y, task, mask, lower, span, key, warm, num_tasks: int, rank: int,
         num_latents: int, restarts: int, max_iter: int, target_task: int) -> MultiTaskGP:
    Z, ys, loc, scale = scale_data(X, y, mask, lower, span)
    theta0 = _initial_hyperparameters(key, restarts, X.shape[1], num_tasks, rank, num_latents,
                                      warm)
    theta = map_estimate(lambda th: negative_log_posterior(th, Z, task, ys, mask), theta0,
                         max_iter)
    return build_model(theta, Z, task, ys, mask, lower, span, loc, scale, target_task)


def fit_multitask_gp(
    X,
    Y,
    task,
    *,
    key: Array,
    target_task: int,
    num_tasks: int | None = None,
    rank: int = 1,
    num_latents: int = 1,
    bounds=None,
    capacity: int | None = None,
    restarts: int = 4,
    max_iter: int = 100,
    warm_start: MultiTaskHyperparameters | None = None,
) -> MultiTaskGP:
    """Fit an ICM (``num_latents=1``) or LCM multi-task GP by MAP.

    X: (n, d) inputs, all tasks together; Y: (n,) or (n, 1) outputs, NaN
    where missing; task: (n,) integer task of each row (split a task column
    off X before calling); key: PRNG key for the restarts; target_task: the
    task ``posterior`` predicts by default; num_tasks: T (default max + 1, set
    it when a task has no data yet); rank: columns of each W_q; num_latents:
    Q latent GPs, each with its own length-scales; bounds: (2, d) input bounds
    (default the data's range); capacity: rows to pad to; restarts: L-BFGS
    starts; warm_start: hyperparameters of an earlier fit of the same shapes.
    """
    Xp, yp, tp, mask, lower, span, T = pad_tasks(X, Y, task, bounds, capacity, num_tasks)
    if not 0 <= target_task < T:
        raise ValueError(f"target_task {target_task} is not in 0..{T - 1}")
    if min(rank, num_latents, restarts) < 1:
        raise ValueError("rank, num_latents and restarts must be at least 1")
    if warm_start is not None:
        warm_start = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), warm_start)
        if warm_start.W.shape != (num_latents, T, rank):
            raise ValueError(f"warm_start W has shape {warm_start.W.shape}; expected "
                             f"{(num_latents, T, rank)}")
    return _fit(
        jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(tp), jnp.asarray(mask), jnp.asarray(lower),
        jnp.asarray(span), key, warm_start, num_tasks=T, rank=rank, num_latents=num_latents,
        restarts=restarts, max_iter=max_iter, target_task=int(target_task),
    )


@partial(jax.jit, static_argnames=("target_task",))
def _condition_on_data(X, y, task, mask, lower, span, theta, target_task: int) -> MultiTaskGP:
    Z, ys, loc, scale = scale_data(X, y, mask, lower, span)
    return build_model(theta, Z, task, ys, mask, lower, span, loc, scale, target_task)


def multitask_gp_from_hyperparameters(
    X, Y, task, hyperparameters: MultiTaskHyperparameters, *, target_task: int,
    num_tasks: int | None = None, bounds=None, capacity: int | None = None,
) -> MultiTaskGP:
    """The multi-task posterior on (X, Y, task) with given hyperparameters, no fitting.

    Same scaling, standardisation and padding as ``fit_multitask_gp``; for
    tests, known models and transfer of hyperparameters.
    """
    Xp, yp, tp, mask, lower, span, T = pad_tasks(X, Y, task, bounds, capacity, num_tasks)
    theta = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), hyperparameters)
    if theta.log_noise.shape != (T,):
        raise ValueError(f"hyperparameters are for {theta.log_noise.shape[0]} tasks; data "
                         f"have {T}")
    return _condition_on_data(jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(tp),
                              jnp.asarray(mask), jnp.asarray(lower), jnp.asarray(span), theta,
                              target_task=int(target_task))
