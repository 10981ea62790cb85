"""Oracles: what a closed-loop ``run`` evaluates.

An oracle maps a parameter dict to outcomes: a number (for a single
objective) or a dict of named outcomes. Specs name one of the built-in test
problems, a Python function, or a command (a lab script); the function is
imported only when the campaign runs, never while a spec is validated.

Every oracle built from a spec pickles by name, not by value, so that an
executor can send it to a fresh process or to a Dask worker on another
machine: a built-in problem is a module-level dataclass, a Python oracle
travels as its ``module:function`` target and is imported again where it runs,
and a command oracle is its template, timeout and folder.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

# Re-exported: these were defined here, and callers import them from here.
from workbench.command_oracle import (CommandError, CommandOracle, kill_tree, parse_outcomes,
                                      placeholders, plain)
from workbench.errors import OracleError, WorkbenchError

Oracle = Callable[[dict], Any]


def load_python(target: str, base_dir: Path | None = None) -> Oracle:
    """Import ``package.module:function`` or ``path/to/file.py:function``.

    A file path is resolved against ``base_dir`` (the spec's folder) first.
    """
    module_part, _, func_name = target.rpartition(":")
    if module_part.endswith(".py"):
        path = _resolve_file(module_part, base_dir)
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


def find_python(target: str, base_dir: Path | None = None) -> None:
    """Check that a ``module:function`` or ``file.py:function`` target's module exists,
    without importing (so running none of its code); raises OracleError if not."""
    module_part = target.rpartition(":")[0]
    if module_part.endswith(".py"):
        _resolve_file(module_part, base_dir)
        return
    from importlib.machinery import PathFinder

    search = [*([str(base_dir)] if base_dir is not None else []), os.getcwd(), *sys.path]
    found = None
    for part in module_part.split("."):
        found = PathFinder.find_spec(part, search) if found is None or \
            found.submodule_search_locations is None else \
            PathFinder.find_spec(part, list(found.submodule_search_locations))
        if found is None:
            if part == module_part.split(".")[0] and importlib.util.find_spec(part) is not None:
                return  # a built-in or frozen module, or one a meta-path finder provides
            raise OracleError(
                f"oracle.python: module {module_part!r} not found (no {part!r} on the"
                " Python path or beside the spec); expected an importable module or a"
                " path/file.py")


def _resolve_file(module_part: str, base_dir: Path | None) -> Path:
    path = Path(module_part)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if not path.exists():
        raise OracleError(f"oracle.python: file {module_part!r} not found")
    return path.resolve()


class PythonOracle:
    """A ``module:function`` or ``file.py:function`` oracle that pickles by name.

    The function is imported at construction (so a bad target fails before a
    campaign writes anything) and again, lazily, in whichever process
    unpickles the oracle. A file path is made absolute, so a worker with
    another working directory finds it.
    """

    def __init__(self, target: str, base_dir: Path | None = None):
        module_part, _, func_name = target.rpartition(":")
        if module_part.endswith(".py"):
            target = f"{_resolve_file(module_part, base_dir)}:{func_name}"
        self.target = target
        self._fn: Oracle | None = load_python(target)

    def __call__(self, params: dict) -> Any:
        if self._fn is None:
            self._fn = load_python(self.target)
        return self._fn(params)

    def __getstate__(self) -> dict:
        return {"target": self.target, "_fn": None}

    def __repr__(self) -> str:
        return f"PythonOracle({self.target!r})"


def from_spec(oracle_spec, base_dir: Path | None = None) -> Oracle:
    """The callable an ``oracle:`` block describes (picklable, for executors)."""
    if oracle_spec.builtin is not None:
        from workbench import problems

        return problems.get(oracle_spec.builtin)
    if oracle_spec.command is not None:
        return CommandOracle(oracle_spec.command, oracle_spec.timeout, base_dir)
    if getattr(oracle_spec, "simulator", None) is not None:
        return SimulatorOracle(oracle_spec.simulator, oracle_spec.outputs)
    if getattr(oracle_spec, "dataset", None) is not None:
        if oracle_spec.mode == "emulator":
            return EmulatorOracle(oracle_spec.dataset, oracle_spec.objective)
        return LookupOracle(oracle_spec.dataset, oracle_spec.objective)
    return PythonOracle(oracle_spec.python, base_dir)


# -- simulators and shipped datasets ------------------------------------------------

class SimulatorOracle:
    """A built-in simulator (``oracle: {simulator: snar}``), returning chosen outputs.

    outputs: the simulator outputs to return (default: all), so that a
    campaign gets exactly its objectives and outcomes. Pickles by name.
    """

    def __init__(self, name: str, outputs: list[str] | None = None):
        from workbench import simulators

        self.simulator = simulators.get(name)
        known = self.simulator.output_names
        bad = [o for o in outputs or [] if o not in known]
        if bad:
            raise OracleError(f"oracle.outputs: got {bad}; expected outputs of"
                              f" {name!r}: {known}")
        self.name = name
        self.outputs = list(outputs) if outputs else known

    def __call__(self, params: dict) -> dict[str, float]:
        result = self.simulator(params)
        return {k: result[k] for k in self.outputs}

    def __repr__(self) -> str:
        return f"SimulatorOracle({self.name!r}, outputs={self.outputs})"


class ConditionNotInData(WorkbenchError, KeyError):
    """A lookup oracle was asked for conditions its dataset does not contain."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def _dataset_objective(dataset: str, objective: str | None) -> tuple[dict, str]:
    from workbench import datasets

    entry = datasets.info(dataset)
    outcomes = entry["outcomes"]
    objective = objective or outcomes[0]
    if objective not in outcomes:
        raise OracleError(f"oracle.objective: got {objective!r}; expected an outcome of"
                          f" {dataset!r}: {outcomes}")
    return entry, objective


class LookupOracle:
    """The recorded outcome of conditions that exist in a shipped dataset (a pool oracle).

    ``oracle: {dataset: shields_arylation, objective: yield}``. The campaign's
    parameters are the dataset's factors (same names); labels match as text
    and numbers to 1e-9, so a categorical ``"0.1"`` finds concentration 0.1.
    A combination that is not in the data raises ConditionNotInData naming the
    values (the trial is recorded as failed). ``candidates()`` is the table of
    every condition in the data, for candidate pools.
    """

    def __init__(self, dataset: str, objective: str | None = None):
        entry, self.objective = _dataset_objective(dataset, objective)
        self.dataset = dataset
        self.factors: list[str] = list(entry["factors"])
        self.numeric: set[str] = {f for f in self.factors if f in entry.get("units", {})}
        self.unit = entry.get("units", {}).get(self.objective, "")
        self._index: dict | None = None

    def _key(self, values: dict) -> tuple:
        key = []
        for f in self.factors:
            v = plain(values[f])
            if f in self.numeric:
                try:
                    key.append(round(float(v), 9))
                except (TypeError, ValueError):
                    raise ConditionNotInData(f"{self.dataset}: {f}: got {v!r}; expected"
                                             " a number") from None
            else:
                key.append(str(v))
        return tuple(key)

    def _table(self) -> dict:
        if self._index is None:
            from workbench import datasets

            df = datasets.load(self.dataset)
            rows = df[self.factors].to_dict("records")
            self._index = {self._key(r): float(y) for r, y in zip(rows, df[self.objective])}
        return self._index

    def candidates(self):
        """Every condition in the data: a DataFrame of the factor columns, one row each,
        units in ``attrs["units"]``."""
        from workbench import datasets

        df = datasets.load(self.dataset)
        table = df[self.factors].drop_duplicates().reset_index(drop=True)
        table.attrs = {"units": {f: u for f, u in df.attrs["units"].items()
                                 if f in self.factors}, "dataset": self.dataset}
        return table

    def levels(self) -> dict[str, list]:
        """The values each factor takes in the data, sorted."""
        table = self.candidates()
        return {f: sorted(table[f].unique().tolist()) for f in self.factors}

    def __call__(self, params: dict) -> dict[str, float]:
        missing = [f for f in self.factors if f not in params]
        extra = [p for p in params if p not in self.factors]
        if missing or extra:
            raise ConditionNotInData(
                f"{self.dataset}: parameters missing {missing}, unknown {extra}; expected the"
                f" dataset's factors {self.factors}")
        key = self._key(params)
        try:
            return {self.objective: self._table()[key]}
        except KeyError:
            pass
        given = dict(zip(self.factors, key))
        levels = self.levels()
        off = [f"{f}={given[f]!r} (data: {levels[f]})" for f in self.factors
               if given[f] not in {(round(float(v), 9) if f in self.numeric else str(v))
                                   for v in levels[f]}]
        raise ConditionNotInData(
            f"{self.dataset} has no row with {given}; "
            + ("values not in the data: " + "; ".join(off) if off
               else "each value occurs, but not this combination"))

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_index": None}

    def __repr__(self) -> str:
        return f"LookupOracle({self.dataset!r}, objective={self.objective!r})"


# Emulator fitting: hyperparameters on a fixed subsample (fast), then the GP
# conditioned on at most _EMULATOR_ROWS rows (one Cholesky of that size).
_EMULATOR_FIT_ROWS = 256
_EMULATOR_ROWS = 2048
_EMULATOR_VERSION = 1
_EMULATORS: dict[tuple, Any] = {}


def _emulator_cache_dir() -> Path:
    from workbench.resources import cache_root

    return cache_root() / "emulators"


class EmulatorOracle:
    """A GP fitted on a shipped dataset, predicting the outcome anywhere in its range.

    ``oracle: {dataset: shields_arylation, objective: yield, mode: emulator}``.
    Labels are one-hot encoded, numbers used as they are; an exact GP from
    ``surrogates`` (Matern-5/2 ARD) is fitted once per process and its
    hyperparameters cached on disk (``$WORKBENCH_CACHE_DIR/emulators`` or
    ``~/.cache/sciworkbench/emulators``), so a fresh CLI call only conditions.
    Returns the posterior mean, clipped to the range observed in the data.
    Numeric factors may take any value within the data's range (so a
    continuous parameter works); labels must be ones the data contain.
    """

    def __init__(self, dataset: str, objective: str | None = None, seed: int = 0):
        entry, self.objective = _dataset_objective(dataset, objective)
        self.dataset = dataset
        self.seed = seed
        self.factors: list[str] = list(entry["factors"])
        self.numeric: list[str] = [f for f in self.factors if f in entry.get("units", {})]
        self.sha256 = entry["sha256"]

    # encoding -------------------------------------------------------------
    def _levels(self, df) -> dict[str, list[str]]:
        return {f: sorted(df[f].astype(str).unique().tolist())
                for f in self.factors if f not in self.numeric}

    def _encode(self, rows: list[dict], levels: dict, ranges: dict):
        import numpy as np

        X = np.zeros((len(rows), sum(len(v) for v in levels.values()) + len(self.numeric)))
        for i, row in enumerate(rows):
            j = 0
            for f in self.factors:
                v = plain(row[f])
                if f in self.numeric:
                    lo, hi = ranges[f]
                    try:
                        x = float(v)
                    except (TypeError, ValueError):
                        raise ValueError(f"{self.dataset} emulator: {f}: got {v!r};"
                                         " expected a number") from None
                    slack = 1e-9 * max(hi - lo, 1.0)
                    if not lo - slack <= x <= hi + slack:
                        raise ValueError(f"{self.dataset} emulator: {f}: got {x:g}; expected"
                                         f" {lo:g} to {hi:g} (the range of the data)")
                    X[i, j] = x
                    j += 1
                else:
                    labels = levels[f]
                    if str(v) not in labels:
                        raise ValueError(f"{self.dataset} emulator: {f}: got {v!r};"
                                         f" expected one of {labels}")
                    X[i, j + labels.index(str(v))] = 1.0
                    j += len(labels)
        return X

    def _fit(self):
        import jax
        import numpy as np

        from surrogates import (fit_gp, gp_from_hyperparameters, hyperparameters_from_dict,
                                hyperparameters_to_dict)
        from workbench import datasets

        from workbench._jax import configure_jax

        configure_jax()      # a CLI call reuses the compiled fit from the disk cache
        df = datasets.load(self.dataset)
        levels = self._levels(df)
        ranges = {f: (float(df[f].min()), float(df[f].max())) for f in self.numeric}
        X = self._encode(df[self.factors].to_dict("records"), levels, ranges)
        y = df[self.objective].to_numpy(dtype=float)
        bounds = (X.min(axis=0), X.max(axis=0))
        rng = np.random.default_rng(self.seed)
        cache = _emulator_cache_dir() / (f"{self.dataset}-{self.objective}-{self.seed}-"
                                         f"v{_EMULATOR_VERSION}-{self.sha256[:16]}.json")
        theta = None
        if cache.exists():
            try:
                theta = hyperparameters_from_dict(json.loads(cache.read_text()))
            except (OSError, ValueError, KeyError, TypeError):
                theta = None
        fit_rows = rng.permutation(len(y))[:_EMULATOR_FIT_ROWS]
        if theta is None:
            fitted = fit_gp(X[fit_rows], y[fit_rows], key=jax.random.PRNGKey(self.seed),
                            bounds=bounds, restarts=1, max_iter=50)
            theta = fitted.hyperparameters
            with contextlib.suppress(OSError):
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(hyperparameters_to_dict(theta)))
                os.replace(tmp, cache)
        rows = (np.arange(len(y)) if len(y) <= _EMULATOR_ROWS
                else np.sort(rng.permutation(len(y))[:_EMULATOR_ROWS]))
        model = gp_from_hyperparameters(X[rows], y[rows], theta, bounds=bounds)
        return model, levels, ranges, (float(y.min()), float(y.max()))

    def _model(self):
        key = (self.dataset, self.objective, self.seed)
        if key not in _EMULATORS:
            _EMULATORS[key] = self._fit()
        return _EMULATORS[key]

    def predict(self, rows: list[dict]):
        """Posterior mean and standard deviation, (n,) each, at ``rows`` of factor values."""
        import numpy as np

        from surrogates import posterior_moments

        model, levels, ranges, _ = self._model()
        mean, var = posterior_moments(model, self._encode(rows, levels, ranges))
        return np.asarray(mean)[:, 0], np.sqrt(np.asarray(var)[:, 0])

    def __call__(self, params: dict) -> dict[str, float]:
        missing = [f for f in self.factors if f not in params]
        extra = [p for p in params if p not in self.factors]
        if missing or extra:
            raise ValueError(f"{self.dataset} emulator: parameters missing {missing}, unknown"
                             f" {extra}; expected the dataset's factors {self.factors}")
        mean, _ = self.predict([params])
        lo, hi = self._model()[3]
        return {self.objective: float(min(max(mean[0], lo), hi))}

    def __repr__(self) -> str:
        return f"EmulatorOracle({self.dataset!r}, objective={self.objective!r})"


def space_issues(oracle_spec, parameter_names: list[str]) -> list[tuple[tuple, str]]:
    """(path, message) for parameters a simulator or dataset oracle cannot evaluate.

    Metadata only (no model is imported), so spec validation can call it:
    a continuous simulator needs exactly its inputs, a composition simulator
    one composition parameter, a dataset oracle exactly the dataset's factors.
    """
    names = sorted(parameter_names)
    if getattr(oracle_spec, "simulator", None) is not None:
        from workbench import simulators

        sim = simulators.get(oracle_spec.simulator)
        if sim.composition:
            if len(names) != 1:
                return [(("oracle", "simulator"), f"{sim.name!r} evaluates one composition"
                         f" parameter over {list(sim.composition)}; the space has {names}")]
            return []
        if names != sorted(sim.input_names):
            return [(("oracle", "simulator"), f"{sim.name!r} evaluates parameters"
                     f" {sim.input_names}; the space has {names}")]
    if getattr(oracle_spec, "dataset", None) is not None:
        from workbench import datasets

        factors = datasets.info(oracle_spec.dataset)["factors"]
        if names != sorted(factors):
            return [(("oracle", "dataset"), f"{oracle_spec.dataset!r} has the factors"
                     f" {factors}; the space has {names}; expected parameters named"
                     " like the factors")]
    return []
