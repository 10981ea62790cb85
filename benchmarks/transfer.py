"""Transfer without pooling data: evaluations to reach a target regret, warm vs cold start.

A source campaign optimises Branin and exports its prior (hyperparameters and
posterior values at anchor points, no observations). Each target task is a
shifted and scaled Branin, ``s * branin(x1 + dx1, x2 + dx2) + c``, whose optimum
value ``s * 0.397887 + c`` stays inside the box. The same BO loop (3 Sobol
points, then log-EI) runs on each target with a cold GP and with the GP warm-
started from the prior (mean ``a * prior(x) + b``); we count evaluations until
the simple regret, relative to ``s``, falls below ``--target`` (budget + 1 when
never). Medians over seeds and tasks; warm should need fewer.

    python benchmarks/transfer.py [--seeds 5] [--budget 30] [--target 0.05]
        [--out benchmarks/out/transfer.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (scale, offset, dx1, dx2): every shift keeps Branin's three minima inside the box.
TASKS = [(2.0, 10.0, 0.3, 0.5), (0.5, -3.0, -0.5, -0.3), (3.0, 50.0, 0.8, 0.0),
         (1.5, 0.0, -0.2, 0.8)]
LOW, HIGH = np.array([-5.0, 0.0]), np.array([10.0, 15.0])


def _task(scale, offset, dx1, dx2):
    from workbench.problems import branin

    def f(z):
        x = LOW + (HIGH - LOW) * np.asarray(z)
        return scale * branin(float(x[0]) + dx1, float(x[1]) + dx2) + offset

    return f, scale * 0.397887357729738 + offset


def _loop(f, optimum, scale, prior, seed, budget, target, domain):
    """One BO run on the unit cube; returns evaluations to reach the target (budget+1 if never)."""
    import jax
    import jax.numpy as jnp

    import active_learning as al
    from surrogates import fit_gp
    from workbench.transfer import prior_model

    X = list(al.sobol(3, domain, seed=seed))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--target", type=float, default=0.05, help="regret / scale to reach")
    parser.add_argument("--source-evaluations", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=len(TASKS))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "transfer.json")
    args = parser.parse_args(argv)

    import workbench as wb
    from workbench.transfer import export_prior

    problem = wb.problems.get("branin")
    t0 = time.perf_counter()
    source = wb.Campaign("source", problem.space(), [wb.Objective("y", "minimize")],
                         tracking=None, seed=123)
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
    cold = np.median([r["cold"] for r in rows])
    warm = np.median([r["warm"] for r in rows])
    wins = sum(r["warm"] < r["cold"] for r in rows)
    print(f"\nEvaluations to regret/scale <= {args.target} (budget {args.budget}; budget+1 ="
          f" not reached), {args.tasks} shifted/scaled Branin tasks x {args.seeds} seeds\n")
    print("| task (s, c, dx1, dx2) | cold (median) | warm (median) |")
    print("| --- | ---: | ---: |")
    for task in TASKS[:args.tasks]:
        mine = [r for r in rows if r["task"] == task]
        print(f"| {task} | {np.median([r['cold'] for r in mine]):g} |"
              f" {np.median([r['warm'] for r in mine]):g} |")
    print(f"| **all** | **{cold:g}** | **{warm:g}** |")
    print(f"\nwarm needed fewer evaluations in {wins} of {len(rows)} runs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "median_cold": cold, "median_warm": warm,
                                    "args": {k: str(v) for k, v in vars(args).items()},
                                    "machine": platform.platform()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
