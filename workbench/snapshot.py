"""A campaign snapshot read and written without xarray: attributes and numpy columns.

``xarray.open_zarr`` decodes the same files, but xarray consults dask whenever it is
installed (its chunk managers, its duck-array checks), which commands that only read
the record (``status``, ``export``, ``verify``, ``tell``) should not import. The
snapshot's encodings are the few that ``xarray.Dataset.to_zarr`` writes for the
record of ``workbench.record.to_dataset``: numbers, strings, NaN fill values, and
times as integers "<unit> since <date>" with the smallest int64 for NaT. Those are
decoded here exactly as xarray decodes them; any other encoding (a store written
by another tool, a future xarray) raises ``UnknownEncoding`` so that the caller
reads it with xarray instead.

``write_snapshot`` is the other direction: the record's variables written as the same
files, byte for byte, that ``xarray.Dataset.to_zarr(zarr_format=3)`` writes for them
(zarr's automatic chunks, ``zstd`` level 0, CF times, NaN fill values), so that a campaign
run needs neither xarray, pandas, zarr nor dask. A variable of another kind raises
``UnknownEncoding`` before anything is written, and the caller writes with xarray.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Snapshot", "UnknownEncoding", "Variable", "read_snapshot", "write_snapshot"]

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


class Variable(NamedTuple):
    """One variable of a record: its dimension names, values and attributes (what
    ``xarray.Variable(dims, values, attrs)`` takes)."""

    dims: tuple[str, ...]
    values: np.ndarray
    attrs: dict[str, Any]


# What xarray writes into a float variable's attributes as its _FillValue (NaN, base64).
_NAN_FILL = base64.b64encode(np.array(np.nan, dtype="<f8").tobytes()).decode()
# Time units xarray tries, coarsest first: the first that divides every step is used.
_TIME_STEPS = ("D", "h", "m", "s", "ms", "us", "ns")
_UNIT_NAMES = {v: k for k, v in _TIME_UNITS.items()}
_ZSTD_LEVEL = 0  # zarr's default zstd codec for to_zarr's format 3
# zarr's automatic chunk sizes (bytes): the step of its target, its floor and its cap; and
# the item size it counts for a variable-length string.
_CHUNK_STEP, _CHUNK_MIN, _CHUNK_MAX = 256 * 1024, 128 * 1024, 64 * 1024 * 1024
_STRING_ITEM_SIZE = 1
_JSON_INDENT = 2  # zarr's default json_indent


def _timestamp_text(value: np.datetime64) -> str:
    """A time as pandas prints a Timestamp (how xarray spells a time origin):
    ``2026-12-07 14:45:38.475310``, seconds only when the fraction is zero."""
    ns = int(value.astype("datetime64[ns]").astype(np.int64))
    unit = "ns" if ns % 1000 else "us" if ns % 1_000_000_000 else "s"
    return np.datetime_as_string(value.astype(f"datetime64[{unit}]")).replace("T", " ")


def _encode_time(values: np.ndarray) -> tuple[np.ndarray, str]:
    """(int64 counts, units) as xarray encodes datetime64[ns] values: counted from the
    first time that is not NaT, in the coarsest unit that divides every step between
    consecutive times; NaT as the smallest int64."""
    times = values.astype("datetime64[ns]").ravel()
    valid = times[~np.isnat(times)]
    origin = valid[0] if valid.size else np.datetime64("1970-01-01", "ns")
    steps = np.unique(np.diff(valid))
    unit = next(u for u in _TIME_STEPS
                if np.all(steps % np.timedelta64(1, u).astype("timedelta64[ns]")
                          == np.timedelta64(0, "ns")))
    counts = np.full(times.shape, _NAT, dtype=np.int64)
    counts[~np.isnat(times)] = (valid - origin) // np.timedelta64(1, unit)
    return counts.reshape(values.shape), f"{_UNIT_NAMES[unit]} since {_timestamp_text(origin)}"


def _chunk_shape(shape: tuple[int, ...], item_size: int) -> tuple[int, ...]:
    """The chunk shape zarr chooses for an array (``zarr.core.chunk_grids._guess_chunks``,
    from h5py): halve the axes in turn until a chunk is near a target size that grows
    with the array's size (128 KiB to 64 MiB)."""
    chunks = np.maximum(np.array(shape, dtype="=f8"), 1)
    target = _CHUNK_STEP * (2 ** np.log10(np.prod(chunks) * item_size / (1024.0 * 1024)))
    target = min(max(target, _CHUNK_MIN), _CHUNK_MAX)
    axis = 0
    while True:
        size = np.prod(chunks) * item_size
        if (size < target or abs(size - target) / target < 0.5) and size < _CHUNK_MAX:
            break
        if np.prod(chunks) == 1:
            break
        chunks[axis % len(shape)] = math.ceil(chunks[axis % len(shape)] / 2.0)
        axis += 1
    return tuple(int(c) for c in chunks)


def _array(name: str, var: Variable) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """(zarr.json, [(chunk key, its bytes before compression, or its strings)]) of one
    variable, as to_zarr writes it: chunks that hold nothing but the fill value are left
    unwritten, and edge chunks are padded with it to the full chunk shape."""
    values = np.asarray(var.values)
    attrs = dict(var.attrs)
    if values.ndim == 0:
        raise UnknownEncoding(f"{name}: a scalar")
    if values.dtype == object and values.size == 0:
        values = values.astype(np.float64)  # xarray finds no type in no values
    if values.dtype == np.float64:
        kind, fill, serialiser = "float64", "NaN", "bytes"
        if var.values.dtype == np.float64:
            attrs["_FillValue"] = _NAN_FILL
        data, pad = values.astype("<f8"), np.nan
    elif values.dtype == np.int64:
        kind, fill, serialiser = "int64", 0, "bytes"
        data, pad = values.astype("<i8"), 0
    elif values.dtype == np.dtype("datetime64[ns]"):
        counts, units = _encode_time(values)
        attrs.update(units=units, calendar="proleptic_gregorian")
        kind, fill, serialiser = "int64", 0, "bytes"
        data, pad = counts.astype("<i8"), 0
    elif values.dtype == object and all(type(v) is str for v in values.flat):
        kind, fill, serialiser = "string", "", "vlen-utf8"
        data, pad = values, ""
    else:
        raise UnknownEncoding(f"{name}: {values.dtype} values")
    if any(not isinstance(k, str) for k in attrs):
        raise UnknownEncoding(f"{name}: attribute names {list(attrs)}")
    shape = values.shape
    chunk = _chunk_shape(shape, _STRING_ITEM_SIZE if kind == "string" else 8)
    chunks = []
    for index in np.ndindex(*[-(-n // c) for n, c in zip(shape, chunk)]):
        where = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunk, shape))
        block = np.full(chunk, pad, dtype=data.dtype)
        block[tuple(slice(0, w.stop - w.start) for w in where)] = data[where]
        if kind == "string":
            if any(block.flat):
                chunks.append(("/".join(map(str, index)), block.ravel()))
        elif not (np.all(np.isnan(block)) if kind == "float64" else not block.any()):
            chunks.append(("/".join(map(str, index)), block.tobytes()))
    meta = {
        "shape": list(shape),
        "data_type": kind,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunk)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": fill,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}
                   if serialiser == "bytes" else {"name": "vlen-utf8", "configuration": {}},
                   {"name": "zstd", "configuration": {"level": _ZSTD_LEVEL, "checksum": False}}],
        "attributes": attrs,
        "dimension_names": list(var.dims),
        "zarr_format": 3,
        "node_type": "array",
        "storage_transformers": [],
    }
    return meta, chunks


def _json_bytes(meta: dict[str, Any]) -> bytes:
    return json.dumps(meta, allow_nan=True, indent=_JSON_INDENT).encode()


def write_snapshot(path: str | Path, attrs: dict[str, Any],
                   variables: dict[str, Variable]) -> None:
    """Write ``variables`` (by name) and the group's ``attrs`` as a Zarr v3 group at
    ``path`` (a new folder), the files ``to_zarr`` writes for the Dataset of the same
    variables. Raises ``UnknownEncoding``, having written nothing, for a variable of a
    type the record does not use (the caller then writes with xarray)."""
    from numcodecs.vlen import VLenUTF8
    from numcodecs.zstd import Zstd

    arrays = {}
    try:
        root_meta = _json_bytes({"attributes": attrs, "zarr_format": 3, "node_type": "group"})
        for name, var in variables.items():
            meta, chunks = _array(name, var)
            arrays[name] = (_json_bytes(meta), chunks)
    except (TypeError, ValueError) as e:  # attributes JSON cannot hold (numpy scalars, ...)
        raise UnknownEncoding(f"attributes: {e}") from e
    zstd, strings = Zstd(level=_ZSTD_LEVEL, checksum=False), VLenUTF8()
    path = Path(path)
    path.mkdir(parents=True)
    (path / "zarr.json").write_bytes(root_meta)
    for name, (text, chunks) in arrays.items():
        folder = path / name
        folder.mkdir()
        (folder / "zarr.json").write_bytes(text)
        for key, raw in chunks:
            chunk = folder / "c" / key
            chunk.parent.mkdir(parents=True, exist_ok=True)
            if not isinstance(raw, bytes):
                raw = strings.encode(raw)  # numcodecs' VLenUTF8, as zarr's vlen-utf8 codec
            chunk.write_bytes(bytes(zstd.encode(raw)))
