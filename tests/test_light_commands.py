"""Commands that only read or append to a campaign stay light, and lose nothing by it.

``validate``, ``status``, ``tell``, ``export``, ``verify``, ``explain`` and ``space`` (showing
the space), with and without ``--json``, run as real subprocesses and report the modules
they imported (after every exit handler ran): never JAX, MLflow, dask or distributed. The snapshot reader they use instead of
xarray gives exactly what xarray gives. A CLI ``tell`` leaves its tracking events in the
outbox; the next ``ask`` hands them, with its own, to a detached process that delivers
them, and the MLflow run then holds what ``Campaign.tell`` logs directly.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import cli_env
import xarray as xr

import workbench as wb
from workbench.problems import branin
from workbench.record import from_dataset
from workbench.snapshot import read_snapshot
from workbench.store import ZarrStore

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "mlflow", "dask", "distributed")

SPEC = textwrap.dedent("""\
    name: light
    partner: tests
    space:
      - {{name: x1, type: continuous, low: -5.0, high: 10.0}}
      - {{name: x2, type: continuous, low: 0.0, high: 15.0}}
    objectives:
      - {{name: y, direction: minimize}}
    initial_design: {{type: sobol, n: 6}}
    budget: 30
    store: {store}
    tracking: sqlite:///{db}
    seed: 0
    """)

# Runs the CLI in this interpreter, then prints the top-level packages imported; the
# handler is registered first so that it runs last, after the tracker's own.
_REPORT_MODULES = textwrap.dedent("""\
    import atexit, json, runpy, sys
    atexit.register(lambda: print("MODULES " + json.dumps(
        sorted({m.split(".")[0] for m in sys.modules}))))
    sys.argv = ["workbench", *sys.argv[1:]]
    runpy.run_module("workbench", run_name="__main__")
    """)




# How long a test waits for a detached delivery (seconds): generous, for a loaded machine.
DELIVERY_WAIT_S = 180


def _workbench(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=cli_env(),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _imported(cwd: Path, *args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-c", _REPORT_MODULES, *args], cwd=cwd,
                            env=cli_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    line = [x for x in result.stdout.splitlines() if x.startswith("MODULES ")][-1]
    return set(json.loads(line[len("MODULES "):]))


def _spec(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "light.yaml"
    path.write_text(SPEC.format(store=folder / "light.zarr", db=folder / "mlflow.db"))
    return path


def _results(proposals: Path, out: Path) -> list[dict]:
    """Fill a proposals CSV with Branin values."""
    with open(proposals, newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["y"] = repr(branin(float(row["x1"]), float(row["x2"])))
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_reading_and_telling_commands_import_no_jax_mlflow_or_dask(tmp_path):
    spec = _spec(tmp_path)
    # The record is made in this process without tracking; the CLI tracks to the spec's URI.
    campaign = wb.Campaign.from_dict({**wb.load_spec(spec).to_dict(), "tracking": None})
    trials = campaign.ask(4)
    campaign.tell(trials[0].id, {"y": 10.0})
    campaign.compact()  # the snapshot holds trials: the reader decodes real columns
    results = tmp_path / "results.csv"
    results.write_text(f"trial_id,y,campaign_id\n{trials[1].id},12.5,{campaign.campaign_id}\n")
    more = tmp_path / "more.csv"  # told with --json
    more.write_text(f"trial_id,y,campaign_id\n{trials[2].id},7.5,{campaign.campaign_id}\n")
    store = str(tmp_path / "light.zarr")
    commands = [("validate", str(spec)), ("status", str(spec)),
                ("status", str(spec), "--trial", "0"), ("tell", str(spec), str(results)),
                ("export", store, "-o", str(tmp_path / "all.csv")), ("verify", store),
                # --json documents are built without the heavy libraries too
                ("validate", str(spec), "--json"), ("status", str(spec), "--json"),
                ("status", str(spec), "--trial", "0", "--json"),
                ("tell", str(spec), str(more), "--json"),
                ("export", store, "-o", str(tmp_path / "all.csv"), "--json"),
                ("verify", store, "--json"), ("explain", store, "3"),
                ("explain", store, "0", "--json"), ("space", store),
                ("space", str(spec), "--json")]
    for args in commands:
        heavy = _imported(tmp_path, *args) & set(HEAVY)
        assert not heavy, f"workbench {' '.join(args)} imported {sorted(heavy)}"
    # The tells were recorded, and their tracking events wait in the outbox.
    reopened = wb.Campaign.open(store, tracking=None)
    assert reopened.trials[1].outcomes == {"y": 12.5}
    assert reopened.trials[2].outcomes == {"y": 7.5}
    outbox = wb.Campaign.open(store).store.outbox_path
    assert any(json.loads(line).get("metrics", {}).get("completed") == 2.0
               for line in outbox.read_text().splitlines())


def _delivered(outbox: Path) -> None:
    """Wait until a detached delivery has emptied (and so removed) the outbox."""
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while outbox.exists():
        assert time.monotonic() < deadline, "the detached delivery never finished"
        time.sleep(0.5)


def _metric_history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def _run(client, experiment: str):
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1
    return runs[0]


def test_cli_tell_defers_tracking_and_the_next_ask_delivers_what_tell_logs(tmp_path):
    from mlflow.tracking import MlflowClient

    # Reference: the Python API, which logs as it tells (in a process of its own,
    # whose exit delivers what is left).
    reference = _spec(tmp_path / "python")
    script = textwrap.dedent(f"""\
        import workbench as wb
        from workbench.problems import branin
        campaign = wb.Campaign.from_yaml({str(reference)!r})
        for t in campaign.ask(3):
            campaign.tell(t.id, {{"y": branin(**t.params)}})
        """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    # The same campaign through the CLI: ask, tell (deferred), then ask again.
    spec = _spec(tmp_path / "cli")
    outbox = ZarrStore(tmp_path / "cli" / "light.zarr").outbox_path
    _workbench(tmp_path, "ask", str(spec), "-n", "3", "-o", str(tmp_path / "p.csv"))
    _delivered(outbox)  # the run exists once the ask's detached delivery is done
    _results(tmp_path / "p.csv", tmp_path / "r.csv")
    _workbench(tmp_path, "tell", str(spec), str(tmp_path / "r.csv"))
    cli = MlflowClient(f"sqlite:///{tmp_path / 'cli' / 'mlflow.db'}")
    run = _run(cli, "tests/light")
    assert "best_so_far" not in run.data.metrics  # not delivered yet: waiting in the outbox
    imported = _imported(tmp_path, "ask", str(spec), "-n", "1")
    assert not {m for m in imported if m.split(".")[0] == "mlflow"}  # the detached process's
    _delivered(outbox)

    python = MlflowClient(f"sqlite:///{tmp_path / 'python' / 'mlflow.db'}")
    want, got = _run(python, "tests/light"), _run(cli, "tests/light")
    assert set(want.data.metrics) <= set(got.data.metrics)
    for key in ("completed", "failed", "best_so_far"):
        assert _metric_history(cli, got.info.run_id, key) == \
            _metric_history(python, want.info.run_id, key), key
    assert len(_metric_history(cli, got.info.run_id, "best_so_far")) == 3
    paths = ("store", "tracking")
    assert {k: v for k, v in got.data.params.items() if k not in paths} == \
        {k: v for k, v in want.data.params.items() if k not in paths}
    # What the CLI tell logs beyond Campaign.tell: the trial table and its data hash.
    assert got.data.tags["data_hash"]
    assert {a.path for a in python.list_artifacts(want.info.run_id)} | {"trials.csv"} <= \
        {a.path for a in cli.list_artifacts(got.info.run_id)}
    assert not outbox.exists()  # everything delivered


def _rich_store(path: Path) -> ZarrStore:
    space = wb.SearchSpace([
        wb.Continuous("temperature", 30.0, 110.0, unit="degC"), wb.Integer("cycles", 1, 10),
        wb.Categorical("ligand", ["XPhos", "SPhos", "RuPhos"]),
        wb.Composition("alloy", ["Cu", "Ni", "Pd"])])
    campaign = wb.Campaign("rich", space, objectives=[wb.Objective("yield", "maximize")],
                           outcome_constraints=["impurity <= 0.05"], store=path,
                           tracking=None, seed=0)
    trials = campaign.ask(6)
    campaign.tell(trials[0].id, {"yield": 71.2, "impurity": 0.01})
    campaign.tell(trials[1].id, {"yield": 60.0, "impurity": 0.2})
    campaign.tell_failed(trials[2].id, "reactor clogged")
    campaign.compact()
    return ZarrStore(path)


def _assert_same_as_xarray(snapshot, ds: xr.Dataset) -> None:
    assert snapshot.attrs == dict(ds.attrs)
    assert set(snapshot.columns) == set(ds.variables)
    for name in ds.variables:
        got, want = snapshot.columns[name], ds[name].values
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if want.dtype.kind in "fM":
            assert np.array_equal(got, want, equal_nan=True), name
        else:
            assert (got == want).all(), name


@pytest.mark.slow
def test_cli_run_leaves_mlflow_to_a_detached_process_and_tracks_every_trial(tmp_path):
    """`workbench run` without --wait imports no MLflow; once the detached delivery is done
    the MLflow run holds each trial's step, the best so far after each one as the store
    has it, and the trial table. Resumed with --wait, it delivers before it exits."""
    from mlflow.tracking import MlflowClient

    spec = _spec(tmp_path / "run")
    spec.write_text(spec.read_text() + "oracle: {builtin: branin}\n")
    outbox = ZarrStore(tmp_path / "run" / "light.zarr").outbox_path
    imported = _imported(tmp_path, "run", str(spec), "--budget", "8", "-q")
    assert "mlflow" not in imported
    # The store's snapshots are written without xarray, which would bring pandas and dask.
    assert not {"xarray", "pandas", "zarr", "dask"} & imported
    _delivered(outbox)
    client = MlflowClient(f"sqlite:///{tmp_path / 'run' / 'mlflow.db'}")

    def check(n: int) -> None:
        trials = wb.Campaign.open(tmp_path / "run" / "light.zarr", tracking=None).trials
        assert len(trials) == n and all(t.status == "completed" for t in trials)
        run = _run(client, "tests/light")
        assert run.info.status == "FINISHED"
        assert _metric_history(client, run.info.run_id, "completed") == \
            [(i, float(i)) for i in range(1, n + 1)]
        best = np.minimum.accumulate([t.outcomes["y"] for t in trials])
        assert _metric_history(client, run.info.run_id, "best_so_far") == \
            [(i, float(b)) for i, b in enumerate(best, start=1)]
        local = client.download_artifacts(run.info.run_id, "trials.csv",
                                          str(tmp_path / f"dl{n}"))
        with open(local, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [float(r["y"]) for r in rows] == [t.outcomes["y"] for t in trials]

    check(8)
    _workbench(tmp_path, "run", str(spec), "--budget", "10", "-q", "--wait")
    assert not outbox.exists()  # delivered before the process exited
    check(10)


@pytest.mark.parametrize("trials", [True, False])
def test_snapshot_reader_gives_what_xarray_gives(tmp_path, trials):
    """Pending, completed and failed trials (NaN outcomes, NaT times), every parameter
    type, and the empty snapshot a new store starts with."""
    if trials:
        store = _rich_store(tmp_path / "rich.zarr")
    else:
        store = ZarrStore(wb.Campaign.from_dict({
            **wb.load_spec(_spec(tmp_path)).to_dict(), "tracking": None}).spec.store)
    with xr.open_zarr(store.path, consolidated=False, chunks=None) as ds:
        ds = ds.load()
    _assert_same_as_xarray(read_snapshot(store.path), ds)
    campaign = wb.Campaign.open(store.path, tracking=None)  # through the reader
    assert campaign.trials == from_dataset(ds, campaign.space, campaign.outcomes)


def test_snapshot_reader_reads_many_chunks_and_hands_other_encodings_to_xarray(tmp_path):
    n = 1003
    times = np.full(n, np.datetime64("2026-01-01T00:00:00.123456", "ns"))
    times[5] = np.datetime64("NaT")
    ds = xr.Dataset(
        {"a": (("trial", "o"), np.random.default_rng(0).random((n, 3))),
         "s": ("trial", np.asarray([f"x{i}é" for i in range(n)], dtype=object)),
         "t": ("trial", times), "b": ("trial", np.arange(n))},
        coords={"trial": np.arange(n)}, attrs={"k": "v"})
    chunked = {"a": {"chunks": (100, 2)}, "s": {"chunks": (300,)}, "b": {"chunks": (64,)}}
    ds.to_zarr(tmp_path / "m.zarr", consolidated=False, zarr_format=3, encoding=chunked)
    with xr.open_zarr(tmp_path / "m.zarr", consolidated=False, chunks=None) as back:
        _assert_same_as_xarray(read_snapshot(tmp_path / "m.zarr"), back.load())

    # A variable xarray would scale: this reader refuses it, and the store reads it
    # through xarray instead, with the same result.
    store = _rich_store(tmp_path / "rich.zarr")
    meta_path = store.path / "temperature" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["scale_factor"] = 2.0
    meta_path.write_text(json.dumps(meta))
    (store.path / "_workbench" / "zarr.json").write_text(json.dumps({  # checksums now differ
        "zarr_format": 3, "node_type": "group", "attributes": {"complete": True}}))
    with pytest.raises(ValueError, match="scale_factor"):
        read_snapshot(store.path)
    with xr.open_zarr(store.path, consolidated=False, chunks=None) as ds:
        _assert_same_as_xarray(store.read_snapshot(), ds.load())
