"""Active learning over an encoded domain through the surrogate protocol.

Acquisition functions, their optimisation, and initial designs. This layer
knows arrays in ``[0, 1]^d`` and which columns are integer or one-hot; it does
not know parameter names, units, files or tracking.
"""

import surrogates  # noqa: F401  (enables float64 before any array exists)

from active_learning.acquisition import (
    LogExpectedImprovement,
    UpperConfidenceBound,
    expected_improvement,
    log_expected_improvement_from_moments,
    log_h,
)
from active_learning.design import sobol
from active_learning.domain import Domain
from active_learning.optimize import maximize_acquisition, quasi_random

__all__ = [
    "Domain",
    "LogExpectedImprovement",
    "UpperConfidenceBound",
    "expected_improvement",
    "log_expected_improvement_from_moments",
    "log_h",
    "maximize_acquisition",
    "quasi_random",
    "sobol",
]
