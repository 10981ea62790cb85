"""``DaskExecutor``: evaluations on a Dask ``distributed`` cluster."""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from typing import Any, Callable

from workbench.errors import CampaignError
from workbench.executors.base import FETCH_S, WorkerLost, check_limits

__all__ = ["DaskExecutor"]

# How long a Dask worker told to exit may take to leave the scheduler.
_RELEASE_S = 30.0
# How often a Dask evaluation lost with a worker before it started is sent again
# without counting as an attempt (its start report travels separately and could,
# in principle, be lost with the worker; this bounds a crash that looks like that).
_RESEND_MAX = 2


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
        check_limits(n_workers, timeout, retries)
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
