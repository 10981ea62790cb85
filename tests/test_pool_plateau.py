"""Proposals from a pool when the model expects no improvement anywhere: the row of largest
upper confidence bound instead of the largest (negligible) expected improvement
(workbench/engine/proposals.py, PLATEAU_EI_SHARE)."""

from __future__ import annotations

import sys

import jax
import numpy as np
import pytest

import workbench as wb
from surrogates import posterior_moments
from workbench.engine import propose


def _problem_and_data():
    """sin(6x) told on a grid of 21 points but for 0.6, 0.8, 0.85 and 0.9, which form the
    pool: every pool row is predicted well below the best (about 1, near 0.25)."""
    space = wb.SearchSpace([wb.Continuous("x", 0, 1)])
    c = wb.Campaign("plateau", space, [wb.Objective("y", "maximize")], tracking=None)
    grid = np.linspace(0, 1, 21)
    left = [12, 16, 17, 18]
    X = grid[[i for i in range(21) if i not in left]][:, None]
    return c.problem, X, np.sin(6 * X), grid[left][:, None]


def test_on_a_plateau_the_pool_row_of_largest_ucb_is_taken(monkeypatch):
    problem, X, Y, pool = _problem_and_data()
    engine = sys.modules[propose.__module__]
    chosen = {}
    for share in (None, engine.PLATEAU_EI_SHARE):
        monkeypatch.setattr(engine, "PLATEAU_EI_SHARE", share)
        (p,) = propose(problem, X, Y, np.zeros((0, 1)), 1, jax.random.key(0), None,
                       pool=pool)
        chosen[share] = float(p.x[0])
        assert ("plateau" in p.audit) == (share is not None)
        mean, var = (np.asarray(a)[:, 0] for a in posterior_moments(p.model, pool))
        if share is None:  # plain log EI: its best row, and that is negligible
            ei_best = p.acquisition_value
    assert ei_best < np.log(engine.PLATEAU_EI_SHARE * np.std(Y))
    assert p.audit["plateau"]["best_acquisition_value"] == ei_best
    ucb = mean + np.sqrt(engine.PLATEAU_BETA * var)
    assert chosen[engine.PLATEAU_EI_SHARE] == float(pool[np.argmax(ucb), 0])
    assert chosen[engine.PLATEAU_EI_SHARE] == pytest.approx(0.6)  # the best mean
    assert chosen[None] == pytest.approx(0.85)  # EI's pick: the widest of the hopeless rows
