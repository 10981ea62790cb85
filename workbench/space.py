"""Search spaces in user terms, and their encoding into the unit cube.

Parameters are pydantic models, so the same classes validate Python calls and
YAML specs and every error names its field. Encoding maps user values to
``[0, 1]`` columns (log-scaled where asked, integers on a grid, categories
one-hot) and back; ``active_learning`` only ever sees the encoded side.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.errors import CampaignError, NotSupportedYet

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Names of per-trial metadata in the campaign record; parameters and
# objectives may not take them.
RESERVED_NAMES = frozenset(
    {
        "trial", "objective", "status", "batch", "strategy", "predicted_mean",
        "predicted_std", "acquisition_value", "asked_at", "told_at", "failure_reason",
        "trial_id", "element",
    }
)


class _Parameter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="identifier: letters, digits, _")
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NAMES:
            raise ValueError(f"'{v}' is reserved for campaign metadata; choose another name")
        return v

    @property
    def columns(self) -> int:
        """Number of encoded columns."""
        return 1


def _finite(v: float, what: str) -> float:
    if not math.isfinite(v):
        raise ValueError(f"{what} must be a finite number")
    return v


class Continuous(_Parameter):
    """A real-valued parameter in ``[low, high]``; ``log=True`` searches log-uniformly."""

    type: Literal["continuous"] = "continuous"
    low: float
    high: float
    log: bool = False
    unit: str | None = None

    def __init__(self, name: Any = None, low: Any = None, high: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("low", low), ("high", high)):
            if val is not None:
                kw[key] = val
        super().__init__(**kw)

    @model_validator(mode="after")
    def _check(self) -> "Continuous":
        _finite(self.low, "low")
        _finite(self.high, "high")
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log=True needs low > 0; got low={self.low}")
        return self

    def encode(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return ((np.log(v) - lo) / (hi - lo))[:, None]
        return ((v - self.low) / (self.high - self.low))[:, None]

    def decode(self, Z: np.ndarray) -> np.ndarray:
        z = np.clip(np.asarray(Z, dtype=np.float64)[:, 0], 0.0, 1.0)
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            out = np.exp(lo + z * (hi - lo))
        else:
            out = self.low + z * (self.high - self.low)
        # Round-off must not step outside the bounds the user gave.
        return np.clip(out, self.low, self.high)

    def validate_value(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise CampaignError(f"parameter '{self.name}': got {value!r}; expected a number")
        v = float(value)
        if not (self.low <= v <= self.high):
            raise CampaignError(
                f"parameter '{self.name}': got {v}; expected a value in [{self.low}, {self.high}]"
            )
        return v


class Integer(_Parameter):
    """An integer parameter in ``[low, high]`` (both included)."""

    type: Literal["integer"] = "integer"
    low: int
    high: int
    unit: str | None = None

    def __init__(self, name: Any = None, low: Any = None, high: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("low", low), ("high", high)):
            if val is not None:
                kw[key] = val
        super().__init__(**kw)

    @model_validator(mode="after")
    def _check(self) -> "Integer":
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    @property
    def levels(self) -> int:
        return self.high - self.low + 1

    def encode(self, values: np.ndarray) -> np.ndarray:
        v = np.asarray(values, dtype=np.float64)
        return ((v - self.low) / (self.high - self.low))[:, None]

    def decode(self, Z: np.ndarray) -> np.ndarray:
        z = np.clip(np.asarray(Z, dtype=np.float64)[:, 0], 0.0, 1.0)
        return np.rint(self.low + z * (self.high - self.low)).astype(np.int64)

    def validate_value(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise CampaignError(f"parameter '{self.name}': got {value!r}; expected an integer")
        if float(value) != int(value):
            raise CampaignError(f"parameter '{self.name}': got {value!r}; expected an integer")
        v = int(value)
        if not (self.low <= v <= self.high):
            raise CampaignError(
                f"parameter '{self.name}': got {v}; expected an integer in [{self.low}, {self.high}]"
            )
        return v


class Categorical(_Parameter):
    """One of a list of labels, encoded one-hot."""

    type: Literal["categorical"] = "categorical"
    choices: list[str] = Field(min_length=2)

    def __init__(self, name: Any = None, choices: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("choices", choices)):
            if val is not None:
                kw[key] = val
        super().__init__(**kw)

    @field_validator("choices", mode="before")
    @classmethod
    def _labels(cls, v: Any) -> Any:
        # YAML reads `choices: [1, 2]` as numbers; labels are strings.
        if isinstance(v, (list, tuple)):
            return [str(c) if isinstance(c, (int, float)) and not isinstance(c, bool) else c
                    for c in v]
        return v

    @field_validator("choices")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dup = sorted({c for c in v if v.count(c) > 1})
        if dup:
            raise ValueError(f"choices must be unique; repeated: {dup}")
        return v

    @property
    def columns(self) -> int:
        return len(self.choices)

    def encode(self, values: np.ndarray) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.choices)}
        out = np.zeros((len(values), len(self.choices)))
        for row, v in enumerate(values):
            out[row, index[str(v)]] = 1.0
        return out

    def decode(self, Z: np.ndarray) -> np.ndarray:
        idx = np.argmax(np.asarray(Z), axis=1)
        return np.asarray([self.choices[i] for i in idx], dtype=object)

    def validate_value(self, value: Any) -> str:
        label = str(value) if isinstance(value, (int, float, np.number)) else value
        if not isinstance(label, str) or label not in self.choices:
            raise CampaignError(
                f"parameter '{self.name}': got {value!r}; expected one of {self.choices}"
            )
        return label


class Composition(_Parameter):
    """Atomic fractions of ``elements`` summing to one (not supported yet)."""

    type: Literal["composition"] = "composition"
    elements: list[str] = Field(default_factory=list)

    def __init__(self, name: Any = None, elements: Any = None, /, **kw: Any):
        raise NotSupportedYet(
            "composition parameters are not supported yet: they need simplex-constrained "
            "optimisation, planned with the materials domain"
        )

    @model_validator(mode="before")
    @classmethod
    def _reject(cls, data: Any) -> Any:
        raise ValueError(
            "composition parameters are not supported yet (planned with the materials domain);"
            " expected type continuous, integer or categorical"
        )


Parameter = Annotated[
    Union[Continuous, Integer, Categorical, Composition], Field(discriminator="type")
]


class SearchSpace:
    """An ordered set of named parameters and the encoding into ``[0, 1]^D``.

    parameters: Continuous / Integer / Categorical; constraints: linear
    constraints over the names of continuous (not log-scaled) and integer
    parameters, as text: ``"water + ethanol <= 0.8"``, ``"a - 2*b >= 0"``,
    ``"x1 + x2 + x3 == 1"``. Every proposal satisfies them to 1e-9.
    """

    def _parse_constraint(self, i: int, text: Any):
        from workbench.constraints import parse_linear_constraint

        try:
            c = parse_linear_constraint(text, self.names)
        except ValueError as e:
            raise CampaignError(f"constraints[{i}]: {e}") from None
        for name, _ in c.coefficients:
            p = self[name]
            if isinstance(p, Categorical) or getattr(p, "log", False):
                kind = "categorical" if isinstance(p, Categorical) else "log-scaled"
                raise CampaignError(
                    f"constraints[{i}]: got {text!r}; {name!r} is {kind}, where a linear"
                    " constraint is not linear in the encoding; expected continuous"
                    " (log: false) or integer parameters")
        return c

    def _encoded_row(self, coefficients: dict[str, float], rhs: float):
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
        """Which parameter dicts satisfy every linear constraint (in user units)."""
        ok = np.ones(len(rows), bool)
        for c in self._linear:
            lhs = np.asarray([sum(a * float(r[n]) for n, a in c.coefficients) for r in rows])
            scale = max(1.0, abs(c.rhs))
            if c.op == "<=":
                ok &= lhs <= c.rhs + tol * scale
            elif c.op == ">=":
                ok &= lhs >= c.rhs - tol * scale
            else:
                ok &= np.abs(lhs - c.rhs) <= tol * scale
        return ok

    def __init__(self, parameters: list, constraints: list[str] | tuple = ()):
        params = list(parameters)
        if not params:
            raise CampaignError("space: expected at least one parameter")
        for i, p in enumerate(params):
            if not isinstance(p, (Continuous, Integer, Categorical)):
                raise CampaignError(
                    f"space[{i}]: got {p!r}; expected wb.Continuous, wb.Integer or wb.Categorical"
                )
        names = [p.name for p in params]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise CampaignError(f"space: parameter names must be unique; repeated: {dup}")
        self.parameters: tuple = tuple(params)
        self.constraints: tuple[str, ...] = tuple(constraints)
        self._linear = [self._parse_constraint(i, text) for i, text in enumerate(constraints)]

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.parameters)
        return f"SearchSpace([{inner}])"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SearchSpace) and self.parameters == other.parameters
                and self.constraints == other.constraints)

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
        from active_learning import Domain

        integer, onehot, col = [], [], 0
        for p in self.parameters:
            if isinstance(p, Integer):
                integer.append((col, p.levels))
            elif isinstance(p, Categorical):
                onehot.append(tuple(range(col, col + p.columns)))
            col += p.columns
        eq, ub = [], []
        for c in self._linear:
            if c.op == "==":
                eq.append(self._encoded_row(dict(c.coefficients), c.rhs))
            else:
                for coeffs, rhs in c.as_le_rows():
                    ub.append(self._encoded_row(coeffs, rhs))
        try:
            self._domain = Domain(dim=col, integer=tuple(integer), onehot=tuple(onehot),
                                  equalities=tuple(eq), inequalities=tuple(ub))
            return self._domain
        except ValueError as e:
            raise CampaignError(f"constraints: {list(self.constraints)!r} leave no valid point"
                                f" ({e}); expected constraints a point can satisfy") from None

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
        cols = [p.encode(np.asarray([r[p.name] for r in rows], dtype=object
                                    if isinstance(p, Categorical) else None))
                for p in self.parameters]
        return np.concatenate(cols, axis=1)

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
