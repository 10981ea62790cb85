"""Formulation and process: constrained campaigns against BoTorch and random search.

Simple regret (median and interquartile range over seeds) after a few budgets, median time
per proposal (model fit + acquisition optimisation, wall and process CPU) and the number of
evaluated points that break a constraint, on two constrained problems with known optima: a
seven-ingredient mixture summing to one with at most three ingredients present (a linear
equality and an NChooseK constraint), and a four-parameter reaction whose thermal exposure
``temperature * residence_time`` is limited (a nonlinear constraint).

Methods, all with the same initial-design size and budget, in one process (seeds outer, then
problems, then methods):

- ``workbench``: ``wb.Campaign`` with the constraints in its ``wb.SearchSpace`` and its
  defaults otherwise, as a user would write it;
- ``botorch``: SingleTaskGP + analytic LogExpectedImprovement + ``optimize_acqf``: for the
  mixture one ``optimize_acqf`` per allowed support, the best winning (what
  ``optimize_acqf_mixed`` does with a ``fixed_features_list``, and Ax and BoFire with
  NChooseK), absent ingredients fixed at 0 and the sum an ``equality_constraints`` row; for
  the process ``nonlinear_inequality_constraints`` started from feasible
  ``batch_initial_conditions``; initial points drawn like random search's;
- ``random``: uniform over the feasible set (a support of three ingredients, then a flat
  Dirichlet on it; rejection in the box for the process).

Ax is not installed in the benchmark environment and is not run. Every evaluated point of
every method is checked against the constraints to 1e-9 (relative to the bound; cardinality
exactly: a present ingredient is a nonzero one); a violating point is evaluated, counted and
never becomes the best. Raw per-seed results (every evaluated point, regret curves, each
proposal's times, the violations and repeated points) go to the JSON beside the page.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import Stopwatch

METHODS = ("workbench", "botorch", "random")
REQUIRES = {"workbench": ("jax",), "botorch": ("torch", "botorch", "gpytorch"), "random": ()}
PROBLEM_NAMES = ("formulation", "process")
DESIGN_STRATEGIES = ("sobol", "lhs", "maximin", "points", "design")
TOLERANCE = 1e-9  # constraint check, relative to the bound (|rhs| at least 1)
# Recorded seeds; the problems' constants and the settings were chosen on seeds 0-4.
DEFAULT_SEEDS, FIRST_SEED = 10, 100
N_INITIAL, BUDGET, CHECKPOINTS = 6, 30, "10,20,30"
# BoTorch's acquisition search: restarts and raw samples per support for the mixture (35
# supports: 70 restarts and 2,240 raw samples in all), and for the process.
BOTORCH_MIXTURE_RESTARTS, BOTORCH_MIXTURE_RAW = 2, 64
BOTORCH_RESTARTS, BOTORCH_RAW = 10, 512
# A point within this of an earlier one in every parameter (ranges scaled to [0, 1]) repeats
# it: the same experiment as far as a lab can dose or set it.
REPEAT_TOLERANCE = 1e-3
SOLVED_FRACTION = 0.01  # a seed "solves" a problem with a regret below 1 % of the optimum
MAX_REJECTION_DRAWS = 100_000  # random search's tries for one feasible process point
QUICK = {"seeds": 1, "first_seed": 0, "budget": 7, "n_initial": 5, "checkpoints": "6,7"}


# -- the formulation: a seven-ingredient coating, at most three present --------------------

INGREDIENTS = ("water", "ethanol", "glycerol", "peg", "surfactant", "polymer", "oil")
MAX_PRESENT = 3
# A Scheffé special-cubic mixture model of a coating's quality score: linear blending,
# pairwise synergies (> 0) and antagonisms (< 0), and three ternary synergies.
BLEND_LINEAR = (0.30, 0.45, 0.35, 0.40, 0.25, 0.50, 0.20)
BLEND_PAIRS = {("water", "glycerol"): 0.6, ("ethanol", "peg"): 0.8, ("peg", "polymer"): 1.0,
               ("ethanol", "polymer"): -0.6, ("water", "oil"): -1.2,
               ("surfactant", "oil"): 1.4, ("glycerol", "surfactant"): 1.5,
               ("water", "surfactant"): 0.3, ("glycerol", "polymer"): 1.2,
               ("surfactant", "polymer"): 1.2, ("ethanol", "surfactant"): 0.6,
               ("glycerol", "peg"): 1.8, ("peg", "surfactant"): 1.8, ("glycerol", "oil"): 0.5}
BLEND_TRIPLES = {("glycerol", "surfactant", "polymer"): 4.0,
                 ("ethanol", "peg", "polymer"): 4.0, ("water", "surfactant", "oil"): 6.0}
# The best blend of at most three, by SLSQP from many starts on each of the 35 faces
# (tests/test_benchmark_formulation.py repeats it); the next best faces reach 0.9087
# (glycerol, peg, surfactant) and 0.8656 (glycerol, peg, polymer). Without the cardinality
# constraint the best blend adds 19 % peg and scores 0.9732.
FORMULATION_OPTIMUM = 0.950388244424018
FORMULATION_OPTIMAL = {"glycerol": 0.33645977, "surfactant": 0.30249449, "polymer": 0.36104574}
FORMULATION_RELAXED_OPTIMUM = 0.9731731386907901


def blend_quality(x: np.ndarray) -> float:
    """The coating's quality score (higher is better) at fractions ``x`` (7,), in
    ``INGREDIENTS`` order."""
    x = np.asarray(x, dtype=float)
    idx = {n: i for i, n in enumerate(INGREDIENTS)}
    value = float(np.dot(BLEND_LINEAR, x))
    for (a, b), coef in BLEND_PAIRS.items():
        value += coef * x[idx[a]] * x[idx[b]]
    for (a, b, c), coef in BLEND_TRIPLES.items():
        value += coef * x[idx[a]] * x[idx[b]] * x[idx[c]]
    return value


# -- the process: a catalysed reaction with a limited thermal exposure ----------------------

PROCESS_PARAMS = (("temperature", 40.0, 120.0), ("residence_time", 1.0, 60.0),
                  ("concentration", 0.1, 2.0), ("catalyst", 0.5, 5.0))
EXPOSURE_LIMIT = 2400.0  # degC * min: temperature * residence_time at most this
GAS_CONSTANT = 8.314e-3  # kJ / (mol K)
T_REF = 353.15  # K, where the rate constants below hold
# A + reagent -> B (catalysed, first order in the reagent's concentration); A + A -> dimer
# (second order); B -> degradation. Pre-factors (1/min at T_REF) and activation energies
# (kJ/mol); the objective is B's yield in % minus a catalyst cost per mol %.
K_MAIN, E_MAIN = 0.03, 60.0
K_DIMER, E_DIMER = 0.05, 90.0
K_DEGRADE, E_DEGRADE = 0.01, 110.0
CATALYST_COST = 6.0
# SLSQP from many feasible starts; the exposure limit is active there (the best without it,
# at 60 min, scores 48.37).
PROCESS_OPTIMUM = 44.39189174823556
PROCESS_OPTIMAL = {"temperature": 59.595381692778204, "residence_time": 40.271576954944365,
                   "concentration": 1.4158732158396259, "catalyst": 4.319864933612916}


def process_value(temperature: float, residence_time: float, concentration: float,
                  catalyst: float) -> float:
    """Yield of B (%) after ``residence_time`` minutes in a plug-flow reactor, minus
    ``CATALYST_COST`` per mol % of catalyst: consecutive first-order kinetics with a
    competing dimerisation, Arrhenius rates at ``temperature`` (degC)."""
    inv = 1.0 / (temperature + 273.15) - 1.0 / T_REF
    k_main = K_MAIN * catalyst * concentration * math.exp(-E_MAIN / GAS_CONSTANT * inv)
    k_dimer = K_DIMER * concentration**2 * math.exp(-E_DIMER / GAS_CONSTANT * inv)
    k_degrade = K_DEGRADE * math.exp(-E_DEGRADE / GAS_CONSTANT * inv)
    k_a = k_main + k_dimer
    b = k_main / (k_degrade - k_a) * (math.exp(-k_a * residence_time)
                                      - math.exp(-k_degrade * residence_time))
    return 100.0 * b - CATALYST_COST * catalyst


# -- the problems as the methods see them ------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """A maximisation problem: continuous parameters (name, low, high), the value of a
    parameter dict, its known optimum, and the constraint check."""

    name: str
    params: tuple[tuple[str, float, float], ...]
    value: Callable[[dict], float]
    optimum: float
    optimal_params: dict
    objective: str

    @property
    def names(self) -> list[str]:
        return [p[0] for p in self.params]

    @property
    def dim(self) -> int:
        return len(self.params)

    def vector(self, params: dict) -> np.ndarray:
        return np.array([float(params[n]) for n in self.names])

    def violations(self, params: dict) -> list[str]:
        """Each constraint ``params`` breaks (bounds included), to ``TOLERANCE``."""
        out = [f"{n} = {params[n]!r} outside [{lo}, {hi}]" for n, lo, hi in self.params
               if not lo - TOLERANCE * max(1.0, abs(lo)) <= params[n]
               <= hi + TOLERANCE * max(1.0, abs(hi))]
        if self.name == "formulation":
            total = sum(params[n] for n in INGREDIENTS)
            if abs(total - 1.0) > TOLERANCE:
                out.append(f"sum of fractions {total!r} != 1")
            present = [n for n in INGREDIENTS if params[n] != 0.0]
            if len(present) > MAX_PRESENT:
                out.append(f"{len(present)} ingredients present ({', '.join(present)}), "
                           f"more than {MAX_PRESENT}")
        else:
            exposure = params["temperature"] * params["residence_time"]
            if exposure > EXPOSURE_LIMIT * (1.0 + TOLERANCE):
                out.append(f"temperature * residence_time = {exposure!r} > {EXPOSURE_LIMIT}")
        return out


def _formulation_value(p: dict) -> float:
    return blend_quality(np.array([p[n] for n in INGREDIENTS]))


def _process_value(p: dict) -> float:
    return process_value(*(p[n] for n, _, _ in PROCESS_PARAMS))


PROBLEMS = {
    "formulation": Problem("formulation", tuple((n, 0.0, 1.0) for n in INGREDIENTS),
                           _formulation_value, FORMULATION_OPTIMUM,
                           {n: FORMULATION_OPTIMAL.get(n, 0.0) for n in INGREDIENTS}, "quality"),
    "process": Problem("process", PROCESS_PARAMS, _process_value, PROCESS_OPTIMUM,
                       PROCESS_OPTIMAL, "score"),
}


def supports() -> list[tuple[int, ...]]:
    """Every choice of ``MAX_PRESENT`` ingredients (the smaller ones are their faces)."""
    return list(itertools.combinations(range(len(INGREDIENTS)), MAX_PRESENT))


def sample_feasible(problem: Problem, rng: np.random.Generator) -> dict:
    """One point uniform over the feasible set: a uniformly chosen support of three
    ingredients with flat Dirichlet fractions (each face has the same area); for the process
    uniform in the box, rejecting points over the exposure limit."""
    if problem.name == "formulation":
        chosen = rng.choice(len(INGREDIENTS), MAX_PRESENT, replace=False)
        x = np.zeros(len(INGREDIENTS))
        x[chosen] = rng.dirichlet(np.ones(MAX_PRESENT))
        x[chosen[-1]] = 1.0 - (x.sum() - x[chosen[-1]])  # the sum exactly 1 in floating point
        return dict(zip(INGREDIENTS, map(float, x)))
    lo = np.array([p[1] for p in problem.params])
    hi = np.array([p[2] for p in problem.params])
    for _ in range(MAX_REJECTION_DRAWS):
        x = lo + (hi - lo) * rng.random(problem.dim)
        if x[0] * x[1] <= EXPOSURE_LIMIT:
            return dict(zip(problem.names, map(float, x)))
    raise RuntimeError(f"no feasible process point in {MAX_REJECTION_DRAWS} draws")


# -- one run -------------------------------------------------------------------------


@dataclass
class SeedResult:
    """One seed of one method on one problem: the regret of the best feasible point after
    each evaluation (inf before the first), each proposal's wall and CPU time (s), the
    evaluations that broke a constraint (index and what), those that repeated an earlier
    point (indices), and every evaluated point (in ``Problem.names`` order)."""

    seed: int
    curve: list[float] = field(default_factory=list)
    proposal_times_s: list[float] = field(default_factory=list)
    proposal_cpu_s: list[float] = field(default_factory=list)
    violations: list[list] = field(default_factory=list)
    repeats: list[int] = field(default_factory=list)
    points: list[list[float]] = field(default_factory=list)
    best_params: dict = field(default_factory=dict)
    wall_s: float = 0.0


class Trace:
    """Evaluates the problem for a method, checks each point and keeps the regret curve."""

    def __init__(self, problem: Problem, seed: int):
        self.problem = problem
        self.result = SeedResult(seed)
        self.best = -math.inf
        self.start = time.perf_counter()
        self.seen: list[np.ndarray] = []

    def evaluate(self, params: dict) -> float:
        p = self.problem
        params = {n: float(params[n]) for n in p.names}
        value = p.value(params)
        broken = p.violations(params)
        lo = np.array([q[1] for q in p.params])
        unit = (p.vector(params) - lo) / (np.array([q[2] for q in p.params]) - lo)
        if any(np.max(np.abs(unit - u)) <= REPEAT_TOLERANCE for u in self.seen):
            self.result.repeats.append(len(self.result.curve))
        self.seen.append(unit)
        self.result.points.append(p.vector(params).tolist())
        if broken:
            self.result.violations.append([len(self.result.curve), "; ".join(broken)])
        elif value > self.best:
            self.best, self.result.best_params = value, params
        self.result.curve.append(p.optimum - self.best)
        return value

    def finish(self, sw: Stopwatch) -> SeedResult:
        self.result.proposal_times_s, self.result.proposal_cpu_s = sw.wall, sw.cpu
        self.result.wall_s = time.perf_counter() - self.start
        return self.result


def workbench_space(problem: Problem) -> Any:
    """The problem's parameters and constraints as a user writes them."""
    import workbench as wb

    params = [wb.Continuous(n, lo, hi) for n, lo, hi in problem.params]
    if problem.name == "formulation":
        constraints = [" + ".join(INGREDIENTS) + " == 1",
                       wb.NChooseK(list(INGREDIENTS), max_count=MAX_PRESENT)]
    else:
        constraints = [f"temperature * residence_time <= {EXPOSURE_LIMIT}"]
    return wb.SearchSpace(params, constraints=constraints)


def run_workbench(problem: Problem, seed: int, n_initial: int, budget: int) -> SeedResult:
    """``wb.Campaign`` with its defaults; the initial-design asks are not timed."""
    import workbench as wb

    c = wb.Campaign(problem.name, workbench_space(problem),
                    [wb.Objective(problem.objective, "maximize")], tracking=None, store=None,
                    seed=seed, initial_design={"n": n_initial})
    trace, sw = Trace(problem, seed), Stopwatch()
    for _ in range(budget):
        with sw:
            (t,) = c.ask(1)
        if t.strategy in DESIGN_STRATEGIES:
            sw.drop_last()
        c.tell(t.id, {problem.objective: trace.evaluate(t.params)})
    return trace.finish(sw)


def _botorch_candidate(problem: Problem, X, Y, rng: np.random.Generator):
    """Fit SingleTaskGP to (X, Y) and maximise LogEI under the problem's constraints."""
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    bounds = torch.tensor([[p[1] for p in problem.params], [p[2] for p in problem.params]])
    gp = SingleTaskGP(X, Y, input_transform=Normalize(d=problem.dim, bounds=bounds),
                      outcome_transform=Standardize(m=1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    acq = LogExpectedImprovement(gp, best_f=Y.max())
    if problem.name == "formulation":
        return _botorch_mixture(problem, acq, bounds, rng)
    # Feasible starts: the best of BOTORCH_RAW feasible draws by the acquisition.
    raw = torch.as_tensor(np.array([problem.vector(sample_feasible(problem, rng))
                                    for _ in range(BOTORCH_RAW)]))
    starts = _top_starts(acq, raw, BOTORCH_RESTARTS)

    def exposure_margin(x):  # >= 0 where feasible
        return EXPOSURE_LIMIT - x[..., 0] * x[..., 1]

    x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=BOTORCH_RESTARTS,
                         nonlinear_inequality_constraints=[(exposure_margin, True)],
                         batch_initial_conditions=starts)
    return x.detach()


def _top_starts(acq: Any, raw: Any, k: int) -> Any:
    """The ``k`` of the candidate points ``raw`` (n, d) with the highest acquisition, as
    ``batch_initial_conditions`` (k, 1, d)."""
    import torch

    with torch.no_grad():
        values = acq(raw.unsqueeze(1))
    return raw[values.topk(min(k, len(raw))).indices].unsqueeze(1)


def _botorch_mixture(problem: Problem, acq: Any, bounds: Any, rng: np.random.Generator):
    """The best of one ``optimize_acqf`` per support (what ``optimize_acqf_mixed`` does with
    a ``fixed_features_list``): absent ingredients fixed at 0, the sum as an equality row,
    started from the best of flat Dirichlet draws on the support's face (BoTorch's own
    starts under an equality are hit-and-run samples of each support's polytope, which cost
    many times the optimisation itself)."""
    import torch
    from botorch.optim import optimize_acqf

    d = problem.dim
    total = [(torch.arange(d), torch.ones(d), 1.0)]
    best_x, best_value = None, -math.inf
    for support in supports():
        raw = torch.zeros(BOTORCH_MIXTURE_RAW, d)
        raw[:, list(support)] = torch.as_tensor(
            rng.dirichlet(np.ones(len(support)), BOTORCH_MIXTURE_RAW))
        x, value = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=BOTORCH_MIXTURE_RESTARTS,
                                 equality_constraints=total,
                                 fixed_features={j: 0.0 for j in range(d) if j not in support},
                                 batch_initial_conditions=_top_starts(
                                     acq, raw, BOTORCH_MIXTURE_RESTARTS))
        if float(value) > best_value:
            best_x, best_value = x.detach(), float(value)
    return best_x


def run_botorch(problem: Problem, seed: int, n_initial: int, budget: int) -> SeedResult:
    """Initial points drawn like random search's, then one LogEI proposal at a time."""
    import torch

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    trace, sw = Trace(problem, seed), Stopwatch()
    X = torch.as_tensor(np.array([problem.vector(sample_feasible(problem, rng))
                                  for _ in range(n_initial)]))
    Y = torch.tensor([[trace.evaluate(dict(zip(problem.names, x.tolist())))] for x in X])
    for _ in range(budget - n_initial):
        with sw, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical and optimisation warnings
            x = _botorch_candidate(problem, X, Y, rng)
        y = trace.evaluate(dict(zip(problem.names, x[0].tolist())))
        X = torch.cat([X, x])
        Y = torch.cat([Y, torch.tensor([[y]])])
    return trace.finish(sw)


def run_random(problem: Problem, seed: int, n_initial: int, budget: int) -> SeedResult:
    """Uniform over the feasible set with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    trace, sw = Trace(problem, seed), Stopwatch()
    for i in range(budget):
        with sw:
            params = sample_feasible(problem, rng)
        if i < n_initial:
            sw.drop_last()
        trace.evaluate(params)
    return trace.finish(sw)


RUNNERS: dict[str, Callable[[Problem, int, int, int], SeedResult]] = {
    "workbench": run_workbench, "botorch": run_botorch, "random": run_random}
LABELS = {"workbench": "workbench (wb.Campaign)",
          "botorch": "BoTorch (SingleTaskGP + LogEI)",
          "random": "random search (uniform feasible)"}


# -- bookkeeping --------------------------------------------------------------------------


def summarise(problem: Problem, results: list[SeedResult], checkpoints: Sequence[int]
              ) -> dict[str, Any]:
    """Per checkpoint the regret's quartiles over seeds; the seeds whose final regret is
    below ``SOLVED_FRACTION`` of the optimum; median wall and CPU time per proposal (ms)
    pooled over all proposals of all seeds; the evaluations that broke a constraint, out
    of all."""
    out: dict[str, Any] = {"n_seeds": len(results), "regret": {}}
    out["solved"] = sum(r.curve[-1] < SOLVED_FRACTION * abs(problem.optimum) for r in results)
    for n in checkpoints:
        q25, med, q75 = common.quartiles(r.curve[n - 1] for r in results)
        out["regret"][str(n)] = {"q25": q25, "median": med, "q75": q75}
    wall = [t for r in results for t in r.proposal_times_s]
    cpu = [t for r in results for t in r.proposal_cpu_s]
    out["time_ms_median"] = common.median(wall) * 1e3 if wall else math.nan
    out["cpu_ms_median"] = common.median(cpu) * 1e3 if cpu else math.nan
    out["violations"] = sum(len(r.violations) for r in results)
    out["repeats"] = sum(len(r.repeats) for r in results)
    out["evaluations"] = sum(len(r.curve) for r in results)
    return out


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def markdown_tables(report: dict) -> str:
    """One table per problem: regret at each checkpoint, seeds solved, times, violations."""
    checkpoints, budget = report["checkpoints"], report["budget"]
    head = ["method", "seeds"]
    head += [f"regret after {n}: median (q25 – q75)" for n in checkpoints]
    head += [f"seeds within {SOLVED_FRACTION:.0%} of the optimum after {budget}",
             "time / proposal (ms)", "CPU / proposal (ms)", "points breaking a constraint",
             "repeated points"]
    blocks = []
    for prob, by_method in report["summary"].items():
        rows = [f"### {prob} (optimum {PROBLEMS[prob].optimum:.6g}, maximised)", "",
                "| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
        for m, s in by_method.items():
            bad = f"{s['violations']} of {s['evaluations']}"
            cells = [LABELS.get(m, m), str(s["n_seeds"])]
            cells += [f"{_fmt(r['median'])} ({_fmt(r['q25'])} – {_fmt(r['q75'])})"
                      for r in (s["regret"][str(n)] for n in checkpoints)]
            cells += [f"{s['solved']} of {s['n_seeds']}", f"{s['time_ms_median']:.4g}",
                      f"{s['cpu_ms_median']:.4g}", f"**{bad}**" if s["violations"] else bad,
                      str(s["repeats"])]
            rows.append("| " + " | ".join(cells) + " |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def page_body(report: dict) -> str:
    n0, n = report["n_initial"], report["budget"]
    lines = [markdown_tables(report), "",
             f"{n0} initial points + {n - n0} single-point proposals per seed; regret is the "
             "optimum minus the best value among the points that meet every constraint "
             "(inf: none yet). Times exclude the initial points; random search's time is "
             "its sampler's. A repeated point lies within "
             f"{REPEAT_TOLERANCE:g} in every parameter (ranges scaled to [0, 1]) of an earlier "
             "evaluation of the same seed: on these noiseless problems an experiment that "
             "teaches nothing.",
             "Ax is not installed here and was not run; the BoTorch arm does what Ax and "
             "BoFire do with these constraints (support enumeration, nonlinear constraints "
             "in `optimize_acqf`)."]
    broken = [(prob, m, r["seed"], v) for prob, by_m in report["results"].items()
              for m, rs in by_m.items() for r in rs for v in r["violations"]]
    if broken:
        lines += ["", "Points that broke a constraint (first ten):", ""]
        lines += [f"- {prob}, {m}, seed {seed}, evaluation {i + 1}: {what}"
                  for prob, m, seed, (i, what) in broken[:10]]
    lines += [f"Skipped: {msg}." for msg in report["skipped"].values()]
    return "\n".join(lines)


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run formulation",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEM_NAMES),
                        help=f"comma list out of {','.join(PROBLEM_NAMES)}")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list out of {','.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=FIRST_SEED,
                        help="the first seed (settings were chosen on seeds 0-4)")
    parser.add_argument("--n-initial", type=int, default=N_INITIAL,
                        help="initial points per seed")
    parser.add_argument("--budget", type=int, default=BUDGET, help="evaluations per seed")
    parser.add_argument("--checkpoints", default=CHECKPOINTS,
                        help="comma list of evaluation counts at which regret is reported")
    args = common.parse_args(parser, argv, QUICK)
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if unknown := [p for p in problems if p not in PROBLEMS]:
        parser.error(f"--problems: unknown {unknown}; expected some of {list(PROBLEM_NAMES)}")
    if unknown := [m for m in methods if m not in RUNNERS]:
        parser.error(f"--methods: unknown {unknown}; expected some of {list(METHODS)}")
    if not 1 <= args.n_initial < args.budget:
        parser.error(f"--n-initial: got {args.n_initial}; expected 1 <= n < --budget "
                     f"({args.budget})")
    try:
        checkpoints = _int_list(args.checkpoints)
    except ValueError:
        checkpoints = []
    if not checkpoints or not all(1 <= n <= args.budget for n in checkpoints):
        parser.error(f"--checkpoints: got {args.checkpoints!r}; expected a comma list of "
                     f"evaluation counts from 1 to --budget ({args.budget})")
    run = common.Run.start(__name__, __doc__, args, argv)

    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    methods, skipped = common.split_available(methods, REQUIRES)
    report: dict = {"problems": problems, "seeds": seeds, "n_initial": args.n_initial,
                    "budget": args.budget, "checkpoints": checkpoints,
                    "optima": {p: PROBLEMS[p].optimum for p in problems}, "skipped": skipped,
                    "results": {p: {m: [] for m in methods} for p in problems}, "summary": {}}
    results: dict[str, dict[str, list[SeedResult]]] = {p: {m: [] for m in methods}
                                                      for p in problems}
    # Seeds outer: a change in the machine's load falls on every method alike.
    for seed in seeds:
        for prob in problems:
            for m in methods:
                r = RUNNERS[m](PROBLEMS[prob], seed, args.n_initial, args.budget)
                results[prob][m].append(r)
                med = np.median(r.proposal_times_s) * 1e3 if r.proposal_times_s else math.nan
                common.log(f"{prob} {m} seed {seed}: regret {r.curve[-1]:.4g}, median "
                           f"proposal {med:.0f} ms, {len(r.violations)} violations, "
                           f"wall {r.wall_s:.1f} s")
        report["results"] = {p: {m: [asdict(r) for r in rs] for m, rs in by_m.items()}
                             for p, by_m in results.items()}
        report["summary"] = {p: {m: summarise(PROBLEMS[p], rs, checkpoints)
                                 for m, rs in by_m.items()} for p, by_m in results.items()}
        report["loadavg_at_end"] = os.getloadavg()
        run.write_raw(report)  # after each seed: a run cut short keeps what it did

    page = run.write_page(page_body(report))
    print(page.read_text())
    print(f"page: {page}; raw results: {run.raw_path}", file=sys.stderr)
    return 0
