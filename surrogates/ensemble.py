"""Deep ensembles of MLPs and a Bayesian last layer on their learned features.

A deep ensemble (Lakshminarayanan et al., 2017) is ``members`` MLPs trained
from different initialisations and minibatch orders; their disagreement is
the epistemic uncertainty. Here the members are one model whose parameters
carry a leading member axis (built with ``eqx.filter_vmap``), and one
training step updates every member under ``vmap``, each with its own
minibatches drawn from its own key: on an accelerator ten members cost about
what one does. With several devices the member axis is split over them
(``surrogates.sharding``): each trains and predicts with its own members.

The Bayesian last layer (BLL) replaces the heads by closed-form Bayesian
linear regression on the last hidden layer's features, with the prior
precision and the noise set by evidence maximisation (MacKay, 1992): a
GP-like posterior that scales linearly in the number of rows.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``m``
outputs, ``q`` query points, ``M`` members, ``h`` features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array, lax

from surrogates.data import pad_observations, standardise
from surrogates.gp import Posterior
from surrogates.registry import register_model
from surrogates.sharding import device_mesh, padded_size, shard_leading
from surrogates._runtime import counts_traces

ACTIVATIONS = {
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "softplus": jax.nn.softplus,
}
LIKELIHOODS = ("heteroscedastic", "homoscedastic")
# Smallest aleatoric variance in standardised units: without it a
# heteroscedastic head on noiseless data drives its variance to zero and the
# 1/variance factor of the NLL gradient blows up.
MIN_VARIANCE = 1e-6
_GRAD_CLIP = 10.0
_LOG_2PI = math.log(2.0 * math.pi)


class MLP(eqx.Module):
    """One member: hidden layers, then a linear head, on batches of scaled inputs.

    weights[i]: (fan_in, fan_out), biases[i]: (fan_out,); the last pair is the
    head, whose outputs are ``m`` means, followed by ``m`` raw variances when
    the likelihood is heteroscedastic.
    """

    weights: tuple[Array, ...]
    biases: tuple[Array, ...]
    activation: str = eqx.field(static=True)

    def __init__(self, sizes: tuple[int, ...], activation: str, dtype, *, key: Array):
        # One draw for all parameters: each separate draw inlines its own
        # threefry, and compiling those dominated the cost of a small fit.
        # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as PyTorch and Equinox initialise.
        total = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
        u = jax.random.uniform(key, (total,), dtype, minval=-1.0, maxval=1.0)
        weights, biases, at = [], [], 0
        for a, b in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / math.sqrt(a)
            weights.append(bound * u[at:at + a * b].reshape(a, b))
            biases.append(bound * u[at + a * b:at + a * b + b])
            at += a * b + b
        self.weights, self.biases = tuple(weights), tuple(biases)
        self.activation = activation

    def features(self, x: Array) -> Array:
        """Last hidden layer at scaled inputs, (..., d) -> (..., h)."""
        act = ACTIVATIONS[self.activation]
        # Unit cube -> [-1, 1]: centred inputs suit the initialisation.
        x = 2.0 * x - 1.0
        for W, b in zip(self.weights[:-1], self.biases[:-1]):
            x = act(x @ W + b)
        return x

    def __call__(self, x: Array) -> Array:
        return self.features(x) @ self.weights[-1] + self.biases[-1]


@dataclass(frozen=True)
class _Config:
    """Everything that shapes the compiled training program (hashable, static)."""

    hidden: tuple[int, ...]
    activation: str
    likelihood: str
    steps: int
    batch: int
    dtype: str


def _optimizer(steps: int, learning_rate: Array,
               weight_decay: Array) -> optax.GradientTransformation:
    """AdamW with cosine decay; rates are traced so that changing them does not recompile."""
    schedule = optax.cosine_decay_schedule(learning_rate, max(steps, 1), alpha=0.05)
    return optax.chain(
        optax.clip_by_global_norm(_GRAD_CLIP),
        optax.adamw(schedule, weight_decay=weight_decay),
    )


def _heads(raw: Array, m: int, likelihood: str) -> tuple[Array, Array | None]:
    """Split a head's output into mean (..., m) and aleatoric variance (..., m)."""
    if likelihood == "homoscedastic":
        return raw, None
    return raw[..., :m], jax.nn.softplus(raw[..., m:]) + MIN_VARIANCE


def _member_loss(mlp: MLP, Xb: Array, Yb: Array, Mb: Array, likelihood: str) -> Array:
    """Masked mean Gaussian NLL (heteroscedastic) or half squared error, one member."""
    mean, var = _heads(mlp(Xb), Yb.shape[-1], likelihood)
    r2 = (Yb - mean) ** 2
    per = 0.5 * r2 if var is None else 0.5 * (jnp.log(var) + r2 / var)
    return jnp.sum(per * Mb) / jnp.maximum(jnp.sum(Mb), 1.0)


@partial(jax.jit, static_argnames=("cfg",))
@counts_traces("ensemble.train")
def _train(members: MLP, X: Array, Y: Array, mask: Array, n: Array, data_keys: Array,
           learning_rate: Array, weight_decay: Array, cfg: _Config) -> tuple[MLP, Array]:
    """Train every member at once; returns members and their per-step losses (steps, M).

    members: stacked (M, ...) MLP; X: (N, d), Y, mask: (N, m) padded data;
    n: number of real rows (traced: one program per bucket, not per n);
    data_keys: (M,) keys, one minibatch stream per member;
    learning_rate, weight_decay: () AdamW's peak rate and decoupled decay.
    Minibatches are drawn with replacement from the first n rows by index, so
    shapes stay static and 1e5+ rows stream from device memory.
    """
    opt = _optimizer(cfg.steps, learning_rate, weight_decay)
    params, static = eqx.partition(members, eqx.is_array)
    opt_state = jax.vmap(opt.init)(params)

    def member_step(p, state, key):
        idx = jax.random.randint(key, (cfg.batch,), 0, n)
        model = eqx.combine(p, static)
        loss, grads = eqx.filter_value_and_grad(_member_loss)(
            model, X[idx], Y[idx], mask[idx], cfg.likelihood
        )
        updates, state = opt.update(grads, state, p)
        return optax.apply_updates(p, updates), state, loss

    def step(carry, t):
        p, state = carry
        keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(data_keys, t)
        p, state, loss = jax.vmap(member_step)(p, state, keys)
        return (p, state), loss

    (params, _), losses = lax.scan(step, (params, opt_state), jnp.arange(cfg.steps))
    return eqx.combine(params, static), losses


@partial(jax.jit, static_argnames=("d", "m", "cfg"))
def _init_members(keys: Array, d: int, m: int, cfg: _Config) -> MLP:
    """Stacked members: one ``MLP`` whose arrays have a leading (M,) axis."""
    out = m if cfg.likelihood == "homoscedastic" else 2 * m
    dtype = jnp.dtype(cfg.dtype)
    sizes = (d, *cfg.hidden, out)
    return eqx.filter_vmap(lambda k: MLP(sizes, cfg.activation, dtype, key=k))(keys)


@partial(jax.jit, static_argnames=("members",))
def _member_keys(key: Array, members: int) -> tuple[Array, Array]:
    """(init, data) keys per member; member i depends only on split(key)[i]."""
    per = jax.random.split(key, members)
    both = jax.vmap(lambda k: jax.random.split(k, 2))(per)
    return both[:, 0], both[:, 1]


def _features64(members: MLP, Z: Array) -> Array:
    """Every member's last hidden layer at scaled inputs Z (q, d), in float64: (M, q, h)."""
    members = jax.tree.map(lambda a: a.astype(jnp.float64) if eqx.is_inexact_array(a) else a,
                           members)
    return eqx.filter_vmap(lambda mlp: mlp.features(Z))(members)


def _apply(members: MLP, Z: Array) -> Array:
    """Raw head outputs of every member, (M, q, out)."""
    return eqx.filter_vmap(lambda mlp: mlp(Z))(members)


@jax.jit
def _residual_variance(members: MLP, X: Array, Y: Array, mask: Array) -> Array:
    """Per-member, per-output mean squared training residual, (M, m).

    The noise of a homoscedastic member; members run one after another
    (``lax.map``) so memory stays at one member's (N, h) activations.
    """
    params, static = eqx.partition(members, eqx.is_array)

    def one(p):
        mean = eqx.combine(p, static)(X)
        r2 = ((Y - mean) ** 2) * mask
        return jnp.sum(r2, axis=0) / jnp.maximum(jnp.sum(mask, axis=0), 1.0)

    return lax.map(one, params).astype(jnp.float64)


def prepare_data(X, Y, bounds=None, capacity: int | None = None, standardisation=None):
    """Scale, standardise and pad (X, Y) to a bucket.

    X: (n, d); Y: (n, m) or (n,), NaN where an output is missing;
    bounds: (2, d) lower/upper input bounds (default: the data's range);
    standardisation: (y_loc, y_scale) to use (default: the data's own).
    Returns (Z, Ys, mask, n, lower, span, y_loc, y_scale) as numpy arrays:
    Z (N, d) in the unit cube, Ys (N, m) standardised, mask (N, m).
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 2 and X.shape[0] < 1:
        raise ValueError("at least one observation is needed")
    if X.ndim == 2 and not np.all(np.isfinite(X)):
        raise ValueError("X contains NaN or infinite values")
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    n, d = X.shape
    # Statistics over the n rows themselves: summing padded zeros would regroup
    # the sums and change their last bits.
    observed, Y0 = mask[:n], Yp[:n]
    if standardisation is None:
        y_loc, y_scale = standardise(Y0, observed, xp=np)
    else:
        y_loc, y_scale = (np.asarray(a, dtype=np.float64) for a in standardisation)
    Z = np.full((len(Xp), d), 0.5)
    Z[:n] = (X - lower) / span
    Ys = np.zeros_like(Yp)
    Ys[:n] = np.where(observed > 0, (Y0 - y_loc) / y_scale, 0.0)
    return Z, Ys, mask, n, lower, span, y_loc, y_scale


class DeepEnsemble(eqx.Module):
    """A fitted deep ensemble; ``members`` holds (M, ...) stacked MLP parameters.

    noise: (M, m) aleatoric variance of homoscedastic members in standardised
    units (zeros when heteroscedastic: the heads predict it per point);
    lower, span: (d,) input scaling; y_loc, y_scale: (m,) output scaling.
    """

    members: MLP
    noise: Array
    lower: Array
    span: Array
    y_loc: Array
    y_scale: Array
    likelihood: str = eqx.field(static=True)

    @property
    def num_members(self) -> int:
        return self.noise.shape[0]

    @property
    def num_outputs(self) -> int:
        return self.noise.shape[1]

    def scale_inputs(self, Xq: Array) -> Array:
        Z = (jnp.atleast_2d(jnp.asarray(Xq, jnp.float64)) - self.lower) / self.span
        return Z.astype(self.members.weights[0].dtype)

    def features(self, Xq: Array) -> Array:
        """Last hidden layer of every member, (M, q, h); Xq: (q, d).

        Evaluated in float64 whatever the training dtype, so that a Bayesian
        last layer's linear algebra is not limited by float32 features.
        """
        Z = (jnp.atleast_2d(jnp.asarray(Xq, jnp.float64)) - self.lower) / self.span
        return _features64(self.members, Z)

    def member_predictions(self, Xq: Array) -> tuple[Array, Array]:
        """Each member's mean and aleatoric variance in output units, both (M, q, m)."""
        return _member_predictions(self, Xq)

    def epistemic_variance(self, Xq: Array) -> Array:
        """Variance of the member means, (q, m): the latent (model) uncertainty."""
        mean, _ = self.member_predictions(Xq)
        return jnp.var(mean, axis=0)

    def posterior(self, Xq: Array, full_cov: bool = False,
                  observation_noise: bool = True) -> Posterior:
        """Mixture moments at Xq (q, d), inputs in original units.

        mean: the members' average; variance: mean aleatoric variance plus the
        variance of the member means (with ``observation_noise=False``, only
        the latter: the latent uncertainty acquisitions want). ``full_cov``:
        the member means' (rank <= M - 1) covariance, plus the aleatoric
        variance on its diagonal when observation_noise.
        """
        return _ensemble_posterior(self, Xq, full_cov, observation_noise)


@jax.jit
def _member_predictions(model: DeepEnsemble, Xq: Array) -> tuple[Array, Array]:
    raw = _apply(model.members, model.scale_inputs(Xq)).astype(jnp.float64)
    mean, var = _heads(raw, model.num_outputs, model.likelihood)
    if var is None:
        var = jnp.broadcast_to(model.noise[:, None, :], mean.shape)
    return mean * model.y_scale + model.y_loc, var * model.y_scale**2


@partial(jax.jit, static_argnames=("full_cov", "observation_noise"))
def _ensemble_posterior(model: DeepEnsemble, Xq: Array, full_cov: bool,
                        observation_noise: bool) -> Posterior:
    means, alea = _member_predictions(model, Xq)
    mean = jnp.mean(means, axis=0)
    centred = means - mean
    epistemic = jnp.mean(centred**2, axis=0)
    noise = jnp.mean(alea, axis=0) if observation_noise else jnp.zeros_like(mean)
    cov = None
    if full_cov:
        cov = jnp.einsum("kim,kjm->mij", centred, centred) / means.shape[0]
        cov = cov + jax.vmap(jnp.diag)(noise.T)
    return Posterior(mean=mean, variance=epistemic + noise, covariance=cov)


@register_model("ensemble")
def fit_ensemble(
    X,
    Y,
    *,
    key: Array,
    members: int = 10,
    hidden: tuple[int, ...] = (64, 64),
    activation: str = "silu",
    epochs: int = 20,
    min_steps: int = 2000,
    batch_size: int = 128,
    learning_rate: float = 1e-2,
    weight_decay: float = 1e-4,
    likelihood: str = "heteroscedastic",
    bounds=None,
    capacity: int | None = None,
    dtype: str = "float32",
    devices: Sequence | None = None,
) -> DeepEnsemble:
    """Fit a deep ensemble of MLPs with AdamW, all members in one vmapped program.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing;
    key: PRNG key (member i depends only on ``split(key, members)[i]``);
    hidden: widths of the hidden layers; activation: silu, relu, gelu, tanh
    or softplus; likelihood: ``heteroscedastic`` (Gaussian NLL with a
    softplus variance head) or ``homoscedastic`` (squared error, noise from
    the training residuals); steps: ``max(min_steps, epochs * N / batch)``
    with N the padded capacity, so a growing campaign compiles once per
    bucket; learning_rate: AdamW's peak rate, decayed by a cosine to 5% of it;
    bounds: (2, d) input bounds for unit-cube scaling; dtype of the
    networks (float32 trains faster; the posterior is float64); devices:
    where to train (default ``jax.devices()``): with several, the members
    are split over them (padded to a multiple of their number for training);
    with ``members`` a multiple of their number the fitted members stay laid
    out over them, so predictions are split too.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}; got {likelihood!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    if members < 1 or batch_size < 1 or epochs < 0 or min_steps < 0:
        raise ValueError("members and batch_size must be positive, epochs and min_steps >= 0")
    Z, Ys, mask, n, lower, span, y_loc, y_scale = prepare_data(X, Y, bounds, capacity)
    N, d = Z.shape
    batch = min(batch_size, N)
    cfg = _Config(
        hidden=tuple(int(w) for w in hidden), activation=activation, likelihood=likelihood,
        steps=max(int(min_steps), int(epochs) * math.ceil(N / batch)), batch=batch,
        dtype=str(jnp.dtype(dtype)),
    )
    init_keys, data_keys = _member_keys(key, members)
    mesh = device_mesh(devices)
    if mesh is not None:
        # Padding members repeat the last one's keys: they train as its copies
        # and are dropped below, so member i still depends only on its own key.
        size = padded_size(members, mesh)
        init_keys, data_keys = shard_leading((init_keys, data_keys), mesh, size)
    stacked = _init_members(init_keys, d, Ys.shape[1], cfg)
    dt = jnp.dtype(cfg.dtype)
    Xd, Yd, Md = (jnp.asarray(a, dt) for a in (Z, Ys, mask))
    trained, _ = _train(stacked, Xd, Yd, Md, jnp.asarray(n, jnp.int32), data_keys,
                        jnp.asarray(learning_rate, dt), jnp.asarray(weight_decay, dt), cfg)
    if init_keys.shape[0] != members:
        trained = jax.tree.map(lambda a: a[:members], trained)
    if likelihood == "homoscedastic":
        noise = jnp.maximum(_residual_variance(trained, Xd, Yd, Md), MIN_VARIANCE)
    else:
        noise = jnp.zeros((members, Ys.shape[1]))
    return DeepEnsemble(
        members=trained, noise=noise, lower=jnp.asarray(lower), span=jnp.asarray(span),
        y_loc=jnp.asarray(y_loc), y_scale=jnp.asarray(y_scale), likelihood=likelihood,
    )


# -- Bayesian last layer ---------------------------------------------------------------


class BayesianLastLayer(eqx.Module):
    """Bayesian linear regression on a network's last hidden layer, per member.

    Features are [phi(x), 1]; weights w ~ N(0, I / prior_precision), targets
    (standardised) y = w . features + N(0, noise). With M > 1 members the
    posterior is the equal mixture of the M member posteriors.

    network: the feature extractor (its heads are unused);
    weight_mean: (M, m, h + 1); weight_factor: (M, m, h + 1, h + 1) with
    factor @ factor.T the weight posterior covariance;
    prior_precision, noise: (M, m) in standardised units; y_loc, y_scale: (m,).
    """

    network: DeepEnsemble
    weight_mean: Array
    weight_factor: Array
    prior_precision: Array
    noise: Array
    log_evidence: Array
    y_loc: Array
    y_scale: Array

    @property
    def num_outputs(self) -> int:
        return self.y_loc.shape[0]

    def design(self, Xq: Array) -> Array:
        """Features with a bias column, (M, q, h + 1) float64."""
        phi = self.network.features(Xq)
        return jnp.concatenate([phi, jnp.ones(phi.shape[:-1] + (1,))], axis=-1)

    def member_predictions(self, Xq: Array, full_cov: bool = False):
        """Each member's latent mean (M, q, m), variance (M, q, m) and, with
        ``full_cov``, covariance (M, m, q, q), all in output units."""
        Phi = self.design(Xq)
        mean = jnp.einsum("kqh,kmh->kqm", Phi, self.weight_mean)
        proj = jnp.einsum("kqh,kmhj->kmqj", Phi, self.weight_factor)
        var = jnp.moveaxis(jnp.sum(proj**2, axis=-1), 1, 2)
        s2 = self.y_scale**2
        cov = None
        if full_cov:
            cov = jnp.einsum("kmqj,kmpj->kmqp", proj, proj) * s2[None, :, None, None]
        return mean * self.y_scale + self.y_loc, var * s2, cov

    def posterior(self, Xq: Array, full_cov: bool = False,
                  observation_noise: bool = False) -> Posterior:
        """Latent posterior at Xq (q, d) in original units (mixture over members).

        With ``observation_noise`` the fitted noise variance is added, giving
        the predictive distribution of a new observation.
        """
        return _bll_posterior(self, Xq, full_cov, observation_noise)


@partial(jax.jit, static_argnames=("full_cov", "observation_noise"))
def _bll_posterior(model: BayesianLastLayer, Xq: Array, full_cov: bool,
                   observation_noise: bool) -> Posterior:
    means, var, covs = model.member_predictions(Xq, full_cov)
    mean = jnp.mean(means, axis=0)
    centred = means - mean
    variance = jnp.mean(var + centred**2, axis=0)
    noise = jnp.mean(model.noise, axis=0) * model.y_scale**2
    if observation_noise:
        variance = variance + noise
    cov = None
    if full_cov:
        spread = jnp.einsum("kim,kjm->mij", centred, centred) / means.shape[0]
        cov = jnp.mean(covs, axis=0) + spread
        if observation_noise:
            cov = cov + noise[:, None, None] * jnp.eye(mean.shape[0])
    return Posterior(mean=mean, variance=variance, covariance=cov)


def _evidence_terms(log_a, log_b, s, c, yy, n):
    """Posterior weights and log evidence of Bayesian linear regression in the
    eigenbasis of Phi^T Phi = V diag(s) V^T, with c = V^T Phi^T y (Bishop 3.5)."""
    a, b = jnp.exp(log_a), jnp.exp(log_b)
    dvec = a + b * s
    w = b * c / dvec
    e_data = jnp.maximum(yy - 2.0 * jnp.sum(w * c) + jnp.sum(s * w * w), 0.0)
    e_w = jnp.sum(w * w)
    p = s.shape[0]
    log_ev = (0.5 * p * log_a + 0.5 * n * log_b - 0.5 * b * e_data - 0.5 * a * e_w
              - 0.5 * jnp.sum(jnp.log(dvec)) - 0.5 * n * _LOG_2PI)
    gamma = jnp.sum(b * s / dvec)
    return w, e_data, e_w, gamma, log_ev


def _bayesian_linear_regression(Phi, y, mask, log_a0, log_b0, fit_a: bool, fit_b: bool,
                                iterations: int):
    """One member and output: Phi (N, p), y, mask (N,). Evidence maximisation by
    MacKay's fixed-point updates of the free precisions."""
    Pm = Phi * mask[:, None]
    s, V = jnp.linalg.eigh(Pm.T @ Pm)
    s = jnp.maximum(s, 0.0)
    c = V.T @ (Pm.T @ (y * mask))
    yy = jnp.sum(mask * y * y)
    n = jnp.sum(mask)

    def update(_, logs):
        la, lb = logs
        _, e_data, e_w, gamma, _ = _evidence_terms(la, lb, s, c, yy, n)
        new_a = jnp.log(jnp.maximum(gamma, 1e-12) / jnp.maximum(e_w, 1e-300))
        new_b = jnp.log(jnp.maximum(n - gamma, 1e-12) / jnp.maximum(e_data, 1e-300))
        # Precisions are clipped to keep a degenerate fit (perfect
        # interpolation, all-zero targets) finite.
        la = jnp.where(fit_a, jnp.clip(new_a, -20.0, 20.0), la)
        lb = jnp.where(fit_b, jnp.clip(new_b, -20.0, 20.0), lb)
        return la, lb

    la, lb = lax.fori_loop(0, iterations, update, (log_a0, log_b0))
    w_eig, _, _, _, log_ev = _evidence_terms(la, lb, s, c, yy, n)
    dvec = jnp.exp(la) + jnp.exp(lb) * s
    return V @ w_eig, V / jnp.sqrt(dvec), jnp.exp(la), jnp.exp(-lb), log_ev


@partial(jax.jit, static_argnames=("fit_a", "fit_b", "iterations"))
def _fit_bll(network: DeepEnsemble, Z: Array, Ys: Array, mask: Array, log_a0, log_b0,
             fit_a: bool, fit_b: bool, iterations: int):
    feats = _features64(network.members, Z)
    Phi = jnp.concatenate([feats, jnp.ones(feats.shape[:-1] + (1,))], axis=-1)
    blr = partial(_bayesian_linear_regression, log_a0=log_a0, log_b0=log_b0, fit_a=fit_a,
                  fit_b=fit_b, iterations=iterations)
    per_output = jax.vmap(blr, in_axes=(None, 1, 1))
    return jax.vmap(per_output, in_axes=(0, None, None))(Phi, Ys, mask)


@register_model("bll")
def fit_bll(
    X,
    Y,
    *,
    key: Array | None = None,
    network: DeepEnsemble | None = None,
    prior_precision: float | None = None,
    noise: float | None = None,
    iterations: int = 500,
    bounds=None,
    capacity: int | None = None,
    **network_kwargs,
) -> BayesianLastLayer:
    """Bayesian last layer: closed-form Bayesian linear regression on learned features.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing;
    network: a fitted ``DeepEnsemble`` whose last hidden layer supplies the
    features (one BLL per member, mixed equally); without it, one MLP with a
    homoscedastic head is trained first (``key`` and ``network_kwargs`` go to
    ``fit_ensemble``, default ``members=1``); prior_precision, noise: fixed
    values in standardised units, or None to maximise the evidence.
    """
    if network is None:
        if key is None:
            raise ValueError("fit_bll needs a key to train its network (or a fitted network)")
        network_kwargs.setdefault("members", 1)
        network_kwargs.setdefault("likelihood", "homoscedastic")
        network = fit_ensemble(X, Y, key=key, bounds=bounds, capacity=capacity, **network_kwargs)
    elif network_kwargs:
        raise ValueError(f"network is given; unexpected arguments {sorted(network_kwargs)}")
    for name, v in (("prior_precision", prior_precision), ("noise", noise)):
        if v is not None and not v > 0:
            raise ValueError(f"{name} must be positive; got {v}")
    # The features expect the network's own input scaling; outputs are
    # standardised afresh so that the BLL can sit on a network trained on other data.
    _, Ys, mask, n, _, _, y_loc, y_scale = prepare_data(X, Y, None, capacity)
    Xf = np.asarray(X, np.float64)
    Zc = np.zeros((Ys.shape[0], Xf.shape[1]))
    Zc[:n] = (Xf - np.asarray(network.lower)) / np.asarray(network.span)
    log_a0 = math.log(prior_precision) if prior_precision is not None else 0.0
    log_b0 = -math.log(noise) if noise is not None else math.log(10.0)
    w, F, a, s2, log_ev = _fit_bll(
        network, jnp.asarray(Zc), jnp.asarray(Ys), jnp.asarray(mask),
        jnp.asarray(log_a0), jnp.asarray(log_b0), fit_a=prior_precision is None,
        fit_b=noise is None, iterations=int(iterations),
    )
    return BayesianLastLayer(
        network=network, weight_mean=w, weight_factor=F, prior_precision=a, noise=s2,
        log_evidence=log_ev, y_loc=jnp.asarray(y_loc), y_scale=jnp.asarray(y_scale),
    )
