"""Malformed experiment specs through the real ``workbench`` command.

Every malformed spec goes through both ``workbench validate`` and ``workbench run`` as a
subprocess and must: exit 2; name the field, the line and the value given; show no
traceback; write nothing (the defaults would create ``campaigns/``); and never import the
spec's Python oracle (a sentinel module beside the spec writes a file when imported).

Cost: about 65 subprocesses of ~0.7 s CPU each (``validate`` and a refused ``run`` import
neither JAX nor MLflow): ~25 s with ``-n 2`` on two idle cores, under the 60 s at which the
``run`` variant would be cut to a subset, so every case runs through both commands.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import cli_env

SPEC = "spec.yaml"
SENTINEL = "IMPORTED"  # written by sentinel_mod.py when it is imported
SENTINEL_MODULE = textwrap.dedent(f"""\
    import pathlib
    pathlib.Path(__file__).with_name({SENTINEL!r}).write_text("oracle module imported")

    def f(params):
        return 0.0
    """)
ORACLE = 'oracle: {python: "sentinel_mod:f"}\n'

NAME = "name: bad\n"
SPACE = textwrap.dedent("""\
    space:
      - {name: x1, type: continuous, low: -5.0, high: 10.0}
      - {name: x2, type: continuous, low: 0.0, high: 15.0}
    """)
OBJECTIVES = "objectives:\n  - {name: y, direction: minimize}\n"
BASE = NAME + SPACE + OBJECTIVES

# Nine levels of nine aliases: ~4.9e8 nodes once expanded.
ALIAS_BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi")
)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    field: str | None  # the field path as the project prints it; None: the whole document
    at: str | None  # a substring of the line the error must point at; None: no line
    says: tuple[str, ...] = ()  # the offending value and the reason, as printed


CASES = [
    Case("unknown-top-level-key", BASE + "colour: blue\n" + ORACLE,
         "colour", "colour: blue", ("unknown key 'colour'", "expected one of")),
    Case("unknown-nested-key",
         NAME + "space:\n  - name: x1\n    type: continuous\n    low: 0.0\n    high: 1.0\n"
         "    lo: 3\n" + OBJECTIVES + ORACLE,
         "space[0].lo", "lo: 3", ("unknown key 'lo'", "'low'")),
    Case("string-for-number",
         NAME + "space:\n  - name: x1\n    type: continuous\n    low: 0.0\n    high: ten\n"
         + OBJECTIVES + ORACLE,
         "space[0].high", "high: ten", ("'ten'", "valid number")),
    Case("low-not-below-high",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: x2, type: continuous, low: 12.0, high: 3.0}\n" + OBJECTIVES + ORACLE,
         "space[1]", "name: x2", ("low (12.0) must be below high (3.0)",)),
    Case("low-equals-high-integer",
         NAME + "space:\n  - {name: n, type: integer, low: 4, high: 4}\n" + OBJECTIVES + ORACLE,
         "space[0]", "name: n", ("low (4) must be below high (4)",)),
    Case("log-with-nonpositive-low",
         NAME + "space:\n  - {name: loading, type: continuous, low: 0.0, high: 2.5, log: true}\n"
         + OBJECTIVES + ORACLE,
         "space[0]", "name: loading", ("log=True needs low > 0", "low=0.0")),
    Case("categorical-no-choices",
         NAME + "space:\n  - {name: ligand, type: categorical, choices: []}\n" + OBJECTIVES
         + ORACLE,
         "space[0].choices", "name: ligand", ("at least 2 items", "got []")),
    Case("categorical-duplicate-choices",
         NAME + "space:\n  - {name: ligand, type: categorical, choices: [XPhos, SPhos, XPhos]}\n"
         + OBJECTIVES + ORACLE,
         "space[0].choices", "name: ligand", ("unique", "repeated: ['XPhos']")),
    Case("unknown-parameter-type",
         NAME + "space:\n  - {name: x1, type: real, low: 0.0, high: 1.0}\n" + OBJECTIVES + ORACLE,
         "space[0]", "type: real", ("got type 'real'", "continuous, integer, categorical")),
    Case("duplicate-parameter-names",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: x1, type: continuous, low: 0.0, high: 2.0}\n" + OBJECTIVES + ORACLE,
         "space[1].name", "high: 2.0", ("got 'x1' again", "unique")),
    Case("objective-direction",
         NAME + SPACE + "objectives:\n  - {name: y, direction: minimise}\n" + ORACLE,
         "objectives[0].direction", "minimise", ("got 'minimise'", "'minimize', 'maximize' or 'target'")),
    Case("budget-zero", BASE + "budget: 0\n" + ORACLE,
         "budget", "budget: 0", ("got 0", "greater than or equal to 1")),
    Case("budget-negative", BASE + "budget: -3\n" + ORACLE,
         "budget", "budget: -3", ("got -3", "greater than or equal to 1")),
    Case("seed-string", BASE + "seed: abc\n" + ORACLE,
         "seed", "seed: abc", ("got 'abc'", "valid integer")),
    # A missing key is reported at the mapping that lacks it.
    Case("required-field-missing", NAME + SPACE + ORACLE,
         "objectives", "name: bad", ("required field is missing",)),
    Case("required-nested-field-missing",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: x2, type: continuous, low: 0.0}\n" + OBJECTIVES + ORACLE,
         "space[1].high", "name: x2", ("required field is missing",)),
    Case("python-tag",
         BASE + "description: !!python/object/apply:os.system ['touch pwned']\n" + ORACLE,
         None, "!!python", ("python/object/apply:os.system", "no language-specific tags")),
    Case("alias-bomb", ORACLE + ALIAS_BOMB, None, "oracle:", ("alias bomb",)),
    Case("empty-document", "# nothing here\n\n", None, None, ("the spec is empty",)),
    Case("list-document", "- " + ORACLE + "- name: bad\n", None, "- oracle",
         ("the document is a list", "expected a mapping")),
    Case("duplicate-key", BASE + ORACLE + "seed: 1\nseed: 2\n",
         "seed", "seed: 2", ("duplicate key 'seed'", "first on line")),
    Case("yaml-syntax-error", BASE + ORACLE + "budget: [1, 2\nseed: 0\n",
         None, "seed: 0", ("not valid YAML",)),
    Case("constraint-unknown-name", BASE + "constraints: ['x1 + x3 <= 10']\n" + ORACLE,
         "constraints[0]", "constraints:", ("x1 + x3 <= 10", "['x3'] name no parameter")),
    Case("constraint-not-allowed", BASE + "constraints: ['x1 ** x2 <= 10']\n" + ORACLE,
         "constraints[0]", "constraints:", ("x1 ** x2 <= 10", "numeric exponent")),
    Case("constraint-infeasible", BASE + "constraints: ['x1 + x2 >= 40']\n" + ORACLE,
         "constraints", "constraints:", ("x1 + x2 >= 40", "no point")),
    Case("constraint-no-comparison", BASE + "constraints: ['x1 + x2']\n" + ORACLE,
         "constraints[0]", "constraints:", ("'x1 + x2'", "expected exactly one comparison")),
    Case("outcome-constraint-on-parameter",
         BASE + "outcome_constraints: ['x1 <= 0.05']\n" + ORACLE,
         "outcome_constraints[0]", "outcome_constraints:", ("x1 <= 0.05", "is a parameter")),
    Case("outcome-constraint-equality",
         BASE + "outcome_constraints: ['impurity == 0.05']\n" + ORACLE,
         "outcome_constraints[0]", "outcome_constraints:", ("impurity == 0.05", "not ==")),
    Case("two-objectives-single-acquisition",
         NAME + SPACE + "objectives:\n  - {name: y, direction: minimize}\n"
         "  - {name: cost, direction: minimize}\nacquisition: {type: ucb}\n" + ORACLE,
         "acquisition.type", "acquisition:", ("got 'ucb' with 2 objectives", "qlog_nehvi")),
    Case("log-ehvi-with-a-target",
         NAME + SPACE + "objectives:\n  - {name: y, direction: minimize}\n"
         "  - {name: visc, target: 2.0}\nacquisition: {type: log_ehvi}\n" + ORACLE,
         "acquisition.type", "acquisition:", ("got log_ehvi with 2 objectives",
                                              "targets ['visc']", "else qlog_nehvi")),
    Case("log-ehvi-one-objective", BASE + "acquisition: {type: log_ehvi}\n" + ORACLE,
         "acquisition.type", "acquisition:", ("got 'log_ehvi' with one objective",)),
    Case("objective-target-with-direction",
         NAME + SPACE + "objectives:\n  - {name: y, direction: minimize, target: 0.5}\n" + ORACLE,
         "objectives[0]", "- {name: y, direction: minimize, target",
         ("'minimize' with target 0.5", "direction 'target'")),
    Case("stopping-rule-missing-field", BASE + "stopping: [{type: target}]\n" + ORACLE,
         "stopping[0].value", "stopping:", ("required field is missing",)),
    Case("context-unknown-parameter", BASE + "context: [humidity]\n" + ORACLE,
         "context[0]", "context:", ("got 'humidity'", "expected a parameter name")),
    Case("design-points-without-type",
         BASE + "initial_design: {points: [{x1: 0.0, x2: 1.0}]}\n" + ORACLE,
         "initial_design", "initial_design:", ("points: got a list with type 'sobol'",)),
    Case("design-point-out-of-bounds",
         BASE + "initial_design: {type: points, points: [{x1: 50.0, x2: 1.0}]}\n" + ORACLE,
         "initial_design.points[0]", "initial_design:", ("got 50.0", "[-5.0, 10.0]")),
    Case("surrogate-unknown-kernel", BASE + "surrogate: {kernel: 'matern52 + cosine'}\n" + ORACLE,
         "surrogate.kernel", "surrogate:", ("'matern52 + cosine'", "expected an expression")),
    Case("surrogate-unknown-noise-prior",
         BASE + "surrogate: {noise_prior: loud}\n" + ORACLE,
         "surrogate.noise_prior", "surrogate:", ("'loud'", "'lab'")),
    Case("surrogate-unknown-categorical-structure",
         BASE + "surrogate: {categorical: sum}\n" + ORACLE,
         "surrogate.categorical", "surrogate:", ("'sum'", "'additive'")),
    Case("multitask-target-not-a-choice",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: plant, type: categorical, choices: [A, B]}\n" + OBJECTIVES
         + "surrogate: {type: multitask, task: plant, target: C}\n" + ORACLE,
         "surrogate.target", "surrogate:", ("'C'", "['A', 'B']")),
    Case("multifidelity-costs-not-one-per-level",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: level, type: integer, low: 0, high: 2}\n" + OBJECTIVES
         + "surrogate: {type: multifidelity, fidelity: level, costs: [1, 10]}\n" + ORACLE,
         "surrogate.costs", "surrogate:", ("[1.0, 10.0]", "one per level of 'level' (3)")),
    Case("composition-unknown-element",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: alloy, type: composition, elements: [Cu, Ni, Qq]}\n" + OBJECTIVES + ORACLE,
         "space[1]", "name: alloy", ("['Qq']", "not element symbols")),
    Case("composition-bounds-cannot-sum-to-one",
         NAME + "space:\n  - {name: x1, type: continuous, low: 0.0, high: 1.0}\n"
         "  - {name: alloy, type: composition, elements: [Cu, Ni],"
         " bounds: {Cu: [0.0, 0.2], Ni: [0.0, 0.3]}}\n" + OBJECTIVES + ORACLE,
         "space[1]", "name: alloy", ("highs to 0.5", "can sum to one")),
    Case("unknown-builtin-oracle", BASE + "oracle: {builtin: rosenbrock}\n",
         "oracle", "builtin: rosenbrock", ("builtin: got 'rosenbrock'", "'branin'")),
    Case("builtin-oracle-parameter-names",
         NAME + "space:\n  - {name: temperature, type: continuous, low: -5.0, high: 10.0}\n"
         "  - {name: x2, type: continuous, low: 0.0, high: 15.0}\n" + OBJECTIVES
         + "oracle: {builtin: branin}\n",
         "oracle.builtin", "builtin: branin", ("['x1', 'x2']", "'temperature'")),
    Case("oracle-builtin-and-python",
         BASE + "oracle: {builtin: branin, python: 'sentinel_mod:f'}\n",
         "oracle", "oracle:", ("got ['builtin', 'python']", "exactly one")),
]

VALID = NAME.replace("bad", "fine") + SPACE + OBJECTIVES + "budget: 5\n" + ORACLE




def _listing(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _workbench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=120)


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / SPEC).write_text(text, encoding="utf-8")
    (tmp_path / "sentinel_mod.py").write_text(SENTINEL_MODULE)
    return tmp_path / SPEC


def _line(text: str, at: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if at in line]
    assert len(hits) == 1, f"test case bug: {at!r} is on lines {hits}"
    return hits[0]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_spec_is_refused_cleanly(tmp_path, case, command):
    _write(tmp_path, case.text)
    before = _listing(tmp_path)

    result = _workbench(tmp_path, command, SPEC)
    text = result.stdout + result.stderr

    assert result.returncode == 2, text
    assert "Traceback" not in text
    where = SPEC if case.at is None else f"{SPEC}:{_line(case.text, case.at)}"
    assert f"{where}: {case.field or '(document)'}: " in text, text
    for fragment in case.says:
        assert fragment in text, (fragment, text)
    # Nothing written: no campaigns/ (store, MLflow database), no bytecode, no sentinel.
    assert _listing(tmp_path) == before, text
    assert not (tmp_path / SENTINEL).exists()


def test_several_problems_are_reported_together(tmp_path):
    text = (NAME + "space:\n  - {name: x1, type: continuous, low: 3.0, high: 1.0}\n"
            + OBJECTIVES + "budget: 0\nsurprise: 1\n" + ORACLE)
    _write(tmp_path, text)
    result = _workbench(tmp_path, "validate", SPEC)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert "3 problems" in out
    assert f"{SPEC}:3: space[0]: " in out
    assert f"{SPEC}:6: budget: " in out
    assert f"{SPEC}:7: surprise: " in out
    # In file order.
    assert out.index("space[0]") < out.index("budget") < out.index("surprise")


def test_valid_spec_validates_without_importing_or_writing(tmp_path):
    _write(tmp_path, VALID)
    before = _listing(tmp_path)
    result = _workbench(tmp_path, "validate", SPEC)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "valid" in result.stdout and "'fine'" in result.stdout
    assert "2 parameters" in result.stdout and "budget 5" in result.stdout
    assert _listing(tmp_path) == before
    assert not (tmp_path / SENTINEL).exists()


def test_validate_imports_no_heavy_library(tmp_path):
    """`validate` answers at once: no JAX, MLflow, xarray or Zarr import."""
    _write(tmp_path, VALID)
    probe = textwrap.dedent(f"""\
        import sys
        from workbench.cli import app
        sys.argv = ["workbench", "validate", {SPEC!r}]
        try:
            app(prog_name="workbench")
        except SystemExit as e:
            assert e.code in (0, None), e.code
        heavy = [m for m in ("jax", "mlflow", "xarray", "zarr", "sentinel_mod")
                 if m in sys.modules]
        print("HEAVY", heavy)
        """)
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr


def test_sentinel_detects_an_oracle_import(tmp_path):
    """Control: with a valid spec, `run` does import the oracle module (so the sentinel
    would have caught an import above). The module here fails on import, which stops
    `run` before the campaign touches its store."""
    _write(tmp_path, VALID)
    failing = SENTINEL_MODULE + "raise RuntimeError('lab offline')\n"
    (tmp_path / "sentinel_mod.py").write_text(failing)
    result = _workbench(tmp_path, "run", SPEC)
    out = result.stdout + result.stderr
    assert result.returncode == 2, out
    assert (tmp_path / SENTINEL).exists()
    assert "oracle.python" in out and "lab offline" in out
    assert "Traceback" not in out
    assert not (tmp_path / "campaigns").exists()
