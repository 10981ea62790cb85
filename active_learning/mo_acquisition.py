"""Multi-objective acquisitions on a surrogate's posterior: qLogEHVI and
qLogNEHVI (Monte Carlo, smoothed in log space), analytic log EHVI, and ParEGO's
scalarised qLogEI, with the smooth log-space building blocks they share.

Convention: every objective is maximised; ``X: (b, q, d)`` holds b candidate
batches of q points (``(b, d)`` is read as q = 1); values are (b,). The cell
decompositions come from :mod:`active_learning.dominated_region`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import solve_triangular

from active_learning.acquisition import fixed_joint, log_h
from active_learning.dominated_region import inclusion_exclusion_subsets, nondominated_cells
from active_learning.objectives import Objectives
from surrogates.numerics import JITTER

__all__ = [
    "MIN_CELLS", "LogExpectedHypervolumeImprovement", "ScalarizedLogEI", "as_batches",
    "log_fatplus", "log_hvi_smooth", "qLogExpectedHypervolumeImprovement",
    "qLogNoisyExpectedHypervolumeImprovement",
]

# ----------------------------------------------------------------------------
# Smooth, log-space building blocks (Ament et al., 2023)

_BIG = 1e10  # stands in for +inf cell bounds, in normalised units
_LOG_EMPTY = -1e3  # log of a zero width: exp underflows, gradients stay finite
_MIN_GAP = 1e-12


def log_fatplus(x: Array, tau: Array | float) -> Array:
    """log of a smooth ReLU with a heavy left tail: tau (softplus(x/tau) + 0.1/(1 + (x/tau)^2)).

    Unlike log softplus, whose slope grows like 1/tau left of zero, the
    Cauchy term decays polynomially so a point with no improvement still gets
    a usable gradient (Ament et al., 2023, "fat" approximations).
    """
    z = jnp.maximum(x / tau, -1e100)
    return jnp.log(tau) + jnp.log(jax.nn.softplus(z) + 0.1 / (1.0 + z * z))


def _log1mexp(x: Array) -> Array:
    """log(1 - exp(x)) for x < 0, accurate on both sides of -log 2."""
    return jnp.where(x > -math.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def _logdiffexp(log_a: Array, log_b: Array) -> Array:
    # Exact inclusion-exclusion keeps a > b; smoothing can close the gap, and a
    # floor keeps the value finite instead of NaN.
    return log_a + _log1mexp(jnp.minimum(log_b - log_a, -_MIN_GAP))


def _logmeanexp(x: Array, axis: int = 0) -> Array:
    return jax.nn.logsumexp(x, axis=axis) - math.log(x.shape[axis])


def log_hvi_smooth(Y: Array, lower: Array, upper: Array, log_weight: Array | None,
                   tau_relu: Array, tau_max: Array) -> Array:
    """Smoothed log hypervolume improvement of q points for one sample.

    Y: (q, m) normalised objectives; lower, upper: (C, m) normalised cells;
    log_weight: (q,) log feasibility of each point or None. Each side length
    min(min_{i in S} y_ik, u_k) - l_k becomes a soft minimum, in log space, of
    log fatplus(y_ik - l_k) and log(u_k - l_k); subsets combine by
    inclusion-exclusion with positive and negative parts kept separately.
    tau_relu, tau_max: scalar temperatures of the soft plus and soft minimum.
    Returns a scalar. With q = 1 and no weight a closed-form soft minimum is
    taken; a zero log weight sends the same point through the general path.
    """
    q = Y.shape[0]
    members, odd = inclusion_exclusion_subsets(q)
    log_improvement = log_fatplus(Y[None] - lower[:, None], tau_relu)  # (C, q, m)
    width = jnp.minimum(upper - lower, _BIG)
    positive = width > 0
    log_width = jnp.where(positive, jnp.log(jnp.where(positive, width, 1.0)), _LOG_EMPTY)
    if q == 1 and log_weight is None:
        # One point: the soft minimum of two terms in closed form, the same value as
        # the logsumexp below with one exponential and one log1p instead of two and a
        # log (this is the innermost loop of every batch-of-one proposal).
        a, b = log_improvement[:, 0], log_width  # (C, m)
        log_side = jnp.minimum(a, b) - tau_max * jnp.log1p(jnp.exp(-jnp.abs(a - b) / tau_max))
        return jax.nn.logsumexp(jnp.sum(log_side, axis=-1))
    terms = jnp.concatenate([log_improvement, log_width[:, None]], axis=1)  # (C, q+1, m)
    select = np.concatenate([members, np.ones((members.shape[0], 1), bool)], axis=1)
    log_side = -tau_max * jax.nn.logsumexp(
        -terms[:, None] / tau_max, axis=2, where=select[None, :, :, None]
    )  # (C, P, m)
    log_area = jnp.sum(log_side, axis=-1)  # (C, P)
    if log_weight is not None:
        log_area = log_area + jnp.sum(jnp.where(members, log_weight[None], 0.0), axis=1)
    if q == 1:
        per_cell = log_area[:, 0]
    else:
        log_plus = jax.nn.logsumexp(log_area, axis=1, where=odd[None])
        log_minus = jax.nn.logsumexp(log_area, axis=1, where=~odd[None])
        per_cell = _logdiffexp(log_plus, log_minus)
    return jax.nn.logsumexp(per_cell)


# ----------------------------------------------------------------------------
# Acquisitions


def _float_array(value) -> Array:
    # A float64 array leaf, not a Python float, which filter_jit would treat as
    # static: a new temperature or incumbent then reuses the compiled program.
    return jnp.asarray(value, jnp.float64)


def as_batches(X: Array) -> Array:
    """(b, d) -> (b, 1, d); (b, q, d) unchanged."""
    X = jnp.asarray(X)
    if X.ndim == 2:
        return X[:, None, :]
    if X.ndim != 3:
        raise ValueError(f"X must be (b, d) or (b, q, d); got shape {X.shape}")
    return X


_BLOCK = 32


def _objective_samples(model, X: Array, key: Array, num_samples: int,
                       objectives: Callable | None) -> Array:
    samples = model.posterior(X, full_cov=True).sample(key, num_samples)  # (s, q, m_model)
    return samples if objectives is None else objectives(samples)


@eqx.filter_jit
def _objective_means(model, X: Array, objectives: Callable | None) -> Array:
    mean = model.posterior(X).mean
    return mean if objectives is None else objectives(mean)


def _scale_from(Y: Array, ref: Array, mask: Array | None) -> Array:
    """Per-objective span of the data above/below ref, so that the smoothing
    temperatures are relative to the problem's units."""
    dist = jnp.abs(Y - ref)
    if mask is not None:
        dist = jnp.where(jnp.asarray(mask, bool)[:, None], dist, 0.0)
    span = jnp.max(dist, axis=0)
    return jnp.where(span > 0, span, 1.0)


def _normalised(f: Array, objectives: Callable | None, ref: Array, scale: Array) -> Array:
    Y = f if objectives is None else objectives(f)
    return (Y - ref) / scale


@eqx.filter_jit
def _nehvi_baseline(model, X_baseline: Array, mask: Array, key: Array, num_samples: int,
                    objectives: Callable | None, ref: Array, scale: Array):
    """Cholesky factors (m_model, n, n) of the baseline's posterior, its base samples
    (S, m_model, n) and the non-dominated cells (S, C, m) of each sampled front.

    Padded rows are decoupled (identity rows scaled like the data), so they
    neither condition anything nor enter a front.
    """
    n = X_baseline.shape[0]
    post = model.posterior(X_baseline, full_cov=True)
    m_model = post.mean.shape[1]
    z = jax.random.normal(key, (num_samples, m_model, n))
    w = mask.astype(post.mean.dtype)
    var = jnp.maximum(jnp.max(post.variance * w[:, None], axis=0), 1e-300)  # (m_model,)
    cov = (post.covariance * (w[:, None] * w[None, :])[None]
           + jax.vmap(jnp.diag)((1.0 - w)[None] * var[:, None]))
    L = jnp.linalg.cholesky(cov + JITTER * var[:, None, None] * jnp.eye(n))
    f = post.mean[None] + jnp.einsum("mij,smj->sim", L, z)
    zero = jnp.zeros_like(ref)
    lower, upper = jax.vmap(lambda y: nondominated_cells(y, zero, mask))(
        _normalised(f, objectives, ref, scale))
    return L, z, lower, upper


# Cells kept per sample: the non-empty ones padded to a power of two, at least
# this many. The acquisition's cost is linear in the cells; each new count
# compiles once, which costs more than the cells it saves on small fronts, so
# the floor keeps the smallest fronts from compiling twice for little gain.
MIN_CELLS = 16


def _trim_cells(lower: Array, upper: Array,
                min_cells: int = MIN_CELLS) -> tuple[Array, Array]:
    """Drop the empty cells that padding and dominated points leave, keeping a power
    of two (at least ``min_cells``) per sample, so that the acquisition's cost follows
    the sampled fronts' size instead of n (n (n + 1) + 1 cells for three objectives).
    Empty cells add exactly nothing (their log width underflows), so the values
    do not change. Under a trace (no concrete values) the cells stay as they are."""
    if isinstance(lower, jax.core.Tracer) or isinstance(upper, jax.core.Tracer):
        return lower, upper
    lo, up = np.asarray(lower), np.asarray(upper)
    nonempty = np.all(up > lo, axis=-1)  # (S, C)
    count = int(nonempty.sum(axis=1).max(initial=1))
    keep = min(lo.shape[1], max(min_cells, 1 << (count - 1).bit_length()))
    order = np.argsort(~nonempty, axis=1, kind="stable")[:, :keep]
    take = lambda a: np.take_along_axis(a, order[..., None], axis=1)  # noqa: E731
    return jnp.asarray(take(lo)), jnp.asarray(take(up))


class qLogExpectedHypervolumeImprovement(eqx.Module):
    """qLogEHVI: log E[HVI(f(X_1..q))] over a fixed (observed) Pareto front.

    MC over joint posterior samples with fixed base samples (``key``), the
    front's non-dominated cells precomputed once, and smooth log-space side
    lengths (Ament et al., 2023). Use qLogNEHVI when observations are noisy.

    model: surrogate with ``posterior(X, full_cov=True).sample``; Y: (n, m)
    observed maximised objectives that define the front; ref_point: (m,);
    key: base-sample key; mask: (n,) bool for padded Y; objectives: map from
    model outputs (..., m_model) to maximised objectives (..., m), default all
    outputs; X_pending: (p, d) points already chosen, joined to each batch
    (cost grows as 2^(q+p)). Temperatures are in units of the span of Y
    above ref. X: (b, d) or (b, q, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    cell_lower: Array
    cell_upper: Array
    ref_point: Array
    scale: Array
    key: Array
    X_pending: Array | None
    objectives: Callable | None
    tau_relu: Array
    tau_max: Array
    num_samples: int = eqx.field(static=True)

    def __init__(self, model, Y, ref_point, key, *, mask=None, objectives=None,
                 X_pending=None, num_samples: int = 128, tau_relu: float = 1e-6,
                 tau_max: float = 1e-2):
        Y = jnp.asarray(Y, jnp.float64)
        ref = jnp.asarray(ref_point, jnp.float64)
        self.scale = _scale_from(Y, ref, mask)
        lower, upper = nondominated_cells((Y - ref) / self.scale, jnp.zeros_like(ref), mask)
        self.cell_lower, self.cell_upper = lower, upper
        self.model, self.ref_point, self.key = model, ref, key
        self.X_pending = None if X_pending is None else jnp.asarray(X_pending)
        self.objectives = objectives
        self.num_samples = num_samples
        self.tau_relu, self.tau_max = _float_array(tau_relu), _float_array(tau_max)

    def __call__(self, X: Array) -> Array:
        return jax.vmap(self._one)(as_batches(X))

    def _one(self, Xq: Array) -> Array:
        if self.X_pending is not None:
            Xq = jnp.concatenate([self.X_pending, Xq])
        Y = _objective_samples(self.model, Xq, self.key, self.num_samples, self.objectives)
        Y = (Y - self.ref_point) / self.scale
        log_hvi = jax.vmap(
            lambda y: log_hvi_smooth(y, self.cell_lower, self.cell_upper, None,
                                      self.tau_relu, self.tau_max)
        )(Y)
        return _logmeanexp(log_hvi) + jnp.sum(jnp.log(self.scale))


class qLogNoisyExpectedHypervolumeImprovement(eqx.Module):
    """qLogNEHVI (Daulton et al., 2021; log-space smoothing of Ament et al., 2023).

    For each joint posterior sample of f at (X_baseline, X_pending, X_1..q),
    the Pareto front of the sampled baseline values defines the cells, and the
    q candidates' smoothed log HVI over them is averaged (log-mean-exp) over
    samples. Fixed base samples (``key``) make it a deterministic, smooth
    function of X. Pending points join the baseline, as in BoTorch.

    model: surrogate protocol; X_baseline: (n, d) observed inputs (padded, with
    baseline_mask: (n,) bool); ref_point: (m,); key: base-sample key;
    objectives: model outputs -> maximised objectives; X_pending: (p, d);
    min_cells: cells kept per sample at least (the empty ones are dropped down
    to a power of two no smaller; as many as the decomposition has keeps all).
    Cost per batch: one joint posterior over n + p + q points, and per sample
    a box decomposition with O(n) cells for m = 2, O(n^2) for m = 3, times
    2^q - 1 subsets: keep q <= 4 (greedy batches beyond) and n moderate
    (pass the observed Pareto points and their neighbours when n is large).
    X: (b, d) or (b, q, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    X_baseline: Array
    baseline_mask: Array
    ref_point: Array
    scale: Array
    key: Array
    objectives: Callable | None
    tau_relu: Array
    tau_max: Array
    L_base: Array
    z_base: Array
    cell_lower: Array
    cell_upper: Array
    num_samples: int = eqx.field(static=True)

    def __init__(self, model, X_baseline, ref_point, key, *, baseline_mask=None,
                 objectives=None, X_pending=None, num_samples: int = 64,
                 tau_relu: float = 1e-6, tau_max: float = 1e-2, min_cells: int = MIN_CELLS):
        X_baseline = jnp.asarray(X_baseline, jnp.float64)
        mask = (jnp.ones(X_baseline.shape[0], bool) if baseline_mask is None
                else jnp.asarray(baseline_mask, bool))
        if X_pending is not None:
            X_pending = jnp.asarray(X_pending, jnp.float64)
            X_baseline = jnp.concatenate([X_baseline, X_pending])
            mask = jnp.concatenate([mask, jnp.ones(X_pending.shape[0], bool)])
        ref = jnp.asarray(ref_point, jnp.float64)
        self.scale = _scale_from(_objective_means(model, X_baseline, objectives), ref, mask)
        self.model, self.X_baseline, self.baseline_mask = model, X_baseline, mask
        self.ref_point, self.key, self.objectives = ref, key, objectives
        self.num_samples = num_samples
        self.tau_relu, self.tau_max = _float_array(tau_relu), _float_array(tau_max)
        # The baseline's draws do not depend on the candidates: its block of the
        # joint is factored, sampled and box-decomposed once here and shared by
        # every evaluation (BoTorch's cached root and box decompositions). The
        # candidates' draws continue the same Cholesky factor of the joint.
        self.L_base, self.z_base, lower, upper = _nehvi_baseline(
            model, X_baseline, mask, key, num_samples, objectives, ref, self.scale)
        self.cell_lower, self.cell_upper = _trim_cells(lower, upper, min_cells)

    def __call__(self, X: Array) -> Array:
        X = as_batches(X)
        n, q = self.X_baseline.shape[0], X.shape[1]
        m_model = self.z_base.shape[1]
        z_new = jax.random.normal(jax.random.fold_in(self.key, 1),
                                  (self.num_samples, m_model, q))
        mask = self.baseline_mask.astype(self.X_baseline.dtype)
        blocks = fixed_joint(self.model, self.X_baseline)

        def one(Xq: Array) -> Array:
            mean_q, var_q, cross, cov_q = blocks(Xq)
            cross = cross * mask[None, :, None]  # (m_model, n, q)
            C = jax.vmap(lambda L, B: solve_triangular(L, B, lower=True))(self.L_base, cross)
            schur = cov_q - jnp.einsum("mnq,mnr->mqr", C, C)
            var_new = jnp.max(var_q, axis=0)  # (m_model,)
            L_new = jnp.linalg.cholesky(schur + JITTER * var_new[:, None, None]
                                        * jnp.eye(q))
            f_new = (mean_q[None] + jnp.einsum("mnq,smn->sqm", C, self.z_base)
                     + jnp.einsum("mij,smj->sim", L_new, z_new))
            values = jax.vmap(lambda y, lo, up: log_hvi_smooth(
                y, lo, up, None, self.tau_relu, self.tau_max))(
                _normalised(f_new, self.objectives, self.ref_point, self.scale),
                self.cell_lower, self.cell_upper)
            return _logmeanexp(values) + jnp.sum(jnp.log(self.scale))

        # Blocks of candidates: (b, samples, cells, m) intermediates of a whole
        # raw-sample screen would stream through memory several times.
        return jax.vmap(one)(X) if X.shape[0] <= _BLOCK else lax.map(one, X, batch_size=_BLOCK)



def _distinct_sides(lower: Array, upper: Array) -> tuple[Array, Array, Array]:
    """Per objective, the distinct (lower, upper) sides of the cells, padded to a power of
    two (at least 8) with a harmless [0, 1), and each cell's index into them: (m, P),
    (m, P), (C, m). Under a trace (no concrete values) every cell is its own side."""
    C, m = lower.shape
    if isinstance(lower, jax.core.Tracer) or isinstance(upper, jax.core.Tracer):
        return lower.T, upper.T, jnp.tile(jnp.arange(C)[:, None], (1, m))
    lo, up = np.asarray(lower), np.asarray(upper)
    sides, index = [], np.zeros((C, m), np.int32)
    for j in range(m):
        pairs, inverse = np.unique(np.stack([lo[:, j], up[:, j]], axis=1), axis=0,
                                   return_inverse=True)
        sides.append(pairs)
        index[:, j] = inverse.reshape(-1)
    P = max(8, 1 << (max(len(p) for p in sides) - 1).bit_length())
    pad = lambda p: np.concatenate([p, np.tile([[0.0, 1.0]], (P - len(p), 1))])  # noqa: E731
    stacked = np.stack([pad(p) for p in sides])  # (m, P, 2)
    return jnp.asarray(stacked[..., 0]), jnp.asarray(stacked[..., 1]), jnp.asarray(index)


class LogExpectedHypervolumeImprovement(eqx.Module):
    """Analytic log EHVI of one point, for independently modelled objectives.

    With independent Gaussian objectives Y_j ~ N(mu_j, sigma_j^2) the expected
    hypervolume improvement factorises per non-dominated cell [l, u) of the front
    (Emmerich et al., 2006; Yang et al., 2019):

        E[HVI] = sum_c prod_j E[clip(Y_j, l_cj, u_cj) - l_cj]
               = sum_c prod_j sigma_j (h((mu_j - l_cj) / sigma_j) - h((mu_j - u_cj) / sigma_j)),

    h(z) = phi(z) + z Phi(z), evaluated in log space (``log_h`` and a log
    difference), so that points far from improving keep a finite value and a
    gradient. No Monte-Carlo samples: one posterior per candidate and m x cells
    closed forms, where qLogNEHVI draws 64 joint samples over the baseline.
    The front is the posterior mean at the observed points (noise-free
    observations: their values), fixed while the candidate varies; use
    qLogNEHVI for batches scored jointly or when the front itself is uncertain.

    model: surrogate with ``posterior(X)`` (mean, variance per output);
    X_baseline: (n, d) observed inputs, baseline_mask: (n,) bool for padding;
    ref_point: (m,) in maximised objective units; outputs, signs: the model output
    and direction (+1 maximise, -1 minimise) of each objective (no targets: they
    are not Gaussian). X: (b, d) or (b, 1, d) -> (b,), in log units of hypervolume.
    """

    model: eqx.Module
    cell_nonempty: Array  # (C,) False for padding and emptied cells
    side_lower: Array  # (m, P) the distinct [lower, upper) sides per objective
    side_upper: Array
    side_index: Array  # (C, m) which side each cell has along each objective
    ref_point: Array
    scale: Array
    outputs: tuple[int, ...] = eqx.field(static=True)
    signs: tuple[float, ...] = eqx.field(static=True)

    def __init__(self, model, X_baseline, ref_point, *, outputs: Sequence[int],
                 signs: Sequence[float], baseline_mask=None):
        X_baseline = jnp.asarray(X_baseline, jnp.float64)
        mask = (jnp.ones(X_baseline.shape[0], bool) if baseline_mask is None
                else jnp.asarray(baseline_mask, bool))
        self.outputs, self.signs = tuple(int(o) for o in outputs), tuple(float(s) for s in signs)
        if len(self.outputs) not in (2, 3) or len(self.signs) != len(self.outputs):
            raise ValueError(f"outputs: got {len(self.outputs)} objectives with"
                             f" {len(self.signs)} signs; expected 2 or 3 of each")
        ref = jnp.asarray(ref_point, jnp.float64)
        objectives = Objectives(outputs=self.outputs, signs=self.signs)
        front = _objective_means(model, X_baseline, objectives)
        self.scale = _scale_from(front, ref, mask)
        lower, upper = nondominated_cells((front - ref) / self.scale, jnp.zeros_like(ref), mask)
        lower, upper = _trim_cells(lower[None], upper[None])
        self.cell_nonempty = jnp.all(upper[0] > lower[0], axis=-1)
        self.side_lower, self.side_upper, self.side_index = _distinct_sides(lower[0], upper[0])
        self.model, self.ref_point = model, ref

    def __call__(self, X: Array) -> Array:
        X = as_batches(X)
        if X.shape[1] != 1:
            raise ValueError(f"X: got q = {X.shape[1]} points per batch; analytic EHVI"
                             " scores one (use qLogNEHVI for joint batches)")
        post = self.model.posterior(X[:, 0])
        cols = jnp.asarray(self.outputs)
        signs = jnp.asarray(self.signs)
        mu = (signs * post.mean[:, cols] - self.ref_point) / self.scale  # (b, m)
        sigma = jnp.sqrt(jnp.maximum(post.variance[:, cols], 1e-300)) / self.scale
        # The closed forms per distinct side (O(n) per objective), then per cell a
        # sum of m of them: cells number O(n^2) for three objectives.
        lo, up = self.side_lower[None], self.side_upper[None]  # (1, m, P)
        bounded = jnp.isfinite(up)
        z_lo = (mu[:, :, None] - lo) / sigma[:, :, None]
        # Clamp with where: an unbounded side contributes h(-inf) = 0, and its
        # branch must carry no gradient.
        z_up = (mu[:, :, None] - jnp.where(bounded, up, 0.0)) / sigma[:, :, None]
        log_lo = log_h(z_lo)
        log_up = jnp.where(bounded, log_h(jnp.where(bounded, z_up, 0.0)), -jnp.inf)
        side = jnp.log(sigma)[:, :, None] + _logdiffexp(log_lo, log_up)  # (b, m, P)
        m = side.shape[1]
        per_cell = sum(side[:, j, self.side_index[:, j]] for j in range(m))  # (b, C)
        per_cell = jnp.where(self.cell_nonempty, per_cell, -jnp.inf)
        return jax.nn.logsumexp(per_cell, axis=-1) + jnp.sum(jnp.log(self.scale))


class ScalarizedLogEI(eqx.Module):
    """MC log expected improvement of a scalarisation of joint samples.

    value = log E[max_i max(g(f(x_i)) - best, 0)], g: (..., m_model) -> (...)
    e.g. ``ChebyshevScalarization`` (ParEGO on a multi-output model: a fresh
    ``sample_simplex`` weight each iteration) or ``TargetObjective``. A
    scalarisation of Gaussian outputs is not Gaussian, hence samples.
    model: surrogate protocol; best: () the best g over the observations;
    key: base-sample key; tau_relu: smoothing in units of g; tau_max: soft
    max over the q points in log space. X: (b, d) or (b, q, d) -> (b,).
    """

    model: eqx.Module
    scalarization: Callable
    best: Array = eqx.field(converter=_float_array)
    key: Array
    num_samples: int = eqx.field(static=True, default=128)
    tau_relu: Array = eqx.field(default=1e-6, converter=_float_array)
    tau_max: Array = eqx.field(default=1e-2, converter=_float_array)

    def __call__(self, X: Array) -> Array:
        return jax.vmap(self._one)(as_batches(X))

    def _one(self, Xq: Array) -> Array:
        g = _objective_samples(self.model, Xq, self.key, self.num_samples, self.scalarization)
        log_improvement = log_fatplus(g - self.best, self.tau_relu)  # (s, q)
        per_sample = self.tau_max * jax.nn.logsumexp(log_improvement / self.tau_max, axis=1)
        return _logmeanexp(per_sample)

