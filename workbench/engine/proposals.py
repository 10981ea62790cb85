"""Model-based proposals: fit the Problem's surrogate, build its acquisition and
maximise it over the encoded domain, one point of a batch at a time.

``Campaign.ask`` calls :func:`propose` under the store's lock. Everything here
is a function of the Problem, the encoded observations, the pending points
and a PRNG key, so the same seed and data give bit-identical proposals.

Batches and pending trials: models that can be conditioned on new points
(``surrogates.Conditionable``: the exact GP, SAAS, task columns) use "Kriging
believer" fantasies, for any acquisition except the joint Monte-Carlo ones;
models that cannot (ensembles, BLL, SVGP) pass them to a Monte-Carlo
acquisition as pending points, which scores the joint gain over them. Context
parameters (measured, not chosen) are held at the given values: the optimiser
works on the remaining columns, the acquisition sees full points. Shared parameters
(one plate, one temperature for a whole batch) are held the same way, at the value
whose whole batch scores best among a few candidates (:func:`_shared_batch`).

Shapes: ``n`` observations, ``p`` pending points, ``q`` proposals, ``d``
encoded columns, ``k`` free columns, ``N`` pool rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import active_learning as al
from active_learning import FixedColumns, expand, reduce_domain
from active_learning.multifidelity import LevelCost, MultiFidelityLogEI
from surrogates import Conditionable, posterior_moments
from surrogates.output_warping import unwarp
from surrogates.task_columns import fit_summary
from surrogates.transforms import InputTransformed
from workbench.engine.acquisitions import build_acquisition
from workbench.engine.fitters import FITTERS, fit_surrogate
from workbench.engine.incumbents import anchors, incumbent
from workbench.engine.problem import Acquisition, Problem
from workbench.engine.relevance import ard_relevance
from workbench.record import Prediction

# Monte-Carlo acquisitions that score pending points jointly with the candidate
# (sequential greedy with Monte-Carlo fantasies, as BoTorch does): no believer.
_JOINT_PENDING = frozenset({"qlog_nehvi", "qlog_nei"})
# Acquisitions for noisy observations: anchors are ranked by posterior mean.
_NOISY = frozenset({"log_nei", "qlog_nei"})
# Thompson sampling draws one joint posterior sample on at most this many
# quasi-random points: its Cholesky is cubic in them.
_THOMPSON_MAX_CANDIDATES = 1024
# Pool rows scored per acquisition call: bounds memory on large pools.
_POOL_CHUNK = 4096
# Shared values tried for a batch besides the first point's free optimum and the best
# observation's: quasi-random ones, so that the choice is not only local. Each costs
# one batch optimisation.
_SHARED_SAMPLES = 2
# Runners-up the acquisition optimiser found that a proposal's audit keeps (the chosen
# point first): what the choice was made against. Each differs from the chosen point and
# from every better runner-up by more than al.DISTINCT_TOLERANCE of some parameter's
# encoded range, so climbs that converged to one optimum count once.
ALTERNATIVES = 5
# Parameters (the most relevant by ARD length-scale) and grid points of the acquisition
# profiles through the first point of a batch that its audit keeps.
PROFILE_PARAMETERS = 2
PROFILE_POINTS = 25
# Plateaus on a pool: when the best row's expected improvement (log EI, log NEI) is below
# this share of the observed scores' spread, the model expects nothing anywhere and
# the row of largest upper confidence bound (mean + sqrt(PLATEAU_BETA) std) is taken.
PLATEAU_EI_SHARE: float | None = 1e-2
PLATEAU_BETA = 4.0
# From this many observations (a running campaign; the GP's warm fits start there too)
# the acquisition search climbs 1/SEARCH_SHRINK of the configured restarts for
# 1/SEARCH_SHRINK of the steps: every climbed start costs a posterior solve against all
# observations at every step, and on GPs of 200 and 1,000 observations the best of half
# the starts was the best of all of them, half the steps (and their polish) ending at the
# same point (benchmarks/results/running_campaign.md).
LARGE_SEARCH_OBSERVATIONS = 100
SEARCH_SHRINK = 2
# With outcome constraints the acquisition's optimum sits on the predicted boundary of
# feasibility, often against bounds too, where the ascent's steps stay short and a start
# has far to travel: the default search climbs CONSTRAINED_STEPS times the steps, and its
# best climbs (active_learning.optimize.FINISH_STARTS) then take CONSTRAINED_FINISH times
# the steps in further spectral steps (chosen on the constrained suite problems,
# benchmarks/results/acquisition_finish.md).
CONSTRAINED_STEPS = 2
CONSTRAINED_FINISH = 1.5


@dataclass(frozen=True)
class Proposal:
    """One proposed experiment.

    x: (d,) encoded point; params: the point in user units; strategy: the
    acquisition that chose it; prediction: the surrogate's mean and standard
    deviation per modelled output at x (before any fantasy); acquisition_value:
    its acquisition value (NaN for Thompson sampling); audit: why it was
    proposed (JSON-ready); model: the fitted surrogate the batch rests on;
    surrogate_state: the fit's JSON-ready state for the next warm start, or None.
    """

    x: np.ndarray
    params: dict[str, Any]
    strategy: str
    prediction: dict[str, Prediction]
    acquisition_value: float
    audit: dict[str, Any]
    model: Any = field(repr=False)
    surrogate_state: dict | None = field(default=None, repr=False)


@dataclass
class _Batch:
    """The model as a batch is built: what it believes, what is pending, the incumbent.

    believer: condition the model on each fantasy at its predicted mean; else
    keep fantasies as pending points for a joint acquisition.
    """

    problem: Problem
    model: Any
    best: float
    believer: bool
    pending: np.ndarray
    believed: np.ndarray

    def add(self, Xf: np.ndarray) -> None:
        """Points asked but not told, Xf: (k, d)."""
        if not self.believer:
            self.pending = np.concatenate([self.pending, Xf])
            return
        Xj = jnp.asarray(Xf)
        believed = posterior_moments(self.model, Xj)[0]
        self.model = self.model.condition(Xj, believed)
        self.believed = np.concatenate([self.believed, Xf])
        on_target = self.problem.target_rows(Xf)
        if not self.problem.several and on_target.any():
            self.best = max(self.best, float(np.max(
                self.problem.scores(np.asarray(believed))[on_target, 0])))

    @property
    def pending_or_none(self) -> np.ndarray | None:
        return self.pending if len(self.pending) else None


@dataclass(frozen=True)
class _Held:
    """Columns held fixed (context values, a multi-task target) and the free rest."""

    values: dict[str, Any]
    fixed: dict[int, float]
    reduced: Any            # the Domain over the free columns
    free: np.ndarray        # (k,)

    @classmethod
    def of(cls, problem: Problem, values: dict[str, Any]) -> _Held:
        domain = problem.domain
        fixed = problem.fixed_columns(values)
        reduced, free = reduce_domain(domain, fixed) if fixed \
            else (domain, np.arange(domain.dim))
        return cls(values, fixed, reduced, free)

    def expand(self, Z, dim: int) -> np.ndarray:
        return expand(np.asarray(Z), self.free, self.fixed, dim)


def propose(problem: Problem, X: np.ndarray, Y: np.ndarray, fantasies: np.ndarray, q: int,
            key, warm: dict | None, context: dict[str, Any] | None = None,
            timings: dict | None = None, pool: np.ndarray | None = None,
            shared: tuple[str, ...] = (), noise: np.ndarray | None = None) -> list[Proposal]:
    """q model-based proposals.

    X (n, d), Y (n, outputs): completed observations, encoded; fantasies: (p, d)
    encoded points asked but not told (pending trials and earlier points of this
    batch); key: the proposal's PRNG key; warm: the previous fit's state;
    context: values of context parameters to hold; timings: filled with
    fit_time_s and acquisition_time_s; pool: (N, d) encoded candidates still
    free, when proposals come from a discrete pool (every row is scored); shared:
    parameters whose values every point of the batch shares, chosen with the batch;
    noise: (n, outputs) known noise variances of Y (squared standard errors, 0 where
    none), or None: the GP takes them as fixed per-point noise, and the incumbent
    and anchors then use the posterior mean at the observed points.
    """
    timings = {} if timings is None else timings
    held = _Held.of(problem, {**(context or {}), **problem.held()})
    k_fit, k_acq = jax.random.split(key)
    t0 = time.perf_counter()
    fitted, state = _fit(problem, X, Y, len(fantasies), q, k_fit, warm, noise)
    timings["fit_time_s"] = time.perf_counter() - t0
    # The acquisition works where the model is Gaussian: on warped outputs, and warped
    # constraint bounds, when the problem warps them (an increasing warp keeps the
    # incumbent and the feasible rows).
    model, warp = unwarp(fitted)
    Y_user, user_problem = Y, problem
    if warp is not None:
        Y, problem = np.asarray(warp(Y)), problem.warped(warp)
    t1 = time.perf_counter()
    kind = problem.acquisition.type
    noisy = noise is not None and bool(np.any(noise > 0))
    values_shared: dict[str, Any] = {}
    profiled = _profile_columns(problem, state, held)
    if shared and q > 1 and pool is None:
        chosen, values, values_shared, extras = _shared_batch(
            problem, model, X, Y, fantasies, held, k_acq, q, shared, noisy)
    else:
        batch = _start_batch(problem, model, X, Y, fantasies, noisy)
        chosen, values, _, extras = _greedy(problem, batch, X, Y, held, k_acq, q, pool, noisy,
                                            profiled)
    Xc = np.stack(chosen)
    problem = user_problem
    predictions = _predictions(problem, fitted, Xc)
    timings["acquisition_time_s"] = time.perf_counter() - t1
    believer = isinstance(model, Conditionable) and kind not in _JOINT_PENDING
    audit = _audit(problem, fitted, state, X, Y_user, fantasies, believer, context, noisy)
    if values_shared:
        audit["shared"] = values_shared
    params = problem.space.decode(Xc)
    return [Proposal(x=Xc[i], params=params[i], strategy=kind, prediction=predictions[i],
                     acquisition_value=values[i],
                     audit=dict(audit, batch_position=i, acquisition_value=values[i],
                                **extras[i]),
                     model=fitted, surrogate_state=state) for i in range(q)]


def _greedy(problem: Problem, batch: _Batch, X, Y, held: _Held, key, q: int, pool,
            noisy: bool = False, profiled: tuple[int, ...] = ()):
    """q points chosen one at a time, each believed (or kept pending) before the next:
    (q) encoded points (d,), their acquisition values, the pool left, and per point
    the audit's record of the runners-up (and, for the first point, the acquisition
    profiles along the ``profiled`` columns)."""
    kind = problem.acquisition.type
    near = anchors(problem, X, Y, held.free,
                   batch.model if kind in _NOISY or noisy else None)
    chosen, values, extras = [], [], []
    for j in range(q):
        k_j = jax.random.fold_in(key, j)
        extra: dict[str, Any] = {}
        if pool is not None:
            x, v, pool, extra = _from_pool(problem, batch, X, Y, k_j, pool)
        elif kind == "thompson":
            x, v = _thompson(problem, batch.model, held, k_j)
        elif problem.surrogate == "multifidelity":
            x, v = _point_and_fidelity(problem, batch.model, batch.best, k_j, held.values)
        else:
            x, v, extra = _maximise(problem, batch, X, Y, held, k_j, near,
                                    profiled if j == 0 else ())
        chosen.append(np.asarray(x))
        values.append(float(v))
        extras.append(extra)
        if j < q - 1:
            batch.add(np.asarray(x)[None])
    return chosen, values, pool, extras


def _shared_batch(problem: Problem, model, X, Y, fantasies, held: _Held, key, q: int,
                  shared: tuple[str, ...], noisy: bool = False):
    """A batch of q points that all hold the same values of the ``shared`` parameters,
    chosen jointly with the rest.

    Candidate shared values: the first point's free optimum, the best observation's,
    and ``_SHARED_SAMPLES`` quasi-random ones (each rounded to the parameters'
    precision). For each, the whole batch is optimised with them held (as context is)
    and scored by the sum of its points' sequential acquisition gains (log-sum-exp for
    acquisitions in log space): an estimate of the batch's joint value. The best
    batch wins; the first candidate wins ties, and batches without values (Thompson
    sampling). Returns (q) points, their values, the shared values chosen and the
    points' runners-up (no profiles: the shared values move every point).
    """
    from workbench.engine.acquisitions import LOG_SPACE

    first, _, _, _ = _greedy(problem, _start_batch(problem, model, X, Y, fantasies, noisy), X, Y,
                          held, key, 1, None, noisy)
    points = [first[0]]
    if len(X) and not problem.several:
        points.append(X[int(np.argmax(problem.scores(Y)[:, 0]))])
    sample = problem.domain.snap(al.quasi_random(jax.random.fold_in(key, q), _SHARED_SAMPLES,
                                                 problem.dim))
    points += list(np.asarray(sample))
    best = None
    for x in points:
        row = problem.space.settable(problem.space.decode(np.asarray(x)[None]))[0]
        values = {name: row[name] for name in shared}
        try:
            cand = _Held.of(problem, {**held.values, **values})
            chosen, gains, _, extras = _greedy(problem,
                                       _start_batch(problem, model, X, Y, fantasies, noisy),
                                       X, Y, cand, key, q, None, noisy)
        except ValueError:  # no valid point holds these values (NoFeasiblePoint too)
            continue
        g = np.asarray(gains)
        score = float(jax.nn.logsumexp(g) if problem.acquisition.type in LOG_SPACE
                      else np.sum(g))
        score = -np.inf if np.isnan(score) else score
        if best is None or score > best[0]:
            best = (score, chosen, gains, values, extras)
    if best is None:
        raise al.NoFeasiblePoint(f"shared: no value of {list(shared)} leaves a valid batch")
    return best[1], best[2], best[3], best[4]


def _fit(problem: Problem, X, Y, n_fantasies: int, q: int, key, warm, noise=None):
    """The fitted surrogate and its state, with room for the batch's fantasies
    when it takes them."""
    fantasies = n_fantasies + q if FITTERS[problem.surrogate].conditionable else 0
    model, state = fit_surrogate(problem, X, Y, key, len(X) + fantasies, warm, noise)
    jax.block_until_ready(model)
    return model, state


def _start_batch(problem: Problem, model, X, Y, fantasies: np.ndarray,
                 noisy: bool = False) -> _Batch:
    """The batch before its first point: the incumbent (noise aware when the
    observations carry standard errors), and the pending trials believed or kept
    pending."""
    believer = isinstance(model, Conditionable) and \
        problem.acquisition.type not in _JOINT_PENDING
    best = float("nan") if problem.several else incumbent(problem, Y, X, model, noisy)
    empty = np.zeros((0, problem.dim))
    batch = _Batch(problem, model, best, believer, pending=empty, believed=empty)
    if len(fantasies):
        batch.add(np.asarray(fantasies))
    return batch


def _maximise(problem: Problem, batch: _Batch, X, Y, held: _Held, key, near,
              profiled: tuple[int, ...] = ()):
    """The acquisition's maximiser over the free columns: (d,) point, its value, and
    the audit's record: the runners-up and the profiles along ``profiled``."""
    cfg = problem.acquisition
    full = build_acquisition(problem, batch.model, X, Y, batch.best,
                             jax.random.fold_in(key, 1), batch.pending_or_none, batch.believed)
    acq = FixedColumns.holding(full, held.free, held.fixed, problem.dim)
    Z, V = al.maximize_acquisition_top(acq, held.reduced, key, k=ALTERNATIVES,
                                       raw_samples=cfg.raw_samples, anchors=near,
                                       **search_effort(cfg, len(X), bool(problem.constraints)))
    Xa = held.expand(Z, problem.dim)
    extra = {"alternatives": _alternatives(problem, Xa, V)}
    if profiled:
        extra["profiles"] = _profiles(problem, full, Xa[0], profiled)
    return Xa[0], V[0], extra


def search_effort(cfg: Acquisition, observations: int,
                  constrained: bool = False) -> dict[str, int]:
    """The acquisition search's restarts, ascent steps and finishing steps at
    ``observations``: the defaults divided by ``SEARCH_SHRINK`` (at least one each)
    from ``LARGE_SEARCH_OBSERVATIONS`` on, settings the spec gives holding at every
    size; ``constrained`` (outcome constraints): ``CONSTRAINED_STEPS`` times the
    default steps, and ``CONSTRAINED_FINISH`` times the steps to finish the best
    climbs."""
    if cfg.search_set:
        effort = {"num_restarts": cfg.num_restarts, "steps": cfg.steps}
    else:
        large = observations >= LARGE_SEARCH_OBSERVATIONS
        shrink = SEARCH_SHRINK if large else 1
        steps = max(cfg.steps // shrink, 1) * (CONSTRAINED_STEPS if constrained else 1)
        effort = {"num_restarts": max(cfg.num_restarts // shrink, 1), "steps": steps}
    effort["finish_steps"] = int(CONSTRAINED_FINISH * effort["steps"]) if constrained else 0
    return effort


def _alternatives(problem: Problem, Xa: np.ndarray, values) -> list[dict[str, Any]]:
    """The optimiser's best candidates (k, d), best first, in user units with values."""
    params = problem.space.decode(np.asarray(Xa))
    return [{"params": _plain(p), "acquisition_value": float(v)}
            for p, v in zip(params, np.asarray(values))]


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """A decoded point with numpy scalars made JSON-ready."""
    return {k: (v.item() if isinstance(v, np.generic) else
                {e: (f.item() if isinstance(f, np.generic) else f) for e, f in v.items()}
                if isinstance(v, dict) else v)
            for k, v in params.items()}


def _profile_columns(problem: Problem, state, held: _Held) -> tuple[int, ...]:
    """Encoded columns of the (at most PROFILE_PARAMETERS) most relevant free parameters
    that take one column each (numbers and integers; not categories or composition
    elements), by the fit's ARD length-scales; () when the fit has none or the
    acquisition has no value function (Thompson sampling)."""
    from workbench.space import Composition

    if problem.acquisition.type == "thompson" or problem.surrogate == "multifidelity" \
            or not isinstance(state, dict):
        return ()
    try:
        rel = np.nanmax(ard_relevance(state, problem.dim + _descriptors(problem)), axis=0)
    except (ValueError, KeyError, IndexError, TypeError):
        return ()
    free = set(int(c) for c in held.free)
    single = [cols[0] for name, cols in problem.space.columns.items()
              if len(cols) == 1 and cols[0] in free
              and not isinstance(problem.space[name], Composition)
              and np.isfinite(rel[cols[0]])]
    return tuple(sorted(single, key=lambda c: -rel[c])[:PROFILE_PARAMETERS])


def _descriptors(problem: Problem) -> int:
    """Input columns a feature transform appends to the encoded space."""
    transform = problem.feature_transform()
    if transform is None:
        return 0
    return int(transform(jnp.full((1, problem.dim), 0.5)).shape[-1]) - problem.dim


def _profiles(problem: Problem, acq, x: np.ndarray, columns: tuple[int, ...]) -> list[dict]:
    """The acquisition along each column through x on PROFILE_POINTS points (encoded
    [0, 1], rounded as the optimiser rounds; linear and nonlinear constraints are not
    imposed), one batched call: per column the parameter, its grid in user units
    and the values."""
    grid = np.linspace(0.0, 1.0, PROFILE_POINTS)
    rows = []
    for c in columns:
        P = np.repeat(np.asarray(x, np.float64)[None], PROFILE_POINTS, axis=0)
        P[:, c] = grid
        rows.append(np.asarray(problem.domain.snap_numpy(P)))
    # One compiled call (score_pool): called eagerly, the acquisition would dispatch,
    # and in a fresh process trace, lower and load from the cache, each of its dozens of
    # operations as a program of its own. Non-finite values come back as -inf.
    values = np.asarray(al.score_pool(acq, np.concatenate(rows)))
    names = {cols[0]: name for name, cols in problem.space.columns.items() if len(cols) == 1}
    out = []
    for i, (c, P) in enumerate(zip(columns, rows)):
        name = names[c]
        decoded = problem.space.decode(P)
        out.append({"parameter": name,
                    "values": [_plain({name: d[name]})[name] for d in decoded],
                    "acquisition": [float(v) for v in
                                    values[i * PROFILE_POINTS:(i + 1) * PROFILE_POINTS]]})
    return out


def _predictions(problem: Problem, model, Xc: np.ndarray) -> list[dict[str, Prediction]]:
    """The fitted model's mean and standard deviation per output at Xc (q, d), in output
    units. A warped model's moments are mapped back here, in NumPy, from its warped
    ones, so that a proposal compiles no program beyond an unwarped model's."""
    model, warp = unwarp(model)
    mean, var = (np.asarray(a) for a in posterior_moments(model, jnp.asarray(Xc)))
    if warp is not None:
        mean, var = warp.moments(mean, var)
    mean, std = np.asarray(mean), np.sqrt(np.asarray(var))
    return [{name: Prediction(float(mean[i, k]), float(std[i, k]))
             for k, name in enumerate(problem.outputs)} for i in range(len(Xc))]


def _audit(problem: Problem, model, state, X, Y, fantasies, believer: bool,
           context: dict | None, noisy: bool = False) -> dict[str, Any]:
    """What the batch rested on, JSON-ready."""
    audit = {
        "strategy": problem.acquisition.type, "model": problem.surrogate,
        "kernel": problem.surrogate_options["kernel"] if problem.surrogate == "gp" else None,
        "hyperparameters": state, "n_train": int(len(X)),
        "fantasies": int(len(fantasies)),
        "fantasy_mode": "kriging_believer" if believer else "pending_points",
        "context": dict(context or {}),
    }
    if not problem.several:
        audit["incumbent"] = incumbent(problem, Y, X, model, noisy)
        audit["noise_aware_incumbent"] = noisy
    if problem.tasks is not None:
        audit[problem.surrogate] = fit_summary(
            model.model if isinstance(model, InputTransformed) else model)
    return audit


def _point_and_fidelity(problem: Problem, model, best: float, key, held: dict[str, Any]):
    """The point and fidelity level of highest target-level improvement per unit cost.

    Each level is held in turn (like a context) and its cost-aware augmented EI
    maximised over the other columns; the best level's point wins. Returns the
    full encoded point (d,) and its log value per unit cost.
    """
    cfg, tasks = problem.acquisition, problem.tasks
    inner, transform = (model.model, model.transform) if isinstance(model, InputTransformed) \
        else (model, None)
    sign = problem.goals[0].sign
    value = MultiFidelityLogEI(inner, jnp.asarray(sign * best), inner.noise_variances,
                               transform, sign=sign)
    cost = LevelCost(jnp.asarray(tasks.costs, jnp.float64), inner.columns, inner.levels,
                     inner.onehot)
    acq = al.CostAware(value, cost, log_space=True)
    domain = problem.domain
    best_x, best_v = None, -np.inf
    for level in tasks.values:
        fixed = problem.fixed_columns({**held, tasks.parameter: level})
        reduced, free = reduce_domain(domain, fixed)
        z, v = al.maximize_acquisition(FixedColumns.holding(acq, free, fixed, domain.dim),
                                       reduced, key, raw_samples=cfg.raw_samples,
                                       num_restarts=cfg.num_restarts, steps=cfg.steps)
        if best_x is None or float(v) > best_v:
            best_x = expand(np.asarray(z), free, fixed, domain.dim)[0]
            best_v = float(v)
    return best_x, best_v


def _from_pool(problem: Problem, batch: _Batch, X, Y, key, pool: np.ndarray):
    """The best free candidate of the pool (N, d) and its value; the pool without it;
    the audit's record of the best-scoring rows (none for Thompson sampling)."""
    P = jnp.asarray(pool)
    extra: dict[str, Any] = {}
    if problem.acquisition.type == "thompson":
        (idx,) = al.thompson_sample(batch.model, P, key, q=1, sign=problem.goals[0].sign)
        i, v = int(idx), float("nan")
    else:
        acq = build_acquisition(problem, batch.model, X, Y, batch.best,
                                jax.random.fold_in(key, 1), batch.pending_or_none)
        values = np.asarray(al.score_pool(acq, P, chunk=_POOL_CHUNK))
        best = int(np.argmax(values))
        i = _off_plateau(problem, batch.model, Y, P, best, float(values[best]))
        if i != best:  # the audit says why the pick is not the best by EI
            extra["plateau"] = {"best_acquisition_value": float(values[best]),
                                "ucb_beta": PLATEAU_BETA}
        v = float(values[i])
        Xt, Vt = al.top_distinct(pool, values, i, ALTERNATIVES)
        extra["alternatives"] = _alternatives(problem, Xt, Vt)
    return pool[i], v, np.delete(pool, i, axis=0), extra


def _off_plateau(problem: Problem, model, Y, P, i: int, value: float) -> int:
    """The pool row to take: ``i``, the best by expected improvement, unless its log EI
    ``value`` is below log(PLATEAU_EI_SHARE * the spread of the observed scores); then
    the row of largest upper confidence bound, so that a campaign whose model sees no
    gain anywhere samples where it knows least among rows that could still be good."""
    if PLATEAU_EI_SHARE is None or problem.several \
            or problem.acquisition.type not in ("log_ei", "log_nei") or len(Y) < 2:
        return i
    spread = float(np.std(problem.scores(Y)[:, 0]))
    if not spread > 0 or value >= np.log(PLATEAU_EI_SHARE * spread):
        return i
    mean, var = posterior_moments(model, P)
    score = problem.goals[0].sign * np.asarray(mean)[:, 0] \
        + np.sqrt(PLATEAU_BETA * np.asarray(var)[:, 0])
    return int(np.argmax(score))


def _thompson(problem: Problem, model, held: _Held, key):
    """One Thompson sample: the argmax of a joint posterior draw of the first
    objective's score on a quasi-random set of valid points."""
    reduced = held.reduced
    n = min(problem.acquisition.raw_samples, _THOMPSON_MAX_CANDIDATES)
    if reduced.constrained or reduced.nonlinear or reduced.cardinality:
        seed = int(np.asarray(al.quasi_random(key, 1, 1))[0, 0] * 2**31)
        Zr = al.sample_feasible(n, reduced, seed)
    else:
        Zr = np.asarray(reduced.snap(al.quasi_random(key, n, reduced.dim)))
    candidates = held.expand(Zr, problem.dim)
    (idx,) = al.thompson_sample(model, candidates, key, q=1, sign=problem.goals[0].sign)
    return candidates[int(idx)], float("nan")


__all__ = ["LARGE_SEARCH_OBSERVATIONS", "Proposal", "SEARCH_SHRINK", "propose",
           "search_effort"]
