"""What a ``tell`` may report: outcome values (each a number, a ``(mean, standard
error)`` pair or a list of replicates), and the parameter values actually run,
checked before anything is recorded."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.errors import CampaignError
from workbench.parameters import same_setpoint
from workbench.record import COMPLETED, FAILED, Trial, now

if TYPE_CHECKING:
    from workbench.campaign.journal import Journal
    from workbench.space import SearchSpace

__all__ = ["check_actual", "check_observation", "check_outcomes", "record_failed",
           "record_tell", "replicate_summary", "short_repr"]


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


def replicate_summary(values: list[float]) -> tuple[float, float | None]:
    """Mean and standard error of the mean (sample standard deviation / sqrt(n)) of
    replicate measurements; no standard error for a single one."""
    arr = np.asarray(values, dtype=np.float64)
    if len(arr) < 2:
        return float(arr[0]), None
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(len(arr)))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, bool) \
        and math.isfinite(float(v))


def _uncertain(k: str, v: Any) -> tuple[Any, float | None, list[float] | None, str | None]:
    """One outcome as told: (mean or the value as given, standard error, replicates,
    problem). A tuple is (mean, standard error); a list holds replicates."""
    if isinstance(v, tuple):
        if len(v) != 2 or not all(_is_number(x) for x in v) or float(v[1]) < 0:
            return None, None, None, (f"outcomes.{k}: got {short_repr(v)}; expected (mean,"
                                      " standard error) with finite numbers, error >= 0")
        return float(v[0]), float(v[1]), None, None
    if isinstance(v, (list, np.ndarray)):
        items = list(np.asarray(v, dtype=object).ravel())
        if not items or not all(_is_number(x) for x in items):
            return None, None, None, (f"outcomes.{k}: got {short_repr(v)}; expected a"
                                      " non-empty list of finite replicate values")
        reps = [float(x) for x in items]
        mean, sem = replicate_summary(reps)
        return mean, sem, reps, None
    return v, None, None, None


def check_observation(values: Any, names: list[str]
                      ) -> tuple[dict[str, float], dict[str, dict], str | None]:
    """``check_outcomes`` for outcomes that may carry their uncertainty: (the means by
    name, the journal's extra fields ``{"sem": {...}, "replicates": {...}}`` (only
    those told), the problem or None). ``{"yield": (71.2, 1.5)}`` tells a mean and
    its standard error; ``{"yield": [70.1, 72.3, 71.0]}`` replicates, whose mean and
    standard error are recorded with them."""
    if not isinstance(values, dict):  # one number, or a mistake check_outcomes names
        means, problem = check_outcomes(values, names)
        return means, {}, problem
    plain, sem, reps, problems = {}, {}, {}, []
    for k, v in values.items():
        plain[k], s, r, problem = _uncertain(k, v)
        if problem:  # reported here; a placeholder keeps check_outcomes from repeating it
            problems.append(problem)
            plain[k] = 0.0
        if s is not None:
            sem[k] = s
        if r is not None:
            reps[k] = r
    means, problem = check_outcomes(plain, names)
    problem = "; ".join(problems + ([problem] if problem else [])) or None
    if problem:  # recorded as a failure, if at all: no uncertainty to keep
        return means, {}, problem
    extra = {key: d for key, d in (("sem", sem), ("replicates", reps)) if d}
    return means, extra, None


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


def record_tell(journal: "Journal", space: "SearchSpace", policy: str, names: list[str],
                trial_id: Any, outcomes: Any,
                actual: dict[str, Any] | None) -> tuple[Trial, str | None, bool]:
    """``Campaign.tell``'s check and write, under the store's lock: (the trial, the bad
    observation's problem or None, whether anything was recorded). ``policy``: the
    spec's ``bad_observations`` ("error" raises, "fail" records a failure); ``names``:
    the outcomes a tell reports. Telling the same values again records nothing."""
    values, told, problem = check_observation(outcomes, names)
    record_failure = problem is not None and policy == "fail"
    reason = f"bad observation: {problem}"
    with journal.transaction():
        trial = journal.get(trial_id)
        changed = check_actual(space, trial.params, actual)
        if trial.status == COMPLETED:
            if problem is None and (trial.outcomes, trial.sem) == (
                    values, told.get("sem", {})) and not changed:
                return trial, None, False
            at = f" at {trial.params}" if changed else ""
            raise CampaignError(
                f"trial {trial.id} was already told {trial.outcomes}{at};"
                f" got {values if problem is None else short_repr(outcomes)}"
                + (f" at {changed}" if changed else ""))
        if trial.status == FAILED:
            if record_failure and trial.failure_reason == reason and not changed:
                return trial, problem, False  # the same bad observation, told again
            raise CampaignError(
                f"trial {trial.id} is recorded as failed ({trial.failure_reason});"
                " expected a pending trial")
        if problem is not None and not record_failure:
            raise CampaignError(f"trial {trial.id}: {problem} (bad_observations: error)")
        # Recorded under the same lock as the check: no other process can tell this
        # trial in between.
        extra = {"actual": changed, **told} if changed else told
        if problem is None:
            journal.record([{"op": "tell", "id": trial.id, "outcomes": values,
                             "at": now().isoformat(), **extra}])
        else:
            journal.record([{"op": "fail", "id": trial.id, "reason": reason,
                             "at": now().isoformat(), **extra}])
        return journal.trials[trial.id], problem, True


def record_failed(journal: "Journal", space: "SearchSpace", trial_id: Any, reason: str,
                  actual: dict[str, Any] | None) -> tuple[Trial, bool]:
    """``Campaign.tell_failed``'s check and write, under the store's lock: (the trial,
    whether anything was recorded). The same failure told again records nothing."""
    reason = str(reason).strip() or "failed"
    with journal.transaction():
        trial = journal.get(trial_id)
        changed = check_actual(space, trial.params, actual)
        if trial.status == FAILED and not changed:
            return trial, False
        if trial.status == FAILED:
            raise CampaignError(f"trial {trial.id} was already recorded as failed at"
                                f" {trial.params}; got {changed}")
        if trial.status == COMPLETED:
            raise CampaignError(
                f"trial {trial.id} is already completed with {trial.outcomes};"
                " expected a pending trial")
        journal.record([{"op": "fail", "id": trial.id, "reason": reason,
                         "at": now().isoformat(), **({"actual": changed} if changed else {})}])
        return journal.trials[trial.id], True
