"""The GP's refit policy in a running campaign (``workbench.engine.fitters``): warm fits
from the previous hyperparameters reach what a full fit reaches, between refinements the
previous hyperparameters are conditioned on the data, and the campaign refines or refits
from scratch when the data say so (the surprise test, growth), reproducibly; from
``LARGE_SEARCH_OBSERVATIONS`` the acquisition search climbs fewer starts for fewer steps
and finds what the full search finds."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import workbench as wb
from workbench.engine import condition_surrogate, fit_surrogate, propose
import active_learning as al
from workbench.engine import build_acquisition
from workbench.engine.fitters import REFINE_GROWTH, REFIT_GROWTH, WARM_FIT_MIN_OBSERVATIONS
from workbench.engine.proposals import (CONSTRAINED_FINISH, CONSTRAINED_STEPS,
                                       LARGE_SEARCH_OBSERVATIONS, SEARCH_SHRINK,
                                       search_effort)

CAPACITY = 256  # one padded bucket for every fit here: one program each way
NOISE_SD = 0.05


def _f(X):
    """Depends on x0 only (a short length-scale there), not on x1 (a long one)."""
    return np.sin(6.0 * X[:, 0]) + 0.5 * X[:, 0]


def _data(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, 2))
    return X, (_f(X) + shift + NOISE_SD * rng.standard_normal(n))[:, None]


@pytest.fixture(scope="module")
def problem():
    c = wb.Campaign("refit", wb.SearchSpace([wb.Continuous("x0", 0.0, 1.0),
                                            wb.Continuous("x1", 0.0, 1.0)]),
                    [wb.Objective("y", "minimize")], tracking=None, store=None, seed=0)
    return c.problem


@pytest.fixture(scope="module")
def first(problem):
    """A full fit on 120 observations, as a campaign's previous proposal left it."""
    X, Y = _data(120, 0)
    _, state = fit_surrogate(problem, X, Y, jax.random.key(0), CAPACITY, None)
    return X, Y, state


def _fit(problem, X, Y, warm, key=1):
    model, state = fit_surrogate(problem, X, Y, jax.random.key(key), CAPACITY, warm)
    return model, state


def _grow(first, X_new, Y_new):
    X, Y, state = first
    return np.vstack([X, X_new]), np.vstack([Y, Y_new]), state


def _record(full, refined, observations):
    return {"full_fit_observations": full, "refined_observations": refined,
            "observations": observations}


def _hyperparameters(state):
    """The GP's hyperparameters in a state: not the refit record, nor the output warp,
    which is fitted on each call's data."""
    return {k: v for k, v in state.items() if k not in ("refit", "output_warp")}


# Observations past the last refinement that still only condition: 1 % of 120.
WITHIN = int(np.floor(REFINE_GROWTH * 120))


def test_a_full_fit_records_itself(first):
    assert first[2]["refit"] == _record(120, 120, 120)


def test_a_warm_fit_reaches_the_full_fits_hyperparameters(problem, first):
    X, Y, state = _grow(first, *_data(6, 1))
    warm_model, warm_state = _fit(problem, X, Y, state)
    full_model, full_state = _fit(problem, X, Y, None)
    # The warm start alone was refined; the full fit had every restart.
    assert warm_state["refit"] == _record(120, 126, 126)
    assert full_state["refit"] == _record(126, 126, 126)
    ls_warm = np.exp(np.asarray(warm_state["kernel_params"]["log_lengthscale"]))[0]
    ls_full = np.exp(np.asarray(full_state["kernel_params"]["log_lengthscale"]))[0]
    # The known answer: x0 matters, x1 does not (its length-scale runs off long).
    assert ls_full[0] < 0.5 and ls_full[1] > 3.0 and ls_warm[1] > 3.0
    assert ls_warm[0] == pytest.approx(ls_full[0], rel=0.05)
    assert np.asarray(warm_state["log_noise"]) == pytest.approx(
        np.asarray(full_state["log_noise"]), abs=0.2)
    Xq = np.random.default_rng(9).random((50, 2))
    mean_warm = np.asarray(warm_model.posterior(Xq).mean)[:, 0]
    mean_full = np.asarray(full_model.posterior(Xq).mean)[:, 0]
    assert np.max(np.abs(mean_warm - mean_full)) < 0.1 * NOISE_SD
    assert np.max(np.abs(mean_full - _f(Xq))) < 4 * NOISE_SD  # and both fit f


def test_a_change_of_regime_refits_from_scratch(problem, first):
    # The same function, then three observations shifted by ten noise sds.
    _, same = _fit(problem, *_grow(first, *_data(3, 2))[:2], first[2])
    _, moved = _fit(problem, *_grow(first, *_data(3, 2, shift=10 * NOISE_SD))[:2], first[2])
    assert same["refit"] == _record(120, 123, 123)
    assert moved["refit"] == _record(123, 123, 123)


def test_growth_refits_from_scratch(problem, first):
    n_new = int(np.ceil(REFIT_GROWTH * 120))
    _, below = _fit(problem, *_grow(first, *_data(n_new - 1, 3))[:2], first[2])
    _, grown = _fit(problem, *_grow(first, *_data(n_new, 3))[:2], first[2])
    assert below["refit"]["full_fit_observations"] == 120
    assert grown["refit"] == _record(120 + n_new, 120 + n_new, 120 + n_new)


def test_a_state_without_the_record_or_fewer_observations_refits(problem, first):
    X, Y, state = _grow(first, *_data(2, 4))
    old = {k: v for k, v in state.items() if k != "refit"}  # a store from before the policy
    assert _fit(problem, X, Y, old)[1]["refit"]["full_fit_observations"] == 122
    _, shrunk = _fit(problem, X[:100], Y[:100], state)  # data replaced: fewer than before
    assert shrunk["refit"] == _record(100, 100, 100)


def test_warm_fits_are_reproducible(problem, first):
    X, Y, state = _grow(first, *_data(4, 5))
    _, a = _fit(problem, X, Y, state, key=7)
    _, b = _fit(problem, X, Y, state, key=7)
    assert a == b and a["refit"]["full_fit_observations"] == 120


def test_below_the_warm_fit_threshold_every_fit_is_full(problem, first):
    n = WARM_FIT_MIN_OBSERVATIONS - 10
    X, Y, state = first
    _, small = _fit(problem, X[:n], Y[:n], None)
    X_more, Y_more = _data(2, 6)
    _, next_ = _fit(problem, np.vstack([X[:n], X_more]), np.vstack([Y[:n], Y_more]), small)
    assert next_["refit"] == _record(n + 2, n + 2, n + 2)


def test_within_the_refine_growth_the_previous_hyperparameters_are_conditioned(problem, first):
    assert WITHIN >= 1
    X, Y, state = _grow(first, *_data(WITHIN, 10))
    model, cond = _fit(problem, X, Y, state)
    # Not optimised: the same hyperparameters, the record says so.
    assert _hyperparameters(cond) == _hyperparameters(state)
    assert cond["refit"] == _record(120, 120, 120 + WITHIN)
    # The model is the previous hyperparameters conditioned on all the data.
    reference = condition_surrogate(problem, X, Y, CAPACITY, state)
    Xq = np.random.default_rng(11).random((40, 2))
    got, want = model.posterior(Xq), reference.posterior(Xq)
    np.testing.assert_array_equal(np.asarray(got.mean), np.asarray(want.mean))
    np.testing.assert_array_equal(np.asarray(got.variance), np.asarray(want.variance))


def test_conditioning_stops_once_the_data_grew_past_the_refine_growth(problem, first):
    # Counted from the last refinement, not from the last (conditioned) model.
    X, Y, state = _grow(first, *_data(WITHIN, 12))
    _, cond = _fit(problem, X, Y, state)
    X_more, Y_more = _data(1, 13)
    _, refined = _fit(problem, np.vstack([X, X_more]), np.vstack([Y, Y_more]), cond)
    assert refined["refit"] == _record(120, 121 + WITHIN, 121 + WITHIN)
    assert _hyperparameters(refined) != _hyperparameters(state)


def test_a_surprise_under_the_conditioned_hyperparameters_optimises_them(problem, first):
    X, Y, state = _grow(first, *_data(1, 14, shift=10 * NOISE_SD))
    _, moved = _fit(problem, X, Y, state)
    assert moved["refit"]["refined_observations"] == 121  # refined (or refitted), not kept
    assert _hyperparameters(moved) != _hyperparameters(state)


def test_a_conditioned_proposal_is_reproducible(problem, first):
    # The same data, seed and warm state give the same proposal and state.
    X, Y, state = _grow(first, *_data(WITHIN, 15))
    runs = [propose(problem, X, Y, np.zeros((0, 2)), 1, jax.random.key(3), state)[0]
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    assert runs[0].surrogate_state == runs[1].surrogate_state
    assert runs[0].surrogate_state["refit"] == _record(120, 120, 120 + WITHIN)


def test_the_search_climbs_fewer_starts_from_large_campaigns():
    """The defaults shrink from LARGE_SEARCH_OBSERVATIONS on; a spec's own restarts or
    steps hold at every size."""
    import workbench as wb

    n = LARGE_SEARCH_OBSERVATIONS
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])

    def cfg(**acquisition):
        return wb.Campaign("c", space, [wb.Objective("y", "maximize")], tracking=None,
                           acquisition=acquisition or None).problem.acquisition

    default = cfg()
    assert not default.search_set and (default.num_restarts, default.steps) == (16, 100)
    assert search_effort(default, n - 1) == {"num_restarts": 16, "steps": 100,
                                             "finish_steps": 0}
    assert search_effort(default, n) == {"num_restarts": 16 // SEARCH_SHRINK,
                                         "steps": 100 // SEARCH_SHRINK, "finish_steps": 0}
    assert search_effort(cfg(num_restarts=1, steps=1), 10 * n) == {"num_restarts": 1,
                                                                  "steps": 1,
                                                                  "finish_steps": 0}
    assert search_effort(cfg(steps=300), 10 * n) == {"num_restarts": 16, "steps": 300,
                                                     "finish_steps": 0}
    # Outcome constraints: CONSTRAINED_STEPS times the default steps, and the best climbs
    # finish with CONSTRAINED_FINISH times the steps; steps the spec gives hold.
    steps = 100 * CONSTRAINED_STEPS
    assert search_effort(default, n - 1, constrained=True) == {
        "num_restarts": 16, "steps": steps, "finish_steps": int(CONSTRAINED_FINISH * steps)}
    assert search_effort(default, n, constrained=True) == {
        "num_restarts": 16 // SEARCH_SHRINK, "steps": steps // SEARCH_SHRINK,
        "finish_steps": int(CONSTRAINED_FINISH * steps // SEARCH_SHRINK)}
    assert search_effort(cfg(steps=300), n, constrained=True) == {
        "num_restarts": 16, "steps": 300, "finish_steps": int(CONSTRAINED_FINISH * 300)}


def test_the_smaller_search_finds_the_full_searchs_optimum(problem, first):
    # On the GP of 120 observations, log EI's maximiser with the campaign's settings
    # (raw samples, restarts, steps) and with the reduced search's: the same point, on
    # three keys.
    X, Y, _ = first
    model, _ = _fit(problem, X, Y, None)
    best = float(np.max(problem.scores(Y)[:, 0]))
    acq = build_acquisition(problem, model, X, Y, best, jax.random.key(1), None,
                            np.zeros((0, 2)))
    cfg = problem.acquisition
    for seed in range(3):
        found = [al.maximize_acquisition(acq, problem.domain, jax.random.key(seed),
                                         raw_samples=cfg.raw_samples,
                                         **search_effort(cfg, n))
                 for n in (0, len(X))]
        (x_full, v_full), (x_small, v_small) = found
        # Within the optimiser's tolerance (its runners-up closer than this are one point)
        # and 0.1 % of the expected improvement.
        np.testing.assert_allclose(np.asarray(x_small), np.asarray(x_full),
                                   atol=al.DISTINCT_TOLERANCE)
        assert float(v_small) == pytest.approx(float(v_full), abs=1e-3)
