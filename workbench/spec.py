"""The experiment spec: one schema for YAML files and ``Campaign.from_dict``.

Validation collects every problem at once and reports each with its field
path, its line in the YAML file, the value given and what was expected.
Validating never imports oracle code, never touches the store and never
starts tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, Discriminator, Field, Tag, ValidationError,
                      field_validator)

from workbench import problems
from workbench._yaml import line_of, load_yaml
from workbench.constraints import FunctionConstraint, NChooseK, NChooseKSpec
from workbench.engine.problem import acquisition_of
from workbench.errors import SpecError, SpecIssue
from workbench.space import (MAX_PARAMETERS, Categorical, Composition, Continuous, Integer,
                             Objective, SearchSpace)
from workbench.spec_options import (ORACLE_KINDS, STOPPING_RULES, SURROGATE_TYPES,
                                    AcquisitionSpec, CandidatesSpec, ExecutorSpec, GPSpec,
                                    InitialDesignSpec, OracleSpec, SpecModel,
                                    StoppingRuleSpec, SurrogateSpec, union_member)

DEFAULT_STORE = "campaigns/{name}.zarr"
DEFAULT_TRACKING = "sqlite:///campaigns/mlflow.db"


def _constraint_kind(v: Any) -> str | None:
    if isinstance(v, str):
        return "text"
    if isinstance(v, NChooseKSpec) or (isinstance(v, dict) and "nchoosek" in v):
        return "nchoosek"
    if isinstance(v, FunctionConstraint) or (isinstance(v, dict) and "function" in v):
        return "function"
    return None


def _constraint_entry(v: Any) -> Any:
    """Python objects as their spec form: NChooseK -> {nchoosek: ...}, a function ->
    its reference (which keeps the function)."""
    if isinstance(v, NChooseK):
        return NChooseKSpec(nchoosek=v)
    if callable(v) and not isinstance(v, (BaseModel, type)):
        return FunctionConstraint.of(v)
    return v


ConstraintEntry = Annotated[
    Union[Annotated[str, Tag("text")], Annotated[NChooseKSpec, Tag("nchoosek")],
          Annotated[FunctionConstraint, Tag("function")]],
    Discriminator(_constraint_kind), BeforeValidator(_constraint_entry),
]
# A spec's parameter constraints, at most (each is checked, some with an LP).
MAX_CONSTRAINTS = 1_000
# Points sampled in the parameter bounds to check, without JAX, that a nonlinear
# constraint leaves room; and the most supports of NChooseK constraints whose
# linear feasibility is checked one LP each.
VALIDATION_SAMPLES = 4096
MAX_CHECKED_SUPPORTS = 256
# Where an NChooseK constraint has a minimum count, a present parameter is at least
# this far above 0 in encoded units: active_learning.cardinality.PRESENCE_FLOOR,
# repeated because validating does not import JAX.
PRESENCE_FLOOR = 1e-6


SpecParameter = Annotated[
    Union[Continuous, Integer, Categorical, Composition], Field(discriminator="type")
]


class CampaignSpec(SpecModel):
    """Everything that defines a campaign; the YAML file maps onto it key for key."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)
    partner: str = Field(default="default", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                         max_length=64)
    description: str = ""
    space: list[SpecParameter] = Field(min_length=1, max_length=MAX_PARAMETERS)
    constraints: list[ConstraintEntry] = Field(
        default_factory=list, max_length=MAX_CONSTRAINTS,
        description="parameter constraints: linear or nonlinear text ('a + b <= 1',"
        " 'a**2 + b**2 <= 1'), {nchoosek: {parameters, max_count, min_count}}, or"
        " {function: 'module:name'} for a Python function g(params) <= 0")
    objectives: list[Objective] = Field(min_length=1)
    outcome_constraints: list[str] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list, description="parameters that are"
                               " measured, not chosen: given to ask(context=...)")
    initial_design: InitialDesignSpec = Field(default_factory=InitialDesignSpec)
    surrogate: SurrogateSpec = Field(default_factory=GPSpec)
    acquisition: AcquisitionSpec = Field(default_factory=AcquisitionSpec)
    budget: int | None = Field(default=None, ge=1, le=1_000_000)
    stopping: list[StoppingRuleSpec] = Field(default_factory=list, max_length=32)
    candidates: CandidatesSpec | None = None
    oracle: OracleSpec | None = None
    executor: ExecutorSpec | None = None
    # What a tell with an unusable value does (a missing outcome, NaN, infinity,
    # a value that is not a number) for a known pending trial: "error" refuses
    # it and records nothing; "fail" records the trial as failed with the reason.
    # Unknown ids and conflicting re-tells are errors under both.
    bad_observations: Literal["error", "fail"] = "error"
    store: str | None = None
    tracking: str | None = None
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    @field_validator("tracking")
    @classmethod
    def _no_credentials(cls, v: str | None) -> str | None:
        return check_tracking_uri(v)

    @property
    def n_initial(self) -> int:
        """Initial design size: given, the number of user points, or 2 * (parameters + 1)."""
        if self.initial_design.points is not None:
            return self.initial_design.n or len(self.initial_design.points)
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
    out += _constraint_issues(spec, names)
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
    if spec.surrogate.type in ("multitask", "multifidelity"):
        out += _task_issues(spec)
    out += _output_warping_issues(spec)
    if spec.oracle is not None and spec.oracle.command is not None:
        out += _command_issues(spec.oracle.command, names)
    if spec.oracle is not None and (spec.oracle.simulator or spec.oracle.dataset):
        from workbench.oracles import space_issues

        out += space_issues(spec.oracle, names)
    return out


def _polytope_feasible(space, bounds: list | None = None) -> bool:
    """Whether the bounds and linear constraints leave a point (a small LP; no JAX).
    bounds: per encoded column (low, high), default (0, 1)."""
    from scipy.optimize import linprog

    eq, ub = [], []
    for c in space.linear_constraints:
        rows = eq if c.op == "==" else ub
        for coeffs, rhs in ([(dict(c.coefficients), c.rhs)] if c.op == "==" else c.as_le_rows()):
            rows.append(space.encoded_row(coeffs, rhs))
    dim = space.dim
    for p, cols in zip(space.parameters, space.columns.values()):
        if isinstance(p, Composition):
            row = [0.0] * dim
            for j, lo, hi in zip(cols, p.lows, p.highs):
                row[j] = hi - lo
            eq.append((row, 1.0 - float(sum(p.lows))))
    res = linprog(
        [0.0] * dim,
        A_ub=[r for r, _ in ub] or None, b_ub=[b + 1e-12 for _, b in ub] or None,
        A_eq=[r for r, _ in eq] or None, b_eq=[b for _, b in eq] or None,
        bounds=bounds or [(0.0, 1.0)] * dim, method="highs")
    return res.status == 0


def _supports_feasible(space) -> bool | None:
    """Whether some choice of present parameters of the NChooseK constraints meets the
    linear constraints (one LP per choice); None when there are too many to check."""
    import itertools
    import math

    per = []
    for c in space.cardinality_constraints:
        top = min(c.max_count, len(c.parameters))
        sizes = (top,) if c.min_count == 0 else range(c.min_count, top + 1)
        per.append([(c, set(p)) for s in sizes for p in itertools.combinations(c.parameters, s)])
    if math.prod(len(p) for p in per) > MAX_CHECKED_SUPPORTS:
        return None
    columns = space.columns
    for choice in itertools.product(*per):
        bounds = [(0.0, 1.0)] * space.dim
        for c, present in choice:
            for name in c.parameters:
                j = columns[name][0]
                p = space[name]
                floor = 1.0 / (p.levels - 1) if isinstance(p, Integer) else PRESENCE_FLOOR
                bounds[j] = (0.0, 0.0) if name not in present else \
                    ((floor, 1.0) if c.min_count else (0.0, 1.0))
        if _polytope_feasible(space, bounds):
            return True
    return False


def _nonlinear_issues(spec: CampaignSpec, space: SearchSpace) -> list[tuple[tuple, str]]:
    """Text nonlinear constraints that no point sampled in the parameter bounds meets
    (numpy only: neither JAX nor a Python function constraint is touched)."""
    import numpy as np

    from workbench.constraints import NonlinearConstraint

    nonlinear = [c for c in space.nonlinear_constraints if isinstance(c, NonlinearConstraint)]
    if not nonlinear:
        return []
    Z = np.random.default_rng(0).uniform(size=(VALIDATION_SAMPLES, space.dim))
    rows = SearchSpace(list(spec.space)).decode(Z)
    out = []
    for c in nonlinear:
        values = {n: np.asarray([float(r[n]) for r in rows]) for n in c.names}
        with np.errstate(all="ignore"):
            ok = np.asarray(c.g(values)) <= 0.0
        if not ok.any():
            i = next(k for k, e in enumerate(spec.constraints)
                     if isinstance(e, str) and e.strip() == c.text)
            out.append((("constraints", i), f"got {c.text!r}, which none of"
                        f" {VALIDATION_SAMPLES} points sampled within the parameter bounds"
                        " satisfies; expected a constraint that leaves room (check its"
                        " direction and bound)"))
    return out


def _constraint_issues(spec: CampaignSpec, names: list[str]) -> list[tuple[tuple, str]]:
    """Linear and outcome constraints, objectives' kinds, the acquisition for them, context."""
    from workbench.constraints import parse_outcome_constraint
    from workbench.errors import CampaignError

    out: list[tuple[tuple, str]] = []
    if spec.constraints and len(set(names)) == len(names):
        for i, entry in enumerate(spec.constraints):
            try:
                SearchSpace(list(spec.space), [entry])
            except CampaignError as e:
                where, _, message = str(e).partition(": ")
                path = ("constraints", i) + tuple(where.split(".")[1:])
                out.append((path, message))
        space = None
        if not out:
            try:
                space = SearchSpace(list(spec.space), spec.constraints)
            except CampaignError as e:
                where, _, message = str(e).partition(": ")
                out.append((("constraints", int(where.split("[")[1].split("]")[0]))
                            + tuple(where.split(".")[1:]), message))
        texts = [e if isinstance(e, str) else e.model_dump(mode="json")
                 for e in spec.constraints]
        if space is not None and not _polytope_feasible(space):
            out.append((("constraints",), f"got {texts!r}, which no point within"
                        " the parameter bounds satisfies; expected constraints a point can meet"))
        elif space is not None and space.cardinality_constraints \
                and _supports_feasible(space) is False:
            out.append((("constraints",), f"got {texts!r}: no choice of present parameters"
                        " allowed by the nchoosek counts satisfies the linear constraints"
                        " within the parameter bounds; expected counts and bounds a point"
                        " can meet (e.g. enough present parameters to reach a required sum)"))
        elif space is not None:
            out += _nonlinear_issues(spec, space)
    objective_names = [o.name for o in spec.objectives]
    seen: set[str] = set()
    for i, text in enumerate(spec.outcome_constraints):
        try:
            c = parse_outcome_constraint(text)
        except ValueError as e:
            out.append((("outcome_constraints", i), str(e)))
            continue
        if c.name in names:
            out.append((("outcome_constraints", i), f"got {text!r}; {c.name!r} is a parameter;"
                        " expected a measured outcome (use constraints: for parameters)"))
        if c.name in seen:
            out.append((("outcome_constraints", i), f"got {text!r}; {c.name!r} is already"
                        " bounded; expected one constraint per outcome"))
        seen.add(c.name)
    dup = sorted({n for n in objective_names if objective_names.count(n) > 1})
    if dup:
        out.append((("objectives",), f"got {dup} more than once; expected unique names"))
    kind = acquisition_of(spec)
    several = len(spec.objectives) > 1
    if several and kind not in ("qlog_nehvi", "log_ehvi", "parego", "thompson",
                                "max_variance"):
        out.append((("acquisition", "type"), f"got {kind!r} with {len(spec.objectives)}"
                    " objectives; expected qlog_nehvi, log_ehvi or parego (or thompson,"
                    " max_variance)"))
    if several and kind == "log_ehvi" and (len(spec.objectives) > 3 or any(
            o.target is not None for o in spec.objectives)):
        out.append((("acquisition", "type"), f"got log_ehvi with {len(spec.objectives)}"
                    " objectives, targets "
                    f"{[o.name for o in spec.objectives if o.target is not None]}; expected 2"
                    " or 3 objectives to minimise or maximise (else qlog_nehvi)"))
    if not several and kind in ("qlog_nehvi", "log_ehvi", "parego"):
        out.append((("acquisition", "type"), f"got {kind!r} with one objective; expected a"
                    " single-objective acquisition such as log_ei"))
    if len(spec.objectives) > 4 and kind == "qlog_nehvi":
        out.append((("acquisition", "type"), f"got qlog_nehvi with {len(spec.objectives)}"
                    " objectives; expected parego beyond 4 objectives"))
    targets = [o.name for o in spec.objectives if o.target is not None]
    if targets and not several and kind not in ("log_ei", "log_nei", "qlog_nei", "thompson",
                                                "max_variance", "ivr"):
        out.append((("acquisition", "type"), f"got {kind!r} for target objective {targets};"
                    " expected log_ei, log_nei, qlog_nei or thompson"))
    ref = spec.acquisition.ref_point
    if ref is not None and len(ref) != len(spec.objectives):
        out.append((("acquisition", "ref_point"), f"got {len(ref)} values; expected one per"
                    f" objective ({len(spec.objectives)})"))
    for i, name in enumerate(spec.context):
        if name not in names:
            out.append((("context", i), f"got {name!r}; expected a parameter name from {names}"))
    if spec.context and len(set(spec.context)) == len(spec.context) \
            and set(spec.context) >= set(names):
        out.append((("context",), "every parameter is a context; expected at least one that"
                    " the campaign chooses"))
    chosen = [n for n in names if n not in spec.context]
    for i, name in enumerate(spec.acquisition.shared):
        if name not in chosen:
            out.append((("acquisition", "shared", i), f"got {name!r}; expected a parameter"
                        f" the campaign chooses, from {chosen}"))
    design = spec.initial_design
    if design.type == "lhs" and spec.constraints:
        out.append((("initial_design", "type"), "got 'lhs' with parameter constraints; a Latin"
                    " hypercube is defined on the box; expected sobol or maximin, which sample"
                    " inside the constraints"))
    if design.points is not None:
        for i, point in enumerate(design.points):
            try:
                SearchSpace(list(spec.space)).validate(point)
            except CampaignError as e:
                out.append((("initial_design", "points", i), str(e)))
    prior = spec.surrogate.prior if isinstance(spec.surrogate, GPSpec) else None
    if prior is not None and (several or spec.outcome_constraints):
        out.append((("surrogate", "prior"), f"got {prior!r} with type"
                    f" {spec.surrogate.type!r}, {len(spec.objectives)} objective(s) and"
                    f" {len(spec.outcome_constraints)} outcome constraint(s); expected a prior"
                    " only for a gp with one objective and no outcome constraints"))
    return out


def _task_issues(spec: CampaignSpec) -> list[tuple[tuple, str]]:
    """A multi-task GP's task parameter and target, a multi-fidelity GP's fidelity
    parameter and costs, and what these models support (multi-fidelity: one output)."""
    cfg = spec.surrogate
    kind = cfg.type
    key = "task" if kind == "multitask" else "fidelity"
    name = getattr(cfg, key)
    where = ("surrogate", key)
    params = {p.name: p for p in spec.space}
    out: list[tuple[tuple, str]] = []
    p = params.get(name)
    if p is None:
        return [(where, f"got {name!r}; expected a parameter name from {list(params)}")]
    onehot = isinstance(p, Categorical) and p.encoding == "onehot"
    if kind == "multitask" and not onehot:
        out.append((where, f"got {name!r}, a {p.type} parameter; expected a categorical"
                    " parameter (one-hot encoding) whose choices are the tasks"))
    if kind == "multifidelity" and not (onehot or isinstance(p, Integer)):
        out.append((where, f"got {name!r}, a {p.type} parameter; expected a categorical"
                    " (one-hot) or integer parameter whose levels run from cheapest to target"))
    if kind == "multitask" and isinstance(p, Categorical) and cfg.target not in p.choices:
        out.append((("surrogate", "target"), f"got {cfg.target!r}; expected one of the choices"
                    f" of {name!r}: {p.choices}"))
    if kind == "multifidelity" and isinstance(p, (Categorical, Integer)):
        levels = len(p.choices) if isinstance(p, Categorical) else p.levels
        if len(cfg.costs) != levels:
            out.append((("surrogate", "costs"), f"got {len(cfg.costs)} costs {cfg.costs};"
                        f" expected one per level of {name!r} ({levels})"))
    if name in spec.context:
        out.append((where, f"got {name!r}, which is a context parameter; expected a parameter"
                    " the campaign holds itself"))
    if len(params) < 2:
        out.append((where, f"got {name!r}, the only parameter; expected at least one more"))
    if kind == "multifidelity" and (len(spec.objectives) > 1 or spec.outcome_constraints):
        out.append((("surrogate", "type"), f"got {kind} with {len(spec.objectives)}"
                    f" objective(s) and {len(spec.outcome_constraints)} outcome constraint(s);"
                    " expected one objective and no outcome constraints (one modelled output)"))
    if spec.candidates is not None or (spec.oracle is not None and spec.oracle.dataset
                                       and (spec.oracle.mode or "lookup") == "lookup"):
        out.append((("surrogate", "type"), f"got {kind} with a candidate pool; expected"
                    " proposals over the space (no candidates)"))
    if kind == "multifidelity" and acquisition_of(spec) != "log_ei":
        out.append((("acquisition", "type"), f"got {acquisition_of(spec)!r} with a"
                    " multifidelity surrogate; expected log_ei (improvement at the target"
                    " level per unit cost)"))
    if kind == "multifidelity" and spec.objectives[0].target is not None:
        out.append((("objectives", 0, "target"), f"got {spec.objectives[0].target!r} with a"
                    " multifidelity surrogate; expected minimize or maximize"))
    return out


def _output_warping_issues(spec: CampaignSpec) -> list[tuple[tuple, str]]:
    """An explicit Yeo-Johnson warp needs one objective without a target (a target's
    distance and a reference point are in output units) and a learned noise."""
    cfg = spec.surrogate
    if getattr(cfg, "output_warping", "none") != "yeo_johnson":
        return []
    where = ("surrogate", "output_warping")
    if len(spec.objectives) > 1 or spec.objectives[0].target is not None:
        return [(where, f"got 'yeo_johnson' with {len(spec.objectives)} objective(s)"
                 f"{' and a target' if spec.objectives[0].target is not None else ''};"
                 " expected one objective to minimize or maximize (or output_warping: none)")]
    if cfg.noise is not None:
        return [(where, f"got 'yeo_johnson' with noise: {cfg.noise} (a variance in output"
                 " units); expected output_warping: none, or noise learned")]
    return []


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


def _or(names) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


# Unions whose kind pydantic inserts into error locations: where the tag sits in a
# location, and the kinds a message lists.
_UNIONS = {
    "space": (2, _or(["continuous", "integer", "categorical", "composition"])),
    "surrogate": (1, _or(SURROGATE_TYPES)),
    "oracle": (1, _or(ORACLE_KINDS)),
    "stopping": (2, _or(STOPPING_RULES)),
    "constraints": (2, "text, {nchoosek: ...} or {function: ...}"),
}
_UNION_TAGS = {"space": {"continuous", "integer", "categorical", "composition"},
               "surrogate": set(SURROGATE_TYPES), "oracle": set(ORACLE_KINDS),
               "stopping": set(STOPPING_RULES), "constraints": {"text", "nchoosek", "function"}}


def _strip_tags(loc: tuple) -> tuple:
    """Drop the union tag pydantic inserts after ``space[i]``, ``surrogate``,
    ``oracle`` and ``stopping[i]``, so a location names fields only."""
    if not loc or loc[0] not in _UNIONS:
        return loc
    at = _UNIONS[loc[0]][0]
    if len(loc) > at and loc[at] in _UNION_TAGS[loc[0]] and (at == 1 or isinstance(loc[1], int)):
        return loc[:at] + loc[at + 1:]
    return loc


def _union_message(loc: tuple, given: Any) -> str:
    """The message for a union member that cannot be chosen."""
    kinds = _UNIONS[loc[0]][1] if loc and loc[0] in _UNIONS else "?"
    if loc and loc[0] == "oracle":
        return f"got {given!r}; expected a mapping with exactly one of {kinds}"
    if loc and loc[0] == "constraints":
        return (f"got {given!r}; expected text such as 'a + b <= 1' or 'a**2 + b**2 <= 1',"
                " a mapping {nchoosek: {parameters: [...], max_count: k}}, or {function:"
                " 'module:name'}")
    tag = given.get("type") if isinstance(given, dict) else None
    return f"got type {tag!r}; expected type {kinds}"


def _model_at(loc: tuple, data: Any) -> type[BaseModel] | None:
    """The pydantic model that owns the key at ``loc`` (for 'expected one of')."""
    by_type = {"continuous": Continuous, "integer": Integer, "categorical": Categorical,
               "composition": Composition}
    model: Any = CampaignSpec
    node = data
    for part in loc[:-1]:
        if isinstance(part, int):
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            if model == "space":
                model = by_type.get(node.get("type")) if isinstance(node, dict) else None
            elif model == "objectives":
                model = Objective
            elif model == "stopping":
                model = union_member("stopping", node)
            continue
        node = node.get(part) if isinstance(node, dict) else None
        if part in ("space", "objectives", "stopping") and model is CampaignSpec:
            model = part
            continue
        if part in ("surrogate", "oracle") and model is CampaignSpec:
            model = union_member(part, node)
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
            msg = _union_message(loc, e.get("input"))
        elif kind != "value_error" or "got" not in msg:
            msg = f"{msg}; got {e.get('input')!r}"
        issues.append(SpecIssue(_format_path(loc), msg, line_of(lines, loc)))
    return issues


def check_tracking_uri(uri: str | None) -> str | None:
    """``uri`` unchanged, or ValueError when it carries credentials (``user:pw@host``):
    a spec, a store and a log must never hold a password. Credentials come from the
    environment (MLFLOW_TRACKING_USERNAME / _PASSWORD) or a netrc file."""
    if uri and "://" in uri:
        from urllib.parse import urlsplit

        if "@" in urlsplit(uri).netloc:
            raise ValueError(
                "got a URI with user information (user:password@host, not shown); expected"
                " scheme://host[:port], with credentials in MLFLOW_TRACKING_USERNAME and"
                " MLFLOW_TRACKING_PASSWORD or a netrc file, so that no password is written"
                " into specs, stores or logs")
    return uri


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
