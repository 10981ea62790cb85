"""How a campaign chooses its next experiments: the initial design first, then the
surrogate model and acquisition of ``workbench.engine``.

This is the one module of the campaign that calls into ``workbench.engine``
(the engine): the problem it resolves from the spec, model fitting and proposals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.campaign.design import (DESIGN_STRATEGIES, CandidatePool, domain_design,
                                       planned_points, pool_design)
from workbench.campaign.lab import known_noise
from workbench.campaign.telemetry import data_hash, versions
from workbench.errors import CampaignError
from workbench.record import COMPLETED, PENDING, Trial
from workbench.space import SearchSpace
from workbench.spec import CampaignSpec

__all__ = ["Batch", "Proposer"]


@dataclass
class Batch:
    """What one ``ask`` proposes, one entry per experiment, and the surrogate state
    the next fit starts from (recorded with the ask event)."""

    params: list[dict] = field(default_factory=list)
    strategies: list[str] = field(default_factory=list)
    predictions: list = field(default_factory=list)
    acquisition_values: list = field(default_factory=list)
    audits: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    state: dict | None = None


class Proposer:
    """The engine side of a campaign: the problem resolved from the spec, the
    candidate pool, and the last model fitted (kept in memory for stopping rules and
    diagnostics)."""

    def __init__(self, spec: CampaignSpec, space: SearchSpace, base_dir: Path | None = None):
        from workbench.engine import resolve

        self.spec = spec
        self.space = space
        self.base_dir = base_dir
        self.fixed: dict[str, Any] = {}  # values a space update fixed: held like context
        self.problem = resolve(spec, space, base_dir)
        if any(getattr(p, "encoding", "onehot") != "onehot" or getattr(p, "features", None)
               for p in space.parameters):
            try:  # SMILES and element properties: fail now, not at the first model fit
                self.problem.feature_transform()
            except (ValueError, ImportError) as e:
                raise CampaignError(str(e)) from None
        self.pool = CandidatePool(spec, space, base_dir)
        self.last_model: tuple[Any, np.ndarray] | None = None

    def rebase(self, spec: CampaignSpec, space: SearchSpace, fixed: dict[str, Any]) -> None:
        """Resolve the problem again after a space update: the encoding changed, so the
        next model is fitted on the new one; ``fixed`` values are held in proposals."""
        self.__init__(spec, space, self.base_dir)
        self.fixed = dict(fixed)

    @property
    def acquisition_in_log_space(self) -> bool:
        """Whether the spec's acquisition values are logarithms (for stopping rules)."""
        from workbench.engine import LOG_SPACE

        return self.problem.acquisition.type in LOG_SPACE

    def check_context(self, context: Any) -> dict[str, Any]:
        """The context values an ask gives, checked against the spec's context parameters."""
        names = list(self.spec.context)
        if not names:
            if context:
                raise CampaignError(f"context: got {context!r}; this campaign has no context"
                                    " parameters (spec key context:)")
            return {}
        if not isinstance(context, dict) or sorted(context) != sorted(names):
            raise CampaignError(f"context: got {context!r}; expected a dict with exactly the"
                                f" context parameters {names}")
        return {k: self.space[k].validate_value(v) for k, v in context.items()}

    def check_shared(self, shared: Any) -> tuple[str, ...]:
        """The parameters an ask's batch shares (default: the spec's ``acquisition.shared``),
        checked; parameters already held (fixed, context) need no sharing."""
        if shared is None:
            shared = self.spec.acquisition.shared
        if isinstance(shared, str) or not isinstance(shared, (list, tuple)):
            raise CampaignError(f"shared: got {shared!r}; expected a list of parameter names")
        chosen = [n for n in self.space.names if n not in self.spec.context]
        for name in shared:
            if name not in chosen:
                raise CampaignError(f"shared: got {name!r}; expected a parameter the campaign"
                                    f" chooses, from {chosen}")
        if shared and self.pool.rows() is not None:
            raise CampaignError(f"shared: got {list(shared)}; a candidate pool's rows are run"
                                " as they are, so a batch cannot share values (expected none)")
        shared = tuple(n for n in shared if n not in self.fixed)
        if shared and set(shared) >= set(chosen) - set(self.fixed):
            raise CampaignError(f"shared: got {list(shared)}, every parameter the campaign"
                                " chooses; expected at least one left to vary in the batch")
        return shared

    # -- data ------------------------------------------------------------------

    def training_data(self, completed: list[Trial]) -> tuple[np.ndarray, np.ndarray]:
        """Encoded inputs and the modelled outcomes (objectives, then constraint outcomes)."""
        outputs = self.problem.outputs
        X = self.space.encode([t.params for t in completed])
        Y = np.asarray([[t.outcomes[name] for name in outputs]
                        for t in completed]).reshape(len(completed), len(outputs))
        return X, Y

    def feasible(self, trials: list[Trial]) -> list[Trial]:
        """The completed trials on target (task, fidelity) that satisfy the outcome
        constraints."""
        done = [t for t in trials if t.status == COMPLETED and self.problem.on_target(t.params)]
        if not done or not self.problem.constraints:
            return done
        _, Y = self.training_data(done)
        return [t for t, ok in zip(done, self.problem.feasible(Y)) if ok]

    # -- initial design ----------------------------------------------------------

    def initial_points(self, trials: list[Trial], start: int, k: int,
                       context: dict) -> np.ndarray:
        """Encoded points start..start+k of the spec's initial design (context held)."""
        Z = planned_points(self.spec, self.space, start, k, context)
        if Z is None:
            return self.space_filling(trials, start, k, context)
        if len(Z) == k:
            return Z
        return np.concatenate([Z, self.space_filling(trials, len(Z) + start, k - len(Z),
                                                     context)])

    def space_filling(self, trials: list[Trial], start: int, k: int,
                      context: dict) -> np.ndarray:
        from active_learning import expand, reduce_domain

        domain = self.space.domain()
        if self.pool.rows() is not None:
            return pool_design(self.pool.untried(trials), start, k, self.spec.seed)
        # A multi-task campaign designs for its target task (user points keep theirs).
        fixed = self.problem.fixed_columns({**context, **self.problem.held()})
        reduced, free = reduce_domain(domain, fixed) if fixed else (domain, np.arange(domain.dim))
        try:
            Z = domain_design(self.spec, reduced, start, k)
        except ValueError as e:  # constraints that leave (almost) no room to sample
            raise CampaignError(f"constraints: {e}") from None
        return expand(Z, free, fixed, domain.dim)

    # -- proposals ---------------------------------------------------------------

    def propose(self, trials: list[Trial], q: int, context: dict | None,
                warm_start: dict | None, shared: Any = None) -> Batch:
        """``q`` proposals given the trials so far: initial design points until the
        spec's ``n_initial`` are out, then the model's. ``warm_start`` is not changed;
        the batch's ``state`` is the one to record. shared: parameters every point of
        the batch shares (None: the spec's ``acquisition.shared``)."""
        context = {**(context or {}), **self.fixed}
        shared = self.check_shared(shared) if q > 1 else ()
        completed = [t for t in trials if t.status == COMPLETED]
        pending = [t for t in trials if t.status == PENDING]
        if len(completed) < 2:
            k_init = q
        else:
            k_init = min(q, max(0, self.spec.n_initial - len(completed) - len(pending)))
        batch = Batch(state=warm_start)
        if k_init:
            design = self.spec.initial_design.type
            start = sum(1 for t in trials if t.strategy in DESIGN_STRATEGIES)
            if shared:  # the first design point's shared values, held for the rest
                Z = self.initial_points(trials, start, 1, context)
                row = self.space.settable(self.space.decode(Z))[0]
                context = {**context, **{n: row[n] for n in shared}}
                shared = ()
                if k_init > 1:
                    Z = np.concatenate([Z, self.initial_points(trials, start + 1, k_init - 1,
                                                               context)])
            else:
                Z = self.initial_points(trials, start, k_init, context)
            batch.params += self.space.decode(Z)
            batch.strategies += [design] * k_init
            batch.predictions += [None] * k_init
            batch.acquisition_values += [None] * k_init
            batch.audits += [{"strategy": design, "design_index": start + i,
                              "seed": self.spec.seed, "context": context,
                              "versions": versions()} for i in range(k_init)]
        k_model = q - k_init
        if k_model:
            fantasies = [t.params for t in pending] + batch.params
            params, preds, values, audits, state = self._propose_with_model(
                trials, k_model, completed, fantasies, batch.timings, warm_start, context,
                shared)
            batch.params += params
            batch.strategies += [self.problem.acquisition.type] * k_model
            batch.predictions += preds
            batch.acquisition_values += values
            batch.audits += audits
            if state is not None:
                batch.state = state
        if self.pool.rows() is None:  # a pool's rows are run as they are
            batch.params = self.space.settable(batch.params)
        return batch

    def _propose_with_model(self, trials, q, completed, fantasies, timings, warm_start,
                            context=None, shared=()):
        import jax

        from active_learning import NoFeasiblePoint
        from surrogates import release_programs_if_crowded
        from workbench._jax import configure_jax
        from workbench.engine import propose

        configure_jax()
        release_programs_if_crowded()  # a lab loop of many campaigns keeps many programs
        X, Y = self.training_data(completed)
        key = jax.random.fold_in(jax.random.key(self.spec.seed), len(trials))
        F = self.space.encode(fantasies) if fantasies else np.zeros((0, X.shape[1]))
        pool = None
        if self.pool.rows() is not None:
            pool = self.pool.untried(trials)
            if len(pool) < q:
                raise CampaignError(f"candidates: {len(pool)} candidates left untried; expected"
                                    f" at least {q} (the pool is exhausted)")
        try:
            proposals = propose(self.problem, X, Y, F, q, key, warm_start, context, timings,
                                pool=pool, shared=shared,
                                noise=known_noise(self.problem.outputs, completed))
        except NoFeasiblePoint as e:
            raise CampaignError(f"constraints: {e}") from None
        self.last_model = (proposals[0].model, X)  # in memory only: for stopping rules
        provenance = dict(data_hash=data_hash(X, Y), versions=versions(),
                          prng={"seed": self.spec.seed, "fold_in": len(trials)})
        return ([p.params for p in proposals], [p.prediction for p in proposals],
                [p.acquisition_value for p in proposals],
                [dict(p.audit, **provenance) for p in proposals],
                proposals[0].surrogate_state)

    def current_model(self, trials: list[Trial], warm_start: dict | None) -> Any:
        """The surrogate the next ``ask`` would fit on the completed ``trials``: the
        spec's model, the same PRNG key and warm start. Queried with encoded points."""
        import jax

        from workbench._jax import configure_jax
        from workbench.engine import fit_surrogate

        completed = [t for t in trials if t.status == COMPLETED]
        if len(completed) < 2:
            raise CampaignError(f"campaign {self.spec.name!r} has {len(completed)} completed"
                                " trials; expected at least 2 to fit a model")
        configure_jax()
        X, Y = self.training_data(completed)
        key = jax.random.fold_in(jax.random.key(self.spec.seed), len(trials))
        k_fit, _ = jax.random.split(key)
        model, _ = fit_surrogate(self.problem, X, Y, k_fit, len(X), warm_start)
        return model

    def confidence_gap(self) -> tuple[float | None, float | None]:
        """Upper and lower confidence bounds of the best point under the last model
        (for the ``regret_bound`` stopping rule); (None, None) before any model."""
        if not self.last_model:
            return None, None
        import active_learning as al
        import jax
        from active_learning.stopping import confidence_gap

        from surrogates.output_warping import unwarp

        model, X = self.last_model
        model, warp = unwarp(model)
        domain = self.space.domain()
        cand = domain.snap(al.quasi_random(jax.random.key(self.spec.seed), 1024, domain.dim))
        sign = self.spec.objectives[0].sign
        bounds = confidence_gap(model, cand, X, beta=self.spec.acquisition.beta, sign=sign)
        if warp is None:
            return bounds
        # Bounds of the warped Gaussian, mapped back: the warp is increasing, so a bound
        # at so many standard deviations is the output's quantile of the same level.
        back = warp.column(0).inverse(sign * np.asarray(bounds)[:, None])[:, 0]
        return float(sign * back[0]), float(sign * back[1])
