"""Hartmann-6 benchmark: workbench against BoTorch, Optuna's GPSampler and random search.

Protocol: minimise Hartmann-6 on [0, 1]^6 (optimum -3.322368011391339) with
10 initial points + 40 proposals = 50 evaluations, one point per proposal,
for each seed. Every method runs in this one process; seeds outer, methods inner.

Reported per method: median final simple regret (best found minus optimum)
with its interquartile range, the median time per proposal (model fit +
acquisition optimisation, pooled over all proposals of all seeds) and its
ratio to BoTorch's median measured in the same run.

    python benchmarks/hartmann6.py                      # 20 seeds, all methods
    python benchmarks/hartmann6.py --seeds 2 --methods workbench,botorch

Raw per-seed results go to ``benchmarks/out/hartmann6.json`` (git-ignored);
a markdown table goes to stdout. Methods whose packages are not installed
(``pip install -e .[bench]`` brings torch, botorch and optuna) are skipped.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import logging
import os
import platform
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("workbench") is None:  # run from a checkout without install
    sys.path.insert(0, str(ROOT))

DIM = 6
N_INITIAL = 10
N_TOTAL = 50
OPTIMUM = -3.322368011391339
METHODS = ("workbench", "botorch", "optuna", "random")
REQUIRES = {
    "workbench": ("jax",),
    "botorch": ("torch", "botorch", "gpytorch"),
    "optuna": ("optuna", "scipy", "torch"),  # GPSampler needs torch
    "random": (),
}
VERSION_PACKAGES = ("jax", "jaxlib", "torch", "botorch", "gpytorch", "optuna", "sciworkbench")


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


class Stopwatch:
    """Wall-clock and process CPU time of the timed blocks, one entry per block."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Self:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.process_time() - self._c)

    def drop_last(self) -> None:
        """Forget the last block (it was not a proposal)."""
        self.wall.pop()
        self.cpu.pop()


def hartmann6_array(x: np.ndarray) -> float:
    """Hartmann-6 at a point of [0, 1]^6 (the workbench's own definition)."""
    from workbench.problems import hartmann6

    return hartmann6(*(float(v) for v in x))


# -- methods ------------------------------------------------------------------


def run_workbench(seed: int) -> SeedResult:
    """The workbench Campaign with its defaults; times each non-Sobol ``ask``."""
    import workbench as wb

    problem = wb.problems.get("hartmann6")
    c = wb.Campaign("h6", problem.space(), [wb.Objective("y", "minimize")],
                    tracking=None, store=None, seed=seed, initial_design={"n": N_INITIAL})
    sw = Stopwatch()
    t_start = time.perf_counter()
    for _ in range(N_TOTAL):
        with sw:
            (t,) = c.ask(1)
        if t.strategy == "sobol":
            sw.drop_last()
        c.tell(t.id, {"y": problem(t.params)})
    best = float(c.best().outcomes["y"])
    return SeedResult(seed, problem.regret(best), best, sw.wall, sw.cpu,
                      time.perf_counter() - t_start)


def run_botorch(seed: int) -> SeedResult:
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
        N_INITIAL, dtype=torch.float64)
    Y = torch.tensor([[-hartmann6_array(x.numpy())] for x in X])  # BoTorch maximises
    sw = Stopwatch()
    for _ in range(N_TOTAL - N_INITIAL):
        with sw:
            gp = SingleTaskGP(X, Y, input_transform=Normalize(d=DIM, bounds=bounds),
                              outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            acq = qLogExpectedImprovement(gp, best_f=Y.max())
            x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
        X = torch.cat([X, x.detach()])
        Y = torch.cat([Y, torch.tensor([[-hartmann6_array(x[0].detach().numpy())]])])
    best = float(-Y.max())
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


def run_optuna(seed: int) -> SeedResult:
    """Optuna's GPSampler (ask/tell); times each ``study.ask`` after the startup trials."""
    import inspect

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kwargs: dict = {"seed": seed, "n_startup_trials": N_INITIAL}
    if "deterministic_objective" in inspect.signature(optuna.samplers.GPSampler).parameters:
        kwargs["deterministic_objective"] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GPSampler is flagged experimental in some versions
        sampler = optuna.samplers.GPSampler(**kwargs)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(1, DIM + 1)}
    sw = Stopwatch()
    t_start = time.perf_counter()
    for i in range(N_TOTAL):
        with sw:
            trial = study.ask(dists)
        if i < N_INITIAL:
            sw.drop_last()
        study.tell(trial, hartmann6_array(np.array([trial.params[k] for k in dists])))
    best = float(study.best_value)
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


def run_random(seed: int) -> SeedResult:
    """Uniform random search with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    values = []
    sw = Stopwatch()
    t_start = time.perf_counter()
    for i in range(N_TOTAL):
        with sw:
            x = rng.random(DIM)
        if i < N_INITIAL:
            sw.drop_last()
        values.append(hartmann6_array(x))
    best = float(min(values))
    return SeedResult(seed, best - OPTIMUM, best, sw.wall, sw.cpu, time.perf_counter() - t_start)


RUNNERS: dict[str, Callable[[int], SeedResult]] = {
    "workbench": run_workbench,
    "botorch": run_botorch,
    "optuna": run_optuna,
    "random": run_random,
}


# -- bookkeeping --------------------------------------------------------------


def missing_packages(method: str) -> list[str]:
    """The import names ``method`` needs that are not installed."""
    return [m for m in REQUIRES[method] if importlib.util.find_spec(m) is None]


def versions() -> dict[str, str]:
    """Versions of the packages that matter here (None where not installed)."""
    out: dict[str, str] = {"python": platform.python_version()}
    for name in VERSION_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out["sciworkbench"] is None:
        import workbench

        out["sciworkbench"] = f"{workbench.__version__} (source checkout)"
    return out


def machine() -> dict[str, str]:
    """CPU model and core count, as ``lscpu`` and ``nproc`` give them."""
    model = platform.processor() or "unknown"
    try:
        for line in subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": model, "nproc": str(os.cpu_count()), "platform": platform.platform()}


def git_state() -> str:
    """HEAD commit, with '+dirty' when the checkout has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               check=False, cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else "unknown"
    except OSError:
        return "unknown"


def summarise(results: list[SeedResult]) -> dict[str, float]:
    """Median and quartiles of final regret; median wall and CPU time per proposal
    (ms), pooled over all proposals of all seeds."""
    regrets = np.array([r.regret for r in results])
    wall = np.concatenate([r.proposal_times_s for r in results]) * 1e3
    cpu = np.concatenate([r.proposal_cpu_s for r in results]) * 1e3
    q25, med, q75 = np.percentile(regrets, [25, 50, 75])
    return {"regret_median": float(med), "regret_q25": float(q25), "regret_q75": float(q75),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20, help="number of seeds (0 .. N-1)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma list out of {','.join(METHODS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "hartmann6.json",
                        help="where the raw per-seed results go (JSON)")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in RUNNERS]
    if unknown:
        parser.error(f"unknown methods {unknown}; expected some of {list(METHODS)}")

    logging.getLogger("optuna").setLevel(logging.WARNING)
    from workbench._jax import cache_dir

    jax_cache = cache_dir()
    report: dict = {
        "problem": "hartmann6", "optimum": OPTIMUM, "n_initial": N_INITIAL, "n_total": N_TOTAL,
        "seeds": list(range(args.seeds)),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "git": git_state(), "machine": machine(), "versions": versions(),
        "jax_cache_entries_at_start": len(list(jax_cache.glob("*"))) if jax_cache.is_dir() else 0,
        "loadavg_at_start": os.getloadavg(),
        "skipped": {}, "results": {}, "summary": {},
    }
    for name in list(methods):
        missing = missing_packages(name)
        if missing:
            msg = f"skipping {name}: missing {', '.join(missing)} (pip install -e .[bench])"
            print(msg, file=sys.stderr)
            report["skipped"][name] = msg
            methods.remove(name)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[SeedResult]] = {m: [] for m in methods}
    # Seeds outer, methods inner: a change in the machine's load over the run then
    # falls on every method alike rather than on whichever ran at that time.
    for seed in range(args.seeds):
        for name in methods:
            r = RUNNERS[name](seed)
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
        args.out.write_text(json.dumps(report, indent=1))  # after each seed: partial runs keep

    print(markdown_table(report["summary"]))
    print(f"\nraw results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
