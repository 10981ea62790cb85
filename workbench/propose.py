"""Model-based proposals: fit the surrogate the spec names, build the acquisition
for its objectives and outcome constraints, and maximise it over the domain.

``Campaign.ask`` calls :func:`propose` under the store's lock. Everything here
is a function of the spec, the encoded observations, the pending points and a
PRNG key, so the same seed and data give bit-identical proposals.

Batches and pending trials: models that can be conditioned on new points (the
exact GP, SAAS) use "Kriging believer" fantasies, for any acquisition; models
that cannot (ensembles, BLL, SVGP) and hypervolume improvement pass them to a
Monte-Carlo acquisition as pending points, which scores the joint gain over
them. Context parameters (measured, not chosen) are held at the given values:
the optimiser works on the remaining columns, the acquisition sees full points.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from workbench.constraints import OutcomeConstraint, parse_outcome_constraint
from workbench.record import Prediction
from workbench.space import SearchSpace
from workbench.spec import CampaignSpec

#: Acquisitions whose values are logarithms (feasibility weighting multiplies them).
LOG_SPACE = {"log_ei", "log_nei", "qlog_nei", "log_pi", "qlog_nehvi", "log_ehvi", "parego"}


@dataclass
class Problem:
    """What the engine optimises, derived once from the spec."""

    spec: CampaignSpec
    space: SearchSpace
    outputs: list[str]                  # modelled outcomes: objectives, then constraint outcomes
    constraints: list[OutcomeConstraint]
    context: list[str] = field(default_factory=list)
    base_dir: Any = None                # the spec's folder: relative prior paths

    @classmethod
    def from_spec(cls, spec: CampaignSpec, space: SearchSpace) -> "Problem":
        constraints = [parse_outcome_constraint(t) for t in spec.outcome_constraints]
        outputs = [o.name for o in spec.objectives]
        outputs += [c.name for c in constraints if c.name not in outputs]
        return cls(spec, space, outputs, constraints, list(spec.context))

    def feature_transform(self):
        """Composition descriptors in front of the surrogate, or None (built once)."""
        if not hasattr(self, "_transform"):
            from workbench.materials import feature_transform

            self._transform = feature_transform(self.space)
        return self._transform

    @property
    def task_parameter(self) -> str | None:
        """The multi-task GP's task or the multi-fidelity GP's fidelity parameter, or None."""
        cfg = self.spec.surrogate
        return cfg.task if cfg.type == "multitask" else (
            cfg.fidelity if cfg.type == "multifidelity" else None)

    @property
    def target_level(self) -> Any:
        """The task proposals are for, or the highest fidelity (a choice or an integer)."""
        cfg = self.spec.surrogate
        if cfg.type == "multitask":
            return cfg.target
        p = self.space[cfg.fidelity]
        return p.choices[-1] if hasattr(p, "choices") else p.high

    def held(self) -> dict[str, Any]:
        """Parameters the engine holds fixed itself: a multi-task campaign's task."""
        if self.spec.surrogate.type == "multitask":
            return {self.spec.surrogate.task: self.spec.surrogate.target}
        return {}

    def on_target(self, params: dict) -> bool:
        """Whether a trial is at the target task / fidelity (always, for other models):
        the best result and the incumbent are taken among these trials only."""
        name = self.task_parameter
        return name is None or params[name] == self.target_level

    def target_rows(self, X: np.ndarray) -> np.ndarray:
        """(n,) mask of encoded rows at the target task / fidelity."""
        name = self.task_parameter
        if name is None:
            return np.ones(len(X), bool)
        return np.asarray([r[name] == self.target_level for r in self.space.decode(X)], bool) \
            if len(X) else np.zeros(0, bool)

    @property
    def objectives(self):
        return list(self.spec.objectives)

    def scores(self, Y: np.ndarray) -> np.ndarray:
        """(n, outputs) observations -> (n, objectives) values to maximise."""
        return np.stack([np.asarray([o.score(v) for v in Y[:, k]])
                         for k, o in enumerate(self.objectives)], axis=1)

    def feasible(self, Y: np.ndarray) -> np.ndarray:
        """Which observed rows satisfy every outcome constraint."""
        ok = np.ones(len(Y), bool)
        for c in self.constraints:
            k = self.outputs.index(c.name)
            ok &= np.asarray([c.satisfied(v) for v in Y[:, k]], bool)
        return ok


# -- context: hold some columns fixed ---------------------------------------------


def context_columns(space: SearchSpace, context: dict[str, Any]) -> dict[int, float]:
    """Encoded column -> value for the given context parameter values."""
    fixed: dict[int, float] = {}
    col = 0
    for p in space.parameters:
        if p.name in context:
            z = space.encode([{**_any_point(space), p.name: context[p.name]}])[0]
            for j in range(col, col + p.columns):
                fixed[j] = float(z[j])
        col += p.columns
    return fixed


def _any_point(space: SearchSpace) -> dict:
    return space.decode(np.full((1, space.dim), 0.5))[0]


def reduce_domain(domain, fixed: dict[int, float]):
    """The domain over the free columns when ``fixed`` columns hold given values.

    Returns (reduced Domain, free column indices). Linear rows keep their free
    part, with the fixed part moved to the right-hand side.
    """
    from active_learning import Domain

    free = [j for j in range(domain.dim) if j not in fixed]
    where = {j: i for i, j in enumerate(free)}

    def rows(rs):
        out = []
        for coeffs, rhs in rs:
            rhs = rhs - sum(coeffs[j] * v for j, v in fixed.items())
            out.append((tuple(coeffs[j] for j in free), rhs))
        return tuple(out)

    integer = tuple((where[c], lv) for c, lv in domain.integer if c in where)
    onehot = tuple(tuple(where[c] for c in g) for g in domain.onehot
                   if all(c in where for c in g))
    return Domain(dim=len(free), integer=integer, onehot=onehot,
                  equalities=rows(domain.equalities),
                  inequalities=rows(domain.inequalities)), np.asarray(free)


def _with_context(acquisition, free: np.ndarray, fixed: dict[int, float], dim: int):
    import jax.numpy as jnp

    import active_learning as al

    if not fixed:
        return acquisition
    return al.FixedColumns(acquisition, jnp.asarray(free), jnp.asarray(sorted(fixed)),
                           jnp.asarray([fixed[j] for j in sorted(fixed)]), dim)


def expand(Z: np.ndarray, free: np.ndarray, fixed: dict[int, float], dim: int) -> np.ndarray:
    """Reduced points (n, free) -> full encoded points (n, dim)."""
    Z = np.atleast_2d(np.asarray(Z, np.float64))
    out = np.zeros((Z.shape[0], dim))
    out[:, free] = Z
    for j, v in fixed.items():
        out[:, j] = v
    return out


# -- surrogates ---------------------------------------------------------------------


def fit_surrogate(problem: Problem, X: np.ndarray, Y: np.ndarray, key, capacity: int,
                  warm: dict | None):
    """Fit the spec's surrogate on encoded X (n, d), outputs Y (n, m).

    Returns (model, state): state is JSON-ready (the GP's hyperparameters, for
    the next fit's warm start and the audit) or None.
    """
    import surrogates as sg

    transform = problem.feature_transform()
    if transform is not None:
        # Composition descriptors: fit on [X, features(X)], query with encoded X.
        import jax.numpy as jnp

        from surrogates.transforms import InputTransformed

        Xt = np.asarray(transform(jnp.asarray(X)))
        model, state = _fit(problem, Xt, Y, key, capacity, warm)
        return InputTransformed(model, transform), state
    return _fit(problem, X, Y, key, capacity, warm)


def _fit(problem: Problem, X: np.ndarray, Y: np.ndarray, key, capacity: int,
         warm: dict | None):
    import surrogates as sg

    cfg = problem.spec.surrogate
    d = X.shape[1]
    unit = (np.zeros(d), np.ones(d))
    if cfg.type == "gp" and cfg.prior is not None:
        from workbench.transfer import fit_with_prior

        model = fit_with_prior(cfg.prior, problem.space, X, Y, key=key,
                               tracking=problem.spec.tracking, base_dir=problem.base_dir,
                               capacity=capacity, restarts=cfg.restarts)
        return model, None
    if cfg.type == "gp":
        kernel = sg.parse_kernel(cfg.kernel)
        # Exchangeable categories, except those the model sees through descriptors.
        from workbench.space import Categorical

        cats = [p for p in problem.space.parameters if isinstance(p, Categorical)]
        onehot = [g for g, p in zip(problem.space.domain().onehot, cats)
                  if p.encoding == "onehot"]
        if onehot:
            kernel = sg.with_categorical(kernel, onehot, d, structure=cfg.categorical)
        kernel = sg.resolve_kernel(kernel, d, warping=cfg.warping)
        start, noise_prior = None, problem.spec.resolved_noise_prior
        if warm is not None:
            try:
                start = sg.hyperparameters_from_dict(warm)
                sg.gp.check_warm_start(start, kernel, d, Y.shape[1], cfg.noise is None,
                                   sg.gp.resolve_noise_prior(noise_prior))
            except (ValueError, KeyError, TypeError):
                start = None  # another kernel or dimension: start cold
        noise = None if cfg.noise is None else np.full(Y.shape, cfg.noise)
        model = sg.fit_gp(X, Y, key=key, bounds=unit, capacity=capacity,
                          restarts=cfg.restarts, warm_start=start, kernel=kernel,
                          noise=noise, learn_noise=cfg.noise is None,
                          noise_prior=noise_prior)
        return model, sg.hyperparameters_to_dict(model.hyperparameters)
    if cfg.type == "saas":
        model = sg.fit_saas_gp(X, Y, key=key, bounds=unit, capacity=capacity,
                               num_warmup=cfg.num_warmup, num_samples=cfg.num_samples,
                               thinning=max(1, cfg.num_samples // 32))
        return model, {"median_lengthscale": np.asarray(model.median_lengthscale).tolist()}
    if cfg.type == "ensemble":
        model = sg.fit_ensemble(X, Y, key=key, members=cfg.members, hidden=tuple(cfg.hidden),
                                epochs=cfg.epochs, bounds=unit)
        from surrogates.transforms import Latent

        return Latent(model), None
    if cfg.type == "bll":
        model = sg.fit_bll(X, Y, key=key, hidden=tuple(cfg.hidden), epochs=cfg.epochs,
                           bounds=unit)
        return model, None
    if cfg.type == "deep_kernel":
        from surrogates.deep_kernel import fit_deep_kernel_gp

        model = fit_deep_kernel_gp(X, Y, key=key, bounds=unit, capacity=capacity,
                                      hidden=tuple(cfg.hidden), features=cfg.features,
                                      restarts=min(cfg.restarts, 4))
        return model, None
    if cfg.type in ("multitask", "multifidelity"):
        from workbench.tasks import fit_task_columns, task_layout

        layout = task_layout(problem.space, problem.task_parameter)
        target = (problem.space[cfg.task].choices.index(cfg.target) if cfg.type == "multitask"
                  else layout[2] - 1)
        model = fit_task_columns(cfg.type, X, Y, layout, key=key, target=target,
                                 costs=cfg.costs, rank=cfg.rank, capacity=capacity,
                                 restarts=cfg.restarts)
        return model, None  # hyperparameter warm starts are the plain GP's
    if cfg.type == "svgp":
        model = sg.fit_svgp(X, Y, key=key, num_inducing=min(cfg.num_inducing, len(X)),
                            bounds=unit)
        return model, None
    raise ValueError(f"surrogate.type: got {cfg.type!r}")


def can_condition(model) -> bool:
    """Whether the model takes Kriging-believer fantasies (``condition``)."""
    return hasattr(model, "condition")


# -- acquisition -----------------------------------------------------------------------


def padded(X: np.ndarray, dim: int):
    """Rows padded to a bucket size (a growing campaign compiles a few times, not
    once per experiment) and their mask; padding repeats a real row when there is one."""
    import jax.numpy as jnp

    from surrogates import bucket_size

    X = np.asarray(X, np.float64).reshape(-1, dim)
    n = len(X)
    size = bucket_size(max(n, 1), minimum=8)
    fill = X[:1] if n else np.full((1, dim), 0.5)
    Xp = np.concatenate([X, np.repeat(fill, size - n, axis=0)])
    mask = np.arange(size) < n
    return jnp.asarray(Xp), jnp.asarray(mask)


def _objective_map(problem: Problem):
    import active_learning as al

    objs = problem.objectives
    return al.Objectives(outputs=tuple(range(len(objs))),
                         signs=tuple(o.sign for o in objs),
                         targets=tuple(o.target for o in objs))


def _constraints(problem: Problem):
    import active_learning as al

    if not problem.constraints:
        return None
    return al.OutcomeConstraints.from_tuples(
        [(problem.outputs.index(c.name), c.op, c.bound) for c in problem.constraints])


def incumbent(problem: Problem, Y: np.ndarray, X: np.ndarray | None = None,
              model=None) -> float:
    """Best observed score of the single objective among feasible rows (the worst
    score when none is feasible, so that feasibility drives the search).

    Multi-task and multi-fidelity campaigns (X and the fitted model given): among
    rows at the target task / fidelity; before there is one, the best lower
    confidence score (mean - std) of the target's posterior at the observed
    points, Huang et al.'s (2006) effective best.
    """
    s = problem.scores(Y)[:, 0]
    ok = problem.feasible(Y)
    if problem.task_parameter is not None and X is not None:
        on_target = problem.target_rows(X)
        if not on_target.any():
            return _effective_best(problem, model, X) if model is not None and len(X) \
                else float(np.min(s))
        ok, s = ok[on_target], s[on_target]
    return float(np.max(s[ok])) if ok.any() else float(np.min(s))


def _effective_best(problem: Problem, model, X: np.ndarray) -> float:
    """max_i sign * mean(x_i) - std(x_i) of the target's posterior, as a score."""
    import jax.numpy as jnp

    from surrogates import posterior_moments

    at_target = X.copy()
    for j, v in context_columns(problem.space, {problem.task_parameter:
                                                problem.target_level}).items():
        at_target[:, j] = v
    mean, var = posterior_moments(model, jnp.asarray(at_target))
    sign = problem.objectives[0].sign
    return float(np.max(sign * np.asarray(mean)[:, 0] - np.sqrt(np.asarray(var)[:, 0])))


def build_acquisition(problem: Problem, model, X: np.ndarray, Y: np.ndarray, best: float,
                      key, domain, X_pending: np.ndarray | None,
                      X_believed: np.ndarray | None = None):
    """The spec's acquisition on ``model``.

    X_believed: points the model was conditioned on at their predicted values
    (Kriging believer): log_ehvi counts them in the front it improves on.
    best: the single objective's incumbent (maximised score); X_pending: points
    to score jointly with (models without ``condition`` and hypervolume only).
    """
    import jax
    import jax.numpy as jnp

    import active_learning as al

    cfg = problem.spec.acquisition
    kind = problem.spec.acquisition_type
    obj = problem.objectives[0]
    d = domain.dim
    pend = None if X_pending is None or not len(X_pending) else padded(X_pending, d)
    Xb = padded(X, d)
    if len(problem.objectives) > 1:
        omap = _objective_map(problem)
        scores = jnp.asarray(problem.scores(Y))
        if kind == "parego":
            k_w, key = jax.random.split(key)
            weights = al.sample_simplex(k_w, len(problem.objectives))
            scal = al.ChebyshevScalarization.from_observations(weights, scores,
                                                               objectives=omap)
            best_s = float(jnp.max(scal(jnp.asarray(Y))))
            acq = al.ScalarizedLogEI(model, scal, best_s, key, num_samples=cfg.mc_samples)
        elif kind == "log_ehvi" and pend is None:
            # The front: feasible observations (infeasible ones are no part of any
            # front), and the points believed in.
            front = X[problem.feasible(Y)]
            if X_believed is not None and len(X_believed):
                front = np.concatenate([front, np.asarray(X_believed)])
            Xp, mask = padded(front, d)
            acq = al.LogExpectedHypervolumeImprovement(
                model, Xp, reference(problem, Y), outputs=omap.outputs, signs=omap.signs,
                baseline_mask=mask)
        elif kind in ("qlog_nehvi", "log_ehvi"):
            # Pending points join the baseline, padded with it to one bucket (log_ehvi
            # scores one point: with points pending, their joint gain needs samples).
            # Infeasible observations are no part of any front.
            base = X[problem.feasible(Y)]
            if pend is not None:
                base = np.concatenate([base, np.asarray(X_pending)])
            Xp, mask = padded(base, d)
            acq = al.qLogNoisyExpectedHypervolumeImprovement(
                model, Xp, reference(problem, Y), key, baseline_mask=mask, objectives=omap,
                num_samples=min(cfg.mc_samples, 64))
        elif kind == "max_variance":
            return al.PosteriorVariance(model)
        else:
            raise ValueError(f"acquisition.type {kind!r} with several objectives")
    elif obj.target is not None:
        if kind in ("max_variance", "ivr"):
            return _single(problem, model, Xb, best, key, domain, pend)
        target = al.TargetObjective(obj.target, output=0)
        acq = al.ScalarizedLogEI(model, target, best, key, num_samples=cfg.mc_samples)
    else:
        acq = _single(problem, model, Xb, best, key, domain, pend)
    constraints = _constraints(problem)
    if constraints is not None and kind in LOG_SPACE:
        acq = al.feasibility_weighted(acq, model, constraints)
    return acq


def _single(problem: Problem, model, baseline, best: float, key, domain, pending):
    import jax.numpy as jnp

    import active_learning as al

    cfg = problem.spec.acquisition
    kind = problem.spec.acquisition_type
    sign = problem.objectives[0].sign
    X_train, mask = baseline
    if pending is not None:
        X_pending, pending_mask = pending
        # No conditioning: score the joint gain over the pending points instead.
        if kind == "ucb":
            return al.qUpperConfidenceBound(model, beta=cfg.beta, sign=sign, X_pending=X_pending,
                                            pending_mask=pending_mask)
        if kind in ("log_ei", "log_nei", "qlog_nei", "log_pi"):
            return al.qLogNoisyExpectedImprovement(model, X_train, baseline_mask=mask,
                                                   sign=sign, num_samples=cfg.mc_samples,
                                                   X_pending=X_pending,
                                                   pending_mask=pending_mask)
    if kind == "ucb":
        return al.UpperConfidenceBound(model, beta=cfg.beta, sign=sign)
    if kind == "log_pi":
        return al.LogProbabilityOfImprovement(model, jnp.asarray(sign * best), sign=sign)
    if kind == "log_nei":
        return al.LogNoisyExpectedImprovement(model, X_train, baseline_mask=mask, sign=sign,
                                              num_samples=cfg.mc_samples)
    if kind == "qlog_nei":
        return al.qLogNoisyExpectedImprovement(model, X_train, baseline_mask=mask, sign=sign,
                                               num_samples=cfg.mc_samples)
    if kind == "max_variance":
        return al.PosteriorVariance(model)
    if kind == "ivr":
        reference_set = al.quasi_random(key, 256, domain.dim)
        return al.IntegratedVarianceReduction(model, reference_set, jnp.asarray(1e-6))
    if kind == "mes":
        candidates = al.quasi_random(key, 1024, domain.dim)
        optima = al.sample_optimal_values(model, candidates, key, num_samples=16, sign=sign)
        return al.MaxValueEntropySearch(model, optima, sign=sign)
    return al.LogExpectedImprovement(model, jnp.asarray(sign * best), sign=sign)


def reference(problem: Problem, Y: np.ndarray) -> np.ndarray:
    """Hypervolume reference point in maximised-objective units: the spec's, or a
    margin below the worst observed value of each objective."""
    ref = problem.spec.acquisition.ref_point
    if ref is not None:
        return np.asarray([o.score(r) for o, r in zip(problem.objectives, ref)])
    s = problem.scores(Y)
    lo, hi = s.min(axis=0), s.max(axis=0)
    return lo - 0.1 * np.maximum(hi - lo, 1e-9)


# -- the proposal ------------------------------------------------------------------


_ANCHORS = 1  # best observations the acquisition search also starts near. More exploit
# harder: median regrets over 10 seeds with 1 / 2 / 4 (benchmarks/RESULTS.md): Ackley-10
# 17.9 / 18.3 / 18.8, noisy Hartmann-6 0.24 / 0.34 / 0.42, pressure vessel 6.0 / 5.3 / 4.8.


def anchors(problem: Problem, X: np.ndarray, Y: np.ndarray, free: np.ndarray,
            model=None) -> np.ndarray | None:
    """The _ANCHORS best observed points (reduced columns): by the score of the single
    objective, or spread along the Pareto front for several; feasible ones first.
    With ``model`` (noisy observations) the ranking uses its posterior mean at
    the observed points, not the observations, whose best is biased upwards by
    the noise. Multi-task campaigns take rows at the target task only."""
    if not len(X):
        return None
    rows = np.arange(len(X))
    if problem.task_parameter is not None:
        rows = rows[problem.target_rows(X)]
        if not len(rows):
            return None
    ranked = Y
    if model is not None:
        import jax.numpy as jnp

        from surrogates import posterior_moments

        ranked = np.asarray(posterior_moments(model, jnp.asarray(X))[0])
    s, ok = problem.scores(ranked[rows]), problem.feasible(Y[rows])
    if ok.any():
        rows, s = rows[ok], s[ok]
    if s.shape[1] == 1:
        order = rows[np.argsort(-s[:, 0], kind="stable")][:_ANCHORS]
    else:
        from active_learning.multiobjective import pareto_mask_np

        front = np.flatnonzero(pareto_mask_np(s))
        front = front[np.argsort(s[front, 0], kind="stable")]
        k = min(_ANCHORS, len(front))  # evenly along the front, centred: one is its middle
        order = rows[front[((np.arange(k) + 0.5) * len(front) / k).astype(int)]]
    return X[np.resize(order, _ANCHORS)][:, free]


def propose(problem: Problem, X: np.ndarray, Y: np.ndarray, fantasies: np.ndarray, q: int,
            key, warm: dict | None, context: dict[str, Any] | None = None,
            timings: dict | None = None, pool: np.ndarray | None = None):
    """q model-based proposals.

    X (n, d), Y (n, outputs): completed observations, encoded; fantasies:
    (p, d) encoded points asked but not told (pending trials and earlier points
    of this batch); pool: (N, d) encoded candidates still free, when the
    campaign chooses from a discrete pool (every row is scored). Returns (encoded points (q, d), predictions, acquisition
    values, surrogate state, audit dict, the fitted model).
    """
    import jax
    import jax.numpy as jnp

    from active_learning import maximize_acquisition
    from surrogates import posterior_moments

    timings = {} if timings is None else timings
    spec = problem.spec
    cfg = spec.acquisition
    kind = spec.acquisition_type
    domain = problem.space.domain()
    # A multi-task campaign proposes for its target task: held like a context.
    held = {**(context or {}), **problem.held()}
    fixed = context_columns(problem.space, held)
    reduced, free = reduce_domain(domain, fixed) if fixed else (domain, np.arange(domain.dim))
    k_fit, k_acq = jax.random.split(key)
    conditionable_type = spec.surrogate.type in ("gp", "saas", "deep_kernel", "multitask",
                                                 "multifidelity")
    capacity = len(X) + (len(fantasies) + q if conditionable_type else 0)
    t0 = time.perf_counter()
    model, state = fit_surrogate(problem, X, Y, k_fit, capacity, warm)
    jax.block_until_ready(model)
    timings["fit_time_s"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    base = model
    several = len(problem.objectives) > 1
    # Monte-Carlo acquisitions take pending points jointly (sequential greedy with
    # MC fantasies, as BoTorch does); analytic ones need believer fantasies.
    believer = can_condition(model) and kind not in ("qlog_nehvi", "qlog_nei")
    best = incumbent(problem, Y, X, model) if not several else float("nan")
    pending = np.zeros((0, domain.dim))
    believed_X = np.zeros((0, domain.dim))  # conditioned on at predicted values
    if len(fantasies):
        if believer:
            believed_X = np.asarray(fantasies)
            Xf = jnp.asarray(fantasies)
            believed = posterior_moments(model, Xf)[0]
            model = model.condition(Xf, believed)
            on_target = problem.target_rows(np.asarray(fantasies))
            if not several and on_target.any():
                best = max(best, float(np.max(
                    problem.scores(np.asarray(believed))[on_target, 0])))
        else:
            pending = np.asarray(fantasies)
    # Noisy observations (the noisy-EI acquisitions): anchors by posterior mean.
    near = anchors(problem, X, Y, free, base if kind in ("log_nei", "qlog_nei") else None)
    chosen, values = [], []
    for j in range(q):
        k_j = jax.random.fold_in(k_acq, j)
        if pool is not None:
            x, v, pool = _from_pool(problem, model, X, Y, best, k_j, domain,
                                    pending if len(pending) else None, pool)
        elif kind == "thompson":
            x, v = _thompson(problem, model, reduced, free, fixed, domain.dim, k_j)
        elif spec.surrogate.type == "multifidelity":
            x, v = _point_and_fidelity(problem, model, best, k_j, domain, held)
        else:
            acq = build_acquisition(problem, model, X, Y, best, jax.random.fold_in(k_j, 1),
                                    domain, pending if len(pending) else None, believed_X)
            acq = _with_context(acq, free, fixed, domain.dim)
            z, v = maximize_acquisition(acq, reduced, k_j, raw_samples=cfg.raw_samples,
                                        num_restarts=cfg.num_restarts, steps=cfg.steps,
                                        anchors=near)
            x = expand(np.asarray(z), free, fixed, domain.dim)[0]
        chosen.append(np.asarray(x))
        values.append(float(v))
        if j < q - 1:
            xq = jnp.asarray(x)[None]
            if believer:
                believed = posterior_moments(model, xq)[0]
                model = model.condition(xq, believed)
                believed_X = np.concatenate([believed_X, np.asarray(xq)])
                if not several and problem.target_rows(np.asarray(xq))[0]:
                    best = max(best, float(problem.scores(np.asarray(believed))[0, 0]))
            else:
                pending = np.concatenate([pending, np.asarray(xq)])
    Xc = np.stack(chosen)
    mean, var = posterior_moments(base, jnp.asarray(Xc))
    mean, std = np.asarray(mean), np.sqrt(np.asarray(var))
    timings["acquisition_time_s"] = time.perf_counter() - t1
    preds = [{name: Prediction(float(mean[i, k]), float(std[i, k]))
              for k, name in enumerate(problem.outputs)} for i in range(q)]
    audit = {
        "strategy": kind, "model": spec.surrogate.type,
        "kernel": spec.surrogate.kernel if spec.surrogate.type == "gp" else None,
        "hyperparameters": state, "n_train": int(len(X)),
        "fantasies": int(len(fantasies)),
        "fantasy_mode": "kriging_believer" if believer else "pending_points",
        "context": dict(context or {}),
    }
    if not several:
        audit["incumbent"] = incumbent(problem, Y, X, base)
    if problem.task_parameter is not None:
        from surrogates.transforms import InputTransformed
        from workbench.tasks import fit_summary

        audit[spec.surrogate.type] = fit_summary(
            base.model if isinstance(base, InputTransformed) else base)
    return Xc, preds, values, state, audit, base


def _point_and_fidelity(problem: Problem, model, best: float, key, domain,
                        held: dict[str, Any]):
    """The point and fidelity level of highest target-level improvement per unit cost.

    Each level is held in turn (like a context) and its cost-aware augmented EI
    maximised over the other columns; the best level's point wins. Returns the
    full encoded point (dim,) and its log value per unit cost.
    """
    import jax.numpy as jnp

    import active_learning as al
    from surrogates.transforms import InputTransformed
    from workbench.tasks import LevelCost, MultiFidelityLogEI, noise_variances

    cfg = problem.spec.acquisition
    inner, transform = (model.model, model.transform) if isinstance(model, InputTransformed) \
        else (model, None)
    sign = problem.objectives[0].sign
    value = MultiFidelityLogEI(inner, jnp.asarray(sign * best), noise_variances(inner),
                               transform, sign=sign)
    cost = LevelCost(jnp.asarray(problem.spec.surrogate.costs, jnp.float64), inner.columns,
                     inner.levels, inner.onehot)
    acq = al.CostAware(value, cost, log_space=True)
    p = problem.space[problem.task_parameter]
    levels = list(p.choices) if hasattr(p, "choices") else list(range(p.low, p.high + 1))
    best_x, best_v = None, -np.inf
    for level in levels:
        fixed = context_columns(problem.space, {**held, p.name: level})
        reduced, free = reduce_domain(domain, fixed)
        z, v = al.maximize_acquisition(_with_context(acq, free, fixed, domain.dim), reduced, key,
                                       raw_samples=cfg.raw_samples,
                                       num_restarts=cfg.num_restarts, steps=cfg.steps)
        if best_x is None or float(v) > best_v:
            best_x = expand(np.asarray(z), free, fixed, domain.dim)[0]
            best_v = float(v)
    return best_x, best_v


def _from_pool(problem: Problem, model, X, Y, best, key, domain, pending, pool):
    """The best free candidate of the pool and its value; the pool without it."""
    import jax
    import jax.numpy as jnp

    import active_learning as al

    P = jnp.asarray(pool)
    if problem.spec.acquisition_type == "thompson":
        (idx,) = al.thompson_sample(model, P, key, q=1, sign=problem.objectives[0].sign)
        i, v = int(idx), float("nan")
    else:
        acq = build_acquisition(problem, model, X, Y, best, jax.random.fold_in(key, 1), domain,
                                pending)
        values = np.asarray(al.score_pool(acq, P, chunk=4096))
        i = int(np.argmax(values))
        v = float(values[i])
    return pool[i], v, np.delete(pool, i, axis=0)


def _thompson(problem: Problem, model, reduced, free, fixed, dim: int, key):
    """One Thompson sample: the argmax of a joint posterior draw of the first
    objective's score on a quasi-random set of valid points."""
    import active_learning as al
    from active_learning import sample_feasible

    n = min(problem.spec.acquisition.raw_samples, 1024)
    if reduced.constrained:
        seed = int(np.asarray(al.quasi_random(key, 1, 1))[0, 0] * 2**31)
        Zr = sample_feasible(n, reduced, seed)
    else:
        Zr = np.asarray(reduced.snap(al.quasi_random(key, n, reduced.dim)))
    candidates = expand(Zr, free, fixed, dim)
    obj = problem.objectives[0]
    (idx,) = al.thompson_sample(model, candidates, key, q=1, sign=obj.sign)
    return candidates[int(idx)], float("nan")


__all__ = ["Problem", "build_acquisition", "context_columns", "expand", "fit_surrogate",
           "incumbent", "propose", "reduce_domain"]
