"""Global sensitivity of the campaign's model: Sobol indices per parameter as bars."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.plots._common import axes_or_new, outcome_label

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes

    from workbench.campaign import Campaign

# Bar height of each index within a parameter's row.
_BAR = 0.38


def plot_importance(campaign: "Campaign", output: str | None = None, *,
                    importance: Any = None, ax: "Axes | None" = None, **kw: Any) -> "Axes":
    """Total and first-order Sobol indices of one output per parameter, with error bars
    of ± one standard deviation over posterior draws (none for ``p_feasible``).

    output: an objective or ``"p_feasible"`` (default the first objective);
    importance: a ``campaign.importance()`` Dataset or ``campaign.sobol_indices()`` to
    draw (default: computed with ``**kw``: n, samples, seed). Returns the Axes.
    """
    indices = importance if importance is not None else campaign.sobol_indices(**kw)
    if not hasattr(indices, "of"):  # a campaign.importance() Dataset
        from workbench.campaign.insight import SobolIndices

        indices = SobolIndices.from_dataset(indices)
    outputs = list(indices.outputs)
    name = output or outputs[0]
    if name not in outputs:
        raise ValueError(f"plot_importance: output {name!r} has no indices; expected one of"
                         f" {outputs}")
    own = ax is None
    ax = axes_or_new(ax)
    labels = list(indices.parameters)
    pos = np.arange(len(labels))[::-1]  # first parameter on top
    for k, (kind, colour, text) in enumerate((("total", "C0", "total"),
                                              ("first_order", "C1", "first order"))):
        values = indices.of(kind, name)
        err = indices.of(f"{kind}_std", name)
        ax.barh(pos + (0.5 - k) * _BAR, values, height=_BAR, color=colour,
                       xerr=None if np.isnan(err).all() else err, capsize=3, label=text,
                       gid=f"importance:{kind}")
    ax.set_yticks(pos, labels)
    ax.axvline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("Sobol index: share of the model's variance")
    label = name if name == "p_feasible" else outcome_label(campaign, name)
    ax.set_title(f"{campaign.name}: what drives {label} (model on"
                 f" {indices.attrs.get('n_train', '?')} trials)", fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    if own:
        ax.figure.tight_layout()
    return ax
