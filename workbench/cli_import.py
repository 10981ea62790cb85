"""``workbench import STORE_OR_SPEC data.csv``: experiments done before the campaign,
recorded as completed trials of strategy ``imported`` (``Campaign.add_data``).

Its own module beside ``workbench.cli``, which registers it (and turns its errors
into a message and exit code 2). Every row is checked before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import typer

from workbench.cli_common import campaign_at, out

__all__ = ["import_data"]


def import_data(
    target: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    data: Path = typer.Argument(..., help="CSV of past experiments: parameter and outcome"
                                " columns, optional <outcome>_sem standard errors"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Bring in experiments done before the campaign as completed trials (strategy
    imported). Every row is checked first: one row outside the space imports nothing."""
    campaign = campaign_at(target, "import", create=True)
    campaign.defer_tracking()  # the next ask, run or report logs it
    trials = campaign.add_data(data)
    if as_json:
        from workbench.cli_json import document, emit

        emit(document("import", store=str(campaign.spec.store), imported=len(trials),
                      trial_ids=[trials[0].id, trials[-1].id]))
        return
    out.print(f"imported {len(trials)} past experiment(s) from {data} as trials"
              f" {trials[0].id} to {trials[-1].id} (strategy imported) into"
              f" {campaign.spec.store}", highlight=False, markup=False)
    best, obj = campaign.best(), campaign.objectives[0]
    if best is not None:
        out.print(f"best {obj.name} = {best.outcomes[obj.name]:.6g} at trial {best.id}",
                  highlight=False, markup=False)
