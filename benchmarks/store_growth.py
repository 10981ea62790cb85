"""Store growth: time per tell and per ask as a campaign's store reaches 2,000 trials.

Time per ``tell`` (one fsynced journal append) and per ``ask`` near the start and near the
end of a 2,000-trial campaign on one Zarr store, medians over windows of consecutive calls;
target: a tell at n = 2,000 costs at most twice one at n = 10.

Proposals come from the initial design (Sobol), so that only the store is measured; the
largest ask includes the first one (imports, Sobol set-up) and the compactions, whose cost
the mean spreads over all asks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks import common

TARGET_TELL_RATIO = 2.0
WINDOW = 10  # consecutive calls per median
EARLY_TRIAL = 10  # "at 10": the window around this trial
DIMENSIONS = 4
DESIGN_SIZE = 10_000  # Sobol points prepared for the proposals
QUICK = {"trials": 60}


def window_ms(times_s: list[float], at: int) -> float:
    """Median (ms) of the ``WINDOW`` calls around call ``at``, kept inside the list."""
    lo = max(0, min(at - WINDOW // 2, len(times_s) - WINDOW))
    return float(np.median(times_s[lo:lo + WINDOW])) * 1e3


def measure(trials: int, store: Path) -> dict:
    """Ask and tell ``trials`` times on a fresh store; per-call times and the store's size."""
    import workbench as wb

    c = wb.Campaign.from_dict({
        "name": "growth", "store": str(store), "tracking": None, "seed": 0,
        "space": [{"name": f"x{i}", "type": "continuous", "low": 0.0, "high": 1.0}
                  for i in range(DIMENSIONS)],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "initial_design": {"n": max(DESIGN_SIZE, trials + 1)},  # no model: the store alone
    })
    tell_s, ask_s = [], []
    for _ in range(trials):
        t0 = time.perf_counter()
        (trial,) = c.ask(1)
        t1 = time.perf_counter()
        c.tell(trial.id, {"y": sum(v * v for v in trial.params.values())})
        t2 = time.perf_counter()
        ask_s.append(t1 - t0)
        tell_s.append(t2 - t1)
    c.compact()
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    return {"tell_s": tell_s, "ask_s": ask_s, "store_bytes": size}


def markdown(r: dict) -> str:
    verdict = "met" if r["tell_ratio"] <= TARGET_TELL_RATIO else "missed"
    return "\n".join([
        f"| n | tell at {EARLY_TRIAL} (ms) | tell at n (ms) | ratio (target <= "
        f"{TARGET_TELL_RATIO:g}) | ask at {EARLY_TRIAL} (ms) | ask at n (ms) | mean ask (ms) "
        "| max ask (ms) | store (MB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['trials']} | {r['tell_ms_early']:.2f} | {r['tell_ms_late']:.2f} "
        f"| {r['tell_ratio']:.2f} | {r['ask_ms_early']:.2f} | {r['ask_ms_late']:.2f} "
        f"| {r['ask_ms_mean']:.2f} | {r['ask_ms_max']:.0f} | {r['store_bytes'] / 1e6:.2f} |",
        "",
        f"Medians over {WINDOW} consecutive calls; tell ratio target {verdict}.",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run store_growth",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    args = common.parse_args(parser, argv, QUICK)
    if args.trials < 2 * WINDOW:
        parser.error(f"--trials: got {args.trials}; expected at least {2 * WINDOW}")
    run = common.Run.start(__name__, __doc__, args, argv)
    with tempfile.TemporaryDirectory() as tmp:
        m = measure(args.trials, Path(tmp) / "growth.zarr")
    n, tell_s, ask_s = args.trials, m["tell_s"], m["ask_s"]
    report = {
        "trials": n, "store_bytes": m["store_bytes"],
        "tell_ms_early": window_ms(tell_s, EARLY_TRIAL),
        "tell_ms_late": window_ms(tell_s, n - WINDOW // 2),
        "ask_ms_early": window_ms(ask_s, EARLY_TRIAL),
        "ask_ms_late": window_ms(ask_s, n - WINDOW // 2),
        "tell_ms_mean": float(np.mean(tell_s)) * 1e3, "ask_ms_mean": float(np.mean(ask_s)) * 1e3,
        "ask_ms_max": float(np.max(ask_s)) * 1e3,
    }
    report["tell_ratio"] = report["tell_ms_late"] / report["tell_ms_early"]
    run.write_raw(report)
    page = run.write_page(markdown(report))
    print(page.read_text())
    return 0
