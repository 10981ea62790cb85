"""What the engine optimises: a frozen :class:`Problem`, resolved once from the spec.

``resolve(spec, space)`` is the only place under ``workbench.engine`` that
reads the pydantic spec. It settles every choice the spec leaves open (the
acquisition, the noise prior), turns objectives, outcome constraints and the
task or fidelity parameter into plain values, and keeps the surrogate's
settings as a plain mapping. The rest of the engine reads the Problem only.

Importing this module does not import JAX: a campaign resolves its Problem
before it fits anything.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from workbench.constraints import OutcomeConstraint, parse_outcome_constraint
from workbench.engine import policy
from workbench.materials import feature_transform
from workbench.space import Categorical, Composition, SearchSpace
from workbench.spec_options import GPSpec, MultiFidelitySpec, MultiTaskSpec

if TYPE_CHECKING:
    from workbench.spec import CampaignSpec


@dataclass(frozen=True)
class Goal:
    """An objective as the engine maximises it: ``sign * value``, or
    ``-(value - target)^2`` when it has a target."""

    name: str
    sign: float            # +1 to maximise, -1 to minimise
    target: float | None

    def score(self, value: float) -> float:
        if self.target is not None:
            return -((float(value) - self.target) ** 2)
        return self.sign * float(value)


@dataclass(frozen=True)
class Acquisition:
    """The acquisition in use and its optimiser's settings.

    ref_point: hypervolume reference in maximised-objective units, or None
    (then a margin below the observed scores); search_set: whether the spec sets
    ``num_restarts`` or ``steps`` (then they hold at every size; the engine's own
    defaults shrink in long campaigns).
    """

    type: str
    batch_size: int
    beta: float
    mc_samples: int
    raw_samples: int
    num_restarts: int
    steps: int
    ref_point: tuple[float, ...] | None
    search_set: bool = False


class TaskLayout(NamedTuple):
    """Where a multi-task GP's task (a multi-fidelity GP's fidelity) sits among the
    encoded columns; the same fields as ``surrogates.task_columns.TaskLayout``."""

    columns: tuple[int, ...]
    keep: tuple[int, ...]
    levels: int
    onehot: bool


@dataclass(frozen=True)
class Tasks:
    """A multi-task or multi-fidelity campaign's task parameter.

    parameter: its name; layout: its encoded columns; values: its levels
    (choices, or the integers low..high), cheapest first for fidelities;
    target: the level proposals are for (a multi-task target, or the highest
    fidelity); held: whether the engine holds the parameter at ``target`` itself
    (multi-task) or proposes a level (multi-fidelity); costs: (levels,) per
    evaluation (multi-fidelity).
    """

    parameter: str
    layout: TaskLayout
    values: tuple[Any, ...]
    target: Any
    held: bool
    costs: tuple[float, ...] | None = None

    @property
    def target_index(self) -> int:
        return self.values.index(self.target)


@dataclass(frozen=True)
class PriorSource:
    """An exported model prior to warm-start the GP from: a path (relative to
    ``base_dir``) or an MLflow ``runs:/`` URI read through ``tracking``."""

    location: str
    tracking: str | None
    base_dir: Path | None


@dataclass(frozen=True, eq=False)
class Problem:
    """Everything the engine needs to propose, as plain values.

    space: the encoder between user parameters and encoded points in [0, 1]^d;
    outputs: modelled outcomes, the objectives then the outcomes only
    constraints bound; goals: one per objective; constraints: outcome
    constraints; context: parameters given at ask time; surrogate: the model's
    name in the engine's registry; surrogate_options: its settings; noise_prior:
    "low" or "lab"; acquisition: the resolved choice; tasks: the task or
    fidelity parameter, or None; prior: a model prior to warm-start from;
    columns: each parameter's encoded columns; kernel_onehot: one-hot column
    groups the GP kernel treats as exchangeable categories (not those seen
    through descriptors); substance_columns: the encoded columns of categories
    seen through descriptors; needs_features: whether a parameter asks for
    descriptors in front of the surrogate; warped_outputs: the outputs the
    surrogate sees through a fitted Yeo-Johnson warp (``surrogates.OutputWarp``);
    strong_warp_outputs: those of them that keep it only where it is strong.
    """

    space: SearchSpace
    outputs: tuple[str, ...]
    goals: tuple[Goal, ...]
    constraints: tuple[OutcomeConstraint, ...]
    context: tuple[str, ...]
    surrogate: str
    surrogate_options: Mapping[str, Any]
    noise_prior: str
    acquisition: Acquisition
    tasks: Tasks | None
    prior: PriorSource | None
    columns: Mapping[str, tuple[int, ...]]
    kernel_onehot: tuple[tuple[int, ...], ...]
    substance_columns: tuple[int, ...]
    needs_features: bool
    warped_outputs: tuple[int, ...] = ()
    strong_warp_outputs: tuple[int, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    # -- the encoded domain and the features in front of the surrogate --------

    @property
    def domain(self):
        """The encoded domain (``active_learning.Domain``; imports JAX on first use)."""
        return self.space.domain()

    @property
    def dim(self) -> int:
        return self.space.dim

    def feature_transform(self):
        """Composition and substance descriptors in front of the surrogate, or None;
        built on first use (it imports JAX and, for SMILES, RDKit)."""
        if "transform" not in self._cache:
            self._cache["transform"] = feature_transform(self.space) \
                if self.needs_features else None
        return self._cache["transform"]

    # -- objectives and constraints ---------------------------------------------

    @property
    def several(self) -> bool:
        """Whether there are several objectives."""
        return len(self.goals) > 1

    def scores(self, Y: np.ndarray) -> np.ndarray:
        """(n, outputs) observations -> (n, objectives) values to maximise."""
        return np.stack([np.asarray([g.score(v) for v in Y[:, k]])
                         for k, g in enumerate(self.goals)], axis=1)

    def feasible(self, Y: np.ndarray) -> np.ndarray:
        """(n,) which observed rows of Y (n, outputs) satisfy every outcome constraint."""
        ok = np.ones(len(Y), bool)
        for c in self.constraints:
            k = self.outputs.index(c.name)
            ok &= np.asarray([c.satisfied(v) for v in Y[:, k]], bool)
        return ok

    def warped(self, warp) -> "Problem":
        """This problem as seen by a model fitted through ``warp`` (a
        ``surrogates.OutputWarp`` over the outputs): each outcome constraint on a warped
        output bounds the warped value at the warped bound. The warp is increasing, so
        the feasible rows and points are the same; the objectives' scores are the warped
        values'."""
        if not self.constraints or not self.warped_outputs:
            return self
        bounds = []
        for c in self.constraints:
            k = self.outputs.index(c.name)
            if k in self.warped_outputs:
                c = dataclasses.replace(
                    c, bound=float(warp.column(k)(np.array([[c.bound]]))[0, 0]))
            bounds.append(c)
        return dataclasses.replace(self, constraints=tuple(bounds))

    # -- held columns: context values and a multi-task target -------------------

    def held(self) -> dict[str, Any]:
        """Parameters the engine holds fixed itself: a multi-task campaign's task."""
        if self.tasks is not None and self.tasks.held:
            return {self.tasks.parameter: self.tasks.target}
        return {}

    def fixed_columns(self, values: Mapping[str, Any]) -> dict[int, float]:
        """Encoded column -> value for the given parameter values (context, task)."""
        fixed: dict[int, float] = {}
        if not values:
            return fixed
        middle = self.space.decode(np.full((1, self.dim), 0.5))[0]
        for name, cols in self.columns.items():  # in column order: sums over it stay put
            if name in values:
                z = self.space.encode([{**middle, name: values[name]}])[0]
                fixed.update((j, float(z[j])) for j in cols)
        return fixed

    def on_target(self, params: Mapping[str, Any]) -> bool:
        """Whether a trial is at the target task / fidelity (always, for other models):
        the best result and the incumbent are taken among these trials only."""
        return self.tasks is None or params[self.tasks.parameter] == self.tasks.target

    def target_rows(self, X: np.ndarray) -> np.ndarray:
        """(n,) mask of encoded rows X (n, d) at the target task / fidelity."""
        if self.tasks is None:
            return np.ones(len(X), bool)
        if not len(X):
            return np.zeros(0, bool)
        name, target = self.tasks.parameter, self.tasks.target
        return np.asarray([r[name] == target for r in self.space.decode(X)], bool)


# -- resolution: the only reader of the spec ----------------------------------------


def noise_prior_of(spec: CampaignSpec) -> str:
    """The GP's noise prior: the spec's, or "auto" read from its oracle."""
    chosen = spec.surrogate.noise_prior if isinstance(spec.surrogate, GPSpec) else "auto"
    oracle = spec.oracle
    measured = oracle is not None and (oracle.command is not None or (
        oracle.dataset is not None and oracle.mode != "emulator"))
    return policy.noise_prior(chosen, measured)


def acquisition_of(spec: CampaignSpec) -> str:
    """The acquisition in use: the spec's, or the default for its objectives."""
    if spec.acquisition.type is not None:
        return spec.acquisition.type
    return policy.default_acquisition(
        objectives=len(spec.objectives),
        targets=any(o.target is not None for o in spec.objectives),
        surrogate=spec.surrogate.type, batch_size=spec.acquisition.batch_size,
        noise_prior=noise_prior_of(spec))


def output_warping_of(spec: CampaignSpec) -> str:
    """The objective's output warping in use: the spec's, or the one "auto" picks
    (``policy.output_warping``)."""
    cfg = spec.surrogate
    return policy.output_warping(
        cfg.output_warping if isinstance(cfg, GPSpec) else "none", surrogate=cfg.type,
        objectives=len(spec.objectives),
        targets=any(o.target is not None for o in spec.objectives),
        constraints=bool(spec.outcome_constraints), acquisition=acquisition_of(spec),
        known_noise=isinstance(cfg, GPSpec) and cfg.noise is not None,
        noise_prior=noise_prior_of(spec))


def warped_outputs_of(spec: CampaignSpec, outputs: list[str],
                      constraints: tuple[OutcomeConstraint, ...]
                      ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The modelled outputs (indices into ``outputs``) the GP sees warped, and those of
    them that keep their warp only where it is strong (``OutputWarp.fit``'s
    ``strong_only``): the objective when ``output_warping_of`` says so, and the outputs
    only constraints bound as ``policy.constraint_warping`` says."""
    cfg = spec.surrogate
    warped = {0} if output_warping_of(spec) == "yeo_johnson" else set()
    mode = policy.constraint_warping(
        cfg.output_warping if isinstance(cfg, GPSpec) else "none", surrogate=cfg.type,
        objectives=len(spec.objectives), acquisition=acquisition_of(spec),
        known_noise=isinstance(cfg, GPSpec) and cfg.noise is not None,
        noise_prior=noise_prior_of(spec))
    bound = set()
    if mode != "none":
        objectives = {o.name for o in spec.objectives}
        bound = {outputs.index(c.name) for c in constraints if c.name not in objectives}
    strong = bound if mode == "strong" else set()
    return tuple(sorted(warped | bound)), tuple(sorted(strong))


def resolve(spec: CampaignSpec, space: SearchSpace, base_dir: Path | None = None) -> Problem:
    """The Problem of a validated spec over its search space.

    base_dir: the spec's folder, against which a relative prior path is read.
    """
    constraints = tuple(parse_outcome_constraint(t) for t in spec.outcome_constraints)
    outputs = [o.name for o in spec.objectives]
    outputs += [c.name for c in constraints if c.name not in outputs]
    warped, strong = warped_outputs_of(spec, outputs, constraints)
    goals = tuple(Goal(o.name, o.sign, o.target) for o in spec.objectives)
    columns, kernel_onehot, substance, col = {}, [], [], 0
    for p in space.parameters:
        columns[p.name] = tuple(range(col, col + p.columns))
        if isinstance(p, Categorical):
            (kernel_onehot.append if p.encoding == "onehot" else substance.extend)(
                columns[p.name])
        col += p.columns
    cfg = spec.surrogate
    options = cfg.model_dump(exclude={"type"})
    prior = None
    if isinstance(cfg, GPSpec) and cfg.prior is not None:
        prior = PriorSource(cfg.prior, spec.tracking, base_dir)
    return Problem(
        space=space, outputs=tuple(outputs), goals=goals, constraints=constraints,
        context=tuple(spec.context), surrogate=cfg.type,
        surrogate_options=MappingProxyType(options), noise_prior=noise_prior_of(spec),
        acquisition=_acquisition(spec, goals), tasks=_tasks(spec, space, columns),
        prior=prior, columns=MappingProxyType(columns), kernel_onehot=tuple(kernel_onehot),
        substance_columns=tuple(substance),
        needs_features=any(
            (isinstance(p, Categorical) and p.encoding != "onehot")
            or (isinstance(p, Composition) and p.features) for p in space.parameters),
        warped_outputs=warped, strong_warp_outputs=strong,
    )


def _acquisition(spec: CampaignSpec, goals: tuple[Goal, ...]) -> Acquisition:
    cfg = spec.acquisition
    ref = None
    if cfg.ref_point is not None:
        ref = tuple(g.score(r) for g, r in zip(goals, cfg.ref_point))
    return Acquisition(type=acquisition_of(spec), batch_size=cfg.batch_size, beta=cfg.beta,
                       mc_samples=cfg.mc_samples, raw_samples=cfg.raw_samples,
                       num_restarts=cfg.num_restarts, steps=cfg.steps, ref_point=ref,
                       search_set=bool({"num_restarts", "steps"} & cfg.model_fields_set))


def _tasks(spec: CampaignSpec, space: SearchSpace,
           columns: Mapping[str, tuple[int, ...]]) -> Tasks | None:
    cfg = spec.surrogate
    if not isinstance(cfg, (MultiTaskSpec, MultiFidelitySpec)):
        return None
    name = cfg.task if isinstance(cfg, MultiTaskSpec) else cfg.fidelity
    p = space[name]
    onehot = isinstance(p, Categorical)
    values = tuple(p.choices) if onehot else tuple(range(p.low, p.high + 1))
    own = columns[name]
    layout = TaskLayout(own, tuple(j for j in range(space.dim) if j not in own),
                        len(p.choices) if onehot else p.levels, onehot)
    if isinstance(cfg, MultiTaskSpec):
        return Tasks(name, layout, values, cfg.target, held=True)
    target = p.choices[-1] if onehot else p.high
    return Tasks(name, layout, values, target, held=False, costs=tuple(cfg.costs))


__all__ = ["Acquisition", "Goal", "PriorSource", "Problem", "TaskLayout", "Tasks",
           "acquisition_of", "noise_prior_of", "output_warping_of", "resolve",
           "warped_outputs_of"]
