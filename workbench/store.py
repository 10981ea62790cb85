"""Campaign record persistence in Zarr, with atomic replacement.

A write goes to a fresh sibling directory that becomes the store by rename,
so a crash at any instant leaves either the previous complete record or the
new complete record, never a half-written one. The one window between the two
renames (old moved aside, new not yet in place) is closed on the next read,
which restores the newest complete copy.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path

import xarray as xr

# Written last inside a copy: its presence means the copy is complete. It is a
# valid (empty) Zarr subgroup, so Zarr and xarray readers accept the store.
_MARKER = "_workbench/zarr.json"
_MARKER_TEXT = '{"zarr_format": 3, "node_type": "group", "attributes": {"complete": true}}\n'



class ZarrStore:
    """A campaign record at ``path`` (a Zarr v3 directory store)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().absolute()

    def __repr__(self) -> str:
        return f"ZarrStore({str(self.path)!r})"

    def _siblings(self, kind: str) -> list[Path]:
        parent = self.path.parent
        if not parent.exists():
            return []
        prefix = f".{self.path.name}.{kind}-"
        found = [p for p in parent.iterdir() if p.name.startswith(prefix)]
        return sorted(found, key=lambda p: p.stat().st_mtime)

    def _recover(self) -> None:
        """Finish an interrupted swap: put the newest complete copy back in place."""
        if self.path.exists():
            return
        # The crash fell between the renames: the new copy is complete (its
        # marker was written before the first rename) and newer than the old.
        complete = [p for p in self._siblings("old") + self._siblings("tmp")
                    if (p / _MARKER).exists()]
        if complete:
            newest = max(complete, key=lambda p: p.stat().st_mtime_ns)
            os.rename(newest, self.path)

    def exists(self) -> bool:
        self._recover()
        return self.path.exists() and (self.path / _MARKER).exists()

    def read(self) -> xr.Dataset:
        """The stored record, loaded into memory."""
        self._recover()
        if not (self.path / _MARKER).exists():
            raise FileNotFoundError(f"no campaign store at {self.path}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with xr.open_zarr(self.path, consolidated=False) as ds:
                return ds.load()

    def write(self, ds: xr.Dataset) -> None:
        """Replace the stored record with ``ds`` atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover()
        token = uuid.uuid4().hex[:12]
        tmp = self.path.parent / f".{self.path.name}.tmp-{token}"
        with warnings.catch_warnings():
            # Variable-length strings have no final Zarr v3 spec yet.
            warnings.simplefilter("ignore")
            ds.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
        (tmp / _MARKER).parent.mkdir()
        (tmp / _MARKER).write_text(_MARKER_TEXT)
        if self.path.exists():
            old = self.path.parent / f".{self.path.name}.old-{token}"
            os.rename(self.path, old)
            os.rename(tmp, self.path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, self.path)
        for stale in self._siblings("tmp") + self._siblings("old"):
            shutil.rmtree(stale, ignore_errors=True)
