"""The benchmarks' entry point end to end: ``list``, and one cheap benchmark in quick mode
writing its stamped results page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import BENCHMARKS, common

ROOT = Path(__file__).resolve().parents[1]
STAMP_ROWS = ("| date |", "| commit |", "| command |", "| settings |", "| machine |",
              "| versions |")


def _benchmarks(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_list_names_every_benchmark():
    proc = _benchmarks("list")
    assert proc.returncode == 0, proc.stderr
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == list(BENCHMARKS)
    assert all(len(line.split(maxsplit=1)) == 2 for line in proc.stdout.splitlines())


def test_quick_run_writes_a_stamped_page(tmp_path):
    page, raw = tmp_path / "store_growth.md", tmp_path / "store_growth.json"
    proc = _benchmarks("run", "store_growth", "--quick", "--trials", "20", "--page", str(page),
                       "--out", str(raw))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("# Store growth")
    assert all(row in text for row in STAMP_ROWS)
    assert "`python -m benchmarks run store_growth --quick --trials 20" in text
    assert "trials = 20" in text and "**Quick run**" in text
    table = [line for line in text.splitlines() if line.startswith("| 20 |")]
    assert len(table) == 1 and len(table[0].split("|")) == 11  # a row of the nine columns
    report = json.loads(raw.read_text())
    assert report["trials"] == 20 and report["stamp"]["settings"] == {"trials": 20}


def test_run_all_takes_only_the_common_options():
    proc = _benchmarks("run", "all", "--trials", "20")
    assert proc.returncode == 2 and "--trials" in proc.stderr


@pytest.mark.parametrize("quick", [False, True])
def test_quick_output_never_goes_to_results(quick):
    import argparse

    args = common.parse_args(argparse.ArgumentParser(), ["--quick"] if quick else [], {})
    run = common.Run("store_growth", "Store growth", args)
    folder = common.OUT_DIR if quick else common.RESULTS_DIR
    assert run.page_path == folder / "store_growth.md"
    assert run.raw_path.parent == common.OUT_DIR


def test_cold_start_quick_run_times_a_fresh_ask_process(tmp_path):
    """The cold-start benchmark end to end in quick mode: a campaign with 16 imported
    observations, one fresh `workbench ask -n 1` timed and one through the warm worker (Optuna
    beside them where installed)."""
    page, raw = tmp_path / "cold_start.md", tmp_path / "cold_start.json"
    proc = _benchmarks("run", "cold_start", "--quick", "--page", str(page), "--out", str(raw))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("# Cold start") and "**Quick run**" in text
    assert all(row in text for row in STAMP_ROWS)
    rows = json.loads(raw.read_text())["rows"]
    assert [r["n"] for r in rows] == [16]
    ask = rows[0]["workbench"]
    assert len(ask["wall_s"]) == 1 and ask["wall_s"][0] >= ask["median_s"] > 0
    # The same ask handed to the warm worker: the first at this size, then a timed one.
    assert rows[0]["worker_first_s"] > 0 and len(rows[0]["worker"]["wall_s"]) == 1
    assert "Through the warm worker" in text
    assert [line for line in text.splitlines() if line.startswith("| 16 |")]
    skipped = json.loads(raw.read_text())["skipped"]
    assert ("optuna" in rows[0]) != ("optuna" in skipped)  # run, or skipped with a reason


def test_cold_start_refuses_sizes_inside_the_initial_design(tmp_path):
    proc = _benchmarks("run", "cold_start", "--sizes", "30,5", "--page", str(tmp_path / "p.md"))
    assert proc.returncode == 2
    assert "--sizes: got '30,5'" in proc.stderr and "initial design" in proc.stderr
    assert not (tmp_path / "p.md").exists()


def test_whole_job_quick_run_times_the_quickstart_as_a_fresh_process(tmp_path):
    """The whole-job benchmark in quick mode: README's quickstart with a budget of 7 as one
    fresh `workbench run`, its tracking found in MLflow afterwards (Optuna beside it where
    installed, else skipped with a reason)."""
    page, raw = tmp_path / "whole_job.md", tmp_path / "whole_job.json"
    proc = _benchmarks("run", "whole_job", "--quick", "--page", str(page), "--out", str(raw))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("# Whole job") and "**Quick run**" in text
    assert all(row in text for row in STAMP_ROWS)
    report = json.loads(raw.read_text())
    ours = report["methods"]["workbench"]
    (run,) = ours["runs"]
    assert run["wall_s"] == ours["median_s"] > 0 and run["cpu_s"] > 0 and run["rss_bytes"] > 0
    assert run["delivered_s"] >= run["wall_s"] and run["tracked_steps"] == 7
    assert [line for line in text.splitlines() if line.startswith("| `workbench run`")]
    assert ("optuna" in report["methods"]) != ("optuna" in report["skipped"])


def test_whole_job_refuses_a_budget_inside_the_initial_design(tmp_path):
    proc = _benchmarks("run", "whole_job", "--budget", "6", "--page", str(tmp_path / "p.md"))
    assert proc.returncode == 2
    assert "--budget: got 6" in proc.stderr and "initial points" in proc.stderr
    assert not (tmp_path / "p.md").exists()


def test_running_campaign_quick_run_times_warm_proposals(tmp_path):
    """The running-campaign benchmark end to end in quick mode: 40 observations told, one
    untimed proposal, two timed (each told before the next), the anchors beside it where
    installed, skipped with a reason where not."""
    page, raw = tmp_path / "running_campaign.md", tmp_path / "running_campaign.json"
    proc = _benchmarks("run", "running_campaign", "--quick", "--threads", "1", "--page",
                       str(page), "--out", str(raw))
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("# Running campaign") and "**Quick run**" in text
    assert all(row in text for row in STAMP_ROWS)
    report = json.loads(raw.read_text())
    (row,) = report["rows"]
    assert row["n"] == 40
    ours = row["workbench"]
    assert ours["proposals"] == 2 and len(ours["wall_s"]) == 2
    assert ours["median_s"] > 0 and ours["median_fit_s"] > 0 and ours["median_acquisition_s"] > 0
    for anchor in ("botorch", "optuna"):
        assert (anchor in row) != (anchor in report["skipped"])  # run, or skipped with a reason
        assert (f"ratio_to_{anchor}" in row) == (anchor in row)
    assert [line for line in text.splitlines() if line.startswith("| 40 |")]


def test_running_campaign_refuses_sizes_inside_the_initial_design(tmp_path):
    proc = _benchmarks("run", "running_campaign", "--sizes", "200,8", "--page",
                       str(tmp_path / "p.md"))
    assert proc.returncode == 2
    assert "--sizes: got '200,8'" in proc.stderr and "initial design" in proc.stderr
    assert not (tmp_path / "p.md").exists()
