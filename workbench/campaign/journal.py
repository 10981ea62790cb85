"""The trial log of a campaign: its trials in memory, written ahead to the store.

Every change is a journal event (``ask``, ``tell``, ``fail``, ``import``, ``meta``,
``space``); a ``space`` event updates the search space
(``workbench.campaign.space_updates``); ``import`` holds many completed trials of past
experiments at once, written like an ``ask``'s. A ``tell`` or ``fail`` may carry
``actual``, the parameter values run where they differ from the proposal, and a
``tell`` ``sem`` (standard error per outcome) and ``replicates`` (raw values per
outcome) where they were told (events written before those fields existed simply lack
them). An ``ask``, ``tell`` or ``fail`` may also carry ``actor``, who made the call (an
MCP client's name, ``cli``); it becomes the trials' ``asked_by`` / ``told_by`` and
changes nothing else, and journals without it read as before. ``record``
appends events durably before it applies them in memory, so a failed write (a
full disk) leaves memory equal to disk; other processes' events are replayed
first, so the offset kept never skips a line not yet applied. Now and then the
journal is folded into the Zarr snapshot (compaction).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import warnings
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from workbench.campaign.space_updates import SPACE_UPDATES_ATTR, apply_space_event
from workbench.campaign.telemetry import package_version
from workbench.errors import CampaignError
from workbench.record import (COMPLETED, FAILED, IMPORTED, NUMERICS_VERSION, PENDING, Trial,
                              from_columns, now, parse_time, to_dataset, to_variables,
                              trial_from_json)
from workbench.space import SearchSpace
from workbench.spec import CampaignSpec, parse_spec
from workbench.store import TOKEN_ATTR, ZarrStore, check_store_path

if TYPE_CHECKING:
    import xarray as xr

    from workbench.snapshot import Snapshot
    from workbench.space import Objective

__all__ = ["COMPACT_MIN_EVENTS", "Journal"]

# Fold the journal into the Zarr snapshot when it holds this many events, or a
# quarter of the trials if more: amortised O(1) per tell, and a snapshot that
# stays close to current for readers who open the Zarr folder directly.
COMPACT_MIN_EVENTS = 64



# The events that record who made them (``actor``), when the campaign knows.
ACTED = ("ask", "tell", "fail")

# Records written before the numerics version was recorded.
FIRST_NUMERICS_VERSION = 1

class Journal:
    """The trials of one campaign and the store that keeps them (None: in memory).

    spec, space, outcomes: what the trials are recorded against; stored: the
    store's snapshot (``workbench.snapshot.Snapshot``) when the caller has read it
    already. Opening an existing store checks that its space and objectives agree
    with ``spec``.
    """

    def __init__(self, spec: CampaignSpec, space: "SearchSpace", outcomes: list["Objective"],
                 stored: Any = None):
        self.spec = spec
        self.space = space
        self.outcomes = outcomes
        self.trials: list[Trial] = []
        self.warm_start: dict | None = None  # the surrogate's hyperparameters, for the next fit
        self.run_id: str | None = None
        self.stopped: str | None = None
        self.created_at = now().isoformat()
        self.store: ZarrStore | None = None
        self.token: str | None = None
        self.offset = 0
        self.events = 0  # events in the journal since the snapshot
        self.actor: str | None = None  # who the next asks and tells are recorded as made by
        self.base_space = spec.to_dict()["space"]  # the spec's space, before any update
        self.space_events: list[dict] = []  # space updates, oldest first
        self.fixed: dict[str, Any] = {}  # parameters a space update fixed, and their values
        if spec.store is not None:
            check_store_path(spec.store)  # never write over a folder that is not a store
            self.store = ZarrStore(spec.store)
            with self.store.lock():
                if self.store.exists():
                    if stored is None or stored.attrs.get(TOKEN_ATTR) != self.store.token():
                        stored = self.store.read_snapshot()
                    self.load(stored)
                    self.replay()
                    self.check_space(spec)
                else:
                    self.write_snapshot()
        elif stored is not None:
            self.load(stored)

    @property
    def campaign_id(self) -> str:
        """A stable identity of this campaign and its store: the first 16 hex digits of
        SHA-256 of ``partner/name/created_at`` (the same in every process, after reopening)."""
        text = f"{self.spec.partner}/{self.spec.name}/{self.created_at}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def get(self, trial_id: Any) -> Trial:
        """The trial with id ``trial_id``; a clear error for anything else."""
        trials = self.trials
        if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)):
            raise CampaignError(f"trial_id: got {trial_id!r}; expected an integer trial id")
        if not 0 <= int(trial_id) < len(trials):
            raise CampaignError(
                f"trial_id: got {trial_id}; expected an id of this campaign"
                f" (0 to {len(trials) - 1})" if trials else
                f"trial_id: got {trial_id}; this campaign has no trials yet"
            )
        return trials[int(trial_id)]

    # -- reading -------------------------------------------------------------

    def load(self, ds: "Snapshot") -> None:
        """Take the trials and state of a snapshot (after checking it is this campaign)."""
        stored_spec = parse_spec(json.loads(ds.attrs["spec"]))
        updates = json.loads(ds.attrs.get(SPACE_UPDATES_ATTR) or "[]")
        mine, theirs = self.spec.to_dict(), stored_spec.to_dict()
        for key in ("objectives", "constraints", "outcome_constraints"):
            if mine[key] != theirs[key]:
                raise CampaignError(
                    f"{key}: the store {self.spec.store} holds campaign"
                    f" {stored_spec.name!r} with {key} {theirs[key]}; the spec gives"
                    f" {mine[key]}. Use another store, or the stored spec."
                )
        # The stored spec's space with the recorded updates on top (the spec given is
        # checked against it once the journal is replayed: check_space).
        if updates or self.space_events or mine["space"] != theirs["space"]:
            self.space = SearchSpace(list(stored_spec.space), list(self.space.constraints))
            self.space_events, self.fixed = [], {}
            for event in updates:
                self.apply_space(event)
        self.base_space = theirs["space"]
        self.trials = from_columns(ds.columns, self.space, self.outcomes)
        numerics = int(ds.attrs.get("numerics_version", FIRST_NUMERICS_VERSION))
        if numerics != NUMERICS_VERSION:
            warnings.warn(
                f"store: {self.spec.store} was proposed with numerics version {numerics};"
                f" this workbench proposes with version {NUMERICS_VERSION}, so from the same"
                " data its next proposals may differ from those the earlier version would"
                " have made (every recorded trial is kept as it was)", RuntimeWarning,
                stacklevel=4)
        state = ds.attrs.get("surrogate_state")
        self.warm_start = json.loads(state) if state else None
        self.run_id = ds.attrs.get("mlflow_run_id") or None
        self.stopped = ds.attrs.get("stopped") or None
        self.created_at = ds.attrs.get("created_at", self.created_at)
        self.token = ds.attrs.get("snapshot_token")
        self.offset = 0
        self.events = 0

    def check_space(self, spec: CampaignSpec) -> None:
        """Refuse a spec whose space is neither the stored campaign's original space nor
        its current one (the original with the recorded updates on top)."""
        given = spec.to_dict()["space"]
        current = [p.model_dump(mode="json") for p in self.space.parameters]
        if given not in (self.base_space, current):
            raise CampaignError(
                f"space: the store {spec.store} holds campaign {spec.name!r} with space"
                f" {current}; the spec gives {given}. Use another store, the stored spec,"
                " or campaign.update_space to change the space")

    def apply(self, event: dict) -> None:
        """Replay one journal event onto the in-memory trials."""
        op = event["op"]
        if op in ("ask", "import"):
            for d in event["trials"]:
                trial = trial_from_json(d)
                if trial.id != len(self.trials):
                    raise CampaignError(
                        f"store: journal of {self.spec.store} asks trial {trial.id} after"
                        f" {len(self.trials)} trials; the record is inconsistent")
                trial.asked_by = event.get("actor") or trial.asked_by
                self.trials.append(trial)
            if event.get("surrogate_state"):
                self.warm_start = event["surrogate_state"]
        elif op in ("tell", "fail"):
            if not 0 <= event["id"] < len(self.trials):
                raise CampaignError(
                    f"store: journal of {self.spec.store} tells trial {event['id']} of"
                    f" {len(self.trials)} trials; the record is inconsistent")
            trial = self.trials[event["id"]]
            trial.told_at = parse_time(event["at"])
            trial.told_by = event.get("actor")
            if event.get("actual"):  # the proposal stays in trial.proposed
                trial.params = {**trial.params, **event["actual"]}
            if op == "tell":
                trial.status = COMPLETED
                trial.outcomes = {k: float(v) for k, v in event["outcomes"].items()}
                trial.sem = {k: float(v) for k, v in event.get("sem", {}).items()}
                trial.replicates = {k: [float(x) for x in v]
                                    for k, v in event.get("replicates", {}).items()}
            else:
                trial.status = FAILED
                trial.failure_reason = event["reason"]
        elif op == "meta":
            self.run_id = event.get("mlflow_run_id") or self.run_id
            self.stopped = event.get("stopped", self.stopped)
        elif op == "space":
            for trial in self.trials:  # an added parameter: what past trials had
                trial.params = {**trial.params, **event.get("added", {})}
                trial.proposed = {**trial.proposed, **event.get("added", {})}
            self.apply_space(event)

    def apply_space(self, event: dict) -> None:
        """Take a space update: the new space and the values it fixes or releases."""
        self.space = apply_space_event(self.space, event)
        for name, value in event.get("fixed", {}).items():
            if value is None:
                self.fixed.pop(name, None)
            else:
                self.fixed[name] = value
        self.space_events.append(event)

    def current_spec(self) -> CampaignSpec:
        """The spec with the current (updated) search space."""
        return self.spec.model_copy(update={"space": list(self.space.parameters)})

    def replay(self) -> None:
        """Apply the journal's events written since we last looked."""
        events, self.offset = self.store.read_journal(self.token, self.offset)
        for event in events:
            self.apply(event)
        self.events += len(events)

    def sync(self) -> None:
        """Catch up with what other processes wrote (call under the lock)."""
        if self.store is None:
            return
        if self.store.token() != self.token:  # someone compacted: reload
            self.trials = []
            self.load(self.store.read_snapshot())
        self.replay()

    def lock(self) -> contextlib.AbstractContextManager:
        """The store's inter-process lock, or nothing for an in-memory campaign."""
        return self.store.lock() if self.store is not None else contextlib.nullcontext()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock, caught up with other processes: reads and ``record`` calls
        inside see and change the current record, and no other process slips in."""
        with self.lock():
            self.sync()
            yield

    def count(self, status: str) -> int:
        return sum(1 for t in self.trials if t.status == status)

    def asked(self) -> int:
        """Trials this campaign asked for: every trial but those imported from past
        experiments, which a spec's ``budget`` does not count."""
        return sum(1 for t in self.trials if t.strategy != IMPORTED)

    def pending(self, older_than: float | None = None) -> list[Trial]:
        """Pending trials as of now (caught up with other processes); with
        ``older_than`` (seconds), only those asked at least that long ago."""
        with self.transaction():
            pass
        cutoff = None if older_than is None else now() - timedelta(seconds=older_than)
        return [t for t in self.trials if t.status == PENDING
                and (cutoff is None or (t.asked_at is not None and t.asked_at <= cutoff))]

    # -- writing -------------------------------------------------------------

    def record(self, events: list[dict]) -> None:
        """Write ahead: append events durably, then apply them in memory.

        Call under the lock. Memory changes only after the journal append is
        fsynced, so a failed write (a full disk) raises and leaves memory equal
        to disk. Other processes' events are replayed first: the offset we
        keep must never skip a line we have not applied. Asks and tells carry
        ``actor`` when one is set.
        """
        if self.actor is not None:
            events = [{**e, "actor": self.actor} if e["op"] in ACTED else e for e in events]
        if self.store is not None:
            self.sync()
            self.offset = self.store.append(self.token, events)
            self.events += len(events)
        for event in events:
            self.apply(event)

    def attrs(self) -> dict:
        """The record's attributes: the spec and the campaign-level state."""
        return {
            "name": self.spec.name,
            "partner": self.spec.partner,
            "spec": json.dumps({**self.spec.to_dict(), "space": self.base_space}),
            SPACE_UPDATES_ATTR: json.dumps(self.space_events),
            "workbench_version": package_version(),
            "numerics_version": NUMERICS_VERSION,
            "created_at": self.created_at,
            "surrogate_state": json.dumps(self.warm_start) if self.warm_start else "",
            "mlflow_run_id": self.run_id or "",
            "stopped": self.stopped or "",
        }

    def dataset(self) -> "xr.Dataset":
        return to_dataset(self.trials, self.space, self.outcomes, self.attrs())

    def write_snapshot(self) -> None:
        """Fold the journal into a new Zarr snapshot (call under the lock)."""
        self.token = self.store.write_variables(
            self.attrs(), to_variables(self.trials, self.space, self.outcomes))
        self.offset = 0
        self.events = 0

    def compact_if_due(self) -> None:
        """Compact after an acknowledged write when the journal has grown: the events
        are durable, so a failed compaction (a full disk) only warns."""
        if self.events < max(COMPACT_MIN_EVENTS, len(self.trials) // 4):
            return
        try:
            self.write_snapshot()
        except OSError as e:
            warnings.warn(f"store: compaction of {self.store.path} failed ({e}); the journal"
                          " keeps every event and the next compaction retries", RuntimeWarning,
                          stacklevel=3)

    def compact(self) -> None:
        """Fold every journal event into the snapshot now (nothing for no store)."""
        if self.store is None:
            return
        with self.transaction():
            if self.events:
                self.write_snapshot()
