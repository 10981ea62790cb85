"""The option blocks of the experiment spec: initial design, surrogate,
acquisition, stopping rules, candidates, oracle and executor.

Options that differ by kind are discriminated unions, as ``space`` is: each
surrogate type, stopping rule and oracle kind is its own model that validates
its own fields, and the JSON Schema documents each. A setting that belongs to
another kind is refused with the kind it belongs to. Stores written before the
unions dumped every setting of every kind at its default; those defaults are
dropped on reading, so old stores reopen unchanged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag,
                      TypeAdapter, ValidationError, field_validator, model_validator)

from workbench import problems

_PYTHON_TARGET = re.compile(r"^[\w./\\-]+:[A-Za-z_]\w*$")
_SCHEDULER_ADDRESS = re.compile(r"^(tcp|tls|ws|wss|ucx|inproc)://\S+$")
_KERNEL_TOKENS = re.compile(
    r"^(\s|\+|\*|\(|\)|matern12|matern32|matern52|rbf|linear|periodic|\[[\d,\s]*\])+$")


class SpecModel(BaseModel):
    """A spec block: unknown keys are errors; values are frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class InitialDesignSpec(SpecModel):
    """Points evaluated before the model proposes.

    type: sobol (scrambled), lhs (Latin hypercube), maximin (greedy maximin
    over a feasible pool) or points (the user's ``points``, in user units;
    then n defaults to their number). Every type respects the parameter constraints
    (lhs only applies without them).
    """

    type: Literal["sobol", "lhs", "maximin", "points"] = "sobol"
    n: int | None = Field(default=None, ge=1, le=10_000,
                          description="number of points; default 2 * (parameters + 1)")
    points: list[dict[str, Any]] | None = Field(default=None, max_length=10_000)

    @model_validator(mode="after")
    def _points_with_type(self) -> InitialDesignSpec:
        if (self.type == "points") != (self.points is not None):
            raise ValueError(f"points: got {'a list' if self.points is not None else 'none'}"
                             f" with type {self.type!r}; expected points exactly when type is"
                             " points")
        if self.points is not None and not self.points:
            raise ValueError("points: got an empty list; expected at least one point")
        return self


# -- kinds of a union: refuse the settings of other kinds by name ------------------


def _shown(model: type[BaseModel], key: str, value: Any) -> Any:
    """``value`` as ``model``'s field ``key`` reads it (1 -> 1.0 for a float), for messages."""
    try:
        return TypeAdapter(model.model_fields[key].annotation).validate_python(value)
    except ValidationError:
        return value


def _foreign_settings(data: Any, model: type[BaseModel], kinds: dict[str, type[BaseModel]],
                      legacy: dict[str, Any], describe) -> Any:
    """``data`` without the settings of other kinds left at their old defaults
    (stores written before the unions carry them); raises ValueError naming any
    other setting of another kind. describe(key, value, owners) -> the message."""
    if not isinstance(data, dict):
        return data
    data = dict(data)
    for key in [k for k in data if k not in model.model_fields]:
        owners = [name for name, kind in kinds.items() if key in kind.model_fields]
        if not owners:
            continue  # no kind has it: the unknown-key error lists the allowed ones
        if key in legacy and data[key] == legacy[key]:
            del data[key]
            continue
        raise ValueError(describe(key, _shown(kinds[owners[0]], key, data[key]), owners))
    return data


# -- surrogates ----------------------------------------------------------------------

_HIDDEN = Field(default_factory=lambda: [64, 64], min_length=1, max_length=8,
                description="MLP layer widths")
_RESTARTS = Field(default=4, ge=1, le=64, description="hyperparameter optimiser restarts")


class _SurrogateSpec(SpecModel):
    @model_validator(mode="before")
    @classmethod
    def _own_settings(cls, data: Any) -> Any:
        kind = data.get("type", "gp") if isinstance(data, dict) else None
        return _foreign_settings(
            data, cls, SURROGATE_TYPES, _LEGACY_SURROGATE_DEFAULTS,
            lambda key, value, owners: f"{key}: got {value!r} with type {kind!r}; expected it"
                                       f" only with type {' or '.join(owners)}")


class _HiddenLayers(_SurrogateSpec):
    @field_validator("hidden", check_fields=False)
    @classmethod
    def _hidden(cls, value: list[int]) -> list[int]:
        if any(w < 1 or w > 4096 for w in value):
            raise ValueError(f"got {value}; expected layer widths between 1 and 4096")
        return value


class GPSpec(_SurrogateSpec):
    """Exact GP: a kernel expression, input warping, known or learned noise.
    ``prior`` names an exported model prior (a path or an MLflow ``runs:/`` URI)
    to warm-start from."""

    type: Literal["gp"] = "gp"
    kernel: str = Field(default="matern52", max_length=500,
                        description="an expression such as 'matern52 + linear'")
    warping: bool = False
    noise: float | None = Field(default=None, gt=0,
                                description="known noise variance of every observation"
                                " (output units); none: learned")
    noise_prior: Literal["auto", "low", "lab"] = Field(
        default="auto", description="prior on the learned noise; low for simulators,"
        " lab for measurements; auto picks lab for dataset and command oracles, low"
        " otherwise")
    categorical: Literal["product", "additive"] = Field(
        default="product", description="how one-hot categorical factors combine with"
        " each other and the continuous kernel: product, or main effects plus interaction")
    output_warping: Literal["auto", "yeo_johnson", "none"] = Field(
        default="auto", description="a monotone power transform (Yeo-Johnson, exponent by"
        " maximum likelihood) of the objective before the GP; auto warps one objective"
        " without a target or outcome constraints, from a simulator (noise prior low),"
        " under a noiseless acquisition, and there each constrained output whose values"
        " span decades, with its bound; yeo_johnson also under a noisy acquisition, and"
        " every constrained output")
    restarts: int = _RESTARTS
    prior: str | None = Field(default=None, description="exported model prior to warm-start"
                              " from: a JSON path or runs:/<run_id>/prior.json")

    @field_validator("kernel")
    @classmethod
    def _kernel(cls, value: str) -> str:
        if not _KERNEL_TOKENS.match(value.strip().lower()) or not value.strip():
            raise ValueError(f"got {value!r}; expected an expression of matern12, matern32,"
                             " matern52, rbf, linear, periodic with + * ( ) and [columns]")
        return value.strip().lower()


class SAASSpec(_SurrogateSpec):
    """Fully Bayesian GP with a sparse axis-aligned prior, sampled by NUTS."""

    type: Literal["saas"]
    num_samples: int = Field(default=128, ge=8, le=4096, description="NUTS draws per chain")
    num_warmup: int = Field(default=256, ge=8, le=8192, description="warm-up steps")


class EnsembleSpec(_HiddenLayers):
    """Deep ensemble of MLPs."""

    type: Literal["ensemble"]
    members: int = Field(default=8, ge=1, le=256, description="ensemble members")
    hidden: list[int] = _HIDDEN
    epochs: int = Field(default=50, ge=1, le=100_000)


class BLLSpec(_HiddenLayers):
    """Bayesian last layer on an MLP."""

    type: Literal["bll"]
    hidden: list[int] = _HIDDEN
    epochs: int = Field(default=50, ge=1, le=100_000)


class SVGPSpec(_SurrogateSpec):
    """Sparse variational GP for large data."""

    type: Literal["svgp"]
    num_inducing: int = Field(default=128, ge=4, le=10_000, description="inducing points")


class DeepKernelSpec(_HiddenLayers):
    """A GP on learned MLP features, for structured inputs."""

    type: Literal["deep_kernel"]
    hidden: list[int] = _HIDDEN
    features: int = Field(default=2, ge=1, le=16, description="learned features")
    restarts: int = _RESTARTS


class MultiTaskSpec(_SurrogateSpec):
    """A coregionalised GP over the tasks of the categorical parameter ``task``
    (plants, substrates, partners), proposing for ``target`` only."""

    type: Literal["multitask"]
    task: str = Field(description="the categorical parameter that names the task of each"
                      " trial")
    target: str = Field(description="the task (a choice of task) that proposals are made for")
    rank: int = Field(default=1, ge=1, le=8, description="rank of the task covariance")
    restarts: int = _RESTARTS


class MultiFidelitySpec(_SurrogateSpec):
    """Autoregressive co-kriging over the levels of ``fidelity`` (cheapest first),
    proposing point and level by expected improvement per unit cost."""

    type: Literal["multifidelity"]
    fidelity: str = Field(description="the categorical or integer parameter whose levels run"
                          " from cheapest to target")
    costs: list[float] = Field(min_length=2, max_length=64, description="cost of one"
                               " evaluation at each level, cheapest first")
    restarts: int = _RESTARTS

    @model_validator(mode="after")
    def _positive_costs(self) -> MultiFidelitySpec:
        if any(not (c > 0 and c < float("inf")) for c in self.costs):
            raise ValueError(f"costs: got {self.costs}; expected positive finite costs, one per"
                             " fidelity level")
        return self


SURROGATE_TYPES: dict[str, type[SpecModel]] = {
    "gp": GPSpec, "saas": SAASSpec, "ensemble": EnsembleSpec, "bll": BLLSpec,
    "svgp": SVGPSpec, "deep_kernel": DeepKernelSpec, "multitask": MultiTaskSpec,
    "multifidelity": MultiFidelitySpec,
}
# Every setting of the single surrogate block the spec had before the union.
_LEGACY_SURROGATE_DEFAULTS = {
    "kernel": "matern52", "warping": False, "noise": None, "noise_prior": "auto",
    "categorical": "product", "restarts": 4, "members": 8, "hidden": [64, 64], "epochs": 50,
    "num_inducing": 128, "features": 2, "num_samples": 128, "num_warmup": 256, "prior": None,
    "task": None, "target": None, "rank": 1, "fidelity": None, "costs": None,
}


def _surrogate_type(value: Any) -> str | None:
    return value.get("type", "gp") if isinstance(value, dict) else getattr(value, "type", None)


SurrogateSpec = Annotated[
    Union[tuple(Annotated[m, Tag(t)] for t, m in SURROGATE_TYPES.items())],  # noqa: UP007
    Discriminator(_surrogate_type),
]


class AcquisitionSpec(SpecModel):
    """The acquisition function and its optimiser.

    With several objectives: log_ehvi (analytic, one point at a time, 2-3
    objectives without targets: no Monte-Carlo samples), qlog_nehvi or parego;
    the default is chosen by ``workbench.engine.policy.default_acquisition``.
    With one objective these are refused.
    """

    type: Literal["log_ei", "log_nei", "qlog_nei", "log_pi", "ucb", "mes", "max_variance",
                  "ivr", "thompson", "qlog_nehvi", "log_ehvi", "parego"] | None = None
    batch_size: int = Field(default=1, ge=1, le=1000)
    shared: list[str] = Field(
        default_factory=list, description="parameters every point of a batch shares (one"
        " plate, one temperature): their values are chosen jointly with the rest of the batch")
    beta: float = Field(default=4.0, gt=0)
    mc_samples: int = Field(default=128, ge=8, le=4096,
                            description="Monte-Carlo samples (log_nei, qlog_nei, mes, thompson,"
                            " qlog_nehvi, parego)")
    raw_samples: int = Field(default=1024, ge=16, le=1_000_000)
    num_restarts: int = Field(default=16, ge=1, le=1024)
    steps: int = Field(default=100, ge=1, le=10_000,
                       description="ascent steps per start of the acquisition search; the"
                       " default search climbs twice as many under outcome constraints")
    ref_point: list[float] | None = Field(
        default=None, description="qlog_nehvi, log_ehvi, and the campaign's hypervolume:"
        " hypervolume reference per objective, in user units. Default: 10% of the observed"
        " range below the worst observed value of each objective (REFERENCE_MARGIN of"
        " active_learning.reference_point), the same rule for proposals and reports")


# -- stopping rules ----------------------------------------------------------------


class _StoppingRuleSpec(SpecModel):
    @model_validator(mode="before")
    @classmethod
    def _own_settings(cls, data: Any) -> Any:
        kind = data.get("type") if isinstance(data, dict) else None
        legacy = {k: None for kind_ in STOPPING_RULES.values() for k in kind_.model_fields}
        return _foreign_settings(
            data, cls, STOPPING_RULES, legacy,
            lambda key, value, owners: f"{key}: got {value!r} with type {kind!r}; expected it"
                                       f" only with type {' or '.join(owners)}")

    def to_rule_dict(self) -> dict:
        """The ``active_learning.stopping.rule_from_dict`` form."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class BudgetRuleSpec(_StoppingRuleSpec):
    """Stop after ``max_evaluations`` completed trials."""

    type: Literal["budget"]
    max_evaluations: int = Field(ge=1)


class TargetRuleSpec(_StoppingRuleSpec):
    """Stop once the best value reaches ``value``."""

    type: Literal["target"]
    value: float


class AcquisitionBelowRuleSpec(_StoppingRuleSpec):
    """Stop when the last acquisition value falls below ``threshold`` (``log``
    true: compare as a log value)."""

    type: Literal["acquisition_below"]
    threshold: float
    log: bool | None = None


class RegretBoundRuleSpec(_StoppingRuleSpec):
    """Stop when the model bounds the simple regret below ``eps``."""

    type: Literal["regret_bound"]
    eps: float = Field(gt=0)


class NoImprovementRuleSpec(_StoppingRuleSpec):
    """Stop after ``rounds`` rounds without a relative improvement above ``rel_tol``."""

    type: Literal["no_improvement"]
    rounds: int = Field(ge=1)
    rel_tol: float | None = Field(default=None, ge=0)


STOPPING_RULES: dict[str, type[SpecModel]] = {
    "budget": BudgetRuleSpec, "target": TargetRuleSpec,
    "acquisition_below": AcquisitionBelowRuleSpec, "regret_bound": RegretBoundRuleSpec,
    "no_improvement": NoImprovementRuleSpec,
}

#: One stopping rule; ``run`` stops at the first that fires and records why.
StoppingRuleSpec = Annotated[
    Union[tuple(STOPPING_RULES.values())],  # noqa: UP007
    Field(discriminator="type"),
]


class CandidatesSpec(SpecModel):
    """A discrete candidate pool: proposals are rows of it, never points in between.

    csv: a CSV file with one column per parameter (relative to the spec's
    folder); dataset: a shipped dataset's conditions. An oracle
    ``{dataset: ..., mode: lookup}`` implies its dataset's pool.
    """

    csv: str | None = None
    dataset: str | None = None

    @model_validator(mode="after")
    def _one(self) -> CandidatesSpec:
        if (self.csv is None) == (self.dataset is None):
            raise ValueError(f"got csv {self.csv!r} and dataset {self.dataset!r}; expected"
                             " exactly one of them")
        return self


# -- oracles ---------------------------------------------------------------------



def _foreign_oracle_setting(key: str, value: Any, owners: list[str], kind: str | None) -> str:
    """The message for a setting of another oracle kind."""
    if key == "timeout":  # often meant as the executor's, which bounds every oracle
        shown = f"{value:g}" if isinstance(value, (int, float)) else repr(value)
        return (f"timeout: got {shown} with a {kind} oracle; expected it only with command"
                " (an executor's timeout bounds other oracles)")
    return f"{key}: got {value!r}; expected it only with {' or '.join(owners)}"


class _OracleSpec(SpecModel):
    """One kind of oracle. Every kind answers the others' settings with their
    defaults (None, or False for ``log_structures``), so code that asks
    ``oracle.dataset`` of any oracle reads None unless it is a dataset oracle."""

    @model_validator(mode="before")
    @classmethod
    def _own_settings(cls, data: Any) -> Any:
        kind = _oracle_kind(data)
        return _foreign_settings(
            data, cls, ORACLE_KINDS, _ORACLE_DEFAULTS,
            lambda key, value, owners: _foreign_oracle_setting(key, value, owners, kind))

    @property
    def kind(self) -> str:
        """builtin, python, command, simulator or dataset."""
        return next(k for k, m in ORACLE_KINDS.items() if isinstance(self, m))

    def __getattr__(self, name: str) -> Any:
        if name in _ORACLE_DEFAULTS:
            return _ORACLE_DEFAULTS[name]
        return super().__getattr__(name)


class BuiltinOracleSpec(_OracleSpec):
    """A built-in test problem (``workbench.problems``)."""

    builtin: str

    @model_validator(mode="after")
    def _known(self) -> BuiltinOracleSpec:
        if self.builtin not in problems.PROBLEMS:
            raise ValueError(
                f"builtin: got {self.builtin!r}; expected one of {sorted(problems.PROBLEMS)}")
        return self


class PythonOracleSpec(_OracleSpec):
    """A Python function: ``module:function`` or ``path/file.py:function``."""

    python: str = Field(description="module:function or path/file.py:function")

    @model_validator(mode="after")
    def _target(self) -> PythonOracleSpec:
        if not _PYTHON_TARGET.match(self.python):
            raise ValueError(
                f"python: got {self.python!r}; expected 'package.module:function'"
                " or 'path/to/file.py:function'")
        return self


class CommandOracleSpec(_OracleSpec):
    """A lab script run per trial, JSON on stdout."""

    command: str = Field(description="lab script template, e.g."
                         " './run_reactor.sh {temperature} {pressure}'; JSON on stdout")
    timeout: float | None = Field(default=None, gt=0, description="seconds a command may run")


class SimulatorOracleSpec(_OracleSpec):
    """A built-in simulator (``workbench.simulators``)."""

    simulator: str = Field(description="snar, cstr or emt_alloy")
    outputs: list[str] | None = Field(default=None, min_length=1,
                                      description="simulator outputs to return; default all")
    log_structures: bool = Field(default=False, description="log each evaluated atomic"
                                 " structure (extended XYZ) to the MLflow run")

    @model_validator(mode="after")
    def _known(self) -> SimulatorOracleSpec:
        """Names and outputs (metadata only, no model import)."""
        from workbench import simulators

        if self.simulator not in simulators.SIMULATORS:
            raise ValueError(f"simulator: got {self.simulator!r}; expected one of"
                             f" {simulators.names()}")
        if self.log_structures and not simulators.get(self.simulator).structures:
            with_structures = [n for n in simulators.names() if simulators.get(n).structures]
            raise ValueError(f"log_structures: got true with {self.simulator} simulator;"
                             f" expected a simulator with atomic structures: {with_structures}")
        known = simulators.get(self.simulator).output_names
        bad = [o for o in self.outputs or [] if o not in known]
        if bad:
            raise ValueError(f"outputs: got {bad}; expected outputs of {self.simulator!r}:"
                             f" {known}")
        return self


class DatasetOracleSpec(_OracleSpec):
    """A shipped dataset: its recorded values (lookup) or a GP emulator over them."""

    dataset: str = Field(description="a shipped dataset, e.g. shields_arylation")
    objective: str | None = Field(default=None, description="outcome column; default its"
                                  " first")
    mode: Literal["lookup", "emulator"] | None = Field(
        default=None, description="lookup (recorded values; default) or emulator")

    @model_validator(mode="after")
    def _known(self) -> DatasetOracleSpec:
        from workbench import datasets

        if self.dataset not in datasets.names():
            raise ValueError(f"dataset: got {self.dataset!r}; expected one of"
                             f" {datasets.names()}")
        outcomes = datasets.info(self.dataset)["outcomes"]
        if self.objective is not None and self.objective not in outcomes:
            raise ValueError(f"objective: got {self.objective!r}; expected an outcome of"
                             f" {self.dataset!r}: {outcomes}")
        return self


ORACLE_KINDS: dict[str, type[SpecModel]] = {
    "builtin": BuiltinOracleSpec, "python": PythonOracleSpec, "command": CommandOracleSpec,
    "simulator": SimulatorOracleSpec, "dataset": DatasetOracleSpec,
}
_ORACLE_DEFAULTS = {"builtin": None, "python": None, "command": None, "timeout": None,
                    "simulator": None, "outputs": None, "dataset": None, "objective": None,
                    "mode": None, "log_structures": False}


def _given_kinds(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k in ORACLE_KINDS if value.get(k) is not None]
    return [k for k in ORACLE_KINDS if isinstance(value, ORACLE_KINDS[k])]


def _oracle_kind(value: Any) -> str | None:
    kinds = _given_kinds(value)
    return kinds[0] if len(kinds) == 1 else None


def _exactly_one_kind(value: Any) -> Any:
    if isinstance(value, dict) and len(_given_kinds(value)) != 1:
        raise ValueError(f"got {_given_kinds(value) or 'neither'}; expected exactly one of"
                         " builtin, python, command, simulator or dataset")
    return value


#: What ``run`` evaluates: a built-in test problem, a Python function, a command,
#: a built-in simulator or a shipped dataset (its recorded values or an emulator).
OracleSpec = Annotated[
    Union[tuple(Annotated[m, Tag(k)] for k, m in ORACLE_KINDS.items())],  # noqa: UP007
    Discriminator(_oracle_kind),
    BeforeValidator(_exactly_one_kind),
]


def union_member(field: str, value: Any) -> type[BaseModel] | None:
    """The model of a union field (surrogate, oracle, stopping) that ``value`` selects."""
    if field == "surrogate":
        return SURROGATE_TYPES.get(_surrogate_type(value))
    if field == "oracle":
        return ORACLE_KINDS.get(_oracle_kind(value))
    if field == "stopping":
        return STOPPING_RULES.get(value.get("type")) if isinstance(value, dict) else None
    return None


class ExecutorSpec(SpecModel):
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
    def _address_needs_dask(self) -> ExecutorSpec:
        if self.address is not None and self.type != "dask":
            raise ValueError(f"address: got {self.address!r} with type {self.type!r};"
                             " expected type dask")
        return self


__all__ = [
    "AcquisitionBelowRuleSpec", "AcquisitionSpec", "BLLSpec", "BudgetRuleSpec",
    "BuiltinOracleSpec", "CandidatesSpec", "CommandOracleSpec", "DatasetOracleSpec",
    "DeepKernelSpec", "EnsembleSpec", "ExecutorSpec", "GPSpec", "InitialDesignSpec",
    "MultiFidelitySpec", "MultiTaskSpec", "NoImprovementRuleSpec", "ORACLE_KINDS",
    "OracleSpec", "PythonOracleSpec", "RegretBoundRuleSpec", "SAASSpec", "STOPPING_RULES",
    "SURROGATE_TYPES", "SVGPSpec", "SimulatorOracleSpec", "SpecModel", "StoppingRuleSpec",
    "SurrogateSpec", "TargetRuleSpec", "union_member",
]
