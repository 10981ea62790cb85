"""Bad observations: malformed result CSVs for ``workbench tell`` and the spec's policy.

Every malformed file must exit 2 with a message that names the file, the line,
the column or value and what was expected, print no traceback, and leave the
store byte for byte as it was: not even the good first row is recorded. The
``bad_observations`` policy decides what an unusable value does for a known
pending trial: ``error`` refuses it, ``fail`` records the trial as failed; and
a failed trial never reaches the model (the next proposal is the one a
campaign that never saw a value for it makes).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app
from workbench.problems import branin

REPO = Path(__file__).resolve().parents[1]

SPEC = textwrap.dedent("""\
    name: bad_results
    partner: tests
    space:
      - {name: x1, type: continuous, low: -5.0, high: 10.0}
      - {name: x2, type: continuous, low: 0.0, high: 15.0}
    objectives:
      - {name: y, direction: minimize}
    initial_design: {type: sobol, n: 4}
    store: record.zarr
    tracking: null
    """)

HEADER = ["trial_id", "x1", "x2", "y"]


def _setup(tmp_path: Path, policy: str | None = None) -> list[wb.Trial]:
    """A campaign with trials 0 and 1 pending, 2 failed and 3 told y = 5.0."""
    text = SPEC + (f"bad_observations: {policy}\n" if policy else "")
    (tmp_path / "spec.yaml").write_text(text)
    c = wb.Campaign.from_yaml(tmp_path / "spec.yaml")
    trials = c.ask(4)
    c.tell_failed(trials[2].id, "reactor clogged")
    c.tell(trials[3].id, 5.0)
    return trials


def _row(trial: wb.Trial, y: str, **changes: str) -> dict[str, str]:
    return {"trial_id": str(trial.id), "x1": repr(trial.params["x1"]),
            "x2": repr(trial.params["x2"]), "y": y, **changes}


def _csv(header: list[str], rows: list[dict[str, str]]) -> bytes:
    lines = [",".join(header)] + [",".join(r.get(h, "") for h in header) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: equal snapshots mean nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path, monkeypatch):
    """The spec's relative store (record.zarr) lands in tmp_path, as for an engineer."""
    monkeypatch.chdir(tmp_path)


def _tell(tmp_path: Path, name: str):
    """``workbench tell spec.yaml NAME`` in this process (the CLI's own entry point)."""
    return CliRunner().invoke(app, ["tell", "spec.yaml", name], env={"COLUMNS": "200"})


def _cases(t: list[wb.Trial]) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, the message fragment the error must contain); where a file
    has rows, the first is good (trial 0), so all-or-nothing is checked too."""
    good = _row(t[0], "12.5")
    full = HEADER
    ok = _csv(full, [good])
    return [
        ("no_id_column.csv", _csv(["x1", "x2", "y"], [good]),
         "no_id_column.csv:1: header has no trial_id column; got ['x1', 'x2', 'y'];"
         " expected trial_id, y"),
        ("unknown_id.csv", _csv(full, [good, _row(t[1], "7.25", trial_id="99")]),
         "unknown_id.csv:3: trial_id: got 99; no such trial in campaign 'bad_results'"
         " (ids: 0 to 3)"),
        ("duplicate_ids.csv", _csv(full, [good, _row(t[0], "1.0")]),
         "duplicate_ids.csv:3: trial_id 0 appears again (first on line 2);"
         " expected one row per trial"),
        ("not_a_number.csv", _csv(full, [good, _row(t[1], "12.5 %")]),
         "not_a_number.csv:3: y: got '12.5 %'; expected a number"),
        ("missing_outcome_column.csv", _csv(["trial_id", "x1", "x2"], [good]),
         "missing_outcome_column.csv:1: header lacks objective column(s) ['y'];"
         " expected trial_id, y"),
        ("extra_column.csv", _csv([*full, "yeild"], [good]),
         "extra_column.csv:1: unknown column(s) ['yeild']; expected trial_id, y,"
         " optional failure_reason and parameters"),
        ("empty.csv", b"",
         "empty.csv: the file is empty; expected a header row (trial_id, y)"),
        ("header_only.csv", _csv(full, []),
         "header_only.csv: no rows below the header; expected one row per trial"),
        ("semicolons.csv", ok.replace(b",", b";"),
         "semicolons.csv:1: header 'trial_id;x1;x2;y' is one column separated by"
         " semicolons; expected comma-separated columns (trial_id, y)"),
        ("utf16.csv", ok.decode().encode("utf-16"),
         "utf16.csv: the file is UTF-16 text; expected a UTF-8 CSV file"),
        ("latin1.csv", ok.replace(b"12.5", b"12.5\xb0"),
         f"latin1.csv: byte 0xb0 at offset {ok.index(b'12.5') + 4} is not UTF-8;"
         " expected a UTF-8 CSV file"),
        ("failed_trial.csv", _csv(full, [good, _row(t[2], "3.0")]),
         "failed_trial.csv:3: trial 2 is recorded as failed (reactor clogged);"
         " expected a pending trial"),
        ("conflicting_retell.csv", _csv(full, [good, _row(t[3], "6.0")]),
         "conflicting_retell.csv:3: trial 3 was already told {'y': 5.0}; got {'y': 6.0}"),
        ("non_integer_id.csv", _csv(full, [good, _row(t[1], "7.25", trial_id="1.5")]),
         "non_integer_id.csv:3: trial_id: got '1.5'; expected an integer trial id"),
        ("negative_id.csv", _csv(full, [good, _row(t[1], "7.25", trial_id="-1")]),
         "negative_id.csv:3: trial_id: got -1; expected a trial id of campaign"
         " 'bad_results' (0 to 3)"),
        ("empty_id.csv", _csv(full, [good, _row(t[1], "7.25", trial_id="")]),
         "empty_id.csv:3: trial_id: empty; expected an integer trial id"),
        ("infinite.csv", _csv(full, [good, _row(t[1], "inf")]),
         "infinite.csv:3: y: got 'inf'; expected a finite number (bad_observations: error;"
         " nothing was recorded)"),
        ("nan.csv", _csv(full, [good, _row(t[1], "NaN")]),
         "nan.csv:3: y: got 'NaN'; expected a finite number"),
        ("ragged.csv", _csv(full, [good]) + f"{t[1].id},1,2,3,4\n".encode(),
         "ragged.csv:3: 5 fields; expected 4, one per header column (trial_id, x1, x2, y)"),
        ("repeated_column.csv", _csv([*full, "y"], [good]),
         "repeated_column.csv:1: column(s) ['y'] appear more than once;"
         " expected each column once"),
        ("wrong_params.csv", _csv(full, [good, _row(t[1], "7.25", x1="3.0")]),
         "wrong_params.csv:3: x1: got 3.0, but trial proposed"),
        ("bad_status.csv", _csv([*full, "status"], [good, _row(t[1], "", status="done")]),
         "bad_status.csv:3: status: got 'done'; expected failed (with an optional"
         " failure_reason) or empty"),
    ]


def test_malformed_result_files_exit_2_name_the_problem_and_change_nothing(tmp_path):
    trials = _setup(tmp_path)
    store = tmp_path / "record.zarr"
    before = _snapshot(store)
    cases = _cases(trials)
    assert len(cases) >= 15
    for name, data, message in cases:
        (tmp_path / name).write_bytes(data)
        result = _tell(tmp_path, name)
        assert result.exit_code == 2, (name, result.output)
        stderr = " ".join(result.stderr.split())  # rich wraps long lines
        assert message in stderr, (name, stderr)
        assert "Traceback" not in result.output, (name, result.output)
        assert _snapshot(store) == before, name
    missing = _tell(tmp_path, "no_such_file.csv")
    assert missing.exit_code == 2 and "results: file not found:" in missing.stderr
    statuses = [t.status for t in wb.Campaign.open(store, tracking=None).trials]
    assert statuses == ["pending", "pending", "failed", "completed"]


def test_a_utf8_bom_and_spaces_after_commas_are_accepted(tmp_path):
    """What spreadsheets write ("CSV UTF-8" starts with a byte-order mark) is not an error."""
    trials = _setup(tmp_path)
    text = "trial_id, x1, y\n" + f"{trials[0].id}, {trials[0].params['x1']!r}, 12.5\n"
    (tmp_path / "excel.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    result = _tell(tmp_path, "excel.csv")
    assert result.exit_code == 0, result.output
    assert "recorded 1 result(s) and 0 failure(s)" in result.stdout
    c = wb.Campaign.open(tmp_path / "record.zarr", tracking=None)
    assert c.trials[0].outcomes == {"y": 12.5}


def test_fail_policy_records_unusable_values_as_failures_in_the_cli(tmp_path):
    trials = _setup(tmp_path, "fail")
    store = tmp_path / "record.zarr"
    rows = [_row(trials[0], "12.5"), _row(trials[1], "nan")]
    (tmp_path / "results.csv").write_bytes(_csv(HEADER, rows))
    # Structural problems stay errors under "fail": nothing sensible to record.
    before = _snapshot(store)
    for name, data, message in [c for c in _cases(trials) if c[0] in (
            "unknown_id.csv", "conflicting_retell.csv", "failed_trial.csv", "empty.csv")]:
        (tmp_path / name).write_bytes(data)
        result = _tell(tmp_path, name)
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), name
        assert _snapshot(store) == before, name

    result = _tell(tmp_path, "results.csv")
    assert result.exit_code == 0, result.output
    assert "recorded 1 result(s) and 1 failure(s)" in result.stdout
    assert ("trial 1: bad observation: y: got 'nan'; expected a finite number; recorded as"
            " failed (bad_observations: fail)") in " ".join(result.stderr.split())
    c = wb.Campaign.open(store, tracking=None)
    t0, t1 = c.trials[:2]
    assert t0.status == "completed" and t0.outcomes == {"y": 12.5}
    assert t1.status == "failed" and t1.outcomes == {}
    assert t1.failure_reason == "bad observation: y: got 'nan'; expected a finite number"
    # The same file again: harmless, nothing new in the journal.
    journal = store / "_workbench" / "journal.jsonl"
    size = journal.stat().st_size
    assert _tell(tmp_path, "results.csv").exit_code == 0
    assert journal.stat().st_size == size


def test_the_installed_command_exits_2_without_a_traceback(tmp_path):
    """The same checks through a real ``python -m workbench`` process."""
    trials = _setup(tmp_path)
    store = tmp_path / "record.zarr"
    before = _snapshot(store)
    (tmp_path / "inf.csv").write_bytes(_csv(HEADER, [_row(trials[0], "12.5"),
                                                      _row(trials[1], "-inf")]))
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_DEBUG",)}
    result = subprocess.run([sys.executable, "-m", "workbench", "tell", "spec.yaml", "inf.csv"],
                            cwd=tmp_path, env={**env, "COLUMNS": "200"},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "inf.csv:3: y: got '-inf'; expected a finite number" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert _snapshot(store) == before


# -- the policy in the Python API -------------------------------------------------------------

BAD_VALUES = [
    (float("nan"), "outcomes.y: got nan (not finite); expected a finite number"),
    ({"y": float("-inf")}, "outcomes.y: got -inf (not finite); expected a finite number"),
    ({"y": np.float32("inf")}, "outcomes.y: got inf (not finite)"),
    ({"y": "high"}, "outcomes.y: got 'high'; expected a number"),
    ({"y": None}, "outcomes.y: got None; expected a number"),
    ({}, "outcomes: missing ['y']; expected exactly ['y']"),
    ([1.0], "outcomes: got list [1.0]; expected a dict with keys ['y'] (or one number)"),
]


def _api_campaign(tmp_path: Path, policy: str, n: int = 8) -> wb.Campaign:
    spec = {"name": f"api_{policy}", "tracking": None, "store": str(tmp_path / f"{policy}.zarr"),
            "space": [{"name": "x", "type": "continuous", "low": 0.0, "high": 1.0}],
            "objectives": [{"name": "y", "direction": "minimize"}],
            "initial_design": {"n": n}, "bad_observations": policy}
    return wb.Campaign.from_dict(spec)


def test_error_policy_refuses_bad_values_and_records_nothing(tmp_path):
    c = _api_campaign(tmp_path, "error")
    assert c.spec.bad_observations == "error"
    (t,) = c.ask(1)
    journal = tmp_path / "error.zarr" / "_workbench" / "journal.jsonl"
    before = journal.read_bytes()
    for value, message in BAD_VALUES:
        with pytest.raises(wb.CampaignError) as info:
            c.tell(t.id, value)
        assert str(info.value).startswith(f"trial {t.id}: ") and message in str(info.value)
        assert "(bad_observations: error)" in str(info.value)
    assert journal.read_bytes() == before
    assert wb.Campaign.open(tmp_path / "error.zarr").trials[t.id].status == "pending"
    # The lab decides: record a failure, or tell a usable value later.
    assert c.tell(t.id, 0.5).outcomes == {"y": 0.5}


def test_fail_policy_records_bad_values_as_failures_and_structural_errors_still_raise(tmp_path):
    c = _api_campaign(tmp_path, "fail")
    trials = c.ask(len(BAD_VALUES) + 1)
    for t, (value, message) in zip(trials, BAD_VALUES):
        with pytest.warns(RuntimeWarning, match="recorded as failed"):
            done = c.tell(t.id, value)
        assert done.status == "failed" and done.failure_reason.startswith("bad observation: ")
        assert message in done.failure_reason
    reopened = wb.Campaign.open(tmp_path / "fail.zarr").trials
    assert [t.status for t in reopened] == ["failed"] * len(BAD_VALUES) + ["pending"]
    assert [t.failure_reason for t in reopened[:-1]] == \
        [t.failure_reason for t in c.trials[:-1]]

    journal = tmp_path / "fail.zarr" / "_workbench" / "journal.jsonl"
    before = journal.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same bad value again: harmless, silent
        assert c.tell(trials[0].id, float("nan")).status == "failed"
    last = trials[-1]
    c.tell(last.id, 0.25)
    after = journal.read_bytes()
    for call, message in [
        (lambda: c.tell(99, float("nan")), "trial_id: got 99"),
        (lambda: c.tell(-1, 1.0), "trial_id: got -1; expected an id of this campaign"),
        (lambda: c.tell(last.id, float("nan")), "was already told {'y': 0.25}; got nan"),
        (lambda: c.tell(last.id, 0.5), "was already told {'y': 0.25}; got {'y': 0.5}"),
        (lambda: c.tell(trials[0].id, 1.0), "is recorded as failed (bad observation:"),
        (lambda: c.tell(last.id, {"yeild": 1.0}), r"missing ['y'], unknown ['yeild']"),
    ]:
        with pytest.raises(wb.CampaignError) as info:
            call()
        assert message in str(info.value)
    assert after[:len(before)] == before and after.count(b"\n") == before.count(b"\n") + 1
    assert journal.read_bytes() == after


def _proposal_after(tmp_path: Path, name: str, fifth) -> tuple[dict, dict]:
    """Params and audit of the model's second proposal, after trial 4 got ``fifth``."""
    spec = {"name": name, "tracking": None, "store": str(tmp_path / f"{name}.zarr"), "seed": 7,
            "space": [{"name": "x1", "type": "continuous", "low": -5.0, "high": 10.0},
                      {"name": "x2", "type": "continuous", "low": 0.0, "high": 15.0}],
            "objectives": [{"name": "y", "direction": "minimize"}],
            "initial_design": {"n": 4}, "bad_observations": "fail",
            "surrogate": {"restarts": 1},
            "acquisition": {"raw_samples": 64, "num_restarts": 2, "steps": 10}}
    c = wb.Campaign.from_dict(spec)
    for t in c.ask(4):
        c.tell(t.id, branin(t.params["x1"], t.params["x2"]))
    (t4,) = c.ask(1)
    fifth(c, t4.id)
    (t5,) = c.ask(1)
    return t5.params, json.loads(t5.audit)


@pytest.mark.slow
def test_a_failed_trial_never_poisons_the_model(tmp_path):
    def bad(c, i):
        with pytest.warns(RuntimeWarning):
            c.tell(i, float("nan"))

    def clean(c, i):
        c.tell_failed(i, "never measured")

    def poison(c, i):
        c.tell(i, 1e6)

    seen_bad, bad_audit = _proposal_after(tmp_path, "bad", bad)
    never, never_audit = _proposal_after(tmp_path, "never", clean)
    told, told_audit = _proposal_after(tmp_path, "told", poison)
    # Bit-identical to the campaign that never had a value for trial 4: same data, same fit.
    assert seen_bad == never
    assert bad_audit["data_hash"] == never_audit["data_hash"]
    assert bad_audit["n_train"] == never_audit["n_train"] == 4
    assert bad_audit["hyperparameters"] == never_audit["hyperparameters"]
    # The comparison can tell: a campaign that did learn from trial 4 proposes elsewhere.
    assert told_audit["n_train"] == 5 and told != never


def test_an_unknown_policy_is_a_spec_error_naming_its_line(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC + "bad_observations: ignore\n")
    result = CliRunner().invoke(app, ["validate", "spec.yaml"], env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    line = len(SPEC.splitlines()) + 1
    assert (f"spec.yaml:{line}: bad_observations: Input should be 'error' or 'fail';"
            " got 'ignore'") in " ".join(result.stderr.split())
    assert not (tmp_path / "record.zarr").exists()
