"""Covariance functions on scaled inputs, composable with ``+`` and ``*``.

A kernel is a static description (an ``equinox.Module`` with no array
leaves); its hyperparameters live in a separate pytree of unconstrained
values, so one kernel serves every restart, output and fit under ``vmap``:

    kernel = Matern52() + Linear()
    params = kernel.init(d)                 # prior medians, unconstrained
    K = kernel(params, X1, X2)              # (n, p) Gram matrix
    lp = kernel.log_prior(params)           # scalar

Sums and products hold their parts' parameters as tuples. ``active_dims``
restricts a kernel to some input columns, which is how a continuous kernel
is multiplied with a :class:`Categorical` one over one-hot groups.
Inputs are the model's scaled inputs, the unit cube: periods and the linear
kernel's centre are in those units. Distances, priors and the closed-form
covariances the classes use live in :mod:`surrogates.kernel_functions`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

# The building blocks, re-exported: importable from surrogates.kernels as before.
from surrogates.kernel_functions import (
    LOG_PERIOD_PRIOR,
    LOG_PERIODIC_LENGTHSCALE_PRIOR,
    LOG_VARIANCE_PRIOR,
    LOG_WARP_PRIOR,
    LOG_WEIGHT_PRIOR,
    MIN_SQ_DIST,
    Params,
    float64_full,
    kumaraswamy_cdf,
    lengthscale_prior,  # noqa: F401
    lengthscale_priors,
    matern52,  # noqa: F401
    matern52_profile,
    normal_logpdf,
    scaled_sq_dist,
    sq_dist,
)


class Kernel(eqx.Module):
    """A covariance function: ``init``, ``__call__``, ``diag``, ``log_prior``, ``gram_vjp``.

    active_dims: input columns the kernel sees (None: all), static.
    """

    active_dims: tuple[int, ...] | None = eqx.field(static=True, default=None, kw_only=True)

    name: ClassVar[str] = ""

    def _select(self, X: Array) -> Array:
        return X if self.active_dims is None else X[..., list(self.active_dims)]

    def num_dims(self, d: int) -> int:
        """Columns this kernel sees when the inputs have d columns."""
        return d if self.active_dims is None else len(self.active_dims)

    def init(self, d: int) -> Params:
        """Unconstrained parameters at their prior medians; d: input columns."""
        raise NotImplementedError

    def gram(self, params: Params, X1: Array, X2: Array) -> Array:
        """Covariance of already selected columns: (n, k), (p, k) -> (n, p)."""
        raise NotImplementedError

    def __call__(self, params: Params, X1: Array, X2: Array) -> Array:
        """Gram matrix. X1: (n, d), X2: (p, d) scaled inputs. Returns (n, p)."""
        return self.gram(params, self._select(X1), self._select(X2))

    def diag(self, params: Params, X: Array) -> Array:
        """k(x, x) for each row of X: (n, d) -> (n,), without the n x n matrix."""
        Z = self._select(X)
        return jnp.diagonal(self.gram(params, Z, Z))

    def log_prior(self, params: Params) -> Array:
        """Log prior density of the unconstrained parameters (a scalar)."""
        raise NotImplementedError

    def gram_vjp(self, params: Params, X: Array, cotangent: Array) -> Params:
        """d <cotangent, K(X, X)> / d params: (n, d), (n, n) -> a params pytree.

        What a marginal likelihood's gradient needs. The default is reverse
        mode through the Gram matrix; kernels may override it with a closed form.
        """
        _, vjp = jax.vjp(lambda p: self(p, X, X), params)
        return vjp(cotangent)[0]

    def __add__(self, other: Kernel) -> Sum:
        return Sum(_parts(self, Sum) + _parts(other, Sum))

    def __mul__(self, other: Kernel) -> Product:
        return Product(_parts(self, Product) + _parts(other, Product))


def _parts(kernel: Kernel, cls: type) -> tuple[Kernel, ...]:
    if not isinstance(kernel, Kernel):
        raise TypeError(f"can only combine kernels; got {type(kernel).__name__}")
    if type(kernel) is cls and kernel.active_dims is None:
        return kernel.kernels
    return (kernel,)


class Stationary(Kernel):
    """s * profile(r^2), r the ARD-scaled distance; parameters
    ``{"log_lengthscale": (k,), "log_variance": ()}``.

    descriptor_dims: input columns (numbered as ``active_dims``) that describe a
    substance together (its one-hot, descriptors, fingerprint bits), static.
    Their log length-scales share a dimension-scaled prior over their number;
    every other column's is flat (``kernel_functions.lengthscale_priors``).
    """

    descriptor_dims: tuple[int, ...] = eqx.field(static=True, default=(), kw_only=True)

    def lengthscale_priors(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(k,) locations and scales of the log length-scales' priors, k the columns seen."""
        seen = range(k) if self.active_dims is None else self.active_dims
        marked = set(self.descriptor_dims)
        return lengthscale_priors(k, [i for i, c in enumerate(seen) if c in marked])

    def profile(self, r2: Array) -> Array:
        raise NotImplementedError

    def profile_and_derivative(self, r2: Array) -> tuple[Array, Array]:
        """profile(r2) and its derivative in r2, elementwise."""
        return jax.jvp(self.profile, (r2,), (jnp.ones_like(r2),))

    def init(self, d: int) -> Params:
        k = self.num_dims(d)
        loc, _ = self.lengthscale_priors(k)
        return {"log_lengthscale": jnp.asarray(loc),
                "log_variance": float64_full((), 0.0)}

    def gram(self, params, X1, X2):
        r2 = scaled_sq_dist(X1, X2, jnp.exp(params["log_lengthscale"]))
        return jnp.exp(params["log_variance"]) * self.profile(r2)

    def diag(self, params, X):
        return jnp.full(X.shape[:-1], jnp.exp(params["log_variance"]))

    def gram_vjp(self, params, X, cotangent):
        # Closed form, fewer operations than reverse mode through the Gram:
        # d r2_ab / d log l_j = -2 (z_aj - z_bj)^2, summed against M with
        # sum_ab M_ab (z_aj - z_bj)^2 = z_j^2 . (M 1 + M^T 1) - 2 z_j . (M z_j).
        Z = self._select(X) / jnp.exp(params["log_lengthscale"])
        k, dk = self.profile_and_derivative(sq_dist(Z, Z))
        variance = jnp.exp(params["log_variance"])
        M = cotangent * dk * variance
        sums = jnp.sum(M, axis=0) + jnp.sum(M, axis=1)
        quad = jnp.sum(Z * Z * sums[:, None], axis=0) - 2.0 * jnp.sum(Z * (M @ Z), axis=0)
        return {"log_lengthscale": -2.0 * quad,
                "log_variance": variance * jnp.sum(cotangent * k)}

    def log_prior(self, params):
        ll = params["log_lengthscale"]
        return (jnp.sum(normal_logpdf(ll, *self.lengthscale_priors(ll.shape[-1])))
                + normal_logpdf(params["log_variance"], *LOG_VARIANCE_PRIOR))


class Matern12(Stationary):
    """Matérn-1/2 (exponential): s exp(-r)."""

    name: ClassVar[str] = "matern12"

    def profile(self, r2):
        return jnp.exp(-jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST)))

    def profile_and_derivative(self, r2):
        r = jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST))
        k = jnp.exp(-r)
        # -exp(-r) / 2r, singular at r = 0. Compiled code can leave a round-off
        # r2 of 1e-33 on the diagonal, so pairs closer than r = 1e-6 get 0:
        # their true share of a length-scale gradient, dk * r2, is below 1e-6.
        return k, jnp.where(r2 > 1e-12, -0.5 * k / r, 0.0)


class Matern32(Stationary):
    """Matérn-3/2: s (1 + sqrt3 r) exp(-sqrt3 r)."""

    name: ClassVar[str] = "matern32"

    def profile(self, r2):
        s3r = math.sqrt(3.0) * jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST))
        return (1.0 + s3r) * jnp.exp(-s3r)

    def profile_and_derivative(self, r2):
        s3r = math.sqrt(3.0) * jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST))
        e = jnp.exp(-s3r)
        return (1.0 + s3r) * e, -1.5 * e


class Matern52(Stationary):
    """Matérn-5/2: s (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r); the default."""

    name: ClassVar[str] = "matern52"

    def profile(self, r2):
        return matern52_profile(r2)

    def profile_and_derivative(self, r2):
        s5r = math.sqrt(5.0) * jnp.sqrt(jnp.maximum(r2, MIN_SQ_DIST))
        e = jnp.exp(-s5r)
        return (1.0 + s5r + (5.0 / 3.0) * r2) * e, -(5.0 / 6.0) * (1.0 + s5r) * e


class RBF(Stationary):
    """Squared exponential: s exp(-r^2 / 2)."""

    name: ClassVar[str] = "rbf"

    def profile(self, r2):
        return jnp.exp(-0.5 * r2)

    def profile_and_derivative(self, r2):
        k = jnp.exp(-0.5 * r2)
        return k, -0.5 * k


class Linear(Kernel):
    """ARD linear: sum_j v_j (x_j - c)(x'_j - c), c = ``center`` (unit-cube units).

    Parameters ``{"log_variance": (k,)}``; the prior median 4 / k gives a
    corner of the cube unit prior variance, like the standardised outputs.
    """

    center: float = eqx.field(static=True, default=0.5, kw_only=True)
    name: ClassVar[str] = "linear"

    def init(self, d):
        k = self.num_dims(d)
        return {"log_variance": float64_full((k,), math.log(4.0 / k))}

    def gram(self, params, X1, X2):
        v = jnp.exp(params["log_variance"])
        return ((X1 - self.center) * v) @ (X2 - self.center).T

    def diag(self, params, X):
        Z = self._select(X) - self.center
        return jnp.sum(Z * Z * jnp.exp(params["log_variance"]), axis=-1)

    def log_prior(self, params):
        lv = params["log_variance"]
        return jnp.sum(normal_logpdf(lv, math.log(4.0 / lv.shape[-1]), 2.0))


class Periodic(Kernel):
    """ARD periodic (MacKay): s exp(-2 sum_j sin^2(pi (x_j - x'_j) / p_j) / l_j^2).

    Parameters ``{"log_lengthscale": (k,), "log_period": (k,), "log_variance": ()}``.
    """

    name: ClassVar[str] = "periodic"

    def init(self, d):
        k = self.num_dims(d)
        return {"log_lengthscale": float64_full((k,), LOG_PERIODIC_LENGTHSCALE_PRIOR[0]),
                "log_period": float64_full((k,), LOG_PERIOD_PRIOR[0]),
                "log_variance": float64_full((), 0.0)}

    def gram(self, params, X1, X2):
        period, ls = jnp.exp(params["log_period"]), jnp.exp(params["log_lengthscale"])
        total = jnp.zeros((X1.shape[0], X2.shape[0]), dtype=jnp.result_type(X1, X2))
        for j in range(X1.shape[-1]):  # column by column, as in sq_dist
            # sin^2 is even and smooth, so the signed difference needs no abs.
            s = jnp.sin(math.pi * (X1[:, j, None] - X2[None, :, j]) / period[j]) / ls[j]
            total = total + s * s
        return jnp.exp(params["log_variance"]) * jnp.exp(-2.0 * total)

    def diag(self, params, X):
        return jnp.full(X.shape[:-1], jnp.exp(params["log_variance"]))

    def log_prior(self, params):
        return (jnp.sum(normal_logpdf(params["log_lengthscale"], *LOG_PERIODIC_LENGTHSCALE_PRIOR))
                + jnp.sum(normal_logpdf(params["log_period"], *LOG_PERIOD_PRIOR))
                + normal_logpdf(params["log_variance"], *LOG_VARIANCE_PRIOR))


class Categorical(Kernel):
    """Exchangeable (Hamming) kernel over one-hot groups of columns.

    k = exp(-sum_g w_g [x_g != x'_g]), written as exp(-sum_g w_g |x_g - x'_g|^2 / 2),
    which is the same on one-hot vectors and stays a valid (Gaussian) kernel on
    the relaxed one-hots an acquisition optimiser may pass. Unit variance, as a
    factor of a product, unless ``scaled`` (a term of a sum, or the whole kernel).
    groups: column indices of each group, of the inputs this kernel receives.
    Parameters ``{"log_weight": (G,)}``, and ``"log_variance"`` when scaled.
    """

    groups: tuple[tuple[int, ...], ...] = eqx.field(static=True, default=(), kw_only=True)
    scaled: bool = eqx.field(static=True, default=False, kw_only=True)
    name: ClassVar[str] = "categorical"

    def __check_init__(self):
        if not self.groups or any(len(g) < 1 for g in self.groups):
            raise ValueError(f"categorical kernel needs non-empty column groups; got {self.groups}")

    def init(self, d):
        params = {"log_weight": float64_full((len(self.groups),), LOG_WEIGHT_PRIOR[0])}
        if self.scaled:
            params["log_variance"] = float64_full((), LOG_VARIANCE_PRIOR[0])
        return params

    def _scale(self, params):
        return jnp.exp(params["log_variance"]) if self.scaled else 1.0

    def gram(self, params, X1, X2):
        w = jnp.exp(params["log_weight"])
        total = 0.0
        for g, wg in zip(self.groups, w):  # a few static groups
            A, B = X1[:, list(g)], X2[:, list(g)]
            sq = (jnp.sum(A * A, -1)[:, None] + jnp.sum(B * B, -1)[None, :] - 2.0 * A @ B.T)
            total = total + 0.5 * wg * jnp.maximum(sq, 0.0)
        return self._scale(params) * jnp.exp(-total)

    def diag(self, params, X):
        return self._scale(params) * jnp.ones(X.shape[:-1])

    def log_prior(self, params):
        lp = jnp.sum(normal_logpdf(params["log_weight"], *LOG_WEIGHT_PRIOR))
        if self.scaled:
            lp = lp + normal_logpdf(params["log_variance"], *LOG_VARIANCE_PRIOR)
        return lp


class Sum(Kernel):
    """k1 + k2 + ...; parameters: a tuple, one entry per part."""

    kernels: tuple[Kernel, ...] = ()
    name: ClassVar[str] = "sum"

    def init(self, d):
        k = self.num_dims(d)
        return tuple(kern.init(k) for kern in self.kernels)

    def gram(self, params, X1, X2):
        return sum(kern(p, X1, X2) for kern, p in zip(self.kernels, params))

    def diag(self, params, X):
        Z = self._select(X)
        return sum(kern.diag(p, Z) for kern, p in zip(self.kernels, params))

    def log_prior(self, params):
        return sum(kern.log_prior(p) for kern, p in zip(self.kernels, params))

    def gram_vjp(self, params, X, cotangent):
        Z = self._select(X)  # each part's own (closed-form) vjp, same cotangent
        return tuple(kern.gram_vjp(p, Z, cotangent) for kern, p in zip(self.kernels, params))


class Product(Kernel):
    """k1 * k2 * ...; parameters: a tuple, one entry per part."""

    kernels: tuple[Kernel, ...] = ()
    name: ClassVar[str] = "product"

    def init(self, d):
        k = self.num_dims(d)
        return tuple(kern.init(k) for kern in self.kernels)

    def gram(self, params, X1, X2):
        out = self.kernels[0](params[0], X1, X2)
        for kern, p in zip(self.kernels[1:], params[1:]):
            out = out * kern(p, X1, X2)
        return out

    def diag(self, params, X):
        Z = self._select(X)
        out = self.kernels[0].diag(params[0], Z)
        for kern, p in zip(self.kernels[1:], params[1:]):
            out = out * kern.diag(p, Z)
        return out

    def log_prior(self, params):
        return sum(kern.log_prior(p) for kern, p in zip(self.kernels, params))

    def gram_vjp(self, params, X, cotangent):
        # d <C, K1 * K2 * ...> / d p_i = d <C * prod_{j != i} K_j, K_i> / d p_i.
        Z = self._select(X)
        grams = [kern(p, Z, Z) for kern, p in zip(self.kernels, params)]
        out = []
        for i, (kern, p) in enumerate(zip(self.kernels, params)):
            others = cotangent
            for j, G in enumerate(grams):
                if j != i:
                    others = others * G
            out.append(kern.gram_vjp(p, Z, others))
        return tuple(out)


class Warped(Kernel):
    """``kernel`` on inputs warped per column by a Kumaraswamy CDF (Snoek et al. 2014).

    dims: the columns (of those this kernel receives) to warp, None for all;
    the others pass unchanged. Parameters
    ``{"log_a": (w,), "log_b": (w,), "kernel": inner parameters}``, with
    log-normal priors centred on the identity warp a = b = 1.
    """

    kernel: Kernel = None
    dims: tuple[int, ...] | None = eqx.field(static=True, default=None, kw_only=True)
    name: ClassVar[str] = "warped"

    def _warp_dims(self, k: int) -> list[int]:
        return list(range(k)) if self.dims is None else list(self.dims)

    def init(self, d):
        k = self.num_dims(d)
        w = len(self._warp_dims(k))
        return {"log_a": float64_full((w,), 0.0), "log_b": float64_full((w,), 0.0),
                "kernel": self.kernel.init(k)}

    def warp(self, params: Params, X: Array) -> Array:
        """Warped copy of X (columns this kernel received): (n, k) -> (n, k)."""
        X = jnp.asarray(X)
        cols = self._warp_dims(X.shape[-1])
        return X.at[..., cols].set(kumaraswamy_cdf(X[..., cols], params["log_a"], params["log_b"]))

    def gram(self, params, X1, X2):
        return self.kernel(params["kernel"], self.warp(params, X1), self.warp(params, X2))

    def diag(self, params, X):
        Z = self._select(X)
        return self.kernel.diag(params["kernel"], self.warp(params, Z))

    def log_prior(self, params):
        return (jnp.sum(normal_logpdf(params["log_a"], *LOG_WARP_PRIOR))
                + jnp.sum(normal_logpdf(params["log_b"], *LOG_WARP_PRIOR))
                + self.kernel.log_prior(params["kernel"]))


# --- building kernels from names and plain data ------------------------------

KERNELS: dict[str, type[Kernel]] = {
    cls.name: cls for cls in (Matern12, Matern32, Matern52, RBF, Linear, Periodic,
                              Categorical, Sum, Product, Warped)
}
_BASE = ("matern12", "matern32", "matern52", "rbf", "linear", "periodic")
_ALIASES = {"se": "rbf", "squared_exponential": "rbf", "exponential": "matern12"}


def with_categorical(kernel: Kernel, groups: Sequence[Sequence[int]], d: int,
                     structure: str = "product") -> Kernel:
    """``kernel`` on the non-categorical columns combined with a :class:`Categorical`
    on ``groups``.

    groups: one-hot column groups of the d input columns (as ``Domain.onehot``).
    structure: ``"product"``, k_cont * k_cat, where a value is only informative
    about settings that share every category; or ``"additive"``, main effects
    plus the interaction: each categorical factor on its own, plus the
    continuous kernel, plus their product (BoTorch's MixedSingleTaskGP sums the
    continuous and categorical parts the same way). Additive structure lets a
    good solvent found with one ligand raise the prediction for the others, which
    matters when most combinations are never measured.
    """
    if structure not in ("product", "additive"):
        raise ValueError(f"structure must be 'product' or 'additive'; got {structure!r}")
    groups = tuple(tuple(int(c) for c in g) for g in groups)
    cat = {c for g in groups for c in g}
    rest = tuple(c for c in range(d) if c not in cat)
    if rest and kernel.active_dims is None:
        kernel = dataclasses.replace(kernel, active_dims=rest)
    if structure == "product":
        return kernel * Categorical(groups=groups) if rest else Categorical(groups=groups)
    mains = [Categorical(groups=(g,), scaled=True) for g in groups]
    if rest:
        return Sum(tuple(mains) + (kernel, kernel * Categorical(groups=groups)))
    return Sum(tuple(mains) + (Categorical(groups=groups, scaled=True),))


def with_descriptor_columns(kernel: Kernel, columns: Sequence[int]) -> Kernel:
    """``kernel`` with each stationary part told which of its input ``columns``
    describe substances (``Stationary.descriptor_dims``), through the column
    selections of sums, products and warpings on the way down.

    columns: indices of the inputs ``kernel`` receives.
    """
    marked = {int(c) for c in columns}
    if isinstance(kernel, Stationary):
        return dataclasses.replace(kernel, descriptor_dims=tuple(sorted(marked)))
    inner = marked if kernel.active_dims is None else \
        {i for i, c in enumerate(kernel.active_dims) if c in marked}
    if isinstance(kernel, (Sum, Product)):
        return dataclasses.replace(
            kernel, kernels=tuple(with_descriptor_columns(k, inner) for k in kernel.kernels))
    if isinstance(kernel, Warped):
        return dataclasses.replace(kernel, kernel=with_descriptor_columns(kernel.kernel, inner))
    return kernel


def parse_kernel(expr: str) -> Kernel:
    """A kernel from an expression such as ``"matern52 + linear"`` or ``"rbf[0,1] * periodic[2]"``.

    Names: matern12, matern32, matern52, rbf, linear, periodic; ``*`` binds
    tighter than ``+``; parentheses group; ``name[i, j]`` sets active_dims.
    """
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[0-9,\s]*\])?|[+*()]|\S", expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def atom() -> Kernel:
        tok = take() if peek() is not None else None
        if tok == "(":
            k = sum_()
            if take() != ")":
                raise ValueError(f"kernel {expr!r}: missing ')'")
            return k
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9,\s]*)\])?", tok or "")
        if m is None:
            raise ValueError(f"kernel {expr!r}: unexpected {tok!r}")
        name = _ALIASES.get(m.group(1).lower(), m.group(1).lower())
        if name not in _BASE:
            raise ValueError(f"kernel {expr!r}: unknown kernel {m.group(1)!r};"
                             f" choose from {', '.join(_BASE)}")
        dims = None
        if m.group(2) is not None:
            dims = tuple(int(s) for s in m.group(2).split(",") if s.strip())
        return KERNELS[name](active_dims=dims)

    def product() -> Kernel:
        k = atom()
        while peek() == "*":
            take()
            k = k * atom()
        return k

    def sum_() -> Kernel:
        k = product()
        while peek() == "+":
            take()
            k = k + product()
        return k

    out = sum_()
    if peek() is not None:
        raise ValueError(f"kernel {expr!r}: unexpected {peek()!r}")
    return out


def kernel_to_dict(kernel: Kernel) -> dict:
    """A plain, JSON-ready description of a kernel (inverse of :func:`kernel_from_dict`)."""
    out: dict[str, Any] = {"type": kernel.name}
    if kernel.active_dims is not None:
        out["active_dims"] = list(kernel.active_dims)
    if isinstance(kernel, (Sum, Product)):
        out["kernels"] = [kernel_to_dict(k) for k in kernel.kernels]
    elif isinstance(kernel, Warped):
        out["kernel"] = kernel_to_dict(kernel.kernel)
        if kernel.dims is not None:
            out["dims"] = list(kernel.dims)
    elif isinstance(kernel, Categorical):
        out["groups"] = [list(g) for g in kernel.groups]
        if kernel.scaled:
            out["scaled"] = True
    elif isinstance(kernel, Linear):
        out["center"] = kernel.center
    elif isinstance(kernel, Stationary) and kernel.descriptor_dims:
        out["descriptor_dims"] = list(kernel.descriptor_dims)
    return out


def kernel_from_dict(data: dict) -> Kernel:
    """The kernel that :func:`kernel_to_dict` described."""
    kind = data["type"]
    dims = data.get("active_dims")
    kw: dict[str, Any] = {"active_dims": None if dims is None else tuple(dims)}
    if kind in ("sum", "product"):
        return KERNELS[kind](tuple(kernel_from_dict(k) for k in data["kernels"]), **kw)
    if kind == "warped":
        wd = data.get("dims")
        return Warped(kernel_from_dict(data["kernel"]), dims=None if wd is None else tuple(wd),
                      **kw)
    if kind == "categorical":
        return Categorical(groups=tuple(tuple(g) for g in data["groups"]),
                           scaled=bool(data.get("scaled", False)), **kw)
    if kind == "linear":
        return Linear(center=float(data.get("center", 0.5)), **kw)
    if kind not in KERNELS:
        raise ValueError(f"unknown kernel type {kind!r}")
    if "descriptor_dims" in data:
        kw["descriptor_dims"] = tuple(int(c) for c in data["descriptor_dims"])
    return KERNELS[kind](**kw)
