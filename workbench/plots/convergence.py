"""Convergence: best so far against trial number, with random search as the baseline
(exact quantiles over a dataset pool, else simulated runs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.campaign.results import best_so_far
from workbench.plots._common import (COMPLETED, FAILED, INITIAL_STRATEGY, axes_or_new, axis_label,
                                     contiguous_runs)

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

def running_best(values: Any, direction: str) -> np.ndarray:
    """Best value so far along ``values``: running min to minimise, running max to maximise."""
    y = np.asarray(values, dtype=np.float64)
    if y.size == 0:
        return y
    return np.minimum.accumulate(y) if direction == "minimize" else np.maximum.accumulate(y)


def plot_convergence(campaign: "Campaign", ax: "Axes | None" = None, *, random: Any = None,
                     oracle: Any = None, seed: int | None = None) -> "Axes":
    """Best-so-far of the objective against trial number, optionally against random search.

    Observed values of feasible completed trials are dots, infeasible ones
    (outside an outcome constraint) hollow grey circles, the best so far a
    step line over feasible trials only (``workbench.campaign.results.best_so_far``:
    none, a gap, before the first feasible one), failed trials red crosses on
    the bottom axis, and the initial (Sobol) design is shaded. random: what
    random search reaches over as many evaluations, drawn as its median
    best-so-far and interquartile band (see
    :func:`random_search_band`). None (default): only when it is free, i.e.
    exact for a dataset-lookup oracle. True or a number of runs: exact for a
    lookup oracle, else simulated (16 runs by default) through the spec's
    oracle or ``oracle`` (a callable), at a cost of runs x trials
    evaluations. An array (runs, evaluations): random runs' observed values.
    A :class:`RandomBand`: drawn as it is. False: none. seed: of the
    simulated runs (default the spec's). Returns the Axes.
    """
    ax = axes_or_new(ax)
    obj = campaign.objectives[0]
    trials = sorted(campaign.trials, key=lambda t: t.id)
    done = [t for t in trials if t.status == COMPLETED]
    failed = [t for t in trials if t.status == FAILED]
    initial = [t.id for t in trials if t.strategy == INITIAL_STRATEGY]

    for k, (first, last) in enumerate(contiguous_runs(initial)):
        ax.axvspan(first - 0.5, last + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0,
                   label="initial design (Sobol)" if k == 0 else None)

    band = random_search_band(campaign, random, evaluations=len(trials), oracle=oracle,
                              seed=seed) if trials else None
    if band is not None:
        x = np.arange(band.evaluations.size, dtype=np.float64)  # k evaluations: trial k - 1
        fill = ax.fill_between(x, band.lower, band.upper, step="post", color="C4",
                               alpha=0.18, lw=0, zorder=1,
                               label=f"random search, middle half ({band.source})")
        fill.set_gid("random_band")
        ax.plot(x, band.median, drawstyle="steps-post", color="C4", lw=1.2, ls="--",
                zorder=2, label="random search, median", gid="random_median")

    if done:
        feasible = {t.id for t in campaign.feasible_trials()}
        ok = [t for t in done if t.id in feasible]
        bad = [t for t in done if t.id not in feasible]
        if ok:
            ax.plot([t.id for t in ok], [t.outcomes[obj.name] for t in ok], linestyle="none",
                    marker="o", markersize=4, color="C0", alpha=0.7, label="observed",
                    gid="observed")
        if bad:  # seen, never counted: hollow grey
            ax.plot([t.id for t in bad], [t.outcomes[obj.name] for t in bad], linestyle="none",
                    marker="o", markersize=5, mfc="none", color="0.55",
                    label=f"infeasible ({len(bad)})", gid="infeasible")
        # NaN before the first feasible trial: a gap, not an infeasible value.
        ax.plot([t.id for t in done], best_so_far(obj, done, feasible), drawstyle="steps-post",
                color="C1", lw=2, label="best so far (feasible)", gid="best_so_far")
    else:
        ax.text(0.5, 0.5, "no completed trials yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")

    if failed:
        # x in data units, y in axes units: the crosses sit on the bottom axis.
        ax.plot([t.id for t in failed], [0.0] * len(failed), linestyle="none", marker="x",
                markersize=8, mew=2, color="red", clip_on=False,
                transform=ax.get_xaxis_transform(), label=f"failed ({len(failed)})",
                gid="failed")

    ax.set_xlabel("trial")
    ax.set_ylabel(f"{axis_label(obj)} ({obj.direction})")
    ax.set_title(campaign.name)
    if trials:
        ax.set_xlim(-0.5, max(t.id for t in trials) + 0.5)
    if done or failed or initial or band is not None:
        ax.legend(loc="best", fontsize="small")
    return ax


# -- random search as the baseline -------------------------------------------------------

# Quartiles: the band is the middle half of random search's outcomes, the line its median.
RANDOM_QUANTILES = (0.25, 0.5, 0.75)
RANDOM_RUNS = 16


def random_best_quantiles(values: Any, evaluations: int, direction: str,
                          quantiles: Any = RANDOM_QUANTILES) -> np.ndarray:
    """Exact quantiles of the best of k values drawn without replacement from ``values``.

    values: (N,) the pool's recorded outcomes (random search over a dataset
    pool picks k distinct rows), NaN for a row outside the outcome constraints
    (drawn, never the best); evaluations: n, the largest k; direction:
    "minimize" (best = smallest) or "maximize". With infeasible rows ranked
    worst and v_(1) <= ... <= v_(N) sorted, P(max <= v_(j)) = C(j, k) / C(N, k)
    and P(min <= v_(j)) = 1 - C(N - j, k) / C(N, k); the p-quantile is the
    smallest v_(j) whose probability reaches p (NaN where that is an
    infeasible row: no feasible best yet). Past k = N every value has been
    drawn. Returns (len(quantiles), n), column k - 1 for k evaluations.
    """
    from scipy.special import gammaln

    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction: got {direction!r}; expected 'minimize' or 'maximize'")
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or np.any(np.isinf(v)):
        raise ValueError(f"values: got {v.size} values, some infinite; expected finite"
                         " outcomes (NaN: infeasible) of a non-empty pool")
    worst = -np.inf if direction == "maximize" else np.inf
    v = np.sort(np.where(np.isnan(v), worst, v))
    if evaluations < 1:
        raise ValueError(f"evaluations: got {evaluations}; expected at least 1")
    q = np.atleast_1d(np.asarray(quantiles, dtype=np.float64))
    if np.any((q <= 0) | (q >= 1)):
        raise ValueError(f"quantiles: got {q.tolist()}; expected values in (0, 1)")
    n_pool = v.size
    k = np.minimum(np.arange(1, evaluations + 1), n_pool)[:, None].astype(np.float64)  # (n, 1)
    j = np.arange(1, n_pool + 1, dtype=np.float64)[None, :]                        # (1, N)

    def log_comb(a, b):  # log C(a, b) where a >= b, else -inf
        with np.errstate(invalid="ignore"):
            out = gammaln(a + 1) - gammaln(b + 1) - gammaln(np.maximum(a - b, 0) + 1)
        return np.where(a >= b, out, -np.inf)

    log_total = log_comb(float(n_pool), k)
    if direction == "maximize":
        cdf = np.exp(log_comb(j, k) - log_total)
    else:
        cdf = -np.expm1(log_comb(n_pool - j, k) - log_total)
    # (n, N) non-decreasing in j, 1 at j = N; the round-off guard keeps an exact
    # p (e.g. 1/2 of a two-value pool) from slipping to the next order statistic.
    index = np.argmax(cdf[None, :, :] >= q[:, None, None] - 1e-12, axis=2)
    best = v[index]
    return np.where(np.isinf(best), np.nan, best)


def best_so_far_quantiles(runs: Any, direction: str,
                          quantiles: Any = RANDOM_QUANTILES) -> np.ndarray:
    """Quantiles over runs of the best value so far: runs (R, n) observed values in
    evaluation order (NaN for a failed or infeasible evaluation). A run without a
    value yet ranks worst, as an infeasible pool row does in
    :func:`random_best_quantiles`. Returns (len(quantiles), n); NaN where the
    quantile falls among runs without a value."""
    Y = np.atleast_2d(np.asarray(runs, dtype=np.float64))
    if Y.ndim != 2 or Y.size == 0:
        raise ValueError(f"random: got an array of shape {np.shape(runs)}; expected"
                         " (runs, evaluations) observed values")
    acc = np.fmin if direction == "minimize" else np.fmax
    worst = np.inf if direction == "minimize" else -np.inf
    best = acc.accumulate(Y, axis=1)  # fmin / fmax skip NaN: NaN only before any value
    best = np.where(np.isnan(best), worst, best)
    q = np.asarray(quantiles, dtype=np.float64)
    # The same definition as the exact quantiles: the smallest value whose
    # (empirical) probability reaches p.
    out = np.quantile(best, q, axis=0, method="inverted_cdf")
    return np.where(np.isinf(out), np.nan, out)


@dataclass(frozen=True)
class RandomBand:
    """Random search's best-so-far after 1..n evaluations: lower / median / upper
    quartile (n,) each, in user units; source says how it was obtained."""

    evaluations: np.ndarray
    lower: np.ndarray
    median: np.ndarray
    upper: np.ndarray
    source: str


def _lookup_oracle(campaign: "Campaign") -> Any:
    """The campaign's dataset-lookup oracle, or None."""
    spec = campaign.spec.oracle
    if spec is None or getattr(spec, "dataset", None) is None \
            or (getattr(spec, "mode", None) or "lookup") != "lookup":
        return None
    from workbench.oracles import from_spec

    return from_spec(spec, campaign.base_dir)


def _objective_value(result: Any, name: str) -> float:
    """The objective out of what an oracle returned (a number or a dict); NaN if unusable."""
    value = result.get(name) if isinstance(result, dict) else result
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def _feasible_value(campaign: "Campaign", result: Any) -> float:
    """The first objective out of an oracle's result, NaN if unusable or outside an
    outcome constraint: random search's best so far counts what the campaign's would."""
    for c in campaign.problem.constraints:
        bounded = _objective_value(result, c.name)
        if np.isnan(bounded) or not c.satisfied(bounded):
            return float("nan")
    return _objective_value(result, campaign.objectives[0].name)


def pool_values(campaign: "Campaign") -> np.ndarray:
    """The first objective at every row of a dataset-lookup campaign's candidate pool,
    (N,): what random search over the pool picks from. NaN for a row outside the
    outcome constraints (it costs a draw, it is never the best); rows without a
    finite recorded value are left out."""
    from workbench.oracles import ConditionNotInData

    oracle = _lookup_oracle(campaign)
    if oracle is None:
        raise ValueError(f"campaign {campaign.name!r}: its oracle is not a dataset lookup;"
                         " expected oracle {dataset: ..., mode: lookup}")
    name = campaign.objectives[0].name
    values = []
    for row in campaign.candidates():
        try:
            result = oracle(dict(row))
        except ConditionNotInData:
            continue  # a pool row the data lacks: random search would fail there
        if np.isfinite(_objective_value(result, name)):
            values.append(_feasible_value(campaign, result))
    return np.asarray(values, dtype=np.float64)


def random_search_runs(campaign: "Campaign", runs: int = RANDOM_RUNS,
                       evaluations: int | None = None, oracle: Any = None,
                       seed: int | None = None) -> np.ndarray:
    """Simulated random search: ``runs`` runs of ``evaluations`` uniform random points.

    Points are uniform over the encoded space inside its constraints (rows of
    the candidate pool without replacement when the campaign has one), each
    evaluated by ``oracle`` (default the spec's: builtin, python, simulator
    or dataset emulator; a lab command is refused, its runs cost
    experiments). evaluations: default the campaign's trials; seed: default
    the spec's. Returns (runs, evaluations) objective values, NaN where an
    evaluation failed or broke an outcome constraint.
    """
    from active_learning import sample_feasible

    n = len(campaign.trials) if evaluations is None else int(evaluations)
    runs = int(runs)
    if runs < 1 or n < 1:
        raise ValueError(f"random search: got {runs} runs of {n} evaluations; expected at"
                         " least one of each")
    if oracle is None:
        spec = campaign.spec.oracle
        if spec is None:
            raise ValueError(f"random search: campaign {campaign.name!r} has no oracle in its"
                             " spec; pass oracle=<callable> to simulate random search")
        if spec.command is not None:
            raise ValueError("random search: the oracle is a lab command; simulating random"
                             " search would run runs x evaluations experiments. Pass"
                             " random=<array of observed runs> or oracle=<callable>")
        from workbench.oracles import from_spec

        oracle = from_spec(spec, campaign.base_dir)
    seed = campaign.spec.seed if seed is None else int(seed)
    pool = campaign.candidates()
    if pool is not None:
        if len(pool) < n:
            raise ValueError(f"random search: the pool has {len(pool)} rows; expected at least"
                             f" {n} for {n} distinct evaluations")
        rng = np.random.default_rng([seed, 0x5EA])
        rows = [[pool[i] for i in rng.permutation(len(pool))[:n]] for _ in range(runs)]
    else:
        Z = sample_feasible(runs * n, campaign.space.domain(), seed)
        if len(Z) < runs * n:  # a few hit-and-run points could not be repaired
            more = sample_feasible(2 * runs * n, campaign.space.domain(), seed + 1)
            Z = np.concatenate([Z, more])[:runs * n]
        if len(Z) < runs * n:
            raise ValueError("random search: could not draw enough valid random points")
        decoded = campaign.space.decode(Z)
        rows = [decoded[r * n:(r + 1) * n] for r in range(runs)]
    name = campaign.objectives[0].name
    out = np.full((runs, n), np.nan)
    first_error: Exception | None = None
    for r, run in enumerate(rows):
        for i, params in enumerate(run):
            try:
                out[r, i] = _feasible_value(campaign, oracle(dict(params)))
            except Exception as e:  # noqa: BLE001 - a failed evaluation is data (NaN)
                first_error = first_error or e
    if not np.any(np.isfinite(out)):  # nothing worked: the oracle, not the points
        raise ValueError(f"random search: every one of {out.size} evaluations failed, gave"
                         f" no finite {name!r} or broke an outcome constraint"
                         + (f" (first: {type(first_error).__name__}: {first_error})"
                            if first_error else "") + "; expected a working oracle")
    return out


def random_search_band(campaign: "Campaign", random: Any = True,
                       evaluations: int | None = None, oracle: Any = None,
                       seed: int | None = None) -> RandomBand | None:
    """Random search's best so far after 1..n evaluations as quartiles, or None.

    random as in :func:`plot_convergence`: None (only when free: exact for a
    dataset-lookup oracle), True or a number of runs (exact for a lookup
    oracle, else simulated), an array (runs, evaluations) of observed random
    runs, or False; a RandomBand is returned as it is. evaluations: default the
    campaign's trials.
    """
    if isinstance(random, RandomBand):
        return random
    lookup = None if random is False else _lookup_oracle(campaign)
    if random is False or (random is None and lookup is None):
        return None
    obj = campaign.objectives[0]
    if obj.direction not in ("minimize", "maximize"):
        if random is None:
            return None
        raise ValueError(f"random: objective {obj.name!r} has a target; expected a minimised"
                         " or maximised objective for a random-search band")
    n = len(campaign.trials) if evaluations is None else int(evaluations)
    if random is None or isinstance(random, (bool, int, np.integer)):
        if random is not None and random is not True and int(random) < 1:
            raise ValueError(f"random: got {random}; expected True, a positive number of runs"
                             " or an array (runs, evaluations)")
        if lookup is not None:
            values = pool_values(campaign)
            q = random_best_quantiles(values, n, obj.direction)
            source = f"exact over {values.size} pool rows"
        else:
            runs = RANDOM_RUNS if random is True else int(random)
            q = best_so_far_quantiles(random_search_runs(campaign, runs, n, oracle, seed),
                                      obj.direction)
            source = f"{runs} simulated runs"
    else:
        Y = np.asarray(random, dtype=np.float64)
        if Y.ndim != 2:
            raise ValueError(f"random: got an array of shape {Y.shape}; expected (runs,"
                             " evaluations) observed values of random runs")
        q = best_so_far_quantiles(Y, obj.direction)
        source = f"{Y.shape[0]} given runs"
    return RandomBand(np.arange(1, q.shape[1] + 1), q[0], q[1], q[2], source)
