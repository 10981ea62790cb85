"""Whole job: README's quickstart end to end as a fresh process, against Optuna with SQLite.

`python -m workbench run experiments/quickstart.yaml` (Branin, 6 Sobol points then 24 GP +
log EI proposals, the Zarr store and embedded MLflow tracking on, as the README runs it) timed
as a fresh process in a fresh folder, from start to exit, against the same campaign run by
Optuna's `GPSampler` (6 start-up trials, 30 in all) with `create_study(storage="sqlite:///...")`
in a fresh process, and optionally a plain BoTorch loop (6 Sobol points, then `SingleTaskGP` +
`LogExpectedImprovement` + `optimize_acqf`, no storage). Peak memory is the largest resident
set of the process (and of the children it waited for), from `wait4`. Where the campaign hands
its MLflow delivery to a detached process, the time until every tracking event is in MLflow
is reported beside the time to exit. The compilation cache is warm (one untimed run first
with the same cache folder), and so is the checkout's bytecode cache (compiled first, as an
install compiles it); methods run interleaved, repetition by repetition, on seeds
0, 1, ... Target (issue 18): our median wall time to exit at most Optuna's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

SPEC = common.ROOT / "experiments" / "quickstart.yaml"
METHODS = ("workbench", "workbench_wait", "optuna", "botorch")
REQUIRES = {"workbench": ("jax",), "workbench_wait": ("jax", "mlflow"),
            "optuna": ("optuna", "torch", "scipy"), "botorch": ("botorch", "torch")}
LABELS = {"workbench": "`workbench run` (default)",
          "workbench_wait": "`workbench run --wait` (MLflow in the process)",
          "optuna": "Optuna GPSampler + SQLite", "botorch": "BoTorch loop, no storage"}
QUICK = {"repeats": 1, "budget": 7, "methods": "workbench,optuna", "warmup": False,
         "profile": False}
TIMEOUT_S = 900
DELIVERY_POLL_S = 0.05
N_INITIAL = 6  # the quickstart's initial design

# The same campaign in Optuna: Branin on the same bounds, minimised, GPSampler after 6
# start-up trials, every trial in an SQLite study. Prints the number of trials and the best.
_OPTUNA = """\
import math, sys, warnings
import optuna
db, seed, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def branin(x1, x2):
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * math.cos(x1) + 10.0
def objective(trial):
    return branin(trial.suggest_float("x1", -5.0, 10.0), trial.suggest_float("x2", 0.0, 15.0))
optuna.logging.set_verbosity(optuna.logging.WARNING)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # GPSampler is flagged experimental in some versions
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials={n_initial},
                                        deterministic_objective=True)
study = optuna.create_study(study_name="quickstart", direction="minimize", sampler=sampler,
                            storage=f"sqlite:///{{db}}")
study.optimize(objective, n_trials=budget)
print(len(study.trials), study.best_value)
"""

# BoTorch as a loop a user writes: 6 scrambled Sobol points, then per step SingleTaskGP
# (its default priors and outcome standardisation) + LogEI + optimize_acqf (10 restarts,
# 512 raw samples), as in benchmarks/hartmann6; nothing stored.
_BOTORCH = """\
import math, sys
import torch
from botorch.acquisition import LogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.optim import optimize_acqf
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch.quasirandom import SobolEngine
seed, budget = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(seed)
lo = torch.tensor([-5.0, 0.0], dtype=torch.float64)
span = torch.tensor([15.0, 15.0], dtype=torch.float64)
def branin(x):
    x1, x2 = (lo + span * x).unbind(-1)
    b, c, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * torch.cos(x1) + 10.0
X = SobolEngine(2, scramble=True, seed=seed).draw({n_initial}).to(torch.float64)
Y = -branin(X).unsqueeze(-1)
bounds = torch.stack([torch.zeros(2), torch.ones(2)]).to(torch.float64)
while len(X) < budget:
    model = SingleTaskGP(X, Y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    x, _ = optimize_acqf(LogExpectedImprovement(model, best_f=Y.max()), bounds=bounds, q=1,
                         num_restarts=10, raw_samples=512)
    X, Y = torch.cat([X, x]), torch.cat([Y, -branin(x).unsqueeze(-1)])
print(len(X), float(-Y.max()))
"""

# The instrumented run: `workbench ARGS` in this process with JAX's monitoring listeners;
# writes the traces, lowerings, cache loads and compilations, with their seconds, and the
# programs each entry point built, as JSON to $WHOLE_JOB_PROBE.
_PROBE = """\
import atexit, collections, json, os, sys
import jax.monitoring as mon
counts, seconds = collections.Counter(), collections.Counter()
def on_duration(e, d, **kw):
    counts[e] += 1
    seconds[e] += d
mon.register_event_duration_secs_listener(on_duration)
mon.register_event_listener(lambda e, **kw: counts.update([e]))
def write():
    from surrogates import compiled_programs
    with open(os.environ["WHOLE_JOB_PROBE"], "w") as f:
        json.dump({"counts": counts, "seconds": seconds,
                   "programs": {k: v for k, v in compiled_programs().items() if v}}, f)
atexit.register(write)
sys.argv = ["workbench", *sys.argv[1:]]
from workbench.cli import main
main()
"""


def run_tree(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int, str]:
    """(wall seconds, CPU seconds, peak resident bytes, stdout) of one fresh process, start
    to exit. ``wait4`` gives the process's own resource use (with the children it waited
    for), not the sum or maximum over every child this benchmark has run; the output goes
    through files so that nothing else reaps the process first."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        pid = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err).pid
        deadline = t0 + TIMEOUT_S
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if time.perf_counter() > deadline:
                os.kill(pid, 9)
                os.wait4(pid, 0)
                raise RuntimeError(f"{' '.join(map(str, argv[:4]))} ran past {TIMEOUT_S} s")
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:4]))} failed ({code}): {stdout[-2000:]}"
                           f" {stderr[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, stdout


def campaign_folder(work: Path, seed: int, budget: int) -> Path:
    """A fresh folder holding the quickstart spec with ``seed`` and ``budget``: its store
    and tracking database are made there, relative to the working directory."""
    folder = work / "run"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    text = SPEC.read_text()
    text = re.sub(r"(?m)^seed: .*$", f"seed: {seed}", text)
    text = re.sub(r"(?m)^budget: .*$", f"budget: {budget}", text)
    (folder / "quickstart.yaml").write_text(text)
    return folder


def tracking_paths(folder: Path) -> tuple[Path, str]:
    """The campaign's store and tracking URI, from the spec as written in ``folder``."""
    import yaml

    spec = yaml.safe_load((folder / "quickstart.yaml").read_text())
    return folder / spec["store"], spec["tracking"]


def wait_delivered(folder: Path, t_start: float) -> float | None:
    """Seconds from the run's start until its tracking outbox is empty (every event in
    MLflow), polling; None when no outbox exists (nothing tracked)."""
    from workbench.outbox import Outbox
    from workbench.store import ZarrStore

    store, _ = tracking_paths(folder)
    outbox = Outbox(ZarrStore(str(store)).outbox_path)
    deadline = time.perf_counter() + TIMEOUT_S
    while time.perf_counter() < deadline:
        with outbox.lock():
            left = outbox.pending()
        if not left:
            with outbox.delivery_lock():  # a deliverer still writing holds it
                pass
            return time.perf_counter() - t_start
        time.sleep(DELIVERY_POLL_S)
    raise RuntimeError(f"tracking events still undelivered {TIMEOUT_S} s after the run")


def tracked_steps(folder: Path) -> int:
    """The number of steps of ``completed`` in the campaign's MLflow run (each tell logs
    one): a check that delivery happened, read after it did."""
    from mlflow.tracking import MlflowClient

    _, uri = tracking_paths(folder)
    cwd = os.getcwd()
    os.chdir(folder)  # the URI is relative to the campaign's folder
    try:
        client = MlflowClient(uri)
        runs = [r for e in client.search_experiments() for r in
                client.search_runs([e.experiment_id])]
        return sum(len(client.get_metric_history(r.info.run_id, "completed")) for r in runs)
    finally:
        os.chdir(cwd)


def workbench_run(work: Path, seed: int, budget: int, cache: Path | None, wait: bool,
                  check: bool = False) -> dict:
    """One `workbench run` of the quickstart as a fresh process in a fresh folder."""
    folder = campaign_folder(work, seed, budget)
    env = common.workbench_env(**({} if cache is None else {"WORKBENCH_CACHE_DIR": str(cache)}))
    argv = [sys.executable, "-m", "workbench", "run", "quickstart.yaml", "--quiet",
            *(["--wait"] if wait else [])]
    t0 = time.perf_counter()
    wall, cpu, rss, stdout = run_tree(argv, folder, env)
    store, _ = tracking_paths(folder)
    from workbench.outbox import Outbox
    from workbench.store import ZarrStore

    outbox = Outbox(ZarrStore(str(store)).outbox_path)
    with outbox.lock():
        in_process = not outbox.pending()
    delivered = wait_delivered(folder, t0)
    best = re.search(r"best y = ([-+0-9.e]+)", stdout)
    out = {"wall_s": wall, "cpu_s": cpu, "rss_bytes": rss, "delivered_s": delivered,
           "delivered_in_process": in_process, "best": float(best.group(1)) if best else None}
    if check:
        out["tracked_steps"] = tracked_steps(folder)
    return out


def anchor(code: str, args: list[str], work: Path) -> dict:
    folder = work / "anchor"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    script = code.format(n_initial=N_INITIAL)
    wall, cpu, rss, stdout = run_tree([sys.executable, "-c", script, *args], folder,
                                      common.workbench_env())
    n, best = stdout.split()[-2:]
    return {"wall_s": wall, "cpu_s": cpu, "rss_bytes": rss, "trials": int(n),
            "best": float(best)}


def profile(work: Path, budget: int, cache: Path | None) -> dict:
    """One instrumented `workbench run --wait`: JAX's traces, lowerings, cache loads and
    compilations with their seconds, and the programs each entry point built."""
    folder = campaign_folder(work, 0, budget)
    env = common.workbench_env(WHOLE_JOB_PROBE=str(work / "probe.json"),
                               **({} if cache is None else {"WORKBENCH_CACHE_DIR": str(cache)}))
    run_tree([sys.executable, "-c", _PROBE, "run", "quickstart.yaml", "--quiet"], folder, env)
    raw = json.loads((work / "probe.json").read_text())
    c, s = raw["counts"], raw["seconds"]
    hits = c.get("/jax/compilation_cache/cache_hits", 0)
    return {"traces": c.get("/jax/core/compile/jaxpr_trace_duration", 0),
            "lowerings": c.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0),
            "cache_loads": hits,
            "compilations": c.get("/jax/core/compile/backend_compile_duration", 0) - hits,
            "trace_s": s.get("/jax/core/compile/jaxpr_trace_duration", 0.0),
            "lower_s": s.get("/jax/core/compile/jaxpr_to_mlir_module_duration", 0.0),
            "cache_load_s": s.get("/jax/compilation_cache/cache_retrieval_time_sec", 0.0),
            "programs": raw["programs"]}


def summary(runs: list[dict]) -> dict:
    walls = [r["wall_s"] for r in runs]
    q25, med, q75 = common.quartiles(walls)
    out = {"runs": runs, "median_s": med, "iqr_s": [q25, q75],
           "median_cpu_s": common.median(r["cpu_s"] for r in runs),
           "median_rss_gb": common.median(r["rss_bytes"] for r in runs) / 1e9,
           "max_rss_gb": max(r["rss_bytes"] for r in runs) / 1e9}
    delivered = [r["delivered_s"] for r in runs if r.get("delivered_s") is not None]
    if delivered:
        d25, dmed, d75 = common.quartiles(delivered)
        out.update(median_delivered_s=dmed, iqr_delivered_s=[d25, d75],
                   delivered_in_process=all(r["delivered_in_process"] for r in runs))
    return out


def measure(work: Path, args: argparse.Namespace, methods: list[str]) -> dict:
    cache = None if args.quick and not args.warmup else work / "cache"
    ours = [m for m in methods if m.startswith("workbench")]
    if args.warmup:
        if ours:
            common.log("untimed workbench run (fills the compilation cache)")
            common.compile_bytecode()
            workbench_run(work, 0, args.budget, cache, wait=False)
        if "optuna" in methods:
            anchor(_OPTUNA, [str(work / "anchor" / "warm.db"), "0", str(args.budget)], work)
    result: dict = {"loadavg_1min": [], "methods": {}}
    timings: dict[str, list[dict]] = {m: [] for m in methods}
    for rep in range(args.repeats):
        seed = args.first_seed + rep
        result["loadavg_1min"].append(os.getloadavg()[0])
        for method in methods:
            if method.startswith("workbench"):
                r = workbench_run(work, seed, args.budget, cache, wait=method.endswith("wait"),
                                  check=rep == 0)
            elif method == "optuna":
                r = anchor(_OPTUNA, [str(work / "anchor" / "study.db"), str(seed),
                                     str(args.budget)], work)
            else:
                r = anchor(_BOTORCH, [str(seed), str(args.budget)], work)
            timings[method].append(r)
            extra = (f", delivered at {r['delivered_s']:.2f} s"
                     f" ({'in the process' if r['delivered_in_process'] else 'detached'})"
                     if r.get("delivered_s") is not None else "")
            common.log(f"seed {seed} {method}: {r['wall_s']:.2f} s wall, {r['cpu_s']:.2f} s CPU,"
                       f" {r['rss_bytes'] / 1e9:.2f} GB peak{extra}")
    for method, runs in timings.items():
        result["methods"][method] = summary(runs)
    if args.profile and ours:
        common.log("instrumented run")
        result["profile"] = profile(work, args.budget, cache)
    m = result["methods"]
    if "workbench" in m and "optuna" in m:
        result["ratio_to_optuna"] = m["workbench"]["median_s"] / m["optuna"]["median_s"]
        result["memory_ratio_to_optuna"] = (m["workbench"]["median_rss_gb"]
                                            / m["optuna"]["median_rss_gb"])
        result["met"] = result["ratio_to_optuna"] <= 1.0
    return result


def markdown(result: dict, args: argparse.Namespace, skipped: dict[str, str],
             baseline: dict | None = None) -> str:
    f = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
    lines = ["| method | wall to exit (s) | IQR (s) | CPU (s) | peak memory (GB) "
             "| MLflow delivered (s) | IQR (s) | delivered by | best y |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for method, r in result["methods"].items():
        bests = [x["best"] for x in r["runs"] if x.get("best") is not None]
        by = ("—" if "median_delivered_s" not in r else
              "the process" if r["delivered_in_process"] else "a detached process")
        iqr = (f"{r['iqr_delivered_s'][0]:.2f}-{r['iqr_delivered_s'][1]:.2f}"
               if "iqr_delivered_s" in r else "—")
        best = f"{common.median(bests):.3f}" if bests else "—"
        lines.append(
            f"| {LABELS[method]} | {r['median_s']:.2f} | {r['iqr_s'][0]:.2f}-{r['iqr_s'][1]:.2f}"
            f" | {r['median_cpu_s']:.2f} | {r['median_rss_gb']:.2f} "
            f"| {f(r.get('median_delivered_s'))} | {iqr} | {by} | {best} |")
    loads = result["loadavg_1min"]
    lines += ["", f"Medians over {args.repeats} fresh processes per method (seeds"
              f" {args.first_seed}-{args.first_seed + args.repeats - 1}), {args.budget}"
              f" evaluations each ({N_INITIAL} initial), interleaved; load average (1 min)"
              f" {min(loads):.1f}-{max(loads):.1f} before the repetitions. CPU is user +"
              " system time of the process; peak memory its largest resident set. The best"
              " y is the median over seeds (Branin's minimum is 0.398)."]
    if "ratio_to_optuna" in result:
        lines += ["", f"Ratio of our median wall time to exit to Optuna's:"
                  f" {result['ratio_to_optuna']:.2f} (target <= 1:"
                  f" {'met' if result['met'] else '**not met**'}); peak memory"
                  f" {result['memory_ratio_to_optuna']:.2f}x Optuna's."]
    steps = [(m, r["runs"][0]["tracked_steps"]) for m, r in result["methods"].items()
             if r["runs"] and "tracked_steps" in r["runs"][0]]
    if steps:
        lines += ["", "MLflow steps of `completed` found in the tracking database after"
                  " delivery (first seed): " + ", ".join(f"{LABELS[m]} {n}" for m, n in steps)
                  + f" (expected {args.budget})."]
    p = result.get("profile")
    if p:
        programs = ", ".join(f"{k} {v}" for k, v in sorted(p["programs"].items())) or "—"
        lines += ["", "One instrumented run (JAX's monitoring events, the whole campaign):"
                  f" {p['traces']} traces ({p['trace_s']:.2f} s), {p['lowerings']} lowerings"
                  f" ({p['lower_s']:.2f} s), {p['cache_loads']} programs loaded from the"
                  f" persistent cache ({p['cache_load_s']:.2f} s), {p['compilations']}"
                  f" compiled; programs by entry point: {programs}."]
    if baseline:
        stamp = baseline.get("stamp", {})
        lines += ["", f"Before (`{baseline.get('label') or stamp.get('commit', '?')}`, run"
                  f" {stamp.get('date', '?')}, load {stamp.get('loadavg_at_start', [0.0])[0]:.1f}"
                  " at its start; `--baseline`):", "",
                  "| method | wall to exit (s) | CPU (s) | peak memory (GB) "
                  "| MLflow delivered (s) |", "| --- | ---: | ---: | ---: | ---: |"]
        for method, r in baseline["methods"].items():
            lines.append(f"| {LABELS.get(method, method)} | {r['median_s']:.2f} "
                         f"| {r['median_cpu_s']:.2f} | {r['median_rss_gb']:.2f} "
                         f"| {f(r.get('median_delivered_s'))} |")
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped.values()) + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run whole_job",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed processes per method")
    parser.add_argument("--first-seed", type=int, default=0, help="seed of the first repeat")
    parser.add_argument("--budget", type=int, default=30,
                        help="evaluations per campaign (the quickstart's 30)")
    parser.add_argument("--methods", default="workbench,optuna",
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                        help="one untimed run of ours (compilation cache, in a folder of"
                             " this run) and of Optuna's first")
    parser.add_argument("--profile", action=argparse.BooleanOptionalAction, default=True,
                        help="one instrumented run of ours (JAX traces and cache loads)")
    parser.add_argument("--label", default=None,
                        help="what this run measures, for a later --baseline (default: commit)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="raw JSON of an earlier run (another checkout), shown beside")
    args = common.parse_args(parser, argv, QUICK)
    if args.repeats < 1:
        parser.error(f"--repeats: got {args.repeats}; expected at least 1")
    if args.budget <= N_INITIAL:
        parser.error(f"--budget: got {args.budget}; expected more than the {N_INITIAL}"
                     " initial points")
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METHODS]
    if unknown or not wanted:
        parser.error(f"--methods: got {args.methods!r}; expected names from"
                     f" {', '.join(METHODS)}")
    methods, skipped = common.split_available(wanted, REQUIRES)
    baseline = json.loads(args.baseline.read_text()) if args.baseline is not None else None
    run = common.Run.start(__name__, __doc__, args, argv)
    with common.scratch() as tmp:
        result = measure(tmp, args, methods)
    run.write_raw({**result, "skipped": skipped, "label": args.label})
    page = run.write_page(markdown(result, args, skipped, baseline))
    print(page.read_text())
    return 0
