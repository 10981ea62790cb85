"""Oracles for labs: the command template oracle and oracles that travel to other processes.

Real scripts in tmp_path run as real subprocesses: parameters are formatted into argv
(never through a shell, so injection attempts stay one argument), JSON on stdout becomes
outcomes, and a timeout, a non-zero exit or output that is not JSON become failure reasons
that a campaign records. Spec errors in a template go through ``workbench validate``.
"""

from __future__ import annotations

import json
import os
import pickle
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

import workbench as wb
from workbench.oracles import CommandError, CommandOracle, OracleError, PythonOracle, from_spec

# Prints its argv (after the script name) and one outcome; modes picked by the first argument.
ECHO = textwrap.dedent("""\
    import json, os, sys, time
    mode = sys.argv[1]
    if mode == "argv":
        print("warming up the reactor")          # chatter before the JSON line is fine
        print(json.dumps({"y": float(len(sys.argv) - 2), "argv": 0.0}))
        with open("argv.json", "w") as f:
            json.dump({"argv": sys.argv[2:], "env": json.loads(os.environ["WORKBENCH_PARAMS"])}, f)
    elif mode == "number":
        print(float(sys.argv[2]) * 2)
    elif mode == "fail":
        print("half a result")
        sys.stderr.write("pump 3 lost pressure\\n" + "x" * 2000 + "\\nvalve stuck at 40%\\n")
        sys.exit(3)
    elif mode == "garbage":
        print("yield: 71.2 %")
    elif mode == "list":
        print("[1, 2]")
    """)


def _script(tmp_path: Path, text: str = ECHO, name: str = "reactor.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _py(script: Path) -> str:
    """The start of a template that runs ``script`` with this interpreter."""
    return f"{sys.executable} {script.name}"


def test_values_parsed_and_placeholders_formatted(tmp_path):
    script = _script(tmp_path)
    oracle = CommandOracle(_py(script) + " argv {temperature:.2f} {cycles} T={temperature}",
                           timeout=60, cwd=tmp_path)
    out = oracle({"temperature": np.float64(71.23456), "cycles": np.int64(3)})
    assert out == {"y": 3.0, "argv": 0.0}
    seen = json.loads((tmp_path / "argv.json").read_text())
    assert seen["argv"] == ["71.23", "3", "T=71.23456"]
    assert seen["env"] == {"temperature": 71.23456, "cycles": 3}

    number = CommandOracle(_py(script) + " number {x}", cwd=tmp_path)
    assert number({"x": 2.5}) == 5.0


def test_a_parameter_value_is_one_argument_never_shell(tmp_path):
    script = _script(tmp_path)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.csv").write_text("precious\n")
    nasty = [f"x; rm -rf {victim}", f"$(rm -rf {victim})", f"`rm -rf {victim}`",
             f"a b\" 'c' && rm -rf {victim} | cat > {tmp_path / 'pwned'}"]
    oracle = CommandOracle(_py(script) + " argv {ligand} {x}", timeout=60, cwd=tmp_path)
    for value in nasty:
        out = oracle({"ligand": value, "x": 1.0})
        assert out["y"] == 2.0  # exactly two arguments after the mode
        assert json.loads((tmp_path / "argv.json").read_text())["argv"] == [value, "1.0"]
    assert (victim / "data.csv").read_text() == "precious\n"
    assert not (tmp_path / "pwned").exists()


def test_timeout_kills_the_script_and_what_it_started(tmp_path):
    script = _script(tmp_path, "#!/bin/sh\nsleep 30 &\necho $! > sleeper.pid\nwait\n", "hang.sh")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    oracle = CommandOracle("./hang.sh {x}", timeout=1.0, cwd=tmp_path)
    t0 = time.monotonic()
    with pytest.raises(CommandError, match=r"^timeout after 1 s$"):
        oracle({"x": 1.0})
    assert time.monotonic() - t0 < 15  # not the 30 s the grandchild sleeps
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    assert not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == "zombie"


def test_non_zero_exit_and_bad_output_give_clear_reasons(tmp_path):
    script = _script(tmp_path)
    oracle = CommandOracle(_py(script) + " {mode}", timeout=60, cwd=tmp_path)
    with pytest.raises(CommandError) as err:
        oracle({"mode": "fail"})
    reason = str(err.value)
    assert f"{sys.executable} exited with status 3" in reason
    assert reason.endswith("valve stuck at 40%")  # the tail of stderr, cut to a readable size
    assert "pump 3 lost pressure" not in reason and len(reason) < 1000
    with pytest.raises(CommandError, match=r"stdout is not JSON: got 'yield: 71.2 %'"):
        oracle({"mode": "garbage"})
    with pytest.raises(CommandError, match=r"stdout JSON is a list"):
        oracle({"mode": "list"})


def test_missing_program_is_refused_before_any_run(tmp_path):
    with pytest.raises(OracleError, match=r"oracle.command: program './absent.sh' not found"):
        CommandOracle("./absent.sh {x}", cwd=tmp_path)


def test_campaign_records_each_kind_of_command_failure(tmp_path):
    """A sequential run: the script's behaviour depends on x1, so each trial's status and
    reason are known from its parameters."""
    _script(tmp_path, textwrap.dedent("""\
        import sys, time
        x1, x2 = float(sys.argv[1]), float(sys.argv[2])
        if x1 < -2:
            sys.stderr.write("interlock tripped\\n"); sys.exit(2)
        if x1 < 2:
            print("not json")
        elif x1 < 5:
            time.sleep(30)
        else:
            print('{"y": %r}' % ((x1 - 7) ** 2 + x2))
        """), "lab.py")
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""\
        name: cmd
        space:
          - {{name: x1, type: continuous, low: -5, high: 10}}
          - {{name: x2, type: continuous, low: 0, high: 15}}
        objectives:
          - {{name: y, direction: minimize}}
        initial_design: {{n: 50}}
        oracle:
          command: "{sys.executable} lab.py {{x1}} {{x2}}"
          timeout: 3
        store: null
        tracking: null
        """))
    campaign = wb.Campaign.from_yaml(tmp_path / "spec.yaml")
    campaign.run(budget=8)
    kinds = set()
    for t in campaign.trials:
        x1, x2 = t.params["x1"], t.params["x2"]
        if x1 < -2:
            kinds.add("exit")
            assert t.status == "failed" and "exited with status 2" in t.failure_reason
            assert t.failure_reason.endswith("stderr: interlock tripped")
        elif x1 < 2:
            kinds.add("garbage")
            assert t.status == "failed" and "stdout is not JSON" in t.failure_reason
        elif x1 < 5:
            kinds.add("timeout")
            assert t.status == "failed" and t.failure_reason == "CommandError: timeout after 3 s"
        else:
            kinds.add("ok")
            assert t.status == "completed" and t.outcomes["y"] == pytest.approx((x1 - 7) ** 2 + x2)
    assert kinds == {"exit", "garbage", "timeout", "ok"}


def test_spec_oracles_pickle_by_name_into_a_fresh_process(tmp_path):
    (tmp_path / "lab_model.py").write_text("def f(params):\n    return {'y': params['x'] ** 2}\n")
    python = PythonOracle("lab_model.py:f", base_dir=tmp_path)
    command = CommandOracle(_py(_script(tmp_path)) + " number {x}", timeout=60, cwd=tmp_path)
    branin = from_spec(wb.CampaignSpec.model_validate(
        {"name": "b", "space": [{"name": "x1", "type": "continuous", "low": -5, "high": 10},
                                {"name": "x2", "type": "continuous", "low": 0, "high": 15}],
         "objectives": [{"name": "y", "direction": "minimize"}],
         "oracle": {"builtin": "branin"}}).oracle)
    blob = pickle.dumps([python, command, branin])
    assert b"return" not in blob and b"params" not in blob  # by name, not by value
    probe = ("import pickle, sys\n"
             "py, cmd, br = pickle.loads(sys.stdin.buffer.read())\n"
             "print(py({'x': 3.0})['y'], cmd({'x': 4.0}), br({'x1': 3.14159265, 'x2': 2.275}))\n")
    out = subprocess.run([sys.executable, "-c", probe], input=blob, capture_output=True,
                         cwd="/", timeout=120, check=True)
    y_py, y_cmd, y_br = map(float, out.stdout.split())
    assert (y_py, y_cmd) == (9.0, 8.0)
    assert y_br == pytest.approx(0.397887, abs=1e-5)


# -- spec validation through the real command ----------------------------------------------

HEAD = textwrap.dedent("""\
    name: lab
    space:
      - {name: temperature, type: continuous, low: 30, high: 110}
      - {name: pressure, type: continuous, low: 1, high: 5}
    objectives:
      - {name: yield, direction: maximize}
    """)


def _validate(tmp_path: Path, text: str) -> tuple[int, str]:
    (tmp_path / "spec.yaml").write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_DEBUG"}
    env["COLUMNS"] = "250"
    result = subprocess.run([sys.executable, "-m", "workbench", "validate", "spec.yaml"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    return result.returncode, out


@pytest.mark.parametrize("oracle, says", [
    ('  command: "./run_reactor.sh {temperature} {presure}"\n',
     ["spec.yaml:8: oracle.command: got placeholder {presure}",
      "expected one of the parameters ['temperature', 'pressure']"]),
    ('  command: "./run_reactor.sh {} {pressure}"\n',
     ["spec.yaml:8: oracle.command: got './run_reactor.sh {} {pressure}'", "positional"]),
    ("  command: \"./run_reactor.sh '{temperature}\"\n",
     ["spec.yaml:8: oracle.command: ", "No closing quotation"]),
    ('  builtin: branin\n  timeout: 5\n',
     ["spec.yaml:7: oracle: timeout: got 5 with a builtin oracle", "only with command"]),
], ids=["unknown-placeholder", "positional-placeholder", "unclosed-quote", "timeout-not-command"])
def test_bad_command_oracle_specs_exit_2_naming_the_field(tmp_path, oracle, says):
    code, out = _validate(tmp_path, HEAD + "oracle:\n" + oracle)
    assert code == 2, out
    for fragment in says:
        assert fragment in out, (fragment, out)


def test_valid_command_oracle_spec(tmp_path):
    code, out = _validate(tmp_path, HEAD + "oracle:\n"
                          '  command: "./run_reactor.sh --T={temperature:.1f} {pressure} {{raw}}"\n'
                          "  timeout: 600\n"
                          "executor: {type: local, workers: 4, timeout: 700, retries: 1}\n")
    assert code == 0, out
