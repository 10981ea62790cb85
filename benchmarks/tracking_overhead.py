"""Tracking overhead: a Branin campaign with tracking off against the embedded MLflow store.

The median ratio of wall times, tracked / untracked, of the same campaign (Branin, 50
evaluations, same seed, a Zarr store either way); target at most 1.10.

The two arms alternate in one process after one warm-up run each (JAX compilation and the
MLflow import are paid before timing), and which arm goes first alternates too, so that a
drift in the machine's load hits both. Tracking includes everything it logs: params, metrics
per step (with leave-one-out and energy), tags, the trial table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

TARGET_RATIO = 1.10
WARM_UP_ID = 1000  # campaign names of the untimed warm-up runs start here
QUICK = {"evaluations": 12, "repeats": 2}


def campaign_wall_s(tracked: bool, evaluations: int, tmp: Path, k: int) -> float:
    """Wall seconds of one ``run`` of campaign number ``k``, tracked or not."""
    import workbench as wb

    problem = wb.problems.get("branin")
    uri = f"sqlite:///{tmp / 'mlflow.db'}" if tracked else None  # one store, as in use
    c = wb.Campaign(f"overhead-{k}", problem.space(), [wb.Objective("y", "minimize")],
                    store=tmp / f"c-{k}.zarr", tracking=uri, seed=0)
    t0 = time.perf_counter()
    c.run(problem, budget=evaluations)
    return time.perf_counter() - t0


def markdown(times: dict[str, list[float]], median_ratio: float, evaluations: int) -> str:
    lines = [f"{evaluations}-evaluation Branin campaign, {len(times['off'])} repeats per arm.",
             "", "| tracking | median wall s | min | max |", "| --- | ---: | ---: | ---: |"]
    for arm, label in (("off", "off"), ("sqlite", "embedded sqlite store")):
        t = times[arm]
        lines.append(f"| {label} | {np.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")
    verdict = "met" if median_ratio <= TARGET_RATIO else "missed"
    lines += ["", f"Median ratio tracked / off: {median_ratio:.3f} (target <= "
                  f"{TARGET_RATIO:.2f}: {verdict})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run tracking_overhead",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    args = common.parse_args(parser, argv, QUICK)
    run = common.Run.start(__name__, __doc__, args, argv)
    times: dict[str, list[float]] = {"off": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        campaign_wall_s(False, args.evaluations, tmp, WARM_UP_ID)  # compile, import
        campaign_wall_s(True, args.evaluations, tmp, WARM_UP_ID + 1)
        for r in range(args.repeats):
            order = ("off", "sqlite") if r % 2 == 0 else ("sqlite", "off")
            for arm in order:
                times[arm].append(campaign_wall_s(arm == "sqlite", args.evaluations, tmp,
                                                  2 * r + (arm == "sqlite")))
                print(f"repeat {r} {arm}: {times[arm][-1]:.2f} s", file=sys.stderr)
    ratios = [s / o for s, o in zip(times["sqlite"], times["off"])]
    med = common.median(ratios)
    run.write_raw({"times": times, "ratios": ratios, "median_ratio": med,
                   "evaluations": args.evaluations})
    page = run.write_page(markdown(times, med, args.evaluations))
    print(page.read_text())
    return 0
