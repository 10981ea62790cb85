"""``workbench import STORE_OR_SPEC data.csv``: experiments done before the campaign,
recorded as completed trials of strategy ``imported`` (``Campaign.add_data``).

Its own module beside ``workbench.cli``, which registers it (and turns its errors
into a message and exit code 2). Every row is checked before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

__all__ = ["import_data"]

out = Console()


def _campaign(target: str):
    """The campaign ``target`` names: a store (a ``*.zarr`` folder, which must exist) or
    a spec (YAML file or shipped name; its store is created when it does not exist)."""
    from workbench.campaign import Campaign
    from workbench.errors import CampaignError
    from workbench.resources import resolve_spec
    from workbench.spec import load_spec

    given = Path(target).expanduser()
    if given.is_dir() or given.suffix == ".zarr":
        return Campaign.open(target)
    path = resolve_spec(target)
    spec = load_spec(path)
    if spec.store is None:
        raise CampaignError("store: is null; import needs a store to record the experiments in")
    return Campaign.from_spec(spec, base_dir=path.parent)


def import_data(
    target: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    data: Path = typer.Argument(..., help="CSV of past experiments: parameter and outcome"
                                " columns, optional <outcome>_sem standard errors"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Bring in experiments done before the campaign as completed trials (strategy
    imported). Every row is checked first: one row outside the space imports nothing."""
    campaign = _campaign(target)
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
