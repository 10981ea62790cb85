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
    constraints over parameter names (not supported yet: must be empty).
    """

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
        if constraints:
            raise NotSupportedYet(
                f"constraints: got {list(constraints)!r}; linear constraints are not supported"
                " yet (planned with the active-learning engine); expected an empty list"
            )
        self.parameters: tuple = tuple(params)
        self.constraints: tuple[str, ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(repr(p) for p in self.parameters)
        return f"SearchSpace([{inner}])"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.parameters == other.parameters

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
        """The encoded domain for ``active_learning`` (imports JAX lazily)."""
        from active_learning import Domain

        integer, onehot, col = [], [], 0
        for p in self.parameters:
            if isinstance(p, Integer):
                integer.append((col, p.levels))
            elif isinstance(p, Categorical):
                onehot.append(tuple(range(col, col + p.columns)))
            col += p.columns
        return Domain(dim=col, integer=tuple(integer), onehot=tuple(onehot))

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
    """An outcome to minimise or maximise."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    direction: Literal["minimize", "maximize"]
    target: float | None = None
    unit: str | None = None

    def __init__(self, name: Any = None, direction: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("direction", direction)):
            if val is not None:
                kw[key] = val
        super().__init__(**kw)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v in RESERVED_NAMES:
            raise ValueError(f"'{v}' is reserved for campaign metadata; choose another name")
        return v

    @field_validator("target")
    @classmethod
    def _no_target(cls, v: float | None) -> float | None:
        if v is not None:
            raise ValueError(
                "objectives with a target are not supported yet (planned with the"
                " active-learning engine); expected direction minimize or maximize alone"
            )
        return v

    @property
    def sign(self) -> float:
        """+1 to maximise, -1 to minimise: the model maximises sign * value."""
        return 1.0 if self.direction == "maximize" else -1.0
