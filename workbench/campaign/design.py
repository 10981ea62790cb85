"""Where a campaign's first experiments come from, and the candidate pools it may
be restricted to.

Initial designs are deterministic in the spec's seed and the number of design
points handed out so far, so a campaign reopened in another process continues
the same design. A candidate pool (``candidates:`` in the spec, or the dataset
of a lookup oracle) holds the only conditions that can be run; each is run once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from workbench.errors import CampaignError
from workbench.record import Trial
from workbench.space import Categorical, SearchSpace
from workbench.spec import CampaignSpec

__all__ = ["DESIGN_STRATEGIES", "CandidatePool", "domain_design", "planned_points",
           "pool_design"]

# Strategy names of trials that came from an initial design, not from a model.
DESIGN_STRATEGIES = ("sobol", "lhs", "maximin", "points", "design")


def planned_points(spec: CampaignSpec, space: SearchSpace, start: int, k: int,
                   context: dict) -> np.ndarray | None:
    """Encoded points ``start .. start + k`` of the user's ``initial_design.points``
    (fewer when the list runs out; context values replace the planned ones), or None
    when the design is not a list of points or the list is used up."""
    design = spec.initial_design
    if design.type != "points":
        return None
    rows = [space.validate(p) for p in design.points]
    Z = space.encode(rows)
    ok = space.feasible(rows)
    if not ok.all():
        bad = int(np.flatnonzero(~ok)[0])
        raise CampaignError(f"initial_design.points[{bad}]: {rows[bad]} violates the"
                            f" constraints {list(space.constraints)}")
    if start >= len(Z):
        return None
    Z = Z[start:start + k]
    if context:  # measured values replace the planned ones
        Z = space.encode([{**r, **context} for r in space.decode(Z)])
    return Z


def pool_design(pool: np.ndarray, start: int, k: int, seed: int) -> np.ndarray:
    """``k`` untried pool rows (n x d encoded) spread by greedy maximin from a seeded
    first row."""
    from active_learning import greedy_maximin

    if len(pool) < k:
        raise CampaignError(f"candidates: {len(pool)} untried candidates left; expected"
                            f" at least {k}")
    first = int(np.random.default_rng([seed, start]).integers(len(pool)))
    return pool[greedy_maximin(pool, k, first=first)]


def domain_design(spec: CampaignSpec, domain: Any, start: int, k: int) -> np.ndarray:
    """Points ``start .. start + k`` of the spec's space-filling design over an encoded
    domain (a user point list continues as Sobol)."""
    from active_learning import initial_design

    kind = spec.initial_design.type
    kind = "sobol" if kind == "points" else kind
    if kind == "sobol":
        return initial_design("sobol", start + k, domain, spec.seed)[start:]
    # LHS and maximin are whole designs: draw the full planned size once
    # (deterministic in the seed) and hand out its next points.
    total = max(start + k, spec.n_initial)
    return initial_design(kind, total, domain, spec.seed)[start:start + k]


class CandidatePool:
    """The conditions a campaign may run, read once from the spec's ``candidates``
    CSV or dataset (or a lookup oracle's dataset); ``rows()`` is None without a pool.

    base_dir: where a relative CSV path is looked up first (the YAML file's folder).
    """

    def __init__(self, spec: CampaignSpec, space: SearchSpace, base_dir: Path | None = None):
        self.spec = spec
        self.space = space
        self.base_dir = base_dir
        self._rows: list[dict] | None = None
        self._encoded: np.ndarray | None = None

    def _source(self) -> tuple[Any, Any]:
        src = self.spec.candidates
        oracle = self.spec.oracle
        dataset = src.dataset if src is not None else None
        if src is None and oracle is not None and getattr(oracle, "dataset", None) \
                and (getattr(oracle, "mode", None) or "lookup") == "lookup":
            dataset = oracle.dataset
        return src, dataset

    def _frame(self, src: Any, dataset: Any) -> tuple[Any, str]:
        import pandas as pd

        if dataset is not None:
            from workbench import datasets

            return datasets.load(dataset), f"dataset {dataset!r}"
        path = Path(src.csv)
        if not path.is_absolute() and self.base_dir is not None \
                and (self.base_dir / path).exists():
            path = self.base_dir / path
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError) as e:
            raise CampaignError(f"candidates.csv: cannot read {str(path)!r} ({e})") from None
        return frame, f"candidates.csv {str(path)!r}"

    def rows(self) -> list[dict] | None:
        """The pool's rows (valid parameter dicts), or None without a pool."""
        if self._rows is not None:
            return self._rows
        src, dataset = self._source()
        if src is None and dataset is None:
            return None
        frame, where = self._frame(src, dataset)
        space = self.space
        missing = [n for n in space.names if n not in frame.columns]
        if missing:
            raise CampaignError(f"candidates: {where} has no column {missing}; expected one per"
                                f" parameter {space.names}")
        rows = []
        for rec in frame[space.names].drop_duplicates().to_dict("records"):
            row = {}
            for p in space.parameters:
                v = rec[p.name]
                if isinstance(p, Categorical) and v not in p.choices:
                    v = next((c for c in p.choices if str(c) == str(v)), v)
                row[p.name] = v.item() if hasattr(v, "item") else v
            try:
                rows.append(space.validate(row))
            except CampaignError:
                continue  # outside the space the spec chose: not a candidate
        rows = [r for r, ok in zip(rows, space.feasible(rows)) if ok]
        if not rows:
            raise CampaignError(f"candidates: no row of {where} lies inside the space and its"
                                " constraints; expected at least one")
        self._rows = rows
        return rows

    def untried(self, trials: list[Trial]) -> np.ndarray:
        """Encoded pool rows that no trial has asked yet (each condition is run once)."""
        if self._encoded is None:
            self._encoded = self.space.encode(self.rows())
        pool = self._encoded
        used = self.space.encode([t.params for t in trials])
        if not len(used):
            return pool
        keys = {tuple(np.round(u, 9)) for u in used}
        return pool[[tuple(np.round(r, 9)) not in keys for r in pool]]
