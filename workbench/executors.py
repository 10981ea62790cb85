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

import contextlib
import logging
import math
import multiprocessing
import os
import pickle
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Protocol, runtime_checkable

from workbench.errors import CampaignError, WorkbenchError


__all__ = ["Evaluation", "Executor", "InlineExecutor", "LocalExecutor", "DaskExecutor",
           "EvaluationError", "WorkerLost", "check_picklable", "from_spec", "POLL_S", "FETCH_S"]

# Longest sleep between checks of the evaluations in flight: bounds how late a
# timeout is noticed when the executor cannot wake us for it.
POLL_S = 0.25
# How long a finished evaluation's result may take to come back (a Dask result
# travels from its worker).
FETCH_S = 60.0
# How long a Dask worker told to exit may take to leave the scheduler.
_RELEASE_S = 30.0
# How often a Dask evaluation lost with a worker before it started is sent again
# without counting as an attempt (its start report travels separately and could,
# in principle, be lost with the worker; this bounds a crash that looks like that).
_RESEND_MAX = 2


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
    May also offer ``wait(evaluations, timeout)`` returning once one of them is done."""

    max_workers: int
    timeout: float | None
    retries: int

    def submit(self, fn: Callable[[dict], Any], params: dict) -> Evaluation: ...

    def shutdown(self) -> None: ...


def _dumps(obj: Any) -> bytes:
    """Pickle by value what plain pickle cannot (lambdas, notebook functions)."""
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with distributed
        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


def check_picklable(oracle: Callable[[dict], Any]) -> None:
    """Raise CampaignError unless ``oracle`` can be sent to a worker process."""
    try:
        _dumps(oracle)
    except Exception as e:  # noqa: BLE001
        raise CampaignError(f"oracle: got {oracle!r}, which cannot be sent to a worker"
                            f" ({type(e).__name__}: {e}); expected a picklable callable") from None


# -- in this process ------------------------------------------------------------


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


# -- local processes ------------------------------------------------------------


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
        _check_limits(max_workers, timeout, retries)
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
            return _dumps((fn, dict(params)))
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


# -- Dask -----------------------------------------------------------------------


def _dask_evaluate(fn: Callable[[dict], Any], params: dict, topic: str, key: str) -> Any:
    """Run on a Dask worker: announce the start (for the timeout clock and to know
    which worker to restart should it hang), then evaluate."""
    from distributed import get_worker

    worker = get_worker()
    worker.log_event(topic, {"key": key, "worker": worker.address})
    return fn(params)


async def _kill_worker_process(dask_worker) -> None:
    """Run on a Dask nanny (``client.run(..., nanny=True)``): SIGKILL its worker process
    and whatever that started; the nanny then starts a fresh one. A worker that dies
    while its nanny is still starting it is not restarted, so wait for that first."""
    import asyncio

    from distributed.core import Status

    from workbench.oracles import kill_tree

    deadline = time.monotonic() + _RELEASE_S
    while dask_worker.status != Status.running and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if dask_worker.pid:
        kill_tree(dask_worker.pid)


async def _exit_worker() -> None:
    """Run on a Dask worker without a nanny (``client.run``; a coroutine, as
    ``wait=False`` needs): end it, and whatever its evaluations started, at once."""
    from workbench.oracles import kill_tree

    with contextlib.suppress(Exception):
        import psutil

        for child in psutil.Process().children():
            kill_tree(child.pid)
    os._exit(1)


class _DaskEvaluation:
    def __init__(self, executor: "DaskExecutor", fn: Callable, params: dict):
        self._executor = executor
        self._call = (fn, params)
        self._outcome: tuple | None = None
        self._resent = 0
        self.future = None
        self.key = ""

    @property
    def started_at(self) -> float | None:
        started = self._executor._starts.get(self.key)
        return None if started is None else started[1]

    def done(self) -> bool:
        if self._outcome is not None:
            return True
        if not self.future.done():
            return False
        if self._lost_before_start():
            # It died waiting on a worker that another evaluation brought down:
            # not its failure, so no attempt is spent; send it again.
            self._resent += 1
            self._executor._inflight.pop(self.key, None)
            self.future.release()
            self._executor._send(self)
            return False
        return True

    def _lost_before_start(self) -> bool:
        """Its worker died before it started (bounded, should a start report be lost)."""
        from distributed import KilledWorker

        if (self.future.status != "error" or self.key in self._executor._starts
                or self._resent >= _RESEND_MAX):
            return False
        return isinstance(self.future.exception(timeout=FETCH_S), KilledWorker)

    def result(self, timeout: float | None = None) -> Any:
        from distributed import KilledWorker

        if self._outcome is None:
            try:
                self._outcome = ("ok", self.future.result(timeout=timeout))
            except KilledWorker as e:
                worker = getattr(e.last_worker, "address", e.last_worker)
                self._outcome = ("error", WorkerLost(
                    f"Dask worker {worker} died during the evaluation"))
            except Exception as e:  # noqa: BLE001 - the oracle's own exception
                if not self.future.done():
                    raise  # still running: result(timeout) ran out
                self._outcome = ("error", e)
            self._release()
        kind, value = self._outcome
        if kind == "ok":
            return value
        raise value

    def _release(self) -> None:
        # Dropped at once: a result left on a worker that dies later would be
        # recomputed by Dask, running the experiment a second time.
        self._executor._starts.pop(self.key, None)
        self._executor._inflight.pop(self.key, None)
        self.future.release()

    def cancel(self) -> bool:
        return self._executor._cancel([self])


class DaskExecutor:
    """Evaluations on a Dask ``distributed`` cluster.

    address: a running scheduler (``tcp://host:8786``); None starts a
    ``LocalCluster`` of ``n_workers`` single-threaded worker processes on
    127.0.0.1 (no dashboard), closed by ``shutdown``. n_workers: local workers
    to start, or, with an address, evaluations to keep in flight (default: the
    cluster's threads). timeout, retries: as for LocalExecutor. The worker
    process of a hung evaluation is ended and its nanny starts a fresh one
    (``dask worker`` runs a nanny by default; without one the worker is lost).
    The oracle must import on the workers: a spec's ``file.py:function`` and a
    command's folder must exist there at the same path (a shared filesystem).
    """

    def __init__(self, address: str | None = None, n_workers: int | None = None,
                 timeout: float | None = None, retries: int = 0, *,
                 connect_timeout: float = 60.0):
        _check_limits(n_workers, timeout, retries)
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError as e:
            raise CampaignError(f"executor: type dask needs the distributed package ({e});"
                                " expected `pip install \"dask[distributed]\"`") from None

        self.timeout = None if timeout is None else float(timeout)
        self.retries = int(retries)
        self._cluster = None
        self._config = None
        if address is None:
            n = int(n_workers or os.cpu_count() or 1)
            # One evaluation per worker, and a death reported at its first
            # occurrence: killing a worker then stops only the evaluation it is
            # meant to, and retries are counted by run_parallel alone.
            with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                self._cluster = LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.CRITICAL,
                )
            # A LocalCluster closes for good a nanny whose worker is absent 15 s after
            # any loss of it, even while the nanny is restarting it; workers killed
            # again and again (hung evaluations) would fall to that. Nannies restart
            # their workers here, so that clean-up is put off while we run.
            self._config = dask.config.set({"distributed.deploy.lost-worker-timeout": "30 days"})
            try:
                self.client = Client(self._cluster)
            except BaseException:
                self._cluster.close()
                self._config.__exit__(None, None, None)
                raise
            self.max_workers = n
        else:
            client = None
            try:
                client = Client(address, timeout=connect_timeout)
                client.wait_for_workers(1, timeout=connect_timeout)
            except (OSError, TimeoutError) as e:
                if client is not None:
                    client.close()
                raise CampaignError(f"executor.address: cannot reach a Dask scheduler with"
                                    f" workers at {address} ({type(e).__name__}: {e})") from None
            self.client = client
            self.max_workers = int(n_workers or sum(self.client.nthreads().values()))
        self._topic = f"workbench-start-{uuid.uuid4().hex}"
        self._starts: dict[str, tuple[str, float]] = {}
        self._inflight: dict[str, _DaskEvaluation] = {}
        self.client.subscribe_topic(self._topic, self._on_start)

    def _on_start(self, event) -> None:
        # Runs on the client's event-loop thread; one dict assignment is atomic.
        msg = event[1]
        self._starts[msg["key"]] = (msg["worker"], time.monotonic())

    def submit(self, fn: Callable[[dict], Any], params: dict) -> _DaskEvaluation:
        """Send ``fn(params)`` to the cluster."""
        ev = _DaskEvaluation(self, fn, dict(params))
        self._send(ev)
        return ev

    def _send(self, ev: _DaskEvaluation) -> None:
        fn, params = ev._call
        ev.key = f"workbench-evaluate-{uuid.uuid4().hex}"
        ev.future = self.client.submit(_dask_evaluate, fn, params, self._topic, ev.key,
                                       key=ev.key, pure=False, retries=0)
        self._inflight[ev.key] = ev

    def wait(self, evaluations: list, timeout: float | None = None) -> None:
        """Return when one of ``evaluations`` is done, or after ``timeout`` seconds."""
        from distributed import wait

        futures = [ev.future for ev in evaluations
                   if isinstance(ev, _DaskEvaluation) and ev._outcome is None]
        if not futures:
            return
        with contextlib.suppress(TimeoutError):
            wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")

    def cancel_all(self, evaluations: list) -> bool:
        """Cancel several evaluations, restarting their workers together."""
        return self._cancel([ev for ev in evaluations if isinstance(ev, _DaskEvaluation)])

    def _cancel(self, evaluations: list[_DaskEvaluation]) -> bool:
        """Cancel evaluations and replace the worker processes running them (a thread
        cannot be stopped, and a hung one would hold its worker forever).

        Evaluations waiting for a worker would go down with it: those the scheduler
        has queued (it would hand them the freed worker before its end) and those
        queued on that worker itself. They are withdrawn first and sent again after.
        """
        live = [ev for ev in evaluations if not ev.done()]
        for ev in evaluations:
            self._inflight.pop(ev.key, None)
        if not live:
            return False
        workers = {self._starts[ev.key][0] for ev in live if ev.key in self._starts}
        waiting: list[_DaskEvaluation] = []
        if workers:
            where = {k: w for w, keys in self.client.processing().items() for k in keys}
            waiting = [ev for ev in self._inflight.values() if not ev.done()
                       and (ev.key not in where or where[ev.key] in workers)]
        self.client.cancel([ev.future for ev in live + waiting], force=True)
        for ev in live + waiting:
            self._starts.pop(ev.key, None)
            self._inflight.pop(ev.key, None)
        try:
            if workers:
                self._replace_workers(workers)
        finally:
            for ev in waiting:
                self._send(ev)
        return True

    def _replace_workers(self, workers: set[str]) -> None:
        """Kill the processes of ``workers`` (their nannies start fresh ones) and wait
        until the scheduler has let them go. ``Client.restart_workers`` would first
        wait for the hung thread to finish, seconds at best."""
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        nannied = sorted(w for w in workers if (info.get(w) or {}).get("nanny"))
        if nannied:
            self.client.run(_kill_worker_process, workers=nannied, nanny=True)
        orphans = sorted(set(workers) - set(nannied))
        if orphans:
            self.client.run(_exit_worker, workers=orphans, wait=False)
            logging.getLogger(__name__).warning(
                "Dask workers %s run without a nanny: ended to stop a hung evaluation,"
                " they will not come back", orphans)
        deadline = time.monotonic() + _RELEASE_S
        while workers & set(self.client.nthreads()) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = workers & set(self.client.nthreads())
        if left:
            logging.getLogger(__name__).warning(
                "Dask workers %s still connected %g s after being killed; a cancelled"
                " evaluation may still hold their threads", sorted(left), _RELEASE_S)

    def shutdown(self) -> None:
        """Cancel what is in flight; close the client, and the cluster if we started it."""
        try:
            live = [ev for ev in self._inflight.values() if not ev.done()]
            if live and self._cluster is None:
                self._cancel(live)
            with contextlib.suppress(Exception):
                self.client.unsubscribe_topic(self._topic)
            self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
            if self._config is not None:
                self._config.__exit__(None, None, None)
                self._config = None

    def __enter__(self) -> "DaskExecutor":
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        where = "LocalCluster" if self._cluster is not None else self.client.scheduler.address
        return (f"DaskExecutor({where}, max_workers={self.max_workers},"
                f" timeout={self.timeout}, retries={self.retries})")


def _check_limits(workers, timeout, retries) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise CampaignError(f"workers: got {workers!r}; expected a positive integer")
    if timeout is not None and (isinstance(timeout, bool)
                                or not isinstance(timeout, (int, float)) or not timeout > 0):
        raise CampaignError(f"timeout: got {timeout!r}; expected seconds > 0 or None")
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise CampaignError(f"retries: got {retries!r}; expected an integer >= 0")


def from_spec(executor_spec) -> Executor:
    """The executor an ``executor:`` block describes (the caller shuts it down)."""
    if executor_spec.type == "dask":
        return DaskExecutor(executor_spec.address, executor_spec.workers,
                            executor_spec.timeout, executor_spec.retries)
    return LocalExecutor(executor_spec.workers, executor_spec.timeout, executor_spec.retries)
