"""Surrogate quality: our surrogates against BoTorch's SingleTaskGP, same data, same splits.

RMSE, NLPD and 50/90/95 % interval coverage on held-out rows (medians over seeds) of
``fit_gp``, BoTorch ``SingleTaskGP``, the deep ensemble, the deep-kernel GP and SAAS on two
shipped reaction screens and two noisy analytic functions.

For each problem and seed, one random train/test split; every model is fitted on the
training rows and scored on the held-out rows (all float64 except the ensemble's
float32 members):

- RMSE of the predictive mean;
- NLPD: mean negative log density of the held-out observations under the predictive
  Gaussian (latent variance plus the model's noise; a mixture such as SAAS is moment
  matched), so lower is better and over-confidence is punished;
- coverage: the fraction of held-out observations inside the central 50/90/95 %
  intervals of that Gaussian (a calibrated model: 0.50/0.90/0.95).

Problems: the shipped screens ``shields_arylation`` (direct arylation, 1,728 rows) and
``ahneman_buchwald_hartwig`` (Buchwald-Hartwig, 4,599 rows) with categorical factors
one-hot encoded and numeric ones scaled to [0, 1], yield as the output; Hartmann-6 at
uniform inputs with N(0, 0.05^2) noise; Branin with N(0, 2^2) noise (its range is about
0-300). Models: ``fit_gp`` (Matérn-5/2 ARD, MAP, the default 4 restarts), BoTorch
``SingleTaskGP`` + ``fit_gpytorch_mll`` (Matérn-5/2 ARD, its default priors, Normalize
and Standardize transforms), ``fit_ensemble`` (10 MLPs, heteroscedastic heads),
``fit_deep_kernel_gp`` and, on the small analytic problems only, ``fit_saas_gp``;
``gp_lab`` is ``fit_gp`` with the ``lab`` noise prior, which campaigns over measured data
(dataset lookups, lab commands) use. A model that fails is recorded as failed, not fatal.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
import warnings
from collections.abc import Callable, Iterable

import numpy as np

from benchmarks import common
from benchmarks.common import log
from benchmarks.problems_suite import branin_rows, hartmann6_rows

LEVELS = {50: 0.6744897501960817, 90: 1.6448536269514722, 95: 1.959963984540054}
MODELS = ("gp", "gp_lab", "botorch", "ensemble", "deep_kernel", "saas")
PROBLEMS = ("shields_arylation", "ahneman_buchwald_hartwig", "hartmann6", "branin")
# SAAS's NUTS costs grow fast with n; it is the model for small data.
SAAS_MAX_N = 120
MIN_VARIANCE = 1e-300  # keeps the log density finite for a model that predicts no spread
QUICK = {"seeds": 1, "shrink": 4, "models": "gp,gp_lab,botorch"}


# --- problems ----------------------------------------------------------------------


Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # X, y, Xt, yt
Prediction = tuple[np.ndarray, np.ndarray]  # predictive mean and variance at Xt


def analytic(fn: Callable[[np.ndarray], np.ndarray], d: int, noise_std: float, n_train: int,
             n_test: int, seed: int) -> Split:
    """Uniform inputs and noisy values; the test values are noisy too (what a lab sees)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n_train + n_test, d))
    y = fn(X) + noise_std * rng.normal(size=len(X))
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


def encode_dataset(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A shipped screen as (X, y): one-hot categorical factors, numeric ones scaled to [0, 1]."""
    import workbench as wb

    df = wb.datasets.load(name)
    columns = []
    for factor in df.attrs["factors"]:
        col = df[factor]
        if col.dtype.kind in "biuf":
            v = col.to_numpy(np.float64)
            columns.append(((v - v.min()) / max(v.max() - v.min(), 1e-12))[:, None])
        else:
            levels = sorted(set(col))
            columns.append((col.to_numpy()[:, None] == np.asarray(levels)[None, :]).astype(float))
    y = df[df.attrs["outcomes"][0]].to_numpy(np.float64)
    X = np.concatenate(columns, axis=1)
    ok = np.isfinite(y)
    return X[ok], y[ok]


def dataset_split(name: str, n_train: int, n_test: int, seed: int) -> Split:
    X, y = encode_dataset(name)
    idx = np.random.default_rng(seed).permutation(len(y))
    tr, te = idx[:n_train], idx[n_train:n_train + n_test]
    return X[tr], y[tr], X[te], y[te]


def problems(shrink: int = 1) -> dict:
    """name -> (split(seed) -> (X, y, Xt, yt), n_train); ``shrink`` divides the sizes."""
    s = shrink
    return {
        "shields_arylation": (lambda seed: dataset_split("shields_arylation", 300 // s,
                                                         1000 // s, seed), 300 // s),
        "ahneman_buchwald_hartwig": (lambda seed: dataset_split(
            "ahneman_buchwald_hartwig", 300 // s, 1000 // s, seed), 300 // s),
        "hartmann6": (lambda seed: analytic(hartmann6_rows, 6, 0.05, 100 // s, 1000 // s, seed),
                      100 // s),
        "branin": (lambda seed: analytic(branin_rows, 2, 2.0, 40, 1000 // s, seed), 40),
    }


# --- models: each returns (predictive mean, predictive variance) at Xt -----------------

def _bounds(X):
    return np.zeros(X.shape[1]), np.ones(X.shape[1])


def predict_gp(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, seed: int,
               noise_prior: str = "low") -> Prediction:
    import jax

    import surrogates as sg

    model = sg.fit_gp(X, y, key=jax.random.key(seed), bounds=_bounds(X),
                      noise_prior=noise_prior)
    post = model.posterior(Xt)
    noise = np.asarray(model.hyperparameters.noise) * np.asarray(model.y_scale) ** 2
    return np.asarray(post.mean)[:, 0], np.asarray(post.variance)[:, 0] + noise[0]


def predict_botorch(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, seed: int) -> Prediction:
    import torch
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    d = X.shape[1]
    bounds = torch.tensor(np.stack(_bounds(X)), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SingleTaskGP(torch.tensor(X, dtype=torch.float64),
                             torch.tensor(y, dtype=torch.float64)[:, None],
                             input_transform=Normalize(d, bounds=bounds),
                             outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
        with torch.no_grad():
            post = model.posterior(torch.tensor(Xt, dtype=torch.float64), observation_noise=True)
            # The posterior's moments are lazy: evaluate them under no_grad.
            return post.mean.detach().numpy()[:, 0], post.variance.detach().numpy()[:, 0]


def predict_ensemble(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, seed: int) -> Prediction:
    import jax

    import surrogates as sg

    model = sg.fit_ensemble(X, y, key=jax.random.key(seed), bounds=_bounds(X))
    post = model.posterior(Xt, observation_noise=True)
    return np.asarray(post.mean, np.float64)[:, 0], np.asarray(post.variance, np.float64)[:, 0]


def predict_deep_kernel(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, seed: int) -> Prediction:
    import jax

    import surrogates  # noqa: F401  (float64)
    from surrogates.deep_kernel import fit_deep_kernel_gp

    model = fit_deep_kernel_gp(X, y, key=jax.random.key(seed), bounds=_bounds(X))
    post = model.posterior(Xt)
    noise = np.asarray(model.hyperparameters.noise) * np.asarray(model.gp.y_scale) ** 2
    return np.asarray(post.mean)[:, 0], np.asarray(post.variance)[:, 0] + noise[0]


def predict_saas(X: np.ndarray, y: np.ndarray, Xt: np.ndarray, seed: int) -> Prediction:
    import jax

    import surrogates as sg

    model = sg.fit_saas_gp(X, y, key=jax.random.key(seed), bounds=_bounds(X))
    post = model.posterior(Xt)
    # Moment matching: the mixture's latent variance plus the mean noise over samples.
    noise = np.mean(np.asarray(model.hyperparameters.noise), axis=-1) * np.asarray(
        model.y_scale) ** 2
    return np.asarray(post.mean)[:, 0], np.asarray(post.variance)[:, 0] + noise[0]


PREDICT = {"gp": predict_gp, "gp_lab": functools.partial(predict_gp, noise_prior="lab"),
           "botorch": predict_botorch, "ensemble": predict_ensemble,
           "deep_kernel": predict_deep_kernel, "saas": predict_saas}


def scores(mean: np.ndarray, var: np.ndarray, y: np.ndarray) -> dict:
    """RMSE, NLPD and central-interval coverage of a Gaussian predictive."""
    var = np.maximum(var, MIN_VARIANCE)
    r = y - mean
    out = {"rmse": float(np.sqrt(np.mean(r**2))),
           "nlpd": float(np.mean(0.5 * (np.log(2 * np.pi * var) + r**2 / var)))}
    z = np.abs(r) / np.sqrt(var)
    out.update({f"cov{k}": float(np.mean(z <= h)) for k, h in LEVELS.items()})
    return out


# --- driver -------------------------------------------------------------------------

def run(problem_names: Iterable[str], model_names: Iterable[str], seeds: Iterable[int],
        shrink: int = 1, checkpoint: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Every (problem, seed, model) in turn; ``checkpoint(rows)`` after each, so that
    a long run interrupted still leaves its results."""
    rows = []
    table = problems(shrink)
    for pname in problem_names:
        split, n_train = table[pname]
        for seed in seeds:
            X, y, Xt, yt = split(seed)
            for mname in model_names:
                if mname == "saas" and len(y) > SAAS_MAX_N:
                    continue
                t0 = time.perf_counter()
                try:
                    mean, var = PREDICT[mname](X, y, Xt, seed)
                except Exception as exc:  # a failed model is a result, not the end of the run
                    log(f"{pname} seed {seed} {mname}: FAILED {type(exc).__name__}: {exc}")
                    rows.append({"problem": pname, "model": mname, "seed": seed,
                                 "error": f"{type(exc).__name__}: {exc}"})
                    continue
                wall = time.perf_counter() - t0
                row = {"problem": pname, "model": mname, "seed": seed, "n_train": len(y),
                       "n_test": len(yt), "d": X.shape[1], "wall_s": wall,
                       **scores(mean, var, yt)}
                rows.append(row)
                log(f"{pname} seed {seed} {mname}: rmse {row['rmse']:.4g} nlpd "
                    f"{row['nlpd']:.3f} cov90 {row['cov90']:.2f} ({wall:.1f} s)")
                if checkpoint is not None:
                    checkpoint(rows)
    return rows


def summarise(rows: list[dict]) -> str:
    """Markdown table of medians over seeds, one row per (problem, model)."""
    keys = ("rmse", "nlpd", "cov50", "cov90", "cov95", "wall_s")
    lines = ["| problem | n train / test, d | model | seeds | RMSE | NLPD | cov 50 | cov 90 |"
             " cov 95 | fit + predict (s) |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    seen = []
    for r in rows:
        if (r["problem"], r["model"]) not in seen:
            seen.append((r["problem"], r["model"]))
    for problem, model in seen:
        ok = [r for r in rows if r["problem"] == problem and r["model"] == model
              and "error" not in r]
        failed = sum(1 for r in rows if r["problem"] == problem and r["model"] == model
                     and "error" in r)
        if not ok:
            lines.append(f"| {problem} | | {model} | 0 ({failed} failed) |" + " |" * 6)
            continue
        med = {k: statistics.median(r[k] for r in ok) for k in keys}
        shape = f"{ok[0]['n_train']} / {ok[0]['n_test']}, {ok[0]['d']}"
        seeds = f"{len(ok)}" + (f" ({failed} failed)" if failed else "")
        lines.append(f"| {problem} | {shape} | {model} | {seeds} | {med['rmse']:.4g} |"
                     f" {med['nlpd']:.3f} | {med['cov50']:.2f} | {med['cov90']:.2f} |"
                     f" {med['cov95']:.2f} | {med['wall_s']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks run surrogate_quality",
                                description=__doc__.split("\n")[0])
    p.add_argument("--problems", default=",".join(PROBLEMS),
                   help=f"comma list out of {','.join(PROBLEMS)}")
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma list out of {','.join(MODELS)}")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--shrink", type=int, default=1,
                   help="divide the training and test sizes by this")
    args = common.parse_args(p, argv, QUICK)
    problem_names = [s for s in args.problems.split(",") if s]
    model_names = [s for s in args.models.split(",") if s]
    for name, allowed, given in (("--problems", PROBLEMS, problem_names),
                                 ("--models", MODELS, model_names)):
        bad = [g for g in given if g not in allowed]
        if bad:
            p.error(f"{name}: unknown {bad}; expected some of {sorted(allowed)}")
    bench = common.Run.start(__name__, __doc__, args, argv)
    seeds = range(args.seeds)

    def checkpoint(rows: list[dict]) -> None:
        bench.write_raw({"rows": rows})

    rows = run(problem_names, model_names, seeds, args.shrink, checkpoint=checkpoint)
    checkpoint(rows)
    page = bench.write_page(f"Medians over up to {len(seeds)} seed(s); held-out observations "
                            "are noisy like the training ones.\n\n" + summarise(rows))
    print(page.read_text())
    log(f"page: {page}; raw results: {bench.raw_path}")
    return 0
