"""Shipped datasets: the catalogue, the loaders and the cards.

    import workbench as wb
    wb.datasets.list()                        # {"shields_arylation": "Pd-catalysed ...", ...}
    df = wb.datasets.load("shields_arylation")  # pandas DataFrame, units in df.attrs["units"]
    ds = wb.datasets.load_xarray("shields_arylation")  # xarray Dataset over "row"
    print(wb.datasets.card("shields_arylation"))

The data live in the top-level ``datasets/`` folder of a checkout, which a
wheel carries as ``workbench/_shipped/datasets`` (``workbench.resources``
finds either). Nothing is downloaded: every file is in the distribution.
"""

from __future__ import annotations

import builtins
import copy
import functools
import hashlib
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.resources import shipped_dir


class DatasetError(WorkbenchError, KeyError):
    """An unknown dataset name or a broken catalogue entry."""

    exit_code = 2

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def folder() -> Path:
    """The folder holding ``catalog.yaml`` and one sub-folder per dataset."""
    return shipped_dir("datasets")


@functools.lru_cache(maxsize=1)
def _catalog() -> dict[str, dict]:
    import yaml

    with open(folder() / "catalog.yaml", encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return data.get("datasets") or {}


def names() -> builtins.list[str]:
    """Names of the shipped datasets, sorted."""
    return sorted(_catalog())


def list() -> dict[str, str]:  # noqa: A001 - the public name the contract gives
    """Shipped datasets: name -> one-line description."""
    return {name: _catalog()[name]["description"] for name in names()}


def info(name: str) -> dict[str, Any]:
    """The catalogue entry of ``name``: file, card, sha256, rows, factors, outcomes, units."""
    entry = _catalog().get(name) if isinstance(name, str) else None
    if entry is None:
        raise DatasetError(f"dataset: got {name!r}; expected one of {names()}")
    return copy.deepcopy(entry)


def path(name: str) -> Path:
    """The data file of ``name`` (in a wheel or a checkout)."""
    return folder() / info(name)["file"]


def card(name: str) -> str:
    """The card of ``name`` (Markdown): source, licence, units, columns, conversion."""
    return (folder() / info(name)["card"]).read_text(encoding="utf-8")


def sha256(name: str) -> str:
    """SHA-256 of the shipped file, to compare with the catalogue and the card."""
    return hashlib.sha256(path(name).read_bytes()).hexdigest()


@functools.lru_cache(maxsize=8)
def _frame(name: str):
    import pandas as pd

    entry = info(name)
    labels = {c: str for c in entry["factors"]
              if c not in entry.get("units", {})}
    # Labels stay strings ("none", "1268824-69-6"), never NaN or numbers.
    return pd.read_csv(path(name), dtype=labels, keep_default_na=False,
                       na_values={c: [""] for c in entry["outcomes"]})


def load(name: str):
    """Dataset ``name`` as a pandas DataFrame, columns named as in its card.

    ``df.attrs`` holds ``units`` (column -> unit), ``factors`` (the
    experimental conditions), ``outcomes`` (measured columns), ``doi``,
    ``licence``, ``description`` and the ``card`` text. A fresh copy each
    call, so callers may change it.
    """
    entry = info(name)
    df = _frame(name).copy()
    df.attrs = {
        "name": name,
        "description": entry["description"],
        "units": dict(entry.get("units", {})),
        "factors": builtins.list(entry["factors"]),
        "outcomes": builtins.list(entry["outcomes"]),
        "doi": entry.get("doi", ""),
        "licence": entry.get("licence", ""),
        "card": card(name),
    }
    return df


def load_xarray(name: str):
    """Dataset ``name`` as an ``xarray.Dataset`` over dimension ``row``.

    Each variable carries its ``units`` in ``attrs``; the dataset's ``attrs``
    hold the card, the DOI, the licence, the factors and the outcomes.
    """
    import xarray as xr

    df = load(name)
    ds = xr.Dataset.from_dataframe(df.reset_index(drop=True).rename_axis("row"))
    for column, unit in df.attrs["units"].items():
        ds[column].attrs["units"] = unit
    ds.attrs.update({k: v for k, v in df.attrs.items() if k != "units"})
    return ds
