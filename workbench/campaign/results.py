"""Scores, Pareto fronts and hypervolumes of a campaign's feasible trials."""

from __future__ import annotations

from typing import Any

import numpy as np

from workbench.record import Trial

__all__ = ["dominated_volume", "hypervolume_history", "reference_point", "scores"]


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


def hypervolume_history(trials: list[Trial], feasible: list[Trial], S: np.ndarray,
                        r: np.ndarray) -> list[float]:
    """Hypervolume dominated by the ``feasible`` trials (scores ``S``) after each of
    ``trials``, in id order."""
    by_id = dict(zip((t.id for t in feasible), S))
    out, seen = [], []
    for t in trials:
        if t.id in by_id:
            seen.append(by_id[t.id])
        out.append(dominated_volume(np.asarray(seen).reshape(-1, len(r)), r))
    return out
