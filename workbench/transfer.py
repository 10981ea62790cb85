"""Model priors shared between campaigns without sharing their data.

``export_prior(campaign)`` summarises a campaign's fitted GP as JSON: the
kernel hyperparameters and the posterior mean and standard deviation at
quasi-random anchor points of the encoded input box
(:mod:`surrogates.transfer`), never the observed inputs or outcomes. It is
logged as the artifact ``prior.json`` of the campaign's MLflow run, so it
carries that run's permissions: on a multi-partner server another partner
reads it only after ``workbench server grant``.

``load_prior(ref)`` reads one back from a file or a ``runs:/<run_id>/prior.json``
URI; ``prior_model(prior, space, X, Y, ...)`` fits the warm-started surrogate
(a GP whose mean is ``a * prior(x) + b``) on a new campaign's data.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import WorkbenchError

__all__ = ["PRIOR_ARTIFACT", "PRIOR_FORMAT", "TransferError", "check_compatible",
           "export_prior", "fit_with_prior", "load_prior", "log_prior", "prior_model",
           "save_prior"]

PRIOR_FORMAT = "workbench.prior/1"
PRIOR_ARTIFACT = "prior.json"


class TransferError(WorkbenchError):
    """A prior that cannot be exported, found, read or used here."""

    exit_code = 2


def _encoded_data(campaign) -> tuple[np.ndarray, np.ndarray]:
    done = [t for t in campaign.trials if t.status == "completed"]
    obj = campaign.objectives[0]
    X = campaign.space.encode([t.params for t in done]) if done else np.zeros((0, 0))
    Y = np.asarray([[t.outcomes[obj.name]] for t in done], dtype=np.float64)
    return X, Y


def export_prior(campaign, num_anchors: int | None = None, seed: int = 0) -> dict:
    """A JSON-ready prior from a campaign's completed trials (no observations in it).

    The GP is refitted on every completed trial (warm-started from the
    campaign's last hyperparameters) and summarised at ``num_anchors`` Halton
    points of the encoded unit cube (default 32 per input, 64 to 512).
    """
    import jax

    from surrogates import GPHyperparameters, fit_gp
    from surrogates.transfer import summarise_posterior
    from workbench._jax import configure_jax

    X, Y = _encoded_data(campaign)
    if len(Y) < 2:
        raise TransferError(f"campaign {campaign.name!r}: {len(Y)} completed trial(s); a prior"
                            " needs at least 2")
    configure_jax()
    warm = campaign.surrogate_state
    start = None
    if warm and "log_lengthscale" in warm and len(warm["log_lengthscale"][0]) == X.shape[1]:
        start = GPHyperparameters(**{k: np.asarray(warm[k]) for k in
                                     ("log_lengthscale", "log_variance", "log_noise", "mean")})
    unit = (np.zeros(X.shape[1]), np.ones(X.shape[1]))
    model = fit_gp(X, Y, key=jax.random.key(seed), bounds=unit, warm_start=start)
    obj = campaign.objectives[0]
    return {
        "format": PRIOR_FORMAT,
        "model": "gp_posterior_summary",
        "source": {"partner": campaign.spec.partner, "campaign": campaign.name},
        "objective": {"name": obj.name, "direction": obj.direction},
        "parameters": [{"name": p.name, "type": p.type} for p in campaign.space.parameters],
        "summary": summarise_posterior(model, num_anchors),
    }


def save_prior(prior: dict, path: str | Path) -> Path:
    """Write a prior as JSON (atomically: a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(prior, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


def log_prior(campaign, prior: dict) -> str | None:
    """Log ``prior.json`` to the campaign's MLflow run; returns ``runs:/<id>/prior.json``.

    Goes through the campaign's tracking outbox; None when the campaign is not
    tracked or the server did not take it yet (it is then delivered with the
    campaign's next tracking event).
    """
    tracker = artifact_tracker(campaign)
    if tracker is None:
        return None
    tracker.log_text(PRIOR_ARTIFACT, json.dumps(prior, indent=1))
    delivered = tracker.flush(force=True)
    return f"runs:/{tracker.run_id}/{PRIOR_ARTIFACT}" if delivered and tracker.run_id else None


def artifact_tracker(campaign, deliver: bool = True):
    """A tracker on the campaign's existing run that logs artifacts without
    reopening the run (its status stays as the campaign left it). deliver: False
    only queues in the outbox (no delivery thread, no MLflow import)."""
    if campaign.spec.tracking is None or not campaign.run_id:
        return None
    from workbench.tracking import Tracker

    outbox = None if campaign.store is None else campaign.store.outbox_path
    return Tracker(campaign.spec.tracking, campaign.spec.partner, campaign.name,
                   run_id=campaign.run_id, outbox=outbox, deliver=deliver)


def _download(uri: str, tracking: str) -> dict:
    """The JSON artifact at ``runs:/<run_id>/<path>`` on ``tracking``."""
    import tempfile

    from mlflow.tracking import MlflowClient

    rest = uri[len("runs:/"):]
    run_id, _, artifact = rest.partition("/")
    if not run_id or not artifact:
        raise TransferError(f"prior: got {uri!r}; expected runs:/<run_id>/prior.json")
    client = MlflowClient(tracking_uri=tracking)
    errors = []
    for workspace in _workspaces_to_try(tracking):
        ctx = workspace_context(workspace)
        try:
            with ctx, tempfile.TemporaryDirectory() as tmp:
                client.get_run(run_id)
                path = client.download_artifacts(run_id, artifact, tmp)
                return json.loads(Path(path).read_text(encoding="utf-8"))
        except ValueError as e:
            raise TransferError(f"prior {uri}: not a JSON prior ({e})") from None
        except Exception as e:  # noqa: BLE001 - MLflow's errors, turned into one message
            errors.append(e)
    text = " ".join(str(e) for e in errors)
    if "403" in text or "PERMISSION_DENIED" in text or "401" in text:
        raise TransferError(
            f"prior {uri}: permission denied by {tracking} for these credentials; the run"
            " belongs to another partner's campaign: its admin can share it with"
            " `workbench server grant <your partner> <experiment id>`") from None
    raise TransferError(f"prior {uri}: no such run or artifact at {tracking}"
                        f" ({type(errors[-1]).__name__ if errors else 'not found'})") from None


def _workspaces_to_try(tracking: str) -> list[str | None]:
    """MLFLOW_WORKSPACE if set; else, on a server, the workspaces these credentials list."""
    if os.environ.get("MLFLOW_WORKSPACE") or not tracking.startswith(("http://", "https://")):
        return [None]
    try:
        from workbench.server import RestClient, list_workspaces

        names = list_workspaces(RestClient(tracking))
    except Exception:  # noqa: BLE001 - a server without auth or workspaces
        return [None]
    return list(names) if names else [None]


def workspace_context(workspace: str | None):
    import contextlib

    if workspace is None:
        return contextlib.nullcontext()
    from mlflow.utils.workspace_context import WorkspaceContext

    return WorkspaceContext(workspace)


def load_prior(ref: str | Path, tracking: str | None = None) -> dict:
    """A prior from a JSON file or a ``runs:/<run_id>/prior.json`` URI.

    tracking: the MLflow URI runs are read from (default ``$MLFLOW_TRACKING_URI``);
    the server's permissions apply to the caller's credentials.
    """
    ref = str(ref)
    if ref.startswith("runs:/"):
        tracking = tracking or os.environ.get("MLFLOW_TRACKING_URI")
        if not tracking:
            raise TransferError(f"prior {ref}: no tracking URI; pass one or set"
                                " MLFLOW_TRACKING_URI")
        prior = _download(ref, tracking)
    else:
        try:
            prior = json.loads(Path(ref).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TransferError(f"prior: no file {ref}") from None
        except ValueError as e:
            raise TransferError(f"prior {ref}: not JSON ({e})") from None
    if not isinstance(prior, dict) or prior.get("format") != PRIOR_FORMAT:
        got = prior.get("format") if isinstance(prior, dict) else type(prior).__name__
        raise TransferError(f"prior {ref}: format {got!r}; expected {PRIOR_FORMAT!r}")
    return prior


def check_compatible(prior: dict, space, objective=None) -> None:
    """Refuse a prior whose encoded inputs differ from ``space``'s (names, types, order)."""
    mine = [{"name": p.name, "type": p.type} for p in space.parameters]
    if prior.get("parameters") != mine:
        raise TransferError(f"surrogate.prior: exported for parameters {prior.get('parameters')};"
                            f" this campaign has {mine}")
    dim = prior["summary"]["dim"]
    if dim != space.domain().dim:
        raise TransferError(f"surrogate.prior: {dim} encoded inputs; this campaign has"
                            f" {space.domain().dim}")


def prior_model(prior: dict, X, Y, *, key, capacity: int | None = None, restarts: int = 4,
                **fit_kwargs: Any):
    """The warm-started surrogate on a campaign's encoded data (X: (n, d) in the unit
    cube, Y: (n, 1)): a ``PriorMeanGP`` with the protocol of an ``ExactGP``.

    This is what ``Campaign._fit_surrogate`` calls when the spec names
    ``surrogate.prior``.
    """
    from surrogates.transfer import fit_prior_mean_gp, prior_mean_from_summary

    X = np.asarray(X, np.float64)
    unit = (np.zeros(X.shape[1]), np.ones(X.shape[1]))
    return fit_prior_mean_gp(X, Y, prior_mean_from_summary(prior["summary"]), key=key,
                             bounds=unit, capacity=capacity, restarts=restarts, **fit_kwargs)


_LOADED: dict[tuple[str, str | None], dict] = {}


def fit_with_prior(ref: str, space, X, Y, *, key, tracking: str | None = None,
                   base_dir: Path | None = None, **fit_kwargs: Any):
    """The surrogate of a campaign whose spec says ``surrogate.prior: ref``.

    For ``Campaign._fit_surrogate``: loads the prior once per process (a
    relative path is taken from ``base_dir``, the spec's folder; a ``runs:/``
    URI from ``tracking``), checks it matches ``space``, and fits
    :func:`prior_model` on the encoded data X (n, d), Y (n, 1).
    """
    if not ref.startswith("runs:/") and base_dir is not None and not Path(ref).is_absolute():
        ref = str(Path(base_dir) / ref)
    cache_key = (ref, tracking if ref.startswith("runs:/") else None)
    if cache_key not in _LOADED:
        prior = load_prior(ref, tracking=tracking)
        check_compatible(prior, space)
        _LOADED[cache_key] = prior
    return prior_model(_LOADED[cache_key], X, Y, key=key, **fit_kwargs)
