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

import contextlib
import errno
import json
import os
import shutil
import time
import uuid
import warnings
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from workbench.errors import CampaignError
from workbench.snapshot import Snapshot, UnknownEncoding, Variable, read_snapshot, write_snapshot

if TYPE_CHECKING:
    import xarray as xr

# Written last inside a snapshot: its presence means the copy is complete. It
# is a valid (empty) Zarr subgroup, so Zarr and xarray readers accept it; the
# journal lives in the same folder, which Zarr ignores.
_MARKER = "_workbench/zarr.json"
_JOURNAL = "_workbench/journal.jsonl"
TOKEN_ATTR = "snapshot_token"


class StoreDamagedError(CampaignError):
    """A store whose files are damaged beyond a torn last journal line (which a
    crash leaves, and which is dropped); nothing was changed."""


def check_store_path(path: str | os.PathLike) -> Path:
    """The store's real location (symlinks resolved); refuses a path that holds
    something other than a campaign store, so that nothing there is ever replaced.

    A store path may be missing (a new campaign), an empty folder, or a store
    (a folder with the workbench's completion marker). Anything else (a file,
    a folder with other contents, e.g. ``.`` or a folder of other campaigns)
    raises CampaignError naming it.
    """
    given = Path(path).expanduser()
    real = given.resolve()
    shown = str(given) if given == real else f"{given} (-> {real})"
    if not real.exists():
        if real.parent.exists() and not real.parent.is_dir():
            raise CampaignError(f"store: {shown} lies inside {real.parent}, which is a file;"
                                " expected a path for a new folder")
        return real
    if not real.is_dir():
        raise CampaignError(f"store: {shown} is a file, not a campaign store; expected a"
                            " new path (e.g. campaigns/NAME.zarr) or an existing store")
    if (real / _MARKER).exists() or not any(real.iterdir()):
        return real
    raise CampaignError(
        f"store: {shown} is a folder that is not a campaign store (no {_MARKER});"
        " the workbench never replaces it. Expected a new path (e.g. campaigns/NAME.zarr)"
        " or an existing store")


def _snapshot_files(root: Path) -> list[Path]:
    """The snapshot's own files (Zarr metadata and chunks), not the workbench folder."""
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and p.relative_to(root).parts[0] != "_workbench")


def _checksums(root: Path) -> dict[str, str]:
    """CRC32 of every snapshot file, by path relative to ``root``."""
    return {p.relative_to(root).as_posix(): f"{zlib.crc32(p.read_bytes()):08x}"
            for p in _snapshot_files(root)}


def _marker_text(checksums: dict[str, str]) -> str:
    """The completion marker: a valid empty Zarr group whose attributes say the copy is
    complete and hold the checksums of its files."""
    return json.dumps({"zarr_format": 3, "node_type": "group",
                       "attributes": {"complete": True, "checksums": checksums}},
                      sort_keys=True) + "\n"


def snapshot_damage(root: Path) -> list[str]:
    """What is damaged in the snapshot at ``root``: files whose checksum differs from the
    one recorded with the completion marker, and recorded files that are missing.
    Snapshots written before checksums were recorded report nothing."""
    try:
        recorded = json.loads((root / _MARKER).read_text())["attributes"].get("checksums")
    except (OSError, ValueError, KeyError, TypeError):
        return [f"{root / _MARKER}: unreadable completion marker"]
    if not recorded:
        return []
    now = _checksums(root)
    problems = [f"{root / name}: checksum {now[name]} where {crc} was recorded"
                for name, crc in sorted(recorded.items()) if name in now and now[name] != crc]
    problems += [f"{root / name}: missing" for name in sorted(recorded) if name not in now]
    problems += [f"{root / name}: not part of the snapshot" for name in sorted(now)
                 if name not in recorded]
    return problems


# Zarr writes chunks concurrently, and when one write fails the others still finish:
# a partial copy is removed until it stays gone this long.
_PARTIAL_SETTLE_S = 0.1
_PARTIAL_TRIES = 30


def _remove_partial(path: Path) -> None:
    """Remove a partial snapshot copy, including files that writes still in flight add."""
    for _ in range(_PARTIAL_TRIES):
        shutil.rmtree(path, ignore_errors=True)
        time.sleep(_PARTIAL_SETTLE_S)
        if not path.exists():
            return


def _torn_tail(fd: int, size: int) -> int:
    """Length of the unterminated bytes at the end of a file of ``size`` bytes."""
    block = min(size, 1 << 16)
    while block:
        data = os.pread(fd, block, size - block)
        cut = data.rfind(b"\n")
        if cut >= 0:
            return block - cut - 1
        if block == size:
            return size
        block = min(size, block * 4)
    return 0


def write_all(fd: int, data: bytes, offset: int) -> None:
    """Write ``data`` at ``offset``, looping over short writes; raises on any error."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        offset += n
        view = view[n:]


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


class _StoreLock:
    """The store's inter-process file lock, re-entrant within this process.

    A store on a read-only folder or file system (an archive, a colleague's share)
    has no lock file and cannot get one: it is then read without the lock, since
    no process can change it through this path, and ``read_only`` turns true.
    """

    def __init__(self, path: Path):
        self.path = path
        self.read_only = False
        self._lock = None
        self._depth = 0
        self._held = False

    def __enter__(self) -> "_StoreLock":
        if self._depth == 0 and not self.read_only:
            from filelock import FileLock

            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if self._lock is None:
                    self._lock = FileLock(self.path, thread_local=False)
                self._lock.acquire()
                self._held = True
            except OSError as e:
                if e.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
                self.read_only = True
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._held:
            self._held = False
            self._lock.release()


class ZarrStore:
    """A campaign record at ``path``: Zarr snapshot + journal + lock."""

    def __init__(self, path: str | os.PathLike):
        # The real folder: a store reached through a symlink is replaced there,
        # and the link stays a link.
        self.path = Path(path).expanduser().resolve()
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
            self._lock = _StoreLock(self.lock_path)
        return self._lock

    @property
    def read_only(self) -> bool:
        """Whether the store could not be locked for writing (a read-only folder or
        file system): it can then be read, and every write is refused."""
        return self._lock is not None and self._lock.read_only

    def _check_writable(self) -> None:
        if self.read_only:
            raise CampaignError(f"store: {self.path} is read-only (its lock file"
                                f" {self.lock_path} cannot be created); it can be read, not"
                                " changed. Copy it to a writable place to continue it")

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

    def attrs(self) -> dict[str, Any]:
        """The snapshot's attributes, from its root metadata only (cheap; no arrays)."""
        self._recover()
        try:
            return json.loads((self.path / "zarr.json").read_text()).get("attributes", {})
        except (OSError, ValueError) as e:
            raise CampaignError(f"store: cannot read {self.path / 'zarr.json'} ({e})") from None

    def read(self) -> xr.Dataset:
        """The snapshot, loaded into memory (without the journal's events)."""
        import xarray as xr

        with self._reading():
            # chunks=None: numpy arrays, not dask's (whose chunk managers xarray
            # would otherwise import on every open).
            with xr.open_zarr(self.path, consolidated=False, chunks=None) as ds:
                return ds.load()

    def read_snapshot(self) -> Snapshot:
        """The snapshot's attributes and decoded columns (without the journal's events),
        read with zarr alone: what ``read()`` gives as numpy arrays, without importing
        xarray (nor the dask that xarray consults). A snapshot encoded otherwise than
        the workbench writes it is read through xarray."""
        with self._reading():
            try:
                return read_snapshot(self.path)
            except UnknownEncoding:
                pass
        ds = self.read()
        return Snapshot(dict(ds.attrs), {k: ds[k].values for k in ds.variables})

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Hold the lock over a read of an intact snapshot (warnings silenced)."""
        self._recover()
        if not (self.path / _MARKER).exists():
            raise FileNotFoundError(f"no campaign store at {self.path}")
        # Zarr reads chunk files by path: a compaction swapping the folder
        # mid-read would mix two snapshots.
        with self.lock(), warnings.catch_warnings():
            damage = snapshot_damage(self.path)
            if damage:
                raise StoreDamagedError(
                    f"store: the snapshot of {self.path} is damaged ({'; '.join(damage[:3])}"
                    + (f"; and {len(damage) - 3} more" if len(damage) > 3 else "") + ")."
                    f" Nothing was changed. Run `workbench verify {self.path}` for a report.")
            warnings.simplefilter("ignore")
            yield

    def write(self, ds: xr.Dataset) -> str:
        """Replace the snapshot with ``ds`` atomically and start an empty journal.

        Call under ``lock()`` when other processes may share the store: the
        events in the old journal must already be folded into ``ds``.
        Returns the new snapshot's token.
        """
        def to_zarr(tmp: Path, token: str) -> None:
            with warnings.catch_warnings():
                # Variable-length strings have no final Zarr v3 spec yet.
                warnings.simplefilter("ignore")
                ds.assign_attrs({TOKEN_ATTR: token}).to_zarr(
                    tmp, mode="w", consolidated=False, zarr_format=3)

        with self.lock():
            return self._write(to_zarr)

    def write_variables(self, attrs: dict[str, Any], variables: dict[str, Variable]) -> str:
        """``write`` for the Dataset of ``variables`` with ``attrs``, the same files,
        written without xarray (``workbench.snapshot.write_snapshot``); through
        xarray where a variable is of a kind that writer does not encode."""
        def write(tmp: Path, token: str) -> None:
            try:
                write_snapshot(tmp, {**attrs, TOKEN_ATTR: token}, variables)
            except UnknownEncoding:
                import xarray as xr  # nothing was written: write_snapshot checks first

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    xr.Dataset({k: xr.Variable(*v) for k, v in variables.items()},
                               attrs={**attrs, TOKEN_ATTR: token}).to_zarr(
                        tmp, mode="w", consolidated=False, zarr_format=3)

        with self.lock():
            return self._write(write)

    def _write(self, write: Callable[[Path, str], None]) -> str:
        """Write a new snapshot with ``write(folder, token)`` into a fresh sibling
        folder, then make it the store by rename."""
        self._check_writable()
        self._recover()
        token = uuid.uuid4().hex[:16]
        tmp = self.path.parent / f".{self.path.name}.tmp-{token}"
        check_store_path(self.path)  # never replace what is not a store
        try:
            write(tmp, token)
            (tmp / _MARKER).parent.mkdir()
            (tmp / _JOURNAL).touch()
            (tmp / _MARKER).write_text(_marker_text(_checksums(tmp)))
            with open(tmp / _MARKER, "rb+") as fh:
                os.fsync(fh.fileno())
        except BaseException:
            # A full disk or an interrupt: the current snapshot stays the store,
            # and the partial copy must not keep the space it took.
            _remove_partial(tmp)
            raise
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
        moment an observation counts as acknowledged. On any error (a full
        disk, a file size limit) the journal is cut back to its previous size,
        so a failed append leaves no trace, and the error is raised.
        """
        self._check_writable()
        payload = b"".join(encode_line(token, e) for e in events)
        # Unbuffered: a buffered file would retry its leftover bytes on truncate or
        # close, writing past the cut a failed append must leave.
        fd = os.open(self.journal_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            size = os.lseek(fd, 0, os.SEEK_END)
            # A line torn by a crash was never acknowledged: drop it, so that the
            # only line that may ever fail its checksum is the last.
            size -= _torn_tail(fd, size)
            os.ftruncate(fd, size)
            try:
                write_all(fd, payload, size)
                os.fsync(fd)
            except BaseException:
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                except OSError:
                    pass  # the torn line is then the last one, which readers drop
                raise
            return size + len(payload)
        finally:
            os.close(fd)

    def read_journal(self, token: str, offset: int = 0) -> tuple[list[dict], int]:
        """Intact events of snapshot ``token`` from byte ``offset``; and the offset
        after the last complete line.

        A trailing unterminated line is still being written, or torn by a
        crash: it is not returned. A complete line that fails its checksum is
        dropped only when it is the journal's last (a crash tearing a line
        that ended up newline-terminated); anywhere else it is damage, and
        StoreDamagedError names the file and line.
        """
        try:
            with open(self.journal_path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return [], offset
        end = data.rfind(b"\n") + 1  # a trailing partial line is still being written or torn
        lines = data[:end].splitlines(keepends=True)
        events = []
        for i, line in enumerate(lines):
            decoded = decode_line(line)
            if decoded is None:
                if i == len(lines) - 1 and end == len(data):
                    break  # the last line, torn by a crash: never acknowledged
                raise self._damage(offset + sum(len(x) for x in lines[:i]))
            if decoded[0] == token:
                events.append(decoded[1])
        return events, offset + end

    def _damage(self, at: int) -> StoreDamagedError:
        """The error for a damaged journal line starting at byte ``at``."""
        with open(self.journal_path, "rb") as fh:
            line_no = fh.read(at).count(b"\n") + 1
        return StoreDamagedError(
            f"store: {self.journal_path} line {line_no} is damaged (its checksum does not"
            " match) and it is not the last line, so it is not a crash's torn write."
            f" Nothing was changed. Run `workbench verify {self.path}` for a report;"
            " `workbench verify --recover` writes a copy with every intact event.")


def verify(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Check a store without changing it: (damage found, notes).

    Damage: a missing completion marker, snapshot files whose checksums differ
    from those recorded with the marker, a snapshot that cannot be read, journal
    lines that fail their checksum anywhere but at the end. Notes: what is fine
    but worth knowing (a torn last line, which a crash leaves and which is dropped).
    """
    store = ZarrStore(path)
    damage: list[str] = []
    notes: list[str] = []
    if not store.path.is_dir():
        return [f"{store.path}: no such folder"], notes
    if not (store.path / _MARKER).exists():
        return [f"{store.path / _MARKER}: missing; this is not a complete campaign store"], notes
    damage += snapshot_damage(store.path)
    if not damage:
        try:
            store.read_snapshot()
        except Exception as e:  # noqa: BLE001 - any failure to read is what we report
            damage.append(f"{store.path}: the snapshot cannot be read ({type(e).__name__}: {e})")
    bad, torn, total = _journal_lines(store.journal_path)
    damage += [f"{store.journal_path} line {n}: damaged (checksum mismatch)" for n in bad]
    if torn:
        notes.append(f"{store.journal_path} line {total}: torn by a crash; never"
                     " acknowledged, dropped on open")
    notes.append(f"{store.journal_path}: {total - len(bad) - bool(torn)} intact events")
    return damage, notes


def _journal_lines(path: Path) -> tuple[list[int], bool, int]:
    """(numbers of damaged lines, whether the last line is torn, number of lines)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return [], False, 0
    lines = data.splitlines(keepends=True)
    bad = [i + 1 for i, line in enumerate(lines) if decode_line(line) is None]
    torn = bool(bad) and bad[-1] == len(lines)
    return (bad[:-1] if torn else bad), torn, len(lines)


def recover(path: str | os.PathLike, out: str | os.PathLike) -> list[int]:
    """Copy the store at ``path`` to the new path ``out`` keeping every intact journal
    event and dropping damaged lines; returns the dropped line numbers. The original
    is left as it is. A damaged snapshot cannot be recovered here: its files are
    copied as they are, and ``verify`` on the copy still reports them."""
    store, target = ZarrStore(path), Path(out).expanduser().resolve()
    if target.exists():
        raise CampaignError(f"--recover: {target} exists; expected a new path for the copy")
    bad, torn, total = _journal_lines(store.journal_path)
    with store.lock():
        shutil.copytree(store.path, target)
    dropped = bad + ([total] if torn else [])
    journal = target / _JOURNAL
    if journal.exists():
        keep = [line for i, line in enumerate(journal.read_bytes().splitlines(keepends=True))
                if i + 1 not in dropped]
        journal.write_bytes(b"".join(keep))
    return dropped
