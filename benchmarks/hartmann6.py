"""Hartmann-6: the workbench against BoTorch, Optuna's GPSampler and random search.

Final simple regret (median and interquartile range over seeds) and time per proposal (model
fit + acquisition optimisation, wall and process CPU, median over all proposals of all seeds,
and its ratio to BoTorch's in the same run) when minimising Hartmann-6 on [0, 1]^6 with 10
initial points + 40 single-point proposals per seed.

Protocol: optimum -3.322368011391339; every method runs in this one process, seeds outer and
methods inner, so that a change in the machine's load falls on every method alike. Methods
whose packages are not installed (the ``bench`` extra brings torch, botorch and optuna) are
skipped with a message. Raw per-seed results (regrets, each proposal's wall and CPU time) go
to the JSON beside the page.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from benchmarks import common
from benchmarks.common import Stopwatch
from benchmarks.problems_suite import H6_OPTIMUM as OPTIMUM
from benchmarks.problems_suite import hartmann6

DIM = 6
N_INITIAL = 10
N_TOTAL = 50
DEFAULT_SEEDS = 20
METHODS = ("workbench", "botorch", "optuna", "random")
REQUIRES = {
    "workbench": ("jax",),
    "botorch": ("torch", "botorch", "gpytorch"),
    "optuna": ("optuna", "scipy", "torch"),  # GPSampler needs torch
    "random": (),
}
QUICK = {"seeds": 2, "n_total": 20}


@dataclass
class SeedResult:
    """One seed of one method: final simple regret and each proposal's wall-clock and
    process CPU time (s; CPU time sums all threads of the process)."""

    seed: int
    regret: float
    best_value: float
    proposal_times_s: list[float] = field(default_factory=list)
    proposal_cpu_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0


# -- methods ------------------------------------------------------------------


def run_workbench(seed: int, n_initial: int, n_total: int) -> SeedResult:
    """The workbench Campaign with its defaults; times each non-Sobol ``ask``."""
    import workbench as wb

    problem = wb.problems.get("hartmann6")
    c = wb.Campaign("h6", problem.space(), [wb.Objective("y", "minimize")],
                    tracking=None, store=None, seed=seed, initial_design={"n": n_initial})
    sw = Stopwatch()
    t_start = time.perf_counter()
    for _ in range(n_total):
        with sw:
            (t,) = c.ask(1)
        if t.strategy == "sobol":
            sw.drop_last()
        c.tell(t.id, {"y": problem(t.params)})
    best = float(c.best().outcomes["y"])
    return SeedResult(seed, problem.regret(best), best, sw.wall, sw.cpu,
                      time.perf_counter() - t_start)


def run_botorch(seed: int, n_initial: int, n_total: int) -> SeedResult:
    """SingleTaskGP + fit_gpytorch_mll + qLogEI (q=1) + optimize_acqf, in float64."""
    import torch
    from botorch.acquisition import qLogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.set_default_dtype(torch.float64)
    torch.manual_seed(seed)
    bounds = torch.stack([torch.zeros(DIM), torch.ones(DIM)])
    t_start = time.perf_counter()
    X = torch.quasirandom.SobolEngine(DIM, scramble=True, seed=seed).draw(
        n_initial, dtype=torch.float64)
    Y = torch.tensor([[-hartmann6(x.numpy())] for x in X])  # BoTorch maximises
    sw = Stopwatch()
    for _ in range(n_total - n_initial):
        with sw:
            gp = SingleTaskGP(X, Y, input_transform=Normalize(d=DIM, bounds=bounds),
                              outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            acq = qLogExpectedImprovement(gp, best_f=Y.max())
            x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
        X = torch.cat([X, x.detach()])
        Y = torch.cat([Y, torch.tensor([[-hartmann6(x[0].detach().numpy())]])])
    best = float(-Y.max())
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


def run_optuna(seed: int, n_initial: int, n_total: int) -> SeedResult:
    """Optuna's GPSampler (ask/tell); times each ``study.ask`` after the startup trials."""
    import inspect

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict = {"seed": seed, "n_startup_trials": n_initial}
    if "deterministic_objective" in inspect.signature(optuna.samplers.GPSampler).parameters:
        kwargs["deterministic_objective"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPSampler is flagged experimental in some versions
        sampler = optuna.samplers.GPSampler(**kwargs)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(1, DIM + 1)}
    sw = Stopwatch()
    t_start = time.perf_counter()
    for i in range(n_total):
        with sw:
            trial = study.ask(dists)
        if i < n_initial:
            sw.drop_last()
        study.tell(trial, hartmann6(np.array([trial.params[k] for k in dists])))
    best = float(study.best_value)
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


def run_random(seed: int, n_initial: int, n_total: int) -> SeedResult:
    """Uniform random search with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    values = []
    sw = Stopwatch()
    t_start = time.perf_counter()
    for i in range(n_total):
        with sw:
            x = rng.random(DIM)
        if i < n_initial:
            sw.drop_last()
        values.append(hartmann6(x))
    best = float(min(values))
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


RUNNERS: dict[str, Callable[[int, int, int], SeedResult]] = {
    "workbench": run_workbench,
    "botorch": run_botorch,
    "optuna": run_optuna,
    "random": run_random,
}


# -- bookkeeping --------------------------------------------------------------


def summarise(results: list[SeedResult]) -> dict[str, float]:
    """Median and quartiles of final regret; median wall and CPU time per proposal
    (ms), pooled over all proposals of all seeds."""
    q25, med, q75 = common.quartiles(r.regret for r in results)
    wall = np.concatenate([r.proposal_times_s for r in results]) * 1e3
    cpu = np.concatenate([r.proposal_cpu_s for r in results]) * 1e3
    return {"regret_median": med, "regret_q25": q25, "regret_q75": q75,
            "time_ms_median": float(np.median(wall)), "cpu_ms_median": float(np.median(cpu)),
            "n_seeds": len(results)}


def markdown_table(summary: dict[str, dict[str, float]]) -> str:
    """The results as a markdown table, times relative to BoTorch's."""
    ref = summary.get("botorch", {})

    def ratio(s: dict, key: str) -> str:
        return f"{s[key] / ref[key]:.3f}" if ref.get(key) else "n/a"

    header = ("| method | seeds | median regret | regret IQR (q25 – q75) "
              "| median time / proposal (ms) | ratio to BoTorch "
              "| median CPU time / proposal (ms) | CPU ratio to BoTorch |")
    rows = [header,
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in summary.items():
        rows.append(f"| {name} | {s['n_seeds']} | {s['regret_median']:.3g} "
                    f"| {s['regret_q25']:.3g} – {s['regret_q75']:.3g} "
                    f"| {s['time_ms_median']:.4g} | {ratio(s, 'time_ms_median')} "
                    f"| {s['cpu_ms_median']:.4g} | {ratio(s, 'cpu_ms_median')} |")
    return "\n".join(rows)


def page_body(report: dict) -> str:
    """The table, the protocol's sizes and the methods that were skipped."""
    lines = [markdown_table(report["summary"]), "",
             f"{report['n_initial']} initial points + {report['n_total'] - report['n_initial']}"
             " single-point proposals per seed."]
    if "workbench (seeds 1+)" in report["summary"]:
        lines.append("\"workbench (seeds 1+)\" leaves out seed 0, whose first proposals pay "
                     "JAX's compilation.")
    lines += [f"Skipped: {msg}." for msg in report["skipped"].values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run hartmann6",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                        help="number of seeds (0 .. N-1)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list out of {','.join(METHODS)}")
    parser.add_argument("--n-initial", type=int, default=N_INITIAL,
                        help="initial (Sobol / startup) points per seed")
    parser.add_argument("--n-total", type=int, default=N_TOTAL, help="evaluations per seed")
    args = common.parse_args(parser, argv, QUICK)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        parser.error(f"unknown methods {unknown}; expected some of {list(METHODS)}")
    if not 1 <= args.n_initial < args.n_total:
        parser.error(f"--n-initial: got {args.n_initial}; expected 1 <= n < --n-total")
    run = common.Run.start(__name__, __doc__, args, argv)

    logging.getLogger("optuna").setLevel(logging.WARNING)
    report: dict = {"problem": "hartmann6", "optimum": OPTIMUM, "n_initial": args.n_initial,
                    "n_total": args.n_total, "seeds": list(range(args.seeds)),
                    "results": {}, "summary": {}}
    methods, report["skipped"] = common.split_available(methods, REQUIRES)
    results: dict[str, list[SeedResult]] = {m: [] for m in methods}
    # Seeds outer, methods inner: a change in the machine's load over the run then
    # falls on every method alike rather than on whichever ran at that time.
    for seed in range(args.seeds):
        for name in methods:
            r = RUNNERS[name](seed, args.n_initial, args.n_total)
            results[name].append(r)
            print(f"{name:9s} seed {seed:2d}: regret {r.regret:.4f}, median proposal "
                  f"{np.median(r.proposal_times_s) * 1e3:.1f} ms "
                  f"(CPU {np.median(r.proposal_cpu_s) * 1e3:.1f} ms), wall {r.wall_s:.1f} s",
                  file=sys.stderr, flush=True)
        report["results"] = {m: [asdict(r) for r in rs] for m, rs in results.items()}
        report["summary"] = {}
        for m, rs in results.items():
            report["summary"][m] = summarise(rs)
            if m == "workbench" and len(rs) > 1:  # without the seed that compiles
                report["summary"]["workbench (seeds 1+)"] = summarise(rs[1:])
        report["loadavg_at_end"] = os.getloadavg()
        run.write_raw(report)  # after each seed: a run cut short keeps what it did

    page = run.write_page(page_body(report))
    print(page.read_text())
    print(f"page: {page}; raw results: {run.raw_path}", file=sys.stderr)
    return 0
