"""The closed loop: ask, evaluate on an executor, tell, until the budget is spent or a
stopping rule fires.

One loop serves every executor. ``workbench.executors.InlineExecutor`` evaluates
in this process at submission, asking the spec's batch size at a time;
``LocalExecutor`` and ``DaskExecutor`` keep ``max_workers`` evaluations in flight
and ask one trial as each worker frees up (pending trials are fantasies to the
model). The loop uses the campaign's public API only.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from workbench import problems
from workbench.errors import CampaignError
from workbench.executors import (FETCH_S, POLL_S, EvaluationError, Executor, InlineExecutor,
                                 check_picklable)
from workbench.executors import from_spec as executor_from_spec
from workbench.record import COMPLETED, FAILED, PENDING, Trial

if TYPE_CHECKING:
    from workbench.campaign.facade import Campaign
    from workbench.campaign.journal import Journal
    from workbench.campaign.proposing import Proposer
    from workbench.campaign.telemetry import Telemetry

__all__ = ["best_history", "executor_block", "resolve_oracle", "run_campaign", "run_loop",
           "stop_reason"]


def resolve_oracle(oracle: Callable | None, block: Any, base_dir: Path | None) -> Callable:
    """The callable a run evaluates: ``oracle`` when given, else the spec's ``oracle``
    block built (relative paths from ``base_dir``)."""
    if oracle is not None:
        if not callable(oracle):
            raise CampaignError(f"oracle: got {oracle!r}; expected a callable")
        return oracle
    if block is None:
        raise CampaignError("oracle: none given and the spec has no oracle block")
    from workbench.oracles import from_spec

    return from_spec(block, base_dir)


def executor_block(executor: Any, spec_block: Any) -> Any:
    """The ``executor:`` block to build an executor from: ``executor`` given as a dict,
    else the spec's block when no executor is given; None otherwise."""
    block = executor if isinstance(executor, dict) else (
        spec_block if executor is None else None)
    if isinstance(block, dict):
        from workbench.spec import ExecutorSpec

        try:
            block = ExecutorSpec.model_validate(block)
        except ValueError as e:
            raise CampaignError(f"executor: got {executor!r}; {e}") from None
    return block


@dataclass
class _Attempt:
    trial: Trial
    number: int  # 1-based
    submitted: float


def run_loop(campaign: "Campaign", oracle: Callable[[dict], Any], budget: int,
             executor: Executor, callback: Callable[[Trial], None] | None = None) -> str | None:
    """Evaluate proposals on ``executor`` until ``budget`` trials are completed or failed;
    returns the reason of the stopping rule that ended the loop, or None.

    Trials left pending (by an interrupted run) go first. Each result is told as it
    arrives. A failure, a timeout or a lost worker is retried ``executor.retries``
    times, then told failed with its reason. On any exit, evaluations still running
    are cancelled and their trials stay pending.
    """
    in_process = bool(getattr(executor, "in_process", False))
    if not in_process:
        check_picklable(oracle)
    # A plain concurrent.futures executor works too (no timeout, no retries).
    timeout = getattr(executor, "timeout", None)
    tries = 1 + int(getattr(executor, "retries", 0) or 0)
    capacity = int(getattr(executor, "max_workers", None)
                   or getattr(executor, "_max_workers", None) or 1)
    ask_size = int(getattr(executor, "batch_size", 1) or 1)
    wait = getattr(executor, "wait", None)
    cancel_all = getattr(executor, "cancel_all", None)
    inflight: dict[Any, _Attempt] = {}
    backlog: deque[tuple[Trial, int]] = deque((t, 1) for t in campaign.pending())
    stopped: str | None = None

    def evaluated() -> int:
        return campaign.count(COMPLETED) + campaign.count(FAILED)

    def failed(attempt: _Attempt, reason: str) -> None:
        if attempt.number < tries:
            backlog.appendleft((attempt.trial, attempt.number + 1))
            return
        if not in_process:
            reason = f"{reason} (attempt {attempt.number}/{tries})"
        with contextlib.suppress(CampaignError):  # told meanwhile by another process
            done = campaign.tell_failed(attempt.trial.id, reason)
            if callback:
                callback(done)

    def finished(attempt: _Attempt, evaluation: Any) -> None:
        try:
            value = evaluation.result(timeout=FETCH_S)
        except EvaluationError as e:
            return failed(attempt, str(e))
        except Exception as e:  # noqa: BLE001 - an experiment failing is data, not a crash
            return failed(attempt, f"{type(e).__name__}: {e}")
        try:
            done = campaign.tell(attempt.trial.id, value)
        except CampaignError as e:
            try:
                done = campaign.tell_failed(attempt.trial.id,
                                            f"oracle returned an unusable result: {e}")
            except CampaignError:  # told meanwhile by another process
                return
        if callback:
            callback(done)

    def submit(trial: Trial, number: int) -> None:
        evaluation = executor.submit(oracle, dict(trial.params))
        attempt = _Attempt(trial, number, time.monotonic())
        if in_process and evaluation.done():  # told before the next one runs
            finished(attempt, evaluation)
        else:
            inflight[evaluation] = attempt

    def fill() -> None:
        nonlocal stopped
        while len(inflight) < capacity:
            if backlog:
                if evaluated() + len(inflight) >= budget:
                    return
                submit(*backlog.popleft())
                continue
            # Pending trials count against the budget, ours in flight and others' alike.
            room = budget - evaluated() - campaign.count(PENDING)
            if room <= 0:
                return
            stopped = campaign.stop_reason()
            if stopped is not None:
                return  # a stopping rule fired: finish what is in flight
            for trial in campaign.ask(min(ask_size, capacity - len(inflight), room)):
                submit(trial, 1)

    try:
        while True:
            fill()
            if not inflight:
                break
            now = time.monotonic()
            deadlines = [(getattr(ev, "started_at", a.submitted) or math.inf) + timeout
                         for ev, a in inflight.items()] if timeout else []
            pause = max(0.0, min([POLL_S] + [d - now for d in deadlines]))
            if wait is not None:
                wait(list(inflight), pause)
            else:
                time.sleep(min(pause, 0.05))
            now = time.monotonic()
            for evaluation, attempt in list(inflight.items()):
                if evaluation.done():
                    del inflight[evaluation]
                    finished(attempt, evaluation)
                    continue
                started = getattr(evaluation, "started_at", attempt.submitted)
                if timeout and started is not None and now - started >= timeout:
                    del inflight[evaluation]
                    evaluation.cancel()
                    failed(attempt, f"timeout after {timeout:g} s")
    finally:
        # Whatever brought us here, leave nothing running; the trials stay pending.
        if inflight and cancel_all is not None:
            cancel_all(list(inflight))
        for evaluation in list(inflight):
            with contextlib.suppress(Exception):
                evaluation.cancel()
    return stopped


def best_history(campaign: "Campaign") -> tuple[list[float], str]:
    """Best value after each completed trial, and its direction, for stopping rules:
    the objective (|y - target| for a target), or the hypervolume for several."""
    trials = campaign.trials
    if len(campaign.objectives) > 1:
        done = {t.id for t in trials if t.status == COMPLETED}
        hv = campaign.hypervolume_history()
        return [h for t, h in zip(trials, hv) if t.id in done], "maximize"
    obj = campaign.objectives[0]
    feasible = {t.id for t in campaign.feasible_trials()}
    out, best = [], math.nan
    for t in trials:
        if t.status != COMPLETED:
            continue
        if t.id in feasible:
            v = t.outcomes[obj.name]
            v = abs(v - obj.target) if obj.target is not None else v
            better = (v < best if obj.direction in ("minimize", "target") else v > best)
            best = v if math.isnan(best) or better else best
        out.append(best)
    return out, "minimize" if obj.direction in ("minimize", "target") else "maximize"


def stop_reason(campaign: "Campaign", proposer: "Proposer") -> str | None:
    """The reason the first of the spec's stopping rules gives to stop now, or None.
    proposer: the campaign's, for the acquisition's scale and the regret bound."""
    stopping = campaign.spec.stopping
    if not stopping:
        return None
    from active_learning.stopping import StoppingState, first_triggered, rule_from_dict

    rules = [rule_from_dict(r.to_rule_dict()) for r in stopping]
    history, direction = best_history(campaign)
    model_trials = [t for t in campaign.trials if t.acquisition_value is not None
                    and math.isfinite(t.acquisition_value)]
    acq = model_trials[-1].acquisition_value if model_trials else None
    ucb = lcb = None
    if any(r.type == "regret_bound" for r in stopping):
        ucb, lcb = proposer.confidence_gap()
    state = StoppingState(
        n_evaluations=len(history), best_history=tuple(history), direction=direction,
        acquisition_value=acq, acquisition_log=proposer.acquisition_in_log_space,
        ucb_max=ucb, lcb_max=lcb)
    stop, reason = first_triggered(rules, state)
    return reason if stop else None


def run_campaign(campaign: "Campaign", journal: "Journal", telemetry: "Telemetry",
                 oracle: Callable | None, budget: int | None,
                 callback: Callable[[Trial], None] | None, executor: Any) -> None:
    """``Campaign.run``: resolve the oracle, budget and executor from the arguments or
    the spec, run :func:`run_loop`, record a stopping rule's reason, and on any exit
    shut down an executor made here, compact the journal and finish the MLflow run."""
    spec = campaign.spec
    fn = resolve_oracle(oracle, spec.oracle, campaign.base_dir)
    if isinstance(fn, problems.Problem):
        telemetry.problem = fn
    budget = budget if budget is not None else spec.budget
    if budget is None or isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise CampaignError(f"budget: got {budget!r}; expected a positive integer")
    block = executor_block(executor, spec.executor)
    owned = None
    tracker = telemetry.tracker()
    status = "FAILED"
    done_before = {t.id for t in journal.trials if t.status == COMPLETED}
    try:
        if block is not None:
            executor = owned = executor_from_spec(block)
        elif executor is None:
            executor = InlineExecutor(spec.acquisition.batch_size)
        # Imported past experiments are data, not experiments of this budget.
        imported = len(journal.trials) - journal.asked()
        reason = run_loop(campaign, fn, budget + imported, executor, callback)
        if reason is not None and reason != journal.stopped:
            with journal.lock():
                journal.record([{"op": "meta", "stopped": reason}])
            telemetry.tag_stopped(reason)
        status = "FINISHED"
    finally:
        try:
            if owned is not None:
                owned.shutdown()
        finally:
            journal.compact()
            if tracker is not None:
                telemetry.log_structures(tracker, done_before)
                telemetry.log_snapshot()
                tracker.finish(status)
