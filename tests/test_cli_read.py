"""The read side of the ``workbench`` command, as real subprocesses at 80 columns.

A campaign of seven long-named parameters with units is asked and told through the CLI
(one result, one failure, one trial still pending); then ``status``, ``export``,
``report`` and ``verify`` read it by spec and by store, and their output is checked
for what an engineer at a narrow terminal must be able to read: every header and value
whole (no ellipsis), failure reasons, one trial in labelled lines, times in ISO 8601
with their UTC offset, units kept in error messages, and a repeated tell that says so.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from workbench.record import format_time, parse_time, trial_from_json

REPO = Path(__file__).resolve().parents[1]
WIDTH = 80
# An ISO 8601 time to the second with a UTC offset, e.g. 2026-12-07T05:55:02+00:00.
ISO_UTC = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"

PARAMETERS = {  # name: unit
    "reactor_temperature": "degC", "residence_time": "min", "catalyst_loading": "mol%",
    "substrate_concentration": "mol/L", "base_equivalents": "equiv", "stirring_speed": "rpm",
}
SPEC = textwrap.dedent("""\
    name: wide_process
    partner: tests
    space:
      - {name: reactor_temperature, type: continuous, low: 20, high: 120, unit: degC}
      - {name: residence_time, type: continuous, low: 1, high: 60, unit: min}
      - {name: catalyst_loading, type: continuous, low: 0.1, high: 5, unit: mol%}
      - {name: substrate_concentration, type: continuous, low: 0.05, high: 2, unit: mol/L}
      - {name: base_equivalents, type: continuous, low: 1, high: 4, unit: equiv}
      - {name: stirring_speed, type: integer, low: 100, high: 1500, unit: rpm}
      - {name: solvent_choice, type: categorical, choices: [toluene, dioxane, acetonitrile]}
    objectives:
      - {name: isolated_yield, direction: maximize, unit: "%"}
    initial_design: {type: sobol, n: 4}
    store: wide.zarr
    tracking: null
    seed: 0
    """)
REASON = "the reactor clogged after three minutes and the operator stopped the run"


def _workbench(cwd: Path, *args: str, columns: int = WIDTH) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "WORKBENCH_DEBUG")}
    env["COLUMNS"] = str(columns)  # rich sizes its tables to this
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    result = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _fits(text: str) -> None:
    """Readable at WIDTH columns: nothing cut short, no line wider than the terminal."""
    assert "…" not in text and "..." not in text, text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= WIDTH, text


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> dict:
    """A campaign asked and told through the CLI: trial 0 completed, 1 failed, 2 pending."""
    root = tmp_path_factory.mktemp("lab")
    (root / "wide.yaml").write_text(SPEC)
    asked = _workbench(root, "ask", "wide.yaml", "-n", "3", "-o", "proposals.csv")
    assert asked.returncode == 0, asked.stdout + asked.stderr
    with open(root / "proposals.csv", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[0] + ["failure_reason"]
    column = next(i for i, h in enumerate(rows[0]) if h.startswith("isolated_yield"))
    rows[1][column] = "71.5"
    filled = [header, rows[1] + [""], rows[2] + [REASON], rows[3] + [""]]
    with open(root / "results.csv", "w", newline="") as f:
        csv.writer(f).writerows(filled)
    told = _workbench(root, "tell", "wide.yaml", "results.csv")
    assert told.returncode == 0, told.stdout + told.stderr
    assert "recorded 1 result(s) and 1 failure(s) from results.csv" in told.stdout
    return {"root": root, "ask": asked.stdout, "header": header, "rows": filled[1:]}


def test_tables_fit_80_columns_with_every_name_and_unit_whole(lab):
    status = _workbench(lab["root"], "status", "wide.yaml")
    assert status.returncode == 0, status.stderr
    for text in (lab["ask"], status.stdout):
        _fits(text)
        for name, unit in PARAMETERS.items():
            assert name in text and f"[{unit}]" in text, (name, text)
        assert "solvent_choice" in text and "isolated_yield" in text
    assert lab["ask"].count("pending") == 3
    table = status.stdout.split("best isolated_yield")[0]
    assert {"completed", "failed", "pending"} <= set(table.split())
    # The reason wraps inside its column, word by word, never cut.
    words = iter(w for w in table.split() if w.isalpha())
    assert all(w in words for w in REASON.split()), table


def test_status_shows_reasons_only_when_a_trial_failed(lab):
    headers = [line for line in lab["ask"].splitlines() if line.startswith("┃")]
    assert headers and not any("reason" in line for line in headers)  # all pending: no column
    status = _workbench(lab["root"], "status", "wide.yaml", columns=250)
    lines = status.stdout.splitlines()
    assert any(line.split("┃")[-2].strip() == "reason" for line in lines
               if line.startswith("┃")), status.stdout
    reasons: dict[str, list[str]] = {}
    for line in (line for line in lines if line.startswith("│")):
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells[0]:
            trial = cells[0]
        reasons.setdefault(trial, []).append(cells[-1])
    assert {k: " ".join(filter(None, v)) for k, v in reasons.items()} == \
        {"0": "", "1": REASON, "2": ""}, status.stdout


def test_status_and_every_read_command_take_a_spec_or_a_store(lab):
    root = lab["root"]
    by_spec = _workbench(root, "status", "wide.yaml")
    by_store = _workbench(root, "status", "wide.zarr")
    assert by_store.returncode == 0, by_store.stderr
    assert by_store.stdout == by_spec.stdout
    for source, name in (("wide.yaml", "a.csv"), ("wide.zarr", "b.csv")):
        result = _workbench(root, "export", source, "-o", name)
        assert result.returncode == 0, result.stderr
    assert (root / "a.csv").read_bytes() == (root / "b.csv").read_bytes()
    verified = _workbench(root, "verify", "wide.yaml")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stdout
    report = _workbench(root, "report", "wide.yaml", "--out", "report.html")
    assert report.returncode == 0, report.stderr
    html = (root / "report.html").read_text()
    assert "wide_process" in html and re.search(f"generated {ISO_UTC}", html)

    (root / "not_a_store").mkdir(exist_ok=True)
    for command in (["status"], ["export", "-o", "c.csv"], ["report"], ["verify"]):
        neither = _workbench(root, command[0], "no_such_thing", *command[1:])
        assert neither.returncode == 2, (command, neither.stderr)
        assert "neither a spec" in neither.stderr and "nor a campaign store" in neither.stderr
    for command in (["status"], ["export", "-o", "c.csv"], ["report"]):
        folder = _workbench(root, command[0], "not_a_store", *command[1:])
        assert folder.returncode == 2 and "no campaign store at not_a_store" in folder.stderr
    assert not (root / "c.csv").exists()


def test_one_trial_reads_as_labelled_lines(lab):
    failed = _workbench(lab["root"], "status", "wide.zarr", "--trial", "1")
    assert failed.returncode == 0, failed.stderr
    text = failed.stdout
    _fits(text)
    for bad in ("Prediction(", "{", "}", '"', "None", "asked_at"):
        assert bad not in text, (bad, text)
    lines = {line.split("  ")[1].strip() if line.startswith("  ") else line.strip():
             line for line in text.splitlines()}
    assert "trial 1 of campaign 'wide_process'" in lines
    assert re.fullmatch(r"\s+status\s+failed\s*", lines["status"])
    assert re.fullmatch(rf"\s+asked at\s+{ISO_UTC}\s*", lines["asked at"])
    assert re.fullmatch(rf"\s+told at\s+{ISO_UTC}\s*", lines["told at"])
    assert " ".join(text.split()).count(REASON) == 1
    values = dict(zip(lab["header"], lab["rows"][1]))
    assert re.fullmatch(r"\s+reactor_temperature \[degC\]\s+(\S+)\s*",
                        lines["reactor_temperature [degC]"]).group(1) == \
        f"{float(values['reactor_temperature [degC]']):.6g}"
    assert "solvent_choice" in lines and values["solvent_choice"] in lines["solvent_choice"]
    assert "why proposed" in lines and re.search(r"versions\.jax\s+\d", text)

    done = _workbench(lab["root"], "status", "wide.yaml", "--trial", "0").stdout
    assert re.search(r"isolated_yield \(maximize\)\s+71\.5\b", done), done
    assert "failure reason" not in done


def test_export_writes_times_in_iso_8601_with_offset(lab):
    root = lab["root"]
    assert _workbench(root, "export", "wide.yaml", "-o", "times.csv").returncode == 0
    with open(root / "times.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["status"] for r in rows] == ["completed", "failed", "pending"]
    assert all(re.fullmatch(ISO_UTC, r["asked_at"]) for r in rows), rows
    assert all(re.fullmatch(ISO_UTC, r["told_at"]) for r in rows[:2]) and rows[2]["told_at"] == ""
    asked, told = (datetime.fromisoformat(rows[0][k]) for k in ("asked_at", "told_at"))
    assert asked <= told <= datetime.now(timezone.utc)


def test_error_messages_quote_headers_with_their_units(lab):
    root = lab["root"]
    store = root / "wide.zarr"
    snapshot = _snapshot(store)
    header, rows = lab["header"], lab["rows"]
    wrong_unit = ["reactor_temperature [K]" if h.startswith("reactor_temperature") else h
                  for h in header]
    for name, columns, message in (
            ("unit.csv", wrong_unit, "unit.csv:1: column 'reactor_temperature [K]' gives unit"
                                     " 'K'; expected 'degC' for 'reactor_temperature'"),
            ("extra.csv", [*header, "comment [free text]"],
             "extra.csv:1: unknown column(s) ['comment [free text]']"),
            ("twice.csv", [*header, "isolated_yield"],
             "twice.csv:1: column(s) ['isolated_yield [%]', 'isolated_yield'] appear more"
             " than once")):
        with open(root / name, "w", newline="") as f:
            csv.writer(f).writerows([columns, *[r + [""] * (len(columns) - len(r))
                                                for r in rows]])
        result = _workbench(root, "tell", "wide.yaml", name)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert message in " ".join(result.stderr.split()), (name, result.stderr)
        assert _snapshot(store) == snapshot


def test_telling_the_same_results_again_says_nothing_is_new(lab, tmp_path):
    root = tmp_path / "lab"
    shutil.copytree(lab["root"], root)
    snapshot = _snapshot(root / "wide.zarr")
    again = _workbench(root, "tell", "wide.yaml", "results.csv")
    assert again.returncode == 0, again.stderr
    assert "already recorded: 2 row(s) of results.csv unchanged; nothing new" in \
        " ".join(again.stdout.split())
    assert "recorded 1 result" not in again.stdout
    assert _snapshot(root / "wide.zarr") == snapshot

    rows = [list(r) for r in lab["rows"]]
    column = next(i for i, h in enumerate(lab["header"]) if h.startswith("isolated_yield"))
    rows[2][column] = "64.25"  # trial 2, pending until now
    with open(root / "mixed.csv", "w", newline="") as f:
        csv.writer(f).writerows([lab["header"], *rows])
    mixed = _workbench(root, "tell", "wide.yaml", "mixed.csv")
    assert mixed.returncode == 0, mixed.stderr
    assert ("recorded 1 result(s) and 0 failure(s) from mixed.csv; 2 row(s) already"
            " recorded, unchanged") in " ".join(mixed.stdout.split())


@pytest.mark.slow
def test_a_proposed_trial_shows_its_prediction_as_mean_and_sd(tmp_path):
    (tmp_path / "spec.yaml").write_text(textwrap.dedent("""\
        name: branin_detail
        partner: tests
        space:
          - {name: x1, type: continuous, low: -5.0, high: 10.0, unit: mm}
          - {name: x2, type: continuous, low: 0.0, high: 15.0}
        objectives:
          - {name: y, direction: minimize}
        initial_design: {type: sobol, n: 2}
        oracle: {builtin: branin}
        store: record.zarr
        tracking: null
        seed: 0
        """))
    assert _workbench(tmp_path, "run", "spec.yaml", "--budget", "3", "-q").returncode == 0
    text = _workbench(tmp_path, "status", "record.zarr", "--trial", "2").stdout
    _fits(text)
    assert "Prediction(" not in text and "{" not in text
    assert re.search(r"predicted when proposed \(mean ± sd\)\s*\n\s+y\s+-?[\d.e+-]+ ± [\d.e+-]+",
                     text), text
    assert re.search(r"x1 \[mm\]\s+-?[\d.]+", text)
    assert re.search(r"acquisition_value\s+-?[\d.e+-]+", text)


def test_times_read_back_as_utc_also_from_records_without_an_offset():
    naive = trial_from_json({"id": 0, "params": {"x": 1.0}, "status": "completed",
                             "asked_at": "2026-12-07T05:55:02.250000",
                             "told_at": "2026-12-07T06:55:02+01:00"})
    assert naive.asked_at == datetime(2026, 12, 7, 5, 55, 2, 250000, tzinfo=timezone.utc)
    assert naive.told_at == datetime(2026, 12, 7, 5, 55, 2, tzinfo=timezone.utc)
    assert format_time(naive.asked_at) == "2026-12-07T05:55:02+00:00"
    assert format_time(None) == ""
    assert parse_time("2026-12-07T05:55:02") == parse_time("2026-12-07T05:55:02+00:00")
