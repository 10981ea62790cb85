"""Suite: sample efficiency and speed of the workbench against BoTorch, Optuna and random search.

Simple regret (or hypervolume gap to the true front) after the same budget, median and
interquartile range over seeds, and time per proposal with its ratio to BoTorch's in the same
run, on ten problems: Branin, Hartmann-6, noisy Hartmann-6, Ackley-10, a mixed categorical +
integer + continuous Branin, the welded beam and the pressure vessel (constrained), a simplex
mixture, BraninCurrin and DTLZ2 (2 and 3 objectives); then a q = 8 batch timing on Hartmann-6.

Problems are defined in ``problems_suite.py`` (linear constraints in the space, nonlinear ones
as outcome constraints). Methods, all with the same initial-design size and budget, in one
process (seeds outer, then problems, then methods):

- ``workbench``: ``wb.Campaign`` with its defaults per problem type (log EI; qLogNEI when the
  observations are noisy; the analytic log EHVI with two or three objectives; outcome
  constraints folded in as probability of feasibility);
- ``workbench_nehvi``: the same, with qLogNEHVI (Monte-Carlo, batch and noise aware) for several
  objectives (multi-objective problems only);
- ``botorch``: SingleTaskGP (MixedSingleTaskGP with a categorical) + qLogNoisyExpectedImprovement
  or qLogNoisyExpectedHypervolumeImprovement, outcome constraints through the acquisition's
  ``constraints``, linear ones through ``optimize_acqf``'s; ``optimize_acqf_mixed_alternating``
  for the integer + categorical problem;
- ``optuna_gp`` / ``optuna_tpe``: GPSampler / TPESampler with ``constraints_func`` (Optuna has
  no linear constraints on the inputs: they are constraints on the trial; the last simplex
  fraction is one minus the others);
- ``random``: uniform in the box, rejection for linear inequalities, Dirichlet on the simplex.

Metrics: simple regret of the best feasible observation (noisy problem: the noiseless value
at the observed point of lowest posterior mean under one common GP fitted to each method's
data), or the hypervolume gap to the true front; median and IQR over seeds; median wall time
per proposal (model fit + acquisition optimisation, the initial design excluded) and its ratio
to BoTorch's in the same run. The batch timing: ``ask(8)`` against ``optimize_acqf(q=8)``
after 20 observations, ``--batch-rounds`` batches per seed.

A long run can be split over processes by seed (``--first-seed``) and merged afterwards with
``--report-only A.json B.json``. Raw results (per seed: regret, curve, times) are rewritten
after every run; median regret curves go to a PNG beside them (``--plot``).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import Stopwatch
from benchmarks.problems_suite import PROBLEMS, SuiteProblem

METHODS = ("workbench", "workbench_nehvi", "botorch", "optuna_gp", "optuna_tpe", "random")
REQUIRES = {"workbench": ("jax",), "workbench_nehvi": ("jax",),
            "botorch": ("torch", "botorch", "gpytorch"),
            "optuna_gp": ("optuna", "scipy", "torch"), "optuna_tpe": ("optuna",), "random": ()}
DESIGN_STRATEGIES = ("sobol", "lhs", "maximin", "points", "design")
BATCH_Q, BATCH_N_OBS = 8, 20
NOISE_SEED_OFFSET = 10_000  # the observation noise's stream, the same for every method
COLD_BATCH_SEED = 10_000  # the untimed batch that compiles, apart from the timed seeds
MAX_REJECTION_DRAWS = 10_000  # random search's tries for a point inside linear constraints
QUICK = {"problems": "branin,mixed_branin,branin_currin", "seeds": 2, "budget": 12,
         "n_initial": 6, "batch_rounds": 1, "batch_seeds": 1}
BEST_NOTE = ("**best** marks the lowest median of a problem; where it lies inside another "
             "method's IQR (q25 – q75) the lead is within seed-to-seed spread.")


@dataclass
class SeedResult:
    """One seed of one method on one problem. regret: final simple regret (or hypervolume
    gap); curve: the same after each evaluation; times in seconds per proposal."""

    seed: int
    regret: float
    n_evaluations: int
    n_feasible: int
    curve: list[float] = field(default_factory=list)
    proposal_times_s: list[float] = field(default_factory=list)
    proposal_cpu_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


class Trace:
    """Everything a method evaluated, in the problem's own parameters, with its noiseless
    outcomes, what the method observed, and the running regret."""

    def __init__(self, problem: SuiteProblem, seed: int):
        self.problem = problem
        self.noise = np.random.default_rng(NOISE_SEED_OFFSET + seed)
        self.params: list[dict] = []
        self.truth: list[dict] = []
        self.observed: list[dict] = []
        self.feasible: list[bool] = []
        self.curve: list[float] = []

    def evaluate(self, params: dict, feasible: bool | None = None) -> dict[str, float]:
        """Evaluate the problem at ``params``; record it; return the observed outcomes.
        feasible=False marks a point that violates a constraint the method could not express
        (Optuna's simplex), whatever its outcomes."""
        p = self.problem
        truth = p.evaluate(params)
        obs = dict(truth)
        if p.noise_sd:
            for k in p.objectives:
                obs[k] = truth[k] + p.noise_sd * float(self.noise.standard_normal())
        ok = p.feasible(params, truth) if feasible is None else feasible and p.feasible(params,
                                                                                       truth)
        self.params.append(dict(params))
        self.truth.append(truth)
        self.observed.append(obs)
        self.feasible.append(bool(ok))
        self.curve.append(self.regret_so_far())
        return obs

    def regret_so_far(self) -> float:
        """Regret of the best feasible point so far on the noiseless values (hypervolume gap
        with several objectives); inf before the first feasible point."""
        p = self.problem
        idx = [i for i, ok in enumerate(self.feasible) if ok]
        if p.multi_objective:
            return p.max_hypervolume - self.hypervolume(idx)
        if not idx:
            return math.inf
        if p.noise_sd:  # the curve: noiseless value at the best noisy observation
            i = min(idx, key=lambda i: self.observed[i][p.objectives[0]])
            return self.truth[i][p.objectives[0]] - p.optimum
        return min(self.truth[i][p.objectives[0]] for i in idx) - p.optimum

    def hypervolume(self, idx: list[int]) -> float:
        """Hypervolume of the noiseless outcomes of ``idx`` above the problem's reference."""
        if not idx:
            return 0.0
        from active_learning.multiobjective import hypervolume

        F = np.array([[self.truth[i][k] for k in self.problem.objectives] for i in idx])
        return float(hypervolume(-F, -np.asarray(self.problem.ref_point)))

    def final_regret(self, seed: int) -> float:
        """The reported metric; noisy: noiseless regret of the recommended point."""
        if not self.problem.noise_sd:
            return self.curve[-1]
        return recommended_regret(self, seed)


def recommended_regret(trace: Trace, seed: int) -> float:
    """Noiseless regret at the observed point with the lowest posterior mean under one GP
    (the workbench's own fit, the same for every method) fitted to what the method observed."""
    import jax
    import jax.numpy as jnp

    from surrogates import fit_gp

    p = trace.problem
    lo = np.array([q.low for q in p.params])
    hi = np.array([q.high for q in p.params])
    X = (np.array([[t[q.name] for q in p.params] for t in trace.params]) - lo) / (hi - lo)
    y = np.array([o[p.objectives[0]] for o in trace.observed])
    gp = fit_gp(jnp.asarray(X), jnp.asarray(y[:, None]), key=jax.random.key(seed),
                bounds=jnp.asarray(np.stack([np.zeros(p.dim), np.ones(p.dim)])))
    mean = np.asarray(gp.posterior(jnp.asarray(X)).mean)[:, 0]
    i = int(np.argmin(mean))
    return trace.truth[i][p.objectives[0]] - p.optimum


# -- workbench ----------------------------------------------------------------------


def workbench_space(problem: SuiteProblem) -> Any:
    """The problem's parameters and linear constraints as a wb.SearchSpace."""
    import workbench as wb

    params = []
    for q in problem.params:
        if q.kind == "continuous":
            params.append(wb.Continuous(q.name, q.low, q.high))
        elif q.kind == "integer":
            params.append(wb.Integer(q.name, int(q.low), int(q.high)))
        else:
            params.append(wb.Categorical(q.name, list(q.choices)))
    return wb.SearchSpace(params, constraints=[lc.expression()
                                               for lc in problem.linear_constraints])


def workbench_campaign(problem: SuiteProblem, seed: int, n_initial: int,
                       mo_acquisition: str | None = None) -> Any:
    """A campaign with the workbench's default settings for this kind of problem
    (``mo_acquisition``: an acquisition type for several objectives instead of the default)."""
    import workbench as wb

    acquisition = None
    if problem.multi_objective:
        acquisition = {"ref_point": list(problem.ref_point)}
        if mo_acquisition is not None:
            acquisition["type"] = mo_acquisition
    elif problem.noise_sd:
        acquisition = {"type": "qlog_nei"}
    return wb.Campaign(problem.name, workbench_space(problem),
                       [wb.Objective(k, "minimize") for k in problem.objectives],
                       outcome_constraints=[f"{g} <= 0" for g in problem.outcome_constraints],
                       tracking=None, store=None, seed=seed,
                       initial_design={"n": n_initial}, acquisition=acquisition)


def run_workbench(problem: SuiteProblem, seed: int, n_initial: int, budget: int,
                  mo_acquisition: str | None = None) -> SeedResult:
    """Ask one point at a time; the initial-design asks are not timed."""
    c = workbench_campaign(problem, seed, n_initial, mo_acquisition)
    trace, sw = Trace(problem, seed), Stopwatch()
    t0 = time.perf_counter()
    for _ in range(budget):
        with sw:
            (t,) = c.ask(1)
        if t.strategy in DESIGN_STRATEGIES:
            sw.drop_last()
        c.tell(t.id, trace.evaluate(t.params))
    return _result(trace, seed, sw, t0)


# -- BoTorch ------------------------------------------------------------------------


def _torch_bounds(problem: SuiteProblem):
    import torch

    return torch.tensor([[q.low if q.kind != "categorical" else 0.0 for q in problem.params],
                         [q.high if q.kind != "categorical" else len(q.choices) - 1.0
                          for q in problem.params]], dtype=torch.float64)


def _from_vector(problem: SuiteProblem, x) -> dict:
    """A BoTorch row (categorical as level index) -> the problem's parameters."""
    out = {}
    for q, v in zip(problem.params, (float(v) for v in x)):
        if q.kind == "integer":
            out[q.name] = int(round(v))
        elif q.kind == "categorical":
            out[q.name] = q.choices[int(round(v))]
        else:
            out[q.name] = v
    return out


def _linear_constraints_torch(problem: SuiteProblem):
    """BoTorch's (indices, coefficients, rhs) with sum coeff * x >= rhs (or == rhs)."""
    import torch

    names = [q.name for q in problem.params]
    ineq, eq = [], []
    for lc in problem.linear_constraints:
        idx = torch.tensor([names.index(n) for n in lc.coeffs])
        coef = torch.tensor(list(lc.coeffs.values()), dtype=torch.float64)
        if lc.op == "<=":
            ineq.append((idx, -coef, -float(lc.rhs)))
        else:
            eq.append((idx, coef, float(lc.rhs)))
    return ineq or None, eq or None


def _botorch_initial(problem: SuiteProblem, seed: int, n: int):
    """Scrambled Sobol in the box, or hit-and-run samples of the polytope when there are
    linear constraints; integers rounded, categories as level indices."""
    import torch
    from botorch.utils.sampling import get_polytope_samples

    bounds = _torch_bounds(problem)
    ineq, eq = _linear_constraints_torch(problem)
    if ineq or eq:
        X = get_polytope_samples(n, bounds, inequality_constraints=ineq,
                                 equality_constraints=eq, seed=seed, n_burnin=200, n_thinning=20)
    else:
        U = torch.quasirandom.SobolEngine(problem.dim, scramble=True, seed=seed).draw(
            n, dtype=torch.float64)
        X = bounds[0] + (bounds[1] - bounds[0]) * U
    for j, q in enumerate(problem.params):
        if q.kind == "integer":
            X[:, j] = X[:, j].round()
        elif q.kind == "categorical":
            X[:, j] = (U[:, j] * len(q.choices)).floor().clamp(max=len(q.choices) - 1)
    return X


def _botorch_targets(problem: SuiteProblem, obs: dict) -> list[float]:
    """Objectives negated (BoTorch maximises), constraints as they are (feasible <= 0)."""
    return [-obs[k] for k in problem.objectives] + [obs[g] for g in problem.outcome_constraints]


def _botorch_model(problem: SuiteProblem, X, Y):
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import MixedSingleTaskGP, SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    bounds = _torch_bounds(problem)
    cat_dims = [j for j, q in enumerate(problem.params) if q.kind == "categorical"]
    tf = {"outcome_transform": Standardize(m=Y.shape[-1])}
    if cat_dims:
        cont = [j for j in range(problem.dim) if j not in cat_dims]
        gp = MixedSingleTaskGP(X, Y, cat_dims=cat_dims,
                               input_transform=Normalize(d=problem.dim, indices=cont,
                                                         bounds=bounds), **tf)
    else:
        gp = SingleTaskGP(X, Y, input_transform=Normalize(d=problem.dim, bounds=bounds), **tf)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    return gp


def _botorch_acquisition(problem: SuiteProblem, gp, X):
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.acquisition.objective import GenericMCObjective

    m = len(problem.objectives)
    constraints = [(lambda Z, j=j: Z[..., j])
                   for j in range(m, m + len(problem.outcome_constraints))]
    if problem.multi_objective:
        objective = IdentityMCMultiOutputObjective(outcomes=list(range(m))) if constraints else None
        return qLogNoisyExpectedHypervolumeImprovement(
            gp, ref_point=[-r for r in problem.ref_point], X_baseline=X, prune_baseline=True,
            objective=objective, constraints=constraints or None)
    objective = GenericMCObjective(lambda Z, X=None: Z[..., 0]) if constraints else None
    return qLogNoisyExpectedImprovement(gp, X_baseline=X, objective=objective,
                                        constraints=constraints or None)


def botorch_propose(problem: SuiteProblem, acq: Any, q: int = 1) -> Any:
    """optimize_acqf (10 restarts, 512 raw samples) with the linear constraints, or the
    alternating mixed optimiser over integer and categorical dimensions."""
    from botorch.optim import optimize_acqf

    bounds = _torch_bounds(problem)
    ineq, eq = _linear_constraints_torch(problem)
    discrete = {j: [float(v) for v in range(int(p.low), int(p.high) + 1)]
                for j, p in enumerate(problem.params) if p.kind == "integer"}
    cats = {j: [float(v) for v in range(len(p.choices))]
            for j, p in enumerate(problem.params) if p.kind == "categorical"}
    if discrete or cats:
        from botorch.optim.optimize_mixed import optimize_acqf_mixed_alternating

        x, _ = optimize_acqf_mixed_alternating(acq, bounds, discrete_dims=discrete or None,
                                               cat_dims=cats or None, q=q, num_restarts=10,
                                               raw_samples=512, inequality_constraints=ineq,
                                               equality_constraints=eq)
    else:
        x, _ = optimize_acqf(acq, bounds=bounds, q=q, num_restarts=10, raw_samples=512,
                             inequality_constraints=ineq, equality_constraints=eq)
    return x.detach()


def run_botorch(problem: SuiteProblem, seed: int, n_initial: int, budget: int) -> SeedResult:
    import torch

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(seed)
    trace, sw = Trace(problem, seed), Stopwatch()
    t0 = time.perf_counter()
    X = _botorch_initial(problem, seed, n_initial)
    Y = torch.tensor([_botorch_targets(problem, trace.evaluate(_from_vector(problem, x)))
                      for x in X])
    for _ in range(budget - n_initial):
        with sw, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical and optimisation warnings
            gp = _botorch_model(problem, X, Y)
            x = botorch_propose(problem, _botorch_acquisition(problem, gp, X))
        obs = trace.evaluate(_from_vector(problem, x[0]))
        X = torch.cat([X, x])
        Y = torch.cat([Y, torch.tensor([_botorch_targets(problem, obs)])])
    return _result(trace, seed, sw, t0)


# -- Optuna -------------------------------------------------------------------------


def _simplex_names(problem: SuiteProblem) -> list[str]:
    """The fractions of a simplex equality constraint (the last is implied), else []."""
    for lc in problem.linear_constraints:
        if lc.op == "==":
            return list(lc.coeffs)
    return []


def _optuna_constraints(problem: SuiteProblem, params: dict, obs: dict) -> list[float]:
    """Values <= 0 when satisfied: linear inequalities, outcome constraints, and the
    implied last simplex fraction's sign."""
    vals = [lc.residual(params) for lc in problem.linear_constraints if lc.op == "<="]
    vals += [obs[g] for g in problem.outcome_constraints]
    simplex = _simplex_names(problem)
    if simplex:
        vals.append(-params[simplex[-1]])
    return vals


def _run_optuna(problem: SuiteProblem, seed: int, n_initial: int, budget: int,
                sampler_name: str) -> SeedResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    has_constraints = bool(problem.linear_constraints or problem.outcome_constraints)
    constraints_func = ((lambda t: t.user_attrs["constraints"]) if has_constraints else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings
        if sampler_name == "gp":
            kwargs: dict = {"seed": seed, "n_startup_trials": n_initial,
                            "constraints_func": constraints_func}
            if "deterministic_objective" in inspect.signature(optuna.samplers.GPSampler).parameters:
                kwargs["deterministic_objective"] = not problem.noise_sd
            sampler = optuna.samplers.GPSampler(**kwargs)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=n_initial,
                                                 constraints_func=constraints_func)
    study = optuna.create_study(directions=["minimize"] * len(problem.objectives),
                                sampler=sampler)
    simplex = _simplex_names(problem)
    dists = {}
    for q in problem.params:
        if q.name in simplex[-1:]:
            continue  # implied: one minus the other fractions
        if q.kind == "continuous":
            dists[q.name] = optuna.distributions.FloatDistribution(q.low, q.high)
        elif q.kind == "integer":
            dists[q.name] = optuna.distributions.IntDistribution(int(q.low), int(q.high))
        else:
            dists[q.name] = optuna.distributions.CategoricalDistribution(list(q.choices))
    trace, sw = Trace(problem, seed), Stopwatch()
    t0 = time.perf_counter()
    for i in range(budget):
        with sw, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = study.ask(dists)
        if i < n_initial:
            sw.drop_last()
        params = dict(trial.params)
        feasible = None
        if simplex:
            params[simplex[-1]] = 1.0 - sum(params[n] for n in simplex[:-1])
            if params[simplex[-1]] < 0:  # evaluate on the simplex, record as infeasible
                z = np.clip([params[n] for n in simplex], 0.0, None)
                params.update(zip(simplex, z / z.sum()))
                feasible = False
        obs = trace.evaluate(params, feasible=feasible)
        if has_constraints:
            cons = _optuna_constraints(problem, params, obs)
            if feasible is False:
                cons[-1] = max(cons[-1], 1e-3)
            trial.set_user_attr("constraints", cons)
        study.tell(trial, [obs[k] for k in problem.objectives])
    return _result(trace, seed, sw, t0)


def run_optuna_gp(problem: SuiteProblem, seed: int, n_initial: int, budget: int) -> SeedResult:
    return _run_optuna(problem, seed, n_initial, budget, "gp")


def run_optuna_tpe(problem: SuiteProblem, seed: int, n_initial: int, budget: int
                   ) -> SeedResult:
    return _run_optuna(problem, seed, n_initial, budget, "tpe")


# -- random search -------------------------------------------------------------------


def random_point(problem: SuiteProblem, rng: np.random.Generator) -> dict:
    """Uniform in the box; inside linear inequalities by rejection; Dirichlet(1) on a simplex."""
    simplex = _simplex_names(problem)
    for _ in range(MAX_REJECTION_DRAWS):
        p = {}
        for q in problem.params:
            if q.kind == "continuous":
                p[q.name] = q.low + (q.high - q.low) * float(rng.random())
            elif q.kind == "integer":
                p[q.name] = int(rng.integers(int(q.low), int(q.high) + 1))
            else:
                p[q.name] = q.choices[int(rng.integers(len(q.choices)))]
        if simplex:
            p.update(zip(simplex, rng.dirichlet(np.ones(len(simplex)))))
        if all(lc.residual(p) <= 0 for lc in problem.linear_constraints if lc.op == "<="):
            return p
    raise RuntimeError(f"{problem.name}: no point inside the linear constraints in "
                       f"{MAX_REJECTION_DRAWS:,} draws")


def run_random(problem: SuiteProblem, seed: int, n_initial: int, budget: int) -> SeedResult:
    rng = np.random.default_rng(seed)
    trace, sw = Trace(problem, seed), Stopwatch()
    t0 = time.perf_counter()
    for i in range(budget):
        with sw:
            p = random_point(problem, rng)
        if i < n_initial:
            sw.drop_last()
        trace.evaluate(p)
    return _result(trace, seed, sw, t0)


RUNNERS: dict[str, Callable[[SuiteProblem, int, int, int], SeedResult]] = {
    "workbench": run_workbench,
    "workbench_nehvi": lambda *a: run_workbench(*a, mo_acquisition="qlog_nehvi"),
    "botorch": run_botorch, "optuna_gp": run_optuna_gp,
    "optuna_tpe": run_optuna_tpe, "random": run_random,
}


def _result(trace: Trace, seed: int, sw: Stopwatch, t0: float) -> SeedResult:
    return SeedResult(seed, trace.final_regret(seed), len(trace.params), sum(trace.feasible),
                      trace.curve, sw.wall, sw.cpu, time.perf_counter() - t0)


# -- batch timing --------------------------------------------------------------------


def batch_workbench(seed: int, rounds: int) -> tuple[list[float], float]:
    """Times of ``ask(8)`` on Hartmann-6 after 20 Sobol observations, ``rounds`` batches."""
    problem = PROBLEMS["hartmann6"]
    c = workbench_campaign(problem, seed, BATCH_N_OBS)
    trace = Trace(problem, seed)
    for t in c.ask(BATCH_N_OBS):
        c.tell(t.id, trace.evaluate(t.params))
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        trials = c.ask(BATCH_Q)
        times.append(time.perf_counter() - t0)
        for t in trials:
            c.tell(t.id, trace.evaluate(t.params))
    return times, trace.curve[-1]


def batch_botorch(seed: int, rounds: int) -> tuple[list[float], float]:
    """Times of fit + qLogNEI + ``optimize_acqf(q=8)`` (joint) on Hartmann-6, same protocol."""
    import torch

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(seed)
    problem = PROBLEMS["hartmann6"]
    trace = Trace(problem, seed)
    X = _botorch_initial(problem, seed, BATCH_N_OBS)
    Y = torch.tensor([_botorch_targets(problem, trace.evaluate(_from_vector(problem, x)))
                      for x in X])
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gp = _botorch_model(problem, X, Y)
            x = botorch_propose(problem, _botorch_acquisition(problem, gp, X), q=BATCH_Q)
        times.append(time.perf_counter() - t0)
        Y = torch.cat([Y, torch.tensor([_botorch_targets(problem, trace.evaluate(
            _from_vector(problem, xi))) for xi in x])])
        X = torch.cat([X, x])
    return times, trace.curve[-1]


# -- summaries and output ------------------------------------------------------------


def summarise(results: list[SeedResult]) -> dict:
    """Median and quartiles of the final metric; median wall and CPU time per proposal (ms)
    pooled over every proposal of every seed; feasible fraction of the evaluations."""
    q25, med, q75 = common.quartiles(r.regret for r in results)
    wall = np.concatenate([r.proposal_times_s for r in results]) * 1e3
    cpu = np.concatenate([r.proposal_cpu_s for r in results]) * 1e3
    return {"regret_median": med, "regret_q25": q25, "regret_q75": q75,
            "time_ms_median": float(np.median(wall)) if wall.size else math.nan,
            "cpu_ms_median": float(np.median(cpu)) if cpu.size else math.nan,
            "feasible_fraction": float(np.mean([r.n_feasible / r.n_evaluations
                                                for r in results])),
            "n_seeds": len(results)}


def markdown_tables(report: dict) -> str:
    """One table for all problems: final metric and time per proposal, ratios to BoTorch;
    then the batch timing."""
    rows = ["| problem | metric | method | seeds | median | IQR (q25 – q75) | feasible evals "
            "| time / proposal (ms) | time ratio to BoTorch | CPU / proposal (ms) "
            "| CPU ratio to BoTorch |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for prob, per_method in report["summary"].items():
        metric = "HV gap" if PROBLEMS[prob].multi_objective else "regret"
        ref = per_method.get("botorch", {}).get("time_ms_median")
        ref_cpu = per_method.get("botorch", {}).get("cpu_ms_median")
        best = min(s["regret_median"] for s in per_method.values())
        for m, s in per_method.items():
            ratio = f"{s['time_ms_median'] / ref:.3f}" if ref else "n/a"
            cpu_ratio = f"{s['cpu_ms_median'] / ref_cpu:.3f}" if ref_cpu else "n/a"
            mark = " **best**" if s["regret_median"] == best and len(per_method) > 1 else ""
            rows.append(f"| {prob} | {metric} | {m} | {s['n_seeds']} | {s['regret_median']:.3g}"
                        f"{mark} | {s['regret_q25']:.3g} – {s['regret_q75']:.3g} "
                        f"| {100 * s['feasible_fraction']:.0f}% | {s['time_ms_median']:.4g} "
                        f"| {ratio} | {s['cpu_ms_median']:.4g} | {cpu_ratio} |")
    out = "\n".join(rows)
    batch = (report.get("batch") or {}).get("summary")
    if batch:
        ref = batch.get("botorch", {}).get("time_ms_median")
        out += ("\n\n| Hartmann-6 batch q = 8 after 20 observations | batches | median time / "
                "batch (ms) | ratio to BoTorch | median regret after the batches |\n"
                "|---|---:|---:|---:|---:|\n")
        out += "\n".join(
            f"| {m} | {s['n_batches']} | {s['time_ms_median']:.4g} | "
            f"{s['time_ms_median'] / ref:.3f} | {s['regret_median']:.3g} |" if ref else
            f"| {m} | {s['n_batches']} | {s['time_ms_median']:.4g} | n/a "
            f"| {s['regret_median']:.3g} |" for m, s in batch.items())
        cold = report.get("batch_cold_workbench_s")
        if cold:
            out += (f"\n| workbench, first batches in the process (compiling) | {len(cold)} "
                    f"| {np.median(cold) * 1e3:.4g} | "
                    + (f"{np.median(cold) * 1e3 / ref:.3f}" if ref else "n/a") + " | |")
    return out


def plot_curves(report: dict, path: Path) -> None:
    """Median regret (or hypervolume gap) after each evaluation, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probs = list(report["results"])
    cols = min(4, len(probs))
    rows = math.ceil(len(probs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, prob in zip(axes.flat, probs):
        for m, rs in report["results"][prob].items():
            curves = np.array([r["curve"] for r in rs], dtype=float)
            med = np.array([common.quartiles(c)[1] for c in curves.T])
            ax.plot(np.arange(1, med.size + 1), np.where(np.isfinite(med), med, np.nan), label=m)
        ax.set_yscale("log")
        ax.set_title(prob)
        ax.set_xlabel("evaluations")
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(probs):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def page_body(report: dict) -> str:
    """The tables, how to read them, the protocol's sizes and the methods skipped."""
    lines = [markdown_tables(report), "", BEST_NOTE,
             f"Budget {report['budget']} evaluations per run, {report['n_initial']} of them the "
             "initial design; seeds " + _seed_ranges(report["seeds"]) + "."]
    lines += [f"Skipped: {msg}." for msg in report.get("skipped", {}).values()]
    return "\n".join(lines)


def _seed_ranges(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])
    return ", ".join(map(str, seeds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run suite",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--problems", default=",".join(PROBLEMS),
                        help=f"comma list out of {','.join(PROBLEMS)}")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list out of {','.join(METHODS)}")
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first-seed .. first-seed + seeds - 1 (to split a run "
                             "over processes; merge with --report-only A.json B.json)")
    parser.add_argument("--budget", type=int, default=50, help="evaluations per run")
    parser.add_argument("--n-initial", type=int, default=10, help="initial-design size")
    parser.add_argument("--no-batch", action="store_true", help="skip the q = 8 batch timing")
    parser.add_argument("--batch-rounds", type=int, default=3, help="q = 8 batches per seed")
    parser.add_argument("--batch-seeds", type=int, default=None,
                        help="run the batch timing on the first N seeds only (default all)")
    parser.add_argument("--botorch-seeds", type=int, default=None,
                        help="run BoTorch on the first N seeds only (it dominates the wall "
                             "time; default all)")
    parser.add_argument("--report-only", type=Path, nargs="+", default=None, metavar="JSON",
                        help="only write the page and plot of earlier (partial) runs, merged")
    parser.add_argument("--table", type=Path, dest="page", default=None,
                        help="the same as --page")
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG of the median curves (default beside the raw results)")
    args = common.parse_args(parser, argv, QUICK)
    if args.report_only is not None:
        run = common.Run.start(__name__, __doc__, args, argv)
        reports = [json.loads(f.read_text()) for f in args.report_only]
        report = merge_reports(reports)
        return _write_outputs(run, report, merged_stamp(reports, run.stamp["command"]),
                              args.plot or args.report_only[0].with_suffix(".png"))
    problems = [p.strip() for p in args.problems.split(",") if p.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for given, known, what in ((problems, PROBLEMS, "problems"), (methods, RUNNERS, "methods")):
        unknown = [x for x in given if x not in known]
        if unknown:
            parser.error(f"--{what}: unknown {unknown}; expected some of {list(known)}")
    if not 1 <= args.n_initial < args.budget:
        parser.error(f"--n-initial: got {args.n_initial}; expected 1 <= n < --budget "
                     f"({args.budget})")
    if args.seeds < 1:
        parser.error(f"--seeds: got {args.seeds}; expected at least 1")
    run = common.Run.start(__name__, __doc__, args, argv)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    report: dict = {
        "problems": problems, "n_initial": args.n_initial, "budget": args.budget,
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "results": {}, "summary": {},
    }
    methods, report["skipped"] = common.split_available(methods, REQUIRES)
    results: dict[str, dict[str, list[SeedResult]]] = {p: {m: [] for m in methods}
                                                       for p in problems}
    batch: dict[str, list] = {m: [] for m in ("workbench", "botorch") if m in methods}
    # Seeds outer: a change in the machine's load falls on every method and problem alike.
    # The JSON is rewritten after every run, so a run cut short still reports what it did.
    batch_seeds = args.seeds if args.batch_seeds is None else args.batch_seeds
    botorch_seeds = args.seeds if args.botorch_seeds is None else args.botorch_seeds
    if not args.no_batch and "workbench" in batch:
        # The first batch in a process compiles the fantasy-conditioned acquisition for these
        # shapes; timed apart so the timed batches measure the steady state (as BoTorch,
        # which compiles nothing).
        report["batch_cold_workbench_s"] = batch_workbench(COLD_BATCH_SEED,
                                                           args.batch_rounds)[0]
        print(f"batch q={BATCH_Q} workbench, first in process (compiles): "
              f"{np.round(report['batch_cold_workbench_s'], 2)} s", file=sys.stderr, flush=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        if not args.no_batch and seed < args.first_seed + batch_seeds:
            for m, fn in (("workbench", batch_workbench), ("botorch", batch_botorch)):
                if m in batch:
                    batch[m].append(fn(seed, args.batch_rounds))
                    print(f"seed {seed:2d} batch q={BATCH_Q} {m}: "
                          f"{np.round(batch[m][-1][0], 2)} s", file=sys.stderr, flush=True)
        for prob in problems:
            for m in methods:
                if m == "botorch" and seed >= args.first_seed + botorch_seeds:
                    continue
                if m == "workbench_nehvi" and not PROBLEMS[prob].multi_objective:
                    continue  # the same campaign as "workbench" with one objective
                r = RUNNERS[m](PROBLEMS[prob], seed, args.n_initial, args.budget)
                results[prob][m].append(r)
                t = np.median(r.proposal_times_s) * 1e3 if r.proposal_times_s else math.nan
                print(f"seed {seed:2d} {prob:16s} {m:10s}: regret {r.regret:.4g}, "
                      f"feasible {r.n_feasible}/{r.n_evaluations}, median proposal {t:.1f} ms, "
                      f"wall {r.wall_s:.1f} s", file=sys.stderr, flush=True)
                _refresh(report, results, batch)
                report["loadavg_at_end"] = os.getloadavg()
                run.write_raw(report)
    return _write_outputs(run, report, run.stamp, args.plot or run.raw_path.with_suffix(".png"))


def merge_reports(reports: list[dict]) -> dict:
    """One report from runs over different seeds: results concatenated by seed, summaries
    recomputed, batch timings and metadata of the first run (the others' kept in "merged")."""
    if len(reports) == 1:
        return reports[0]
    merged = dict(reports[0])
    results: dict[str, dict[str, list[SeedResult]]] = {}
    for rep in reports:
        for prob, pm in rep["results"].items():
            for m, rs in pm.items():
                results.setdefault(prob, {}).setdefault(m, []).extend(SeedResult(**r) for r in rs)
    for pm in results.values():
        for rs in pm.values():
            rs.sort(key=lambda r: r.seed)
    merged["merged"] = [{"seeds": rep.get("seeds"),
                         **{k: rep.get("stamp", {}).get(k) for k in ("command", "date", "commit")},
                         "loadavg_at_end": rep.get("loadavg_at_end")} for rep in reports]
    merged["seeds"] = sorted({s for rep in reports for s in rep.get("seeds", [])})
    _refresh(merged, results, {}, warm_row=False)
    merged["batch"] = reports[0].get("batch") or next(
        (rep["batch"] for rep in reports if rep.get("batch")), None)
    return merged


def merged_stamp(reports: list[dict], command: str) -> dict:
    """The first run's stamp, with each merged run's command, commit and date and the
    command that merged them."""
    stamp = dict(reports[0].get("stamp", {}))
    if len(reports) > 1:
        stamp["merged from"] = "; ".join(
            f"`{r['stamp'].get('command')}` at `{r['stamp'].get('commit')}`, "
            f"{r['stamp'].get('date')}" for r in reports if r.get("stamp"))
        stamp["merged by"] = f"`{command}`"
    return stamp


def _refresh(report: dict, results: dict, batch: dict, warm_row: bool = True) -> None:
    """Refresh the report's results and summaries. warm_row: add the workbench without its
    first seed (meaningful within one process only: each process compiles on its first
    seed)."""
    report["results"] = {p: {m: [asdict(r) for r in rs] for m, rs in pm.items() if rs}
                         for p, pm in results.items()}
    report["results"] = {p: v for p, v in report["results"].items() if v}
    report["summary"] = {p: {m: summarise(rs) for m, rs in pm.items() if rs}
                         for p, pm in results.items()}
    for p, pm in results.items():  # without the seed whose proposals compiled
        for m in ("workbench", "workbench_nehvi"):
            if warm_row and len(pm.get(m, [])) > 1:
                report["summary"][p][f"{m} (seeds 1+)"] = summarise(pm[m][1:])
    report["summary"] = {p: v for p, v in report["summary"].items() if v}
    if any(batch.values()):
        report["batch"] = {
            "q": BATCH_Q, "n_observations": BATCH_N_OBS,
            "raw": {m: [{"times_s": t, "regret": g} for t, g in v] for m, v in batch.items()},
            "summary": {m: {"time_ms_median": float(np.median([x for t, _ in v for x in t])
                                                    * 1e3),
                            "regret_median": float(np.median([g for _, g in v])),
                            "n_batches": sum(len(t) for t, _ in v)}
                        for m, v in batch.items() if v}}


def _write_outputs(run: common.Run, report: dict, stamp: dict, plot_path: Path) -> int:
    """The results page (file and stdout) and the plot of the curves."""
    page = common.write_page(run.page_path, __doc__, stamp, page_body(report),
                              quick=run.quick)
    print(page.read_text())
    try:
        plot_curves(report, plot_path)
    except ImportError as err:  # matplotlib is optional for the numbers
        print(f"no plot: {err}", file=sys.stderr)
    print(f"page: {page}; plot: {plot_path}", file=sys.stderr)
    return 0
