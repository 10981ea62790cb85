"""Plots of a campaign for the people running it (matplotlib, imported lazily).

    ax = campaign.plot()              # best so far against trial number (and random search)
    campaign.plot.convergence(random=True)  # random search's band, simulated if not free
    ax = campaign.plot_predictions()  # what the model expected against what happened
    ax = plot_calibration(campaign)   # expected against observed interval coverage
    campaign.plot_pareto(); campaign.plot_hypervolume()   # several objectives
    campaign.plot_slices(); campaign.plot_lengthscales()  # what the model believes
    plot_map(campaign, "temperature", "time")  # 2-D posterior mean and sd through the best
    plot_pairs(campaign)              # the mean over every pair of the 3 most relevant
    campaign.plot_ternary("alloy", ["Cu", "Ni", "Pd"])     # compositions

Each function draws on ``ax`` when given (or on a new figure) and returns the
Axes (a Figure where it draws several panels: slices, 2-D maps, Pareto pairs of three or
more objectives). Axis labels carry the parameters' and objectives' units.
matplotlib is imported only when a plot is drawn, so the workbench itself
does not depend on it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

__all__ = ["coverage_curve", "plot_calibration", "plot_convergence", "plot_predictions",
           "running_best",
           "RandomBand", "best_so_far_quantiles", "pool_values", "random_best_quantiles",
           "random_search_band", "random_search_runs",
           "CampaignModel", "ard_relevance", "campaign_model", "plot_hypervolume",
           "plot_lengthscales", "plot_pareto", "plot_slices", "plot_ternary", "ternary_xy",
           "PosteriorMap", "plot_map", "plot_pairs", "posterior_map", "relevant_parameters"]

_COMPLETED, _FAILED = "completed", "failed"
_INITIAL_STRATEGY = "sobol"


def _axes(ax: Any) -> "Axes":
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.0))
    return ax


def _label(objective: Any) -> str:
    unit = getattr(objective, "unit", None)
    return f"{objective.name} [{unit}]" if unit else objective.name


def _runs(ids: list[int]) -> list[tuple[int, int]]:
    """Contiguous runs of sorted integer ids, as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def running_best(values: Any, direction: str) -> np.ndarray:
    """Best value so far along ``values``: running min to minimise, running max to maximise."""
    y = np.asarray(values, dtype=np.float64)
    if y.size == 0:
        return y
    return np.minimum.accumulate(y) if direction == "minimize" else np.maximum.accumulate(y)


def plot_convergence(campaign: "Campaign", ax: "Axes | None" = None, *, random: Any = None,
                     oracle: Any = None, seed: int | None = None) -> "Axes":
    """Best-so-far of the objective against trial number, optionally against random search.

    Observed values of completed trials are dots, the best so far a step line,
    failed trials red crosses on the bottom axis, and the initial (Sobol)
    design is shaded. random: what random search reaches over as many
    evaluations, drawn as its median best-so-far and interquartile band (see
    :func:`random_search_band`). None (default): only when it is free, i.e.
    exact for a dataset-lookup oracle. True or a number of runs: exact for a
    lookup oracle, else simulated (16 runs by default) through the spec's
    oracle or ``oracle`` (a callable), at a cost of runs x trials
    evaluations. An array (runs, evaluations): random runs' observed values.
    A :class:`RandomBand`: drawn as it is. False: none. seed: of the
    simulated runs (default the spec's). Returns the Axes.
    """
    ax = _axes(ax)
    obj = campaign.objectives[0]
    trials = sorted(campaign.trials, key=lambda t: t.id)
    done = [t for t in trials if t.status == _COMPLETED]
    failed = [t for t in trials if t.status == _FAILED]
    initial = [t.id for t in trials if t.strategy == _INITIAL_STRATEGY]

    for k, (first, last) in enumerate(_runs(initial)):
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
        x = np.asarray([t.id for t in done], dtype=np.float64)
        y = np.asarray([t.outcomes[obj.name] for t in done], dtype=np.float64)
        ax.plot(x, y, linestyle="none", marker="o", markersize=4, color="C0", alpha=0.7,
                label="observed", gid="observed")
        ax.plot(x, running_best(y, obj.direction), drawstyle="steps-post", color="C1", lw=2,
                label="best so far", gid="best_so_far")
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
    ax.set_ylabel(f"{_label(obj)} ({obj.direction})")
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
    pool picks k distinct rows); evaluations: n, the largest k; direction:
    "minimize" (best = smallest) or "maximize". With v_(1) <= ... <= v_(N)
    sorted, P(max <= v_(j)) = C(j, k) / C(N, k) and P(min <= v_(j)) = 1 -
    C(N - j, k) / C(N, k); the p-quantile is the smallest v_(j) whose
    probability reaches p. Past k = N every value has been drawn. Returns
    (len(quantiles), n), column k - 1 for k evaluations.
    """
    from scipy.special import gammaln

    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"values: got {v.size} values, some not finite; expected finite"
                         " outcomes of a non-empty pool")
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction: got {direction!r}; expected 'minimize' or 'maximize'")
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
    return v[index]


def best_so_far_quantiles(runs: Any, direction: str,
                          quantiles: Any = RANDOM_QUANTILES) -> np.ndarray:
    """Quantiles over runs of the best value so far: runs (R, n) observed values in
    evaluation order (NaN for a failed evaluation). Returns (len(quantiles), n);
    NaN before any run has a value."""
    Y = np.atleast_2d(np.asarray(runs, dtype=np.float64))
    if Y.ndim != 2 or Y.size == 0:
        raise ValueError(f"random: got an array of shape {np.shape(runs)}; expected"
                         " (runs, evaluations) observed values")
    acc = np.fmin if direction == "minimize" else np.fmax
    best = acc.accumulate(Y, axis=1)
    q = np.asarray(quantiles, dtype=np.float64)
    with warnings.catch_warnings():  # an all-NaN column (every run failed so far) is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        # The same definition as the exact quantiles: the smallest value whose
        # (empirical) probability reaches p.
        return np.nanquantile(best, q, axis=0, method="inverted_cdf")


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

    return from_spec(spec, campaign._base_dir)


def _objective_value(result: Any, name: str) -> float:
    """The objective out of what an oracle returned (a number or a dict); NaN if unusable."""
    value = result.get(name) if isinstance(result, dict) else result
    try:
        value = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return value if np.isfinite(value) else float("nan")


def pool_values(campaign: "Campaign") -> np.ndarray:
    """The first objective at every row of a dataset-lookup campaign's candidate pool,
    (N,): what random search over the pool picks from. Rows without a finite
    recorded value are left out."""
    from workbench.oracles import ConditionNotInData

    oracle = _lookup_oracle(campaign)
    if oracle is None:
        raise ValueError(f"campaign {campaign.name!r}: its oracle is not a dataset lookup;"
                         " expected oracle {dataset: ..., mode: lookup}")
    name = campaign.objectives[0].name
    values = []
    for row in campaign._candidates():
        try:
            values.append(_objective_value(oracle(dict(row)), name))
        except ConditionNotInData:
            continue  # a pool row the data lacks: random search would fail there
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


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
    evaluation failed.
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

        oracle = from_spec(spec, campaign._base_dir)
    seed = campaign.spec.seed if seed is None else int(seed)
    pool = campaign._candidates()
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
                out[r, i] = _objective_value(oracle(dict(params)), name)
            except Exception as e:  # noqa: BLE001 - a failed evaluation is data (NaN)
                first_error = first_error or e
    if not np.any(np.isfinite(out)):  # nothing worked: the oracle, not the points
        raise ValueError(f"random search: every one of {out.size} evaluations failed or gave"
                         f" no finite {name!r}"
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


def plot_predictions(campaign: "Campaign", ax: "Axes | None" = None) -> "Axes":
    """Predicted mean ± 2 std against the observed value, for model-proposed trials.

    Points near the identity line, with about 95 % of the error bars crossing
    it, mean the surrogate's predictions (made when each trial was proposed)
    were calibrated. Returns the Axes.
    """
    ax = _axes(ax)
    obj = campaign.objectives[0]
    rows = [t for t in sorted(campaign.trials, key=lambda t: t.id)
            if t.status == _COMPLETED and t.prediction and obj.name in t.prediction]
    label = _label(obj)
    ax.set_xlabel(f"predicted {label} (mean ± 2 sd)")
    ax.set_ylabel(f"observed {label}")
    if not rows:
        ax.text(0.5, 0.5, "no completed model-proposed trials yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
        ax.set_title(f"{campaign.name}: predicted vs observed")
        return ax

    mean = np.asarray([t.prediction[obj.name].mean for t in rows], dtype=np.float64)
    std = np.asarray([t.prediction[obj.name].std for t in rows], dtype=np.float64)
    observed = np.asarray([t.outcomes[obj.name] for t in rows], dtype=np.float64)
    inside = int(np.sum(np.abs(observed - mean) <= 2 * std))

    lo = float(min(np.min(mean - 2 * std), np.min(observed)))
    hi = float(max(np.max(mean + 2 * std), np.max(observed)))
    pad = 0.05 * (hi - lo) if hi > lo else 1.0
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], linestyle="--", color="0.5", lw=1,
            label="predicted = observed", gid="identity")
    ax.errorbar(mean, observed, xerr=2 * std, fmt="o", markersize=4, color="C0",
                ecolor="C0", elinewidth=1, capsize=2, alpha=0.8,
                label=f"trials ({inside}/{len(rows)} within ±2 sd)", gid="predictions")
    ax.set_title(f"{campaign.name}: predicted vs observed")
    ax.legend(loc="best", fontsize="small")
    return ax


# Nominal coverages drawn by default: every 5 %, so the 50/90/95 % intervals
# that the benchmarks and metrics report are points of the curve.
CALIBRATION_LEVELS = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2))


def coverage_curve(mean: Any, std: Any, observed: Any, levels: Any = CALIBRATION_LEVELS
                   ) -> np.ndarray:
    """Observed coverage of central Gaussian intervals at each nominal level.

    mean, std, observed: arrays of one shape (any; flattened together), the
    predictive mean and standard deviation and what was then observed;
    levels: (k,) nominal coverages in (0, 1). Returns (k,) fractions of the
    observations inside ``mean ± z std``, z the standard normal quantile of
    (1 + level) / 2. A calibrated model gives about ``levels``; below the
    diagonal the model is over-confident, above it under-confident.
    """
    from scipy.special import ndtri

    mean, std, observed = (np.asarray(a, dtype=np.float64).ravel() for a in (mean, std, observed))
    if not mean.shape == std.shape == observed.shape:
        raise ValueError(f"mean, std and observed must have one shape; got {mean.shape},"
                         f" {std.shape} and {observed.shape}")
    levels = np.asarray(levels, dtype=np.float64)
    if np.any((levels <= 0) | (levels >= 1)):
        raise ValueError(f"levels must lie strictly between 0 and 1; got {levels.tolist()}")
    if np.any(std < 0):
        raise ValueError("std must be non-negative")
    ok = np.isfinite(mean) & np.isfinite(std) & np.isfinite(observed)
    z = np.abs(observed[ok] - mean[ok]) / np.maximum(std[ok], 1e-300)
    if z.size == 0:
        return np.full(levels.shape, np.nan)
    half = ndtri(0.5 * (1.0 + levels))
    return np.mean(z[None, :] <= half[:, None], axis=1)


def _campaign_predictions(campaign: "Campaign") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, std and observed value of completed model-proposed trials, first objective."""
    obj = campaign.objectives[0]
    rows = [t for t in sorted(campaign.trials, key=lambda t: t.id)
            if t.status == _COMPLETED and t.prediction and obj.name in t.prediction]
    return (np.asarray([t.prediction[obj.name].mean for t in rows], dtype=np.float64),
            np.asarray([t.prediction[obj.name].std for t in rows], dtype=np.float64),
            np.asarray([t.outcomes[obj.name] for t in rows], dtype=np.float64))


def plot_calibration(source: Any, std: Any = None, observed: Any = None, *,
                     levels: Any = CALIBRATION_LEVELS, label: str | None = None,
                     ax: "Axes | None" = None) -> "Axes":
    """Expected against observed coverage of central predictive intervals.

    source: a Campaign (its model-proposed, completed trials: the prediction
    made at proposal time against the outcome) or an array of predictive
    means, with ``std`` and ``observed`` arrays of the same shape (e.g. a
    held-out test set). Draws the diagonal (perfect calibration), a band of
    ±2 binomial standard errors around it for this many observations (what
    chance alone explains), and the observed curve. Call again on the same
    ``ax`` with another ``label`` to compare models. Returns the Axes.
    """
    ax = _axes(ax)
    if hasattr(source, "trials") and hasattr(source, "objectives"):
        if std is not None or observed is not None:
            raise ValueError("std and observed are read from the campaign; pass arrays instead")
        mean, std, observed = _campaign_predictions(source)
        title = f"{source.name}: calibration"
        label = label or f"trials ({len(mean)})"
    else:
        if std is None or observed is None:
            raise ValueError("plot_calibration(mean, std, observed): std and observed are needed"
                             " with an array of means")
        mean = np.asarray(source, dtype=np.float64)
        title = "calibration"
        label = label or f"predictions ({mean.size})"
    levels = np.asarray(levels, dtype=np.float64)
    curve = coverage_curve(mean, std, observed, levels)
    n = int(np.sum(np.isfinite(np.asarray(mean, np.float64))))

    if not any(ln.get_gid() == "identity" for ln in ax.get_lines()):
        ax.plot([0, 1], [0, 1], linestyle="--", color="0.5", lw=1, label="calibrated",
                gid="identity")
        if n > 0:
            se = 2.0 * np.sqrt(levels * (1.0 - levels) / n)
            band = ax.fill_between(levels, np.clip(levels - se, 0, 1), np.clip(levels + se, 0, 1),
                                   color="0.85", lw=0, label=f"±2 s.e. (n = {n})")
            band.set_gid("chance_band")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_aspect("equal")
        ax.set_xlabel("expected coverage of the central interval")
        ax.set_ylabel("observed coverage")
        ax.set_title(title)
    if n == 0:
        ax.text(0.5, 0.5, "no predictions with observed values yet", transform=ax.transAxes,
                ha="center", va="center", color="0.4")
        return ax
    ax.plot(levels, curve, marker="o", markersize=4, lw=1.5, label=label, gid="calibration")
    ax.legend(loc="upper left", fontsize="small")
    return ax


# -- several objectives ------------------------------------------------------------------


# Strategies of initial-design trials (as Campaign._propose names them).
_DESIGN_STRATEGIES = ("sobol", "lhs", "maximin", "points", "design")


def _initial_span(ax: "Axes", trials: list) -> None:
    """Shade the initial (space-filling) design, as in the convergence plot."""
    initial = [t.id for t in trials if t.strategy in _DESIGN_STRATEGIES]
    for k, (first, last) in enumerate(_runs(initial)):
        ax.axvspan(first - 0.5, last + 0.5, color="0.85", alpha=0.6, lw=0, zorder=0,
                   label="initial design" if k == 0 else None)


def _outcome_label(campaign: "Campaign", name: str) -> str:
    for o in campaign.outcomes:
        if o.name == name:
            return _label(o)
    return name


def _pareto_sets(campaign: "Campaign") -> tuple[list, list, list]:
    """Completed trials split into (Pareto, other feasible, infeasible)."""
    pareto_ids = {t.id for t in campaign.pareto()}
    feasible_ids = {t.id for t in campaign._feasible_completed()}
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == _COMPLETED]
    return ([t for t in done if t.id in pareto_ids],
            [t for t in done if t.id in feasible_ids and t.id not in pareto_ids],
            [t for t in done if t.id not in feasible_ids])


def _pareto_panel(ax: "Axes", campaign: "Campaign", i: int, j: int, sets: tuple,
                  front: bool) -> None:
    oi, oj = campaign.objectives[i], campaign.objectives[j]
    pareto, others, infeasible = sets

    def xy(rows):
        return ([t.outcomes[oi.name] for t in rows], [t.outcomes[oj.name] for t in rows])

    if infeasible:
        ax.plot(*xy(infeasible), linestyle="none", marker="o", markersize=4, color="0.7",
                label=f"infeasible ({len(infeasible)})", gid="infeasible")
    if others:
        ax.plot(*xy(others), linestyle="none", marker="o", markersize=4, color="C0",
                alpha=0.7, label="feasible, dominated", gid="observed")
    if pareto:
        if front and len(pareto) > 1:
            # Sorted by the first score: the boundary of the dominated region steps
            # first along the second objective, then along the first (steps-pre),
            # in any combination of directions (a reflection keeps the shape).
            order = sorted(pareto, key=lambda t: oi.score(t.outcomes[oi.name]))
            ax.plot(*xy(order), drawstyle="steps-pre", color="C3", lw=1.5, alpha=0.8,
                    gid="front")
        ax.plot(*xy(pareto), linestyle="none", marker="D", markersize=6, color="C3",
                label=f"Pareto front ({len(pareto)})", gid="pareto")
    ax.set_xlabel(f"{_label(oi)} ({oi.direction})")
    ax.set_ylabel(f"{_label(oj)} ({oj.direction})")


def plot_pareto(campaign: "Campaign", ax: "Axes | None" = None) -> Any:
    """Observed outcomes in objective space with the feasible Pareto front highlighted.

    Pareto trials (``campaign.pareto()``) are red diamonds joined by the
    boundary of the region they dominate, other feasible trials blue dots,
    trials that break an outcome constraint grey. Two objectives: one panel,
    returns the Axes. Three or more: one panel per pair of objectives (the
    front is the one of all objectives, so no step line), returns the Figure.
    """
    k = len(campaign.objectives)
    if k < 2:
        raise ValueError(f"plot_pareto: campaign {campaign.name!r} has {k} objective;"
                         " expected two or more (use plot() for one objective)")
    sets = _pareto_sets(campaign)
    front = all(o.target is None for o in campaign.objectives)
    if k == 2:
        ax = _axes(ax)
        _pareto_panel(ax, campaign, 0, 1, sets, front)
        ax.set_title(f"{campaign.name}: Pareto front")
        if any(sets):
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no completed trials yet", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
        return ax
    if ax is not None:
        raise ValueError(f"plot_pareto: {k} objectives draw one panel per pair on a new"
                         " figure; ax must be None")
    import matplotlib.pyplot as plt

    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4.0), squeeze=False)
    for a, (i, j) in zip(axes[0], pairs):
        _pareto_panel(a, campaign, i, j, sets, front=False)
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{campaign.name}: Pareto front of {k} objectives")
    fig.tight_layout()
    return fig


def plot_hypervolume(campaign: "Campaign", ref_point: list[float] | None = None,
                     ax: "Axes | None" = None) -> "Axes":
    """Hypervolume dominated by the feasible completed trials after each trial.

    ref_point: in user units per objective, as for
    ``campaign.hypervolume_history`` (default the spec's, else the worst
    feasible value of each objective). Rising steps are trials that pushed the
    front out; a long flat tail says the campaign has stopped learning.
    Returns the Axes.
    """
    ax = _axes(ax)
    if len(campaign.objectives) < 2:
        raise ValueError(f"plot_hypervolume: campaign {campaign.name!r} has one objective;"
                         " expected two or more (use plot() for one objective)")
    trials = sorted(campaign.trials, key=lambda t: t.id)
    _initial_span(ax, trials)
    history = campaign.hypervolume_history(ref_point)
    if trials:
        ax.plot([t.id for t in trials], history, drawstyle="steps-post", color="C1", lw=2,
                marker="o", markersize=3, label="hypervolume", gid="hypervolume")
        ax.set_xlim(-0.5, trials[-1].id + 0.5)
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no trials yet", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    units = [o.unit for o in campaign.objectives]
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume" + (f" [{' × '.join(u or '1' for u in units)}]"
                                   if any(units) else ""))
    ax.set_title(f"{campaign.name}: hypervolume")
    return ax


# -- the campaign's model ----------------------------------------------------------------


class CampaignModel:
    """The surrogate a campaign would fit now, on its completed trials.

    Built with the spec's surrogate, the same PRNG key and warm start as the
    next ``ask`` uses, so it is the model that proposes the next trial.
    ``outputs``: the modelled outcomes (objectives, then constraint outcomes).
    """

    def __init__(self, campaign: "Campaign"):
        import jax

        from workbench._jax import configure_jax
        from workbench.engine import fit_surrogate

        done = [t for t in campaign._trials if t.status == _COMPLETED]
        if len(done) < 2:
            raise ValueError(f"campaign {campaign.name!r} has {len(done)} completed trials;"
                             " expected at least 2 to fit a model")
        configure_jax()
        X, Y = campaign._training_data(done)
        key = jax.random.fold_in(jax.random.key(campaign.spec.seed), len(campaign._trials))
        k_fit, _ = jax.random.split(key)
        self.space = campaign.space
        self.outputs = list(campaign._engine.outputs)
        self.model, _ = fit_surrogate(campaign._engine, X, Y, k_fit, len(X),
                                      campaign._warm_start)

    def predict(self, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation, (n, outputs) each in user units, at
        ``rows`` (parameter dicts as in ``Trial.params``)."""
        import jax.numpy as jnp

        from surrogates import posterior_moments

        mean, var = posterior_moments(self.model, jnp.asarray(self.space.encode(rows)))
        return np.asarray(mean), np.sqrt(np.maximum(np.asarray(var), 0.0))


def campaign_model(campaign: "Campaign") -> CampaignModel:
    """Fit the campaign's surrogate on its completed trials (see :class:`CampaignModel`)."""
    return CampaignModel(campaign)


def _slice_grid(p: Any, at: float, points: int) -> np.ndarray:
    grid = (np.geomspace(p.low, p.high, points) if getattr(p, "log", False)
            else np.linspace(p.low, p.high, points))
    return np.unique(np.append(grid, at))  # the best point itself lies on the curve


def plot_slices(campaign: "Campaign", objective: str | None = None, *, points: int = 101,
                model: CampaignModel | None = None) -> Any:
    """1-D slices of the posterior mean ± 2 sd through the best trial.

    One panel per continuous parameter: that parameter swept over its range,
    every other held at the best trial's value. The best trial is a star at its
    observed value. objective: any modelled outcome (default the first
    objective); model: a :func:`campaign_model` to reuse (default: fit one).
    Returns the Figure.
    """
    import matplotlib.pyplot as plt

    from workbench.space import Continuous

    best = campaign.best()
    if best is None:
        raise ValueError(f"plot_slices: campaign {campaign.name!r} has no feasible completed"
                         " trial yet; expected one to slice through")
    params = [p for p in campaign.space.parameters if isinstance(p, Continuous)
              and p.name not in campaign.spec.context]
    if not params:
        raise ValueError(f"plot_slices: campaign {campaign.name!r} has no continuous parameter"
                         " to slice along")
    model = model if model is not None else campaign_model(campaign)
    name = objective or campaign.objectives[0].name
    if name not in model.outputs:
        raise ValueError(f"plot_slices: objective {name!r} is not modelled; expected one of"
                         f" {model.outputs}")
    k = model.outputs.index(name)
    ncol = min(3, len(params))
    nrow = -(-len(params) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.0 * ncol, 3.3 * nrow), squeeze=False,
                             sharey=True)
    for ax, p in zip(axes.ravel(), params):
        grid = _slice_grid(p, best.params[p.name], points)
        mean, std = model.predict([dict(best.params, **{p.name: v}) for v in grid])
        mu, sd = mean[:, k], std[:, k]
        band = ax.fill_between(grid, mu - 2 * sd, mu + 2 * sd, color="C0", alpha=0.2, lw=0,
                               label="± 2 sd")
        band.set_gid(f"band:{p.name}")
        ax.plot(grid, mu, color="C0", lw=1.5, label="posterior mean", gid=f"mean:{p.name}")
        ax.plot([best.params[p.name]], [best.outcomes[name]], linestyle="none", marker="*",
                markersize=12, color="C3", label=f"best trial ({best.id})",
                gid=f"best:{p.name}")
        if getattr(p, "log", False):
            ax.set_xscale("log")
        ax.set_xlabel(_label(p))
    for ax in axes.ravel()[len(params):]:
        ax.set_visible(False)
    for row in axes:
        row[0].set_ylabel(_outcome_label(campaign, name))
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{campaign.name}: slices of the model through the best trial")
    fig.tight_layout()
    return fig


# -- 2-D posterior maps ------------------------------------------------------------------


@dataclass(frozen=True)
class PosteriorMap:
    """The model's posterior over a grid of two parameters, the others held fixed.

    x, y: parameter names; xs (nx,), ys (ny,): grid values in user units;
    mean, std: (ny, nx) posterior mean and standard deviation of ``output`` at
    (ys[i], xs[j]), NaN where the point breaks a linear constraint; at: the
    parameter values held fixed (the best trial's); trial: that trial's id.
    """

    x: str
    y: str
    output: str
    xs: np.ndarray
    ys: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    at: dict
    trial: int


def _map_parameters(campaign: "Campaign") -> list:
    """Continuous and integer parameters a map can sweep (context ones are measured)."""
    from workbench.space import Continuous, Integer

    return [p for p in campaign.space.parameters if isinstance(p, (Continuous, Integer))
            and p.name not in campaign.spec.context]


def relevant_parameters(campaign: "Campaign", output: str | None = None) -> list[str]:
    """Continuous and integer parameters, most relevant first: by 1 / length-scale of the
    last proposing model (:func:`plot_lengthscales`), in space order without one."""
    names = [p.name for p in _map_parameters(campaign)]
    found = _last_hyperparameters(campaign)
    if found is None:
        return names
    outputs = list(campaign._engine.outputs)
    name = output or campaign.objectives[0].name
    n_columns = _model_columns(campaign)
    rel = ard_relevance(found[1], n_columns)
    row = rel[min(outputs.index(name) if name in outputs else 0, rel.shape[0] - 1)]
    score = {label: float(np.nanmax(row[cols])) if np.any(np.isfinite(row[cols])) else 0.0
             for label, cols in _column_labels(campaign.space, n_columns)}
    return sorted(names, key=lambda n: -score.get(n, 0.0))  # stable: ties keep space order


def _map_grid(p: Any, points: int) -> np.ndarray:
    from workbench.space import Integer

    if isinstance(p, Integer):
        if p.high - p.low + 1 <= points:
            return np.arange(p.low, p.high + 1, dtype=np.float64)
        return np.unique(np.round(np.linspace(p.low, p.high, points)))
    return (np.geomspace(p.low, p.high, points) if getattr(p, "log", False)
            else np.linspace(p.low, p.high, points))


def posterior_map(campaign: "Campaign", x: str | None = None, y: str | None = None,
                  objective: str | None = None, *, points: int = 41,
                  model: CampaignModel | None = None) -> PosteriorMap:
    """Posterior mean and sd over a grid of parameters ``x`` and ``y`` through the best trial.

    x, y: continuous or integer parameters (default the two most relevant,
    :func:`relevant_parameters`); every other parameter is held at the best
    trial's value. points: grid points per axis (integers: one per level up
    to that many; log-scaled parameters: a geometric grid). objective: any
    modelled outcome (default the first objective); model: a
    :func:`campaign_model` to reuse. Returns a :class:`PosteriorMap`.
    """
    best = campaign.best()
    if best is None:
        raise ValueError(f"posterior_map: campaign {campaign.name!r} has no feasible completed"
                         " trial yet; expected one to hold the other parameters at")
    usable = {p.name: p for p in _map_parameters(campaign)}
    if x is None or y is None:
        order = [n for n in relevant_parameters(campaign, objective) if n not in (x, y)]
        if x is None:
            x = order.pop(0) if order else None
        if y is None:
            y = order.pop(0) if order else None
    for axis, name in (("x", x), ("y", y)):
        if name not in usable:
            raise ValueError(f"posterior_map: {axis}: got {name!r}; expected one of the"
                             f" continuous or integer parameters {list(usable)}"
                             + (" (two are needed)" if len(usable) < 2 else ""))
    if x == y:
        raise ValueError(f"posterior_map: x and y are both {x!r}; expected two parameters")
    if points < 2:
        raise ValueError(f"posterior_map: points: got {points}; expected at least 2")
    model = model if model is not None else campaign_model(campaign)
    name = objective or campaign.objectives[0].name
    if name not in model.outputs:
        raise ValueError(f"posterior_map: objective {name!r} is not modelled; expected one of"
                         f" {model.outputs}")
    xs, ys = _map_grid(usable[x], points), _map_grid(usable[y], points)
    from workbench.space import Integer

    cast = {n: int if isinstance(usable[n], Integer) else float for n in (x, y)}
    rows = [dict(best.params, **{x: cast[x](a), y: cast[y](b)}) for b in ys for a in xs]
    mean, std = model.predict(rows)
    k = model.outputs.index(name)
    shape = (ys.size, xs.size)
    ok = campaign.space.feasible(rows).reshape(shape)
    return PosteriorMap(x, y, name, xs, ys, np.where(ok, mean[:, k].reshape(shape), np.nan),
                        np.where(ok, std[:, k].reshape(shape), np.nan),
                        {n: v for n, v in best.params.items() if n not in (x, y)}, best.id)


def plot_map(campaign: "Campaign", x: str | None = None, y: str | None = None,
             objective: str | None = None, *, points: int = 41,
             model: CampaignModel | None = None) -> Any:
    """2-D map of the model through the best trial: posterior mean and sd over two parameters.

    Two panels over the same grid (:func:`posterior_map`): the posterior mean
    as filled contours, its standard deviation as filled contours, each with
    the completed trials (dots) and the best trial (star). The sd is small
    near observations and large where the model has not looked. x, y:
    default the two most relevant parameters by length-scale. Returns the
    Figure.
    """
    import matplotlib.pyplot as plt

    m = posterior_map(campaign, x, y, objective, points=points, model=model)
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == _COMPLETED]
    best = next(t for t in done if t.id == m.trial)
    px, py = campaign.space[m.x], campaign.space[m.y]
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.3), sharex=True, sharey=True)
    panels = ((axes[0], m.mean, "viridis", "mean", "posterior mean"),
              (axes[1], m.std, "magma", "std", "posterior sd"))
    for ax, Z, cmap, gid, title in panels:
        filled = ax.contourf(m.xs, m.ys, Z, levels=14, cmap=cmap)
        filled.set_gid(gid)
        fig.colorbar(filled, ax=ax, label=f"{title}: {_outcome_label(campaign, m.output)}")
        ax.plot([t.params[m.x] for t in done], [t.params[m.y] for t in done],
                linestyle="none", marker="o", markersize=4, markerfacecolor="white",
                markeredgecolor="k", mew=0.6, label=f"trials ({len(done)})",
                gid=f"observed:{gid}")
        ax.plot([best.params[m.x]], [best.params[m.y]], linestyle="none", marker="*",
                markersize=14, color="C3", markeredgecolor="k", mew=0.5,
                label=f"best trial ({best.id})", gid=f"best:{gid}")
        for p, set_scale in ((px, ax.set_xscale), (py, ax.set_yscale)):
            if getattr(p, "log", False):
                set_scale("log")
        ax.set_xlabel(_label(px))
        ax.set_title(title, fontsize="medium")
    axes[0].set_ylabel(_label(py))
    axes[0].legend(loc="best", fontsize="small")
    held = ", ".join(f"{k}={_short_value(v)}" for k, v in m.at.items())
    fig.suptitle(f"{campaign.name}: {m.output} over {m.x} and {m.y}"
                 + (f" (others at trial {m.trial}: {held})" if held else ""),
                 fontsize="medium")
    fig.tight_layout()
    return fig


def plot_pairs(campaign: "Campaign", parameters: list[str] | None = None,
               objective: str | None = None, *, top: int = 3, points: int = 25,
               model: CampaignModel | None = None) -> Any:
    """Posterior mean over every pair of the most relevant parameters, as a grid of maps.

    parameters: continuous or integer parameters to pair (default the ``top``
    most relevant by length-scale, :func:`relevant_parameters`). Panel (i, j)
    below the diagonal is the :func:`posterior_map` of parameter j (x) and i
    (y) through the best trial, all on one colour scale so that panels compare;
    trials are dots, the best one a star. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    names = list(parameters) if parameters is not None else \
        relevant_parameters(campaign, objective)[:top]
    if len(names) < 2:
        raise ValueError(f"plot_pairs: parameters: got {names}; expected at least two"
                         " continuous or integer parameters")
    model = model if model is not None else campaign_model(campaign)
    maps = {(i, j): posterior_map(campaign, names[j], names[i], objective, points=points,
                                  model=model)
            for i in range(1, len(names)) for j in range(i)}
    values = np.concatenate([m.mean.ravel() for m in maps.values()])
    if not np.any(np.isfinite(values)):
        raise ValueError(f"plot_pairs: every grid point of {names} breaks the constraints"
                         " with the others held at the best trial; expected some to hold")
    levels = np.linspace(np.nanmin(values), np.nanmax(values), 15)  # one scale for all
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == _COMPLETED]
    k = len(names) - 1
    # A corner plot: a column shares its x parameter, a row its y parameter.
    fig, axes = plt.subplots(k, k, figsize=(3.4 * k + 1.4, 3.0 * k + 0.6), squeeze=False,
                             sharex="col", sharey="row", layout="constrained")
    filled = None
    for (i, j), m in maps.items():
        ax = axes[i - 1][j]
        filled = ax.contourf(m.xs, m.ys, m.mean, levels=levels, cmap="viridis")
        filled.set_gid(f"mean:{m.x}:{m.y}")
        ax.plot([t.params[m.x] for t in done], [t.params[m.y] for t in done],
                linestyle="none", marker="o", markersize=3, markerfacecolor="white",
                markeredgecolor="k", mew=0.5, gid=f"observed:{m.x}:{m.y}")
        best = next(t for t in done if t.id == m.trial)
        ax.plot([best.params[m.x]], [best.params[m.y]], linestyle="none", marker="*",
                markersize=12, color="C3", markeredgecolor="k", mew=0.5,
                gid=f"best:{m.x}:{m.y}")
        for name, set_scale in ((m.x, ax.set_xscale), (m.y, ax.set_yscale)):
            if getattr(campaign.space[name], "log", False):
                set_scale("log")
        if i == k:
            ax.set_xlabel(_label(campaign.space[m.x]))
        if j == 0:
            ax.set_ylabel(_label(campaign.space[m.y]))
    for i in range(1, len(names)):
        for j in range(i, k):
            axes[i - 1][j].set_visible(False)  # above the diagonal: the same pairs again
    name = next(iter(maps.values())).output
    fig.colorbar(filled, ax=axes.ravel().tolist(), label=f"posterior mean:"
                 f" {_outcome_label(campaign, name)}")
    fig.suptitle(f"{campaign.name}: {name} over pairs of {', '.join(names)} (others at"
                 f" trial {next(iter(maps.values())).trial}'s values)", fontsize="medium")
    return fig

def _short_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):  # a composition
        return "{" + ", ".join(f"{k}: {f:.3g}" for k, f in v.items()) + "}"
    return str(v)


# -- length-scales -----------------------------------------------------------------------

_STATIONARY = {"matern12", "matern32", "matern52", "rbf", "periodic"}


def ard_relevance(hyperparameters: dict, n_columns: int) -> np.ndarray:
    """Relevance of each encoded input column, (outputs, n_columns), from an audit's
    ``hyperparameters``.

    Relevance is 1 / length-scale (inputs scaled to [0, 1]): a large value means
    the outcome changes quickly along that column. A categorical kernel's weight
    w enters as sqrt(w), the 1 / length-scale of the RBF kernel that gives the
    same correlation between two different one-hot levels. Columns that no
    kernel measures (e.g. only a linear kernel) are NaN; a column under several
    kernels keeps the largest relevance. Also reads a SAAS model's
    ``median_lengthscale``.
    """
    if "median_lengthscale" in hyperparameters:
        ls = np.atleast_2d(np.asarray(hyperparameters["median_lengthscale"], np.float64))
        out = np.full((ls.shape[0], n_columns), np.nan)
        out[:, :ls.shape[1]] = 1.0 / ls
        return out
    if "kernel_params" not in hyperparameters:
        raise ValueError("hyperparameters: expected 'kernel_params' (a GP) or"
                         f" 'median_lengthscale' (SAAS); got keys {sorted(hyperparameters)}")
    found: list[tuple[list[int], np.ndarray]] = []

    def walk(kernel: dict, params: Any, dims: list[int]) -> None:
        if kernel.get("active_dims") is not None:
            dims = [dims[i] for i in kernel["active_dims"]]
        kind = kernel["type"]
        if kind in ("sum", "product"):
            for sub, sub_params in zip(kernel["kernels"], params):
                walk(sub, sub_params, dims)
        elif kind == "warped":
            walk(kernel["kernel"], params["kernel"], dims)
        elif kind == "categorical":
            w = np.atleast_2d(np.exp(np.asarray(params["log_weight"], np.float64)))
            for g, group in enumerate(kernel["groups"]):
                cols = [dims[c] for c in group]
                found.append((cols, np.repeat(np.sqrt(w[:, g:g + 1]), len(cols), axis=1)))
        elif kind in _STATIONARY and "log_lengthscale" in params:
            ls = np.atleast_2d(np.exp(np.asarray(params["log_lengthscale"], np.float64)))
            if ls.shape[1] == 1 and len(dims) > 1:  # one shared length-scale
                ls = np.repeat(ls, len(dims), axis=1)
            found.append((dims, 1.0 / ls))

    walk(hyperparameters["kernel"], hyperparameters["kernel_params"], list(range(n_columns)))
    m = max((r.shape[0] for _, r in found), default=1)
    out = np.full((m, n_columns), np.nan)
    for cols, rel in found:
        rel = np.broadcast_to(rel, (m, len(cols)))
        out[:, cols] = np.fmax(out[:, cols], rel)
    return out


def _column_labels(space: Any, n_columns: int) -> list[tuple[str, list[int]]]:
    """(label, encoded columns) per bar: one per parameter, one per composition
    element, then the descriptors a feature transform appends."""
    from workbench.space import Composition

    bars, col, extra = [], 0, []
    for p in space.parameters:
        if isinstance(p, Composition):
            bars += [(f"{p.name}.{e}", [col + i]) for i, e in enumerate(p.elements)]
            extra += [f"{p.name} mean {f}" for f in p.features]
            extra += [f"{p.name} spread {f}" for f in p.features]
        else:
            bars.append((p.name, list(range(col, col + p.columns))))
        col += p.columns
    n_extra = n_columns - col
    if n_extra and len(extra) != n_extra:  # substance descriptors too: number them
        extra = [f"descriptor {j + 1}" for j in range(n_extra)]
    bars += [(label, [col + j]) for j, label in enumerate(extra[:max(n_extra, 0)])]
    return bars


def _model_columns(campaign: "Campaign") -> int:
    """Input columns the surrogate sees: the encoded space, then any descriptors."""
    transform = campaign._engine.feature_transform()
    if transform is None:
        return campaign.space.dim
    import jax.numpy as jnp

    return int(transform(jnp.full((1, campaign.space.dim), 0.5)).shape[-1])


def _last_hyperparameters(campaign: "Campaign") -> tuple[int, dict] | None:
    import json

    for t in sorted(campaign.trials, key=lambda t: t.id, reverse=True):
        if t.audit:
            hyper = json.loads(t.audit).get("hyperparameters")
            if hyper:
                return t.id, hyper
    return None


def plot_lengthscales(campaign: "Campaign", output: str | None = None,
                      ax: "Axes | None" = None) -> "Axes":
    """Parameter relevance (1 / ARD length-scale) of the last model that proposed a trial.

    Read from that trial's audit (``json.loads(trial.audit)["hyperparameters"]``),
    so it shows why the model proposed what it did. One bar per parameter (per
    element for a composition; a categorical parameter's bar is its group's
    relevance). output: which modelled outcome (default the first objective).
    Returns the Axes.
    """
    own = ax is None
    ax = _axes(ax)
    found = _last_hyperparameters(campaign)
    if found is None:
        ax.text(0.5, 0.5, "no model-proposed trial with fitted hyperparameters yet",
                transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_title(f"{campaign.name}: parameter relevance")
        return ax
    trial_id, hyper = found
    outputs = list(campaign._engine.outputs)
    name = output or campaign.objectives[0].name
    if name not in outputs:
        raise ValueError(f"plot_lengthscales: output {name!r} is not modelled; expected one of"
                         f" {outputs}")
    n_columns = _model_columns(campaign)
    rel = ard_relevance(hyper, n_columns)
    row = rel[min(outputs.index(name), rel.shape[0] - 1)]
    bars = _column_labels(campaign.space, n_columns)
    labels = [label for label, _ in bars]
    values = [float(np.nanmax(row[cols])) if np.any(np.isfinite(row[cols])) else 0.0
              for _, cols in bars]
    pos = np.arange(len(bars))[::-1]  # first parameter on top
    container = ax.barh(pos, values, color="C0", gid="relevance")
    container.set_label("1 / length-scale")
    ax.set_yticks(pos, labels)
    ax.set_xlabel("relevance: 1 / length-scale (inputs scaled to [0, 1])")
    ax.set_title(f"{campaign.name}: parameter relevance for {_outcome_label(campaign, name)}"
                 f" (model of trial {trial_id})", fontsize="medium")
    if own:
        ax.figure.tight_layout()  # room for long parameter names
    return ax


# -- compositions ------------------------------------------------------------------------

_SQRT3_2 = float(np.sqrt(3.0) / 2.0)


def ternary_xy(fractions: Any) -> np.ndarray:
    """Cartesian points on the unit ternary diagram, (n, 2), from fractions (n, 3).

    Corners: the first component at (0, 0), the second at (1, 0), the third at
    (1/2, sqrt(3)/2). Rows are normalised to sum to one first (other elements
    of a larger composition are left out).
    """
    F = np.atleast_2d(np.asarray(fractions, np.float64))
    if F.shape[-1] != 3:
        raise ValueError(f"fractions: got shape {F.shape}; expected (n, 3)")
    total = F.sum(axis=1, keepdims=True)
    if np.any(total <= 0):
        raise ValueError("fractions: a row sums to zero; expected some of the three components")
    F = F / total
    return np.stack([F[:, 1] + 0.5 * F[:, 2], _SQRT3_2 * F[:, 2]], axis=1)


def _ternary_frame(ax: "Axes", corners: list[str], steps: int = 5) -> None:
    ax.plot([0, 1, 0.5, 0], [0, 0, _SQRT3_2, 0], color="k", lw=1, gid="triangle")
    for f in np.arange(1, steps) / steps:  # grid lines of constant fraction
        for k in range(3):
            ends = np.zeros((2, 3))
            ends[:, k] = f
            ends[0, (k + 1) % 3] = 1 - f
            ends[1, (k + 2) % 3] = 1 - f
            xy = ternary_xy(ends)
            ax.plot(xy[:, 0], xy[:, 1], color="0.85", lw=0.7, zorder=0)
    for (x, y), label, ha, va in zip([(0, 0), (1, 0), (0.5, _SQRT3_2)], corners,
                                     ["right", "left", "center"], ["top", "top", "bottom"]):
        ax.text(x, y, label, ha=ha, va=va, fontsize="medium", fontweight="bold")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(-0.08, _SQRT3_2 + 0.08)
    ax.set_aspect("equal")
    ax.axis("off")


def plot_ternary(campaign: "Campaign", name: str, elements: list[str] | None = None,
                 objective: str | None = None, ax: "Axes | None" = None) -> "Axes":
    """Compositions of three elements on a ternary diagram, coloured by an outcome.

    name: the Composition parameter; elements: three of its elements (default:
    all of them when it has three); objective: the outcome to colour by
    (default the first objective). With more elements in the composition the
    three fractions are renormalised (the title says so). The best trial is a
    star. Returns the Axes.
    """
    from workbench.space import Composition

    comp = next((p for p in campaign.space.parameters if p.name == name), None)
    if not isinstance(comp, Composition):
        names = [p.name for p in campaign.space.parameters if isinstance(p, Composition)]
        raise ValueError(f"plot_ternary: {name!r} is not a composition parameter; expected one"
                         f" of {names}")
    elements = list(comp.elements) if elements is None else list(elements)
    if len(elements) != 3 or len(set(elements)) != 3 or any(e not in comp.elements
                                                            for e in elements):
        raise ValueError(f"plot_ternary: elements: got {elements}; expected three different"
                         f" elements of {comp.elements}")
    obj_name = objective or campaign.objectives[0].name
    if obj_name not in [o.name for o in campaign.outcomes]:
        raise ValueError(f"plot_ternary: objective {obj_name!r} is not an outcome; expected one"
                         f" of {[o.name for o in campaign.outcomes]}")
    ax = _axes(ax)
    unit = f" [{comp.unit}]" if comp.unit else ""
    _ternary_frame(ax, [f"{e}{unit}" for e in elements])
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == _COMPLETED
            and sum(float(t.params[name].get(e, 0.0)) for e in elements) > 0]
    partial = len(comp.elements) > 3
    title = f"{campaign.name}: {name} " + "-".join(elements)
    ax.set_title(title + (" (fractions renormalised over these three)" if partial else ""),
                 fontsize="medium")
    if not done:
        ax.text(0.5, 0.4, "no completed trials yet", ha="center", va="center", color="0.4")
        return ax
    F = np.asarray([[float(t.params[name].get(e, 0.0)) for e in elements] for t in done])
    xy = ternary_xy(F)
    values = np.asarray([t.outcomes[obj_name] for t in done], dtype=np.float64)
    points = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=36,
                        edgecolors="k", linewidths=0.4, zorder=3, gid="trials")
    ax.figure.colorbar(points, ax=ax, shrink=0.8, label=_outcome_label(campaign, obj_name))
    best = campaign.best()
    if best is not None and any(t.id == best.id for t in done):
        bxy = xy[[t.id for t in done].index(best.id)]
        ax.plot([bxy[0]], [bxy[1]], linestyle="none", marker="*", markersize=16,
                markerfacecolor="none", markeredgecolor="C3", mew=1.5, zorder=4,
                label=f"best trial ({best.id})", gid="best")
        ax.legend(loc="upper right", fontsize="small")
    return ax
