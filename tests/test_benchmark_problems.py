"""The benchmark suite's test problems against their known optima and Pareto fronts.

Each published or computed optimum is checked independently: the function value at the
optimal point, feasibility there, and that a local optimiser (or an exhaustive search) started
around it finds nothing better. A fast smoke run of the suite itself closes the file.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from benchmarks import problems_suite as ps


def _value(problem: ps.SuiteProblem, params: dict) -> float:
    return problem.evaluate(params)["y"]


@pytest.mark.parametrize("name", ["branin", "hartmann6", "hartmann6_noisy", "ackley10",
                                  "mixed_branin", "mixture", "michalewicz10",
                                  "styblinski_tang8", "rastrigin6", "rosenbrock8", "shekel10",
                                  "hartmann6_em30", "hartmann6_em100"])
def test_value_at_the_optimum(name):
    p = ps.get(name)
    params = p.optimal_params or ps.get("hartmann6").optimal_params
    assert _value(p, params) == pytest.approx(p.optimum, abs=1e-6)
    assert p.feasible(params, p.evaluate(params))


def test_no_better_point_nearby_on_a_random_sample():
    """Dense random samples of each box never beat the stated optimum."""
    rng = np.random.default_rng(0)
    for name in ("branin", "hartmann6", "ackley10"):
        p = ps.get(name)
        lo = np.array([q.low for q in p.params])
        hi = np.array([q.high for q in p.params])
        X = lo + (hi - lo) * rng.random((2000, p.dim))
        vals = [_value(p, dict(zip([q.name for q in p.params], x))) for x in X]
        assert min(vals) >= p.optimum - 1e-9


def test_separable_optima_are_sums_of_one_dimensional_minima():
    """Michalewicz and Styblinski-Tang are sums of one-dimensional terms: each term's
    minimum by a dense grid and bounded refinement, summed, is the stated optimum."""
    def one_d_min(term, lo, hi):
        grid = np.linspace(lo, hi, 200001)
        i = int(np.argmin(term(grid)))
        r = minimize_scalar(term, bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
                            method="bounded", options={"xatol": 1e-13})
        return r.fun

    m = ps.MICHALEWICZ_M
    mich = sum(one_d_min(lambda t, i=i: -np.sin(t) * np.sin(i * t**2 / np.pi) ** (2 * m),
                         0.0, np.pi) for i in range(1, 11))
    assert mich == pytest.approx(ps.get("michalewicz10").optimum, abs=1e-9)
    st = 8 * one_d_min(lambda t: 0.5 * (t**4 - 16 * t**2 + 5 * t), -5.0, 5.0)
    assert st == pytest.approx(ps.get("styblinski_tang8").optimum, abs=1e-9)


def test_shekel_optimum_by_multistart_local_search():
    """Local searches from every well's centre: none beats the stated optimum, the best
    reaches it."""
    p = ps.get("shekel10")
    found = [minimize(ps.shekel, a, method="Nelder-Mead",
                      options={"xatol": 1e-12, "fatol": 1e-14, "maxiter": 20000}).fun
             for a in ps.SHEKEL_A]
    assert min(found) == pytest.approx(p.optimum, abs=1e-9)


def test_embedded_hartmann_ignores_the_extra_parameters():
    rng = np.random.default_rng(3)
    for name, d in (("hartmann6_em30", 30), ("hartmann6_em100", 100)):
        p = ps.get(name)
        assert p.dim == d
        x = dict(p.optimal_params)
        x.update({f"x{i}": float(v) for i, v in zip(range(7, d + 1), rng.random(d - 6))})
        assert _value(p, x) == pytest.approx(ps.H6_OPTIMUM, abs=1e-6)


def test_mixed_branin_optimum_by_exhaustive_search():
    """Every (level, integer x2) pair, x1 by dense grid plus bounded refinement."""
    p = ps.get("mixed_branin")
    grid = np.linspace(-5.0, 10.0, 15001)
    best = math.inf
    for level in ("a", "b", "c"):
        for x2 in range(16):
            i = int(np.argmin(ps.branin(grid, x2 + ps.MIXED_SHIFT[level])))
            r = minimize_scalar(lambda x: ps.mixed_branin(x, x2, level),
                                bounds=(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]),
                                method="bounded", options={"xatol": 1e-12})
            best = min(best, r.fun)
    assert best == pytest.approx(p.optimum, abs=1e-9)
    # Level "b" reaches Branin's own minimum but pays its offset.
    assert ps.mixed_branin(math.pi, 2, "b") == pytest.approx(0.397887 + 0.5, abs=1e-6)


def test_mixture_optimum_by_multistart_slsqp():
    p = ps.get("mixture")
    names = [q.name for q in p.params]

    def f(z):
        return _value(p, dict(zip(names, z)))

    rng = np.random.default_rng(1)
    best = math.inf
    for _ in range(40):
        z0 = np.r_[rng.dirichlet(np.ones(4)), 40.0 + 80.0 * rng.random()]
        r = minimize(f, z0, method="SLSQP", bounds=[(0, 1)] * 4 + [(40.0, 120.0)],
                     constraints=[{"type": "eq", "fun": lambda z: z[:4].sum() - 1.0}],
                     options={"ftol": 1e-14, "maxiter": 500})
        if r.success and abs(r.x[:4].sum() - 1.0) < 1e-9:
            best = min(best, r.fun)
    assert best == pytest.approx(p.optimum, abs=1e-7)


def _constrained_local_search(p: ps.SuiteProblem, x0: np.ndarray) -> float:
    """SLSQP on the problem's own constraints from x0; the best feasible value found."""
    names = [q.name for q in p.params]

    def out(z):
        return p.evaluate(dict(zip(names, z)))

    cons = [{"type": "ineq", "fun": (lambda z, g=g: -out(z)[g])} for g in p.outcome_constraints]
    cons += [{"type": "ineq",
              "fun": (lambda z, lc=lc: -lc.residual(dict(zip(names, z))))}
             for lc in p.linear_constraints]
    # Scale each variable to [0, 1] so SLSQP's steps are comparable across inputs.
    lo = np.array([q.low for q in p.params])
    span = np.array([q.high - q.low for q in p.params])
    r = minimize(lambda u: out(lo + span * u)["y"], (x0 - lo) / span, method="SLSQP",
                 bounds=[(0, 1)] * len(names),
                 constraints=[{"type": c["type"], "fun": (lambda u, c=c: c["fun"](lo + span * u))}
                              for c in cons],
                 options={"ftol": 1e-12, "maxiter": 1000})
    z = lo + span * r.x
    # A start from which SLSQP does not reach feasibility says nothing about the optimum.
    return float(r.fun) if p.feasible(dict(zip(names, z)), out(z), tol=1e-6) else math.inf


@pytest.mark.parametrize("name,rel", [("welded_beam", 2e-6), ("pressure_vessel", 1e-7),
                                      ("tension_spring", 1e-6), ("speed_reducer", 1e-6)])
def test_engineering_problems_published_best(name, rel):
    """The published best point is feasible (to its printed digits) with the published cost,
    no feasible point sampled around it is cheaper, and SLSQP started there and from perturbed
    starts finds nothing cheaper. Whether a given SLSQP start reaches feasibility at all
    depends on the last bits of scipy's and BLAS's arithmetic, so only what it finds is
    judged, never that it finds something."""
    p = ps.get(name)
    names = [q.name for q in p.params]
    x_star = np.array([p.optimal_params[n] for n in names])
    outcomes = p.evaluate(p.optimal_params)
    assert outcomes["y"] == pytest.approx(p.optimum, rel=1e-5)
    assert p.feasible(p.optimal_params, outcomes, tol=1e-4)  # rounded to 7 digits in print
    lo, hi = np.array([q.low for q in p.params]), np.array([q.high for q in p.params])
    rng = np.random.default_rng(2)
    for scale in (1e-2, 1e-4):  # a local optimum: the feasible neighbours cost more
        for z in np.clip(x_star * (1 + scale * rng.standard_normal((400, x_star.size))), lo, hi):
            point = dict(zip(names, z))
            out = p.evaluate(point)
            if p.feasible(point, out, tol=1e-6):
                assert out["y"] >= p.optimum * (1 - rel), (point, out)
    best = _constrained_local_search(p, x_star)
    for _ in range(5):
        start = np.clip(x_star * (1 + 0.05 * rng.standard_normal(x_star.size)), lo, hi)
        best = min(best, _constrained_local_search(p, start))
    assert best >= p.optimum * (1 - rel)


def test_welded_beam_linear_constraint_is_h_below_b():
    p = ps.get("welded_beam")
    (lc,) = p.linear_constraints
    assert lc.residual({"h": 0.3, "b": 0.2}) == pytest.approx(0.1)
    assert not p.feasible({"h": 0.3, "l": 3.0, "t": 9.0, "b": 0.2},
                          p.evaluate({"h": 0.3, "l": 3.0, "t": 9.0, "b": 0.2}))


def _front_2d(X: np.ndarray, F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-dominated rows of F (both minimised) and their X, by a sort and a running minimum."""
    order = np.lexsort((F[:, 1], F[:, 0]))
    X, F = X[order], F[order]
    keep = F[:, 1] < np.minimum.accumulate(np.r_[np.inf, F[:-1, 1]])
    return X[keep], F[keep]


def _hv_2d_min(front: np.ndarray, ref: np.ndarray) -> float:
    front = front[(front < ref).all(axis=1)]
    widths = np.diff(np.r_[front[:, 0], ref[0]])
    return float(np.sum(widths * (ref[1] - front[:, 1])))


def test_branin_currin_hypervolume_of_a_refined_front():
    """A 400 x 400 grid's front, refined three times by sampling around its points, reaches
    the stated maximum hypervolume to 2e-3 and never exceeds it (BoTorch's NSGA-II value
    59.3601 is lower)."""
    from benchmarks.problems_mo import branin_currin

    p = ps.get("branin_currin")
    ref = np.array(p.ref_point)
    g = np.linspace(0.0, 1.0, 400)
    X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    X, F = _front_2d(X, branin_currin(X))
    rng = np.random.default_rng(0)
    h = 1.0 / 400
    for _ in range(3):
        seeds = X if len(X) <= 4000 else X[rng.choice(len(X), 4000, replace=False)]
        Xn = np.clip(seeds[:, None, :] + h * (2 * rng.random((len(seeds), 60, 2)) - 1), 0, 1)
        X, F = _front_2d(np.r_[X, Xn.reshape(-1, 2)],
                         np.r_[F, branin_currin(Xn.reshape(-1, 2))])
        h /= 3
    hv = _hv_2d_min(F, ref)
    assert hv <= p.max_hypervolume + 1e-6
    assert hv == pytest.approx(p.max_hypervolume, abs=2e-3)
    assert hv > 59.36011874867746


def test_dtlz2_front_is_the_sphere_octant():
    """Points with x3..x6 = 0.5 lie on the unit sphere; their hypervolume (Monte Carlo
    against the closed form 1.1^3 - pi/6) and the evaluate() outcome names agree."""
    p = ps.get("dtlz2")
    rng = np.random.default_rng(3)
    X = np.c_[rng.random((400, 2)), np.full((400, 4), 0.5)]
    from benchmarks.problems_mo import dtlz2

    F = dtlz2(X)
    assert np.linalg.norm(F, axis=1) == pytest.approx(np.ones(400), abs=1e-12)
    out = p.evaluate(dict(zip([q.name for q in p.params], X[0])))
    assert [out[k] for k in p.objectives] == pytest.approx(list(F[0]))
    # Everything inside [0, 1.1]^3 outside the unit ball is dominated by the front.
    U = 1.1 * rng.random((200_000, 3))
    frac = np.mean(np.linalg.norm(U, axis=1) >= 1.0)
    assert frac * 1.1**3 == pytest.approx(p.max_hypervolume, abs=5e-3)


def _suite():
    from benchmarks import suite

    return suite


def test_suite_smoke(tmp_path):
    """The suite end to end at tiny sizes: every kind of problem (noisy, mixed, constrained,
    simplex, two objectives) with random search and TPE, and one workbench proposal on the
    mixed problem; the metrics agree with the recorded evaluations."""
    suite = _suite()
    out, table = tmp_path / "suite.json", tmp_path / "suite.md"
    problems = ["hartmann6_noisy", "mixed_branin", "pressure_vessel", "mixture", "branin_currin"]
    assert suite.main(["--problems", ",".join(problems), "--methods", "random,optuna_tpe",
                       "--seeds", "2", "--budget", "7", "--n-initial", "5", "--out", str(out),
                       "--table", str(table), "--no-batch"]) == 0
    report = json.loads(out.read_text())
    for prob in problems:
        for method in ("random", "optuna_tpe"):
            runs = report["results"][prob][method]
            assert [r["seed"] for r in runs] == [0, 1]
            for r in runs:
                assert r["n_evaluations"] == len(r["curve"]) == 7
                assert r["regret"] >= -1e-9
                # Best-so-far: the curve never gets worse (noisy: the recommendation may).
                if prob != "hartmann6_noisy":
                    curve = np.array(r["curve"])  # inf until the first feasible point
                    assert np.array_equal(curve, np.minimum.accumulate(curve))
                    assert r["regret"] == r["curve"][-1]
            assert report["summary"][prob][method]["regret_median"] == pytest.approx(
                np.median([r["regret"] for r in runs]))
    text = table.read_text()
    assert all(p in text for p in problems) and "HV gap" in text
    assert (tmp_path / "suite.png").stat().st_size > 0

    # A run split over processes by seed merges back into one table.
    out3 = tmp_path / "more.json"
    assert suite.main(["--problems", "mixture", "--methods", "random", "--seeds", "1",
                       "--first-seed", "2", "--budget", "7", "--n-initial", "5", "--out",
                       str(out3), "--table", str(tmp_path / "more.md"), "--no-batch"]) == 0
    merged_table = tmp_path / "merged.md"
    assert suite.main(["--report-only", str(out), str(out3), "--table", str(merged_table)]) == 0
    merged = suite.merge_reports([json.loads(out.read_text()), json.loads(out3.read_text())])
    runs = merged["results"]["mixture"]["random"]
    assert [r["seed"] for r in runs] == [0, 1, 2]
    assert merged["summary"]["mixture"]["random"]["regret_median"] == pytest.approx(
        np.median([r["regret"] for r in runs]))
    assert "| mixture | regret | random | 3 |" in merged_table.read_text()

    out2 = tmp_path / "wb.json"
    assert suite.main(["--problems", "mixed_branin", "--methods", "workbench", "--seeds", "1",
                       "--budget", "6", "--n-initial", "5", "--out", str(out2), "--table",
                       str(tmp_path / "wb.md"), "--no-batch"]) == 0
    (r,) = json.loads(out2.read_text())["results"]["mixed_branin"]["workbench"]
    assert r["n_evaluations"] == 6 and len(r["proposal_times_s"]) == 1


def test_suite_rejects_unknown_problem(capsys):
    with pytest.raises(SystemExit) as exc:
        _suite().main(["--problems", "branin,rosenbrock"])
    assert exc.value.code == 2
    assert "rosenbrock" in capsys.readouterr().err
