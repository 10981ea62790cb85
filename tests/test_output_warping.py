"""Output warping: the Yeo-Johnson transform against SciPy's, its maximum-likelihood
exponent, the back-transformed posterior against its closed form, and the engine's use of
it (which campaigns warp, predictions in output units, affine invariance)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import surrogates as sg
import workbench as wb
from surrogates.output_warping import (
    STRONG_WARP_GAIN,
    STRONG_WARP_ROWS,
    OutputWarp,
    OutputWarped,
    yeo_johnson,
    yeo_johnson_derivative,
    yeo_johnson_inverse,
)
from workbench.engine import output_warping_of, policy
from workbench.plots import campaign_model
from workbench.spec import SpecError, parse_spec

LAMBDAS = (-1.5, 0.0, 0.5, 1.0, 2.0, 3.2)


@pytest.mark.parametrize("lam", LAMBDAS)
def test_yeo_johnson_matches_scipy_and_inverts(lam):
    z = np.random.default_rng(0).normal(size=200) * 2.0
    w = yeo_johnson(z, lam)
    np.testing.assert_allclose(w, stats.yeojohnson(z, lam), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(yeo_johnson_inverse(w, lam), z, rtol=1e-10, atol=1e-10)
    # The JAX path gives the same values, and the derivative is JAX's gradient.
    np.testing.assert_allclose(np.asarray(yeo_johnson(jnp.asarray(z), jnp.asarray(lam))), w,
                               rtol=1e-12, atol=1e-12)
    grad = jax.vmap(jax.grad(lambda t: yeo_johnson(t, jnp.asarray(lam))))(jnp.asarray(z))
    np.testing.assert_allclose(yeo_johnson_derivative(z, lam), np.asarray(grad), rtol=1e-10)


def test_inverse_stays_finite_beyond_a_bounded_range():
    # lam < 0: the transform is bounded above by -1 / lam; a mean beyond it maps to a
    # large finite value, not inf.
    assert np.isfinite(yeo_johnson_inverse(np.array([10.0]), -1.0)).all()
    assert np.isfinite(yeo_johnson_inverse(np.array([-10.0]), 3.0)).all()


def test_fitted_exponent_is_scipys_maximum_likelihood_one():
    rng = np.random.default_rng(1)
    skewed = np.exp(1.5 * rng.normal(size=60))  # log-normal: strongly right-skewed
    Y = np.stack([skewed, rng.normal(size=60)], axis=1)
    warp = OutputWarp.fit(Y, [0])
    z = (skewed - skewed.mean()) / skewed.std()
    assert float(warp.lam[0]) == pytest.approx(stats.yeojohnson_normmax(z), abs=1e-5)
    assert float(warp.lam[0]) < 1.0  # right skew: a log-like warp
    # The column not asked for, and the warp's round trip.
    assert (float(warp.loc[1]), float(warp.scale[1]), float(warp.lam[1])) == (0.0, 1.0, 1.0)
    np.testing.assert_allclose(warp.inverse(warp(Y)), Y, rtol=1e-10)
    # Warped values are closer to Gaussian: smaller skewness.
    assert abs(stats.skew(warp(Y)[:, 0])) < 0.2 * abs(stats.skew(skewed))


def test_too_few_or_constant_values_are_left_as_they_are():
    for Y in (np.array([[1.0], [2.0]]), np.full((10, 1), 3.0)):
        warp = OutputWarp.fit(Y, [0])
        np.testing.assert_array_equal(warp(Y), Y)


def test_warp_is_increasing_so_the_best_row_stays_the_best():
    y = np.random.default_rng(2).gamma(0.5, size=(40, 1)) * 100.0
    w = OutputWarp.fit(y, [0])(y)
    assert np.all(np.diff(w[np.argsort(y[:, 0]), 0]) > 0)


def test_warped_posterior_is_the_back_transformed_median_with_delta_method_spread():
    rng = np.random.default_rng(3)
    X = rng.random((25, 2))
    Y = np.exp(3.0 * X[:, :1] + X[:, 1:])  # positive, skewed
    warp = OutputWarp.fit(Y, [0])
    latent = sg.fit_gp(X, warp(Y), key=jax.random.key(0))
    model = OutputWarped(latent, warp)
    Xq = jnp.asarray(rng.random((7, 2)))
    inner, outer = latent.posterior(Xq), model.posterior(Xq)
    mean_w, var_w = np.asarray(inner.mean), np.asarray(inner.variance)
    # Median: the latent Gaussian's median mapped back.
    np.testing.assert_allclose(np.asarray(outer.mean), warp.inverse(mean_w), rtol=1e-10)
    # Spread: the latent sd times the inverse warp's slope, here by central differences.
    h = 1e-6
    slope = (warp.inverse(mean_w + h) - warp.inverse(mean_w - h)) / (2 * h)
    np.testing.assert_allclose(np.asarray(outer.variance), var_w * slope ** 2, rtol=1e-5)
    # The joint covariance is scaled the same way; its diagonal is the variance.
    joint = model.posterior(Xq, full_cov=True)
    np.testing.assert_allclose(np.diagonal(np.asarray(joint.covariance)[0]),
                               np.asarray(outer.variance)[:, 0], rtol=1e-8)


def _spec(**over):
    spec = {"name": "w", "space": [{"name": "x", "type": "continuous", "low": 0, "high": 1}],
            "objectives": [{"name": "y", "direction": "minimize"}]}
    spec.update(over)
    return parse_spec(spec)


def test_auto_warps_one_objective_under_a_noiseless_acquisition_only():
    assert output_warping_of(_spec()) == "yeo_johnson"
    assert output_warping_of(_spec(acquisition={"type": "qlog_nei"})) == "none"
    assert output_warping_of(_spec(objectives=[{"name": "y", "target": 2.0}])) == "none"
    assert output_warping_of(_spec(objectives=[{"name": "y", "direction": "minimize"},
                                               {"name": "z", "direction": "maximize"}])) == "none"
    assert output_warping_of(_spec(surrogate={"type": "gp", "noise": 0.01})) == "none"
    assert output_warping_of(_spec(surrogate={"type": "gp", "noise_prior": "lab"})) == "none"
    constrained = _spec(objectives=[{"name": "y", "direction": "minimize"}],
                        outcome_constraints=["g <= 0"])
    assert output_warping_of(constrained) == "none"
    assert output_warping_of(_spec(surrogate={"type": "gp", "output_warping": "none"})) == "none"
    assert output_warping_of(_spec(surrogate={"type": "ensemble"})) == "none"
    assert output_warping_of(_spec(acquisition={"type": "qlog_nei"}, surrogate={
        "type": "gp", "output_warping": "yeo_johnson"})) == "yeo_johnson"
    assert set(policy.NOISY_ACQUISITIONS) == {"log_nei", "qlog_nei"}


def test_explicit_warping_of_outputs_in_user_units_is_refused():
    with pytest.raises(SpecError, match=r"surrogate\.output_warping.*'yeo_johnson'.*2 objective"):
        _spec(surrogate={"type": "gp", "output_warping": "yeo_johnson"},
              objectives=[{"name": "y", "direction": "minimize"},
                          {"name": "z", "direction": "maximize"}])
    with pytest.raises(SpecError, match=r"surrogate\.output_warping.*noise: 0\.01"):
        _spec(surrogate={"type": "gp", "output_warping": "yeo_johnson", "noise": 0.01})
    with pytest.raises(SpecError, match=r"output_warping.*'auto'.*got 'log'"):
        _spec(surrogate={"type": "gp", "output_warping": "log"})


def _rosenbrock(p):
    return {"y": 100.0 * (p["b"] - p["a"] ** 2) ** 2 + (1.0 - p["a"]) ** 2}


def _campaign(warping="auto", stopping=None):
    space = wb.SearchSpace([wb.Continuous("a", -2.0, 2.0), wb.Continuous("b", -1.0, 3.0)])
    return wb.Campaign("rb", space, [wb.Objective("y", "minimize")], tracking=None, seed=4,
                       initial_design={"n": 12}, surrogate={"type": "gp",
                                                            "output_warping": warping},
                       acquisition={"raw_samples": 256, "num_restarts": 4, "steps": 40},
                       stopping=stopping)


def _run(c, f, n):
    for _ in range(n):
        (t,) = c.ask(1)
        c.tell(t.id, f(t.params))
    return t


def test_a_campaign_warps_and_predicts_in_output_units():
    c = _campaign()
    _run(c, _rosenbrock, 14)
    warp = c.surrogate_state["output_warp"]
    assert warp["lambda"][0] < 1.0  # a sum of squares over decades: a log-like warp
    # Predictions at the observed points are the observations (noise-free data, output
    # units), to within the learned noise.
    done = [t for t in c.trials if t.status == "completed"]
    pred = c.predict([t.params for t in done])
    observed = np.array([t.outcomes["y"] for t in done])
    np.testing.assert_allclose(pred["y_mean"], observed, rtol=0.05, atol=0.05 * observed.std())


def test_proposals_do_not_depend_on_the_objectives_units():
    # The warp standardises before its exponent, and the GP standardises after: an
    # objective in other units (a positive scale and an offset) gives the same proposals.
    a, b = _campaign(), _campaign()
    _run(a, _rosenbrock, 13)
    _run(b, lambda p: {"y": 1e3 * _rosenbrock(p)["y"] - 5.0}, 13)
    pa = np.array([[t.params["a"], t.params["b"]] for t in a.trials])
    pb = np.array([[t.params["a"], t.params["b"]] for t in b.trials])
    np.testing.assert_allclose(pa, pb, atol=1e-6)


def test_the_regret_bound_is_in_output_units():
    # The stopping rule's UCB / LCB are the warped bounds mapped back: an objective in
    # other units (scale 1e3, offset -5) gives a gap 1e3 times as wide. The rule's
    # reason states the gap; an eps it is always below makes it say it.
    rule = [{"type": "regret_bound", "eps": 1e12}]
    a, b = _campaign(stopping=rule), _campaign(stopping=rule)
    _run(a, _rosenbrock, 13)
    _run(b, lambda p: {"y": 1e3 * _rosenbrock(p)["y"] - 5.0}, 13)
    gap = [float(re.match(r"regret bound (\S+) below", c.stop_reason()).group(1))
           for c in (a, b)]
    assert gap[0] > 0
    assert gap[1] == pytest.approx(1e3 * gap[0], rel=1e-3)  # the reason's 4 digits


def _constrained(acquisition=None, warping="auto"):
    space = wb.SearchSpace([wb.Continuous("a", 0.1, 2.0), wb.Continuous("b", 0.1, 2.0)])
    return wb.Campaign("beam", space, [wb.Objective("cost", "minimize")], tracking=None,
                       seed=1, initial_design={"n": 10}, outcome_constraints=["load <= 1.0"],
                       surrogate={"type": "gp", "output_warping": warping},
                       acquisition=acquisition or {"raw_samples": 256, "num_restarts": 4,
                                                   "steps": 40})


def _beam(p):
    # A cost, and a load ratio that spans decades and is feasible up to 1.
    return {"cost": p["a"] + 2.0 * p["b"], "load": 1.0 / (p["a"] * p["b"] ** 3)}


def test_constraint_outputs_are_warped_with_their_bounds():
    # auto warps the constraint's output where the warp is strong and leaves the
    # constrained objective as it is; yeo_johnson warps both; measurements stay as they are.
    auto = _constrained().problem
    assert (auto.warped_outputs, auto.strong_warp_outputs) == ((1,), (1,))
    assert _constrained({"type": "qlog_nei"}).problem.warped_outputs == ()
    assert _constrained(warping="none").problem.warped_outputs == ()
    c = _constrained({"type": "qlog_nei"}, warping="yeo_johnson")
    assert (c.problem.warped_outputs, c.problem.strong_warp_outputs) == ((0, 1), ())
    Y = np.stack([np.linspace(0.0, 5.0, 9), np.geomspace(1e-3, 1e3, 9)], axis=1)
    warp = OutputWarp.fit(Y, [1])
    view = c.problem.warped(warp)
    # The bound moves with the warp; every row keeps its feasibility.
    assert view.constraints[0].bound == pytest.approx(float(warp(np.array([[0.0, 1.0]]))[0, 1]))
    np.testing.assert_array_equal(view.feasible(warp(Y)), c.problem.feasible(Y))
    assert c.problem.feasible(Y).sum() == 5  # loads 1e-3 .. 1


def test_p_feasible_of_a_warped_constraint_is_the_warped_gaussians():
    c = _constrained(warping="yeo_johnson")
    _run(c, _beam, 14)
    points = [{"a": a, "b": b} for a, b in [(0.5, 0.5), (1.0, 1.0), (1.5, 1.2), (0.3, 1.9)]]
    got = c.predict(points)["p_feasible"].to_numpy()
    # Reference: the probability that the warped load is below the warped bound under the
    # model's warped Gaussian marginal (the model the next ask would fit).
    model = campaign_model(c, refit=True).model
    X = jnp.asarray(c.space.encode(points))
    mean, var = (np.asarray(a) for a in sg.posterior_moments(model.model, X))
    bound = float(model.warp(np.array([[0.0, 1.0]]))[0, 1])
    want = stats.norm.cdf((bound - mean[:, 1]) / np.sqrt(var[:, 1]))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12)
    # The load 1 / (a b^3) is 64 at (0.5, 0.5) and 0.3 at (1.5, 1.2).
    assert got[0] < 0.05 and got[2] > 0.95


def test_observations_told_with_standard_errors_stay_unwarped_unless_asked():
    from workbench.engine import fit_surrogate

    rng = np.random.default_rng(6)
    X = rng.random((12, 2))
    Y = np.exp(3.0 * X[:, :1])
    noise = np.where(np.arange(12)[:, None] % 2 == 0, 0.01, 0.0)
    for warping, warped in (("auto", False), ("yeo_johnson", True)):
        problem = _campaign(warping=warping).problem
        assert problem.warped_outputs == (0,)
        model, _ = fit_surrogate(problem, X, Y, jax.random.key(0), 12, None, noise)
        assert isinstance(model, OutputWarped) is warped, warping
        plain, _ = fit_surrogate(problem, X, Y, jax.random.key(0), 12, None, None)
        assert isinstance(plain, OutputWarped)  # no standard errors: warped either way


def test_strong_only_warps_what_its_first_values_show_to_span_decades():
    rng = np.random.default_rng(8)
    first, later = STRONG_WARP_ROWS, 40
    # Output 0: a load ratio over decades on the design, then values near its limit.
    # Output 1: a slight skew on the design, then a search crowding its lowest value (a
    # bound), which with the design's values makes the whole column heavy-tailed.
    decades = np.r_[np.geomspace(1e-3, 1e3, first), 1.0 + 0.01 * rng.standard_normal(later)]
    design = np.exp(0.3 * rng.standard_normal(first))
    mild = np.r_[design, design.min() + 1e-3 * rng.standard_normal(later)]
    Y = np.stack([decades, mild, mild], axis=1)
    free = OutputWarp.fit(Y, [0, 1, 2])
    warp = OutputWarp.fit(Y, [0, 1, 2], strong_only=[0, 1])

    def gain(y):
        # SciPy's Yeo-Johnson log-likelihood, an independent reference.
        z = (y - y.mean()) / y.std()
        return stats.yeojohnson_llf(stats.yeojohnson(z)[1], z) - stats.yeojohnson_llf(1.0, z)

    assert gain(decades[:first]) > STRONG_WARP_GAIN * first > gain(mild[:first])
    assert gain(mild) > STRONG_WARP_GAIN * len(mild)  # strong on every row, not on the first
    assert float(warp.lam[0]) == float(free.lam[0]) != 1.0
    assert float(warp.lam[1]) == 1.0
    assert float(warp.lam[2]) == float(free.lam[2]) != 1.0  # not strong_only: warped anyway
    # The standardisation stays either way.
    np.testing.assert_allclose(np.asarray(warp.loc), Y.mean(axis=0))
