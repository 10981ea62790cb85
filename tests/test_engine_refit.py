"""The GP's refit policy in a running campaign (``workbench.engine.fitters``): warm fits
from the previous hyperparameters reach what a full fit reaches, and the campaign refits
from scratch when the data say so (the surprise test, growth), reproducibly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import workbench as wb
from workbench.engine import fit_surrogate
from workbench.engine.fitters import REFIT_GROWTH, WARM_FIT_MIN_OBSERVATIONS

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


def test_a_full_fit_records_itself(first):
    assert first[2]["refit"] == {"full_fit_observations": 120, "observations": 120}


def test_a_warm_fit_reaches_the_full_fits_hyperparameters(problem, first):
    X, Y, state = _grow(first, *_data(6, 1))
    warm_model, warm_state = _fit(problem, X, Y, state)
    full_model, full_state = _fit(problem, X, Y, None)
    # The warm start alone was refined; the full fit had every restart.
    assert warm_state["refit"] == {"full_fit_observations": 120, "observations": 126}
    assert full_state["refit"] == {"full_fit_observations": 126, "observations": 126}
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
    assert same["refit"] == {"full_fit_observations": 120, "observations": 123}
    assert moved["refit"] == {"full_fit_observations": 123, "observations": 123}


def test_growth_refits_from_scratch(problem, first):
    n_new = int(np.ceil(REFIT_GROWTH * 120))
    _, below = _fit(problem, *_grow(first, *_data(n_new - 1, 3))[:2], first[2])
    _, grown = _fit(problem, *_grow(first, *_data(n_new, 3))[:2], first[2])
    assert below["refit"]["full_fit_observations"] == 120
    assert grown["refit"] == {"full_fit_observations": 120 + n_new,
                              "observations": 120 + n_new}


def test_a_state_without_the_record_or_fewer_observations_refits(problem, first):
    X, Y, state = _grow(first, *_data(2, 4))
    old = {k: v for k, v in state.items() if k != "refit"}  # a store from before the policy
    assert _fit(problem, X, Y, old)[1]["refit"]["full_fit_observations"] == 122
    _, shrunk = _fit(problem, X[:100], Y[:100], state)  # data replaced: fewer than before
    assert shrunk["refit"] == {"full_fit_observations": 100, "observations": 100}


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
    assert next_["refit"] == {"full_fit_observations": n + 2, "observations": n + 2}
