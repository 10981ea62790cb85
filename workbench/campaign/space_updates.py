"""A living search space: updates a lab makes as it learns, as journal events.

A ``space`` event carries the new definitions of the parameters it changes or adds
(JSON, as the spec stores them), the values it fixes or releases, the value past
trials had for each added parameter, a reason and a time. Replaying the events in
order on top of the spec's space rebuilds the current space; the spec file is never
rewritten. Trials outside a narrowed range stay in the record and in the model (their
encoded values simply lie outside ``[0, 1]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from pydantic import TypeAdapter, ValidationError

from workbench.errors import CampaignError
from workbench.parameters import Categorical, Composition, Parameter
from workbench.record import now
from workbench.space import SearchSpace

if TYPE_CHECKING:
    from workbench.campaign.journal import Journal
    from workbench.campaign.proposing import Proposer

__all__ = ["SPACE_UPDATES_ATTR", "apply_space_event", "parse_parameter", "follow_space",
           "space_event", "update_space"]

# The record attribute holding the space events folded into a snapshot (JSON list).
SPACE_UPDATES_ATTR = "space_updates"

_PARAMETER: TypeAdapter = TypeAdapter(Parameter)


def parse_parameter(value: Any, where: str = "parameters") -> Any:
    """A parameter from a ``wb.Continuous``-like object or its spec dict (validated by the
    spec's parameter models, so messages name the field)."""
    if isinstance(value, dict):
        try:
            return _PARAMETER.validate_python(value)
        except ValidationError as e:
            err = e.errors()[0]
            tags = ("continuous", "integer", "categorical", "composition")  # union tags
            loc = "".join(f".{p}" for p in err["loc"] if p not in tags)
            raise CampaignError(f"{where}{loc}: {err['msg']} (got {value!r})") from None
    try:
        return _PARAMETER.validate_python(value)
    except ValidationError:
        raise CampaignError(f"{where}: got {value!r}; expected wb.Continuous, wb.Integer,"
                            " wb.Categorical, wb.Composition or a parameter dict") from None


def apply_space_event(space: SearchSpace, event: dict) -> SearchSpace:
    """The space after ``event``: changed parameters replaced in place by name, added
    ones appended, the constraints kept."""
    params = list(space.parameters)
    index = {p.name: i for i, p in enumerate(params)}
    for d in event.get("parameters", []):
        p = _PARAMETER.validate_python(d)
        if p.name in index:
            params[index[p.name]] = p
        else:
            index[p.name] = len(params)
            params.append(p)
    return SearchSpace(params, list(space.constraints))


def _check_change(old: Any, new: Any, trials: list) -> None:
    """A parameter may change its range or levels, never its type; data stay valid."""
    if old.type != new.type:
        raise CampaignError(f"parameters.{new.name}.type: got {new.type!r}; the campaign's"
                            f" {new.name!r} is {old.type} (a parameter's type cannot change;"
                            " add a parameter under a new name instead)")
    if isinstance(new, Composition) and list(new.elements) != list(old.elements):
        raise CampaignError(f"parameters.{new.name}.elements: got {list(new.elements)}; a"
                            f" composition keeps its elements {list(old.elements)}")
    if isinstance(new, Categorical):
        used = sorted({str(t.params[new.name]) for t in trials} - set(new.choices))
        if used:
            raise CampaignError(f"parameters.{new.name}.choices: got {new.choices}; trials"
                                f" were run at {used}, which must stay levels (the model"
                                " keeps every trial); fix the parameter to stop proposing"
                                " a level")
    if getattr(old, "log", False) != getattr(new, "log", False):
        raise CampaignError(f"parameters.{new.name}.log: got {new.log}; the campaign's"
                            f" {new.name!r} has log={old.log} (the encoding of past trials"
                            " would change meaning)")


def space_event(space: SearchSpace, trials: list, fixed: dict[str, Any],
                parameters: Iterable[Any], fix: dict[str, Any] | None,
                add: dict[str, Any] | None, reason: str, context: Iterable[str] = ()) -> dict:
    """The journal event for a space update, after checking it (nothing is written here).

    space: the current space; trials: every trial; fixed: values fixed so far;
    parameters: changed or new parameters; fix: name -> value to hold in proposals
    (None releases it); add: new parameter -> the value past trials had.
    """
    new = [parse_parameter(p, f"parameters[{i}]") for i, p in enumerate(parameters)]
    fix, add = dict(fix or {}), dict(add or {})
    if not (new or fix):
        raise CampaignError("update_space: got no parameters and no fix; expected at least"
                            " one change")
    names = [p.name for p in new]
    if len(set(names)) != len(names):
        raise CampaignError(f"parameters: got {names}; expected each parameter once")
    for p in new:
        if p.name in space.names:
            _check_change(space[p.name], p, trials)
            if p.name in add:
                raise CampaignError(f"add.{p.name}: {p.name!r} is already a parameter; add"
                                    " takes the past value of a new parameter only")
        elif trials and p.name not in add:
            raise CampaignError(f"add.{p.name}: missing; {len(trials)} trials were run"
                                f" before {p.name!r} existed, so give the value they had"
                                f" (add={{{p.name!r}: value}})")
    unknown = sorted(set(add) - set(names))
    if unknown:
        raise CampaignError(f"add: got {unknown}; expected names of new parameters among"
                            f" {[n for n in names if n not in space.names]}")
    event: dict[str, Any] = {"op": "space",
                             "parameters": [p.model_dump(mode="json") for p in new]}
    updated = apply_space_event(space, event)
    updated.domain()  # constraints that leave no valid point are refused here
    event["added"] = {n: _valid(updated[n], v, f"add.{n}") for n, v in add.items()}
    checked: dict[str, Any] = {}
    for name, value in fix.items():
        if name not in updated.names:
            raise CampaignError(f"fix: got {name!r}; expected a parameter from"
                                f" {updated.names}")
        if name in context:
            raise CampaignError(f"fix: got {name!r}, a context parameter (given to every"
                                " ask); expected a parameter the campaign chooses")
        if value is None and name not in fixed:
            raise CampaignError(f"fix.{name}: got None (release), but {name!r} is not fixed")
        checked[name] = None if value is None else _valid(updated[name], value, f"fix.{name}")
    _check_fixed_feasible(updated, {**fixed, **checked})
    event["fixed"] = checked
    event["reason"] = str(reason or "").strip()
    event["at"] = now().isoformat()
    return event


def _valid(p: Any, value: Any, where: str) -> Any:
    """``value`` checked by parameter ``p``, the error naming ``where`` it was given."""
    try:
        return p.validate_value(value)
    except CampaignError as e:
        raise CampaignError(f"{where}: {e}") from None


def _check_fixed_feasible(space: SearchSpace, fixed: dict[str, Any]) -> None:
    """Refuse fixed values that leave the other parameters no valid point."""
    held = {k: v for k, v in fixed.items() if v is not None}
    if not held:
        return
    import numpy as np

    from active_learning import reduce_domain

    middle = space.decode(np.full((1, space.dim), 0.5))[0]
    z = space.encode([{**middle, **held}])[0]
    columns = {j: float(z[j]) for n in held for j in space.columns[n]}
    try:
        reduce_domain(space.domain(), columns)
    except ValueError as e:
        raise CampaignError(f"fix: got {held}; the constraints leave no valid point with"
                            f" these values ({e})") from None


def update_space(campaign: Any, journal: "Journal", proposer: "Proposer",
                 parameters: Iterable[Any], fix: dict | None, add: dict | None,
                 reason: str) -> SearchSpace:
    """Check a space update against the current record and write it ahead (under the
    store's lock), then let the campaign follow; nothing is written when the check or
    the new problem fails. Returns the updated space."""
    with journal.transaction():
        event = space_event(journal.space, journal.trials, journal.fixed, parameters, fix,
                            add, reason, journal.spec.context)
        space = apply_space_event(journal.space, event)
        spec = journal.spec.model_copy(update={"space": list(space.parameters)})
        type(proposer)(spec, space, proposer.base_dir)  # the engine accepts the encoding
        journal.record([event])
    follow_space(campaign, journal, proposer)
    return campaign.space


def follow_space(campaign: Any, journal: "Journal", proposer: "Proposer") -> None:
    """Give the campaign the journal's space after a space update (made in this process,
    replayed from another, or read on reopening): the proposer resolves its problem
    again, so the next model is fitted on the new encoding."""
    if proposer.space is not journal.space:
        campaign.spec, campaign.space = journal.current_spec(), journal.space
        proposer.rebase(campaign.spec, campaign.space, journal.fixed)
