"""Monte-Carlo acquisitions: a batch of q points chosen jointly.

Every acquisition here maps ``X: (b, q, d)`` (b candidate batches of q
encoded points) to ``(b,)`` values, larger is better; ``X: (b, d)`` is read as
q = 1, so they plug into ``maximize_acquisition`` unchanged for single points.

Values are sample averages over joint posterior draws at the q new points,
drawn by reparameterisation, f = mean + L z, from FIXED quasi-random base
samples z (scrambled Sobol normals, ``sobol_normal_samples``). Fixing z makes
each acquisition a deterministic, differentiable function of X, which a
gradient optimiser can climb (sample average approximation, as in BoTorch).

Points held fixed in the joint (pending points already proposed but not yet
observed, and for noisy EI the observed baseline) come first in the joint and
use their own Cholesky block, so their draws do not depend on X. Pending
points count as if they will be observed: improvement-type values are the
gain of the q new points over the incumbent *and* the pending points, i.e.
qEI(X | P) = E[max(max f(X) - max(best, max f(P)), 0)] = qEI(X u P) - qEI(P),
so a new point on top of a pending one is worth almost nothing.

Fixed point sets may be padded to a static size with a 0/1 mask
(``pending_mask``, ``baseline_mask``), so a growing campaign compiles once per
bucket, not once per observation.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.linalg import solve_triangular

from surrogates.protocol import SharesFixedJoint

from active_learning.acquisition import (
    likely_best,
    regularised_cholesky,
    fixed_block,
    ones_mask,
    fixed_joint,
    logmeanexp,
    sobol_normal_samples,
)

# Ament et al. (2023) defaults: tau_relu small keeps the smoothed improvement
# close to max(., 0); tau_max = 1e-2 smooths the max over the q points.
TAU_RELU = 1e-6
TAU_MAX = 1e-2
# Weight of the Cauchy term in the fat-tailed softplus; 0.1 keeps it monotone
# and convex (BoTorch's value).
_FATPLUS_ALPHA = 0.1


def log_fatplus(x: Array, tau: float = TAU_RELU) -> Array:
    """log of tau (softplus(x / tau) + 0.1 / (1 + (x / tau)^2)): a smooth log-ReLU.

    Plain log-softplus falls linearly in x below zero, so its gradient dies
    with the improvement; the Cauchy term makes the left tail decay like
    1 / x^2, whose log keeps a useful slope (Ament et al., 2023).
    """
    u = x / tau
    return jnp.log(jax.nn.softplus(u) + _FATPLUS_ALPHA / (1.0 + u * u)) + jnp.log(tau)


def fatmax(x: Array, tau: float = TAU_MAX, axis: int = -1) -> Array:
    """Smooth max with a fat tail: M + tau log sum_j p((M - x_j) / tau), M = max x.

    p(t) = 2 / (2 + 2t + t^2) decays like 1 / t^2 (a logsumexp's exp(-t)
    would let the gradient of all but the largest term vanish). Exact for one
    element; an upper bound on the max, by at most tau log(len).
    """
    M = jnp.max(x, axis=axis, keepdims=True)
    t = (M - x) / tau
    pareto = 2.0 / (2.0 + 2.0 * t + t * t)
    return jnp.squeeze(M, axis) + tau * jnp.log(jnp.sum(pareto, axis=axis))


def _as_batches(X: Array) -> Array:
    return X[:, None, :] if X.ndim == 2 else X


def _map_batches(fn, X: Array, block: int):
    """fn over the leading axis of X, vmapped in blocks of ``block`` (bounded memory)."""
    if X.shape[0] <= block:
        return jax.vmap(fn)(X)
    return lax.map(fn, X, batch_size=block)


def _concat_fixed(
    parts: list[tuple[Array | None, Array | None]],
) -> tuple[Array | None, Array | None]:
    """Stack (points, mask) pairs, skipping absent or empty ones; (None, None) if none remain."""
    present = [(X, ones_mask(X, m)) for X, m in parts if X is not None and X.shape[0] > 0]
    if not present:
        return None, None
    return (jnp.concatenate([X for X, _ in present], axis=0),
            jnp.concatenate([m for _, m in present], axis=0))


class JointDraws(eqx.Module):
    """Sign-adjusted joint posterior draws at a fixed point set and at candidate
    batches of q points, with the fixed set's share (its factor and draws, and for a
    model that shares it its whitened cross-kernel) computed once, by ``joint_draws``:
    an optimiser calls it many times with the same fixed set.

    ``self(X)``: X (b, q, d) -> (g_new (b, S, q), mean_new (b, q)); ``fixed``: the
    fixed points' (g_fixed (S, p), mean_fixed (p,)), or None without any.
    """

    model: eqx.Module
    X_fixed: Array | None
    mask: Array | None
    L_fixed: Array | None
    fixed: tuple[Array, Array] | None
    shared: eqx.Module | None
    z_fixed: Array | None
    z_new: Array
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    block: int = eqx.field(static=True, default=128)

    @property
    def q(self) -> int:
        return self.z_new.shape[1]

    def __call__(self, X: Array) -> tuple[Array, Array]:
        if X.shape[1] != self.q:
            raise ValueError(f"draws were prepared for batches of {self.q} points;"
                             f" got batches of {X.shape[1]}")
        output, sign = self.output, self.sign
        if self.X_fixed is None:

            def alone(Xb: Array) -> tuple[Array, Array]:
                post = self.model.posterior(Xb, full_cov=True)
                L = regularised_cholesky(post.covariance[output],
                                         jnp.max(post.variance[:, output]))
                mean = sign * post.mean[:, output]
                return mean + self.z_new @ L.T, mean

            return _map_batches(alone, X, self.block)

        blocks = self.shared if self.shared is not None else fixed_joint(self.model,
                                                                         self.X_fixed)

        def one(Xb: Array) -> tuple[Array, Array]:
            mean_q, var_q, cross, cov_q = blocks(Xb)
            # Block Cholesky of the joint: the fixed block is factored once.
            C = solve_triangular(self.L_fixed, cross[output] * self.mask[:, None],
                                 lower=True)  # (p, q)
            L = regularised_cholesky(cov_q[output] - C.T @ C, jnp.max(var_q[:, output]))
            mean = sign * mean_q[:, output]
            return mean + self.z_fixed @ C + self.z_new @ L.T, mean

        return _map_batches(one, X, self.block)


def joint_draws(
    model: eqx.Module,
    X_fixed: Array | None,
    fixed_mask: Array | None,
    *,
    q: int,
    num_samples: int,
    seed: int,
    output: int,
    sign: float,
    block: int = 128,
) -> JointDraws:
    """``JointDraws`` for batches of q points against X_fixed (p, d) (or None), whose
    padding rows have 0 in fixed_mask (p,). One set of base samples, (num_samples,
    p + q), is shared by all batches."""
    p = 0 if X_fixed is None or X_fixed.shape[0] == 0 else X_fixed.shape[0]
    z = jnp.asarray(sobol_normal_samples(num_samples, p + q, seed))
    if p == 0:
        return JointDraws(model, None, None, None, None, None, None, z, output=output,
                          sign=sign, block=block)
    z_fixed = z[:, :p]
    mask = ones_mask(X_fixed, fixed_mask)
    mean_fixed, L_fixed = fixed_block(model, X_fixed, mask, output, sign)
    g_fixed = mean_fixed + z_fixed @ L_fixed.T
    shared = model.fixed_joint(X_fixed) if isinstance(model, SharesFixedJoint) else None
    return JointDraws(model, X_fixed, mask, L_fixed, (g_fixed, mean_fixed), shared, z_fixed,
                      z[:, p:], output=output, sign=sign, block=block)


def joint_samples(
    model: eqx.Module,
    X: Array,
    X_fixed: Array | None,
    fixed_mask: Array | None,
    *,
    num_samples: int,
    seed: int,
    output: int,
    sign: float,
    block: int = 128,
) -> tuple[tuple[Array, Array] | None, tuple[Array, Array]]:
    """Sign-adjusted joint posterior draws at fixed points and at each candidate batch.

    X: (b, q, d) candidate batches; X_fixed: (p, d) points in every joint
    (or None); fixed_mask: (p,) 0 for padding rows. One set of base samples,
    (num_samples, p + q), is shared by all batches. Returns
    ((g_fixed (S, p), mean_fixed (p,)) or None, (g_new (b, S, q), mean_new (b, q))).
    """
    draws = joint_draws(model, X_fixed, fixed_mask, q=X.shape[1], num_samples=num_samples,
                        seed=seed, output=output, sign=sign, block=block)
    return draws.fixed, draws(X)


def _masked_max(g: Array, mask: Array) -> Array:
    return jnp.max(jnp.where(mask > 0, g, -jnp.inf), axis=-1)


def _log_improvement(g_new: Array, incumbent: Array, tau_relu: float, tau_max: float) -> Array:
    """log mean_s smooth-max_j smooth-relu(g_new[s, j] - incumbent[s]): (b, S, q), (S,) -> (b,)."""
    li = log_fatplus(g_new - incumbent[None, :, None], tau_relu)
    return logmeanexp(fatmax(li, tau_max, axis=-1), axis=1)


class qLogExpectedImprovement(eqx.Module):
    """log qEI: log E[max(max_j f(x_j) - best, 0)] over a batch of q points (Ament et al., 2023).

    The ReLU is a fat-tailed softplus (temperature tau_relu) and the max over
    the batch a fat-tailed smooth max (tau_max), both taken in log space, so
    the value stays finite and informative far from the incumbent. For q = 1
    it is ``LogExpectedImprovement`` up to Monte-Carlo error.

    model: any surrogate with ``posterior(X, full_cov=True)``; best: the
    incumbent in the output's units; X_pending: (p, d) points proposed but not
    observed (optionally padded, with pending_mask (p,)); output, sign: which
    output and its direction; num_samples, seed: the fixed Sobol base samples;
    block: candidate batches per vmap. X: (b, q, d) or (b, d) -> (b,).
    """

    model: eqx.Module
    best: Array
    X_pending: Array | None = None
    pending_mask: Array | None = None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    num_samples: int = eqx.field(static=True, default=512)
    seed: int = eqx.field(static=True, default=0)
    tau_relu: float = eqx.field(static=True, default=TAU_RELU)
    tau_max: float = eqx.field(static=True, default=TAU_MAX)
    block: int = eqx.field(static=True, default=128)
    log_space: ClassVar[bool] = True

    def prepare(self, q: int = 1) -> "_PreparedLogImprovement":
        """The same acquisition for batches of q points, the pending points' share
        computed once."""
        draws = joint_draws(self.model, self.X_pending, self.pending_mask, q=q,
                            num_samples=self.num_samples, seed=self.seed, output=self.output,
                            sign=self.sign, block=self.block)
        incumbent = jnp.full((self.num_samples,), self.sign * self.best,
                             dtype=draws.z_new.dtype)
        if draws.fixed is not None:
            incumbent = jnp.maximum(incumbent, _masked_max(draws.fixed[0], draws.mask))
        return _PreparedLogImprovement(draws, incumbent, self.tau_relu, self.tau_max)

    def __call__(self, X: Array) -> Array:
        X = _as_batches(X)
        return self.prepare(X.shape[1])(X)


class qLogNoisyExpectedImprovement(eqx.Module):
    """log qNEI: improvement over the best *latent* value at the observed points.

    With noisy observations the best observed y is a poor incumbent (it is
    biased upwards by the noise). Here the incumbent is max_j f(x_j) over
    X_baseline, drawn jointly with the batch, so its uncertainty and its
    correlation with the candidates are both accounted for (Letham et al.,
    2019; log form after Ament et al., 2023). With noiseless observations it
    equals ``qLogExpectedImprovement`` with best = max y.

    model: any surrogate with ``posterior(X, full_cov=True)``; X_baseline:
    (n, d) observed points (at least one real row; pad with baseline_mask);
    X_pending, pending_mask: as in ``qLogExpectedImprovement``; max_baseline:
    keep at most this many baseline points, those most often the best in
    ``likely_best``'s joint draws (None: all; a point never the best there hardly
    moves the incumbent, while each point kept costs every candidate S draws, as
    BoTorch's ``prune_inferior_points``); the other fields as there.
    X: (b, q, d) or (b, d) -> (b,).
    """

    model: eqx.Module
    X_baseline: Array
    baseline_mask: Array | None = None
    X_pending: Array | None = None
    pending_mask: Array | None = None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    num_samples: int = eqx.field(static=True, default=512)
    seed: int = eqx.field(static=True, default=0)
    tau_relu: float = eqx.field(static=True, default=TAU_RELU)
    tau_max: float = eqx.field(static=True, default=TAU_MAX)
    block: int = eqx.field(static=True, default=128)
    max_baseline: int | None = eqx.field(static=True, default=None)
    log_space: ClassVar[bool] = True

    def __check_init__(self):
        if self.X_baseline.ndim != 2 or self.X_baseline.shape[0] == 0:
            raise ValueError(
                f"X_baseline must be (n, d) with n >= 1; got shape {self.X_baseline.shape}"
            )

    def prepare(self, q: int = 1) -> "_PreparedLogImprovement":
        """The same acquisition for batches of q points, the baseline's (and pending
        points') share computed once."""
        X_base, base_mask = self.X_baseline, ones_mask(self.X_baseline, self.baseline_mask)
        if self.max_baseline is not None and X_base.shape[0] > self.max_baseline:
            X_base, base_mask = likely_best(self.model, X_base, base_mask, self.max_baseline,
                                            output=self.output, sign=self.sign, seed=self.seed)
        X_fixed, mask = _concat_fixed(
            [(X_base, base_mask), (self.X_pending, self.pending_mask)]
        )
        draws = joint_draws(self.model, X_fixed, mask, q=q, num_samples=self.num_samples,
                            seed=self.seed, output=self.output, sign=self.sign,
                            block=self.block)
        return _PreparedLogImprovement(draws, _masked_max(draws.fixed[0], draws.mask),
                                       self.tau_relu, self.tau_max)

    def __call__(self, X: Array) -> Array:
        X = _as_batches(X)
        return self.prepare(X.shape[1])(X)


class _PreparedLogImprovement(eqx.Module):
    """log mean_s smooth-max_j smooth-relu(g_j - incumbent_s) over prepared draws."""

    draws: JointDraws
    incumbent: Array
    tau_relu: float = eqx.field(static=True)
    tau_max: float = eqx.field(static=True)
    log_space: ClassVar[bool] = True

    def __call__(self, X: Array) -> Array:
        g, _ = self.draws(_as_batches(X))
        return _log_improvement(g, self.incumbent, self.tau_relu, self.tau_max)


class _BatchMaxAcquisition(eqx.Module):
    """E[max_j u(x_j)] over the batch, minus what the pending points already give."""

    def _utility(self, g: Array, mean: Array) -> Array:
        raise NotImplementedError

    def __call__(self, X: Array) -> Array:
        fixed, (g, mean) = joint_samples(
            self.model, _as_batches(X), self.X_pending, self.pending_mask,
            num_samples=self.num_samples, seed=self.seed, output=self.output, sign=self.sign,
            block=self.block,
        )
        best_new = jnp.max(self._utility(g, mean[:, None, :]), axis=-1)  # (b, S)
        if fixed is None:
            return jnp.mean(best_new, axis=1)
        mask = ones_mask(self.X_pending, self.pending_mask)
        # All-padding pending sets give no offset (and no inf - inf).
        has = jnp.any(mask > 0)
        best_pending = jnp.where(has, _masked_max(self._utility(*fixed), mask), 0.0)  # (S,)
        gain = jnp.where(has, jnp.maximum(best_new, best_pending) - best_pending, best_new)
        return jnp.mean(gain, axis=1)


class qUpperConfidenceBound(_BatchMaxAcquisition):
    """qUCB (Wilson et al., 2017): E[max_j mean_j + sqrt(beta pi / 2) |f_j - mean_j|].

    For q = 1 it equals ``UpperConfidenceBound`` (mean + sqrt(beta) std).
    With pending points P the value is E[max over X u P] - E[max over P].
    Fields as in ``qLogExpectedImprovement``, beta as in UCB.
    X: (b, q, d) or (b, d) -> (b,), in the output's units.
    """

    model: eqx.Module
    beta: float = 4.0
    X_pending: Array | None = None
    pending_mask: Array | None = None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    num_samples: int = eqx.field(static=True, default=512)
    seed: int = eqx.field(static=True, default=0)
    block: int = eqx.field(static=True, default=128)
    log_space: ClassVar[bool] = False

    def _utility(self, g: Array, mean: Array) -> Array:
        return mean + jnp.sqrt(self.beta * jnp.pi / 2.0) * jnp.abs(g - mean)


class qSimpleRegret(_BatchMaxAcquisition):
    """E[max_j f(x_j)] (sign-adjusted): pure exploitation of the batch's best value.

    For q = 1 it is the posterior mean. Fields as in ``qUpperConfidenceBound``
    without beta. X: (b, q, d) or (b, d) -> (b,), in the output's units.
    """

    model: eqx.Module
    X_pending: Array | None = None
    pending_mask: Array | None = None
    output: int = eqx.field(static=True, default=0)
    sign: float = eqx.field(static=True, default=1.0)
    num_samples: int = eqx.field(static=True, default=512)
    seed: int = eqx.field(static=True, default=0)
    block: int = eqx.field(static=True, default=128)
    log_space: ClassVar[bool] = False

    def _utility(self, g: Array, mean: Array) -> Array:
        return g


@eqx.filter_jit
def _thompson(model, candidates, key, q: int, output: int, sign: float) -> Array:
    draws = sign * model.posterior(candidates, full_cov=True).sample(key, q)[:, :, output]

    def pick(taken, draw):
        i = jnp.argmax(jnp.where(taken, -jnp.inf, draw))
        return taken.at[i].set(True), i

    _, chosen = lax.scan(pick, jnp.zeros(candidates.shape[0], dtype=bool), draws)
    return chosen


def thompson_sample(
    model: eqx.Module,
    candidates: Array,
    key: Array,
    q: int = 1,
    *,
    output: int = 0,
    sign: float = 1.0,
) -> Array:
    """Thompson sampling on a finite set: indices (q,) of q distinct candidates.

    Draws q joint posterior functions over candidates: (n, d) and takes the
    argmax of each; a candidate already taken by an earlier draw is skipped,
    so the batch has no repeats (the draw's next best is used). Randomness is
    the diversity of the batch, so no pending-point bookkeeping is needed.
    Costs one (n, n) Cholesky: keep n to a few thousand.
    """
    n = candidates.shape[0]
    if not 1 <= q <= n:
        raise ValueError(f"q must be between 1 and the number of candidates ({n}); got {q}")
    return _thompson(model, jnp.asarray(candidates), key, int(q), int(output), float(sign))


__all__ = [
    "TAU_MAX",
    "TAU_RELU",
    "fatmax",
    "JointDraws",
    "joint_draws",
    "joint_samples",
    "log_fatplus",
    "qLogExpectedImprovement",
    "qLogNoisyExpectedImprovement",
    "qSimpleRegret",
    "qUpperConfidenceBound",
    "thompson_sample",
]
