"""How many elements a composition may use: ``max_count`` / ``min_count`` ("at most 3 of
these 8 elements"), honoured exactly by every design point and proposal."""

from __future__ import annotations

import json

import numpy as np
import pytest

import workbench as wb
from active_learning.cardinality import MAX_ENUMERATED_SUPPORTS, count_supports
from workbench.space import Composition
from workbench.spec import parse_spec

ELEMENTS = ["Cu", "Ni", "Pd", "Ag", "Pt", "Au", "Al", "Fe"]
TOL = 1e-9
FAST = {"raw_samples": 64, "num_restarts": 4, "steps": 30}


@pytest.mark.parametrize("fields, message", [
    ({"max_count": 9}, r"max_count: got 9; expected 1 to the number of elements \(8\)"),
    ({"max_count": 0}, r"max_count: got 0; expected 1 to the number of elements"),
    ({"min_count": -1}, r"min_count: got -1; expected 0 to the number of elements"),
    ({"max_count": 2, "min_count": 3}, r"min_count: got 3 with max_count 2; expected"
                                       r" min_count <= max_count"),
    ({"max_count": 1, "bounds": {"Cu": [0.1, 0.9], "Ni": [0.05, 0.5]}},
     r"max_count: got 1, but \['Cu', 'Ni'\] have lower bounds above 0 and are always"
     r" present; expected max_count >= 2"),
    ({"max_count": 2, "bounds": {e: [0.0, 0.4] for e in ELEMENTS}},
     r"max_count: got 2; the upper bounds of any 2 elements sum to at most 0.8"),
    ({"max_count": 3, "resolution": 0.05, "bounds": {e: [0.0, 0.34] for e in ELEMENTS}},
     r"max_count: got 3; the upper bounds \(on the resolution grid\) of any 3 elements sum to"
     r" at most 0.9"),
    ({"min_count": 3, "resolution": 0.5}, r"min_count: got 3 with resolution 0.5; expected"
                                          r" at most 2 elements present"),
])
def test_bad_counts_name_the_field_the_value_and_what_was_expected(fields, message):
    with pytest.raises(ValueError, match=message):
        Composition("alloy", ELEMENTS, **fields)
    spec = {"name": "a", "objectives": [{"name": "y", "direction": "maximize"}],
            "space": [{"name": "alloy", "type": "composition", "elements": ELEMENTS, **fields}]}
    with pytest.raises(wb.SpecError, match=r"space\[0\]: " + message):
        parse_spec(spec)


def test_decoding_keeps_absent_elements_at_zero_and_present_ones_on_the_grid():
    p = Composition("alloy", ELEMENTS[:4], max_count=3, min_count=2, resolution=0.05)
    # Off the simplex by round-off, one element just above 0: absent stays 0, the small
    # present one keeps a grid step (min_count), the sum is one.
    (v,) = p.decode(np.asarray([[0.0, 0.7 - 1e-13, 0.3, 1e-5]]))
    assert v == pytest.approx({"Cu": 0.0, "Ni": 0.65, "Pd": 0.3, "Ag": 0.05})
    assert v["Cu"] == 0.0 and abs(sum(v.values()) - 1.0) < 1e-12
    q = Composition("alloy", ELEMENTS[:4], max_count=2)
    (w,) = q.decode(np.asarray([[0.0, 0.6 - 3e-13, 0.0, 0.4]]))
    assert w["Cu"] == 0.0 and w["Pd"] == 0.0 and abs(sum(w.values()) - 1.0) < 1e-12
    three = {"Cu": 0.2, "Ni": 0.3, "Pd": 0.5, "Ag": 0.0}
    assert wb.SearchSpace([q]).feasible([{"alloy": w}, {"alloy": three}]).tolist() == \
        [True, False]


def _check(rows, max_count=3):
    for r in rows:
        f = np.asarray([r["alloy"][e] for e in ELEMENTS])
        assert np.count_nonzero(f) <= max_count, r
        assert abs(f.sum() - 1.0) <= TOL and f.min() >= 0.0, r


def _oracle(p):
    a = p["alloy"]
    return {"y": a["Cu"] + 0.5 * a["Ni"] - p["t"] ** 2}


@pytest.mark.slow
def test_campaign_points_have_at_most_three_elements_and_replay_equal(tmp_path):
    # Beside other constraints: an NChooseK over continuous parameters and a linear one.
    space = wb.SearchSpace(
        [wb.Composition("alloy", ELEMENTS, max_count=3), wb.Continuous("t", 0.0, 1.0),
         wb.Continuous("a", 0.0, 1.0), wb.Continuous("b", 0.0, 1.0)],
        constraints=["t + a + b <= 1.5", wb.NChooseK(["a", "b"], max_count=1)])
    # C(8, 3) = 56 supports of the composition alone: a sample of them is searched.
    assert count_supports(space.domain()) > MAX_ENUMERATED_SUPPORTS
    store = tmp_path / "alloy.zarr"
    campaign = wb.Campaign("sparse", space, [wb.Objective("y", "maximize")], store=store,
                           tracking=None, initial_design={"n": 8}, acquisition=FAST)
    campaign.run(_oracle, budget=11)
    trials = campaign.trials
    assert sum(t.strategy != "sobol" for t in trials) == 3
    _check([t.params for t in trials])
    assert all(min(t.params["a"], t.params["b"]) == 0.0 for t in trials)
    assert space.feasible([t.params for t in trials]).all()
    # The count survives the spec round trip and the store: reopened, the same trials.
    spec = campaign.spec.to_dict()
    assert spec["space"][0]["max_count"] == 3
    assert wb.Campaign.from_dict(json.loads(json.dumps(spec))).space == space
    reopened = wb.Campaign.open(store, tracking=None)
    assert reopened.space == space and reopened.space["alloy"].max_count == 3
    assert [(t.id, t.params, t.outcomes) for t in reopened.trials] == \
        [(t.id, t.params, t.outcomes) for t in trials]
    _check([t.params for t in reopened.ask(2)])


@pytest.mark.slow
def test_yaml_spec_with_max_count_designs_and_proposes_within_it(tmp_path):
    spec = tmp_path / "alloy.yaml"
    spec.write_text(
        "name: sparse-alloy\n"
        "space:\n"
        f"  - {{name: alloy, type: composition, elements: [{', '.join(ELEMENTS)}],"
        " max_count: 3, min_count: 2}\n"
        "  - {name: t, type: continuous, low: 0.0, high: 1.0}\n"
        "objectives: [{name: y, direction: maximize}]\n"
        "initial_design: {n: 6}\n"
        "acquisition: {raw_samples: 64, num_restarts: 4, steps: 30, batch_size: 2}\n"
        "tracking: null\nstore: null\nseed: 3\n")
    campaign = wb.Campaign.from_yaml(spec)
    assert campaign.space["alloy"].min_count == 2
    for t in campaign.ask(6):
        campaign.tell(t.id, _oracle(t.params))
    proposals = campaign.ask(2)
    rows = [t.params for t in campaign.trials]
    _check(rows)
    assert all(np.count_nonzero(list(r["alloy"].values())) >= 2 for r in rows)
    assert len(proposals) == 2 and all(t.strategy != "sobol" for t in proposals)


def test_schema_documents_the_counts():
    from workbench.cli_json import spec_schema

    text = json.dumps(spec_schema())
    assert '"max_count"' in text and "elements present" in text


def test_optimum_on_two_elements_is_found():
    # -|f - f*|^2 with f* = 70 % Cu, 30 % Ni: the optimum uses two of six elements.
    target = {"Cu": 0.7, "Ni": 0.3}
    elements = ELEMENTS[:6]
    space = wb.SearchSpace([wb.Composition("alloy", elements, max_count=2)])

    def distance(p):
        return {"y": -sum((p["alloy"][e] - target.get(e, 0.0)) ** 2 for e in elements)}

    campaign = wb.Campaign("two", space, [wb.Objective("y", "maximize")], tracking=None,
                           seed=0, initial_design={"n": 6}, acquisition=FAST)
    campaign.run(distance, budget=16)
    _check([{"alloy": {**t.params["alloy"], "Al": 0.0, "Fe": 0.0}} for t in campaign.trials],
           max_count=2)
    best = campaign.best()
    # Regret below 1e-3 (within about 0.02 of 70/30); seeds 0-5 all reach 3e-4 by trial 13.
    assert best.outcomes["y"] >= -1e-3, best.params


@pytest.mark.parametrize("fields", [{"max_count": 3}, {"max_count": 3, "resolution": 0.05},
                                    {"max_count": 4, "min_count": 2, "resolution": 0.1}])
def test_decoding_random_points_of_a_support_keeps_the_count(fields):
    p = Composition("alloy", ELEMENTS, **fields)
    rng = np.random.default_rng(1)
    for _ in range(200):
        z = np.zeros(len(ELEMENTS))
        present = rng.choice(len(ELEMENTS), p.max_count, replace=False)
        z[present] = rng.dirichlet(np.ones(p.max_count)) + rng.normal(0, 1e-12, p.max_count)
        (v,) = p.decode(np.clip(z, 0.0, 1.0)[None])
        f = np.asarray([v[e] for e in ELEMENTS])
        assert p.min_count <= np.count_nonzero(f) <= p.max_count
        assert set(np.flatnonzero(f)) <= set(present.tolist())
        assert abs(f.sum() - 1.0) <= 1e-12


@pytest.mark.parametrize("design", ["sobol", "maximin"])
def test_an_always_present_element_takes_one_of_the_places(design):
    alloy = wb.Composition("alloy", ELEMENTS, max_count=2, bounds={"Cu": (0.2, 0.8)})
    campaign = wb.Campaign("cu", wb.SearchSpace([alloy]), [wb.Objective("y", "maximize")],
                           tracking=None, initial_design={"type": design, "n": 8})
    for t in campaign.ask(8):
        f = t.params["alloy"]
        assert 0.2 <= f["Cu"] <= 0.8 and sum(v != 0.0 for v in f.values()) == 2
        assert abs(sum(f.values()) - 1.0) <= TOL
