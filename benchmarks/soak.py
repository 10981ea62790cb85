"""Soak: 1,000 ask/tell cycles with random oracle failures and 20 SIGKILLs of the worker.

Lost, duplicated and mismatched observations (all must be 0) after a campaign's worker
process is killed at random instants and restarted, with the time per tell and per proposal
over the run, the restart times and the store's size on disk.

A worker process asks for one experiment at a time (GP proposals after a 6-point design,
with a small model budget), evaluates a cheap oracle that fails for a share of the trials
(half reported with ``tell_failed``, half as a NaN under ``bad_observations: fail``), tells
the result and only then appends an acknowledgement line (fsynced). This supervisor SIGKILLs
the worker at random instants, ``--kills`` times over the run, and starts a new one, which
first re-runs the trials its predecessor left pending, as a lab would. At the end a fresh
process reopens the store and compares it with the acknowledgements. Times are medians per
window of cycles.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

FAILURE_RATE = 0.1
TRIAL_SEED_STRIDE = 1_000_003  # a prime: each (seed, trial) pair gets its own oracle draw
MIN_KILL_CYCLE = 5  # no kill in the first or last cycles
MAX_WINDOW = 100
QUICK = {"cycles": 40, "kills": 2}
FULL_DISK_SIZE = "16m"  # the tmpfs the store lives on with --full-disk
FULL_DISK_ROOM = 4096  # bytes left free while the disk is "full"
RETRY_SLEEP_S = 0.05


def _retrying(call, *args, **kwargs):
    """``call`` until it does not fail with OSError (a full disk), as a lab script would;
    returns (result, number of failed attempts)."""
    failures = 0
    while True:
        try:
            return call(*args, **kwargs), failures
        except OSError:
            failures += 1
            time.sleep(RETRY_SLEEP_S)


def spec(store: Path, seed: int) -> dict:
    """The soak campaign: Branin, GP proposals with a small model budget."""
    return {
        "name": "soak", "partner": "bench", "store": str(store), "tracking": None,
        "seed": seed,
        "space": [{"name": "x1", "type": "continuous", "low": -5.0, "high": 10.0},
                  {"name": "x2", "type": "continuous", "low": 0.0, "high": 15.0}],
        "objectives": [{"name": "y", "direction": "minimize"}],
        "initial_design": {"n": 6},
        "surrogate": {"restarts": 1},
        "acquisition": {"raw_samples": 256, "num_restarts": 4, "steps": 30},
        "bad_observations": "fail",
    }


def outcome(trial_id: int, params: dict, seed: int) -> tuple[str, float | None]:
    """What the oracle does for a trial, as a function of its id and params only, so
    that the check can recompute it: ("ok", y), ("fail", None) or ("nan", None)."""
    from workbench.problems import branin

    u = random.Random(seed * TRIAL_SEED_STRIDE + trial_id).random()
    if u < FAILURE_RATE / 2:
        return "fail", None
    if u < FAILURE_RATE:
        return "nan", None
    return "ok", float(branin(params["x1"], params["x2"]))


# -- the worker (a separate process, killed at random) --------------------------------------


def worker(store: Path, acks: Path, cycles: int, seed: int) -> int:
    """Ask/tell until the campaign has ``cycles`` finished trials; ack each after tell."""
    import warnings

    import workbench as wb

    warnings.simplefilter("ignore", RuntimeWarning)  # the NaN tells warn by design
    c = wb.Campaign.open(store)
    ready = False
    with open(acks, "a") as log:
        def finish(trial, ask_s: float) -> None:
            nonlocal ready
            kind, y = outcome(trial.id, trial.params, seed)
            t0 = time.perf_counter()
            if kind == "fail":
                _, failures = _retrying(c.tell_failed, trial.id, "simulated reactor failure")
            else:
                _, failures = _retrying(c.tell, trial.id, {"y": math.nan if kind == "nan" else y})
            tell_s = time.perf_counter() - t0
            log.write(json.dumps({"id": trial.id, "kind": kind, "y": y, "ask_s": ask_s,
                                  "tell_s": tell_s, "pid": os.getpid(),
                                  "write_failures": failures, "t": time.time()}) + "\n")
            log.flush()
            os.fsync(log.fileno())
            if not ready:  # imports and first compile done: kills from now on hit the loop
                print("ready", flush=True)
                ready = True

        for trial in c.pending():  # left by a killed predecessor: run them first
            finish(trial, math.nan)
        while sum(t.status != "pending" for t in c.trials) < cycles:
            t0 = time.perf_counter()
            (trial,), _ = _retrying(c.ask, 1)
            finish(trial, time.perf_counter() - t0)
    _retrying(c.compact)
    print("done", flush=True)
    return 0


# -- the supervisor ---------------------------------------------------------------------------


def _acks(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return fh.read().count(b"\n")
    except FileNotFoundError:
        return 0


def _this_benchmark(*options: str) -> list[str]:
    """The command that runs this benchmark in a fresh process with ``options``."""
    return [sys.executable, "-m", "benchmarks", "run", "soak", *options]


def _environment() -> dict[str, str]:
    """This process's environment without a tracking server: the soak tracks nothing."""
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def _start(store: Path, acks: Path, cycles: int, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        _this_benchmark("--worker", str(store), str(acks), "--cycles", str(cycles),
                        "--seed", str(seed)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_environment(),
        cwd=common.ROOT)


def check(store: Path, acks: list[dict], seed: int) -> dict:
    """Compare the reopened store with the acknowledgements (every count must be 0)."""
    import workbench as wb

    trials = wb.Campaign.open(store, tracking=None).trials
    by_id = {t.id: t for t in trials}
    ids = [a["id"] for a in acks]
    report = {
        "trials": len(trials),
        "gapless_ids": [t.id for t in trials] == list(range(len(trials))),
        "duplicated": len(ids) - len(set(ids)),
        "lost": sum(1 for a in acks if a["id"] not in by_id or by_id[a["id"]].status == "pending"),
        "mismatched": 0, "unacknowledged_told": 0,
    }
    for t in trials:
        kind, y = outcome(t.id, t.params, seed)
        expected = {"ok": "completed", "fail": "failed", "nan": "failed"}[kind]
        if t.status == "pending":
            continue
        if t.status != expected or (kind == "ok" and t.outcomes != {"y": y}) \
                or (kind == "nan" and "not finite" not in (t.failure_reason or "")):
            report["mismatched"] += 1
    acked = set(ids)
    report["unacknowledged_told"] = sum(1 for t in trials
                                        if t.status != "pending" and t.id not in acked)
    for a in acks:
        t = by_id.get(a["id"])
        if t is not None and a["kind"] == "ok" and t.outcomes != {"y": a["y"]}:
            report["mismatched"] += 1
    report["pending_at_end"] = sum(t.status == "pending" for t in trials)
    report["completed"] = sum(t.status == "completed" for t in trials)
    report["failed"] = sum(t.status == "failed" for t in trials)
    return report


def _check_fresh(store: Path, acks: Path, seed: int) -> dict:
    """``check`` in a fresh process: the reader shares nothing with the writers, and
    runs the code they ran (the tree may change during a long soak)."""
    proc = subprocess.run(
        _this_benchmark("--check", str(store), str(acks), "--seed", str(seed)),
        capture_output=True, text=True, env=_environment(), cwd=common.ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"check failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _windows(acks: list[dict], key: str, size: int) -> list[float]:
    """Median of ``key`` (ms) per window of ``size`` acknowledged cycles."""
    import numpy as np

    out = []
    for lo in range(0, len(acks), size):
        vals = [a[key] for a in acks[lo:lo + size] if not math.isnan(a[key])]
        out.append(float(np.median(vals)) * 1e3 if vals else math.nan)
    return out


def supervise(args: argparse.Namespace) -> dict:
    import workbench as wb

    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="soak-"))
    store, ack_path = work / "soak.zarr", work / "acks.jsonl"
    disk = None
    if args.full_disk:
        disk = _small_disk(work / "disk")
        store = disk / "soak.zarr"
    wb.Campaign.from_dict(spec(store, args.seed))
    filler = _Filler(disk, random.Random(args.seed + 1)) if disk is not None else None
    try:
        result = _supervise(args, rng, work, store, ack_path)
    finally:
        if filler is not None:
            result_filler = filler.stop()
        if disk is not None:
            subprocess.run(["umount", "-l", str(disk)], check=False)
    if filler is not None:
        result.update(result_filler)
    return result


def _small_disk(path: Path) -> Path:
    """A small tmpfs at ``path`` (needs root), so that a filler can make it full."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FULL_DISK_SIZE}", "tmpfs",
                    str(path)], check=True)
    return path


class _Filler:
    """Fills the disk (leaving FULL_DISK_ROOM bytes) and empties it again, at random
    intervals, in a background thread, while the worker asks and tells."""

    def __init__(self, disk: Path, rng: random.Random):
        import threading

        self.disk, self.rng = disk, rng
        self.file = disk / "filler"
        self.full_periods = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.uniform(0.2, 1.0)):
            st = os.statvfs(self.disk)
            free = st.f_bavail * st.f_frsize
            try:
                with open(self.file, "ab") as fh:
                    fh.write(b"\0" * max(0, free - FULL_DISK_ROOM))
            except OSError:
                pass
            self.full_periods += 1
            self._stop.wait(self.rng.uniform(0.2, 1.0))
            self.file.unlink(missing_ok=True)

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.file.unlink(missing_ok=True)
        return {"full_disk_periods": self.full_periods}


def _supervise(args: argparse.Namespace, rng: random.Random, work: Path, store: Path,
               ack_path: Path) -> dict:
    """Run, kill and restart workers until the campaign has ``args.cycles`` trials."""
    # Kill points: after a random number of acknowledged cycles, then a random
    # delay of up to 1.5 cycles, so the kill falls anywhere in ask, fit, tell or ack.
    targets = sorted(rng.sample(range(MIN_KILL_CYCLE, args.cycles - MIN_KILL_CYCLE), args.kills))
    kills, restarts_s, started = 0, [], time.perf_counter()
    while True:
        t_spawn = time.perf_counter()
        proc = _start(store, ack_path, args.cycles, args.seed)
        line = proc.stdout.readline().strip()
        if line != "ready":
            proc.wait()
            if line == "done" or proc.returncode == 0:
                break
            raise RuntimeError(f"worker failed: {line!r} {proc.stderr.read()[-2000:]}")
        restarts_s.append(time.perf_counter() - t_spawn)
        if kills < args.kills:
            while _count_lines(ack_path) < targets[kills] and proc.poll() is None:
                time.sleep(0.01)
            recent = [a["ask_s"] + a["tell_s"] for a in _acks(ack_path)[-20:]
                      if not math.isnan(a["ask_s"])]
            cycle = sorted(recent)[len(recent) // 2] if recent else 0.2
            time.sleep(rng.uniform(0.0, 1.5 * cycle))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.wait()
            print(f"kill {kills}/{args.kills} after {_count_lines(ack_path)} acknowledged"
                  " cycles", file=sys.stderr, flush=True)
            continue
        out, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"worker failed: {err[-2000:]}")
        break
    wall = time.perf_counter() - started
    acks = _acks(ack_path)
    result = _check_fresh(store, ack_path, args.seed)
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    journal = store / "_workbench" / "journal.jsonl"
    window = max(1, min(MAX_WINDOW, args.cycles // 10))
    result.update({
        "cycles": args.cycles, "kills": kills, "acknowledged": len(acks), "wall_s": wall,
        "window": window,
        "ask_ms_per_window": _windows(acks, "ask_s", window),
        "tell_ms_per_window": _windows(acks, "tell_s", window),
        "restart_s_median": sorted(restarts_s)[len(restarts_s) // 2],
        "restart_s_first": restarts_s[0],
        "store_bytes": size, "journal_bytes": journal.stat().st_size if journal.exists() else 0,
        "loadavg_at_end": os.getloadavg(), "workdir": str(work),
        "write_failures": sum(a.get("write_failures", 0) for a in acks),
    })
    return result


def markdown(r: dict) -> str:
    """The integrity counts, the restarts and the store, then the times per window."""
    ok = r["lost"] == r["duplicated"] == r["mismatched"] == 0 and r["gapless_ids"]
    lines = [
        f"{r['cycles']} cycles, {r['kills']} SIGKILLs, {r['wall_s']:.0f} s wall; "
        f"{r['completed']} completed, {r['failed']} failed, {r['pending_at_end']} pending.", "",
        "| lost | duplicated | mismatched | gapless ids | told, not acknowledged (killed "
        "before the ack) | store after compaction (MB) | worker restart, median (s) |",
        "| ---: | ---: | ---: | --- | ---: | ---: | ---: |",
        f"| {r['lost']} | {r['duplicated']} | {r['mismatched']} | {r['gapless_ids']} "
        f"| {r['unacknowledged_told']} | {r['store_bytes'] / 1e6:.2f} "
        f"| {r['restart_s_median']:.1f} |", "",
        f"Integrity: {'every acknowledged observation present exactly once' if ok else 'FAILED'}."
        " A restart is the imports, the reopening and the first cycle.", "",
        *([f"The store's disk (a {FULL_DISK_SIZE} tmpfs) was made full"
           f" {r['full_disk_periods']} times; {r['write_failures']} tells failed with"
           " OSError and were retried by the worker.", ""] if "full_disk_periods" in r else []),
        "| cycles | proposal median (ms) | tell median (ms) |", "|---|---:|---:|"]
    w = r["window"]
    for i, (a, t) in enumerate(zip(r["ask_ms_per_window"], r["tell_ms_per_window"])):
        lines.append(f"| {i * w + 1}-{min((i + 1) * w, r['acknowledged'])} | {a:.0f} | "
                     f"{t:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run soak",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full-disk", action="store_true",
                        help="keep the store on a small tmpfs that a filler makes full and"
                             " empties again at random (needs root)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the store and acknowledgement log go (default: a temp dir)")
    parser.add_argument("--worker", nargs=2, metavar=("STORE", "ACKS"), help=argparse.SUPPRESS)
    parser.add_argument("--check", nargs=2, metavar=("STORE", "ACKS"), help=argparse.SUPPRESS)
    args = common.parse_args(parser, argv, QUICK)
    if args.worker:
        return worker(Path(args.worker[0]), Path(args.worker[1]), args.cycles, args.seed)
    if args.check:
        store, acks = Path(args.check[0]), Path(args.check[1])
        print(json.dumps(check(store, _acks(acks), args.seed)))
        return 0
    if args.kills > max(0, args.cycles - 2 * MIN_KILL_CYCLE):
        parser.error(f"--kills {args.kills}: expected at most cycles - {2 * MIN_KILL_CYCLE}")
    run = common.Run.start(__name__, __doc__, args, argv)
    result = supervise(args)
    run.write_raw(result)
    page = run.write_page(markdown(result))
    print(page.read_text())
    ok = result["lost"] == result["duplicated"] == result["mismatched"] == 0 \
        and result["gapless_ids"]
    return 0 if ok else 1
