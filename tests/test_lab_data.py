"""Replicates, standard errors and past data: what a tell and an import record, what the
model makes of known noise (against the closed form), and the noise-aware incumbent."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import workbench as wb
from surrogates import posterior_moments
from surrogates.gp_likelihood import JITTER
from workbench.campaign.lab import IMPORT_CHUNK, IMPORTED, known_noise
from workbench.csvio import read_results
from workbench.engine import fit_surrogate, incumbent

REPO = Path(__file__).resolve().parents[1]


def _campaign(tmp_path, **kw) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Categorical("c", ["a", "b"])],
                           constraints=kw.pop("constraints", ()))
    return wb.Campaign("lab", space, [wb.Objective("yield", "maximize")],
                       store=tmp_path / "lab.zarr", tracking=None, **kw)


def _journal_events(campaign) -> list[dict]:
    """The events in the store's journal since its snapshot."""
    return campaign.store.read_journal(campaign.store.token(), 0)[0]


def test_mean_and_standard_error_and_replicates_are_recorded_and_replayed(tmp_path):
    c = _campaign(tmp_path)
    t = c.ask(3)
    c.tell(t[0].id, {"yield": (71.2, 1.5)})
    reps = [70.1, 72.3, 71.0]
    told = c.tell(t[1].id, {"yield": reps})
    c.tell(t[2].id, 3.0)
    assert told.outcomes["yield"] == pytest.approx(np.mean(reps), abs=1e-12)
    assert told.sem["yield"] == pytest.approx(np.std(reps, ddof=1) / math.sqrt(3), abs=1e-12)
    assert c.tell(t[0].id, {"yield": (71.2, 1.5)}).sem == {"yield": 1.5}  # the same: harmless
    with pytest.raises(wb.CampaignError, match="already told"):
        c.tell(t[0].id, {"yield": (71.2, 2.0)})
    events = [e for e in _journal_events(c) if e.get("op") == "tell"]
    assert [e.get("sem") for e in events] == [{"yield": 1.5}, {"yield": told.sem["yield"]}, None]
    assert events[1]["replicates"] == {"yield": reps}

    ds = c.data
    np.testing.assert_array_equal(ds["yield_sem"].values[:2], [1.5, told.sem["yield"]])
    assert math.isnan(ds["yield_sem"].values[2])
    assert "yield_sem" in c.to_frame().columns
    for again in (wb.Campaign.open(tmp_path / "lab.zarr"), None):  # journal replay, then Zarr
        if again is None:
            c.compact()
            again = wb.Campaign.open(tmp_path / "lab.zarr")
        assert [(x.outcomes, x.sem, x.replicates) for x in again.trials] == \
            [(x.outcomes, x.sem, x.replicates) for x in c.trials]
        assert again.trials[1].replicates == {"yield": reps}


def test_campaigns_without_standard_errors_record_as_before(tmp_path):
    c = _campaign(tmp_path)
    t = c.ask(1)[0]
    c.tell(t.id, 2.0)
    assert "yield_sem" not in c.data and "replicates" not in c.data
    assert "sem" not in _journal_events(c)[-1]
    assert "yield_sem" not in c.to_frame().columns


@pytest.mark.parametrize("bad", [(1.0, -0.1), (1.0, float("nan")), (1.0, 2.0, 3.0), [],
                                 [1.0, "x"], ("a", 1.0)])
def test_bad_standard_errors_and_replicates_are_refused(tmp_path, bad):
    c = _campaign(tmp_path)
    t = c.ask(1)[0]
    with pytest.raises(wb.CampaignError, match="outcomes.yield"):
        c.tell(t.id, {"yield": bad})
    assert c.trials[0].status == "pending"


def test_a_bad_standard_error_is_a_failure_under_the_fail_policy(tmp_path):
    c = _campaign(tmp_path, bad_observations="fail")
    t = c.ask(1)[0]
    with pytest.warns(RuntimeWarning, match="recorded as failed"):
        trial = c.tell(t.id, {"yield": (1.0, -2.0)})
    assert trial.status == "failed" and "standard error" in trial.failure_reason


def test_engine_gp_takes_told_standard_errors_as_fixed_noise_closed_form(tmp_path):
    """The campaign's GP conditions on sem^2 per point, standardised, on top of its
    homoscedastic noise: mean and variance equal K*(K + diag(s^2))^-1 y."""
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Continuous("z", 0.0, 1.0)])
    c = wb.Campaign("cf", space, [wb.Objective("y", "maximize")], tracking=None)
    rng = np.random.default_rng(5)
    X = rng.uniform(size=(10, 2))
    y = np.sin(5 * X[:, 0]) + X[:, 1]
    sem = np.where(np.arange(10) % 2 == 0, rng.uniform(0.05, 0.4, 10), 0.0)
    frame = pd.DataFrame({"x": X[:, 0], "z": X[:, 1], "y": y,
                          "y_sem": np.where(sem > 0, sem, np.nan)})
    done = c.add_data(frame)
    noise = known_noise(c.problem.outputs, done)
    np.testing.assert_array_equal(noise[:, 0], sem**2)
    Xe, Ye = c.training_data(done)
    model, _ = fit_surrogate(c.problem, Xe, Ye, jax.random.key(0), len(Xe), None, noise)
    theta = jax.tree_util.tree_map(lambda a: a[0], model.hyperparameters)
    Xq = rng.uniform(size=(5, 2))
    loc, scale = y.mean(), y.std(ddof=1)
    gram = lambda A, B: np.asarray(theta.kernel(theta.kernel_params, jnp.asarray(A),  # noqa: E731
                                                jnp.asarray(B)))
    Kxx = gram(Xe, Xe) + np.diag(float(theta.noise) + JITTER + sem**2 / scale**2)
    Ks = gram(Xq, Xe)
    m0 = float(theta.mean)
    mu = m0 + Ks @ np.linalg.solve(Kxx, (y - loc) / scale - m0)
    var = np.diag(gram(Xq, Xq) - Ks @ np.linalg.solve(Kxx, Ks.T))
    mean, variance = posterior_moments(model, jnp.asarray(space.encode(
        [{"x": a, "z": b} for a, b in Xq])))
    np.testing.assert_allclose(np.asarray(mean)[:, 0], mu * scale + loc, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.asarray(variance)[:, 0], var * scale**2, rtol=1e-7,
                               atol=1e-10)


def test_incumbent_is_the_best_posterior_mean_when_observations_are_noisy(tmp_path):
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("inc", space, [wb.Objective("y", "maximize")], tracking=None, seed=3)
    x = np.linspace(0.0, 1.0, 9)
    y = np.sin(3 * x)
    y[4] += 2.0  # one lucky, very uncertain measurement
    sem = np.full(9, 0.05)
    sem[4] = 2.0
    done = c.add_data(pd.DataFrame({"x": x, "y": y, "y_sem": sem}))
    X, Y = c.training_data(done)
    noise = known_noise(c.problem.outputs, done)
    model, _ = fit_surrogate(c.problem, X, Y, jax.random.key(1), len(X), None, noise)
    noisy = incumbent(c.problem, Y, X, model, noisy=True)
    posterior_mean = np.asarray(posterior_moments(model, jnp.asarray(X))[0])[:, 0]
    assert noisy == pytest.approx(posterior_mean.max(), abs=1e-12)
    assert noisy < y.max() - 1.0  # the outlier does not set the bar
    assert incumbent(c.problem, Y, X, model) == pytest.approx(y.max())
    audit = json.loads(c.ask(1)[0].audit)
    assert audit["noise_aware_incumbent"] is True
    assert audit["incumbent"] < y.max() - 1.0


def test_best_probability_from_standard_errors(tmp_path):
    c = _campaign(tmp_path)
    c.add_data(pd.DataFrame({"x": [0.1, 0.2, 0.3], "c": ["a", "a", "b"],
                             "yield": [10.0, 9.8, 5.0], "yield_sem": [0.3, 0.4, 0.1]}))
    best = c.best()
    assert best.id == 0 and best.sem == {"yield": 0.3}
    p = c.best_probability()
    exact = norm.cdf(0.2 / math.hypot(0.3, 0.4))  # P(trial 0 > trial 1); trial 2 never best
    assert p[0] == pytest.approx(exact, abs=0.03)
    assert sum(p.values()) == pytest.approx(1.0) and 2 not in p
    plain = _campaign(tmp_path / "plain")
    plain.add_data(pd.DataFrame({"x": [0.1, 0.2], "c": ["a", "b"], "yield": [1.0, 2.0]}))
    assert plain.best_probability() == {1: 1.0}


def test_results_csv_takes_a_sem_column(tmp_path):
    c = _campaign(tmp_path)
    t = c.ask(2)
    path = tmp_path / "results.csv"
    path.write_text(f"trial_id,campaign_id,yield,yield_sem\n{t[0].id},{c.campaign_id},5.5,0.25\n"
                    f"{t[1].id},{c.campaign_id},6.0,\n")
    rows = read_results(path, c)
    assert [r.outcomes for r in rows] == [{"yield": (5.5, 0.25)}, {"yield": 6.0}]
    for r in rows:
        c.tell(r.trial_id, r.outcomes)
    assert [x.sem for x in c.trials] == [{"yield": 0.25}, {}]
    assert len(read_results(path, c)) == 2  # told again: the same values, no conflict
    path.write_text(f"trial_id,campaign_id,yield,yield_sem\n{t[0].id},{c.campaign_id},5.5,-1\n")
    with pytest.raises(wb.CampaignError, match=r"results.csv:2: yield_sem: got '-1'"):
        read_results(path, c)


def test_add_data_imports_ten_thousand_rows_in_a_few_journal_events(tmp_path):
    c = _campaign(tmp_path)
    c.tell(c.ask(1)[0].id, 1.0)
    before = len(_journal_events(c))
    rng = np.random.default_rng(0)
    n = 10_000
    frame = pd.DataFrame({"x": rng.uniform(size=n), "c": rng.choice(["a", "b"], n),
                          "yield": rng.normal(size=n), "yield_sem": rng.uniform(0, 1, n)})
    frame.loc[5, "yield_sem"] = np.nan  # no standard error known for this one
    frame.loc[7] = frame.loc[6]  # a repeat of an experiment is a separate experiment
    new = c.add_data(frame)
    events = _journal_events(c)[before:]
    assert [e["op"] for e in events] == ["import"] * math.ceil(n / IMPORT_CHUNK)
    assert len(new) == n and [t.id for t in new] == list(range(1, n + 1))
    assert c.count("completed") == n + 1
    assert {t.strategy for t in new} == {IMPORTED} and {t.batch for t in new} == {1}
    assert json.loads(new[3].audit) == {"strategy": IMPORTED, "source": "DataFrame",
                                        "row": "row 3"}
    assert new[5].sem == {} and new[0].sem["yield"] == frame["yield_sem"][0]
    assert new[7].params == new[6].params
    again = wb.Campaign.open(tmp_path / "lab.zarr")
    assert [(t.params, t.outcomes, t.sem, t.strategy) for t in again.trials] == \
        [(t.params, t.outcomes, t.sem, t.strategy) for t in c.trials]


def test_imported_experiments_do_not_spend_the_budget(tmp_path):
    c = _campaign(tmp_path, budget=3, initial_design={"type": "sobol", "n": 2})
    c.add_data(pd.DataFrame({"x": [0.1, 0.5, 0.9, 0.3], "c": ["a", "b", "a", "b"],
                             "yield": [1.0, 2.0, 3.0, 4.0]}))
    with pytest.raises(wb.CampaignError, match="budget of 3 experiments leaves 3 to ask"):
        c.ask(4)
    c.run(lambda p: p["x"] + (p["c"] == "a"))
    asked = [t for t in c.trials if t.strategy != IMPORTED]
    assert len(c.trials) == 7 and len(asked) == 3
    assert all(t.status == "completed" for t in c.trials)


def test_add_data_refuses_rows_outside_the_space_naming_their_lines(tmp_path):
    c = _campaign(tmp_path, constraints=["x <= 0.9"])
    size = c.store.journal_path.stat().st_size if c.store.journal_path.exists() else 0
    path = tmp_path / "past.csv"
    path.write_text("x,c,yield\n0.5,a,1.0\n1.5,a,2.0\n\n0.2,z,3.0\n0.3,b,\n")
    with pytest.raises(wb.CampaignError) as e:
        c.add_data(path)
    msg = str(e.value)
    assert "3 row(s) refused, nothing was imported" in msg
    assert "line 3: parameter 'x': got 1.5" in msg and "line 5: parameter 'c'" in msg
    assert "line 6: yield: got ''" in msg and "widen the space" in msg
    path.write_text("x,c,yield\n0.5,a,1.0\n0.95,a,2.0\n")
    with pytest.raises(wb.CampaignError, match=r"line 3: violates the constraints"):
        c.add_data(path)
    with pytest.raises(wb.CampaignError, match=r"missing column\(s\) \['yield'\]"):
        c.add_data(pd.DataFrame({"x": [0.5], "c": ["a"]}))
    new_size = c.store.journal_path.stat().st_size if c.store.journal_path.exists() else 0
    assert new_size == size and c.trials == []


def test_cli_import_records_a_csv_and_refuses_a_bad_one(tmp_path):
    spec = tmp_path / "lab.yaml"
    spec.write_text("name: lab\nspace:\n  - {name: x, type: continuous, low: 0, high: 1}\n"
                    "objectives:\n  - {name: yield, direction: maximize}\n"
                    "store: lab.zarr\ntracking: null\n")
    (tmp_path / "past.csv").write_text("x,yield,yield_sem\n0.1,1.0,0.2\n0.5,2.0,\n")
    (tmp_path / "bad.csv").write_text("x,yield\n0.1,1.0\n1.5,2.0\n")

    def run(*args):
        return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=tmp_path,
                              capture_output=True, text=True, env={"PYTHONPATH": str(REPO),
                                                                   "PATH": "/usr/bin:/bin"})

    ok = run("import", str(spec), "past.csv")
    assert ok.returncode == 0, ok.stderr
    assert "imported 2 past experiment(s)" in ok.stdout
    bad = run("import", "lab.zarr", "bad.csv")
    assert bad.returncode == 2 and "line 3: parameter 'x': got 1.5" in bad.stderr
    again = run("import", "lab.zarr", "past.csv", "--json")
    assert json.loads(again.stdout) == {"schema": "workbench.import/1", "store": "lab.zarr",
                                        "imported": 2, "trial_ids": [2, 3]}
    trials = wb.Campaign.open(tmp_path / "lab.zarr").trials
    assert [(t.outcomes["yield"], t.sem, t.strategy) for t in trials] == \
        [(1.0, {"yield": 0.2}, "imported"), (2.0, {}, "imported")] * 2
