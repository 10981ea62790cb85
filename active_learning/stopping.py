"""Stopping rules: when is a campaign done?

Each rule is a small frozen dataclass; calling it on a ``StoppingState``
returns ``(stop, reason)``. ``first_triggered`` applies several in order. The
state is plain data that the caller fills after each round (no model, no
files), so rules are pure and trivially testable.

- ``Budget``: a number of completed evaluations is reached.
- ``Target``: the best value reaches a target (direction-aware).
- ``AcquisitionBelow``: the best acquisition value of the last proposal fell
  below a threshold (expected improvement so small that more runs are unlikely
  to pay); threshold and value may each be given in log or linear units.
- ``RegretBound``: the optimism gap ``max UCB(candidates) - max LCB(observed)``
  bounds the simple regret of the best observed point (with the confidence of
  the bounds); stop below ``eps``. ``confidence_gap`` computes it from a model.
- ``NoImprovement``: the best value has not improved by more than a relative
  tolerance over the last ``rounds`` rounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import equinox as eqx
import jax.numpy as jnp
from jax import Array

from active_learning.pool import score_pool

_DIRECTIONS = ("maximize", "minimize")


def _sign(direction: str) -> float:
    if direction not in _DIRECTIONS:
        raise ValueError(f"direction: got {direction!r}; expected 'maximize' or 'minimize'")
    return 1.0 if direction == "maximize" else -1.0


@dataclass(frozen=True)
class StoppingState:
    """What stopping rules look at, filled by the caller after each round.

    n_evaluations: completed experiments so far; best_history: best-so-far
    objective value after each round, oldest first, in the objective's units;
    direction: 'maximize' or 'minimize'; acquisition_value: the best
    acquisition value of the last proposal (None before any model);
    acquisition_log: whether that value is a logarithm (log-EI);
    ucb_max / lcb_max: max upper bound over candidates and max lower bound at
    observed points, both in "larger is better" units (sign-adjusted).
    """

    n_evaluations: int = 0
    best_history: tuple[float, ...] = ()
    direction: str = "maximize"
    acquisition_value: float | None = None
    acquisition_log: bool = False
    ucb_max: float | None = None
    lcb_max: float | None = None

    def __post_init__(self) -> None:
        _sign(self.direction)
        object.__setattr__(self, "best_history", tuple(float(v) for v in self.best_history))


Decision = tuple[bool, str]
_GO: Decision = (False, "")


@dataclass(frozen=True)
class Budget:
    """Stop once ``max_evaluations`` experiments are complete."""

    max_evaluations: int

    def __call__(self, state: StoppingState) -> Decision:
        if state.n_evaluations >= self.max_evaluations:
            return True, (f"budget reached: {state.n_evaluations} of {self.max_evaluations}"
                          " evaluations")
        return _GO


@dataclass(frozen=True)
class Target:
    """Stop once the best value reaches ``value`` (>= when maximising, <= when minimising).

    direction: overrides the state's direction when given.
    """

    value: float
    direction: str | None = None

    def __call__(self, state: StoppingState) -> Decision:
        if not state.best_history or math.isnan(state.best_history[-1]):
            return _GO
        sign = _sign(self.direction or state.direction)
        best = state.best_history[-1]
        if sign * best >= sign * self.value:
            word = ">=" if sign > 0 else "<="
            return True, f"target reached: best {best:.6g} {word} {self.value:.6g}"
        return _GO


@dataclass(frozen=True)
class AcquisitionBelow:
    """Stop when the last best acquisition value is below ``threshold``.

    log: whether ``threshold`` is a logarithm (e.g. -10 for EI < 4.5e-5);
    the state's value is compared in the same units whichever it is in.
    """

    threshold: float
    log: bool = False

    def __call__(self, state: StoppingState) -> Decision:
        value = state.acquisition_value
        if value is None or math.isnan(value):
            return _GO
        log_value = value if state.acquisition_log else _log(value)
        log_threshold = self.threshold if self.log else _log(self.threshold)
        if log_value < log_threshold:
            return True, (f"acquisition value exp({log_value:.4g}) below threshold"
                          f" exp({log_threshold:.4g})")
        return _GO


def _log(v: float) -> float:
    return math.log(v) if v > 0 else -math.inf


@dataclass(frozen=True)
class RegretBound:
    """Stop when ``ucb_max - lcb_max < eps``: no candidate can beat the best observed
    point by more than eps (under the model's confidence bounds)."""

    eps: float

    def __call__(self, state: StoppingState) -> Decision:
        if state.ucb_max is None or state.lcb_max is None:
            return _GO
        gap = state.ucb_max - state.lcb_max
        if gap < self.eps:
            return True, f"regret bound {gap:.4g} below {self.eps:.4g}"
        return _GO


@dataclass(frozen=True)
class NoImprovement:
    """Stop when the best value improved by at most ``rel_tol * |best|`` over the last
    ``rounds`` rounds (rel_tol = 0: no strict improvement at all)."""

    rounds: int
    rel_tol: float = 0.0

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds: got {self.rounds}; expected at least 1")
        if self.rel_tol < 0:
            raise ValueError(f"rel_tol: got {self.rel_tol}; expected >= 0")

    def __call__(self, state: StoppingState) -> Decision:
        history = state.best_history
        if len(history) <= self.rounds:
            return _GO
        then, now = history[-1 - self.rounds], history[-1]
        if not (math.isfinite(then) and math.isfinite(now)):
            return _GO
        gain = _sign(state.direction) * (now - then)
        if gain <= self.rel_tol * abs(then):
            return True, (f"no improvement above {self.rel_tol:g} (relative) in the last"
                          f" {self.rounds} rounds (best {now:.6g})")
        return _GO


def first_triggered(rules: Sequence, state: StoppingState) -> Decision:
    """The first rule that says stop, as (True, its reason); else (False, "")."""
    for rule in rules:
        stop, reason = rule(state)
        if stop:
            return True, reason
    return _GO


RULES = {
    "budget": Budget,
    "target": Target,
    "acquisition_below": AcquisitionBelow,
    "regret_bound": RegretBound,
    "no_improvement": NoImprovement,
}


def rule_from_dict(spec: dict):
    """Build a rule from ``{"type": name, **fields}`` (the YAML form); ValueError
    naming the type or field when wrong."""
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in RULES:
        raise ValueError(f"type: got {kind!r}; expected one of {sorted(RULES)}")
    cls = RULES[kind]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ValueError(f"{kind}: unknown field(s) {unknown}; expected {sorted(allowed)}")
    try:
        return cls(**spec)
    except TypeError as err:  # a missing required field
        raise ValueError(f"{kind}: {err}") from None


class _Bound(eqx.Module):
    """mean +- sqrt(beta) std of one output, sign-adjusted so larger is better."""

    model: eqx.Module
    beta: Array
    sign: Array
    side: Array  # +1 upper, -1 lower
    output: int = eqx.field(static=True)

    def __call__(self, X: Array) -> Array:
        post = self.model.posterior(X)
        return (self.sign * post.mean[:, self.output]
                + self.side * jnp.sqrt(self.beta * post.variance[:, self.output]))


def confidence_gap(model: eqx.Module, candidates, observed, *, beta: float = 4.0,
                   output: int = 0, sign: float = 1.0,
                   chunk: int = 65536) -> tuple[float, float]:
    """(max UCB over candidates, max LCB over observed points), sign-adjusted.

    model: any surrogate with ``posterior``; candidates: (N, d) encoded points
    (scored in chunks); observed: (n, d) encoded points already evaluated;
    beta: squared width of the bounds in standard deviations.
    Their difference bounds the simple regret of the best observed point.
    """
    # Arrays, not static floats: both bounds and both signs share one compilation.
    beta_, sign_ = jnp.asarray(beta, jnp.float64), jnp.asarray(sign, jnp.float64)
    ucb = score_pool(_Bound(model, beta_, sign_, jnp.asarray(1.0), output), candidates, chunk)
    lcb = score_pool(_Bound(model, beta_, sign_, jnp.asarray(-1.0), output), observed, chunk)
    return float(jnp.max(ucb)), float(jnp.max(lcb))


__all__ = [
    "RULES",
    "AcquisitionBelow",
    "Budget",
    "NoImprovement",
    "RegretBound",
    "StoppingState",
    "Target",
    "confidence_gap",
    "first_triggered",
    "rule_from_dict",
]
