"""Evaluation in this process: what ``Campaign.run`` uses without an executor."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["InlineExecutor"]


class _InlineEvaluation:
    """An evaluation that ran to its end when it was submitted."""

    started_at = None

    def __init__(self, fn: Callable[[dict], Any], params: dict):
        self._error: Exception | None = None
        self._value: Any = None
        try:
            self._value = fn(params)
        except Exception as e:  # noqa: BLE001 - an experiment failing is data, not a crash
            self._error = e

    def done(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> bool:
        return False


class InlineExecutor:
    """Evaluates each submission at once, in this process (no timeout, no retries).

    batch_size: proposals the run loop asks together (the spec's
    ``acquisition.batch_size``); they are evaluated and told one after the other.
    """

    in_process = True
    timeout = None
    retries = 0

    def __init__(self, batch_size: int = 1):
        self.batch_size = self.max_workers = int(batch_size)

    def submit(self, fn: Callable[[dict], Any], params: dict) -> _InlineEvaluation:
        return _InlineEvaluation(fn, params)

    def shutdown(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"InlineExecutor(batch_size={self.batch_size})"
