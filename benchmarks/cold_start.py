"""Cold start: `workbench ask -n 1`, fresh and through the warm worker, against Optuna's GPSampler.

Time to the first proposal of a fresh process on Hartmann-6 (6 continuous parameters) after
n past observations were imported (`workbench import`), against Optuna's `GPSampler` (create
a study, `add_trials` the same observations, the first `study.ask()`), and optionally BoTorch
(`SingleTaskGP` + `LogExpectedImprovement` + `optimize_acqf`), each timed from process start
to exit, imports included, as a user sees it. The workbench runs with its persistent
compilation cache warm (the user's cache, after one untimed run) and, where asked, cold
(an empty `WORKBENCH_CACHE_DIR`). Targets (issue 18): at n = 30 the warm ask takes at most half of
Optuna's time; at n = 1,000 and 2,000 at most Optuna's.

The fresh-process rows run with the worker off (`WORKBENCH_WORKER=0`): they are what the first
ask of a session costs (that ask starts the worker only after it has answered). The worker rows
are `workbench ask -n 1` processes that hand the ask to a warm worker (`workbench.worker`),
started once for the whole run; at each size one untimed ask through it comes first (it
traces the programs of that size: reported as "first through the worker"), then the timed
ones, each on a fresh copy of the store as above.

Every timed workbench run starts from a fresh copy of the same store (n completed trials, the
import's tracking events still in the outbox, as `workbench import` leaves them), so each
proposal is the first after the import. One more warm run per size is instrumented (JAX's
monitoring events and `surrogates.compiled_programs`): the number of traces, of lowered
modules and of XLA compilations (cache misses) and cache loads, the seconds spent in each,
and where the process's time goes (before the proposal: imports and opening the store; the
model fit; the acquisition search; after it: output and tracking delivery). Methods run
interleaved, repetition by repetition, so that load from other work falls on all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks import common

DIM = 6
N_INITIAL = 10  # the spec's initial design: every size here is past it
METHODS = ("workbench", "worker", "optuna", "botorch")
REQUIRES = {"workbench": ("jax",), "worker": ("jax",), "optuna": ("optuna", "torch", "scipy"),
            "botorch": ("botorch", "torch")}
QUICK = {"sizes": "16", "repeats": 1, "cold_sizes": "", "methods": "workbench,worker,optuna",
         "botorch_sizes": "", "profile": False, "warmup": False}
# Sizes with a target: n -> the largest allowed ratio of our median wall time to Optuna's.
TARGET_RATIO = {30: 0.5, 1000: 1.0, 2000: 1.0}
TIMEOUT_S = 1800

SPEC = """\
name: h6
partner: bench
description: Hartmann-6 minimisation on the unit cube, past data imported.
space:
{space}
objectives:
  - {{name: y, direction: minimize}}
initial_design: {{type: sobol, n: {n_initial}}}
budget: 100000
store: h6.zarr
tracking: sqlite:///mlflow.db
seed: 0
"""

# The instrumented run: `workbench ARGS` in this process with JAX's monitoring listeners
# and the proposal's own timings; writes what it counted as JSON to $COLD_START_PROBE.
_PROBE = """\
import atexit, collections, json, os, sys, time
t0 = time.perf_counter()
import jax.monitoring as mon
counts, seconds = collections.Counter(), collections.Counter()
mon.register_event_listener(lambda e, **kw: counts.update([e]))
def on_duration(e, d, **kw):
    counts[e] += 1
    seconds[e] += d
mon.register_event_duration_secs_listener(on_duration)
from workbench.campaign.proposing import Proposer
marks = {}
propose = Proposer.propose
def timed_propose(self, *args, **kwargs):
    marks["propose_start_s"] = time.perf_counter() - t0
    batch = propose(self, *args, **kwargs)
    marks["propose_end_s"] = time.perf_counter() - t0
    marks.update(batch.timings)
    return batch
Proposer.propose = timed_propose
def write():
    from surrogates import compiled_programs
    marks["exit_s"] = time.perf_counter() - t0
    with open(os.environ["COLD_START_PROBE"], "w") as f:
        json.dump({"counts": counts, "seconds": seconds, "marks": marks,
                   "programs": {k: v for k, v in compiled_programs().items() if v}}, f)
atexit.register(write)
sys.argv = ["workbench", *sys.argv[1:]]
from workbench.cli import main
main()
"""

# Optuna as a user would run it in a fresh process: the same observations added as
# trials, then the first GPSampler proposal. Prints the seconds of study.ask alone.
_OPTUNA = """\
import sys, time, warnings
import numpy as np
import optuna
data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
optuna.logging.set_verbosity(optuna.logging.WARNING)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # GPSampler is flagged experimental in some versions
    sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials={n_initial},
                                        deterministic_objective=True)
study = optuna.create_study(direction="minimize", sampler=sampler)
dists = {{f"x{{i}}": optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(1, {dim} + 1)}}
study.add_trials([optuna.trial.create_trial(params=dict(zip(dists, row[:-1])),
                                            distributions=dists, value=float(row[-1]))
                  for row in data])
t = time.perf_counter()
trial = study.ask(dists)
print(time.perf_counter() - t)
"""

# BoTorch in a fresh process: SingleTaskGP (its default priors and outcome standardisation),
# LogEI, optimize_acqf with 10 restarts from 512 raw samples, as in benchmarks/hartmann6.
_BOTORCH = """\
import sys, time
import numpy as np
import torch
from botorch.acquisition import LogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.optim import optimize_acqf
from gpytorch.mlls import ExactMarginalLogLikelihood
torch.manual_seed(0)
data = np.loadtxt(sys.argv[1], delimiter=",", skiprows=1)
t = time.perf_counter()
X = torch.tensor(data[:, :-1], dtype=torch.float64)
Y = -torch.tensor(data[:, -1:], dtype=torch.float64)
model = SingleTaskGP(X, Y)
fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
acq = LogExpectedImprovement(model, best_f=Y.max())
bounds = torch.stack([torch.zeros({dim}), torch.ones({dim})]).to(torch.float64)
x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
print(time.perf_counter() - t)
"""


def _env(cache: Path | None = None, sockets: Path | None = None) -> dict[str, str]:
    """A timed process's environment; the worker is used only with ``sockets`` (its folder)."""
    extra = {} if cache is None else {"WORKBENCH_CACHE_DIR": str(cache)}
    extra.update({"WORKBENCH_WORKER": "0"} if sockets is None
                 else {"WORKBENCH_WORKER": "1", "WORKBENCH_WORKER_DIR": str(sockets)})
    return common.workbench_env(drop=("COLD_START_PROBE",), **extra)


def observations(n: int, seed: int = 0):
    """n uniform points of the unit cube and their Hartmann-6 values (minimised)."""
    import numpy as np

    from workbench.problems import hartmann6

    X = np.random.default_rng(seed).random((n, DIM))
    return X, np.array([hartmann6(*x) for x in X])


def build(folder: Path, n: int) -> Path:
    """A campaign folder: the spec, the CSV of ``n`` past observations, and the store they
    were imported into with ``workbench import`` (its tracking events left in the outbox)."""
    folder.mkdir(parents=True)
    space = "\n".join(f"  - {{name: x{i}, type: continuous, low: 0.0, high: 1.0}}"
                      for i in range(1, DIM + 1))
    (folder / "h6.yaml").write_text(SPEC.format(space=space, n_initial=N_INITIAL))
    X, y = observations(n)
    rows = [",".join([*(f"x{i}" for i in range(1, DIM + 1)), "y"])]
    rows += [",".join(repr(float(v)) for v in (*x, f)) for x, f in zip(X, y)]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    proc = subprocess.run([sys.executable, "-m", "workbench", "import", "h6.yaml", "data.csv"],
                          cwd=folder, env=_env(), capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"workbench import failed: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    return folder


def workbench_ask(built: Path, work: Path, cache: Path | None, probe: Path | None = None,
                  sockets: Path | None = None) -> tuple[float, float, dict | None]:
    """`workbench ask -n 1` as a fresh process on a fresh copy of the built campaign.
    cache: the compilation cache folder (None: the environment's). With ``probe``, the
    instrumented run; with ``sockets``, the ask goes to the warm worker whose socket is in
    that folder. Returns (wall, CPU, what it counted)."""
    # A folder of its own: the previous run's detached tracking delivery may still be
    # writing into its folder.
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    shutil.copytree(built, run_dir, dirs_exist_ok=True)
    env = _env(cache, sockets)
    argv = [sys.executable, "-m", "workbench", "ask", "h6.yaml", "-n", "1"]
    if probe is not None:
        env["COLD_START_PROBE"] = str(probe)
        argv = [sys.executable, "-c", _PROBE, "ask", "h6.yaml", "-n", "1"]
    wall, cpu, _ = common.timed_process(argv, run_dir, env, TIMEOUT_S)
    counted = json.loads(probe.read_text()) if probe is not None else None
    return wall, cpu, counted


def worker_command(command: str, sockets: Path) -> None:
    """`workbench worker COMMAND` (start: wait until it answers; stop) for the run's worker."""
    proc = subprocess.run([sys.executable, "-m", "workbench", "worker", command],
                          cwd=common.ROOT, env=_env(sockets=sockets), capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"workbench worker {command} failed: {proc.stdout} {proc.stderr}")


def anchor(code: str, built: Path) -> tuple[float, float, float]:
    """An anchor's fresh process on the built campaign's CSV: (wall, CPU, its own seconds
    from the data to the proposal)."""
    script = code.format(n_initial=N_INITIAL, dim=DIM)
    wall, cpu, out = common.timed_process(
        [sys.executable, "-c", script, str(built / "data.csv")], built, _env(), TIMEOUT_S)
    return wall, cpu, float(out.strip().splitlines()[-1])


def summary(walls: list[float], cpus: list[float], inner: list[float] | None = None) -> dict:
    q25, med, q75 = common.quartiles(walls)
    out = {"wall_s": walls, "cpu_s": cpus, "median_s": med, "iqr_s": [q25, q75],
           "median_cpu_s": common.median(cpus)}
    if inner:
        out["inner_s"] = inner
        out["median_inner_s"] = common.median(inner)
    return out


def profile_row(counted: dict) -> dict:
    """The instrumented run's counts and seconds under short names."""
    c, s, m = counted["counts"], counted["seconds"], counted["marks"]
    compile_requests = c.get("/jax/compilation_cache/compile_requests_use_cache", 0)
    hits = c.get("/jax/compilation_cache/cache_hits", 0)
    backend = c.get("/jax/core/compile/backend_compile_duration", 0)
    return {
        "traces": c.get("/jax/core/compile/jaxpr_trace_duration", 0),
        "lowerings": c.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0),
        "compilations": backend - hits if compile_requests else backend,
        "cache_loads": hits,
        "trace_s": s.get("/jax/core/compile/jaxpr_trace_duration", 0.0),
        "lower_s": s.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0.0),
        "compile_s": (s.get("/jax/core/compile/backend_compile_duration", 0.0)
                      - s.get("/jax/compilation_cache/cache_retrieval_time_sec", 0.0)),
        "cache_load_s": s.get("/jax/compilation_cache/cache_retrieval_time_sec", 0.0),
        "before_s": m.get("propose_start_s"),
        "fit_s": m.get("fit_time_s"),
        "acquisition_s": m.get("acquisition_time_s"),
        "after_s": (m["exit_s"] - m["propose_end_s"]) if "propose_end_s" in m else None,
        "programs": counted["programs"],
    }


def measure(work: Path, args: argparse.Namespace, methods: list[str]) -> list[dict]:
    sockets = work / "sockets"
    if "worker" in methods:
        worker_command("start", sockets)
    try:
        return _measure(work, args, methods, sockets)
    finally:
        if "worker" in methods:
            worker_command("stop", sockets)


def _measure(work: Path, args: argparse.Namespace, methods: list[str], sockets: Path
             ) -> list[dict]:
    sizes = _sizes(args.sizes)
    cold_sizes, botorch_sizes = set(_sizes(args.cold_sizes)), set(_sizes(args.botorch_sizes))
    warm_cache = None  # the user's cache (WORKBENCH_CACHE_DIR or its default), filled below
    rows = []
    if args.warmup and ({"workbench", "worker"} & set(methods)):
        common.compile_bytecode()  # as an install does; the anchors' is compiled
    for n in sizes:
        built = build(work / f"n{n}", n)
        load = os.getloadavg()[0]
        row: dict = {"n": n, "loadavg_1min": load}
        timings: dict[str, list[tuple[float, float, float | None]]] = {}
        if "workbench" in methods and args.warmup:
            workbench_ask(built, work, warm_cache)  # untimed: fills the compilation cache
            if args.profile:
                common.log(f"n = {n}: instrumented warm run")
                row["profile"] = profile_row(workbench_ask(built, work, warm_cache,
                                                           probe=work / "probe.json")[2])
        if "worker" in methods:  # its first ask at this size traces that size's programs
            wall, cpu, _ = workbench_ask(built, work, warm_cache, sockets=sockets)
            row["worker_first_s"] = wall
            common.log(f"n = {n} first ask through the worker: {wall:.2f} s wall")
        plan = [m for m in methods if m != "botorch" or n in botorch_sizes]
        if "workbench" in methods and n in cold_sizes:
            plan.insert(plan.index("workbench") + 1, "workbench_cold")
        for rep in range(args.repeats):
            for method in plan:
                if method == "workbench":
                    wall, cpu, _ = workbench_ask(built, work, warm_cache)
                    inner = None
                elif method == "worker":
                    wall, cpu, _ = workbench_ask(built, work, warm_cache, sockets=sockets)
                    inner = None
                elif method == "workbench_cold":
                    cold = work / f"cache-cold-{n}-{rep}"
                    wall, cpu, _ = workbench_ask(built, work, cold)
                    shutil.rmtree(cold, ignore_errors=True)
                    inner = None
                else:
                    wall, cpu, inner = anchor(_OPTUNA if method == "optuna" else _BOTORCH,
                                              built)
                timings.setdefault(method, []).append((wall, cpu, inner))
                common.log(f"n = {n} {method} #{rep + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU")
        for method, runs in timings.items():
            walls, cpus, inner = zip(*runs)
            row[method] = summary(list(walls), list(cpus),
                                  None if inner[0] is None else list(inner))
        target = TARGET_RATIO.get(n)
        for method, suffix in (("workbench", ""), ("worker", "_worker")):
            if method in row and "optuna" in row:
                ratio = row[method]["median_s"] / row["optuna"]["median_s"]
                row["ratio_to_optuna" + suffix] = ratio
                row["target_ratio"] = target
                row["met" + suffix] = None if target is None else ratio <= target
        rows.append(row)
        shutil.rmtree(built, ignore_errors=True)
    return rows


def _sizes(text: str) -> list[int]:
    return [int(s) for s in str(text).split(",") if s.strip()]


def _cell(r: dict | None, key: str = "median_s") -> str:
    return "—" if not r else f"{r[key]:.2f}"


def _iqr(r: dict | None) -> str:
    return "—" if not r else f"{r['iqr_s'][0]:.2f}-{r['iqr_s'][1]:.2f}"


def markdown(rows: list[dict], repeats: int, skipped: dict[str, str],
             baseline: dict | None = None) -> str:
    before = {r["n"]: r for r in (baseline or {}).get("rows", [])}
    lines = ["| n | workbench warm (s) | IQR (s) | CPU (s) | workbench cold (s) | CPU (s) "
             "| Optuna GPSampler (s) | IQR (s) | CPU (s) | ratio to Optuna | target | met? "
             "| BoTorch (s) | load (1 min) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- "
             "| ---: | ---: |"]
    for r in rows:
        wb, cold, opt, bt = (r.get(k) for k in ("workbench", "workbench_cold", "optuna",
                                                 "botorch"))
        ratio = f"{r['ratio_to_optuna']:.2f}" if "ratio_to_optuna" in r else "—"
        target = f"<= {r['target_ratio']:g}" if r.get("target_ratio") else "—"
        met = "—" if r.get("met") is None else ("yes" if r["met"] else "**no**")
        lines.append(f"| {r['n']:,} | {_cell(wb)} | {_iqr(wb)} | {_cell(wb, 'median_cpu_s')} "
                     f"| {_cell(cold)} | {_cell(cold, 'median_cpu_s')} | {_cell(opt)} "
                     f"| {_iqr(opt)} | {_cell(opt, 'median_cpu_s')} | {ratio} | {target} "
                     f"| {met} | {_cell(bt)} | {r['loadavg_1min']:.1f} |")
    lines += ["", f"Medians of {repeats} fresh processes per cell, start to exit (imports"
              " included); CPU is user + system time of the process. The ratio divides our"
              " warm median wall time by Optuna's. Optuna's `study.ask` alone (after its"
              " imports and `add_trials`) took "
              + ", ".join(f"{r['optuna']['median_inner_s']:.2f} s at n = {r['n']:,}"
                          for r in rows if r.get("optuna", {}).get("median_inner_s"))
              + "." if any(r.get("optuna") for r in rows) else ""]
    if any("worker" in r for r in rows):
        lines += ["", "Through the warm worker (`workbench ask -n 1` processes that hand the ask to"
                  " it; the fresh-process rows above are the first ask of a session, which"
                  " starts the worker after answering):", "",
                  "| n | via worker (s) | IQR (s) | client CPU (s) | first through the worker"
                  " at this n (s) | Optuna GPSampler (s) | ratio to Optuna | target | met? |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rows:
            wk, opt = r.get("worker"), r.get("optuna")
            if not wk:
                continue
            ratio = (f"{r['ratio_to_optuna_worker']:.2f}" if "ratio_to_optuna_worker" in r
                     else "—")
            target = f"<= {r['target_ratio']:g}" if r.get("target_ratio") else "—"
            met = "—" if r.get("met_worker") is None else ("yes" if r["met_worker"] else "**no**")
            first = f"{r['worker_first_s']:.2f}" if "worker_first_s" in r else "—"
            lines.append(f"| {r['n']:,} | {_cell(wk)} | {_iqr(wk)} "
                         f"| {_cell(wk, 'median_cpu_s')} | {first} | {_cell(opt)} | {ratio} "
                         f"| {target} | {met} |")
        lines += ["", "The client's CPU is that of the `workbench` process alone; the worker's"
                  " own is not counted (its wall time is in the client's)."]
    if any("botorch" in r for r in rows):
        lines += ["", "BoTorch's fit and `optimize_acqf` alone: "
                  + ", ".join(f"{r['botorch']['median_inner_s']:.2f} s at n = {r['n']:,}"
                              for r in rows if "botorch" in r) + "."]
    if before:
        stamp = baseline.get("stamp", {})
        lines += ["", f"Before (`{baseline.get('label') or stamp.get('commit', '?')}`, run"
                  f" {stamp.get('date', '?')}, load {stamp.get('loadavg_at_start', [0.0])[0]:.1f}"
                  " at its start; `--baseline`):", "",
                  "| n | workbench warm (s) | CPU (s) | workbench cold (s) | Optuna (s) "
                  "| ratio to Optuna |", "| ---: | ---: | ---: | ---: | ---: | ---: |"]
        for n, r in before.items():
            ratio = f"{r['ratio_to_optuna']:.2f}" if "ratio_to_optuna" in r else "—"
            lines.append(f"| {n:,} | {_cell(r.get('workbench'))} "
                         f"| {_cell(r.get('workbench'), 'median_cpu_s')} "
                         f"| {_cell(r.get('workbench_cold'))} | {_cell(r.get('optuna'))} "
                         f"| {ratio} |")
    profiled = [r for r in rows if "profile" in r]
    if profiled:
        lines += ["", "Where a warm `workbench ask` spends its time (one instrumented run per"
                  " size; JAX's monitoring events): traces of Python functions into jaxprs,"
                  " lowerings to MLIR modules, XLA compilations (persistent-cache misses) and"
                  " programs loaded from the cache, with their seconds; then the process's"
                  " time before the proposal (imports, opening the store), in the model fit"
                  " and the acquisition search (both include the tracing and loading they"
                  " cause), and after it (output, tracking delivery).", "",
                  "| n | traces | lowerings | compilations | cache loads | trace (s) "
                  "| lower (s) | compile (s) | cache load (s) | before (s) | fit (s) "
                  "| acquisition (s) | after (s) | programs by entry point |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                  "| ---: | ---: | ---: | --- |"]
        for r in profiled:
            p = r["profile"]
            f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
            programs = ", ".join(f"{k} {v}" for k, v in sorted(p["programs"].items()))
            lines.append(f"| {r['n']:,} | {p['traces']} | {p['lowerings']} "
                         f"| {p['compilations']} | {p['cache_loads']} | {f(p['trace_s'])} "
                         f"| {f(p['lower_s'])} | {f(p['compile_s'])} | {f(p['cache_load_s'])} "
                         f"| {f(p['before_s'])} | {f(p['fit_s'])} | {f(p['acquisition_s'])} "
                         f"| {f(p['after_s'])} | {programs or '—'} |")
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped.values()) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run cold_start",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="30,200,1000,2000",
                        help="numbers of imported observations, comma-separated")
    parser.add_argument("--repeats", type=int, default=3, help="timed processes per cell")
    parser.add_argument("--cold-sizes", default="30",
                        help="sizes that also get cold-cache workbench rows")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--botorch-sizes", default="30,1000", help="sizes BoTorch runs at")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                        help="one untimed workbench run per size first, so that the warm"
                             " rows find the compilation cache filled")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="one instrumented warm run per size (counts and phases)")
    parser.add_argument("--label", default=None,
                        help="what this run measures, for a later --baseline (default: commit)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="raw JSON of an earlier run (another checkout), shown beside")
    parser.add_argument("--report-only", type=Path, default=None, metavar="JSON",
                        help="write the page from this run's raw JSON (its own stamp) and"
                             " --baseline, measuring nothing")
    args = common.parse_args(parser, argv, QUICK)
    baseline = json.loads(args.baseline.read_text()) if args.baseline is not None else None
    if args.report_only is not None:
        raw = json.loads(args.report_only.read_text())
        body = markdown(raw["rows"], raw["repeats"], raw.get("skipped", {}), baseline)
        page = common.write_page(args.page or common.RESULTS_DIR / "cold_start.md", __doc__,
                                 raw["stamp"], body, quick=bool(args.quick))
        print(page.read_text())
        return 0
    for name in ("sizes", "cold_sizes", "botorch_sizes"):
        try:
            sizes = _sizes(getattr(args, name))
        except ValueError:
            parser.error(f"--{name.replace('_', '-')}: got {getattr(args, name)!r}; expected"
                         " comma-separated whole numbers")
        if any(n <= N_INITIAL for n in sizes):
            parser.error(f"--{name.replace('_', '-')}: got {getattr(args, name)!r}; expected"
                         f" sizes above the initial design's {N_INITIAL} points")
    if not _sizes(args.sizes):
        parser.error("--sizes: got none; expected at least one size")
    if args.repeats < 1:
        parser.error(f"--repeats: got {args.repeats}; expected at least 1")
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        parser.error(f"--methods: got {unknown}; expected names from {', '.join(METHODS)}")
    methods, skipped = common.split_available(wanted, REQUIRES)
    run = common.Run.start(__name__, __doc__, args, argv)
    with common.scratch() as tmp:
        rows = measure(tmp, args, methods)
    run.write_raw({"rows": rows, "repeats": args.repeats, "skipped": skipped,
                   "label": args.label})
    page = run.write_page(markdown(rows, args.repeats, skipped, baseline))
    print(page.read_text())
    return 0
