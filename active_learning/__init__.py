"""Active learning over an encoded domain through the surrogate protocol.

Acquisition functions, their optimisation, and initial designs. This layer
knows arrays in ``[0, 1]^d`` and which columns are integer or one-hot; it does
not know parameter names, units, files or tracking.
"""

import surrogates  # noqa: F401  (enables float64 before any array exists)

from active_learning.acquisition import (
    CostAware,
    IntegratedVarianceReduction,
    LogExpectedImprovement,
    LogNoisyExpectedImprovement,
    LogProbabilityOfImprovement,
    MaxValueEntropySearch,
    MaxVariance,
    PosteriorVariance,
    UpperConfidenceBound,
    expected_improvement,
    log_expected_improvement_from_moments,
    log_h,
    log_max_value_entropy_term,
    log_probability_of_improvement_from_moments,
    logmeanexp,
    sample_optimal_values,
    sobol_normal_samples,
)
from active_learning.mc import (
    joint_samples,
    qLogExpectedImprovement,
    qLogNoisyExpectedImprovement,
    qSimpleRegret,
    qUpperConfidenceBound,
    thompson_sample,
)
from active_learning.design import sobol
from active_learning.domain import Domain
from active_learning.optimize import maximize_acquisition, quasi_random

__all__ = [
    "CostAware",
    "Domain",
    "IntegratedVarianceReduction",
    "LogExpectedImprovement",
    "LogNoisyExpectedImprovement",
    "LogProbabilityOfImprovement",
    "MaxValueEntropySearch",
    "MaxVariance",
    "PosteriorVariance",
    "UpperConfidenceBound",
    "joint_samples",
    "log_max_value_entropy_term",
    "log_probability_of_improvement_from_moments",
    "logmeanexp",
    "qLogExpectedImprovement",
    "qLogNoisyExpectedImprovement",
    "qSimpleRegret",
    "qUpperConfidenceBound",
    "sample_optimal_values",
    "sobol_normal_samples",
    "thompson_sample",
    "expected_improvement",
    "log_expected_improvement_from_moments",
    "log_h",
    "maximize_acquisition",
    "quasi_random",
    "sobol",
]
