"""Trials and the campaign record: one ``xarray.Dataset`` over dimension ``trial``.

Variables: one per parameter (user units; categorical as labels: the values
actually run), one per objective, ``predicted_mean`` / ``predicted_std`` over
(``trial``, ``objective``), and per-trial metadata (``status``, ``batch``,
``strategy``, ``acquisition_value``, ``asked_at``, ``told_at``,
``failure_reason``). Where a tell recorded actual setpoints that differ from the
proposal, ``proposed_<name>`` holds what was proposed for every trial (only for
the parameters where some trial differs). Where some trial was told a standard
error (``tell(id, {"yield": (71.2, 1.5)})`` or replicates), ``<outcome>_sem`` holds
it (NaN where none), and ``replicates`` the raw replicate values as JSON text.
Units live in each variable's ``attrs``.
Times are UTC: timezone-aware in memory, naive UTC in the Dataset (``datetime64``
has no zone), and a naive value read back from any store or journal is UTC.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from typing import TYPE_CHECKING, Mapping

import numpy as np

from workbench.parameters import PROPOSED_PREFIX
from workbench.snapshot import Variable
from workbench.space import Categorical, Composition, Integer, SearchSpace

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

# Which arithmetic proposals come from (surrogates, acquisitions, their optimisers).
# The same package version, seed and data give the same proposals; a change that moves
# their last bits (another factorisation layout, another solve order) raises this
# number, which every record and MLflow run carries, so that two runs that differ can
# be told apart from a bug. 2: one Cholesky layout and inverse for fits of every size.
# 3: training sets padded to at least 32 rows (16 before); from 100 observations on, fits
# refine the previous hyperparameters and refit from scratch only when the data say so;
# a pool's proposal off a log-EI plateau is the row of largest UCB. 4: the GP's log
# length-scales have a flat prior on parameters' own columns (dimension-scaled on
# substance descriptors only). 5: from 100 observations, proposals between
# refinements condition the previous hyperparameters, and the default acquisition
# search climbs half the starts for half the steps. 6: a single objective under a
# noiseless acquisition is modelled through a fitted Yeo-Johnson warp ("auto" output
# warping). 7: so are, with their bounds, the outputs that only outcome constraints bound,
# where the warp is strong. 8: with outcome constraints, the acquisition search climbs
# twice the steps and its best climbs take further spectral steps (``finish_steps``).
NUMERICS_VERSION = 8

PENDING, COMPLETED, FAILED = "pending", "completed", "failed"
# The strategy of trials brought in from past experiments (``Campaign.add_data``).
IMPORTED = "imported"
# The record's variable (and CSV column) holding an outcome's standard error: ``yield_sem``.
SEM_SUFFIX = "_sem"

# Who made the calls that changed a trial: record variables (and Trial fields) written
# only once some ask or tell recorded an actor, so older records read unchanged.
ACTOR_FIELDS = ("asked_by", "told_by")


class Prediction(NamedTuple):
    """The surrogate's belief about an objective when the trial was proposed."""

    mean: float
    std: float


@dataclass
class Trial:
    """One experiment: its parameters, what the model expected, what happened.

    ``params`` are the values the experiment was run at: the proposal, or the actual
    setpoints a tell recorded (``tell(id, outcomes, actual={...})``); ``proposed`` is
    what ``ask`` proposed (equal to ``params`` unless actual setpoints differ). The
    model learns from ``params``.
    """

    id: int
    params: dict[str, Any]
    prediction: dict[str, Prediction] | None = None
    status: str = PENDING
    outcomes: dict[str, float] = field(default_factory=dict)
    batch: int = 0
    strategy: str = ""
    acquisition_value: float | None = None
    asked_at: datetime | None = None
    told_at: datetime | None = None
    failure_reason: str | None = None
    audit: str | None = None  # JSON: why this trial was proposed (model, data hash, versions)
    proposed: dict[str, Any] | None = None  # None: as ``params`` (set so in __post_init__)
    asked_by: str | None = None  # who asked for it (the ``actor`` of its ask), if recorded
    told_by: str | None = None  # who reported its result or failure, if recorded
    sem: dict[str, float] = field(default_factory=dict)  # standard error per outcome, if told
    replicates: dict[str, list[float]] = field(default_factory=dict)  # raw replicate values

    def __post_init__(self) -> None:
        if self.proposed is None:
            self.proposed = dict(self.params)

    def __repr__(self) -> str:
        parts = [f"id={self.id}", f"status={self.status!r}", f"params={self.params!r}"]
        if self.proposed != self.params:
            parts.append(f"proposed={self.proposed!r}")
        if self.outcomes:
            parts.append(f"outcomes={self.outcomes!r}")
        if self.sem:
            parts.append(f"sem={self.sem!r}")
        if self.prediction:
            pred = {k: f"{p.mean:.4g} ± {p.std:.2g}" for k, p in self.prediction.items()}
            parts.append(f"prediction={pred!r}")
        if self.failure_reason:
            parts.append(f"failure_reason={self.failure_reason!r}")
        return f"Trial({', '.join(parts)})"


def now() -> datetime:
    """The current time in UTC, timezone-aware."""
    return datetime.now(timezone.utc)


def as_utc(v: datetime) -> datetime:
    """``v`` as an aware UTC datetime; a naive ``v`` is taken to be UTC already
    (what the record has always stored)."""
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time from a journal or spec record as aware UTC (naive means UTC)."""
    return as_utc(datetime.fromisoformat(text))


def format_time(v: datetime | None) -> str:
    """A time as users see it: ISO 8601 to the second with its UTC offset,
    e.g. ``2026-12-07T05:55:02+00:00``; empty for None."""
    return "" if v is None else as_utc(v).isoformat(timespec="seconds")


def _times(values: list[datetime | None]) -> np.ndarray:
    # datetime64 holds no zone: store naive UTC.
    return np.array([np.datetime64(as_utc(v).replace(tzinfo=None), "ns") if v is not None
                     else np.datetime64("NaT", "ns") for v in values], dtype="datetime64[ns]")


def _parameter_variable(p, values: list) -> tuple:
    """(dims, array, attrs) of one parameter's values over ``trial``."""
    if isinstance(p, Composition):
        # One variable over (trial, <name>_element): fractions per element.
        arr = np.asarray([[v.get(e, 0.0) for e in p.elements] for v in values],
                         dtype=np.float64).reshape(len(values), len(p.elements))
        vattrs = {"kind": "parameter", "type": "composition", "units": p.unit or ""}
        return ("trial", f"{p.name}_element"), arr, vattrs
    if isinstance(p, Categorical):
        arr = np.asarray(values, dtype=object)
        vattrs = {"kind": "parameter", "type": "categorical", "choices": list(p.choices)}
    elif isinstance(p, Integer):
        arr = np.asarray(values, dtype=np.int64)
        vattrs = {"kind": "parameter", "type": "integer", "low": p.low, "high": p.high}
    else:
        arr = np.asarray(values, dtype=np.float64)
        vattrs = {"kind": "parameter", "type": "continuous", "low": p.low, "high": p.high,
                  "log": int(p.log)}
    if getattr(p, "unit", None):
        vattrs["units"] = p.unit
    return ("trial",), arr, vattrs


def to_dataset(trials: list[Trial], space: SearchSpace, objectives: list, attrs: dict) -> xr.Dataset:
    """The campaign record as a Dataset (works for zero trials too)."""
    import xarray as xr

    data, coords = _variables(trials, space, objectives)
    return xr.Dataset({k: xr.Variable(*v) for k, v in data.items()},
                      coords={k: xr.Variable(*v) for k, v in coords.items()}, attrs=attrs)


def to_variables(trials: list[Trial], space: SearchSpace, objectives: list) -> dict[str, Variable]:
    """The record's variables and coordinates by name, as numpy arrays: what
    ``to_dataset`` puts in its Dataset, for writing a snapshot without xarray."""
    data, coords = _variables(trials, space, objectives)
    return {**data, **coords}


def _variables(trials: list[Trial], space: SearchSpace,
               objectives: list) -> tuple[dict[str, Variable], dict[str, Variable]]:
    """(data variables, coordinates) of the record."""
    ids = np.asarray([t.id for t in trials], dtype=np.int64)
    obj_names = [o.name for o in objectives]
    data: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    for p in space.parameters:
        if isinstance(p, Composition):
            coords[f"{p.name}_element"] = np.asarray(p.elements, dtype=object)
        data[p.name] = _parameter_variable(p, [t.params[p.name] for t in trials])
        if any(t.proposed[p.name] != t.params[p.name] for t in trials):
            dims, arr, vattrs = _parameter_variable(p, [t.proposed[p.name] for t in trials])
            data[PROPOSED_PREFIX + p.name] = (dims, arr, {**vattrs, "kind": "proposed"})
    for o in objectives:
        arr = np.asarray([t.outcomes.get(o.name, math.nan) for t in trials], dtype=np.float64)
        vattrs = {"kind": "objective", "direction": o.direction}
        if o.unit:
            vattrs["units"] = o.unit
        data[o.name] = ("trial", arr, vattrs)
        if any(o.name in t.sem for t in trials):
            sem = np.asarray([t.sem.get(o.name, math.nan) for t in trials], dtype=np.float64)
            data[o.name + SEM_SUFFIX] = ("trial", sem, {"kind": "sem", "outcome": o.name,
                                                        **({"units": o.unit} if o.unit else {})})
    if any(t.replicates for t in trials):
        data["replicates"] = ("trial", np.asarray(
            [json.dumps(t.replicates) if t.replicates else "" for t in trials], dtype=object))

    def pred(t: Trial, name: str, i: int) -> float:
        return t.prediction[name][i] if t.prediction and name in t.prediction else math.nan

    shape = (len(trials), len(obj_names))
    data["predicted_mean"] = (("trial", "objective"), np.asarray(
        [[pred(t, n, 0) for n in obj_names] for t in trials], dtype=np.float64).reshape(shape))
    data["predicted_std"] = (("trial", "objective"), np.asarray(
        [[pred(t, n, 1) for n in obj_names] for t in trials], dtype=np.float64).reshape(shape))
    data["status"] = ("trial", np.asarray([t.status for t in trials], dtype=object))
    data["batch"] = ("trial", np.asarray([t.batch for t in trials], dtype=np.int64))
    data["strategy"] = ("trial", np.asarray([t.strategy for t in trials], dtype=object))
    data["acquisition_value"] = ("trial", np.asarray(
        [math.nan if t.acquisition_value is None else t.acquisition_value for t in trials],
        dtype=np.float64))
    data["asked_at"] = ("trial", _times([t.asked_at for t in trials]))
    data["told_at"] = ("trial", _times([t.told_at for t in trials]))
    data["failure_reason"] = ("trial", np.asarray([t.failure_reason or "" for t in trials],
                                                  dtype=object))
    data["audit"] = ("trial", np.asarray([t.audit or "" for t in trials], dtype=object))
    for name in ACTOR_FIELDS:  # only once some call recorded who made it
        if any(getattr(t, name) for t in trials):
            data[name] = ("trial", np.asarray([getattr(t, name) or "" for t in trials],
                                              dtype=object))
    variables = {k: Variable((v[0],) if isinstance(v[0], str) else tuple(v[0]), v[1],
                             dict(v[2]) if len(v) > 2 else {}) for k, v in data.items()}
    coords = {"trial": ids, "objective": np.asarray(obj_names, dtype=object), **coords}
    return variables, {k: Variable((k,), v, {}) for k, v in coords.items()}


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def _time(v: np.datetime64) -> datetime | None:
    if np.isnat(v):
        return None
    return as_utc(v.astype("datetime64[us]").item())  # the record's times are whole microseconds


def from_dataset(ds: xr.Dataset, space: SearchSpace, objectives: list) -> list[Trial]:
    """Trials back from a stored record: the inverse of ``to_dataset``."""
    # numpy once, not a selection per row
    return from_columns({k: ds[k].values for k in ds.variables}, space, objectives)


def from_columns(col: Mapping[str, np.ndarray], space: SearchSpace,
                 objectives: list) -> list[Trial]:
    """Trials back from the record's variables as numpy arrays by name (``ds[k].values``
    for each variable of ``to_dataset``'s Dataset, or ``workbench.snapshot``'s columns)."""
    n = len(col["trial"])
    obj_names = [o.name for o in objectives]
    params_cols, proposed_cols = [], []
    for p in space.parameters:
        if isinstance(p, Composition):
            elements = list(p.elements)
            cast = (lambda els: lambda row: {e: float(x) for e, x in zip(els, row)})(elements)
        else:
            cast = str if isinstance(p, Categorical) else int if isinstance(p, Integer) else float
        params_cols.append((p.name, cast, col[p.name]))
        # Records without actual setpoints (and older records) have no proposed_ variable.
        proposed_cols.append((p.name, cast, col.get(PROPOSED_PREFIX + p.name, col[p.name])))
    means, stds = col["predicted_mean"], col["predicted_std"]
    sems = {k: col[k + SEM_SUFFIX] for k in obj_names if k + SEM_SUFFIX in col}
    replicates = col.get("replicates")
    trials = []
    for i in range(n):
        outcomes = {k: float(col[k][i]) for k in obj_names if not math.isnan(float(col[k][i]))}
        sem = {k: float(v[i]) for k, v in sems.items() if not math.isnan(float(v[i]))}
        raw = str(_scalar(replicates[i])) if replicates is not None else ""
        prediction = {k: Prediction(float(means[i, j]), float(stds[i, j]))
                      for j, k in enumerate(obj_names) if not math.isnan(float(means[i, j]))}
        acq = float(col["acquisition_value"][i])
        reason = str(_scalar(col["failure_reason"][i]))
        audit = str(_scalar(col["audit"][i])) if "audit" in col else ""
        actors = {k: str(_scalar(col[k][i])) or None for k in ACTOR_FIELDS if k in col}
        trials.append(Trial(
            id=int(col["trial"][i]),
            params={name: cast(values[i] if values.ndim > 1 else _scalar(values[i]))
                    for name, cast, values in params_cols},
            proposed={name: cast(values[i] if values.ndim > 1 else _scalar(values[i]))
                      for name, cast, values in proposed_cols},
            prediction=prediction or None, status=str(_scalar(col["status"][i])),
            outcomes=outcomes, batch=int(col["batch"][i]),
            strategy=str(_scalar(col["strategy"][i])),
            acquisition_value=None if math.isnan(acq) else acq,
            asked_at=_time(col["asked_at"][i]), told_at=_time(col["told_at"][i]),
            failure_reason=reason or None, audit=audit or None, **actors, sem=sem,
            replicates=json.loads(raw) if raw else {},
        ))
    return trials


def to_frame(trials: list[Trial], space: SearchSpace, objectives: list) -> pd.DataFrame:
    """One row per trial (pandas), the columns of :func:`to_rows`."""
    import pandas as pd

    columns, rows = to_rows(trials, space, objectives)
    return pd.DataFrame(rows, columns=columns)


def to_rows(trials: list[Trial], space: SearchSpace,
            objectives: list) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, one dict per trial): the columns engineers see in CSV files,
    without pandas. Parameters as run; ``proposed_<column>`` follows for each
    parameter column where some trial's actual setpoint differs from its proposal
    (what was proposed, for every trial). Missing numbers are NaN."""
    flat = [(space.flatten(t.params), space.flatten(t.proposed)) for t in trials]
    differ = [n for n in space.flat_names if any(run[n] != prop[n] for run, prop in flat)]
    with_sem = [o.name for o in objectives if any(o.name in t.sem for t in trials)]
    rows = []
    for t, (run, prop) in zip(trials, flat):
        row: dict[str, Any] = {"trial_id": t.id, "status": t.status}
        row.update(run)
        row.update({PROPOSED_PREFIX + n: prop[n] for n in differ})
        for o in objectives:
            row[o.name] = t.outcomes.get(o.name, math.nan)
        row.update({k + SEM_SUFFIX: t.sem.get(k, math.nan) for k in with_sem})
        for o in objectives:
            p = (t.prediction or {}).get(o.name)
            row[f"predicted_mean.{o.name}"] = p.mean if p else math.nan
            row[f"predicted_std.{o.name}"] = p.std if p else math.nan
        row.update(batch=t.batch, strategy=t.strategy, failure_reason=t.failure_reason or "")
        rows.append(row)
    columns = (["trial_id", "status"] + space.flat_names + [PROPOSED_PREFIX + n for n in differ]
               + [o.name for o in objectives] + [k + SEM_SUFFIX for k in with_sem]
               + [f"predicted_{k}.{o.name}" for k in ("mean", "std") for o in objectives]
               + ["batch", "strategy", "failure_reason"])
    return columns, rows


def _iso(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def _from_iso(v: str | None) -> datetime | None:
    return None if v is None else parse_time(v)


def trial_to_json(t: Trial) -> dict[str, Any]:
    """A trial as plain JSON values (the journal's form); floats round-trip exactly.
    ``proposed`` is written only where it differs from ``params``."""
    out = {
        "id": t.id, "params": dict(t.params), "status": t.status,
        "prediction": None if t.prediction is None else
        {k: [p.mean, p.std] for k, p in t.prediction.items()},
        "outcomes": dict(t.outcomes), "batch": t.batch, "strategy": t.strategy,
        "acquisition_value": t.acquisition_value, "asked_at": _iso(t.asked_at),
        "told_at": _iso(t.told_at), "failure_reason": t.failure_reason, "audit": t.audit,
    }
    if t.proposed != t.params:
        out["proposed"] = dict(t.proposed)
    out.update({k: getattr(t, k) for k in ACTOR_FIELDS if getattr(t, k)})
    if t.sem:
        out["sem"] = dict(t.sem)
    if t.replicates:
        out["replicates"] = {k: list(v) for k, v in t.replicates.items()}
    return out


def trial_from_json(d: dict[str, Any]) -> Trial:
    """The inverse of ``trial_to_json``."""
    pred = d.get("prediction")
    return Trial(
        id=int(d["id"]), params=dict(d["params"]), status=d["status"],
        prediction=None if pred is None else {k: Prediction(*v) for k, v in pred.items()},
        outcomes={k: float(v) for k, v in d.get("outcomes", {}).items()},
        batch=int(d.get("batch", 0)), strategy=d.get("strategy", ""),
        acquisition_value=d.get("acquisition_value"), asked_at=_from_iso(d.get("asked_at")),
        told_at=_from_iso(d.get("told_at")), failure_reason=d.get("failure_reason"),
        audit=d.get("audit"), proposed=d.get("proposed"),
        asked_by=d.get("asked_by"), told_by=d.get("told_by"),
        sem={k: float(v) for k, v in d.get("sem", {}).items()},
        replicates={k: [float(x) for x in v] for k, v in d.get("replicates", {}).items()},
    )
