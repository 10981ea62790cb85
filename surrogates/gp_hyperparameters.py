"""Hyperparameters of an exact GP and their priors: the unconstrained pytree
``GPHyperparameters`` (kernel parameters, log noise, constant mean), the
log-normal noise priors, the MAP objective's log prior, and the plain-data
round trip (JSON, YAML, a campaign's warm start).

Shapes: ``m`` independent outputs; leaves carry a leading (m,) axis when the
hyperparameters of several outputs are stacked.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from surrogates.kernels import (
    Kernel,
    Matern52,
    Params,
    Product,
    Sum,
    Warped,
    kernel_from_dict,
    kernel_to_dict,
    normal_logpdf,
)

__all__ = [
    "GPHyperparameters", "LOG_NOISE_PRIOR", "NOISE_FLOOR", "NOISE_PRIORS",
    "hyperparameters_from_dict", "hyperparameters_to_dict", "log_prior", "resolve_noise_prior",
]

# Smallest noise variance in standardised units: keeps the Cholesky of a
# noiseless, densely sampled objective well conditioned.
NOISE_FLOOR = 1e-6

# Noise variance (standardised units) is log-normal around 3e-4 and wide: low
# enough that noiseless simulators are fitted tightly (a prior near 1e-2 smooths
# their optima away and the search stalls), wide enough that the likelihood
# raises it for noisy lab data.
LOG_NOISE_PRIOR = (-8.0, 2.0)
# Named log-normal priors on the noise variance (standardised units).
# "low" suits simulators and analytic functions; "lab" is BoTorch's
# LogNormal(-4, 1) (median 1.8e-2): measured yields and assays are noisy, and
# with tens of one-hot dimensions the "low" prior lets the GP interpolate every
# measurement and be confidently wrong between them.
NOISE_PRIORS = {"low": LOG_NOISE_PRIOR, "lab": (-4.0, 1.0)}
_MEAN_PRIOR = (0.0, 1.0)


class GPHyperparameters(eqx.Module):
    """Unconstrained hyperparameters of one output (or a stack of them).

    kernel_params: the kernel's parameter pytree; log_noise, mean: (...,).
    kernel: the covariance function (static, no array leaves); learn_noise:
    whether the homoscedastic noise is learned (static); noise_prior: the
    (mean, sd) of the log-normal prior on the learned noise (static). Noise is
    ``NOISE_FLOOR + exp(log_noise)`` in standardised output units, or just the
    floor when not learned.

    The default Matérn-5/2 can still be built and read by its old fields:
    ``GPHyperparameters(log_lengthscale=..., log_variance=..., log_noise=..., mean=...)``
    and ``theta.log_lengthscale``; any kernel by
    ``GPHyperparameters(kernel=k, kernel_params=p, log_noise=..., mean=...)``.
    """

    kernel_params: Params
    log_noise: Array
    mean: Array
    kernel: Kernel
    learn_noise: bool = eqx.field(static=True)
    noise_prior: tuple[float, float] = eqx.field(static=True)

    def __init__(self, log_lengthscale=None, log_variance=None, log_noise=None, mean=None, *,
                 kernel: Kernel | None = None, kernel_params: Params = None,
                 learn_noise: bool = True, noise_prior=LOG_NOISE_PRIOR):
        if kernel_params is None:
            if log_lengthscale is None or log_variance is None:
                raise TypeError("GPHyperparameters needs kernel_params, or log_lengthscale"
                                " and log_variance for the default Matérn-5/2")
            kernel_params = {"log_lengthscale": log_lengthscale, "log_variance": log_variance}
        if log_noise is None or mean is None:
            raise TypeError("GPHyperparameters needs log_noise and mean")
        self.kernel_params = kernel_params
        self.log_noise = log_noise
        self.mean = mean
        self.kernel = Matern52() if kernel is None else kernel
        self.learn_noise = bool(learn_noise)
        self.noise_prior = resolve_noise_prior(noise_prior)

    def _stationary(self, name: str):
        p = self.kernel_params
        if not (isinstance(p, dict) and name in p):
            raise AttributeError(f"{name} exists for a single stationary kernel;"
                                 f" this one is {type(self.kernel).__name__}: use kernel_params")
        return p[name]

    @property
    def log_lengthscale(self) -> Array:
        return self._stationary("log_lengthscale")

    @property
    def log_variance(self) -> Array:
        return self._stationary("log_variance")

    @property
    def lengthscale(self) -> Array:
        return jnp.exp(self.log_lengthscale)

    @property
    def variance(self) -> Array:
        return jnp.exp(self.log_variance)

    @property
    def noise(self) -> Array:
        """Learned homoscedastic noise variance, standardised units."""
        learned = jnp.exp(self.log_noise) if self.learn_noise else jnp.zeros_like(self.log_noise)
        return NOISE_FLOOR + learned


def resolve_noise_prior(prior) -> tuple[float, float]:
    """A noise prior as (mean, sd) of the log variance: a name of ``NOISE_PRIORS``
    or a pair of numbers."""
    if isinstance(prior, str):
        if prior not in NOISE_PRIORS:
            raise ValueError(f"noise_prior {prior!r} is not one of {sorted(NOISE_PRIORS)}")
        return NOISE_PRIORS[prior]
    try:
        loc, scale = (float(v) for v in prior)
    except (TypeError, ValueError):
        raise ValueError(f"noise_prior must be a name ({', '.join(sorted(NOISE_PRIORS))}) or"
                         f" (mean, sd) of the log noise variance; got {prior!r}") from None
    if not (np.isfinite(loc) and np.isfinite(scale) and scale > 0):
        raise ValueError(f"noise_prior needs a finite mean and a positive sd; got {prior!r}")
    return (loc, scale)


def log_prior(theta: GPHyperparameters) -> Array:
    """Log prior density of one output's unconstrained hyperparameters."""
    noise = (normal_logpdf(theta.log_noise, *theta.noise_prior) if theta.learn_noise
             else jnp.zeros(()))
    return (theta.kernel.log_prior(theta.kernel_params) + noise
            + normal_logpdf(theta.mean, *_MEAN_PRIOR))


# --- plain-data round trip (JSON, YAML, a campaign's warm start) --------------

def _plain(tree) -> Any:
    if isinstance(tree, dict):
        return {k: _plain(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return [_plain(v) for v in tree]
    return np.asarray(tree).tolist()


def _params_from_plain(kernel: Kernel, plain) -> Params:
    if isinstance(kernel, (Sum, Product)):
        return tuple(_params_from_plain(k, p) for k, p in zip(kernel.kernels, plain, strict=True))
    if isinstance(kernel, Warped):
        return {"log_a": np.asarray(plain["log_a"], np.float64),
                "log_b": np.asarray(plain["log_b"], np.float64),
                "kernel": _params_from_plain(kernel.kernel, plain["kernel"])}
    return {k: np.asarray(v, np.float64) for k, v in plain.items()}


def hyperparameters_to_dict(theta: GPHyperparameters) -> dict:
    """Hyperparameters as nested dicts and lists of floats (JSON-ready).

    Keys: kernel (see ``kernel_to_dict``), kernel_params, log_noise, mean,
    learn_noise. Inverse: :func:`hyperparameters_from_dict`.
    """
    return {"kernel": kernel_to_dict(theta.kernel), "kernel_params": _plain(theta.kernel_params),
            "log_noise": _plain(theta.log_noise), "mean": _plain(theta.mean),
            "learn_noise": theta.learn_noise, "noise_prior": list(theta.noise_prior)}


def hyperparameters_from_dict(data: dict) -> GPHyperparameters:
    """Hyperparameters from :func:`hyperparameters_to_dict`'s output.

    Also reads the older flat form of the default kernel (keys log_lengthscale,
    log_variance, log_noise, mean).
    """
    if "kernel_params" not in data:
        return GPHyperparameters(**{k: np.asarray(v, np.float64) for k, v in data.items()})
    kernel = kernel_from_dict(data["kernel"])
    return GPHyperparameters(
        kernel=kernel, kernel_params=_params_from_plain(kernel, data["kernel_params"]),
        log_noise=np.asarray(data["log_noise"], np.float64),
        mean=np.asarray(data["mean"], np.float64), learn_noise=bool(data.get("learn_noise", True)),
        noise_prior=tuple(data.get("noise_prior", LOG_NOISE_PRIOR)),
    )
