"""Numerical floors shared by every model and acquisition.

One definition each, so that a Gram matrix, a posterior covariance and a
sampled joint are regularised alike.
"""

# Added to the diagonal of a Gram or posterior covariance matrix before its
# Cholesky factorisation, relative to the matrix's variance scale (1 in a
# model's standardised units): candidates on top of observed, noiseless points
# make these matrices singular, and this is far below any noise a model learns.
JITTER = 1e-9

# Smallest posterior variance a model reports: subtracting the explained part
# from the prior variance can round to zero or below at observed points, and
# acquisitions divide by the standard deviation.
MIN_VARIANCE = 1e-12

__all__ = ["JITTER", "MIN_VARIANCE"]
