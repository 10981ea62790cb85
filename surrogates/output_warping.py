"""Output warping: a monotone power transform of observed outputs in front of a surrogate.

A GP assumes Gaussian outputs; the objectives of optimisation problems are often skewed
(Rosenbrock's values span six decades, a cost is bounded below, a yield saturates). A
Yeo-Johnson transform (Yeo & Johnson, Biometrika 2000) of the standardised outputs, its
exponent chosen by maximum likelihood as HEBO does (Cowen-Rivers et al., JAIR 2022),
makes them closer to Gaussian. It is strictly increasing, so the best observation stays
the best and improvement keeps its sign; a model fitted on the warped outputs is queried
through :class:`OutputWarped`, which maps its posterior back to output units.

Shapes: ``n`` observations, ``m`` outputs, ``q`` query points.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jax import Array

from surrogates.gp import Posterior

# The exponent is searched on this interval (1: no warping): a grid of LAMBDA_GRID points
# (steps of 0.05), then LAMBDA_REFINE_ROUNDS finer grids of LAMBDA_REFINE_POINTS across
# the best point's neighbours (each 20 times finer: to about 6e-6).
# Outside it the transform is a near-log of values that differ by orders of magnitude,
# which the finite data cannot tell apart from its neighbours.
LAMBDA_BOUNDS = (-2.0, 4.0)
LAMBDA_GRID = 121
LAMBDA_REFINE_ROUNDS = 3
LAMBDA_REFINE_POINTS = 41
# At least this many finite values to fit an exponent; fewer leave the output as it is.
MIN_WARP_VALUES = 3
# How close (in 1 + lam w) the inverse comes to the end of a bounded range.
_RANGE_MARGIN = 1e-9
# Standard deviations below this (relative to the values' magnitude) leave it as it is.
_FLAT = 1e-12
# An output fitted with ``strong_only`` is warped only where the warp raises the Gaussian
# log-likelihood of its first STRONG_WARP_ROWS finite values by more than
# STRONG_WARP_GAIN nats per value: values that span decades (a load ratio far from its
# limit), not a mild skew, which the warp would distort near a constraint's bound for
# little gain (benchmarks/results/output_warping.md, constraint outputs). The first
# values are a campaign's space-filling design, a sample of the output over the whole
# space; later ones crowd the region a search converges to, whose few distant early
# values make any output look heavy-tailed.
STRONG_WARP_GAIN = 0.75
STRONG_WARP_ROWS = 10


def _branches(v, lam):
    """What the transform and its inverse share: the array module (JAX for JAX values),
    the sign mask of v, v's non-negative and negative parts (0 elsewhere), and the
    divisors lam and 2 - lam with their removable zeros replaced by 1."""
    xp = jnp if isinstance(v, Array) or isinstance(lam, Array) else np
    pos = v >= 0
    lp = xp.where(xp.abs(lam) < 1e-8, 1.0, lam)
    ln = xp.where(xp.abs(lam - 2.0) < 1e-8, 1.0, 2.0 - lam)
    return xp, pos, xp.where(pos, v, 0.0), xp.where(pos, 0.0, v), lp, ln


def yeo_johnson(z, lam):
    """The Yeo-Johnson transform of z (any shape) with exponent lam (broadcasts):
    ((z + 1)^lam - 1) / lam for z >= 0 (log1p at lam = 0), and
    -((1 - z)^(2 - lam) - 1) / (2 - lam) below (-log1p(-z) at lam = 2). Works on NumPy
    and JAX arrays alike."""
    # Both branches are computed and ``where`` picks one: the other may overflow.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xp, pos, zp, zn, lp, ln = _branches(z, lam)
        up = xp.where(xp.abs(lam) < 1e-8, xp.log1p(zp), xp.expm1(lp * xp.log1p(zp)) / lp)
        down = xp.where(xp.abs(lam - 2.0) < 1e-8, -xp.log1p(-zn),
                        -xp.expm1(ln * xp.log1p(-zn)) / ln)
        return xp.where(lam == 1.0, z, xp.where(pos, up, down))  # lam 1: exactly the identity


def yeo_johnson_inverse(w, lam):
    """The inverse of :func:`yeo_johnson` (the transform keeps the sign: w >= 0 iff z >= 0).
    The transform's range is bounded above for lam < 0 (by -1 / lam) and below for
    lam > 2 (by -1 / (lam - 2)); beyond it, where a model's mean may extrapolate, the
    inverse stays finite: it is taken at the range's end less _RANGE_MARGIN."""
    # Both branches are computed and ``where`` picks one: the other may overflow.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xp, pos, wp, wn, lp, ln = _branches(w, lam)
        up = xp.where(xp.abs(lam) < 1e-8, xp.expm1(wp),
                      xp.expm1(xp.log1p(xp.maximum(lp * wp, _RANGE_MARGIN - 1.0)) / lp))
        down = xp.where(xp.abs(lam - 2.0) < 1e-8, -xp.expm1(-wn),
                        -xp.expm1(xp.log1p(xp.maximum(-ln * wn, _RANGE_MARGIN - 1.0)) / ln))
        return xp.where(lam == 1.0, w, xp.where(pos, up, down))


def yeo_johnson_derivative(z, lam):
    """d yeo_johnson(z, lam) / dz: (1 + z)^(lam - 1) above 0, (1 - z)^(1 - lam) below."""
    # Both branches are computed and ``where`` picks one: the other may overflow.
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        xp = jnp if isinstance(z, Array) or isinstance(lam, Array) else np
        pos = z >= 0
        return xp.where(pos, xp.exp((lam - 1.0) * xp.log1p(xp.where(pos, z, 0.0))),
                        xp.exp((1.0 - lam) * xp.log1p(-xp.where(pos, 0.0, z))))


def _log_likelihood(z: np.ndarray, lam):
    """Profile log-likelihood of exponents lam (scalar or (k,)) for standardised values
    z (n,): Gaussian warped values with their own variance, plus the transform's
    log-Jacobian; -inf where the warped values do not spread."""
    lam = np.asarray(lam, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        w = yeo_johnson(z, lam[..., None])
        var = np.var(w, axis=-1)
    jacobian = (lam - 1.0) * float(np.sum(np.sign(z) * np.log1p(np.abs(z))))
    ok = np.isfinite(var) & (var > 0.0)
    return np.where(ok, -0.5 * len(z) * np.log(np.where(ok, var, 1.0)) + jacobian, -np.inf)


def _standardised(y: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """(mean, standard deviation, standardised values) of the finite values y, or None
    when they are too few (MIN_WARP_VALUES) or constant to fit an exponent on."""
    if len(y) < MIN_WARP_VALUES:
        return None
    mu, sd = float(np.mean(y)), float(np.std(y))
    if not sd > _FLAT * max(1.0, abs(mu)):
        return None
    return mu, sd, (y - mu) / sd


def _strong(y: np.ndarray) -> bool:
    """Whether the maximum-likelihood warp of the finite values y raises their Gaussian
    log-likelihood by more than STRONG_WARP_GAIN nats per value."""
    fitted = _standardised(y)
    if fitted is None:
        return False
    z = fitted[2]
    gain = float(_log_likelihood(z, _best_exponent(z))) - float(_log_likelihood(z, 1.0))
    return gain > STRONG_WARP_GAIN * len(z)


def _best_exponent(z: np.ndarray) -> float:
    """The maximum-likelihood exponent in LAMBDA_BOUNDS: the best of a grid, then of
    finer grids around it (LAMBDA_REFINE_ROUNDS of LAMBDA_REFINE_POINTS each, spanning
    the previous grid's neighbours), each scored in one vectorised call. Deterministic."""
    lo, hi = LAMBDA_BOUNDS
    grid = np.linspace(lo, hi, LAMBDA_GRID)
    for _ in range(LAMBDA_REFINE_ROUNDS + 1):
        ll = _log_likelihood(z, grid)
        i = int(np.argmax(ll))
        best, step = float(grid[i]), float(grid[1] - grid[0])
        grid = np.linspace(max(lo, best - step), min(hi, best + step), LAMBDA_REFINE_POINTS)
    return best


class OutputWarp(eqx.Module):
    """Per-output Yeo-Johnson warp of standardised values: w = YJ((y - loc) / scale, lam).

    loc, scale, lam: (m,); an output left as it is has loc 0, scale 1, lam 1 (the
    identity). Fitted with :meth:`fit`; applied to (n, m) values with ``warp(Y)``.
    """

    loc: Array
    scale: Array
    lam: Array

    @classmethod
    def fit(cls, Y: np.ndarray, columns: Sequence[int],
            strong_only: Sequence[int] = ()) -> "OutputWarp":
        """The warp of the outputs ``columns`` of Y (n, m) (the others: the identity),
        each fitted on its finite values: their mean and standard deviation, and the
        maximum-likelihood exponent. An output with fewer than MIN_WARP_VALUES finite
        values, or constant ones, is left as it is; so is one of ``strong_only`` whose
        first STRONG_WARP_ROWS finite values (in row order) a warp would not make more
        likely by STRONG_WARP_GAIN nats per value (it is then only standardised: exponent
        1)."""
        Y = np.asarray(Y, np.float64)
        m = Y.shape[1]
        loc, scale, lam = np.zeros(m), np.ones(m), np.ones(m)
        for k in columns:
            y = Y[:, k][np.isfinite(Y[:, k])]
            fitted = _standardised(y)
            if fitted is None:
                continue
            loc[k], scale[k], z = fitted
            lam[k] = 1.0 if k in strong_only and not _strong(y[:STRONG_WARP_ROWS]) \
                else _best_exponent(z)
        return cls(jnp.asarray(loc), jnp.asarray(scale), jnp.asarray(lam))

    def _params(self, values):
        """(values, loc, scale, lam) as JAX arrays for JAX values (inside a traced
        posterior), else as float64 NumPy arrays (the engine's data and moments)."""
        if isinstance(values, Array):
            return values, self.loc, self.scale, self.lam
        return (np.asarray(values, np.float64),
                *(np.asarray(a) for a in (self.loc, self.scale, self.lam)))

    def __call__(self, Y):
        """Warped values of Y (n, m), NumPy in, NumPy out (JAX in, JAX out)."""
        Y, loc, scale, lam = self._params(Y)
        return yeo_johnson((Y - loc) / scale, lam)

    def inverse(self, W):
        """Output values of warped W (n, m)."""
        W, loc, scale, lam = self._params(W)
        return loc + scale * yeo_johnson_inverse(W, lam)

    def slope(self, Y):
        """dw/dy at Y (n, m): how the warp stretches output units there."""
        Y, loc, scale, lam = self._params(Y)
        return yeo_johnson_derivative((Y - loc) / scale, lam) / scale

    def moments(self, mean, variance):
        """Output-unit (median, variance) of warped Gaussian marginals with ``mean`` and
        ``variance`` (q, m): the median mapped back, the variance through the inverse
        warp's slope there (the delta method). NumPy or JAX, as given."""
        median = self.inverse(mean)
        return median, variance / self.slope(median) ** 2

    def column(self, k: int) -> "OutputWarp":
        """The warp of output k alone, for (n, 1) values of it."""
        return OutputWarp(self.loc[k:k + 1], self.scale[k:k + 1], self.lam[k:k + 1])

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready per-output ``loc``, ``scale`` and ``lambda`` (the audit's record)."""
        return {"loc": np.asarray(self.loc).tolist(), "scale": np.asarray(self.scale).tolist(),
                "lambda": np.asarray(self.lam).tolist()}


class OutputWarped(eqx.Module):
    """A model fitted on warped outputs, queried in output units.

    ``posterior`` gives, per output, the back-transformed posterior median (the warp is
    monotone, so the median maps to the median) and the linearised variance
    (delta method: the warped variance over the warp's squared slope there); a joint
    covariance is scaled the same way. ``model`` stays the warped-space Gaussian that
    acquisitions work with, on ``warp(Y)``.
    """

    model: eqx.Module
    warp: OutputWarp

    @property
    def num_outputs(self) -> int:
        return self.model.num_outputs

    def posterior(self, Xq: Array, full_cov: bool = False) -> Posterior:
        post = self.model.posterior(Xq, full_cov=full_cov)
        mean = self.warp.inverse(post.mean)
        gain = 1.0 / self.warp.slope(mean)  # dy/dw at the median: (q, m)
        covariance = None
        if post.covariance is not None:
            g = gain.T  # (m, q)
            covariance = post.covariance * g[:, :, None] * g[:, None, :]
        return Posterior(mean, post.variance * gain ** 2, covariance)


def unwarp(model) -> tuple[Any, OutputWarp | None]:
    """(the model acquisitions work with, its output warp): an ``OutputWarped`` model's
    warped-space Gaussian and warp, any other model as it is with None."""
    if isinstance(model, OutputWarped):
        return model.model, model.warp
    return model, None


__all__ = ["LAMBDA_BOUNDS", "MIN_WARP_VALUES", "OutputWarp", "OutputWarped", "STRONG_WARP_GAIN",
           "STRONG_WARP_ROWS",
           "unwarp", "yeo_johnson", "yeo_johnson_derivative", "yeo_johnson_inverse"]
