"""Packaging: the wheel carries the shipped files; CI runs the README's test command."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", setup, re.S)
            for line in block.strip().splitlines()]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    commands = _readme_commands()
    assert len(commands) == 2, commands
    run_line, test_line = commands
    assert "experiments/quickstart.yaml" in run_line and "pip install" in run_line
    assert "pytest" in test_line and "[test]" in test_line
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_line in [line.strip() for line in ci], "CI must run the README test line verbatim"


@pytest.mark.slow
def test_wheel_carries_experiments_and_datasets(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("sciworkbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for spec in (ROOT / "experiments").glob("*.yaml"):
        assert f"workbench/_shipped/experiments/{spec.name}" in names
    assert "workbench/_shipped/datasets/catalog.yaml" in names
    for package in ("workbench", "surrogates", "active_learning"):
        assert f"{package}/__init__.py" in names
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    entry = [n for n in names if n.endswith("entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry[0]).decode()
    assert "workbench = workbench.launcher:main" in text
