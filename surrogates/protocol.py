"""The surrogate protocol: what every fitted model offers, and what it may add.

A surrogate is fitted on encoded inputs ``X: (n, d)`` (float64, usually in
[0, 1]) and outputs ``Y: (n, m)`` and returns a fitted model: an immutable
pytree (an ``equinox.Module``) that crosses ``jit``. Acquisition functions see
only these protocols, so a GP, a deep ensemble and a fully Bayesian model are
interchangeable.

- :class:`Surrogate`: ``num_outputs`` and ``posterior(Xq, full_cov)``.
- :class:`SurrogatePosterior`: what ``posterior`` returns: mean and variance
  (q, m), the covariance (m, q, q) when asked, and joint reparameterised samples.
- Capabilities some models add: :class:`Conditionable` (``condition`` on
  extra observations with fixed hyperparameters: Kriging-believer fantasies),
  :class:`SharesFixedJoint` (joint posteriors against a fixed point set with
  that set's share of the work done once) and :class:`ExactFactor` (the
  factorised training data, for closed-form leave-one-out).
- :class:`FitFunction`: ``fit(X, Y, *, key, **options) -> Surrogate``, the
  form of every entry of ``surrogates.registry.MODELS``.

Shapes: ``q`` query points, ``m`` outputs, ``p`` fixed points, ``d`` inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from jax import Array


@runtime_checkable
class SurrogatePosterior(Protocol):
    """A posterior at q points, in output units.

    mean, variance: (q, m); covariance: (m, q, q) (outputs independent) when
    ``posterior(..., full_cov=True)`` was asked, else None.
    """

    mean: Array
    variance: Array
    covariance: Array | None

    def sample(self, key: Array, num_samples: int) -> Array:
        """Joint reparameterised draws, (num_samples, q, m); needs the covariance."""
        ...


@runtime_checkable
class Surrogate(Protocol):
    """A fitted model: a pytree whose posterior acquisitions read."""

    @property
    def num_outputs(self) -> int:
        """m, the number of modelled outputs."""
        ...

    def posterior(self, Xq: Array, full_cov: bool = False) -> SurrogatePosterior:
        """The posterior at Xq: (q, d) encoded inputs (latent, unless a model says
        otherwise)."""
        ...


@runtime_checkable
class Conditionable(Surrogate, Protocol):
    """A surrogate that can be conditioned on extra observations with its
    hyperparameters fixed: batches and pending trials then use Kriging-believer
    fantasies (the model believes its own predicted mean there)."""

    def condition(self, Xnew: Array, Ynew: Array) -> Conditionable:
        """The model given Xnew: (k, d) observed at Ynew: (k, m), in output units."""
        ...


@runtime_checkable
class SharesFixedJoint(Protocol):
    """A surrogate that prepares joint posteriors against a fixed point set once.

    ``fixed_joint(X_fixed)(Xq)`` returns the blocks of the joint posterior over
    ``(X_fixed, Xq)`` that depend on Xq: mean and variance (q, m), cross-covariance
    (m, p, q) and covariance (m, q, q), as the full posterior would.
    """

    def fixed_joint(self, X_fixed: Array) -> Callable[[Array], tuple[Array, Array, Array, Array]]:
        ...


@runtime_checkable
class ExactFactor(Protocol):
    """A GP that keeps its factorised training data, from which closed-form
    leave-one-out predictions follow without refitting.

    cholesky: (m, N, N) factors of the noisy Gram matrices; alpha: (m, N)
    weights K^-1 (y - mean); Y: (N, m) standardised targets; mask: (N, m) 1 where
    observed; y_loc, y_scale: (m,) output standardisation.
    """

    cholesky: Array
    alpha: Array
    Y: Array
    mask: Array
    y_loc: Array
    y_scale: Array


class FitFunction(Protocol):
    """``fit(X, Y, *, key, **options) -> Surrogate``.

    X: (n, d) encoded inputs; Y: (n, m) outputs (NaN where missing); key: a
    PRNG key for restarts, initialisations and minibatches; options: the
    model's own settings (capacity, restarts, layers, ...).
    """

    def __call__(self, X: Any, Y: Any, *, key: Array, **options: Any) -> Surrogate:
        ...


__all__ = ["Conditionable", "ExactFactor", "FitFunction", "SharesFixedJoint", "Surrogate",
           "SurrogatePosterior"]
