"""The campaign: ask for experiments, tell their outcomes, run closed loops.

A campaign is identified by its store: constructing one on an existing store
resumes it (after checking the space and objectives agree), and
``Campaign.open(store)`` resumes from the store alone. Every ``ask`` and
``tell`` is persisted before it returns, so an acknowledged observation is
never lost.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import time
import warnings
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable

import numpy as np

from workbench import problems
from workbench.errors import CampaignError
from workbench.record import (COMPLETED, FAILED, PENDING, Prediction, Trial, now,
                              trial_from_json, trial_to_json)
from workbench.space import Objective, SearchSpace
from workbench.spec import (DEFAULT_TRACKING, CampaignSpec, check_tracking_uri, load_spec,
                            parse_spec)

__all__ = ["Campaign"]

_VERSION = "0.1.0"


@functools.lru_cache(maxsize=1)
def _package_version() -> str:
    """The installed sciworkbench version (once per process: a metadata lookup scans
    site-packages)."""
    try:
        from importlib.metadata import version

        return version("sciworkbench")
    except Exception:  # noqa: BLE001 - running from a source tree
        return _VERSION


_VERSIONS: dict[str, str] = {}


def _versions() -> dict[str, str]:
    """Code and package versions recorded with every proposal (computed once)."""
    if not _VERSIONS:
        import platform
        from importlib.metadata import PackageNotFoundError, version

        _VERSIONS["python"] = platform.python_version()
        _VERSIONS["sciworkbench"] = _package_version()
        for name in ("jax", "jaxlib", "equinox", "optax", "numpy"):
            try:
                _VERSIONS[name] = version(name)
            except PackageNotFoundError:
                pass
    return dict(_VERSIONS)


def _data_hash(X: np.ndarray, Y: np.ndarray) -> str:
    """SHA-256 of the encoded training data a proposal saw (first 16 hex digits)."""
    h = hashlib.sha256()
    for a in (X, Y):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


# Fold the journal into the Zarr snapshot when it holds this many events, or a
# quarter of the trials if more: amortised O(1) per tell, and a snapshot that
# stays close to current for readers who open the Zarr folder directly.
_COMPACT_MIN_EVENTS = 64


def jax_key_split(key):
    import jax

    return jax.random.split(key)[1]


def _short(value: Any, limit: int = 80) -> str:
    """repr of a user value, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _copy(t: Trial) -> Trial:
    return replace(t, params=dict(t.params), outcomes=dict(t.outcomes),
                   prediction=dict(t.prediction) if t.prediction else None)


class _PlotAccessor:
    """``campaign.plot.<name>(...)``: the functions of ``workbench.plots`` bound to a
    campaign; calling it draws the convergence plot."""

    _NAMES = ("convergence", "predictions", "calibration", "pareto", "hypervolume", "slices",
              "map", "pairs", "lengthscales", "ternary")

    def __init__(self, campaign: "Campaign"):
        self._campaign = campaign

    def __call__(self, ax=None, **kw):
        from workbench.plots import plot_convergence
        return plot_convergence(self._campaign, ax=ax, **kw)

    def __getattr__(self, name: str):
        if name not in self._NAMES:
            raise AttributeError(f"campaign.plot has no {name!r}; expected one of"
                                 f" {list(self._NAMES)}")
        from workbench import plots
        return functools.partial(getattr(plots, f"plot_{name}"), self._campaign)

    def __dir__(self):
        return list(self._NAMES)


class Campaign:
    """A Bayesian-optimisation campaign over a search space.

    name: campaign name (MLflow experiment ``partner/name``); space: the
    SearchSpace; objectives: list of Objective (one, for now); store: path of
    the Zarr record, None to keep it in memory; tracking: MLflow URI,
    "default" for the local ``sqlite:///campaigns/mlflow.db``, None for off;
    partner: the industrial partner owning the campaign; seed: makes every
    proposal reproducible. initial_design, surrogate, acquisition: dicts as in
    the YAML schema. bad_observations: "error" (a tell with a missing, NaN,
    infinite or non-numeric outcome raises CampaignError) or "fail" (it
    records the trial as failed with the reason).
    """

    def __init__(
        self,
        name: str,
        space: SearchSpace,
        objectives: list[Objective],
        *,
        outcome_constraints: list[str] | tuple = (),
        store: str | Path | None = None,
        tracking: str | None = "default",
        partner: str = "default",
        seed: int = 0,
        initial_design: dict | None = None,
        surrogate: dict | None = None,
        acquisition: dict | None = None,
        budget: int | None = None,
        description: str = "",
        context: list[str] | tuple = (),
        stopping: list[dict] | None = None,
        bad_observations: str = "error",
    ):
        if not isinstance(space, SearchSpace):
            raise CampaignError(f"space: got {type(space).__name__}; expected wb.SearchSpace")
        if isinstance(objectives, Objective):
            objectives = [objectives]
        data: dict[str, Any] = dict(
            name=name, partner=partner, description=description,
            space=list(space.parameters), constraints=list(space.constraints),
            objectives=list(objectives), outcome_constraints=list(outcome_constraints),
            store=None if store is None else str(store),
            tracking=DEFAULT_TRACKING if tracking == "default" else tracking,
            seed=seed, budget=budget, context=list(context), bad_observations=bad_observations,
        )
        for key, val in (("initial_design", initial_design), ("surrogate", surrogate),
                         ("acquisition", acquisition), ("stopping", stopping)):
            if val is not None:
                data[key] = val
        spec = parse_spec(data, source="Campaign(...)")
        self._setup(spec)

    # -- construction -----------------------------------------------------

    def _setup(self, spec: CampaignSpec, base_dir: Path | None = None,
               stored: Any = None) -> None:
        self.spec = spec
        self.space = SearchSpace(list(spec.space), spec.constraints)
        self.objectives = list(spec.objectives)
        from workbench.engine import resolve

        self._engine = resolve(spec, self.space, base_dir)
        if any(getattr(p, "encoding", "onehot") != "onehot" or getattr(p, "features", None)
               for p in self.space.parameters):
            try:  # SMILES and element properties: fail now, not at the first model fit
                self._engine.feature_transform()
            except (ValueError, ImportError) as e:
                raise CampaignError(str(e)) from None
        # Outcomes recorded per trial: the objectives, then outcomes that only
        # constraints bound (stored like objectives, in the direction that helps).
        self.outcomes = self.objectives + [
            Objective(c.name, "minimize" if c.op == "<=" else "maximize")
            for c in self._engine.constraints if c.name not in {o.name for o in self.objectives}]
        self._base_dir = base_dir
        self._trials: list[Trial] = []
        self._warm_start: dict | None = None
        self._last_model = None
        self._pool_rows: list[dict] | None = None
        self._pool_encoded: np.ndarray | None = None
        self.stopped: str | None = None
        self._run_id: str | None = None
        self._tracker = None
        self._created_at = now().isoformat()
        self._store = None
        self._token: str | None = None
        self._offset = 0
        self._journal_events = 0
        if spec.store is not None:
            from workbench.store import TOKEN_ATTR, ZarrStore, check_store_path

            check_store_path(spec.store)  # never write over a folder that is not a store
            self._store = ZarrStore(spec.store)
            with self._store.lock():
                if self._store.exists():
                    if stored is None or stored.attrs.get(TOKEN_ATTR) != self._store.token():
                        stored = self._store.read()
                    self._load(stored)
                    self._replay()
                else:
                    self._compact()
        elif stored is not None:
            self._load(stored)

    def _locked(self):
        """The store's inter-process lock, or nothing for an in-memory campaign."""
        return self._store.lock() if self._store is not None else contextlib.nullcontext()

    def _load(self, ds) -> None:
        from workbench.record import from_dataset

        stored_spec = parse_spec(json.loads(ds.attrs["spec"]))
        mine, theirs = self.spec.to_dict(), stored_spec.to_dict()
        for key in ("space", "objectives", "constraints", "outcome_constraints"):
            if mine[key] != theirs[key]:
                raise CampaignError(
                    f"{key}: the store {self.spec.store} holds campaign"
                    f" {stored_spec.name!r} with {key} {theirs[key]}; the spec gives"
                    f" {mine[key]}. Use another store, or the stored spec."
                )
        self._trials = from_dataset(ds, self.space, self.outcomes)
        state = ds.attrs.get("surrogate_state")
        self._warm_start = json.loads(state) if state else None
        self._run_id = ds.attrs.get("mlflow_run_id") or None
        self.stopped = ds.attrs.get("stopped") or None
        self._created_at = ds.attrs.get("created_at", self._created_at)
        self._token = ds.attrs.get("snapshot_token")
        self._offset = 0
        self._journal_events = 0

    # -- journal ----------------------------------------------------------

    def _apply(self, event: dict) -> None:
        """Replay one journal event onto the in-memory trials."""
        op = event["op"]
        if op == "ask":
            for d in event["trials"]:
                trial = trial_from_json(d)
                if trial.id != len(self._trials):
                    raise CampaignError(
                        f"store: journal of {self.spec.store} asks trial {trial.id} after"
                        f" {len(self._trials)} trials; the record is inconsistent")
                self._trials.append(trial)
            if event.get("surrogate_state"):
                self._warm_start = event["surrogate_state"]
        elif op in ("tell", "fail"):
            if not 0 <= event["id"] < len(self._trials):
                raise CampaignError(
                    f"store: journal of {self.spec.store} tells trial {event['id']} of"
                    f" {len(self._trials)} trials; the record is inconsistent")
            trial = self._trials[event["id"]]
            trial.told_at = datetime.fromisoformat(event["at"])
            if op == "tell":
                trial.status = COMPLETED
                trial.outcomes = {k: float(v) for k, v in event["outcomes"].items()}
            else:
                trial.status = FAILED
                trial.failure_reason = event["reason"]
        elif op == "meta":
            self._run_id = event.get("mlflow_run_id") or self._run_id
            self.stopped = event.get("stopped", self.stopped)

    def _replay(self) -> None:
        """Apply the journal's events written since we last looked."""
        events, self._offset = self._store.read_journal(self._token, self._offset)
        for event in events:
            self._apply(event)
        self._journal_events += len(events)

    def _sync(self) -> None:
        """Catch up with what other processes wrote (call under the lock)."""
        if self._store is None:
            return
        if self._store.token() != self._token:  # someone compacted: reload
            self._trials = []
            self._load(self._store.read())
        self._replay()

    def _record(self, events: list[dict]) -> None:
        """Write ahead: append events durably, then apply them in memory.

        Call under the lock. Memory changes only after the journal append is
        fsynced, so a failed write (a full disk) raises and leaves memory equal
        to disk. Other processes' events are replayed first: the offset we
        keep must never skip a line we have not applied.
        """
        if self._store is not None:
            self._sync()
            self._offset = self._store.append(self._token, events)
            self._journal_events += len(events)
        for event in events:
            self._apply(event)

    def _compact(self) -> None:
        self._token = self._store.write(self.data)
        self._offset = 0
        self._journal_events = 0

    def _compact_quietly(self) -> None:
        """Compact after an acknowledged write: the events are durable in the
        journal, so a failed compaction (a full disk) only warns."""
        try:
            self._compact()
        except OSError as e:
            warnings.warn(f"store: compaction of {self._store.path} failed ({e}); the journal"
                          " keeps every event and the next compaction retries", RuntimeWarning,
                          stacklevel=3)

    def compact(self) -> None:
        """Fold the journal into the Zarr snapshot, so that ``xarray.open_zarr(store)``
        alone shows every trial. ``run`` and the CLI do this when they finish."""
        if self._store is None:
            return
        with self._locked():
            self._sync()
            if self._journal_events:
                self._compact()

    @classmethod
    def from_dict(cls, spec: dict) -> "Campaign":
        """A campaign from the YAML schema given as a dict (resumes an existing store)."""
        parsed = parse_spec(spec, source="from_dict")
        obj = cls.__new__(cls)
        obj._setup(parsed)
        return obj

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Campaign":
        """A campaign from an experiment YAML file (resumes an existing store)."""
        parsed = load_spec(path)
        obj = cls.__new__(cls)
        obj._setup(parsed, base_dir=Path(path).parent)
        return obj

    @classmethod
    def open(cls, store: str | Path, *, tracking: str | None = "stored") -> "Campaign":
        """Resume the campaign saved at ``store`` exactly where it stopped.

        tracking: "stored" keeps the URI the campaign was tracked to; None
        turns tracking off; a URI redirects it.
        """
        from workbench.store import ZarrStore

        zs = ZarrStore(store)
        if not zs.exists():
            raise CampaignError(f"store: no campaign at {zs.path}")
        ds = zs.read()
        spec = parse_spec(json.loads(ds.attrs["spec"]), source=str(zs.path))
        updates: dict[str, Any] = {"store": str(store)}
        if tracking != "stored":
            try:
                updates["tracking"] = check_tracking_uri(tracking)
            except ValueError as e:
                raise CampaignError(f"tracking: {e}") from None
        spec = spec.model_copy(update=updates)
        obj = cls.__new__(cls)
        obj._setup(spec, stored=ds)
        return obj

    # -- views ------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def trials(self) -> list[Trial]:
        """Copies of all trials, in order of their ids."""
        return [_copy(t) for t in self._trials]

    def _count(self, status: str) -> int:
        return sum(1 for t in self._trials if t.status == status)

    @property
    def data(self):
        """The campaign record: an ``xarray.Dataset`` over dimension ``trial``."""
        from workbench.record import to_dataset

        return to_dataset(self._trials, self.space, self.outcomes, self._attrs())

    def to_frame(self):
        """One row per trial (pandas), as in CSV exports."""
        from workbench.record import to_frame

        return to_frame(self._trials, self.space, self.outcomes)

    def _feasible_completed(self) -> list[Trial]:
        # Multi-task / multi-fidelity: only the target task's (fidelity's) results count.
        done = [t for t in self._trials if t.status == COMPLETED
                and self._engine.on_target(t.params)]
        if not done or not self._engine.constraints:
            return done
        _, Y = self._training_data(done)
        return [t for t, ok in zip(done, self._engine.feasible(Y)) if ok]

    def best(self) -> Trial | None:
        """The best completed trial that satisfies the outcome constraints (for the
        first objective), or None before any."""
        done = self._feasible_completed()
        if not done:
            return None
        obj = self.objectives[0]
        return _copy(max(done, key=lambda t: obj.score(t.outcomes[obj.name])))

    def pareto(self) -> list[Trial]:
        """Non-dominated feasible completed trials (several objectives); with one
        objective, the best one."""
        if len(self.objectives) == 1:
            best = self.best()
            return [] if best is None else [best]
        done = self._feasible_completed()
        if not done:
            return []
        from active_learning.multiobjective import pareto_mask

        keep = np.asarray(pareto_mask(self._scores(done)))
        return [_copy(t) for t, k in zip(done, keep) if k]

    def _scores(self, trials: list[Trial]) -> np.ndarray:
        return np.asarray([[o.score(t.outcomes[o.name]) for o in self.objectives]
                           for t in trials]).reshape(len(trials), len(self.objectives))

    def _feasible_scores(self, ref_point) -> tuple[list[Trial], np.ndarray, np.ndarray]:
        """Feasible completed trials, their maximised scores and the reference point
        (``ref_point`` or the spec's in user units, else the worst score per objective)."""
        rows = self._feasible_completed()
        S = self._scores(rows)
        ref = ref_point if ref_point is not None else self.spec.acquisition.ref_point
        if ref is not None:
            r = np.asarray([o.score(v) for o, v in zip(self.objectives, ref)])
        else:
            r = S.min(axis=0) if len(S) else np.zeros(len(self.objectives))
        return rows, S, r

    @staticmethod
    def _dominated_volume(S: np.ndarray, r: np.ndarray) -> float:
        from active_learning.multiobjective import hypervolume

        S = S[np.all(S > r, axis=1)] if len(S) else S
        return float(hypervolume(S, r)) if len(S) else 0.0

    def hypervolume(self, ref_point: list[float] | None = None) -> float:
        """Hypervolume dominated by the feasible completed trials now (see
        ``hypervolume_history`` for the reference point)."""
        _, S, r = self._feasible_scores(ref_point)
        return self._dominated_volume(S, r)

    def hypervolume_history(self, ref_point: list[float] | None = None) -> list[float]:
        """Hypervolume dominated by the feasible completed trials after each trial id
        (several objectives). ref_point: in user units per objective; default the
        spec's ``acquisition.ref_point``, else the worst feasible value of each
        objective, so the history is comparable within one campaign."""
        rows, S, r = self._feasible_scores(ref_point)
        by_id = dict(zip((t.id for t in rows), S))
        out, seen = [], []
        for t in self._trials:
            if t.id in by_id:
                seen.append(by_id[t.id])
            out.append(self._dominated_volume(np.asarray(seen).reshape(-1, len(r)), r))
        return out

    def __repr__(self) -> str:
        counts = {s: self._count(s) for s in (COMPLETED, PENDING, FAILED)}
        best = self.best()
        obj = self.objectives[0]
        best_txt = f", best {obj.name}={best.outcomes[obj.name]:.6g}" if best else ""
        return (f"Campaign({self.name!r}, partner={self.spec.partner!r}, "
                f"{counts[COMPLETED]} completed, {counts[PENDING]} pending, "
                f"{counts[FAILED]} failed{best_txt})")

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        return f"<p><b>{self!r}</b></p>" + frame.to_html(index=False, max_rows=30, na_rep="")

    @property
    def plot(self) -> "_PlotAccessor":
        """Plots: ``campaign.plot()`` (convergence), ``campaign.plot.pareto()``,
        ``.hypervolume()``, ``.slices()``, ``.map()``, ``.pairs()``, ``.lengthscales()``,
        ``.ternary(name)``, ``.predictions()``, ``.calibration()``; each returns matplotlib
        Axes or a Figure."""
        return _PlotAccessor(self)

    def plot_predictions(self, ax=None):
        """Calibration plot: predicted mean ± 2 std against observed (matplotlib Axes)."""
        from workbench.plots import plot_predictions
        return plot_predictions(self, ax=ax)

    def plot_pareto(self, ax=None):
        """Objective space with the feasible Pareto front (Axes; Figure for 3+ objectives)."""
        from workbench.plots import plot_pareto
        return plot_pareto(self, ax=ax)

    def plot_hypervolume(self, ref_point=None, ax=None):
        """Hypervolume of the feasible front after each trial (matplotlib Axes)."""
        from workbench.plots import plot_hypervolume
        return plot_hypervolume(self, ref_point=ref_point, ax=ax)

    def plot_slices(self, objective=None, **kw):
        """Posterior mean ± 2 sd along each continuous parameter through the best trial."""
        from workbench.plots import plot_slices
        return plot_slices(self, objective, **kw)

    def plot_lengthscales(self, output=None, ax=None):
        """Parameter relevance (1 / ARD length-scale) of the last proposing model."""
        from workbench.plots import plot_lengthscales
        return plot_lengthscales(self, output, ax=ax)

    def plot_ternary(self, name, elements=None, objective=None, ax=None):
        """Compositions of three elements on a ternary diagram, coloured by an outcome."""
        from workbench.plots import plot_ternary
        return plot_ternary(self, name, elements, objective, ax=ax)

    # -- persistence and tracking -----------------------------------------

    def _attrs(self) -> dict:
        return {
            "name": self.spec.name,
            "partner": self.spec.partner,
            "spec": json.dumps(self.spec.to_dict()),
            "workbench_version": _package_version(),
            "created_at": self._created_at,
            "surrogate_state": json.dumps(self._warm_start) if self._warm_start else "",
            "mlflow_run_id": self._run_id or "",
            "stopped": self.stopped or "",
        }

    def _track(self):
        """The tracker, started on first use (MLflow is imported only then)."""
        if self.spec.tracking is None:
            return None
        if self._tracker is None:
            from workbench.tracking import Tracker

            outbox = None if self._store is None else self._store.outbox_path
            campaign_id = hashlib.sha256(
                f"{self.spec.partner}/{self.spec.name}/{self._created_at}".encode()
            ).hexdigest()[:16]
            self._tracker = Tracker(self.spec.tracking, self.spec.partner, self.spec.name,
                                    run_id=self._run_id, outbox=outbox,
                                    campaign_id=campaign_id, on_run_id=self._remember_run)
            self._tracker.start(self.spec.to_dict(), tags={
                "partner": self.spec.partner, "campaign": self.spec.name,
                "workbench.version": _package_version(), **self._version_tags(),
            })
            self._cpu_mark = self._cpu_now()
        return self._tracker

    def _remember_run(self, run_id: str) -> None:
        if run_id != self._run_id:
            with self._locked():
                self._record([{"op": "meta", "mlflow_run_id": run_id}])

    def log_snapshot(self) -> None:
        """Log the trial table as ``trials.csv`` to the campaign's MLflow run."""
        tracker = self._track()
        if tracker is not None:
            tracker.log_text("trials.csv", self.to_frame().to_csv(index=False))
            self._tag_data_hash(tracker)

    # -- ask --------------------------------------------------------------

    def ask(self, n: int = 1, context: dict[str, Any] | None = None) -> list[Trial]:
        """Propose ``n`` experiments; they are recorded as pending and returned.

        context: values of the spec's context parameters (measured, not
        chosen: today's humidity, this feedstock batch); the proposals hold them.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise CampaignError(f"n: got {n!r}; expected a positive integer")
        context = self._check_context(context)
        t0 = time.perf_counter()
        # Under the lock from reading the record to appending the proposals:
        # a second process asking meanwhile sees these as pending, not free.
        with self._locked():
            self._sync()
            warm_start = self._warm_start
            try:
                params, strategies, predictions, acq_values, audits, timings = self._propose(
                    int(n), context)
                state, self._warm_start = self._warm_start, warm_start  # applied with the event
            except BaseException:
                self._warm_start = warm_start
                raise
            batch = max((t.batch for t in self._trials), default=-1) + 1
            start = len(self._trials)
            asked = now()
            new = [Trial(id=start + i, params=p, prediction=predictions[i], status=PENDING,
                         batch=batch, strategy=strategies[i], acquisition_value=acq_values[i],
                         asked_at=asked, audit=json.dumps(audits[i], sort_keys=True))
                   for i, p in enumerate(params)]
            self._record([{"op": "ask", "trials": [trial_to_json(t) for t in new],
                           "surrogate_state": state}])
            new = self._trials[start:]
            if self._journal_events >= max(_COMPACT_MIN_EVENTS, len(self._trials) // 4):
                self._compact_quietly()
        timings["proposal_time_s"] = time.perf_counter() - t0
        tracker = self._track()
        if tracker is not None:
            metrics = dict(timings)
            finite = [v for v in acq_values if v is not None and math.isfinite(v)]
            if finite:
                metrics["acquisition_value"] = max(finite)
            tracker.log_metrics(metrics, step=start)
        return [_copy(t) for t in new]

    def _check_context(self, context: Any) -> dict[str, Any]:
        names = list(self.spec.context)
        if not names:
            if context:
                raise CampaignError(f"context: got {context!r}; this campaign has no context"
                                    " parameters (spec key context:)")
            return {}
        if not isinstance(context, dict) or sorted(context) != sorted(names):
            raise CampaignError(f"context: got {context!r}; expected a dict with exactly the"
                                f" context parameters {names}")
        return {k: self.space[k].validate_value(v) for k, v in context.items()}

    def _initial_points(self, start: int, k: int, context: dict) -> np.ndarray:
        """Encoded points start..start+k of the spec's initial design (context held)."""
        design = self.spec.initial_design
        if design.type == "points":
            rows = [self.space.validate(p) for p in design.points]
            Z = self.space.encode(rows)
            if not self.space.feasible(rows).all():
                bad = int(np.flatnonzero(~self.space.feasible(rows))[0])
                raise CampaignError(f"initial_design.points[{bad}]: {rows[bad]} violates the"
                                    f" constraints {list(self.space.constraints)}")
            if start < len(Z):
                Z = Z[start:start + k]
                if context:  # measured values replace the planned ones
                    Z = self.space.encode([{**r, **context} for r in self.space.decode(Z)])
                return Z if len(Z) == k else np.concatenate(
                    [Z, self._space_filling(len(Z) + start, k - len(Z), context)])
            return self._space_filling(start, k, context)
        return self._space_filling(start, k, context)

    def _candidates(self) -> list[dict] | None:
        """The candidate pool's rows (valid parameter dicts), or None without a pool."""
        if self._pool_rows is not None:
            return self._pool_rows
        src = self.spec.candidates
        oracle = self.spec.oracle
        dataset = src.dataset if src is not None else None
        if src is None and oracle is not None and getattr(oracle, "dataset", None) \
                and (getattr(oracle, "mode", None) or "lookup") == "lookup":
            dataset = oracle.dataset
        if src is None and dataset is None:
            return None
        import pandas as pd

        if dataset is not None:
            from workbench import datasets

            frame = datasets.load(dataset)
            where = f"dataset {dataset!r}"
        else:
            path = Path(src.csv)
            if not path.is_absolute() and self._base_dir is not None \
                    and (self._base_dir / path).exists():
                path = self._base_dir / path
            try:
                frame = pd.read_csv(path)
            except (OSError, ValueError) as e:
                raise CampaignError(f"candidates.csv: cannot read {str(path)!r} ({e})") from None
            where = f"candidates.csv {str(path)!r}"
        missing = [n for n in self.space.names if n not in frame.columns]
        if missing:
            raise CampaignError(f"candidates: {where} has no column {missing}; expected one per"
                                f" parameter {self.space.names}")
        from workbench.space import Categorical

        rows = []
        for rec in frame[self.space.names].drop_duplicates().to_dict("records"):
            row = {}
            for p in self.space.parameters:
                v = rec[p.name]
                if isinstance(p, Categorical) and v not in p.choices:
                    v = next((c for c in p.choices if str(c) == str(v)), v)
                row[p.name] = v.item() if hasattr(v, "item") else v
            try:
                rows.append(self.space.validate(row))
            except CampaignError:
                continue  # outside the space the spec chose: not a candidate
        rows = [r for r, ok in zip(rows, self.space.feasible(rows)) if ok]
        if not rows:
            raise CampaignError(f"candidates: no row of {where} lies inside the space and its"
                                " constraints; expected at least one")
        self._pool_rows = rows
        return rows

    def _free_candidates(self) -> np.ndarray:
        """Encoded pool rows not asked yet (each condition is run once)."""
        if self._pool_encoded is None:
            self._pool_encoded = self.space.encode(self._candidates())
        pool = self._pool_encoded
        used = self.space.encode([t.params for t in self._trials])
        if not len(used):
            return pool
        keys = {tuple(np.round(u, 9)) for u in used}
        return pool[[tuple(np.round(r, 9)) not in keys for r in pool]]

    def _space_filling(self, start: int, k: int, context: dict) -> np.ndarray:
        from active_learning import initial_design

        from active_learning import expand, reduce_domain

        kind = self.spec.initial_design.type
        kind = "sobol" if kind == "points" else kind
        domain = self.space.domain()
        if self._candidates() is not None:
            # A pool: greedy maximin over the untried rows, from a seeded first row.
            from active_learning import greedy_maximin

            pool = self._free_candidates()
            if len(pool) < k:
                raise CampaignError(f"candidates: {len(pool)} untried candidates left; expected"
                                    f" at least {k}")
            first = int(np.random.default_rng([self.spec.seed, start]).integers(len(pool)))
            return pool[greedy_maximin(pool, k, first=first)]
        # A multi-task campaign designs for its target task (user points keep theirs).
        fixed = self._engine.fixed_columns({**context, **self._engine.held()})
        reduced, free = reduce_domain(domain, fixed) if fixed else (domain, np.arange(domain.dim))
        if kind == "sobol":
            Z = initial_design("sobol", start + k, reduced, self.spec.seed)[start:]
        else:
            # LHS and maximin are whole designs: draw the full planned size once
            # (deterministic in the seed) and hand out its next points.
            total = max(start + k, self.spec.n_initial)
            Z = initial_design(kind, total, reduced, self.spec.seed)[start:start + k]
        return expand(Z, free, fixed, domain.dim)

    def _propose(self, q: int, context: dict | None = None):
        context = context or {}
        completed = [t for t in self._trials if t.status == COMPLETED]
        pending = [t for t in self._trials if t.status == PENDING]
        if len(completed) < 2:
            k_init = q
        else:
            k_init = min(q, max(0, self.spec.n_initial - len(completed) - len(pending)))
        params: list[dict] = []
        strategies: list[str] = []
        predictions: list = []
        acq_values: list = []
        audits: list[dict] = []
        timings: dict[str, float] = {}
        if k_init:
            design = self.spec.initial_design.type
            start = sum(1 for t in self._trials if t.strategy in ("sobol", "lhs", "maximin",
                                                                   "points", "design"))
            Z = self._initial_points(start, k_init, context)
            params += self.space.decode(Z)
            strategies += [design] * k_init
            predictions += [None] * k_init
            acq_values += [None] * k_init
            audits += [{"strategy": design, "design_index": start + i, "seed": self.spec.seed,
                        "context": context, "versions": _versions()} for i in range(k_init)]
        k_model = q - k_init
        if k_model:
            fantasies = [t.params for t in pending] + params
            out = self._propose_with_model(k_model, completed, fantasies, timings, context)
            params += out[0]
            strategies += [self._engine.acquisition.type] * k_model
            predictions += out[1]
            acq_values += out[2]
            audits += out[3]
        return params, strategies, predictions, acq_values, audits, timings

    def _training_data(self, completed: list[Trial]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded inputs and the modelled outcomes (objectives, then constraint outcomes)."""
        X = self.space.encode([t.params for t in completed])
        Y = np.asarray([[t.outcomes[name] for name in self._engine.outputs]
                        for t in completed]).reshape(len(completed), len(self._engine.outputs))
        return X, Y

    def _propose_with_model(self, q, completed, fantasies, timings, context=None):
        import jax

        from surrogates import release_programs_if_crowded
        from workbench._jax import configure_jax
        from workbench.engine import propose

        configure_jax()
        release_programs_if_crowded()  # a lab loop of many campaigns keeps many programs
        X, Y = self._training_data(completed)
        key = jax.random.fold_in(jax.random.key(self.spec.seed), len(self._trials))
        F = self.space.encode(fantasies) if fantasies else np.zeros((0, X.shape[1]))
        pool = None
        if self._candidates() is not None:
            pool = self._free_candidates()
            if len(pool) < q:
                raise CampaignError(f"candidates: {len(pool)} candidates left untried; expected"
                                    f" at least {q} (the pool is exhausted)")
        proposals = propose(self._engine, X, Y, F, q, key, self._warm_start, context, timings,
                            pool=pool)
        self._last_model = (proposals[0].model, X)  # in memory only: for stopping rules
        if proposals[0].surrogate_state is not None:
            self._warm_start = proposals[0].surrogate_state
        provenance = dict(data_hash=_data_hash(X, Y), versions=_versions(),
                          prng={"seed": self.spec.seed, "fold_in": len(self._trials)})
        return ([p.params for p in proposals], [p.prediction for p in proposals],
                [p.acquisition_value for p in proposals],
                [dict(p.audit, **provenance) for p in proposals])

    # -- tell -------------------------------------------------------------

    def _get(self, trial_id: Any) -> Trial:
        if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)):
            raise CampaignError(f"trial_id: got {trial_id!r}; expected an integer trial id")
        if not 0 <= int(trial_id) < len(self._trials):
            raise CampaignError(
                f"trial_id: got {trial_id}; expected an id of this campaign"
                f" (0 to {len(self._trials) - 1})" if self._trials else
                f"trial_id: got {trial_id}; this campaign has no trials yet"
            )
        return self._trials[int(trial_id)]

    def _outcomes(self, values: Any) -> tuple[dict[str, float], str | None]:
        """Check what a tell reports: (the usable outcomes by name, problem or None).

        An unknown outcome name raises at once: it is the caller's mistake
        (a typo), and there is nothing sensible to record. A bad observation
        (a missing outcome, NaN, infinity, a value that is not a number) is
        returned as a problem, which the spec's ``bad_observations`` policy
        turns into an error or a recorded failure.
        """
        names = [o.name for o in self.outcomes]
        if isinstance(values, (int, float, np.number)) and not isinstance(values, bool):
            if len(names) != 1:
                return {}, (f"outcomes: got the single number {float(values)!r};"
                            f" expected a dict with keys {names}")
            values = {names[0]: values}
        if not isinstance(values, dict):
            return {}, (f"outcomes: got {type(values).__name__} {_short(values)};"
                        f" expected a dict with keys {names}"
                        + (" (or one number)" if len(names) == 1 else ""))
        unknown = [k for k in values if k not in names]
        missing = [k for k in names if k not in values]
        if unknown:
            raise CampaignError(
                f"outcomes: missing {missing}, unknown {unknown}; expected exactly {names}"
            )
        problems = [f"outcomes: missing {missing}; expected exactly {names}"] if missing else []
        out = {}
        for k in names:
            if k not in values:
                continue
            v = values[k]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                problems.append(f"outcomes.{k}: got {_short(v)}; expected a number")
            elif not math.isfinite(float(v)):
                problems.append(f"outcomes.{k}: got {float(v)!r} (not finite);"
                                " expected a finite number")
            else:
                out[k] = float(v)
        return out, "; ".join(problems) or None

    def tell(self, trial_id: int, outcomes: dict[str, float] | float) -> Trial:
        """Record what trial ``trial_id`` gave; telling the same values twice is harmless.

        A bad observation (a missing outcome, NaN, infinity, a value that is
        not a number) raises CampaignError and records nothing when the spec
        says ``bad_observations: error`` (the default); with ``fail`` it
        records the trial as failed with the reason (and warns), so the loop
        goes on and the model never sees it. Unknown ids, unknown outcome
        names and values that conflict with an earlier tell raise under both.
        """
        values, problem = self._outcomes(outcomes)
        record_failure = problem is not None and self.spec.bad_observations == "fail"
        reason = f"bad observation: {problem}"
        with self._locked():
            self._sync()
            trial = self._get(trial_id)
            if trial.status == COMPLETED:
                if problem is None and trial.outcomes == values:
                    return _copy(trial)
                raise CampaignError(
                    f"trial {trial.id} was already told {trial.outcomes};"
                    f" got {values if problem is None else _short(outcomes)}"
                )
            if trial.status == FAILED:
                if record_failure and trial.failure_reason == reason:
                    return _copy(trial)  # the same bad observation, told again
                raise CampaignError(
                    f"trial {trial.id} is recorded as failed ({trial.failure_reason});"
                    " expected a pending trial"
                )
            if problem is not None and not record_failure:
                raise CampaignError(
                    f"trial {trial.id}: {problem} (bad_observations: error)"
                )
            # Recorded under the same lock as the check: no other process can
            # tell this trial in between.
            if problem is None:
                self._record([{"op": "tell", "id": trial.id, "outcomes": values,
                               "at": now().isoformat()}])
            else:
                self._record([{"op": "fail", "id": trial.id, "reason": reason,
                               "at": now().isoformat()}])
            trial = self._trials[trial.id]
        if problem is not None:
            warnings.warn(f"trial {trial.id}: {problem}; recorded as failed"
                          " (bad_observations: fail)", RuntimeWarning, stacklevel=2)
        self._log_progress()
        return _copy(trial)

    def tell_failed(self, trial_id: int, reason: str) -> Trial:
        """Record that trial ``trial_id`` failed, and why; it never feeds the model."""
        reason = str(reason).strip() or "failed"
        with self._locked():
            self._sync()
            trial = self._get(trial_id)
            if trial.status == FAILED:
                return _copy(trial)
            if trial.status == COMPLETED:
                raise CampaignError(
                    f"trial {trial.id} is already completed with {trial.outcomes};"
                    " expected a pending trial"
                )
            self._record([{"op": "fail", "id": trial.id, "reason": reason,
                           "at": now().isoformat()}])
            trial = self._trials[trial.id]
        self._log_progress()
        return _copy(trial)

    def pending(self, older_than: float | None = None) -> list[Trial]:
        """Trials asked but not yet told; with ``older_than`` (seconds), only those
        asked at least that long ago (candidates to re-issue or expire)."""
        with self._locked():
            self._sync()
        cutoff = None if older_than is None else now() - timedelta(seconds=older_than)
        return [_copy(t) for t in self._trials if t.status == PENDING
                and (cutoff is None or (t.asked_at is not None and t.asked_at <= cutoff))]

    def expire_pending(self, older_than: float, reason: str = "expired") -> list[Trial]:
        """Record pending trials asked more than ``older_than`` seconds ago as failed
        (a lab run that never reported back); returns them."""
        expired = []
        for t in self.pending(older_than):
            try:
                expired.append(self.tell_failed(
                    t.id, f"{reason}: no result {older_than:g} s after it was asked"))
            except CampaignError:  # told meanwhile by another process
                pass
        return expired

    def _log_progress(self) -> None:
        tracker = self._track()
        if tracker is None:
            return
        metrics: dict[str, float] = {
            "completed": self._count(COMPLETED), "failed": self._count(FAILED),
        }
        best = self.best()
        obj = self.objectives[0]
        if best is not None:
            metrics["best_so_far"] = best.outcomes[obj.name]
            problem = self._builtin_problem()
            if problem is not None:
                metrics["regret"] = problem.regret(best.outcomes[obj.name])
        if len(self.objectives) > 1:
            # Several objectives: the dominated hypervolume of the feasible trials.
            metrics["hypervolume"] = self.hypervolume()
            metrics["pareto_size"] = len(self.pareto())
        metrics.update(self._compute_metrics())
        step = self._count(COMPLETED) + self._count(FAILED)
        metrics.update(self._surrogate_metrics(step))
        tracker.log_metrics(metrics, step=step)
        if step % 10 == 0:  # a tag holds one value; log_snapshot sets the final one
            self._tag_data_hash(tracker)

    def _tag_data_hash(self, tracker) -> None:
        data_hash = self._completed_data_hash()
        if data_hash:
            tracker.set_tags({"data_hash": data_hash})

    def _builtin_problem(self):
        """The test problem with a known optimum being optimised, if any (for regret)."""
        problem = getattr(self, "_problem", None)
        oracle = self.spec.oracle
        if problem is None and oracle is not None and oracle.builtin is not None:
            problem = problems.get(oracle.builtin)
        if problem is None:
            return None
        standard = {n: (lo, hi) for n, lo, hi in problem.bounds}
        same = all(standard.get(p.name) == (p.low, p.high) for p in self.space.parameters)
        return problem if same and problem.direction == self.objectives[0].direction else None

    # -- closed loop ------------------------------------------------------

    def _oracle(self, oracle: Callable | None) -> Callable:
        if oracle is not None:
            if not callable(oracle):
                raise CampaignError(f"oracle: got {oracle!r}; expected a callable")
            return oracle
        if self.spec.oracle is None:
            raise CampaignError("oracle: none given and the spec has no oracle block")
        from workbench.oracles import from_spec

        return from_spec(self.spec.oracle, self._base_dir)

    def _evaluate(self, oracle: Callable, trial: Trial) -> Trial:
        try:
            result = oracle(dict(trial.params))
        except Exception as e:  # noqa: BLE001 - an experiment failing is data, not a crash
            return self.tell_failed(trial.id, f"{type(e).__name__}: {e}")
        try:
            return self.tell(trial.id, result)
        except CampaignError as e:
            return self.tell_failed(trial.id, f"oracle returned an unusable result: {e}")

    def _log_structures(self, tracker, done_before: set[int]) -> None:
        """``oracle: {simulator: ..., log_structures: true}``: the atomic structure of each
        trial this run completed, as ``structures/trial_NNNN.extxyz`` on the MLflow run."""
        oracle = self.spec.oracle
        if oracle is None or not oracle.log_structures:
            return
        from workbench import simulators

        sim = simulators.get(oracle.simulator)
        for t in self._trials:
            if t.status == COMPLETED and t.id not in done_before:
                try:
                    text = sim.structure_text(t.params)
                except Exception as e:  # noqa: BLE001 - an artifact, never a reason to stop
                    warnings.warn(f"trial {t.id}: no structure logged ({e})", RuntimeWarning,
                                  stacklevel=2)
                    continue
                tracker.log_text(f"structures/trial_{t.id:04d}.extxyz", text)

    def _best_history(self) -> tuple[list[float], str]:
        """Best value after each completed trial, and its direction, for stopping rules:
        the objective (|y - target| for a target), or the hypervolume for several."""
        if len(self.objectives) > 1:
            done = {t.id for t in self._trials if t.status == COMPLETED}
            hv = self.hypervolume_history()
            return [h for t, h in zip(self._trials, hv) if t.id in done], "maximize"
        obj = self.objectives[0]
        feasible = {t.id for t in self._feasible_completed()}
        out, best = [], math.nan
        for t in self._trials:
            if t.status != COMPLETED:
                continue
            if t.id in feasible:
                v = t.outcomes[obj.name]
                v = abs(v - obj.target) if obj.target is not None else v
                better = (v < best if obj.direction in ("minimize", "target") else v > best)
                best = v if math.isnan(best) or better else best
            out.append(best)
        return out, "minimize" if obj.direction in ("minimize", "target") else "maximize"

    def stop_reason(self) -> str | None:
        """The reason the first of the spec's stopping rules gives to stop now, or None."""
        if not self.spec.stopping:
            return None
        from active_learning.stopping import (StoppingState, confidence_gap, first_triggered,
                                              rule_from_dict)

        from workbench.engine import LOG_SPACE

        rules = [rule_from_dict(r.to_rule_dict()) for r in self.spec.stopping]
        history, direction = self._best_history()
        model_trials = [t for t in self._trials if t.acquisition_value is not None
                        and math.isfinite(t.acquisition_value)]
        acq = model_trials[-1].acquisition_value if model_trials else None
        ucb = lcb = None
        if any(r.type == "regret_bound" for r in self.spec.stopping) and self._last_model:
            import active_learning as al
            import jax

            model, X = self._last_model
            domain = self.space.domain()
            cand = domain.snap(al.quasi_random(jax.random.key(self.spec.seed), 1024, domain.dim))
            ucb, lcb = confidence_gap(model, cand, X, beta=self.spec.acquisition.beta,
                                      sign=self.objectives[0].sign)
        state = StoppingState(
            n_evaluations=len(history), best_history=tuple(history), direction=direction,
            acquisition_value=acq, acquisition_log=self._engine.acquisition.type in LOG_SPACE,
            ucb_max=ucb, lcb_max=lcb)
        stop, reason = first_triggered(rules, state)
        return reason if stop else None

    def _stop(self, reason: str) -> None:
        """Record why the campaign stopped (journal and tracking)."""
        with self._locked():
            self._record([{"op": "meta", "stopped": reason}])
        tracker = self._track()
        if tracker is not None:
            tracker.set_tags({"stopped": reason})

    def run(self, oracle: Callable | None = None, budget: int | None = None,
            callback: Callable[[Trial], None] | None = None,
            executor: Any = None) -> Trial | None:
        """Ask, evaluate with ``oracle`` and tell until ``budget`` experiments are done.

        oracle: params dict -> number or outcomes dict (default: the spec's
        oracle); budget: total evaluated trials (completed + failed) the
        campaign should reach (default: the spec's budget); callback: called
        with each finished trial; executor: where to evaluate, in parallel with
        asynchronous proposals (``workbench.executors.LocalExecutor`` or
        ``DaskExecutor``, or an ``executor:`` block as a dict; default: the
        spec's ``executor`` block, else one at a time in this process; an
        executor given here is not shut down). Trials left pending by an
        interrupted run are evaluated first. Returns the best trial.
        """
        fn = self._oracle(oracle)
        if isinstance(fn, problems.Problem):
            self._problem = fn
        budget = budget if budget is not None else self.spec.budget
        if budget is None or isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise CampaignError(f"budget: got {budget!r}; expected a positive integer")
        block = executor if isinstance(executor, dict) else (
            self.spec.executor if executor is None else None)
        if isinstance(block, dict):
            from workbench.spec import ExecutorSpec

            try:
                block = ExecutorSpec.model_validate(block)
            except ValueError as e:
                raise CampaignError(f"executor: got {executor!r}; {e}") from None
        owned = None
        tracker = self._track()
        status = "FAILED"
        done_before = {t.id for t in self._trials if t.status == COMPLETED}
        try:
            if block is not None:
                from workbench.executors import from_spec as executor_from_spec

                executor = owned = executor_from_spec(block)
            if executor is not None:
                from workbench.executors import run_parallel

                run_parallel(self, fn, budget, executor, callback)
                reason = self.stop_reason()
                if reason is not None and self.stopped != reason:
                    self._stop(reason)
            else:
                for trial in [t for t in self._trials if t.status == PENDING]:
                    if self._count(COMPLETED) + self._count(FAILED) >= budget:
                        break
                    done = self._evaluate(fn, trial)
                    if callback:
                        callback(done)
                while True:
                    evaluated = self._count(COMPLETED) + self._count(FAILED)
                    remaining = budget - evaluated - self._count(PENDING)
                    if remaining <= 0:
                        break
                    reason = self.stop_reason()
                    if reason is not None:
                        self._stop(reason)
                        break
                    q = min(self.spec.acquisition.batch_size, remaining)
                    for trial in self.ask(q):
                        done = self._evaluate(fn, trial)
                        if callback:
                            callback(done)
            status = "FINISHED"
        finally:
            try:
                if owned is not None:
                    owned.shutdown()
            finally:
                self.compact()
                if tracker is not None:
                    self._log_structures(tracker, done_before)
                    self.log_snapshot()
                    tracker.finish(status)
        return self.best()

    # -- metrics helpers (tracking) ---------------------------------------

    @staticmethod
    def _cpu_now() -> float:
        from workbench.metrics import cpu_seconds

        return cpu_seconds()

    def _version_tags(self) -> dict[str, str]:
        """Tags naming the code and package versions behind the campaign's run."""
        from workbench.metrics import code_version

        tags = {f"version.{k}": v for k, v in _versions().items()}
        commit = code_version()
        if commit:
            tags["code.commit"] = commit
        return tags

    def _compute_metrics(self) -> dict[str, float]:
        """CPU seconds spent since the last logged step and their energy estimate
        (``workbench.metrics``: CPU seconds x watts per core)."""
        from workbench.metrics import watts_per_core

        now_cpu = self._cpu_now()
        spent = max(0.0, now_cpu - getattr(self, "_cpu_mark", now_cpu))
        self._cpu_mark = now_cpu
        return {"step_cpu_s": spent, "step_energy_j": spent * watts_per_core()}

    def _completed_xy(self) -> tuple[np.ndarray, np.ndarray]:
        return self._training_data([t for t in self._trials if t.status == COMPLETED])

    def _completed_data_hash(self) -> str:
        X, Y = self._completed_xy()
        return _data_hash(X, Y) if len(Y) else ""

    # LOO needs one Cholesky of n x n: cheap up to here; beyond, every k-th step.
    _LOO_EVERY_N = 500

    def _surrogate_metrics(self, step: int) -> dict[str, float]:
        """LOO error and calibration of the GP with the hyperparameters of the last fit
        (the proposal's own model when it was fitted on all but the newest result).

        Only in a process that has fitted the surrogate (JAX already imported):
        a CLI ``tell`` does not pay for importing JAX. Any failure skips the
        metrics: they describe the campaign, they must never stop it.
        """
        import sys

        if not self._warm_start or "jax" not in sys.modules:
            return {}
        n = self._count(COMPLETED)
        if n < 3 or (n > self._LOO_EVERY_N and step % max(1, n // self._LOO_EVERY_N)):
            return {}
        try:
            from surrogates import gp_from_hyperparameters, hyperparameters_from_dict
            from surrogates.protocol import ExactFactor
            from workbench.metrics import loo_metrics

            last = getattr(self, "_last_model", None)
            if last is not None and isinstance(last[0], ExactFactor) and len(last[1]) == n - 1:
                # The GP that made the proposal just evaluated, already factorised:
                # its LOO costs one triangular inverse, not a new model.
                return loo_metrics(last[0])
            X, Y = self._completed_xy()
            theta = hyperparameters_from_dict(self._warm_start)
            unit = (np.zeros(X.shape[1]), np.ones(X.shape[1]))
            model = gp_from_hyperparameters(X, Y[:, :1], theta, bounds=unit)
            return loo_metrics(model)
        except Exception:  # noqa: BLE001 - a metric, never a reason to stop
            return {}

