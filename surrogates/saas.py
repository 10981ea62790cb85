"""Fully Bayesian GP with the sparse axis-aligned subspace (SAAS) prior.

Eriksson & Jankowiak (2021), "High-dimensional Bayesian optimization with
sparse axis-aligned subspaces" (UAI). A global shrinkage ``tau ~ HC(0.1)``
pulls every inverse length-scale ``rho_i ~ HC(tau)`` towards zero, so that a
dimension is switched on only when the data demand it: with a few tens of
points in tens of dimensions the posterior concentrates on the handful that
matter. Hyperparameters are integrated out with NUTS (numpyro's kernel;
chains ``vmap``ped on accelerators, mapped one after another on CPU;
everything inside one ``jit`` keyed on the padded size, so a growing campaign
compiles once per bucket); the predictive is the equal-weight mixture over
the retained samples.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
independent outputs, ``S`` retained samples, ``q`` query points.
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
from jax.scipy.special import gammaln

from surrogates.data import pad_observations, standardise
from surrogates.gp import Posterior
from surrogates.kernels import matern52
from surrogates.numerics import JITTER, MIN_VARIANCE
from surrogates.registry import register_model
from surrogates._runtime import counts_traces

_LOG_2PI = math.log(2.0 * math.pi)
# Priors of BoTorch's SaasPyroModel (Eriksson & Jankowiak's reference code),
# on unit-cube inputs and standardised outputs.
_TAU_SCALE = 0.1
_OUTPUTSCALE_PRIOR = (2.0, 0.15)  # Gamma(concentration, rate)
_NOISE_PRIOR = (0.9, 10.0)  # Gamma(concentration, rate)
NOISE_FLOOR = 1e-6


class SAASHyperparameters(eqx.Module):
    """Constrained hyperparameters of one GP (or a stack: leading axes ``...``).

    tau: (...,) global shrinkage; inverse_lengthscale: (..., d) the rho_i;
    outputscale, noise, mean: (...,), noise in standardised output units.
    """

    tau: Array
    inverse_lengthscale: Array
    outputscale: Array
    noise: Array
    mean: Array

    @property
    def lengthscale(self) -> Array:
        return 1.0 / self.inverse_lengthscale


def _kernel(Z1: Array, Z2: Array, theta: SAASHyperparameters) -> Array:
    # Multiplying by rho rather than dividing by 1 / rho keeps a switched-off
    # dimension (rho -> 0) finite.
    ones = jnp.ones(Z1.shape[-1])
    rho = theta.inverse_lengthscale
    return matern52(Z1 * rho, Z2 * rho, ones, theta.outputscale)


def _masked_gram(theta: SAASHyperparameters, Z: Array, mask: Array) -> Array:
    """Noisy Gram matrix whose padded rows and columns are the identity,
    which leaves the likelihood of the unmasked rows exact."""
    K = _kernel(Z, Z, theta) * (mask[:, None] * mask[None, :])
    return K + jnp.diag(mask * (theta.noise + JITTER) + (1.0 - mask))


def negative_log_marginal_likelihood(
    theta: SAASHyperparameters, Z: Array, y: Array, mask: Array
) -> Array:
    """-log p(y | Z, theta) over the unmasked rows of one output.

    Z: (N, d) unit-cube inputs; y: (N,) standardised targets; mask: (N,).
    """
    L = jnp.linalg.cholesky(_masked_gram(theta, Z, mask))
    r = (y - theta.mean) * mask
    alpha = cho_solve((L, True), r)
    return 0.5 * r @ alpha + jnp.sum(jnp.log(jnp.diag(L))) + 0.5 * jnp.sum(mask) * _LOG_2PI


def _log_half_cauchy(x: Array, scale) -> Array:
    return math.log(2.0 / math.pi) - jnp.log(scale) - jnp.log1p((x / scale) ** 2)


def _log_gamma(x: Array, concentration: float, rate: float) -> Array:
    a, b = concentration, rate
    return a * math.log(b) - gammaln(a) + (a - 1.0) * jnp.log(x) - b * x


def constrain(z: dict) -> SAASHyperparameters:
    """Map NUTS's unconstrained coordinates to hyperparameters.

    z: log_tau, log_raw (d,), log_outputscale, log_noise, mean. The inverse
    length-scales are non-centred, rho = tau * raw with raw ~ HC(1), which
    is the same prior as rho ~ HC(tau) but without the funnel.
    """
    tau = jnp.exp(z["log_tau"])
    return SAASHyperparameters(
        tau=tau,
        inverse_lengthscale=tau[..., None] * jnp.exp(z["log_raw"]),
        outputscale=jnp.exp(z["log_outputscale"]),
        noise=NOISE_FLOOR + jnp.exp(z["log_noise"]),
        mean=z["mean"],
    )


def log_prior(z: dict) -> Array:
    """SAAS log prior density of the unconstrained coordinates (Jacobians included)."""
    tau, raw = jnp.exp(z["log_tau"]), jnp.exp(z["log_raw"])
    s, noise = jnp.exp(z["log_outputscale"]), jnp.exp(z["log_noise"])
    return (
        _log_half_cauchy(tau, _TAU_SCALE) + z["log_tau"]
        + jnp.sum(_log_half_cauchy(raw, 1.0) + z["log_raw"])
        + _log_gamma(s, *_OUTPUTSCALE_PRIOR) + z["log_outputscale"]
        + _log_gamma(noise, *_NOISE_PRIOR) + z["log_noise"]
        - 0.5 * z["mean"] ** 2 - 0.5 * _LOG_2PI
    )


def potential_energy(z: dict, Z: Array, y: Array, mask: Array) -> Array:
    """-log p(z, y | Z): the potential NUTS samples from. Shapes as above."""
    return negative_log_marginal_likelihood(constrain(z), Z, y, mask) - log_prior(z)


def _initial_point(key: Array, d: int) -> dict:
    # Every dimension starts nearly switched off (rho = 0.1): the sampler
    # then turns on what the data ask for instead of pruning from a dense start.
    k1, k2 = jax.random.split(key)
    return {
        "log_tau": jnp.asarray(math.log(_TAU_SCALE)),
        "log_raw": 0.1 * jax.random.normal(k1, (d,)),
        "log_outputscale": jnp.asarray(0.0),
        "log_noise": jnp.asarray(math.log(1e-2)) + 0.1 * jax.random.normal(k2),
        "mean": jnp.asarray(0.0),
    }


def _run_chain(key, Z, y, mask, num_warmup: int, num_samples: int, thinning: int,
               max_tree_depth: int):
    """One NUTS chain: warmup with step-size and diagonal mass adaptation,
    then ``num_samples`` draws of which every ``thinning``-th is kept."""
    # numpyro is imported here, by the one model that samples: off the import path
    # of a fresh process (every CLI call), which no other model needs it on.
    from numpyro.infer.hmc import hmc

    init_key, run_key = jax.random.split(key)
    # The data reach the potential as model_args, numpyro's channel for
    # arguments of the potential, so nothing is closed over by the kernel.
    init_kernel, sample_kernel = hmc(
        potential_fn_gen=lambda Z, y, mask: partial(potential_energy, Z=Z, y=y, mask=mask),
        algo="NUTS",
    )
    args = (Z, y, mask)
    state = init_kernel(
        _initial_point(init_key, Z.shape[-1]), num_warmup, model_args=args,
        max_tree_depth=max_tree_depth, rng_key=run_key,
    )

    def step(s, _):
        s = sample_kernel(s, model_args=args)
        return s, (s.z, s.diverging)

    state, _ = lax.scan(step, state, None, length=num_warmup)
    state, (zs, diverging) = lax.scan(step, state, None, length=num_samples)
    kept = jax.tree.map(lambda a: a[thinning - 1 :: thinning], zs)
    return kept, jnp.sum(diverging), state.mean_accept_prob


def _factorise(theta: SAASHyperparameters, Z: Array, y: Array, mask: Array):
    L = jnp.linalg.cholesky(_masked_gram(theta, Z, mask))
    return L, cho_solve((L, True), (y - theta.mean) * mask)


# Samples of one output share the data: vmap over samples inside, outputs outside.
_factorise_all = jax.vmap(
    jax.vmap(_factorise, in_axes=(0, None, None, None)), in_axes=(0, None, 1, 1)
)


class SAASGP(eqx.Module):
    """A fully Bayesian SAAS GP: the mixture over S posterior samples.

    hyperparameters: leaves (m, S, ...); X: (N, d) unit-cube inputs;
    Y: (N, m) standardised targets; mask: (N, m); cholesky: (m, S, N, N);
    alpha: (m, S, N); lower, span: (d,) input scaling; y_loc, y_scale: (m,);
    num_divergent: (m,) divergent NUTS transitions after warmup, all chains;
    accept_prob: (m, chains) mean acceptance probability after warmup.
    """

    hyperparameters: SAASHyperparameters
    X: Array
    Y: Array
    mask: Array
    cholesky: Array
    alpha: Array
    lower: Array
    span: Array
    y_loc: Array
    y_scale: Array
    num_divergent: Array
    accept_prob: Array

    @property
    def num_outputs(self) -> int:
        return self.Y.shape[1]

    @property
    def num_samples(self) -> int:
        return self.cholesky.shape[1]

    @property
    def capacity(self) -> int:
        return self.X.shape[0]

    @property
    def lengthscale(self) -> Array:
        """Length-scale samples in unit-cube units, (m, S, d)."""
        return self.hyperparameters.lengthscale

    @property
    def median_lengthscale(self) -> Array:
        """Posterior median length-scale per input, (m, d): short means relevant."""
        return jnp.median(self.lengthscale, axis=1)

    def scale_inputs(self, Xq: Array) -> Array:
        return (Xq - self.lower) / self.span

    def component_posteriors(self, Xq: Array, full_cov: bool = False):
        """Per-sample latent moments in standardised units.

        Returns mean (m, S, q), variance (m, S, q), covariance (m, S, q, q) or None.
        """
        Z = self.scale_inputs(jnp.atleast_2d(Xq))

        def one(theta, mask, L, alpha):
            Kq = _kernel(Z, self.X, theta) * mask[None, :]
            mean = theta.mean + Kq @ alpha
            v = solve_triangular(L, Kq.T, lower=True)
            var = jnp.maximum(theta.outputscale - jnp.sum(v * v, axis=0), MIN_VARIANCE)
            cov = _kernel(Z, Z, theta) - v.T @ v if full_cov else None
            return mean, var, cov

        per_sample = jax.vmap(one, in_axes=(0, None, 0, 0))
        return jax.vmap(per_sample, in_axes=(0, 1, 0, 0))(
            self.hyperparameters, self.mask, self.cholesky, self.alpha
        )

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Moments of the sample mixture at Xq: (q, d) inputs in original units.

        Mean: the average of the component means; (co)variance by the law of
        total variance, E[cov] + Cov[mean]. ``Posterior.sample`` draws from the
        Gaussian with these moments.
        """
        return _posterior(self, jnp.atleast_2d(jnp.asarray(Xq)), full_cov)

    def condition(self, Xnew: Array, Ynew: Array) -> "SAASGP":
        """Every sample conditioned on extra observations (fantasies), fixed hyperparameters.

        Xnew: (k, d), Ynew: (k, m) in original units; uses the first free slots.
        """
        # The first slot after the last observed row: rows of all-missing
        # outputs inside the data are masked but not free.
        used = np.flatnonzero(np.asarray(self.mask).any(axis=1))
        n = int(used[-1]) + 1 if used.size else 0
        k = Xnew.shape[0]
        if n + k > self.capacity:
            raise ValueError(
                f"cannot condition on {k} more points: {n} of {self.capacity} slots used"
            )
        return _condition(self, jnp.asarray(Xnew), jnp.asarray(Ynew), jnp.asarray(n))


def mixture_posterior(means, variances, covs, y_loc, y_scale) -> Posterior:
    """Moments of an equal-weight Gaussian mixture, mapped to output units.

    means, variances: (m, S, q); covs: (m, S, q, q) or None; y_loc, y_scale: (m,).
    """
    mu = jnp.mean(means, axis=1)
    centred = means - mu[:, None, :]
    var = jnp.mean(variances, axis=1) + jnp.mean(centred**2, axis=1)
    scale = y_scale[:, None]
    cov = None
    if covs is not None:
        S = means.shape[1]
        cov = jnp.mean(covs, axis=1) + jnp.einsum("msi,msj->mij", centred, centred) / S
        cov = cov * (y_scale**2)[:, None, None]
    return Posterior(mean=(mu * scale + y_loc[:, None]).T, variance=(var * scale**2).T,
                     covariance=cov)


@partial(jax.jit, static_argnames=("full_cov",))
def _posterior(model: SAASGP, Xq: Array, full_cov: bool) -> Posterior:
    # Compiled here so that eager calls (notebooks) do not dispatch the
    # vmapped per-sample algebra operation by operation.
    means, variances, covs = model.component_posteriors(Xq, full_cov)
    return mixture_posterior(means, variances, covs, model.y_loc, model.y_scale)


@jax.jit
def _condition(model: SAASGP, Xnew: Array, Ynew: Array, start: Array) -> SAASGP:
    Z = model.scale_inputs(Xnew)
    Ys = (Ynew - model.y_loc) / model.y_scale
    X = lax.dynamic_update_slice(model.X, Z, (start, 0))
    Y = lax.dynamic_update_slice(model.Y, Ys, (start, 0))
    mask = lax.dynamic_update_slice(model.mask, jnp.ones_like(Ys), (start, 0))
    L, alpha = _factorise_all(model.hyperparameters, X, Y, mask)
    return eqx.tree_at(
        lambda g: (g.X, g.Y, g.mask, g.cholesky, g.alpha), model, (X, Y, mask, L, alpha)
    )


def _scale_data(X, Y, mask, lower, span):
    Z = jnp.where(mask.any(axis=1, keepdims=True), (X - lower) / span, 0.5)
    loc, scale = standardise(Y, mask)
    return Z, jnp.where(mask > 0, (Y - loc) / scale, 0.0), loc, scale


def resolve_chain_method(chain_method: str) -> str:
    """"vectorized" (chains in lockstep under vmap, numpyro's name) on
    accelerators; "sequential" (``lax.map``) on CPU, where batching gains
    nothing, every chain would wait for the deepest NUTS tree of any, and
    vmapping NUTS's nested while loops multiplies the compile time."""
    if chain_method == "auto":
        return "vectorized" if jax.default_backend() != "cpu" else "sequential"
    if chain_method not in ("vectorized", "sequential"):
        raise ValueError(
            f"chain_method must be 'auto', 'vectorized' or 'sequential'; got {chain_method!r}"
        )
    return chain_method


@partial(jax.jit, static_argnames=("num_warmup", "num_samples", "num_chains", "thinning",
                                   "max_tree_depth", "chain_method"))
@counts_traces("saas.fit")
def _fit(X, Y, mask, lower, span, key, num_warmup: int, num_samples: int, num_chains: int,
         thinning: int, max_tree_depth: int, chain_method: str) -> SAASGP:
    Z, Ys, loc, scale = _scale_data(X, Y, mask, lower, span)
    m = Y.shape[1]
    chain = partial(_run_chain, num_warmup=num_warmup, num_samples=num_samples,
                    thinning=thinning, max_tree_depth=max_tree_depth)

    def output(args):
        keys, y, mk = args
        one = lambda k: chain(k, Z, y, mk)
        if chain_method == "vectorized":
            return jax.vmap(one)(keys)
        return lax.map(one, keys)

    # Outputs one after another: they have separate posteriors, and nesting a
    # second vmap around NUTS would multiply the compile time again.
    keys = jax.random.split(key, (m, num_chains))
    zs, divergent, accept = lax.map(output, (keys, Ys.T, mask.T))
    # (m, chains, kept, ...) -> (m, S, ...)
    zs = jax.tree.map(lambda a: a.reshape((m, -1) + a.shape[3:]), zs)
    theta = constrain(zs)
    L, alpha = _factorise_all(theta, Z, Ys, mask)
    return SAASGP(
        hyperparameters=theta, X=Z, Y=Ys, mask=mask, cholesky=L, alpha=alpha, lower=lower,
        span=span, y_loc=loc, y_scale=scale, num_divergent=jnp.sum(divergent, axis=1),
        accept_prob=accept,
    )




@register_model("saas")
def fit_saas_gp(
    X,
    Y,
    *,
    key: Array,
    bounds=None,
    capacity: int | None = None,
    num_warmup: int = 256,
    num_samples: int = 128,
    num_chains: int = 2,
    thinning: int = 8,
    max_tree_depth: int = 6,
    chain_method: str = "auto",
) -> SAASGP:
    """Fit a SAAS GP (Matérn-5/2, constant mean, Gaussian noise) by NUTS.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing (each
    output is sampled independently); key: PRNG key; bounds: (2, d) input
    bounds for the unit-cube scaling (default: the data's range); capacity:
    rows to pad to (room for fantasies); num_warmup: adaptation steps per
    chain; num_samples: draws per chain after warmup, of which every
    ``thinning``-th is kept, so S = num_chains * num_samples // thinning;
    chains run together under vmap; max_tree_depth: NUTS doubling limit
    (2**depth - 1 leapfrog steps at most per draw); chain_method:
    "vectorized" (vmap), "sequential" (lax.map) or "auto" (see
    ``resolve_chain_method``).
    """
    if min(num_warmup, num_samples, num_chains, thinning) < 1 or thinning > num_samples:
        raise ValueError(
            "num_warmup, num_samples, num_chains and thinning must be positive and"
            f" thinning <= num_samples; got {num_warmup}, {num_samples}, {num_chains},"
            f" {thinning}"
        )
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    return _fit(
        jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask), jnp.asarray(lower),
        jnp.asarray(span), key, num_warmup=num_warmup, num_samples=num_samples,
        num_chains=num_chains, thinning=thinning, max_tree_depth=max_tree_depth,
        chain_method=resolve_chain_method(chain_method),
    )


@jax.jit
def _condition_on_data(X, Y, mask, lower, span, theta) -> SAASGP:
    Z, Ys, loc, scale = _scale_data(X, Y, mask, lower, span)
    L, alpha = _factorise_all(theta, Z, Ys, mask)
    m = Y.shape[1]
    return SAASGP(
        hyperparameters=theta, X=Z, Y=Ys, mask=mask, cholesky=L, alpha=alpha, lower=lower,
        span=span, y_loc=loc, y_scale=scale, num_divergent=jnp.zeros(m, jnp.int32),
        accept_prob=jnp.ones((m, 1)),
    )


def saas_gp_from_samples(
    X, Y, hyperparameters: SAASHyperparameters, *, bounds=None, capacity: int | None = None
) -> SAASGP:
    """The mixture posterior on (X, Y) for given hyperparameter samples, no sampling.

    hyperparameters: leaves (m, S, ...), in unit-cube and standardised units,
    noise including ``NOISE_FLOOR``. Same scaling and padding as ``fit_saas_gp``;
    for tests, reuse of samples, and transfer.
    """
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    theta = jax.tree.map(lambda a: jnp.asarray(np.asarray(a, np.float64)), hyperparameters)
    return _condition_on_data(jnp.asarray(Xp), jnp.asarray(Yp), jnp.asarray(mask),
                              jnp.asarray(lower), jnp.asarray(span), theta)
