"""YAML -> campaign -> Zarr store -> open keeps every value and the next proposal."""

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import workbench as wb
from workbench.store import ZarrStore

ROOT = Path(__file__).resolve().parents[1]

SPEC = """
name: roundtrip
partner: acme
space:
  - {name: temperature, type: continuous, low: 30.0, high: 110.0, unit: degC}
  - {name: loading, type: continuous, low: 0.5, high: 2.5, log: true}
  - {name: cycles, type: integer, low: 1, high: 10}
  - {name: ligand, type: categorical, choices: [XPhos, SPhos, RuPhos]}
objectives:
  - {name: yield_pct, direction: maximize, unit: "%"}
initial_design: {n: 4}
acquisition: {batch_size: 2}
store: STORE
tracking: null
seed: 11
"""


def _f(p):
    return 50 + 0.3 * p["temperature"] - 4 * p["loading"] + p["cycles"] + len(p["ligand"])


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "roundtrip.yaml"
    path.write_text(SPEC.replace("STORE", str(tmp_path / "rt.zarr")))
    return path


def _populate(campaign):
    trials = campaign.ask(4)
    for t in trials[:3]:
        campaign.tell(t.id, {"yield_pct": _f(t.params) + 0.123456789012345})
    campaign.tell_failed(trials[3].id, "reactor clogged: pressure > 12 bar")
    more = campaign.ask(2)
    campaign.tell(more[0].id, {"yield_pct": -1e-300})
    return campaign


def test_reopen_keeps_every_value(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    reopened = wb.Campaign.open(tmp_path / "rt.zarr")
    a, b = c.data, reopened.data
    assert a.attrs["spec"] == b.attrs["spec"]
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
        assert a[name].attrs == b[name].attrs, name
    for t1, t2 in zip(c.trials, reopened.trials):
        assert t1 == t2
    assert reopened.trials[1].outcomes["yield_pct"] == c.trials[1].outcomes["yield_pct"]
    assert reopened.trials[3].failure_reason == "reactor clogged: pressure > 12 bar"
    assert reopened.trials[5].status == "pending"
    # The record is plain Zarr: xarray opens it without the workbench, once
    # the journal of recent asks and tells is folded into the snapshot.
    c.compact()
    raw = xr.open_zarr(tmp_path / "rt.zarr", consolidated=False)
    assert raw["temperature"].attrs["units"] == "degC" and raw.sizes["trial"] == 6


def test_reopen_makes_the_same_next_proposal(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    c.tell(c.trials[5].id, {"yield_pct": 77.0})
    # A copy: two campaigns on one store would (rightly) see each other's
    # proposals as pending and propose different points.
    shutil.copytree(tmp_path / "rt.zarr", tmp_path / "copy.zarr")
    reopened = wb.Campaign.open(tmp_path / "copy.zarr")
    a, b = reopened.ask(2), c.ask(2)
    for x, y in zip(a, b):
        assert (x.id, x.params, x.prediction, x.acquisition_value) == \
            (y.id, y.params, y.prediction, y.acquisition_value)


def test_same_proposals_in_a_fresh_process(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    c.tell(c.trials[5].id, {"yield_pct": 70.0})
    script = textwrap.dedent(f"""
        import json, workbench as wb
        c = wb.Campaign.open({str(tmp_path / 'copy.zarr')!r})
        print(json.dumps([t.params for t in c.ask(2)]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    shutil.copytree(tmp_path / "rt.zarr", tmp_path / "copy.zarr")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, check=True).stdout
    import json

    assert json.loads(out.strip().splitlines()[-1]) == [t.params for t in c.ask(2)]


def test_from_yaml_resumes_and_refuses_a_changed_space(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    again = wb.Campaign.from_yaml(spec_file)
    assert len(again.trials) == len(c.trials)
    changed = spec_file.read_text().replace("high: 110.0", "high: 120.0")
    spec_file.write_text(changed)
    with pytest.raises(wb.CampaignError, match="space"):
        wb.Campaign.from_yaml(spec_file)


def test_open_of_a_missing_store_is_a_clear_error(tmp_path):
    with pytest.raises(wb.CampaignError, match="no campaign"):
        wb.Campaign.open(tmp_path / "nothing.zarr")


def test_an_interrupted_swap_is_recovered(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    store = ZarrStore(tmp_path / "rt.zarr")
    expected = c.data
    # Crash between the two renames: the old copy moved aside, the new one
    # complete but not yet in place.
    os.rename(store.path, tmp_path / ".rt.zarr.old-aaaa")
    shutil.copytree(tmp_path / ".rt.zarr.old-aaaa", tmp_path / ".rt.zarr.tmp-bbbb")
    os.utime(tmp_path / ".rt.zarr.tmp-bbbb", None)
    reopened = wb.Campaign.open(tmp_path / "rt.zarr")
    assert reopened.to_frame().equals(c.to_frame())
    xr.testing.assert_equal(reopened.data.drop_attrs(), expected.drop_attrs())
    reopened.tell(reopened.trials[5].id, {"yield_pct": 1.0})
    leftovers = [p.name for p in tmp_path.iterdir()
                 if p.name.startswith(".rt.zarr") and p.name != ".rt.zarr.lock"]
    assert leftovers == []


def test_a_half_written_copy_is_ignored(spec_file, tmp_path):
    c = _populate(wb.Campaign.from_yaml(spec_file))
    # A crash while writing the next copy leaves an incomplete sibling behind.
    partial = tmp_path / ".rt.zarr.tmp-cccc"
    partial.mkdir()
    (partial / "zarr.json").write_text("{")
    reopened = wb.Campaign.open(tmp_path / "rt.zarr")
    assert reopened.to_frame().equals(c.to_frame())


def test_in_memory_campaign_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)])
    c = wb.Campaign("mem", space, [wb.Objective("y", "minimize")], tracking=None)
    c.run(lambda p: (p["x"] - 0.3) ** 2, budget=6)
    assert list(tmp_path.iterdir()) == []
    assert math.isclose(c.best().outcomes["y"], float(np.nanmin(c.data["y"].values)))


def test_the_record_and_its_run_name_the_numerics_version(tmp_path):
    from workbench.campaign.telemetry import Telemetry
    from workbench.record import NUMERICS_VERSION

    store = tmp_path / "n.zarr"
    c = wb.Campaign("n", wb.SearchSpace([wb.Continuous("x", 0.0, 1.0)]),
                    [wb.Objective("y", "minimize")], store=str(store), tracking=None)
    c.compact()
    assert xr.open_zarr(store).attrs["numerics_version"] == NUMERICS_VERSION
    assert Telemetry.version_tags()["workbench.numerics"] == str(NUMERICS_VERSION)
    # A record from another numerics version opens, with a warning that proposals may differ.
    zs = ZarrStore(store)
    ds = zs.read()
    ds.attrs["numerics_version"] = NUMERICS_VERSION - 1
    zs.write(ds)
    with pytest.warns(RuntimeWarning, match="numerics version"):
        wb.Campaign.open(store)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _xarray_files(ds: xr.Dataset, path: Path) -> dict[str, bytes]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.to_zarr(path, consolidated=False, zarr_format=3)
    return _tree(path)


@pytest.mark.parametrize("n_trials", [0, 1, 6])
def test_snapshot_writer_writes_the_files_xarray_writes(tmp_path, n_trials):
    """The record written without xarray is, file for file and byte for byte, what
    ``to_zarr`` writes for the campaign's Dataset: every parameter type, pending,
    completed and failed trials, standard errors, replicates, actual setpoints; and the
    empty and one-trial records (arrays left unwritten where all hold the fill value)."""
    from workbench.record import to_variables
    from workbench.snapshot import write_snapshot

    space = wb.SearchSpace([
        wb.Continuous("temperature", 30.0, 110.0, unit="°C"), wb.Integer("cycles", 1, 10),
        wb.Categorical("ligand", ["XPhos", "SPhos", "RuPhos"]),
        wb.Composition("alloy", ["Cu", "Ni", "Pd"])])
    campaign = wb.Campaign("writer", space, objectives=[wb.Objective("yield", "maximize")],
                           outcome_constraints=["impurity <= 0.05"], tracking=None, seed=0)
    trials = campaign.ask(n_trials) if n_trials else []
    if n_trials > 1:
        campaign.tell(trials[0].id, {"yield": (71.2, 1.5), "impurity": 0.01})
        campaign.tell(trials[1].id, {"yield": [60.0, 61.0], "impurity": 0.2},
                      actual={"temperature": 55.5})
        campaign.tell_failed(trials[2].id, "reactor clogged ✗")
    ds = campaign.data
    want = _xarray_files(ds, tmp_path / "xarray.zarr")
    write_snapshot(tmp_path / "ours.zarr", dict(ds.attrs),
                   to_variables(campaign.trials, campaign.space, campaign.outcomes))
    got = _tree(tmp_path / "ours.zarr")
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    with xr.open_zarr(tmp_path / "ours.zarr", consolidated=False, chunks=None) as back:
        xr.testing.assert_identical(back.load(), ds)


def test_snapshot_writer_encodes_times_and_odd_variables_as_xarray_does(tmp_path):
    """Times are counted in the coarsest unit that divides every step, from the first
    time that is not NaT (all NaT: days since 1970); a variable of a type the writer
    does not encode raises before anything is written."""
    from workbench.snapshot import UnknownEncoding, Variable, write_snapshot

    t = np.datetime64
    cases = {
        "hours": [t("2026-01-01T03:00", "ns"), t("NaT", "ns"), t("2025-12-31T22:00", "ns")],
        "seconds": [t("2026-01-01T00:00:01", "ns"), t("2026-01-01T00:00:04", "ns")],
        "micro": [t("2026-01-01T00:00:01.000002", "ns"), t("2026-01-01T00:00:01", "ns")],
        "nano": [t("2026-01-01T00:00:00.000000007", "ns"), t("2026-01-01T00:00:00", "ns")],
        "one": [t("2026-05-05T05:05:05.5", "ns")],
        "nat": [t("NaT", "ns"), t("NaT", "ns")],
    }
    variables = {k: Variable((f"d_{k}",), np.asarray(v, dtype="datetime64[ns]"), {"k": k})
                 for k, v in cases.items()}
    ds = xr.Dataset({k: xr.Variable(*v) for k, v in variables.items()}, attrs={"a": 1})
    want = _xarray_files(ds, tmp_path / "xarray.zarr")
    write_snapshot(tmp_path / "ours.zarr", {"a": 1}, variables)
    assert _tree(tmp_path / "ours.zarr") == want

    # Large arrays: zarr's automatic chunks, edge chunks padded, all-fill chunks unwritten.
    n = 300_001
    values = np.random.default_rng(0).random((n, 3))
    values[:150_000] = np.nan
    strings = np.asarray([f"t{i % 7}é" if i % 3 else "" for i in range(n)], dtype=object)
    strings[-80_000:] = ""
    large = {"f": Variable(("trial", "o"), values, {}),
             "i": Variable(("trial",), np.arange(n, dtype=np.int64) // 5, {}),
             "s": Variable(("trial",), strings, {}),
             "t": Variable(("trial",), np.datetime64("2026-01-01", "ns")
                           + np.arange(n).astype("timedelta64[s]"), {})}
    ds = xr.Dataset({k: xr.Variable(*v) for k, v in large.items()})
    want = _xarray_files(ds, tmp_path / "large-xarray.zarr")
    write_snapshot(tmp_path / "large.zarr", {}, large)
    got = _tree(tmp_path / "large.zarr")
    assert len(want) > 12 and got.keys() == want.keys()
    assert all(got[k] == want[k] for k in want)

    for odd in (np.zeros(3, dtype=np.float32), np.asarray([1, "a"], dtype=object),
                np.asarray(["a", "b"])):
        with pytest.raises(UnknownEncoding):
            write_snapshot(tmp_path / "odd.zarr", {}, {"v": Variable(("x",), odd, {})})
        assert not (tmp_path / "odd.zarr").exists()

    # Through the store, such a variable is written with xarray instead.
    store = ZarrStore(tmp_path / "fallback.zarr")
    store.write_variables({"a": 1}, {"v": Variable(("x",), np.arange(3, dtype=np.float32), {})})
    with xr.open_zarr(store.path, consolidated=False, chunks=None) as back:
        assert back["v"].dtype == np.float32 and back["v"].values.tolist() == [0.0, 1.0, 2.0]
        assert back.attrs["a"] == 1
