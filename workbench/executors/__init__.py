"""Executors: where a closed-loop ``run`` evaluates its oracle.

An executor starts evaluations and hands back future-like objects; the campaign's
run loop (``workbench.campaign.loop``) keeps up to ``max_workers`` of them in
flight, tells each result the moment it arrives and asks for the next proposal at
once (the trials still running are pending, so the model treats them as fantasies
and proposes elsewhere).

- ``InlineExecutor``: one evaluation at a time in this process, at submission; the
  loop asks ``batch_size`` proposals together. What ``run`` uses without an executor.

- ``LocalExecutor``: every evaluation in a fresh process of its own (``spawn``).
  A pool of long-lived workers cannot stop one hung evaluation without killing a
  worker that the pool (``concurrent.futures.ProcessPoolExecutor``) then declares
  broken, failing every other evaluation in flight; a process per evaluation can
  be killed alone, with everything it started, and costs a fraction of a second
  next to an experiment or a simulation.
- ``DaskExecutor``: a ``distributed`` cluster, a ``LocalCluster`` on 127.0.0.1 by
  default or a running scheduler (``dask scheduler`` / ``dask worker``). A hung
  evaluation is cancelled and its worker process ended, for its nanny to start a
  fresh one (a Python thread cannot be stopped); a worker that dies mid-evaluation
  surfaces as ``KilledWorker``. On the local cluster every worker runs one
  evaluation at a time and the scheduler reports a dead worker's task at the first
  death, so that retries are counted here, the same way for both executors.

Timeouts count from the moment the oracle starts (not from the submission, which
may wait for a free worker). A failed, timed-out or lost evaluation is tried
again up to ``retries`` times, then recorded with ``tell_failed`` and its reason,
e.g. ``timeout after 5 s (attempt 3/3)``. Whatever ends the loop (the budget, an
error, Ctrl-C), nothing is left running and trials not told stay pending, so the
next ``run`` resumes them.
"""

from __future__ import annotations

from workbench.executors.base import (FETCH_S, POLL_S, Evaluation, EvaluationError, Executor,
                                      WorkerLost, check_picklable)
from workbench.executors.cluster import DaskExecutor
from workbench.executors.inline import InlineExecutor
from workbench.executors.local import LocalExecutor

__all__ = ["Evaluation", "Executor", "InlineExecutor", "LocalExecutor", "DaskExecutor",
           "EvaluationError", "WorkerLost", "check_picklable", "from_spec", "POLL_S", "FETCH_S"]


def from_spec(executor_spec) -> Executor:
    """The executor an ``executor:`` block describes (the caller shuts it down)."""
    if executor_spec.type == "dask":
        return DaskExecutor(executor_spec.address, executor_spec.workers,
                            executor_spec.timeout, executor_spec.retries)
    return LocalExecutor(executor_spec.workers, executor_spec.timeout, executor_spec.retries)
