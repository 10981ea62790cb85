"""``campaign.plot``: the plot functions of ``workbench.plots`` bound to a campaign
(matplotlib is imported only when one is drawn)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.campaign.facade import Campaign

__all__ = ["PlotAccessor"]


class PlotAccessor:
    """``campaign.plot.<name>(...)``: the functions of ``workbench.plots`` bound to a
    campaign; calling it draws the convergence plot."""

    NAMES = ("convergence", "predictions", "calibration", "pareto", "hypervolume", "slices",
             "map", "pairs", "lengthscales", "ternary", "importance", "explain")

    def __init__(self, campaign: "Campaign"):
        self.campaign = campaign

    def __call__(self, ax=None, **kw):
        from workbench.plots import plot_convergence
        return plot_convergence(self.campaign, ax=ax, **kw)

    def __getattr__(self, name: str):
        if name not in self.NAMES:
            raise AttributeError(f"campaign.plot has no {name!r}; expected one of"
                                 f" {list(self.NAMES)}")
        from workbench import plots
        return functools.partial(getattr(plots, f"plot_{name}"), self.campaign)

    def __dir__(self):
        return list(self.NAMES)
