"""The executor protocol: what the campaign's run loop needs from an executor and
from the evaluations it starts, and the checks every executor shares."""

from __future__ import annotations

import pickle
from typing import Any, Callable, Protocol, runtime_checkable

from workbench.errors import CampaignError, WorkbenchError

__all__ = ["FETCH_S", "POLL_S", "Evaluation", "EvaluationError", "Executor", "WorkerLost",
           "check_limits", "check_picklable", "dumps"]

# Longest sleep between checks of the evaluations in flight: bounds how late a
# timeout is noticed when the executor cannot wake us for it.
POLL_S = 0.25
# How long a finished evaluation's result may take to come back (a Dask result
# travels from its worker).
FETCH_S = 60.0


class EvaluationError(WorkbenchError):
    """An evaluation failed; the message is the reason recorded with the trial."""


class WorkerLost(EvaluationError):
    """The process running an evaluation died (killed, out of memory, crashed)."""


@runtime_checkable
class Evaluation(Protocol):
    """A running evaluation (future-like).

    started_at: ``time.monotonic()`` when the oracle began, None while it waits
    for a worker (optional: without it, the submission time counts).
    """

    def done(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Any:
        """The oracle's return value; raises EvaluationError (or the oracle's exception)."""

    def cancel(self) -> bool:
        """Stop the evaluation, killing what runs it if need be."""


@runtime_checkable
class Executor(Protocol):
    """Runs oracle evaluations; ``max_workers`` of them at once, each at most ``timeout``
    seconds (None: no limit), each tried ``1 + retries`` times before it counts as failed.

    Optional: ``wait(evaluations, timeout)`` returning once one of them is done;
    ``cancel_all(evaluations)``; ``batch_size``, the proposals the run loop asks together
    (default 1: one as each worker frees up); ``in_process`` (True: evaluations run here at
    submission, so the oracle need not be picklable and each is told before the next)."""

    max_workers: int
    timeout: float | None
    retries: int

    def submit(self, fn: Callable[[dict], Any], params: dict) -> Evaluation: ...

    def shutdown(self) -> None: ...


def dumps(obj: Any) -> bytes:
    """Pickle by value what plain pickle cannot (lambdas, notebook functions)."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with distributed
        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


def check_picklable(oracle: Callable[[dict], Any]) -> None:
    """Raise CampaignError unless ``oracle`` can be sent to a worker process."""
    try:
        dumps(oracle)
    except Exception as e:  # noqa: BLE001
        raise CampaignError(f"oracle: got {oracle!r}, which cannot be sent to a worker"
                            f" ({type(e).__name__}: {e}); expected a picklable callable") from None


def check_limits(workers: Any, timeout: Any, retries: Any) -> None:
    """Raise CampaignError unless the executor limits are usable."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise CampaignError(f"workers: got {workers!r}; expected a positive integer")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise CampaignError(f"timeout: got {timeout!r}; expected seconds > 0 or None")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise CampaignError(f"retries: got {retries!r}; expected an integer >= 0")
