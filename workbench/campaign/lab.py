"""Lab data beyond one ask and tell: past experiments brought in at once, the known
noise of observations told with standard errors, and how sure the best result is.

``add_data`` checks every row of a table (a pandas DataFrame or a CSV file) before
it writes anything, then records them all as completed trials of strategy
``imported`` in a few ``import`` journal events (``IMPORT_CHUNK`` trials each),
appended in one durable write: 10,000 rows are one append, not 10,000 tells.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from workbench.csvio import parse_number
from workbench.errors import CampaignError
from workbench.record import COMPLETED, IMPORTED, SEM_SUFFIX, Trial, now, trial_to_json
from workbench.space import Categorical

if TYPE_CHECKING:
    from workbench.campaign.journal import Journal

# A campaign (``workbench.campaign.Campaign``): its space, outcomes and spec are read.
Campaign = Any

__all__ = ["IMPORTED", "IMPORT_CHUNK", "add_data", "known_noise", "probability_best"]

#: The strategy of trials brought in by ``add_data`` (experiments done before the campaign).
#: Trials per ``import`` journal event: keeps each journal line a few MB at most.
IMPORT_CHUNK = 5000
# Refused rows quoted in one error message; the rest are counted.
_SHOWN_ERRORS = 10
# Columns of a campaign export that say nothing about the experiment itself.
_IGNORED_COLUMNS = ("trial_id", "status", "batch", "strategy", "failure_reason", "asked_at",
                    "told_at", "campaign", "campaign_id")
_IGNORED_PREFIXES = ("predicted_", "proposed_")
# Monte-Carlo draws for probability_best: its estimates are good to about 0.01.
BEST_PROBABILITY_SAMPLES = 4096


def known_noise(outputs: Sequence[str], completed: Sequence[Trial]) -> np.ndarray | None:
    """Known noise variances of the modelled ``outputs`` of ``completed`` trials: (n, m)
    squared standard errors in output units, 0 where none was told; None when no
    trial carries one (the model then learns one homoscedastic noise)."""
    if not any(t.sem for t in completed):
        return None
    return np.asarray([[t.sem.get(name, 0.0) ** 2 for name in outputs] for t in completed],
                      dtype=np.float64).reshape(len(completed), len(outputs))


def probability_best(objective: Any, feasible: Sequence[Trial],
                     samples: int = BEST_PROBABILITY_SAMPLES, seed: int = 0) -> dict[int, float]:
    """P(each trial is truly the best) for ``objective``, {trial id: probability},
    most probable first.

    Each trial's true value is taken as normal around its observed mean with its
    told standard error (exact where none was told), independently of the others;
    the probabilities are the share of ``samples`` seeded draws in which each one
    scores best. This is about the measurements, not the surrogate model.
    """
    if not feasible:
        return {}
    mean = np.asarray([t.outcomes[objective.name] for t in feasible], dtype=np.float64)
    sem = np.asarray([t.sem.get(objective.name, 0.0) for t in feasible], dtype=np.float64)
    draws = mean + sem * np.random.default_rng(seed).standard_normal((samples, len(feasible)))
    score = np.vectorize(objective.score, otypes=[np.float64])(draws)
    counts = np.bincount(np.argmax(score, axis=1), minlength=len(feasible)) / samples
    order = np.argsort(-counts, kind="stable")
    return {feasible[i].id: float(counts[i]) for i in order if counts[i] > 0}


def _table_rows(table: Any) -> tuple[str, list[str], list[tuple[str, dict[str, Any]]]]:
    """(source name, columns, [(where, {column: cell})]) of a DataFrame or CSV file;
    ``where`` is ``line N`` of the file, or ``row N`` (0-based) of a DataFrame."""
    if isinstance(table, (str, Path)):
        path = Path(table)
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise CampaignError(f"data: file not found: {path}") from None
        except UnicodeDecodeError:
            raise CampaignError(f"data: {path} is not UTF-8 text; expected a CSV file"
                                " (in a spreadsheet: save as 'CSV UTF-8')") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            lines = [(reader.line_num, f) for f in reader if any(c.strip() for c in f)]
        except csv.Error as e:
            raise CampaignError(f"data: {path}:{reader.line_num}: not valid CSV ({e})") from None
        if not lines:
            raise CampaignError(f"data: {path} is empty; expected a header row of parameter"
                                " and outcome columns")
        header = [h.strip() for h in lines[0][1]]
        rows = []
        for line, fields in lines[1:]:
            if len(fields) != len(header):
                raise CampaignError(f"data: {path}:{line}: {len(fields)} fields; expected"
                                    f" {len(header)}, one per header column")
            rows.append((f"line {line}", dict(zip(header, (f.strip() for f in fields)))))
        return str(path), header, rows
    if hasattr(table, "to_dict") and hasattr(table, "columns"):
        header = [str(c) for c in table.columns]
        records = table.to_dict("records")
        return "DataFrame", header, [(f"row {i}", {str(k): v for k, v in r.items()})
                                     for i, r in enumerate(records)]
    raise CampaignError(f"data: got {type(table).__name__}; expected a pandas DataFrame or"
                        " the path of a CSV file")


def _empty(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell) or \
        (isinstance(cell, (float, np.floating)) and math.isnan(cell))


def _number(cell: Any) -> float:
    """A cell as a finite number (ValueError otherwise)."""
    if isinstance(cell, str):
        value = parse_number(cell)
    elif isinstance(cell, bool) or not isinstance(cell, (int, float, np.number)):
        raise ValueError(cell)
    else:
        value = float(cell)
    if not math.isfinite(value):
        raise ValueError(cell)
    return value


def _check_columns(source: str, header: list[str], campaign: Campaign) -> list[str]:
    """Refuse unknown or missing columns; returns the outcome names with SEM columns."""
    params = campaign.space.flat_names
    outcomes = [o.name for o in campaign.outcomes]
    sems = [o + SEM_SUFFIX for o in outcomes]
    known = {*params, *outcomes, *sems, *_IGNORED_COLUMNS}
    unknown = [h for h in header if h not in known and not h.startswith(_IGNORED_PREFIXES)]
    missing = [h for h in params + outcomes if h not in header]
    if unknown or missing:
        raise CampaignError(
            f"data: {source}: missing column(s) {missing}, unknown column(s) {unknown};"
            f" expected the parameters {params}, the outcomes {outcomes} and optional"
            f" standard errors {sems}; nothing was imported")
    return [o for o in outcomes if o + SEM_SUFFIX in header]


def _row(where: str, row: dict[str, Any], campaign: Campaign,
         with_sem: list[str]) -> tuple[dict, dict[str, float], dict[str, float]]:
    """One row checked: (parameters, outcomes, standard errors); raises naming the
    row and column."""
    space = campaign.space
    flat: dict[str, Any] = {}
    categorical = {p.name for p in space.parameters if isinstance(p, Categorical)}
    for name in space.flat_names:
        cell = row[name]
        if _empty(cell):
            raise CampaignError(f"{where}: {name}: empty; expected a value")
        try:
            flat[name] = str(cell) if name in categorical else _number(cell)
        except ValueError:
            raise CampaignError(f"{where}: {name}: got {cell!r}; expected a finite"
                                " number") from None
    params = space.unflatten(flat)
    for p in space.parameters:
        try:
            params[p.name] = p.validate_value(params[p.name])
        except CampaignError as e:
            raise CampaignError(f"{where}: {e}") from None
    values: dict[str, dict[str, float]] = {"outcome": {}, "standard error": {}}
    for kind, names, suffix in (("outcome", [o.name for o in campaign.outcomes], ""),
                                ("standard error", with_sem, SEM_SUFFIX)):
        for name in names:
            cell = row[name + suffix]
            if suffix and _empty(cell):
                continue  # no standard error known for this row
            try:
                value = _number(cell)
                if suffix and value < 0:
                    raise ValueError(cell)
            except ValueError:
                expected = "a finite number >= 0" if suffix else "a finite number"
                raise CampaignError(f"{where}: {name + suffix}: got {cell!r}; expected"
                                    f" {expected} ({kind})") from None
            values[kind][name] = value
    return params, values["outcome"], values["standard error"]


def _refuse(source: str, errors: list[str]) -> None:
    more = f"; and {len(errors) - _SHOWN_ERRORS} more" if len(errors) > _SHOWN_ERRORS else ""
    raise CampaignError(
        f"data: {source}: {len(errors)} row(s) refused, nothing was imported: "
        + "; ".join(errors[:_SHOWN_ERRORS]) + more
        + ". Rows outside the search space are not imported: fix or drop them, or widen"
        " the space first (a space update) and import again")


def add_data(campaign: Campaign, journal: "Journal", table: Any) -> list[Trial]:
    """Record past experiments as completed trials of strategy ``imported``.

    table: a pandas DataFrame or a CSV path, one row per experiment: the
    parameter columns (compositions as ``alloy.Cu``), every outcome, and optional
    ``<outcome>_sem`` standard errors. Every row is checked first (parameters in
    the space and its constraints, outcomes finite, errors >= 0); any bad row
    refuses the whole table, naming each row and column, and records nothing.
    Rows equal to existing trials are kept: they are separate experiments.
    Returns the new trials.
    """
    source, header, rows = _table_rows(table)
    with_sem = _check_columns(source, header, campaign)
    if not rows:
        raise CampaignError(f"data: {source}: no rows below the header; expected one row"
                            " per experiment")
    checked, errors = [], []
    for where, row in rows:
        try:
            checked.append((where, *_row(where, row, campaign, with_sem)))
        except CampaignError as e:
            errors.append(str(e))
    if not errors:
        ok = campaign.space.feasible([params for _, params, _, _ in checked])
        errors = [f"{where}: violates the constraints {list(campaign.space.constraints)}"
                  for (where, *_), good in zip(checked, ok) if not good]
    if errors:
        _refuse(source, errors)
    with journal.transaction():
        start = len(journal.trials)
        number = max((t.batch for t in journal.trials), default=-1) + 1
        at = now()
        new = [Trial(id=start + i, params=params, status=COMPLETED, outcomes=outcomes,
                     sem=sem, batch=number, strategy=IMPORTED, asked_at=at, told_at=at,
                     audit=json.dumps({"strategy": IMPORTED, "source": source, "row": where},
                                      sort_keys=True))
               for i, (where, params, outcomes, sem) in enumerate(checked)]
        journal.record([{"op": "import", "trials": [trial_to_json(t) for t in chunk]}
                        for chunk in (new[k:k + IMPORT_CHUNK]
                                      for k in range(0, len(new), IMPORT_CHUNK))])
        journal.compact_if_due()
        return journal.trials[start:]
