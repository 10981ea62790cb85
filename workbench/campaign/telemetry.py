"""What a campaign tells its MLflow run: progress metrics, versions, the data hash,
compute and energy, surrogate diagnostics (leave-one-out) and simulated structures.

MLflow is imported only when a campaign with tracking first logs; JAX only by a
process that has fitted a model already.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import problems
from workbench.csvio import rows_text
from workbench.metrics import code_version, cpu_seconds, loo_metrics, watts_per_core
from workbench.record import COMPLETED, FAILED, NUMERICS_VERSION, to_rows

if TYPE_CHECKING:
    from workbench.campaign.facade import Campaign
    from workbench.campaign.journal import Journal
    from workbench.campaign.proposing import Proposer
    from workbench.tracking import Tracker

__all__ = ["Telemetry", "data_hash", "package_version", "versions"]

_VERSION = "0.1.0"


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    """The installed sciworkbench version (once per process: a metadata lookup scans
    site-packages)."""
    try:
        from importlib.metadata import version

        return version("sciworkbench")
    except Exception:  # noqa: BLE001 - running from a source tree
        return _VERSION


@functools.lru_cache(maxsize=1)
def _version_table() -> tuple[tuple[str, str], ...]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    found = [("python", platform.python_version()), ("sciworkbench", package_version())]
    for name in ("jax", "jaxlib", "equinox", "optax", "numpy"):
        try:
            found.append((name, version(name)))
        except PackageNotFoundError:
            pass
    return tuple(found)


def versions() -> dict[str, str]:
    """Code and package versions recorded with every proposal (computed once)."""
    return dict(_version_table())


def data_hash(X: np.ndarray, Y: np.ndarray) -> str:
    """SHA-256 of the encoded training data a proposal saw (first 16 hex digits)."""
    h = hashlib.sha256()
    for a in (X, Y):
        a = np.ascontiguousarray(a, dtype=np.float64)
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


class Telemetry:
    """The tracking side of one campaign: its tracker, started on first use, and the
    metrics and artifacts logged to it. ``problem``: the built-in test problem being
    run, when ``run`` was given one (for regret)."""

    # LOO needs one Cholesky of n x n: cheap up to here; beyond, every k-th step.
    LOO_EVERY_N = 500

    def __init__(self, campaign: "Campaign", journal: "Journal", proposer: "Proposer"):
        self.campaign = campaign
        self.journal = journal
        self.proposer = proposer
        self.problem: Any = None
        self._tracker: Tracker | None = None
        # This process's CPU counts from the moment it opened the campaign: an ask's
        # model fit happens before its first log, and must not be lost.
        self._cpu_mark = cpu_seconds()
        self.deliver = True  # False: events wait in the outbox for another process
        self._resume_at: float | None = None  # monotonic time a deferral ends

    def defer(self, for_s: float | None = None) -> None:
        """Queue tracking events without delivering them from this process (nor importing
        MLflow); the next process that tracks the campaign delivers them, in order.
        for_s: deliver again from the first event ``for_s`` seconds from now on (None:
        never)."""
        self.deliver = False
        self._resume_at = None if for_s is None else time.monotonic() + for_s
        if self._tracker is not None:
            self._tracker.deliver = False

    def _resume_if_due(self) -> None:
        """End a deferral whose time is up: this process's tracker delivers again (what
        waits in the outbox goes with the next event)."""
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
            self._resume_at = None
            self.deliver = True
            if self._tracker is not None:
                self._tracker.deliver = True

    def tracker(self) -> "Tracker | None":
        """The tracker, started on first use (MLflow is imported only then); None
        without tracking."""
        c = self.campaign
        spec = c.spec
        if spec.tracking is None:
            return None
        self._resume_if_due()
        if self._tracker is None:
            from workbench.tracking import Tracker

            outbox = None if c.store is None else c.store.outbox_path
            self._tracker = Tracker(spec.tracking, spec.partner, spec.name, run_id=c.run_id,
                                    outbox=outbox, campaign_id=self.journal.campaign_id,
                                    on_run_id=self.remember_run, deliver=self.deliver)
            self._tracker.start(spec.to_dict(), tags={
                "partner": spec.partner, "campaign": spec.name,
                "workbench.version": package_version(), **self.version_tags(),
            })
        return self._tracker

    def remember_run(self, run_id: str) -> None:
        """Journal the MLflow run id, so a reopened campaign logs to the same run."""
        if run_id != self.journal.run_id:
            with self.journal.lock():
                self.journal.record([{"op": "meta", "mlflow_run_id": run_id}])

    @staticmethod
    def version_tags() -> dict[str, str]:
        """Tags naming the code and package versions behind the campaign's run."""
        tags = {f"version.{k}": v for k, v in versions().items()}
        tags["workbench.numerics"] = str(NUMERICS_VERSION)
        commit = code_version()
        if commit:
            tags["code.commit"] = commit
        return tags

    # -- per step --------------------------------------------------------------

    def log_ask(self, timings: dict[str, float], acquisition_values: list, step: int) -> None:
        tracker = self.tracker()
        if tracker is None:
            return
        metrics = dict(timings)
        finite = [v for v in acquisition_values if v is not None and math.isfinite(v)]
        if finite:
            metrics["acquisition_value"] = max(finite)
        metrics.update(self.compute_metrics())  # a CLI ask never tells: its CPU goes here
        tracker.log_metrics(metrics, step=step)

    def log_progress(self) -> None:
        """Best so far, regret, hypervolume, compute and model fit after a tell."""
        tracker = self.tracker()
        if tracker is None:
            return
        c = self.campaign
        metrics: dict[str, float] = {"completed": c.count(COMPLETED), "failed": c.count(FAILED)}
        best = c.best()
        obj = c.objectives[0]
        if best is not None:
            metrics["best_so_far"] = best.outcomes[obj.name]
            problem = self.builtin_problem()
            if problem is not None:
                metrics["regret"] = problem.regret(best.outcomes[obj.name])
        if len(c.objectives) > 1:
            # Several objectives: the dominated hypervolume of the feasible trials.
            metrics["hypervolume"] = c.hypervolume()
            metrics["pareto_size"] = len(c.pareto())
        metrics.update(self.compute_metrics())
        step = c.count(COMPLETED) + c.count(FAILED)
        metrics.update(self.surrogate_metrics(step))
        tracker.log_metrics(metrics, step=step)
        if step % 10 == 0:  # a tag holds one value; log_snapshot sets the final one
            self.tag_data_hash(tracker)

    def log_snapshot(self) -> None:
        """Log the trial table as ``trials.csv`` to the campaign's MLflow run, and the CPU
        spent since the last step (at the end of ``run``: evaluation processes reaped
        only when its executor shut down)."""
        tracker = self.tracker()
        if tracker is not None:
            compute = self.compute_metrics()
            if compute["step_cpu_s"] > 0:
                c = self.campaign
                tracker.log_metrics(compute, step=c.count(COMPLETED) + c.count(FAILED))
            c = self.campaign
            tracker.log_text("trials.csv", rows_text(*to_rows(c.trials, c.space, c.outcomes)))
            self.tag_data_hash(tracker)

    def tag_data_hash(self, tracker: "Tracker") -> None:
        completed = self.completed_data_hash()
        if completed:
            tracker.set_tags({"data_hash": completed})

    def completed_data_hash(self) -> str:
        X, Y = self._completed_xy()
        return data_hash(X, Y) if len(Y) else ""

    def _completed_xy(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.campaign
        return c.training_data([t for t in c.trials if t.status == COMPLETED])

    def tag_stopped(self, reason: str) -> None:
        tracker = self.tracker()
        if tracker is not None:
            tracker.set_tags({"stopped": reason})

    def builtin_problem(self) -> Any:
        """The test problem with a known optimum being optimised, if any (for regret)."""
        c = self.campaign
        problem = self.problem
        oracle = c.spec.oracle
        if problem is None and oracle is not None and oracle.builtin is not None:
            problem = problems.get(oracle.builtin)
        if problem is None:
            return None
        standard = {n: (lo, hi) for n, lo, hi in problem.bounds}
        same = all(standard.get(p.name) == (p.low, p.high) for p in c.space.parameters)
        return problem if same and problem.direction == c.objectives[0].direction else None

    def compute_metrics(self) -> dict[str, float]:
        """CPU seconds this process spent since its last logged step (or since it opened
        the campaign), with the evaluation processes it waited for, and their energy
        estimate (``workbench.metrics``: CPU seconds x watts per core). Every process
        logs its own share, so the sum of ``step_cpu_s`` over the run is the campaign's
        CPU across processes (asks, tells and runs alike)."""
        now_cpu = cpu_seconds()
        spent = max(0.0, now_cpu - self._cpu_mark)
        self._cpu_mark = now_cpu
        return {"step_cpu_s": spent, "step_energy_j": spent * watts_per_core()}

    def surrogate_metrics(self, step: int) -> dict[str, float]:
        """LOO error and calibration of the GP with the hyperparameters of the last fit
        (the proposal's own model when it was fitted on all but the newest result).

        Only in a process that has fitted the surrogate (JAX already imported):
        a CLI ``tell`` does not pay for importing JAX. Any failure skips the
        metrics: they describe the campaign, they must never stop it.
        """
        state = self.campaign.surrogate_state
        if not state or "jax" not in sys.modules:
            return {}
        n = self.campaign.count(COMPLETED)
        if n < 3 or (n > self.LOO_EVERY_N and step % max(1, n // self.LOO_EVERY_N)):
            return {}
        try:
            from surrogates import gp_from_hyperparameters, hyperparameters_from_dict
            from surrogates.output_warping import unwarp
            from surrogates.protocol import ExactFactor
            from workbench.engine import output_warp

            last = self.proposer.last_model
            model, warp = unwarp(None if last is None else last[0])
            if isinstance(model, ExactFactor) and len(last[1]) == n - 1:
                # The GP that made the proposal just evaluated, already factorised:
                # its LOO costs one triangular inverse, not a new model.
                return loo_metrics(model, warp)
            X, Y = self._completed_xy()
            theta = hyperparameters_from_dict(state)
            unit = (np.zeros(X.shape[1]), np.ones(X.shape[1]))
            warp = output_warp(self.campaign.problem, Y)
            model = gp_from_hyperparameters(X, (Y if warp is None else warp(Y))[:, :1], theta,
                                            bounds=unit)
            return loo_metrics(model, warp)
        except Exception:  # noqa: BLE001 - a metric, never a reason to stop
            return {}

    # -- end of a run ----------------------------------------------------------

    def log_structures(self, tracker: "Tracker", done_before: set[int]) -> None:
        """``oracle: {simulator: ..., log_structures: true}``: the atomic structure of each
        trial this run completed, as ``structures/trial_NNNN.extxyz`` on the MLflow run."""
        c = self.campaign
        oracle = c.spec.oracle
        if oracle is None or not oracle.log_structures:
            return
        from workbench import simulators

        sim = simulators.get(oracle.simulator)
        for t in c.trials:
            if t.status == COMPLETED and t.id not in done_before:
                try:
                    text = sim.structure_text(t.params)
                except Exception as e:  # noqa: BLE001 - an artifact, never a reason to stop
                    warnings.warn(f"trial {t.id}: no structure logged ({e})", RuntimeWarning,
                                  stacklevel=2)
                    continue
                tracker.log_text(f"structures/trial_{t.id:04d}.extxyz", text)
