"""Analytic test problems with known optima, usable as oracles.

Each problem evaluates named parameters (``x1``, ``x2``, ...) and returns its
value; ``problem.space()`` gives the standard domain and ``problem.optimum``
the known best value, so campaigns on them can report simple regret.
From YAML: ``oracle: {builtin: branin}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


def branin(x1: float, x2: float) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at three points."""
    b, c = 5.1 / (4 * np.pi**2), 5 / np.pi
    r, s, t = 6.0, 10.0, 1 / (8 * np.pi)
    return float((x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * np.cos(x1) + s)


_H6_A = np.array([
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
])
_H6_P = 1e-4 * np.array([
    [1312, 1696, 5569, 124, 8283, 5886],
    [2329, 4135, 8307, 3736, 1004, 9991],
    [2348, 1451, 3522, 2883, 3047, 6650],
    [4047, 8828, 8732, 5743, 1091, 381],
])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x1: float, x2: float, x3: float, x4: float, x5: float, x6: float) -> float:
    """Hartmann-6 on [0, 1]^6; minimum -3.32237 at (0.20169, 0.150011, 0.476874,
    0.275332, 0.311652, 0.6573)."""
    x = np.array([x1, x2, x3, x4, x5, x6])
    return float(-np.sum(_H6_ALPHA * np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1))))


@dataclass(frozen=True)
class Problem:
    """A named test function with its domain, direction and optimum."""

    name: str
    function: Callable[..., float]
    bounds: tuple[tuple[str, float, float], ...]
    optimum: float
    direction: str = "minimize"

    @property
    def parameter_names(self) -> list[str]:
        return [b[0] for b in self.bounds]

    def space(self):
        """The standard domain as a SearchSpace."""
        from workbench.space import Continuous, SearchSpace

        return SearchSpace([Continuous(n, lo, hi) for n, lo, hi in self.bounds])

    def __call__(self, params: dict) -> float:
        return self.function(**{n: float(params[n]) for n in self.parameter_names})

    def regret(self, best_value: float) -> float:
        """Simple regret of a best observed value (always >= 0 up to round-off)."""
        gap = best_value - self.optimum
        return gap if self.direction == "minimize" else -gap


PROBLEMS: dict[str, Problem] = {
    "branin": Problem("branin", branin, (("x1", -5.0, 10.0), ("x2", 0.0, 15.0)), 0.397887357729738),
    "hartmann6": Problem(
        "hartmann6", hartmann6, tuple((f"x{i}", 0.0, 1.0) for i in range(1, 7)),
        -3.322368011391339,
    ),
}


def get(name: str) -> Problem:
    """The built-in problem called ``name``."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; expected one of {sorted(PROBLEMS)}") from None
