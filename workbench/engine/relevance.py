"""Parameter relevance from a fit's hyperparameters: 1 / ARD length-scale per encoded
input column. The engine ranks parameters by it (the acquisition profiles of a
proposal's audit); the plots draw it."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ard_relevance"]

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
