"""A careless store path, a full disk and two workers on one store never cost data.

Each test reproduces a way a lab lost data: a ``store:`` naming a folder that is
not a store (its contents were deleted), a failed write on a full disk (memory
went ahead of disk, and the store could no longer be opened), and two worker
processes with tracking on (one crashed replaying the other's events).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import workbench as wb

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file semantics")

# Sobol proposals only: these tests exercise the store, not the model.
SPEC = {
    "name": "hard", "partner": "lab",
    "space": [{"name": "x", "type": "continuous", "low": 0.0, "high": 1.0},
              {"name": "c", "type": "categorical", "choices": ["a", "b"]}],
    "objectives": [{"name": "y", "direction": "minimize"}],
    "initial_design": {"n": 10000},
    "tracking": None, "seed": 5,
}


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (symlinks as their target)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def _record(c: wb.Campaign) -> list[tuple]:
    return [(t.id, t.status, t.params, t.outcomes, t.failure_reason) for t in c.trials]


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for key in ("MLFLOW_TRACKING_URI", "WORKBENCH_DEBUG"):
        env.pop(key, None)
    return env


# -- 1. a store path that is not a store is never replaced --------------------------


@pytest.mark.parametrize("where", ["folder", "cwd", "campaigns", "file"])
def test_a_store_path_that_is_not_a_store_is_refused_and_left_alone(tmp_path, monkeypatch,
                                                                     where):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "important" / "sub").mkdir(parents=True)
    (tmp_path / "important" / "sub" / "thesis.txt").write_text("years of work")
    (tmp_path / "spec.yaml").write_text("name: x\n")
    wb.Campaign.from_dict({**SPEC, "store": "campaigns/other.zarr"})
    (tmp_path / "campaigns" / "mlflow.db").write_bytes(b"tracking data")
    (tmp_path / "notes.txt").write_text("a file")
    store = {"folder": "important", "cwd": ".", "campaigns": "campaigns",
             "file": "notes.txt"}[where]
    before = _tree(tmp_path)
    with pytest.raises(wb.CampaignError, match="store: ") as err:
        wb.Campaign.from_dict({**SPEC, "store": store})
    assert "not a campaign store" in str(err.value)
    assert _tree(tmp_path) == before


def test_validate_and_run_refuse_a_folder_that_is_not_a_store(tmp_path):
    (tmp_path / "important").mkdir()
    (tmp_path / "important" / "thesis.txt").write_text("years of work")
    spec = {**SPEC, "store": "important", "oracle": {"builtin": "branin"}, "budget": 3,
            "space": [{"name": "x1", "type": "continuous", "low": -5.0, "high": 10.0},
                      {"name": "x2", "type": "continuous", "low": 0.0, "high": 15.0}]}
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))  # JSON is YAML
    before = _tree(tmp_path)
    for command in ("validate", "run"):
        result = subprocess.run([sys.executable, "-m", "workbench", command, "exp.yaml"],
                                cwd=tmp_path, env=_env(), capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "important" in result.stderr and "not a campaign store" in result.stderr
        assert "Traceback" not in result.stderr
    assert _tree(tmp_path) == before


def test_a_store_reached_through_a_symlink_keeps_the_link(tmp_path):
    real, link = tmp_path / "disk" / "real.zarr", tmp_path / "link.zarr"
    real.parent.mkdir()
    c = wb.Campaign.from_dict({**SPEC, "store": str(real)})
    link.symlink_to(real, target_is_directory=True)
    c = wb.Campaign.open(link)
    for t in c.ask(3):
        c.tell(t.id, {"y": t.params["x"]})
    c.compact()  # replaces the snapshot folder
    assert link.is_symlink() and link.resolve() == real.resolve()
    assert _record(wb.Campaign.open(real)) == _record(c)
    assert not any(p.name.startswith(".link.zarr") for p in tmp_path.iterdir())


def test_an_empty_folder_may_become_a_store(tmp_path):
    (tmp_path / "new.zarr").mkdir()
    c = wb.Campaign.from_dict({**SPEC, "store": str(tmp_path / "new.zarr")})
    (t,) = c.ask(1)
    c.tell(t.id, {"y": 1.0})
    assert _record(wb.Campaign.open(tmp_path / "new.zarr")) == _record(c)


# -- 2. a failed write leaves memory equal to disk ----------------------------------


def _exercise_until_full(c: wb.Campaign, attempts: int = 400) -> list[str]:
    """ask / tell / tell_failed / compact until writes fail; after every failure the
    campaign in memory must equal the store on disk. Returns the operations that failed."""
    failed = []
    for i in range(attempts):
        op = ["ask", "tell", "ask", "fail", "compact"][i % 5]
        pending = [t for t in c.trials if t.status == "pending"]
        try:
            if op == "ask":
                c.ask(2)
            elif op == "tell" and pending:
                c.tell(pending[0].id, {"y": pending[0].params["x"] + 0.5})
            elif op == "fail" and pending:
                c.tell_failed(pending[-1].id, "reactor clogged")
            elif op == "compact":
                c.compact()
        except OSError:
            failed.append(op)
            assert _record(wb.Campaign.open(c.spec.store)) == _record(c), op
    return failed


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True)
    if result.returncode != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_leaves_memory_equal_to_disk_and_loses_nothing(tmp_path):
    with _tmpfs(tmp_path / "small", "2m") as disk:
        store = disk / "c.zarr"
        c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
        filler = disk / "filler"
        st = os.statvfs(disk)  # fill the disk, keeping a little room
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 64 * 1024))
        failed = _exercise_until_full(c)
        assert {"ask", "tell"} <= set(failed) or "ask" in failed, failed
        assert not any(p.name.startswith(".c.zarr.tmp-") for p in disk.iterdir()), \
            "a failed compaction keeps no partial copy"
        # The disk empties: the same campaign object goes on, and every retry lands.
        filler.unlink()
        pending = [t for t in c.trials if t.status == "pending"]
        for t in pending:
            c.tell(t.id, {"y": t.params["x"] + 0.5})
        c.ask(2)
        c.compact()
        again = wb.Campaign.open(store)
        assert _record(again) == _record(c)
        assert [t.id for t in again.trials] == list(range(len(again.trials)))


_FSIZE_WORKER = textwrap.dedent("""
    import json, resource, signal, sys
    import workbench as wb
    sys.path.insert(0, sys.argv[3])
    from test_hardening import _exercise_until_full, _record
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG as an OSError, not a kill
    c = wb.Campaign.from_dict({**json.loads(sys.argv[1]), "store": sys.argv[2]})
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1500, hard))
    failed = _exercise_until_full(c)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    for t in [t for t in c.trials if t.status == "pending"]:
        c.tell(t.id, {"y": 1.0})
    c.compact()
    same = _record(wb.Campaign.open(sys.argv[2])) == _record(c)
    print(json.dumps({"failed": failed, "same": same, "n": len(c.trials)}))
""")


def test_a_file_size_limit_leaves_memory_equal_to_disk(tmp_path):
    """RLIMIT_FSIZE makes every write past a size fail with EFBIG, on any filesystem."""
    result = subprocess.run(
        [sys.executable, "-c", _FSIZE_WORKER, json.dumps(SPEC), str(tmp_path / "c.zarr"),
         str(Path(__file__).parent)],
        env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["failed"] and out["same"], out


def test_a_failed_journal_append_leaves_no_partial_line(tmp_path):
    """A write cut short (here: the size limit strikes mid-line) is cut back off, so
    the next append does not land behind garbage that would read as damage."""
    from workbench.store import ZarrStore

    c = wb.Campaign.from_dict({**SPEC, "store": str(tmp_path / "c.zarr")})
    zs = ZarrStore(tmp_path / "c.zarr")
    token = zs.token()
    size = zs.journal_path.stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    import signal

    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
        with pytest.raises(OSError):
            zs.append(token, [{"op": "meta", "stopped": "x" * 100}])
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert zs.journal_path.stat().st_size == size
    (t,) = c.ask(1)
    assert wb.Campaign.open(tmp_path / "c.zarr").trials[0].id == t.id


# -- 4. several workers on one store, tracking on and off ----------------------------

_WORKER = textwrap.dedent("""
    import json, os, sys
    import workbench as wb
    store, cycles = sys.argv[1], int(sys.argv[2])
    c = wb.Campaign.open(store)
    out = []
    for i in range(cycles):
        (t,) = c.ask(1)
        c.tell(t.id, {"y": t.params["x"]})
        out.append(t.id)
    print(json.dumps(out))
""")


@pytest.mark.parametrize("tracking", [False, True])
def test_several_workers_with_short_cycles_share_a_store(tmp_path, tracking):
    """Fresh stores, so that every round starts the workers' tracking runs anew: each
    worker then records its run id while the others ask and tell (where the race was)."""
    workers, cycles, rounds = 3, 20, 2
    for r in range(rounds):
        store = tmp_path / f"shared{r}.zarr"
        spec = {**SPEC, "store": str(store), "seed": r}
        if tracking:
            spec["tracking"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
        wb.Campaign.from_dict(spec)
        procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(store), str(cycles)],
                                  env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(workers)]
        told: list[int] = []
        for p in procs:
            out, err = p.communicate(timeout=600)
            assert p.returncode == 0, err
            told += json.loads(out.strip().splitlines()[-1])
        c = wb.Campaign.open(store, tracking=None)
        assert sorted(told) == list(range(workers * cycles)), "each id once, no gaps"
        assert all(t.status == "completed" for t in c.trials)
        assert [t.outcomes["y"] for t in c.trials] == [t.params["x"] for t in c.trials]


def test_a_worker_recording_its_tracking_run_does_not_skip_another_workers_trials(tmp_path):
    """Two campaigns on one store in one process behave as two workers. Worker A learns
    its MLflow run id from the delivery thread and records it in the journal while B has
    asked meanwhile: A must replay B's ask before appending, or it would later hand out
    B's trial id again (B then failed replaying the record)."""
    import time

    import mlflow

    store, db = tmp_path / "s.zarr", f"sqlite:///{tmp_path / 'mlflow.db'}"
    a = wb.Campaign.from_dict({**SPEC, "store": str(store), "tracking": db})
    b = wb.Campaign.open(store, tracking=None)
    (ta,) = a.ask(1)  # starts A's tracking run in the background
    client = mlflow.MlflowClient(db)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        experiments = client.search_experiments()
        if any(client.search_runs([e.experiment_id]) for e in experiments):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    (tb,) = b.ask(1)
    a.log_snapshot()  # A records its run id now
    (ta2,) = a.ask(1)
    assert len({ta.id, tb.id, ta2.id}) == 3
    b.tell(tb.id, {"y": 1.0})
    a.tell(ta2.id, {"y": 2.0})
    final = wb.Campaign.open(store, tracking=None)
    assert [t.id for t in final.trials] == [0, 1, 2]
    assert [t.outcomes for t in final.trials] == [{}, {"y": 1.0}, {"y": 2.0}]


# -- 3. damage is reported, never silent ---------------------------------------------


def _damaged_store(tmp_path: Path) -> tuple[Path, wb.Campaign]:
    store = tmp_path / "d.zarr"
    c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
    for t in c.ask(3):
        c.tell(t.id, {"y": t.params["x"]})
    return store, c


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("line", [0, 1])  # the ask line, a tell line
def test_a_damaged_journal_line_that_is_not_the_last_is_an_error_naming_it(tmp_path, line):
    store, _ = _damaged_store(tmp_path)
    journal = store / "_workbench" / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    _flip(journal, sum(len(x) for x in lines[:line]) + len(lines[line]) // 2)
    with pytest.raises(wb.CampaignError, match=rf"journal.jsonl line {line + 1} is damaged"):
        wb.Campaign.open(store)
    result = subprocess.run([sys.executable, "-m", "workbench", "verify", str(store)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and f"line {line + 1}: damaged" in result.stdout
    copy = tmp_path / "recovered.zarr"
    result = subprocess.run([sys.executable, "-m", "workbench", "verify", str(store),
                             "--recover", str(copy)],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert copy.exists() and result.returncode == 1  # the original is still damaged
    if line == 1:  # a tell lost; the trials and the other results are kept
        again = wb.Campaign.open(copy)
        assert [t.status for t in again.trials] == ["pending", "completed", "completed"]


def test_a_torn_last_line_is_dropped_quietly(tmp_path):
    store, c = _damaged_store(tmp_path)
    journal = store / "_workbench" / "journal.jsonl"
    _flip(journal, journal.stat().st_size - 10)  # the last line, newline intact
    again = wb.Campaign.open(store)
    assert [t.status for t in again.trials] == ["completed", "completed", "pending"]


def test_a_flipped_byte_in_the_snapshot_is_an_error(tmp_path):
    store, c = _damaged_store(tmp_path)
    c.compact()
    chunk = store / "x" / "c" / "0"
    _flip(chunk, chunk.stat().st_size // 2)
    with pytest.raises(wb.CampaignError, match="snapshot .* is damaged"):
        wb.Campaign.open(store)
    result = subprocess.run([sys.executable, "-m", "workbench", "verify", str(store), "--json"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    assert result.returncode == 1 and not report["intact"]
    assert any("x/c/0" in d for d in report["damage"])


# -- 5. a read-only store can be read ------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="remounting a tmpfs read-only needs root")
def test_a_store_on_a_read_only_file_system_opens_for_reading(tmp_path):
    with _tmpfs(tmp_path / "archive", "8m") as disk:
        store = disk / "c.zarr"
        c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
        for t in c.ask(3):
            c.tell(t.id, {"y": t.params["x"]})
        (lock := disk / ".c.zarr.lock").unlink(missing_ok=True)
        assert not lock.exists()
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        again = wb.Campaign.open(store)
        assert _record(again) == _record(c)
        assert again.data.sizes["trial"] == 3
        with pytest.raises(wb.CampaignError, match="read-only"):
            again.ask(1)
        result = subprocess.run([sys.executable, "-m", "workbench", "report", str(store),
                                 "-o", str(tmp_path / "report.html")],
                                env=_env(), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "report.html").exists()


# -- 12. CSV files are safe to open in a spreadsheet and parsed strictly --------------


def test_numbers_in_results_are_parsed_strictly():
    from workbench.csvio import parse_number

    assert [parse_number(t) for t in ("71.2", "-3", "+.5", "1e-3", " 2E+04 ")] == \
        [71.2, -3.0, 0.5, 1e-3, 2e4]
    for text in ("7_0", "٧٠", "1,5", "0x10", "", "1e", "--1", "７"):
        with pytest.raises(ValueError):
            parse_number(text)


def test_spreadsheet_formulas_are_neutralised_and_read_back():
    from workbench.csvio import from_spreadsheet, spreadsheet_safe

    for cell in ("=1+2", "+cmd", "-2+3", "@SUM(A1)", "\t=x"):
        safe = spreadsheet_safe(cell)
        assert safe == "'" + cell and from_spreadsheet(safe) == cell
    for value in ("-1.5", "+2", "plain", 3.0, -4):
        assert spreadsheet_safe(value) == value


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=300)


def test_ask_writes_no_formula_cells_and_tell_reads_them_back(tmp_path):
    spec = {**SPEC, "store": "s.zarr", "initial_design": {"n": 10},
            "space": [{"name": "x", "type": "continuous", "low": -1.0, "high": 0.0},
                      {"name": "c", "type": "categorical", "choices": ["=1+2", "@SUM(A1)"]}]}
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    result = _cli(tmp_path, "ask", "exp.yaml", "-n", "4", "-o", "p.csv")
    assert result.returncode == 0, result.stderr
    import csv

    rows = list(csv.reader((tmp_path / "p.csv").open()))
    cells = [c for row in rows for c in row]
    assert not [c for c in cells if c.startswith(("=", "@"))], cells
    assert any(c.startswith("-") for c in cells), "negative numbers stay numbers"
    header = rows[0]
    y = header.index("y")
    filled = [header] + [r[:y] + [f"{i}.5"] + r[y + 1:] for i, r in enumerate(rows[1:])]
    with open(tmp_path / "r.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(filled)
    result = _cli(tmp_path, "tell", "exp.yaml", "r.csv")
    assert result.returncode == 0, result.stderr
    c = wb.Campaign.open(tmp_path / "s.zarr")
    assert [t.outcomes["y"] for t in c.trials] == [0.5, 1.5, 2.5, 3.5]
    assert {t.params["c"] for t in c.trials} <= {"=1+2", "@SUM(A1)"}


def test_tell_refuses_loose_numbers_and_huge_files(tmp_path):
    spec = {**SPEC, "store": "s.zarr"}
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    assert _cli(tmp_path, "ask", "exp.yaml", "-n", "1").returncode == 0
    campaign_id = wb.Campaign.open(tmp_path / "s.zarr").campaign_id
    (tmp_path / "r.csv").write_text(f"trial_id,campaign_id,y\n0,{campaign_id},7_0\n")
    result = _cli(tmp_path, "tell", "exp.yaml", "r.csv")
    assert result.returncode == 2 and "r.csv:2" in result.stderr and "'7_0'" in result.stderr
    with open(tmp_path / "big.csv", "wb") as fh:
        fh.truncate(200 * 1024 * 1024)  # sparse: no real 200 MB written
    result = _cli(tmp_path, "tell", "exp.yaml", "big.csv")
    assert result.returncode == 2 and "MiB" in result.stderr and "MemoryError" not in result.stderr
    assert wb.Campaign.open(tmp_path / "s.zarr").trials[0].status == "pending"


# -- 11. size limits with honest messages ------------------------------------------


def _param_lines(n: int) -> str:
    return "".join(f"  - {{name: p{i}, type: continuous, low: 0, high: 1}}\n" for i in range(n))


@pytest.mark.parametrize("case", ["parameters", "levels", "nesting", "nodes"])
def test_oversized_specs_are_refused_at_once_naming_the_limit(tmp_path, case):
    import time

    head = "name: big\nobjectives: [{name: y, direction: minimize}]\n"
    text = {
        "parameters": head + "space:\n" + _param_lines(1_001),
        "levels": head + "space:\n  - {name: c, type: categorical, choices: ["
                  + ", ".join(f"l{i}" for i in range(100_000)) + "]}\n",
        "nesting": head + "description: " + "[" * 100_000 + "]" * 100_000 + "\n",
        "nodes": head + "space:\n" + _param_lines(12_000),
    }[case]
    (tmp_path / "big.yaml").write_text(text)
    start = time.monotonic()
    result = _cli(tmp_path, "validate", "big.yaml")
    assert time.monotonic() - start < 60  # was minutes, or a hang, before the limits
    assert result.returncode == 2, (result.returncode, result.stderr[-500:])
    expected = {"parameters": "at most 1000", "levels": "at most 10000",
                "nesting": "nesting", "nodes": "at most 100000"}[case]
    assert expected in result.stderr and "alias bomb" not in result.stderr, result.stderr[-500:]


# -- 13. validate finds a python oracle's module without importing it ---------------


def test_validate_reports_a_python_oracle_module_that_cannot_be_found(tmp_path):
    spec = {**SPEC, "store": "s.zarr", "oracle": {"python": "no_such_module_xyz:f"}}
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    result = _cli(tmp_path, "validate", "exp.yaml")
    assert result.returncode == 2 and "no_such_module_xyz" in result.stderr, result.stderr
    # A module that exists is found without being imported: its code does not run.
    (tmp_path / "lab_oracle.py").write_text("open('imported', 'w').close()\ndef f(p): return 1\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("open('imported_pkg', 'w').close()\n")
    (tmp_path / "pkg" / "mod.py").write_text("def f(p): return 1\n")
    for target in ("lab_oracle:f", "pkg.mod:f", "lab_oracle.py:f", "json:loads"):
        (tmp_path / "exp.yaml").write_text(json.dumps({**spec, "oracle": {"python": target}}))
        result = _cli(tmp_path, "validate", "exp.yaml")
        assert result.returncode == 0, (target, result.stderr)
    assert not (tmp_path / "imported").exists() and not (tmp_path / "imported_pkg").exists()
    (tmp_path / "exp.yaml").write_text(json.dumps({**spec, "oracle": {"python": "pkg.nope:f"}}))
    assert _cli(tmp_path, "validate", "exp.yaml").returncode == 2


# -- 6. no password in a tracking URI -----------------------------------------------


def test_a_tracking_uri_with_a_password_is_refused_without_echoing_it(tmp_path):
    secret = "S3cret-pw"
    spec = {**SPEC, "store": str(tmp_path / "s.zarr"),
            "tracking": f"http://acme:{secret}@127.0.0.1:5999"}
    with pytest.raises(wb.WorkbenchError) as err:
        wb.Campaign.from_dict(spec)
    assert "user information" in str(err.value) and secret not in str(err.value)
    with pytest.raises(wb.WorkbenchError):
        wb.Campaign("x", wb.SearchSpace([wb.Continuous("x", 0, 1)]), [wb.Objective("y", "minimize")],
                    store=None, tracking=f"https://u:{secret}@example.org")
    (tmp_path / "exp.yaml").write_text(json.dumps(spec))
    result = _cli(tmp_path, "validate", "exp.yaml")
    assert result.returncode == 2 and secret not in result.stdout + result.stderr
    assert not (tmp_path / "s.zarr").exists()
    wb.Campaign.from_dict({**spec, "tracking": None})
    with pytest.raises(wb.WorkbenchError) as err:
        wb.Campaign.open(tmp_path / "s.zarr", tracking=spec["tracking"])
    assert secret not in str(err.value)


def test_export_writes_every_trial_of_a_store_as_csv(tmp_path):
    import csv

    store = tmp_path / "s.zarr"
    c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
    trials = c.ask(3)
    c.tell(trials[0].id, {"y": 0.25})
    c.tell_failed(trials[1].id, "=HYPERLINK(1)")
    result = _cli(tmp_path, "export", str(store), "-o", "trials.csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [r["status"] for r in rows] == ["completed", "failed", "pending"]
    assert float(rows[0]["y"]) == 0.25
    assert rows[1]["failure_reason"] == "'=HYPERLINK(1)"  # text, not a formula


# -- 10. a batch is refused before any work; no tell waits on another worker's fit ---


def test_a_batch_beyond_the_budget_or_the_maximum_is_refused_at_once(tmp_path):
    import time

    c = wb.Campaign.from_dict({**SPEC, "store": str(tmp_path / "s.zarr"), "budget": 30})
    start = time.monotonic()
    for n in (31, 100_000):
        with pytest.raises(wb.CampaignError, match=r"^n: got"):
            c.ask(n)
    assert time.monotonic() - start < 5
    assert len(wb.Campaign.open(tmp_path / "s.zarr").trials) == 0  # nothing recorded
    c.ask(30)
    with pytest.raises(wb.CampaignError, match="leaves 0 to ask"):
        c.ask(1)
    free = wb.Campaign.from_dict({**SPEC, "store": str(tmp_path / "f.zarr")})
    with pytest.raises(wb.CampaignError, match="at most 1000"):
        free.ask(1001)


_SLOW_ASKER = textwrap.dedent("""
    import sys, time
    import workbench as wb
    from workbench.campaign import proposing
    slow = proposing.Proposer.propose
    def propose(self, *args, **kwargs):  # a model fit that takes seconds
        print("proposing", flush=True)
        time.sleep(float(sys.argv[2]))
        return slow(self, *args, **kwargs)
    proposing.Proposer.propose = propose
    c = wb.Campaign.open(sys.argv[1])
    (t,) = c.ask(1)
    print("asked", t.id, flush=True)
""")


def test_a_tell_does_not_wait_for_another_workers_proposal(tmp_path):
    import time

    store = tmp_path / "s.zarr"
    c = wb.Campaign.from_dict({**SPEC, "store": str(store)})
    (t0,) = c.ask(1)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_ASKER, str(store), "8"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "proposing", proc.stderr.read()
    start = time.monotonic()
    c.tell(t0.id, {"y": 0.5})  # while the other worker proposes
    assert time.monotonic() - start < 4
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "asked 1" in out, err
    again = wb.Campaign.open(store)
    assert [t.status for t in again.trials] == ["completed", "pending"]


def test_a_worker_whose_proposal_was_overtaken_proposes_again(tmp_path):
    store = tmp_path / "s.zarr"
    wb.Campaign.from_dict({**SPEC, "store": str(store)})
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_ASKER, str(store), "4"],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "proposing", proc.stderr.read()
    other = wb.Campaign.open(store)
    (mine,) = other.ask(1)  # overtakes the slow worker
    out, err = proc.communicate(timeout=120)
    # The first "proposing" was read above; the second is the proposal made again.
    assert proc.returncode == 0 and out.count("proposing") == 1 and "asked 1" in out, (out, err)
    trials = wb.Campaign.open(store).trials
    assert [t.id for t in trials] == [0, 1] and trials[0].params != trials[1].params


# -- 7 and 13. reading a store contacts no server unless the user names one ---------


def test_a_received_store_is_reported_without_contacting_its_server(tmp_path):
    """A store tracked to a (here: dead) server: report reads it without contacting that
    host, and with --tracking naming the dead server it gives up within seconds."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    contacts = []

    def accept():  # a "server" that records every connection and never answers
        listener.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = listener.accept()
                contacts.append(conn)
            except OSError:
                pass

    done = threading.Event()
    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        store = tmp_path / "received.zarr"
        c = wb.Campaign.from_dict({**SPEC, "store": str(store), "tracking": None})
        for t in c.ask(3):
            c.tell(t.id, {"y": t.params["x"]})
        c.compact()
        # The sender's record names their server and a run on it.
        zs = __import__("workbench.store", fromlist=["ZarrStore"]).ZarrStore(store)
        ds = zs.read()
        spec = json.loads(ds.attrs["spec"])
        spec["tracking"] = f"http://127.0.0.1:{port}"
        ds.attrs["spec"], ds.attrs["mlflow_run_id"] = json.dumps(spec), "0" * 32
        zs.write(ds)
        env = {**_env(), "MLFLOW_TRACKING_USERNAME": "reader", "MLFLOW_TRACKING_PASSWORD": "pw"}
        result = subprocess.run([sys.executable, "-m", "workbench", "report", str(store),
                                 "-o", str(tmp_path / "r.html")], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert contacts == [], "reading a received store contacted its server"
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-m", "workbench", "report", str(store),
                                 "-o", str(tmp_path / "r2.html"), "--tracking",
                                 f"http://127.0.0.1:{port}"], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - start < 90  # one short try, not minutes of retries
        assert "offline" in (tmp_path / "r2.html").read_text()
    finally:
        done.set()
        thread.join()
        listener.close()
