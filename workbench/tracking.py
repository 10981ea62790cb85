"""MLflow tracking of campaigns: one experiment per partner and campaign, one run each.

The client is explicit (``MlflowClient(uri)``), never MLflow's global state,
so several campaigns in one process track to different places. Tracking is a
side channel: the campaign never waits on it and never fails because of it.

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

import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


def experiment_name(partner: str, campaign: str) -> str:
    """MLflow experiment of a campaign, namespaced by partner."""
    return f"{partner}/{campaign}"


def local_sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):])


def ui_command(uri: str) -> str:
    """The command a user runs to browse ``uri``."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri}"


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


class Outbox:
    """Ordered, durable tracking events: ``seq``-numbered JSON lines plus the last
    delivered ``seq``; shared safely by several processes through a file lock."""

    def __init__(self, path: Path | None):
        self.path = path
        self._memory: list[dict] = []
        self._delivered = 0
        self._lock = None

    def lock(self):
        import contextlib

        if self.path is None:
            return contextlib.nullcontext()
        if self._lock is None:
            from filelock import FileLock

            self._lock = FileLock(str(self.path) + ".lock", thread_local=False)
        return self._lock

    @property
    def _ack_path(self) -> Path:
        return Path(str(self.path) + ".delivered")

    def _read(self) -> list[dict]:
        if self.path is None:
            return list(self._memory)
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        events = []
        for line in lines:
            try:
                events.append(json.loads(line))
            except ValueError:  # a line torn by a crash was never acknowledged
                continue
        return events

    def delivered(self) -> int:
        if self.path is None:
            return self._delivered
        try:
            return int(self._ack_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def put(self, event: dict) -> None:
        """Append an event (under ``lock()``)."""
        events = self._read()
        event = dict(event, seq=(events[-1]["seq"] if events else self.delivered()) + 1)
        if self.path is None:
            self._memory.append(event)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def pending(self) -> list[dict]:
        """Events not yet delivered, in order (under ``lock()``)."""
        done = self.delivered()
        return [e for e in self._read() if e["seq"] > done]

    def mark_delivered(self, seq: int) -> None:
        """Record delivery up to ``seq``; drop the file once everything is delivered."""
        if self.path is None:
            self._delivered = seq
            self._memory = [e for e in self._memory if e["seq"] > seq]
            return
        tmp = Path(str(self._ack_path) + ".tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self._ack_path)
        if not self.pending():
            # Everything delivered: start the file afresh (the ack keeps the count).
            self.path.unlink(missing_ok=True)


class Tracker:
    """Logs one campaign to one MLflow run through a durable outbox.

    uri: MLflow tracking URI; partner, campaign: name the experiment;
    run_id: the campaign's run when resuming; outbox: file for undelivered
    events (None: in memory); campaign_id: a stable id of the campaign, tagged
    on its run so that a run created just before a crash is found, not
    duplicated; on_run_id: called with the run id once the run exists.
    """

    def __init__(self, uri: str, partner: str, campaign: str, run_id: str | None = None,
                 outbox: Path | None = None, campaign_id: str | None = None,
                 on_run_id: Callable[[str], None] | None = None):
        self.uri = uri
        self.partner = partner
        self.experiment = experiment_name(partner, campaign)
        self.run_id = run_id
        self.campaign_id = campaign_id
        self.outbox = Outbox(outbox)
        self._on_run_id = on_run_id
        self._client = None
        self._workspace: str | None = None
        self._warned = False
        self._retry_at = 0.0
        self._last_flush = 0.0
        import atexit
        import weakref

        # Metrics wait up to _FLUSH_INTERVAL_S to go out in one batch; whatever a
        # process leaves behind goes out when it exits (or stays in the outbox).
        ref = weakref.ref(self)
        atexit.register(lambda: ref() is not None and ref()._flush_quietly())
        self._backoff = _BACKOFF_START_S

    # -- delivery ---------------------------------------------------------

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

            db = local_sqlite_path(self.uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
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
        import contextlib

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
            tags={"partner": self.partner},
        )
        run = None
        if self.campaign_id:
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
        if self._on_run_id is not None:
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
            batch = [Metric(k, float(v), event["ts"], event["step"])
                     for k, v in event["metrics"].items()]
            client.log_batch(self.run_id, metrics=batch)
        elif op == "text":
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, event["name"])
                with open(path, "w", encoding="utf-8") as f:
                    f.write(event["text"])
                client.log_artifact(self.run_id, path)
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
        with self.outbox.lock():
            pending = self.outbox.pending()
            try:
                with self._workspace_context():
                    for group in _batches(pending):
                        if len(group) == 1:
                            self._send(group[0])
                        else:
                            self._send_batch(group)
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
        try:
            with self.outbox.lock():
                self.outbox.put(event)
        except OSError as err:  # a full disk must not stop the campaign either
            self._warn(err)
            return
        # Metrics and tags ride along with the next flush unless the last one
        # is a while ago: one database write per batch, not per step.
        if flush and (event["op"] not in _BATCHABLE
                      or time.monotonic() - self._last_flush >= _FLUSH_INTERVAL_S):
            self._last_flush = time.monotonic()
            self.flush()

    def _flush_quietly(self) -> None:
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
        self.client.log_batch(self.run_id, metrics=metrics,
                              tags=[RunTag(k, str(v)) for k, v in tags.items()])

    # -- what the campaign logs --------------------------------------------

    def start(self, spec: dict, tags: dict[str, str]) -> str | None:
        """Create (or resume) the campaign's run; returns its id when it exists already."""
        if self.run_id is not None:
            self._put({"op": "status", "status": "RUNNING"})
        else:
            with self.outbox.lock():
                queued = any(e["op"] == "create" for e in self.outbox.pending())
            if not queued:
                self._put({"op": "create", "tags": tags, "run_name": spec.get("name")},
                          flush=False)
                self._put({"op": "params", "params": spec_params(spec)}, flush=False)
                self._put({"op": "text", "name": "spec.json",
                           "text": json.dumps(spec, indent=2)})
            else:
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
        self._put({"op": "finish", "status": status}, flush=False)
        self.flush(force=True)
