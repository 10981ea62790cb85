"""What a ``tell`` may report: outcome values, and the parameter values actually run,
checked before anything is recorded."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import CampaignError
from workbench.parameters import same_setpoint

if TYPE_CHECKING:
    from workbench.space import SearchSpace

__all__ = ["check_actual", "check_outcomes", "short_repr"]


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


def check_actual(space: "SearchSpace", params: dict[str, Any],
                 actual: Any) -> dict[str, Any]:
    """The actual setpoints a tell reports (``{"temperature": 92.0}``, any subset of the
    parameters), checked like proposals are: in bounds, of the right type, a listed
    level. Returns those that differ from ``params`` beyond the parameter's
    ``precision`` / 2 (``{}`` for None); a value within it counts as ``params``' own.
    Linear constraints are not checked: the record keeps what was run."""
    if actual is None:
        return {}
    if not isinstance(actual, dict):
        raise CampaignError(f"actual: got {type(actual).__name__} {short_repr(actual)};"
                            f" expected a dict of parameter values by name ({space.names})")
    unknown = [k for k in actual if k not in space.names]
    if unknown:
        raise CampaignError(f"actual: unknown parameter(s) {unknown}; expected names"
                            f" among {space.names}")
    changed = {}
    for name, value in actual.items():
        p = space[name]
        try:
            value = p.validate_value(value)
        except CampaignError as e:
            raise CampaignError(f"actual: {e}") from None
        if not same_setpoint(p, value, params[name]):
            changed[name] = value
    return changed
