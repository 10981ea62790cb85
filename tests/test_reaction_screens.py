"""The reaction-screen benchmark's statistics against hand counts, and its quick run end to
end (benchmarks/reaction_screens.py)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from math import comb
from pathlib import Path

import numpy as np
import pytest

from benchmarks import reaction_screens as rs

ROOT = Path(__file__).resolve().parents[1]


def test_random_search_is_exact_against_enumeration():
    """Every 3-subset of a 7-condition screen, two of them hits: the share of subsets
    with a hit, the median best and the draws to a first hit (1 - C(5, k) / C(7, k))."""
    yields = np.array([10.0, 20.0, 99.5, 40.0, 50.0, 99.9, 70.0])
    out = rs.random_exact(yields, 3)
    subsets = list(itertools.combinations(yields, 3))
    assert out["hit_share"] == pytest.approx(
        sum(max(s) >= rs.HIT for s in subsets) / len(subsets))
    assert out["hit_share"] == pytest.approx(1 - comb(5, 3) / comb(7, 3))
    assert out["median"] == 99.5  # P(best <= 70) = C(5, 3) / C(7, 3) = 2 / 7 < 1 / 2
    # One draw hits with 2 / 7, two with 1 - C(5, 2) / C(7, 2) = 11 / 21 >= 1 / 2.
    assert 1 - comb(5, 1) / comb(7, 1) < 0.5 <= 1 - comb(5, 2) / comb(7, 2)
    assert out["median_to_hit"] == 2.0 and out["hits"] == 2 and out["conditions"] == 7


def test_runs_that_miss_count_as_more_than_the_budget():
    runs = [[50.0, 99.0, 10.0], [99.5, 1.0, 1.0], [1.0, 2.0, 3.0], [1.0, 2.0, 99.2]]
    s = rs.summarise(runs, 3)
    assert s["to_hit"] == [2, 1, None, 3] and s["hit_share"] == 0.75
    assert s["median_to_hit"] == 2.5 and s["best"] == [99.0, 99.5, 3.0, 99.2]
    assert rs.median_to_hit([None, None, 4], 3) is None  # more than half miss: "> 3"
    assert rs.median_to_hit([None, 2, 4], 30) == 4.0


def test_quick_run_writes_its_page(tmp_path):
    page, raw = tmp_path / "reaction_screens.md", tmp_path / "reaction_screens.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", "reaction_screens",
                           "--quick", "--page", str(page), "--out", str(raw)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.startswith("# Reaction screens against EDBO and random search")
    assert "**Quick run**" in text and "| direct arylation | EDBO" in text
    report = json.loads(raw.read_text())
    run = report["screens"]["arylation"]["batch 1"]
    assert len(run["yields"]) == 1 and len(run["yields"][0]) == rs.QUICK["budget"]
    # Every yield is one the screen recorded, no condition twice.
    import workbench as wb

    recorded = set(np.round(wb.datasets.load("shields_arylation")["yield"], 6))
    assert set(np.round(run["yields"][0], 6)) <= recorded
