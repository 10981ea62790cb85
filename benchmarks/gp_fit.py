"""Exact-GP fitting speed: ``surrogates.fit_gp`` against BoTorch, a bare Cholesky, itself.

Wall and CPU time (medians over repetitions, float64) of a MAP fit at n = 1,000 against
BoTorch's ``fit_gpytorch_mll``; of one likelihood value and gradient at n = 4,096 against a bare
Cholesky and triangular solve; the programs compiled while n grows; and the first fit of a
fresh process with a cold and a warm persistent compilation cache.

Sections (``--sections``):

a. MAP fit at ``--n`` = 1000, d = 6 (Hartmann-6 at scrambled Sobol inputs, N(0, 0.01^2)
   output noise): ``fit_gp`` with one start against BoTorch ``SingleTaskGP`` +
   ``fit_gpytorch_mll`` (one start too), interleaved in this process; then the
   ablations (4 restarts, a warm start from a fit on the first 90 % of the points, fewer
   iterations, BoTorch with GPyTorch's default iterative solver above 800 points)
   and a profile: how many likelihood values and gradients a fit takes times
   what each costs.
b. One -log marginal likelihood value and gradient at ``--big-n`` = 4096, d = 6, against a
   bare ``jnp.linalg.cholesky`` followed by a triangular solve, with one right-hand
   side and with n of them (what K^-1 needs).
c. Programs compiled while n grows from 1 to ``--grow-to`` (padded buckets: about log2).
d. First fit in a fresh process with a cold and with a warm persistent
   compilation cache (two subprocesses sharing a temporary cache folder).

``--threads 1`` holds BLAS, XLA and torch to one thread each.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.common import log, median, timed
from benchmarks.problems_suite import hartmann6_rows as hartmann6

D = 6
NOISE_STD = 0.01
N_TEST = 1000
WARM_FRACTION = 0.9  # the warm-start ablation starts from a fit on this share of the rows
CACHE_PROBE_N = 40
QUICK = {"n": 200, "big_n": 512, "grow_to": 100, "reps": 2, "ablation_reps": 1}


def dataset(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n scrambled Sobol points and noisy Hartmann-6 values."""
    from scipy.stats import qmc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Sobol balance warning for n not a power of two
        X = qmc.Sobol(D, scramble=True, seed=seed).random(n)
    y = hartmann6(X) + NOISE_STD * np.random.default_rng(seed).normal(size=n)
    return X, y


# --- a. MAP fit at n = 1,000 ------------------------------------------------------

def ours_fit(X: np.ndarray, y: np.ndarray, *, key: int = 0, **kwargs: Any) -> Any:
    """``fit_gp`` on the unit cube, blocked until the model is ready."""
    import jax

    import surrogates as sg

    model = sg.fit_gp(X, y, key=jax.random.key(key), bounds=(np.zeros(D), np.ones(D)), **kwargs)
    return jax.block_until_ready(model)


def ours_rmse(model: Any, Xt: np.ndarray, yt: np.ndarray) -> float:
    import jax

    mean = jax.jit(lambda m, x: m.posterior(x).mean)(model, Xt)
    return float(np.sqrt(np.mean((np.asarray(mean)[:, 0] - yt) ** 2)))


def botorch_fit(X: np.ndarray, y: np.ndarray, *, exact: bool) -> tuple[Any, bool]:
    """SingleTaskGP + fit_gpytorch_mll; exact=True forces Cholesky above 800 points."""
    import gpytorch
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)[:, None]
    size = 10**9 if exact else gpytorch.settings.max_cholesky_size.value()
    with gpytorch.settings.max_cholesky_size(size), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SingleTaskGP(Xt, yt)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model, exact


def botorch_rmse(fitted: tuple[Any, bool], Xt: np.ndarray, yt: np.ndarray) -> float:
    import gpytorch
    import torch

    model, exact = fitted
    size = 10**9 if exact else gpytorch.settings.max_cholesky_size.value()
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(size):
        mean = model.posterior(torch.tensor(Xt, dtype=torch.float64)).mean.numpy()[:, 0]
    return float(np.sqrt(np.mean((mean - yt) ** 2)))


def _summary(runs: list[tuple[float, float]], rmse: float, **extra) -> dict:
    return {"wall_s": [r[0] for r in runs], "cpu_s": [r[1] for r in runs],
            "median_wall_s": median(r[0] for r in runs),
            "median_cpu_s": median(r[1] for r in runs), "test_rmse": rmse, **extra}


def evaluation_profile(X: np.ndarray, y: np.ndarray) -> dict:
    """Likelihood values and gradients one cold fit takes, and what each costs."""
    import jax
    import jax.numpy as jnp

    from surrogates import gp, gp_fit, gp_likelihood

    counts: Counter = Counter()
    value, grad = gp_fit.nll_value, gp_fit.nll_grad

    def counted(fn, name):
        def wrapper(*args, **kwargs):
            jax.debug.callback(lambda: counts.update([name]))
            return fn(*args, **kwargs)
        return wrapper

    # The fit looks these up in gp_fit's namespace.
    gp_fit.nll_value, gp_fit.nll_grad = counted(value, "values"), counted(grad, "gradients")
    gp._fit.clear_cache()  # retrace with the counting functions
    try:
        model = ours_fit(X, y, restarts=1)
    finally:
        gp_fit.nll_value, gp_fit.nll_grad = value, grad
        gp._fit.clear_cache()
    theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
    Z, ys, mask = model.X, model.Y[:, 0], model.mask[:, 0]
    noise = jnp.zeros_like(ys)
    f_value = jax.jit(lambda t: gp_likelihood.nll_value(t, Z, ys, mask, noise))
    f_grad = jax.jit(lambda t, aux: gp_likelihood.nll_grad(t, Z, ys, mask, noise, *aux))
    _, aux = jax.block_until_ready(f_value(theta))
    jax.block_until_ready(f_grad(theta, aux))
    tv = [timed(lambda: jax.block_until_ready(f_value(theta)))[1:] for _ in range(5)]
    tg = [timed(lambda: jax.block_until_ready(f_grad(theta, aux)))[1:] for _ in range(5)]
    out = {"values": counts["values"], "gradients": counts["gradients"],
           "padded_n": int(Z.shape[0]),
           "value_wall_s": median(t[0] for t in tv), "value_cpu_s": median(t[1] for t in tv),
           "gradient_wall_s": median(t[0] for t in tg), "gradient_cpu_s": median(t[1] for t in tg)}
    out["predicted_cpu_s"] = (out["values"] * out["value_cpu_s"]
                              + out["gradients"] * out["gradient_cpu_s"])
    return out


def section_a(args: argparse.Namespace) -> dict:
    import jax

    from surrogates import gp

    X, y = dataset(args.n, seed=0)
    Xt, _ = dataset(N_TEST, seed=1)
    yt = hartmann6(Xt)
    log(f"a: compiling fit_gp at n={args.n}")
    _, wall, cpu = timed(ours_fit, X, y, restarts=1)
    first = {"wall_s": wall, "cpu_s": cpu}
    has_botorch = all(importlib.util.find_spec(m) for m in ("torch", "gpytorch", "botorch"))
    ours, bt = [], []
    model = fitted = None
    for rep in range(args.reps):  # interleaved, so load changes hit both alike
        model, wall, cpu = timed(ours_fit, X, y, key=rep, restarts=1)
        ours.append((wall, cpu))
        log(f"a: ours rep {rep}: {wall:.2f} s wall, {cpu:.2f} s CPU")
        if has_botorch:
            fitted, wall, cpu = timed(botorch_fit, X, y, exact=True)
            bt.append((wall, cpu))
            log(f"a: BoTorch (Cholesky) rep {rep}: {wall:.2f} s wall, {cpu:.2f} s CPU")
    out: dict = {"n": args.n, "first_fit_with_compile": first,
                 "ours_restarts_1": _summary(ours, ours_rmse(model, Xt, yt))}
    if bt:
        out["botorch_cholesky"] = _summary(bt, botorch_rmse(fitted, Xt, yt))

    log("a: ablations")
    n_warm = int(WARM_FRACTION * args.n)
    warm = ours_fit(X[:n_warm], y[:n_warm], restarts=1).hyperparameters
    variants = {
        "ours_restarts_4": dict(restarts=4),
        f"ours_warm_start_from_n{n_warm}": dict(restarts=1, warm_start=warm),
        "ours_max_iter_25": dict(restarts=1, max_iter=25),
    }
    for name, kwargs in variants.items():
        ours_fit(X, y, **kwargs)  # compile (a new program only where statics change)
        runs = []
        for rep in range(args.ablation_reps):
            model, wall, cpu = timed(ours_fit, X, y, key=rep, **kwargs)
            runs.append((wall, cpu))
        theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
        objective = float(gp.negative_log_marginal_likelihood(
            theta, model.X, model.Y[:, 0], model.mask[:, 0]) - gp.log_prior(theta))
        out[name] = _summary(runs, ours_rmse(model, Xt, yt), map_objective=objective)
        log(f"a: {name}: {out[name]['median_wall_s']:.2f} s wall")
    model = ours_fit(X, y, restarts=1)
    theta = jax.tree.map(lambda a: a[0], model.hyperparameters)
    out["ours_restarts_1"]["map_objective"] = float(gp.negative_log_marginal_likelihood(
        theta, model.X, model.Y[:, 0], model.mask[:, 0]) - gp.log_prior(theta))
    if has_botorch:
        runs = []
        for _ in range(args.ablation_reps):
            fitted, wall, cpu = timed(botorch_fit, X, y, exact=False)
            runs.append((wall, cpu))
        out["botorch_default_solver"] = _summary(runs, botorch_rmse(fitted, Xt, yt))
        log(f"a: BoTorch default solver: {out['botorch_default_solver']['median_wall_s']:.2f} s")
    log("a: profile")
    out["profile_restarts_1"] = evaluation_profile(X, y)
    return out


# --- b. one likelihood evaluation at n = 4,096 -------------------------------------

def section_b(args: argparse.Namespace) -> dict:
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    import surrogates as sg
    from surrogates import gp_likelihood as lik

    n = args.big_n
    X, y = dataset(n, seed=2)
    theta = sg.GPHyperparameters(log_lengthscale=jnp.full(D, -1.0), log_variance=jnp.asarray(0.0),
                                 log_noise=jnp.asarray(-6.0), mean=jnp.asarray(0.0))
    Z, ys = jnp.asarray(X), jnp.asarray((y - y.mean()) / y.std())
    mask, noise = jnp.ones(n), jnp.zeros(n)
    K = lik.masked_gram(theta, Z, mask)
    eye = jnp.eye(n)
    programs = {
        "nll_value_and_gradient": (
            jax.jit(lambda t: lik.nll_value_and_grad(t, Z, ys, mask, noise)), theta),
        "nll_value": (jax.jit(lambda t: lik.nll_value(t, Z, ys, mask, noise)[0]), theta),
        "cholesky": (jax.jit(jnp.linalg.cholesky), K),
        "cholesky_and_solve_1_rhs": (jax.jit(lambda K: solve_triangular(
            jnp.linalg.cholesky(K), ys, lower=True)), K),
        "cholesky_and_solve_n_rhs": (jax.jit(lambda K: solve_triangular(
            jnp.linalg.cholesky(K), eye, lower=True)), K),
    }
    runs: dict = {k: [] for k in programs}
    for fn, arg in programs.values():
        jax.block_until_ready(fn(arg))
    for rep in range(args.reps):
        for name, (fn, arg) in programs.items():
            runs[name].append(timed(lambda: jax.block_until_ready(fn(arg)))[1:])
        log(f"b: rep {rep}: " + ", ".join(f"{k} {v[-1][0]:.2f}s" for k, v in runs.items()))
    out: dict = {"n": n}
    for name, r in runs.items():
        out[name] = {"median_wall_s": median(x[0] for x in r),
                     "median_cpu_s": median(x[1] for x in r)}
    return out


# --- c. compilations while n grows ---------------------------------------------------

def growth_schedule(n_max: int) -> list[int]:
    """Every n up to 20, then both sides of each bucket boundary and a few inside."""
    ns = set(range(1, min(20, n_max) + 1))
    b = 16
    while b < n_max:
        ns.update(x for x in (b, b + 1, b + b // 2) if x <= n_max)
        b *= 2
    ns.add(n_max)
    return sorted(ns)


def section_c(args: argparse.Namespace) -> dict:
    from surrogates import gp

    X, y = dataset(args.grow_to, seed=3)
    before = gp._fit._cache_size()
    compiles, warm = [], None
    schedule = growth_schedule(args.grow_to)
    t0 = time.perf_counter()
    for n in schedule:
        size = gp._fit._cache_size()
        # A campaign-like refit: warm start from the last fit, a few iterations.
        model, wall, _ = timed(ours_fit, X[:n], y[:n], restarts=1, max_iter=10, warm_start=warm)
        warm = model.hyperparameters
        if gp._fit._cache_size() > size:
            compiles.append({"n": n, "bucket": gp.bucket_size(n), "wall_s": wall})
            log(f"c: compiled for n={n} (bucket {gp.bucket_size(n)}) in {wall:.1f} s")
    return {"fits": len(schedule), "n_max": args.grow_to, "schedule": schedule,
            "programs": gp._fit._cache_size() - before, "compiles": compiles,
            "buckets": sorted({gp.bucket_size(n) for n in schedule}),
            "total_wall_s": time.perf_counter() - t0}


# --- d. persistent compilation cache ---------------------------------------------------

def cache_probe(cache_dir: str) -> None:
    """Subprocess body: time the first fit of a fresh process, print JSON."""
    import jax

    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import surrogates  # noqa: F401

    X, y = dataset(CACHE_PROBE_N, seed=4)
    _, wall, cpu = timed(ours_fit, X, y)
    _, wall2, cpu2 = timed(ours_fit, X, y, key=1)
    print(json.dumps({"first_fit_wall_s": wall, "first_fit_cpu_s": cpu,
                      "second_fit_wall_s": wall2, "second_fit_cpu_s": cpu2}))


def section_d(args: argparse.Namespace) -> dict:
    out: dict = {"n": CACHE_PROBE_N}
    with tempfile.TemporaryDirectory(prefix="gp_fit_cache_") as cache:
        for label in ("cold", "warm"):
            # A fresh process (thread settings inherited through the environment).
            cmd = [sys.executable, "-m", "benchmarks", "run", "gp_fit", "--cache-probe", cache]
            w = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True,
                                  cwd=common.ROOT)
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
            out[label]["process_wall_s"] = time.perf_counter() - w
            log(f"d: {label} cache: first fit {out[label]['first_fit_wall_s']:.2f} s")
        out["cache_files"] = len(list(Path(cache).rglob("*")))
    out["speedup_wall"] = out["cold"]["first_fit_wall_s"] / out["warm"]["first_fit_wall_s"]
    return out


# --- report -------------------------------------------------------------------------

def _fmt(x: float) -> str:
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def markdown(report: dict) -> str:
    """One table: a row per timing, medians of wall and CPU seconds, ratios in the notes."""
    lines = ["| benchmark | median wall (s) | median CPU (s) | note |", "| --- | --- | --- | --- |"]
    a = report.get("a")
    if a:
        ours = a["ours_restarts_1"]
        names = ["ours_restarts_1", "botorch_cholesky", "ours_restarts_4",
                 *[k for k in a if k.startswith("ours_warm_start")], "ours_max_iter_25",
                 "botorch_default_solver"]
        for name in names:
            if name not in a:
                continue
            r = a[name]
            note = f"test RMSE {r['test_rmse']:.4f}"
            if "map_objective" in r:
                note += f", MAP objective {r['map_objective']:.3f}"
            if name.startswith("botorch"):
                note += (f"; ours is {r['median_wall_s'] / ours['median_wall_s']:.1f}x faster"
                         f" (wall), {r['median_cpu_s'] / ours['median_cpu_s']:.1f}x (CPU)")
            lines.append(f"| a. fit n={a['n']}, d={D}: {name} | {_fmt(r['median_wall_s'])} | "
                         f"{_fmt(r['median_cpu_s'])} | {note} |")
        f = a["first_fit_with_compile"]
        lines.append(f"| a. first fit incl. compile (restarts 1) | {_fmt(f['wall_s'])} | "
                     f"{_fmt(f['cpu_s'])} | |")
        p = a["profile_restarts_1"]
        lines.append(
            f"| a. profile: {p['values']} values x {_fmt(p['value_cpu_s'])} s + {p['gradients']}"
            f" gradients x {_fmt(p['gradient_cpu_s'])} s (N={p['padded_n']}) | | "
            f"{_fmt(p['predicted_cpu_s'])} | predicted CPU of one fit |")
    b = report.get("b")
    if b:
        ours = b["nll_value_and_gradient"]
        for name in ("nll_value_and_gradient", "nll_value", "cholesky", "cholesky_and_solve_1_rhs",
                     "cholesky_and_solve_n_rhs"):
            r = b[name]
            ratio = ours["median_wall_s"] / r["median_wall_s"]
            note = "" if name == "nll_value_and_gradient" else f"NLL+grad / this: {ratio:.2f}x"
            lines.append(f"| b. n={b['n']}: {name} | {_fmt(r['median_wall_s'])} | "
                         f"{_fmt(r['median_cpu_s'])} | {note} |")
    c = report.get("c")
    if c:
        lines.append(f"| c. {c['fits']} fits, n = 1..{c['n_max']} | {_fmt(c['total_wall_s'])} | | "
                     f"{c['programs']} programs for {len(c['buckets'])} buckets "
                     f"{c['buckets']} |")
    d = report.get("d")
    if d:
        for label in ("cold", "warm"):
            r = d[label]
            lines.append(f"| d. first fit (n={d['n']}), {label} persistent cache | "
                         f"{_fmt(r['first_fit_wall_s'])} | {_fmt(r['first_fit_cpu_s'])} | "
                         f"second fit {_fmt(r['second_fit_wall_s'])} s |")
        lines.append(f"| d. cold / warm | {d['speedup_wall']:.1f}x | | |")
    if not importlib.util.find_spec("botorch"):
        lines += ["", f"BoTorch not installed: no anchor rows ({common.BENCH_EXTRA_HINT})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks run gp_fit",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="a,b,c,d", help="comma list out of a,b,c,d")
    p.add_argument("--reps", type=int, default=5, help="repetitions of the main timings")
    p.add_argument("--ablation-reps", type=int, default=3)
    p.add_argument("--n", type=int, default=1000, help="rows of the fit in section a")
    p.add_argument("--big-n", type=int, default=4096, help="rows of the likelihood in b")
    p.add_argument("--grow-to", type=int, default=1000, help="largest n in section c")
    p.add_argument("--cache-probe", default=None, help=argparse.SUPPRESS)  # subprocess mode
    args = common.parse_args(p, argv, QUICK)
    if args.cache_probe:
        cache_probe(args.cache_probe)
        return 0
    runners = {"a": section_a, "b": section_b, "c": section_c, "d": section_d}
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if unknown := [s for s in sections if s not in runners]:
        p.error(f"--sections: unknown {unknown}; expected some of a,b,c,d")
    run = common.Run.start(__name__, __doc__, args, argv)
    report: dict = {}
    for s in sections:
        log(f"section {s}")
        report[s] = runners[s](args)
        run.write_raw(report)
    page = run.write_page(markdown(report))
    print(page.read_text())
    log(f"page: {page}; raw results: {run.raw_path}")
    return 0
