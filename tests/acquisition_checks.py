"""Shared by the acquisition tests: a tiny GP with fixed hyperparameters, and
values checked against central finite differences in one compiled call."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import surrogates as sg


def fixed_gp(X, y, noise, lengthscale):
    """The workbench GP on (X, y) in [0, 1]^2 with known hyperparameters."""
    theta = sg.GPHyperparameters(
        log_lengthscale=np.log(lengthscale)[None], log_variance=np.zeros(1),
        log_noise=np.log([noise]) if noise > 0 else np.array([-60.0]), mean=np.zeros(1),
    )
    return sg.gp_from_hyperparameters(X, y, theta, bounds=(np.zeros(2), np.ones(2)))


values = eqx.filter_jit(lambda acq, X: acq(X))


@eqx.filter_jit
def _values_and_grads(acq, X):
    return jax.grad(lambda X: (jnp.sum(acq(X)), acq(X)), has_aux=True)(X)[::-1]


def values_checked(acq, X, h=1e-6, rtol=1e-5, atol=1e-7):
    """acq(X), after checking its autodiff gradient against central differences.

    X: (b, ...) candidates (points or q-batches); each is independent, so the
    perturbed copies ride along as extra rows of one compiled call.
    """
    X = np.asarray(X, np.float64)
    b, shape = X.shape[0], X.shape[1:]
    D = int(np.prod(shape))
    steps = h * np.eye(D).reshape((D,) + shape)
    shifted = [X + s for s in steps] + [X - s for s in steps]
    vals, grads = _values_and_grads(acq, jnp.asarray(np.concatenate([X] + shifted)))
    vals, grads = np.asarray(vals), np.asarray(grads)
    plus = vals[b:(D + 1) * b].reshape(D, b)
    minus = vals[(D + 1) * b:].reshape(D, b)
    fd = ((plus - minus) / (2 * h)).T  # (b, D)
    np.testing.assert_allclose(grads[:b].reshape(b, D), fd, rtol=rtol, atol=atol)
    assert np.all(np.isfinite(vals))
    return vals[:b]
