"""Real setpoints: proposals a lab can set (a parameter's precision), and tells of the
conditions actually run.

A reported value within half a parameter's precision of the proposal is the proposal; any
other valid value is recorded as the actual setpoint when the user says so (``--actual``,
``tell(..., actual=...)``), with the proposal kept beside it, durably, and the model learns
from what was run. Results files carry the campaign's identity, so that another campaign's
file is never recorded.
"""

from __future__ import annotations

import csv
import math
import textwrap
from pathlib import Path

import pytest
import xarray as xr
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app


def test_a_value_goes_to_the_nearest_multiple_of_the_precision_inside_the_bounds():
    p = wb.Continuous("temperature", 30.0, 110.0, unit="degC", precision=0.5)
    assert p.settable(92.03414812684059) == 92.0
    assert p.settable(92.26) == 92.5
    assert p.settable(92.26, -1) == 92.0 and p.settable(92.01, 1) == 92.5
    q = wb.Continuous("x", 0.0, 1.0, precision=0.1)
    assert q.settable(0.30000000000000004) == 0.3 and repr(q.settable(0.7)) == "0.7"
    assert wb.Continuous("y", 0.05, 0.95, precision=0.1).settable(0.01) == 0.05  # bounds hold
    assert wb.Continuous("z", 0.0, 1.0).settable(0.123456) == 0.123456  # no precision


def test_a_precision_larger_than_the_range_is_refused():
    with pytest.raises(ValueError, match="precision"):
        wb.Continuous("x", 0.0, 1.0, precision=2.0)


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20))
def test_rounded_proposals_are_on_the_grid_and_keep_the_constraints(points):
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0, precision=0.1),
                            wb.Continuous("b", 0.0, 1.0, precision=0.25)],
                           constraints=["a + b <= 0.99", "a - b >= -0.5"])
    rows = [{"a": a, "b": b} for a, b in points]
    for row, out in zip(rows, space.settable(rows)):
        if not space.feasible([row])[0]:
            continue
        assert space.feasible([out])[0], (row, out)
        on_grid = all(math.isclose(out[n] / s, round(out[n] / s), abs_tol=1e-9)
                      for n, s in (("a", 0.1), ("b", 0.25)))
        assert on_grid or out == row, (row, out)  # exact values only when no rounding fits
        if on_grid:
            assert abs(out["a"] - row["a"]) <= 0.1 and abs(out["b"] - row["b"]) <= 0.25


def test_a_campaign_proposes_settable_values_inside_the_constraints():
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 110.0, precision=0.5),
                            wb.Continuous("loading", 0.5, 2.5, precision=0.05)],
                           constraints=["temperature + 20 * loading <= 150"])
    c = wb.Campaign("setp", space, [wb.Objective("y", "maximize")], tracking=None,
                    initial_design={"n": 4})
    for _ in range(3):
        for t in c.ask(2):
            p = t.params
            assert math.isclose(p["temperature"] * 2, round(p["temperature"] * 2))
            assert math.isclose(p["loading"] * 20, round(p["loading"] * 20), abs_tol=1e-9)
            assert p["temperature"] + 20 * p["loading"] <= 150 + 1e-9
            c.tell(t.id, {"y": -(p["temperature"] - 70) ** 2 - (p["loading"] - 1) ** 2})


def test_from_yaml_takes_a_shipped_experiment_name_as_the_cli_does(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no experiments/ folder here: the shipped copy is found
    c = wb.Campaign.from_yaml("quickstart")
    assert c.name == "quickstart" and c.space.names == ["x1", "x2"]
    with pytest.raises(wb.WorkbenchError, match="no_such_experiment"):
        wb.Campaign.from_yaml("no_such_experiment")


# -- actual setpoints in Python ---------------------------------------------------------


def _lab(store=None) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 110.0, unit="degC", precision=0.5),
                            wb.Integer("cycles", 1, 10),
                            wb.Categorical("solvent", ["water", "ethanol"])])
    return wb.Campaign("lab", space, [wb.Objective("y", "maximize")], store=store,
                       tracking=None, initial_design={"n": 4}, seed=1)


def _elsewhere(value: float, low: float = 30.0, high: float = 110.0, by: float = 7.0) -> float:
    """A value ``by`` away from ``value``, inside [low, high]."""
    return value + by if value + by <= high else value - by


def test_a_value_within_half_the_precision_is_the_proposal(tmp_path):
    c = _lab(tmp_path / "s.zarr")
    t = c.ask(1)[0]
    near = t.params["temperature"] + 0.25  # precision 0.5: half a step
    told = c.tell(t.id, 1.0, actual={"temperature": near, "solvent": t.params["solvent"]})
    assert told.params == t.params and told.proposed == t.params
    assert "proposed_temperature" not in wb.Campaign.open(tmp_path / "s.zarr").data


def test_actual_setpoints_are_recorded_beside_the_proposal_and_survive_reopening(tmp_path):
    store = tmp_path / "s.zarr"
    c = _lab(store)
    trials = c.ask(3)
    first = trials[0].params
    run_at = {"temperature": _elsewhere(first["temperature"]),
              "cycles": 1 if first["cycles"] != 1 else 2,
              "solvent": "water" if first["solvent"] == "ethanol" else "ethanol"}
    told = c.tell(trials[0].id, {"y": 3.0}, actual=run_at)
    assert told.params == run_at and told.proposed == first
    assert "proposed=" in repr(told)
    c.tell(trials[1].id, {"y": 1.0})
    same = c.tell(trials[0].id, {"y": 3.0}, actual=run_at)  # told again: harmless
    assert same.params == run_at
    with pytest.raises(wb.CampaignError, match="was already told"):
        c.tell(trials[0].id, {"y": 3.0}, actual={"cycles": 10 if run_at["cycles"] != 10 else 9})

    # The model learns from what was run: training X is the actual values, encoded.
    completed = [t for t in c.trials if t.status == "completed"]
    X, _ = c.training_data(completed)
    assert X.tolist() == c.space.encode([run_at, trials[1].params]).tolist()
    assert X.tolist() != c.space.encode([first, trials[1].params]).tolist()

    # Durable: replayed from the journal, then from the compacted snapshot.
    for step in ("journal", "snapshot"):
        again = wb.Campaign.open(store)
        assert again.trials == c.trials, step
        assert again.trials[0].params == run_at and again.trials[0].proposed == first, step
        assert again.trials[1].proposed == again.trials[1].params, step
        again.compact()
    ds = xr.open_zarr(store, consolidated=False)
    assert float(ds["temperature"][0]) == run_at["temperature"]
    assert float(ds["proposed_temperature"][0]) == first["temperature"]
    assert str(ds["proposed_solvent"].values[0]) == first["solvent"]
    assert int(ds["proposed_cycles"][1]) == trials[1].params["cycles"]
    frame = c.to_frame()
    assert frame.loc[0, "temperature"] == run_at["temperature"]
    assert frame.loc[0, "proposed_temperature"] == first["temperature"]
    assert frame.loc[1, "proposed_temperature"] == trials[1].params["temperature"]


@pytest.mark.parametrize("actual, message", [
    ({"temperature": 130.0}, "actual: parameter 'temperature': got 130.0; expected a value"
                             " in [30.0, 110.0]"),
    ({"temperature": "hot"}, "actual: parameter 'temperature': got 'hot'; expected a number"),
    ({"cycles": 2.5}, "actual: parameter 'cycles': got 2.5; expected an integer"),
    ({"solvent": "acetone"}, "actual: parameter 'solvent': got 'acetone'; expected one of"
                             " ['water', 'ethanol']"),
    ({"pressure": 2.0}, "actual: unknown parameter(s) ['pressure']; expected names among"),
    ([92.0], "actual: got list [92.0]; expected a dict of parameter values by name"),
])
def test_invalid_actual_setpoints_are_refused_and_nothing_is_recorded(tmp_path, actual, message):
    c = _lab(tmp_path / "s.zarr")
    t = c.ask(1)[0]
    with pytest.raises(wb.CampaignError) as info:
        c.tell(t.id, 1.0, actual=actual)
    assert message in str(info.value)
    assert wb.Campaign.open(tmp_path / "s.zarr").trials[0].status == "pending"


def test_a_failed_trial_keeps_its_actual_setpoints():
    c = _lab()
    t = c.ask(1)[0]
    hot = _elsewhere(t.params["temperature"])
    failed = c.tell_failed(t.id, "reactor clogged", actual={"temperature": hot})
    assert failed.status == "failed" and failed.params["temperature"] == hot
    assert failed.proposed == t.params


def test_a_composition_setpoint_round_trips_through_the_record(tmp_path):
    space = wb.SearchSpace([wb.Composition("alloy", ["Cu", "Ni", "Pd"], resolution=0.05)])
    c = wb.Campaign("alloys", space, [wb.Objective("y", "maximize")],
                    store=tmp_path / "s.zarr", tracking=None, initial_design={"n": 4})
    t = c.ask(1)[0]
    run_at = {"Cu": 0.5, "Ni": 0.5, "Pd": 0.0}
    assert c.tell(t.id, 1.0, actual={"alloy": run_at}).params["alloy"] == run_at
    c.compact()
    again = wb.Campaign.open(tmp_path / "s.zarr")
    assert again.trials[0].params["alloy"] == run_at
    assert again.trials[0].proposed["alloy"] == pytest.approx(t.params["alloy"])
    assert again.data["proposed_alloy"].dims == ("trial", "alloy_element")


def test_parameter_names_that_clash_with_the_record_are_refused():
    with pytest.raises(wb.CampaignError, match="proposed_x"):
        wb.SearchSpace([wb.Continuous("x", 0, 1), wb.Continuous("proposed_x", 0, 1)])
    with pytest.raises(ValueError, match="reserved"):
        wb.Continuous("campaign_id", 0, 1)


# -- through the command line -------------------------------------------------------------

SPEC = textwrap.dedent("""\
    name: setpoints_cli
    partner: tests
    space:
      - {name: temperature, type: continuous, low: 30.0, high: 110.0, unit: degC, precision: 0.5}
      - {name: solvent, type: categorical, choices: [water, ethanol]}
    objectives:
      - {name: y, direction: maximize}
    initial_design: {type: sobol, n: 4}
    store: record.zarr
    tracking: null
    """)


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _proposals(tmp_path: Path, monkeypatch, spec: str = SPEC, n: int = 2):
    """``workbench ask -n N -o p.csv`` in tmp_path: (header, rows)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec)
    result = _cli("ask", "spec.yaml", "-n", str(n), "-o", "p.csv")
    assert result.exit_code == 0, result.output
    with open(tmp_path / "p.csv", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def _write(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _one_line(result) -> str:
    return " ".join(result.stderr.split())  # rich wraps long lines


def test_cli_takes_a_value_within_half_the_precision_as_the_proposal(tmp_path, monkeypatch):
    header, rows = _proposals(tmp_path, monkeypatch)
    assert header == ["trial_id", "temperature [degC]", "solvent", "y", "campaign",
                      "campaign_id"]
    proposed = [float(r["temperature [degC]"]) for r in rows]
    for r, y in zip(rows, ("1.5", "2.5")):
        r["temperature [degC]"] = repr(float(r["temperature [degC]"]) + 0.2)
        r["y"] = y
    _write(tmp_path / "r.csv", header, rows)
    result = _cli("tell", "spec.yaml", "r.csv")
    assert result.exit_code == 0, result.output
    trials = wb.Campaign.open(tmp_path / "record.zarr", tracking=None).trials
    assert [t.params["temperature"] for t in trials] == proposed
    assert all(t.proposed == t.params for t in trials)


def test_cli_records_a_differing_setpoint_only_with_actual(tmp_path, monkeypatch):
    header, rows = _proposals(tmp_path, monkeypatch)
    store = tmp_path / "record.zarr"
    proposed = float(rows[0]["temperature [degC]"])
    ran = _elsewhere(proposed)
    rows[0]["temperature [degC]"], rows[0]["y"], rows[1]["y"] = str(ran), "1.5", "2.5"
    _write(tmp_path / "r.csv", header, rows)
    before = _snapshot(store)

    refused = _cli("tell", "spec.yaml", "r.csv")
    assert refused.exit_code == 2, refused.output
    assert (f"r.csv:2: temperature: got {ran}, but trial proposed {proposed}; expected the"
            f" proposed value (within 0.25, half its precision), or tell with --actual"
            ) in _one_line(refused)
    assert _snapshot(store) == before

    told = _cli("tell", "spec.yaml", "r.csv", "--actual")
    assert told.exit_code == 0, told.output
    assert (f"trial 0: recorded as run at temperature = {ran:g} (proposed {proposed:g})"
            in told.stdout)
    assert "recorded 2 result(s) and 0 failure(s)" in told.stdout
    c = wb.Campaign.open(store, tracking=None)
    assert c.trials[0].params["temperature"] == ran
    assert c.trials[0].proposed["temperature"] == proposed
    assert c.trials[1].params == c.trials[1].proposed
    X, _ = c.training_data(c.trials)
    assert X[0].tolist() == c.space.encode([c.trials[0].params])[0].tolist()

    # The same file again (with or without --actual) is harmless: it matches the record.
    after = _snapshot(store)
    assert _cli("tell", "spec.yaml", "r.csv").exit_code == 0
    assert _cli("tell", "spec.yaml", "r.csv", "--actual").exit_code == 0
    assert _snapshot(store) == after

    # The export shows both: the value run, and what was proposed.
    assert _cli("export", str(store), "-o", "all.csv").exit_code == 0
    with open(tmp_path / "all.csv", newline="") as f:
        exported = list(csv.DictReader(f))
    assert float(exported[0]["temperature"]) == ran
    assert float(exported[0]["proposed_temperature"]) == proposed
    assert exported[1]["proposed_temperature"] == exported[1]["temperature"]


@pytest.mark.parametrize("column, value, message", [
    ("temperature [degC]", "130", "r.csv:2: actual setpoint refused: parameter 'temperature':"
                                  " got 130.0; expected a value in [30.0, 110.0]"),
    ("temperature [degC]", "warm", "r.csv:2: temperature: got 'warm'; expected a number"),
    ("solvent", "acetone", "r.csv:2: actual setpoint refused: parameter 'solvent': got"
                           " 'acetone'; expected one of ['water', 'ethanol']"),
])
def test_cli_refuses_invalid_actual_setpoints(tmp_path, monkeypatch, column, value, message):
    header, rows = _proposals(tmp_path, monkeypatch, n=1)
    rows[0][column], rows[0]["y"] = value, "1.5"
    _write(tmp_path / "r.csv", header, rows)
    before = _snapshot(tmp_path / "record.zarr")
    result = _cli("tell", "spec.yaml", "r.csv", "--actual")
    assert result.exit_code == 2, result.output
    assert message in _one_line(result)
    assert _snapshot(tmp_path / "record.zarr") == before


def test_cli_refuses_another_campaigns_file(tmp_path, monkeypatch):
    """Two campaigns of the same spec in two stores: the file of one is refused by the
    other, naming the line, the column, what it found and what it expected."""
    header, rows = _proposals(tmp_path, monkeypatch, n=1)
    theirs = tmp_path / "other"
    theirs.mkdir()
    other_header, other_rows = _proposals(theirs, monkeypatch, n=1)
    monkeypatch.chdir(tmp_path)
    mine = wb.Campaign.open(tmp_path / "record.zarr", tracking=None).campaign_id
    assert other_rows[0]["campaign_id"] != mine
    other_rows[0]["y"] = "1.5"
    before = _snapshot(tmp_path / "record.zarr")
    for name, drop in (("theirs.csv", ()), ("no_params.csv", ("temperature [degC]", "solvent"))):
        keep = [h for h in other_header if h not in drop]
        _write(tmp_path / name, keep, [{h: other_rows[0][h] for h in keep}])
        result = _cli("tell", "spec.yaml", name, "--actual")
        assert result.exit_code == 2, result.output
        assert (f"{name}:2: campaign_id: got {other_rows[0]['campaign_id']!r}; expected"
                f" {mine!r} (campaign 'setpoints_cli' of ") in _one_line(result)
        assert _snapshot(tmp_path / "record.zarr") == before
    renamed = {**rows[0], "y": "1.5", "campaign": "another"}
    _write(tmp_path / "renamed.csv", header, [renamed])
    result = _cli("tell", "spec.yaml", "renamed.csv")
    assert result.exit_code == 2
    assert "renamed.csv:2: campaign: got 'another'; expected 'setpoints_cli'" in _one_line(result)
    assert _snapshot(tmp_path / "record.zarr") == before


def test_cli_refuses_a_file_with_neither_identity_nor_parameters(tmp_path, monkeypatch):
    header, rows = _proposals(tmp_path, monkeypatch, n=1)
    before = _snapshot(tmp_path / "record.zarr")
    (tmp_path / "bare.csv").write_text(f"trial_id,y\n{rows[0]['trial_id']},1.5\n")
    result = _cli("tell", "spec.yaml", "bare.csv")
    assert result.exit_code == 2, result.output
    assert ("bare.csv:1: header ['trial_id', 'y'] names no campaign and no parameters;"
            " expected the campaign_id column that `workbench ask -o` writes") \
        in _one_line(result)
    assert _snapshot(tmp_path / "record.zarr") == before
    # With its identity (and no parameters) the same row is recorded.
    (tmp_path / "named.csv").write_text(
        f"trial_id,y,campaign_id\n{rows[0]['trial_id']},1.5,{rows[0]['campaign_id']}\n")
    assert _cli("tell", "spec.yaml", "named.csv").exit_code == 0
    assert wb.Campaign.open(tmp_path / "record.zarr").trials[0].outcomes == {"y": 1.5}
