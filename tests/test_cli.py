"""The ``workbench`` command end to end, as real subprocesses.

--help; the engineer's ask / tell round trip through CSV files (checked against Branin values
computed here, against the store read back in-process, and with malformed result files
that must change nothing); and the shipped quickstart run, resumed with a larger budget,
with its record and its MLflow run inside tmp_path.
"""

from __future__ import annotations

import csv
import math
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import cli_env

import workbench as wb
from workbench.problems import branin

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("validate", "run", "ask", "tell", "status")

SPEC = textwrap.dedent("""\
    name: cli_branin
    partner: tests
    space:
      - {name: x1, type: continuous, low: -5.0, high: 10.0}
      - {name: x2, type: continuous, low: 0.0, high: 15.0}
    objectives:
      - {name: y, direction: minimize}
    initial_design: {type: sobol, n: 6}
    oracle: {builtin: branin}
    store: record.zarr
    tracking: null
    seed: 0
    """)




def _workbench(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=cli_env(),
                            capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: equal snapshots mean nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _write_csv(path: Path, header: list[str], rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _ask_four(tmp_path: Path) -> tuple[list[str], list[dict[str, str]]]:
    (tmp_path / "spec.yaml").write_text(SPEC)
    result = _workbench(tmp_path, "ask", "spec.yaml", "-n", "4", "-o", "proposals.csv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 proposed" in result.stdout
    assert "workbench tell spec.yaml proposals.csv" in result.stdout
    header, rows = _read_csv(tmp_path / "proposals.csv")
    # The campaign's identity comes last, out of the way of the columns a lab fills in.
    assert header == ["trial_id", "x1", "x2", "y", "campaign", "campaign_id"]
    campaign_id = wb.Campaign.open(tmp_path / "record.zarr", tracking=None).campaign_id
    assert {(r["campaign"], r["campaign_id"]) for r in rows} == {("cli_branin", campaign_id)}
    assert [int(r["trial_id"]) for r in rows] == [0, 1, 2, 3]
    for r in rows:
        assert -5.0 <= float(r["x1"]) <= 10.0 and 0.0 <= float(r["x2"]) <= 15.0
        assert r["y"] == ""
    return header, rows


def test_help_lists_the_five_commands(tmp_path):
    result = _workbench(tmp_path, "--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert command in result.stdout, (command, result.stdout)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ask_tell_status_round_trip(tmp_path):
    header, rows = _ask_four(tmp_path)
    store = tmp_path / "record.zarr"
    assert (store / "_workbench" / "zarr.json").exists()

    values = {int(r["trial_id"]): branin(float(r["x1"]), float(r["x2"])) for r in rows}
    for r in rows:
        r["y"] = repr(values[int(r["trial_id"])])
    results = _write_csv(tmp_path / "results.csv", header, rows)

    told = _workbench(tmp_path, "tell", "spec.yaml", "results.csv")
    assert told.returncode == 0, told.stdout + told.stderr
    assert "recorded 4 result(s) and 0 failure(s)" in told.stdout

    best_id = min(values, key=values.get)
    status = _workbench(tmp_path, "status", "spec.yaml")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "4 trials" in status.stdout
    assert status.stdout.count("completed") == 4 and "pending" not in status.stdout
    assert f"best y = {values[best_id]:.6g} at trial {best_id}" in status.stdout
    one = _workbench(tmp_path, "status", "spec.yaml", "--trial", str(best_id))
    assert one.returncode == 0 and re.search(r"\n  status +completed", one.stdout)
    # The initial design says why it chose the point: Sobol, its index, the seed, versions.
    assert "why proposed" in one.stdout and re.search(r"\n  strategy +sobol", one.stdout)
    assert re.search(r"\n  versions\.jax +\d", one.stdout), one.stdout

    campaign = wb.Campaign.open(store, tracking=None)
    trials = campaign.trials
    assert [t.id for t in trials] == [0, 1, 2, 3]
    assert all(t.status == "completed" for t in trials)
    for t, r in zip(trials, rows):
        assert t.params == {"x1": float(r["x1"]), "x2": float(r["x2"])}
        assert math.isclose(t.outcomes["y"], values[t.id], rel_tol=0, abs_tol=1e-12)
    assert campaign.best().id == best_id
    snapshot = _snapshot(store)

    # The same results again: harmless (README: "Telling the same values twice is
    # harmless"), exit 0, and the store is not even rewritten.
    again = _workbench(tmp_path, "tell", "spec.yaml", "results.csv")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already recorded: 4 row(s) of results.csv unchanged; nothing new" in again.stdout
    assert _snapshot(store) == snapshot

    # Other values for a told trial: refused, naming file, line and trial; nothing changes.
    rows[2]["y"] = repr(values[2] + 1.0)
    _write_csv(tmp_path / "changed.csv", header, rows)
    changed = _workbench(tmp_path, "tell", "spec.yaml", "changed.csv")
    assert changed.returncode == 2
    assert "changed.csv:4: trial 2 was already told" in changed.stderr, changed.stderr
    assert _snapshot(store) == snapshot
    assert results.exists()


def _bad_results(rows: list[dict[str, str]]) -> list[tuple[str, list[str], list[dict], str]]:
    """(name, header, rows, what the error must say); each file has a good first row."""
    good = {"trial_id": rows[0]["trial_id"], "x1": rows[0]["x1"], "x2": rows[0]["x2"],
            "y": "12.5"}
    second = {"trial_id": rows[1]["trial_id"], "x1": rows[1]["x1"], "x2": rows[1]["x2"],
              "y": "7.25"}
    full = ["trial_id", "x1", "x2", "y"]
    ident = {"campaign": rows[0]["campaign"], "campaign_id": rows[0]["campaign_id"]}
    return [
        ("unknown_id.csv", full, [good, {**second, "trial_id": "99"}],
         "unknown_id.csv:3: trial_id: got 99; no such trial"),
        ("missing_column.csv", ["trial_id", "x1", "x2"],
         [{k: v for k, v in r.items() if k != "y"} for r in (good, second)],
         "missing_column.csv:1: header lacks objective column(s) ['y']"),
        ("not_a_number.csv", full, [good, {**second, "y": "12,5 %"}],
         "not_a_number.csv:3: y: got '12,5 %'; expected a number"),
        ("wrong_params.csv", full, [good, {**second, "x1": "3.0"}],
         "wrong_params.csv:3: x1: got 3.0, but trial proposed"),
        ("repeated_id.csv", full, [good, {**good, "y": "1.0"}],
         "repeated_id.csv:3: trial_id 0 appears again (first on line 2)"),
        ("unknown_column.csv", [*full, "yeild"], [good, second],
         "unknown_column.csv:1: unknown column(s) ['yeild']"),
        # Another campaign's file (its identity columns differ), and a file that names
        # neither a campaign nor parameters: either could land in the wrong campaign.
        ("other_campaign.csv", [*full, "campaign", "campaign_id"],
         [{**good, **ident}, {**second, **ident, "campaign_id": "0123456789abcdef"}],
         f"other_campaign.csv:3: campaign_id: got '0123456789abcdef'; expected"
         f" {ident['campaign_id']!r} (campaign 'cli_branin' of "),
        ("anonymous.csv", ["trial_id", "y"], [{"trial_id": good["trial_id"], "y": "12.5"}],
         "anonymous.csv:1: header ['trial_id', 'y'] names no campaign and no parameters"),
    ]


@pytest.mark.slow
def test_malformed_results_change_nothing(tmp_path):
    _, rows = _ask_four(tmp_path)
    store = tmp_path / "record.zarr"
    snapshot = _snapshot(store)
    for name, header, bad_rows, message in _bad_results(rows):
        _write_csv(tmp_path / name, header, bad_rows)
        result = _workbench(tmp_path, "tell", "spec.yaml", name)
        assert result.returncode == 2, (name, result.stdout, result.stderr)
        assert message in result.stderr, (name, result.stderr)
        # Every row is checked before anything is recorded: not even the good first row.
        assert _snapshot(store) == snapshot, name
    campaign = wb.Campaign.open(store, tracking=None)
    assert [t.status for t in campaign.trials] == ["pending"] * 4


@pytest.mark.slow
def test_quickstart_run_resumes_with_a_larger_budget(tmp_path):
    """The shipped quickstart with cwd = tmp_path: its relative store and MLflow database
    (campaigns/quickstart.zarr, sqlite:///campaigns/mlflow.db) land in tmp_path."""
    from mlflow.tracking import MlflowClient

    spec = REPO / "experiments" / "quickstart.yaml"
    first = _workbench(tmp_path, "run", str(spec), "--budget", "8")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "failed" not in first.stderr, first.stderr  # no tracking warning
    assert sorted(p.name for p in tmp_path.iterdir()) == ["campaigns"]
    store = tmp_path / "campaigns" / "quickstart.zarr"
    after8 = wb.Campaign.open(store, tracking=None).trials
    assert len(after8) == 8 and all(t.status == "completed" for t in after8)

    # the shipped name; --wait: MLflow holds the run when the command returns
    second = _workbench(tmp_path, "run", "quickstart", "--budget", "10", "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "failed" not in second.stderr, second.stderr

    trials = wb.Campaign.open(store, tracking=None).trials
    assert len(trials) == 10 and all(t.status == "completed" for t in trials)
    assert trials[:8] == after8
    ys = [t.outcomes["y"] for t in trials]
    for t in trials:
        assert t.outcomes["y"] == pytest.approx(branin(**t.params), rel=1e-12)

    # Ends with where the results are and how to browse the tracking.
    tail = second.stdout.rstrip().splitlines()[-3:]
    assert tail[0].startswith("campaign record (Zarr): ")
    assert Path(tail[0].split(": ", 1)[1]).resolve() == store.resolve()
    assert tail[1] == "tracking (MLflow): sqlite:///campaigns/mlflow.db"
    assert tail[2].strip() == ("browse it with: mlflow ui --backend-store-uri"
                               " sqlite:///campaigns/mlflow.db, then open http://127.0.0.1:5000")
    assert f"best y = {min(ys):.6g}" in second.stdout

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'campaigns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("demo/quickstart")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["space.x1.low"] == "-5.0"
    history = client.get_metric_history(run.info.run_id, "best_so_far")
    assert len(history) >= 10
    by_step = sorted(history, key=lambda m: (m.step, m.timestamp))
    assert by_step[-1].value == pytest.approx(min(ys), rel=1e-12)
    assert all(a.value >= b.value for a, b in zip(by_step, by_step[1:]))
    completed = client.get_metric_history(run.info.run_id, "completed")
    assert max(m.value for m in completed) == 10
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"spec.json", "trials.csv"} <= artifacts
    local = client.download_artifacts(run.info.run_id, "trials.csv", str(tmp_path / "dl"))
    _, logged = _read_csv(Path(local))
    assert len(logged) == 10
