"""campaign.importance() and campaign.predict() / ``workbench predict``: against the
model's own posterior, closed-form values on known data, and what the data hold."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app
from workbench.errors import CampaignError
from workbench.plots import campaign_model

LIGAND_BONUS = {"XPhos": 4.0, "SPhos": 0.0, "RuPhos": 2.0}


def _space():
    return wb.SearchSpace([
        wb.Continuous("temperature", 30.0, 110.0, unit="degC"),
        wb.Integer("cycles", 1, 10),
        wb.Categorical("ligand", list(LIGAND_BONUS)),
    ])


def _yield(p):
    """Depends on temperature and ligand only: cycles should not matter."""
    return 0.1 * p["temperature"] + LIGAND_BONUS[p["ligand"]]


def _campaign(n=10, **kw):
    kw.setdefault("tracking", None)
    c = wb.Campaign("insight", _space(), [wb.Objective("yield", "maximize")], seed=0,
                    initial_design={"n": n}, **kw)
    for t in c.ask(n):
        c.tell(t.id, {"yield": _yield(t.params)})
    return c


@pytest.fixture(scope="module")
def campaign():
    return _campaign()


def test_predict_equals_the_models_posterior(campaign, tmp_path):
    rows = [{"temperature": 40.0, "cycles": 3, "ligand": "XPhos"},
            {"temperature": 95.5, "cycles": 10, "ligand": "RuPhos"}]
    frame = campaign.predict(rows)
    mean, std = campaign_model(campaign).predict(rows)
    assert list(frame.columns) == ["temperature", "cycles", "ligand", "yield_mean", "yield_std"]
    np.testing.assert_allclose(frame["yield_mean"], mean[:, 0], rtol=1e-9)
    np.testing.assert_allclose(frame["yield_std"], std[:, 0], rtol=1e-9)
    # A DataFrame and a CSV file with units in its header give the same.
    pd.testing.assert_frame_equal(campaign.predict(pd.DataFrame(rows)), frame)
    path = tmp_path / "points.csv"
    pd.DataFrame(rows).rename(columns={"temperature": "temperature [degC]"}).to_csv(
        path, index=False)
    pd.testing.assert_frame_equal(campaign.predict(path), frame)


@pytest.mark.parametrize("table, message", [
    ([{"temperature": 200.0, "cycles": 3, "ligand": "XPhos"}],
     r"points row 0: parameter 'temperature': got 200.0; expected a value in \[30.0, 110.0\]"),
    ([{"temperature": 50.0, "cycles": 3, "ligand": "XPhos"},
      {"temperature": 50.0, "cycles": 3, "ligand": "BrettPhos"}],
     r"points row 1: parameter 'ligand': got 'BrettPhos'; expected one of"),
    ([{"temperature": 50.0, "ligand": "XPhos"}], r"missing column\(s\) \['cycles'\]"),
    ([], "no rows"),
    (42, "expected a DataFrame, a list of parameter dicts or a CSV path"),
])
def test_predict_names_the_bad_value(campaign, table, message):
    with pytest.raises(CampaignError, match=message):
        campaign.predict(table)


def test_predict_csv_error_names_its_line(campaign, tmp_path):
    path = tmp_path / "points.csv"
    path.write_text("temperature,cycles,ligand\n50,3,XPhos\n50,2.5,XPhos\n")
    with pytest.raises(CampaignError, match=r"points.csv line 3: parameter 'cycles': got 2.5"):
        campaign.predict(path)


def test_predict_on_known_data_and_p_feasible():
    """Noise-free 1-D data: the mean interpolates the observations with a small std; far
    from data the std grows; P(feasible) is Phi((mu - bound) / sd) of the constrained
    objective, as the constrained acquisitions weight it."""
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("known", space, [wb.Objective("y", "maximize")], tracking=None, seed=0,
                    outcome_constraints=["y >= 0.2"], initial_design={"n": 6},
                    surrogate={"type": "gp", "noise": 1e-6})
    for t in c.ask(6):
        c.tell(t.id, {"y": math.sin(6 * t.params["x"])})
    done = [t for t in c.trials]
    frame = c.predict([t.params for t in done])
    np.testing.assert_allclose(frame["y_mean"], [t.outcomes["y"] for t in done], atol=1e-3)
    assert (frame["y_std"] < 0.01).all()
    expected = norm.cdf((frame["y_mean"] - 0.2) / frame["y_std"])
    np.testing.assert_allclose(frame["p_feasible"], expected, rtol=1e-6, atol=1e-12)


def test_importance_finds_what_matters(campaign):
    ds = campaign.importance(n=128, samples=8, seed=1)
    assert ds["total"].dims == ("output", "parameter")
    assert list(ds["parameter"].values) == ["temperature", "cycles", "ligand"]
    assert list(ds["output"].values) == ["yield"]
    total = ds["total"].sel(output="yield")
    assert float(total.sel(parameter="cycles")) < 0.05
    assert float(total.sel(parameter="temperature")) > 0.3
    assert float(total.sel(parameter="ligand")) > 0.1
    # additive truth: first-order = total (up to the first-order estimator's larger
    # Monte-Carlo error at this small n), and the shares sum to about one
    np.testing.assert_allclose(ds["first_order"], ds["total"], atol=0.15)
    assert abs(float(total.sum()) - 1.0) < 0.1
    assert np.all(np.isfinite(ds["total_std"])) and np.all(ds["total_std"] >= 0)
    assert ds.attrs["n"] == 128 and ds.attrs["samples"] == 8
    # the same seed gives the same indices
    again = campaign.importance(n=128, samples=8, seed=1)
    np.testing.assert_array_equal(again["total"], ds["total"])


@pytest.mark.parametrize("kw, message", [({"n": 4}, "n: got 4"),
                                         ({"samples": -1}, "samples: got -1")])
def test_importance_refuses_bad_arguments(campaign, kw, message):
    with pytest.raises(CampaignError, match=message):
        campaign.importance(**kw)


def test_importance_before_a_model_says_why():
    c = wb.Campaign("empty", _space(), [wb.Objective("yield", "maximize")], tracking=None)
    with pytest.raises(CampaignError, match="expected at least 2 to fit a model"):
        c.importance()


def test_importance_two_objectives_constraint_composition_logged_to_mlflow(tmp_path):
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 110.0),
                            wb.Composition("alloy", ["Cu", "Ni", "Pd"])])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = wb.Campaign("alloys", space, [wb.Objective("hardness", "maximize"),
                                      wb.Objective("cost", "minimize")],
                    outcome_constraints=["impurity <= 0.5"], tracking=uri, seed=0,
                    initial_design={"n": 10})
    for t in c.ask(10):
        p = t.params
        c.tell(t.id, {"hardness": 0.05 * p["temperature"], "cost": 3 * p["alloy"]["Pd"],
                      "impurity": p["alloy"]["Cu"]})
    ds = c.importance(n=64, samples=4)
    assert list(ds["output"].values) == ["hardness", "cost", "p_feasible"]
    assert list(ds["parameter"].values) == ["temperature", "alloy.Cu", "alloy.Ni", "alloy.Pd"]
    total = ds["total"].to_pandas()
    assert total.loc["hardness"].idxmax() == "temperature"
    assert total.loc["p_feasible"].idxmax() == "alloy.Cu"
    assert np.isnan(ds["total_std"].sel(output="p_feasible")).all()
    import mlflow

    run = mlflow.MlflowClient(uri).get_run(c.run_id)
    logged = run.data.metrics
    assert logged["importance.total.cost.alloy.Pd"] == pytest.approx(
        float(ds["total"].sel(output="cost", parameter="alloy.Pd")))
    assert "importance.first_order.p_feasible.alloy.Cu" in logged


def test_cli_predict_writes_and_prints(tmp_path):
    store = tmp_path / "c.zarr"
    c = _campaign(n=6, store=store)
    points = tmp_path / "points.csv"
    rows = [{"temperature": 60.0, "cycles": 2, "ligand": "SPhos"}]
    pd.DataFrame(rows).to_csv(points, index=False)
    out = tmp_path / "pred.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["predict", str(store), str(points), "-o", str(out)])
    assert res.exit_code == 0, res.output
    expected = c.predict(rows)
    got = pd.read_csv(out)
    np.testing.assert_allclose(got["yield_mean"], expected["yield_mean"], rtol=1e-9)
    res = runner.invoke(app, ["predict", str(store), str(points), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "workbench.predict/1" and doc["written"] is None
    assert doc["points"][0]["yield_std"] == pytest.approx(expected["yield_std"][0])
    bad = tmp_path / "bad.csv"
    bad.write_text("temperature,cycles,ligand\n500,2,SPhos\n")
    res = runner.invoke(app, ["predict", str(store), str(bad), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert "bad.csv line 2: parameter 'temperature': got 500.0" in res.stderr
    assert not (tmp_path / "x.csv").exists()


def test_importance_plot_draws_the_indices(campaign):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = campaign.importance(n=64, samples=4)
    ax = campaign.plot.importance(importance=ds)
    total = [c for c in ax.containers if c.get_label() == "total"][0]
    widths = [patch.get_width() for patch in total.patches]
    np.testing.assert_allclose(widths, ds["total"].sel(output="yield").values)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["temperature", "cycles", "ligand"]
    with pytest.raises(ValueError, match="expected one of \\['yield'\\]"):
        campaign.plot.importance("cost", importance=ds)
    plt.close("all")
