"""Deliver a campaign's tracking outbox from a detached process of its own.

``workbench ask`` and ``workbench report`` queue their tracking (an ask's metrics and
snapshot, the ``report.html`` artifact, and whatever a CLI ``tell`` queued before) in
the campaign's outbox and hand the delivery to such a process, so that the command
returns without importing MLflow (seconds on a workstation) and without waiting on
the tracking server. What the process cannot deliver stays in the outbox for the
next one (or ``Campaign.run``, or ``--wait``). One deliverer at a time: the outbox's
delivery lock.

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
    run at ``tracking`` (default: the URI the store records), creating the run if it
    waits to be created. True when none is left."""
    from workbench.campaign import Campaign

    return Campaign.open(Path(store), tracking=tracking).deliver_tracking()


if __name__ == "__main__":
    sys.exit(0 if deliver(sys.argv[1], *sys.argv[2:3]) else 1)
