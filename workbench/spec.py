"""The experiment spec: one schema for YAML files and ``Campaign.from_dict``.

Validation collects every problem at once and reports each with its field
path, its line in the YAML file, the value given and what was expected.
Validating never imports oracle code, never touches the store and never
starts tracking.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from workbench import problems
from workbench._yaml import line_of, load_yaml
from workbench.errors import SpecError, SpecIssue
from workbench.space import Categorical, Continuous, Integer, Objective

DEFAULT_STORE = "campaigns/{name}.zarr"
DEFAULT_TRACKING = "sqlite:///campaigns/mlflow.db"
_PYTHON_TARGET = re.compile(r"^[\w./\\-]+:[A-Za-z_]\w*$")
_SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")
_TAGS = {"continuous", "integer", "categorical", "composition"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _CompositionSpec(_Strict):
    """``type: composition`` in a spec: refused as an issue with its field and line.

    ``wb.Composition`` raises NotSupportedYet from ``__init__``, which pydantic
    calls while validating, so the whole spec would stop at the first one with
    neither file, line nor field; this stand-in reports it like any other problem.
    """

    type: Literal["composition"] = "composition"

    @model_validator(mode="before")
    @classmethod
    def _reject(cls, data: Any) -> Any:
        raise ValueError(
            "composition parameters are not supported yet (planned with the materials domain);"
            " expected type continuous, integer or categorical"
        )


SpecParameter = Annotated[
    Union[Continuous, Integer, Categorical, _CompositionSpec], Field(discriminator="type")
]


class InitialDesignSpec(_Strict):
    """Space-filling points evaluated before the model proposes."""

    type: Literal["sobol"] = "sobol"
    n: int | None = Field(default=None, ge=1, le=10_000,
                          description="number of points; default 2 * (parameters + 1)")


class SurrogateSpec(_Strict):
    """The surrogate model."""

    type: Literal["gp"] = "gp"
    kernel: Literal["matern52"] = "matern52"
    restarts: int = Field(default=4, ge=1, le=64)


class AcquisitionSpec(_Strict):
    """The acquisition function and its optimiser."""

    type: Literal["log_ei", "log_nei", "qlog_nei", "log_pi", "ucb", "mes", "max_variance",
                  "ivr", "thompson"] = "log_ei"
    batch_size: int = Field(default=1, ge=1, le=1000)
    beta: float = Field(default=4.0, gt=0)
    mc_samples: int = Field(default=128, ge=8, le=4096,
                            description="Monte-Carlo samples (log_nei, qlog_nei, mes, thompson)")
    raw_samples: int = Field(default=1024, ge=16, le=1_000_000)
    num_restarts: int = Field(default=16, ge=1, le=1024)
    steps: int = Field(default=100, ge=1, le=10_000)


class OracleSpec(_Strict):
    """What ``run`` evaluates: a built-in test problem, a Python function or a command."""

    builtin: str | None = None
    python: str | None = Field(default=None, description="module:function or path/file.py:function")
    command: str | None = Field(default=None, description="lab script template, e.g."
                                " './run_reactor.sh {temperature} {pressure}'; JSON on stdout")
    timeout: float | None = Field(default=None, gt=0, description="seconds a command may run")

    @model_validator(mode="after")
    def _exactly_one(self) -> "OracleSpec":
        given = [k for k in ("builtin", "python", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"got {given or 'neither'}; expected exactly one of builtin, python or command"
            )
        if self.builtin is not None and self.builtin not in problems.PROBLEMS:
            raise ValueError(
                f"builtin: got {self.builtin!r}; expected one of {sorted(problems.PROBLEMS)}"
            )
        if self.python is not None and not _PYTHON_TARGET.match(self.python):
            raise ValueError(
                f"python: got {self.python!r}; expected 'package.module:function'"
                " or 'path/to/file.py:function'"
            )
        if self.timeout is not None and self.command is None:
            raise ValueError(
                f"timeout: got {self.timeout:g} with a {given[0]} oracle; expected it only with"
                " command (an executor's timeout bounds other oracles)"
            )
        return self


class ExecutorSpec(_Strict):
    """Where ``run`` evaluates: local processes or a Dask cluster.

    ``{dask: tcp://host:8786}`` is short for ``{type: dask, address: tcp://host:8786}``.
    """

    type: Literal["local", "dask"] = "local"
    workers: int | None = Field(default=None, ge=1, le=4096,
                                description="evaluations at once; default: CPU count"
                                " (local) or the cluster's threads (dask)")
    timeout: float | None = Field(default=None, gt=0, description="seconds per evaluation")
    retries: int = Field(default=0, ge=0, le=100,
                         description="extra attempts after a failure, timeout or lost worker")
    address: str | None = Field(default=None, description="Dask scheduler, tcp://host:8786")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, dict) and "dask" in data:
            data = dict(data)
            address = data.pop("dask")
            if data.get("type", "dask") != "dask":
                raise ValueError(f"dask: got {address!r} with type {data['type']!r};"
                                 " expected type dask (or no type)")
            if "address" in data:
                raise ValueError(f"dask: got {address!r} and address {data['address']!r};"
                                 " expected one of them")
            data.update(type="dask", address=address)
        return data

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not _SCHEDULER_ADDRESS.match(value):
            raise ValueError(f"got {value!r}; expected a scheduler address such as"
                             " 'tcp://host:8786'")
        return value

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "ExecutorSpec":
        if self.address is not None and self.type != "dask":
            raise ValueError(f"address: got {self.address!r} with type {self.type!r};"
                             " expected type dask")
        return self


class CampaignSpec(_Strict):
    """Everything that defines a campaign; the YAML file maps onto it key for key."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)
    partner: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                         max_length=64)
    description: str = ""
    space: list[SpecParameter] = Field(min_length=1)
    constraints: list[str] = Field(default_factory=list)
    objectives: list[Objective] = Field(min_length=1)
    outcome_constraints: list[str] = Field(default_factory=list)
    initial_design: InitialDesignSpec = Field(default_factory=InitialDesignSpec)
    surrogate: SurrogateSpec = Field(default_factory=SurrogateSpec)
    acquisition: AcquisitionSpec = Field(default_factory=AcquisitionSpec)
    budget: int | None = Field(default=None, ge=1, le=1_000_000)
    oracle: OracleSpec | None = None
    executor: ExecutorSpec | None = None
    store: str | None = None
    tracking: str | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @property
    def n_initial(self) -> int:
        """Initial design size: given, or 2 * (parameters + 1)."""
        return self.initial_design.n or 2 * (len(self.space) + 1)

    def to_dict(self) -> dict:
        """JSON-ready dict that ``from_dict`` reads back to an equal spec."""
        return self.model_dump(mode="json", exclude_defaults=False)


def _semantic_issues(spec: CampaignSpec) -> list[tuple[tuple, str]]:
    """Problems that span fields: (path, message) pairs."""
    out: list[tuple[tuple, str]] = []
    names = [p.name for p in spec.space]
    for i, name in enumerate(names):
        if names.index(name) != i:
            out.append((("space", i, "name"), f"got {name!r} again; expected unique parameter names"))
    if spec.constraints:
        out.append((("constraints",), f"got {spec.constraints!r}; linear constraints are not"
                    " supported yet (planned with the active-learning engine); expected []"))
    if spec.outcome_constraints:
        out.append((("outcome_constraints",), f"got {spec.outcome_constraints!r}; outcome"
                    " constraints are not supported yet (planned with the active-learning"
                    " engine); expected []"))
    if len(spec.objectives) > 1:
        out.append((("objectives",), f"got {len(spec.objectives)} objectives; several objectives"
                    " are not supported yet (planned with the active-learning engine);"
                    " expected exactly one"))
    for j, obj in enumerate(spec.objectives):
        if obj.name in names:
            out.append((("objectives", j, "name"),
                        f"got {obj.name!r}, which is also a parameter; expected a distinct name"))
    if spec.acquisition.num_restarts > spec.acquisition.raw_samples:
        out.append((("acquisition", "num_restarts"), f"got {spec.acquisition.num_restarts};"
                    f" expected at most raw_samples ({spec.acquisition.raw_samples})"))
    if spec.oracle is not None and spec.oracle.builtin is not None:
        problem = problems.get(spec.oracle.builtin)
        if sorted(names) != sorted(problem.parameter_names):
            out.append((("oracle", "builtin"), f"{problem.name!r} evaluates parameters"
                        f" {problem.parameter_names}; the space has {names}"))
        if any(isinstance(p, (Integer, Categorical)) for p in spec.space):
            out.append((("oracle", "builtin"), f"{problem.name!r} needs continuous parameters"))
    if spec.oracle is not None and spec.oracle.command is not None:
        out += _command_issues(spec.oracle.command, names)
    return out


def _command_issues(command: str, names: list[str]) -> list[tuple[tuple, str]]:
    """Placeholders of a command template that name no parameter (checked before any run)."""
    from workbench.oracles import placeholders

    where = ("oracle", "command")
    try:
        used = placeholders(command)
    except ValueError as e:
        return [(where, f"got {command!r}; {e}; expected words with {{parameter}} placeholders"
                        " ({{ and }} for literal braces)")]
    if not command.strip():
        return [(where, "got an empty command; expected a program and its arguments")]
    return [(where, f"got placeholder {{{name}}} in {command!r}; expected one of the"
                    f" parameters {names}") for name in used if name not in names]


def _format_path(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _strip_tags(loc: tuple) -> tuple:
    """Drop the union tag pydantic inserts after ``space[i]``."""
    out: list = []
    for i, part in enumerate(loc):
        if (part in _TAGS and i >= 2 and loc[i - 2] == "space" and isinstance(loc[i - 1], int)):
            continue
        out.append(part)
    return tuple(out)


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (for 'expected one of')."""
    by_type = {"continuous": Continuous, "integer": Integer, "categorical": Categorical}
    model: Any = CampaignSpec
    node = data
    for part in loc[:-1]:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if model == "space":
                model = by_type.get(node.get("type")) if isinstance(node, dict) else None
            elif model == "objectives":
                model = Objective
            continue
        node = node.get(part) if isinstance(node, dict) else None
        if part in ("space", "objectives"):
            model = part
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        candidates = (field.annotation, *getattr(field.annotation, "__args__", ()))
        model = next((a for a in candidates
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
    return model if isinstance(model, type) else None


def _allowed_keys(loc: tuple, data: Any) -> list[str]:
    model = _model_at(loc, data)
    if model is None:
        return []
    return sorted((f.alias or n) for n, f in model.model_fields.items())


def _pydantic_issues(err: ValidationError, data: Any, lines: dict) -> list[SpecIssue]:
    issues = []
    for e in err.errors():
        loc = _strip_tags(tuple(e["loc"]))
        kind = e["type"]
        msg = e["msg"].removeprefix("Value error, ")
        if kind == "missing":
            msg = "required field is missing"
        elif kind == "extra_forbidden":
            allowed = _allowed_keys(loc, data)
            msg = f"unknown key {loc[-1]!r}" + (f"; expected one of {allowed}" if allowed else "")
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            msg = ("got type " + repr(e.get("input", {}).get("type") if isinstance(e.get("input"), dict)
                                      else None)
                   + "; expected type continuous, integer, categorical or composition")
        elif kind != "value_error" or "got" not in msg:
            msg = f"{msg}; got {e.get('input')!r}"
        issues.append(SpecIssue(_format_path(loc), msg, line_of(lines, loc)))
    return issues


def parse_spec(data: Any, *, lines: dict | None = None, source: str | None = None) -> CampaignSpec:
    """Validate a spec given as plain data; raises SpecError listing every problem."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise SpecError([SpecIssue("", f"got {type(data).__name__}; expected a mapping")], source)
    try:
        spec = CampaignSpec.model_validate(data)
    except ValidationError as err:
        issues = _pydantic_issues(err, data, lines)
        issues.sort(key=lambda i: (i.line is None, i.line or 0))
        raise SpecError(issues, source) from None
    issues = [SpecIssue(_format_path(p), m, line_of(lines, p)) for p, m in _semantic_issues(spec)]
    if issues:
        raise SpecError(issues, source)
    updates = {}
    if "store" not in data:
        updates["store"] = DEFAULT_STORE.format(name=spec.name)
    if "tracking" not in data:
        updates["tracking"] = DEFAULT_TRACKING
    return spec.model_copy(update=updates) if updates else spec


def load_spec(path: str | Path) -> CampaignSpec:
    """Read and validate a YAML spec file; raises SpecError naming file and line."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([SpecIssue("", f"file not found: {path}")], source) from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError([SpecIssue("", f"cannot read the file: {e}")], source) from None
    data, lines, issues = load_yaml(text)
    if issues:
        raise SpecError(issues, source)
    return parse_spec(data, lines=lines, source=source)
