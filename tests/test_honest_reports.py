"""Plots and reports tell the truth: best so far counts feasible trials only, constraints
are shown as constraints, and compute is summed over every process that worked on a
campaign."""

import html
import itertools
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.campaign.results import best_so_far, best_trial, outcome_roles  # noqa: E402
from workbench.plots import (best_so_far_quantiles, random_best_quantiles,  # noqa: E402
                             random_search_runs)
from workbench.record import Trial  # noqa: E402
from workbench.report import campaign_report, summary_from_store  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Told in id order; trial 1 fails. Infeasible trials (impurity > 1.5) have the best
# yields of all, and trial 0, the first, is one of them.
TOLD = {0: (90.0, 2.0), 2: (62.4, 1.0), 3: (71.9, 2.0), 4: (66.0, 1.2), 5: (78.2, 3.0),
        6: (55.0, 0.2), 7: (81.0, 0.5)}
# The feasible running best by hand, per trial id (NaN: no feasible trial yet).
EXPECTED = [np.nan, np.nan, 62.4, 62.4, 66.0, 66.0, 66.0, 81.0]
INFEASIBLE = [0, 3, 5]


SPEC = {"name": "impure", "space": [{"name": "temperature", "type": "integer", "low": 30,
                                     "high": 110}],
        "objectives": [{"name": "yield", "direction": "maximize", "unit": "%"}],
        "outcome_constraints": ["impurity <= 1.5"], "initial_design": {"n": 8}, "seed": 0,
        "tracking": None}


def _impure(store=None):
    """Eight trials of a campaign that maximises yield with impurity <= 1.5 (the Sobol
    design only: no model, no JAX)."""
    c = wb.Campaign.from_dict({**SPEC, "store": None if store is None else str(store)})
    for t in c.ask(8):
        if t.id in TOLD:
            y, impurity = TOLD[t.id]
            c.tell(t.id, {"yield": y, "impurity": impurity})
        else:
            c.tell_failed(t.id, "reactor clogged")
    return c


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _line(ax, gid):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def test_best_so_far_is_the_feasible_running_best_with_a_gap_before_the_first():
    c = _impure()
    obj = c.objectives[0]
    feasible = {t.id for t in c.feasible_trials()}
    assert sorted(set(TOLD) - feasible) == INFEASIBLE
    np.testing.assert_array_equal(best_so_far(obj, c.trials, feasible), EXPECTED)
    assert c.best().id == 7 and c.best().outcomes["yield"] == 81.0
    # Not the running maximum of every value (90, 90, ...): infeasible trials never count.
    done = [t for t in c.trials if t.status == "completed"]
    assert np.nanmax(best_so_far(obj, done, feasible)) == 81.0


def test_best_so_far_in_both_directions_and_to_a_target():
    trials = [Trial(id=i, params={}, status="completed", outcomes={"y": y})
              for i, y in enumerate([5.0, 3.0, 4.0, 1.0, 2.0])]
    every = range(5)
    np.testing.assert_array_equal(
        best_so_far(wb.Objective("y", "minimize"), trials, every), [5, 3, 3, 1, 1])
    np.testing.assert_array_equal(
        best_so_far(wb.Objective("y", "maximize"), trials, every), [5, 5, 5, 5, 5])
    np.testing.assert_array_equal(  # closest to 4.2 so far, as a value
        best_so_far(wb.Objective("y", target=4.2), trials, every), [5, 5, 4, 4, 4])
    np.testing.assert_array_equal(
        best_so_far(wb.Objective("y", "minimize"), trials, {2, 4}), [np.nan, np.nan, 4, 4, 2])
    assert best_trial(wb.Objective("y", "minimize"), trials).id == 3
    assert best_trial(wb.Objective("y", "minimize"), []) is None


def test_convergence_plot_draws_the_feasible_best_and_marks_infeasible_trials():
    c = _impure()
    ax = c.plot()
    best = _line(ax, "best_so_far")
    done = [t.id for t in c.trials if t.status == "completed"]
    np.testing.assert_array_equal(best.get_xdata(), done)
    np.testing.assert_array_equal(best.get_ydata(), [EXPECTED[i] for i in done])
    infeasible = _line(ax, "infeasible")
    np.testing.assert_array_equal(infeasible.get_xdata(), INFEASIBLE)
    np.testing.assert_array_equal(infeasible.get_ydata(), [TOLD[i][0] for i in INFEASIBLE])
    assert infeasible.get_markerfacecolor() == "none"
    assert infeasible.get_label() == "infeasible (3)"
    observed = _line(ax, "observed")
    np.testing.assert_array_equal(observed.get_xdata(), [2, 4, 6, 7])
    np.testing.assert_array_equal(_line(ax, "failed").get_xdata(), [1])
    assert ax.get_ylabel() == "yield [%] (maximize)"


def test_outcome_roles_name_constraints_by_their_bound():
    objectives = [wb.Objective("conversion", "maximize"), wb.Objective("cost", "minimize"),
                  wb.Objective("viscosity", target=2.5)]
    constraints = ["impurity <= 1.5", "conversion >= 50", "0.1 <= purity"]
    assert outcome_roles(objectives, constraints) == {
        "conversion": "max, >= 50", "cost": "min", "viscosity": "target 2.5",
        "impurity": "<= 1.5", "purity": ">= 0.1"}


def test_report_lists_the_constraint_as_a_constraint_and_counts_feasible_trials(tmp_path):
    store = tmp_path / "impure.zarr"
    _impure(store)
    text, _ = campaign_report(store)
    plain = html.unescape(text)
    spec = plain.split("<h2>Spec</h2>")[1].split("<details>")[0]
    assert "<td>impurity <= 1.5</td><td>outcome: a trial outside is infeasible</td>" in spec
    assert "<td>yield</td><td>maximize</td><td>%</td>" in spec
    assert "impurity (min)" not in plain and "impurity (minimize)" not in plain
    best = plain.split("<h2>Best trials")[1].split("<h2>")[0]
    assert "(4 of 4 feasible)" in best and "<th>impurity (<= 1.5)</th>" in best
    rows = [int(r) for r in re.findall(r"<tr><td>(\d+)</td>", best)]
    assert rows == [7, 4, 2, 6]  # feasible only, best first
    # The comparison curve: evaluations in the order told, feasible best only.
    np.testing.assert_array_equal(summary_from_store(store).best, EXPECTED)


def test_status_labels_a_constraint_by_its_bound(tmp_path):
    _impure(tmp_path / "impure.zarr")
    (tmp_path / "impure.yaml").write_text(json.dumps({**SPEC, "store": "impure.zarr"}))
    # A process of its own: rich reads COLUMNS when the CLI's console is made.
    r = subprocess.run([sys.executable, "-m", "workbench", "status", "impure.yaml"],
                       cwd=tmp_path, env={**os.environ, "COLUMNS": "250"},
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "impurity (<= 1.5)" in r.stdout and "yield (max)" in r.stdout
    assert "impurity (min)" not in r.stdout
    assert "best yield = 81 at trial 7" in r.stdout


# -- compute across processes ----------------------------------------------------------

# Each session spends at least this much CPU of its own, measured by itself.
SHARE_S = 0.3
_SESSION = textwrap.dedent("""
    import json, sys
    import numpy as np
    import workbench as wb
    from workbench.metrics import cpu_seconds

    store, uri, role = sys.argv[1:]

    def work():  # CPU of this process, at least SHARE_S seconds of it
        t0 = cpu_seconds()
        while cpu_seconds() - t0 < {share}:
            np.linalg.svd(np.random.default_rng(0).normal(size=(120, 120)))

    def lab(params):
        work()
        return {{"y": float(params["x"]), "impurity": 1.0}}

    if role == "ask":  # a CLI-like ask: it never tells, so its CPU goes with the ask
        c = wb.Campaign.from_dict({{
            "name": "two", "space": [{{"name": "x", "type": "continuous", "low": 0, "high": 1}}],
            "objectives": [{{"name": "y", "direction": "minimize"}}],
            "outcome_constraints": ["impurity <= 1.5"], "initial_design": {{"n": 4}},
            "store": store, "tracking": uri, "seed": 0}})
        t0 = cpu_seconds()
        work()
        share = cpu_seconds() - t0
        c.ask(1)
    else:  # a run that evaluates the pending trial and one more
        c = wb.Campaign.open(store)
        t0 = cpu_seconds()
        c.run(lab, budget=2)
        share = cpu_seconds() - t0
    print(json.dumps({{"share": share}}))
""").format(share=SHARE_S)


def test_report_sums_cpu_and_energy_over_every_process(tmp_path):
    store, uri = tmp_path / "two.zarr", f"sqlite:///{tmp_path / 'mlflow.db'}"
    script = tmp_path / "session.py"
    script.write_text(_SESSION)
    env = dict(os.environ, WORKBENCH_WATTS_PER_CORE="10",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    shares = []
    for role in ("ask", "run"):
        done = subprocess.run([sys.executable, str(script), str(store), uri, role], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        shares.append(json.loads(done.stdout.strip().splitlines()[-1])["share"])
    assert min(shares) >= SHARE_S
    summary = summary_from_store(store)
    # Both processes' CPU, not the last one's: the ask process never told anything.
    assert summary.cpu_s >= sum(shares)
    assert summary.energy_j == pytest.approx(10 * summary.cpu_s)
    text, _ = campaign_report(store)
    assert "CPU time (sum over every process that logged to the run)" in text
    assert "evaluations on other machines" in text


# -- random search's best so far counts feasible evaluations only ------------------------

QUARTILES = np.array([0.25, 0.5, 0.75])


def _best_of_subsets(v, k, direction):
    """Quartiles of the best feasible value of every k-subset of the pool ``v`` (NaN:
    infeasible), a subset without one ranking worst; NaN where a quartile is such."""
    pick, worst = (max, -np.inf) if direction == "maximize" else (min, np.inf)
    bests = []
    for subset in itertools.combinations(v, k):
        feasible = [x for x in subset if not np.isnan(x)]
        bests.append(pick(feasible) if feasible else worst)
    out = np.quantile(bests, QUARTILES, method="inverted_cdf")
    return np.where(np.isinf(out), np.nan, out)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_random_band_ranks_infeasible_pool_rows_worst(direction):
    v = np.array([3.0, np.nan, 1.0, 4.0, np.nan, np.nan, 2.0, 5.0])
    exact = random_best_quantiles(v, len(v), direction)
    for k in range(1, len(v) + 1):
        np.testing.assert_array_equal(exact[:, k - 1], _best_of_subsets(v, k, direction))
    # One draw, 3 of 8 rows infeasible: the worse quartile has no feasible best, the better has.
    worse = 0 if direction == "maximize" else 2
    assert np.isnan(exact[worse, 0]) and not np.isnan(exact[2 - worse, 0])
    # Random search over every order of the pool: the same quartiles from the runs.
    runs = np.array(list(itertools.permutations(v)))
    np.testing.assert_array_equal(best_so_far_quantiles(runs, direction), exact)


def test_simulated_random_search_counts_only_feasible_evaluations():
    c = _impure()

    def lab(params):  # hotter is purer and better
        t = params["temperature"]
        return {"yield": t / 2.0, "impurity": 3.0 - t / 40.0}

    runs = random_search_runs(c, 4, evaluations=6, oracle=lab)
    values = runs[np.isfinite(runs)]
    assert values.size and np.all(3.0 - (2 * values) / 40.0 <= 1.5)  # feasible ones only
    assert np.all(np.isnan(runs) | (runs >= 60.0 / 2))  # 60 degC: impurity 1.5 exactly
