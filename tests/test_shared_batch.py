"""Shared batch settings: ``ask(n, shared=[...])`` (YAML ``acquisition.shared``) proposes
a batch whose points all hold the same values of the named parameters (one plate, one
temperature), chosen jointly with the rest of the batch.
"""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.errors import CampaignError, SpecError

T_BEST = 70.0  # the separable objective's best temperature


def yield_(p: dict) -> float:
    return -((p["temperature"] - T_BEST) / 50) ** 2 - (p["x"] - 0.3) ** 2


def campaign(store=None, **acquisition) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("temperature", 30.0, 130.0, precision=0.5),
                            wb.Continuous("x", 0.0, 1.0)],
                           constraints=["x <= 0.9"])
    return wb.Campaign("plate", space, [wb.Objective("y", "maximize")], store=store,
                       tracking=None, initial_design={"n": 4},
                       acquisition={"raw_samples": 64, "num_restarts": 4, "steps": 40,
                                    **acquisition})


def test_a_shared_batch_holds_one_value_and_finds_the_best_one(tmp_path):
    store = tmp_path / "plate.zarr"
    c = campaign(store, batch_size=4, shared=["temperature"])  # the spec's default
    rounds = []
    for _ in range(5):
        batch = c.ask(4)
        temps = {t.params["temperature"] for t in batch}
        assert len(temps) == 1  # exactly identical
        (temp,) = temps
        assert 30.0 <= temp <= 130.0 and temp == round(temp * 2) / 2  # on the 0.5 grid
        assert all(0.0 <= t.params["x"] <= 0.9 for t in batch)
        rounds.append(temp)
        for t in batch:
            c.tell(t.id, yield_(t.params))
    assert min(abs(t - T_BEST) for t in rounds[-2:]) <= 10.0, rounds
    again = wb.Campaign.open(store)
    assert [(t.params, t.batch) for t in again.trials] == [(t.params, t.batch) for t in c.trials]


def test_ask_names_the_shared_parameters_and_overrides_the_spec():
    c = campaign()
    free = c.ask(3, shared=[])  # the initial design, unshared
    assert len({t.params["temperature"] for t in free}) == 3
    for t in free:
        c.tell(t.id, yield_(t.params))
    batch = c.ask(3, shared=["x"])
    assert len({t.params["x"] for t in batch}) == 1
    assert len({t.params["temperature"] for t in batch}) > 1
    with pytest.raises(CampaignError, match="at least one left to vary"):
        c.ask(2, shared=["temperature", "x"])


def test_unknown_shared_names_are_refused():
    c = campaign()
    with pytest.raises(CampaignError, match="shared: got 'pressure'"):
        c.ask(2, shared=["pressure"])
    with pytest.raises(SpecError, match="acquisition.shared"):
        campaign(shared=["pressure"])
