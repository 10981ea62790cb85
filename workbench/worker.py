"""A warm worker that answers ``workbench ask`` without a fresh process's start.

A fresh ``workbench ask`` spends most of its time before the proposal: importing JAX and
the workbench, and tracing the model's programs again (the persistent compilation cache
spares only XLA's compile). The engineer runs one ``ask`` per experiment, so a per-user
worker process keeps that warm part alive between them:

- the ``workbench`` command (``workbench.launcher.main``, which imports nothing heavy)
  offers an ask to the worker over a Unix domain socket (``forward``); when none answers,
  it asks in-process as before and starts one, detached, after its own answer
  (``spawn``), so the first ask pays nothing more;
- the worker (``workbench.launcher.serve``) runs the very code of an in-process ask
  (``workbench.cli.main``) with the caller's arguments, working directory and environment,
  its output captured, one request at a time, and the caller prints the exit code, stdout
  and stderr it returns;
- the socket lives in a per-user folder (mode 0700; the socket 0600), the worker answers
  only its own user (``SO_PEERCRED`` where the system has it), and the socket's name is a
  hash of everything that makes two processes compute differently (``worker_key``): an
  upgrade, another virtual environment or other numeric settings never meet a stale worker;
- it exits after ``IDLE_TIMEOUT_S`` without a request (``WORKBENCH_WORKER_IDLE_S``), and a
  killed worker's socket is replaced by the next one started;
- an ask is never made twice: once the worker has said it started a request, the caller
  does not ask again in-process whatever happens (the store is the truth); it reports the
  failure and names ``workbench status``. Before that, every failure means an in-process ask.

Messages are a 4-byte length and UTF-8 JSON: the worker greets each connection
(``ready``, with its key), then takes one ``run``, ``status`` or ``stop`` message; a run is
answered ``started`` (or ``refused``) and, when it ends, ``done`` with the exit code and output.

Opt out with ``--no-worker`` or ``WORKBENCH_WORKER=0``; ``workbench worker status|start|stop``
inspects, starts and stops workers (``workbench.cli_worker``). POSIX only: elsewhere every
ask runs in-process.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Optional

__all__ = ["BACKLOG", "COMMANDS", "DIR_ENV", "IDLE_ENV", "IDLE_TIMEOUT_S", "REQUEST_TIMEOUT_S",
           "SWITCH_ENV", "connect", "forward", "private_dir", "receive_message", "request",
           "send_message", "socket_dir", "socket_path", "spawn", "wanted", "worker_key",
           "workers"]

# Seconds a worker waits for a request before it exits (and removes its socket).
IDLE_TIMEOUT_S = 600.0
# Seconds the caller waits for an idle worker's greeting before it asks in-process.
READY_TIMEOUT_S = 2.0
# Seconds a worker waits for the request after its greeting.
REQUEST_TIMEOUT_S = 10.0
# The largest message either side accepts (bytes).
MAX_MESSAGE_BYTES = 64 << 20
# Asks queued behind the one being answered.
BACKLOG = 8
# Commands the worker answers; every other runs in-process.
COMMANDS = frozenset({"ask"})
SWITCH_ENV = "WORKBENCH_WORKER"       # "0": never use a worker
DIR_ENV = "WORKBENCH_WORKER_DIR"      # the sockets' folder (default: see socket_dir)
IDLE_ENV = "WORKBENCH_WORKER_IDLE_S"  # the idle timeout in seconds
NO_WORKER_OPTION = "--no-worker"
# Environment variables read when JAX, XLA, the BLAS libraries or the workbench start,
# which a worker cannot take from a request: they are part of the worker's key.
KEY_VARIABLES = ("WORKBENCH_CACHE_DIR", "PYTHONPATH", "PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES",
                 "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")
KEY_PREFIXES = ("JAX_", "XLA_", "TF_CPP_", "NVIDIA_")
# Packages whose source the key covers (every .py file's size and modification time),
# and installed libraries whose version file it covers.
SOURCE_PACKAGES = ("workbench", "surrogates", "active_learning")
LIBRARIES = ("jax", "jaxlib", "numpy", "scipy", "equinox", "optax", "zarr", "xarray")
_HEADER = struct.Struct("!I")


# -- where the worker lives ----------------------------------------------------------------


def worker_key(environ: Optional[Mapping[str, str]] = None) -> str:
    """A hash of what makes two processes compute differently: the workbench's version and
    source files, the Python executable, the installed numeric libraries and the environment
    variables they read at start (``KEY_VARIABLES``, ``KEY_PREFIXES``)."""
    import importlib.util

    import workbench

    env = os.environ if environ is None else environ
    parts: list[Any] = [workbench.__version__, sys.executable, sys.version]
    for name in SOURCE_PACKAGES:
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            parts.append(folder)
            parts.extend(_source_stats(folder))
    for name in LIBRARIES:
        spec = importlib.util.find_spec(name)
        parts.append([name, _stat(spec.origin) if spec and spec.origin else None])
    parts.append(sorted((k, v) for k, v in env.items()
                        if k in KEY_VARIABLES or k.startswith(KEY_PREFIXES)))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _stat(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_mtime_ns, st.st_size]


def _source_stats(folder: str) -> list:
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        found += [_stat(os.path.join(root, f)) for f in sorted(files) if f.endswith(".py")]
    return found


def socket_dir(environ: Optional[Mapping[str, str]] = None) -> str:
    """The folder of this user's worker sockets: ``$WORKBENCH_WORKER_DIR``, else
    ``$XDG_RUNTIME_DIR/sciworkbench``, else ``~/.cache/sciworkbench/workers`` (beside the
    compilation cache's default)."""
    env = os.environ if environ is None else environ
    if env.get(DIR_ENV):
        return env[DIR_ENV]
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "sciworkbench")
    return os.path.join(os.path.expanduser("~"), ".cache", "sciworkbench", "workers")


def socket_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """The socket of the worker for this environment (see ``worker_key``)."""
    return os.path.join(socket_dir(environ), worker_key(environ)[:24] + ".sock")


def private_dir(folder: str) -> bool:
    """Make ``folder`` (mode 0700) if missing; True when it is this user's and no one
    else's, so a socket in it cannot be reached or replaced by another user."""
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        st = os.stat(folder)
        if st.st_uid != os.getuid():
            return False
        if st.st_mode & 0o077:
            os.chmod(folder, 0o700)
        return True
    except OSError:
        return False


# -- messages: a 4-byte length, then UTF-8 JSON ----------------------------------------------


def send_message(conn: socket.socket, message: Mapping[str, Any]) -> None:
    data = json.dumps(message).encode()
    conn.sendall(_HEADER.pack(len(data)) + data)


def receive_message(conn: socket.socket) -> Optional[dict]:
    """The next message, or None when the other side closed before a whole one came."""
    header = _read(conn, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE_BYTES:
        raise OSError(f"message of {size} bytes; at most {MAX_MESSAGE_BYTES} expected")
    data = _read(conn, size)
    return None if data is None else json.loads(data)


def _read(conn: socket.socket, size: int) -> Optional[bytes]:
    chunks, left = [], size
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def connect(path: str, timeout: float) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.settimeout(timeout)
    try:
        conn.connect(path)
    except BaseException:
        conn.close()
        raise
    return conn


def request(path: str, message: Mapping[str, Any], timeout: float = READY_TIMEOUT_S
            ) -> Optional[dict]:
    """Send one message to the worker at ``path`` after its greeting; its answer, or None
    when no worker answers there (no socket, a stale one, no greeting in ``timeout``)."""
    try:
        with connect(path, timeout) as conn:
            if receive_message(conn) is None:
                return None
            send_message(conn, message)
            return receive_message(conn)
    except (OSError, ValueError):
        return None


def _refused(path: str) -> bool:
    """True when no process listens on the socket at ``path`` (a killed worker's)."""
    try:
        connect(path, READY_TIMEOUT_S).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


# -- the caller -----------------------------------------------------------------------------


def wanted(argv: Sequence[str]) -> bool:
    return (os.name == "posix" and hasattr(socket, "AF_UNIX") and bool(argv)
            and argv[0] in COMMANDS and NO_WORKER_OPTION not in argv
            and not {"--help", "-h"} & set(argv)
            and os.environ.get(SWITCH_ENV, "1").strip().lower() not in ("0", "false", "no", "off"))


def forward(argv: Sequence[str]) -> tuple[Optional[int], bool]:
    """(exit code, start a worker afterwards): the code is None when the ask is to run
    in-process; a worker is to be started when none is listening."""
    folder = socket_dir()
    if not private_dir(folder):
        return None, False
    key = worker_key()
    path = os.path.join(folder, key[:24] + ".sock")
    try:
        conn = connect(path, READY_TIMEOUT_S)
    except (FileNotFoundError, ConnectionRefusedError):
        return None, True  # none, or a killed one's socket: the next worker replaces it
    except OSError:
        return None, False
    with conn:
        try:
            ready = receive_message(conn)
        except (OSError, ValueError):
            return None, False  # busy or hung: not worth waiting for
        if not ready or ready.get("key") != key:
            return None, False
        conn.settimeout(None)  # an ask takes as long as it takes
        try:
            send_message(conn, {"type": "run", "key": key, "argv": list(argv), "cwd": os.getcwd(),
                         "env": dict(os.environ), "streams": _streams()})
            reply = receive_message(conn)
        except (OSError, ValueError):
            return None, False  # the request never started: nothing was asked
        except KeyboardInterrupt:  # it may have started: never ask again
            return _lost(ready, argv, "interrupted", 130), False
        if not reply or reply.get("type") != "started":
            return None, False  # refused or closed before starting: nothing was asked
        try:
            reply = receive_message(conn)
        except KeyboardInterrupt:
            return _lost(ready, argv, "interrupted", 130), False
        except (OSError, ValueError) as e:
            return _lost(ready, argv, str(e), 1), False
    if not reply or reply.get("type") != "done":
        return _lost(ready, argv, "it closed the connection", 1), False
    sys.stdout.write(reply.get("stdout", ""))
    sys.stdout.flush()
    sys.stderr.write(reply.get("stderr", ""))
    sys.stderr.flush()
    return int(reply.get("code", 1)), False


def _lost(ready: Mapping[str, Any], argv: Sequence[str], why: str, code: int) -> int:
    """Say that a started ask got no answer (it may be recorded) and what to do; the code."""
    spec = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else "SPEC"
    text = (f"the warm worker (pid {ready.get('pid')}) did not answer this ask ({why}); it may"
            f" have recorded the proposal all the same, so it is not asked again: run"
            f" `workbench status {spec}` to see the trials, then ask again if none was added")
    sys.stderr.write(f"error: {text}\n")
    if "--json" in argv:
        from workbench.cli_json import emit, error_document

        emit(error_document(text, code))
    return code


def _streams() -> dict:
    """How the caller's stdout and stderr look, so that the worker's output looks the same:
    terminal or not, encoding, and the terminal's size."""
    info: dict[str, Any] = {}
    for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        info[name] = {"tty": tty, "encoding": getattr(stream, "encoding", None) or "utf-8"}
        if tty and "size" not in info:
            try:
                info["size"] = list(os.get_terminal_size(stream.fileno()))
            except (OSError, ValueError):
                pass
    return info


def spawn(environ: Optional[Mapping[str, str]] = None) -> None:
    """Start a worker for this environment in a detached process and return at once. It
    exits at once if one for the same key is running or starting."""
    import subprocess

    import workbench

    # The worker must import this very workbench: run it from the folder above the package.
    home = os.path.dirname(os.path.dirname(os.path.abspath(workbench.__file__)))
    subprocess.Popen([sys.executable, "-m", "workbench.launcher"], cwd=home,
                     env=dict(os.environ if environ is None else environ),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)


def workers(environ: Optional[Mapping[str, str]] = None) -> list[dict]:
    """This user's workers in the sockets' folder, each as its status: pid, key, socket
    path, asks served, start time (epoch seconds), idle timeout and Python executable; a
    socket no process listens on as ``{"path": ..., "stale": True}``, a worker too busy
    with an ask to answer as ``{"path": ..., "busy": True}``."""
    folder = socket_dir(environ)
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".sock"))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(folder, name)
        answer = request(path, {"type": "status"})
        if answer and answer.get("type") == "status":
            found.append({k: v for k, v in answer.items() if k != "type"})
        elif _refused(path):
            found.append({"path": path, "stale": True})
        else:  # answering an ask: it greets the next caller when done
            found.append({"path": path, "busy": True})
    return found

