"""The manual builds without a warning, covers the public API, and its examples run.

Examples: every ```python block of README.md and docs/**/*.md runs, page by page, in
one fresh namespace per page and in order, in a temporary folder holding a copy of
``experiments/``: what a reader pasting them into a new interpreter at the
repository root would get. A block that is not meant to run is preceded by
``<!-- no-run: why -->`` (the reason is required). From ```bash blocks, the lines
``workbench validate``, ``workbench schema`` and ``workbench run ... --budget N``
with N <= 10 run as commands and must exit 0; other shell lines (installs,
servers) are not run.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(?P<lang>\w*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
NO_RUN = re.compile(r"<!--\s*no-run:\s*(?P<why>.*?)\s*-->")
CLI_BUDGET_MAX = 10


def _rel(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def code_blocks(path: Path, lang: str) -> list[tuple[int, str]]:
    """(line, code) of each top-level fenced block in ``lang`` that is meant to run."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        if match["lang"] != lang:
            continue
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        marker = NO_RUN.search(before)
        if marker:
            assert marker["why"], f"{_rel(path)}: a no-run marker must say why"
            continue
        blocks.append((text.count("\n", 0, match.start()) + 2, match["code"]))
    return blocks


def _env() -> dict[str, str]:
    """This checkout's packages first, whether or not it is installed."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@pytest.fixture
def reader_dir(tmp_path, monkeypatch):
    """A working folder like the repository root: experiments/ and nothing else."""
    shutil.copytree(REPO / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- the site ------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(REPO / "mkdocs.yml"), "--site-dir", str(out)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600,
    )
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if re.match(r"\s*(WARNING|ERROR)\b", line)]
    assert proc.returncode == 0 and not warnings, f"mkdocs build --strict failed:\n{log}"
    return out


def test_site_builds_strict(site):
    assert (site / "index.html").is_file()


def test_yaml_reference_lists_every_field(site):
    import workbench

    html = (site / "reference" / "yaml" / "index.html").read_text(encoding="utf-8")
    schema = workbench.CampaignSpec.model_json_schema()
    models = [schema, *schema.get("$defs", {}).values()]
    for model in models:
        for field in model.get("properties", {}):
            assert f"<code>{field}</code>" in html, f"YAML reference lacks {field!r}"
    for name in schema.get("$defs", {}):
        assert f"<code>{name}</code>" in html, f"YAML reference lacks the model {name}"


@pytest.mark.parametrize("package", ["workbench", "surrogates", "active_learning"])
def test_api_reference_covers_public_names(site, package):
    module = importlib.import_module(package)
    html = "".join(p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html"))
    missing = [n for n in module.__all__ if f'id="{package}.{n}"' not in html]
    assert not missing, f"API reference lacks {package}.{missing}"


# -- the examples --------------------------------------------------------------


def _pages_with(lang: str) -> list[Path]:
    return [p for p in PAGES if code_blocks(p, lang)]


@pytest.mark.parametrize("page", _pages_with("python"), ids=_rel)
def test_python_examples_run(page, reader_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__main__"}
    try:
        for line, code in code_blocks(page, "python"):
            source = f"{_rel(page)}:{line}"
            try:
                exec(compile(code, source, "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"the example at {source} failed: {err!r}") from err
    finally:
        plt.close("all")


def cli_lines(page: Path) -> list[tuple[int, list[str]]]:
    """The cheap ``workbench`` commands of a page's bash blocks, as argument lists."""
    found = []
    for line, code in code_blocks(page, "bash"):
        for offset, text in enumerate(code.splitlines()):
            words = shlex.split(text, comments=True)
            if len(words) < 2 or words[0] != "workbench":
                continue
            if words[1] in ("validate", "schema"):
                found.append((line + offset, words[1:]))
            elif words[1] == "run":
                budget = next((words[i + 1] for i, w in enumerate(words[:-1])
                               if w in ("--budget", "-b")), None)
                if budget is not None and int(budget) <= CLI_BUDGET_MAX:
                    found.append((line + offset, words[1:]))
    return found


@pytest.mark.parametrize("page", [p for p in PAGES if cli_lines(p)], ids=_rel)
def test_cli_examples_run(page, reader_dir):
    for line, args in cli_lines(page):
        proc = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=reader_dir,
                              env=_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (
            f"{_rel(page)}:{line}: workbench {shlex.join(args)} exited {proc.returncode}:\n"
            f"{proc.stdout}{proc.stderr}")


def test_yaml_reference_rows_match_the_models():
    """The renderer on a small model: type, bounds, default, description, links."""
    import importlib.util
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    spec = importlib.util.spec_from_file_location("docs_hooks", REPO / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)

    class Inner(BaseModel):
        """Inner settings."""

        model_config = ConfigDict(extra="forbid")
        kind: Literal["a", "b"] = "a"

    class Outer(BaseModel):
        """Outer <model>."""

        name: str
        n: int = Field(default=3, ge=1, le=9, description="how many; see ``Inner``")
        inner: Inner | None = None
        tags: list[str] = Field(default_factory=list, max_length=2)

    text = hooks.render_schema(Outer.model_json_schema())
    rows = {line.split(" | ")[0].strip("| `"): line for line in text.splitlines()
            if line.startswith("| `")}
    assert rows["name"] == "| `name` | string | **required** |  |"
    assert rows["n"] == "| `n` | integer ≥ 1, ≤ 9 | `3` | how many; see `Inner` |"
    assert rows["inner"] == "| `inner` | [Inner](#spec-inner), or null | `null` |  |"
    assert rows["tags"] == "| `tags` | list of string, at most 2 entries | optional |  |"
    assert rows["kind"] == '| `kind` | one of `"a"`, `"b"` | `"a"` |  |'
    assert "## Top level (`Outer`) { #spec-outer }" in text and "Outer &lt;model&gt;." in text
    assert "## `Inner` { #spec-inner }" in text
