"""Crash safety and concurrency of the campaign store, with real processes.

A worker asks and tells in a loop and writes an acknowledgement line (fsynced)
only after ``tell`` returns. It is SIGKILLed at random instants; the reopened
store must hold every acknowledged value exactly once. Several workers on one
store at once must get distinct trial ids and distinct points.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL semantics are POSIX")

# Sobol proposals only (a huge initial design): the loop is then fast and the
# kills fall on the store's code paths, not on model fitting.
SPEC = {
    "name": "soak", "partner": "lab",
    "space": [{"name": "x", "type": "continuous", "low": 0.0, "high": 1.0},
              {"name": "k", "type": "integer", "low": 1, "high": 5},
              {"name": "c", "type": "categorical", "choices": ["a", "b", "c"]}],
    "objectives": [{"name": "y", "direction": "minimize"}],
    "initial_design": {"n": 10000},
    "tracking": None, "seed": 3,
}

WORKER = textwrap.dedent("""
    import json, os, sys
    import workbench as wb
    import workbench.campaign.journal
    workbench.campaign.journal.COMPACT_MIN_EVENTS = int(sys.argv[3])  # compact often: kill it mid-swap too
    store, ack_path = sys.argv[1], sys.argv[2]
    c = wb.Campaign.open(store)
    for i in range(int(sys.argv[4])):
        (t,) = c.ask(1)
        y = round(t.params["x"] * 1000.0, 9) + t.params["k"] + 0.1 * t.id
        c.tell(t.id, {"y": y})
        with open(ack_path, "a") as fh:
            fh.write(json.dumps({"id": t.id, "y": y, "pid": os.getpid()}) + "\\n")
            fh.flush()
            os.fsync(fh.fileno())
        if i == 0:  # imports done: from here on the kills hit the loop
            print("ready", flush=True)
""")


def _start(store: Path, ack: Path, compact_every: int, cycles: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(store), str(ack), str(compact_every), str(cycles)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _acks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check(store: Path, acks: list[dict]) -> wb.Campaign:
    c = wb.Campaign.open(store)
    trials = c.trials
    assert [t.id for t in trials] == list(range(len(trials))), "ids are a gapless sequence"
    by_id = {t.id: t for t in trials}
    assert len({a["id"] for a in acks}) == len(acks), "no trial was acknowledged twice"
    for a in acks:
        t = by_id[a["id"]]
        assert t.status == "completed" and t.outcomes == {"y": a["y"]}, (a, t)
    for t in trials:  # unacknowledged: told before the kill, or still pending
        assert t.status in ("completed", "pending")
        if t.status == "completed":
            assert t.outcomes["y"] == round(t.params["x"] * 1000.0, 9) + t.params["k"] + 0.1 * t.id
    return c


def test_sigkill_at_random_instants_loses_nothing(tmp_path):
    store, ack = tmp_path / "soak.zarr", tmp_path / "acks.jsonl"
    wb.Campaign.from_dict({**SPEC, "store": str(store)})
    rng = random.Random(1234)
    kills = 0
    while kills < 10:
        proc = _start(store, ack, compact_every=5, cycles=10**6)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.05, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        _check(store, _acks(ack))
    acks = _acks(ack)
    assert len(acks) >= 20, "the workers made progress between kills"
    c = _check(store, acks)
    # A trial asked but never told is still pending, and can be expired.
    pending = c.pending()
    expired = c.expire_pending(older_than=0.0)
    assert [t.id for t in expired] == [t.id for t in pending]
    assert all(t.status == "failed" and "expired" in t.failure_reason for t in expired)


def test_concurrent_workers_get_distinct_trials_and_points(tmp_path):
    store = tmp_path / "shared.zarr"
    wb.Campaign.from_dict({**SPEC, "store": str(store)})
    workers = 3
    cycles = 12
    acks = [tmp_path / f"acks{i}.jsonl" for i in range(workers)]
    procs = [_start(store, acks[i], compact_every=7, cycles=cycles) for i in range(workers)]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    all_acks = [a for path in acks for a in _acks(path)]
    assert len(all_acks) == workers * cycles
    c = _check(store, all_acks)
    trials = c.trials
    assert len(trials) == workers * cycles
    assert all(t.status == "completed" for t in trials)
    points = {(t.params["x"], t.params["k"], t.params["c"]) for t in trials}
    assert len(points) == len(trials), "two workers were given the same point"
    per_worker = [{a["id"] for a in _acks(path)} for path in acks]
    assert sum(len(s) for s in per_worker) == len(set().union(*per_worker))


def test_torn_journal_line_is_ignored_and_the_next_append_survives(tmp_path):
    store = tmp_path / "torn.zarr"
    c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
    (t0,) = c.ask(1)
    c.tell(t0.id, {"y": 1.5})
    journal = store / "_workbench" / "journal.jsonl"
    with open(journal, "ab") as fh:  # a crash in the middle of writing a line
        fh.write(b'0badc0de {"snap": "x", "event": {"op": "tell", "id": 0')
    again = wb.Campaign.open(store)
    assert again.trials[0].outcomes == {"y": 1.5}
    (t1,) = again.ask(1)
    again.tell(t1.id, {"y": 2.5})
    third = wb.Campaign.open(store)
    assert [t.outcomes for t in third.trials] == [{"y": 1.5}, {"y": 2.5}]


def test_tell_is_idempotent_and_conflicts_are_errors(tmp_path):
    store = tmp_path / "idem.zarr"
    c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
    (t,) = c.ask(1)
    c.tell(t.id, {"y": 3.0})
    c.tell(t.id, {"y": 3.0})  # a retried acknowledgement: harmless
    other = wb.Campaign.open(store)
    with pytest.raises(wb.CampaignError, match="already told"):
        other.tell(t.id, {"y": 4.0})
    lines = (store / "_workbench" / "journal.jsonl").read_text().splitlines()
    assert sum('"op":"tell"' in line for line in lines) == 1
    assert wb.Campaign.open(store).trials[0].outcomes == {"y": 3.0}


def test_audit_records_why_a_trial_was_proposed(tmp_path):
    spec = {**SPEC, "store": str(tmp_path / "audit.zarr"), "initial_design": {"n": 3}}
    c = wb.Campaign.from_dict(spec)
    for _ in range(4):
        (t,) = c.ask(1)
        c.tell(t.id, {"y": (t.params["x"] - 0.3) ** 2 + t.params["k"]})
    sobol = json.loads(c.trials[0].audit)
    assert sobol["strategy"] == "sobol" and sobol["design_index"] == 0
    model = json.loads(wb.Campaign.open(tmp_path / "audit.zarr").trials[3].audit)
    assert model["model"] == "gp" and model["kernel"] == "matern52" and model["n_train"] == 3
    # x and k are ordinal columns under a Matérn-5/2; categories get their own kernel factor.
    kernel = model["hyperparameters"]["kernel"]
    assert kernel["type"] == "product"
    assert "log_lengthscale" in json.dumps(model["hyperparameters"]["kernel_params"])
    assert model["versions"]["jax"] and model["data_hash"]
    assert model["acquisition_value"] == c.trials[3].acquisition_value


_CACHE_READER = """
import sys, time
import jax, jax.numpy as jnp
from workbench._jax import configure_jax
configure_jax()
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
jax.jit(lambda x: jnp.sin(x) * 3.0 + 1.0)(jnp.ones(7)).block_until_ready()
print(time.perf_counter() - t0, flush=True)
"""


def test_persistent_compilation_cache_is_read_under_its_lock(tmp_path):
    # Several workers share the compilation cache; an entry read while another
    # process writes it would be torn, and deserialising it aborts the reader. A
    # writer holds <dir>/.lockfile: a reader's lookup must wait for it.
    from filelock import FileLock

    cache = tmp_path / "jax-cache"
    env = dict(os.environ, WORKBENCH_CACHE_DIR=str(cache),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-c", _CACHE_READER], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with FileLock(str(cache / ".lockfile")):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            time.sleep(1.5)
        waited = float(proc.stdout.readline())
    finally:
        proc.kill()
        proc.wait()
    assert waited >= 1.2
    assert any(p.name != ".lockfile" for p in cache.iterdir())  # and it wrote its program
