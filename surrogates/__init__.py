"""JAX surrogate models: ``fit(X, Y) -> model``; ``model.posterior(Xq)``.

Gaussian processes need float64, so importing this package enables JAX's
64-bit mode (as GPJax and BoTorch's float64 defaults do). On jaxlib 0.10 (CPU)
it also gives XLA one intra-op thread, before JAX starts, because batched
linear solves can deadlock there otherwise, and holds the LAPACK under JAX's
CPU linear algebra (SciPy's OpenBLAS) to one thread, whose idle threads would
otherwise spin beside XLA's (see ``surrogates/_runtime.py``).
"""

import jax

from surrogates._runtime import (
    avoid_cpu_lapack_deadlock,
    compiled_programs,
    counts_traces,
    memory_maps,
    release_programs_if_crowded,
    single_threaded_lapack,
)

avoid_cpu_lapack_deadlock()
single_threaded_lapack()
jax.config.update("jax_enable_x64", True)

from surrogates.protocol import (  # noqa: E402
    Conditionable,
    ExactFactor,
    FitFunction,
    SharesFixedJoint,
    Surrogate,
    SurrogatePosterior,
)
from surrogates.registry import MODELS, register_model  # noqa: E402
from surrogates.numerics import JITTER, MIN_VARIANCE  # noqa: E402
from surrogates.data import bucket_size, pad_observations, pad_points, standardise  # noqa: E402
from surrogates.predict import posterior_moments  # noqa: E402
from surrogates.gp import (  # noqa: E402
    ExactGP,
    FixedJoint,
    GPHyperparameters,
    Posterior,
    fit_gp,
    gp_from_hyperparameters,
    hyperparameters_from_dict,
    hyperparameters_to_dict,
    log_prior,
    negative_log_marginal_likelihood,
    resolve_kernel,
)
from surrogates.output_warping import (  # noqa: E402
    STRONG_WARP_GAIN,
    STRONG_WARP_ROWS,
    OutputWarp,
    OutputWarped,
)
from surrogates.kernels import (  # noqa: E402
    RBF,
    Categorical,
    Kernel,
    Linear,
    Matern12,
    Matern32,
    Matern52,
    Periodic,
    Product,
    Sum,
    Warped,
    kernel_from_dict,
    kernel_to_dict,
    matern52,
    parse_kernel,
    with_categorical,
    with_descriptor_columns,
)
from surrogates.deep_kernel import DeepKernelGP, fit_deep_kernel_gp  # noqa: E402
from surrogates.ensemble import BayesianLastLayer, DeepEnsemble, fit_bll, fit_ensemble  # noqa: E402
from surrogates.svgp import SVGP, SVGPHyperparameters, fit_svgp  # noqa: E402
from surrogates.saas import SAASGP, SAASHyperparameters, fit_saas_gp, saas_gp_from_samples  # noqa: E402
from surrogates.multitask import (  # noqa: E402
    LCMParameters,
    MultiTaskGP,
    MultiTaskHyperparameters,
    TaskView,
    fit_multitask_gp,
    multitask_gp_from_hyperparameters,
)
from surrogates.multifidelity import (  # noqa: E402
    AutoregressiveHyperparameters,
    MultiFidelityGP,
    fit_multifidelity_gp,
    multifidelity_gp_from_hyperparameters,
)
from surrogates.task_columns import (  # noqa: E402
    TaskColumns,
    TaskLayout,
    fit_multifidelity_columns,
    fit_multitask_columns,
)

__all__ = [
    "AutoregressiveHyperparameters",
    "BayesianLastLayer",
    "bucket_size",
    "Categorical",
    "Conditionable",
    "DeepEnsemble",
    "DeepKernelGP",
    "ExactFactor",
    "ExactGP",
    "FitFunction",
    "FixedJoint",
    "fit_bll",
    "fit_deep_kernel_gp",
    "fit_ensemble",
    "fit_gp",
    "fit_multifidelity_columns",
    "fit_multifidelity_gp",
    "fit_multitask_columns",
    "fit_multitask_gp",
    "fit_saas_gp",
    "fit_svgp",
    "gp_from_hyperparameters",
    "GPHyperparameters",
    "hyperparameters_from_dict",
    "hyperparameters_to_dict",
    "JITTER",
    "Kernel",
    "kernel_from_dict",
    "kernel_to_dict",
    "LCMParameters",
    "Linear",
    "log_prior",
    "Matern12",
    "Matern32",
    "Matern52",
    "matern52",
    "MIN_VARIANCE",
    "MODELS",
    "multifidelity_gp_from_hyperparameters",
    "MultiFidelityGP",
    "multitask_gp_from_hyperparameters",
    "MultiTaskGP",
    "MultiTaskHyperparameters",
    "negative_log_marginal_likelihood",
    "OutputWarp",
    "OutputWarped",
    "STRONG_WARP_GAIN",
    "STRONG_WARP_ROWS",
    "pad_observations",
    "pad_points",
    "parse_kernel",
    "Periodic",
    "Posterior",
    "posterior_moments",
    "Product",
    "RBF",
    "register_model",
    "release_programs_if_crowded",
    "single_threaded_lapack",
    "compiled_programs",
    "counts_traces",
    "memory_maps",
    "resolve_kernel",
    "saas_gp_from_samples",
    "SAASGP",
    "SAASHyperparameters",
    "SharesFixedJoint",
    "standardise",
    "Sum",
    "Surrogate",
    "SurrogatePosterior",
    "SVGP",
    "SVGPHyperparameters",
    "TaskColumns",
    "TaskLayout",
    "TaskView",
    "Warped",
    "with_categorical",
    "with_descriptor_columns",
]
