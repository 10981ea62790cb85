"""What a ``tell`` may report: outcome values checked before anything is recorded."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from workbench.errors import CampaignError

__all__ = ["check_outcomes", "short_repr"]


def short_repr(value: Any, limit: int = 80) -> str:
    """repr of a user value, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_outcomes(values: Any, names: list[str]) -> tuple[dict[str, float], str | None]:
    """Check what a tell reports against the outcome ``names``: (the usable outcomes by
    name, the problem or None).

    An unknown outcome name raises at once: it is the caller's mistake
    (a typo), and there is nothing sensible to record. A bad observation
    (a missing outcome, NaN, infinity, a value that is not a number) is
    returned as a problem, which the spec's ``bad_observations`` policy
    turns into an error or a recorded failure.
    """
    if isinstance(values, (int, float, np.number)) and not isinstance(values, bool):
        if len(names) != 1:
            return {}, (f"outcomes: got the single number {float(values)!r};"
                        f" expected a dict with keys {names}")
        values = {names[0]: values}
    if not isinstance(values, dict):
        return {}, (f"outcomes: got {type(values).__name__} {short_repr(values)};"
                    f" expected a dict with keys {names}"
                    + (" (or one number)" if len(names) == 1 else ""))
    unknown = [k for k in values if k not in names]
    missing = [k for k in names if k not in values]
    if unknown:
        raise CampaignError(
            f"outcomes: missing {missing}, unknown {unknown}; expected exactly {names}"
        )
    problems_found = [f"outcomes: missing {missing}; expected exactly {names}"] \
        if missing else []
    out = {}
    for k in names:
        if k not in values:
            continue
        v = values[k]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            problems_found.append(f"outcomes.{k}: got {short_repr(v)}; expected a number")
        elif not math.isfinite(float(v)):
            problems_found.append(f"outcomes.{k}: got {float(v)!r} (not finite);"
                                  " expected a finite number")
        else:
            out[k] = float(v)
    return out, "; ".join(problems_found) or None
