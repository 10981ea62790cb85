"""Stopping rules on constructed histories, and the confidence gap against a GP's
own posterior."""

import math

import numpy as np
import pytest

import surrogates as sg
from active_learning.stopping import (
    AcquisitionBelow,
    Budget,
    NoImprovement,
    RegretBound,
    StoppingState,
    Target,
    confidence_gap,
    first_triggered,
    rule_from_dict,
)


def test_budget_stops_at_the_number_of_evaluations():
    rule = Budget(10)
    assert rule(StoppingState(n_evaluations=9)) == (False, "")
    stop, reason = rule(StoppingState(n_evaluations=10))
    assert stop and "10 of 10" in reason


@pytest.mark.parametrize("direction, history, target, expected", [
    ("maximize", (80.0, 94.9), 95.0, False),
    ("maximize", (80.0, 95.0), 95.0, True),
    ("maximize", (), 95.0, False),
    ("minimize", (3.0, 0.06), 0.05, False),
    ("minimize", (3.0, 0.05), 0.05, True),
    ("minimize", (3.0, 0.01), 0.05, True),
])
def test_target_is_direction_aware(direction, history, target, expected):
    state = StoppingState(best_history=history, direction=direction)
    assert Target(target)(state)[0] is expected
    # A rule's own direction overrides the state's.
    flipped = "minimize" if direction == "maximize" else "maximize"
    if history and history[-1] != target:
        assert Target(target, direction=flipped)(state)[0] is (not expected)


def test_acquisition_threshold_compares_log_and_linear_values_alike():
    log_ei = math.log(1e-6)
    below = StoppingState(acquisition_value=log_ei, acquisition_log=True)
    linear = StoppingState(acquisition_value=1e-6)
    for state in (below, linear):
        assert AcquisitionBelow(1e-5)(state)[0]                  # linear threshold
        assert AcquisitionBelow(math.log(1e-5), log=True)(state)[0]
        assert not AcquisitionBelow(1e-7)(state)[0]
        assert not AcquisitionBelow(math.log(1e-7), log=True)(state)[0]
    assert AcquisitionBelow(1e-5)(StoppingState(acquisition_value=0.0))[0]  # EI underflowed
    assert AcquisitionBelow(1e-5)(StoppingState()) == (False, "")  # no model yet


def test_regret_bound_uses_the_ucb_lcb_gap():
    assert RegretBound(0.1)(StoppingState(ucb_max=1.05, lcb_max=1.0))[0]
    assert not RegretBound(0.1)(StoppingState(ucb_max=1.2, lcb_max=1.0))[0]
    assert not RegretBound(0.1)(StoppingState(ucb_max=1.2))[0]


@pytest.mark.parametrize("direction, history, rounds, rel_tol, expected", [
    ("maximize", (1.0, 2.0, 2.0, 2.0), 2, 0.0, True),          # flat for 2 rounds
    ("maximize", (1.0, 2.0, 2.0, 2.5), 2, 0.0, False),         # improved in the window
    ("maximize", (1.0, 2.0, 2.0, 2.01), 2, 0.01, True),        # 0.5 % < 1 % tolerance
    ("maximize", (1.0, 2.0, 2.0, 2.03), 2, 0.01, False),       # 1.5 % > 1 %
    ("maximize", (2.0, 2.0), 2, 0.0, False),                   # too short to tell
    ("minimize", (5.0, 3.0, 3.0, 2.99), 2, 0.01, True),        # 0.33 % better only
    ("minimize", (5.0, 3.0, 3.0, 2.5), 2, 0.01, False),
    ("minimize", (-4.0, -4.0, -4.02), 2, 0.01, True),          # relative to |best|
])
def test_no_improvement_over_the_last_rounds(direction, history, rounds, rel_tol, expected):
    state = StoppingState(best_history=history, direction=direction)
    assert NoImprovement(rounds, rel_tol)(state)[0] is expected


def test_first_triggered_reports_the_first_rule_in_order():
    state = StoppingState(n_evaluations=40, best_history=(90.0, 96.0))
    rules = [NoImprovement(5), Target(95.0), Budget(40)]
    stop, reason = first_triggered(rules, state)
    assert stop and reason.startswith("target reached")
    assert first_triggered([Budget(50), NoImprovement(5)], state) == (False, "")
    assert first_triggered([], state) == (False, "")


def test_rules_build_from_their_yaml_form_with_named_errors():
    assert rule_from_dict({"type": "no_improvement", "rounds": 10}) == NoImprovement(10)
    assert rule_from_dict({"type": "target", "value": 95}) == Target(95)
    with pytest.raises(ValueError, match="type: got 'patience'"):
        rule_from_dict({"type": "patience", "rounds": 3})
    with pytest.raises(ValueError, match=r"no_improvement: unknown field\(s\) \['round'\]"):
        rule_from_dict({"type": "no_improvement", "round": 3})
    with pytest.raises(ValueError, match="rounds"):
        rule_from_dict({"type": "no_improvement", "rounds": 0})
    with pytest.raises(ValueError, match="direction"):
        StoppingState(direction="up")


def test_confidence_gap_matches_the_posterior_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(6, 2))
    f = lambda X: np.sin(4 * X[:, 0]) + X[:, 1]
    theta = sg.GPHyperparameters(log_lengthscale=np.full((1, 2), np.log(0.3)),
                                 log_variance=np.zeros(1), log_noise=np.full(1, -12.0),
                                 mean=np.zeros(1))
    unit = (np.zeros(2), np.ones(2))
    model = sg.gp_from_hyperparameters(X, f(X)[:, None], theta, bounds=unit, capacity=64)
    grid = np.stack(np.meshgrid(np.linspace(0, 1, 41), np.linspace(0, 1, 41)), -1).reshape(-1, 2)
    for sign in (1.0, -1.0):
        ucb, lcb = confidence_gap(model, grid, X, beta=4.0, sign=sign, chunk=256)
        post_c, post_o = model.posterior(grid), model.posterior(X)
        m_c, s_c = sign * np.asarray(post_c.mean[:, 0]), np.sqrt(np.asarray(post_c.variance[:, 0]))
        m_o, s_o = sign * np.asarray(post_o.mean[:, 0]), np.sqrt(np.asarray(post_o.variance[:, 0]))
        assert ucb == pytest.approx(np.max(m_c + 2 * s_c), rel=1e-12)
        assert lcb == pytest.approx(np.max(m_o - 2 * s_o), rel=1e-12)
        # At (nearly) noiseless observations the bounds meet the data.
        assert lcb == pytest.approx(np.max(sign * f(X)), abs=1e-2)
    # More data where the function peaks tightens the gap.
    dense = rng.uniform(size=(40, 2))
    denser = sg.gp_from_hyperparameters(dense, f(dense)[:, None], theta, bounds=unit,
                                        capacity=64)
    gap_few = np.subtract(*confidence_gap(model, grid, X, chunk=256))
    gap_many = np.subtract(*confidence_gap(denser, grid, dense, chunk=256))
    assert 0 < gap_many < gap_few
