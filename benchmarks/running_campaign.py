"""Running campaign: time per proposal at 200 to 2,000 observations against BoTorch and Optuna GP.

Per-proposal cost in a campaign that is already running: n0 observations of noisy Hartmann-6
(6 continuous parameters, Gaussian noise of sd ``--noise``) are told, a few proposals are made
untimed (so that compilation and the first, cold model fit are excluded, and each method has
the state a running campaign has: the workbench its previous fit's hyperparameters, Optuna its
cached GP), then the next ``--proposals`` proposals are timed, each told before the next, so
that the data grow by one each time. Target (issue 18): at most 10 % of BoTorch's and at most
Optuna GP's time per proposal at every size.

Methods, all in one process on the same n0 observations (size outer, methods inner):

- ``workbench``: ``wb.Campaign`` (defaults: Matérn-5/2 GP, log EI) after ``add_data``; each
  proposal one ``ask(1)``, split into the model fit and the acquisition search;
- ``botorch``: ``SingleTaskGP`` (its default priors, ``Normalize`` and ``Standardize``)
  fitted from scratch by ``fit_gpytorch_mll``, ``LogExpectedImprovement`` at the best
  observation, ``optimize_acqf`` (10 restarts, 512 raw samples), as ``benchmarks/suite.py``
  fits it;
- ``optuna``: ``GPSampler`` (``deterministic_objective=False``) after ``study.add_trials``,
  then ``study.ask``/``study.tell``.

Times are medians over the timed proposals, wall and process CPU; the ratios divide the
workbench's median by each anchor's at the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from benchmarks import common

DIM = 6
N_INITIAL = 10
METHODS = ("workbench", "botorch", "optuna")
REQUIRES = {"workbench": ("jax",), "botorch": ("botorch", "torch", "gpytorch"),
            "optuna": ("optuna", "torch", "scipy")}
QUICK = {"sizes": "40", "proposals": 2, "warmup": 1, "anchor_proposals": 1}
# The issue-18 targets: our median time per proposal over each anchor's, at most.
TARGET_TO_BOTORCH, TARGET_TO_OPTUNA = 0.10, 1.0
DATA_SEED = 0


def observations(n: int, noise: float, seed: int = DATA_SEED):
    """n uniform points of the unit cube, their noisy Hartmann-6 values (minimised) and the
    generator that draws the noise of later evaluations."""
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.random((n, DIM))
    return X, np.array([_h6(x, noise, rng) for x in X]), rng


def _h6(x, noise: float, rng) -> float:
    from workbench.problems import hartmann6

    return float(hartmann6(*x)) + noise * float(rng.standard_normal())


# -- methods: each returns (wall, cpu, split) per timed proposal ------------------------


def run_workbench(n0: int, noise: float, warmup: int, timed: int) -> list[tuple]:
    """A campaign with n0 imported observations; ``warmup`` untimed asks, then ``timed``."""
    import pandas as pd

    import workbench as wb
    from workbench.campaign.proposing import Proposer

    names = [f"x{i}" for i in range(1, DIM + 1)]
    X, y, rng = observations(n0, noise)
    c = wb.Campaign("h6", wb.SearchSpace([wb.Continuous(n, 0.0, 1.0) for n in names]),
                    [wb.Objective("y", "minimize")], tracking=None, store=None, seed=0,
                    initial_design={"n": N_INITIAL})
    table = pd.DataFrame(X, columns=names)
    table["y"] = y
    c.add_data(table)
    splits: list[dict] = []
    propose = Proposer.propose

    def recorded(self, *args, **kwargs):  # the fit / acquisition split of each ask
        batch = propose(self, *args, **kwargs)
        splits.append(dict(batch.timings))
        return batch

    Proposer.propose = recorded
    out = []
    try:
        for i in range(warmup + timed):
            (t,), wall, cpu = common.timed(c.ask, 1)
            c.tell(t.id, {"y": _h6([t.params[n] for n in names], noise, rng)})
            if i >= warmup:
                s = splits[-1]
                record = (c.surrogate_state or {}).get("refit") or {}
                full = record.get("full_fit_observations") == record.get("observations")
                # Conditioned: the previous hyperparameters on the data, not optimised.
                conditioned = record.get("refined_observations",
                                         record.get("observations")) != record.get("observations")
                out.append((wall, cpu, {"fit_s": s.get("fit_time_s"),
                                        "acquisition_s": s.get("acquisition_time_s"),
                                        "full_fit": bool(record) and full,
                                        "conditioned": bool(record) and conditioned}))
    finally:
        Proposer.propose = propose
    return out


def run_botorch(n0: int, noise: float, warmup: int, timed: int) -> list[tuple]:
    """SingleTaskGP refitted from scratch for each proposal, LogEI, optimize_acqf."""
    import torch
    from botorch.acquisition import LogExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(0)
    Xn, yn, rng = observations(n0, noise)
    X = torch.tensor(Xn, dtype=torch.float64)
    Y = -torch.tensor(yn[:, None], dtype=torch.float64)  # BoTorch maximises
    bounds = torch.stack([torch.zeros(DIM), torch.ones(DIM)]).to(torch.float64)

    def propose():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numerical and optimisation warnings
            gp = SingleTaskGP(X, Y, input_transform=Normalize(d=DIM, bounds=bounds),
                              outcome_transform=Standardize(m=1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
            acq = LogExpectedImprovement(gp, best_f=Y.max())
            x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=10, raw_samples=512)
        return x.detach()

    out = []
    for i in range(warmup + timed):
        x, wall, cpu = common.timed(propose)
        X = torch.cat([X, x])
        Y = torch.cat([Y, torch.tensor([[-_h6(x[0].numpy(), noise, rng)]])])
        if i >= warmup:
            out.append((wall, cpu, None))
    return out


def run_optuna(n0: int, noise: float, warmup: int, timed: int) -> list[tuple]:
    """GPSampler after add_trials; its cached GP carries from one ask to the next."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    Xn, yn, rng = observations(n0, noise)
    dists = {f"x{i}": optuna.distributions.FloatDistribution(0.0, 1.0)
             for i in range(1, DIM + 1)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # experimental-feature warnings in some versions
        sampler = optuna.samplers.GPSampler(seed=0, n_startup_trials=N_INITIAL,
                                            deterministic_objective=False)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    study.add_trials([optuna.trial.create_trial(params=dict(zip(dists, map(float, x))),
                                                distributions=dists, value=float(v))
                      for x, v in zip(Xn, yn)])
    out = []
    for i in range(warmup + timed):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial, wall, cpu = common.timed(study.ask, dists)
        study.tell(trial, _h6([trial.params[k] for k in dists], noise, rng))
        if i >= warmup:
            out.append((wall, cpu, None))
    return out


RUNNERS: dict[str, Callable[[int, float, int, int], list[tuple]]] = {
    "workbench": run_workbench, "botorch": run_botorch, "optuna": run_optuna}


# -- the run and its page ------------------------------------------------------------


def summary(runs: list[tuple]) -> dict:
    """Medians and quartiles of the timed proposals' wall times, median CPU, and the
    workbench's median fit and acquisition seconds."""
    walls = [r[0] for r in runs]
    q25, med, q75 = common.quartiles(walls)
    out = {"wall_s": walls, "cpu_s": [r[1] for r in runs], "median_s": med,
           "iqr_s": [q25, q75], "median_cpu_s": common.median(r[1] for r in runs)}
    splits = [r[2] for r in runs if r[2]]
    if splits:  # the workbench's: how many of its models were full refits, how many
        # conditioned the previous hyperparameters (the rest refined them)
        out["full_fits"] = sum(bool(s.get("full_fit")) for s in splits)
        out["conditioned"] = sum(bool(s.get("conditioned")) for s in splits)
    for key in ("fit_s", "acquisition_s"):
        values = [s[key] for s in splits if s.get(key) is not None]
        if values:
            out[f"median_{key}"] = common.median(values)
    return out


def measure(args: argparse.Namespace, methods: list[str]) -> list[dict]:
    rows = []
    for n in _sizes(args.sizes):
        row: dict = {"n": n, "loadavg_1min": os.getloadavg()[0]}
        for method in methods:
            anchor = method != "workbench"
            timed = args.anchor_proposals if anchor and args.anchor_proposals else args.proposals
            if anchor and n >= args.anchor_fewer_from:
                timed = min(timed, args.anchor_proposals_large)
            warmup = args.warmup if not anchor else min(args.warmup, 1)
            common.log(f"n = {n} {method}: {warmup} untimed, {timed} timed proposals")
            t0 = time.perf_counter()
            runs = RUNNERS[method](n, args.noise, warmup, timed)
            row[method] = summary(runs)
            row[method]["proposals"] = timed
            common.log(f"n = {n} {method}: median {row[method]['median_s']:.3f} s"
                       f" ({time.perf_counter() - t0:.0f} s in all)")
        wb = row.get("workbench")
        for anchor in ("botorch", "optuna"):
            if wb and anchor in row:
                row[f"ratio_to_{anchor}"] = wb["median_s"] / row[anchor]["median_s"]
                row[f"cpu_ratio_to_{anchor}"] = wb["median_cpu_s"] / row[anchor]["median_cpu_s"]
        rows.append(row)
    return rows


def _sizes_text(run: dict) -> str:
    return ", ".join(f"{r['n']:,}" for r in run["rows"])


def _sizes(text: str) -> list[int]:
    return [int(s) for s in str(text).split(",") if s.strip()]


def _cell(r: dict | None, key: str = "median_s", scale: float = 1.0) -> str:
    return "—" if not r or r.get(key) is None else f"{r[key] * scale:.2f}"


def _met(ratio: float | None, target: float) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.3f} (yes)" if ratio <= target else f"{ratio:.3f} (**no**)"


def markdown(rows: list[dict], skipped: dict[str, str]) -> str:
    lines = ["| n0 | workbench (s) | IQR (s) | CPU (s) | fit (s) | acquisition (s) "
             "| BoTorch (s) | CPU (s) | Optuna GP (s) | CPU (s) "
             f"| ratio to BoTorch (<= {TARGET_TO_BOTORCH:g}) "
             f"| ratio to Optuna (<= {TARGET_TO_OPTUNA:g}) | CPU ratio to Optuna "
             "| proposals timed (wb / BoTorch / Optuna) | load (1 min) |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | ---: | --- | ---: |"]
    for r in rows:
        wb, bt, op = (r.get(k) for k in ("workbench", "botorch", "optuna"))
        iqr = "—" if not wb else f"{wb['iqr_s'][0]:.2f}-{wb['iqr_s'][1]:.2f}"
        cpu_opt = f"{r['cpu_ratio_to_optuna']:.3f}" if "cpu_ratio_to_optuna" in r else "—"
        counts = " / ".join(str(x["proposals"]) if x else "—" for x in (wb, bt, op))
        if wb and "full_fits" in wb:
            counts += f" ({wb['full_fits']} full refit{'s' if wb['full_fits'] != 1 else ''}"
            if "conditioned" in wb:
                counts += f", {wb['conditioned']} conditioned"
            counts += ")"
        lines.append(
            f"| {r['n']:,} | {_cell(wb)} | {iqr} | {_cell(wb, 'median_cpu_s')} "
            f"| {_cell(wb, 'median_fit_s')} | {_cell(wb, 'median_acquisition_s')} "
            f"| {_cell(bt)} | {_cell(bt, 'median_cpu_s')} | {_cell(op)} "
            f"| {_cell(op, 'median_cpu_s')} "
            f"| {_met(r.get('ratio_to_botorch'), TARGET_TO_BOTORCH)} "
            f"| {_met(r.get('ratio_to_optuna'), TARGET_TO_OPTUNA)} | {cpu_opt} "
            f"| {counts} | {r['loadavg_1min']:.1f} |")
    lines += ["", "Medians over the timed proposals (each one `ask`, `study.ask` or fit +"
              " `optimize_acqf`, after the untimed ones); the workbench's fit and acquisition"
              " columns are its own split of the same proposals, and the counts of its timed"
              " proposals whose model was a full refit (every restart) or the previous"
              " hyperparameters conditioned on the data (no optimisation), the rest warm"
              " refinements, are in brackets. Ratios divide the workbench's median wall time by"
              " the anchor's at the same n0."]
    if skipped:
        lines += ["", "Not run: " + "; ".join(skipped.values()) + "."]
    return "\n".join(lines)


def baseline_table(raw: dict) -> str:
    """The workbench rows of an earlier run of this benchmark (``--baseline``)."""
    stamp = raw.get("stamp", {})
    lines = [f"Before (`{stamp.get('commit', '?')}`, run {stamp.get('date', '?')}, load"
             f" {stamp.get('loadavg_at_start', [0.0])[0]:.1f} at its start; `--baseline`):", "",
             "| n0 | workbench (s) | IQR (s) | CPU (s) | fit (s) | acquisition (s) "
             "| load (1 min) |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in raw.get("rows", []):
        wb = r.get("workbench")
        if not wb:
            continue
        lines.append(f"| {r['n']:,} | {_cell(wb)} | {wb['iqr_s'][0]:.2f}-{wb['iqr_s'][1]:.2f} "
                     f"| {_cell(wb, 'median_cpu_s')} | {_cell(wb, 'median_fit_s')} "
                     f"| {_cell(wb, 'median_acquisition_s')} | {r['loadavg_1min']:.1f} |")
    return "\n".join(lines)


def ablation(before: dict, after: dict, labels: tuple[str, str]) -> str:
    """The suite's workbench rows of two runs (its raw JSON) side by side: final regret
    median and IQR per problem, the change, whether it costs more than the IQR (then it is
    not kept), and the median time and CPU per proposal."""
    lines = [f"| problem | regret median ({labels[0]}) | IQR | regret median ({labels[1]}) "
             "| IQR | change | worse by more than the IQR? | time / proposal (ms) "
             "| CPU / proposal (ms) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    for problem in after["summary"]:
        a = before["summary"].get(problem, {}).get("workbench")
        b = after["summary"][problem].get("workbench")
        if not a or not b:
            continue
        iqr_a = a["regret_q75"] - a["regret_q25"]
        worse = b["regret_median"] - a["regret_median"]
        flag = "**yes**" if worse > iqr_a else "no"
        lines.append(
            f"| {problem} | {a['regret_median']:.4g} | {a['regret_q25']:.3g} – "
            f"{a['regret_q75']:.3g} | {b['regret_median']:.4g} | {b['regret_q25']:.3g} – "
            f"{b['regret_q75']:.3g} | {worse:+.3g} | {flag} "
            f"| {a['time_ms_median']:.1f} → {b['time_ms_median']:.1f} "
            f"| {a['cpu_ms_median']:.1f} → {b['cpu_ms_median']:.1f} |")
    stamps = [f"{label}: commit `{run['stamp'].get('commit', '?')}`, run "
              f"{run['stamp'].get('date', '?')}, load {run['stamp']['loadavg_at_start'][0]:.1f}"
              " at its start" for label, run in zip(labels, (before, after))]
    seeds = after.get("seeds", [])
    return "\n".join(
        [f"## Ablation: sample efficiency on the selection seeds (budget {after.get('budget')})",
         "",
         f"The suite's workbench runs on seeds {seeds[0]}-{seeds[-1]} (selection seeds, not the"
         f" reported 0-19), budget {after.get('budget')}, {after.get('n_initial')} initial"
         " points, one thread: final simple regret (noisy problem: the recommended point's"
         " noiseless regret) before and after. A change that makes a problem's median worse"
         " by more than its IQR before is not kept. " + "; ".join(stamps) + ".", "", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run running_campaign",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,2000",
                        help="observations told before the timed proposals, comma-separated")
    parser.add_argument("--proposals", type=int, default=5,
                        help="timed proposals per size and method")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed workbench proposals first (compilation, the cold fit);"
                             " the anchors make one")
    parser.add_argument("--anchor-proposals", type=int, default=None,
                        help="timed proposals of the anchors (default --proposals)")
    parser.add_argument("--anchor-fewer-from", type=int, default=2000,
                        help="from this size on the anchors time --anchor-proposals-large")
    parser.add_argument("--anchor-proposals-large", type=int, default=3,
                        help="timed anchor proposals at the largest sizes (BoTorch is slow)")
    parser.add_argument("--noise", type=float, default=0.02,
                        help="observation noise sd of Hartmann-6 (its range is about 3.3)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, from {', '.join(METHODS)}")
    parser.add_argument("--ablation", type=Path, nargs=2, default=None, action="append",
                        metavar=("BEFORE.json", "AFTER.json"),
                        help="raw JSON of two suite runs (workbench): their regret side by"
                             " side on the page (repeat for more pairs)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="JSON",
                        help="raw JSON of an earlier run of this benchmark (another"
                             " checkout): its workbench rows shown beside")
    parser.add_argument("--ablation-labels", default=None, action="append",
                        help="names of an ablation pair's two runs, comma-separated (one"
                             " per --ablation, in order; default before,after)")
    parser.add_argument("--report-only", type=Path, default=None, nargs="+", metavar="JSON",
                        help="write the page from raw JSON of runs (the first one's stamp;"
                             " the others' rows added and their stamps listed), --baseline"
                             " and --ablation, measuring nothing")
    args = common.parse_args(parser, argv, QUICK)
    pairs = args.ablation or []
    names = args.ablation_labels or []
    if len(names) > len(pairs):
        parser.error(f"--ablation-labels: got {len(names)}; expected at most one per"
                     f" --ablation ({len(pairs)})")
    labels = [tuple(x.strip() for x in text.split(",")) for text in names]
    labels += [("before", "after")] * (len(pairs) - len(labels))
    if any(len(pair) != 2 for pair in labels):
        parser.error(f"--ablation-labels: got {names!r}; expected two names each")
    extra = ""
    if args.baseline is not None:
        extra += "\n\n" + baseline_table(json.loads(args.baseline.read_text()))
    for pair, names_ in zip(pairs, labels):
        before, after = (json.loads(p.read_text()) for p in pair)
        extra += "\n\n" + ablation(before, after, names_)
    if args.report_only is not None:
        runs = [json.loads(p.read_text()) for p in args.report_only]
        rows = sorted((r for run in runs for r in run["rows"]), key=lambda r: r["n"])
        skipped = {k: v for run in runs for k, v in run["skipped"].items()}
        merged = "".join(
            f"\n\nRows at n0 = {_sizes_text(run)} from"
            f" another run: `{run['stamp']['command']}`, commit `{run['stamp']['commit']}`,"
            f" {run['stamp']['date']}, load {run['stamp']['loadavg_at_start'][0]:.1f} at its"
            " start." for run in runs[1:])
        page = common.write_page(args.page or common.RESULTS_DIR / "running_campaign.md",
                                 __doc__, runs[0]["stamp"], markdown(rows, skipped) + merged
                                 + extra, quick=bool(args.quick))
        print(page.read_text())
        return 0
    try:
        sizes = _sizes(args.sizes)
    except ValueError:
        parser.error(f"--sizes: got {args.sizes!r}; expected comma-separated whole numbers")
    if not sizes or any(n <= N_INITIAL for n in sizes):
        parser.error(f"--sizes: got {args.sizes!r}; expected sizes above the initial"
                     f" design's {N_INITIAL} points")
    for name in ("proposals", "warmup", "anchor_proposals", "anchor_proposals_large"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')}: got {value}; expected at least"
                         f" {0 if name == 'warmup' else 1}")
    if args.noise < 0:
        parser.error(f"--noise: got {args.noise}; expected a non-negative sd")
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in wanted if m not in METHODS]
    if unknown or not wanted:
        parser.error(f"--methods: got {args.methods!r}; expected names from {', '.join(METHODS)}")
    methods, skipped = common.split_available(wanted, REQUIRES)
    run = common.Run.start(__name__, __doc__, args, argv)
    rows = measure(args, methods)
    run.write_raw({"rows": rows, "skipped": skipped})
    page = run.write_page(markdown(rows, skipped) + extra)
    print(page.read_text())
    return 0
