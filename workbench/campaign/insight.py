"""What the campaign's model has learned, on demand: global sensitivity (Sobol indices)
and predictions at points the user gives; and why a trial was proposed, as its record
says (``explain``).

Both rest on the surrogate the next ``ask`` would fit (``Proposer.current_model``),
so they agree with the predictions recorded on proposals. Nothing here is
recorded in the store; ``importance`` logs its indices to MLflow when tracking is on.

Sensitivity is over the search space as encoded, with every input drawn
independently and uniformly there (log-uniform for a ``log`` parameter), then
made valid as a proposal is: integers rounded, a categorical's level the largest
of its one-hot draws, a composition's elements drawn independently and shifted
onto the simplex. Linear, nonlinear and cardinality constraints of the space
are not imposed: the indices describe the model over the box. Context
parameters are inputs like any other; a multi-task campaign's task is held at
its target.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from workbench.errors import CampaignError
from workbench.space import Composition

if TYPE_CHECKING:
    import pandas as pd
    import xarray as xr

    from workbench.campaign.proposing import Proposer
    from workbench.campaign.telemetry import Telemetry
    from workbench.space import SearchSpace

__all__ = ["MIN_BASE_ROWS", "P_FEASIBLE", "SobolIndices", "explain", "importance",
           "importance_metrics", "predict", "read_points"]

#: Name of the probability that a point satisfies every outcome constraint.
P_FEASIBLE = "p_feasible"
# Joint posterior draws need a Cholesky of (points x points) per output: the draws use
# the first base rows of the design that keep the points at most this many.
MAX_JOINT_POINTS = 2048
#: Fewest base rows of a Saltelli design worth estimating indices from.
MIN_BASE_ROWS = 16
# Bisection steps that put a composition on the simplex (to 2^-60 of its range).
SIMPLEX_BISECTIONS = 60
# A column header with its unit, as CSV exports write it: "temperature [degC]".
_UNIT_SUFFIX = re.compile(r"^(.*\S)\s*\[[^\]]*\]$")


# -- points in user units ----------------------------------------------------------------


def read_points(space: "SearchSpace", table: Any) -> list[dict]:
    """Parameter dicts from a DataFrame, a list of dicts or a CSV path, validated.

    Columns are the parameters (a composition as ``name.Element`` columns or, in a
    dict, a mapping); a header may carry its unit (``temperature [degC]``); other
    columns (outcomes, trial ids) are ignored. A bad value raises CampaignError
    naming its row, column, value and what was expected.
    """
    import pandas as pd

    if isinstance(table, (str, Path)):
        path = Path(table)
        if not path.is_file():
            raise CampaignError(f"points: no file at {path}; expected a CSV file of points")
        frame = pd.read_csv(path)
        where = f"{path.name} line"
        offset = 2  # the header is line 1
    elif isinstance(table, pd.DataFrame):
        frame, where, offset = table, "row", 0
    elif isinstance(table, (list, tuple)) and all(isinstance(r, dict) for r in table):
        frame = pd.DataFrame([_flat(space, r) for r in table])
        where, offset = "row", 0
    else:
        raise CampaignError(f"points: got {type(table).__name__}; expected a DataFrame, a"
                            " list of parameter dicts or a CSV path")
    if frame.empty:
        raise CampaignError("points: the table has no rows; expected at least one point")
    frame = frame.rename(columns=lambda c: _strip_unit(str(c), space.flat_names))
    missing = [c for c in space.flat_names if c not in frame.columns]
    if missing:
        raise CampaignError(f"points: missing column(s) {missing}; expected the parameter"
                            f" columns {space.flat_names}")
    rows = []
    for i, record in enumerate(frame[space.flat_names].to_dict("records")):
        flat = {k: _scalar(v) for k, v in record.items()}
        params = space.unflatten(flat)
        try:
            rows.append(space.validate(params))
        except CampaignError as e:
            raise CampaignError(f"points {where} {i + offset}: {e}") from None
    return rows


def _flat(space: "SearchSpace", row: dict) -> dict:
    """A user row with compositions as mappings -> flat ``name.Element`` columns."""
    out = {}
    for key, value in row.items():
        p = space[key] if key in space.names else None
        if isinstance(p, Composition) and isinstance(value, dict):
            out.update({f"{key}.{e}": value.get(e, 0.0) for e in p.elements})
        else:
            out[key] = value
    return out


def _strip_unit(column: str, names: list[str]) -> str:
    m = _UNIT_SUFFIX.match(column)
    return m.group(1) if m and m.group(1) in names and column not in names else column


def _scalar(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


# -- predictions -----------------------------------------------------------------------


def predict(campaign: Any, proposer: "Proposer", table: Any) -> "pd.DataFrame":
    """The model's mean and standard deviation of every objective (``<name>_mean``,
    ``<name>_std``, user units) and, with outcome constraints, ``p_feasible`` at the
    points of ``table`` (see :func:`read_points`), one row per point after its
    parameter columns."""
    import jax.numpy as jnp
    import pandas as pd

    rows = read_points(campaign.space, table)
    model = proposer.current_model(campaign.trials, campaign.surrogate_state)
    mean, var, log_pf = _posterior(proposer.problem, model,
                                   jnp.asarray(campaign.space.encode(rows)))
    out = pd.DataFrame([campaign.space.flatten(r) for r in rows])
    outputs = list(proposer.problem.outputs)
    for o in campaign.objectives:
        k = outputs.index(o.name)
        out[f"{o.name}_mean"] = mean[:, k]
        out[f"{o.name}_std"] = np.sqrt(var[:, k])
    if log_pf is not None:
        out[P_FEASIBLE] = np.exp(log_pf)
    return out


def _posterior(problem: Any, model: Any, X: Any
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The model's mean and variance at encoded X (n, d), (n, m) each in output units,
    and log P(every outcome constraint holds), (n,) (None without constraints), from one
    posterior. A model fitted through an output warp is asked for its warped moments:
    mapped back for the mean and variance (``OutputWarp.moments``), and held against the
    warped bounds for feasibility, where its marginals are Gaussian."""
    from surrogates import posterior_moments
    from surrogates.output_warping import unwarp

    latent, warp = unwarp(model)
    mean, var = posterior_moments(latent, X)
    mean, var = np.asarray(mean), np.maximum(np.asarray(var), 0.0)
    log_pf = None
    if problem.constraints:
        log_pf = _log_p_feasible(problem if warp is None else problem.warped(warp), mean, var)
    if warp is not None:
        mean, var = warp.moments(mean, var)
    return mean, var, log_pf


def _log_p_feasible(problem: Any, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """log P(every outcome constraint holds), (n,), as the constrained acquisitions
    weight it: independent Gaussian marginals (mean, var: (n, m)) of the constraint
    outputs."""
    from active_learning import OutcomeConstraints, log_probability_of_feasibility

    constraints = OutcomeConstraints.from_tuples(
        [(problem.outputs.index(c.name), c.op, c.bound) for c in problem.constraints])
    posterior = _Moments(mean, var)
    return np.asarray(log_probability_of_feasibility(posterior, constraints))


class _Moments(NamedTuple):
    """Mean and variance (n, m): what ``log_probability_of_feasibility`` reads (a
    NamedTuple is a pytree, so it crosses ``jit``)."""

    mean: np.ndarray
    variance: np.ndarray


# -- sensitivity -----------------------------------------------------------------------


def parameter_groups(space: "SearchSpace", held: dict[str, Any]) -> list[tuple[str, list[int]]]:
    """(label, encoded columns) per input of the indices: one per parameter, one per
    composition element; parameters in ``held`` are left out."""
    groups, col = [], 0
    for p in space.parameters:
        cols = list(range(col, col + p.columns))
        if p.name in held:
            pass
        elif isinstance(p, Composition):
            groups += [(f"{p.name}.{e}", [c]) for e, c in zip(p.elements, cols)]
        else:
            groups.append((p.name, cols))
        col += p.columns
    return groups


def _valid(space: "SearchSpace", Z: np.ndarray, fixed: dict[int, float]) -> np.ndarray:
    """Unit-cube draws (N, d) made valid points of the space, held columns set:
    integers and one-hot groups snapped as the optimiser does, each composition
    shifted onto the simplex."""
    X = space.domain().snap_numpy(Z)
    for name, cols in space.columns.items():
        p = space[name]
        if isinstance(p, Composition):
            lo, hi = np.asarray(p.lows), np.asarray(p.highs)
            F = _onto_simplex(lo + X[:, cols] * (hi - lo), lo, hi)
            X[:, cols] = (F - lo) / (hi - lo)
    for j, v in fixed.items():
        X[:, j] = v
    return X


def _onto_simplex(F: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Fractions (N, k) shifted by one amount per row, clipped to [lo, hi], so that
    they sum to one (the shift is found by bisection: the sum is monotone in it)."""
    a, b = -np.ones(len(F)), np.ones(len(F))
    for _ in range(SIMPLEX_BISECTIONS):
        t = 0.5 * (a + b)
        low = np.clip(F + t[:, None], lo, hi).sum(axis=1) < 1.0
        a, b = np.where(low, t, a), np.where(low, b, t)
    return np.clip(F + 0.5 * (a + b)[:, None], lo, hi)


@dataclasses.dataclass(frozen=True)
class SobolIndices:
    """Sobol indices as plain arrays: what ``Campaign.importance`` returns as an xarray
    Dataset (``to_dataset``), for readers that need no xarray (the report).

    outputs: the objectives' names, then ``p_feasible`` with outcome constraints;
    parameters: one label per input (``parameter_groups``); first_order, total,
    first_order_std, total_std: (outputs, parameters), the std NaN where there are
    no posterior draws (always for ``p_feasible``); variance: (outputs,), the
    model's variance over the space; attrs: the settings and what they mean.
    """

    outputs: list[str]
    parameters: list[str]
    first_order: np.ndarray
    total: np.ndarray
    first_order_std: np.ndarray
    total_std: np.ndarray
    variance: np.ndarray
    attrs: dict[str, Any]

    def of(self, kind: str, output: str) -> np.ndarray:
        """One output's row of ``kind`` (first_order, total or their _std), (parameters,)."""
        return getattr(self, kind)[self.outputs.index(output)]

    @classmethod
    def from_dataset(cls, ds: "xr.Dataset") -> "SobolIndices":
        """The indices of a ``Campaign.importance()`` Dataset (``to_dataset``'s inverse)."""
        return cls(outputs=[str(o) for o in ds["output"].values],
                   parameters=[str(p) for p in ds["parameter"].values],
                   **{k: ds[k].values for k in ("first_order", "total", "first_order_std",
                                                 "total_std", "variance")},
                   attrs=dict(ds.attrs))

    def to_dataset(self) -> "xr.Dataset":
        """The indices as an xarray Dataset over (output, parameter)."""
        import xarray as xr

        dims = ("output", "parameter")
        return xr.Dataset(
            {"first_order": (dims, self.first_order), "total": (dims, self.total),
             "first_order_std": (dims, self.first_order_std),
             "total_std": (dims, self.total_std), "variance": (("output",), self.variance)},
            coords={"output": self.outputs, "parameter": self.parameters},
            attrs=dict(self.attrs))


def importance(campaign: Any, proposer: "Proposer", telemetry: "Telemetry", n: int = 512,
               samples: int = 32, seed: int = 0, model: Any = None) -> SobolIndices:
    """First-order and total Sobol indices of each objective (and ``p_feasible``) per
    parameter, from the model's posterior mean; their spread over posterior draws.

    n: base rows of the Saltelli design (the model is evaluated at n (g + 2) points
    for g inputs); samples: joint posterior draws for the spread (0: none); seed:
    the design's scrambling and the draws' key. See the module docstring for the
    distribution the indices are taken over.
    """
    import jax.numpy as jnp

    from active_learning import saltelli_design, saltelli_points, sobol_indices

    for name, value, low in (("n", n, MIN_BASE_ROWS), ("samples", samples, 0),
                             ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise CampaignError(f"{name}: got {value!r}; expected an integer >= {low}")
    problem = proposer.problem
    if model is None:
        model = proposer.current_model(campaign.trials, campaign.surrogate_state)
    fixed = problem.fixed_columns(problem.held())
    groups = parameter_groups(campaign.space, problem.held())
    labels, cols = [g[0] for g in groups], [g[1] for g in groups]
    A, B = saltelli_design(int(n), campaign.space.dim, int(seed))
    X = _valid(campaign.space, saltelli_points(A, B, cols), fixed)
    mean, _, log_pf = _posterior(problem, model, jnp.asarray(X))
    outputs = list(problem.outputs)
    names = [o.name for o in campaign.objectives]
    series = [mean[:, outputs.index(k)] for k in names]
    if log_pf is not None:
        names.append(P_FEASIBLE)
        series.append(np.exp(log_pf))
    S = sobol_indices(np.stack(series), int(n))
    first_std, total_std, n_draws = _spread(campaign, model, A, B, cols, fixed, outputs,
                                            int(samples), int(seed))
    nan = np.full((len(names), len(labels)), np.nan)
    result = SobolIndices(
        outputs=names, parameters=labels, first_order=np.asarray(S.first_order),
        total=np.asarray(S.total), first_order_std=_pad(first_std, nan),
        total_std=_pad(total_std, nan), variance=np.asarray(S.variance),
        attrs={"campaign": campaign.name, "n": int(n), "samples": int(samples),
               "seed": int(seed), "sample_rows": n_draws,
               "n_train": int(sum(t.status == "completed" for t in campaign.trials)),
               "over": "the encoded box (space constraints not imposed)",
               "spread": "std over joint posterior draws of the objectives at the same"
                         " design: what the model does not know (p_feasible: none)"})
    _log(telemetry, result, campaign)
    return result


def _pad(values: np.ndarray | None, nan: np.ndarray) -> np.ndarray:
    """The objectives' spread, NaN for p_feasible (and for all without draws)."""
    out = nan.copy()
    if values is not None:
        out[:len(values)] = values
    return out


def _spread(campaign: Any, model: Any, A: np.ndarray, B: np.ndarray, cols: list[list[int]],
            fixed: dict[int, float], outputs: list[str], samples: int, seed: int):
    """Std of the indices over joint posterior draws of each objective, (objectives,
    g) each, and the base rows used; (None, None, 0) without draws or where the
    model gives no joint covariance."""
    rows = min(len(A), MAX_JOINT_POINTS // (len(cols) + 2))
    if samples < 2 or rows < MIN_BASE_ROWS:
        return None, None, 0
    import jax

    from active_learning import saltelli_points, sobol_indices

    X = jax.numpy.asarray(_valid(campaign.space, saltelli_points(A[:rows], B[:rows], cols),
                                 fixed))
    try:
        draws = _joint_draws()(model, X, jax.random.key(seed), samples)
    except (ValueError, NotImplementedError, TypeError, AttributeError):
        return None, None, 0  # a model without joint draws: no spread
    idx = [outputs.index(o.name) for o in campaign.objectives]
    Y = np.moveaxis(np.asarray(draws)[:, :, idx], 2, 0)      # (objectives, samples, points)
    S = sobol_indices(Y, rows)
    return np.std(np.asarray(S.first_order), axis=1), np.std(np.asarray(S.total), axis=1), rows


@functools.cache
def _joint_draws():
    """``(model, X (q, d), key, samples) -> (samples, q, m)`` joint posterior draws, one
    compiled program (built on first use: this module imports JAX lazily)."""
    import jax

    def draws(model, X, key, samples: int):
        return model.posterior(X, full_cov=True).sample(key, samples)

    return jax.jit(draws, static_argnums=3)


def importance_metrics(indices: SobolIndices) -> dict[str, float]:
    """The indices as MLflow metrics: ``importance.total.<output>.<parameter>`` and
    ``importance.first_order...`` (names made safe for MLflow)."""
    out = {}
    for kind in ("total", "first_order"):
        for o in indices.outputs:
            for p, value in zip(indices.parameters, indices.of(kind, o)):
                if math.isfinite(float(value)):
                    out[_metric_name(f"importance.{kind}.{o}.{p}")] = float(value)
    return out


def _metric_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", name)


def _log(telemetry: "Telemetry", indices: SobolIndices, campaign: Any) -> None:
    tracker = telemetry.tracker()
    if tracker is None:
        return
    step = sum(t.status in ("completed", "failed") for t in campaign.trials)
    tracker.log_metrics(importance_metrics(indices), step=step)
    if telemetry.deliver:  # deferred: queued for whoever delivers the outbox next
        tracker.flush()  # asked for now: in the run when this returns (else in the outbox)


# -- why a trial was proposed ----------------------------------------------------------


def explain(campaign: Any, trial_id: int) -> dict[str, Any]:
    """What trial ``trial_id``'s proposal rested on, as recorded when it was asked: its
    strategy, the model's mean and sd there, the acquisition value, the incumbent, the
    optimiser's runners-up and acquisition profiles, the model and its hyperparameters,
    the data hash, and ``text``: the same in a few sentences.

    Reads the trial's record only, never the model: an explanation says what happened
    with the code and data of the time, and reopening the store gives the same one.
    An initial-design or imported trial is explained as such (no model chose it).
    """
    import json

    trials = campaign.trials
    if isinstance(trial_id, bool) or not isinstance(trial_id, (int, np.integer)) \
            or not 0 <= int(trial_id) < len(trials):
        raise CampaignError(f"trial_id: got {trial_id!r}; expected a trial id from 0 to"
                            f" {len(trials) - 1}" if trials else
                            f"trial_id: got {trial_id!r}; the campaign has no trials yet")
    t = trials[int(trial_id)]
    audit = json.loads(t.audit) if t.audit else {}
    kind = _kind(t.strategy)
    out: dict[str, Any] = {
        "trial_id": t.id, "status": t.status, "strategy": t.strategy, "kind": kind,
        "params": t.proposed or t.params,
        "prediction": {k: {"mean": p.mean, "std": p.std} for k, p in t.prediction.items()}
        if t.prediction else None,
        "acquisition_value": t.acquisition_value,
        "incumbent": _best_so_far(campaign, audit.get("incumbent")),
        "batch_position": audit.get("batch_position"),
        "alternatives": audit.get("alternatives", []),
        "profiles": audit.get("profiles", []),
        "model": {k: audit.get(k) for k in ("model", "kernel", "n_train", "fantasies",
                                            "fantasy_mode")} if kind == "model" else None,
        "hyperparameters": audit.get("hyperparameters"),
        "data_hash": audit.get("data_hash"),
    }
    out["text"] = _words(campaign, t, audit, out)
    return out


def _kind(strategy: str) -> str:
    from workbench.campaign.design import DESIGN_STRATEGIES
    from workbench.record import IMPORTED

    if strategy in DESIGN_STRATEGIES:
        return "initial_design"
    if strategy == IMPORTED:
        return "imported"
    return "model" if strategy else "unknown"


def _best_so_far(campaign: Any, score: float | None) -> float | None:
    """The recorded incumbent (a score to maximise) in the objective's own units; for
    a target objective, the score -(value - target)^2 itself."""
    if score is None or len(campaign.objectives) != 1:
        return None
    return -score if campaign.objectives[0].direction == "minimize" else score


def _g(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def _words(campaign: Any, t: Any, audit: dict, facts: dict) -> str:
    """A few sentences saying what the record says."""
    kind = facts["kind"]
    head = f"Trial {t.id}"
    if kind == "initial_design":
        return (f"{head} is point {audit.get('design_index', t.id)} of the initial design"
                f" ({t.strategy}): a space-filling design chosen before any model was fitted,"
                " so no prediction or acquisition value stands behind it.")
    if kind == "imported":
        where = f" ({audit['source']}, {audit.get('row', '')})" if audit.get("source") else ""
        return (f"{head} was imported from past data{where}: an experiment done before the"
                " campaign, not proposed by it.")
    if kind == "unknown" or not audit:
        return f"{head} has no recorded proposal audit (strategy {t.strategy or 'unknown'!r})."
    model = facts["model"]
    kernel = f" ({model['kernel']} kernel)" if model.get("kernel") else ""
    position = facts["batch_position"]
    parts = [f"{head} was proposed by {t.strategy}"
             + (f" as point {position + 1} of its batch" if position else "")
             + f", from a {model['model']} model{kernel} fitted on {model['n_train']}"
             f" observations (data hash {facts['data_hash']})."]
    if t.prediction:
        said = ", ".join(f"{k} {p.mean:.4g} ± {p.std:.2g}" for k, p in t.prediction.items())
        best = facts["incumbent"]
        against = ""
        if best is not None:
            obj = campaign.objectives[0]
            label = "best score so far" if obj.direction == "target" else "best so far"
            against = f" against the {label} {_g(best)}"
        parts.append(f"The model predicted {said} there{against}.")
    if t.acquisition_value is None or math.isnan(t.acquisition_value):
        parts.append("Its acquisition has no value function (a posterior sample chose it).")
    else:
        parts.append(f"Its acquisition value was {_g(t.acquisition_value)}.")
    others = facts["alternatives"][1:]
    if others:
        parts.append("The next best candidates the optimiser found scored "
                     + ", ".join(_g(a["acquisition_value"]) for a in others) + ".")
    if audit.get("fantasies"):
        parts.append(f"{audit['fantasies']} pending point(s) were accounted for"
                     f" ({audit.get('fantasy_mode', '').replace('_', ' ')}).")
    return " ".join(parts)
