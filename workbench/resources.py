"""Shipped files: experiment specs and datasets, found in a wheel or a source tree."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def cache_root() -> Path:
    """The workbench's cache folder: ``$WORKBENCH_CACHE_DIR``, else ``~/.cache/sciworkbench``
    (fitted emulators, empty MLflow databases; the compilation cache sits in it too)."""
    root = os.environ.get("WORKBENCH_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "sciworkbench"


def shipped_dir(kind: str) -> Path:
    """Folder of shipped ``experiments`` or ``datasets``.

    A wheel carries them under ``workbench/_shipped/``; a source checkout or
    editable install has them beside the packages.
    """
    for candidate in (_PACKAGE / "_shipped" / kind, _PACKAGE.parent / kind):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no shipped {kind} folder found near {_PACKAGE}")


def experiments() -> dict[str, Path]:
    """Shipped experiment specs by name (file stem)."""
    return {p.stem: p for p in sorted(shipped_dir("experiments").glob("*.yaml"))}


def resolve_spec(spec: str) -> Path:
    """A spec argument as a path: an existing file, or the name of a shipped experiment."""
    path = Path(spec)
    if path.exists() or path.suffix in (".yaml", ".yml") or "/" in spec:
        return path
    found = experiments().get(spec)
    return found if found is not None else path
