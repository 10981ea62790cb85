"""Results CSV files for engineers: read, check every row, then hand over.

A results file has a ``trial_id`` column, one column per objective, and
optionally ``failure_reason`` (non-empty marks the trial failed) or
``status`` (``failed``), and ``<outcome>_sem`` columns: the standard error of the
outcome's value (finite, >= 0; empty where not known), told as ``(mean, sem)``. It must say which campaign it belongs to: by the
``campaign`` / ``campaign_id`` columns that ``workbench ask -o`` writes (checked
against the campaign told), or by parameter columns (checked against each
trial); a file with neither could be any campaign's and is refused. Parameter
values must match the proposal within half the parameter's ``precision``; with
``actual=True`` other valid values are returned as the setpoints actually run.
Rows whose outcomes are all empty are skipped: still running.

Every row is checked before anything is told, so a file with one bad row
records nothing. A structural problem (the file, its header, an unknown or
repeated trial id, a conflict with what the store holds) is always an error;
an unusable outcome value (not a number, NaN, infinity, one of several
outcomes empty) is an error under the spec's ``bad_observations: error`` and
a recorded failure under ``bad_observations: fail``.
"""

from __future__ import annotations

import csv
import io
import re
import math
from pathlib import Path
from typing import Any, NamedTuple

from workbench.errors import CampaignError
from workbench.parameters import Composition, setpoint_tolerance, same_value
from workbench.record import SEM_SUFFIX  # ``yield_sem``: an outcome's standard error

_STATUSES = ("", "pending", "completed", "failed")
# Columns naming the campaign a file was written for (``workbench ask -o``).
IDENTITY_COLUMNS = ("campaign", "campaign_id")
# Export columns that are information only (what the model predicted, what was proposed).
_INFO_PREFIXES = ("predicted_", "proposed_")


class ResultRow(NamedTuple):
    """One row to tell: outcomes, or a failure reason, and the actual setpoints where
    they differ from the proposal (``{}`` for none)."""

    trial_id: int
    outcomes: dict | None  # a value, or (mean, standard error), per outcome
    reason: str | None
    actual: dict[str, Any]

# A results file is a few rows per experiment; anything this large is a wrong file.
MAX_RESULTS_BYTES = 64 * 1024 * 1024
# Cells a spreadsheet would run as a formula when they start with one of these.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Plain ASCII decimal numbers only: Python's float() also takes "7_0" and non-ASCII digits.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.ASCII | re.IGNORECASE)


def parse_number(text: str) -> float:
    """A number as written in a CSV cell: ASCII decimal digits, an optional sign,
    point and exponent (``nan`` and ``inf`` too, which callers refuse as not finite).
    Raises ValueError for anything else, e.g. ``7_0`` or non-ASCII digits."""
    text = text.strip()
    if not (_NUMBER.fullmatch(text) or _NON_FINITE.fullmatch(text)):
        raise ValueError(text)
    return float(text)


def spreadsheet_safe(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading ``'``
    (shown as text, and removed again when a results file is read); numbers stay."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        try:
            parse_number(value)
            return value
        except ValueError:
            return "'" + value
    return value


def rows_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """``rows`` (dicts by column) as CSV text, without pandas: missing numbers (NaN,
    None) as empty cells, every text cell and header spreadsheet-safe."""
    def cell(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return spreadsheet_safe(value)

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(c) for c in columns])
    writer.writerows([cell(row.get(c)) for c in columns] for row in rows)
    return buffer.getvalue()


def write_rows(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV to ``path`` (see :func:`rows_text`)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        f.write(rows_text(columns, rows))


def from_spreadsheet(text: str) -> str:
    """Undo ``spreadsheet_safe`` on a cell read back."""
    if text.startswith("'") and text[1:].startswith(_FORMULA_START):
        return text[1:]
    return text


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; a clear error for spreadsheets saved in another encoding."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise CampaignError(f"{path}: the file is UTF-16 text; expected a UTF-8 CSV file"
                            " (in a spreadsheet: save as 'CSV UTF-8')")
    try:
        return raw.decode("utf-8-sig")  # a UTF-8 byte-order mark is fine
    except UnicodeDecodeError as e:
        raise CampaignError(
            f"{path}: byte 0x{raw[e.start]:02x} at offset {e.start} is not UTF-8;"
            " expected a UTF-8 CSV file (in a spreadsheet: save as 'CSV UTF-8')") from None


def _read_rows(path: Path, expected: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) of every non-blank row of ``path``."""
    try:
        size = path.stat().st_size
        if size > MAX_RESULTS_BYTES:
            raise CampaignError(
                f"results: {path} is {size / 2**20:.0f} MiB; expected a results file of at"
                f" most {MAX_RESULTS_BYTES // 2**20} MiB (one row per trial)")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise CampaignError(f"results: file not found: {path}") from None
    except OSError as e:
        raise CampaignError(f"results: cannot read {path}: {e}") from None
    text = _decode(path, raw)
    if not text.strip():
        raise CampaignError(f"{path}: the file is empty; expected a header row ({expected})"
                            " and one row per trial")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[tuple[int, list[str]]] = []
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                rows.append((reader.line_num, fields))
    except csv.Error as e:
        raise CampaignError(f"{path}:{reader.line_num}: not valid CSV ({e});"
                            f" expected comma-separated columns ({expected})") from None
    (_, header), body = rows[0], rows[1:]
    return [from_spreadsheet(h.strip()) for h in header], body


_UNIT_SUFFIX = re.compile(r"^(?P<name>.*?)\s*\[(?P<unit>[^\[\]]*)\]$")


def _strip_units(path: Path, header: list[str], campaign) -> list[str]:
    """Column names without the ``[unit]`` suffix ``workbench ask`` writes; a unit that
    differs from the parameter's or outcome's unit is an error (a value in the wrong
    unit must not be recorded)."""
    units = campaign.space.flat_units()
    units.update({o.name: o.unit for o in campaign.outcomes})
    out = []
    for h in header:
        m = _UNIT_SUFFIX.match(h)
        if m is None:
            out.append(h)
            continue
        name, unit = m.group("name").strip(), m.group("unit").strip()
        if name in units and (units[name] or "") != unit:
            raise CampaignError(f"{path}:1: column {h!r} gives unit {unit!r}; expected"
                                f" {units[name] or 'no unit'!r} for {name!r}")
        out.append(name)
    return out


def _check_header(path: Path, header: list[str], campaign, expected: str,
                  written: list[str]) -> None:
    """Refuse a header that cannot be read; ``header`` is without units, ``written`` as
    in the file, which is what messages quote (``temperature [degC]``)."""
    objectives = [o.name for o in campaign.outcomes]
    if len(header) == 1:
        for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars")):
            if sep in header[0]:
                raise CampaignError(
                    f"{path}:1: header {header[0]!r} is one column separated by {name};"
                    f" expected comma-separated columns ({expected})")
    repeated = list(dict.fromkeys(w for h, w in zip(header, written) if header.count(h) > 1))
    if repeated:
        raise CampaignError(f"{path}:1: column(s) {repeated} appear more than once;"
                            " expected each column once")
    if "trial_id" not in header:
        raise CampaignError(f"{path}:1: header has no trial_id column; got {written};"
                            f" expected {expected}")
    missing = [o for o in objectives if o not in header]
    if missing and "failure_reason" not in header and "status" not in header:
        raise CampaignError(f"{path}:1: header lacks objective column(s) {missing};"
                            f" expected {expected}")
    known = {"trial_id", "status", "failure_reason", "batch", "strategy", "asked_at", "told_at",
             *objectives, *(o + SEM_SUFFIX for o in objectives),
             *campaign.space.flat_names, *IDENTITY_COLUMNS}
    unknown = [w for h, w in zip(header, written)
               if h not in known and not h.startswith(_INFO_PREFIXES)]
    if unknown:
        raise CampaignError(f"{path}:1: unknown column(s) {unknown}; expected {expected},"
                            " optional failure_reason and parameters")
    if "campaign_id" not in header and not set(header) & set(campaign.space.flat_names):
        raise CampaignError(
            f"{path}:1: header {header} names no campaign and no parameters; expected the"
            " campaign_id column that `workbench ask -o` writes (or the parameter columns),"
            " so that results of another campaign are never recorded here")


def _check_identity(path: Path, line: int, row: dict, campaign) -> None:
    """The row's ``campaign`` / ``campaign_id`` cells, where the file has them, must be
    those of ``campaign``."""
    where = f" of {campaign.store.path}" if campaign.store is not None else ""
    for column, mine in (("campaign", campaign.name), ("campaign_id", campaign.campaign_id)):
        if column in row and row[column] != mine:
            raise CampaignError(
                f"{path}:{line}: {column}: got {row[column]!r}; expected {mine!r} (campaign"
                f" {campaign.name!r}{where}): the file was written for another campaign;"
                " nothing was recorded")


def _trial_id(path: Path, line: int, raw: str, trials: dict, campaign) -> int:
    span = f"0 to {len(trials) - 1}" if trials else "none yet"
    if not raw:
        raise CampaignError(f"{path}:{line}: trial_id: empty; expected an integer trial id")
    try:
        if not raw.isascii() or not raw.lstrip("+-").isdigit():
            raise ValueError(raw)
        trial_id = int(raw)
    except ValueError:
        raise CampaignError(f"{path}:{line}: trial_id: got {raw!r}; expected an"
                            " integer trial id") from None
    if trial_id < 0:
        raise CampaignError(f"{path}:{line}: trial_id: got {trial_id}; expected a trial id"
                            f" of campaign {campaign.name!r} ({span})")
    if trial_id not in trials:
        raise CampaignError(f"{path}:{line}: trial_id: got {trial_id}; no such trial"
                            f" in campaign {campaign.name!r} (ids: {span})")
    return trial_id


def _outcome_problem(o: str, text: str) -> tuple[float | None, str | None]:
    """(value, None) for a usable cell, else (None, what is wrong with it)."""
    try:
        value = parse_number(text)
    except ValueError:
        return None, f"{o}: got {text!r}; expected a number (ASCII digits, e.g. 71.2 or 1e-3)"
    if not math.isfinite(value):
        return None, f"{o}: got {text!r}; expected a finite number"
    return value, None


def read_results(path: Path, campaign, actual: bool = False) -> list[ResultRow]:
    """Parse and check ``path`` against ``campaign``; raise naming line and column.

    Returns a ResultRow per row to tell. Under ``bad_observations: fail`` a
    row with an unusable outcome is returned as a failure whose reason starts
    with ``bad observation:``. actual: accept parameter values that differ from
    the proposal (in bounds, of the right type) as the setpoints actually run;
    without it such a value is an error.
    """
    path = Path(path)
    objectives = [o.name for o in campaign.outcomes]
    expected = ", ".join(["trial_id", *objectives])
    written, body = _read_rows(path, expected)
    header = _strip_units(path, written, campaign)
    _check_header(path, header, campaign, expected, written)
    if not body:
        raise CampaignError(f"{path}: no rows below the header; expected one row per trial"
                            f" ({expected})")
    policy = campaign.spec.bad_observations
    trials = {t.id: t for t in campaign.trials}
    seen: dict[int, int] = {}
    out: list[ResultRow] = []
    for line, fields in body:
        if len(fields) != len(header):
            raise CampaignError(f"{path}:{line}: {len(fields)} fields; expected"
                                f" {len(header)}, one per header column ({', '.join(header)})")
        row = {h: from_spreadsheet(f.strip()) for h, f in zip(header, fields)}
        trial_id = _trial_id(path, line, row["trial_id"], trials, campaign)
        if trial_id in seen:
            raise CampaignError(f"{path}:{line}: trial_id {trial_id} appears again"
                                f" (first on line {seen[trial_id]}); expected one row per trial")
        seen[trial_id] = line
        _check_identity(path, line, row, campaign)
        setpoints = _setpoints(path, line, row, trials[trial_id], campaign, actual)
        status = row.get("status", "").lower()
        if status not in _STATUSES:
            raise CampaignError(f"{path}:{line}: status: got {row['status']!r}; expected"
                                " failed (with an optional failure_reason) or empty")
        reason = row.get("failure_reason", "")
        if not reason and status == "failed":
            reason = "failed (no reason given)"
        if reason:
            out.append(ResultRow(trial_id, None, reason, setpoints))
            continue
        cells = {o: row.get(o, "") for o in objectives}
        if not any(cells.values()):
            continue  # not measured yet
        outcomes, problems = {}, []
        for o, text in cells.items():
            if not text:
                problems.append(f"{o}: empty while other outcomes are given; expected a number"
                                " or a failure_reason")
                continue
            value, problem = _outcome_problem(o, text)
            sem_text = row.get(o + SEM_SUFFIX, "")
            if not problem and sem_text:
                sem, problem = _outcome_problem(o + SEM_SUFFIX, sem_text)
                if not problem and sem < 0:
                    problem = f"{o}{SEM_SUFFIX}: got {sem_text!r}; expected a number >= 0"
                value = value if problem else (value, sem)
            if problem:
                problems.append(problem)
            else:
                outcomes[o] = value
        if problems and policy == "error":
            raise CampaignError(f"{path}:{line}: {'; '.join(problems)}"
                                " (bad_observations: error; nothing was recorded)")
        if problems:
            out.append(ResultRow(trial_id, None, "bad observation: " + "; ".join(problems),
                                 setpoints))
        else:
            out.append(ResultRow(trial_id, outcomes, None, setpoints))
    for trial_id, outcomes, reason, _ in out:
        trial = trials[trial_id]
        means = None if outcomes is None else \
            {k: v[0] if isinstance(v, tuple) else v for k, v in outcomes.items()}
        if trial.status == "completed" and means != trial.outcomes:
            raise CampaignError(f"{path}:{seen[trial_id]}: trial {trial_id} was already told"
                                f" {trial.outcomes}; got {outcomes or reason!r}")
        if trial.status == "failed" and reason is None:
            raise CampaignError(f"{path}:{seen[trial_id]}: trial {trial_id} is recorded as"
                                f" failed ({trial.failure_reason}); expected a pending trial")
    return out


def _setpoints(path: Path, line: int, row: dict, trial, campaign, actual: bool) -> dict:
    """The row's parameter values that differ from the trial's (beyond half a step of
    the parameter's precision), checked as a proposal would be; ``{}`` when they match.
    Without ``actual`` a differing value is an error that names the option."""
    space = campaign.space
    stored = space.flatten(trial.params)
    owner = {n: p for p in space.parameters
             for n in (p.column_names() if isinstance(p, Composition) else [p.name])}
    given: dict[str, Any] = {}
    for name in space.flat_names:
        text = row.get(name, "")
        if not text:
            continue
        value = text if isinstance(stored[name], str) else _number(path, line, name, text)
        if same_value(owner[name], value, stored[name]):
            continue
        tol = setpoint_tolerance(owner[name])
        within = f" (within {tol:g}, half its precision)" if tol else ""
        if trial.status != "pending":
            raise CampaignError(
                f"{path}:{line}: {name}: got {text}, but trial {trial.id} is recorded as"
                f" {trial.status} at {stored[name]}; expected the recorded value{within}")
        if not actual:
            raise CampaignError(
                f"{path}:{line}: {name}: got {text}, but trial proposed {stored[name]};"
                f" expected the proposed value{within}, or tell with --actual to record"
                f" {text} as the setpoint actually run")
        given[name] = value
    changed = {}
    for p in space.parameters:
        columns = p.column_names() if isinstance(p, Composition) else [p.name]
        if not any(n in given for n in columns):
            continue
        if isinstance(p, Composition):
            value = {e: given.get(n, stored[n]) for e, n in zip(p.elements, columns)}
        else:
            value = given[p.name]
        try:
            changed[p.name] = p.validate_value(value)
        except CampaignError as e:
            raise CampaignError(f"{path}:{line}: actual setpoint refused: {e}") from None
    return changed


def _number(path: Path, line: int, name: str, text: str) -> float:
    try:
        value = parse_number(text)
    except ValueError:
        raise CampaignError(f"{path}:{line}: {name}: got {text!r}; expected a number") from None
    if not math.isfinite(value):
        raise CampaignError(f"{path}:{line}: {name}: got {text!r}; expected a finite number")
    return value
