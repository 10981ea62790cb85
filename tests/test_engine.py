"""The campaign engine as users drive it: linear and outcome constraints, several
objectives, targets, context parameters, initial designs, stopping rules and
every surrogate type chosen from the spec.

Each test runs a short real campaign (in memory, tracking off) and checks an
outcome with a known answer: constraint satisfaction to 1e-9, a known
constrained optimum, a known Pareto front's hypervolume, a target hit.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import workbench as wb

FAST = {"raw_samples": 256, "num_restarts": 4, "steps": 40}


def _run(c: wb.Campaign, f, n: int, q: int = 1, **ask) -> None:
    while len(c.trials) < n:
        for t in c.ask(q, **ask):
            c.tell(t.id, f(t.params))


def test_mixture_constraints_hold_for_every_design_and_proposal():
    space = wb.SearchSpace(
        [wb.Continuous("water", 0.0, 1.0), wb.Continuous("ethanol", 0.0, 1.0),
         wb.Continuous("glycerol", 0.0, 1.0), wb.Integer("minutes", 1, 9)],
        constraints=["water + ethanol + glycerol == 1", "ethanol - 2*glycerol <= 0.1",
                     "water >= 0.2"])
    f = lambda p: -(p["water"] - 0.5) ** 2 - (p["ethanol"] - 0.3) ** 2 + 0.01 * p["minutes"]
    for design in ("sobol", "maximin"):
        c = wb.Campaign("mix", space, [wb.Objective("y", "maximize")], tracking=None,
                        initial_design={"type": design, "n": 5}, acquisition=FAST)
        _run(c, f, 8, q=2)
        rows = [t.params for t in c.trials]
        for r in rows:
            assert abs(r["water"] + r["ethanol"] + r["glycerol"] - 1) <= 1e-9
            assert r["ethanol"] - 2 * r["glycerol"] <= 0.1 + 1e-9
            assert r["water"] >= 0.2 - 1e-9
            assert float(r["minutes"]).is_integer()
        assert space.feasible(rows).all()
        assert [t.strategy for t in c.trials][:5] == [design] * 5
    with pytest.raises(wb.SpecError, match="'lhs' with parameter constraints"):
        wb.Campaign("mix", space, [wb.Objective("y", "maximize")], tracking=None,
                    initial_design={"type": "lhs"})


def test_outcome_constraint_finds_the_constrained_optimum_and_best_is_feasible():
    # max x1 + x2 subject to g = x1 <= 0.3: the optimum is 1.3 at (0.3, 1).
    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0)])
    c = wb.Campaign("oc", space, [wb.Objective("y", "maximize")], tracking=None,
                    outcome_constraints=["g <= 0.3"], acquisition=FAST, seed=1)
    _run(c, lambda p: {"y": p["x1"] + p["x2"], "g": p["x1"]}, 16)
    best = c.best()
    assert best.outcomes["g"] <= 0.3
    assert best.outcomes["y"] >= 1.25
    unconstrained = max(t.outcomes["y"] for t in c.trials if t.status == "completed")
    assert unconstrained > best.outcomes["y"]  # an infeasible better point exists, not chosen
    assert set(best.prediction) == {"y", "g"}  # the constraint outcome is modelled too
    with pytest.raises(wb.CampaignError, match="missing"):
        t = c.ask()[0]
        c.tell(t.id, {"y": 1.0})


def _front_f2(f1):
    return 1.0 - np.sqrt(f1)


@pytest.mark.parametrize("acquisition", ["qlog_nehvi", "log_ehvi", "parego"])
def test_two_objectives_approach_the_known_front(acquisition):
    # f1 = x1, f2 = 1 - sqrt(x1) + x2^2, both minimised: the front is x2 = 0.
    # Hypervolume of the true front for ref (1.1, 1.1): 0.1 + 2/3 + 0.11.
    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0)])
    c = wb.Campaign("mo", space, [wb.Objective("f1", "minimize"), wb.Objective("f2", "minimize")],
                    tracking=None, acquisition={**FAST, "type": acquisition,
                                                "ref_point": [1.1, 1.1]})
    _run(c, lambda p: {"f1": p["x1"], "f2": 1 - math.sqrt(p["x1"]) + p["x2"] ** 2}, 14, q=2)
    true_hv = 0.1 + 2 / 3 + 0.11
    history = c.hypervolume_history()
    assert len(history) == 14 and np.all(np.diff(history) >= -1e-12)
    assert history[-1] >= 0.8 * true_hv
    assert history[-1] > history[5]  # the model-based points added volume
    front = c.pareto()
    S = np.asarray([[t.outcomes["f1"], t.outcomes["f2"]] for t in c.trials])
    for t in front:  # nothing observed dominates a reported Pareto point
        p = np.asarray([t.outcomes["f1"], t.outcomes["f2"]])
        assert not np.any(np.all(S <= p, axis=1) & np.any(S < p, axis=1))
    assert all(t.strategy == acquisition for t in c.trials[6:])


def test_campaign_hypervolume_measures_from_the_acquisitions_reference():
    """One reference-point rule: the campaign's default hypervolume equals the volume
    above the reference the engine's hypervolume acquisitions use, and both equal a
    hand-computed staircase."""
    from active_learning import hypervolume
    from workbench.engine.acquisitions import reference

    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("ref", space, [wb.Objective("yield", "maximize"),
                                   wb.Objective("cost", "minimize")], tracking=None,
                    initial_design={"n": 3})
    outcomes = [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]  # scores (1, -1), (2, -2), (3, -3)
    for t, (y, cost) in zip(c.ask(3), outcomes):
        c.tell(t.id, {"yield": y, "cost": cost})
    # Ranges 2 and 2: the reference sits 0.2 below the worst, at scores (0.8, -3.2);
    # yield steps 0.8 -> 1 -> 2 -> 3 under heights 2.2, 1.2, 0.2.
    expected = 0.2 * 2.2 + 1.0 * 1.2 + 1.0 * 0.2
    Y = np.asarray(outcomes)
    ref = reference(c.problem, Y)
    np.testing.assert_allclose(ref, [0.8, -3.2], rtol=1e-12)
    assert hypervolume(c.problem.scores(Y), ref) == pytest.approx(expected, rel=1e-12)
    assert c.hypervolume() == pytest.approx(expected, rel=1e-12)
    # The history keeps that one reference: 0.2 * 2.2, then + 1.0 * 1.2, then + 0.2.
    assert c.hypervolume_history() == pytest.approx([0.44, 1.64, expected], rel=1e-12)
    # A given reference (user units) is the same for both as well.
    assert c.hypervolume([0.0, 4.0]) == pytest.approx(1 * 3 + 1 * 2 + 1 * 1, rel=1e-12)


def test_default_acquisition_for_several_objectives_is_analytic_only_where_safe():
    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0)])

    def kind(objectives=("f1", "f2"), target=None, **options):
        objs = [wb.Objective(n, "minimize") for n in objectives]
        if target is not None:
            objs[-1] = wb.Objective(objectives[-1], target=target)
        return wb.Campaign("mo", space, objs, tracking=None, **options).problem.acquisition.type

    assert kind(("f1",)) == "log_ei"
    assert kind() == kind(("f1", "f2", "f3")) == "log_ehvi"  # exact GP, simulator-like data
    assert kind(("f1", "f2", "f3", "f4")) == "qlog_nehvi"   # box decompositions up to 3
    assert kind(target=2.0) == "qlog_nehvi"                  # a target is not a front
    assert kind(surrogate={"type": "ensemble"}) == "qlog_nehvi"  # not a Gaussian posterior
    assert kind(surrogate={"noise_prior": "lab"}) == "qlog_nehvi"  # noisy incumbents
    assert kind(acquisition={"batch_size": 4}) == "qlog_nehvi"     # joint batches
    assert kind(acquisition={"type": "parego"}) == "parego"        # a choice is kept


def test_objective_with_a_target_is_brought_to_it():
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("tgt", space, [wb.Objective("viscosity", target=2.0)], tracking=None,
                    acquisition=FAST)
    _run(c, lambda p: {"viscosity": 4.0 * p["x"] ** 2}, 10)
    # viscosity 2.0 at x = sqrt(1/2).
    assert abs(c.best().outcomes["viscosity"] - 2.0) < 0.05
    assert abs(c.best().params["x"] - math.sqrt(0.5)) < 0.02


def test_context_parameters_are_held_and_required():
    space = wb.SearchSpace([wb.Continuous("temperature", 20.0, 80.0),
                            wb.Continuous("humidity", 0.0, 1.0)])
    c = wb.Campaign("ctx", space, [wb.Objective("y", "maximize")], tracking=None,
                    context=["humidity"], acquisition=FAST)
    f = lambda p: -((p["temperature"] - 30 - 40 * p["humidity"]) / 60) ** 2
    rng = np.random.default_rng(0)
    for _ in range(10):
        h = float(rng.uniform())
        (t,) = c.ask(1, context={"humidity": h})
        assert t.params["humidity"] == pytest.approx(h, abs=1e-12)
        c.tell(t.id, f(t.params))
    # The model follows the context: its best temperature at humidity h is near the
    # optimum 30 + 40 h (a proposal may still explore elsewhere).
    grid = np.linspace(20.0, 80.0, 61)
    for h in (0.1, 0.9):
        (t,) = c.ask(1, context={"humidity": h})
        assert t.params["humidity"] == pytest.approx(h, abs=1e-12)
        c.tell(t.id, f(t.params))
        mean = c.predict([{"temperature": T, "humidity": h} for T in grid])["y_mean"]
        assert abs(grid[int(np.argmax(mean))] - (30 + 40 * h)) < 8.0
    with pytest.raises(wb.CampaignError, match="context"):
        c.ask(1)


def test_user_points_come_first():
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Categorical("c", ["a", "b"])])
    points = [{"x": 0.25, "c": "b"}, {"x": 0.75, "c": "a"}]
    c = wb.Campaign("pts", space, [wb.Objective("y", "maximize")], tracking=None,
                    initial_design={"type": "points", "points": points, "n": 3})
    got = [t.params for t in c.ask(3)]
    assert got[:2] == points
    assert [t.strategy for t in c.trials] == ["points"] * 3


def test_stopping_rule_stops_run_and_the_reason_is_kept(tmp_path):
    spec = {
        "name": "stop", "space": [{"name": "x", "type": "continuous", "low": 0.0, "high": 1.0}],
        "objectives": [{"name": "y", "direction": "maximize"}],
        "stopping": [{"type": "target", "value": 0.9}],
        "acquisition": FAST, "budget": 40, "tracking": None,
        "store": str(tmp_path / "stop.zarr"),
    }
    c = wb.Campaign.from_dict(spec)
    c.run(lambda p: p["x"])
    n = len(c.trials)
    assert n < 40 and c.best().outcomes["y"] >= 0.9
    assert c.stopped.startswith("target reached")
    assert wb.Campaign.open(tmp_path / "stop.zarr").stopped == c.stopped


@pytest.mark.parametrize("surrogate", [
    {"type": "gp", "kernel": "rbf", "warping": True},
    {"type": "gp", "noise": 1e-4},
    {"type": "ensemble", "members": 4, "hidden": [16], "epochs": 30},
    {"type": "bll", "hidden": [16], "epochs": 30},
    {"type": "svgp", "num_inducing": 8},
    {"type": "saas", "num_warmup": 32, "num_samples": 32},
    {"type": "deep_kernel", "hidden": [16], "features": 2, "restarts": 1},
])
def test_every_surrogate_type_drives_a_campaign(surrogate):
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Continuous("z", 0.0, 1.0)])
    c = wb.Campaign("s", space, [wb.Objective("y", "maximize")], tracking=None,
                    surrogate=surrogate, acquisition=FAST, initial_design={"n": 6})
    f = lambda p: math.sin(6 * p["x"]) + 0.1 * p["z"]
    _run(c, f, 6)
    trials = c.ask(3)  # a batch: believer fantasies or pending points
    X = np.asarray([[t.params["x"], t.params["z"]] for t in trials])
    distinct = np.min(np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(3)) > 1e-6
    values = [t.acquisition_value for t in trials]
    # Each point of the batch is scored given the earlier ones: its gain can only shrink,
    # and a repeat must be worth much less than the first pick.
    assert values[1] <= values[0] + 1e-9 and values[2] <= values[0] + 1e-9
    assert distinct or values[1] < values[0] - 1.0
    if surrogate.get("noise"):  # an almost noiseless GP: believer fantasies repel at once
        assert distinct
    import json

    audit = json.loads(trials[0].audit)
    assert audit["model"] == surrogate["type"]
    assert audit["fantasy_mode"] == ("kriging_believer"
                                     if surrogate["type"] in ("gp", "saas", "deep_kernel")
                                     else "pending_points")
    for t in trials:
        assert np.isfinite(t.prediction["y"].mean) and t.prediction["y"].std >= 0
    if surrogate.get("kernel"):
        assert "rbf" in json.dumps(audit["hyperparameters"])


def test_candidate_pool_proposes_only_untried_rows_and_finds_the_pool_best(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.uniform(size=(300, 2))
    cat = rng.choice(["a", "b"], size=300)
    y = -((X[:, 0] - 0.3) ** 2 + (X[:, 1] - 0.6) ** 2) + np.where(cat == "a", 0.0, -0.1)
    import pandas as pd

    pd.DataFrame({"x1": X[:, 0], "x2": X[:, 1], "c": cat}).to_csv(tmp_path / "pool.csv",
                                                                  index=False)
    table = {(round(a, 9), round(b, 9), c): v for (a, b), c, v in zip(X, cat, y)}
    space = wb.SearchSpace([wb.Continuous("x1", 0, 1), wb.Continuous("x2", 0, 1),
                            wb.Categorical("c", ["a", "b"])])
    spec = {"name": "pool", "space": [p.model_dump() for p in space.parameters],
            "objectives": [{"name": "y", "direction": "maximize"}],
            "candidates": {"csv": str(tmp_path / "pool.csv")}, "tracking": None,
            "store": str(tmp_path / "pool.zarr"), "initial_design": {"n": 5}}
    c = wb.Campaign.from_dict(spec)
    seen = set()
    for _ in range(8):
        for t in c.ask(2):
            key = (round(t.params["x1"], 9), round(t.params["x2"], 9), t.params["c"])
            assert key in table and key not in seen  # a pool row, never twice
            seen.add(key)
            c.tell(t.id, table[key])
    assert c.best().outcomes["y"] >= np.sort(y)[-3]  # among the pool's three best


try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    st = None


@settings(max_examples=4, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_property_every_proposal_is_valid_and_feasible(data):
    """Random mixed spaces with a random feasible linear constraint: every proposal
    (design and model) lies in the bounds, on the integer grid, among the choices,
    and satisfies the constraint to 1e-9."""
    n_cont = data.draw(st.integers(2, 3))
    params = [wb.Continuous(f"x{i}", data.draw(st.floats(-5, 0)), data.draw(st.floats(1, 5)))
              for i in range(n_cont)]
    if data.draw(st.booleans()):
        params.append(wb.Integer("k", 0, data.draw(st.integers(1, 6))))
    if data.draw(st.booleans()):
        params.append(wb.Categorical("c", ["a", "b", "c"][: data.draw(st.integers(2, 3))]))
    w = [data.draw(st.floats(0.1, 2.0)) for _ in range(n_cont)]
    # Feasible by construction: the lower corner gives sum(w * low) < bound.
    bound = sum(wi * p.low for wi, p in zip(w, params)) + data.draw(st.floats(0.5, 3.0))
    text = " + ".join(f"{wi!r}*x{i}" for i, wi in enumerate(w)) + f" <= {bound!r}"
    space = wb.SearchSpace(params, constraints=[text])
    c = wb.Campaign("prop", space, [wb.Objective("y", "minimize")], tracking=None,
                    acquisition={"raw_samples": 64, "num_restarts": 2, "steps": 15},
                    surrogate={"restarts": 1}, initial_design={"n": 4},
                    seed=data.draw(st.integers(0, 1000)))
    f = lambda p: sum((p[f"x{i}"] - 0.5) ** 2 for i in range(n_cont)) + p.get("k", 0) * 0.1
    for _ in range(3):
        for t in c.ask(2):
            p = t.params
            space.validate(p)  # bounds, integer grid, choices
            lhs = sum(wi * p[f"x{i}"] for i, wi in enumerate(w))
            assert lhs <= bound + 1e-9 * max(1.0, abs(bound))
            c.tell(t.id, f(p))


def test_prior_from_a_related_campaign_warm_starts_the_surrogate(tmp_path):
    from workbench.transfer import export_prior, save_prior

    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    f = lambda p: math.sin(6 * p["x"])
    source = wb.Campaign("src", space, [wb.Objective("y", "maximize")], tracking=None,
                         acquisition=FAST)
    _run(source, f, 12)
    save_prior(export_prior(source), tmp_path / "prior.json")
    spec = {"name": "dst", "space": [{"name": "x", "type": "continuous", "low": 0.0,
                                      "high": 1.0}],
            "objectives": [{"name": "y", "direction": "maximize"}], "tracking": None,
            "store": str(tmp_path / "dst.zarr"), "surrogate": {"prior": "prior.json"},
            "initial_design": {"n": 2}, "acquisition": FAST}
    import yaml

    (tmp_path / "dst.yaml").write_text(yaml.safe_dump(spec))
    c = wb.Campaign.from_yaml(tmp_path / "dst.yaml")  # the prior path is relative to the spec
    shifted = lambda p: 2.0 * f(p) + 1.0  # the same shape, scaled and shifted
    _run(c, shifted, 2)
    (t,) = c.ask(1)
    # Two observations alone cannot place the peak; the prior does (sin(6x) peaks at pi/12).
    assert abs(t.params["x"] - math.pi / 12) < 0.04  # cold, from the same two points: 0.157


@pytest.mark.parametrize("kind, mode", [("log_ei", "kriging_believer"),
                                        ("qlog_nei", "pending_points")])
def test_batches_are_built_greedily_with_fantasies(kind, mode):
    import json

    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Continuous("z", 0.0, 1.0)])
    c = wb.Campaign("q", space, [wb.Objective("y", "maximize")], tracking=None,
                    acquisition={**FAST, "type": kind}, initial_design={"n": 6})
    _run(c, lambda p: math.sin(6 * p["x"]) + 0.1 * p["z"], 6)
    batch = c.ask(4)
    X = np.asarray([[t.params["x"], t.params["z"]] for t in batch])
    assert np.min(np.linalg.norm(X[:, None] - X[None], axis=-1) + np.eye(4)) > 1e-3
    assert {json.loads(t.audit)["fantasy_mode"] for t in batch} == {mode}
    values = [t.acquisition_value for t in batch]
    assert all(v <= values[0] + 1e-9 for v in values)  # each pick given the earlier ones


def test_constraint_outcomes_survive_reopening(tmp_path):
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("keep", space, [wb.Objective("y", "maximize")], tracking=None,
                    outcome_constraints=["impurity <= 0.5"], store=tmp_path / "k.zarr")
    for t in c.ask(3):
        c.tell(t.id, {"y": t.params["x"], "impurity": 1 - t.params["x"]})
    c.compact()
    again = wb.Campaign.open(tmp_path / "k.zarr", tracking=None)
    assert [t.outcomes for t in again.trials] == [t.outcomes for t in c.trials]
    assert "impurity" in again.data and "impurity" in again.to_frame().columns
    assert again.best().id == c.best().id


@pytest.mark.parametrize(("oracle", "chosen", "expected"), [
    ({"dataset": "shields_arylation"}, "auto", "lab"),
    ({"dataset": "shields_arylation", "mode": "emulator"}, "auto", "low"),
    ({"command": "echo {x}"}, "auto", "lab"),
    ({"builtin": "branin"}, "auto", "low"),
    (None, "auto", "low"),
    (None, "lab", "lab"),
    ({"dataset": "shields_arylation"}, "low", "low"),
])
def test_noise_prior_follows_the_oracle_unless_chosen(oracle, chosen, expected):
    """Recorded measurements and lab commands get the measurement prior; simulators and
    functions the tight one; an explicit ``surrogate.noise_prior`` always wins."""
    from workbench.engine import noise_prior_of
    from workbench.spec import parse_spec

    space = ([{"name": "x", "type": "continuous", "low": 0.0, "high": 1.0}]
             if oracle is None or "dataset" not in oracle else
             [{"name": n, "type": "categorical", "choices": c} for n, c in (
                 ("base", ["Cesium acetate", "Cesium pivalate", "Potassium acetate",
                           "Potassium pivalate"]),
                 ("ligand", ["XPhos", "PPh3"]), ("solvent", ["DMAc", "p-Xylene"]),
                 ("concentration", ["0.057", "0.1", "0.153"]),
                 ("temperature", ["90", "105", "120"]))])
    if oracle is not None and "builtin" in oracle:
        space = [{"name": "x1", "type": "continuous", "low": -5.0, "high": 10.0},
                 {"name": "x2", "type": "continuous", "low": 0.0, "high": 15.0}]
    spec = {"name": "np", "space": space, "tracking": None,
            "objectives": [{"name": "yield" if oracle and "dataset" in oracle else "y",
                            "direction": "maximize"}],
            "surrogate": {"noise_prior": chosen}}
    if oracle is not None:
        spec["oracle"] = oracle
    assert noise_prior_of(parse_spec(spec, source="test")) == expected


def test_acquisition_starts_near_the_best_feasible_observations():
    from workbench.engine.incumbents import ANCHORS, anchors

    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0)])
    c = wb.Campaign("anch", space, [wb.Objective("y", "minimize")], tracking=None,
                    outcome_constraints=["g <= 0"])
    X = np.asarray([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]])
    Y = np.asarray([[5.0, -1.0], [1.0, 2.0], [3.0, -0.5], [4.0, 0.0]])  # (y, g)
    near = anchors(c.problem, X, Y, np.arange(2))
    # The best y (row 1) is infeasible: the best feasible one is row 2.
    assert ANCHORS == 1 and near.shape == (1, 2)
    np.testing.assert_array_equal(near[0], X[2])
    # Two objectives: points of the feasible Pareto front, the middle one first.
    c2 = wb.Campaign("anch2", space, [wb.Objective("a", "minimize"),
                                      wb.Objective("b", "minimize")], tracking=None)
    Y2 = np.asarray([[0.0, 3.0], [1.0, 1.0], [3.0, 0.0], [2.0, 2.0]])  # row 3 dominated
    near2 = anchors(c2.problem, X, Y2, np.arange(2))
    np.testing.assert_array_equal(near2, X[1:2])


@pytest.mark.parametrize("kind", ["log_ehvi", "qlog_nehvi"])
def test_infeasible_observations_are_no_part_of_the_hypervolume_front(kind):
    import jax
    import jax.numpy as jnp

    from workbench.engine import build_acquisition, fit_surrogate

    space = wb.SearchSpace([wb.Continuous("x1", 0.0, 1.0), wb.Continuous("x2", 0.0, 1.0)])
    c = wb.Campaign("feasfront", space, [wb.Objective("a", "maximize"),
                                         wb.Objective("b", "maximize")], tracking=None,
                    outcome_constraints=["g <= 0"],
                    acquisition={"type": kind, "ref_point": [0.0, 0.0]})
    problem = c.problem
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 2))
    a, b = X[:, 0], X[:, 1]
    g = np.where(np.arange(12) == int(np.argmax(a + b)), 1.0, -1.0)  # the best is infeasible
    Y = np.stack([a, b, g], axis=1)
    model, _ = fit_surrogate(problem, X, Y, jax.random.key(0), 16, None)
    acq = build_acquisition(problem, model, X, Y, float("nan"), jax.random.key(1), None)
    bad = int(np.argmax(a + b))
    # Score the objectives alone (the feasibility factor is another matter): at the
    # infeasible point, the improvement over the feasible front is its whole gain.
    base = acq.acquisition if hasattr(acq, "acquisition") else acq
    value = float(base(jnp.asarray(X[bad:bad + 1]))[0])
    feasible = Y[g <= 0, :2]
    front = feasible[_pareto_rows(feasible)]
    gain = _hv2(np.vstack([front, Y[bad, :2]])) - _hv2(front)
    assert gain > 0.01
    assert value == pytest.approx(np.log(gain), abs=0.15)


def _pareto_rows(Y):
    return np.asarray([not np.any(np.all(Y >= y, axis=1) & np.any(Y > y, axis=1)) for y in Y])


def _hv2(P):
    """Area dominated by P (maximised, reference 0, 0): a sweep."""
    P = P[np.argsort(-P[:, 0])]
    area, top = 0.0, 0.0
    for x, y in P:
        if y > top:
            area += x * (y - top)
            top = y
    return area
