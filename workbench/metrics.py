"""Per-iteration metrics of a campaign's surrogate and compute (numpy only here).

- Leave-one-out (LOO) predictions of an exact GP in closed form from one
  Cholesky factor (Rasmussen & Williams 2006, eq. 5.12): with
  ``alpha = K^-1 (y - m)``, the prediction of ``y_i`` from the other points
  has residual ``alpha_i / [K^-1]_ii`` and variance ``1 / [K^-1]_ii``
  (hyperparameters and output standardisation held fixed), where n refits
  would cost n Cholesky factorisations.
- Calibration: the fraction of LOO residuals inside the central 50/90/95 %
  predictive intervals (a calibrated model gives about 0.5, 0.9, 0.95).
- Energy: an *estimate*, process CPU seconds (this process and the evaluation
  processes it waited for) times a power per busy core,
  ``WORKBENCH_WATTS_PER_CORE`` (default 12 W, the per-core figure of the
  Green Algorithms calculator, Lannelongue et al. 2021). Accelerators, memory
  and idle power are not counted.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

__all__ = ["COVERAGE_LEVELS", "DEFAULT_WATTS_PER_CORE", "calibration", "code_version",
           "cpu_seconds", "leave_one_out", "loo_metrics", "watts_per_core"]

DEFAULT_WATTS_PER_CORE = 12.0
WATTS_ENV = "WORKBENCH_WATTS_PER_CORE"
# Central interval level -> standard-normal half-width.
COVERAGE_LEVELS = {50: 0.6744897501960817, 90: 1.6448536269514722, 95: 1.959963984540054}


def leave_one_out(model) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closed-form LOO of a fitted exact GP's first output, in output units.

    model: an ``ExactGP`` (or a model with a ``residual`` ExactGP and a fixed
    mean function, whose LOO residuals are the residual GP's). Returns
    ``(observed, loo_mean, loo_variance)``, each (n,) over the observed rows;
    the variance is that of a new observation (noise included).
    """
    mean_fn = None
    if hasattr(model, "residual"):
        mean_fn, model = model, model.residual
    # Whole arrays to numpy first: indexing a JAX array dispatches an operation each time.
    mask = np.asarray(model.mask)[:, 0] > 0
    L = np.asarray(model.cholesky, np.float64)[0]
    alpha = np.asarray(model.alpha, np.float64)[0]
    # K^-1 from the factor: padded rows form an identity block and drop out.
    from scipy.linalg import lapack

    Linv = np.tril(lapack.dtrtri(L, lower=1)[0])  # LAPACK leaves the upper triangle as given
    kinv_diag = np.sum(Linv * Linv, axis=0)
    scale = float(np.asarray(model.y_scale)[0])
    ys = np.asarray(model.Y)[:, 0][mask] * scale + float(np.asarray(model.y_loc)[0])
    resid = alpha[mask] / kinv_diag[mask] * scale
    var = scale**2 / kinv_diag[mask]
    if mean_fn is not None:
        X = np.asarray(model.X)[mask] * np.asarray(model.span) + np.asarray(model.lower)
        shift = np.asarray(mean_fn.mean_function(X))[:, 0]
        ys = ys + shift
    return ys, ys - resid, var


def calibration(observed, mean, variance) -> dict[int, float]:
    """Fraction of ``observed`` inside the central 50/90/95 % intervals of N(mean, variance)."""
    z = np.abs(np.asarray(observed) - np.asarray(mean)) / np.sqrt(np.asarray(variance))
    return {level: float(np.mean(z <= half)) for level, half in COVERAGE_LEVELS.items()}


def loo_metrics(model, warp=None) -> dict[str, float]:
    """LOO error and calibration as MLflow metrics: ``loo_rmse``, ``loo_nlpd`` (mean
    negative log predictive density) and ``loo_coverage_50/90/95``.

    warp: the ``surrogates.OutputWarp`` the model was fitted through (its first output),
    or None. The LOO is then taken on the warped values and reported in output units:
    the error of the back-transformed median, the density with the warp's log-slope
    (change of variables), and the coverage of the warped intervals, which the monotone
    warp maps onto the output-unit intervals of the same probability."""
    y, mu, var = leave_one_out(model)
    if len(y) < 2:
        return {}
    r = y - mu
    nlpd = 0.5 * (np.log(2 * np.pi * var) + r**2 / var)
    out = {f"loo_coverage_{k}": v for k, v in calibration(y, mu, var).items()}
    if warp is not None:
        first = warp.column(0)
        y_out = first.inverse(y[:, None])[:, 0]
        r = y_out - first.inverse(mu[:, None])[:, 0]
        nlpd = nlpd - np.log(first.slope(y_out[:, None])[:, 0])
    return {"loo_rmse": float(np.sqrt(np.mean(r**2))), "loo_nlpd": float(np.mean(nlpd)), **out}


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def watts_per_core() -> float:
    """Power per busy core for the energy estimate: ``$WORKBENCH_WATTS_PER_CORE`` or 12 W."""
    raw = os.environ.get(WATTS_ENV)
    if raw is None:
        return DEFAULT_WATTS_PER_CORE
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        from workbench.errors import CampaignError

        raise CampaignError(f"{WATTS_ENV}: got {raw!r}; expected a non-negative number of watts")
    return value


_CODE: dict[str, str] = {}


def code_version() -> str:
    """The git commit of the workbench source tree (``+dirty`` if modified), or ''.

    Computed once per process; empty for an installed wheel.
    """
    if "commit" not in _CODE:
        root = Path(__file__).resolve().parents[1]
        commit = ""
        if (root / ".git").exists():
            try:
                head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, text=True,
                                      capture_output=True, timeout=5)
                dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                       cwd=root, text=True, capture_output=True, timeout=5)
                if head.returncode == 0:
                    commit = head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
            except (OSError, subprocess.SubprocessError):
                commit = ""
        _CODE["commit"] = commit
    return _CODE["commit"]
