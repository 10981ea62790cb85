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
from workbench.space import (MAX_PARAMETERS, Categorical, Composition, Continuous, Integer,
                             Objective)

DEFAULT_STORE = "campaigns/{name}.zarr"
DEFAULT_TRACKING = "sqlite:///campaigns/mlflow.db"
_PYTHON_TARGET = re.compile(r"^[\w./\\-]+:[A-Za-z_]\w*$")
_SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")
_TAGS = {"continuous", "integer", "categorical", "composition"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


SpecParameter = Annotated[
    Union[Continuous, Integer, Categorical, Composition], Field(discriminator="type")
]


class InitialDesignSpec(_Strict):
    """Points evaluated before the model proposes.

    type: sobol (scrambled), lhs (Latin hypercube), maximin (greedy maximin
    over a feasible pool) or points (the user's ``points``, in user units;
    then n defaults to their number). Every type respects linear constraints.
    """

    type: Literal["sobol", "lhs", "maximin", "points"] = "sobol"
    n: int | None = Field(default=None, ge=1, le=10_000,
                          description="number of points; default 2 * (parameters + 1)")
    points: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _points_with_type(self) -> "InitialDesignSpec":
        if (self.type == "points") != (self.points is not None):
            raise ValueError(f"points: got {'a list' if self.points is not None else 'none'}"
                             f" with type {self.type!r}; expected points exactly when type is"
                             " points")
        if self.points is not None and not self.points:
            raise ValueError("points: got an empty list; expected at least one point")
        return self


_KERNEL_TOKENS = re.compile(
    r"^(\s|\+|\*|\(|\)|matern12|matern32|matern52|rbf|linear|periodic|\[[\d,\s]*\])+$")


class SurrogateSpec(_Strict):
    """The surrogate model and its settings.

    gp: exact GP (kernel expression, input warping, known or learned noise);
    saas: fully Bayesian GP with a sparse axis-aligned prior (NUTS);
    ensemble: deep ensemble of MLPs; bll: Bayesian last layer on an MLP;
    svgp: sparse variational GP for large data; deep_kernel: a GP on MLP features
    (``hidden``, ``features``) for structured inputs. ``prior`` names an exported
    model prior (a path or an MLflow ``runs:/`` URI) to warm-start from.
    multitask: a coregionalised GP over the tasks of the categorical parameter
    ``task`` (plants, substrates, partners), proposing for ``target`` only;
    multifidelity: autoregressive co-kriging over the levels of ``fidelity``
    (cheapest first), proposing point and level by expected improvement per
    unit cost (``costs``, one per level).
    """

    type: Literal["gp", "saas", "ensemble", "bll", "svgp", "deep_kernel", "multitask",
                  "multifidelity"] = "gp"
    kernel: str = Field(default="matern52", max_length=500,
                        description="gp: an expression such as 'matern52 + linear'")
    warping: bool = False
    noise: float | None = Field(default=None, gt=0,
                                description="known noise variance of every observation"
                                " (output units); none: learned")
    noise_prior: Literal["auto", "low", "lab"] = Field(
        default="auto", description="gp: prior on the learned noise; low for simulators,"
        " lab for measurements; auto picks lab for dataset and command oracles, low"
        " otherwise")
    categorical: Literal["product", "additive"] = Field(
        default="product", description="gp: how one-hot categorical factors combine with"
        " each other and the continuous kernel: product, or main effects plus interaction")
    restarts: int = Field(default=4, ge=1, le=64)
    members: int = Field(default=8, ge=1, le=256, description="ensemble members")
    hidden: list[int] = Field(default_factory=lambda: [64, 64], min_length=1, max_length=8)
    epochs: int = Field(default=50, ge=1, le=100_000)
    num_inducing: int = Field(default=128, ge=4, le=10_000, description="svgp")
    features: int = Field(default=2, ge=1, le=16, description="deep_kernel: learned features")
    num_samples: int = Field(default=128, ge=8, le=4096, description="saas: NUTS draws/chain")
    num_warmup: int = Field(default=256, ge=8, le=8192, description="saas: warm-up steps")
    prior: str | None = Field(default=None, description="exported model prior to warm-start"
                              " from: a JSON path or runs:/<run_id>/prior.json")
    task: str | None = Field(default=None, description="multitask: the categorical parameter"
                             " that names the task of each trial")
    target: str | None = Field(default=None, description="multitask: the task (a choice of"
                               " task) that proposals are made for")
    rank: int = Field(default=1, ge=1, le=8, description="multitask: rank of the task"
                      " covariance")
    fidelity: str | None = Field(default=None, description="multifidelity: the categorical or"
                                 " integer parameter whose levels run from cheapest to target")
    costs: list[float] | None = Field(default=None, min_length=2, max_length=64,
                                      description="multifidelity: cost of one evaluation at"
                                      " each level, cheapest first")

    @model_validator(mode="after")
    def _task_fields(self) -> "SurrogateSpec":
        own = {"multitask": ("task", "target"), "multifidelity": ("fidelity", "costs")}
        for kind, keys in own.items():
            for key in keys:
                given = getattr(self, key) is not None
                if self.type == kind and not given:
                    raise ValueError(f"{key}: missing with type {kind}; expected"
                                     f" {' and '.join(keys)}")
                if self.type != kind and given:
                    raise ValueError(f"{key}: got {getattr(self, key)!r} with type"
                                     f" {self.type!r}; expected it only with type {kind}")
        if self.rank != 1 and self.type != "multitask":
            raise ValueError(f"rank: got {self.rank} with type {self.type!r}; expected it only"
                             " with type multitask")
        bad = [c for c in self.costs or [] if not (c > 0 and c < float("inf"))]
        if bad:
            raise ValueError(f"costs: got {self.costs}; expected positive finite costs, one per"
                             " fidelity level")
        return self

    @field_validator("kernel")
    @classmethod
    def _kernel(cls, value: str) -> str:
        if not _KERNEL_TOKENS.match(value.strip().lower()) or not value.strip():
            raise ValueError(f"got {value!r}; expected an expression of matern12, matern32,"
                             " matern52, rbf, linear, periodic with + * ( ) and [columns]")
        return value.strip().lower()

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, value: list[int]) -> list[int]:
        if any(w < 1 or w > 4096 for w in value):
            raise ValueError(f"got {value}; expected layer widths between 1 and 4096")
        return value


class AcquisitionSpec(_Strict):
    """The acquisition function and its optimiser.

    With several objectives: log_ehvi (analytic, one point at a time, 2-3
    objectives without targets: no Monte-Carlo samples), qlog_nehvi or parego;
    the default is chosen by ``CampaignSpec.acquisition_type``. With one
    objective these are refused.
    """

    type: Literal["log_ei", "log_nei", "qlog_nei", "log_pi", "ucb", "mes", "max_variance",
                  "ivr", "thompson", "qlog_nehvi", "log_ehvi", "parego"] | None = None
    batch_size: int = Field(default=1, ge=1, le=1000)
    beta: float = Field(default=4.0, gt=0)
    mc_samples: int = Field(default=128, ge=8, le=4096,
                            description="Monte-Carlo samples (log_nei, qlog_nei, mes, thompson,"
                            " qlog_nehvi, parego)")
    raw_samples: int = Field(default=1024, ge=16, le=1_000_000)
    num_restarts: int = Field(default=16, ge=1, le=1024)
    steps: int = Field(default=100, ge=1, le=10_000)
    ref_point: list[float] | None = Field(default=None, description="qlog_nehvi, log_ehvi:"
                                          " hypervolume reference per objective, in user"
                                          " units")


_RULE_NEEDS = {"budget": ("max_evaluations",), "target": ("value",),
               "acquisition_below": ("threshold",), "regret_bound": ("eps",),
               "no_improvement": ("rounds",)}
_RULE_ALLOWED = {"budget": {"max_evaluations"}, "target": {"value"},
                 "acquisition_below": {"threshold", "log"}, "regret_bound": {"eps"},
                 "no_improvement": {"rounds", "rel_tol"}}


class CandidatesSpec(_Strict):
    """A discrete candidate pool: proposals are rows of it, never points in between.

    csv: a CSV file with one column per parameter (relative to the spec's
    folder); dataset: a shipped dataset's conditions. An oracle
    ``{dataset: ..., mode: lookup}`` implies its dataset's pool.
    """

    csv: str | None = None
    dataset: str | None = None

    @model_validator(mode="after")
    def _one(self) -> "CandidatesSpec":
        if (self.csv is None) == (self.dataset is None):
            raise ValueError(f"got csv {self.csv!r} and dataset {self.dataset!r}; expected"
                             " exactly one of them")
        return self


class StoppingRuleSpec(_Strict):
    """One stopping rule; ``run`` stops at the first that fires and records why.

    budget: max_evaluations; target: value; acquisition_below: threshold (log
    true: a log value); regret_bound: eps; no_improvement: rounds, rel_tol.
    """

    type: Literal["budget", "target", "acquisition_below", "regret_bound", "no_improvement"]
    max_evaluations: int | None = Field(default=None, ge=1)
    value: float | None = None
    threshold: float | None = None
    log: bool | None = None
    eps: float | None = Field(default=None, gt=0)
    rounds: int | None = Field(default=None, ge=1)
    rel_tol: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _fields_for_type(self) -> "StoppingRuleSpec":
        given = {k for k in type(self).model_fields if k != "type" and getattr(self, k) is not None}
        missing = [k for k in _RULE_NEEDS[self.type] if k not in given]
        extra = sorted(given - _RULE_ALLOWED[self.type])
        if missing or extra:
            raise ValueError(f"type {self.type}: missing {missing}, not used {extra}; expected"
                             f" fields {sorted(_RULE_ALLOWED[self.type])}")
        return self

    def to_rule_dict(self) -> dict:
        """The ``active_learning.stopping.rule_from_dict`` form."""
        return {"type": self.type, **{k: getattr(self, k) for k in _RULE_ALLOWED[self.type]
                                      if getattr(self, k) is not None}}


class OracleSpec(_Strict):
    """What ``run`` evaluates: a built-in test problem, a Python function, a command,
    a built-in simulator or a shipped dataset (its recorded values or an emulator)."""

    builtin: str | None = None
    python: str | None = Field(default=None, description="module:function or path/file.py:function")
    command: str | None = Field(default=None, description="lab script template, e.g."
                                " './run_reactor.sh {temperature} {pressure}'; JSON on stdout")
    timeout: float | None = Field(default=None, gt=0, description="seconds a command may run")
    simulator: str | None = Field(default=None, description="snar, cstr or emt_alloy")
    outputs: list[str] | None = Field(default=None, min_length=1,
                                      description="simulator outputs to return; default all")
    dataset: str | None = Field(default=None, description="a shipped dataset, e.g."
                                " shields_arylation")
    objective: str | None = Field(default=None, description="dataset outcome column;"
                                  " default its first")
    mode: Literal["lookup", "emulator"] | None = Field(
        default=None, description="dataset: lookup (recorded values; default) or emulator")
    log_structures: bool = Field(default=False, description="simulator: log each evaluated"
                                 " atomic structure (extended XYZ) to the MLflow run")

    @model_validator(mode="after")
    def _exactly_one(self) -> "OracleSpec":
        kinds = ("builtin", "python", "command", "simulator", "dataset")
        given = [k for k in kinds if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"got {given or 'neither'}; expected exactly one of builtin, python, command,"
                " simulator or dataset"
            )
        self._check_simulator_and_dataset()
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

    def _check_simulator_and_dataset(self) -> None:
        """Names and keys of simulator and dataset oracles (metadata only, no model import)."""
        from workbench import simulators

        if self.log_structures and (self.simulator is None or (
                self.simulator in simulators.SIMULATORS
                and not simulators.get(self.simulator).structures)):
            with_structures = [n for n in simulators.names() if simulators.get(n).structures]
            raise ValueError(f"log_structures: got true with {self.simulator or 'no'} simulator;"
                             f" expected a simulator with atomic structures: {with_structures}")
        for key, owner in (("outputs", "simulator"), ("objective", "dataset"),
                           ("mode", "dataset")):
            if getattr(self, key) is not None and getattr(self, owner) is None:
                raise ValueError(f"{key}: got {getattr(self, key)!r}; expected it only with"
                                 f" {owner}")
        if self.simulator is not None:
            if self.simulator not in simulators.SIMULATORS:
                raise ValueError(f"simulator: got {self.simulator!r}; expected one of"
                                 f" {simulators.names()}")
            known = simulators.get(self.simulator).output_names
            bad = [o for o in self.outputs or [] if o not in known]
            if bad:
                raise ValueError(f"outputs: got {bad}; expected outputs of"
                                 f" {self.simulator!r}: {known}")
        if self.dataset is not None:
            from workbench import datasets

            if self.dataset not in datasets.names():
                raise ValueError(f"dataset: got {self.dataset!r}; expected one of"
                                 f" {datasets.names()}")
            outcomes = datasets.info(self.dataset)["outcomes"]
            if self.objective is not None and self.objective not in outcomes:
                raise ValueError(f"objective: got {self.objective!r}; expected an outcome of"
                                 f" {self.dataset!r}: {outcomes}")


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
    space: list[SpecParameter] = Field(min_length=1, max_length=MAX_PARAMETERS)
    constraints: list[str] = Field(default_factory=list)
    objectives: list[Objective] = Field(min_length=1)
    outcome_constraints: list[str] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list, description="parameters that are"
                               " measured, not chosen: given to ask(context=...)")
    initial_design: InitialDesignSpec = Field(default_factory=InitialDesignSpec)
    surrogate: SurrogateSpec = Field(default_factory=SurrogateSpec)
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

    @property
    def acquisition_type(self) -> str:
        """The acquisition in use: the given one, or the default for the objectives.

        One objective: log_ei. Several: the analytic log_ehvi where it is exact
        and safe (2-3 objectives without targets, an exact GP, simulator-like
        data under the "low" noise prior, one point per ask), since it matches or
        beats qlog_nehvi's fronts at a twentieth of its time or less (benchmarks/RESULTS.md);
        otherwise qlog_nehvi, whose Monte-Carlo samples handle noisy incumbents,
        joint batches, targets and non-Gaussian posteriors.
        """
        if self.acquisition.type is not None:
            return self.acquisition.type
        if len(self.objectives) == 1:
            return "log_ei"
        if (len(self.objectives) <= 3 and all(o.target is None for o in self.objectives)
                and self.surrogate.type == "gp" and self.acquisition.batch_size == 1
                and self.resolved_noise_prior == "low"):
            return "log_ehvi"
        return "qlog_nehvi"

    @property
    def resolved_noise_prior(self) -> str:
        """The GP's noise prior: ``surrogate.noise_prior``, with ``auto`` read from the
        oracle. A dataset's recorded measurements and a lab command's results are noisy
        ("lab"); simulators, emulators, Python functions and campaigns told by hand keep
        "low", which fits exact values tightly (set ``noise_prior: lab`` for measured
        data told through the API)."""
        chosen = self.surrogate.noise_prior
        if chosen != "auto":
            return chosen
        oracle = self.oracle
        if oracle is not None and (oracle.command is not None or (
                oracle.dataset is not None and oracle.mode != "emulator")):
            return "lab"
        return "low"

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
    if spec.oracle is not None and spec.oracle.command is not None:
        out += _command_issues(spec.oracle.command, names)
    if spec.oracle is not None and (spec.oracle.simulator or spec.oracle.dataset):
        from workbench.oracles import space_issues

        out += space_issues(spec.oracle, names)
    return out


def _polytope_feasible(space) -> bool:
    """Whether the bounds and linear constraints leave a point (a small LP; no JAX)."""
    from scipy.optimize import linprog

    eq, ub = [], []
    for c in space._linear:
        rows = eq if c.op == "==" else ub
        for coeffs, rhs in ([(dict(c.coefficients), c.rhs)] if c.op == "==" else c.as_le_rows()):
            rows.append(space._encoded_row(coeffs, rhs))
    dim = space.dim
    res = linprog(
        [0.0] * dim,
        A_ub=[r for r, _ in ub] or None, b_ub=[b + 1e-12 for _, b in ub] or None,
        A_eq=[r for r, _ in eq] or None, b_eq=[b for _, b in eq] or None,
        bounds=[(0.0, 1.0)] * dim, method="highs")
    return res.status == 0


def _constraint_issues(spec: CampaignSpec, names: list[str]) -> list[tuple[tuple, str]]:
    """Linear and outcome constraints, objectives' kinds, the acquisition for them, context."""
    from workbench.constraints import parse_outcome_constraint
    from workbench.errors import CampaignError
    from workbench.space import SearchSpace

    out: list[tuple[tuple, str]] = []
    if spec.constraints and len(set(names)) == len(names):
        for i, text in enumerate(spec.constraints):
            try:
                SearchSpace(list(spec.space), [text])
            except CampaignError as e:
                out.append((("constraints", i), str(e).split(": ", 1)[-1]))
        if not out and not _polytope_feasible(SearchSpace(list(spec.space), spec.constraints)):
            out.append((("constraints",), f"got {spec.constraints!r}, which no point within"
                        " the parameter bounds satisfies; expected constraints a point can meet"))
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
    kind = spec.acquisition_type
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
    design = spec.initial_design
    if design.type == "lhs" and spec.constraints:
        out.append((("initial_design", "type"), "got 'lhs' with linear constraints; a Latin"
                    " hypercube is defined on the box; expected sobol or maximin, which sample"
                    " inside the constraints"))
    if design.points is not None:
        for i, point in enumerate(design.points):
            try:
                SearchSpace(list(spec.space)).validate(point)
            except CampaignError as e:
                out.append((("initial_design", "points", i), str(e)))
    if spec.surrogate.prior is not None and (spec.surrogate.type != "gp" or several
                                             or spec.outcome_constraints):
        out.append((("surrogate", "prior"), f"got {spec.surrogate.prior!r} with type"
                    f" {spec.surrogate.type!r}, {len(spec.objectives)} objective(s) and"
                    f" {len(spec.outcome_constraints)} outcome constraint(s); expected a prior"
                    " only for a gp with one objective and no outcome constraints"))
    if spec.surrogate.type != "gp" and (spec.surrogate.kernel != "matern52"
                                        or spec.surrogate.warping):
        out.append((("surrogate", "kernel"), f"got kernel {spec.surrogate.kernel!r}, warping"
                    f" {spec.surrogate.warping} with type {spec.surrogate.type!r}; expected"
                    " them only with type gp"))
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
    if kind == "multifidelity" and spec.acquisition_type != "log_ei":
        out.append((("acquisition", "type"), f"got {spec.acquisition_type!r} with a"
                    " multifidelity surrogate; expected log_ei (improvement at the target"
                    " level per unit cost)"))
    if kind == "multifidelity" and spec.objectives[0].target is not None:
        out.append((("objectives", 0, "target"), f"got {spec.objectives[0].target!r} with a"
                    " multifidelity surrogate; expected minimize or maximize"))
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
