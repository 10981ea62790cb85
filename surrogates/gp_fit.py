"""MAP hyperparameters of an exact GP: restarts, the screening grid and the
subset cascade, each output's fit in one compiled L-BFGS loop.

The objective is the negative log marginal likelihood minus the log prior
(:mod:`surrogates.gp_likelihood`, :mod:`surrogates.gp_hyperparameters`).
Shapes: ``N`` padded rows, ``d`` inputs, one output at a time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.flatten_util import ravel_pytree

import surrogates.lbfgs as lbfgs
from surrogates.gp_hyperparameters import LOG_NOISE_PRIOR, GPHyperparameters, log_prior
from surrogates.gp_likelihood import nll_grad, nll_value
from surrogates.kernels import Kernel

__all__ = ["SCREEN_MIN_N", "SUBSET_MIN_CAPACITY", "fit_one_output", "map_restarts",
           "prior_median", "screening_grid"]


def prior_median(kernel: Kernel, d: int, learn_noise: bool,
                 noise_prior: tuple[float, float] = LOG_NOISE_PRIOR) -> GPHyperparameters:
    """The hyperparameters at their prior medians, for inputs of dimension ``d``:
    the kernel's initial parameters and the noise prior's median (scalars and
    per-dimension arrays of one output)."""
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
    median = prior_median(kernel, d, warm.learn_noise, warm.noise_prior)
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
# Below SCREEN_MIN_N observations the medians are a fine start, and small
# fits skip the grid's factorisations.
SCREEN_MIN_N = 64
_SCREEN_LENGTHSCALE_SHIFTS = (0.0, -1.0, -2.0, -3.0)
_SCREEN_LOG_NOISE = (-5.0, -2.0)  # after the noise prior's median


def screening_grid(median: GPHyperparameters) -> GPHyperparameters:
    """The starts a fit of ``SCREEN_MIN_N`` rows or more screens before its restarts:
    length-scales shifted down from the prior ``median`` (four shifts, in log
    units) crossed with three noise levels, stacked on a leading (12,) axis."""
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
SUBSET_MIN_CAPACITY = 1024
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
        v, aux = nll_value(theta, X, y, mask, noise)
        return v - log_prior(theta), aux

    @jax.jit
    def grad(theta, aux):
        g = nll_grad(theta, X, y, mask, noise, *aux)
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
        grid = screening_grid(prior_median(warm.kernel, d, warm.learn_noise,
                                             warm.noise_prior))
        losses = lax.map(lambda t: value(t)[0], grid)
        best = jnp.argmin(jnp.where(jnp.isfinite(losses), losses, jnp.inf))
        return jax.tree.map(lambda a: a[best], grid)

    theta0 = _initial_hyperparameters(key, restarts, d, warm)
    first = lax.cond(screen, screened, lambda: jax.tree.map(lambda a: a[0], theta0))
    theta0 = jax.tree.map(lambda a, b: a.at[0].set(b), theta0, first)
    out = map_restarts(
        lambda t: lbfgs.minimize_with_aux(value, grad, t, max_iter=max_iter, gtol=_gtol(mask),
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


def _refine(theta, data, max_iter: int, history=None, pass_on: bool = True):
    """L-BFGS from ``theta`` on ``data`` (X, y, mask, noise) to the refinement's
    tolerance, from the curvature pairs ``history`` (None: none); with ``pass_on``,
    also the pairs it ends with, for the next stage. Without them the last step's
    gradient is not needed and not computed. A diverged refinement keeps ``theta``."""
    value, grad = _objective(*data)
    out = lbfgs.minimize_with_aux(
        value, grad, theta, max_iter=max_iter, gtol=_gtol(data[2]), ftol=_REFINE_FTOL,
        history=history, return_history=pass_on, interpolate=True,
        skip_final_gradient=not pass_on)
    refined, loss = out[0], out[1]
    ok = jnp.isfinite(loss)
    theta = jax.tree.map(lambda a, b: jnp.where(ok, a, b), refined, theta)
    return (theta, out[3]) if pass_on else theta


def fit_one_output(X, y, mask, noise, key, warm, screen, restarts: int, max_iter: int,
                   refine_only: bool = False):
    """MAP hyperparameters of one output: all restarts in one compiled loop.

    refine_only (static): refine ``warm`` alone on all rows, with the refinement's
    stopping rule (``_REFINE_FTOL``), whatever the capacity: a campaign's refit after a
    few more observations, which starts near the optimum.

    screen: (traced bool, the same for all outputs, so that ``cond`` stays a
    branch under the outputs' vmap) whether restart 0 starts at the best point
    of a small screening grid instead of ``warm``. From a capacity of
    ``SUBSET_MIN_CAPACITY`` rows (a static choice: one program a bucket), the
    restarts run on a random quarter of the rows and the winner is refined on
    a half, then on all rows, from one start each; with a warm start (screen
    false) only the last refinement runs, from ``warm``.
    """
    N = X.shape[0]
    if refine_only:
        return _refine(warm, (X, y, mask, noise), max_iter,
                       lbfgs.empty_history(ravel_pytree(warm)[0].shape[0]), pass_on=False)
    if N < SUBSET_MIN_CAPACITY:
        return _best_of_restarts(X, y, mask, noise, key, warm, screen, restarts, max_iter)
    k_rows, key = jax.random.split(key)
    # Random observed rows first, nested (top_k sorts by the random score);
    # padded rows only if fewer are observed (their mask keeps them out).
    score = jnp.where(mask > 0, jax.random.uniform(k_rows, mask.shape), -1.0)
    rows = lax.top_k(score, N // 2)[1]

    def subset(r):
        return X[r], y[r], mask[r], None if noise is None else noise[r]

    def refine(theta, data, history=None, pass_on=True):
        return _refine(theta, data, max_iter, history, pass_on)

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
        screen, cascade, lambda: (warm, lbfgs.empty_history(ravel_pytree(warm)[0].shape[0])))
    return refine(theta, (X, y, mask, noise), history, pass_on=False)
