"""MLflow tracking: the embedded store, a real tracking server on 127.0.0.1, and failures."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import workbench as wb
from workbench.tracking import spec_params

pytestmark = pytest.mark.slow


def _campaign(tracking, store=None, name="track", partner="acme"):
    problem = wb.problems.get("branin")
    return wb.Campaign(name, problem.space(), [wb.Objective("y", "minimize")],
                       tracking=tracking, store=store, partner=partner, seed=0,
                       initial_design={"n": 3})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(root: Path, port: int) -> subprocess.Popen:
    """A real MLflow tracking server on 127.0.0.1:port with its store under root."""
    root.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
           "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    log = open(root / "server.log", "a")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=root,
                            start_new_session=True)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError((root / "server.log").read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    _stop_server(proc)
    raise RuntimeError("MLflow server did not start: " + (root / "server.log").read_text())


def _stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real MLflow tracking server on 127.0.0.1, stopped after the module."""
    port = _free_port()
    proc = _start_server(tmp_path_factory.mktemp("mlflow-server"), port)
    yield f"http://127.0.0.1:{port}"
    _stop_server(proc)


def _run_of(uri, experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, experiment
    # MLflow 3's UI opens it in the classic training view, metrics first.
    assert exp.tags.get("mlflow.experimentKind") == "custom_model_development"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


def _check_run(client, run, campaign):
    ids = run.info.run_id
    history = client.get_metric_history(ids, "best_so_far")
    best = [m.value for m in sorted(history, key=lambda m: m.step)]
    ys = [t.outcomes["y"] for t in campaign.trials]
    assert best == [min(ys[:k]) for k in range(1, len(ys) + 1)]
    regret = client.get_metric_history(ids, "regret")[-1].value
    assert regret == pytest.approx(wb.problems.get("branin").regret(min(ys)))
    for key in ("fit_time_s", "proposal_time_s", "acquisition_value", "acquisition_time_s"):
        assert key in run.data.metrics, key
    assert run.data.params["space.x1.low"] == "-5.0"
    assert run.data.params["objectives.y.direction"] == "minimize"
    assert run.data.tags["partner"] == "acme"
    names = {a.path for a in client.list_artifacts(ids)}
    assert {"spec.json", "trials.csv"} <= names
    csv = Path(client.download_artifacts(ids, "trials.csv")).read_text()
    assert csv.count("\n") == len(ys) + 1


def test_embedded_store_and_resume_continue_one_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = _campaign(uri, store=tmp_path / "c.zarr")
    c.run(wb.problems.get("branin"), budget=5)
    client, run = _run_of(uri, "acme/track")
    assert run.info.status == "FINISHED"
    resumed = wb.Campaign.open(tmp_path / "c.zarr")
    resumed.run(wb.problems.get("branin"), budget=7)
    client, run = _run_of(uri, "acme/track")  # still one run
    _check_run(client, run, resumed)


def test_deferred_tracking_waits_in_the_outbox_until_delivered_or_its_time_is_up(tmp_path):
    """defer_tracking(): run() leaves every event in the outbox and creates no database;
    deliver_tracking() then sends them all. A deferral whose time is up (for_s=0, after
    events were queued under a long one) turns the tracker back to delivering: run()
    returns with everything in MLflow, the queued events first, as without deferral."""
    branin = wb.problems.get("branin")
    db = tmp_path / "never.db"
    never = _campaign(f"sqlite:///{db}", store=tmp_path / "never.zarr", name="never")
    never.defer_tracking()
    never.run(branin, budget=5)
    assert not db.exists() and never.store.outbox_path.exists()
    assert never.deliver_tracking()
    client, run = _run_of(f"sqlite:///{db}", "acme/never")
    assert run.info.status == "FINISHED"
    _check_run(client, run, never)

    uri = f"sqlite:///{tmp_path / 'soon.db'}"
    soon = _campaign(uri, store=tmp_path / "soon.zarr", name="soon")
    soon.defer_tracking(for_s=3600)
    trial = soon.ask()[0]
    soon.tell(trial.id, branin(trial.params))
    assert not (tmp_path / "soon.db").exists()  # queued, not delivered
    soon.defer_tracking(for_s=0)  # its time is up at the next event
    soon.run(branin, budget=5)
    assert not soon.store.outbox_path.exists()  # all delivered before run returned
    client, run = _run_of(uri, "acme/soon")
    assert run.info.status == "FINISHED"
    _check_run(client, run, soon)


def test_tracking_server_receives_metrics_params_and_artifacts(mlflow_server):
    c = _campaign(mlflow_server, name="served")
    c.run(wb.problems.get("branin"), budget=5)
    client, run = _run_of(mlflow_server, "acme/served")
    _check_run(client, run, c)


def test_an_unreachable_server_is_a_warning_not_a_stopped_campaign(monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    c = _campaign(f"http://127.0.0.1:{_free_port()}", name="offline")
    with pytest.warns(RuntimeWarning, match="tracking to http://127.0.0.1"):
        best = c.run(wb.problems.get("branin"), budget=4)
    assert best is not None and len(c.trials) == 4


def test_server_down_mid_campaign_buffers_and_delivers_everything_once(tmp_path):
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    proc = _start_server(tmp_path / "server", port)
    try:
        store = tmp_path / "c.zarr"
        c = _campaign(uri, store=store, name="outage")
        c.run(wb.problems.get("branin"), budget=4)
        _stop_server(proc)
        with pytest.warns(RuntimeWarning, match="wait in .*tracking.jsonl"):
            c.run(wb.problems.get("branin"), budget=7)  # the server is down: buffered
        assert len(c.trials) == 7
        outbox = tmp_path / ".c.zarr.tracking.jsonl"
        buffered = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert sum(e["op"] == "metrics" for e in buffered) >= 6
        assert [e["seq"] for e in buffered] == sorted(e["seq"] for e in buffered)
        proc = _start_server(tmp_path / "server", port)  # back, same store
        resumed = wb.Campaign.open(store)
        resumed.run(wb.problems.get("branin"), budget=9)
        client, run = _run_of(uri, "acme/outage")  # one run, resumed
        _check_run(client, run, resumed)  # one best_so_far per trial, in order: none lost or doubled
        for key in ("completed", "proposal_time_s"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert len(steps) == len(set(steps)), key
        logged = {(m.step, m.value) for m in client.get_metric_history(run.info.run_id,
                                                                       "best_so_far")}
        for e in buffered:  # each buffered value arrived as it was logged
            if e["op"] == "metrics" and "best_so_far" in e["metrics"]:
                assert (e["step"], e["metrics"]["best_so_far"]) in logged
        assert run.info.status == "FINISHED"
        assert not outbox.exists()
    finally:
        _stop_server(proc)


def test_spec_params_are_flat_and_named_by_field():
    spec = _campaign(None).spec.to_dict()
    params = spec_params(spec)
    assert params["space.x2.high"] == "15.0"
    assert params["acquisition.batch_size"] == "1"
    assert params["initial_design.n"] == "3"
    assert all(len(k) <= 250 for k in params)


def test_bulk_metric_insert_stores_what_log_batch_stores(tmp_path):
    """The embedded store's bulk insert against MLflow's own log_batch on the same metrics:
    every history row and the latest value per key (with NaN, +-inf, a later step logged
    before an earlier one, and a value already there from an earlier batch) agree; a batch
    sent again after a crash adds no row (the tracker falls back to log_batch)."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from workbench.tracking import Tracker, insert_metrics_sqlite

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bulk")
    first = [Metric("a", 1.0, 100, 0), Metric("b", 5.0, 100, 3)]
    second = [Metric("a", float(k), 200 + k, k) for k in (4, 2, 3)] + [
        Metric("b", 2.0, 150, 1), Metric("c", float("nan"), 300, 7),
        Metric("d", float("inf"), 300, 7), Metric("e", -float("inf"), 300, 7)]
    ours, theirs = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    for batch in (first, second):
        insert_metrics_sqlite(client, ours, batch)
        client.log_batch(theirs, metrics=batch)

    def stored(run_id):
        rows = {k: sorted((m.step, m.timestamp, repr(m.value)) for m in
                          client.get_metric_history(run_id, k)) for k in "abcde"}
        latest = {k: repr(v) for k, v in client.get_run(run_id).data.metrics.items()}
        return rows, latest

    assert stored(ours) == stored(theirs)
    rows, latest = stored(ours)
    assert latest["a"] == "4.0" and latest["b"] == "5.0" and latest["c"] == "nan"
    assert len(rows["a"]) == 4

    tracker = Tracker(uri, "acme", "bulk", run_id=ours)
    tracker.deliver_metrics(second)  # delivered, then sent again after a crash
    assert stored(ours) == stored(theirs)


def test_a_new_embedded_database_is_a_copy_of_what_mlflow_makes(tmp_path, monkeypatch):
    """A new sqlite tracking database copied from the cached empty one (made in another
    working directory) has MLflow's own schema (every table, column and index, the same
    revision), the Default experiment with its own artifact location, and works as MLflow's;
    an existing database is never replaced."""
    import sqlite3

    from mlflow.tracking import MlflowClient

    from workbench.tracking import create_sqlite_database

    monkeypatch.setenv("WORKBENCH_CACHE_DIR", str(tmp_path / "cache"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where the cached empty database is made
    assert create_sqlite_database(elsewhere / "first.db")
    assert (tmp_path / "cache" / "mlflow").is_dir()
    monkeypatch.chdir(tmp_path)

    def schema(db: Path) -> tuple[list, list]:
        """Every table's and index's definition, its lines sorted (MLflow's own migrations
        order a table's constraints differently from one database to the next)."""
        with sqlite3.connect(db) as c:
            rows = c.execute("SELECT type, name, sql FROM sqlite_master").fetchall()
            ddl = sorted((kind, name, sorted(x.strip().rstrip(",")
                                             for x in (sql or "").split("\n")))
                         for kind, name, sql in rows)
            return ddl, c.execute("SELECT * FROM alembic_version").fetchall()

    theirs, ours = tmp_path / "theirs.db", tmp_path / "ours" / "mlflow.db"
    reference = MlflowClient(f"sqlite:///{theirs}")
    default = reference.get_experiment("0")
    ours.parent.mkdir()
    assert create_sqlite_database(ours)  # a copy of the cached one
    client = MlflowClient(f"sqlite:///{ours}")
    assert schema(ours) == schema(theirs)
    got = client.get_experiment("0")
    assert (got.name, got.artifact_location) == (default.name, default.artifact_location)

    exp = client.create_experiment("copy")
    run = client.create_run(exp).info.run_id
    client.log_metric(run, "y", 1.5, step=3)
    assert [(m.step, m.value) for m in client.get_metric_history(run, "y")] == [(3, 1.5)]
    before = ours.read_bytes()
    assert not create_sqlite_database(ours)  # there already: left alone
    assert ours.read_bytes() == before
    assert [p.name for p in tmp_path.rglob("*.tmp")] == []


def test_outbox_is_shared_in_order_and_read_incrementally(tmp_path):
    """Two Outbox objects on one file (as two processes have): sequence numbers continue
    across writers, each reader sees every event once and in order as the file grows, a
    torn last line waits for its end, and after everything is delivered the file starts
    afresh (its first line tells a new file from the old one, even on a reused inode)."""
    from workbench.tracking import Outbox

    path = tmp_path / "not" / "yet" / ".c.zarr.tracking.jsonl"  # folders made by the lock
    a, b = Outbox(path), Outbox(path)
    for i in range(3):
        with a.lock():
            a.put({"op": "metrics", "i": i})
    with b.lock():
        b.put({"op": "metrics", "i": 3})
    with a.lock():
        assert [e["seq"] for e in a.pending()] == [1, 2, 3, 4]
        a.put({"op": "metrics", "i": 4})
    with path.open("a") as fh:  # a writer killed mid-line
        fh.write('{"op":"metrics","i":5,"se')
    with b.lock():
        assert [e["i"] for e in b.pending()] == [0, 1, 2, 3, 4]
        b.mark_delivered(2)
        assert [e["seq"] for e in b.pending()] == [3, 4, 5]
    with path.open("a") as fh:
        fh.write('q":6}\n')
    with a.lock():
        assert [e["seq"] for e in a.pending()] == [3, 4, 5, 6]
        a.mark_delivered(6)
    assert not path.exists()
    with b.lock():
        b.put({"op": "tags", "i": 7})
    with a.lock():
        assert [(e["seq"], e["i"]) for e in a.pending()] == [(7, 7)]


def test_outbox_lock_excludes_another_process_holding_filelock(tmp_path):
    """The outbox's descriptor lock and filelock's FileLock (which other tools and older
    versions use) exclude each other across processes."""
    from workbench.tracking import Outbox

    path = tmp_path / ".c.zarr.tracking.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from filelock import FileLock\n"
         f"with FileLock({str(path) + '.lock'!r}):\n"
         "    print('held', flush=True); time.sleep(1.0)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        with Outbox(path).lock():
            waited = time.monotonic() - t0
    finally:
        holder.wait(timeout=30)
    assert waited > 0.5, waited


_TELEMETRY_PROBE = """
import sys
if sys.argv[1] == "mlflow-first":
    import mlflow  # decides on telemetry at import, before workbench could say
import workbench as wb
from mlflow.telemetry.client import get_telemetry_client
problem = wb.problems.get("branin")
c = wb.Campaign("telemetry", problem.space(), [wb.Objective("y", "minimize")],
                tracking=sys.argv[2], seed=0, initial_design={"n": 2})
c.run(problem, budget=2)
print("client" if get_telemetry_client() is not None else "none")
"""


def test_mlflow_telemetry_is_off_for_tracked_campaigns(tmp_path):
    # MLflow switches its telemetry off by itself under pytest and in CI: probe a
    # process with neither, as a user's would be. The control (mlflow alone) shows
    # that the probe sees a live client where nothing turns it off.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def probe(*args):
        out = subprocess.run([sys.executable, "-c", *args], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.split()[-1]

    assert probe("from mlflow.telemetry.client import get_telemetry_client as g;"
                 " import mlflow; print('client' if g() else 'none')") == "client"
    assert probe(_TELEMETRY_PROBE, "workbench-first", uri) == "none"
    assert probe(_TELEMETRY_PROBE, "mlflow-first", uri) == "none"
