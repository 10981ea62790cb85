"""Sobol indices (active_learning.sensitivity) against closed forms and SALib."""

import numpy as np
import pytest

from active_learning import (saltelli_design, saltelli_points, sobol_indices,
                             sobol_sensitivity)

ISHIGAMI_A, ISHIGAMI_B = 7.0, 0.1
# Closed-form indices of the Ishigami function (a=7, b=0.1).
ISHIGAMI_S1 = [0.3139, 0.4424, 0.0]
ISHIGAMI_ST = [0.5576, 0.4424, 0.2437]
SOBOL_G_A = np.array([0.0, 1.0, 4.5, 9.0, 99.0, 99.0])


def ishigami(U):
    X = -np.pi + 2 * np.pi * np.asarray(U)
    return (np.sin(X[:, 0]) + ISHIGAMI_A * np.sin(X[:, 1]) ** 2
            + ISHIGAMI_B * X[:, 2] ** 4 * np.sin(X[:, 0]))


def sobol_g(U, a=SOBOL_G_A):
    return np.prod((np.abs(4 * np.asarray(U) - 2) + a) / (1 + a), axis=1)


def sobol_g_indices(a=SOBOL_G_A):
    Vi = 1.0 / (3.0 * (1.0 + a) ** 2)
    V = np.prod(1 + Vi) - 1
    return Vi / V, Vi * np.prod(1 + Vi) / (1 + Vi) / V


def test_ishigami_matches_closed_form():
    S = sobol_sensitivity(ishigami, 3, n=2**15, seed=1)
    np.testing.assert_allclose(S.first_order, ISHIGAMI_S1, atol=0.01)
    np.testing.assert_allclose(S.total, ISHIGAMI_ST, atol=0.01)
    # Var f = a^2/8 + b pi^4/5 + b^2 pi^8/18 + 1/2
    V = ISHIGAMI_A**2 / 8 + ISHIGAMI_B * np.pi**4 / 5 + ISHIGAMI_B**2 * np.pi**8 / 18 + 0.5
    assert abs(float(S.variance) - V) < 0.02 * V


def test_sobol_g_matches_closed_form():
    S1, ST = sobol_g_indices()
    S = sobol_sensitivity(sobol_g, len(SOBOL_G_A), n=2**14, seed=2)
    np.testing.assert_allclose(S.first_order, S1, atol=0.01)
    np.testing.assert_allclose(S.total, ST, atol=0.01)


def test_groups_and_several_outputs():
    """Grouping x0 and x2 of Ishigami: its total index is 1 - S1(x1); two outputs at once."""
    S = sobol_sensitivity(lambda U: np.stack([ishigami(U), sobol_g(U[:, [0, 1, 2, 0, 1, 2]])],
                                             axis=1),
                          3, groups=[[0, 2], [1]], n=2**14, seed=3)
    assert S.first_order.shape == (2, 2)
    np.testing.assert_allclose(S.total[0], [1 - ISHIGAMI_S1[1], ISHIGAMI_ST[1]], atol=0.01)
    np.testing.assert_allclose(S.first_order[0], [1 - ISHIGAMI_ST[1], ISHIGAMI_S1[1]],
                               atol=0.01)


def test_constant_function_has_zero_indices():
    S = sobol_sensitivity(lambda U: np.ones(len(U)), 2, n=64)
    np.testing.assert_array_equal(S.first_order, 0.0)
    np.testing.assert_array_equal(S.total, 0.0)


@pytest.mark.parametrize("groups", [None, [[0, 2], [1]]])
def test_equals_salib_on_the_same_samples(groups):
    """SALib's estimators on our design, in SALib's row order, give the same indices."""
    from SALib.analyze import sobol as salib_sobol

    d, n = 3, 512
    groups_ = [[j] for j in range(d)] if groups is None else groups
    A, B = saltelli_design(n, d, seed=4)
    X = saltelli_points(A, B, groups_)
    y = ishigami(X)
    ours = sobol_indices(y, n)
    g = len(groups_)
    blocks = y.reshape(g + 2, n)      # [A; B; AB_1..AB_g]
    salib_order = np.stack([blocks[0], *blocks[2:], blocks[1]], axis=1).ravel()
    problem = {"num_vars": d, "names": ["x0", "x1", "x2"], "bounds": [[0, 1]] * d}
    if groups is not None:
        problem["groups"] = ["g0", "g1", "g0"]
    Si = salib_sobol.analyze(problem, salib_order, calc_second_order=False,
                             num_resamples=10, seed=1)
    np.testing.assert_allclose(ours.first_order, Si["S1"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.total, Si["ST"], rtol=1e-10, atol=1e-12)


def test_bad_evaluation_count_names_it():
    with pytest.raises(ValueError, match="evaluations per series"):
        sobol_indices(np.zeros(10), 4)
