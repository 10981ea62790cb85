"""``--json`` output and ``workbench schema``, through the real command in subprocesses.

Every command's document is parsed with ``json.loads`` (so stdout holds it alone),
validated against the schema ``workbench schema --output COMMAND`` prints, and checked
against the campaign: what ``ask`` proposed is what ``status`` then shows, what ``tell``
recorded is the Branin value computed here, and the store read back in this process
holds the same. The spec's JSON Schema accepts every shipped experiment and every spec
the docs show that the workbench accepts.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jsonschema
import pytest
from conftest import cli_env
import yaml

import workbench as wb
from workbench.cli_json import OUTPUTS, schema_id
from workbench.errors import SpecError
from workbench.problems import branin
from workbench.spec import parse_spec

REPO = Path(__file__).resolve().parents[1]
DRAFT = "https://json-schema.org/draft/2020-12/schema"

SPEC = textwrap.dedent("""\
    name: json_branin
    partner: tests
    space:
      - {name: x1, type: continuous, low: -5.0, high: 10.0, unit: mm}
      - {name: x2, type: continuous, low: 0.0, high: 15.0}
    objectives:
      - {name: y, direction: minimize}
    initial_design: {type: sobol, n: 4}
    budget: 7
    oracle: {builtin: branin}
    store: record.zarr
    tracking: null
    seed: 0
    """)




def _call(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=cli_env(None),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


_SCHEMAS: dict[str, dict] = {}


def _schema(cwd: Path, name: str) -> dict:
    if name not in _SCHEMAS:
        _SCHEMAS[name] = json.loads(_call(cwd, "schema", "--output", name).stdout)
    return _SCHEMAS[name]


def _doc(cwd: Path, name: str, *args: str, code: int = 0) -> dict:
    """Run a command with --json: its stdout is one document of schema ``name``."""
    doc = json.loads(_call(cwd, *args, "--json", code=code).stdout)
    assert doc["schema"] == schema_id(name)
    jsonschema.Draft202012Validator(_schema(cwd, name)).validate(doc)
    return doc


def test_spec_schema_is_draft_2020_12_and_written_where_asked(tmp_path):
    printed = json.loads(_call(tmp_path, "schema").stdout)
    jsonschema.Draft202012Validator.check_schema(printed)
    assert printed["$schema"] == DRAFT
    assert printed["title"] and printed["description"]
    assert {"name", "space", "objectives"} <= set(printed["required"])
    assert printed["additionalProperties"] is False  # unknown keys are errors, as in YAML
    doc = _doc(tmp_path, "schema", "schema", "-o", "sub/spec.schema.json")
    assert doc["written"] == str(Path("sub/spec.schema.json")) and doc["describes"] == "spec"
    assert json.loads((tmp_path / "sub/spec.schema.json").read_text()) == printed


def _spec_validator() -> jsonschema.Draft202012Validator:
    from workbench.cli_json import spec_schema

    return jsonschema.Draft202012Validator(spec_schema())


@pytest.mark.parametrize("path", sorted((REPO / "experiments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_experiment_validates_against_the_spec_schema(path):
    wb.load_spec(path)  # valid for the workbench ...
    errors = list(_spec_validator().iter_errors(yaml.safe_load(path.read_text())))
    assert not errors, [e.message for e in errors]  # ... so valid for the schema


def _docs_specs() -> list[tuple[str, dict]]:
    """Every ```yaml block of the docs and README that is a whole spec the workbench takes."""
    found = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"^```yaml[^\n]*\n(.*?)^```", text, re.M | re.S):
            try:
                data = yaml.safe_load(match[1])
            except yaml.YAMLError:
                continue
            if not isinstance(data, dict) or "space" not in data:
                continue
            try:
                parse_spec(data)
            except SpecError:
                continue  # an excerpt or a deliberately broken example
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{page.relative_to(REPO)}:{line}", data))
    return found


def test_the_spec_schema_accepts_every_spec_the_docs_show():
    specs = _docs_specs()
    assert specs  # the docs do show whole specs
    validator = _spec_validator()
    for where, data in specs:
        errors = list(validator.iter_errors(data))
        assert not errors, (where, [e.message for e in errors])


def test_the_spec_schema_rejects_what_the_workbench_rejects():
    spec = yaml.safe_load(SPEC)
    validator = _spec_validator()
    for bad in ({**spec, "colour": "red"}, {**spec, "budget": 0},
                {**spec, "space": [{"name": "x", "type": "continuous", "low": "zero"}]},
                {**spec, "objectives": [{"name": "y", "direction": "up"}]}):
        with pytest.raises(SpecError):
            parse_spec(bad)
        assert list(validator.iter_errors(bad))


def test_every_output_schema_is_a_json_schema_named_by_its_document(tmp_path):
    for name in OUTPUTS:
        schema = _schema(tmp_path, name)
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == DRAFT and schema["$id"] == schema_id(name)
        assert schema["properties"]["schema"]["const"] == schema_id(name)
    doc = _doc(tmp_path, "error", "schema", "--output", "nope", code=2)
    assert doc["field"] == "--output" and doc["exit_code"] == 2 and "nope" in doc["error"]


def _fill(proposals: Path, results: Path) -> None:
    """Trial 0 measured (Branin), trial 1 failed; the other proposals stay pending."""
    with open(proposals, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["y"] = repr(branin(float(rows[0]["x1 [mm]"]), float(rows[0]["x2"])))
    rows[1]["failure_reason"] = "reactor clogged"
    with open(results, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*rows[0], "failure_reason"])
        writer.writeheader()
        writer.writerows(rows[:2])


def _same_trial(doc: dict, trial) -> None:
    """A trial document equals the trial the store holds."""
    assert doc["id"] == trial.id and doc["status"] == trial.status
    assert doc["params"] == trial.params and doc["outcomes"] == trial.outcomes
    assert doc["failure_reason"] == trial.failure_reason and doc["strategy"] == trial.strategy
    assert doc["prediction"] == {k: {"mean": p.mean, "std": p.std}
                                 for k, p in (trial.prediction or {}).items()}


@pytest.mark.slow
def test_every_command_prints_its_document_and_it_matches_the_campaign(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)

    doc = _doc(tmp_path, "validate", "validate", "spec.yaml")
    assert doc["name"] == "json_branin" and doc["parameters"] == ["x1", "x2"]
    assert doc["objectives"] == [{"name": "y", "direction": "minimize"}] and doc["budget"] == 7
    doc = _doc(tmp_path, "status", "status", "spec.yaml")
    assert doc == {"schema": "workbench.status/1", "started": False, "name": "json_branin",
                   "campaign": None, "trials": []}

    asked = _doc(tmp_path, "ask", "ask", "spec.yaml", "-n", "3", "-o", "p.csv")
    assert [t["id"] for t in asked["trials"]] == [0, 1, 2] and asked["output"] == "p.csv"
    assert all(t["status"] == "pending" and t["told_at"] is None for t in asked["trials"])
    assert asked["campaign"]["counts"] == {"total": 3, "pending": 3, "completed": 0,
                                           "failed": 0}
    store = wb.Campaign.open(tmp_path / "record.zarr", tracking=None)
    for t, trial in zip(asked["trials"], store.trials):
        _same_trial(t, trial)
    assert asked["campaign"]["campaign_id"] == store.campaign_id

    _fill(tmp_path / "p.csv", tmp_path / "r.csv")
    told = _doc(tmp_path, "tell", "tell", "spec.yaml", "r.csv")
    assert (told["recorded"], told["failed"], told["unchanged"]) == (1, 1, 0)
    measured, failed = told["trials"]
    assert measured["outcomes"] == {"y": branin(**asked["trials"][0]["params"])}
    assert failed["status"] == "failed" and failed["failure_reason"] == "reactor clogged"
    assert told["campaign"]["best"] == measured
    again = _doc(tmp_path, "tell", "tell", "spec.yaml", "r.csv")
    assert (again["recorded"], again["failed"], again["unchanged"], again["trials"]) == \
        (0, 0, 2, [])

    status = _doc(tmp_path, "status", "status", "spec.yaml")
    assert status["trials"][:2] == told["trials"]
    assert status["trials"][2] == asked["trials"][2]  # still pending, as proposed
    detail = _doc(tmp_path, "trial", "status", "record.zarr", "--trial", "0")
    assert {k: v for k, v in detail["trial"].items() if k != "audit"} == status["trials"][0]

    ran = _doc(tmp_path, "run", "run", "spec.yaml", "-q")
    after = _doc(tmp_path, "status", "status", "spec.yaml")
    before = {t["id"]: t["status"] for t in status["trials"]}
    assert ran["trials"] == [t for t in after["trials"] if before.get(t["id"]) != t["status"]]
    assert ran["trials"] and ran["budget"] == 7 and ran["campaign"] == after["campaign"]
    reopened = wb.Campaign.open(tmp_path / "record.zarr", tracking=None)
    for t, trial in zip(after["trials"], reopened.trials, strict=True):
        _same_trial(t, trial)
    assert after["campaign"]["best"]["id"] == reopened.best().id

    exported = _doc(tmp_path, "export", "export", "record.zarr", "-o", "all.csv")
    with open(tmp_path / "all.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert exported["trials"] == len(rows) == len(after["trials"])
    assert exported["columns"] == list(rows[0]) and exported["name"] == "json_branin"
    verified = _doc(tmp_path, "verify", "verify", "record.zarr")
    assert verified["intact"] and verified["damage"] == []

    reported = _doc(tmp_path, "report", "report", "record.zarr", "-o", "r/report.html")
    assert (tmp_path / "r/report.html").is_file() and reported["written"] == "r/report.html"
    assert reported["campaigns"] == 1 and reported["logged_run"] is None
    compared = _doc(tmp_path, "report", "report", "--compare", "record.zarr", "spec.yaml",
                    "-o", "c.html")
    assert compared["campaigns"] == 2 and (tmp_path / "c.html").is_file()
    prior = _doc(tmp_path, "prior-export", "prior", "export", "record.zarr", "-o", "prior.json")
    assert json.loads((tmp_path / "prior.json").read_text())
    assert (prior["written"], prior["logged_as"], prior["queued"]) == ("prior.json", None,
                                                                        False)


def test_errors_are_error_documents_with_the_usual_exit_codes(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC.replace("budget: 7", "budget: 0\ncolour: red"))
    doc = _doc(tmp_path, "error", "validate", "spec.yaml", code=2)
    assert doc["exit_code"] == 2 and doc["field"] == "budget"
    assert {(i["field"], i["line"]) for i in doc["issues"]} == {("budget", 9), ("colour", 10)}
    plain = _call(tmp_path, "validate", "spec.yaml", code=2)
    assert plain.stdout == "" and "budget" in plain.stderr  # the same failure without --json

    (tmp_path / "spec.yaml").write_text(SPEC)
    doc = _doc(tmp_path, "error", "tell", "spec.yaml", "r.csv", code=2)
    assert doc["field"] == "store" and "no campaign" in doc["error"]
    doc = _doc(tmp_path, "error", "ask", "spec.yaml", "-n", "0", code=2)  # a usage error
    assert doc["field"] == "-n" and doc["exit_code"] == 2
    assert not (tmp_path / "record.zarr").exists()  # nothing written


def test_trials_of_every_parameter_type_serialise_as_their_values(tmp_path):
    space = wb.SearchSpace([
        wb.Continuous("temperature", 30.0, 110.0, unit="degC"), wb.Integer("cycles", 1, 10),
        wb.Categorical("ligand", ["XPhos", "SPhos", "RuPhos"]),
        wb.Composition("alloy", ["Cu", "Ni", "Pd"])])
    campaign = wb.Campaign("rich", space, objectives=[wb.Objective("yield", "maximize")],
                           outcome_constraints=["impurity <= 0.05"],
                           store=tmp_path / "rich.zarr", tracking=None, seed=0)
    trials = campaign.ask(3)
    campaign.tell(trials[0].id, {"yield": 71.2, "impurity": 0.01})
    campaign.tell_failed(trials[1].id, "reactor clogged")

    doc = _doc(tmp_path, "status", "status", "rich.zarr")
    assert doc["campaign"]["outcomes"] == ["yield", "impurity"]
    assert doc["campaign"]["counts"] == {"total": 3, "pending": 1, "completed": 1, "failed": 1}
    for got, trial in zip(doc["trials"], campaign.trials, strict=True):
        params = got["params"]
        assert params["temperature"] == trial.params["temperature"]
        assert params["cycles"] == trial.params["cycles"] and isinstance(params["cycles"], int)
        assert params["ligand"] == trial.params["ligand"] in ("XPhos", "SPhos", "RuPhos")
        assert params["alloy"] == {str(k): v for k, v in trial.params["alloy"].items()}
        assert sum(params["alloy"].values()) == pytest.approx(1.0)
        assert got["asked_at"].endswith("+00:00")
    assert doc["trials"][0]["outcomes"] == {"yield": 71.2, "impurity": 0.01}
    assert doc["trials"][1]["failure_reason"] == "reactor clogged"
    assert doc["trials"][2]["told_at"] is None
