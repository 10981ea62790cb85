"""``workbench importance STORE_OR_SPEC``: what drives each outcome, by the campaign's
model (``Campaign.importance``: Sobol indices per output and parameter).

Its own module beside ``workbench.cli``, which registers it (and turns its errors
into a message and exit code 2). The model is the one the next ``ask`` would fit;
nothing is written to the store, and with tracking on the indices are queued in the
campaign's outbox for its MLflow run (delivered by the next ``ask``, ``run`` or
``report``), so the command neither imports MLflow nor waits on the server.
"""

from __future__ import annotations

import typer

from workbench.cli_common import campaign_at, out
from workbench.cli_schema import JSON_OPTION
from workbench.errors import CampaignError

__all__ = ["DEFAULT_BASE_ROWS", "DEFAULT_SAMPLES", "importance"]

# Campaign.importance's defaults (base rows of the design, posterior draws), which the
# command and the MCP tool share.
DEFAULT_BASE_ROWS = 512
DEFAULT_SAMPLES = 32


def importance(
    target: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    n: int = typer.Option(DEFAULT_BASE_ROWS, "--n",
                          help="base rows of the Saltelli design (the model is evaluated at"
                               " n (parameters + 2) points)"),
    samples: int = typer.Option(DEFAULT_SAMPLES, "--samples",
                                help="joint posterior draws for the spread (0: none)"),
    seed: int = typer.Option(0, "--seed", help="the design's scrambling and the draws' key"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Which parameters drive each objective (and P(feasible)): total and first-order
    Sobol indices of the campaign's model, with their spread over posterior draws."""
    from workbench.campaign.insight import MIN_BASE_ROWS

    for option, value, low in (("--n", n, MIN_BASE_ROWS), ("--samples", samples, 0),
                               ("--seed", seed, 0)):
        if value < low:  # checked before the store is read: nothing is fitted
            raise CampaignError(f"{option}: got {value}; expected an integer >= {low}")
    campaign = campaign_at(target, "importance")
    campaign.defer_tracking()  # the indices' metrics go out with the next ask, run or report
    from workbench.cli_json import importance_json

    doc = importance_json(campaign.sobol_indices(n=n, samples=samples, seed=seed))
    if as_json:
        from workbench.cli_json import document, emit

        emit(document("importance", name=campaign.name, **doc))
        return
    from workbench.terminal import importance_table

    for output in doc["outputs"]:
        title = (f"campaign {campaign.name!r}: what drives {output['output']}"
                 f" (model on {doc['n_train']} trials)")
        out.print(importance_table(title, output["parameters"], out.width))
    spread = (f"± one std over {doc['samples']} posterior draws" if doc["sample_rows"]
              else "no spread")
    out.print(f"Sobol indices of the posterior mean over {doc['over']}; n = {doc['n']},"
              f" seed {doc['seed']}; {spread}", highlight=False)
