"""Several objectives: the feasible Pareto front and the hypervolume after each trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.plots._common import COMPLETED, axes_or_new, axis_label, shade_initial_design

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

def _pareto_sets(campaign: "Campaign") -> tuple[list, list, list]:
    """Completed trials split into (Pareto, other feasible, infeasible)."""
    pareto_ids = {t.id for t in campaign.pareto()}
    feasible_ids = {t.id for t in campaign.feasible_trials()}
    done = [t for t in sorted(campaign.trials, key=lambda t: t.id) if t.status == COMPLETED]
    return ([t for t in done if t.id in pareto_ids],
            [t for t in done if t.id in feasible_ids and t.id not in pareto_ids],
            [t for t in done if t.id not in feasible_ids])


def _pareto_panel(ax: "Axes", campaign: "Campaign", i: int, j: int, sets: tuple,
                  front: bool) -> None:
    oi, oj = campaign.objectives[i], campaign.objectives[j]
    pareto, others, infeasible = sets

    def xy(rows):
        return ([t.outcomes[oi.name] for t in rows], [t.outcomes[oj.name] for t in rows])

    if infeasible:
        ax.plot(*xy(infeasible), linestyle="none", marker="o", markersize=4, color="0.7",
                label=f"infeasible ({len(infeasible)})", gid="infeasible")
    if others:
        ax.plot(*xy(others), linestyle="none", marker="o", markersize=4, color="C0",
                alpha=0.7, label="feasible, dominated", gid="observed")
    if pareto:
        if front and len(pareto) > 1:
            # Sorted by the first score: the boundary of the dominated region steps
            # first along the second objective, then along the first (steps-pre),
            # in any combination of directions (a reflection keeps the shape).
            order = sorted(pareto, key=lambda t: oi.score(t.outcomes[oi.name]))
            ax.plot(*xy(order), drawstyle="steps-pre", color="C3", lw=1.5, alpha=0.8,
                    gid="front")
        ax.plot(*xy(pareto), linestyle="none", marker="D", markersize=6, color="C3",
                label=f"Pareto front ({len(pareto)})", gid="pareto")
    ax.set_xlabel(f"{axis_label(oi)} ({oi.direction})")
    ax.set_ylabel(f"{axis_label(oj)} ({oj.direction})")


def plot_pareto(campaign: "Campaign", ax: "Axes | None" = None) -> Any:
    """Observed outcomes in objective space with the feasible Pareto front highlighted.

    Pareto trials (``campaign.pareto()``) are red diamonds joined by the
    boundary of the region they dominate, other feasible trials blue dots,
    trials that break an outcome constraint grey. Two objectives: one panel,
    returns the Axes. Three or more: one panel per pair of objectives (the
    front is the one of all objectives, so no step line), returns the Figure.
    """
    k = len(campaign.objectives)
    if k < 2:
        raise ValueError(f"plot_pareto: campaign {campaign.name!r} has {k} objective;"
                         " expected two or more (use plot() for one objective)")
    sets = _pareto_sets(campaign)
    front = all(o.target is None for o in campaign.objectives)
    if k == 2:
        ax = axes_or_new(ax)
        _pareto_panel(ax, campaign, 0, 1, sets, front)
        ax.set_title(f"{campaign.name}: Pareto front")
        if any(sets):
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no completed trials yet", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
        return ax
    if ax is not None:
        raise ValueError(f"plot_pareto: {k} objectives draw one panel per pair on a new"
                         " figure; ax must be None")
    import matplotlib.pyplot as plt

    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 4.0), squeeze=False)
    for a, (i, j) in zip(axes[0], pairs):
        _pareto_panel(a, campaign, i, j, sets, front=False)
    axes[0][0].legend(loc="best", fontsize="small")
    fig.suptitle(f"{campaign.name}: Pareto front of {k} objectives")
    fig.tight_layout()
    return fig


def plot_hypervolume(campaign: "Campaign", ref_point: list[float] | None = None,
                     ax: "Axes | None" = None) -> "Axes":
    """Hypervolume dominated by the feasible completed trials after each trial.

    ref_point: in user units per objective, as for
    ``campaign.hypervolume_history`` (default the spec's, else 10% of the
    range below the worst feasible value of each objective). Rising steps are trials that pushed the
    front out; a long flat tail says the campaign has stopped learning.
    Returns the Axes.
    """
    ax = axes_or_new(ax)
    if len(campaign.objectives) < 2:
        raise ValueError(f"plot_hypervolume: campaign {campaign.name!r} has one objective;"
                         " expected two or more (use plot() for one objective)")
    trials = sorted(campaign.trials, key=lambda t: t.id)
    shade_initial_design(ax, trials)
    history = campaign.hypervolume_history(ref_point)
    if trials:
        ax.plot([t.id for t in trials], history, drawstyle="steps-post", color="C1", lw=2,
                marker="o", markersize=3, label="hypervolume", gid="hypervolume")
        ax.set_xlim(-0.5, trials[-1].id + 0.5)
        ax.legend(loc="best", fontsize="small")
    else:
        ax.text(0.5, 0.5, "no trials yet", transform=ax.transAxes, ha="center",
                va="center", color="0.4")
    units = [o.unit for o in campaign.objectives]
    ax.set_xlabel("trial")
    ax.set_ylabel("hypervolume" + (f" [{' × '.join(u or '1' for u in units)}]"
                                   if any(units) else ""))
    ax.set_title(f"{campaign.name}: hypervolume")
    return ax
