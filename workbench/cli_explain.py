"""``workbench explain STORE_OR_SPEC TRIAL``: why a trial was proposed, read from its
record (``Campaign.explain``); no model is fitted and JAX is not imported.

Its own module beside ``workbench.cli``, which registers it (and turns its errors
into a message and exit code 2).
"""

from __future__ import annotations


import typer
from rich.markup import escape

from workbench.cli_common import out

__all__ = ["explain"]

# Significant digits of the numbers in the printed lists.
DIGITS = 4


def explain(
    target: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    trial: int = typer.Argument(..., help="trial id"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Why a trial was proposed: the model's prediction, the acquisition value, the best so
    far and the runners-up, as recorded when it was asked."""
    from workbench.campaign import Campaign
    from workbench.cli_common import existing_store

    store = existing_store(target, "explain")
    campaign = Campaign.open(store, tracking=None)  # reading contacts no server
    facts = campaign.explain(trial)
    if as_json:
        from workbench.cli_json import document, emit, json_value

        emit(document("explain", name=campaign.name, **json_value(facts)))
        return
    out.print(escape(facts["text"]), highlight=False, soft_wrap=True)
    if facts["alternatives"]:
        out.print("candidates the optimiser found (acquisition value):", highlight=False)
        for i, a in enumerate(facts["alternatives"]):
            mark = "chosen" if i == 0 else f"#{i + 1}"
            point = ", ".join(f"{k}={_num(v)}" for k, v in a["params"].items())
            out.print(f"  {mark:>6}  {_num(a['acquisition_value'])}  {escape(point)}",
                      highlight=False)
    if facts["model"]:
        out.print(f"model: {escape(str(facts['model']))}", highlight=False)


def _num(v):
    if isinstance(v, float):
        return f"{v:.{DIGITS}g}"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_num(f)}" for k, f in v.items()) + "}"
    return str(v)
