"""``workbench space``: change a running campaign's search space from the command line.

``--set 'temperature: {low: 30, high: 130}'`` changes the fields given of an existing
parameter (or, with a ``type``, adds one), validated by the spec's parameter models so
the messages are those of the YAML file; ``--past NAME=VALUE`` gives the value past
trials had for an added parameter; ``--fix NAME=VALUE`` holds a parameter in proposals
and ``--fix NAME=`` releases it. The change is a ``space`` journal event of the store
(``Campaign.update_space``); the spec file is not rewritten. Without changes the
command shows the space and its recorded updates.
"""

from __future__ import annotations

from typing import Any

import typer
import yaml
from rich.table import Table

from workbench.cli_common import campaign_at, out
from workbench.errors import CampaignError

__all__ = ["recorded_updates", "space_command"]


def _set(text: str, space: Any) -> Any:
    """A parameter from ``--set 'name: {field: value, ...}'``: an existing parameter's
    definition with these fields changed, or a new one (with its ``type``)."""
    from workbench.campaign.space_updates import parse_parameter

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise CampaignError(f"--set: got {text!r}, which is not YAML ({e})") from None
    if not (isinstance(data, dict) and len(data) == 1
            and isinstance(next(iter(data.values())), dict)):
        raise CampaignError(f"--set: got {text!r}; expected one parameter as"
                            " 'name: {field: value, ...}'")
    [(name, fields)] = data.items()
    name = str(name)
    base = space[name].model_dump(mode="json") if name in space.names else {}
    if fields.get("type", base.get("type")) != base.get("type"):
        base = {}  # another type: update_space refuses it with its own message
    return parse_parameter({**base, **fields, "name": name}, f"--set {name}")


def _pairs(items: list[str], option: str) -> dict[str, Any]:
    """``NAME=VALUE`` options as a dict (values read as YAML scalars; empty is None)."""
    out_: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise CampaignError(f"{option}: got {item!r}; expected NAME=VALUE")
        out_[name.strip()] = yaml.safe_load(value) if value.strip() else None
    return out_


def recorded_updates(campaign: Any) -> list[dict]:
    """The campaign's space updates, oldest first, as its record holds them (from the
    journal, so that showing the space imports neither xarray nor dask)."""
    return campaign.space_updates


def _show(campaign: Any, updates: list[dict]) -> None:
    fixed: dict[str, Any] = {}
    for event in updates:
        fixed.update(event.get("fixed", {}))
    table = Table(title=f"campaign {campaign.name!r}: search space")
    for col in ("parameter", "type", "range or levels", "fixed"):
        table.add_column(col)
    for p in campaign.space.parameters:
        span = (f"{p.low} to {p.high}" if hasattr(p, "low") else
                ", ".join(getattr(p, "choices", None) or getattr(p, "elements", [])))
        value = fixed.get(p.name)
        table.add_row(p.name, p.type, span, "" if value is None else str(value))
    out.print(table)


def space_command(
    target: str = typer.Argument(..., help="campaign store, or a spec whose store exists"),
    set_: list[str] = typer.Option(
        [], "--set", help="a parameter as YAML, 'temperature: {low: 30, high: 130}': the"
        " fields given change; a new name (with type) adds one. Repeatable."),
    past: list[str] = typer.Option(
        [], "--past", help="NAME=VALUE: what past trials had for an added parameter"),
    fix: list[str] = typer.Option(
        [], "--fix", help="NAME=VALUE holds a parameter in proposals; NAME= releases it"),
    reason: str = typer.Option("", "--reason", help="why, for the audit"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Widen or narrow a range, add a level or a parameter, fix one; or show the space."""
    campaign = campaign_at(target, "space")
    if set_ or fix or past:
        parameters = [_set(text, campaign.space) for text in set_]
        campaign.update_space(*parameters, fix=_pairs(fix, "--fix"),
                              add=_pairs(past, "--past"), reason=reason)
    updates = recorded_updates(campaign)
    if as_json:
        from workbench.cli_json import document, emit

        emit(document("space", space=[p.model_dump(mode="json")
                                      for p in campaign.space.parameters], updates=updates))
        return
    _show(campaign, updates)
    for u in updates:
        what = ", ".join([p["name"] for p in u["parameters"]]
                         + [f"{k}={v}" for k, v in u["fixed"].items()])
        out.print(f"{u['at']}: {what}" + (f" ({u['reason']})" if u["reason"] else ""),
                  highlight=False)
