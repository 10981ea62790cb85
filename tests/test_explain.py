"""campaign.explain, campaign.plot.explain and ``workbench explain``: the facts recorded
when a trial was proposed, read back as they were (never recomputed); and the optimiser's
runners-up they rest on (``maximize_acquisition_top``)."""

from __future__ import annotations

import json
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jsonschema
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import workbench as wb
from active_learning import (DISTINCT_TOLERANCE, Cardinality, Domain, maximize_acquisition,
                             maximize_acquisition_top)
from workbench.cli import app
from workbench.cli_json import output_schema
from workbench.errors import CampaignError

LIGAND_BONUS = {"XPhos": 4.0, "SPhos": 0.0, "RuPhos": 2.0}
N_INITIAL = 6


def _yield(p):
    return 0.1 * p["temperature"] + LIGAND_BONUS[p["ligand"]]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("explain") / "explain.zarr"
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 110.0, unit="degC"),
                            wb.Integer("cycles", 1, 10),
                            wb.Categorical("ligand", list(LIGAND_BONUS))])
    c = wb.Campaign("explain", space, [wb.Objective("yield", "maximize")], seed=0,
                    initial_design={"n": N_INITIAL}, store=str(path), tracking=None)
    for t in c.ask(N_INITIAL):
        c.tell(t.id, {"yield": _yield(t.params)})
    for t in c.ask(2):  # a batch: its first point carries the acquisition profiles
        c.tell(t.id, {"yield": _yield(t.params)})
    c.ask(1)
    return path


@pytest.fixture(scope="module")
def campaign(store):
    return wb.Campaign.open(str(store), tracking=None)


def test_explain_reads_the_recorded_prediction_value_and_alternatives(campaign):
    for t in campaign.trials[N_INITIAL:]:
        facts = campaign.explain(t.id)
        audit = json.loads(t.audit)
        assert facts["kind"] == "model" and facts["strategy"] == t.strategy
        assert facts["prediction"]["yield"] == {"mean": t.prediction["yield"].mean,
                                                "std": t.prediction["yield"].std}
        assert facts["acquisition_value"] == t.acquisition_value
        assert facts["incumbent"] == audit["incumbent"]  # maximised: score == value
        assert facts["data_hash"] == audit["data_hash"]
        assert facts["hyperparameters"] == audit["hyperparameters"]
        alts = facts["alternatives"]
        values = [a["acquisition_value"] for a in alts]
        assert 2 <= len(alts) <= 5 and values == sorted(values, reverse=True)
        # The chosen point is alternative #1 and the best of them.
        assert alts[0]["params"] == t.proposed
        assert values[0] == pytest.approx(t.acquisition_value, rel=1e-12)
        assert len({json.dumps(a["params"], sort_keys=True) for a in alts}) == len(alts)


def test_profiles_are_recorded_for_the_first_point_of_a_batch(campaign):
    first, second = campaign.trials[N_INITIAL], campaign.trials[N_INITIAL + 1]
    profiles = campaign.explain(first.id)["profiles"]
    assert campaign.explain(second.id)["profiles"] == []
    assert 1 <= len(profiles) <= 2
    hits = 0
    for prof in profiles:
        assert prof["parameter"] in ("temperature", "cycles")
        assert len(prof["values"]) == len(prof["acquisition"]) == 25
        # Where the grid meets the proposal, the acquisition is the recorded value.
        for v, a in zip(prof["values"], prof["acquisition"]):
            if v == first.proposed[prof["parameter"]]:
                assert a == pytest.approx(first.acquisition_value, rel=1e-6, abs=1e-9)
                hits += 1
    assert hits >= 1  # the proposal lies on a bound (110 degC, 1 cycle): on the grid


def test_text_says_the_numbers(campaign):
    t = campaign.trials[N_INITIAL]
    facts = campaign.explain(t.id)
    text = facts["text"]
    assert text.startswith(f"Trial {t.id} was proposed by {t.strategy}")
    assert f"{t.prediction['yield'].mean:.4g} ± {t.prediction['yield'].std:.2g}" in text
    assert f"best so far {facts['incumbent']:.4g}" in text
    assert f"{t.acquisition_value:.4g}" in text
    assert f"{facts['alternatives'][1]['acquisition_value']:.4g}" in text
    assert facts["data_hash"] in text


def test_explanation_is_unchanged_after_reopening(store, campaign):
    again = wb.Campaign.open(str(store), tracking=None)
    for t in campaign.trials:
        assert again.explain(t.id) == campaign.explain(t.id)


def test_initial_design_and_imported_trials_are_explained_as_such(campaign, tmp_path):
    facts = campaign.explain(0)
    assert facts["kind"] == "initial_design" and facts["prediction"] is None
    assert facts["alternatives"] == [] and facts["acquisition_value"] is None
    assert "initial design" in facts["text"] and "before any model" in facts["text"]
    c = wb.Campaign("imported", campaign.space, campaign.objectives, seed=0, tracking=None)
    (t,) = c.add_data(pd.DataFrame([{"temperature": 50.0, "cycles": 2, "ligand": "SPhos",
                                     "yield": 5.0}]))
    facts = c.explain(t.id)
    assert facts["kind"] == "imported" and "imported from past data" in facts["text"]


def test_bad_trial_id_names_the_value_and_the_range(campaign):
    with pytest.raises(CampaignError, match=r"trial_id: got 99; expected a trial id from 0 to 8"):
        campaign.explain(99)


def test_plot_draws_the_recorded_profiles(campaign):
    import matplotlib

    matplotlib.use("Agg")
    t = campaign.trials[N_INITIAL]
    fig = campaign.plot.explain(t.id)
    profiles = campaign.explain(t.id)["profiles"]
    lines = [ln for ax in fig.axes for ln in ax.get_lines()
             if (ln.get_gid() or "").startswith("explain:")]
    assert len(lines) == len(profiles)
    for ln, prof in zip(lines, profiles):
        np.testing.assert_array_equal(ln.get_ydata(), prof["acquisition"])
    with pytest.raises(ValueError, match="no recorded acquisition profile"):
        campaign.plot.explain(0)


def test_cli_prints_the_explanation_and_a_schema_valid_document(store, campaign):
    runner = CliRunner()
    t = campaign.trials[N_INITIAL]
    res = runner.invoke(app, ["explain", str(store), str(t.id)])
    assert res.exit_code == 0, res.output
    text = re.sub(r"\s+", " ", res.output)
    assert f"Trial {t.id} was proposed by {t.strategy}" in text and "chosen" in text
    res = runner.invoke(app, ["explain", str(store), str(t.id), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(output_schema("explain")).validate(doc)
    facts = campaign.explain(t.id)
    assert doc["text"] == facts["text"] and doc["alternatives"] == facts["alternatives"]
    assert doc["prediction"] == facts["prediction"]
    res = runner.invoke(app, ["explain", str(store), "99"])
    assert res.exit_code == 2 and "trial_id: got 99" in res.output


class _Quadratic(eqx.Module):
    """-||x - centre||^2: a known maximiser."""

    centre: jax.Array

    def __call__(self, X):
        return -jnp.sum((X - self.centre) ** 2, axis=-1)


@pytest.mark.parametrize("domain", [
    Domain(2),                                                     # the box's own path
    Domain(3, equalities=((np.ones(3), 1.0),)),                    # the general path
    Domain(4, equalities=((np.ones(4), 1.0),),                     # over supports
           cardinality=(Cardinality((0, 1, 2, 3), 1, 2),)),
], ids=["box", "simplex", "cardinality"])
def test_top_candidates_start_with_the_maximiser_and_are_distinct_and_sorted(domain):
    centre = jnp.asarray(np.linspace(0.5, 0.1, domain.dim))
    settings = {"raw_samples": 64, "num_restarts": 4, "steps": 40}
    x, v = maximize_acquisition(_Quadratic(centre), domain, jax.random.key(1), **settings)
    X, V = maximize_acquisition_top(_Quadratic(centre), domain, jax.random.key(1), k=5,
                                    **settings)
    np.testing.assert_array_equal(X[0], np.asarray(x))
    assert V[0] == float(v) and 1 <= len(V) <= 5 and len(X) == len(V)
    assert list(V[1:]) == sorted(V[1:], reverse=True) and np.all(V[1:] <= V[0])
    assert len({tuple(np.round(r, 6)) for r in X}) == len(X)
    assert domain.feasible(X).all()
    np.testing.assert_allclose(np.asarray(_Quadratic(centre)(jnp.asarray(X))), V, atol=1e-9)
    with pytest.raises(ValueError, match="k: got 0"):
        maximize_acquisition_top(_Quadratic(centre), domain, jax.random.key(1), k=0, **settings)


def _chebyshev(X) -> np.ndarray:
    """Pairwise max-column distances of the rows of X, the diagonal set to infinity."""
    X = np.asarray(X, np.float64)
    D = np.abs(X[:, None] - X[None]).max(axis=-1)
    np.fill_diagonal(D, np.inf)
    return D


def test_runners_up_are_distinct_where_every_climb_reaches_the_one_optimum():
    # One smooth optimum inside the box: every climb ends on it (to ~1e-6), so the
    # runners-up must come from the other candidates, each apart from the rest.
    centre = jnp.asarray([0.6, 0.2])
    X, V = maximize_acquisition_top(_Quadratic(centre), Domain(2), jax.random.key(0), k=5,
                                    raw_samples=64, num_restarts=8, steps=200)
    np.testing.assert_allclose(X[0], centre, atol=1e-4)
    assert len(X) == 5  # enough distinct candidates exist: the full count comes back
    assert _chebyshev(X).min() > DISTINCT_TOLERANCE
    assert list(V[1:]) == sorted(V[1:], reverse=True) and np.all(V[1:] < V[0])


def test_a_campaigns_recorded_alternatives_are_distinct_points():
    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 10.0), wb.Continuous("x2", -1.0, 1.0)])
    c = wb.Campaign("smooth", space, [wb.Objective("y", "maximize")], seed=0, tracking=None,
                    initial_design={"n": 5})
    for _ in range(8):
        for t in c.ask(1):
            c.tell(t.id, {"y": -((t.params["x1"] - 6.0) / 10) ** 2 - (t.params["x2"] - 0.2) ** 2})
    for t in c.trials[5:]:
        alts = c.explain(t.id)["alternatives"]
        assert alts[0]["params"] == t.proposed and len(alts) >= 2
        assert _chebyshev(c.space.encode([a["params"] for a in alts])).min() \
            > DISTINCT_TOLERANCE


def test_a_pool_proposal_records_the_best_scoring_rows(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(40, 2))
    pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1]}).to_csv(tmp_path / "pool.csv", index=False)
    c = wb.Campaign.from_dict({
        "name": "pool", "space": [{"name": "x1", "type": "continuous", "low": 0, "high": 1},
                                  {"name": "x2", "type": "continuous", "low": 0, "high": 1}],
        "objectives": [{"name": "y", "direction": "maximize"}], "seed": 0,
        "candidates": {"csv": str(tmp_path / "pool.csv")}, "tracking": None,
        "store": str(tmp_path / "pool.zarr"), "initial_design": {"n": 4}})
    for t in c.ask(4):
        c.tell(t.id, {"y": -(t.params["x1"] - 0.3) ** 2 - (t.params["x2"] - 0.6) ** 2})
    (t,) = c.ask(1)
    facts = c.explain(t.id)
    values = [a["acquisition_value"] for a in facts["alternatives"]]
    assert len(values) == 5 and values == sorted(values, reverse=True)
    assert facts["alternatives"][0]["params"] == t.proposed
    assert values[0] == t.acquisition_value and facts["profiles"] == []
