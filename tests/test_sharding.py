"""Device sharding of pool scoring and ensemble members, on two simulated CPU devices.

A subprocess starts JAX with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
(the flag must be set before JAX is imported, hence the fresh process), scores a
candidate pool and fits a deep ensemble with the work split over both devices,
and saves the results with how they are laid out. This process, on its single
device, computes the same things: the values must agree to 1e-10, and the
sharded outputs must really live on both devices.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Shared by both processes: the same data, model and candidates, from fixed seeds.
COMMON = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import active_learning as al
    from surrogates import fit_ensemble, fit_gp

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(12, 3))
    Y = np.sin(3.0 * X.sum(axis=1, keepdims=True)) + 0.1 * X[:, :1]
    gp = fit_gp(X, Y, key=jax.random.key(0), restarts=1)
    acq = al.LogExpectedImprovement(gp, jnp.asarray(float(Y.max())), sign=1.0)
    pools = {n: jnp.asarray(np.random.default_rng(n).uniform(size=(n, 3))) for n in (1000, 1001)}
    Xe = rng.uniform(size=(40, 2))
    Ye = np.cos(4.0 * Xe[:, 0]) * Xe[:, 1]
    Xq = jnp.asarray(rng.uniform(size=(7, 2)))

    def results(devices=None):
        out = {}
        for n, pool in pools.items():
            out[f"pool{n}"] = al.score_pool(acq, pool, chunk=128, devices=devices)
        idx, vals = al.best_in_pool(acq, pools[1000], q=5, chunk=128, devices=devices)
        out["best_idx"], out["best_vals"] = jnp.asarray(idx), jnp.asarray(vals)
        for members in (4, 3):  # 3 on 2 devices: padded to 4 for training
            model = fit_ensemble(Xe, Ye, key=jax.random.key(1), members=members,
                                 hidden=(16, 16), epochs=0, min_steps=25, batch_size=16,
                                 dtype="float64", devices=devices)
            post = model.posterior(Xq)
            out[f"ens{members}_w0"] = model.members.weights[0]
            out[f"ens{members}_member_means"] = model.member_predictions(Xq)[0]
            out[f"ens{members}_mean"], out[f"ens{members}_var"] = post.mean, post.variance
        return out
""")

SHARDED = COMMON + textwrap.dedent("""
    import json, sys
    assert len(jax.devices()) == 2, jax.devices()
    res = results()
    layout = {k: {"devices": len(v.sharding.device_set),
                  "shards": [list(s.data.shape) for s in v.addressable_shards]}
              for k, v in res.items()}
    np.savez(sys.argv[1], **{k: np.asarray(v) for k, v in res.items()})
    one = results(devices=jax.devices()[:1])  # one device of the two: the plain programs
    np.savez(sys.argv[2], **{k: np.asarray(v) for k, v in one.items()})
    print(json.dumps(layout))
""")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharding")
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SHARDED, str(tmp / "two.npz"),
                           str(tmp / "one.npz")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    layout = json.loads(proc.stdout.strip().splitlines()[-1])
    return dict(np.load(tmp / "two.npz")), dict(np.load(tmp / "one.npz")), layout


@pytest.fixture(scope="module")
def single():
    """The same computations in this process, on its one device."""
    assert len(jax.devices()) == 1
    scope: dict = {}
    exec(COMMON, scope)  # noqa: S102 - the shared script, run here on one device
    return {k: np.asarray(v) for k, v in scope["results"]().items()}


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert np.array_equal(np.isneginf(a), np.isneginf(b))
    finite = np.isfinite(a)
    assert np.max(np.abs(a[finite] - b[finite]), initial=0.0) <= 1e-10


def test_sharded_results_equal_single_device_results(sharded, single):
    two, one_of_two, _ = sharded
    assert set(two) == set(single)
    for key in single:
        _close(two[key], single[key])
        _close(one_of_two[key], single[key])
    assert np.array_equal(two["best_idx"], single["best_idx"])
    # The test is not vacuous: the pool has a spread of values and -inf nowhere.
    assert np.ptp(single["pool1000"]) > 1.0 and np.isfinite(single["pool1000"]).all()


def test_outputs_are_laid_out_over_both_devices(sharded):
    _, _, layout = sharded
    # Pool values: split 500 / 500; an odd pool is scored split, returned whole.
    assert layout["pool1000"] == {"devices": 2, "shards": [[500], [500]]}
    assert layout["pool1001"]["devices"] == 2
    # Ensemble members: two per device, in the fitted model and in its predictions.
    assert layout["ens4_w0"] == {"devices": 2, "shards": [[2, 2, 16], [2, 2, 16]]}
    assert layout["ens4_member_means"] == {"devices": 2, "shards": [[2, 7, 1], [2, 7, 1]]}
    assert layout["ens3_w0"]["devices"] == 2
