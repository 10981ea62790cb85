"""Deliver a campaign's tracking outbox from a detached process of its own.

``workbench report`` writes its HTML, queues the ``report.html`` artifact in the
campaign's outbox and hands the delivery to such a process, so that the command
returns without importing MLflow (seconds on a workstation) and without waiting on
the tracking server. What the process cannot deliver stays in the outbox for the
next process that tracks the campaign (``ask``, ``run``, ``report --wait``), as a
CLI ``tell``'s events do. One deliverer at a time: the outbox's delivery lock.

Run as ``python -m workbench.deliver STORE [TRACKING_URI]``; exit 0 when nothing is
left undelivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["deliver", "spawn"]


def spawn(store: str | os.PathLike, tracking: str) -> None:
    """Start ``deliver(store, tracking)`` in a detached process and return at once.

    The process has its own session (it outlives a closed terminal and does not get
    the terminal's Ctrl-C), no standard streams, and the caller's environment (so
    ``MLFLOW_*`` settings such as short HTTP timeouts apply to it too)."""
    kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
                    "stderr": subprocess.DEVNULL, "close_fds": True}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:  # Windows: no console, own process group
        kwargs["creationflags"] = (subprocess.DETACHED_PROCESS
                                   | subprocess.CREATE_NEW_PROCESS_GROUP)
    subprocess.Popen([sys.executable, "-m", "workbench.deliver", str(store), tracking],
                     **kwargs)


def deliver(store: str | os.PathLike, tracking: str | None = None) -> bool:
    """Deliver every event waiting in the outbox of the campaign at ``store`` to its
    run at ``tracking`` (default: the URI the store records). True when none is left;
    False when the campaign has no run yet or the server did not take everything."""
    from workbench.campaign import Campaign
    from workbench.transfer import artifact_tracker

    campaign = Campaign.open(Path(store), tracking=tracking)
    tracker = artifact_tracker(campaign)
    return tracker is not None and tracker.flush(force=True)


if __name__ == "__main__":
    sys.exit(0 if deliver(sys.argv[1], *sys.argv[2:3]) else 1)
