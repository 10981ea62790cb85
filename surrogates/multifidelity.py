"""Multi-fidelity GP: autoregressive co-kriging (Kennedy & O'Hagan, 2000).

Cheap fidelities (simulations, coarse models, screening assays) are linked to
the expensive one (the lab, the plant) by

    f_0(x) = delta_0(x),   f_l(x) = rho_{l-1} f_{l-1}(x) + delta_l(x),

with independent GPs delta_l. Unrolled, f_l = sum_{j <= l} a_j(l) delta_j
with a_j(l) = prod_{k=j}^{l-1} rho_k, which is a linear coregionalisation
model whose B_j = var_j a_j a_j^T are rank one and lower-triangular in the
fidelity order. So the model is the multi-task GP of ``surrogates.multitask``
with this parameterisation of its task covariances; data at different
fidelities may be nested or not. All hyperparameters (rho, every delta's
length-scales and variance, per-fidelity noise and mean) are fitted jointly
by MAP.

The cost of one evaluation at each fidelity rides along as static metadata
for cost-aware acquisitions.

Shapes: ``n`` observations, ``d`` inputs, ``L`` fidelities (0 cheapest,
L - 1 the target), ``q`` query points. One output.
"""

from __future__ import annotations

from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from surrogates.gp import Posterior
from surrogates.multitask import (
    LOG_NOISE_PRIOR,
    MEAN_PRIOR,
    NOISE_FLOOR,
    LCMParameters,
    MultiTaskGP,
    TaskView,
    build_model,
    lengthscale_prior,
    map_estimate,
    negative_log_posterior,
    normal_logpdf,
    pad_tasks,
    scale_data,
)

# Standardised units: the cheapest level carries most of the signal, each
# discrepancy is a priori smaller, and rho is near one unless the data differ.
_LOG_BASE_VARIANCE_PRIOR = (0.0, 1.0)
_LOG_DELTA_VARIANCE_PRIOR = (-2.0, 1.5)
_RHO_PRIOR = (1.0, 1.0)


class AutoregressiveHyperparameters(eqx.Module):
    """Unconstrained hyperparameters of the L-level autoregressive model.

    log_lengthscale: (L, d) of delta_0..delta_{L-1}; log_variance: (L,);
    rho: (L - 1,) scale from level l to l + 1; log_noise: (L,) with
    noise = NOISE_FLOOR + exp(log_noise); mean: (L,) per fidelity.
    """

    log_lengthscale: Array
    log_variance: Array
    rho: Array
    log_noise: Array
    mean: Array

    def coefficients(self) -> Array:
        """A[j, l] = prod_{k=j}^{l-1} rho_k for l >= j, else 0: (L, L)."""
        L = self.log_variance.shape[-1]
        rows = []
        for j in range(L):  # L is a handful of levels, fixed at trace time
            coef = [jnp.zeros(())] * j + [jnp.ones(())]
            for level in range(j + 1, L):
                coef.append(coef[-1] * self.rho[level - 1])
            rows.append(jnp.stack(coef))
        return jnp.stack(rows)

    def to_lcm(self) -> LCMParameters:
        A = self.coefficients()
        B = jnp.exp(self.log_variance)[:, None, None] * A[:, :, None] * A[:, None, :]
        return LCMParameters(
            lengthscale=jnp.exp(self.log_lengthscale), coregionalisation=B,
            noise=NOISE_FLOOR + jnp.exp(self.log_noise), mean=self.mean,
        )

    def log_prior(self) -> Array:
        loc, scale = lengthscale_prior(self.log_lengthscale.shape[-1])
        return (
            jnp.sum(normal_logpdf(self.log_lengthscale, loc, scale))
            + normal_logpdf(self.log_variance[0], *_LOG_BASE_VARIANCE_PRIOR)
            + jnp.sum(normal_logpdf(self.log_variance[1:], *_LOG_DELTA_VARIANCE_PRIOR))
            + jnp.sum(normal_logpdf(self.rho, *_RHO_PRIOR))
            + jnp.sum(normal_logpdf(self.log_noise, *LOG_NOISE_PRIOR))
            + jnp.sum(normal_logpdf(self.mean, *MEAN_PRIOR))
        )


class MultiFidelityGP(eqx.Module):
    """A fitted autoregressive multi-fidelity GP.

    gp: the equivalent coregionalised GP (task = fidelity); costs: (L,) cost
    of one evaluation per fidelity, static. ``posterior`` predicts the
    highest fidelity unless told otherwise.
    """

    gp: MultiTaskGP
    costs: tuple[float, ...] = eqx.field(static=True)

    @property
    def num_fidelities(self) -> int:
        return self.gp.num_tasks

    @property
    def highest(self) -> int:
        return self.num_fidelities - 1

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def hyperparameters(self) -> AutoregressiveHyperparameters:
        return self.gp.hyperparameters

    @property
    def rho(self) -> Array:
        """Scale factors between consecutive fidelities, (L - 1,), in standardised units
        (all fidelities share one standardisation, so these are also the raw-unit ratios)."""
        return self.gp.hyperparameters.rho

    def posterior(self, Xq: Array, full_cov: bool = False, fidelity=None) -> Posterior:
        """Latent posterior of ``fidelity`` (default the highest) at Xq: (q, d).

        fidelity: an int, or (q,) ints for a joint posterior across fidelities.
        """
        return self.gp.posterior(Xq, full_cov=full_cov,
                                 task=self.highest if fidelity is None else fidelity)

    def for_fidelity(self, fidelity: int) -> TaskView:
        """One fidelity behind the plain protocol ``posterior(Xq, full_cov)``."""
        return self.gp.for_task(fidelity)

    def condition(self, Xnew: Array, Ynew: Array, fidelity=None) -> "MultiFidelityGP":
        """Conditioned on extra observations at ``fidelity`` (default the highest)."""
        f = self.highest if fidelity is None else fidelity
        return MultiFidelityGP(self.gp.condition(Xnew, Ynew, task=f), self.costs)


def _initial_hyperparameters(key, restarts: int, d: int, L: int,
                             warm: AutoregressiveHyperparameters | None):
    loc, _ = lengthscale_prior(d)
    log_var0 = jnp.concatenate([jnp.zeros(1), jnp.full((L - 1,), _LOG_DELTA_VARIANCE_PRIOR[0])])
    first = warm if warm is not None else AutoregressiveHyperparameters(
        log_lengthscale=jnp.full((L, d), loc), log_variance=log_var0,
        rho=jnp.full((L - 1,), _RHO_PRIOR[0]), log_noise=jnp.full((L,), LOG_NOISE_PRIOR[0]),
        mean=jnp.zeros(L),
    )
    k1, k2, k3, k4 = jax.random.split(key, 4)
    drawn = AutoregressiveHyperparameters(
        log_lengthscale=loc + jax.random.normal(k1, (restarts, L, d)),
        log_variance=log_var0 + 0.5 * jax.random.normal(k2, (restarts, L)),
        rho=_RHO_PRIOR[0] + 0.5 * jax.random.normal(k3, (restarts, L - 1)),
        log_noise=LOG_NOISE_PRIOR[0] + jax.random.normal(k4, (restarts, L)),
        mean=jnp.zeros((restarts, L)),
    )
    return jax.tree.map(lambda a, b: b.at[0].set(a), first, drawn)


@partial(jax.jit, static_argnames=("num_fidelities", "restarts", "max_iter"))
def _fit(X, y, fidelity, mask, lower, span, key, warm, num_fidelities: int, restarts: int,
         max_iter: int) -> MultiTaskGP:
    Z, ys, loc, scale = scale_data(X, y, mask, lower, span)
    theta0 = _initial_hyperparameters(key, restarts, X.shape[1], num_fidelities, warm)
    theta = map_estimate(lambda th: negative_log_posterior(th, Z, fidelity, ys, mask), theta0,
                         max_iter)
    return build_model(theta, Z, fidelity, ys, mask, lower, span, loc, scale,
                       num_fidelities - 1)


def _costs(costs, L: int) -> tuple[float, ...]:
    if costs is None:
        return (1.0,) * L
    costs = tuple(float(c) for c in costs)
    if len(costs) != L or not all(np.isfinite(c) and c > 0 for c in costs):
        raise ValueError(f"costs must be {L} positive numbers, one per fidelity; got {costs}")
    return costs


def _check_levels(L: int):
    if L < 2:
        raise ValueError(f"a multi-fidelity GP needs at least 2 fidelities; got {L}")


def fit_multifidelity_gp(
    X,
    Y,
    fidelity,
    *,
    key: Array,
    costs=None,
    num_fidelities: int | None = None,
    bounds=None,
    capacity: int | None = None,
    restarts: int = 4,
    max_iter: int = 100,
    warm_start: AutoregressiveHyperparameters | None = None,
) -> MultiFidelityGP:
    """Fit the autoregressive multi-fidelity GP by MAP (all levels jointly).

    X: (n, d) inputs of all fidelities; Y: (n,) or (n, 1) outputs, NaN where
    missing; fidelity: (n,) ints, 0 the cheapest, L - 1 the target; key:
    PRNG key for the restarts; costs: (L,) positive cost per evaluation
    (default all 1); num_fidelities: L (default max + 1); bounds: (2, d)
    input bounds (default the data's range); capacity: rows to pad to;
    restarts: L-BFGS starts; warm_start: an earlier fit's hyperparameters.
    """
    Xp, yp, fp, mask, lower, span, L = pad_tasks(X, Y, fidelity, bounds, capacity,
                                                 num_fidelities)
    _check_levels(L)
    costs = _costs(costs, L)
    if restarts < 1:
        raise ValueError(f"restarts must be at least 1; got {restarts}")
    if warm_start is not None:
        warm_start = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), warm_start)
        if warm_start.log_lengthscale.shape != (L, Xp.shape[1]):
            raise ValueError(f"warm_start length-scales have shape "
                             f"{warm_start.log_lengthscale.shape}; expected {(L, Xp.shape[1])}")
    gp = _fit(jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(fp), jnp.asarray(mask),
              jnp.asarray(lower), jnp.asarray(span), key, warm_start, num_fidelities=L,
              restarts=restarts, max_iter=max_iter)
    return MultiFidelityGP(gp, costs)


@partial(jax.jit, static_argnames=("target",))
def _condition_on_data(X, y, fidelity, mask, lower, span, theta, target: int) -> MultiTaskGP:
    Z, ys, loc, scale = scale_data(X, y, mask, lower, span)
    return build_model(theta, Z, fidelity, ys, mask, lower, span, loc, scale, target)


def multifidelity_gp_from_hyperparameters(
    X, Y, fidelity, hyperparameters: AutoregressiveHyperparameters, *, costs=None,
    bounds=None, capacity: int | None = None,
) -> MultiFidelityGP:
    """The multi-fidelity posterior with given hyperparameters, no fitting.

    Same scaling, standardisation and padding as ``fit_multifidelity_gp``.
    """
    theta = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), hyperparameters)
    L = theta.log_variance.shape[0]
    _check_levels(L)
    Xp, yp, fp, mask, lower, span, _ = pad_tasks(X, Y, fidelity, bounds, capacity, L)
    gp = _condition_on_data(jnp.asarray(Xp), jnp.asarray(yp), jnp.asarray(fp), jnp.asarray(mask),
                            jnp.asarray(lower), jnp.asarray(span), theta, target=L - 1)
    return MultiFidelityGP(gp, _costs(costs, L))
