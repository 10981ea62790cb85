"""Nonlinear and cardinality (NChooseK) parameter constraints: the safe parser, the
encoded domain, designs, the optimiser against known optima, and campaigns whose
every initial point and proposal satisfies the constraints, live and replayed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import workbench as wb
from active_learning import Cardinality, Domain, reduce_domain
from active_learning.cardinality import MAX_ENUMERATED_SUPPORTS, count_supports
from active_learning.design import maximin, sample_feasible, sobol
from active_learning.optimize import maximize_acquisition
from workbench.constraints import NonlinearConstraint, parse_constraint
from surrogates import compiled_programs
from workbench.spec import load_spec, parse_spec

REPO = Path(__file__).resolve().parents[1]
TOL = 1e-9
FAST = {"raw_samples": 64, "num_restarts": 4, "steps": 40}
INGREDIENTS = ["water", "ethanol", "glycerol", "peg"]


class _Quadratic(eqx.Module):
    """-||x - centre||^2: its constrained maximiser is known in closed form."""

    centre: jax.Array

    def __call__(self, X):
        return -jnp.sum((X - self.centre) ** 2, axis=-1)


def heat_load(params):
    """A Python constraint (importable, so a reopened store finds it): g <= 0."""
    return params["temperature"] * params["glycerol"] / 40.0 - 1.0


# -- the parser ----------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('true') <= 1", "calling an expression"),
    ("__import__('os') <= 1", "calling '__import__'"),
    ("x1.real <= 1", "attribute access"),
    ("open(x1) <= 1", "calling 'open'"),
    ("x1[0] <= 1", "indexing"),
    ("(lambda: 1)() <= 1", "calling an expression"),
    ("exp(x1, x2) <= 1", "with one argument"),
    ("x1 ** x2 <= 1", "numeric exponent"),
    ("x1**2 + x2**2 == 1", "nonlinear equality"),
    ("x1 * y <= 1", "'y' names no parameter"),
    ("'a' * x1 <= 1", "non-numeric constant"),
])
def test_parser_refuses_code_and_names_the_construct(text, message):
    with pytest.raises(ValueError, match=message):
        parse_constraint(text, ["x1", "x2"])


def test_compiled_expression_matches_numpy_and_is_differentiable():
    c = parse_constraint("exp(x1) + sqrt(x2) * x1 / 2 - x2**3 >= -0.5", ["x1", "x2"])
    assert isinstance(c, NonlinearConstraint) and c.names == ("x1", "x2") and c.op == ">="
    x1, x2 = np.array([0.2, 1.3]), np.array([0.7, 2.0])
    expected = -(np.exp(x1) + np.sqrt(x2) * x1 / 2 - x2**3 + 0.5)  # g <= 0 form, scale 1
    np.testing.assert_allclose(c.g({"x1": x1, "x2": x2}), expected, rtol=1e-12)
    grad = jax.grad(lambda a: c.g({"x1": a, "x2": jnp.asarray(0.7)}, jnp))(0.2)
    h = 1e-6
    fd = (c.g({"x1": 0.2 + h, "x2": 0.7}) - c.g({"x1": 0.2 - h, "x2": 0.7})) / (2 * h)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)
    # A product of two parameters is nonlinear; a sum stays linear.
    assert isinstance(parse_constraint("t * r <= 5000", ["t", "r"]), NonlinearConstraint)
    assert not isinstance(parse_constraint("t + r <= 5", ["t", "r"]), NonlinearConstraint)


# -- the encoded domain --------------------------------------------------------------


def _disk(X):
    return jnp.sum((X - 0.5) ** 2, axis=-1) - 0.09  # radius 0.3 around the centre


def test_optimiser_reaches_the_optimum_on_a_curved_boundary():
    domain = Domain(2, nonlinear=(_disk,))
    x, v = maximize_acquisition(_Quadratic(jnp.array([1.0, 1.0])), domain,
                                jax.random.key(0), **FAST)
    corner = 0.5 + 0.3 / np.sqrt(2)
    np.testing.assert_allclose(np.asarray(x), [corner, corner], atol=1e-4)
    assert float(_disk(x)) <= 0.0 and domain.feasible(np.asarray(x)[None])[0]


def test_optimiser_with_a_mixture_and_a_nonlinear_constraint():
    # a + b + c == 1, a * b <= 0.1: from the centre (0.5, 0.5, 0) the optimum keeps a = b.
    product = lambda X: X[..., 0] * X[..., 1] - 0.1  # noqa: E731
    domain = Domain(3, equalities=((np.ones(3), 1.0),), nonlinear=(product,))
    centre = np.array([0.5, 0.5, 0.0])
    x, v = maximize_acquisition(_Quadratic(jnp.asarray(centre)), domain, jax.random.key(1),
                                **FAST)
    x = np.asarray(x)
    assert abs(x.sum() - 1.0) <= TOL and x[0] * x[1] - 0.1 <= 0.0 and np.all(x >= 0)
    # Reference: SLSQP from a grid of starts (the feasible set is not convex).
    best = -np.inf
    for a in np.linspace(0.05, 0.9, 8):
        for b in np.linspace(0.05, 0.9, 8):
            res = minimize(lambda y: np.sum((y - centre) ** 2), [a, b, max(1 - a - b, 0)],
                           method="SLSQP", bounds=[(0, 1)] * 3, constraints=[
                               {"type": "eq", "fun": lambda y: y.sum() - 1},
                               {"type": "ineq", "fun": lambda y: 0.1 - y[0] * y[1]}])
            if res.success:
                best = max(best, -res.fun)
    assert float(v) >= best - 1e-5  # SLSQP may end a hair outside; ours never does


def test_cardinality_optimum_matches_brute_force_over_supports():
    domain = Domain(4, equalities=((np.ones(4), 1.0),),
                    cardinality=(Cardinality((0, 1, 2, 3), 1, 2),))
    centre = np.array([0.5, 0.4, 0.3, 0.0])
    x, v = maximize_acquisition(_Quadratic(jnp.asarray(centre)), domain, jax.random.key(2),
                                **FAST)
    # Brute force: each pair (i, j) with x_i + x_j = 1 (closed form), and each single x_i = 1.
    best = -np.inf
    for i in range(4):
        for j in range(4):
            y = np.zeros(4)
            t = np.clip((1 + centre[i] - centre[j]) / 2, 0, 1) if i != j else 1.0
            y[i], y[j] = (t, 1 - t) if i != j else (1.0, 0.0)
            best = max(best, -np.sum((y - centre) ** 2))
    assert float(v) == pytest.approx(best, abs=1e-8)
    np.testing.assert_allclose(np.asarray(x), [0.55, 0.45, 0.0, 0.0], atol=1e-6)
    assert np.count_nonzero(np.asarray(x)) == 2 and domain.feasible(np.asarray(x)[None])[0]
    # Another acquisition of the same structure over the same supports compiles nothing.
    compiled = compiled_programs()["acquisition.search"]
    x, _ = maximize_acquisition(_Quadratic(jnp.asarray(centre[::-1])), domain,
                                jax.random.key(4), **FAST)
    assert compiled_programs()["acquisition.search"] == compiled
    np.testing.assert_allclose(np.asarray(x), [0.0, 0.0, 0.45, 0.55], atol=1e-6)


def test_many_supports_are_sampled_and_the_greedy_support_is_found():
    domain = Domain(8, cardinality=(Cardinality(tuple(range(8)), 0, 3),))
    assert count_supports(domain) > MAX_ENUMERATED_SUPPORTS  # C(8, 3) = 56
    centre = np.array([0.1, 0.9, 0.0, 0.7, 0.05, 0.0, 0.8, 0.0])
    x, v = maximize_acquisition(_Quadratic(jnp.asarray(centre)), domain, jax.random.key(3),
                                **FAST)
    x = np.asarray(x)
    assert set(np.flatnonzero(x)) == {1, 3, 6}
    assert float(v) == pytest.approx(-(0.1**2 + 0.05**2), abs=1e-6)


def test_designs_satisfy_every_constraint_and_sobol_stays_a_prefix():
    ratio = lambda X: X[..., 4] * X[..., 1] - 0.25  # noqa: E731
    domain = Domain(5, equalities=((np.r_[np.ones(4), 0.0], 1.0),), nonlinear=(ratio,),
                    cardinality=(Cardinality((0, 1, 2, 3), 1, 2),))
    X = sobol(12, domain, seed=3)
    assert X.shape == (12, 5) and domain.feasible(X).all()
    assert np.all(np.abs(X[:, :4].sum(1) - 1) <= TOL) and np.all(X[:, 4] * X[:, 1] <= 0.25)
    assert set(np.count_nonzero(X[:, :4], axis=1)) <= {1, 2}
    np.testing.assert_array_equal(sobol(5, domain, seed=3), X[:5])
    assert domain.feasible(maximin(6, domain, seed=3)).all()
    assert domain.feasible(sample_feasible(20, domain, seed=3)).all()


def test_a_tiny_feasible_region_is_refused_with_the_fraction():
    domain = Domain(3, nonlinear=(lambda X: jnp.sum((X - 0.5) ** 2, axis=-1) - 1e-8,))
    with pytest.raises(ValueError, match=r"only \d+ of \d+ points .* satisfy the nonlinear"):
        sobol(4, domain, seed=0)


def test_validation_and_optimiser_agree_on_the_presence_floor():
    from active_learning import cardinality
    from workbench import spec

    assert spec.PRESENCE_FLOOR == cardinality.PRESENCE_FLOOR


def test_held_columns_count_against_the_cardinality():
    domain = Domain(4, cardinality=(Cardinality((0, 1, 2, 3), 1, 2),))
    reduced, free = reduce_domain(domain, {0: 0.5})
    assert reduced.cardinality == (Cardinality((0, 1, 2), 0, 1),)
    reduced, _ = reduce_domain(domain, {0: 0.0})
    assert reduced.cardinality == (Cardinality((0, 1, 2), 1, 2),)


# -- the search space and the spec ---------------------------------------------------


def _space(extra=()):
    return wb.SearchSpace(
        [wb.Continuous(n, 0.0, 1.0) for n in INGREDIENTS]
        + [wb.Continuous("temperature", 20.0, 80.0, precision=0.5)],
        constraints=["water + ethanol + glycerol + peg == 1",
                     wb.NChooseK(INGREDIENTS, max_count=2), "temperature * ethanol <= 30",
                     *extra])


def test_space_refuses_bad_nchoosek_with_the_field():
    params = [wb.Continuous("a", 0.0, 1.0), wb.Continuous("t", 20.0, 80.0),
              wb.Categorical("c", ["x", "y"])]
    for names, message in ((["a", "t"], r"'t', a continuous parameter with low 20"),
                           (["a", "c"], "'c', a categorical parameter"),
                           (["a", "z"], r"\['z'\], which name no parameter")):
        with pytest.raises(wb.CampaignError,
                           match=r"constraints\[0\]\.nchoosek\.parameters: got .*" + message):
            wb.SearchSpace(params, constraints=[wb.NChooseK(names, max_count=1)])
    with pytest.raises(wb.CampaignError, match="at most one"):
        wb.SearchSpace(params, constraints=[wb.NChooseK(["a"], max_count=1),
                                            wb.NChooseK(["a"], max_count=1)])


def test_spec_validation_names_infeasible_constraints():
    base = dict(name="t", objectives=[{"name": "y", "direction": "maximize"}],
                space=[{"name": n, "type": "continuous", "low": 0.0, "high": 0.3}
                       for n in INGREDIENTS], tracking=None, store=None)
    mixture = "water + ethanol + glycerol + peg == 1"
    with pytest.raises(wb.SpecError, match="no choice of present parameters"):
        parse_spec(dict(base, constraints=[
            mixture, {"nchoosek": {"parameters": INGREDIENTS, "max_count": 3}}]))
    parse_spec(dict(base, constraints=[  # four at 0.3 can reach 1
        mixture, {"nchoosek": {"parameters": INGREDIENTS, "max_count": 4}}]))
    with pytest.raises(wb.SpecError, match=r"constraints\[0\]: got 'water\*\*2 \+ peg\*\*2"
                                           r" >= 1', which none of 4096 points"):
        parse_spec(dict(base, constraints=["water**2 + peg**2 >= 1"]))


def test_validate_cli_reports_the_field_path(tmp_path):
    text = (REPO / "experiments" / "formulation.yaml").read_text()
    bad = text.replace("parameters: [water, ethanol, glycerol, peg]",
                       "parameters: [water, ethanol, temperature]")
    (tmp_path / "bad.yaml").write_text(bad)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "workbench", "validate", "bad.yaml"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "constraints[1].nchoosek.parameters" in out and "'temperature'" in out
    assert "low 0" in out and not (tmp_path / "campaigns").exists()


def test_shipped_formulation_parses_with_every_kind():
    spec = load_spec(REPO / "experiments" / "formulation.yaml")
    space = wb.SearchSpace(list(spec.space), spec.constraints)
    assert len(space.linear_constraints) == 1 and len(space.nonlinear_constraints) == 1
    assert space.cardinality_constraints[0].max_count == 2


# -- campaigns -----------------------------------------------------------------------


def _oracle(p):
    return {"stability": p["glycerol"] + 0.5 * p["peg"] - (p["temperature"] - 50.0) ** 2 / 900}


def _check(trials):
    rows = [t.params for t in trials]
    for r in rows:
        assert abs(sum(r[n] for n in INGREDIENTS) - 1.0) <= TOL
        assert 1 <= sum(r[n] != 0.0 for n in INGREDIENTS) <= 2
        assert r["temperature"] * r["ethanol"] <= 30 * (1 + TOL)
        assert heat_load(r) <= TOL
    assert _space([heat_load]).feasible(rows).all()


def test_campaign_proposals_satisfy_every_constraint_and_replay_equal(tmp_path):
    store = tmp_path / "blend.zarr"
    campaign = wb.Campaign("blend", _space([heat_load]), [wb.Objective("stability", "maximize")],
                           store=store, tracking=None, initial_design={"n": 9},
                           acquisition={"raw_samples": 32, "num_restarts": 2, "steps": 20})
    campaign.run(_oracle, budget=12)
    trials = campaign.trials
    assert len(trials) == 12 and sum(t.strategy != "sobol" for t in trials) == 3
    _check(trials)
    # Proposals are on the lab's grid, still feasible.
    assert all(abs(t.params["temperature"] * 2 - round(t.params["temperature"] * 2)) < 1e-9
               for t in trials)
    reopened = wb.Campaign.open(store, tracking=None)
    again = reopened.trials
    assert [(t.id, t.params, t.outcomes, t.status, t.strategy) for t in again] == \
        [(t.id, t.params, t.outcomes, t.status, t.strategy) for t in trials]
    assert reopened.space == campaign.space
    assert reopened.spec.to_dict()["constraints"][3] == {
        "function": "test_parameter_constraints:heat_load"}
    (nxt,) = reopened.ask(1)
    _check([nxt])


def test_constraints_with_no_common_point_are_refused_at_the_first_ask():
    # Each alone leaves room in the bounds; together (a + b <= 0.5 caps a^2 + b^2 at 0.25)
    # none: the design says so, naming the fraction, and records nothing.
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0), wb.Continuous("b", 0.0, 1.0)],
                           constraints=["a + b <= 0.5", "a**2 + b**2 >= 0.5"])
    campaign = wb.Campaign("empty", space, [wb.Objective("y", "maximize")], tracking=None)
    with pytest.raises(wb.CampaignError, match=r"constraints: only 0 of \d+ points"):
        campaign.ask(2)
    assert campaign.trials == []
