"""Search spaces in user terms, and their encoding into the unit cube.

Parameters are pydantic models, so the same classes validate Python calls and
YAML specs and every error names its field. Encoding maps user values to
``[0, 1]`` columns (log-scaled where asked, integers on a grid, categories
one-hot) and back; ``active_learning`` only ever sees the encoded side.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.errors import CampaignError
# Re-exported: the parameter types were defined here, and callers import them from here.
from workbench.parameters import (ELEMENT_FEATURES, ELEMENTS, MAX_CATEGORICAL_LEVELS,
                                  MAX_PARAMETERS, NAME_PATTERN, PROPOSED_PREFIX, RESERVED_NAMES,
                                  Categorical, Composition, Continuous, Integer, Parameter,
                                  repeated)

# Rounding proposals to a lab's precision tries every floor/ceil combination of the
# rounded parameters when the nearest one breaks a linear constraint: 2^k rows.
MAX_ROUNDING_SEARCH = 10


class SearchSpace:
    """An ordered set of named parameters and the encoding into ``[0, 1]^D``.

    parameters: Continuous / Integer / Categorical / Composition; constraints,
    each one of:

    - linear text over the names of continuous (not log-scaled) and integer
      parameters: ``"water + ethanol <= 0.8"``, ``"a - 2*b >= 0"``,
      ``"x1 + x2 + x3 == 1"``;
    - nonlinear text over continuous and integer parameters (``<=`` or ``>=``):
      ``"x1**2 + x2**2 <= 1"``, ``"temperature * residence_time <= 5000"``, with
      ``+ - * /``, ``**`` by a number and ``exp``, ``log``, ``sqrt``;
    - ``NChooseK(names, max_count=, min_count=)``: how many of these parameters
      (continuous or integer with low 0) are nonzero (a composition limits its own
      elements with its ``max_count`` / ``min_count`` fields);
    - a Python function ``g(params) -> array`` meaning ``g(params) <= 0``, given
      a dict of the continuous and integer parameters in user units as JAX
      arrays, and written with ``jax.numpy`` so that it can be differentiated.

    Every design point and proposal satisfies them: linear and nonlinear ones to
    1e-9 (relative to the bound), cardinality exactly.
    """

    def _parse_constraint(self, i: int, text: Any):
        from workbench.constraints import LinearConstraint, parse_constraint

        try:
            c = parse_constraint(text, self.names)
        except ValueError as e:
            raise CampaignError(f"constraints[{i}]: {e}") from None
        names = [n for n, _ in c.coefficients] if isinstance(c, LinearConstraint) else c.names
        for name in names:
            p = self[name]
            linear = isinstance(c, LinearConstraint)
            if isinstance(p, (Categorical, Composition)) or (linear and getattr(p, "log", False)):
                kind = ("categorical" if isinstance(p, Categorical) else "a composition"
                        if isinstance(p, Composition) else "log-scaled")
                raise CampaignError(
                    f"constraints[{i}]: got {text!r}; {name!r} is {kind}, where a"
                    f" {'linear' if linear else 'nonlinear'} constraint has no numeric value"
                    f"{' linear in the encoding' if kind == 'log-scaled' else ''}; expected"
                    f" continuous{' (log: false)' if linear else ''} or integer parameters")
        return c

    def _parse_nchoosek(self, i: int, c: Any):
        from workbench.constraints import NChooseK

        unknown = [n for n in c.parameters if n not in self.names]
        if unknown:
            raise CampaignError(f"constraints[{i}].nchoosek.parameters: got {unknown}, which"
                                f" name no parameter; expected names from {self.names}")
        for name in c.parameters:
            p = self[name]
            if not isinstance(p, (Continuous, Integer)) or p.low != 0:
                what = (f"{p.type} parameter" if not isinstance(p, (Continuous, Integer))
                        else f"{p.type} parameter with low {p.low}")
                raise CampaignError(
                    f"constraints[{i}].nchoosek.parameters: got {name!r}, a {what}; expected"
                    " continuous or integer parameters with low 0 (absent means 0)")
        if c.max_count > len(c.parameters):
            c = NChooseK(list(c.parameters), max_count=len(c.parameters),
                         min_count=c.min_count)
        return c

    def _add_constraint(self, i: int, entry: Any) -> None:
        from workbench.constraints import (FunctionConstraint, NChooseK, NChooseKSpec,
                                           NonlinearConstraint)

        if isinstance(entry, dict) and ("nchoosek" in entry or "function" in entry):
            try:
                entry = (NChooseKSpec if "nchoosek" in entry else FunctionConstraint)(**entry)
            except Exception as e:  # pydantic's ValidationError, shown by its first line
                msg = str(e).splitlines()
                raise CampaignError(f"constraints[{i}]: got {entry!r}; {' '.join(msg[1:3])}"
                                    ) from None
        if isinstance(entry, NChooseKSpec):
            entry = entry.nchoosek
        if isinstance(entry, NChooseK):
            c = self._parse_nchoosek(i, entry)
            for other in self.cardinality_constraints:
                shared = sorted(set(other.parameters) & set(c.parameters))
                if shared:
                    raise CampaignError(f"constraints[{i}].nchoosek.parameters: {shared} are"
                                        " in another NChooseK constraint too; expected each"
                                        " parameter in at most one")
            self.cardinality_constraints.append(c)
        elif isinstance(entry, str):
            c = self._parse_constraint(i, entry)
            (self.nonlinear_constraints if isinstance(c, NonlinearConstraint)
             else self.linear_constraints).append(c)
        elif isinstance(entry, FunctionConstraint) or callable(entry):
            ref = entry if isinstance(entry, FunctionConstraint) else FunctionConstraint.of(entry)
            self.nonlinear_constraints.append(PythonConstraint(ref, tuple(self._numeric)))
        else:
            raise CampaignError(
                f"constraints[{i}]: got {entry!r}; expected text such as 'a + b <= 1' or"
                " 'a**2 + b**2 <= 1', wb.NChooseK([...], max_count=k) ({nchoosek: {...}} in"
                " YAML), or a Python function g(params) meaning g(params) <= 0")

    def encoded_row(self, coefficients: dict[str, float], rhs: float):
        """``a @ x (op) rhs`` in user units -> the same in encoded columns."""
        row = np.zeros(self.dim)
        col = 0
        for p in self.parameters:
            if p.name in coefficients:
                a = coefficients[p.name]
                # x = low + (high - low) * z for continuous and integer columns.
                row[col] = a * (p.high - p.low)
                rhs -= a * p.low
            col += p.columns
        return tuple(row.tolist()), float(rhs)

    def feasible(self, rows: list[dict], tol: float = 1e-9) -> np.ndarray:
        """Which parameter dicts satisfy every constraint (in user units): linear and
        nonlinear ones to ``tol`` relative to their bound, cardinality exactly."""
        ok = np.ones(len(rows), bool)
        if not rows:
            return ok
        for c in self.linear_constraints:
            lhs = np.asarray([sum(a * float(r[n]) for n, a in c.coefficients) for r in rows])
            scale = max(1.0, abs(c.rhs))
            if c.op == "<=":
                ok &= lhs <= c.rhs + tol * scale
            elif c.op == ">=":
                ok &= lhs >= c.rhs - tol * scale
            else:
                ok &= np.abs(lhs - c.rhs) <= tol * scale
        for c in self.nonlinear_constraints:
            values = {n: np.asarray([float(r[n]) for r in rows]) for n in c.names}
            with np.errstate(all="ignore"):
                ok &= np.asarray(c.g(values), float) <= tol  # NaN is infeasible
        for c in self.cardinality_constraints:
            n = np.asarray(c.count(rows))
            ok &= (n >= c.min_count) & (n <= c.max_count)
        for p in self.parameters:
            if isinstance(p, Composition) and p.counted:
                n = p.count([r[p.name] for r in rows])
                ok &= (n >= p.min_count) & (n <= (p.max_count or len(p.elements)))
        return ok

    @property
    def _numeric(self) -> list[str]:
        return [p.name for p in self.parameters if isinstance(p, (Continuous, Integer))]

    def __init__(self, parameters: list, constraints: list | tuple = ()):
        params = list(parameters)
        if not params:
            raise CampaignError("space: expected at least one parameter")
        for i, p in enumerate(params):
            if not isinstance(p, (Continuous, Integer, Categorical, Composition)):
                raise CampaignError(
                    f"space[{i}]: got {p!r}; expected wb.Continuous, wb.Integer,"
                    " wb.Categorical or wb.Composition"
                )
        if len(params) > MAX_PARAMETERS:
            raise CampaignError(f"space: got {len(params)} parameters; expected at most"
                                f" {MAX_PARAMETERS}")
        names = [p.name for p in params]
        dup = repeated(names)
        if dup:
            raise CampaignError(f"space: parameter names must be unique; repeated: {dup[:10]}")
        clash = [n for n in names if n.startswith(PROPOSED_PREFIX)
                 and n[len(PROPOSED_PREFIX):] in names]
        if clash:
            raise CampaignError(f"space: parameter names {clash[:10]} clash with the record's"
                                f" {PROPOSED_PREFIX}<name> variables; expected other names")
        self.parameters: tuple = tuple(params)
        if isinstance(constraints, str) or not isinstance(constraints, (list, tuple)):
            raise CampaignError(f"constraints: got {constraints!r}; expected a list")
        self.constraints: tuple = tuple(constraints)
        self.linear_constraints: list = []
        self.nonlinear_constraints: list = []
        self.cardinality_constraints: list = []
        for i, entry in enumerate(self.constraints):
            self._add_constraint(i, entry)

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.parameters)
        return f"SearchSpace([{inner}])"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SearchSpace) and self.parameters == other.parameters
                and _keys(self.constraints) == _keys(other.constraints))

    def __getitem__(self, name: str):
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def dim(self) -> int:
        """Number of encoded columns."""
        return sum(p.columns for p in self.parameters)

    def domain(self):
        """The encoded domain for ``active_learning`` (imports JAX lazily; built once)."""
        if getattr(self, "_domain", None) is not None:
            return self._domain
        from active_learning import Cardinality, Domain

        integer, onehot, col = [], [], 0
        for p in self.parameters:
            if isinstance(p, Integer):
                integer.append((col, p.levels))
            elif isinstance(p, Categorical):
                onehot.append(tuple(range(col, col + p.columns)))
            col += p.columns
        eq, ub = [], []
        col = 0
        for p in self.parameters:
            if isinstance(p, Composition):
                # sum(low + (high - low) z) == 1 over the element columns.
                row = np.zeros(self.dim)
                span = np.asarray(p.highs) - np.asarray(p.lows)
                row[col:col + p.columns] = span
                eq.append((tuple(row.tolist()), 1.0 - float(sum(p.lows))))
            col += p.columns
        for c in self.linear_constraints:
            if c.op == "==":
                eq.append(self.encoded_row(dict(c.coefficients), c.rhs))
            else:
                for coeffs, rhs in c.as_le_rows():
                    ub.append(self.encoded_row(coeffs, rhs))
        columns = self.columns
        cardinality = [Cardinality(tuple(columns[n][0] for n in c.parameters), c.min_count,
                                   c.max_count) for c in self.cardinality_constraints]
        cardinality += [c for p in self.parameters if isinstance(p, Composition)
                        for c in [_element_cardinality(p, columns[p.name])] if c is not None]
        # Built once per space: the functions are part of compiled programs' keys.
        nonlinear = tuple(_encoded(c, {n: (columns[n][0], self[n]) for n in c.names})
                          for c in self.nonlinear_constraints)
        try:
            self._domain = Domain(dim=col, integer=tuple(integer), onehot=tuple(onehot),
                                  equalities=tuple(eq), inequalities=tuple(ub),
                                  nonlinear=nonlinear, cardinality=tuple(cardinality))
            return self._domain
        except ValueError as e:
            raise CampaignError(f"constraints: {list(self.constraints)!r} leave no valid point"
                                f" ({e}); expected constraints a point can satisfy") from None

    @property
    def columns(self) -> dict[str, tuple[int, ...]]:
        """Each parameter's encoded columns."""
        out, col = {}, 0
        for p in self.parameters:
            out[p.name] = tuple(range(col, col + p.columns))
            col += p.columns
        return out

    @property
    def flat_names(self) -> list[str]:
        """Column names in tables and CSV files: compositions as ``name.Element``."""
        out: list[str] = []
        for p in self.parameters:
            out += p.column_names() if isinstance(p, Composition) else [p.name]
        return out

    def flat_units(self) -> dict[str, str | None]:
        """Unit of each table / CSV column (``flat_names``)."""
        out: dict[str, str | None] = {}
        for p in self.parameters:
            for n in (p.column_names() if isinstance(p, Composition) else [p.name]):
                out[n] = getattr(p, "unit", None)
        return out

    def flatten(self, params: dict) -> dict:
        """A parameter dict with compositions spread over ``name.Element`` keys."""
        out = {}
        for p in self.parameters:
            v = params[p.name]
            if isinstance(p, Composition):
                out.update({f"{p.name}.{e}": v.get(e, 0.0) for e in p.elements})
            else:
                out[p.name] = v
        return out

    def unflatten(self, row: dict) -> dict:
        """The inverse of ``flatten`` (keys of other columns are ignored)."""
        out = {}
        for p in self.parameters:
            if isinstance(p, Composition):
                out[p.name] = {e: row[f"{p.name}.{e}"] for e in p.elements}
            else:
                out[p.name] = row[p.name]
        return out

    def validate(self, params: dict) -> dict:
        """Check a user-supplied parameter dict; returns it with canonical types."""
        missing = [n for n in self.names if n not in params]
        extra = [k for k in params if k not in self.names]
        if missing or extra:
            raise CampaignError(
                f"parameters: missing {missing}, unknown {extra}; expected exactly {self.names}"
            )
        return {p.name: p.validate_value(params[p.name]) for p in self.parameters}

    def encode(self, rows: list[dict]) -> np.ndarray:
        """User-unit parameter dicts -> (n, D) encoded points."""
        if not rows:
            return np.zeros((0, self.dim))
        cols = [p.encode([r[p.name] for r in rows]) if isinstance(p, Composition) else
                p.encode(np.asarray([r[p.name] for r in rows], dtype=object
                                    if isinstance(p, Categorical) else None))
                for p in self.parameters]
        return np.concatenate(cols, axis=1)

    def settable(self, rows: list[dict]) -> list[dict]:
        """Proposals rounded to each continuous parameter's ``precision``, so that a lab
        can set them as proposed. The nearest grid point is taken where it satisfies the
        linear constraints; else the nearest feasible combination of rounding down and
        up (at most ``MAX_ROUNDING_SEARCH`` parameters); a row with no feasible rounding
        keeps its exact values."""
        stepped = [p for p in self.parameters
                   if isinstance(p, Continuous) and p.precision is not None]
        if not stepped:
            return rows
        out = []
        for row in rows:
            nearest = {**row, **{p.name: p.settable(row[p.name]) for p in stepped}}
            if self.feasible([nearest])[0] or not self.feasible([row])[0]:
                out.append(nearest)
                continue
            out.append(self._feasible_rounding(row, stepped))
        return out

    def _feasible_rounding(self, row: dict, stepped: list) -> dict:
        """The feasible floor/ceil combination nearest to ``row`` (scaled by each
        parameter's range), or ``row`` itself when there is none."""
        import itertools

        if len(stepped) > MAX_ROUNDING_SEARCH:
            return row
        best, best_d = row, math.inf
        for dirs in itertools.product((-1, 1), repeat=len(stepped)):
            cand = {**row, **{p.name: p.settable(row[p.name], d) for p, d in zip(stepped, dirs)}}
            if self.feasible([cand])[0]:
                d = sum(((cand[p.name] - row[p.name]) / (p.high - p.low)) ** 2 for p in stepped)
                if d < best_d:
                    best, best_d = cand, d
        return best

    def decode(self, Z: np.ndarray) -> list[dict]:
        """(n, D) encoded points -> parameter dicts in user units, with Python scalars."""
        Z = np.atleast_2d(np.asarray(Z, dtype=np.float64))
        out_cols, col = {}, 0
        for p in self.parameters:
            out_cols[p.name] = p.decode(Z[:, col:col + p.columns])
            col += p.columns
        return [
            {name: vals[i].item() if hasattr(vals[i], "item") else vals[i]
             for name, vals in out_cols.items()}
            for i in range(Z.shape[0])
        ]


class PythonConstraint:
    """A Python function constraint over a space: ``g(params) <= 0``, with params the
    continuous and integer parameters in user units (JAX arrays). The function is
    resolved (imported, for a reference read from a file) when first evaluated."""

    def __init__(self, ref: Any, names: tuple[str, ...]):
        self.ref = ref
        self.names = names
        self.text = ref.function

    def g(self, values: dict, xp: Any = None) -> Any:
        import jax.numpy as jnp

        from workbench._jax import configure_jax

        configure_jax()
        try:
            fn = self.ref.resolve()
        except ValueError as e:
            raise CampaignError(f"constraints: {e}") from None
        out = fn({k: jnp.asarray(v) for k, v in values.items()})
        if xp is None:
            return np.asarray(out, float)
        return out


def _decode_jax(p: Any, z: Any) -> Any:
    """A continuous or integer column's user value from its encoded one, in JAX (no
    clipping or rounding: the optimiser differentiates through it)."""
    import jax.numpy as jnp

    if getattr(p, "log", False):
        lo, hi = math.log(p.low), math.log(p.high)
        return jnp.exp(lo + z * (hi - lo))
    return p.low + z * (p.high - p.low)


def _encoded(c: Any, columns: dict[str, tuple[int, Any]]):
    """A nonlinear constraint as a function of encoded points (..., D) -> (...)."""
    import jax.numpy as jnp

    def g(X):
        values = {n: _decode_jax(p, X[..., j]) for n, (j, p) in columns.items()}
        return jnp.asarray(c.g(values, jnp), X.dtype)

    return g


def _element_cardinality(p: Composition, columns: tuple[int, ...]):
    """A composition's max_count / min_count as an ``active_learning.Cardinality`` over
    the columns of its elements with lower bound 0 (encoded 0 is fraction 0); the
    always-present elements take their share of the counts. None when nothing is limited."""
    from active_learning import Cardinality

    if not p.counted:
        return None
    free = tuple(j for j, lo in zip(columns, p.lows) if lo == 0.0)
    forced = len(columns) - len(free)
    top = (len(p.elements) if p.max_count is None else p.max_count) - forced
    low = max(p.min_count - forced, 0)
    if top >= len(free) and low == 0:
        return None
    return Cardinality(free, low, top)


def _keys(constraints: tuple) -> list:
    """Constraint entries as comparable values (text, NChooseK fields, function refs)."""
    from workbench.constraints import FunctionConstraint, NChooseK, NChooseKSpec

    out = []
    for e in constraints:
        if isinstance(e, NChooseKSpec):
            e = e.nchoosek
        if isinstance(e, dict) and "nchoosek" in e:
            e = NChooseK(**e["nchoosek"])
        if isinstance(e, NChooseK):
            out.append(("nchoosek", tuple(e.parameters), e.max_count, e.min_count))
        elif isinstance(e, FunctionConstraint) or (callable(e) and not isinstance(e, str)):
            ref = e if isinstance(e, FunctionConstraint) else FunctionConstraint.of(e)
            out.append(("function", ref.function))
        else:
            out.append(e)
    return out


class Objective(BaseModel):
    """An outcome to minimise, maximise, or bring as close as possible to ``target``.

    ``Objective("viscosity", target=2.0)`` (direction "target" is implied)
    is optimised as -(viscosity - 2.0)^2.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    direction: Literal["minimize", "maximize", "target"]
    target: float | None = None
    unit: str | None = None

    def __init__(self, name: Any = None, direction: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("direction", direction)):
            if val is not None:
                kw[key] = val
        if kw.get("target") is not None and kw.get("direction") is None:
            kw["direction"] = "target"
        super().__init__(**kw)

    @model_validator(mode="before")
    @classmethod
    def _target_direction(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("target") is not None \
                and data.get("direction") is None:
            data = dict(data, direction="target")
        return data

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NAMES:
            raise ValueError(f"'{v}' is reserved for campaign metadata; choose another name")
        return v

    @model_validator(mode="after")
    def _check_target(self) -> "Objective":
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"target: got {self.target}; expected a finite number")
        if (self.direction == "target") != (self.target is not None):
            raise ValueError(
                f"direction: got {self.direction!r} with target {self.target!r}; expected"
                " direction 'target' (or none) together with a target value, or minimize /"
                " maximize without one")
        return self

    def score(self, value: float) -> float:
        """The value as the engine maximises it: sign * value, or -(value - target)^2."""
        if self.target is not None:
            return -((float(value) - self.target) ** 2)
        return self.sign * float(value)

    @property
    def sign(self) -> float:
        """+1 to maximise, -1 to minimise: the model maximises sign * value."""
        return -1.0 if self.direction == "minimize" else 1.0
