"""Per-iteration metrics: closed-form GP leave-one-out against brute-force refits,
calibration, the energy estimate and the version / data-hash tags on a real run."""

import numpy as np
import pytest

import workbench as wb
from workbench.errors import CampaignError
from workbench.metrics import (calibration, code_version, leave_one_out, loo_metrics,
                               watts_per_core)


def _gp(n=12, d=2, seed=0, noise=-6.0):
    import jax

    from surrogates import GPHyperparameters, gp_from_hyperparameters

    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    Y = np.sin(6 * X[:, :1]) + X[:, 1:2] ** 2 + 0.05 * rng.standard_normal((n, 1))
    theta = GPHyperparameters(log_lengthscale=np.log(np.full((1, d), 0.3)),
                              log_variance=np.zeros(1), log_noise=np.full(1, noise),
                              mean=np.full(1, 0.1))
    del jax
    return X, Y, theta, gp_from_hyperparameters(X, Y, theta, bounds=(np.zeros(d), np.ones(d)))


def test_closed_form_loo_equals_n_refits_with_fixed_hyperparameters():
    X, Y, theta, model = _gp()
    y, mu, var = leave_one_out(model)
    assert np.allclose(y, Y[:, 0])
    # Brute force: drop each point, solve the GP posterior of the other n-1 with the same
    # hyperparameters and the same output standardisation, predict the point (noise included).
    Z, Ys = np.asarray(model.X)[:12], np.asarray(model.Y)[:12, 0]
    p = {k: np.asarray(v)[0] for k, v in theta.kernel_params.items()}
    K = np.asarray(theta.kernel(p, Z, Z))
    noise = float(model.hyperparameters.noise[0]) + 1e-9
    m = float(theta.mean[0])
    loc, scale = float(model.y_loc[0]), float(model.y_scale[0])
    for i in range(12):
        keep = np.arange(12) != i
        Kr = K[np.ix_(keep, keep)] + noise * np.eye(11)
        k = K[i, keep]
        mean_i = m + k @ np.linalg.solve(Kr, Ys[keep] - m)
        var_i = K[i, i] + noise - k @ np.linalg.solve(Kr, k)
        assert mu[i] == pytest.approx(loc + scale * mean_i, rel=1e-7, abs=1e-9)
        assert var[i] == pytest.approx(scale**2 * var_i, rel=1e-6)


def test_loo_ignores_padding_and_the_prior_mean_gp_adds_its_mean_function():
    from surrogates import gp_from_hyperparameters
    from surrogates.transfer import PriorMeanGP, prior_mean_from_summary, summarise_posterior

    X, Y, theta, model = _gp(n=9)
    padded = gp_from_hyperparameters(X, Y, theta, bounds=(np.zeros(2), np.ones(2)), capacity=64)
    for a, b in zip(leave_one_out(model), leave_one_out(padded)):
        np.testing.assert_allclose(a, b, rtol=1e-9)
    prior = prior_mean_from_summary(summarise_posterior(model, num_anchors=32))
    import jax.numpy as jnp

    shifted = PriorMeanGP(residual=model, prior=prior, a=jnp.asarray(2.0), b=jnp.asarray(1.0))
    y0, mu0, var0 = leave_one_out(model)
    y1, mu1, var1 = leave_one_out(shifted)
    shift = 2.0 * np.asarray(prior(jnp.asarray(X))) + 1.0
    np.testing.assert_allclose(y1 - y0, shift, rtol=1e-9)
    np.testing.assert_allclose(y1 - mu1, y0 - mu0, rtol=1e-9)  # same residuals
    np.testing.assert_allclose(var1, var0)


def test_calibration_counts_residuals_inside_each_interval():
    z = np.array([0.1, 0.5, 1.0, 1.8, 3.0])  # in units of the predictive sd
    cover = calibration(2.0 + 0.5 * z, np.full(5, 2.0), np.full(5, 0.25))
    assert cover == {50: 0.4, 90: 0.6, 95: 0.8}
    metrics = loo_metrics(_gp()[3])
    assert set(metrics) == {"loo_rmse", "loo_nlpd", "loo_coverage_50", "loo_coverage_90",
                            "loo_coverage_95"}
    assert 0 < metrics["loo_rmse"] < 1


def test_loo_of_a_warped_gp_is_reported_in_output_units():
    from scipy import stats

    from surrogates import OutputWarp, gp_from_hyperparameters

    X, Y, theta, _ = _gp(n=14)
    Y = np.exp(2.0 * Y)  # positive and skewed
    warp = OutputWarp.fit(Y, [0])
    model = gp_from_hyperparameters(X, warp(Y), theta, bounds=(np.zeros(2), np.ones(2)))
    w, mu, var = leave_one_out(model)  # warped units
    metrics = loo_metrics(model, warp)
    # The error of the back-transformed LOO median, in output units.
    back = np.asarray(warp.inverse(mu[:, None]))[:, 0]
    assert metrics["loo_rmse"] == pytest.approx(np.sqrt(np.mean((Y[:, 0] - back) ** 2)))
    # The output-unit density by change of variables: the warped density times dw/dy,
    # the slope here by central differences.
    h = 1e-6 * Y[:, :1]
    slope = (warp(Y + h) - warp(Y - h))[:, 0] / (2 * h[:, 0])
    nlpd = -np.mean(stats.norm.logpdf(w, mu, np.sqrt(var)) + np.log(slope))
    assert metrics["loo_nlpd"] == pytest.approx(nlpd, rel=1e-6)
    # Coverage is the warped intervals': the monotone warp maps them onto the output's.
    assert metrics["loo_coverage_90"] == loo_metrics(model)["loo_coverage_90"]


def test_watts_per_core_is_configurable_and_checked(monkeypatch):
    monkeypatch.delenv("WORKBENCH_WATTS_PER_CORE", raising=False)
    assert watts_per_core() == 12.0
    monkeypatch.setenv("WORKBENCH_WATTS_PER_CORE", "7.5")
    assert watts_per_core() == 7.5
    monkeypatch.setenv("WORKBENCH_WATTS_PER_CORE", "lots")
    with pytest.raises(CampaignError, match="WORKBENCH_WATTS_PER_CORE: got 'lots'"):
        watts_per_core()


def test_a_tracked_run_logs_loo_calibration_energy_versions_and_data_hash(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from workbench.campaign.telemetry import data_hash as _data_hash

    monkeypatch.setenv("WORKBENCH_WATTS_PER_CORE", "10")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    problem = wb.problems.get("branin")
    c = wb.Campaign("metrics", problem.space(), [wb.Objective("y", "minimize")], tracking=uri,
                    seed=0, initial_design={"n": 3})
    c.run(problem, budget=7)
    client = MlflowClient(uri)
    run = client.search_runs([client.get_experiment_by_name("default/metrics").experiment_id])[0]
    rid = run.info.run_id
    history = {k: sorted(client.get_metric_history(rid, k), key=lambda m: m.step)
               for k in ("step_cpu_s", "step_energy_j", "loo_rmse", "loo_coverage_95", "regret")}
    # Every ask (step: trials before it) and every tell (step: evaluations) logs its CPU.
    assert sorted({m.step for m in history["step_cpu_s"]}) == list(range(0, 8))
    for cpu, energy in zip(history["step_cpu_s"], history["step_energy_j"]):
        assert energy.value == pytest.approx(10 * cpu.value) and cpu.value >= 0
    assert [m.step for m in history["loo_rmse"]] == [4, 5, 6, 7]  # once a model was fitted
    assert all(0 <= m.value <= 1 for m in history["loo_coverage_95"])
    assert history["regret"][-1].value >= 0
    tags = run.data.tags
    assert tags["version.jax"] and tags["version.numpy"] and tags["version.python"]
    assert tags.get("code.commit", "") == code_version()
    done = [t for t in c.trials if t.status == "completed"]
    X = c.space.encode([t.params for t in done])
    assert tags["data_hash"] == _data_hash(X, np.asarray([[t.outcomes["y"]] for t in done]))
