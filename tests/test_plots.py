"""Campaign plots draw what they claim: the running best, every observation, failures,
the initial design, and the model's predictions with their error bars."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import workbench as wb  # noqa: E402
from workbench.plots import plot_convergence, plot_predictions  # noqa: E402


def _quadratic(p):
    return 100.0 * ((p["a"] - 0.3) ** 2 + (p["b"] - 0.7) ** 2)


def _space():
    return wb.SearchSpace([wb.Continuous("a", 0.0, 1.0), wb.Continuous("b", 0.0, 1.0)])


@pytest.fixture(scope="module")
def campaign():
    """Eight trials, one at a time: a Sobol design of 4, then the model; trial 5 fails."""
    c = wb.Campaign("plot-test", _space(), [wb.Objective("loss", "minimize", unit="%")],
                    store=None, tracking=None, seed=1, initial_design={"n": 4})
    for _ in range(8):
        (t,) = c.ask(1)
        if t.id == 5:
            c.tell_failed(t.id, "reactor leaked")
        else:
            c.tell(t.id, _quadratic(t.params))
    return c


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _line(ax, gid):
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


def test_the_fixture_has_what_the_plots_need(campaign):
    trials = campaign.trials
    assert [t.status for t in trials].count("failed") == 1
    assert trials[5].prediction is not None  # a failed model trial: not in the calibration plot
    assert [t.strategy for t in trials[:4]] == ["sobol"] * 4
    assert sum(t.prediction is not None and t.status == "completed" for t in trials) >= 3


def test_convergence_line_is_the_running_minimum_of_completed_trials(campaign):
    ax = campaign.plot()
    assert isinstance(ax, matplotlib.axes.Axes)
    done = [t for t in campaign.trials if t.status == "completed"]
    ids = np.array([t.id for t in done], dtype=float)
    y = np.array([t.outcomes["loss"] for t in done])
    expected = np.array([y[: i + 1].min() for i in range(len(y))])

    best = _line(ax, "best_so_far")
    np.testing.assert_array_equal(best.get_xdata(), ids)
    np.testing.assert_allclose(best.get_ydata(), expected)
    assert best.get_ydata()[-1] == campaign.best().outcomes["loss"]

    observed = _line(ax, "observed")
    assert len(observed.get_xdata()) == len(done) == 7
    np.testing.assert_array_equal(observed.get_xdata(), ids)
    np.testing.assert_allclose(observed.get_ydata(), y)

    failed = _line(ax, "failed")
    np.testing.assert_array_equal(failed.get_xdata(), [5])
    assert failed.get_marker() == "x"

    assert ax.get_title() == "plot-test"
    assert ax.get_xlabel() == "trial"
    assert "loss" in ax.get_ylabel() and "%" in ax.get_ylabel()


def test_initial_design_is_shaded(campaign):
    ax = plot_convergence(campaign)
    sobol = [t.id for t in campaign.trials if t.strategy == "sobol"]
    spans = [p.get_bbox() for p in ax.patches]
    assert spans, "no shaded region"
    covered = [i for i in range(len(campaign.trials))
               if any(b.x0 <= i <= b.x1 for b in spans)]
    assert covered == sobol


def test_convergence_on_given_axes_and_maximisation():
    c = wb.Campaign("max", _space(), [wb.Objective("yield", "maximize")], store=None,
                    tracking=None, seed=0, initial_design={"n": 5})
    for t in c.ask(5):  # the Sobol design only: no model, no JAX
        c.tell(t.id, -_quadratic(t.params))
    fig, ax = plt.subplots()
    assert c.plot(ax=ax) is ax
    y = np.array([t.outcomes["yield"] for t in c.trials])
    np.testing.assert_allclose(_line(ax, "best_so_far").get_ydata(), np.maximum.accumulate(y))
    assert "%" not in ax.get_ylabel() and "yield" in ax.get_ylabel()
    assert not [ln for ln in ax.get_lines() if ln.get_gid() == "failed"]


def test_predictions_are_error_bars_at_the_predicted_means(campaign):
    ax = campaign.plot_predictions()
    rows = [t for t in campaign.trials if t.status == "completed" and t.prediction]
    mean = np.array([t.prediction["loss"].mean for t in rows])
    std = np.array([t.prediction["loss"].std for t in rows])
    observed = np.array([t.outcomes["loss"] for t in rows])

    (bars,) = ax.containers
    data_line, _, (xbars,) = bars
    assert len(data_line.get_xdata()) == len(rows) == 3
    np.testing.assert_allclose(data_line.get_xdata(), mean)
    np.testing.assert_allclose(data_line.get_ydata(), observed)
    segments = xbars.get_segments()
    assert len(segments) == len(rows)
    np.testing.assert_allclose([s[0, 0] for s in segments], mean - 2 * std)
    np.testing.assert_allclose([s[1, 0] for s in segments], mean + 2 * std)
    np.testing.assert_allclose([s[:, 1] for s in segments], np.stack([observed] * 2, axis=1))

    identity = _line(ax, "identity")
    np.testing.assert_allclose(identity.get_xdata(), identity.get_ydata())
    assert "%" in ax.get_xlabel() and "%" in ax.get_ylabel()


def test_plots_of_an_empty_campaign_do_not_fail():
    c = wb.Campaign("empty", _space(), [wb.Objective("y", "minimize")], store=None,
                    tracking=None)
    for fn in (plot_convergence, plot_predictions):
        ax = fn(c)
        assert not ax.get_lines() and not ax.containers


# --- calibration ------------------------------------------------------------------------

from workbench.plots import coverage_curve, plot_calibration  # noqa: E402


def test_calibrated_gaussian_predictions_lie_on_the_diagonal():
    rng = np.random.default_rng(0)
    n = 20_000
    mean, std = rng.normal(size=n), rng.uniform(0.5, 3.0, size=n)
    observed = mean + std * rng.normal(size=n)
    ax = plot_calibration(mean, std, observed)
    curve = _line(ax, "calibration")
    levels = np.asarray(curve.get_xdata())
    # Binomial standard error at n = 20,000 is at most 0.0035: 4 of them.
    np.testing.assert_allclose(curve.get_ydata(), levels, atol=0.014)
    assert levels[0] == 0.05 and levels[-1] == 0.95
    np.testing.assert_allclose(_line(ax, "identity").get_xdata(), [0, 1])


def test_coverage_curve_known_answers():
    # Residuals of exactly 0, 1, 2 and 3 standard deviations.
    mean, std = np.zeros(4), np.full(4, 2.0)
    observed = np.array([0.0, -2.0, 4.0, 6.0])
    # z = 0.674 (50 %), 1.645 (90 %), 1.960 (95 %), 2.576 (99 %), 3.29 (99.9 %).
    got = coverage_curve(mean, std, observed, [0.5, 0.9, 0.95, 0.99, 0.999])
    np.testing.assert_allclose(got, [0.25, 0.5, 0.5, 0.75, 1.0])
    # Over-confident predictions (std half the truth) fall below the diagonal.
    rng = np.random.default_rng(1)
    e = rng.normal(size=10_000)
    low = coverage_curve(np.zeros_like(e), np.full_like(e, 0.5), e, [0.5, 0.9])
    from scipy.stats import norm
    np.testing.assert_allclose(low, 2 * norm.cdf([0.5 * 0.6745, 0.5 * 1.6449]) - 1, atol=0.02)
    with pytest.raises(ValueError, match="levels"):
        coverage_curve(mean, std, observed, [0.5, 1.0])
    with pytest.raises(ValueError, match="one shape"):
        coverage_curve(mean, std[:3], observed)


def test_calibration_of_a_campaign_uses_its_stored_predictions(campaign):
    fig, ax = plt.subplots()
    assert plot_calibration(campaign, ax=ax) is ax
    rows = [t for t in campaign.trials if t.status == "completed" and t.prediction]
    mean = np.array([t.prediction["loss"].mean for t in rows])
    std = np.array([t.prediction["loss"].std for t in rows])
    observed = np.array([t.outcomes["loss"] for t in rows])
    curve = _line(ax, "calibration")
    np.testing.assert_allclose(curve.get_ydata(), coverage_curve(mean, std, observed))
    # A second model on the same axes adds a curve, not a second diagonal.
    plot_calibration(mean, std * 2, observed, ax=ax, label="wider")
    assert [ln.get_gid() for ln in ax.get_lines()].count("identity") == 1
    assert [ln.get_gid() for ln in ax.get_lines()].count("calibration") == 2
    with pytest.raises(ValueError, match="std and observed"):
        plot_calibration(np.zeros(3))


# --- several objectives, the model, compositions -----------------------------------------

import json  # noqa: E402

from workbench.plots import (ard_relevance, campaign_model, plot_hypervolume,  # noqa: E402
                             plot_lengthscales, plot_pareto, plot_slices, plot_ternary,
                             ternary_xy)


def _two_objectives(p):
    a, b = p["a"], p["b"]
    return {"yield": 100.0 * a * (1.0 - 0.5 * b), "cost": 10.0 * a ** 2 + 5.0 * b,
            "impurity": 0.1 * (1.0 - b)}


@pytest.fixture(scope="module")
def moo():
    """A Sobol design of 14 on two objectives with an outcome constraint (no model)."""
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0, unit="mol/L"),
                            wb.Continuous("b", 0.0, 1.0)])
    c = wb.Campaign("moo", space, [wb.Objective("yield", "maximize", unit="%"),
                                   wb.Objective("cost", "minimize", unit="EUR")],
                    outcome_constraints=["impurity <= 0.06"], store=None, tracking=None,
                    seed=3, initial_design={"n": 14})
    for t in c.ask(14):
        c.tell(t.id, _two_objectives(t.params))
    return c


def _points(ax, gid):
    line = _line(ax, gid)
    return sorted(zip(line.get_xdata().tolist(), line.get_ydata().tolist()))


def _outcome_points(trials):
    return sorted((t.outcomes["yield"], t.outcomes["cost"]) for t in trials)


def test_pareto_points_are_exactly_the_campaigns_front(moo):
    ax = moo.plot_pareto()
    front = moo.pareto()
    assert 2 <= len(front) < 14
    assert _points(ax, "pareto") == _outcome_points(front)
    done = [t for t in moo.trials if t.status == "completed"]
    infeasible = [t for t in done if t.outcomes["impurity"] > 0.06]
    assert infeasible, "the fixture should have infeasible trials"
    assert _points(ax, "infeasible") == _outcome_points(infeasible)
    ids = {t.id for t in front} | {t.id for t in infeasible}
    assert _points(ax, "observed") == _outcome_points([t for t in done if t.id not in ids])
    # No feasible point beats a drawn Pareto point in both objectives.
    for y, c in _points(ax, "pareto"):
        assert not any(t.outcomes["yield"] >= y and t.outcomes["cost"] <= c
                       and (t.outcomes["yield"], t.outcomes["cost"]) != (y, c)
                       for t in done if t not in infeasible)
    # The front line steps through the Pareto points, sorted by yield (maximised).
    step = _line(ax, "front")
    assert step.get_drawstyle() == "steps-pre"
    assert list(step.get_xdata()) == sorted(y for y, _ in _outcome_points(front))
    assert "%" in ax.get_xlabel() and "EUR" in ax.get_ylabel()


def test_pareto_of_three_objectives_draws_every_pair():
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0), wb.Continuous("b", 0.0, 1.0)])
    objs = [wb.Objective("f1", "minimize"), wb.Objective("f2", "minimize"),
            wb.Objective("f3", "maximize", unit="K")]
    c = wb.Campaign("three", space, objs, store=None, tracking=None, seed=0,
                    initial_design={"n": 10})
    for t in c.ask(10):
        a, b = t.params["a"], t.params["b"]
        c.tell(t.id, {"f1": a, "f2": b, "f3": a * b})
    fig = plot_pareto(c)
    panels = [ax for ax in fig.axes if ax.get_lines()]
    assert len(panels) == 3
    front = c.pareto()
    expected = sorted((t.outcomes["f1"], t.outcomes["f3"]) for t in front)
    assert _points(panels[1], "pareto") == expected
    assert "K" in panels[1].get_ylabel()
    with pytest.raises(ValueError, match="two or more"):
        plot_pareto(wb.Campaign("one", space, [wb.Objective("y", "minimize")], store=None,
                                tracking=None))


def test_hypervolume_line_is_the_campaigns_history(moo):
    ax = moo.plot_hypervolume()
    line = _line(ax, "hypervolume")
    np.testing.assert_array_equal(line.get_xdata(), [t.id for t in moo.trials])
    np.testing.assert_array_equal(line.get_ydata(), moo.hypervolume_history())
    assert line.get_ydata()[-1] == pytest.approx(moo.hypervolume())
    assert np.all(np.diff(line.get_ydata()) >= 0)
    assert "%" in ax.get_ylabel() and "EUR" in ax.get_ylabel()
    # A given reference point: by hand for the front, a union of boxes.
    ref = [0.0, 10.0]
    drawn = plot_hypervolume(moo, ref_point=ref)
    pts = sorted((t.outcomes["yield"], t.outcomes["cost"]) for t in moo.pareto()
                 if t.outcomes["cost"] < ref[1])  # beyond the reference: no volume
    assert len(pts) >= 2
    area, prev_y = 0.0, 0.0
    for y, cost in pts:  # yield ascending: each point adds a strip of its lower cost
        area += (y - prev_y) * (10.0 - min(c for yy, c in pts if yy >= y))
        prev_y = y
    assert _line(drawn, "hypervolume").get_ydata()[-1] == pytest.approx(area, rel=1e-9)


@pytest.fixture(scope="module")
def modelled():
    """Six Sobol trials of a quadratic in three parameters (one log-scaled), told."""
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0, unit="mm"),
                            wb.Continuous("b", 1.0, 100.0, log=True, unit="s"),
                            wb.Categorical("c", ["x", "y"])])
    c = wb.Campaign("slices", space, [wb.Objective("loss", "minimize", unit="%")],
                    store=None, tracking=None, seed=2, initial_design={"n": 6})
    for t in c.ask(6):
        c.tell(t.id, 10.0 * (t.params["a"] - 0.3) ** 2 + np.log10(t.params["b"])
               + (t.params["c"] == "y"))
    return c


def test_slices_pass_through_the_models_prediction_at_the_best_point(modelled):
    model = campaign_model(modelled)
    fig = plot_slices(modelled, model=model)
    best = modelled.best()
    mean_best, std_best = model.predict([best.params])
    axes = {ax.get_xlabel(): ax for ax in fig.axes if ax.get_visible()}
    assert set(axes) == {"a [mm]", "b [s]"}  # continuous parameters only, with units
    assert axes["b [s]"].get_xscale() == "log"
    for name, label in (("a", "a [mm]"), ("b", "b [s]")):
        ax = axes[label]
        mean = _line(ax, f"mean:{name}")
        x = np.asarray(mean.get_xdata())
        at = np.flatnonzero(x == best.params[name])
        assert len(at) == 1, "the best point lies on the slice"
        np.testing.assert_allclose(mean.get_ydata()[at[0]], mean_best[0, 0], rtol=1e-10)
        star = _line(ax, f"best:{name}")
        assert star.get_xdata()[0] == best.params[name]
        assert star.get_ydata()[0] == best.outcomes["loss"]
        # The band is mean ± 2 sd; at the best point its width is 4 sd.
        (band,) = [c for c in ax.collections if c.get_gid() == f"band:{name}"]
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.max() - ys.min() >= 4 * std_best[0, 0] - 1e-9
    assert "%" in fig.axes[0].get_ylabel()
    # An exact GP that learned almost no noise interpolates: at an observed point
    # the mean is the observation.
    assert mean_best[0, 0] == pytest.approx(best.outcomes["loss"], abs=0.05)


def test_the_plotted_model_is_the_one_that_proposes_next(modelled):
    model = campaign_model(modelled)
    (t,) = modelled.ask(1)
    mean, std = model.predict([t.params])
    assert t.prediction["loss"].mean == pytest.approx(mean[0, 0], rel=1e-6, abs=1e-9)
    assert t.prediction["loss"].std == pytest.approx(std[0, 0], rel=1e-4, abs=1e-9)
    modelled.tell(t.id, 10.0 * (t.params["a"] - 0.3) ** 2 + np.log10(t.params["b"])
                  + (t.params["c"] == "y"))


def test_lengthscales_are_the_audited_hyperparameters(modelled):
    if not any(t.audit and json.loads(t.audit).get("hyperparameters") for t in modelled.trials):
        (t,) = modelled.ask(1)
        modelled.tell(t.id, 1.0)
    last = [t for t in modelled.trials if t.audit and json.loads(t.audit).get("hyperparameters")]
    hyper = json.loads(last[-1].audit)["hyperparameters"]
    ax = plot_lengthscales(modelled)
    (bars,) = ax.containers
    widths = [b.get_width() for b in bars]
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert labels == ["a", "b", "c"]
    # a and b under the Matern kernel (active columns 0 and 1); c under the categorical.
    kernels = hyper["kernel"]["kernels"]
    params = hyper["kernel_params"]
    k_cont = [i for i, k in enumerate(kernels) if k["type"] != "categorical"][0]
    ls = np.exp(np.asarray(params[k_cont]["log_lengthscale"])[0])
    w = np.exp(np.asarray(params[1 - k_cont]["log_weight"])[0, 0])
    np.testing.assert_allclose(widths, [1 / ls[0], 1 / ls[1], np.sqrt(w)], rtol=1e-12)
    assert f"trial {last[-1].id}" in ax.get_title()


def test_ard_relevance_reads_nested_kernels():
    hyper = {"kernel": {"type": "warped", "dims": [0], "kernel": {
        "type": "product", "kernels": [{"type": "matern52", "active_dims": [0, 4]},
                                       {"type": "categorical", "groups": [[1, 2, 3]]}]}},
        "kernel_params": {"kernel": [{"log_lengthscale": [[np.log(0.5), np.log(4.0)]],
                                      "log_variance": [0.0]},
                                     {"log_weight": [[np.log(9.0)]]}],
                          "log_a": [[0.0]], "log_b": [[0.0]]},
        "log_noise": [-8.0], "mean": [0.0], "learn_noise": True}
    rel = ard_relevance(hyper, 6)
    np.testing.assert_allclose(rel[0, :5], [2.0, 3.0, 3.0, 3.0, 0.25])
    assert np.isnan(rel[0, 5])
    # Two kernels over one column: the larger relevance counts.
    summed = {"kernel": {"type": "sum", "kernels": [{"type": "rbf"}, {"type": "linear"},
                                                     {"type": "rbf", "active_dims": [1]}]},
              "kernel_params": [{"log_lengthscale": [[0.0, 0.0]]}, {},
                                {"log_lengthscale": [[np.log(0.1)]]}]}
    np.testing.assert_allclose(ard_relevance(summed, 2), [[1.0, 10.0]])
    np.testing.assert_allclose(ard_relevance({"median_lengthscale": [[2.0, 0.5]]}, 2),
                               [[0.5, 2.0]])


def test_ternary_coordinates_of_known_compositions():
    h = np.sqrt(3) / 2
    np.testing.assert_allclose(ternary_xy([[1, 0, 0], [0, 1, 0], [0, 0, 1]]),
                               [[0, 0], [1, 0], [0.5, h]], atol=1e-15)
    np.testing.assert_allclose(ternary_xy([[1, 1, 1]]), [[0.5, h / 3]])   # the centroid
    np.testing.assert_allclose(ternary_xy([[0.5, 0.5, 0.0]]), [[0.5, 0.0]])
    # Cu0.2 Ni0.3 Pd0.5: x = 0.3 + 0.25, y = 0.5 h.
    np.testing.assert_allclose(ternary_xy([[0.2, 0.3, 0.5]]), [[0.55, 0.5 * h]])
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        ternary_xy([[0.5, 0.5]])


def test_ternary_plot_places_every_trial_and_colours_it_by_the_objective():
    space = wb.SearchSpace([wb.Composition("alloy", ["Cu", "Ni", "Pd", "Au"],
                                           resolution=0.05)])
    c = wb.Campaign("ternary", space, [wb.Objective("energy", "minimize", unit="eV/atom")],
                    store=None, tracking=None, seed=0, initial_design={"n": 8})
    for t in c.ask(8):
        f = t.params["alloy"]
        c.tell(t.id, {"energy": f["Cu"] - f["Pd"] + 0.5 * f["Ni"] * f["Au"]})
    ax = c.plot_ternary("alloy", elements=["Cu", "Ni", "Pd"])
    (points,) = [col for col in ax.collections if col.get_gid() == "trials"]
    done = [t for t in c.trials
            if sum(t.params["alloy"][e] for e in ("Cu", "Ni", "Pd")) > 0]
    F = np.asarray([[t.params["alloy"][e] for e in ("Cu", "Ni", "Pd")] for t in done])
    np.testing.assert_allclose(points.get_offsets(), ternary_xy(F))
    np.testing.assert_allclose(points.get_array(), [t.outcomes["energy"] for t in done])
    best = c.best()
    star = _line(ax, "best")
    fb = [best.params["alloy"][e] for e in ("Cu", "Ni", "Pd")]
    np.testing.assert_allclose([star.get_xdata()[0], star.get_ydata()[0]], ternary_xy([fb])[0])
    assert "renormalised" in ax.get_title()
    colorbar = ax.figure.axes[-1]
    assert "eV/atom" in colorbar.get_ylabel()
    with pytest.raises(ValueError, match="three different elements"):
        plot_ternary(c, "alloy", elements=["Cu", "Ni"])
    with pytest.raises(ValueError, match="not a composition"):
        plot_ternary(c, "temperature")


def test_plot_accessor_binds_every_plot_to_the_campaign():
    import matplotlib

    matplotlib.use("Agg")
    import workbench as wb

    space = wb.SearchSpace([wb.Continuous("x", 0.0, 1.0, unit="degC")])
    c = wb.Campaign("acc", space, [wb.Objective("y", "maximize")], tracking=None,
                    initial_design={"n": 3})
    for t in c.ask(3):
        c.tell(t.id, t.params["x"] ** 2)
    assert c.plot().get_ylabel() == c.plot.convergence().get_ylabel()  # the call is convergence
    from workbench import plots

    for name in ("predictions", "calibration", "pareto", "hypervolume", "slices", "map",
                 "pairs", "lengthscales", "ternary", "importance"):
        bound = getattr(c.plot, name)
        assert bound.func is getattr(plots, f"plot_{name}") and bound.args == (c,)
    import pytest

    with pytest.raises(AttributeError, match="has no 'histogram'"):
        c.plot.histogram()


# --- random search as the baseline ------------------------------------------------------

import itertools  # noqa: E402

from workbench.plots import (best_so_far_quantiles, plot_map, pool_values,  # noqa: E402
                             posterior_map, random_best_quantiles, random_search_band,
                             random_search_runs)


def _enumerated_quantiles(v, direction, quantiles=(0.25, 0.5, 0.75)):
    """Quantiles of the best of every k-subset of v, by listing every subset."""
    pick = max if direction == "maximize" else min
    out = []
    for k in range(1, len(v) + 1):
        bests = np.sort([pick(c) for c in itertools.combinations(v, k)])
        out.append([bests[int(np.ceil(p * len(bests) - 1e-9)) - 1] for p in quantiles])
    return np.asarray(out).T


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_exact_random_band_is_the_best_of_every_subset(direction):
    v = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])  # ties included
    np.testing.assert_array_equal(random_best_quantiles(v, len(v), direction),
                                  _enumerated_quantiles(v, direction))


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_exact_random_band_matches_monte_carlo_random_search(direction):
    from scipy.special import comb

    v = np.random.default_rng(4).normal(size=15)
    n, q = 15, np.array([0.25, 0.5, 0.75])
    exact = random_best_quantiles(v, n, direction)
    rng = np.random.default_rng(5)
    runs = np.stack([rng.permutation(v) for _ in range(40_000)])  # random search, no repeats
    simulated = best_so_far_quantiles(runs, direction)
    # Compare except where p sits on a jump of the exact distribution (within the
    # Monte-Carlo error), where either neighbouring order statistic is right.
    s = np.sort(v)
    checked = 0
    for k in range(1, n + 1):
        j = np.arange(1, n + 1)
        cdf = (comb(j, k) / comb(n, k) if direction == "maximize"
               else 1.0 - comb(n - j, k) / comb(n, k))
        for i, p in enumerate(q):
            if np.min(np.abs(cdf - p)) < 0.01:
                continue
            assert simulated[i, k - 1] == exact[i, k - 1], (k, p)
            checked += 1
    assert checked >= 30
    assert np.all(exact[:, -1] == (s[-1] if direction == "maximize" else s[0]))


def test_the_band_runs_up_to_maximise_and_down_to_minimise():
    v = np.random.default_rng(0).gamma(2.0, size=200)
    up = random_best_quantiles(v, 40, "maximize")
    down = random_best_quantiles(v, 40, "minimize")
    assert np.all(np.diff(up, axis=1) >= 0) and up[1, -1] > up[1, 0]
    assert np.all(np.diff(down, axis=1) <= 0) and down[1, -1] < down[1, 0]
    assert np.all(up[0] <= up[1]) and np.all(up[1] <= up[2])  # quartiles in order
    # After one evaluation the best is one random value: its median is the pool's.
    assert up[1, 0] == down[1, 0] == np.sort(v)[99]
    with pytest.raises(ValueError, match="direction"):
        random_best_quantiles(v, 3, "target")


_ARYLATION_SPACE = [
    {"name": "base", "type": "categorical", "choices": ["Cesium acetate", "Potassium acetate"]},
    {"name": "ligand", "type": "categorical", "choices": ["XPhos", "PPh3"]},
    {"name": "solvent", "type": "categorical",
     "choices": ["DMAc", "p-Xylene"]},
    {"name": "concentration", "type": "categorical", "choices": ["0.057", "0.1", "0.153"]},
    {"name": "temperature", "type": "categorical", "choices": ["90", "105", "120"]}]


@pytest.fixture(scope="module")
def pool_campaign():
    """A lookup campaign on 72 conditions of the direct arylation screen: 6 picks."""
    c = wb.Campaign.from_dict({
        "name": "pool", "space": _ARYLATION_SPACE, "seed": 0, "tracking": None, "store": None,
        "objectives": [{"name": "yield", "direction": "maximize", "unit": "%"}],
        "initial_design": {"n": 6},
        "oracle": {"dataset": "shields_arylation", "objective": "yield"}})
    c.run(budget=6)  # the space-filling design only: no model
    return c


def test_a_dataset_pool_gets_the_exact_band_by_default(pool_campaign):
    ds = wb.datasets.load("shields_arylation")
    rows = ds[ds["base"].isin(["Cesium acetate", "Potassium acetate"])
              & ds["ligand"].isin(["XPhos", "PPh3"]) & ds["solvent"].isin(["DMAc", "p-Xylene"])]
    values = pool_values(pool_campaign)
    assert len(values) == len(rows) == 72
    np.testing.assert_array_equal(np.sort(values), np.sort(rows["yield"].to_numpy(float)))

    ax = plot_convergence(pool_campaign)
    expected = random_best_quantiles(values, 6, "maximize")
    median = _line(ax, "random_median")
    np.testing.assert_array_equal(median.get_xdata(), np.arange(6))  # k evaluations: trial k-1
    np.testing.assert_array_equal(median.get_ydata(), expected[1])
    (band,) = [c for c in ax.collections if c.get_gid() == "random_band"]
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert ys.min() == pytest.approx(expected[0].min()) and ys.max() == pytest.approx(
        expected[2].max())
    assert "exact over 72 pool rows" in band.get_label()
    assert median.get_ydata()[-1] >= median.get_ydata()[0]  # maximised: the band rises
    off = plot_convergence(pool_campaign, random=False)
    assert not [ln for ln in off.get_lines() if ln.get_gid() == "random_median"]


def test_random_search_is_simulated_only_when_asked(campaign):
    assert not [ln for ln in plot_convergence(campaign).get_lines()
                if ln.get_gid() == "random_median"]  # not free: off by default
    with pytest.raises(ValueError, match="no oracle in its spec"):
        plot_convergence(campaign, random=True)
    runs = random_search_runs(campaign, 5, oracle=_quadratic)
    assert runs.shape == (5, len(campaign.trials)) and np.all(np.isfinite(runs))
    np.testing.assert_array_equal(runs, random_search_runs(campaign, 5, oracle=_quadratic))
    ax = campaign.plot.convergence(random=5, oracle=_quadratic)
    np.testing.assert_array_equal(_line(ax, "random_median").get_ydata(),
                                  best_so_far_quantiles(runs, "minimize")[1])
    assert np.all(np.diff(_line(ax, "random_median").get_ydata()) <= 0)  # minimised: falls
    # Runs a user recorded: the quartiles of their running minimum.
    given = np.array([[5.0, 3.0, 4.0], [2.0, 6.0, 1.0], [9.0, 8.0, 7.0], [4.0, 4.0, 0.5]])
    band = random_search_band(campaign, given)
    np.testing.assert_array_equal(band.median, [4.0, 3.0, 1.0])
    assert band.source == "4 given runs"


def test_simulated_random_points_respect_the_constraints_and_fail_as_nan():
    space = wb.SearchSpace([wb.Continuous("a", 0.0, 1.0), wb.Continuous("b", 0.0, 1.0)],
                           constraints=["a + b <= 1"])
    c = wb.Campaign("cons", space, [wb.Objective("loss", "minimize")], store=None,
                    tracking=None, seed=0, initial_design={"n": 5})
    for t in c.ask(5):
        c.tell(t.id, _quadratic(t.params))
    seen = []

    def oracle(p):
        seen.append(p)
        if p["a"] < 0.1:
            raise RuntimeError("too little a")
        return {"loss": _quadratic(p)}

    runs = random_search_runs(c, 8, oracle=oracle)
    assert len(seen) == 40 and all(p["a"] + p["b"] <= 1 + 1e-9 for p in seen)
    a = np.array([p["a"] for p in seen]).reshape(8, 5)
    assert np.array_equal(np.isnan(runs), a < 0.1)
    assert np.mean(a) == pytest.approx(1 / 3, abs=0.1)  # uniform on the triangle: E[a] = 1/3
    # The map blanks what the constraints forbid.
    m = posterior_map(c, "a", "b", points=11)
    A, B = np.meshgrid(m.xs, m.ys)
    np.testing.assert_array_equal(np.isnan(m.mean), A + B > 1 + 1e-9)


def test_a_lab_command_is_not_run_for_a_baseline(tmp_path):
    c = wb.Campaign.from_dict({
        "name": "lab", "space": [{"name": "x", "type": "continuous", "low": 0, "high": 1}],
        "objectives": [{"name": "y", "direction": "minimize"}], "tracking": None, "store": None,
        "oracle": {"command": "./measure.sh {x}"}})
    (t,) = c.ask(1)
    c.tell(t.id, 1.0)
    with pytest.raises(ValueError, match="lab command"):
        random_search_band(c, True)


# --- 2-D posterior maps -----------------------------------------------------------------

def _inside_filled(path, point):
    """Whether a filled contour's compound path (outer rings and holes) covers a point:
    the even-odd rule over its rings (Path.contains_point fills the holes too)."""
    from matplotlib.path import Path

    rings = path.to_polygons(closed_only=False)
    return sum(Path(r).contains_point(point) for r in rings) % 2 == 1


def _read_back(ax, gid, xs, ys, Z):
    """Check a filled contour plot against the values Z (ny, nx) on the grid xs, ys: each
    interior node lies in the band of levels that holds its value, and in no other.
    Returns the number of nodes checked (those not on a level)."""
    (filled,) = [c for c in ax.collections if c.get_gid() == gid]
    levels, paths = filled.levels, filled.get_paths()
    checked = 0
    for i in range(1, len(ys) - 1):
        for j in range(1, len(xs) - 1):
            if np.min(np.abs(levels - Z[i, j])) < 1e-6 * (levels[-1] - levels[0]):
                continue
            inside = [k for k, p in enumerate(paths) if _inside_filled(p, (xs[j], ys[i]))]
            assert inside == [int(np.searchsorted(levels, Z[i, j])) - 1], (gid, i, j)
            checked += 1
    return checked


def test_map_draws_the_models_posterior_on_its_grid(modelled):
    model = campaign_model(modelled)
    best = modelled.best()
    m = posterior_map(modelled, model=model, points=15)
    assert {m.x, m.y} == {"a", "b"}  # the continuous ones, most relevant first
    rows = [dict(best.params, **{m.x: float(u), m.y: float(w)}) for w in m.ys for u in m.xs]
    mean, std = model.predict(rows)
    np.testing.assert_array_equal(m.mean, mean[:, 0].reshape(m.mean.shape))
    np.testing.assert_array_equal(m.std, std[:, 0].reshape(m.std.shape))
    assert m.at == {"c": best.params["c"]} and m.trial == best.id
    grid_b = m.xs if m.x == "b" else m.ys
    np.testing.assert_allclose(grid_b, np.geomspace(1.0, 100.0, 15))

    fig = plot_map(modelled, "a", "b", model=model, points=15)
    m = posterior_map(modelled, "a", "b", model=model, points=15)
    panels = {ax.get_title(): ax for ax in fig.axes}
    mean_ax, std_ax = panels["posterior mean"], panels["posterior sd"]
    assert mean_ax.get_xlabel() == "a [mm]" and mean_ax.get_ylabel() == "b [s]"
    assert mean_ax.get_yscale() == "log"
    for ax, gid, Z in ((mean_ax, "mean", m.mean), (std_ax, "std", m.std)):
        # Read the filled contours back: each interior grid node lies in the band
        # of levels that holds the model's value there, and in no other.
        assert _read_back(ax, gid, m.xs, m.ys, Z) > 100
        done = [t for t in modelled.trials if t.status == "completed"]
        observed = _line(ax, f"observed:{gid}")
        np.testing.assert_array_equal(observed.get_xdata(), [t.params["a"] for t in done])
        star = _line(ax, f"best:{gid}")
        assert (star.get_xdata()[0], star.get_ydata()[0]) == (best.params["a"],
                                                              best.params["b"])
    assert "others at trial" in fig.get_suptitle()


def test_map_refuses_what_it_cannot_draw(modelled):
    with pytest.raises(ValueError, match=r"x: got 'c'; expected one of the continuous"):
        posterior_map(modelled, "c", "a")
    with pytest.raises(ValueError, match="both 'a'"):
        posterior_map(modelled, "a", "a")


def test_pairs_map_every_pair_of_the_most_relevant_parameters_on_one_scale():
    from workbench.plots import plot_pairs, relevant_parameters

    space = wb.SearchSpace([wb.Continuous("p", 0.0, 1.0), wb.Continuous("q", 0.0, 1.0),
                            wb.Integer("r", 1, 6), wb.Continuous("s", 0.0, 1.0)])
    c = wb.Campaign("pairs", space, [wb.Objective("y", "minimize")], store=None,
                    tracking=None, seed=0, initial_design={"n": 7})
    for t in c.ask(7):
        c.tell(t.id, 5.0 * (t.params["q"] - 0.4) ** 2 + t.params["p"] + 0.1 * t.params["r"])
    model = campaign_model(c)
    names = relevant_parameters(c)[:3]
    assert names == ["p", "q", "r"]  # no proposal audited yet: space order
    fig = plot_pairs(c, model=model, points=9)
    drawn = [ax for ax in fig.axes if ax.get_visible() and any(
        col.get_gid() and col.get_gid().startswith("mean:") for col in ax.collections)]
    pairs = {tuple(col.get_gid().split(":")[1:]) for ax in drawn for col in ax.collections
             if col.get_gid() and col.get_gid().startswith("mean:")}
    assert pairs == {("p", "q"), ("p", "r"), ("q", "r")}  # (x, y) below the diagonal
    levels = [col.levels for ax in drawn for col in ax.collections
              if col.get_gid() and col.get_gid().startswith("mean:")]
    assert all(np.array_equal(lv, levels[0]) for lv in levels)  # one colour scale
    for ax in drawn:
        (gid,) = [col.get_gid() for col in ax.collections
                  if col.get_gid() and col.get_gid().startswith("mean:")]
        _, x, y = gid.split(":")
        m = posterior_map(c, x, y, model=model, points=9)
        assert _read_back(ax, gid, m.xs, m.ys, m.mean) > 0
    # An integer parameter: one grid line per level.
    np.testing.assert_array_equal(posterior_map(c, "p", "r", model=model, points=9).ys,
                                  np.arange(1.0, 7.0))
    with pytest.raises(ValueError, match="at least two"):
        plot_pairs(c, ["p"], model=model)


def test_simulated_random_search_evaluates_the_specs_oracle():
    c = wb.Campaign.from_dict({
        "name": "branin", "tracking": None, "store": None, "seed": 3,
        "space": [{"name": "x1", "type": "continuous", "low": -5, "high": 10},
                  {"name": "x2", "type": "continuous", "low": 0, "high": 15}],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "initial_design": {"n": 4}, "oracle": {"builtin": "branin"}})
    c.run(budget=4)
    runs = random_search_runs(c, 6)
    np.testing.assert_array_equal(runs, random_search_runs(c, 6, oracle=wb.problems.get("branin")))
    assert np.all(runs >= 0.397887 - 1e-6)  # Branin's global minimum
    assert not np.array_equal(runs, random_search_runs(c, 6, seed=4))
    band = random_search_band(c, 6)
    np.testing.assert_array_equal(band.median, best_so_far_quantiles(runs, "minimize")[1])
    assert band.source == "6 simulated runs"
    with pytest.raises(ValueError, match="every one of 12 evaluations failed.*KeyError"):
        random_search_runs(c, 3, oracle=lambda p: {"loss": p["nope"]})
