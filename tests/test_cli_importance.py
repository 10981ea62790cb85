"""``workbench importance``: the campaign's Sobol indices through the real command, on
a campaign whose truth is known (the outcome depends on x1 alone), equal to
``Campaign.importance`` with the same settings; bad options and too few trials are
refused with the field, the value and what was expected, and nothing is written."""

from __future__ import annotations

import inspect
import json
import re

import jsonschema
import numpy as np
import pytest
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app
from workbench.cli_importance import DEFAULT_BASE_ROWS, DEFAULT_SAMPLES
from workbench.cli_json import output_schema

N_INITIAL = 10
# Small settings: a few hundred model evaluations per call.
SETTINGS = ["--n", "64", "--samples", "4", "--seed", "2"]
PARAMETERS = ["x1", "x2", "cycles"]


def _y(p: dict) -> float:
    """Depends on x1 only: x1's total index is about one, the others' about zero."""
    return 10.0 * (p["x1"] - 0.3) ** 2


def _campaign(path, n: int) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0),
                            wb.Integer("cycles", 1, 5)])
    c = wb.Campaign("only-x1", space, [wb.Objective("y", "maximize")], seed=0,
                    tracking=None, store=str(path), initial_design={"n": N_INITIAL})
    for t in c.ask(n):
        c.tell(t.id, {"y": _y(t.params)})
    return c


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("importance") / "only-x1.zarr"
    _campaign(path, N_INITIAL)
    return path


def _journal(store) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file())


def test_json_equals_the_python_call_and_finds_the_one_parameter_that_matters(store):
    before = _journal(store)
    res = CliRunner().invoke(app, ["importance", str(store), *SETTINGS, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    jsonschema.Draft202012Validator(output_schema("importance")).validate(doc)
    assert (doc["name"], doc["n"], doc["samples"], doc["seed"]) == ("only-x1", 64, 4, 2)
    assert doc["n_train"] == N_INITIAL and [o["output"] for o in doc["outputs"]] == ["y"]
    rows = doc["outputs"][0]["parameters"]
    assert [r["parameter"] for r in rows] == PARAMETERS
    want = wb.Campaign.open(store, tracking=None).importance(n=64, samples=4, seed=2)
    for kind in ("total", "first_order", "total_std", "first_order_std"):
        np.testing.assert_array_equal([r[kind] for r in rows], want[kind].sel(output="y"))
    assert doc["outputs"][0]["variance"] == float(want["variance"].sel(output="y"))
    total = {r["parameter"]: r["total"] for r in rows}
    assert total["x1"] > 0.9 and total["x2"] < 0.05 and total["cycles"] < 0.05
    assert _journal(store) == before  # nothing recorded


def test_the_table_ranks_parameters_by_total_with_their_spread(store):
    res = CliRunner().invoke(app, ["importance", str(store), *SETTINGS])
    assert res.exit_code == 0, res.output
    assert "campaign 'only-x1': what drives y (model on 10 trials)" in res.output
    assert all(len(line) <= 80 for line in res.output.splitlines())
    want = wb.Campaign.open(store, tracking=None).importance(n=64, samples=4, seed=2)
    ranked = [str(p) for p in want["total"].sel(output="y").sortby(
        want["total"].sel(output="y"), ascending=False)["parameter"].values]
    shown = [m[1] for m in re.finditer(r"^│ (\w+)\s+│", res.output, re.MULTILINE)]
    assert shown == ranked and shown[0] == "x1"
    x1 = want.sel(output="y", parameter="x1")
    assert f"{float(x1['total']):.3f} ± {float(x1['total_std']):.3f}" in res.output
    assert "n = 64, seed 2" in res.output


@pytest.mark.parametrize("args, message", [
    (["--n", "4"], "--n: got 4; expected an integer >= 16"),
    (["--samples", "-1"], "--samples: got -1; expected an integer >= 0"),
    (["--seed", "-3"], "--seed: got -3; expected an integer >= 0"),
])
def test_bad_options_name_the_option_the_value_and_what_was_expected(store, args, message):
    before = _journal(store)
    res = CliRunner().invoke(app, ["importance", str(store), *args])
    assert res.exit_code == 2 and message in res.stderr
    res = CliRunner().invoke(app, ["importance", str(store), *args, "--json"])
    doc = json.loads(res.stdout)
    assert res.exit_code == 2 and doc["field"] == args[0] and doc["error"] == message
    assert _journal(store) == before


def test_a_campaign_with_fewer_than_two_results_is_refused(tmp_path):
    store = tmp_path / "one.zarr"
    _campaign(store, 1)
    res = CliRunner().invoke(app, ["importance", str(store)])
    assert res.exit_code == 2
    assert "has 1 completed trials; expected at least 2 to fit a model" in res.stderr
    res = CliRunner().invoke(app, ["importance", str(tmp_path / "none.zarr")])
    assert res.exit_code == 2 and "no campaign store" in res.stderr


def test_the_defaults_are_the_python_calls():
    defaults = inspect.signature(wb.Campaign.importance).parameters
    assert defaults["n"].default == DEFAULT_BASE_ROWS
    assert defaults["samples"].default == DEFAULT_SAMPLES
