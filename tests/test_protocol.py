"""Every registered surrogate satisfies the surrogate protocol (surrogates/protocol.py).

Each model of ``surrogates.MODELS`` is fitted on the same tiny data (small
settings: the protocol, not the fit quality, is under test) and its posterior is
checked: mean and variance (q, m), covariance (m, q, q) when asked, joint samples
(S, q, m), all finite, variances positive. Models that take fantasies must
return a model that still satisfies the protocol, and the exact GP's shared
joint blocks must match its full joint posterior.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import surrogates as sg
from surrogates.protocol import Conditionable, SharesFixedJoint, Surrogate, SurrogatePosterior

N, Q, SAMPLES = 10, 3, 5
# The last encoded column is a task / fidelity on a two-level grid (0 or 1).
TASK_LAYOUT = sg.TaskLayout(columns=(2,), keep=(0, 1), levels=2, onehot=False)
OPTIONS = {
    "gp": {"restarts": 1},
    "saas": {"num_warmup": 16, "num_samples": 16, "num_chains": 1, "thinning": 4},
    "ensemble": {"members": 2, "hidden": (8,), "epochs": 2, "min_steps": 20},
    "bll": {"hidden": (8,), "epochs": 2, "min_steps": 20, "members": 1},
    "svgp": {"num_inducing": 4, "steps": 20},
    "deep_kernel": {"hidden": (8,), "steps": 20, "restarts": 1},
    "multitask": {"layout": TASK_LAYOUT, "restarts": 1},
    "multifidelity": {"layout": TASK_LAYOUT, "restarts": 1},
}


def _data():
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(N, 3))
    X[:, 2] = np.arange(N) % 2  # both tasks observed
    Y = (np.sin(4 * X[:, 0]) + X[:, 1] + 0.3 * X[:, 2])[:, None]
    Xq = rng.uniform(size=(Q, 3))
    Xq[:, 2] = 1.0
    return X, Y, Xq


def _check_posterior(model, Xq, m: int):
    post = model.posterior(Xq)
    assert isinstance(post, SurrogatePosterior)
    assert post.mean.shape == (Q, m) and post.variance.shape == (Q, m)
    assert np.all(np.isfinite(post.mean)) and np.all(np.asarray(post.variance) > 0)
    joint = model.posterior(Xq, full_cov=True)
    assert joint.covariance.shape == (m, Q, Q)
    assert np.all(np.isfinite(joint.covariance))
    np.testing.assert_allclose(np.diagonal(joint.covariance, axis1=1, axis2=2).T,
                               joint.variance, rtol=1e-6, atol=1e-9)
    draws = joint.sample(jax.random.key(1), SAMPLES)
    assert draws.shape == (SAMPLES, Q, m) and np.all(np.isfinite(draws))


def test_every_model_the_engine_uses_is_registered():
    assert set(sg.MODELS) >= {"gp", "saas", "ensemble", "bll", "svgp", "deep_kernel",
                              "multitask", "multifidelity"}
    assert set(OPTIONS) == set(sg.MODELS), "give each registered model tiny settings here"


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_registered_model_satisfies_the_protocol(name):
    X, Y, Xq = _data()
    model = sg.MODELS[name](X, Y, key=jax.random.key(0), **OPTIONS[name])
    assert isinstance(model, Surrogate)
    assert model.num_outputs == 1
    _check_posterior(model, Xq, 1)
    if isinstance(model, Conditionable):
        mean = model.posterior(Xq[:1]).mean
        conditioned = model.condition(Xq[:1], mean)
        assert isinstance(conditioned, Surrogate)
        _check_posterior(conditioned, Xq, 1)
        # Believing its mean there keeps the prediction near it (exactly, for one
        # Gaussian; a mixture's components move) and leaves less variance.
        before, after = model.posterior(Xq[:1]), conditioned.posterior(Xq[:1])
        assert np.all(np.abs(after.mean - mean) <= 3 * np.sqrt(before.variance))
        assert np.all(np.asarray(after.variance) <= np.asarray(before.variance) * (1 + 1e-9))


def test_shared_fixed_joint_matches_the_full_joint_posterior():
    X, Y, Xq = _data()
    model = sg.MODELS["gp"](X, Y, key=jax.random.key(0), restarts=1)
    assert isinstance(model, SharesFixedJoint)
    mean, var, cross, cov = model.fixed_joint(X[:4])(Xq)
    full = model.posterior(np.concatenate([X[:4], Xq]), full_cov=True)
    np.testing.assert_allclose(mean, full.mean[4:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, full.variance[4:], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cross, full.covariance[:, :4, 4:], rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(cov, full.covariance[:, 4:, 4:], rtol=1e-7, atol=1e-10)
