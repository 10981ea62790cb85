"""A GP on learned features: deep kernel learning (Wilson et al., 2016).

An MLP ``g`` maps scaled inputs to a few features and a Matérn-5/2 ARD GP
models the outputs on them: k(x, x') = k_M52(g(x), g(x')). The network's
weights and the GP's hyperparameters are trained together on the exact
log marginal likelihood (plus the GP's hyperparameter priors) with Adam,
all in float64, full batch. For structured inputs whose outputs vary along
a few directions that are not the coordinate axes (a curve or surface
inside a many-dimensional box), a stationary kernel on the raw inputs needs
many points to learn the geometry; the network learns it.

Every output has its own GP hyperparameters; the feature network is shared
by the outputs. The fitted model is a value: the network plus an
:class:`~surrogates.gp.ExactGP` over the training features, so the
posterior, joint samples and ``condition`` (fantasies) are the exact GP's.

Shapes: ``n`` observations, ``N`` padded capacity, ``d`` inputs, ``h``
features, ``m`` outputs, ``q`` query points, ``R`` restarts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax import Array

from surrogates.data import pad_observations
from surrogates.ensemble import ACTIVATIONS, MLP
from surrogates.gp import (
    ExactGP,
    GPHyperparameters,
    Posterior,
    assemble_exact_gp,
    log_prior,
    negative_log_marginal_likelihood,
    scale_and_standardise,
)
from surrogates.kernels import Matern52
from surrogates.registry import register_model

__all__ = ["DeepKernelGP", "deep_kernel_loss", "fit_deep_kernel_gp"]

# Features start near unit scale (a tanh-bounded layer times a linear map),
# so the length-scales start at 1 and the noise low, as for a GP on [0, 1]^h.
_INIT_LOG_LENGTHSCALE = 0.0
_INIT_LOG_NOISE = -4.0


@dataclass(frozen=True)
class _Config:
    """What shapes the compiled training program (hashable, static)."""

    hidden: tuple[int, ...]
    features: int
    activation: str
    steps: int
    restarts: int


def _features(net: MLP, Z: Array) -> Array:
    """Features of scaled inputs: (q, d) in [0, 1] -> (q, h), the network's linear head."""
    return net(Z)


def deep_kernel_loss(net: MLP, theta: GPHyperparameters, Z: Array, Ys: Array,
                     mask: Array) -> Array:
    """Training loss: negative log marginal likelihood minus log prior, per observation.

    net: the feature network; theta: GP hyperparameters with a leading (m,)
    axis; Z: (N, d) scaled inputs; Ys: (N, m) standardised outputs; mask:
    (N, m) 1 where observed. Dividing by the number of observations keeps
    Adam's step size meaningful across data sizes.
    """
    F = _features(net, Z)

    def one(t, y, mk):
        return negative_log_marginal_likelihood(t, F, y, mk) - log_prior(t)

    per_output = jax.vmap(one, in_axes=(0, 1, 1))(theta, Ys, mask)
    return jnp.sum(per_output) / jnp.maximum(jnp.sum(mask), 1.0)


def _initial(key: Array, d: int, m: int, cfg: _Config) -> tuple[MLP, GPHyperparameters]:
    net = MLP((d, *cfg.hidden, cfg.features), cfg.activation, jnp.float64, key=key)
    theta = GPHyperparameters(
        kernel=Matern52(),
        kernel_params={"log_lengthscale": jnp.full((m, cfg.features), _INIT_LOG_LENGTHSCALE),
                       "log_variance": jnp.zeros(m)},
        log_noise=jnp.full(m, _INIT_LOG_NOISE), mean=jnp.zeros(m))
    return net, theta


@partial(jax.jit, static_argnames=("cfg",))
def _train(Z: Array, Ys: Array, mask: Array, key: Array, learning_rate: Array,
           cfg: _Config):
    """Adam on the loss from ``cfg.restarts`` initialisations at once (vmapped).

    Returns the trained (net, theta) of the restart with the lowest final
    loss, and every restart's loss history, (steps, R).
    """
    d, m = Z.shape[1], Ys.shape[1]
    opt = optax.adam(learning_rate)
    keys = jax.random.split(key, cfg.restarts)
    # The static part (activation, kernel) is the same for every restart.
    static = eqx.partition(_initial(keys[0], d, m, cfg), eqx.is_inexact_array)[1]

    def one_restart(k):
        params = eqx.filter(_initial(k, d, m, cfg), eqx.is_inexact_array)

        def loss(p):
            net, theta = eqx.combine(p, static)
            return deep_kernel_loss(net, theta, Z, Ys, mask)

        def step(carry, _):
            p, state = carry
            value, grads = jax.value_and_grad(loss)(p)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), value

        (params, _), history = jax.lax.scan(step, (params, opt.init(params)), None,
                                            length=cfg.steps)
        final = loss(params)
        return params, jnp.where(jnp.isfinite(final), final, jnp.inf), history

    params, finals, history = jax.vmap(one_restart)(keys)
    best = jnp.argmin(finals)
    params = jax.tree.map(lambda a: a[best], params)
    return eqx.combine(params, static), history


class DeepKernelGP(eqx.Module):
    """A fitted deep-kernel GP: feature network + exact GP on the features.

    net: the MLP (``surrogates.ensemble.MLP``), scaled inputs -> (h,) features; gp: an
    :class:`ExactGP` whose training inputs are the training features (no
    further scaling); lower, span: (d,) input scaling to the unit cube.
    """

    net: MLP
    gp: ExactGP
    lower: Array
    span: Array

    @property
    def num_outputs(self) -> int:
        return self.gp.num_outputs

    @property
    def capacity(self) -> int:
        return self.gp.capacity

    @property
    def hyperparameters(self) -> GPHyperparameters:
        return self.gp.hyperparameters

    def features(self, Xq: Array) -> Array:
        """Learned features at inputs in original units: (q, d) -> (q, h)."""
        return _features(self.net, (jnp.atleast_2d(Xq) - self.lower) / self.span)

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Latent posterior at Xq: (q, d) inputs in original units."""
        return self.gp.posterior(self.features(Xq), full_cov=full_cov)

    def condition(self, Xnew: Array, Ynew: Array) -> DeepKernelGP:
        """The model conditioned on extra observations, network and hyperparameters fixed.

        Xnew: (k, d), Ynew: (k, m) in original units; see ``ExactGP.condition``.
        """
        gp = self.gp.condition(self.features(jnp.asarray(Xnew)), jnp.asarray(Ynew))
        return eqx.tree_at(lambda g: g.gp, self, gp)


@jax.jit
def _assemble(net, theta, Z, Ys, mask, noise_s, loc, scale, lower, span) -> DeepKernelGP:
    F = _features(net, Z)
    h = F.shape[1]
    gp = assemble_exact_gp(theta, F, Ys, mask, noise_s, jnp.zeros(h), jnp.ones(h), loc, scale)
    return DeepKernelGP(net=net, gp=gp, lower=lower, span=span)


@register_model("deep_kernel")
def fit_deep_kernel_gp(
    X,
    Y,
    *,
    key: Array,
    bounds=None,
    capacity: int | None = None,
    hidden: tuple[int, ...] = (32, 32),
    features: int = 2,
    activation: str = "tanh",
    steps: int = 600,
    learning_rate: float = 1e-2,
    restarts: int = 2,
) -> DeepKernelGP:
    """Fit a GP on MLP features, network and hyperparameters jointly, by MAP.

    X: (n, d) inputs; Y: (n, m) or (n,) outputs, NaN where missing; key: PRNG
    key for the network's initialisations; bounds: (2, d) input bounds for
    scaling to the unit cube (default: the data's range); capacity: rows to
    pad to (default the bucket of n; raise it to leave room for fantasies);
    hidden: widths of the hidden layers; features: h, the
    dimension the GP sees (small: 1-4); activation: tanh, silu, relu or gelu;
    steps: full-batch Adam steps at ``learning_rate``; restarts: network
    initialisations trained together under vmap, the lowest final loss kept.
    Float64 throughout; cost per step about three Cholesky factorisations of
    the padded size.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
    for name, value in (("features", features), ("steps", steps), ("restarts", restarts)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1; got {value}")
    hidden = tuple(int(w) for w in hidden)
    if not hidden or min(hidden) < 1:
        raise ValueError(f"hidden must be one or more positive layer widths; got {hidden}")
    if not (learning_rate > 0 and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be positive; got {learning_rate}")
    Xp, Yp, mask, lower, span = pad_observations(X, Y, bounds, capacity)
    if mask.sum() == 0:
        raise ValueError("Y has no finite observations to fit")
    cfg = _Config(hidden=hidden, features=int(features), activation=activation,
                  steps=int(steps), restarts=int(restarts))
    Xp, Yp, mask, lower, span = (jnp.asarray(a) for a in (Xp, Yp, mask, lower, span))
    Z, Ys, noise_s, loc, scale = scale_and_standardise(Xp, Yp, mask, jnp.zeros_like(Yp), lower,
                                                       span)
    (net, theta), _ = _train(Z, Ys, mask, key, jnp.asarray(float(learning_rate)), cfg)
    return _assemble(net, theta, Z, Ys, mask, noise_s, loc, scale, lower, span)
