"""Real setpoints: proposals a lab can set (a parameter's precision), and tells of the
conditions actually run."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import workbench as wb


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
