"""Growth of the campaign store: time per tell (and per ask) as a campaign reaches 2,000 trials.

A tell appends one fsynced journal line, so its cost must not grow with the
campaign; the target is time per tell at n = 2,000 at most twice that at
n = 10. Proposals come from the initial design (Sobol) so that only the store
is measured. Medians over windows of 10 consecutive calls.

    python benchmarks/store_growth.py [--trials 2000] [--out benchmarks/out/store_growth.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "store_growth.json")
    args = parser.parse_args(argv)

    import workbench as wb

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "growth.zarr"
        c = wb.Campaign.from_dict({
            "name": "growth", "store": str(store), "tracking": None, "seed": 0,
            "space": [{"name": f"x{i}", "type": "continuous", "low": 0.0, "high": 1.0}
                      for i in range(4)],
            "objectives": [{"name": "y", "direction": "minimize"}],
            "initial_design": {"n": 10000},
        })
        tell_s, ask_s = [], []
        for _ in range(args.trials):
            t0 = time.perf_counter()
            (trial,) = c.ask(1)
            t1 = time.perf_counter()
            c.tell(trial.id, {"y": sum(v * v for v in trial.params.values())})
            t2 = time.perf_counter()
            ask_s.append(t1 - t0)
            tell_s.append(t2 - t1)
        c.compact()
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())

    def window(xs: list[float], at: int) -> float:
        lo = max(0, min(at - 5, len(xs) - 10))
        return float(np.median(xs[lo:lo + 10])) * 1e3

    n = args.trials
    report = {
        "machine": {"cpu": platform.processor(), "nproc": os.cpu_count(),
                    "platform": platform.platform()},
        "python": platform.python_version(), "trials": n,
        "tell_ms_at_10": window(tell_s, 10), "tell_ms_at_n": window(tell_s, n - 5),
        "ask_ms_at_10": window(ask_s, 10), "ask_ms_at_n": window(ask_s, n - 5),
        "tell_ms_mean": float(np.mean(tell_s)) * 1e3, "ask_ms_mean": float(np.mean(ask_s)) * 1e3,
        "ask_ms_max": float(np.max(ask_s)) * 1e3,
        "store_bytes": size, "loadavg": os.getloadavg(),
    }
    report["tell_ratio"] = report["tell_ms_at_n"] / report["tell_ms_at_10"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("| n | tell at 10 (ms) | tell at n (ms) | ratio (target <= 2) | ask at 10 (ms) "
          "| ask at n (ms) | mean ask (ms) | max ask (ms, compaction) | store (MB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {n} | {report['tell_ms_at_10']:.2f} | {report['tell_ms_at_n']:.2f} "
          f"| {report['tell_ratio']:.2f} | {report['ask_ms_at_10']:.2f} "
          f"| {report['ask_ms_at_n']:.2f} | {report['ask_ms_mean']:.2f} "
          f"| {report['ask_ms_max']:.0f} | {size / 1e6:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
