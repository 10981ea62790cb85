"""``LocalExecutor``: every evaluation in a fresh local process of its own."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
import time
from collections import deque
from typing import Any, Callable

from workbench.errors import CampaignError
from workbench.executors.base import POLL_S, EvaluationError, WorkerLost, check_limits, dumps

__all__ = ["LocalExecutor"]


def _watch_parent() -> None:
    """Exit, with everything this process started, when the parent dies (even by
    SIGKILL): an orphaned evaluation must not run on unseen."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()
        from workbench.oracles import kill_tree

        with contextlib.suppress(Exception):
            import psutil

            for child in psutil.Process().children():
                kill_tree(child.pid)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="workbench-parent-watch").start()


def _evaluate_in_child(conn, payload: bytes) -> None:
    """Body of an evaluation process: report the start, run the oracle, send the
    outcome ("ok", value) or ("error", reason), and leave without waiting for
    threads the oracle may have left behind."""
    if hasattr(os, "setsid"):
        # Its own session: Ctrl-C in the terminal reaches only the parent, which
        # decides what stops (and kills this process with its children).
        with contextlib.suppress(OSError):
            os.setsid()
    _watch_parent()
    code = 0
    try:
        conn.send(("start",))
        fn, params = pickle.loads(payload)
        message = ("ok", fn(params))
    except BaseException as e:  # noqa: BLE001 - any failure is the trial's, not ours
        message = ("error", f"{type(e).__name__}: {e}")
    try:
        conn.send(message)
    except Exception as e:  # noqa: BLE001 - an unpicklable result
        with contextlib.suppress(Exception):
            conn.send(("error", f"the oracle's result cannot be sent back: {e}"))
        code = 1
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def _death(exitcode: int | None) -> str:
    if exitcode is None:
        return "the evaluation process stopped answering"
    if exitcode < 0:
        import signal

        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = str(-exitcode)
        return f"the evaluation process was killed by {name}"
    return f"the evaluation process exited with status {exitcode} without a result"


class _ProcessEvaluation:
    """One evaluation in a process of its own; started when its executor has room."""

    def __init__(self, executor: "LocalExecutor", payload: bytes):
        self._executor = executor
        self._payload = payload
        self._proc = None
        self._conn = None
        self._outcome: tuple | None = None  # ("ok", value) | ("error", exc) | ("cancelled",)
        self.started_at: float | None = None

    def _start(self) -> None:
        ctx = self._executor._ctx
        recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(target=_evaluate_in_child, args=(send, self._payload),
                                 daemon=True, name="workbench-evaluation")
        self._proc.start()
        send.close()
        self._conn = recv
        self._payload = b""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._outcome is None

    def _poll(self) -> None:
        """Read what the process sent; notice its death."""
        while self._outcome is None and self._conn is not None and self._conn.poll():
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._proc.join(5)
                self._finish(("error", WorkerLost(_death(self._proc.exitcode))))
                return
            if message[0] == "start":
                self.started_at = time.monotonic()
            elif message[0] == "ok":
                self._finish(message)
            else:
                self._finish(("error", EvaluationError(message[1])))

    def _finish(self, outcome: tuple) -> None:
        self._outcome = outcome
        if self._proc is not None:
            self._proc.join(5)
            if self._proc.is_alive():
                from workbench.oracles import kill_tree

                kill_tree(self._proc.pid)
                self._proc.join()
            self._proc.close()
        if self._conn is not None:
            self._conn.close()
        self._executor._forget(self)

    def done(self) -> bool:
        self._executor._pump()
        if self._outcome is None:
            self._poll()
        return self._outcome is not None

    def result(self, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("the evaluation is still running")
            self._executor.wait([self], left)
        kind = self._outcome[0]
        if kind == "ok":
            return self._outcome[1]
        if kind == "cancelled":
            raise EvaluationError("cancelled")
        raise self._outcome[1]

    def cancel(self) -> bool:
        if self._outcome is not None:
            return False
        if self._proc is not None:
            from workbench.oracles import kill_tree

            kill_tree(self._proc.pid)
            self._proc.join()
        self._finish(("cancelled",))
        return True


class LocalExecutor:
    """Evaluations on this machine, each in a fresh process that can be killed alone.

    max_workers: evaluations at once (default: the CPU count); timeout: seconds
    an evaluation may run (None: no limit); retries: extra attempts after a
    failure, a timeout or a dead process; start_method: a ``multiprocessing``
    start method ("spawn": a clean interpreter, safe beside JAX's threads).
    The oracle must pickle (cloudpickle: module functions, spec oracles, and
    also lambdas and notebook functions); a script using this executor needs
    the usual ``if __name__ == "__main__":`` guard.
    """

    def __init__(self, max_workers: int | None = None, timeout: float | None = None,
                 retries: int = 0, start_method: str = "spawn"):
        check_limits(max_workers, timeout, retries)
        self.max_workers = int(max_workers or os.cpu_count() or 1)
        self.timeout = None if timeout is None else float(timeout)
        self.retries = int(retries)
        self._ctx = multiprocessing.get_context(start_method)
        self._queued: deque[_ProcessEvaluation] = deque()
        self._running: set[_ProcessEvaluation] = set()

    def submit(self, fn: Callable[[dict], Any], params: dict) -> _ProcessEvaluation:
        """Start ``fn(params)`` in a new process (queued while ``max_workers`` run)."""
        evaluation = _ProcessEvaluation(self, self._payload(fn, params))
        self._queued.append(evaluation)
        self._pump()
        return evaluation

    def _payload(self, fn, params: dict) -> bytes:
        try:
            return dumps((fn, dict(params)))
        except Exception as e:  # noqa: BLE001 - say which object cannot travel
            raise CampaignError(f"oracle: got {fn!r}, which cannot be sent to a worker process"
                                f" ({type(e).__name__}: {e}); expected a picklable callable")

    def _pump(self) -> None:
        """Start queued evaluations while fewer than ``max_workers`` run."""
        for ev in list(self._running):
            if not ev.running:
                self._running.discard(ev)
        while self._queued and len(self._running) < self.max_workers:
            ev = self._queued.popleft()
            if ev._outcome is None:
                ev._start()
                self._running.add(ev)

    def _forget(self, ev: _ProcessEvaluation) -> None:
        self._running.discard(ev)

    def wait(self, evaluations: list, timeout: float | None = None) -> None:
        """Return when one of ``evaluations`` has news (a result, a start, a death)
        or after ``timeout`` seconds."""
        from multiprocessing.connection import wait

        self._pump()
        conns = [ev._conn for ev in evaluations
                 if isinstance(ev, _ProcessEvaluation) and ev.running]
        if any(ev.done() for ev in evaluations):
            return
        if conns:
            wait(conns, timeout)
        elif timeout:
            time.sleep(min(timeout, POLL_S))

    @property
    def active(self) -> int:
        """Evaluations queued or running (0 once each is done or cancelled)."""
        return len(self._queued) + len(self._running)

    def shutdown(self) -> None:
        """Kill every evaluation still queued or running."""
        for ev in list(self._queued) + list(self._running):
            ev.cancel()
        self._queued.clear()
        self._running.clear()

    def __enter__(self) -> "LocalExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (f"LocalExecutor(max_workers={self.max_workers}, timeout={self.timeout},"
                f" retries={self.retries})")
