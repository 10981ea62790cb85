"""``workbench predict``: the campaign's model at points an engineer gives, without
running anything (registered on the ``workbench`` command by ``workbench.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import CampaignError

__all__ = ["predict_points"]

# Significant digits of the predictions in the printed table.
TABLE_DIGITS = 5


def predict_points(store: str, points: Path, output: Path | None, as_json: bool,
                   console: Any) -> None:
    """Mean, std (and P(feasible)) of the campaign at ``store`` at the rows of the CSV
    ``points``; printed as a table (or JSON), and written to ``output`` as CSV when
    given. Bad input raises CampaignError before anything is written."""
    from rich.markup import escape
    from rich.table import Table

    from workbench.campaign import Campaign
    from workbench.csvio import write_rows

    if output is not None and output.is_dir():
        raise CampaignError(f"--output: {output} is a folder; expected a CSV file path")
    campaign = Campaign.open(store, tracking=None)  # reading contacts no server
    frame = campaign.predict(Path(points))
    if output is not None:
        write_rows(output, [str(c) for c in frame.columns], frame.to_dict("records"))
    if as_json:
        from workbench.cli_json import document, emit, json_value

        rows = [{k: json_value(v) for k, v in r.items()} for r in frame.to_dict("records")]
        emit(document("predict", name=campaign.name, columns=[str(c) for c in frame.columns],
                      written=None if output is None else str(output), points=rows))
        return
    if output is not None:
        console.print(f"wrote {output}: {len(frame)} predictions of campaign"
                      f" {campaign.name!r}", highlight=False)
        return
    table = Table(title=escape(f"campaign {campaign.name!r}: model predictions"),
                  title_justify="left")
    for column in frame.columns:
        table.add_column(escape(str(column)), justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*(escape(_cell(v)) for v in row))
    console.print(table)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.{TABLE_DIGITS}g}"
    return str(v)


