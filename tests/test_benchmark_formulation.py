"""The formulation benchmark's problems against their stated optima, its constraint check
and random sampler, and a quick run through the benchmark runner."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

from benchmarks import formulation as fb

ROOT = Path(__file__).resolve().parents[1]
N_INGREDIENTS = len(fb.INGREDIENTS)


def _best_on_face(support: tuple[int, ...], starts: int, rng: np.random.Generator):
    """The best blend with only ``support`` present, by SLSQP from Dirichlet starts."""
    best = (-math.inf, None)
    for _ in range(starts):
        def negative(z):
            x = np.zeros(N_INGREDIENTS)
            x[list(support)] = z
            return -fb.blend_quality(x)

        r = minimize(negative, rng.dirichlet(np.ones(len(support))), method="SLSQP",
                     bounds=[(0.0, 1.0)] * len(support),
                     constraints=[{"type": "eq", "fun": lambda z: z.sum() - 1.0}],
                     options={"ftol": 1e-15, "maxiter": 500})
        if -r.fun > best[0]:
            x = np.zeros(N_INGREDIENTS)
            x[list(support)] = r.x
            best = (-r.fun, x)
    return best


def test_formulation_optimum_is_the_best_face_and_the_cardinality_binds():
    rng = np.random.default_rng(0)
    faces = sorted((_best_on_face(s, 6, rng) for s in fb.supports()), key=lambda b: -b[0])
    value, x = faces[0]
    assert value == pytest.approx(fb.FORMULATION_OPTIMUM, abs=1e-9)
    assert faces[1][0] < value - 0.04  # the runner-up face is clearly worse
    present = {fb.INGREDIENTS[i] for i in np.flatnonzero(x > 1e-6)}
    assert present == set(fb.FORMULATION_OPTIMAL)
    problem = fb.PROBLEMS["formulation"]
    assert problem.value(problem.optimal_params) == pytest.approx(fb.FORMULATION_OPTIMUM,
                                                                  abs=1e-12)
    assert problem.violations(problem.optimal_params) == []
    # Without the cardinality constraint the best blend is better and uses four.
    relaxed, xr = _best_on_face(tuple(range(N_INGREDIENTS)), 30, rng)
    assert relaxed == pytest.approx(fb.FORMULATION_RELAXED_OPTIMUM, abs=1e-9)
    assert relaxed > value + 0.005 and np.count_nonzero(xr > 1e-3) == 4


def test_process_optimum_lies_on_the_exposure_limit():
    problem = fb.PROBLEMS["process"]
    lo = np.array([p[1] for p in problem.params])
    hi = np.array([p[2] for p in problem.params])
    rng = np.random.default_rng(0)

    def solve(limit: bool) -> tuple[float, np.ndarray]:
        best = (-math.inf, None)
        for _ in range(30):
            z0 = (problem.vector(fb.sample_feasible(problem, rng)) - lo) / (hi - lo)
            cons = [{"type": "ineq", "fun": lambda z: fb.EXPOSURE_LIMIT
                     - np.prod((lo + (hi - lo) * z)[:2])}] if limit else []
            r = minimize(lambda z: -fb.process_value(*(lo + (hi - lo) * z)), z0,
                         method="SLSQP", bounds=[(0.0, 1.0)] * 4, constraints=cons,
                         options={"ftol": 1e-15, "maxiter": 1000})
            if r.success and -r.fun > best[0]:
                best = (-r.fun, lo + (hi - lo) * r.x)
        return best

    value, x = solve(limit=True)
    assert value == pytest.approx(fb.PROCESS_OPTIMUM, abs=1e-6)
    assert x == pytest.approx(problem.vector(problem.optimal_params), rel=1e-4)
    assert x[0] * x[1] == pytest.approx(fb.EXPOSURE_LIMIT, rel=1e-8)
    assert problem.value(problem.optimal_params) == pytest.approx(fb.PROCESS_OPTIMUM, abs=1e-9)
    assert problem.violations(problem.optimal_params) == []
    free, _ = solve(limit=False)
    assert free > value + 1.0  # the limit binds


def test_violations_name_each_broken_constraint():
    mixture = fb.PROBLEMS["formulation"]
    four = dict.fromkeys(fb.INGREDIENTS, 0.0) | {"water": 0.25, "ethanol": 0.25,
                                                   "glycerol": 0.25, "peg": 0.25}
    (msg,) = mixture.violations(four)
    assert msg.startswith("4 ingredients present (water, ethanol, glycerol, peg)")
    three = dict.fromkeys(fb.INGREDIENTS, 0.0) | {"water": 0.5, "ethanol": 0.5}
    assert mixture.violations(three) == []
    assert mixture.violations(three | {"ethanol": 0.5 + 5e-10}) == []  # within 1e-9
    assert mixture.violations(three | {"ethanol": 0.5 + 2e-9})[0].startswith("sum of fractions")
    assert "outside [0.0, 1.0]" in mixture.violations(three | {"water": 1.5,
                                                                "ethanol": -0.5})[0]
    process = fb.PROBLEMS["process"]
    at_limit = {"temperature": 80.0, "residence_time": fb.EXPOSURE_LIMIT / 80.0,
                "concentration": 1.0, "catalyst": 1.0}
    assert process.violations(at_limit) == []
    over = at_limit | {"residence_time": fb.EXPOSURE_LIMIT / 80.0 * (1 + 2e-9)}
    assert process.violations(over)[0].startswith("temperature * residence_time = ")


def test_random_sampler_stays_feasible_and_covers_the_supports():
    rng = np.random.default_rng(1)
    for problem in fb.PROBLEMS.values():
        points = [fb.sample_feasible(problem, rng) for _ in range(500)]
        assert all(problem.violations(p) == [] for p in points)
    mixture = fb.PROBLEMS["formulation"]
    seen = {tuple(n for n in fb.INGREDIENTS if p[n] != 0.0)
            for p in (fb.sample_feasible(mixture, rng) for _ in range(500))}
    assert len(seen) == len(fb.supports())  # each of the 35 faces drawn


def test_quick_run_through_the_runner(tmp_path):
    """``--quick`` end to end: every installed method on both problems, every evaluated point
    checked, the table's medians from the raw curves; anchors that are not installed are
    skipped and named."""
    page, raw = tmp_path / "formulation.md", tmp_path / "formulation.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", "formulation", "--quick",
                           "--threads", "1", "--page", str(page), "--out", str(raw)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(raw.read_text())
    n = fb.QUICK["budget"]
    methods = [m for m in fb.METHODS if m not in report["skipped"]]
    assert {"workbench", "random"} <= set(methods)
    for prob in fb.PROBLEM_NAMES:
        for m in methods:
            (r,) = report["results"][prob][m]
            assert r["seed"] == 0 and len(r["curve"]) == len(r["points"]) == n
            assert r["violations"] == []
            curve = np.array(r["curve"])
            assert np.all(curve >= -1e-9) and np.array_equal(curve, np.minimum.accumulate(curve))
            assert len(r["proposal_times_s"]) == n - fb.QUICK["n_initial"]
            best = fb.PROBLEMS[prob].value(r["best_params"])
            assert fb.PROBLEMS[prob].optimum - best == pytest.approx(curve[-1], abs=1e-12)
            assert report["summary"][prob][m]["regret"][str(n)]["median"] == curve[-1]
    text = page.read_text()
    assert "**Quick run**" in text and "### formulation" in text and "### process" in text
    assert "Ax is not installed" in text
    assert all(f"Skipped: {why}." in text for why in report["skipped"].values())


def test_bad_options_are_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        fb.main(["--checkpoints", "10,40", "--budget", "30"])
    assert exc.value.code == 2
    assert "--checkpoints: got '10,40'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        fb.main(["--problems", "formulation,alloy"])
    assert "--problems: unknown ['alloy']" in capsys.readouterr().err
