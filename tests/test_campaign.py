"""The campaign's ask / tell / run contract, its errors, and a closed loop on Branin."""

import math
import warnings

import numpy as np
import pytest

import workbench as wb
from workbench.errors import CampaignError


def _space():
    return wb.SearchSpace([
        wb.Continuous("temperature", 30.0, 110.0, unit="degC"),
        wb.Continuous("loading", 0.5, 2.5, log=True),
        wb.Integer("cycles", 1, 10),
        wb.Categorical("ligand", ["XPhos", "SPhos", "RuPhos"]),
    ])


def _yield(p):
    bonus = {"XPhos": 5.0, "SPhos": 12.0, "RuPhos": 0.0}[p["ligand"]]
    return 60 - 0.01 * (p["temperature"] - 80) ** 2 - 3 * math.log(p["loading"]) ** 2 \
        + bonus - 0.5 * (p["cycles"] - 6) ** 2


def _campaign(**kw):
    kw.setdefault("tracking", None)
    return wb.Campaign("suzuki", _space(), [wb.Objective("yield", "maximize")], seed=0, **kw)


def test_ask_returns_valid_pending_trials_with_predictions_after_the_design():
    c = _campaign(initial_design={"n": 5})
    first = c.ask(5)
    assert [t.id for t in first] == [0, 1, 2, 3, 4]
    assert all(t.prediction is None and t.strategy == "sobol" for t in first)
    for t in first:
        assert c.space.validate(t.params) == t.params
        c.tell(t.id, {"yield": _yield(t.params)})
    (t,) = c.ask(1)
    assert t.strategy == "log_ei" and t.status == "pending"
    pred = t.prediction["yield"]
    assert np.isfinite(pred.mean) and pred.std > 0
    assert isinstance(t.params["cycles"], int) and t.params["ligand"] in ("XPhos", "SPhos", "RuPhos")
    assert 30.0 <= t.params["temperature"] <= 110.0
    ds = c.data
    assert ds.sizes["trial"] == 6 and ds["status"].values[-1] == "pending"
    assert ds["temperature"].attrs["units"] == "degC"
    assert ds["predicted_mean"].sel(objective="yield").values[-1] == pred.mean


def test_batches_are_distinct_and_pending_points_are_avoided():
    c = _campaign(initial_design={"n": 6})
    for t in c.ask(6):
        c.tell(t.id, _yield(t.params))
    batch = c.ask(4)
    assert len({t.batch for t in batch}) == 1
    enc = c.space.encode([t.params for t in batch])
    dists = np.linalg.norm(enc[:, None] - enc[None], axis=-1)[np.triu_indices(4, 1)]
    assert dists.min() > 1e-3
    # A second worker asking while the batch is pending gets yet another point.
    (other,) = c.ask(1)
    enc_other = c.space.encode([other.params])
    assert np.linalg.norm(enc - enc_other, axis=-1).min() > 1e-3


def test_tell_errors_name_the_problem_and_change_nothing():
    c = _campaign(initial_design={"n": 3})
    (t,) = c.ask(1)
    before = c.to_frame()
    cases = [
        (lambda: c.tell(99, {"yield": 1.0}), "trial_id: got 99"),
        (lambda: c.tell("0", {"yield": 1.0}), "expected an integer trial id"),
        (lambda: c.tell(t.id, {"yeild": 1.0}), r"missing \['yield'\], unknown \['yeild'\]"),
        (lambda: c.tell(t.id, {"yield": "high"}), "outcomes.yield: got 'high'"),
        (lambda: c.tell(t.id, {"yield": True}), "expected a number"),
        (lambda: c.tell(t.id, [1.0]), "expected a dict"),
    ]
    for call, message in cases:
        with pytest.raises(CampaignError, match=message):
            call()
    assert c.to_frame().equals(before)


def test_non_finite_outcomes_record_a_failure_and_the_loop_goes_on():
    c = _campaign(initial_design={"n": 3}, bad_observations="fail")
    trials = c.ask(3)
    with pytest.warns(RuntimeWarning, match="not finite"):
        failed = c.tell(trials[0].id, {"yield": float("nan")})
    assert failed.status == "failed" and "outcomes.yield: got nan" in failed.failure_reason
    c.tell_failed(trials[1].id, "reactor clogged")
    c.tell(trials[2].id, {"yield": 50.0})
    with pytest.raises(CampaignError, match="recorded as failed"):
        c.tell(trials[1].id, {"yield": 1.0})
    # Telling the same values again is harmless; other values are refused.
    assert c.tell(trials[2].id, {"yield": 50.0}).outcomes == {"yield": 50.0}
    with pytest.raises(CampaignError, match="already told"):
        c.tell(trials[2].id, {"yield": 51.0})
    with pytest.raises(CampaignError, match="already completed"):
        c.tell_failed(trials[2].id, "oops")
    # Only one completed trial: the next proposal is still space-filling, and works.
    (nxt,) = c.ask(1)
    assert nxt.strategy == "sobol"
    assert c.best().id == trials[2].id
    ds = c.data
    assert list(ds["status"].values) == ["failed", "failed", "completed", "pending"]
    assert ds["failure_reason"].values[1] == "reactor clogged"
    assert np.isnan(ds["yield"].values[0])


def test_failed_trials_never_reach_the_model():
    c = _campaign(initial_design={"n": 4})
    for t in c.ask(4):
        c.tell(t.id, _yield(t.params))
    for t in c.ask(2):
        c.tell_failed(t.id, "broken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no NaN may leak into the fit
        (t,) = c.ask(1)
    assert np.isfinite(t.prediction["yield"].mean)


def test_run_records_oracle_failures_and_reaches_the_budget():
    calls = []

    def flaky(params):
        calls.append(params)
        if len(calls) == 3:
            raise RuntimeError("sensor offline")
        if len(calls) == 5:
            return {"yield": "n/a"}
        return _yield(params)

    c = _campaign(initial_design={"n": 4})
    best = c.run(flaky, budget=9)
    ds = c.data
    assert ds.sizes["trial"] == 9 and len(calls) == 9
    status = list(ds["status"].values)
    assert status.count("failed") == 2 and status.count("completed") == 7
    assert "RuntimeError: sensor offline" in ds["failure_reason"].values[2]
    assert "unusable result" in ds["failure_reason"].values[4]
    assert best.outcomes["yield"] == np.nanmax(ds["yield"].values)


def test_same_seed_same_proposals():
    def proposals(seed):
        c = wb.Campaign("r", _space(), [wb.Objective("yield", "maximize")], tracking=None,
                        seed=seed, initial_design={"n": 4})
        c.run(_yield, budget=7)
        return c.to_frame()[["temperature", "loading", "cycles", "ligand"]]

    a, b = proposals(3), proposals(3)
    assert a.equals(b)
    assert not a.equals(proposals(4))


def test_branin_closed_loop_reaches_low_regret():
    """Closed loop on Branin, 30 evaluations, 5 seeds: median simple regret < 0.05."""
    problem = wb.problems.get("branin")
    regrets = []
    for seed in range(5):
        c = wb.Campaign("branin", problem.space(), [wb.Objective("y", "minimize")],
                        tracking=None, seed=seed)
        best = c.run(problem, budget=30)
        regrets.append(problem.regret(best.outcomes["y"]))
    assert min(regrets) >= -1e-9  # nothing beats the known optimum
    assert np.median(regrets) < 0.05, regrets


@pytest.mark.parametrize("kind", ["log_nei", "qlog_nei", "log_pi", "ucb", "mes",
                                  "max_variance", "ivr", "thompson"])
def test_every_acquisition_type_proposes_valid_new_points(kind):
    problem = wb.problems.get("branin")
    c = wb.Campaign.from_dict({
        "name": f"acq-{kind}", "store": None, "tracking": None, "seed": 1,
        "space": [{"name": "x1", "type": "continuous", "low": -5.0, "high": 10.0},
                  {"name": "x2", "type": "continuous", "low": 0.0, "high": 15.0}],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "initial_design": {"n": 5},
        "acquisition": {"type": kind, "batch_size": 2, "mc_samples": 32,
                        "raw_samples": 256, "num_restarts": 4, "steps": 20},
    })
    c.run(problem, budget=5)
    seen = {(t.params["x1"], t.params["x2"]) for t in c.trials}
    batch = c.ask(2)
    assert [t.strategy for t in batch] == [kind, kind]
    for t in batch:
        assert -5.0 <= t.params["x1"] <= 10.0 and 0.0 <= t.params["x2"] <= 15.0
        assert (t.params["x1"], t.params["x2"]) not in seen
        assert t.prediction["y"].std > 0
    assert batch[0].params != batch[1].params
    if kind == "max_variance":
        # Pure exploration goes where the model knows least: far from the data.
        X = np.array(sorted(seen))
        for t in batch:
            gap = np.min(np.hypot((X[:, 0] - t.params["x1"]) / 15, (X[:, 1] - t.params["x2"]) / 15))
            assert gap > 0.1


def test_run_is_the_one_loop_over_an_inline_executor():
    """Without an executor, run evaluates in this process through the same loop the
    parallel executors use: the same proposals, batch by batch, as an InlineExecutor."""
    from workbench.executors import InlineExecutor

    kw = dict(initial_design={"n": 4}, acquisition={"batch_size": 2})
    plain, inline = _campaign(**kw), _campaign(**kw)
    plain.run(_yield, budget=6)
    inline.run(_yield, budget=6, executor=InlineExecutor(batch_size=2))
    assert [t.params for t in plain.trials] == [t.params for t in inline.trials]
    assert [t.batch for t in plain.trials] == [0, 0, 1, 1, 2, 2]
    assert plain.count("completed") == 6 and plain.count("pending") == 0


def test_public_views_for_other_modules(tmp_path):
    """What plots, reports and the CLI read: counts, feasible trials, training data,
    the engine problem, the store, and a transaction that sees other processes."""
    c = _campaign(store=tmp_path / "c.zarr", outcome_constraints=["cost <= 1"])
    trials = c.ask(3)
    c.tell(trials[0].id, {"yield": 50.0, "cost": 0.5})
    c.tell(trials[1].id, {"yield": 70.0, "cost": 2.0})
    assert c.count("completed") == 2 and c.count("pending") == 1
    assert [t.id for t in c.feasible_trials()] == [0]
    X, Y = c.training_data([t for t in c.trials if t.status == "completed"])
    assert X.shape == (2, c.space.dim) and Y.tolist() == [[50.0, 0.5], [70.0, 2.0]]
    assert list(c.problem.outputs) == ["yield", "cost"]
    assert c.store is not None and c.run_id is None and c.base_dir is None
    assert c.candidates() is None and c.surrogate_state is None
    other = wb.Campaign.open(tmp_path / "c.zarr")
    other.tell(trials[2].id, {"yield": 60.0, "cost": 0.1})
    assert c.count("pending") == 1  # not read yet
    with c.transaction():
        assert c.count("pending") == 0 and c.count("completed") == 3
        c.tell_failed(c.ask(1)[0].id, "clogged")  # re-entrant for the campaign's own calls
    assert wb.Campaign.open(tmp_path / "c.zarr").count("failed") == 1


def test_from_spec_is_the_constructor_the_cli_uses(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("name: e\nspace: [{name: x, type: continuous, low: 0, high: 1}]\n"
                    "objectives: [{name: y, direction: maximize}]\ntracking: null\n"
                    "store: null\n")
    c = wb.Campaign.from_spec(wb.load_spec(path), base_dir=tmp_path)  # as `workbench ask`
    assert c.base_dir == tmp_path and c.name == "e"
    assert [t.params for t in c.ask(2)] == [t.params for t in wb.Campaign.from_yaml(path).ask(2)]
