"""The campaign: ask for experiments, tell their outcomes, run closed loops.

A campaign is identified by its store: constructing one on an existing store
resumes it (after checking the space and objectives agree), and
``Campaign.open(store)`` resumes from the store alone. Every ``ask`` and
``tell`` is persisted before it returns, so an acknowledged observation is
never lost.

``Campaign`` is a facade: the trial log lives in ``journal``, the initial designs
and pools in ``design``, proposals in ``proposing``, the closed loop in ``loop``
and tracking in ``telemetry``.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np

from workbench.campaign.journal import Journal
from workbench.campaign.lab import add_data, probability_best
from workbench.campaign.loop import run_campaign, stop_reason
from workbench.campaign.observations import record_failed, record_tell
from workbench.campaign.plotting import PlotAccessor
from workbench.campaign.proposing import Proposer
from workbench.campaign.results import (best_trial, hypervolume, hypervolume_history,
                                        pareto_front)
from workbench.campaign.space_updates import follow_space, update_space
from workbench.campaign.telemetry import Telemetry
from workbench.errors import CampaignError
from workbench.record import COMPLETED, FAILED, PENDING, Trial, now, to_frame, trial_to_json
from workbench.resources import resolve_spec
from workbench.space import Objective, SearchSpace
from workbench.spec import (DEFAULT_TRACKING, CampaignSpec, check_tracking_uri, load_spec,
                            parse_spec)
from workbench.store import ZarrStore

if TYPE_CHECKING:
    import xarray as xr

    from workbench.campaign.insight import SobolIndices

__all__ = ["Campaign"]


def _copy(t: Trial) -> Trial:
    return replace(t, params=dict(t.params), outcomes=dict(t.outcomes), sem=dict(t.sem),
                   prediction=dict(t.prediction) if t.prediction else None,
                   proposed=dict(t.proposed), replicates=dict(t.replicates))

# The most experiments one ask proposes: a batch is optimised jointly, and its cost
# grows with its size; a lab that runs more asks again.
MAX_ASK = 1000
# Asks that propose without the store's lock before one holds it throughout.
OPTIMISTIC_ASKS = 3

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
        self._setup(parse_spec(data, source="Campaign(...)"))

    # -- construction -----------------------------------------------------

    def _setup(self, spec: CampaignSpec, base_dir: Path | None = None,
               stored: Any = None) -> None:
        self.spec = spec
        self.space = SearchSpace(list(spec.space), spec.constraints)
        self.objectives = list(spec.objectives)
        self._base_dir = base_dir
        self._proposer = Proposer(spec, self.space, base_dir)
        # Outcomes recorded per trial: the objectives, then outcomes that only
        # constraints bound (stored like objectives, in the direction that helps).
        names = {o.name for o in self.objectives}
        self.outcomes = self.objectives + [
            Objective(c.name, "minimize" if c.op == "<=" else "maximize")
            for c in self._proposer.problem.constraints if c.name not in names]
        self._journal = Journal(spec, self.space, self.outcomes, stored)
        self._telemetry = Telemetry(self, self._journal, self._proposer)
        follow_space(self, self._journal, self._proposer)

    @classmethod
    def from_spec(cls, spec: CampaignSpec, *, base_dir: str | Path | None = None) -> "Campaign":
        """A campaign from a parsed spec (``workbench.load_spec``; resumes an existing
        store). base_dir: where relative paths in the spec are found (the YAML's folder)."""
        obj = cls.__new__(cls)
        obj._setup(spec, base_dir=None if base_dir is None else Path(base_dir))
        return obj

    @classmethod
    def from_dict(cls, spec: dict) -> "Campaign":
        """A campaign from the YAML schema given as a dict (resumes an existing store)."""
        return cls.from_spec(parse_spec(spec, source="from_dict"))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Campaign":
        """A campaign from an experiment YAML file, or the name of a shipped experiment
        such as ``"quickstart"`` as the CLI takes it (resumes an existing store)."""
        path = resolve_spec(str(path))
        return cls.from_spec(load_spec(path), base_dir=path.parent)

    @classmethod
    def open(cls, store: str | Path, *, tracking: str | None = "stored") -> "Campaign":
        """Resume the campaign saved at ``store`` exactly where it stopped.

        tracking: "stored" keeps the URI the campaign was tracked to; None
        turns tracking off; a URI redirects it.
        """
        zs = ZarrStore(store)
        if not zs.exists():
            raise CampaignError(f"store: no campaign at {zs.path}")
        ds = zs.read_snapshot()
        spec = parse_spec(json.loads(ds.attrs["spec"]), source=str(zs.path))
        updates: dict[str, Any] = {"store": str(store)}
        if tracking != "stored":
            try:
                updates["tracking"] = check_tracking_uri(tracking)
            except ValueError as e:
                raise CampaignError(f"tracking: {e}") from None
        obj = cls.__new__(cls)
        obj._setup(spec.model_copy(update=updates), stored=ds)
        return obj

    # -- state, read-only ---------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def campaign_id(self) -> str:
        """A stable identity of this campaign and its store (16 hex digits), as written in
        ``ask -o`` CSV files and tagged on its MLflow run."""
        return self._journal.campaign_id

    @property
    def trials(self) -> list[Trial]:
        """Copies of all trials, in order of their ids."""
        return [_copy(t) for t in self._journal.trials]

    def count(self, status: str) -> int:
        """How many trials have ``status`` (pending, completed, failed) as of the last
        read of the record."""
        return self._journal.count(status)

    @property
    def stopped(self) -> str | None:
        """Why the campaign stopped (a stopping rule's reason), or None."""
        return self._journal.stopped

    @property
    def store(self) -> "ZarrStore | None":
        """The campaign's Zarr store, None for a campaign in memory."""
        return self._journal.store

    @property
    def run_id(self) -> str | None:
        """The MLflow run the campaign is tracked to, once there is one."""
        return self._journal.run_id

    @property
    def base_dir(self) -> Path | None:
        """Where relative paths of the spec are found (the YAML file's folder), or None."""
        return self._base_dir

    @property
    def problem(self) -> Any:
        """The engine's problem resolved from the spec: encoded outputs, constraints,
        surrogate and acquisition settings (``workbench.engine.Problem``)."""
        return self._proposer.problem

    @property
    def surrogate_state(self) -> dict | None:
        """The surrogate's hyperparameters from the last fit, where the next fit
        starts (None before any model)."""
        return self._journal.warm_start

    @property
    def created_at(self) -> str:
        """When the campaign was created (ISO 8601)."""
        return self._journal.created_at

    def candidates(self) -> list[dict] | None:
        """The candidate pool's rows (valid parameter dicts), or None without a pool."""
        return self._proposer.pool.rows()

    def training_data(self, trials: list[Trial]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded inputs (n x d) and modelled outcomes (n x m: objectives, then
        constraint outcomes) of completed ``trials``."""
        return self._proposer.training_data(trials)

    def feasible_trials(self) -> list[Trial]:
        """Completed trials on target that satisfy the outcome constraints."""
        return [_copy(t) for t in self._proposer.feasible(self._journal.trials)]

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Campaign"]:
        """Hold the store's lock, caught up with other processes: tells inside see the
        current record and no other process writes in between (re-entrant for this
        campaign's own calls)."""
        with self._journal.transaction():
            yield self

    @property
    def data(self) -> "xr.Dataset":
        """The campaign record: an ``xarray.Dataset`` over dimension ``trial``."""
        return self._journal.dataset()

    def to_frame(self):
        """One row per trial (pandas), as in CSV exports."""
        return to_frame(self._journal.trials, self.space, self.outcomes)

    # -- results ------------------------------------------------------------

    def best(self) -> Trial | None:
        """The best completed trial that satisfies the outcome constraints (for the
        first objective), or None before any."""
        best = best_trial(self.objectives[0], self._proposer.feasible(self._journal.trials))
        return None if best is None else _copy(best)

    def pareto(self) -> list[Trial]:
        """Non-dominated feasible completed trials (several objectives); with one
        objective, the best one."""
        return [_copy(t) for t in pareto_front(
            self.objectives, self._proposer.feasible(self._journal.trials))]

    def hypervolume(self, ref_point: list[float] | None = None) -> float:
        """Hypervolume dominated by the feasible completed trials now (see
        ``hypervolume_history`` for the reference point)."""
        return hypervolume(self.objectives, self._proposer.feasible(self._journal.trials),
                           ref_point if ref_point is not None else self.spec.acquisition.ref_point)

    def hypervolume_history(self, ref_point: list[float] | None = None) -> list[float]:
        """Hypervolume dominated by the feasible completed trials after each trial id
        (several objectives). ref_point: in user units per objective; default the
        spec's ``acquisition.ref_point``, else the acquisitions' rule on the feasible
        trials (``active_learning.reference_point``: 10% of the range below the worst)."""
        return hypervolume_history(
            self.objectives, self._journal.trials,
            self._proposer.feasible(self._journal.trials),
            ref_point if ref_point is not None else self.spec.acquisition.ref_point)

    def __repr__(self) -> str:
        counts = {s: self.count(s) for s in (COMPLETED, PENDING, FAILED)}
        best = self.best()
        obj = self.objectives[0]
        best_txt = f", best {obj.name}={best.outcomes[obj.name]:.6g}" if best else ""
        return (f"Campaign({self.name!r}, partner={self.spec.partner!r}, "
                f"{counts[COMPLETED]} completed, {counts[PENDING]} pending, "
                f"{counts[FAILED]} failed{best_txt})")

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        return f"<p><b>{self!r}</b></p>" + frame.to_html(index=False, max_rows=30, na_rep="")

    # -- plots ----------------------------------------------------------------

    @property
    def plot(self) -> PlotAccessor:
        """Plots: ``campaign.plot()`` (convergence), ``campaign.plot.pareto()``,
        ``.hypervolume()``, ``.slices()``, ``.map()``, ``.pairs()``, ``.lengthscales()``,
        ``.ternary(name)``, ``.predictions()``, ``.calibration()``; each returns matplotlib
        Axes or a Figure."""
        return PlotAccessor(self)

    def plot_predictions(self, ax=None):
        """Calibration plot: predicted mean ± 2 std against observed (matplotlib Axes)."""
        return self.plot.predictions(ax=ax)

    def plot_pareto(self, ax=None):
        """Objective space with the feasible Pareto front (Axes; Figure for 3+ objectives)."""
        return self.plot.pareto(ax=ax)

    def plot_hypervolume(self, ref_point=None, ax=None):
        """Hypervolume of the feasible front after each trial (matplotlib Axes)."""
        return self.plot.hypervolume(ref_point=ref_point, ax=ax)

    def plot_slices(self, objective=None, **kw):
        """Posterior mean ± 2 sd along each continuous parameter through the best trial."""
        return self.plot.slices(objective, **kw)

    def plot_lengthscales(self, output=None, ax=None):
        """Parameter relevance (1 / ARD length-scale) of the last proposing model."""
        return self.plot.lengthscales(output, ax=ax)

    def plot_ternary(self, name, elements=None, objective=None, ax=None):
        """Compositions of three elements on a ternary diagram, coloured by an outcome."""
        return self.plot.ternary(name, elements, objective, ax=ax)

    # -- ask ------------------------------------------------------------------

    def ask(self, n: int = 1, context: dict[str, Any] | None = None,
            shared: list[str] | None = None) -> list[Trial]:
        """Propose ``n`` experiments; they are recorded as pending and returned.

        context: values of the spec's context parameters (measured, not
        chosen: today's humidity, this feedstock batch); the proposals hold them.
        shared: parameters all ``n`` share, chosen jointly (default: the spec's).
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise CampaignError(f"n: got {n!r}; expected a positive integer")
        if n > MAX_ASK:
            raise CampaignError(f"n: got {n}; expected at most {MAX_ASK} experiments per ask")
        context = self._proposer.check_context(context)
        t0 = time.perf_counter()
        journal = self._journal
        # The model is fitted without the lock, so that no other worker's tell waits on
        # it; the proposals are recorded only if no one asked meanwhile (their pending
        # points must be fantasies of ours), else proposed again. After a few lost races
        # the lock is held throughout, so that a busy store still makes progress.
        for attempt in range(OPTIMISTIC_ASKS + 1):
            locked = attempt == OPTIMISTIC_ASKS
            with journal.transaction():
                follow_space(self, self._journal, self._proposer)
                self._check_budget(int(n))
                seen = (len(journal.trials), len(journal.space_events))
                if locked:
                    batch = self._proposer.propose(journal.trials, int(n), context,
                                                   journal.warm_start, shared)
            if not locked:
                batch = self._proposer.propose(list(journal.trials), int(n), context,
                                               journal.warm_start, shared)
            with journal.transaction():
                if (len(journal.trials), len(journal.space_events)) != seen:
                    continue  # another worker asked while we proposed
                start = len(journal.trials)
                number = max((t.batch for t in journal.trials), default=-1) + 1
                asked = now()
                new = [Trial(id=start + i, params=p, prediction=batch.predictions[i],
                             status=PENDING, batch=number, strategy=batch.strategies[i],
                             acquisition_value=batch.acquisition_values[i], asked_at=asked,
                             audit=json.dumps(batch.audits[i], sort_keys=True))
                       for i, p in enumerate(batch.params)]
                journal.record([{"op": "ask", "trials": [trial_to_json(t) for t in new],
                                 "surrogate_state": batch.state}])
                new = journal.trials[start:]
                journal.compact_if_due()
                break
        batch.timings["proposal_time_s"] = time.perf_counter() - t0
        self._telemetry.log_ask(batch.timings, batch.acquisition_values, step=start)
        return [_copy(t) for t in new]

    def _check_budget(self, n: int) -> None:
        """Refuse a batch larger than what the spec's budget leaves (call under the lock)."""
        budget, asked = self.spec.budget, self._journal.asked()
        if budget is not None and n > budget - asked:
            raise CampaignError(
                f"n: got {n}; the budget of {budget} experiments leaves {max(0, budget - asked)}"
                f" to ask ({asked} asked so far). Raise budget: in the spec to ask more")

    # -- tell -----------------------------------------------------------------

    def tell(self, trial_id: int, outcomes: dict[str, float] | float,
             actual: dict[str, Any] | None = None) -> Trial:
        """Record what trial ``trial_id`` gave; telling the same values twice is harmless.
        An outcome may be a ``(mean, standard error)`` pair or a list of replicates.

        A bad observation (a missing outcome, NaN, infinity, a value that is
        not a number) raises CampaignError and records nothing when the spec
        says ``bad_observations: error`` (the default); with ``fail`` it
        records the trial as failed with the reason (and warns), so the loop
        goes on and the model never sees it. Unknown ids, unknown outcome
        names and values that conflict with an earlier tell raise under both.

        actual: parameter values the experiment was run at where they differ from the
        proposal (``{"temperature": 92.0}``); in bounds, or refused. They become
        ``trial.params``, what the model learns from; ``trial.proposed`` keeps the
        proposal. A value within half a parameter's ``precision`` is the proposal.
        """
        trial, problem, recorded = record_tell(
            self._journal, self.space, self.spec.bad_observations,
            [o.name for o in self.outcomes], trial_id, outcomes, actual)
        if not recorded:  # the same values told again
            return _copy(trial)
        if problem is not None:
            warnings.warn(f"trial {trial.id}: {problem}; recorded as failed"
                          " (bad_observations: fail)", RuntimeWarning, stacklevel=2)
        self._telemetry.log_progress()
        return _copy(trial)

    def tell_failed(self, trial_id: int, reason: str,
                    actual: dict[str, Any] | None = None) -> Trial:
        """Record that trial ``trial_id`` failed, and why; it never feeds the model.
        actual: parameter values it was run at, as for ``tell``."""
        trial, recorded = record_failed(self._journal, self.space, trial_id, reason, actual)
        if not recorded:  # the same failure told again
            return _copy(trial)
        self._telemetry.log_progress()
        return _copy(trial)

    def pending(self, older_than: float | None = None) -> list[Trial]:
        """Trials asked but not yet told; with ``older_than`` (seconds), only those
        asked at least that long ago (candidates to re-issue or expire)."""
        return [_copy(t) for t in self._journal.pending(older_than)]

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

    def log_snapshot(self) -> None:
        """Log the trial table as ``trials.csv`` to the campaign's MLflow run."""
        self._telemetry.log_snapshot()

    def defer_tracking(self, for_s: float | None = None) -> None:
        """Queue tracking events in the store's outbox without delivering them (nor importing
        MLflow): ``deliver_tracking``, here or in another process, delivers them. for_s:
        after this many seconds this process delivers again, from its next event on (a
        long ``run`` tracks live; a short one never imports MLflow); None: never."""
        self._telemetry.defer(for_s)

    def deliver_tracking(self) -> bool:
        """Deliver every event waiting in the store's outbox now, in order, creating the
        campaign's MLflow run if it waits to be created; True when none is left (also
        without tracking). ``workbench.deliver`` calls it in a detached process."""
        tracker = self._telemetry.tracker()
        return tracker is None or tracker.flush(force=True)

    def compact(self) -> None:
        """Fold the journal into the Zarr snapshot, so that ``xarray.open_zarr(store)``
        alone shows every trial. ``run`` and the CLI do this when they finish."""
        self._journal.compact()

    # -- closed loop ------------------------------------------------------------

    def stop_reason(self) -> str | None:
        """The reason the first of the spec's stopping rules gives to stop now, or None."""
        return stop_reason(self, self._proposer)

    def run(self, oracle: Callable | None = None, budget: int | None = None,
            callback: Callable[[Trial], None] | None = None,
            executor: Any = None) -> Trial | None:
        """Ask, evaluate with ``oracle`` and tell until ``budget`` experiments are done.

        oracle: params dict -> number or outcomes dict (default: the spec's
        oracle); budget: total evaluated trials (completed + failed, not counting
        imported past experiments) the campaign should reach (default: the spec's
        budget); callback: called
        with each finished trial; executor: where to evaluate, in parallel with
        asynchronous proposals (``workbench.executors.LocalExecutor`` or
        ``DaskExecutor``, or an ``executor:`` block as a dict; default: the
        spec's ``executor`` block, else one at a time in this process; an
        executor given here is not shut down). Trials left pending by an
        interrupted run are evaluated first; a stopping rule's reason is
        recorded in ``stopped``. Returns the best trial.
        """
        run_campaign(self, self._journal, self._telemetry, oracle, budget, callback, executor)
        return self.best()

    @property
    def actor(self) -> str | None:
        """Who this campaign's asks and tells are recorded as made by (None: not recorded)."""
        return self._journal.actor

    @actor.setter
    def actor(self, name: str | None) -> None:
        self._journal.actor = None if name is None else str(name)

    def update_space(self, *parameters: Any, fix: dict[str, Any] | None = None,
                     add: dict[str, Any] | None = None, reason: str = "") -> SearchSpace:
        """Widen, narrow, add a level or a parameter, fix or release one (docs/living-space.md)."""
        return update_space(self, self._journal, self._proposer, parameters, fix, add, reason)

    @property
    def space_updates(self) -> list[dict[str, Any]]:
        """The recorded space updates, oldest first, as the record's ``space_updates``
        attribute holds them (read from the journal: no xarray)."""
        return json.loads(json.dumps(self._journal.space_events))

    # -- insight --------------------------------------------------------------------

    def importance(self, n: int = 512, samples: int = 32, seed: int = 0,
                   model: Any = None) -> "xr.Dataset":
        """Sobol indices of each objective (and P(feasible)) per parameter (see docs/insight);
        model: a surrogate built on the completed trials to reuse (default: fit one)."""
        return self.sobol_indices(n, samples, seed, model).to_dataset()

    def sobol_indices(self, n: int = 512, samples: int = 32, seed: int = 0,
                      model: Any = None) -> "SobolIndices":
        """``importance()`` as plain numpy arrays (``insight.SobolIndices``), without xarray."""
        from workbench.campaign.insight import importance
        return importance(self, self._proposer, self._telemetry, n, samples, seed, model)

    def predict(self, table: Any) -> Any:
        """Model mean, std and P(feasible) at user points: DataFrame, dicts or CSV path."""
        from workbench.campaign.insight import predict
        return predict(self, self._proposer, table)

    def add_data(self, table: Any) -> list[Trial]:
        """Record past experiments (DataFrame or CSV path) as imported trials (``lab.add_data``)."""
        return [_copy(t) for t in add_data(self, self._journal, table)]

    def best_probability(self) -> dict[int, float]:
        """P(each feasible trial is best) given told standard errors (lab.probability_best)."""
        return probability_best(self.objectives[0], self._proposer.feasible(self._journal.trials))

    def explain(self, trial_id: int) -> dict[str, Any]:
        """Why trial ``trial_id`` was proposed, as recorded then (insight.explain)."""
        from workbench.campaign.insight import explain
        return explain(self, trial_id)
