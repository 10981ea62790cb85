"""Composition parameters: atomic fractions on the simplex, from Python, YAML and CSV."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import workbench as wb
from workbench.space import Composition

FAST = {"raw_samples": 256, "num_restarts": 4, "steps": 40}


@pytest.mark.parametrize("kwargs, says", [
    ({"elements": ["Cu", "Xx"]}, "not element symbols"),
    ({"elements": ["Cu", "Cu", "Ni"]}, "more than once"),
    ({"elements": ["Cu", "Ni"], "bounds": {"Cu": [0.0, 0.3], "Ni": [0.0, 0.4]}},
     "can sum to one"),
    ({"elements": ["Cu", "Ni"], "bounds": {"Pd": [0.0, 0.4]}}, "not among the elements"),
    ({"elements": ["Cu", "Ni"], "resolution": 0.3}, "expected 1/k"),
    ({"elements": ["Cu", "Ni"], "features": ["colour"]}, "features"),
])
def test_bad_compositions_say_what_is_wrong(kwargs, says):
    with pytest.raises(ValueError, match=says):
        Composition("alloy", **kwargs)


def test_decoded_fractions_sum_to_one_within_bounds_and_on_the_grid():
    p = Composition("alloy", ["Cu", "Ni", "Pd"], bounds={"Cu": (0.2, 0.7)}, resolution=0.05)
    rng = np.random.default_rng(0)
    for v in p.decode(rng.uniform(size=(200, 3))):
        f = np.asarray(list(v.values()))
        assert abs(f.sum() - 1.0) < 1e-12
        assert 0.2 - 1e-12 <= v["Cu"] <= 0.7 + 1e-12 and f.min() >= 0
        np.testing.assert_allclose(f * 20, np.round(f * 20), atol=1e-9)
    value = {"Cu": 0.5, "Ni": 0.25, "Pd": 0.25}
    np.testing.assert_allclose(p.decode(p.encode([value]))[0]["Ni"], 0.25)
    assert p.validate_value(p.to_pymatgen(value)) == pytest.approx(value)
    with pytest.raises(wb.CampaignError, match="sum to"):
        p.validate_value({"Cu": 0.5, "Ni": 0.2, "Pd": 0.2})
    with pytest.raises(wb.CampaignError, match=r"alloy.Cu.*\[0.2, 0.7\]"):
        p.validate_value({"Cu": 0.1, "Ni": 0.4, "Pd": 0.5})


def test_composition_descriptors_match_a_hand_computation():
    import jax.numpy as jnp

    from workbench.materials import element_properties, feature_transform

    space = wb.SearchSpace([wb.Continuous("t", 0, 1),
                            Composition("alloy", ["Cu", "Ni"], features=["X"])])
    P = element_properties(["Cu", "Ni"], ["X"])[:, 0]  # Pauling: Cu 1.90, Ni 1.91
    z = space.encode([{"t": 0.5, "alloy": {"Cu": 0.25, "Ni": 0.75}}])
    out = np.asarray(feature_transform(space)(jnp.asarray(z)))[0]
    mean = 0.25 * P[0] + 0.75 * P[1]
    std = np.sqrt(0.25 * (P[0] - mean) ** 2 + 0.75 * (P[1] - mean) ** 2)
    np.testing.assert_allclose(out[:3], z[0])
    np.testing.assert_allclose(out[3], (mean - P.min()) / (P.max() - P.min()), atol=1e-9)
    np.testing.assert_allclose(out[4], 2 * std / (P.max() - P.min()), atol=1e-6)


@pytest.mark.parametrize("features", [[], ["X", "atomic_radius"]])
def test_campaign_over_a_composition_finds_a_known_optimum(tmp_path, features):
    # Maximum at Cu 0.5, Ni 0.3, Pd 0.2, inside the bound Cu <= 0.6.
    space = wb.SearchSpace([Composition("alloy", ["Cu", "Ni", "Pd"],
                                        bounds={"Cu": (0.0, 0.6)}, features=features)])
    target = np.asarray([0.5, 0.3, 0.2])
    f = lambda p: -float(np.sum((np.asarray([p["alloy"][e] for e in ("Cu", "Ni", "Pd")])
                                 - target) ** 2))
    c = wb.Campaign("alloy", space, [wb.Objective("y", "maximize")], tracking=None,
                    store=tmp_path / "a.zarr", acquisition=FAST, initial_design={"n": 5})
    for _ in range(14):
        (t,) = c.ask()
        fr = np.asarray(list(t.params["alloy"].values()))
        assert abs(fr.sum() - 1) <= 1e-9 and fr.min() >= 0 and t.params["alloy"]["Cu"] <= 0.6
        c.tell(t.id, f(t.params))
    assert c.best().outcomes["y"] > -2e-3
    c.compact()
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert ds["alloy"].dims == ("trial", "alloy_element")
    assert list(ds["alloy_element"].values) == ["Cu", "Ni", "Pd"]
    again = wb.Campaign.open(tmp_path / "a.zarr", tracking=None)
    assert [t.params for t in again.trials] == [t.params for t in c.trials]
    assert {"alloy.Cu", "alloy.Ni", "alloy.Pd"} <= set(c.to_frame().columns)


def test_composition_through_yaml_and_csv(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "name: alloy\nspace:\n"
        "  - {name: alloy, type: composition, elements: [Cu, Ni], resolution: 0.1}\n"
        "objectives:\n  - {name: y, direction: maximize}\n"
        "store: a.zarr\ntracking: null\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "workbench", *a], cwd=tmp_path,
                                    capture_output=True, text=True, timeout=300)
    r = run("ask", "spec.yaml", "-n", "2", "-o", "p.csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    cu, ni = "alloy.Cu [at. frac.]", "alloy.Ni [at. frac.]"  # headers carry units
    assert {cu, ni, "y"} <= set(rows[0])
    for row in rows:
        assert abs(float(row[cu]) + float(row[ni]) - 1) < 1e-9
        row["y"] = str(float(row[cu]))

    def write(name, fields, rows):
        with open(tmp_path / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(fields)
            w.writerows([[r[k] for k in rows[0]] for r in rows])

    write("wrong.csv", [k.replace("[at. frac.]", "[wt. frac.]") for k in rows[0]], rows)
    r = run("tell", "spec.yaml", "wrong.csv")
    assert r.returncode == 2 and "gives unit 'wt. frac.'; expected 'at. frac.'" in r.stdout + r.stderr
    write("r.csv", list(rows[0]), rows)
    r = run("tell", "spec.yaml", "r.csv")
    assert r.returncode == 0, r.stdout + r.stderr
    done = wb.Campaign.open(tmp_path / "a.zarr", tracking=None)
    assert all(t.status == "completed" for t in done.trials)
    bad = tmp_path / "bad.yaml"
    bad.write_text((tmp_path / "spec.yaml").read_text().replace("[Cu, Ni]", "[Cu, Qq]"))
    r = run("validate", "bad.yaml")
    assert r.returncode == 2 and "not element symbols" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
