"""The ``workbench`` command's entry point, and the warm worker process it hands asks to.

``main`` offers an ask to this environment's warm worker (``workbench.worker.forward``)
and otherwise runs the command in this process (``workbench.cli.main``), after which an ask
starts a worker for the next one. ``serve`` is that worker (``python -m workbench.launcher``):
it holds the key's lock, imports what an ask needs, listens on the key's socket and answers
each ask by running ``workbench.cli.main`` with the caller's arguments, working directory and
environment, its output captured, until it has been idle for its timeout or is stopped. See
``workbench.worker`` for the protocol and the safety rules.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
from collections.abc import Mapping
from typing import Any, Optional

from workbench import worker

__all__ = ["main", "serve"]


def main() -> None:
    """The ``workbench`` command: an ask goes to the warm worker where one answers; every
    other command, and an ask no worker answers, runs in this process (``workbench.cli``),
    after which an ask starts a worker for the next."""
    argv = sys.argv[1:]
    start_one, environ = False, dict(os.environ)  # as the worker's key saw it: before imports
    if worker.wanted(argv):
        try:
            code, start_one = worker.forward(argv)
        except KeyboardInterrupt:  # before the request was sent (forward handles it after)
            sys.stderr.write("interrupted; nothing was asked\n")
            sys.exit(130)
        if code is not None:
            sys.exit(code)
    from workbench.cli import main as run_here

    try:
        run_here()
    finally:
        if start_one:
            worker.spawn(environ)


# -- the worker -----------------------------------------------------------------------------


class _Stop(BaseException):
    """SIGTERM: leave the loop (through its clean-up), even in the middle of a request."""


class _Stream:
    """A text stream that collects what is written and looks like the caller's stream
    (``isatty``, ``encoding``), so that rich renders the same output for both."""

    def __init__(self, tty: bool, encoding: str):
        import io

        self._buffer = io.StringIO()
        self._tty = tty
        self.encoding = encoding
        self.errors = "strict"

    def write(self, text: str) -> int:
        return self._buffer.write(text)

    def writelines(self, lines) -> None:
        self._buffer.writelines(lines)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self._tty

    def writable(self) -> bool:
        return True

    def getvalue(self) -> str:
        return self._buffer.getvalue()


def serve(idle_timeout_s: Optional[float] = None) -> int:
    """Run a worker for this process's environment until it has been idle for
    ``idle_timeout_s`` (default ``$WORKBENCH_WORKER_IDLE_S`` or ``IDLE_TIMEOUT_S``) or is
    stopped. Returns 0 at once if another worker holds this key."""
    import fcntl

    key = worker.worker_key()  # before the imports of _warm can change the environment
    folder = worker.socket_dir()
    if not worker.private_dir(folder):
        return 1
    path = os.path.join(folder, key[:24] + ".sock")
    lock_path = os.path.join(folder, key[:24] + ".lock")
    with open(lock_path, "a") as lock:  # held for the worker's life: one worker per key
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(lock_path).st_ino != os.fstat(lock.fileno()).st_ino:
                return 0  # the lock file of a worker that just exited: a newer one starts
        except OSError:
            return 0  # another worker holds this key
        idle = idle_timeout_s if idle_timeout_s is not None else float(
            os.environ.get(worker.IDLE_ENV) or worker.IDLE_TIMEOUT_S)
        inode = None
        try:
            _warm()
            try:
                os.unlink(path)  # a killed worker's socket
            except FileNotFoundError:
                pass
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with listener:
                mask = os.umask(0o177)
                try:
                    listener.bind(path)
                finally:
                    os.umask(mask)
                os.chmod(path, 0o600)
                inode = os.stat(path).st_ino
                listener.listen(worker.BACKLOG)
                _loop(listener, key, path, idle)
        finally:
            for name, mine in ((path, inode), (lock_path, os.fstat(lock.fileno()).st_ino)):
                try:
                    if os.stat(name).st_ino == mine:
                        os.unlink(name)
                except OSError:
                    pass
    return 0


def _loop(listener: socket.socket, key: str, path: str, idle: float) -> None:
    """Answer connections one at a time until ``idle`` seconds pass without one, a stop
    request or SIGTERM."""
    import signal
    import time

    def stop(*_: object) -> None:
        raise _Stop

    signal.signal(signal.SIGTERM, stop)
    cwd, served, started = os.getcwd(), 0, time.time()
    listener.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                return
            with conn:
                outcome = _handle(conn, key, {"pid": os.getpid(), "key": key, "path": path,
                                              "served": served, "started": started,
                                              "idle_timeout_s": idle,
                                              "python": sys.executable})
            if outcome == "stop":
                return
            if outcome == "served":
                served += 1
                os.chdir(cwd)
    except _Stop:
        return


def _warm() -> None:
    """Import what an ask uses, so that the first ask the worker answers does not."""
    import workbench.campaign  # noqa: F401
    import workbench.cli  # noqa: F401
    from workbench.campaign import Campaign  # noqa: F401
    import surrogates  # noqa: F401
    import active_learning  # noqa: F401


def _peer_uid(conn: socket.socket) -> Optional[int]:
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # the folder's mode keeps other users out
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _handle(conn: socket.socket, key: str, info: dict) -> str:
    """Answer one connection: "served" (an ask ran), "stop", or "" (nothing ran)."""
    try:
        uid = _peer_uid(conn)
        if uid is not None and uid != os.getuid():
            return ""
        conn.settimeout(worker.REQUEST_TIMEOUT_S)
        worker.send_message(conn, {"type": "ready", "key": key, "pid": info["pid"]})
        message = worker.receive_message(conn)
        kind = (message or {}).get("type")
        if kind == "status":
            worker.send_message(conn, {"type": "status", **info})
            return ""
        if kind == "stop":
            worker.send_message(conn, {"type": "stopping", "pid": info["pid"]})
            return "stop"
        if kind != "run":
            return ""
        argv = message.get("argv") or []
        if message.get("key") != key or not argv or argv[0] not in worker.COMMANDS:
            why = ("another key" if message.get("key") != key
                   else f"only {', '.join(sorted(worker.COMMANDS))} is answered here")
            worker.send_message(conn, {"type": "refused", "reason": why})
            return ""
        worker.send_message(conn, {"type": "started"})
    except (OSError, ValueError):
        return ""
    conn.settimeout(None)
    reply = _run(message)
    try:
        worker.send_message(conn, reply)
    except OSError:
        pass  # the caller is gone; what the ask recorded is in the store
    return "served"


def _run(message: Mapping[str, Any]) -> dict:
    """Run ``workbench ARGV`` as the in-process command does, in the caller's working
    directory and environment, with its output captured; then put this process back."""
    import contextlib
    import traceback
    import warnings

    from surrogates import release_programs_if_crowded
    from workbench.cli import main as run_here
    from workbench.cli_common import reset_consoles

    streams = message.get("streams") or {}
    out = _Stream(**_stream_args(streams.get("stdout")))
    err = _Stream(**_stream_args(streams.get("stderr")))
    environ, argv = dict(os.environ), sys.argv
    code: int = 0
    try:
        os.environ.clear()
        os.environ.update(message["env"])
        os.chdir(message["cwd"])
        size = streams.get("size")
        width = size[0] if size and out.isatty() and "COLUMNS" not in os.environ else None
        sys.argv = ["workbench", *message["argv"]]
        # Warnings shown once per process are shown again, as in a fresh process.
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), \
                contextlib.redirect_stderr(err):
            reset_consoles(width=width)
            try:
                run_here()
            except SystemExit as e:
                code = _exit_code(e.code, err)
            except Exception:  # noqa: BLE001 - reported to the caller like an uncaught error
                traceback.print_exc(file=err)
                code = 1
    except (OSError, KeyError, TypeError) as e:  # the caller's folder is gone; a bad message
        err.write(f"error: {e}\n")
        code = 1
    finally:
        sys.argv = argv
        os.environ.clear()
        os.environ.update(environ)
        reset_consoles()
        release_programs_if_crowded()
    return {"type": "done", "code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def _stream_args(info: Optional[Mapping[str, Any]]) -> dict:
    info = info or {}
    return {"tty": bool(info.get("tty")), "encoding": str(info.get("encoding") or "utf-8")}


def _exit_code(code: object, err: _Stream) -> int:
    """The exit status Python gives ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    err.write(f"{code}\n")
    return 1


if __name__ == "__main__":
    sys.exit(serve())
