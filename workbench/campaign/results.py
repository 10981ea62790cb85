"""Best so far, scores, Pareto fronts and hypervolumes of a campaign's feasible trials.

Only feasible trials (completed, on target, inside the outcome constraints) ever
count as a result: ``best_so_far`` is the one definition of the running best that
the convergence plot, the report, MLflow's ``best_so_far`` and ``Campaign.best``
share, and ``outcome_roles`` says which outcomes are objectives and which are
only constrained, so that no constraint is labelled as if it were optimised.
"""

from __future__ import annotations

from typing import Any, Collection, Sequence

import numpy as np

from workbench.constraints import parse_outcome_constraint
from workbench.record import Trial

__all__ = ["best_so_far", "best_trial", "dominated_volume", "hypervolume",
           "hypervolume_history", "outcome_roles", "pareto_front", "reference_point", "scores"]


def best_trial(objective: Any, feasible: Sequence[Trial]) -> Trial | None:
    """The trial of ``feasible`` with the best ``objective`` score (the earliest of
    equals), or None when there is none."""
    best = None
    for t in feasible:
        if best is None or objective.score(t.outcomes[objective.name]) > \
                objective.score(best.outcomes[objective.name]):
            best = t
    return best


def best_so_far(objective: Any, trials: Sequence[Trial],
                feasible_ids: Collection[int]) -> np.ndarray:
    """(len(trials),) value of ``objective`` of the best feasible trial among
    ``trials[: i + 1]``, in the order given (id order, or the order of evaluation).

    feasible_ids: ids of the feasible trials (``Campaign.feasible_trials``).
    Infeasible, failed and pending trials hold the previous best; before the
    first feasible trial there is no best: NaN (a gap in a plot, no metric),
    never an infeasible value. The last finite entry is ``best_trial`` of the
    feasible trials given, as ``Campaign.best`` returns it.
    """
    feasible_ids = set(feasible_ids)
    out = np.full(len(trials), np.nan)
    best = None
    for i, t in enumerate(trials):
        if t.id in feasible_ids:
            best = best_trial(objective, [t] if best is None else [best, t])
        if best is not None:
            out[i] = best.outcomes[objective.name]
    return out


def outcome_roles(objectives: Sequence[Any], outcome_constraints: Sequence[str]) -> dict[str, str]:
    """{outcome: what it is for}, for labels: an objective's direction (``max``,
    ``min``, ``target 3.2``), a constraint's bound (``<= 1.5``), both for an
    objective that is also bounded (``max, >= 50``)."""
    roles = {o.name: (f"target {o.target:g}" if o.target is not None else o.direction[:3])
             for o in objectives}
    for text in outcome_constraints:
        c = parse_outcome_constraint(text)
        bound = f"{c.op} {c.bound:g}"
        roles[c.name] = f"{roles[c.name]}, {bound}" if c.name in roles else bound
    return roles


def scores(objectives: list[Any], trials: list[Trial]) -> np.ndarray:
    """(n, m) objective values of ``trials``, each turned so that larger is better."""
    return np.asarray([[o.score(t.outcomes[o.name]) for o in objectives]
                       for t in trials]).reshape(len(trials), len(objectives))


def reference_point(objectives: list[Any], ref_point: list[float] | None,
                    S: np.ndarray) -> np.ndarray:
    """(m,) reference point as scores, by the acquisitions' rule
    (:func:`active_learning.reference_point`): ``ref_point`` in user units, else
    a margin below the worst score per objective in ``S`` (n, m); NaN without any."""
    from active_learning.pareto import reference_point as rule

    ref = None if ref_point is None else [o.score(v) for o, v in zip(objectives, ref_point)]
    return rule(np.asarray(S, np.float64).reshape(-1, len(objectives)), ref)


def dominated_volume(S: np.ndarray, r: np.ndarray) -> float:
    """Hypervolume that the scores ``S`` (n, m) dominate above ``r`` (m,)."""
    from active_learning.multiobjective import hypervolume

    S = S[np.all(S > r, axis=1)] if len(S) else S
    return float(hypervolume(S, r)) if len(S) else 0.0


def pareto_front(objectives: list[Any], feasible: list[Trial]) -> list[Trial]:
    """The non-dominated trials among ``feasible`` (completed, constraint-satisfying);
    with one objective, the best one."""
    if len(objectives) == 1:
        best = best_trial(objectives[0], feasible)
        return [] if best is None else [best]
    if not feasible:
        return []
    from active_learning.multiobjective import pareto_mask

    keep = np.asarray(pareto_mask(scores(objectives, feasible)))
    return [t for t, k in zip(feasible, keep) if k]


def hypervolume(objectives: list[Any], feasible: list[Trial],
                ref_point: list[float] | None) -> float:
    """Hypervolume dominated by the ``feasible`` trials; ``ref_point`` as for
    :func:`hypervolume_history`."""
    S = scores(objectives, feasible)
    return dominated_volume(S, reference_point(objectives, ref_point, S))


def hypervolume_history(objectives: list[Any], trials: list[Trial], feasible: list[Trial],
                        ref_point: list[float] | None) -> list[float]:
    """Hypervolume dominated by the ``feasible`` trials after each of ``trials``, in id
    order. ref_point: in user units per objective, else the acquisitions' rule
    (:func:`reference_point`) on the feasible trials' scores."""
    S = scores(objectives, feasible)
    r = reference_point(objectives, ref_point, S)
    by_id = dict(zip((t.id for t in feasible), S))
    out, seen = [], []
    for t in trials:
        if t.id in by_id:
            seen.append(by_id[t.id])
        out.append(dominated_volume(np.asarray(seen).reshape(-1, len(r)), r))
    return out
