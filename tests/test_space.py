"""Search spaces: encode then decode is the identity; bad definitions fail clearly."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import workbench as wb
from workbench.errors import CampaignError


@st.composite
def spaces_and_rows(draw):
    params = []
    for i in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["continuous", "log", "integer", "categorical"]))
        name = f"p{i}"
        if kind in ("continuous", "log"):
            lo = draw(st.floats(1e-3 if kind == "log" else -1e3, 1e3, allow_nan=False))
            width = draw(st.floats(1e-2, 1e3))
            params.append(wb.Continuous(name, lo, lo + width, log=kind == "log"))
        elif kind == "integer":
            lo = draw(st.integers(-50, 50))
            params.append(wb.Integer(name, lo, lo + draw(st.integers(1, 30))))
        else:
            k = draw(st.integers(2, 6))
            params.append(wb.Categorical(name, [f"c{j}" for j in range(k)]))
    space = wb.SearchSpace(params)
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        row = {}
        for p in params:
            if isinstance(p, wb.Continuous):
                row[p.name] = draw(st.floats(p.low, p.high))
            elif isinstance(p, wb.Integer):
                row[p.name] = draw(st.integers(p.low, p.high))
            else:
                row[p.name] = draw(st.sampled_from(p.choices))
        rows.append(row)
    return space, rows


@settings(max_examples=150, deadline=None)
@given(spaces_and_rows())
def test_encode_decode_is_the_identity(case):
    space, rows = case
    Z = space.encode(rows)
    assert Z.shape == (len(rows), space.dim)
    assert np.all(Z >= -1e-12) and np.all(Z <= 1 + 1e-12)
    back = space.decode(Z)
    for row, got in zip(rows, back):
        for p in space.parameters:
            if isinstance(p, wb.Continuous):
                assert math.isclose(got[p.name], row[p.name], rel_tol=1e-9,
                                    abs_tol=1e-9 * (p.high - p.low))
                assert p.low <= got[p.name] <= p.high
            else:
                assert got[p.name] == row[p.name] and type(got[p.name]) is type(row[p.name])


@settings(max_examples=100, deadline=None)
@given(spaces_and_rows(), st.integers(0, 2**31 - 1))
def test_any_encoded_point_decodes_to_a_valid_value(case, seed):
    space, _ = case
    Z = np.random.default_rng(seed).uniform(size=(5, space.dim))
    for row in space.decode(Z):
        assert space.validate(row) == row


def test_log_scale_spreads_decades_evenly():
    p = wb.Continuous("loading", 0.01, 100.0, log=True)
    np.testing.assert_allclose(p.encode(np.array([0.01, 0.1, 1.0, 10.0, 100.0]))[:, 0],
                               [0, 0.25, 0.5, 0.75, 1.0], atol=1e-12)


def test_domain_marks_integer_and_onehot_columns():
    space = wb.SearchSpace([
        wb.Continuous("t", 0, 1), wb.Integer("n", 1, 4), wb.Categorical("c", ["a", "b", "c"]),
    ])
    d = space.domain()
    assert d.dim == 5 and d.integer == ((1, 4),) and d.onehot == ((2, 3, 4),)


@pytest.mark.parametrize("make, field", [
    (lambda: wb.Continuous("x", 1.0, 1.0), "low"),
    (lambda: wb.Continuous("x", 0.0, 1.0, log=True), "log"),
    (lambda: wb.Continuous("x", 0.0, float("inf")), "finite"),
    (lambda: wb.Integer("n", 3, 2), "low"),
    (lambda: wb.Categorical("c", ["a", "a", "b"]), "unique"),
    (lambda: wb.Categorical("c", ["a"]), "choices"),
    (lambda: wb.Continuous("bad name", 0, 1), "name"),
    (lambda: wb.Continuous("status", 0, 1), "reserved"),
    (lambda: wb.Objective("y", "largest"), "direction"),
])
def test_bad_parameters_name_the_problem(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_linear_constraints_parse_into_encoded_rows():
    space = wb.SearchSpace([wb.Continuous("a", 1.0, 3.0), wb.Integer("n", 0, 4),
                            wb.Continuous("b", 0.0, 10.0)],
                           constraints=["2*a - n/2 <= 3", "a + b == 6"])
    d = space.domain()
    # a = 1 + 2 z0, n = 4 z1, b = 10 z2: 2a - n/2 <= 3 -> 4 z0 - 2 z1 <= 1.
    np.testing.assert_allclose(d.inequalities[0][0], (4.0, -2.0, 0.0))
    assert d.inequalities[0][1] == pytest.approx(1.0)
    np.testing.assert_allclose(d.equalities[0][0], (2.0, 0.0, 10.0))
    assert d.equalities[0][1] == pytest.approx(5.0)
    assert space.feasible([{"a": 1.0, "n": 0, "b": 5.0}, {"a": 3.0, "n": 0, "b": 3.0}]).tolist() \
        == [True, False]
    with pytest.raises(CampaignError, match=r"constraints\[0\].*'a' is log-scaled"):
        wb.SearchSpace([wb.Continuous("a", 1.0, 3.0, log=True)], constraints=["a <= 2"])
    with pytest.raises(CampaignError, match="nonlinear equality"):
        wb.SearchSpace([wb.Continuous("a", 1.0, 3.0)], constraints=["a * a == 2"])


def test_objective_with_a_target():
    o = wb.Objective("viscosity", target=2.0)
    assert o.direction == "target" and o.score(2.5) == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="direction 'target'"):
        wb.Objective("viscosity", "minimize", target=2.0)


def test_validate_names_parameter_and_expectation():
    space = wb.SearchSpace([wb.Integer("n", 1, 4), wb.Categorical("c", ["a", "b"])])
    with pytest.raises(CampaignError, match=r"'n'.*expected an integer in \[1, 4\]"):
        space.validate({"n": 7, "c": "a"})
    with pytest.raises(CampaignError, match=r"'c'.*expected one of"):
        space.validate({"n": 2, "c": "z"})
    with pytest.raises(CampaignError, match="missing"):
        space.validate({"n": 2})
