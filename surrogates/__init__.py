"""JAX surrogate models: ``fit(X, Y) -> model``; ``model.posterior(Xq)``.

Gaussian processes need float64, so importing this package enables JAX's
64-bit mode (as GPJax and BoTorch's float64 defaults do).
"""

import jax

jax.config.update("jax_enable_x64", True)

from surrogates.gp import (  # noqa: E402
    ExactGP,
    GPHyperparameters,
    Posterior,
    bucket_size,
    fit_gp,
    gp_from_hyperparameters,
    log_prior,
    negative_log_marginal_likelihood,
)
from surrogates.kernels import matern52  # noqa: E402

__all__ = [
    "ExactGP",
    "GPHyperparameters",
    "Posterior",
    "bucket_size",
    "fit_gp",
    "gp_from_hyperparameters",
    "log_prior",
    "matern52",
    "negative_log_marginal_likelihood",
]
