"""Tracking overhead: a 50-evaluation campaign with tracking off vs the embedded MLflow store.

Same problem (Branin), seed and store type; the two arms alternate in one
process after one warm-up run each (JAX compilation and the MLflow import are
paid before timing). Tracking includes everything it logs: params, metrics per
step (with leave-one-out and energy), tags, the trial table. Target: median
ratio tracked / untracked <= 1.10.

    python benchmarks/tracking_overhead.py [--evaluations 50] [--repeats 15]
        [--out benchmarks/out/tracking_overhead.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _one(tracked: bool, evaluations: int, tmp: Path, k: int) -> float:
    import workbench as wb

    problem = wb.problems.get("branin")
    uri = f"sqlite:///{tmp / 'mlflow.db'}" if tracked else None  # one store, as in use
    c = wb.Campaign(f"overhead-{k}", problem.space(), [wb.Objective("y", "minimize")],
                    store=tmp / f"c-{k}.zarr", tracking=uri, seed=0)
    t0 = time.perf_counter()
    c.run(problem, budget=evaluations)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "out" / "tracking_overhead.json")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"off": [], "sqlite": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _one(False, args.evaluations, tmp, 1000)  # warm-up: compile, import
        _one(True, args.evaluations, tmp, 1001)
        for r in range(args.repeats):
            # Alternate which arm goes first, so drift in machine load hits both.
            order = ("off", "sqlite") if r % 2 == 0 else ("sqlite", "off")
            for arm in order:
                times[arm].append(_one(arm == "sqlite", args.evaluations, tmp, 2 * r
                                       + (arm == "sqlite")))
                print(f"repeat {r} {arm}: {times[arm][-1]:.2f} s", file=sys.stderr)
    ratios = [s / o for s, o in zip(times["sqlite"], times["off"])]
    med = float(np.median(ratios))
    print(f"\n{args.evaluations}-evaluation Branin campaign, {args.repeats} repeats\n")
    print("| tracking | median wall s | min | max |")
    print("| --- | ---: | ---: | ---: |")
    for arm, label in (("off", "off"), ("sqlite", "embedded sqlite store")):
        t = times[arm]
        print(f"| {label} | {np.median(t):.2f} | {min(t):.2f} | {max(t):.2f} |")
    print(f"\nmedian ratio tracked / off: {med:.3f} (target <= 1.10:"
          f" {'met' if med <= 1.10 else 'missed'})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"times": times, "ratios": ratios, "median_ratio": med,
                                    "evaluations": args.evaluations,
                                    "machine": platform.platform()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
