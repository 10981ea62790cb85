"""``workbench worker status|start|stop``: the warm workers that answer ``workbench ask``
(see ``workbench.worker``)."""

from __future__ import annotations

import os
import time

import typer

from workbench.cli_common import guard, out

__all__ = ["START_TIMEOUT_S", "worker_app"]

# Seconds ``worker start`` waits for a new worker to answer.
START_TIMEOUT_S = 120.0
# Seconds between its looks.
POLL_S = 0.2

worker_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         pretty_exceptions_enable=False,
                         help="The warm worker that answers `workbench ask` without a fresh"
                              " start (WORKBENCH_WORKER=0 or ask --no-worker: never used).")


def _describe(info: dict, current: str) -> str:
    if info.get("stale"):
        return f"stale socket {info['path']} (no worker answers; the next one replaces it)"
    if info.get("busy"):
        return f"busy worker at {info['path']} (answering an ask)"
    mine = " (this environment's)" if info.get("path") == current else ""
    idle = info.get("idle_timeout_s")
    return (f"worker pid {info.get('pid')}{mine}: {info.get('served')} ask(s) answered since"
            f" {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(info.get('started', 0)))},"
            f" exits after {idle:g} s idle; socket {info.get('path')}; python"
            f" {info.get('python')}")


@worker_app.command("status")
@guard
def status():
    """List this user's workers; say which one serves this environment."""
    from workbench.worker import socket_path, workers

    current, found = socket_path(), workers()
    for info in found:
        out.print(_describe(info, current), highlight=False, markup=False, soft_wrap=True)
    if not any(i.get("path") == current and not i.get("stale") for i in found):
        out.print(f"no worker serves this environment (its socket would be {current});"
                  " the next `workbench ask` starts one", highlight=False, markup=False,
                  soft_wrap=True)

@worker_app.command("start")
@guard
def start():
    """Start this environment's worker (if none runs) and wait until it answers."""
    from workbench.errors import CampaignError
    from workbench.worker import request, socket_path, spawn

    path = socket_path()
    answer = request(path, {"type": "status"})
    if answer is None:
        spawn()
        deadline = time.monotonic() + START_TIMEOUT_S
        while answer is None and time.monotonic() < deadline:
            time.sleep(POLL_S)
            answer = request(path, {"type": "status"})
    if answer is None:
        raise CampaignError(f"worker: none answered at {path} within {START_TIMEOUT_S:g} s;"
                            " asks run in-process")
    out.print(f"worker pid {answer.get('pid')} answers at {path}", highlight=False,
              markup=False, soft_wrap=True)

@worker_app.command("stop")
@guard
def stop(every: bool = typer.Option(False, "--all", help="every worker of this user, not only"
                                                         " this environment's"),
         ):
    """Stop this environment's worker, or with --all every one; remove stale sockets."""
    from workbench.worker import request, socket_path, workers

    current, stopped = socket_path(), []
    for info in workers():
        if not every and info.get("path") != current:
            continue
        if info.get("busy"):
            out.print(f"worker at {info['path']} is answering an ask; run stop again after it",
                      highlight=False, markup=False, soft_wrap=True)
            continue
        if info.get("stale"):
            try:
                os.unlink(info["path"])
            except OSError:
                pass
            continue
        answer = request(info["path"], {"type": "stop"})
        if answer and answer.get("type") == "stopping":
            stopped.append(answer.get("pid"))
            out.print(f"stopped worker pid {answer.get('pid')}", highlight=False)
    if not stopped:
        out.print("no worker was running", highlight=False)
