"""Shipped campaigns against random search: median best after the same budget, many seeds.

The median best value (and IQR over seeds) after ``--budget`` evaluations of the shipped
direct arylation campaign, with its substances encoded three ways, and of the EMT alloy
campaign, against random search with the same budget.

Direct arylation pool (``experiments/direct_arylation.yaml``) with its substances encoded three
ways (one-hot, RDKit descriptors, Morgan fingerprints), against the exact distribution of the
best of ``budget`` conditions drawn at random from the published screen; and the EMT alloy
campaign (``experiments/alloy.yaml``) against random compositions (uniform on the simplex)
evaluated with the same simulator. ``tests/test_sample_efficiency.py`` checks the margin on a
few seeds; this records the full comparison.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import yaml

from benchmarks import common

ENCODINGS = ("onehot", "descriptors", "fingerprint")
ALLOY_ELEMENTS = ("Cu", "Ni", "Pd", "Ag", "Pt", "Au")
RANDOM_SEED_OFFSET = 1000  # random compositions' streams, apart from the campaigns' seeds
QUICK = {"seeds": 2, "budget": 10}


def _spec(name: str, seed: int, budget: int) -> dict:
    spec = yaml.safe_load((common.ROOT / "experiments" / f"{name}.yaml").read_text())
    spec.update(store=None, seed=seed, budget=budget, tracking=None)
    return spec


def _best(spec: dict, objective: str, sign: float) -> float:
    import workbench as wb

    c = wb.Campaign.from_dict(spec)
    c.run()
    return sign * max(sign * t.outcomes[objective] for t in c.trials if t.status == "completed")


def arylation(seeds: int, budget: int) -> dict:
    import workbench as wb

    ds = wb.datasets.load("shields_arylation")
    yields = ds["yield"].to_numpy(np.float64)
    yields = yields[np.isfinite(yields)]
    from workbench.plots import random_best_quantiles

    q = random_best_quantiles(yields, budget, "maximize", (0.25, 0.5, 0.75))[:, budget - 1]
    out = {"random": {"q25": float(q[0]), "q50": float(q[1]), "q75": float(q[2])}}
    for encoding in ENCODINGS:
        best, t0 = [], time.perf_counter()
        for seed in range(seeds):
            spec = _spec("direct_arylation", seed, budget)
            for p in spec["space"]:
                if encoding == "onehot" and "smiles" in p:
                    p.pop("smiles")
                    p["encoding"] = "onehot"
                elif "smiles" in p:
                    p["encoding"] = encoding
            best.append(_best(spec, "yield", 1.0))
            print(f"arylation {encoding} seed {seed}: {best[-1]:.2f}", file=sys.stderr)
        out[encoding] = {**_spread(best), "wall_s": time.perf_counter() - t0}
    return out


def alloy(seeds: int, budget: int) -> dict:
    from workbench.simulators.alloys import emt_alloy

    best, rand = [], []
    for seed in range(seeds):
        best.append(_best(_spec("alloy", seed, budget), "mixing_energy", -1.0))
        rng = np.random.default_rng(RANDOM_SEED_OFFSET + seed)
        rand.append(min(emt_alloy(dict(zip(ALLOY_ELEMENTS,
                                           rng.dirichlet(np.ones(len(ALLOY_ELEMENTS))))))
                        ["mixing_energy"] for _ in range(budget)))
        print(f"alloy seed {seed}: {best[-1]:.4f} vs random {rand[-1]:.4f}", file=sys.stderr)
    return {"campaign": _spread(best), "random": _spread(rand)}


def _spread(values: list[float]) -> dict:
    """The values with their median and quartiles."""
    q25, med, q75 = common.quartiles(values)
    return {"values": values, "median": med, "q25": q25, "q75": q75}


def markdown(report: dict) -> str:
    a, m = report["arylation"], report["alloy"]
    lines = [f"Median best after {report['budget']} evaluations over {report['seeds']} seeds "
             "(IQR q25 - q75).", "",
             "| problem | method | median best | IQR |", "| --- | --- | ---: | ---: |"]
    r = a["random"]
    lines.append(f"| direct arylation, yield % (max) | random (exact) | {r['q50']:.1f} |"
                 f" {r['q25']:.1f} - {r['q75']:.1f} |")
    for enc in ENCODINGS:
        lines.append(f"| direct arylation, yield % (max) | campaign, {enc} | "
                     f"{a[enc]['median']:.1f} | {a[enc]['q25']:.1f} - {a[enc]['q75']:.1f} |")
    for arm in ("random", "campaign"):
        lines.append(f"| EMT alloy, mixing energy eV/atom (min) | {arm} | "
                     f"{m[arm]['median']:.4f} | {m[arm]['q25']:.4f} - {m[arm]['q75']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run campaigns_vs_random",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--budget", type=int, default=30)
    args = common.parse_args(parser, argv, QUICK)
    run = common.Run.start(__name__, __doc__, args, argv)
    report = {"seeds": args.seeds, "budget": args.budget,
              "arylation": arylation(args.seeds, args.budget),
              "alloy": alloy(args.seeds, args.budget)}
    run.write_raw(report)
    page = run.write_page(markdown(report))
    print(page.read_text())
    return 0
