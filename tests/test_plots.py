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
