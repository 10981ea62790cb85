"""MLflow tracking of campaigns: one experiment per partner and campaign, one run each.

The client is explicit (``MlflowClient(uri)``), never MLflow's global state,
so several campaigns in one process track to different places. Tracking is a
side channel: when the tracking store fails, the campaign goes on and the
failure is reported once as a warning.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

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


class Tracker:
    """Logs one campaign to one MLflow run; resumes the run when given its id."""

    def __init__(self, uri: str, partner: str, campaign: str, run_id: str | None = None):
        self.uri = uri
        self.experiment = experiment_name(partner, campaign)
        self.run_id = run_id
        self._client = None
        self._failed = False

    def _fail(self, what: str, err: Exception) -> None:
        if not self._failed:
            warnings.warn(
                f"tracking to {self.uri} failed ({what}: {type(err).__name__}: {err});"
                " the campaign goes on untracked", RuntimeWarning, stacklevel=3,
            )
        self._failed = True

    @property
    def client(self):
        if self._client is None:
            # Quiet MLflow's database-migration chatter on first use of a store.
            for name in ("alembic", "mlflow"):
                logging.getLogger(name).setLevel(logging.WARNING)
            os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
            from mlflow.tracking import MlflowClient

            db = local_sqlite_path(self.uri)
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def _artifact_location(self) -> str | None:
        db = local_sqlite_path(self.uri)
        if db is None:
            return None  # a server decides where artifacts go
        return (db.parent.absolute() / "mlartifacts").as_uri()

    def start(self, spec: dict, tags: dict[str, str]) -> str | None:
        """Create (or resume) the campaign's run; returns its id."""
        if self._failed:
            return self.run_id
        try:
            client = self.client
            if self.run_id is not None:
                client.update_run(self.run_id, status="RUNNING")
                return self.run_id
            exp = client.get_experiment_by_name(self.experiment)
            exp_id = exp.experiment_id if exp is not None else client.create_experiment(
                self.experiment, artifact_location=self._artifact_location(),
                tags={"partner": tags.get("partner", "")},
            )
            run = client.create_run(exp_id, tags=tags, run_name=spec.get("name"))
            self.run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, v) for k, v in spec_params(spec).items()]
            for i in range(0, len(params), 100):
                client.log_batch(self.run_id, params=params[i:i + 100])
            self.log_text("spec.json", json.dumps(spec, indent=2))
        except Exception as err:  # noqa: BLE001 - tracking must never stop a campaign
            self._fail("start", err)
        return self.run_id

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if self._failed or self.run_id is None:
            return
        try:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            batch = [Metric(k, float(v), now, step) for k, v in metrics.items()
                     if v is not None]
            if batch:
                self.client.log_batch(self.run_id, metrics=batch)
        except Exception as err:  # noqa: BLE001
            self._fail("log_metrics", err)

    def log_text(self, name: str, text: str) -> None:
        if self._failed or self.run_id is None:
            return
        try:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                self.client.log_artifact(self.run_id, path)
        except Exception as err:  # noqa: BLE001
            self._fail("log_artifact", err)

    def finish(self, status: str = "FINISHED") -> None:
        if self._failed or self.run_id is None:
            return
        try:
            self.client.set_terminated(self.run_id, status=status)
        except Exception as err:  # noqa: BLE001
            self._fail("finish", err)
