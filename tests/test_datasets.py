"""Shipped datasets: catalogue, cards, loaders (also from an installed layout), and the
oracles over them (recorded-value lookup for pools, a GP emulator), from Python and YAML."""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.datasets import DatasetError
from workbench.oracles import (ConditionNotInData, EmulatorOracle, LookupOracle, OracleError,
                               space_issues)

REPO = Path(__file__).resolve().parents[1]
NAMES = ["ahneman_buchwald_hartwig", "shields_arylation"]
ARYLATION = {"base": "Cesium acetate", "ligand": "XPhos", "solvent": "DMAc",
             "concentration": "0.1", "temperature": "105"}


def test_catalogue_lists_each_dataset_with_a_one_line_description():
    listing = wb.datasets.list()
    assert sorted(listing) == NAMES == wb.datasets.names()
    for name, text in listing.items():
        assert text and "\n" not in text


@pytest.mark.parametrize("name", NAMES)
def test_file_matches_catalogue_and_card(name):
    entry = wb.datasets.info(name)
    digest = hashlib.sha256(wb.datasets.path(name).read_bytes()).hexdigest()
    assert digest == entry["sha256"] == wb.datasets.sha256(name)
    card = wb.datasets.card(name)
    assert digest in card and entry["doi"] in card
    assert "Licence" in card and "How it was converted" in card
    df = wb.datasets.load(name)
    assert len(df) == entry["rows"]
    assert f"{entry['rows']:,} rows" in card
    for column in df.columns:  # every column is documented in the card
        assert f"`{column}`" in card or column.endswith("_smiles")
    assert df.attrs["units"] == entry["units"] and df.attrs["card"] == card
    assert df.attrs["factors"] == entry["factors"] and df.attrs["outcomes"] == ["yield"]
    assert df["yield"].between(0, 100).all() and df["yield"].notna().all()
    # Each combination of factors occurs once: the lookup oracle is well defined.
    assert not df.duplicated(entry["factors"]).any()


def test_direct_arylation_is_the_full_factorial_screen():
    df = wb.datasets.load("shields_arylation")
    assert [df[c].nunique() for c in ("base", "ligand", "solvent")] == [4, 12, 4]
    assert sorted(df["concentration"].unique()) == [0.057, 0.1, 0.153]
    assert sorted(df["temperature"].unique()) == [90, 105, 120]
    assert len(df) == 4 * 12 * 4 * 3 * 3
    assert df["yield"].max() == 100.0 and round(df["yield"].mean(), 1) == 19.4


def test_buchwald_hartwig_screen_shape():
    df = wb.datasets.load("ahneman_buchwald_hartwig")
    assert sorted(df["base"].unique()) == ["BTMG", "MTBD", "P2Et"]
    assert df["ligand"].nunique() == 4
    real = df[df["aryl_halide"] != "none"]
    assert real["aryl_halide"].nunique() == 15 and (df["additive"] != "none").sum() == 4599 - 192
    assert (df.loc[df["aryl_halide"] == "none", "yield"] == 0).all()  # controls: no product


def test_xarray_view_carries_units_and_card():
    ds = wb.datasets.load_xarray("shields_arylation")
    assert ds.sizes["row"] == 1728
    assert ds["temperature"].attrs["units"] == "degC" and ds["yield"].attrs["units"] == "%"
    assert ds.attrs["doi"] == "10.1038/s41586-021-03213-y" and "Shields" in ds.attrs["card"]


def test_unknown_names_are_clear_errors():
    for call in (wb.datasets.load, wb.datasets.card, wb.datasets.info, wb.datasets.path):
        with pytest.raises(DatasetError, match=re.escape(
                f"dataset: got 'nope'; expected one of {NAMES}")):
            call("nope")
    with pytest.raises(OracleError, match=r"oracle.objective: got 'ee'"):
        LookupOracle("shields_arylation", "ee")


def test_shipped_folder_is_small():
    total = sum(p.stat().st_size for p in (REPO / "datasets").rglob("*") if p.is_file())
    assert total < 20 * 2**20


def test_loads_from_an_installed_layout_without_the_checkout(tmp_path):
    # A wheel puts the data under workbench/_shipped/datasets (pyproject force-include);
    # rebuild that layout in a fresh folder and load from it in a fresh interpreter.
    site = tmp_path / "site"
    shutil.copytree(REPO / "workbench", site / "workbench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "datasets", site / "workbench" / "_shipped" / "datasets")
    code = textwrap.dedent("""
        import workbench, workbench.datasets as d
        df = d.load("shields_arylation")
        print(workbench.__file__); print(d.path("shields_arylation")); print(len(df))
        print(d.sha256("ahneman_buchwald_hartwig") == d.info("ahneman_buchwald_hartwig")["sha256"])
    """)
    env = dict(os.environ, PYTHONPATH=str(site))
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0].startswith(str(site)) and out[1].startswith(str(site / "workbench" / "_shipped"))
    assert out[2:4] == ["1728", "True"]


def test_pyproject_ships_the_data_folder_in_the_wheel():
    text = (REPO / "pyproject.toml").read_text()
    assert '"datasets" = "workbench/_shipped/datasets"' in text


# -- lookup (pool) oracle ---------------------------------------------------------------

def test_lookup_returns_every_recorded_value():
    oracle = LookupOracle("shields_arylation")
    df = wb.datasets.load("shields_arylation")
    for row in df.sample(300, random_state=0).to_dict("records"):
        params = {f: row[f] for f in oracle.factors}
        assert oracle(params) == {"yield": row["yield"]}
    # Labels of categorical parameters find numeric levels.
    expected = df[(df.base == "Cesium acetate") & (df.ligand == "XPhos") & (df.solvent == "DMAc")
                  & (df.concentration == 0.1) & (df.temperature == 105)]["yield"].item()
    assert oracle(ARYLATION) == {"yield": expected}
    assert pickle.loads(pickle.dumps(oracle))(ARYLATION) == {"yield": expected}


def test_lookup_candidates_are_the_conditions_in_the_data():
    table = LookupOracle("shields_arylation").candidates()
    assert list(table.columns) == ["base", "ligand", "solvent", "concentration", "temperature"]
    assert len(table) == 1728 and not table.duplicated().any()
    assert table.attrs["units"] == {"concentration": "mol/L", "temperature": "degC"}
    assert len(LookupOracle("ahneman_buchwald_hartwig").candidates()) == 4599


def test_lookup_refuses_conditions_not_in_the_data():
    oracle = LookupOracle("shields_arylation")
    with pytest.raises(ConditionNotInData,
                       match=re.escape("values not in the data: temperature=100.0"
                                       " (data: [90, 105, 120])")):
        oracle({**ARYLATION, "temperature": 100})
    with pytest.raises(ConditionNotInData, match=r"ligand='SPhos'"):
        oracle({**ARYLATION, "ligand": "SPhos"})
    with pytest.raises(ConditionNotInData, match=r"missing \['solvent'\], unknown \['x'\]"):
        oracle({**{k: v for k, v in ARYLATION.items() if k != "solvent"}, "x": 1})


# -- emulator -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    old = os.environ.get("WORKBENCH_CACHE_DIR")
    os.environ["WORKBENCH_CACHE_DIR"] = str(cache)
    try:
        oracle = EmulatorOracle("shields_arylation")
        oracle(ARYLATION)  # fit once
        yield oracle, cache
    finally:
        if old is None:
            os.environ.pop("WORKBENCH_CACHE_DIR", None)
        else:
            os.environ["WORKBENCH_CACHE_DIR"] = old


def test_emulator_reproduces_the_data_and_predicts_between_levels(emulator):
    oracle, cache = emulator
    df = wb.datasets.load("shields_arylation")
    sample = df.sample(200, random_state=1)
    mean, std = oracle.predict(sample[oracle.factors].to_dict("records"))
    rmse = float(np.sqrt(np.mean((mean - sample["yield"].to_numpy()) ** 2)))
    assert rmse < 3.0, rmse                    # conditioned on the data it interpolates
    assert np.all(std >= 0)
    # Between the recorded temperatures the prediction lies within the data's range
    # and is a number for a continuous parameter.
    between = oracle({**ARYLATION, "temperature": 97.5, "concentration": 0.08})
    assert 0.0 <= between["yield"] <= 100.0
    assert list(cache.glob("emulators/shields_arylation-yield-*.json"))  # fitted once, cached
    assert pickle.loads(pickle.dumps(oracle))(ARYLATION) == oracle(ARYLATION)


def test_emulator_refuses_settings_outside_the_data(emulator):
    oracle, _ = emulator
    with pytest.raises(ValueError, match=r"temperature: got 130; expected 90 to 120"):
        oracle({**ARYLATION, "temperature": 130.0})
    with pytest.raises(ValueError, match=r"ligand: got 'SPhos'; expected one of"):
        oracle({**ARYLATION, "ligand": "SPhos"})


# -- from YAML ------------------------------------------------------------------------------

def test_dataset_keys_in_a_spec_are_checked():
    from workbench.errors import SpecError
    from workbench.spec import parse_spec

    base = {"name": "s", "space": [{"name": "base", "type": "categorical",
                                    "choices": ["a", "b"]}],
            "objectives": [{"name": "yield", "direction": "maximize"}]}
    cases = [({"dataset": "nope"}, "dataset: got 'nope'; expected one of"),
             ({"dataset": "shields_arylation", "objective": "ee"},
              "objective: got 'ee'; expected an outcome of 'shields_arylation'"),
             ({"dataset": "shields_arylation", "mode": "fit"}, "mode"),
             ({"simulator": "snar", "mode": "lookup"}, "mode: got 'lookup'; expected it only"
                                                       " with dataset")]
    for oracle, message in cases:
        with pytest.raises(SpecError) as err:
            parse_spec({**base, "oracle": oracle})
        assert message in str(err.value), str(err.value)
    # Parameters that do not match the dataset's factors are a spec error (before any run).
    with pytest.raises(SpecError, match="has the factors") as err:
        parse_spec({**base, "oracle": {"dataset": "shields_arylation"}})
    assert "oracle.dataset" in str(err.value)


SHIPPED = ["snar", "cstr", "alloy", "alloy_ternary", "direct_arylation",
           "direct_arylation_emulator", "buchwald_hartwig"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiment_validates_and_matches_its_oracle(name):
    path = REPO / "experiments" / f"{name}.yaml"
    spec = wb.load_spec(path)
    assert space_issues(spec.oracle, [p.name for p in spec.space]) == []
    for p in spec.space:  # units on every number-valued parameter
        assert getattr(p, "unit", None) or p.type == "categorical", p
    result = subprocess.run([sys.executable, "-m", "workbench", "validate", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_pool_campaign_from_yaml_through_workbench_run(tmp_path):
    spec = tmp_path / "direct_arylation.yaml"
    spec.write_text((REPO / "experiments" / "direct_arylation.yaml").read_text()
                    + "tracking: null\n")
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI",
                                                           "WORKBENCH_DEBUG")}
    result = subprocess.run([sys.executable, "-m", "workbench", "run", str(spec), "--budget",
                             "8"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    campaign = wb.Campaign.open(tmp_path / "campaigns" / "direct_arylation.zarr", tracking=None)
    done = [t for t in campaign.trials if t.status == "completed"]
    assert len(done) == 8
    lookup = LookupOracle("shields_arylation")
    for t in done:  # every recorded yield is the published one for those conditions
        assert t.outcomes == lookup(t.params)
