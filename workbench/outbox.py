"""The tracking outbox: ordered, durable events on their way to MLflow.

Every tracking event goes first to an outbox: ``seq``-numbered JSON lines beside
the campaign store (in memory for in-memory campaigns) plus the last delivered
``seq``. Several processes share one outbox through file locks; ``Tracker`` in
``workbench.tracking`` delivers the events, in order, and marks them delivered.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path

from workbench.store import write_all


class _DescriptorLock:
    """An exclusive ``flock`` on a lock file kept open: a few microseconds per acquire,
    where ``filelock.FileLock`` reopens the file each time (~0.3 ms, and the campaign
    appends a tracking event several times per step). Interoperates with FileLock on
    the same path (both use ``flock`` on POSIX); elsewhere it is FileLock. Re-entrant;
    callers serialise their threads (``Outbox`` holds an RLock around it)."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None
        self._pid: int | None = None
        self._depth = 0
        self._fallback = None
        try:
            import fcntl  # noqa: F401 - POSIX only
        except ImportError:
            from filelock import FileLock

            self._fallback = FileLock(path, thread_local=False)

    def __enter__(self) -> "_DescriptorLock":
        if self._fallback is not None:
            self._fallback.acquire()
            return self
        import fcntl

        if self._pid != os.getpid():  # a forked child opens its own descriptor
            self._fd, self._pid, self._depth = None, os.getpid(), 0
        if self._depth == 0:
            if self._fd is None:
                os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        if self._fallback is not None:
            self._fallback.release()
            return
        import fcntl

        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass


class Outbox:
    """Ordered, durable tracking events: ``seq``-numbered JSON lines plus the last
    delivered ``seq``; shared safely by several processes through a file lock."""

    def __init__(self, path: Path | None):
        self.path = path
        self._memory: list[dict] = []
        self._delivered = 0
        self._lock = None
        self._delivery_lock = None
        # The file lock is re-entrant within the process, so threads (the
        # campaign and the delivery thread) also take this one.
        self._thread_lock = threading.RLock()
        self._tail: tuple[int, int, int] | None = None  # (inode, size, last seq) after our append
        self._parsed: tuple[tuple, int, list[dict]] | None = None  # ((inode, 1st line), bytes, events)

    @contextlib.contextmanager
    def lock(self):
        """Exclusive access to the outbox: among this process's threads and other processes."""
        with self._thread_lock:
            if self.path is None:
                yield
                return
            if self._lock is None:
                self._lock = _DescriptorLock(str(self.path) + ".lock")
            with self._lock:
                yield

    def delivery_lock(self):
        """Held by whoever delivers events, in any process: each event goes out once."""
        if self.path is None:
            return contextlib.nullcontext()
        if self._delivery_lock is None:
            from filelock import FileLock

            self._delivery_lock = FileLock(str(self.path) + ".delivery.lock", thread_local=False)
        return self._delivery_lock

    @property
    def _ack_path(self) -> Path:
        return Path(str(self.path) + ".delivered")

    def _read(self) -> list[dict]:
        if self.path is None:
            return list(self._memory)
        # Only the bytes appended since the last read are parsed: the delivery
        # thread reads under the lock the campaign appends under, so a re-read
        # of the whole file on every flush would stall the campaign.
        try:
            with open(self.path, "rb") as fh:
                # The same file as last time: same inode, not shorter, same first line
                # (another process may have delivered everything, removed the file and
                # started a new one that got the same inode).
                first = fh.readline()
                st = os.fstat(fh.fileno())
                key, offset, events = self._parsed or (None, 0, [])
                if key != (st.st_ino, first) or st.st_size < offset:
                    offset, events = 0, []
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            self._parsed = None
            return []
        end = chunk.rfind(b"\n") + 1  # an unterminated tail is read again next time
        events = list(events)
        for line in chunk[:end].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:  # a line torn by a crash was never acknowledged
                continue
        self._parsed = ((st.st_ino, first), offset + end, events)
        return events

    def delivered(self) -> int:
        if self.path is None:
            return self._delivered
        try:
            return int(self._ack_path.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def _last_seq(self) -> int:
        if self.path is not None and self._tail is not None:
            try:
                st = self.path.stat()
                now = (st.st_ino, st.st_size)
            except FileNotFoundError:
                now = None
            if now == self._tail[:2]:  # nobody else appended since our last event
                return self._tail[2]
        events = self._read()
        return events[-1]["seq"] if events else self.delivered()

    def put(self, event: dict) -> None:
        """Append an event (under ``lock()``)."""
        event = dict(event, seq=self._last_seq() + 1)
        if self.path is None:
            self._memory.append(event)
            return
        # The folder exists: lock() made it for its lock file.
        # Written through to the operating system, which keeps it if the process
        # is killed; an fsync per metric would cost more than the metric.
        line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
        # Unbuffered, so that a failed write can be cut off without a buffer
        # writing its leftover bytes past the cut.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a line torn by a crash: keep ours apart from it
            try:
                write_all(fd, line, size)
            except BaseException:
                # A full disk: cut the partial line off, so the file holds exactly
                # the events whose put() returned.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
            self._tail = (os.fstat(fd).st_ino, size + len(line), event["seq"])
        finally:
            os.close(fd)

    def pending(self) -> list[dict]:
        """Events not yet delivered, in order (under ``lock()``)."""
        done = self.delivered()
        return [e for e in self._read() if e["seq"] > done]

    def mark_delivered(self, seq: int) -> None:
        """Record delivery up to ``seq``; drop the file once everything is delivered."""
        if self.path is None:
            self._delivered = seq
            self._memory = [e for e in self._memory if e["seq"] > seq]
            return
        tmp = Path(str(self._ack_path) + ".tmp")
        tmp.write_text(str(seq))
        os.replace(tmp, self._ack_path)
        if seq >= self._last_seq():
            # Everything delivered: start the file afresh (the ack keeps the count).
            self.path.unlink(missing_ok=True)
            self._tail = self._parsed = None
