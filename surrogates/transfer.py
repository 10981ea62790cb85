"""Transfer between related tasks without sharing their data: a prior-mean GP.

A finished campaign's GP is summarised by its hyperparameters and its posterior
mean (and standard deviation) at ``M`` quasi-random *anchor* points of the
input box: a Halton sequence, never the observed inputs, and posterior values,
never the observed outputs. Read back, the summary is a smooth function
``prior(x)``: the kernel interpolant of the anchor means under the source's
own kernel, which reproduces the source posterior mean between the anchors.

A new task with few observations fits a GP whose mean function is
``a * prior(x) + b`` (``a``, ``b`` by least squares on its own data; for a
shifted and scaled copy of the source these are the scale and the shift) and
models what remains, ``y - a prior(x) - b``, with an ordinary exact GP. The
result keeps the surrogate protocol: ``posterior(Xq, full_cov)`` and
``condition(Xnew, Ynew)``.

Shapes: ``n`` observations, ``M`` anchors, ``d`` inputs, ``q`` query points;
one output.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from surrogates.gp import (
    ExactGP,
    GPHyperparameters,
    Posterior,
    fit_gp,
    hyperparameters_from_dict,
    hyperparameters_to_dict,
)

__all__ = [
    "PriorMean", "PriorMeanGP", "anchor_points", "fit_prior_mean_gp", "halton",
    "prior_mean_from_summary", "summarise_posterior",
]

_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79,
           83, 89, 97, 101, 103, 107, 109, 113)
# Relative nugget on the anchors' Gram matrix: the interpolant is smooth and
# the solve stays well conditioned when length-scales are long.
_NUGGET = 1e-6


def halton(num: int, d: int, skip: int = 1) -> np.ndarray:
    """The first ``num`` points (after ``skip``) of the Halton sequence in [0, 1]^d: (num, d).

    Deterministic and low-discrepancy: anchors that cover the box evenly
    without depending on any data.
    """
    if d > len(_PRIMES):
        raise ValueError(f"halton: d={d}; at most {len(_PRIMES)} dimensions")
    out = np.zeros((num, d))
    for j in range(d):
        base = _PRIMES[j]
        for i in range(num):
            k, f, x = i + skip, 1.0, 0.0
            while k > 0:
                f /= base
                x += f * (k % base)
                k //= base
            out[i, j] = x
    return out


def anchor_points(num: int, d: int) -> np.ndarray:
    """Anchors in [0, 1)^d: the Halton points rotated by the fractional parts of
    sqrt(primes) (a Cranley-Patterson shift), so that no anchor sits on a
    dyadic grid point, a box corner or a centre, where designs put observations."""
    shift = np.sqrt(np.asarray(_PRIMES[:d], np.float64)) % 1.0
    return (halton(num, d) + shift) % 1.0


def default_num_anchors(d: int) -> int:
    """Anchors for a d-dimensional box: 32 per dimension, between 64 and 512."""
    return int(min(512, max(64, 32 * d)))


def _one_output(theta: GPHyperparameters, j: int = 0) -> GPHyperparameters:
    return GPHyperparameters(
        kernel=theta.kernel, kernel_params=jax.tree.map(lambda a: a[j], theta.kernel_params),
        log_noise=theta.log_noise[j], mean=theta.mean[j], learn_noise=theta.learn_noise,
        noise_prior=theta.noise_prior)


def summarise_posterior(model: ExactGP, num_anchors: int | None = None) -> dict:
    """A data-free summary of a fitted single-output GP: JSON-ready plain values.

    Keys: ``anchors`` (M, d) rotated Halton points in the model's input box (its
    ``lower``/``span``); ``mean``, ``std`` (M,) the posterior mean and standard
    deviation there, in output units; ``hyperparameters`` of the output's
    kernel (``hyperparameters_to_dict`` form, standardised units); ``dim``.
    """
    if model.num_outputs != 1:
        raise ValueError(f"summarise_posterior: the model has {model.num_outputs} outputs;"
                         " expected one")
    d = int(model.X.shape[1])
    M = default_num_anchors(d) if num_anchors is None else int(num_anchors)
    anchors = np.asarray(model.lower) + np.asarray(model.span) * anchor_points(M, d)
    post = model.posterior(jnp.asarray(anchors))
    return {
        "dim": d,
        "anchors": anchors.tolist(),
        "mean": np.asarray(post.mean[:, 0]).tolist(),
        "std": np.sqrt(np.asarray(post.variance[:, 0])).tolist(),
        "hyperparameters": hyperparameters_to_dict(_one_output(model.hyperparameters)),
    }


class PriorMean(eqx.Module):
    """A prior mean function read from a posterior summary: ``prior(X) -> (q,)``.

    anchors: (M, d); weights: (M,) interpolation weights; offset: () the mean
    of the anchor values (far from every anchor the function returns to it);
    hyperparameters: the source's single-output kernel hyperparameters.
    """

    anchors: Array
    weights: Array
    offset: Array
    hyperparameters: GPHyperparameters

    def __call__(self, X: Array) -> Array:
        theta = self.hyperparameters
        K = theta.kernel(theta.kernel_params, jnp.atleast_2d(X), self.anchors)
        return self.offset + K @ self.weights


def prior_mean_from_summary(summary: dict) -> PriorMean:
    """The prior mean function of a :func:`summarise_posterior` summary."""
    theta = hyperparameters_from_dict(summary["hyperparameters"])
    anchors = jnp.asarray(np.asarray(summary["anchors"], np.float64))
    values = np.asarray(summary["mean"], np.float64)
    if anchors.ndim != 2 or anchors.shape[0] != values.shape[0]:
        raise ValueError(f"summary: anchors {tuple(anchors.shape)} and mean {values.shape}"
                         " do not match; expected (M, d) and (M,)")
    K = np.asarray(theta.kernel(theta.kernel_params, anchors, anchors))
    K = K + _NUGGET * np.mean(np.diag(K)) * np.eye(len(K))
    offset = float(np.mean(values))
    weights = np.linalg.solve(K, values - offset)
    return PriorMean(anchors=anchors, weights=jnp.asarray(weights),
                     offset=jnp.asarray(offset), hyperparameters=theta)


class PriorMeanGP(eqx.Module):
    """A GP with mean function ``a * prior(x) + b`` and an exact GP on the rest.

    residual: the ExactGP fitted to ``y - a prior(x) - b``; prior: the
    PriorMean; a, b: () the fitted scale and shift.
    """

    residual: ExactGP
    prior: PriorMean
    a: Array
    b: Array

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def capacity(self) -> int:
        return self.residual.capacity

    @property
    def hyperparameters(self) -> GPHyperparameters:
        return self.residual.hyperparameters

    def mean_function(self, X: Array) -> Array:
        """``a * prior(X) + b``: (q, 1) in output units."""
        return (self.a * self.prior(X) + self.b)[:, None]

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        """Posterior at Xq (q, d): the residual GP's, shifted by the mean function."""
        Xq = jnp.atleast_2d(Xq)
        post = self.residual.posterior(Xq, full_cov=full_cov)
        return Posterior(mean=post.mean + self.mean_function(Xq), variance=post.variance,
                         covariance=post.covariance)

    def condition(self, Xnew: Array, Ynew: Array) -> PriorMeanGP:
        """Conditioned on more observations (fixed hyperparameters, a and b)."""
        Xnew = jnp.atleast_2d(jnp.asarray(Xnew))
        resid = jnp.asarray(Ynew).reshape(-1, 1) - self.mean_function(Xnew)
        return eqx.tree_at(lambda g: g.residual, self, self.residual.condition(Xnew, resid))


def _scale_and_shift(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares ``a``, ``b`` of ``y ~ a p + b``; with one point, or a prior
    that does not vary over the data, only the shift is fitted (``a = 1``)."""
    if len(y) >= 2 and np.ptp(p) > 1e-12 * (1.0 + np.max(np.abs(p))):
        H = np.stack([p, np.ones_like(p)], axis=1)
        (a, b), *_ = np.linalg.lstsq(H, y, rcond=None)
        if math.isfinite(a) and math.isfinite(b):
            return float(a), float(b)
    return 1.0, float(np.mean(y - p))


def fit_prior_mean_gp(X, Y, prior: PriorMean, *, key: Array, bounds=None,
                      capacity: int | None = None, restarts: int = 4,
                      **fit_kwargs) -> PriorMeanGP:
    """Fit ``a``, ``b`` and the residual GP on (X, Y); warm start from ``prior``.

    X: (n, d) inputs in the units the prior's anchors live in (a campaign's
    encoded unit cube); Y: (n, 1) or (n,) observations; the other arguments
    go to :func:`~surrogates.gp.fit_gp` for the residual.
    """
    X = np.asarray(X, np.float64)
    y = np.asarray(Y, np.float64).reshape(len(X), -1)
    if y.shape[1] != 1:
        raise ValueError(f"fit_prior_mean_gp: Y has {y.shape[1]} outputs; expected one")
    if X.shape[1] != prior.anchors.shape[1]:
        raise ValueError(f"fit_prior_mean_gp: X has {X.shape[1]} inputs; the prior was"
                         f" exported from a task with {prior.anchors.shape[1]}")
    p = np.asarray(prior(jnp.asarray(X)))
    a, b = _scale_and_shift(p, y[:, 0])
    resid = y - (a * p + b)[:, None]
    model = fit_gp(X, resid, key=key, bounds=bounds, capacity=capacity, restarts=restarts,
                   **fit_kwargs)
    return PriorMeanGP(residual=model, prior=prior, a=jnp.asarray(a), b=jnp.asarray(b))
