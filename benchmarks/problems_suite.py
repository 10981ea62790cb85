"""Test problems of the benchmark suite (``benchmarks/suite.py``), each with its known optimum.

Every problem is a minimisation over named parameters (continuous, integer or categorical)
with optional linear constraints on the parameters, optional nonlinear outcome constraints
(reported as outcomes ``g_* <= 0``, scaled to order one) and optional observation noise:

- ``branin``, ``hartmann6``: the workbench's built-in problems.
- ``hartmann6_noisy``: Hartmann-6 observed with Gaussian noise (sd 0.1); regret is taken on the
  noiseless value of the recommended point.
- ``ackley10``: Ackley on [-32.768, 32.768]^10, minimum 0 at the origin.
- ``mixed_branin``: Branin with an integer x2 and a categorical level that shifts x2 and adds an
  offset (categorical + integer + continuous).
- ``welded_beam``: Coello's welded beam (4 variables, the linear constraint h <= b in the space,
  five nonlinear constraints as outcome constraints), best known 1.724852.
- ``pressure_vessel``: Sandgren's pressure vessel, continuous version (two linear constraints in
  the space, the volume as an outcome constraint), best known 5885.3328.
- ``tension_spring``: the tension/compression spring (3 variables, four constraints), best
  known 0.0126652 (Coello 2000; Arora 1989).
- ``speed_reducer``: Golinski's speed reducer, continuous version (7 variables, eleven
  constraints), best known 2996.3482 (the bounds of BoTorch's ``SpeedReducer``).
- ``mixture``: four blend fractions on the simplex (a linear equality) and a cure temperature.
- Multimodal and higher-dimensional problems where GP-BO is known to struggle:
  ``michalewicz10`` (m = 10, steep narrow valleys), ``styblinski_tang8``, ``rastrigin6``
  (a regular grid of local minima), ``rosenbrock8`` (a curved valley), ``shekel10`` (4-D,
  ten narrow wells), and ``hartmann6_em30`` / ``hartmann6_em100``: Hartmann-6 on the first
  six of 30 and 100 parameters, the others without effect (where sparsity priors such as
  SAAS or dimension-scaled length-scale priors should win).
- ``branin_currin``, ``dtlz2``: the multi-objective problems of ``problems_mo.py`` (2 and 3
  objectives); the metric is the hypervolume gap to the true front.

This module needs only numpy: the suite maps parameters to each library's own space.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from benchmarks.problems_mo import BRANIN_CURRIN, DTLZ2, MultiObjectiveProblem


@dataclass(frozen=True)
class Param:
    """One parameter: ``kind`` is continuous, integer or categorical (``choices``)."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 1.0
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class LinearConstraint:
    """sum_i coeffs[name_i] * x_i (op) rhs, with op one of "<=", "=="."""

    coeffs: dict[str, float]
    op: str
    rhs: float

    def expression(self) -> str:
        """The constraint in the workbench's expression syntax."""
        text = ""
        for name, c in self.coeffs.items():
            sign = "-" if c < 0 else "+"
            term = name if abs(c) == 1.0 else f"{abs(c)!r} * {name}"
            text += (f"-{term}" if sign == "-" else term) if not text else f" {sign} {term}"
        return f"{text} {self.op} {self.rhs!r}"

    def residual(self, params: dict) -> float:
        """Left side minus right side (<= 0 feasible for "<=", 0 for "==")."""
        return sum(c * float(params[n]) for n, c in self.coeffs.items()) - self.rhs


@dataclass(frozen=True)
class SuiteProblem:
    """A minimisation problem: ``evaluate(params) -> {objective or g_*: value}`` (noiseless).

    optimum: best feasible value (single objective); max_hypervolume and ref_point: the
    true front's hypervolume above ``ref_point`` (several objectives, all minimised).
    """

    name: str
    params: tuple[Param, ...]
    evaluate: Callable[[dict], dict[str, float]]
    objectives: tuple[str, ...] = ("y",)
    outcome_constraints: tuple[str, ...] = ()  # names g with feasibility g <= 0
    linear_constraints: tuple[LinearConstraint, ...] = ()
    noise_sd: float = 0.0
    optimum: float | None = None
    optimal_params: dict | None = None
    ref_point: tuple[float, ...] | None = None
    max_hypervolume: float | None = None
    source: str = ""
    tags: tuple[str, ...] = field(default=())

    @property
    def dim(self) -> int:
        return len(self.params)

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    def feasible(self, params: dict, outcomes: dict, tol: float = 1e-6) -> bool:
        """Whether a point satisfies the linear and the outcome constraints (to ``tol``)."""
        for lc in self.linear_constraints:
            r = lc.residual(params)
            if (lc.op == "<=" and r > tol) or (lc.op == "==" and abs(r) > tol):
                return False
        return all(outcomes[g] <= tol for g in self.outcome_constraints)


# -- single-objective functions ---------------------------------------------------


def branin(x1: ArrayLike, x2: ArrayLike) -> ArrayLike:
    """Branin-Hoo on [-5, 10] x [0, 15] (numpy, broadcasts); minimum 0.397887."""
    b, c = 5.1 / (4 * np.pi**2), 5 / np.pi
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - 1 / (8 * np.pi)) * np.cos(x1) + 10.0


def hartmann6(x: np.ndarray) -> float:
    """Hartmann-6 on [0, 1]^6 (the workbench's definition)."""
    from workbench.problems import hartmann6 as h6

    return h6(*(float(v) for v in x))


H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                 [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886],
                        [2329, 4135, 8307, 3736, 1004, 9991],
                        [2348, 1451, 3522, 2883, 3047, 6650],
                        [4047, 8828, 8732, 5743, 1091, 381]])
H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6_rows(X: np.ndarray) -> np.ndarray:
    """Hartmann-6 at each row of X: (n, 6) in [0, 1]^6 -> (n,), for whole data sets."""
    return -np.sum(H6_ALPHA * np.exp(-np.sum(H6_A * (X[:, None, :] - H6_P) ** 2, axis=-1)),
                   axis=-1)


def branin_rows(X: np.ndarray) -> np.ndarray:
    """Branin at each row of X: (n, 2) in [0, 1]^2, mapped to [-5, 10] x [0, 15] -> (n,)."""
    return branin(15.0 * X[:, 0] - 5.0, 15.0 * X[:, 1])


def ackley(x: np.ndarray) -> float:
    """Ackley (a = 20, b = 0.2, c = 2 pi); minimum 0 at the origin."""
    x = np.asarray(x, dtype=float)
    d = x.size
    return float(-20.0 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d))
                 - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20.0 + math.e)


MICHALEWICZ_M = 10  # steepness of the valleys


def michalewicz(x: np.ndarray) -> float:
    """Michalewicz on [0, pi]^d with m = 10: -sum_i sin(x_i) sin(i x_i^2 / pi)^(2m);
    separable, so its minimum is the sum of d one-dimensional minima."""
    x = np.asarray(x, dtype=float)
    i = np.arange(1, x.size + 1)
    return float(-np.sum(np.sin(x) * np.sin(i * x**2 / np.pi) ** (2 * MICHALEWICZ_M)))


def styblinski_tang(x: np.ndarray) -> float:
    """Styblinski-Tang on [-5, 5]^d: 0.5 sum(x^4 - 16 x^2 + 5 x); minimum -39.16617 d at
    x_i = -2.903534."""
    x = np.asarray(x, dtype=float)
    return float(0.5 * np.sum(x**4 - 16.0 * x**2 + 5.0 * x))


def rastrigin(x: np.ndarray) -> float:
    """Rastrigin on [-5.12, 5.12]^d: 10 d + sum(x^2 - 10 cos(2 pi x)); minimum 0 at 0."""
    x = np.asarray(x, dtype=float)
    return float(10.0 * x.size + np.sum(x**2 - 10.0 * np.cos(2.0 * np.pi * x)))


def rosenbrock(x: np.ndarray) -> float:
    """Rosenbrock on [-5, 10]^d: sum 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2; minimum 0 at 1."""
    x = np.asarray(x, dtype=float)
    return float(np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2))


SHEKEL_C = np.array([1, 2, 2, 4, 4, 6, 3, 7, 5, 5], dtype=float) / 10.0
SHEKEL_A = np.array([[4, 4, 4, 4], [1, 1, 1, 1], [8, 8, 8, 8], [6, 6, 6, 6], [3, 7, 3, 7],
                     [2, 9, 2, 9], [5, 5, 3, 3], [8, 1, 8, 1], [6, 2, 6, 2], [7, 3.6, 7, 3.6]])


def shekel(x: np.ndarray) -> float:
    """Shekel with its ten wells (m = 10) on [0, 10]^4; minimum -10.536410 near (4, 4, 4, 4)."""
    x = np.asarray(x, dtype=float)
    return float(-np.sum(1.0 / (np.sum((x - SHEKEL_A) ** 2, axis=1) + SHEKEL_C)))


MIXED_SHIFT = {"a": 0.0, "b": 0.275, "c": 0.5}
MIXED_OFFSET = {"a": 0.0, "b": 0.5, "c": 0.2}


def mixed_branin(x1: float, x2: int, level: str) -> float:
    """Branin(x1, x2 + shift[level]) + offset[level] with integer x2 in 0..15: level "b"
    reaches Branin's own minimum but pays 0.5; the optimum is level "a", x2 = 12."""
    return float(branin(x1, x2 + MIXED_SHIFT[level]) + MIXED_OFFSET[level])


def welded_beam(h: float, l: float, t: float, b: float) -> dict[str, float]:  # noqa: E741
    """Welded beam cost and its constraints scaled to ``g <= 0`` (Coello 2000; Deb 1991):
    shear stress, bending stress, the cost limit on the weld, end deflection, buckling load."""
    P, L, E, G = 6000.0, 14.0, 30e6, 12e6
    tau_p = P / (math.sqrt(2.0) * h * l)
    M = P * (L + l / 2.0)
    R = math.sqrt(l**2 / 4.0 + ((h + t) / 2.0) ** 2)
    J = 2.0 * (math.sqrt(2.0) * h * l * (l**2 / 12.0 + ((h + t) / 2.0) ** 2))
    tau_pp = M * R / J
    tau = math.sqrt(tau_p**2 + 2.0 * tau_p * tau_pp * l / (2.0 * R) + tau_pp**2)
    sigma = 6.0 * P * L / (b * t**2)
    delta = 4.0 * P * L**3 / (E * t**3 * b)
    p_c = (4.013 * E * math.sqrt(t**2 * b**6 / 36.0) / L**2
           * (1.0 - t / (2.0 * L) * math.sqrt(E / (4.0 * G))))
    cost = 1.10471 * h**2 * l + 0.04811 * t * b * (14.0 + l)
    return {"y": cost,
            "g_shear": tau / 13600.0 - 1.0,
            "g_bending": sigma / 30000.0 - 1.0,
            "g_cost": (0.10471 * h**2 + 0.04811 * t * b * (14.0 + l)) / 5.0 - 1.0,
            "g_deflection": delta / 0.25 - 1.0,
            "g_buckling": 1.0 - p_c / P}


def pressure_vessel(ts: float, th: float, r: float, length: float) -> dict[str, float]:
    """Pressure vessel cost (material, forming, welding) and the volume constraint
    (at least 1,296,000 in^3) scaled to ``g <= 0`` (Sandgren 1990, continuous version)."""
    cost = (0.6224 * ts * r * length + 1.7781 * th * r**2 + 3.1661 * ts**2 * length
            + 19.84 * ts**2 * r)
    volume = math.pi * r**2 * length + 4.0 / 3.0 * math.pi * r**3
    return {"y": cost, "g_volume": 1.0 - volume / 1_296_000.0}


def tension_spring(d: float, D: float, n: float) -> dict[str, float]:
    """Spring weight (wire diameter d, mean coil diameter D, n active coils) and its
    constraints scaled to ``g <= 0``: minimum deflection, shear stress, surge frequency,
    outer diameter (Coello 2000)."""
    return {"y": (n + 2.0) * D * d**2,
            "g_deflection": 1.0 - D**3 * n / (71785.0 * d**4),
            "g_shear": ((4.0 * D**2 - d * D) / (12566.0 * (D * d**3 - d**4))
                        + 1.0 / (5108.0 * d**2) - 1.0),
            "g_surge": 1.0 - 140.45 * d / (D**2 * n),
            "g_diameter": (D + d) / 1.5 - 1.0}


def speed_reducer(x: np.ndarray) -> dict[str, float]:
    """Speed reducer weight over x (7,): face width, teeth module, pinion teeth (continuous
    here), two shaft lengths, two shaft diameters; eleven constraints scaled to ``g <= 0``
    (bending and contact stress, shaft deflections and stresses, dimensions; Golinski 1973)."""
    x1, x2, x3, x4, x5, x6, x7 = (float(v) for v in x)
    weight = (0.7854 * x1 * x2**2 * (3.3333 * x3**2 + 14.9334 * x3 - 43.0934)
              - 1.508 * x1 * (x6**2 + x7**2) + 7.4777 * (x6**3 + x7**3)
              + 0.7854 * (x4 * x6**2 + x5 * x7**2))
    g = (27.0 / (x1 * x2**2 * x3), 397.5 / (x1 * x2**2 * x3**2),
         1.93 * x4**3 / (x2 * x3 * x6**4), 1.93 * x5**3 / (x2 * x3 * x7**4),
         math.sqrt((745.0 * x4 / (x2 * x3)) ** 2 + 16.9e6) / (110.0 * x6**3),
         math.sqrt((745.0 * x5 / (x2 * x3)) ** 2 + 157.5e6) / (85.0 * x7**3),
         x2 * x3 / 40.0, 5.0 * x2 / x1, x1 / (12.0 * x2), (1.5 * x6 + 1.9) / x4,
         (1.1 * x7 + 1.9) / x5)
    return {"y": weight, **{f"g{k + 1}": v - 1.0 for k, v in enumerate(g)}}


MIXTURE_CENTRES = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.3, 0.5, 0.1], [0.25, 0.25, 0.25, 0.25]])
MIXTURE_TEMPS = np.array([0.3, 0.7, 0.5])  # scaled cure temperature (T - 40) / 80
MIXTURE_HEIGHTS = np.array([1.0, 0.8, 0.6])
MIXTURE_WIDTHS = np.array([0.15, 0.2, 0.3])


def mixture(fractions: np.ndarray, temperature: float) -> float:
    """Minus a blend's performance: three Gaussian peaks in (fractions, scaled temperature),
    the tallest near (0.6, 0.2, 0.1, 0.1) at 64 degC. fractions: (4,) on the simplex."""
    z = np.asarray(fractions, dtype=float)
    t = (temperature - 40.0) / 80.0
    d2 = np.sum((z - MIXTURE_CENTRES) ** 2, axis=1) + (t - MIXTURE_TEMPS) ** 2
    return float(-np.sum(MIXTURE_HEIGHTS * np.exp(-d2 / (2.0 * MIXTURE_WIDTHS**2))))


# -- the problems -------------------------------------------------------------------


def _cont(names, low, high) -> tuple[Param, ...]:
    return tuple(Param(n, "continuous", low, high) for n in names)


H6_NAMES = tuple(f"x{i}" for i in range(1, 7))
H6_OPTIMUM = -3.322368011391339
H6_ARGMIN = dict(zip(H6_NAMES, (0.20168952, 0.15001069, 0.47687398, 0.27533243, 0.31165162,
                                0.65730054)))


def _h6(p: dict) -> dict[str, float]:
    return {"y": hartmann6(np.array([p[n] for n in H6_NAMES]))}


def _multi(mo: MultiObjectiveProblem) -> SuiteProblem:
    names = tuple(f"x{i}" for i in range(1, mo.dim + 1))
    objectives = tuple(f"f{i}" for i in range(1, mo.num_objectives + 1))

    def evaluate(p: dict) -> dict[str, float]:
        f = mo.evaluate(np.array([float(p[n]) for n in names]))
        return {k: float(v) for k, v in zip(objectives, f)}

    return SuiteProblem(mo.name, _cont(names, 0.0, 1.0), evaluate, objectives=objectives,
                        ref_point=mo.ref_point, max_hypervolume=mo.max_hypervolume,
                        source=mo.max_hypervolume_source, tags=("multi",))


ACKLEY_NAMES = tuple(f"x{i}" for i in range(1, 11))
# Where each problem's minimiser lies (separable ones: the same value in every coordinate).
MICHALEWICZ10_ARGMIN = (2.2029055295250153, 1.5707963152177562, 1.2849915648059362,
                        1.9230584668202786, 1.7204697733681158, 1.5707963270574048,
                        1.4544139727988767, 1.7560865200893259, 1.6557174184886632,
                        1.5707963262172273)
STYBLINSKI_TANG_ARGMIN = -2.9035340017797253
SHEKEL10_ARGMIN = (4.00074653, 4.00059294, 3.9996634, 3.9995098)


def _names(d: int) -> tuple[str, ...]:
    return tuple(f"x{i}" for i in range(1, d + 1))


def _vector(fn: Callable[[np.ndarray], float], names: tuple[str, ...]
            ) -> Callable[[dict], dict[str, float]]:
    return lambda p: {"y": fn(np.array([p[n] for n in names]))}


def _embedded_h6(d: int) -> SuiteProblem:
    """Hartmann-6 on the first six of ``d`` parameters in [0, 1]; the rest do nothing."""
    names = _names(d)
    return SuiteProblem(f"hartmann6_em{d}", _cont(names, 0.0, 1.0),
                        lambda p: {"y": hartmann6(np.array([p[n] for n in names[:6]]))},
                        optimum=H6_OPTIMUM,
                        optimal_params={**H6_ARGMIN, **dict.fromkeys(names[6:], 0.5)},
                        source=f"Hartmann-6 on x1..x6 of {d}; x7..x{d} have no effect",
                        tags=("high-dim",))

MIX_NAMES = ("f1", "f2", "f3", "f4")

PROBLEMS: dict[str, SuiteProblem] = {p.name: p for p in (
    SuiteProblem("branin", _cont(("x1",), -5.0, 10.0) + _cont(("x2",), 0.0, 15.0),
                 lambda p: {"y": float(branin(p["x1"], p["x2"]))},
                 optimum=0.397887357729738, optimal_params={"x1": math.pi, "x2": 2.275},
                 source="Branin-Hoo, 5/(4 pi) ... (Dixon and Szego 1978)"),
    SuiteProblem("hartmann6", _cont(H6_NAMES, 0.0, 1.0), _h6, optimum=H6_OPTIMUM,
                 optimal_params=dict(H6_ARGMIN)),
    SuiteProblem("hartmann6_noisy", _cont(H6_NAMES, 0.0, 1.0), _h6, noise_sd=0.1,
                 optimum=H6_OPTIMUM, tags=("noisy",),
                 source="Hartmann-6 + N(0, 0.1^2) on each observation"),
    SuiteProblem("ackley10", _cont(ACKLEY_NAMES, -32.768, 32.768),
                 lambda p: {"y": ackley(np.array([p[n] for n in ACKLEY_NAMES]))},
                 optimum=0.0, optimal_params=dict.fromkeys(ACKLEY_NAMES, 0.0)),
    SuiteProblem("mixed_branin",
                 (Param("x1", "continuous", -5.0, 10.0), Param("x2", "integer", 0, 15),
                  Param("level", "categorical", choices=("a", "b", "c"))),
                 lambda p: {"y": mixed_branin(p["x1"], int(p["x2"]), p["level"])},
                 optimum=0.43233595324928764,
                 optimal_params={"x1": -3.079165160659924, "x2": 12, "level": "a"},
                 source="exhaustive over levels and x2, bounded 1-D search in x1",
                 tags=("mixed",)),
    SuiteProblem("welded_beam",
                 (Param("h", "continuous", 0.125, 2.0), Param("l", "continuous", 0.1, 10.0),
                  Param("t", "continuous", 0.1, 10.0), Param("b", "continuous", 0.1, 2.0)),
                 lambda p: welded_beam(p["h"], p["l"], p["t"], p["b"]),
                 outcome_constraints=("g_shear", "g_bending", "g_cost", "g_deflection",
                                      "g_buckling"),
                 linear_constraints=(LinearConstraint({"h": 1.0, "b": -1.0}, "<=", 0.0),),
                 optimum=1.724852,
                 optimal_params={"h": 0.205730, "l": 3.470489, "t": 9.036624, "b": 0.205730},
                 source="best known 1.724852 (Coello 2000; Ray and Liew 2003)",
                 tags=("constrained",)),
    SuiteProblem("pressure_vessel",
                 (Param("ts", "continuous", 0.0625, 6.1875),
                  Param("th", "continuous", 0.0625, 6.1875),
                  Param("r", "continuous", 10.0, 200.0),
                  Param("length", "continuous", 10.0, 200.0)),
                 lambda p: pressure_vessel(p["ts"], p["th"], p["r"], p["length"]),
                 outcome_constraints=("g_volume",),
                 linear_constraints=(LinearConstraint({"r": 0.0193, "ts": -1.0}, "<=", 0.0),
                                     LinearConstraint({"r": 0.00954, "th": -1.0}, "<=", 0.0)),
                 optimum=5885.332773616,
                 optimal_params={"ts": 0.7781686, "th": 0.3846492, "r": 40.3196187,
                                 "length": 200.0},
                 source="best known 5885.3328, continuous version (e.g. Coello 2002)",
                 tags=("constrained",)),
    SuiteProblem("tension_spring",
                 (Param("d", "continuous", 0.05, 2.0), Param("D", "continuous", 0.25, 1.3),
                  Param("n", "continuous", 2.0, 15.0)),
                 lambda p: tension_spring(p["d"], p["D"], p["n"]),
                 outcome_constraints=("g_deflection", "g_shear", "g_surge", "g_diameter"),
                 optimum=0.012665232788,
                 optimal_params={"d": 0.05168906, "D": 0.35671767, "n": 11.28896959},
                 source="best known 0.0126652 (Coello 2000); SLSQP from 400 random starts",
                 tags=("constrained",)),
    SuiteProblem("speed_reducer",
                 tuple(Param(f"x{k + 1}", "continuous", lo, hi) for k, (lo, hi) in enumerate(
                     ((2.6, 3.6), (0.7, 0.8), (17.0, 28.0), (7.3, 8.3), (7.8, 8.3),
                      (2.9, 3.9), (5.0, 5.5)))),
                 lambda p: speed_reducer(np.array([p[f"x{k + 1}"] for k in range(7)])),
                 outcome_constraints=tuple(f"g{k + 1}" for k in range(11)),
                 optimum=2996.348196842742,
                 optimal_params={"x1": 3.5, "x2": 0.7, "x3": 17.0, "x4": 7.3, "x5": 7.8,
                                 "x6": 3.35021467, "x7": 5.28668323},
                 source="SLSQP from 400 random starts (BoTorch's SpeedReducer: 2996.3482)",
                 tags=("constrained",)),
    SuiteProblem("mixture",
                 _cont(MIX_NAMES, 0.0, 1.0) + (Param("temperature", "continuous", 40.0, 120.0),),
                 lambda p: {"y": mixture(np.array([p[n] for n in MIX_NAMES]),
                                         p["temperature"])},
                 linear_constraints=(LinearConstraint(dict.fromkeys(MIX_NAMES, 1.0), "==", 1.0),),
                 optimum=-1.1985999087612398,
                 optimal_params={"f1": 0.58212734, "f2": 0.20256636, "f3": 0.10774504,
                                 "f4": 0.10756126, "temperature": 40.0 + 80.0 * 0.31026545},
                 source="SLSQP from 300 random starts on the simplex",
                 tags=("simplex",)),
    SuiteProblem("michalewicz10", _cont(_names(10), 0.0, math.pi),
                 _vector(michalewicz, _names(10)), optimum=-9.660151715641332,
                 optimal_params=dict(zip(_names(10), MICHALEWICZ10_ARGMIN)),
                 source="sum of the ten one-dimensional minima (separable)",
                 tags=("multimodal", "high-dim")),
    SuiteProblem("styblinski_tang8", _cont(_names(8), -5.0, 5.0),
                 _vector(styblinski_tang, _names(8)), optimum=-313.3293256301713,
                 optimal_params=dict.fromkeys(_names(8), STYBLINSKI_TANG_ARGMIN),
                 source="8 x -39.16616570377142 (separable)", tags=("multimodal",)),
    SuiteProblem("rastrigin6", _cont(_names(6), -5.12, 5.12), _vector(rastrigin, _names(6)),
                 optimum=0.0, optimal_params=dict.fromkeys(_names(6), 0.0),
                 tags=("multimodal",)),
    SuiteProblem("rosenbrock8", _cont(_names(8), -5.0, 10.0), _vector(rosenbrock, _names(8)),
                 optimum=0.0, optimal_params=dict.fromkeys(_names(8), 1.0),
                 tags=("valley",)),
    SuiteProblem("shekel10", _cont(_names(4), 0.0, 10.0), _vector(shekel, _names(4)),
                 optimum=-10.536409816692045,
                 optimal_params=dict(zip(_names(4), SHEKEL10_ARGMIN)),
                 source="Nelder-Mead from (4, 4, 4, 4)", tags=("multimodal",)),
    _embedded_h6(30),
    _embedded_h6(100),
    _multi(BRANIN_CURRIN),
    _multi(DTLZ2),
)}


def get(name: str) -> SuiteProblem:
    """The suite problem called ``name``."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise KeyError(f"unknown problem {name!r}; expected one of {sorted(PROBLEMS)}") from None


__all__ = ["PROBLEMS", "LinearConstraint", "Param", "SuiteProblem", "ackley", "branin",
           "branin_rows", "get", "hartmann6_rows", "michalewicz", "mixed_branin", "mixture",
           "pressure_vessel", "rastrigin", "rosenbrock", "shekel", "speed_reducer",
           "styblinski_tang", "tension_spring", "welded_beam"]
