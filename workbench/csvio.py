"""Results CSV files for engineers: read, check every row, then hand over.

A results file has a ``trial_id`` column, one column per objective, and
optionally ``failure_reason`` (non-empty marks the trial failed) or
``status`` (``failed``). Parameter columns, if present, must match what was
proposed. Rows whose outcomes are all empty are skipped: still running.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from workbench.errors import CampaignError


def _number(text: str) -> float:
    return float(text.strip())


def read_results(path: Path, campaign) -> list[tuple[int, dict | None, str | None]]:
    """Parse and check ``path`` against ``campaign``; raise naming line and column.

    Returns (trial_id, outcomes or None, failure reason or None) per row to tell.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except FileNotFoundError:
        raise CampaignError(f"results: file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CampaignError(f"results: cannot read {path}: {e}") from None
    objectives = [o.name for o in campaign.objectives]
    if "trial_id" not in header:
        raise CampaignError(f"{path}:1: header has no trial_id column; got {header}")
    missing = [o for o in objectives if o not in header]
    if missing and "failure_reason" not in header and "status" not in header:
        raise CampaignError(f"{path}:1: header lacks objective column(s) {missing};"
                            f" expected trial_id, {', '.join(objectives)}")
    known = {"trial_id", "status", "failure_reason", "batch", "strategy", *objectives,
             *campaign.space.names}
    unknown = [h for h in header if h not in known and not h.startswith("predicted_")]
    if unknown:
        raise CampaignError(f"{path}:1: unknown column(s) {unknown}; expected trial_id,"
                            f" {', '.join(objectives)}, optional failure_reason and parameters")
    trials = {t.id: t for t in campaign.trials}
    seen: dict[int, int] = {}
    out: list[tuple[int, dict | None, str | None]] = []
    for line, row in enumerate(rows, start=2):
        raw_id = (row.get("trial_id") or "").strip()
        try:
            trial_id = int(raw_id)
        except ValueError:
            raise CampaignError(f"{path}:{line}: trial_id: got {raw_id!r}; expected an"
                                " integer trial id") from None
        if trial_id not in trials:
            raise CampaignError(f"{path}:{line}: trial_id: got {trial_id}; no such trial"
                                f" in campaign {campaign.name!r}")
        if trial_id in seen:
            raise CampaignError(f"{path}:{line}: trial_id {trial_id} appears again"
                                f" (first on line {seen[trial_id]}); expected one row per trial")
        seen[trial_id] = line
        trial = trials[trial_id]
        for name in campaign.space.names:
            if name in row and (row[name] or "").strip():
                _check_param(path, line, name, row[name], trial.params[name])
        reason = (row.get("failure_reason") or "").strip()
        if not reason and (row.get("status") or "").strip().lower() == "failed":
            reason = "failed (no reason given)"
        if reason:
            out.append((trial_id, None, reason))
            continue
        cells = {o: (row.get(o) or "").strip() for o in objectives}
        if not any(cells.values()):
            continue  # not measured yet
        outcomes = {}
        for o, text in cells.items():
            if not text:
                raise CampaignError(f"{path}:{line}: {o}: empty while other outcomes are"
                                    " given; expected a number or a failure_reason")
            try:
                outcomes[o] = _number(text)
            except ValueError:
                raise CampaignError(f"{path}:{line}: {o}: got {text!r}; expected a number")\
                    from None
        out.append((trial_id, outcomes, None))
    for trial_id, outcomes, reason in out:
        trial = trials[trial_id]
        if trial.status == "completed" and outcomes != trial.outcomes:
            raise CampaignError(f"{path}:{seen[trial_id]}: trial {trial_id} was already told"
                                f" {trial.outcomes}; got {outcomes or reason!r}")
        if trial.status == "failed" and reason is None:
            raise CampaignError(f"{path}:{seen[trial_id]}: trial {trial_id} is recorded as"
                                f" failed ({trial.failure_reason}); expected a pending trial")
    return out


def _check_param(path: Path, line: int, name: str, text: str, proposed) -> None:
    if isinstance(proposed, str):
        same = text.strip() == proposed
    else:
        try:
            value = float(text)
        except ValueError:
            raise CampaignError(f"{path}:{line}: {name}: got {text!r}; expected a number")\
                from None
        same = math.isclose(value, float(proposed), rel_tol=1e-9, abs_tol=1e-12)
    if not same:
        raise CampaignError(f"{path}:{line}: {name}: got {text.strip()}, but trial proposed"
                            f" {proposed}; results must be for the proposed conditions")
