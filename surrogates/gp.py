"""Exact Gaussian process regression with MAP hyperparameters.

The fitted model is an immutable ``equinox.Module`` holding the padded training
data, its Cholesky factor and the hyperparameters, so it crosses ``jit`` and
``vmap`` as a value. Training sets are padded to a bucket size with a mask so
a growing campaign compiles once per bucket, not once per observation.

Any kernel of :mod:`surrogates.kernels` works; the default is Matérn-5/2 ARD.
This module holds the model, its posterior and the entry points ``fit_gp`` and
``gp_from_hyperparameters``; the hyperparameters and priors live in
:mod:`surrogates.gp_hyperparameters`, the marginal likelihood in
:mod:`surrogates.gp_likelihood` and the MAP fit (restarts, screening, subset
cascade) in :mod:`surrogates.gp_fit`. Their public names are re-exported here.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
independent outputs, ``q`` query points.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import cho_solve, solve_triangular

from surrogates.data import bucket_size, pad_observations, standardise
from surrogates.gp_fit import SCREEN_MIN_N, fit_one_output, map_restarts
from surrogates.gp_hyperparameters import (
    LOG_NOISE_PRIOR,
    NOISE_FLOOR,
    NOISE_PRIORS,
    GPHyperparameters,
    hyperparameters_from_dict,
    hyperparameters_to_dict,
    log_prior,
    resolve_noise_prior,
)
from surrogates.gp_likelihood import cholesky, masked_gram, negative_log_marginal_likelihood
from surrogates.kernels import (
    Categorical,
    Kernel,
    Matern52,
    Product,
    Sum,
    Warped,
    lengthscale_prior,
    parse_kernel,
)
from surrogates.numerics import JITTER, MIN_VARIANCE
from surrogates.registry import register_model
from surrogates._runtime import counts_traces

__all__ = [
    "ExactGP", "FixedJoint", "GPHyperparameters", "NOISE_FLOOR", "NOISE_PRIORS", "Posterior",
    "assemble_exact_gp", "bucket_size", "check_warm_start", "fit_gp", "gp_from_hyperparameters",
    "hyperparameters_from_dict", "hyperparameters_to_dict", "lengthscale_prior", "log_prior",
    "map_restarts", "negative_log_marginal_likelihood", "resolve_kernel", "resolve_noise_prior",
    "scale_and_standardise",
]


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

    def leave_out_chi2(self, start: int, count: int) -> tuple[Array, Array]:
        """How well the other observations predict rows ``start .. start + count``:
        per output, the sum of their squared z-scores under the joint leave-these-out
        posterior (noise included) and the number of observed values among them, both
        (m,). Under the model the sum is chi-squared with that many degrees of freedom,
        so a large one says the hyperparameters do not explain these rows. From the
        stored factor: two triangular solves with ``count`` right-hand sides, no new
        factorisation (block leave-out: r_B = (K^-1)_BB^-1 alpha_B)."""
        if not (0 <= start and count >= 1 and start + count <= self.capacity):
            raise ValueError(f"rows {start}..{start + count}: expected 0 <= start, count >= 1"
                             f" and at most {self.capacity} rows")
        return _leave_out_chi2(self.cholesky, self.alpha, self.mask, jnp.asarray(start),
                               count)

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


@partial(jax.jit, static_argnames=("count",))
def _leave_out_chi2(L, alpha, mask, start, count: int) -> tuple[Array, Array]:
    def one(L, alpha, mask):
        E = lax.dynamic_slice(jnp.eye(L.shape[0]), (0, start), (L.shape[0], count))
        inverse_block = lax.dynamic_slice(cho_solve((L, True), E), (start, 0), (count, count))
        a = lax.dynamic_slice(alpha, (start,), (count,))
        # Unobserved rows are identity rows of K with alpha 0: they add nothing.
        return a @ jnp.linalg.solve(inverse_block, a), jnp.sum(
            lax.dynamic_slice(mask, (start,), (count,)))

    return jax.vmap(one, in_axes=(0, 0, 1))(L, alpha, mask)


def _factorise(theta, X, y, mask, noise):
    L = cholesky(masked_gram(theta, X, mask, noise))
    alpha = cho_solve((L, True), (y - theta.mean) * mask)
    return L, alpha


@jax.jit
@counts_traces("gp.condition")
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


@partial(jax.jit, static_argnames=("restarts", "max_iter", "refine_only"))
@counts_traces("gp.fit")
def _fit(X, Y, mask, noise, lower, span, key, warm, has_warm, restarts: int,
         max_iter: int, refine_only: bool = False) -> ExactGP:
    Z, Ys, noise_s, loc, scale = scale_and_standardise(X, Y, mask, noise, lower, span)
    keys = jax.random.split(key, Y.shape[1])
    screen = ~has_warm & (jnp.max(jnp.sum(mask, axis=0)) >= SCREEN_MIN_N)

    def one(args):
        y, m, noise_m, k, w = args
        return fit_one_output(Z, y, m, noise_m, k, w, screen, restarts, max_iter,
                              refine_only)

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
                   noise_prior=LOG_NOISE_PRIOR) -> GPHyperparameters:
    params = jax.tree.map(lambda a: np.broadcast_to(np.asarray(a), (m,) + a.shape),
                          kernel.init(d))
    return GPHyperparameters(kernel=kernel, kernel_params=params,
                             log_noise=np.full((m,), noise_prior[0]), mean=np.zeros(m),
                             learn_noise=learn_noise, noise_prior=noise_prior)


def check_warm_start(warm: GPHyperparameters, kernel: Kernel, d: int, m: int,
                     learn_noise: bool, noise_prior=LOG_NOISE_PRIOR) -> GPHyperparameters:
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
    refine_only: bool = False,
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
    ``"lab"`` (median 1.8e-2, BoTorch's: measurements) or (mean, sd) of the log;
    refine_only: refine the warm start alone (no restarts, no screening, no subsets),
    stopping once a step gains less than a few parts in 1e5 of the objective: for a
    refit after a few more observations, which starts near the optimum (needs
    ``warm_start``).
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
    if refine_only and not has_warm:
        raise ValueError("refine_only: got True without a warm_start; expected the"
                         " hyperparameters to refine")
    return _fit(
        jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask), jnp.asarray(_pad_noise(noise, Yp)),
        jnp.asarray(lower), jnp.asarray(span), key, warm_start, jnp.asarray(has_warm),
        restarts=1 if refine_only else restarts, max_iter=max_iter, refine_only=refine_only,
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

