"""Executors with real processes and a real Dask cluster: failures, hangs and killed workers.

One oracle module (written to a temporary folder and loaded by path, as a spec would) logs
every start with its process id, raises for hot settings (x1 > 7), hangs for high pressure
(x2 > 12) and, the first time it sees a normal setting, kills the very process running it.
So every trial's final status, failure reason and number of attempts is known from its
parameters, and the log tells which processes must be gone at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import pytest

import workbench as wb
from workbench.executors import DaskExecutor, LocalExecutor
from workbench.oracles import PythonOracle
from workbench.spec import parse_spec

HANG_S = 120  # a broken timeout would make a run last at least this long

ORACLE = textwrap.dedent(f"""\
    import json, os, signal, time, pathlib

    HERE = pathlib.Path(__file__).parent


    def _log(event, params):
        line = json.dumps({{"event": event, "pid": os.getpid(), "x1": params["x1"],
                           "x2": params["x2"], "t": time.time()}})
        with open(HERE / "log.jsonl", "a") as f:
            f.write(line + "\\n")


    def lab(params):
        _log("start", params)
        x1, x2 = params["x1"], params["x2"]
        if x1 > 7:
            raise ValueError(f"too hot: {{x1:.3f}}")
        if x2 > 12:
            time.sleep({HANG_S})
        try:  # the first normal setting kills its own worker process, once
            fd = os.open(HERE / "killed.json", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, json.dumps([x1, x2]).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)
        return {{"y": (x1 - 1.0) ** 2 + (x2 - 3.0) ** 2}}


    def calm(params):
        _log("start", params)
        return {{"y": (params["x1"] - 1.0) ** 2 + (params["x2"] - 3.0) ** 2}}


    def hang_high(params):
        _log("start", params)
        if params["x2"] > 12:
            time.sleep({HANG_S})
        return {{"y": (params["x1"] - 1.0) ** 2 + (params["x2"] - 3.0) ** 2}}


    def hang_forever(params):
        (HERE / "hung.pid").write_text(str(os.getpid()))
        time.sleep({HANG_S})
    """)


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "lab_oracle.py").write_text(ORACLE)
    return tmp_path


def _log(folder: Path) -> list[dict]:
    path = folder / "log.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines()] if path.exists() else []


def _campaign(store: Path, n_initial: int = 4) -> wb.Campaign:
    space = wb.SearchSpace([wb.Continuous("x1", -5.0, 10.0), wb.Continuous("x2", 0.0, 15.0)])
    return wb.Campaign("exec", space, [wb.Objective("y", "minimize")], store=store,
                       tracking=None, seed=0, initial_design={"n": n_initial},
                       surrogate={"restarts": 1},
                       acquisition={"raw_samples": 64, "num_restarts": 2, "steps": 20})


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _check_campaign(campaign: wb.Campaign, folder: Path, timeout: float) -> None:
    """Every trial's status, reason and attempts follow from its parameters; trials pending
    together were never the same point; never more in flight than workers; and every
    process that ran the oracle is gone."""
    trials = campaign.trials
    log = _log(folder)
    starts = Counter((e["x1"], e["x2"]) for e in log)
    killed = tuple(json.loads((folder / "killed.json").read_text()))
    seen = {"failed": 0, "timeout": 0, "killed": 0, "completed": 0}
    for t in trials:
        x1, x2 = t.params["x1"], t.params["x2"]
        if x1 > 7:
            seen["failed"] += 1
            assert t.status == "failed", t
            assert t.failure_reason.startswith(f"ValueError: too hot: {x1:.3f}"), t
            assert t.failure_reason.endswith("(attempt 2/2)"), t
            assert starts[x1, x2] == 2
        elif x2 > 12:
            seen["timeout"] += 1
            assert t.status == "failed", t
            assert t.failure_reason == f"timeout after {timeout:g} s (attempt 2/2)", t
            assert starts[x1, x2] == 2
        else:
            assert t.status == "completed", t
            assert t.outcomes["y"] == (x1 - 1.0) ** 2 + (x2 - 3.0) ** 2
            again = (x1, x2) == killed
            seen["killed" if again else "completed"] += 1
            assert starts[x1, x2] == (2 if again else 1), t
    assert all(seen.values()), seen  # each behaviour happened at least once
    assert sum(starts.values()) == len(log)

    # Asynchronous proposals: while two trials were pending together, the second was
    # proposed knowing of the first, so they are distinct points (encoded distance).
    Z = campaign.space.encode([t.params for t in trials])
    spans = [(t.asked_at, t.told_at) for t in trials]
    overlaps = [(i, j) for i in range(len(trials)) for j in range(i)
                if spans[i][0] < spans[j][1] and spans[j][0] < spans[i][1]]
    assert overlaps, "no two evaluations ever ran at once"
    assert min(np.linalg.norm(Z[i] - Z[j]) for i, j in overlaps) > 1e-3
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans])
    assert max(np.cumsum([d for _, d in events])) == 2

    assert all(_gone(e["pid"]) for e in log if (e["x1"], e["x2"]) == killed
               or (e["x2"] > 12 and e["x1"] <= 7))


def test_local_executor_survives_failures_hangs_and_a_killed_process(lab):
    campaign = _campaign(lab / "record.zarr")
    t0 = time.monotonic()
    with LocalExecutor(max_workers=2, timeout=4, retries=1) as executor:
        campaign.run(PythonOracle(str(lab / "lab_oracle.py") + ":lab"), budget=10,
                     executor=executor)
    assert time.monotonic() - t0 < HANG_S
    assert len(campaign.trials) == 10
    _check_campaign(campaign, lab, timeout=4)
    # A killed evaluation process took nothing else with it: every evaluation had its own.
    assert len({e["pid"] for e in _log(lab)}) == len(_log(lab))
    reopened = wb.Campaign.open(lab / "record.zarr", tracking=None)
    assert [(t.status, t.failure_reason) for t in reopened.trials] == \
        [(t.status, t.failure_reason) for t in campaign.trials]


def test_interrupted_run_leaves_nothing_running_and_resumes(lab):
    store = lab / "record.zarr"
    campaign = _campaign(store, n_initial=50)  # space-filling only: no model needed here

    def stop(trial):
        deadline = time.monotonic() + 60
        while not any(e["x2"] > 12 for e in _log(lab)) and time.monotonic() < deadline:
            time.sleep(0.05)
        raise KeyboardInterrupt

    # Sobol point 0 has x2 > 12 (hangs); point 1 finishes first and the callback "presses
    # Ctrl-C" once point 0 is surely running.
    with LocalExecutor(max_workers=2, timeout=60) as executor:
        with pytest.raises(KeyboardInterrupt):
            campaign.run(PythonOracle(f"{lab / 'lab_oracle.py'}:hang_high"), budget=4,
                         executor=executor, callback=stop)
        assert executor.active == 0
    log = _log(lab)
    assert sorted((e["x1"], e["x2"]) for e in log) == \
        sorted((t.params["x1"], t.params["x2"]) for t in campaign.trials)
    assert all(_gone(e["pid"]) for e in log)
    reopened = wb.Campaign.open(store, tracking=None)
    assert [t.status for t in reopened.trials] == ["pending", "completed"]
    assert reopened.trials[0].params["x2"] > 12  # the hung one, cut short, stays pending

    with LocalExecutor(max_workers=2) as executor:
        reopened.run(PythonOracle(f"{lab / 'lab_oracle.py'}:calm"), budget=4, executor=executor)
    assert [t.status for t in reopened.trials] == ["completed"] * 4
    for t in reopened.trials:
        assert t.outcomes["y"] == (t.params["x1"] - 1.0) ** 2 + (t.params["x2"] - 3.0) ** 2


def test_an_evaluation_dies_with_its_parent(lab):
    """SIGKILL of the process running the loop: its evaluation process exits too."""
    script = textwrap.dedent(f"""\
        import sys, time
        from workbench.executors import LocalExecutor
        from workbench.oracles import PythonOracle
        if __name__ == "__main__":
            ex = LocalExecutor(1)
            ex.submit(PythonOracle({str(lab / 'lab_oracle.py') + ':hang_forever'!r}), {{}})
            print("submitted", flush=True)
            time.sleep({HANG_S})
        """)
    (lab / "parent.py").write_text(script)
    parent = subprocess.Popen([sys.executable, "parent.py"], cwd=lab, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (lab / "hung.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        child = int((lab / "hung.pid").read_text())
        assert psutil.pid_exists(child)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(child)


def test_spec_executor_and_command_oracle_through_workbench_run(tmp_path):
    (tmp_path / "reactor.py").write_text(textwrap.dedent("""\
        import json, sys
        t, p = float(sys.argv[1]), float(sys.argv[2])
        print(json.dumps({"yield": -((t - 70) / 10) ** 2 - (p - 2) ** 2}))
        """))
    (tmp_path / "spec.yaml").write_text(textwrap.dedent(f"""\
        name: reactor
        space:
          - {{name: temperature, type: continuous, low: 30, high: 110}}
          - {{name: pressure, type: continuous, low: 1, high: 5}}
        objectives:
          - {{name: yield, direction: maximize}}
        initial_design: {{n: 50}}
        budget: 4
        oracle: {{command: "{sys.executable} reactor.py {{temperature}} {{pressure}}",
                  timeout: 60}}
        executor: {{type: local, workers: 2, timeout: 120, retries: 1}}
        store: record.zarr
        tracking: null
        """))
    env = {k: v for k, v in os.environ.items() if k != "WORKBENCH_DEBUG"}
    result = subprocess.run([sys.executable, "-m", "workbench", "run", "spec.yaml", "-q"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = wb.Campaign.open(tmp_path / "record.zarr", tracking=None).trials
    assert [t.status for t in trials] == ["completed"] * 4
    for t in trials:
        t_, p = t.params["temperature"], t.params["pressure"]
        assert t.outcomes["yield"] == pytest.approx(-((t_ - 70) / 10) ** 2 - (p - 2) ** 2,
                                                    rel=1e-12)


def test_executor_block_shorthand():
    base = {"name": "e", "space": [{"name": "x", "type": "continuous", "low": 0, "high": 1}],
            "objectives": [{"name": "y", "direction": "minimize"}]}
    spec = parse_spec(dict(base, executor={"dask": "tcp://10.0.0.5:8786", "retries": 2}))
    assert spec.executor.type == "dask" and spec.executor.address == "tcp://10.0.0.5:8786"
    assert spec.executor.retries == 2 and spec.executor.timeout is None
    assert parse_spec(spec.to_dict()).executor == spec.executor


# -- Dask ----------------------------------------------------------------------------------


# A normal evaluation on a freshly restarted worker must finish inside the timeout: 3 s
# timed one out (and ran it twice) on two cores shared with three other heavy processes.
DASK_TIMEOUT_S = 6


@pytest.fixture(scope="module")
def dask_executor():
    executor = DaskExecutor(n_workers=2, timeout=DASK_TIMEOUT_S, retries=1)
    try:
        yield executor
    finally:
        executor.shutdown()


def test_dask_local_cluster_survives_failures_hangs_and_a_killed_worker(lab, dask_executor):
    client = dask_executor.client
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.nthreads())
    campaign = _campaign(lab / "record.zarr")
    t0 = time.monotonic()
    campaign.run(PythonOracle(f"{lab / 'lab_oracle.py'}:lab"), budget=8, executor=dask_executor)
    assert time.monotonic() - t0 < HANG_S
    assert len(campaign.trials) == 8
    _check_campaign(campaign, lab, timeout=DASK_TIMEOUT_S)
    # The cluster healed: both workers are back (new processes) for the next campaign.
    client.wait_for_workers(2, timeout=60)


def test_dask_scheduler_address_from_an_executor_block(lab, dask_executor):
    """``executor: {dask: ADDRESS}`` connects to a running scheduler, and leaves it running."""
    address = dask_executor.client.scheduler.address
    campaign = _campaign(lab / "record.zarr", n_initial=50)
    campaign.run(PythonOracle(f"{lab / 'lab_oracle.py'}:calm"), budget=3,
                 executor={"dask": address, "timeout": 30})
    assert [t.status for t in campaign.trials] == ["completed"] * 3
    assert {e["pid"] for e in _log(lab)} <= set(dask_executor.client.run(os.getpid).values())
    assert dask_executor.client.submit(sum, [1, 2]).result() == 3  # still up
