"""Why a trial was proposed, drawn: the acquisition profiles its audit recorded."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.plots._common import short_value

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.figure import Figure

    from workbench.campaign import Campaign

__all__ = ["plot_explain"]


def plot_explain(campaign: "Campaign", trial_id: int) -> "Figure":
    """The acquisition along each recorded parameter through trial ``trial_id``'s
    proposal (one panel per parameter, at most two: the most relevant by ARD
    length-scale), with the chosen value marked; drawn from the record, not recomputed.

    Profiles are recorded for the first point of a model-guided batch whose acquisition
    has a value function; any other trial raises ValueError saying so. Returns the Figure.
    """
    import matplotlib.pyplot as plt

    facts = campaign.explain(trial_id)
    profiles = facts["profiles"]
    if not profiles:
        raise ValueError(f"plot_explain: trial {trial_id} ({facts['kind']}, strategy"
                         f" {facts['strategy']!r}) has no recorded acquisition profile;"
                         " expected the first point of a model-guided batch")
    fig, axes = plt.subplots(1, len(profiles), figsize=(5.0 * len(profiles), 3.6),
                             squeeze=False)
    units = campaign.space.flat_units()
    for ax, prof in zip(axes[0], profiles):
        name = prof["parameter"]
        ax.plot(prof["values"], prof["acquisition"], color="C0", gid=f"explain:{name}")
        chosen = facts["params"].get(name)
        if chosen is not None:
            ax.axvline(chosen, color="C3", ls="--", lw=1,
                       label=f"proposed {short_value(chosen)}")
            ax.legend(loc="best", fontsize="small")
        ax.set_xlabel(f"{name} [{units[name]}]" if units.get(name) else name)
        ax.set_ylabel(f"acquisition ({facts['strategy']})")
    fig.suptitle(f"{campaign.name}: why trial {trial_id} (others held at the proposal)",
                 fontsize="medium")
    fig.tight_layout()
    return fig
