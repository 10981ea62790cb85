"""The warm worker behind ``workbench ask``, as real processes on a socket folder of the test's
own (``WORKBENCH_WORKER_DIR``).

An ask through the worker writes the same CSV, gives the same ``--json`` document (but for
the times) and stores the same proposals as an in-process ``--no-worker`` ask on a copy of
the same store; the worker refuses a request made for another key and a command it
does not answer, and ``workbench worker stop`` ends it and removes its socket. A worker
killed in the middle of an ask leaves its caller with an error, not a second ask, and a
stale socket: the next ask answers in-process and starts a worker that replaces the socket,
which exits by itself after its idle timeout.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import cli_env

import workbench as wb
from workbench import worker
from workbench.problems import branin
from workbench.store import ZarrStore

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the worker listens on a Unix socket")

SPEC = textwrap.dedent("""\
    name: warm
    partner: tests
    space:
      - {{name: x1, type: continuous, low: -5.0, high: 10.0}}
      - {{name: x2, type: continuous, low: 0.0, high: 15.0}}
    objectives:
      - {{name: y, direction: minimize}}
    initial_design: {{type: sobol, n: {initial}}}
    store: {store}
    tracking: null
    seed: 3
    """)
WAIT_S = 120.0  # the longest a worker may take to start or to exit here
# A worker a failed test leaves behind ends by itself this soon (seconds).
SAFETY_IDLE_S = "60"


def _alive(pid: int) -> bool:
    """The process runs (a zombie that no one reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


@pytest.fixture
def env():
    """Subprocess environment with the worker on, its sockets in a short private folder
    (a Unix socket path has ~100 characters at most); every worker is stopped after."""
    folder = tempfile.mkdtemp(prefix="wbw")
    environ = cli_env()
    environ.update({worker.SWITCH_ENV: "1", worker.DIR_ENV: os.path.join(folder, "s"),
                    worker.IDLE_ENV: SAFETY_IDLE_S})
    yield environ
    for info in worker.workers(environ):
        if info.get("pid"):
            worker.request(info["path"], {"type": "stop"})
            try:
                _wait(lambda: not _alive(info["pid"]), "the worker to stop")
            except AssertionError:
                os.kill(info["pid"], signal.SIGKILL)
    shutil.rmtree(folder, ignore_errors=True)


def _workbench(cwd: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=600)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _campaign(folder: Path, told: int, monkeypatch) -> Path:
    """A spec and its store with ``told`` Branin results, so that the next ask fits a GP."""
    folder.mkdir()
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(initial=4, store="record.zarr"))
    monkeypatch.chdir(folder)  # the store's path is relative, as the CLI reads it
    campaign = wb.Campaign.from_spec(wb.load_spec(spec), base_dir=folder)
    for trial in campaign.ask(told):
        campaign.tell(trial.id, {"y": branin(trial.params["x1"], trial.params["x2"])})
    return folder


def _without_times(doc):
    if isinstance(doc, dict):
        return {k: _without_times(v) for k, v in doc.items() if not k.endswith("_at")}
    if isinstance(doc, list):
        return [_without_times(v) for v in doc]
    return doc


def _served(env: dict) -> dict[int, int]:
    return {i["pid"]: i["served"] for i in worker.workers(env) if i.get("pid")}


def test_an_ask_through_the_worker_equals_one_in_process(tmp_path, env, monkeypatch):
    built = _campaign(tmp_path / "built", told=6, monkeypatch=monkeypatch)
    here, there = tmp_path / "here", tmp_path / "there"
    shutil.copytree(built, here)
    shutil.copytree(built, there)
    started = _workbench(tmp_path, env, "worker", "start")
    assert started.returncode == 0, started.stderr
    (pid,) = _served(env)
    assert oct(os.stat(worker.socket_dir(env)).st_mode & 0o777) == "0o700"
    assert oct(os.stat(worker.socket_path(env)).st_mode & 0o777) == "0o600"

    local = _workbench(here, env, "ask", "spec.yaml", "-n", "2", "-o", "p.csv", "--json",
                       "--no-worker")
    assert local.returncode == 0, local.stderr
    assert _served(env) == {pid: 0}
    remote = _workbench(there, env, "ask", "spec.yaml", "-n", "2", "-o", "p.csv", "--json")
    assert remote.returncode == 0, remote.stderr
    assert _served(env) == {pid: 1}
    assert _without_times(json.loads(remote.stdout)) == _without_times(json.loads(local.stdout))
    assert remote.stderr == local.stderr
    assert (there / "p.csv").read_bytes() == (here / "p.csv").read_bytes()
    with open(there / "p.csv", newline="") as f:
        assert [int(r["trial_id"]) for r in csv.DictReader(f)] == [6, 7]
    stored = [wb.Campaign.open(p / "record.zarr", tracking=None).trials for p in (here, there)]
    assert [len(s) for s in stored] == [8, 8]
    assert [(t.params, t.prediction, t.strategy) for t in stored[0]] == \
        [(t.params, t.prediction, t.strategy) for t in stored[1]]

    path = worker.socket_path(env)
    # Made for another environment (another key), or a command it does not answer: refused.
    other = worker.request(path, {"type": "run", "key": "0" * 64, "argv": ["ask", "spec.yaml"],
                                  "cwd": str(there), "env": env})
    assert other["type"] == "refused"
    status = worker.request(path, {"type": "run", "key": worker.worker_key(env),
                                   "argv": ["status", "spec.yaml"], "cwd": str(there),
                                   "env": env})
    assert status["type"] == "refused"
    assert _served(env) == {pid: 1} and len(wb.Campaign.open(there / "record.zarr").trials) == 8

    stopped = _workbench(tmp_path, env, "worker", "stop")
    assert f"stopped worker pid {pid}" in stopped.stdout
    _wait(lambda: not _alive(pid), "the stopped worker to exit")
    assert not os.path.exists(path)


def test_a_worker_killed_while_asking_is_not_asked_again_and_is_replaced(tmp_path, env):
    """Killed after it took an ask (held here at the store's lock), the worker leaves the
    caller without an answer: it says so and exits 1, and nothing is asked in-process. Its
    socket is then stale; the next ask answers in-process and starts a worker in its place,
    which exits by itself when idle."""
    (tmp_path / "spec.yaml").write_text(SPEC.format(initial=8, store="record.zarr"))
    env[worker.IDLE_ENV] = "3"
    assert _workbench(tmp_path, env, "worker", "start").returncode == 0
    (old,) = _served(env)
    store = ZarrStore(tmp_path / "record.zarr")
    with store.lock():
        asking = subprocess.Popen([sys.executable, "-m", "workbench", "ask", "spec.yaml"],
                                  cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait(lambda: any(i.get("busy") for i in worker.workers(env)), "the ask to start")
        os.kill(old, signal.SIGKILL)
        stdout, stderr = asking.communicate(timeout=WAIT_S)
    assert asking.returncode == 1, stdout + stderr
    assert f"the warm worker (pid {old}) did not answer this ask" in stderr
    assert "`workbench status spec.yaml`" in stderr and "Traceback" not in stderr
    assert not store.exists() and stdout == ""  # not asked again here
    path = worker.socket_path(env)
    _wait(lambda: not _alive(old), "the killed worker to end")
    assert worker.workers(env) == [{"path": path, "stale": True}]

    first = _workbench(tmp_path, env, "ask", "spec.yaml")  # in-process, then starts a worker
    assert first.returncode == 0, first.stderr
    assert "1 proposed" in first.stdout
    _wait(lambda: set(_served(env)) - {old}, "a new worker")
    (new,) = _served(env)
    assert _served(env) == {new: 0}
    # Left alone, it exits after its idle timeout and takes its socket and lock with it.
    _wait(lambda: not _alive(new), "the idle worker to exit")
    assert os.listdir(worker.socket_dir(env)) == []
    assert len(wb.Campaign.open(tmp_path / "record.zarr", tracking=None).trials) == 1
