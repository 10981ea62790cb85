"""Transfer without pooling data: a prior exported from one campaign warm-starts another.

The export holds hyperparameters and posterior values at anchor points, never an
observation (every number in it is checked against the data); a warm start on a
shifted and scaled task fits better than a cold one; on a real multi-partner server
the prior is an artifact with its run's permissions (refused to another partner until
a grant).
"""

import json
import math

import numpy as np
import pytest
from test_server_auth import as_partner, server, server_cli  # noqa: F401  (its real server)
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app
from workbench.transfer import (TransferError, check_compatible, export_prior, load_prior,
                                log_prior, prior_model, save_prior)

BRANIN = wb.problems.get("branin")


def _campaign(n=12, tracking=None, store=None, partner="default", name="source"):
    c = wb.Campaign(name, BRANIN.space(), [wb.Objective("y", "minimize")], tracking=tracking,
                    store=store, partner=partner, seed=0, initial_design={"n": n})
    c.run(BRANIN, budget=n)
    return c


@pytest.fixture(scope="module")
def source():
    c = _campaign(n=20)
    return c, export_prior(c)


def _numbers(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _numbers(v)
    elif isinstance(tree, list):
        for v in tree:
            yield from _numbers(v)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield float(tree)


def test_the_export_holds_no_observed_input_or_outcome(source):
    c, prior = source
    done = [t for t in c.trials if t.status == "completed"]
    data = {float(t.outcomes["y"]) for t in done}
    data |= {float(v) for t in done for v in t.params.values()}  # user units
    data |= {float(v) for v in c.space.encode([t.params for t in done]).ravel()}  # encoded
    numbers = list(_numbers(json.loads(json.dumps(prior))))
    assert len(numbers) > 64 * 4  # anchors (x2), means, stds, hyperparameters
    for x in numbers:
        assert not any(math.isclose(x, d, rel_tol=1e-9, abs_tol=1e-12) for d in data), x
    assert set(prior) == {"format", "model", "source", "objective", "parameters", "summary"}
    assert set(prior["summary"]) == {"dim", "anchors", "mean", "std", "hyperparameters"}


def test_the_summary_reproduces_the_source_posterior_mean(source):
    import jax
    import jax.numpy as jnp

    from surrogates import fit_gp
    from surrogates.transfer import prior_mean_from_summary

    c, prior = source
    done = [t for t in c.trials if t.status == "completed"]
    X = c.space.encode([t.params for t in done])
    Y = np.asarray([[t.outcomes["y"]] for t in done])
    model = fit_gp(X, Y, key=jax.random.key(0), bounds=(np.zeros(2), np.ones(2)))
    Xq = np.random.default_rng(1).random((200, 2))
    want = np.asarray(model.posterior(jnp.asarray(Xq)).mean[:, 0])
    got = np.asarray(prior_mean_from_summary(prior["summary"])(jnp.asarray(Xq)))
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.05 * np.std(want)


def _related(Z):
    """A related task: Branin shifted in its inputs, scaled and offset in its output."""
    lo, hi = np.array([-5.0, 0.0]), np.array([10.0, 15.0])
    x = lo + (hi - lo) * Z
    return np.array([2.5 * BRANIN({"x1": a + 0.3, "x2": b}) - 40.0 for a, b in x])


def test_a_warm_start_fits_a_related_task_better_than_a_cold_one_at_n3(source):
    import jax
    import jax.numpy as jnp

    from surrogates import fit_gp

    _, prior = source
    g = np.stack(np.meshgrid(np.linspace(0, 1, 25), np.linspace(0, 1, 25)), -1).reshape(-1, 2)
    truth = _related(g)
    ratios = []
    for seed in range(5):
        X = np.random.default_rng(10 + seed).random((3, 2))
        Y = _related(X)[:, None]
        key = jax.random.key(seed)
        warm = prior_model(prior, X, Y, key=key)
        cold = fit_gp(X, Y, key=key, bounds=(np.zeros(2), np.ones(2)))
        rmse = [float(np.sqrt(np.mean((np.asarray(m.posterior(jnp.asarray(g)).mean[:, 0])
                                       - truth) ** 2))) for m in (warm, cold)]
        ratios.append(rmse[0] / rmse[1])
    assert np.median(ratios) < 0.5, ratios


def test_the_warm_model_keeps_the_surrogate_protocol(source):
    import jax
    import jax.numpy as jnp

    from surrogates import posterior_moments

    _, prior = source
    X = np.random.default_rng(3).random((4, 2))
    Y = _related(X)[:, None]
    model = prior_model(prior, X, Y, key=jax.random.key(0))
    mean, var = posterior_moments(model, jnp.asarray(X))  # crosses jit
    np.testing.assert_allclose(np.asarray(mean), Y, rtol=1e-3, atol=1e-3 * np.ptp(Y))
    assert np.all(np.asarray(var) >= 0)
    Xn = np.array([[0.3, 0.7], [0.8, 0.2]])
    Yn = _related(Xn)[:, None]
    cond = model.condition(jnp.asarray(Xn), jnp.asarray(Yn))
    post = cond.posterior(jnp.asarray(Xn), full_cov=True)
    np.testing.assert_allclose(np.asarray(post.mean), Yn, rtol=1e-3, atol=1e-3 * np.ptp(Y))
    assert post.covariance.shape == (1, 2, 2)
    assert np.all(np.asarray(cond.posterior(jnp.asarray(Xn)).variance)
                  < np.asarray(model.posterior(jnp.asarray(Xn)).variance))


def test_files_round_trip_and_incompatible_spaces_are_refused(source, tmp_path):
    c, prior = source
    path = save_prior(prior, tmp_path / "p.json")
    assert load_prior(path) == json.loads(json.dumps(prior))
    check_compatible(prior, c.space)
    other = wb.problems.get("hartmann6").space()
    with pytest.raises(TransferError, match="surrogate.prior: exported for parameters"):
        check_compatible(prior, other)
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(TransferError, match="format 'something-else'; expected"):
        load_prior(tmp_path / "bad.json")
    with pytest.raises(TransferError, match="no file"):
        load_prior(tmp_path / "absent.json")


def test_prior_export_command_writes_json_and_logs_the_artifact(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    c = _campaign(n=6, tracking=uri, store=tmp_path / "c.zarr")
    result = CliRunner().invoke(app, ["prior", "export", "c.zarr", "--out", "p.json"])
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "p.json").read_text())
    ref = f"runs:/{c.run_id}/prior.json"
    assert ref in result.output.replace("\n", "")
    assert load_prior(ref, tracking=uri) == written
    assert MlflowClient(uri).get_run(c.run_id).info.status == "FINISHED"  # not reopened
    bad = CliRunner().invoke(app, ["prior", "export", "missing.zarr", "--out", "q.json"])
    assert bad.exit_code == 2 and "no campaign store at missing.zarr" in bad.output
    assert not (tmp_path / "q.json").exists()


def test_another_partner_reads_the_prior_only_after_a_grant(server, tmp_path):  # noqa: F811
    with as_partner("acme"):
        c = _campaign(n=5, tracking=server.url, store=tmp_path / "a.zarr", partner="acme",
                      name="shared-prior")
        ref = log_prior(c, export_prior(c))
    assert ref == f"runs:/{c.run_id}/prior.json"
    with as_partner("bolt"):
        with pytest.raises(TransferError, match="permission denied .*workbench server grant") \
                as info:
            load_prior(ref, tracking=server.url)
        assert "pw-" not in str(info.value)
    from mlflow.tracking import MlflowClient

    with as_partner("acme", server.workspaces["acme"]):
        eid = MlflowClient(server.url).get_run(c.run_id).info.experiment_id
    server_cli(server, ["grant", "bolt", eid, "--uri", server.url], server.admin_env)
    with as_partner("bolt"):
        prior = load_prior(ref, tracking=server.url)
    assert prior["source"] == {"partner": "acme", "campaign": "shared-prior"}
    check_compatible(prior, BRANIN.space())
