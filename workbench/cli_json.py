"""What ``workbench COMMAND --json`` prints: one JSON document per call, with a schema.

Scripts, lab schedulers and LLM agents drive the command line and parse its output, so
each command's document is a pydantic model here, named ``workbench.COMMAND/VERSION`` in
its ``schema`` field. The models are the contract: every document is built through its
model (so it always matches), and ``workbench schema --output COMMAND`` prints the
model's JSON Schema. A field is only ever added within a version; renaming or removing
one, or changing its meaning, makes a new version.

With ``--json``, stdout holds that one document and nothing else (progress, warnings and
messages go to stderr). A failure prints a ``workbench.error/1`` document on stdout
instead, with the exit code the command has without ``--json`` (its message also goes
to stderr, as always); a usage error (an unknown option, a missing argument) too.

This module imports pydantic and the standard library only: ``status``, ``tell`` and
``validate`` with ``--json`` stay as light as without it.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

# The JSON Schema dialect of every schema printed here (the spec's and the outputs').
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The version of every output document below; see the module docstring for when it moves.
OUTPUT_VERSION = 1
# An error message that starts with an option or a spec field path names it.
_FIELD_PREFIX = re.compile(r"^(--[a-z][a-z-]*|[A-Za-z_][\w]*(?:\[\d+\]|\.[\w]+)*): ")


def schema_id(command: str) -> str:
    """The ``schema`` value of a command's document, e.g. ``workbench.status/1``."""
    return f"workbench.{command}/{OUTPUT_VERSION}"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PredictionOut(_Doc):
    """The surrogate's belief about one objective when the trial was proposed
    (null where the model gave no finite number)."""

    mean: Optional[float]
    std: Optional[float]


class TrialOut(_Doc):
    """One trial. Parameters in user units; a composition as {element: fraction};
    categorical choices as their labels."""

    id: int
    status: Literal["pending", "completed", "failed"]
    params: dict[str, Any] = Field(description="the values the experiment was run at")
    proposed: Optional[dict[str, Any]] = Field(
        default=None, description="what ask proposed, only where actual setpoints differ")
    outcomes: dict[str, Optional[float]] = Field(
        description="observed values; empty until told")
    prediction: dict[str, PredictionOut] = Field(
        description="per objective, the model's mean and std at proposal; empty for"
        " initial-design trials")
    strategy: str = Field(description="what proposed it: an initial design or acquisition")
    batch: int
    acquisition_value: Optional[float] = None
    asked_at: Optional[str] = Field(description="ISO 8601 with UTC offset")
    told_at: Optional[str] = Field(description="ISO 8601 with UTC offset; null while pending")
    failure_reason: Optional[str] = None


class TrialDetailOut(TrialOut):
    """One trial in full: also why it was proposed (model, data hash, versions)."""

    audit: Optional[dict[str, Any]] = Field(
        default=None, description="the proposal's audit record, as the journal holds it")


class ObjectiveOut(_Doc):
    """An objective and its direction."""

    name: str
    direction: str


class CountsOut(_Doc):
    """How many trials a campaign holds, by status."""

    total: int
    pending: int
    completed: int
    failed: int


class CampaignOut(_Doc):
    """Who a campaign is, where it lives and how far it got."""

    name: str
    partner: str
    campaign_id: str
    objectives: list[ObjectiveOut]
    outcomes: list[str] = Field(description="every outcome a tell records: objectives and"
                                " the outcomes that constraints bound")
    store: Optional[str] = Field(description="the campaign record (Zarr folder)")
    tracking: Optional[str] = Field(description="the MLflow URI, or null when off")
    counts: CountsOut
    best: Optional[TrialOut] = Field(description="the best feasible completed trial so far")


class ValidateOut(_Doc):
    """``workbench validate --json``: the spec is valid (invalid: an error document)."""

    schema_: Literal["workbench.validate/1"] = Field(alias="schema")
    valid: Literal[True]
    spec: str = Field(description="the YAML file read")
    name: str
    partner: str
    parameters: list[str] = Field(description="parameter names, in spec order")
    objectives: list[ObjectiveOut]
    budget: Optional[int]
    store: Optional[str]
    tracking: Optional[str]


class RunOut(_Doc):
    """``workbench run --json``: the campaign after the loop, and the trials it added."""

    schema_: Literal["workbench.run/1"] = Field(alias="schema")
    campaign: CampaignOut
    budget: int
    trials: list[TrialOut] = Field(description="the trials this call evaluated")


class AskOut(_Doc):
    """``workbench ask --json``: the proposals, now pending in the store."""

    schema_: Literal["workbench.ask/1"] = Field(alias="schema")
    campaign: CampaignOut
    trials: list[TrialOut]
    output: Optional[str] = Field(description="the proposals CSV written, if -o was given")


class TellOut(_Doc):
    """``workbench tell --json``: what the results file recorded."""

    schema_: Literal["workbench.tell/1"] = Field(alias="schema")
    campaign: CampaignOut
    results: str = Field(description="the results CSV read")
    recorded: int = Field(description="results recorded by this call")
    failed: int = Field(description="failures recorded by this call")
    unchanged: int = Field(description="rows for trials already recorded, left as they were")
    trials: list[TrialOut] = Field(description="the trials this call recorded")


class StatusOut(_Doc):
    """``workbench status --json``: every trial of a campaign."""

    schema_: Literal["workbench.status/1"] = Field(alias="schema")
    started: bool = Field(description="false: the spec's store does not exist yet")
    name: str
    campaign: Optional[CampaignOut] = Field(description="null until the campaign started")
    trials: list[TrialOut]


class TrialStatusOut(_Doc):
    """``workbench status --trial N --json``: one trial in full."""

    schema_: Literal["workbench.trial/1"] = Field(alias="schema")
    campaign: CampaignOut
    trial: TrialDetailOut


class ReportOut(_Doc):
    """``workbench report --json``: the HTML written and where it was logged."""

    schema_: Literal["workbench.report/1"] = Field(alias="schema")
    written: str = Field(description="the HTML file")
    campaigns: int = Field(description="campaigns in the report (more than one: a comparison)")
    logged_run: Optional[str] = Field(description="MLflow run the report was logged to")
    tracking: Optional[str]
    delivery: Optional[Literal["done", "background"]] = Field(
        None, description="done: in MLflow before the command returned (--wait); background:"
                          " a detached process delivers it (failing that, the campaign's next"
                          " tracked command); null: not logged")


class VerifyOut(_Doc):
    """``workbench verify --json``: a store's integrity (exit 1 when damaged)."""

    schema_: Literal["workbench.verify/1"] = Field(alias="schema")
    store: str
    intact: bool
    damage: list[str]
    notes: list[str]
    recovered_to: Optional[str] = Field(description="the copy --recover wrote")
    dropped_lines: Optional[list[int]] = Field(description="journal lines left out of the copy")


class ExportOut(_Doc):
    """``workbench export --json``: the CSV written."""

    schema_: Literal["workbench.export/1"] = Field(alias="schema")
    written: str
    name: str = Field(description="the campaign's name")
    trials: int = Field(description="rows written, one per trial")
    columns: list[str]


class PriorExportOut(_Doc):
    """``workbench prior export --json``: the prior written and where it was logged."""

    schema_: Literal["workbench.prior-export/1"] = Field(alias="schema")
    written: str
    logged_as: Optional[str] = Field(description="the MLflow artifact URI, once logged")
    tracking: Optional[str]
    queued: bool = Field(description="true: logging waits in the campaign's tracking outbox")


class PredictOut(_Doc):
    """``workbench predict --json``: the model's belief at each given point."""

    schema_: Literal["workbench.predict/1"] = Field(alias="schema")
    name: str = Field(description="the campaign's name")
    written: Optional[str] = Field(description="the CSV written with -o, or null")
    columns: list[str]
    points: list[dict[str, Any]] = Field(
        description="one per row of the points file: its parameters, <objective>_mean,"
                    " <objective>_std and, with outcome constraints, p_feasible")


class ImportOut(_Doc):
    """``workbench import --json``: past experiments recorded as trials."""

    schema_: Literal["workbench.import/1"] = Field(alias="schema")
    store: str
    imported: int = Field(description="rows recorded, each a completed trial")
    trial_ids: list[int] = Field(description="the first and last new trial id")


class ExplainOut(_Doc):
    """``workbench explain --json``: why a trial was proposed, as recorded when it was
    asked (``Campaign.explain``); never recomputed."""

    schema_: Literal["workbench.explain/1"] = Field(alias="schema")
    name: str = Field(description="the campaign's name")
    trial_id: int
    status: str
    strategy: str
    kind: Literal["model", "initial_design", "imported", "unknown"] = Field(
        description="who chose the point: the model, the initial design, past data")
    params: dict[str, Any] = Field(description="the proposed point, in user units")
    prediction: Optional[dict[str, dict[str, Optional[float]]]] = Field(
        description="per output the model's mean and std at the point, or null")
    acquisition_value: Optional[float]
    incumbent: Optional[float] = Field(
        description="the best objective value so far when proposed (single objective)")
    batch_position: Optional[int]
    alternatives: list[dict[str, Any]] = Field(
        description="the optimiser's best candidates, best (the proposal) first: params"
                    " and acquisition_value")
    profiles: list[dict[str, Any]] = Field(
        description="acquisition along the most relevant parameters through the point:"
                    " parameter, values, acquisition")
    model: Optional[dict[str, Any]] = Field(
        description="model, kernel, n_train, fantasies, fantasy_mode")
    hyperparameters: Optional[dict[str, Any]]
    data_hash: Optional[str]
    text: str = Field(description="the same in a few sentences")


class ImportanceRowOut(_Doc):
    """One parameter's Sobol indices for one output (null where not finite: no spread
    for p_feasible, or without posterior draws)."""

    parameter: str = Field(description="a parameter, or a composition's element as"
                           " name.Element")
    total: Optional[float] = Field(description="share of the output's variance the"
                                   " parameter takes part in, alone or with others")
    total_std: Optional[float] = Field(description="spread of total over posterior draws")
    first_order: Optional[float] = Field(description="share it explains alone")
    first_order_std: Optional[float]


class ImportanceOutputOut(_Doc):
    """The indices of one output: an objective, or p_feasible."""

    output: str
    variance: Optional[float] = Field(description="the output's variance over the box")
    parameters: list[ImportanceRowOut] = Field(description="in the space's order")


class ImportanceOut(_Doc):
    """``workbench importance --json``: global sensitivity of the campaign's model
    (``Campaign.importance``): Sobol indices per output and parameter."""

    schema_: Literal["workbench.importance/1"] = Field(alias="schema")
    name: str = Field(description="the campaign's name")
    n: int = Field(description="base rows of the Saltelli design")
    samples: int = Field(description="joint posterior draws for the spread (0: none)")
    seed: int
    n_train: int = Field(description="completed trials the model was fitted on")
    sample_rows: int = Field(description="base rows the spread was estimated on (0: none)")
    over: str = Field(description="the distribution the indices are taken over")
    outputs: list[ImportanceOutputOut] = Field(
        description="each objective, then p_feasible when there are outcome constraints")


class SpaceOut(_Doc):
    """``workbench space --json``: the search space now and its recorded updates."""

    schema_: Literal["workbench.space/1"] = Field(alias="schema")
    space: list[dict[str, Any]] = Field(description="parameters as the spec writes them")
    updates: list[dict[str, Any]] = Field(description="space updates, oldest first")


class SchemaOut(_Doc):
    """``workbench schema -o FILE --json``: the schema file written."""

    schema_: Literal["workbench.schema/1"] = Field(alias="schema")
    written: str
    describes: str = Field(description='"spec", or the command whose output it describes')


class IssueOut(_Doc):
    """One problem of an invalid spec."""

    field: str
    line: Optional[int]
    message: str


class ErrorOut(_Doc):
    """What any command prints with ``--json`` when it fails (exit code as without)."""

    schema_: Literal["workbench.error/1"] = Field(alias="schema")
    error: str = Field(description="the message a person would see")
    field: Optional[str] = Field(description="the option or spec field at fault, when known")
    exit_code: int
    issues: list[IssueOut] = Field(default_factory=list,
                                   description="every problem of an invalid spec")


# Each command's document(s), by the name ``workbench schema --output`` takes.
OUTPUTS: dict[str, type[BaseModel]] = {
    "validate": ValidateOut, "run": RunOut, "ask": AskOut, "tell": TellOut,
    "status": StatusOut, "trial": TrialStatusOut, "report": ReportOut, "verify": VerifyOut,
    "export": ExportOut, "prior-export": PriorExportOut, "schema": SchemaOut,
    "predict": PredictOut, "import": ImportOut, "space": SpaceOut, "explain": ExplainOut,
    "importance": ImportanceOut, "error": ErrorOut,
}


def output_schema(command: str) -> dict:
    """The JSON Schema of a command's ``--json`` document (see ``OUTPUTS`` for names)."""
    from workbench.errors import CampaignError

    if command not in OUTPUTS:
        raise CampaignError(f"--output: got {command!r}; expected one of {', '.join(OUTPUTS)}")
    schema = OUTPUTS[command].model_json_schema(by_alias=True)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id(command), **schema}


def spec_schema() -> dict:
    """The experiment spec's JSON Schema, for editors and other tools.

    Generated from ``CampaignSpec``: it checks types, names, bounds and allowed keys;
    what the spec's own validation checks beyond (constraints that leave no room,
    names that must exist) a schema cannot say.
    """
    from workbench.spec import CampaignSpec

    schema = CampaignSpec.model_json_schema()
    schema["title"] = "workbench experiment spec"
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


# -- building documents ---------------------------------------------------------------


def json_value(value: Any) -> Any:
    """``value`` as plain JSON: numpy scalars as Python numbers, mappings (a
    composition too) with text keys, tuples as lists, and every non-finite float
    (NaN, infinity) as None, which JSON lacks."""
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def importance_json(indices: Any) -> dict:
    """``Campaign.sobol_indices()`` (``insight.SobolIndices``) as the fields of
    ``ImportanceOut`` (less ``schema`` and ``name``): its settings, then per output each
    parameter's indices in the space's order, non-finite numbers as None."""
    outputs = []
    for i, output in enumerate(indices.outputs):
        rows = [{"parameter": str(p),
                 **{k: json_value(float(getattr(indices, k)[i, j]))
                    for k in ("total", "total_std", "first_order", "first_order_std")}}
                for j, p in enumerate(indices.parameters)]
        outputs.append({"output": str(output), "parameters": rows,
                        "variance": json_value(float(indices.variance[i]))})
    return {**{k: int(indices.attrs[k]) for k in ("n", "samples", "seed", "n_train",
                                                  "sample_rows")},
            "over": str(indices.attrs["over"]), "outputs": outputs}


def _time(value) -> Optional[str]:
    from workbench.record import format_time

    return format_time(value) or None


def trial_json(trial, detail: bool = False) -> dict:
    """One trial as its JSON document (``TrialOut``; with ``detail``, ``TrialDetailOut``)."""
    params = {k: json_value(v) for k, v in trial.params.items()}
    proposed = {k: json_value(v) for k, v in (trial.proposed or trial.params).items()}
    doc = {
        "id": int(trial.id), "status": trial.status, "params": params,
        "proposed": proposed if proposed != params else None,
        "outcomes": {k: json_value(float(v)) for k, v in trial.outcomes.items()},
        "prediction": {k: {"mean": json_value(float(p.mean)), "std": json_value(float(p.std))}
                       for k, p in (trial.prediction or {}).items()},
        "strategy": trial.strategy, "batch": int(trial.batch),
        "acquisition_value": json_value(trial.acquisition_value),
        "asked_at": _time(trial.asked_at), "told_at": _time(trial.told_at),
        "failure_reason": trial.failure_reason,
    }
    if detail:
        doc["audit"] = json.loads(trial.audit) if trial.audit else None
        return TrialDetailOut(**doc).model_dump(mode="json")
    return TrialOut(**doc).model_dump(mode="json")


def campaign_json(campaign) -> dict:
    """Who a campaign is and how far it got (``CampaignOut``)."""
    trials = campaign.trials
    count = {s: sum(1 for t in trials if t.status == s) for s in ("pending", "completed",
                                                                    "failed")}
    best = campaign.best()
    spec = campaign.spec
    return CampaignOut(
        name=campaign.name, partner=spec.partner, campaign_id=campaign.campaign_id,
        objectives=[{"name": o.name, "direction": o.direction} for o in campaign.objectives],
        outcomes=[o.name for o in campaign.outcomes],
        store=str(spec.store) if spec.store else None, tracking=spec.tracking,
        counts={"total": len(trials), **count},
        best=trial_json(best) if best is not None else None,
    ).model_dump(mode="json")


def build(command: str, **fields: Any) -> dict:
    """A command's document from what the command holds: ``parsed`` (a CampaignSpec),
    ``campaign`` (a Campaign), ``trials`` (a list of Trial) and ``trial`` (one, in
    full) are serialised here."""
    parsed = fields.pop("parsed", None)  # a valid spec (CampaignSpec), for validate
    if parsed is not None:
        fields.update(valid=True, name=parsed.name, partner=parsed.partner,
                      parameters=[p.name for p in parsed.space], budget=parsed.budget,
                      objectives=[{"name": o.name, "direction": o.direction}
                                  for o in parsed.objectives],
                      store=parsed.store, tracking=parsed.tracking)
    if fields.get("campaign") is not None:
        fields["campaign"] = campaign_json(fields["campaign"])
    if isinstance(fields.get("trials"), list):
        fields["trials"] = [trial_json(t) for t in fields["trials"]]
    if fields.get("trial") is not None:
        fields["trial"] = trial_json(fields["trial"], detail=True)
    return document(command, **fields)


def document(command: str, **fields: Any) -> dict:
    """A command's document, checked against its model; ``schema`` is filled in."""
    return OUTPUTS[command](schema=schema_id(command), **fields).model_dump(
        mode="json", by_alias=True)


def error_document(message: str, exit_code: int, *, command: Optional[str] = None,
                   error: Optional[BaseException] = None,
                   field: Optional[str] = None) -> dict:
    """The ``workbench.error/1`` document of an error: message, field and exit code.

    ``error``, a workbench error, gives the field: an invalid spec's first issue (and
    every issue), else the option or spec field its message starts with (not the
    command's own name, which some messages start with). ``field`` is given when the
    caller knows it (a usage error's option).
    """
    issues = [{"field": i.field, "line": i.line, "message": i.message}
              for i in getattr(error, "issues", [])]
    if field is None and issues:
        field = issues[0]["field"] or None
    elif field is None and error is not None:
        match = _FIELD_PREFIX.match(message)
        field = match[1] if match and match[1] != command else None
    return document("error", error=message, field=field, exit_code=exit_code, issues=issues)


def emit(doc: dict) -> None:
    """Write a document to stdout as one line of strict JSON (no NaN: null)."""
    sys.stdout.write(json.dumps(json_value(doc), ensure_ascii=False, allow_nan=False) + "\n")
    sys.stdout.flush()


def main_json(app) -> int:
    """Run the typer ``app`` for a command line with ``--json``; its exit code.

    Usage errors (an unknown option, a missing argument, a value out of range) are
    found before a command runs; here they become error documents too, with click's
    exit code (2), the usual message still on stderr.
    """
    import typer

    try:
        code = app(prog_name="workbench", standalone_mode=False)
    except typer.TyperException as e:  # click's usage errors, as typer exports them
        e.show()
        param = getattr(e, "param", None)
        code = getattr(e, "exit_code", 2)
        emit(error_document(e.format_message(), code,
                            field=param.opts[0] if param is not None and param.opts else None))
    except typer.Abort:
        code = 1
    return code if isinstance(code, int) else 0
