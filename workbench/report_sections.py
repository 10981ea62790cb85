"""The plot sections of a campaign report (``workbench.report``): every plot that
applies, as HTML with the PNGs embedded, and the global sensitivity of the model."""

from __future__ import annotations

import base64
import html
import io
from typing import Any, Callable

__all__ = ["importance_section", "new_figure", "plot_sections", "png"]

# Saltelli base rows and posterior draws of the report's sensitivity section: enough
# to rank the parameters, few enough that a report stays quick.
REPORT_IMPORTANCE_N = 256
REPORT_IMPORTANCE_SAMPLES = 16


def _e(value: Any) -> str:
    return html.escape(str(value))


def png(fig: Any) -> str:
    """A figure as an HTML <img> with the PNG embedded."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def new_figure() -> tuple[Any, Any]:
    """A Figure and its Axes, without pyplot (no GUI backend, no global state)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    return fig, fig.subplots()


def plot_sections(campaign: Any) -> list[str]:
    """Every plot that applies to the campaign, as HTML sections with embedded PNGs."""
    import matplotlib.pyplot as plt

    from workbench import plots
    from workbench.errors import WorkbenchError
    from workbench.space import Composition, Continuous

    parts: list[str] = []

    def section(title: str, draw, note: str = "") -> None:
        parts.append(f"<h2>{_e(title)}</h2>")
        try:
            fig = draw()
        except (ValueError, WorkbenchError) as e:  # one plot that cannot be drawn is a note
            parts.append(f"<p class='note'>not drawn: {_e(e)}</p>")
            return
        fig = getattr(fig, "figure", fig)
        parts.append(png(fig))
        plt.close(fig)  # forget figures pyplot made (slices, maps, pairs): none piles up
        if note:
            parts.append(f"<p class='note'>{note}</p>")

    def on_axes(fn, *args, **kw):
        def draw():
            fig, ax = new_figure()
            fn(campaign, *args, ax=ax, **kw)
            return fig
        return draw

    try:  # random search's band where it is free (a dataset pool)
        band = plots.random_search_band(campaign, None) if campaign.trials else None
        note = ("The band is the middle half of what random search reaches in as many"
                f" evaluations, the dashed line its median ({_e(band.source)})."
                if band is not None else "")
    except (ValueError, WorkbenchError) as e:  # the campaign's own curve still stands
        band, note = None, f"no random-search band: {_e(e)}"
    section("Convergence", on_axes(plots.plot_convergence,
                                   random=band if band is not None else False), note)
    section("Predicted vs observed", on_axes(plots.plot_predictions))
    mean, _, _ = plots.campaign_predictions(campaign)
    if len(mean):
        section("Calibration", on_axes(plots.plot_calibration))
    if len(campaign.objectives) > 1:
        # Three or more objectives: one panel per pair, on a figure of its own.
        section("Pareto front", on_axes(plots.plot_pareto) if len(campaign.objectives) == 2
                else lambda: plots.plot_pareto(campaign))
        section("Hypervolume", on_axes(plots.plot_hypervolume))
    continuous = [p for p in plots.map_parameters(campaign) if isinstance(p, Continuous)]
    done = sum(t.status == "completed" for t in campaign.trials)
    # One model for every section that shows one (slices, maps, pairs, sensitivity).
    model = None
    if done >= 2:
        try:
            model = plots.campaign_model(campaign, refit=False)
        except (ValueError, WorkbenchError) as e:
            parts.append(f"<h2>Model</h2><p class='note'>no model: {_e(e)}</p>")
        else:
            parts.append(f"<p class='note'>model shown below: {_e(model.description)}.</p>")
    if model is not None and continuous and campaign.best() is not None:
        section("Slices through the best trial",
                lambda: plots.plot_slices(campaign, model=model))
        if len(plots.map_parameters(campaign)) >= 2:
            section("Posterior map of the two most relevant parameters",
                    lambda: plots.plot_map(campaign, model=model, points=31))
        if len(plots.map_parameters(campaign)) >= 3:
            section("Pairs of the three most relevant parameters",
                    lambda: plots.plot_pairs(campaign, model=model, points=21))
    if plots.last_hyperparameters(campaign) is not None:
        section("Parameter relevance", on_axes(plots.plot_lengthscales))
    if model is not None:
        parts += importance_section(campaign, section, on_axes, model)
    best = campaign.best()
    for p in campaign.space.parameters:
        if isinstance(p, Composition) and len(p.elements) >= 3 and done:
            # The three elements the best trial holds most of: where the campaign looks.
            order = (sorted(p.elements, key=lambda e: -best.params[p.name].get(e, 0.0))
                     if best is not None else list(p.elements))
            section(f"Composition {p.name}",
                    on_axes(plots.plot_ternary, p.name, sorted(order[:3],
                                                                key=p.elements.index)))
    return parts




def importance_section(campaign: Any, section: Callable, on_axes: Callable,
                       model: Any = None) -> list[str]:
    """Sobol indices of the model (``campaign.importance()``; of ``model``, a
    ``CampaignModel``, when given): the first objective's as bars (drawn through
    ``section``), every output's total indices as a table."""
    from workbench import plots
    from workbench.errors import WorkbenchError

    try:
        indices = campaign.sobol_indices(n=REPORT_IMPORTANCE_N,
                                         samples=REPORT_IMPORTANCE_SAMPLES,
                                         model=None if model is None else model.model)
    except (ValueError, WorkbenchError) as e:
        return [f"<h2>Global sensitivity</h2><p class='note'>not computed: {_e(e)}</p>"]
    section("Global sensitivity (Sobol indices of the model)",
            on_axes(plots.plot_importance, importance=indices),
            "Total index: the share of the model's variance over the search space in which"
            " the parameter takes part; first order: the share it explains alone. Error"
            " bars: ± one standard deviation over posterior draws (what the model does not"
            " know yet). Inputs uniform over the box of the space; its linear constraints"
            " are not imposed.")
    head = "".join(f"<th>{_e(h)}</th>" for h in ["total index"] + indices.outputs)
    rows = "".join(
        f"<tr><td>{_e(p)}</td>" + "".join(
            f"<td>{float(indices.of('total', o)[j]):.3f}</td>" for o in indices.outputs)
        + "</tr>" for j, p in enumerate(indices.parameters))
    return [f"<table><tr>{head}</tr>{rows}</table>"]
