"""MLflow tracking of campaigns: one experiment per partner and campaign, one run each.

The client is explicit (``MlflowClient(uri)``), never MLflow's global state,
so several campaigns in one process track to different places. Tracking is a
side channel: the campaign never waits on it and never fails because of it.
Delivery runs in a background thread of the process; the campaign only appends
to the outbox, and ``finish`` (the end of ``run``) waits until everything is
delivered or buffered. A tracker made with ``deliver=False`` only appends (the
command-line ``tell``, which should not import MLflow): the next process that
tracks the campaign delivers its events.

Every tracking event (run creation, params, metrics, artifacts, status) goes
first to an *outbox*: a durable JSON-lines file beside the campaign store (in
memory for in-memory campaigns), then to MLflow in order. When the server is
down, slow or refuses, events stay in the outbox and are delivered, in order,
on a later attempt (with back-off), in this process or the next one that opens
the campaign. Re-sending is idempotent: metrics carry the timestamp they were
first logged with (MLflow keeps one row per key, step, timestamp and value),
params and artifacts are overwritten with the same content, and the run is
found again by a tag holding the campaign's id rather than created twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from workbench.outbox import Outbox  # re-exported: callers import it from here

log = logging.getLogger(__name__)


def experiment_name(partner: str, campaign: str) -> str:
    """MLflow experiment of a campaign, namespaced by partner."""
    return f"{partner}/{campaign}"


def local_sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def _template_dir() -> Path:
    """Where empty embedded MLflow databases are kept between processes, beside the
    compilation cache (``$WORKBENCH_CACHE_DIR/mlflow`` or ``~/.cache/sciworkbench/mlflow``)."""
    from workbench.resources import cache_root

    return cache_root() / "mlflow"


def _empty_database() -> Path:
    """An embedded MLflow database with every table at this MLflow version's schema and no
    experiment, made once per version in :func:`_template_dir`.

    MLflow builds a new SQLite database by running each of its schema migrations (about
    sixty; seconds, most of a fresh tracking process's work); a copy of this file is the
    same database for a file copy. Experiment 0 (``Default``) is left out, so that MLflow
    adds it itself on first open with the new file's own artifact location and time.
    """
    import sqlite3
    from importlib.metadata import version

    folder = _template_dir()
    template = folder / f"empty-mlflow-{version('mlflow')}.db"
    if template.exists():
        return template
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".db.tmp")
    os.close(fd)
    os.unlink(tmp)  # MLflow creates the file
    try:
        from mlflow.tracking import MlflowClient

        MlflowClient(tracking_uri=f"sqlite:///{tmp}").get_experiment("0")  # builds it
        with contextlib.closing(sqlite3.connect(tmp)) as db, db:
            db.execute("DELETE FROM experiment_tags WHERE experiment_id = 0")
            db.execute("DELETE FROM experiments WHERE experiment_id = 0")
        os.replace(tmp, template)  # whole, or not there
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return template


def create_sqlite_database(db: Path) -> bool:
    """Create the embedded MLflow database ``db``, which does not exist yet, as a copy of
    :func:`_empty_database`; True when it did. Never replaces a file: when another process
    made ``db`` meanwhile, or anything fails (a read-only cache, a file system without hard
    links), it returns False and MLflow creates or opens the database as usual."""
    import shutil

    if db.exists():
        return False
    tmp = None
    try:
        template = _empty_database()
        fd, tmp = tempfile.mkstemp(dir=db.parent, prefix=f".{db.name}.", suffix=".tmp")
        os.close(fd)
        shutil.copyfile(template, tmp)
        os.link(tmp, db)  # fails if db exists: a database made meanwhile is kept
        return True
    except Exception as err:  # noqa: BLE001 - MLflow's own way is always there
        log.debug("no copy of an empty MLflow database at %s: %r", db, err)
        return False
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# MLflow 3's UI opens an experiment in the view its kind names; without the tag it may
# guess the GenAI view (traces), where a campaign's metrics are two clicks away.
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


def ui_command(uri: str) -> str:
    """The command a user runs to browse ``uri``."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}, then open {UI_ADDRESS}"


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v
                                                   for v in value):
        for v in value:
            _flatten(f"{prefix}.{v['name']}", {k: x for k, x in v.items() if k != "name"}, out)
    elif value is not None:
        out[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def spec_params(spec: dict) -> dict[str, str]:
    """The spec flattened to MLflow params: ``space.temperature.low`` -> ``30.0``."""
    out: dict[str, str] = {}
    _flatten("", spec, out)
    return {k[:250]: v[:6000] for k, v in out.items()}


CAMPAIGN_TAG = "workbench.campaign_id"
_BATCHABLE = ("metrics", "tags")
_FLUSH_INTERVAL_S = 1.0
_BATCH_METRICS = 900  # MLflow's log_batch takes at most 1,000 metrics


def _batches(events: list[dict]) -> list[list[dict]]:
    """Events in order, consecutive metrics/tags events grouped (each group one request)."""
    groups: list[list[dict]] = []
    size = 0
    for e in events:
        n = len(e.get("metrics", ()))
        if (e["op"] in _BATCHABLE and groups and groups[-1][-1]["op"] in _BATCHABLE
                and size + n <= _BATCH_METRICS):
            groups[-1].append(e)
            size += n
        else:
            groups.append([e])
            size = n
    return groups
_BACKOFF_START_S, _BACKOFF_MAX_S = 2.0, 60.0


def insert_metrics_sqlite(client: Any, run_id: str, metrics: list) -> None:
    """Metric rows into the embedded (SQLite) store of an ``MlflowClient`` in one bulk
    insert, as ``log_batch`` stores them. metrics: ``mlflow.entities.Metric`` rows.

    MLflow's ``log_batch`` builds an ORM object per row (about 60 us each: 40 ms for a
    50-step campaign's 700 rows, on the campaign's critical path when it finishes);
    one executemany of the same rows takes a fraction of that. The latest value per
    key goes through MLflow's own update, given each key's latest row only, which
    selects the same one. Private parts of MLflow's SQLAlchemy store are used here, so
    any error (a changed store, a duplicate row when a batch is re-sent after a crash)
    makes the caller roll back to ``log_batch``, which handles every case.
    """
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    store = client._tracking_client.store
    rows, latest = [], {}
    for m in metrics:
        is_nan, value = store.sanitize_metric_value(float(m.value))
        row = {"run_uuid": run_id, "key": m.key, "value": value, "timestamp": m.timestamp,
               "step": m.step, "is_nan": is_nan}
        rows.append(row)
        old = latest.get(m.key)
        if old is None or (row["step"], row["timestamp"], value) > (
                old["step"], old["timestamp"], old["value"]):
            latest[m.key] = row
    with store.ManagedSessionMaker(read_only=False) as session:
        store._check_run_is_active(store._get_run(run_uuid=run_id, session=session))
        session.execute(sa.insert(SqlMetric.__table__), rows)
        store._update_latest_metrics_if_necessary([SqlMetric(**r) for r in latest.values()],
                                                  session)


def _telemetry_off() -> None:
    """Drop MLflow's telemetry client if MLflow was imported before ``workbench`` set
    ``MLFLOW_DISABLE_TELEMETRY`` (it decides once, at import)."""
    if os.environ.get("MLFLOW_DISABLE_TELEMETRY", "").lower() not in ("true", "1"):
        return
    try:
        from mlflow.telemetry import client as telemetry

        if telemetry.get_telemetry_client() is not None:
            telemetry.set_telemetry_client()  # re-reads the environment: None
    except Exception:  # noqa: BLE001 - another MLflow version: nothing to drop
        pass


class Tracker:
    """Logs one campaign to one MLflow run through a durable outbox.

    uri: MLflow tracking URI; partner, campaign: name the experiment;
    run_id: the campaign's run when resuming; outbox: file for undelivered
    events (None: in memory); campaign_id: a stable id of the campaign, tagged
    on its run so that a run created just before a crash is found, not
    duplicated; on_run_id: called with the run id once the run exists; deliver:
    False queues events in the outbox only (no delivery thread, no MLflow import,
    nothing sent at exit), for a short process whose events the next process that
    tracks the campaign delivers; ``flush`` still delivers when called.
    """

    def __init__(self, uri: str, partner: str, campaign: str, run_id: str | None = None,
                 outbox: Path | None = None, campaign_id: str | None = None,
                 on_run_id: Callable[[str], None] | None = None, deliver: bool = True):
        self.uri = uri
        self.partner = partner
        self.experiment = experiment_name(partner, campaign)
        self.run_id = run_id
        self.campaign_id = campaign_id
        self.outbox = Outbox(outbox)
        self.deliver = deliver
        self._on_run_id = on_run_id
        self._outbox_failed = False  # warned once that the outbox cannot be written
        self._client = None
        self._workspace: str | None = None
        self._warned = False
        self._retry_at = 0.0
        self._last_flush = 0.0
        import atexit
        import concurrent.futures.thread  # noqa: F401 - see below
        import weakref

        # Metrics wait up to _FLUSH_INTERVAL_S to go out in one batch; whatever a
        # process leaves behind goes out when it exits (or stays in the outbox). At exit
        # no module that registers an exit hook can be imported any more, and MLflow's
        # artifact upload imports concurrent.futures' threads lazily: hence imported here.
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref()._flush_quietly())
        self._backoff = _BACKOFF_START_S
        self._flush_lock = threading.Lock()  # one delivery at a time in this process
        self._wake = threading.Event()
        self._urgent = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._new_run_id: str | None = None  # found by the delivery thread, reported by ours

    # -- delivery ---------------------------------------------------------

    def _deliver_in_background(self) -> None:
        """The delivery thread: flush when woken for a run/params/artifact event, and
        at most once per _FLUSH_INTERVAL_S for metrics and tags (one write per batch)."""
        while not self._stop:
            self._wake.wait(_FLUSH_INTERVAL_S)
            self._wake.clear()
            if self._stop:
                break
            if self._urgent or time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S:
                self._urgent = False
                self._last_flush = time.monotonic()
                try:
                    self.flush()
                except Exception:  # noqa: BLE001 - the thread must outlive any failure
                    pass

    def _kick(self, urgent: bool) -> None:
        if not self.deliver:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver_in_background, daemon=True,
                                            name=f"workbench-tracking-{self.experiment}")
            self._thread.start()
        if urgent:
            self._urgent = True
            self._wake.set()

    def _stop_thread(self) -> None:
        if self._thread is not None:
            self._stop = True
            self._wake.set()
            self._thread.join()
            self._thread = None
            self._stop = False

    def _report_run_id(self) -> None:
        """Tell the campaign a run id the delivery thread found (from the caller's thread,
        since the campaign records it in its own store)."""
        run_id, self._new_run_id = self._new_run_id, None
        if run_id is not None and self._on_run_id is not None:
            self._on_run_id(run_id)

    def _warn(self, err: Exception) -> None:
        if not self._warned:
            where = self.outbox.path or "memory"
            warnings.warn(
                f"tracking to {self.uri} failed ({type(err).__name__}: {err}); the campaign"
                f" goes on and tracking events wait in {where} until it answers",
                RuntimeWarning, stacklevel=4,
            )
        self._warned = True

    @property
    def client(self):
        if self._client is None:
            # Quiet MLflow's database-migration chatter on first use of a store.
            for name in ("alembic", "mlflow"):
                logging.getLogger(name).setLevel(logging.WARNING)
            os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
            if self.uri.startswith(("http://", "https://")):
                # MLflow retries a refused connection for minutes by default; the
                # outbox retries instead, so a down server costs one short timeout.
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
                os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            from mlflow.tracking import MlflowClient

            _telemetry_off()
            db = local_sqlite_path(self.uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
                create_sqlite_database(db)
            client = MlflowClient(tracking_uri=self.uri)
            if self.uri.startswith(("http://", "https://")) and not os.environ.get(
                    "MLFLOW_WORKSPACE"):
                from workbench.server import partner_workspace

                try:
                    self._workspace = partner_workspace(self.uri, self.partner)
                except Exception:  # noqa: BLE001 - a server without auth or workspaces
                    self._workspace = None
            self._client = client
        return self._client

    def _workspace_context(self):

        if self._workspace is None:
            return contextlib.nullcontext()
        from mlflow.utils.workspace_context import WorkspaceContext

        return WorkspaceContext(self._workspace)

    def _artifact_location(self) -> str | None:
        db = local_sqlite_path(self.uri)
        if db is None:
            return None  # a server decides where artifacts go
        return (db.parent.absolute() / "mlartifacts").as_uri()

    def _ensure_run(self, event: dict) -> None:
        if self.run_id is not None:
            return
        client = self.client
        exp = client.get_experiment_by_name(self.experiment)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(
            self.experiment, artifact_location=self._artifact_location(),
            tags={"partner": self.partner, **EXPERIMENT_TAGS},
        )
        if exp is not None and not exp.tags.get("mlflow.experimentKind"):
            with contextlib.suppress(Exception):  # a partner without the right keeps the view
                for key, value in EXPERIMENT_TAGS.items():
                    client.set_experiment_tag(exp_id, key, value)
        run = None
        if self.campaign_id and exp is not None:  # a just-created experiment has no runs
            found = client.search_runs(
                [exp_id], filter_string=f"tags.`{CAMPAIGN_TAG}` = '{self.campaign_id}'",
                max_results=1)
            run = found[0] if found else None
        if run is None:
            tags = dict(event.get("tags", {}))
            if self.campaign_id:
                tags[CAMPAIGN_TAG] = self.campaign_id
            run = client.create_run(exp_id, tags=tags, run_name=event.get("run_name"))
        self.run_id = run.info.run_id
        if threading.current_thread() is self._thread:
            self._new_run_id = self.run_id
        elif self._on_run_id is not None:
            self._on_run_id(self.run_id)

    def _send(self, event: dict) -> None:
        from mlflow.entities import Metric, Param

        op = event["op"]
        if op == "create":
            self._ensure_run(event)
            return
        if self.run_id is None:  # events queued before the run could be created
            self._ensure_run({})
        client = self.client
        if op == "params":
            params = [Param(k, v) for k, v in event["params"].items()]
            for i in range(0, len(params), 100):
                client.log_batch(self.run_id, params=params[i:i + 100])
        elif op == "metrics":
            self.deliver_metrics([Metric(k, float(v), event["ts"], event["step"])
                                  for k, v in event["metrics"].items()])
        elif op == "text":
            # A name may have folders ("structures/trial_0003.extxyz").
            folder, name = os.path.split(event["name"])
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(event["text"])
                client.log_artifact(self.run_id, path, artifact_path=folder or None)
        elif op == "tags":
            from mlflow.entities import RunTag

            client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in
                                                event["tags"].items()])
        elif op == "status":
            client.update_run(self.run_id, status=event["status"])
        elif op == "finish":
            client.set_terminated(self.run_id, status=event["status"])

    def flush(self, force: bool = False) -> bool:
        """Deliver buffered events in order; True when none is left.

        After a failure, attempts wait a growing back-off (2 s to 60 s) unless
        ``force``, so a campaign with its server down does not stall on it.
        """
        if not force and time.monotonic() < self._retry_at:
            return False
        with self._flush_lock:
            done = self._flush_locked()
        if threading.current_thread() is not self._thread:
            self._report_run_id()
        return done

    def _flush_locked(self) -> bool:
        # One deliverer across processes (the delivery lock), while the outbox
        # lock is held only to read and to acknowledge, so that the campaign's
        # appends never wait on the tracking server.
        with self.outbox.delivery_lock():
            with self.outbox.lock():
                pending = self.outbox.pending()
            try:
                _ = self.client  # resolves the partner's workspace, which the context needs
                with self._workspace_context():
                    for group in _batches(pending):
                        if len(group) == 1:
                            self._send(group[0])
                        else:
                            self._send_batch(group)
                        with self.outbox.lock():
                            self.outbox.mark_delivered(group[-1]["seq"])
            except Exception as err:  # noqa: BLE001 - tracking must never stop a campaign
                self._warn(err)
                self._retry_at = time.monotonic() + self._backoff
                self._backoff = min(2 * self._backoff, _BACKOFF_MAX_S)
                return False
        if self._warned and pending:
            log.warning("tracking to %s is back: buffered events delivered", self.uri)
        self._warned = False
        self._backoff = _BACKOFF_START_S
        return True

    def _put(self, event: dict, flush: bool = True) -> None:
        self._report_run_id()
        try:
            with self.outbox.lock():
                self.outbox.put(event)
        except OSError as err:  # a full disk must not stop the campaign either
            if self._outbox_failed:
                return
            self._outbox_failed = True
            warnings.warn(f"tracking: event {event['op']!r} could not be written to the outbox"
                          f" {self.outbox.path} ({err}); it is not tracked (nor are later events"
                          " that fail the same way), and the campaign goes on", RuntimeWarning, stacklevel=3)
            return
        # Metrics and tags ride along with the next delivery: one database write
        # per batch, not per step.
        if flush:
            self._kick(urgent=event["op"] not in _BATCHABLE)

    def _flush_quietly(self) -> None:
        self._stop_thread()
        if not self.deliver:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.flush(force=True)
        except Exception:  # noqa: BLE001 - at exit, the outbox keeps what did not go
            pass

    def _send_batch(self, events: list[dict]) -> None:
        """Consecutive metrics and tags events in one ``log_batch`` (same effect as one by one)."""
        from mlflow.entities import Metric, RunTag

        if self.run_id is None:
            self._ensure_run({})
        metrics, tags = [], {}
        for e in events:
            if e["op"] == "metrics":
                metrics += [Metric(k, float(v), e["ts"], e["step"])
                            for k, v in e["metrics"].items()]
            else:
                tags.update(e["tags"])  # later values win, as one by one
        self.deliver_metrics(metrics)
        if tags:
            self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def deliver_metrics(self, metrics: list) -> None:
        """Metric rows (``mlflow.entities.Metric``) to the run now, past the outbox: in
        bulk into an embedded store (:func:`insert_metrics_sqlite`), else, or when that
        fails (a batch sent again after a crash), by MLflow's ``log_batch``, which adds
        no row twice. The outbox's delivery calls it; ``log_metrics`` is the buffered way."""
        if not metrics:
            return
        if local_sqlite_path(self.uri) is not None:
            try:
                insert_metrics_sqlite(self.client, self.run_id, metrics)
                return
            except Exception as err:  # noqa: BLE001 - MLflow's own path handles every case
                log.debug("bulk metric insert fell back to log_batch: %r", err)
        self.client.log_batch(self.run_id, metrics=metrics)

    # -- what the campaign logs --------------------------------------------

    def start(self, spec: dict, tags: dict[str, str]) -> str | None:
        """Create (or resume) the campaign's run; returns its id when it exists already.

        tags: set on a new run when it is created, updated on a resumed one (the
        versions of this session's code)."""
        if self.run_id is not None:
            self._put({"op": "status", "status": "RUNNING"})
            self.set_tags(tags)
        else:
            with self.outbox.lock():
                queued = any(e["op"] == "create" for e in self.outbox.pending())
            if not queued:
                self._put({"op": "create", "tags": tags, "run_name": spec.get("name")},
                          flush=False)
                self._put({"op": "params", "params": spec_params(spec)}, flush=False)
                self._put({"op": "text", "name": "spec.json",
                           "text": json.dumps(spec, indent=2)})
            elif self.deliver:
                self.flush(force=True)
        return self.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        values = {k: float(v) for k, v in metrics.items() if v is not None}
        if values:
            self._put({"op": "metrics", "metrics": values, "step": int(step),
                       "ts": int(time.time() * 1000)})

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set (or overwrite) tags of the run: versions, the data hash."""
        if tags:
            self._put({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_text(self, name: str, text: str) -> None:
        self._put({"op": "text", "name": name, "text": text})

    def finish(self, status: str = "FINISHED") -> None:
        """End the run: deliver everything now (or leave it buffered, with a warning); a
        tracker that does not deliver leaves the end in the outbox with the rest."""
        self._put({"op": "finish", "status": status}, flush=False)
        if not self.deliver:
            return
        self._stop_thread()
        self.flush(force=True)
        self._report_run_id()
