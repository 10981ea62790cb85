"""Transfer without pooling data: evaluations to reach a target regret, warm against cold start.

The number of evaluations until the simple regret (relative to the task's scale) falls below
``--target``, median over seeds and tasks, of the same BO loop on shifted and scaled Branin
tasks with a cold GP and with a GP warm-started from another campaign's exported prior.

A source campaign optimises Branin and exports its prior (hyperparameters and posterior values
at anchor points, no observations). Each target task is ``s * branin(x1 + dx1, x2 + dx2) + c``,
whose optimum value ``s * 0.397887 + c`` stays inside the box. The loop: 3 Sobol points, then
log-EI, with the plain GP (cold) or with the prior as mean ``a * prior(x) + b`` (warm); a run
that never reaches the target counts budget + 1. Warm should need fewer.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from benchmarks import common

# (scale, offset, dx1, dx2): every shift keeps Branin's three minima inside the box.
TASKS = [(2.0, 10.0, 0.3, 0.5), (0.5, -3.0, -0.5, -0.3), (3.0, 50.0, 0.8, 0.0),
         (1.5, 0.0, -0.2, 0.8)]
LOW, HIGH = np.array([-5.0, 0.0]), np.array([10.0, 15.0])
BRANIN_MINIMUM = 0.397887357729738
N_SOBOL = 3
SOURCE_SEED = 123
QUICK = {"seeds": 1, "budget": 10, "tasks": 1, "source_evaluations": 10}


def _task(scale, offset, dx1, dx2):
    from workbench.problems import branin

    def f(z):
        x = LOW + (HIGH - LOW) * np.asarray(z)
        return scale * branin(float(x[0]) + dx1, float(x[1]) + dx2) + offset

    return f, scale * BRANIN_MINIMUM + offset


def _loop(f, optimum, scale, prior, seed, budget, target, domain):
    """One BO run on the unit cube; returns evaluations to reach the target (budget+1 if never)."""
    import jax
    import jax.numpy as jnp

    import active_learning as al
    from surrogates import fit_gp
    from workbench.transfer import prior_model

    X = list(al.sobol(N_SOBOL, domain, seed=seed))
    Y = [f(x) for x in X]
    key = jax.random.key(seed)
    while True:
        regret = (min(Y) - optimum) / scale
        if regret <= target:
            return len(Y)
        if len(Y) >= budget:
            return budget + 1
        Xa, Ya = np.asarray(X), np.asarray(Y)[:, None]
        key, k_fit, k_acq = jax.random.split(key, 3)
        if prior is None:
            model = fit_gp(Xa, Ya, key=k_fit, bounds=(np.zeros(2), np.ones(2)))
        else:
            model = prior_model(prior, Xa, Ya, key=k_fit)
        acq = al.LogExpectedImprovement(model, jnp.asarray(min(Y)), sign=-1.0)
        x, _ = al.maximize_acquisition(acq, domain, k_acq, raw_samples=512, num_restarts=8,
                                       steps=60)
        X.append(np.asarray(x))
        Y.append(f(X[-1]))


def markdown(rows: list[dict], args: argparse.Namespace) -> str:
    tasks = TASKS[:args.tasks]
    lines = [f"Evaluations to regret / scale <= {args.target} (budget {args.budget}; "
             f"{args.budget + 1} = not reached), {len(tasks)} shifted and scaled Branin tasks x "
             f"{args.seeds} seeds.", "",
             "| task (s, c, dx1, dx2) | cold (median) | warm (median) |", "| --- | ---: | ---: |"]
    for task in tasks:
        mine = [r for r in rows if tuple(r["task"]) == task]
        lines.append(f"| {task} | {np.median([r['cold'] for r in mine]):g} |"
                     f" {np.median([r['warm'] for r in mine]):g} |")
    cold = np.median([r["cold"] for r in rows])
    warm = np.median([r["warm"] for r in rows])
    wins = sum(r["warm"] < r["cold"] for r in rows)
    lines += [f"| **all {len(rows)} runs** | **{cold:g}** | **{warm:g}** |", "",
              f"Warm needed fewer evaluations in {wins} of {len(rows)} runs."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run transfer",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--target", type=float, default=0.05, help="regret / scale to reach")
    parser.add_argument("--source-evaluations", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=len(TASKS),
                        help=f"how many of the {len(TASKS)} tasks")
    args = common.parse_args(parser, argv, QUICK)
    run = common.Run.start(__name__, __doc__, args, argv)

    import workbench as wb
    from workbench.transfer import export_prior

    problem = wb.problems.get("branin")
    t0 = time.perf_counter()
    source = wb.Campaign("source", problem.space(), [wb.Objective("y", "minimize")],
                         tracking=None, seed=SOURCE_SEED)
    source.run(problem, budget=args.source_evaluations)
    prior = export_prior(source)
    domain = source.space.domain()
    print(f"source: {args.source_evaluations} evaluations of Branin, best regret"
          f" {problem.regret(source.best().outcomes['y']):.3g}, {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    rows = []
    for task in TASKS[:args.tasks]:
        f, optimum = _task(*task)
        for seed in range(args.seeds):
            counts = {}
            for arm, p in (("cold", None), ("warm", prior)):
                counts[arm] = _loop(f, optimum, task[0], p, seed, args.budget, args.target,
                                    domain)
            rows.append({"task": task, "seed": seed, **counts})
            print(f"task {task} seed {seed}: cold {counts['cold']} warm {counts['warm']}",
                  file=sys.stderr)
    run.write_raw({"rows": rows})
    page = run.write_page(markdown(rows, args))
    print(page.read_text())
    return 0
