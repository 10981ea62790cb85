"""A campaign snapshot read without xarray: attributes and decoded numpy columns.

``xarray.open_zarr`` decodes the same files, but xarray consults dask whenever it is
installed (its chunk managers, its duck-array checks), which commands that only read
the record (``status``, ``export``, ``verify``, ``tell``) should not import. The
snapshot's encodings are the few that ``xarray.Dataset.to_zarr`` writes for the
record of ``workbench.record.to_dataset``: numbers, strings, NaN fill values, and
times as integers "<unit> since <date>" with the smallest int64 for NaT. Those are
decoded here exactly as xarray decodes them; any other encoding (a store written
by another tool, a future xarray) raises ``UnknownEncoding`` so that the caller
reads it with xarray instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Snapshot", "UnknownEncoding", "read_snapshot"]

# xarray's time units and the numpy units they name.
_TIME_UNITS = {"days": "D", "hours": "h", "minutes": "m", "seconds": "s",
               "milliseconds": "ms", "microseconds": "us", "nanoseconds": "ns"}
_CALENDARS = ("proleptic_gregorian", "standard", "gregorian")
_NAT = np.iinfo(np.int64).min  # how xarray writes NaT into an int64 time variable
# Zarr v3 numeric data types and their little-endian numpy types.
_NUMERIC = {"float64": "<f8", "float32": "<f4", "int64": "<i8", "int32": "<i4",
            "int16": "<i2", "int8": "i1", "uint64": "<u8", "uint32": "<u4", "uint16": "<u2",
            "uint8": "u1", "bool": "?"}


class UnknownEncoding(ValueError):
    """A variable encoded in a way this reader does not decode (xarray does)."""


class Snapshot(NamedTuple):
    """A stored record: its attributes (the root group's) and every variable and
    coordinate as a decoded numpy array, by name (as ``ds[name].values``)."""

    attrs: dict[str, Any]
    columns: dict[str, np.ndarray]


def _decode_time(name: str, raw: np.ndarray, units: str, calendar: str | None) -> np.ndarray:
    """datetime64[ns] from integers counting ``units`` ("microseconds since <date>")."""
    unit, sep, since = units.partition(" since ")
    if not sep or unit not in _TIME_UNITS or calendar not in _CALENDARS \
            or raw.dtype != np.int64:
        raise UnknownEncoding(f"{name}: times encoded as {raw.dtype} {units!r} ({calendar})")
    since = since.strip()
    if set(since[10:]) - set("0123456789:. T"):  # a time zone: xarray converts it
        raise UnknownEncoding(f"{name}: time origin {since!r}")
    try:
        origin = np.datetime64(since.replace(" ", "T"), "ns")
    except ValueError:
        raise UnknownEncoding(f"{name}: time origin {since!r}") from None
    nat = raw == _NAT
    out = origin + raw.astype(f"timedelta64[{_TIME_UNITS[unit]}]").astype("timedelta64[ns]")
    out[nat] = np.datetime64("NaT", "ns")
    return out


def _decode(name: str, raw: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """``raw`` as xarray's CF decoding returns it, for the encodings the record uses."""
    # Encoding attributes that xarray would act on (scale_factor, dtype="bool", ...).
    odd = {k for k in attrs if k.startswith("_") or k in ("scale_factor", "add_offset", "dtype")}
    if odd - {"_FillValue"}:
        raise UnknownEncoding(f"{name}: encoding attributes {sorted(odd - {'_FillValue'})}")
    if " since " in str(attrs.get("units", "")):
        if "_FillValue" in attrs:
            raise UnknownEncoding(f"{name}: times with a fill value")
        return _decode_time(name, raw, attrs["units"], attrs.get("calendar"))
    if "_FillValue" in attrs:
        fill = np.frombuffer(base64.b64decode(attrs["_FillValue"]), dtype="<f8")
        if fill.size != 1 or raw.dtype != np.float64:
            raise UnknownEncoding(f"{name}: fill value {attrs['_FillValue']!r} on {raw.dtype}")
        if not np.isnan(fill[0]):
            raw = np.where(raw == fill[0], np.nan, raw)
    return raw


def _fill(meta: dict[str, Any], dtype: np.dtype) -> Any:
    """The array's fill value (what chunks never written hold); NaN is spelt "NaN"."""
    value = meta["fill_value"]
    if dtype.kind == "f":
        return float(value)
    return "" if value is None and dtype.kind == "T" else value


def _vlen_utf8(data: bytes, count: int) -> list[str]:
    """numcodecs' VLenUTF8 layout: a uint32 item count, then per item a uint32 byte
    length and its UTF-8 bytes (all little-endian)."""
    if int.from_bytes(data[:4], "little") != count:
        raise UnknownEncoding(f"vlen-utf8 chunk of {int.from_bytes(data[:4], 'little')} items"
                              f" where {count} were expected")
    out, at = [], 4
    for _ in range(count):
        size = int.from_bytes(data[at:at + 4], "little")
        out.append(data[at + 4:at + 4 + size].decode("utf-8"))
        at += 4 + size
    return out


def _read_array(folder: Path, meta: dict[str, Any]) -> np.ndarray:
    """One Zarr v3 array of the layouts that ``to_zarr`` gives the record: a regular chunk
    grid with default keys, codecs ``bytes`` (little-endian) or ``vlen-utf8``, then
    optionally ``zstd``. Anything else raises ``UnknownEncoding``."""
    kind = meta.get("data_type")
    codecs = [c.get("name") for c in meta.get("codecs", [])]
    key = meta.get("chunk_key_encoding", {})
    grid = meta.get("chunk_grid", {})
    numeric = _NUMERIC.get(kind)
    serialiser = "bytes" if numeric else "vlen-utf8" if kind == "string" else None
    if (serialiser is None or codecs not in ([serialiser], [serialiser, "zstd"])
            or meta["codecs"][0].get("configuration", {}).get("endian", "little") != "little"
            or key != {"name": "default", "configuration": {"separator": "/"}}
            or grid.get("name") != "regular" or meta.get("storage_transformers")):
        raise UnknownEncoding(f"{folder}: a Zarr layout this reader does not decode")
    dtype = np.dtype(numeric) if numeric else np.dtypes.StringDType()
    shape = tuple(meta["shape"])
    chunk = tuple(grid["configuration"]["chunk_shape"])
    out = np.full(shape, _fill(meta, dtype), dtype=dtype)
    if "zstd" in codecs:
        from numcodecs.zstd import Zstd

        unzip = Zstd().decode
    counts = [-(-n // c) for n, c in zip(shape, chunk)]
    for index in np.ndindex(*counts):
        path = folder.joinpath("c", *map(str, index)) if index else folder / "c"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # never written: the fill value
        if "zstd" in codecs:
            data = bytes(unzip(data))
        size = int(np.prod(chunk))
        if numeric:
            block = np.frombuffer(data, dtype=dtype).reshape(chunk)
        else:
            block = np.array(_vlen_utf8(data, size), dtype=dtype).reshape(chunk)
        where = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunk, shape))
        out[where] = block[tuple(slice(0, w.stop - w.start) for w in where)]
    return out


def read_snapshot(path: str | Path) -> Snapshot:
    """The snapshot at ``path`` (a Zarr v3 group) read without xarray, nor zarr itself
    (whose import costs more than the read) for the layouts the workbench writes.

    Raises ``UnknownEncoding`` for a store this reader does not decode exactly as
    xarray would (other Zarr formats, encodings the record does not use).
    """
    path = Path(path)
    root = json.loads((path / "zarr.json").read_text())
    if root.get("zarr_format") != 3 or root.get("node_type") != "group":
        raise UnknownEncoding(f"{path}: Zarr format {root.get('zarr_format')}")
    columns = {}
    for folder in sorted(p for p in path.iterdir() if (p / "zarr.json").is_file()):
        meta = json.loads((folder / "zarr.json").read_text())
        if meta.get("node_type") == "group":
            continue  # the workbench's own folder (the journal and the completion marker)
        if meta.get("node_type") != "array" or meta.get("zarr_format") != 3:
            raise UnknownEncoding(f"{folder}: not a Zarr v3 array")
        try:
            raw = _read_array(folder, meta)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:  # zstd errors: RuntimeError
            raise UnknownEncoding(f"{folder}: {type(e).__name__}: {e}") from e
        columns[folder.name] = _decode(folder.name, raw, meta.get("attributes", {}))
    return Snapshot(dict(root.get("attributes", {})), columns)
