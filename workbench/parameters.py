"""Parameter types of a search space, in user terms, and their encoding into ``[0, 1]``.

Parameters are pydantic models, so the same classes validate Python calls and
YAML specs and every error names its field. Each maps its user values to
``[0, 1]`` columns (log-scaled where asked, integers on a grid, categories
one-hot) and back; ``workbench.space.SearchSpace`` orders them.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workbench.errors import CampaignError

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# Limits that keep every check linear and honest: a Gaussian process over more inputs
# than this learns nothing from a campaign's few hundred experiments, and each level
# of a categorical is one input.
MAX_PARAMETERS = 1_000
MAX_CATEGORICAL_LEVELS = 10_000
# The record's variable of what was proposed for a parameter whose actual setpoints differ.
PROPOSED_PREFIX = "proposed_"


def repeated(values: list) -> list:
    """The values that occur more than once, sorted (linear in len(values))."""
    seen: set = set()
    return sorted({v for v in values if v in seen or seen.add(v)})
# Names of per-trial metadata in the campaign record; parameters and
# objectives may not take them.
RESERVED_NAMES = frozenset(
    {
        "trial", "objective", "status", "batch", "strategy", "predicted_mean",
        "predicted_std", "acquisition_value", "asked_at", "told_at", "failure_reason",
        "trial_id", "element", "campaign", "campaign_id",
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
    # The step a lab can set (0.5 for a thermostat in half degrees): proposals come out
    # as multiples of it, and a tell may report any value within half a step of one.
    precision: float | None = Field(default=None, gt=0)

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
        if self.precision is not None and not self.precision <= self.high - self.low:
            raise ValueError(f"precision ({self.precision}) must not exceed high - low"
                             f" ({self.high - self.low})")
        return self

    def settable(self, value: float, direction: int = 0) -> float:
        """``value`` on the grid of multiples of ``precision`` (nearest, or the one
        below / above for direction -1 / +1), kept inside the bounds; unchanged
        without a precision."""
        if self.precision is None:
            return float(value)
        step = {0: round, -1: math.floor, 1: math.ceil}[direction]
        k = step(value / self.precision)
        # Twelve significant digits drop the binary noise of k * precision (0.30000000000000004).
        grid = float(f"{k * self.precision:.12g}")
        return min(max(grid, self.low), self.high)

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
    unit: str | None = Field(default=None, description="unit of numeric levels, e.g. mol/L")
    encoding: Literal["onehot", "descriptors", "fingerprint"] = Field(
        default="onehot", description="what the surrogate sees: the one-hot choice, or RDKit"
        " molecular descriptors / Morgan fingerprints of each choice's SMILES")
    smiles: dict[str, str] | None = Field(default=None, description="choice -> SMILES")

    @model_validator(mode="after")
    def _smiles_for_encoding(self) -> "Categorical":
        if self.encoding != "onehot":
            missing = [c for c in self.choices if not (self.smiles or {}).get(c)]
            if missing:
                raise ValueError(f"smiles: no SMILES for {missing}; expected one per choice"
                                 f" with encoding {self.encoding!r}")
        if self.smiles:
            extra = [k for k in self.smiles if k not in self.choices]
            if extra:
                raise ValueError(f"smiles: got {extra}, which are not choices {self.choices}")
        return self

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
        if len(v) > MAX_CATEGORICAL_LEVELS:
            raise ValueError(f"got {len(v)} choices; expected at most {MAX_CATEGORICAL_LEVELS}"
                             " (a categorical's levels are one model input each)")
        dup = repeated(v)
        if dup:
            raise ValueError(f"choices must be unique; repeated: {dup[:10]}")
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


ELEMENTS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se"
    " Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb"
    " Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm"
    " Bk Cf Es Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og").split()

#: Element properties a composition can expose to the surrogate (pymatgen names).
ELEMENT_FEATURES = ("X", "atomic_radius", "atomic_mass", "row", "group",
                    "melting_point", "mendeleev_no")


class Composition(_Parameter):
    """Atomic fractions of ``elements`` that sum to one (an alloy, a mixture).

    bounds: per-element ``[low, high]`` fractions (default [0, 1]); resolution:
    fractions are multiples of it (e.g. 0.05); features: element properties
    (fraction-weighted mean and spread, from pymatgen's periodic table) that
    the surrogate sees besides the fractions, so that it can generalise across
    elements. max_count / min_count: at most / at least this many elements
    present (nonzero) in any one composition, "at most 3 of these 8 elements";
    an element whose lower bound is above 0 is always present and counts.
    Values are dicts ``{"Cu": 0.5, "Ni": 0.5}`` (or pymatgen ``Composition``);
    in CSV files one column per element, ``alloy.Cu``.
    """

    type: Literal["composition"] = "composition"
    elements: list[str] = Field(min_length=2, max_length=64)
    bounds: dict[str, tuple[float, float]] = Field(default_factory=dict)
    resolution: float | None = Field(default=None, gt=0, le=0.5)
    features: list[str] = Field(default_factory=list)
    unit: str | None = "at. frac."
    max_count: int | None = Field(default=None, description="at most this many elements"
                                  " present (nonzero); none: no limit")
    min_count: int = Field(default=0, description="at least this many elements present")

    def __init__(self, name: Any = None, elements: Any = None, /, **kw: Any):
        for key, val in (("name", name), ("elements", elements)):
            if val is not None:
                kw[key] = val
        super().__init__(**kw)

    @model_validator(mode="after")
    def _check(self) -> "Composition":
        unknown = [e for e in self.elements if e not in ELEMENTS]
        if unknown:
            raise ValueError(f"elements: got {unknown}, which are not element symbols;"
                             " expected symbols such as 'Cu', 'Ni'")
        dup = repeated(list(self.elements))
        if dup:
            raise ValueError(f"elements: got {dup} more than once; expected each element once")
        extra = [e for e in self.bounds if e not in self.elements]
        if extra:
            raise ValueError(f"bounds: got {extra}, which are not among the elements"
                             f" {self.elements}")
        for e, (lo, hi) in self.bounds.items():
            if not (0.0 <= lo < hi <= 1.0):
                raise ValueError(f"bounds.{e}: got [{lo}, {hi}]; expected 0 <= low < high <= 1")
        lows, highs = self.lows, self.highs
        if sum(lows) > 1.0 + 1e-12 or sum(highs) < 1.0 - 1e-12:
            raise ValueError(f"bounds: lows sum to {sum(lows):g} and highs to {sum(highs):g};"
                             " expected bounds that can sum to one (lows <= 1 <= highs)")
        if self.resolution is not None and abs(round(1 / self.resolution)
                                               - 1 / self.resolution) > 1e-9:
            raise ValueError(f"resolution: got {self.resolution}; expected 1/k, e.g. 0.05")
        bad = [f for f in self.features if f not in ELEMENT_FEATURES]
        if bad:
            raise ValueError(f"features: got {bad}; expected some of {list(ELEMENT_FEATURES)}")
        self._check_counts()
        return self

    def _check_counts(self) -> None:
        """max_count / min_count: in range, and met by some fractions within the bounds."""
        n = len(self.elements)
        top, low = self.max_count, self.min_count
        if top is not None and not 1 <= top <= n:
            raise ValueError(f"max_count: got {top}; expected 1 to the number of elements"
                             f" ({n})")
        if low < 0 or low > n:
            raise ValueError(f"min_count: got {low}; expected 0 to the number of elements ({n})")
        if top is not None and low > top:
            raise ValueError(f"min_count: got {low} with max_count {top}; expected min_count"
                             " <= max_count")
        if top is not None and len(self.always_present) > top:
            raise ValueError(f"max_count: got {top}, but {self.always_present} have lower"
                             f" bounds above 0 and are always present; expected max_count >="
                             f" {len(self.always_present)} (or those lower bounds at 0)")
        if self.resolution is not None and low > round(1 / self.resolution):
            raise ValueError(f"min_count: got {low} with resolution {self.resolution}; expected"
                             f" at most {round(1 / self.resolution)} elements present, one"
                             " step each")
        if top is not None:
            # The largest sum that top present elements can reach: the always-present
            # ones and the highest of the rest.
            lows, highs = np.asarray(self.lows), np.asarray(self.highs)
            if self.resolution is not None:  # the highest fractions on the grid
                k = round(1 / self.resolution)
                highs = np.floor(highs * k + 1e-9) / k
            forced = lows > 0
            reach = highs[forced].sum() + np.sort(highs[~forced])[::-1][:top - forced.sum()].sum()
            if reach < 1.0 - 1e-12:
                grid = " (on the resolution grid)" if self.resolution is not None else ""
                raise ValueError(f"max_count: got {top}; the upper bounds{grid} of any {top}"
                                 f" elements sum to at most {reach:g}; expected a max_count (or"
                                 " bounds) with which the fractions can sum to one")

    @property
    def always_present(self) -> list[str]:
        """Elements whose lower bound is above 0 (present in every composition)."""
        return [e for e, lo in zip(self.elements, self.lows) if lo > 0.0]

    @property
    def counted(self) -> bool:
        """Whether max_count or min_count limits how many elements are present."""
        return self.max_count is not None or self.min_count > 0

    def count(self, values) -> np.ndarray:
        """Number of present (nonzero) elements of each value (a dict per row): (n,)."""
        return np.asarray([sum(1 for e in self.elements if float(v.get(e, 0.0)) != 0.0)
                           for v in values], dtype=int)

    @property
    def lows(self) -> list[float]:
        return [float(self.bounds.get(e, (0.0, 1.0))[0]) for e in self.elements]

    @property
    def highs(self) -> list[float]:
        return [float(self.bounds.get(e, (0.0, 1.0))[1]) for e in self.elements]

    @property
    def columns(self) -> int:
        return len(self.elements)

    def column_names(self) -> list[str]:
        """CSV columns: ``name.Element``."""
        return [f"{self.name}.{e}" for e in self.elements]

    def encode(self, values) -> np.ndarray:
        F = np.asarray([[float(v.get(e, 0.0)) for e in self.elements] for v in values],
                       dtype=np.float64).reshape(-1, self.columns)
        lo, hi = np.asarray(self.lows), np.asarray(self.highs)
        return (F - lo) / (hi - lo)

    def decode(self, Z: np.ndarray) -> np.ndarray:
        lo, hi = np.asarray(self.lows), np.asarray(self.highs)
        F = lo + np.clip(np.asarray(Z, np.float64), 0.0, 1.0) * (hi - lo)
        out = np.empty(len(F), dtype=object)
        for i, f in enumerate(F):
            # + 0.0 turns a clipped -0.0 into 0.0 (it would print as "-0").
            out[i] = dict(zip(self.elements, (self._snap(f) + 0.0).tolist()))
        return out

    def _snap(self, f: np.ndarray) -> np.ndarray:
        """The nearest fractions (a uniform shift, clipped to the bounds) that sum to
        one, then on the resolution grid by largest remainders within the bounds.

        With a count limit the support is kept: an absent element (exactly 0) stays 0,
        and with min_count a present one keeps at least one resolution step."""
        lo, hi = np.asarray(self.lows), np.asarray(self.highs)
        present = np.ones(len(f), bool)
        if self.counted and hi[f > 0.0].sum() >= 1.0:
            present = f > 0.0
            hi = np.where(present, hi, 0.0)
        a, b = -1.0, 1.0  # sum(clip(f + t)) is monotone in t: bisect for 1
        for _ in range(100):
            t = 0.5 * (a + b)
            a, b = (t, b) if np.clip(f + t, lo, hi).sum() < 1.0 else (a, t)
        f = np.clip(f + 0.5 * (a + b), lo, hi)
        if self.resolution is None:
            # Values within round-off of a bound sit on it; the last round-off goes to
            # the element farthest inside its bounds.
            f = np.where(np.abs(f - lo) < 1e-12, lo, np.where(np.abs(hi - f) < 1e-12, hi, f))
            room = np.where(present, np.minimum(f - lo, hi - f), -np.inf)
            f[np.argmax(room)] += 1.0 - f.sum()
            return f
        k = round(1 / self.resolution)
        lo_u, hi_u = np.ceil(lo * k - 1e-9), np.floor(hi * k + 1e-9)
        if self.min_count > 0 and present.sum() <= k:
            lo_u = np.where(present, np.maximum(lo_u, 1.0), lo_u)
        units = np.clip(np.floor(f * k + 1e-9), lo_u, hi_u)
        rest = f * k - units
        for _ in range(k * len(f)):
            gap = int(k - units.sum())
            if gap == 0:
                break
            step = 1 if gap > 0 else -1
            room = (units < hi_u) if step > 0 else (units > lo_u)
            j = int(np.argmax(np.where(room, step * rest, -np.inf)))
            units[j] += step
            rest[j] -= step
        return units / k

    def validate_value(self, value: Any) -> dict[str, float]:
        if hasattr(value, "get_el_amt_dict"):  # a pymatgen Composition
            amounts = value.fractional_composition.get_el_amt_dict()
            value = {str(k): float(v) for k, v in amounts.items()}
        if not isinstance(value, dict):
            raise CampaignError(f"parameter '{self.name}': got {value!r}; expected a dict of"
                                f" fractions over {self.elements}")
        extra = [k for k in value if k not in self.elements]
        if extra:
            raise CampaignError(f"parameter '{self.name}': got elements {extra}; expected only"
                                f" {self.elements}")
        out = {}
        for e, lo, hi in zip(self.elements, self.lows, self.highs):
            v = value.get(e, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) \
                    or not math.isfinite(float(v)):
                raise CampaignError(f"parameter '{self.name}.{e}': got {v!r}; expected a number")
            if not lo - 1e-9 <= float(v) <= hi + 1e-9:
                raise CampaignError(f"parameter '{self.name}.{e}': got {float(v)}; expected a"
                                    f" fraction in [{lo}, {hi}]")
            out[e] = float(v)
        total = sum(out.values())
        if abs(total - 1.0) > 1e-6:
            raise CampaignError(f"parameter '{self.name}': fractions sum to {total:.6g};"
                                " expected 1")
        return out

    def to_pymatgen(self, value: dict):
        """The value as a pymatgen ``Composition`` (imports pymatgen)."""
        from pymatgen.core import Composition as PmgComposition

        return PmgComposition({e: f for e, f in value.items() if f > 0})


Parameter = Annotated[
    Union[Continuous, Integer, Categorical, Composition], Field(discriminator="type")
]


def setpoint_tolerance(p: Any) -> float:
    """How far a reported value of ``p`` may lie from the proposed one and still be the
    proposal: half the step a lab can set (a continuous ``precision``, a composition's
    ``resolution``), else nothing beyond round-off."""
    step = getattr(p, "precision", None) or getattr(p, "resolution", None)
    return step / 2 if step else 0.0


def same_value(p: Any, value: Any, proposed: Any) -> bool:
    """Whether ``value`` (one column's value of parameter ``p``, a label or a number) is the
    proposed one, within ``setpoint_tolerance(p)``."""
    if isinstance(value, str) or isinstance(proposed, str):
        return str(value) == str(proposed)
    a, b = float(value), float(proposed)
    return (math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
            or abs(a - b) <= setpoint_tolerance(p) * (1 + 1e-9))


def same_setpoint(p: Any, value: Any, proposed: Any) -> bool:
    """Whether the value of parameter ``p`` (a composition: a dict of fractions) is the
    proposed one, within ``setpoint_tolerance(p)``."""
    if isinstance(p, Composition):
        return all(same_value(p, value.get(e, 0.0), proposed.get(e, 0.0)) for e in p.elements)
    return same_value(p, value, proposed)
