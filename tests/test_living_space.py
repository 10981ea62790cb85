"""A living search space: ``campaign.update_space`` widens or narrows a range, adds a
level or a parameter, fixes one; the change is a journal event, replayed on reopening,
and the model refits on the new encoding with every past trial kept.
"""

from __future__ import annotations

import json
import re

import pytest

import workbench as wb
from workbench.errors import CampaignError

FAST = {"raw_samples": 64, "num_restarts": 4, "steps": 40}
OPTIMUM = 0.9  # of the 1-D objective, outside the first range [0, 0.5]


def peak(params: dict) -> float:
    return -(params["x"] - OPTIMUM) ** 2


def campaign(store, **kw) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 0.5), wb.Categorical("c", ["a", "b"])])
    return wb.Campaign("living", space, [wb.Objective("y", "maximize")], store=store,
                       tracking=None, initial_design={"n": 3}, acquisition=FAST, **kw)


def run(c: wb.Campaign, n: int) -> list[wb.Trial]:
    out = []
    for _ in range(n):
        t = c.ask(1)[0]
        out.append(c.tell(t.id, peak(t.params)))
    return out


def test_a_widened_range_is_searched_and_the_update_replays_on_reopening(tmp_path):
    store = tmp_path / "c.zarr"
    c = campaign(store)
    run(c, 4)
    assert max(t.params["x"] for t in c.trials) <= 0.5
    c.update_space(wb.Continuous("x", 0.0, 1.5), reason="the reactor takes more")
    after = run(c, 3)
    # The optimum lies in the new part of the range: the refitted model goes there.
    assert any(abs(t.params["x"] - OPTIMUM) < 0.15 for t in after)
    assert all(0.0 <= t.params["x"] <= 1.5 for t in after)
    again = wb.Campaign.open(store)
    assert again.space == c.space and again.space["x"].high == 1.5
    assert [t.params for t in again.trials] == [t.params for t in c.trials]
    [update] = json.loads(again.data.attrs["space_updates"])
    assert update["reason"] == "the reactor takes more" and update["at"]
    assert again.space_updates == c.space_updates == [update]  # read without xarray
    again.compact()  # folded into the snapshot: still the updated space
    third = wb.Campaign.open(store)
    assert third.space == c.space and len(third.trials) == len(c.trials)
    assert third.space_updates == [update]


def test_reopening_with_the_original_or_the_updated_spec_is_not_a_mismatch(tmp_path):
    store = tmp_path / "c.zarr"
    c = campaign(store)
    run(c, 2)
    c.update_space(wb.Continuous("x", 0.0, 1.0))
    assert campaign(store).space["x"].high == 1.0  # the recorded update on top
    updated = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Categorical("c", ["a", "b"])])
    same = wb.Campaign("living", updated, [wb.Objective("y", "maximize")], store=store,
                       tracking=None, initial_design={"n": 3}, acquisition=FAST)
    assert same.space == c.space and len(same.trials) == 2
    other = wb.SearchSpace([wb.Continuous("x", 0.0, 2.0), wb.Categorical("c", ["a", "b"])])
    with pytest.raises(CampaignError, match="space"):
        wb.Campaign("living", other, [wb.Objective("y", "maximize")], store=store,
                    tracking=None)


def test_trials_outside_a_narrowed_range_stay_in_the_record_and_the_model(tmp_path):
    c = campaign(tmp_path / "c.zarr")
    done = run(c, 4)
    c.update_space(wb.Continuous("x", 0.0, 0.2), reason="safety")
    outside = [t for t in c.trials if t.params["x"] > 0.2]
    assert outside and [t.params for t in c.trials] == [t.params for t in done]
    [t] = c.ask(1)
    assert 0.0 <= t.params["x"] <= 0.2
    assert json.loads(t.audit)["n_train"] == len(done)  # every completed trial trains it


def test_an_added_parameter_gives_past_trials_their_value_and_a_fixed_one_is_held(tmp_path):
    store = tmp_path / "c.zarr"
    c = campaign(store)
    run(c, 4)
    c.update_space(wb.Continuous("stir", 100, 500, unit="rpm"),
                   wb.Categorical("c", ["a", "b", "d"]), add={"stir": 300.0},
                   fix={"c": "d"}, reason="new stirrer, new catalyst")
    assert [t.params["stir"] for t in c.trials] == [300.0] * 4
    new = run(c, 2)
    assert all(t.params["c"] == "d" and 100 <= t.params["stir"] <= 500 for t in new)
    assert c.data["stir"].values.tolist()[:4] == [300.0] * 4
    again = wb.Campaign.open(store)
    assert [t.params for t in again.trials] == [t.params for t in c.trials]
    c.update_space(fix={"c": None}, reason="release")  # released: chosen again
    updates = json.loads(wb.Campaign.open(store).data.attrs["space_updates"])
    assert [u["reason"] for u in updates] == ["new stirrer, new catalyst", "release"]
    assert updates[1]["fixed"] == {"c": None}


@pytest.mark.parametrize("args, kw, message", [
    ((wb.Integer("x", 0, 5),), {}, "type"),
    ((wb.Categorical("c", ["b", "z"]),), {}, "choices"),
    ((wb.Continuous("new", 0, 1),), {}, "add.new: missing"),
    ((wb.Continuous("new", 0, 1),), {"add": {"new": 7.0}}, r"add\.new: .*7\.0"),
    ((), {"fix": {"nope": 1.0}}, "fix"),
    ((), {"fix": {"x": 0.9}}, r"fix\.x: .*0\.9"),
    ((), {}, "no parameters"),
    (({"name": "x", "type": "continuous", "low": 1.0, "high": 0.0},), {}, "low"),
])
def test_a_bad_update_is_refused_and_nothing_is_written(tmp_path, args, kw, message):
    store = tmp_path / "c.zarr"
    c = campaign(store)
    run(c, 3)
    before = c.space
    with pytest.raises(CampaignError, match=message):
        c.update_space(*args, **kw)
    assert c.space == before
    assert wb.Campaign.open(store).space == before
    assert json.loads(wb.Campaign.open(store).data.attrs["space_updates"]) == []


def test_a_space_that_constraints_leave_empty_is_refused(tmp_path):
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0), wb.Continuous("z", 0.0, 1.0)],
                           constraints=["x + z >= 1"])
    c = wb.Campaign("tight", space, [wb.Objective("y", "maximize")], tracking=None)
    with pytest.raises(CampaignError, match="no valid point"):
        c.update_space(wb.Continuous("x", 0.0, 0.2), wb.Continuous("z", 0.0, 0.2))


def test_the_space_command_updates_a_store_and_refuses_bad_changes(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from workbench.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.yaml").write_text(
        "name: clispace\n"
        "space:\n"
        "  - {name: temperature, type: continuous, low: 30, high: 110}\n"
        "  - {name: ligand, type: categorical, choices: [A, B]}\n"
        "objectives: [{name: y, direction: maximize}]\n"
        "initial_design: {n: 2}\nstore: exp.zarr\ntracking: null\n")
    runner = CliRunner()
    assert runner.invoke(app, ["ask", "exp.yaml", "-n", "2"]).exit_code == 0
    done = runner.invoke(app, [
        "space", "exp.yaml", "--set", "temperature: {high: 130}",
        "--set", "ligand: {choices: [A, B, C]}", "--set", "stir: {type: integer, low: 1, high: 5}",
        "--past", "stir=3", "--fix", "ligand=C", "--reason", "new reactor"])
    assert done.exit_code == 0, done.output
    c = wb.Campaign.open(tmp_path / "exp.zarr")
    assert c.space["temperature"].high == 130.0 and c.space["temperature"].low == 30.0
    assert c.space["ligand"].choices == ["A", "B", "C"]
    assert [t.params["stir"] for t in c.trials] == [3, 3]
    for args, message in [
        (["--set", "temperature: {type: integer, low: 1, high: 2}"], "type cannot change"),
        (["--set", "temperature: {low: 200}"], "--set temperature: .*low"),
        (["--set", "nope"], "expected one parameter"),
        (["--fix", "ligand"], "NAME=VALUE"),
    ]:
        bad = runner.invoke(app, ["space", "exp.zarr", *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert re.search(message, " ".join(bad.output.split())), bad.output
    shown = runner.invoke(app, ["space", "exp.zarr", "--json"])
    data = json.loads(shown.output)
    assert [u["reason"] for u in data["updates"]] == ["new reactor"]
    assert data["updates"][0]["fixed"] == {"ligand": "C"}


def test_an_update_made_by_another_process_is_followed_by_the_next_ask(tmp_path):
    store = tmp_path / "c.zarr"
    worker = campaign(store)
    run(worker, 3)
    other = wb.Campaign.open(store)  # another process, in effect
    other.update_space(fix={"c": "b"}, reason="only b left")
    [t] = worker.ask(1)
    assert t.params["c"] == "b" and worker.space == other.space
