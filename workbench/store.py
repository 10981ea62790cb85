"""Campaign record persistence: a Zarr snapshot plus an append-only journal.

The record is a Zarr v3 group that xarray opens directly (the *snapshot*),
and a journal of the events since that snapshot (asks, tells, failures),
one checksummed JSON line each, appended and fsynced before a ``tell``
returns. A ``tell`` therefore costs one short append whatever the size of the
campaign; the snapshot is rewritten (*compacted*) only now and then.

Crash safety:

- a snapshot is written to a fresh sibling directory that becomes the store
  by rename, so a crash leaves the previous or the new complete snapshot,
  never a half-written one; the window between the two renames is closed on
  the next read, which restores the newest complete copy;
- a journal line is acknowledged only after ``fsync``; a line torn by a crash
  fails its checksum and is ignored (it was never acknowledged), and the next
  append starts on a fresh line;
- journal lines name the snapshot they extend, so lines left from before a
  compaction are never applied twice.

Concurrency: every read-modify-append runs under an exclusive file lock on a
sibling ``.NAME.lock`` file (``filelock``, so it works on Linux, macOS and
Windows), which several processes on one machine may share.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
import warnings
import zlib
from pathlib import Path
from typing import Any

import xarray as xr

# Written last inside a snapshot: its presence means the copy is complete. It
# is a valid (empty) Zarr subgroup, so Zarr and xarray readers accept it; the
# journal lives in the same folder, which Zarr ignores.
_MARKER = "_workbench/zarr.json"
_MARKER_TEXT = '{"zarr_format": 3, "node_type": "group", "attributes": {"complete": true}}\n'
_JOURNAL = "_workbench/journal.jsonl"
TOKEN_ATTR = "snapshot_token"


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def encode_line(token: str, event: dict[str, Any]) -> bytes:
    """One journal line: the event tagged with its snapshot and a CRC32 checksum."""
    body = json.dumps({"snap": token, "event": event}, separators=(",", ":"), sort_keys=True)
    return f"{zlib.crc32(body.encode()):08x} {body}\n".encode()


def decode_line(line: bytes) -> tuple[str, dict] | None:
    """(snapshot token, event) of an intact line; None for a torn or corrupt one."""
    try:
        text = line.decode().rstrip("\n")
        crc, body = text.split(" ", 1)
        if int(crc, 16) != zlib.crc32(body.encode()):
            return None
        obj = json.loads(body)
        return obj["snap"], obj["event"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None


class ZarrStore:
    """A campaign record at ``path``: Zarr snapshot + journal + lock."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().absolute()
        self._lock = None

    def __repr__(self) -> str:
        return f"ZarrStore({str(self.path)!r})"

    @property
    def journal_path(self) -> Path:
        return self.path / _JOURNAL

    @property
    def lock_path(self) -> Path:
        return self.path.parent / f".{self.path.name}.lock"

    @property
    def outbox_path(self) -> Path:
        """Tracking events not yet delivered to MLflow (beside the store: they
        must outlive compactions, which replace the store folder)."""
        return self.path.parent / f".{self.path.name}.tracking.jsonl"

    def lock(self):
        """Exclusive inter-process lock (re-entrant within this object).

        The lock file sits beside the store, not inside it: a compaction
        replaces the store directory, and a lock on a file inside it would
        then no longer be the one other processes wait on.
        """
        if self._lock is None:
            from filelock import FileLock

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(self.lock_path, thread_local=False)
        return self._lock

    # -- snapshot ---------------------------------------------------------

    def _siblings(self, kind: str) -> list[Path]:
        parent = self.path.parent
        if not parent.exists():
            return []
        prefix = f".{self.path.name}.{kind}-"
        return [p for p in parent.iterdir() if p.name.startswith(prefix)]

    def _recover(self) -> None:
        """Finish an interrupted swap: put the newest complete copy back in place."""
        if self.path.exists() or not (self._siblings("old") or self._siblings("tmp")):
            return
        # Under the lock: a writer between its two renames holds it, and
        # "recovering" its copy from under it would break its second rename.
        with self.lock():
            if self.path.exists():
                return
            # The crash fell between the renames: the new copy is complete (its
            # marker was written before the first rename) and newer than the old.
            complete = [p for p in self._siblings("old") + self._siblings("tmp")
                        if (p / _MARKER).exists()]
            if complete:
                newest = max(complete, key=lambda p: p.stat().st_mtime_ns)
                os.rename(newest, self.path)
                _fsync_dir(self.path.parent)
            for stale in self._siblings("tmp") + self._siblings("old"):
                shutil.rmtree(stale, ignore_errors=True)

    def exists(self) -> bool:
        self._recover()
        return self.path.exists() and (self.path / _MARKER).exists()

    def token(self) -> str | None:
        """The current snapshot's token, read from the root metadata only (cheap)."""
        self._recover()
        try:
            meta = json.loads((self.path / "zarr.json").read_text())
        except (OSError, ValueError):
            return None
        return meta.get("attributes", {}).get(TOKEN_ATTR)

    def read(self) -> xr.Dataset:
        """The snapshot, loaded into memory (without the journal's events)."""
        self._recover()
        if not (self.path / _MARKER).exists():
            raise FileNotFoundError(f"no campaign store at {self.path}")
        # Zarr reads chunk files by path: a compaction swapping the folder
        # mid-read would mix two snapshots.
        with self.lock(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_zarr(self.path, consolidated=False) as ds:
                return ds.load()

    def write(self, ds: xr.Dataset) -> str:
        """Replace the snapshot with ``ds`` atomically and start an empty journal.

        Call under ``lock()`` when other processes may share the store: the
        events in the old journal must already be folded into ``ds``.
        Returns the new snapshot's token.
        """
        with self.lock():
            return self._write(ds)

    def _write(self, ds: xr.Dataset) -> str:
        self._recover()
        token = uuid.uuid4().hex[:16]
        tmp = self.path.parent / f".{self.path.name}.tmp-{token}"
        ds = ds.copy()
        ds.attrs[TOKEN_ATTR] = token
        with warnings.catch_warnings():
            # Variable-length strings have no final Zarr v3 spec yet.
            warnings.simplefilter("ignore")
            ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
        (tmp / _MARKER).parent.mkdir()
        (tmp / _JOURNAL).touch()
        (tmp / _MARKER).write_text(_MARKER_TEXT)
        with open(tmp / _MARKER, "rb+") as fh:
            os.fsync(fh.fileno())
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{token}"
            os.rename(self.path, old)
            os.rename(tmp, self.path)
            _fsync_dir(self.path.parent)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, self.path)
            _fsync_dir(self.path.parent)
        for stale in self._siblings("tmp") + self._siblings("old"):
            shutil.rmtree(stale, ignore_errors=True)
        return token

    # -- journal ----------------------------------------------------------

    def append(self, token: str, events: list[dict[str, Any]]) -> int:
        """Append events to the journal of snapshot ``token`` durably; returns the new size.

        Call under ``lock()``. Returns once the bytes are fsynced: this is the
        moment an observation counts as acknowledged.
        """
        payload = b"".join(encode_line(token, e) for e in events)
        with open(self.journal_path, "ab+") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() > 0:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # a torn line from a crash: end it first
                    payload = b"\n" + payload
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
            return fh.tell()

    def read_journal(self, token: str, offset: int = 0) -> tuple[list[dict], int]:
        """Intact events of snapshot ``token`` from byte ``offset``; and the offset
        after the last complete line."""
        try:
            with open(self.journal_path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1  # a trailing partial line is still being written or torn
        events = []
        for line in data[:end].splitlines(keepends=True):
            decoded = decode_line(line)
            if decoded is not None and decoded[0] == token:
                events.append(decoded[1])
        return events, offset + end
