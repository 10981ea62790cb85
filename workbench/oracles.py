"""Oracles: what a closed-loop ``run`` evaluates.

An oracle maps a parameter dict to outcomes: a number (for a single
objective) or a dict of named outcomes. Specs name one of the built-in test
problems or a Python function; the function is imported only when the
campaign runs, never while a spec is validated.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any, Callable

from workbench import problems
from workbench.errors import WorkbenchError

Oracle = Callable[[dict], Any]


class OracleError(WorkbenchError):
    exit_code = 2


def load_python(target: str, base_dir: Path | None = None) -> Oracle:
    """Import ``package.module:function`` or ``path/to/file.py:function``.

    A file path is resolved against ``base_dir`` (the spec's folder) first.
    """
    module_part, _, func_name = target.rpartition(":")
    if module_part.endswith(".py"):
        path = Path(module_part)
        if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
            path = base_dir / path
        if not path.exists():
            raise OracleError(f"oracle.python: file {module_part!r} not found")
        spec = importlib.util.spec_from_file_location(f"_workbench_oracle_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise OracleError(f"oracle.python: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - user code, report and stop
            raise OracleError(f"oracle.python: importing {path} failed: {type(e).__name__}: {e}")
    else:
        try:
            module = importlib.import_module(module_part)
        except Exception as e:  # noqa: BLE001
            raise OracleError(
                f"oracle.python: cannot import module {module_part!r}: {type(e).__name__}: {e}"
            ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise OracleError(f"oracle.python: {module_part!r} has no function {func_name!r}")
    return fn


def from_spec(oracle_spec, base_dir: Path | None = None) -> Oracle:
    """The callable an ``oracle:`` block describes."""
    if oracle_spec.builtin is not None:
        return problems.get(oracle_spec.builtin)
    return load_python(oracle_spec.python, base_dir)
