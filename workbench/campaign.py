"""The campaign: ask for experiments, tell their outcomes, run closed loops.

A campaign is identified by its store: constructing one on an existing store
resumes it (after checking the space and objectives agree), and
``Campaign.open(store)`` resumes from the store alone. Every ``ask`` and
``tell`` is persisted before it returns, so an acknowledged observation is
never lost.
"""

from __future__ import annotations

import contextlib
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
from workbench.spec import DEFAULT_TRACKING, CampaignSpec, load_spec, parse_spec

__all__ = ["Campaign"]

_VERSION = "0.1.0"


def _package_version() -> str:
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


def _copy(t: Trial) -> Trial:
    return replace(t, params=dict(t.params), outcomes=dict(t.outcomes),
                   prediction=dict(t.prediction) if t.prediction else None)


class Campaign:
    """A Bayesian-optimisation campaign over a search space.

    name: campaign name (MLflow experiment ``partner/name``); space: the
    SearchSpace; objectives: list of Objective (one, for now); store: path of
    the Zarr record, None to keep it in memory; tracking: MLflow URI,
    "default" for the local ``sqlite:///campaigns/mlflow.db``, None for off;
    partner: the industrial partner owning the campaign; seed: makes every
    proposal reproducible. initial_design, surrogate, acquisition: dicts as in
    the YAML schema.
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
            seed=seed, budget=budget,
        )
        for key, val in (("initial_design", initial_design), ("surrogate", surrogate),
                         ("acquisition", acquisition)):
            if val is not None:
                data[key] = val
        spec = parse_spec(data, source="Campaign(...)")
        self._setup(spec)

    # -- construction -----------------------------------------------------

    def _setup(self, spec: CampaignSpec, base_dir: Path | None = None,
               stored: Any = None) -> None:
        self.spec = spec
        self.space = SearchSpace(list(spec.space))
        self.objectives = list(spec.objectives)
        self._base_dir = base_dir
        self._trials: list[Trial] = []
        self._warm_start: dict | None = None
        self._run_id: str | None = None
        self._tracker = None
        self._created_at = now().isoformat()
        self._store = None
        self._token: str | None = None
        self._offset = 0
        self._journal_events = 0
        if spec.store is not None:
            from workbench.store import TOKEN_ATTR, ZarrStore

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
        self._trials = from_dataset(ds, self.space, self.objectives)
        state = ds.attrs.get("surrogate_state")
        self._warm_start = json.loads(state) if state else None
        self._run_id = ds.attrs.get("mlflow_run_id") or None
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
        """Append events durably (call under the lock, after applying them in memory)."""
        if self._store is None:
            return
        self._offset = self._store.append(self._token, events)
        self._journal_events += len(events)

    def _compact(self) -> None:
        self._token = self._store.write(self.data)
        self._offset = 0
        self._journal_events = 0

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
            updates["tracking"] = tracking
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

        return to_dataset(self._trials, self.space, self.objectives, self._attrs())

    def to_frame(self):
        """One row per trial (pandas), as in CSV exports."""
        from workbench.record import to_frame

        return to_frame(self._trials, self.space, self.objectives)

    def best(self) -> Trial | None:
        """The best completed trial for the objective, or None before any."""
        done = [t for t in self._trials if t.status == COMPLETED]
        if not done:
            return None
        obj = self.objectives[0]
        return _copy(max(done, key=lambda t: obj.sign * t.outcomes[obj.name]))

    def pareto(self) -> list[Trial]:
        """Non-dominated completed trials; with one objective, the best one."""
        best = self.best()
        return [] if best is None else [best]

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

    def plot(self, ax=None):
        """Convergence plot: best so far against trial number (matplotlib Axes)."""
        from workbench.plots import plot_convergence
        return plot_convergence(self, ax=ax)

    def plot_predictions(self, ax=None):
        """Calibration plot: predicted mean ± 2 std against observed (matplotlib Axes)."""
        from workbench.plots import plot_predictions
        return plot_predictions(self, ax=ax)

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
                "workbench.version": _package_version(),
            })
        return self._tracker

    def _remember_run(self, run_id: str) -> None:
        if run_id != self._run_id:
            self._run_id = run_id
            with self._locked():
                self._record([{"op": "meta", "mlflow_run_id": run_id}])

    def log_snapshot(self) -> None:
        """Log the trial table as ``trials.csv`` to the campaign's MLflow run."""
        tracker = self._track()
        if tracker is not None:
            tracker.log_text("trials.csv", self.to_frame().to_csv(index=False))

    # -- ask --------------------------------------------------------------

    def ask(self, n: int = 1) -> list[Trial]:
        """Propose ``n`` experiments; they are recorded as pending and returned."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise CampaignError(f"n: got {n!r}; expected a positive integer")
        t0 = time.perf_counter()
        # Under the lock from reading the record to appending the proposals:
        # a second process asking meanwhile sees these as pending, not free.
        with self._locked():
            self._sync()
            params, strategies, predictions, acq_values, audits, timings = self._propose(int(n))
            batch = max((t.batch for t in self._trials), default=-1) + 1
            start = len(self._trials)
            asked = now()
            new = []
            for i, p in enumerate(params):
                new.append(Trial(
                    id=start + i, params=p, prediction=predictions[i], status=PENDING,
                    batch=batch, strategy=strategies[i], acquisition_value=acq_values[i],
                    asked_at=asked, audit=json.dumps(audits[i], sort_keys=True),
                ))
            self._trials.extend(new)
            self._record([{"op": "ask", "trials": [trial_to_json(t) for t in new],
                           "surrogate_state": self._warm_start}])
            if self._journal_events >= max(_COMPACT_MIN_EVENTS, len(self._trials) // 4):
                self._compact()
        timings["proposal_time_s"] = time.perf_counter() - t0
        tracker = self._track()
        if tracker is not None:
            metrics = dict(timings)
            finite = [v for v in acq_values if v is not None and math.isfinite(v)]
            if finite:
                metrics["acquisition_value"] = max(finite)
            tracker.log_metrics(metrics, step=start)
        return [_copy(t) for t in new]

    def _propose(self, q: int):
        completed = [t for t in self._trials if t.status == COMPLETED]
        pending = [t for t in self._trials if t.status == PENDING]
        domain = self.space.domain()
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
            from active_learning import sobol

            start = sum(1 for t in self._trials if t.strategy == "sobol")
            Z = sobol(start + k_init, domain, seed=self.spec.seed)[start:]
            params += self.space.decode(Z)
            strategies += ["sobol"] * k_init
            predictions += [None] * k_init
            acq_values += [None] * k_init
            audits += [{"strategy": "sobol", "sobol_index": start + i, "seed": self.spec.seed,
                        "versions": _versions()} for i in range(k_init)]
        k_model = q - k_init
        if k_model:
            fantasies = [t.params for t in pending] + params
            out = self._propose_with_model(k_model, completed, fantasies, domain, timings)
            params += out[0]
            strategies += [self.spec.acquisition.type] * k_model
            predictions += out[1]
            acq_values += out[2]
            audits += out[3]
        return params, strategies, predictions, acq_values, audits, timings

    def _propose_with_model(self, q, completed, fantasies, domain, timings):
        import jax
        import jax.numpy as jnp

        from active_learning import maximize_acquisition
        from surrogates import GPHyperparameters, fit_gp
        from workbench._jax import configure_jax, posterior_moments

        configure_jax()
        obj = self.objectives[0]
        X = self.space.encode([t.params for t in completed])
        Y = np.asarray([[t.outcomes[o.name] for o in self.objectives] for t in completed])
        key = jax.random.fold_in(jax.random.key(self.spec.seed), len(self._trials))
        k_fit, k_acq = jax.random.split(key)
        warm = None
        if self._warm_start and len(self._warm_start["log_lengthscale"][0]) == X.shape[1]:
            warm = GPHyperparameters(**{k: np.asarray(v) for k, v in self._warm_start.items()})
        t0 = time.perf_counter()
        unit = (np.zeros(X.shape[1]), np.ones(X.shape[1]))
        model = fit_gp(X, Y, key=k_fit, bounds=unit, capacity=len(X) + len(fantasies) + q,
                       restarts=self.spec.surrogate.restarts, warm_start=warm)
        jax.block_until_ready(model)
        timings["fit_time_s"] = time.perf_counter() - t0
        self._warm_start = {k: np.asarray(getattr(model.hyperparameters, k)).tolist()
                            for k in ("log_lengthscale", "log_variance", "log_noise", "mean")}
        t1 = time.perf_counter()
        base = model
        # The incumbent, in "maximise sign * y" terms; fantasies count as data,
        # or EI would keep rewarding a believed-better point already chosen.
        best = float(np.max(obj.sign * Y[:, 0]))
        if fantasies:
            Xf = jnp.asarray(self.space.encode(fantasies))
            believed = posterior_moments(model, Xf)[0]
            model = model.condition(Xf, believed)
            best = max(best, float(np.max(obj.sign * np.asarray(believed)[:, 0])))
        acq_cfg = self.spec.acquisition
        chosen, values = [], []
        for j in range(q):
            k_j = jax.random.fold_in(k_acq, j)
            if acq_cfg.type == "thompson":
                x, v = self._thompson(model, domain, k_j, obj.sign)
            else:
                acq = self._acquisition(model, jnp.asarray(X), obj.sign * best, obj.sign,
                                        jax.random.fold_in(k_j, 1), domain)
                x, v = maximize_acquisition(
                    acq, domain, k_j, raw_samples=acq_cfg.raw_samples,
                    num_restarts=acq_cfg.num_restarts, steps=acq_cfg.steps,
                )
            chosen.append(np.asarray(x))
            values.append(float(v))
            if j < q - 1:
                # Kriging believer: pretend the point returned its predicted mean,
                # so the next pick goes elsewhere.
                xq = jnp.asarray(x)[None]
                believed = posterior_moments(model, xq)[0]
                model = model.condition(xq, believed)
                best = max(best, obj.sign * float(believed[0, 0]))
        Xc = np.stack(chosen)
        mean, var = posterior_moments(base, jnp.asarray(Xc))
        mean, std = np.asarray(mean), np.sqrt(np.asarray(var))
        timings["acquisition_time_s"] = time.perf_counter() - t1
        preds = [{o.name: Prediction(float(mean[i, k]), float(std[i, k]))
                  for k, o in enumerate(self.objectives)} for i in range(q)]
        audit = {
            "strategy": acq_cfg.type, "model": "exact_gp", "kernel": "matern52",
            "hyperparameters": self._warm_start, "n_train": int(len(X)),
            "data_hash": _data_hash(X, Y), "fantasies": len(fantasies),
            "prng": {"seed": self.spec.seed, "fold_in": len(self._trials)},
            "incumbent": float(np.max(obj.sign * Y[:, 0])) * obj.sign,
            "versions": _versions(),
        }
        audits = [dict(audit, batch_position=j, acquisition_value=values[j]) for j in range(q)]
        return self.space.decode(Xc), preds, values, audits

    def _acquisition(self, model, X_train, best, sign: float, key, domain):
        """The acquisition function the spec names, on ``model`` (fantasies included).

        best: the incumbent in "maximise sign * y" terms; X_train: (n, d) the
        observed encoded inputs (the baseline of the noisy variants).
        """
        import jax.numpy as jnp

        import active_learning as al

        cfg = self.spec.acquisition
        kind = cfg.type
        if kind == "ucb":
            return al.UpperConfidenceBound(model, beta=cfg.beta, sign=sign)
        if kind == "log_pi":
            return al.LogProbabilityOfImprovement(model, jnp.asarray(best), sign=sign)
        if kind == "log_nei":
            return al.LogNoisyExpectedImprovement(model, X_train, sign=sign,
                                                  num_samples=cfg.mc_samples)
        if kind == "qlog_nei":
            return al.qLogNoisyExpectedImprovement(model, X_train, sign=sign,
                                                   num_samples=cfg.mc_samples)
        if kind == "max_variance":
            return al.PosteriorVariance(model)
        if kind == "ivr":
            reference = al.quasi_random(key, 256, domain.dim)
            noise = jnp.asarray(1e-6)  # variance reduction of the latent function
            return al.IntegratedVarianceReduction(model, reference, noise)
        if kind == "mes":
            candidates = al.quasi_random(key, 1024, domain.dim)
            optima = al.sample_optimal_values(model, candidates, key, num_samples=16, sign=sign)
            return al.MaxValueEntropySearch(model, optima, sign=sign)
        return al.LogExpectedImprovement(model, jnp.asarray(best), sign=sign)

    def _thompson(self, model, domain, key, sign: float):
        """One Thompson sample: the argmax of a joint posterior draw on a
        quasi-random candidate set of valid points."""
        import active_learning as al

        n = min(self.spec.acquisition.raw_samples, 1024)
        candidates = domain.snap(al.quasi_random(key, n, domain.dim))
        (idx,) = al.thompson_sample(model, candidates, jax_key_split(key), q=1, sign=sign)
        return candidates[idx], float("nan")

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

    def _outcomes(self, values: Any) -> dict[str, float]:
        names = [o.name for o in self.objectives]
        if isinstance(values, (int, float, np.number)) and not isinstance(values, bool):
            if len(names) != 1:
                raise CampaignError(f"outcomes: got a single number; expected a dict with {names}")
            values = {names[0]: values}
        if not isinstance(values, dict):
            raise CampaignError(
                f"outcomes: got {type(values).__name__}; expected a dict with keys {names}"
            )
        unknown = [k for k in values if k not in names]
        missing = [k for k in names if k not in values]
        if unknown or missing:
            raise CampaignError(
                f"outcomes: missing {missing}, unknown {unknown}; expected exactly {names}"
            )
        out = {}
        for k in names:
            v = values[k]
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                raise CampaignError(f"outcomes.{k}: got {v!r}; expected a number")
            out[k] = float(v)
        return out

    def tell(self, trial_id: int, outcomes: dict[str, float] | float) -> Trial:
        """Record what trial ``trial_id`` gave. NaN or infinite outcomes record
        the trial as failed; telling the same values twice is harmless."""
        values = self._outcomes(outcomes)
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        with self._locked():
            self._sync()
            trial = self._get(trial_id)
            if trial.status == COMPLETED:
                if trial.outcomes == values:
                    return _copy(trial)
                raise CampaignError(
                    f"trial {trial.id} was already told {trial.outcomes}; got {values}"
                )
            if trial.status == FAILED:
                raise CampaignError(
                    f"trial {trial.id} is recorded as failed ({trial.failure_reason});"
                    " expected a pending trial"
                )
            if not bad:
                trial.status = COMPLETED
                trial.outcomes = values
                trial.told_at = now()
                self._record([{"op": "tell", "id": trial.id, "outcomes": values,
                               "at": trial.told_at.isoformat()}])
        if bad:
            warnings.warn(f"trial {trial.id}: {bad} not finite; recorded as failed",
                          RuntimeWarning, stacklevel=2)
            return self.tell_failed(trial.id, "non-finite outcome: " + ", ".join(
                f"{k}={values[k]}" for k in bad))
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
            trial.status = FAILED
            trial.failure_reason = reason
            trial.told_at = now()
            self._record([{"op": "fail", "id": trial.id, "reason": reason,
                           "at": trial.told_at.isoformat()}])
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
        tracker.log_metrics(metrics, step=self._count(COMPLETED) + self._count(FAILED))

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
        try:
            if block is not None:
                from workbench.executors import from_spec as executor_from_spec

                executor = owned = executor_from_spec(block)
            if executor is not None:
                from workbench.executors import run_parallel

                run_parallel(self, fn, budget, executor, callback)
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
                    self.log_snapshot()
                    tracker.finish(status)
        return self.best()

