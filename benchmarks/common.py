"""What every benchmark shares: its options, its stamp and its results page.

A benchmark module defines a parser of its own options, the reduced settings of ``--quick``
and a ``main(argv)``; this module adds the common options (``--quick``, ``--page``, ``--out``,
``--threads``), stamps the run (machine, package versions, git commit, date, command line,
settings) and writes ``benchmarks/results/NAME.md``, or ``benchmarks/out/NAME.md`` for a
quick run, so that a quick run never replaces recorded figures.

Nothing here imports numpy at module level: the runner may still have to limit the numeric
libraries' threads (``--threads``) before a benchmark loads them.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_DIR = ROOT / "benchmarks"
RESULTS_DIR = BENCHMARKS_DIR / "results"
OUT_DIR = BENCHMARKS_DIR / "out"  # git-ignored: raw results and quick runs
# Seconds a scratch folder's removal waits for the detached tracking deliverers that
# the timed commands started and that may still be writing into it.
DETACHED_WAIT_S = 120.0

# Packages whose versions every page records; those not installed are listed as such.
VERSION_PACKAGES = ("sciworkbench", "jax", "jaxlib", "equinox", "optax", "numpyro", "numpy",
                    "scipy", "zarr", "xarray", "mlflow", "torch", "gpytorch", "botorch", "optuna")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")
# Options that say where output goes, not what was measured: left out of a page's settings.
OUTPUT_OPTIONS = frozenset({"page", "out", "quick", "plot"})
QUICK_NOTE = ("**Quick run** (`--quick`): reduced settings, written to `benchmarks/out/` "
              "so that it never replaces the recorded figures in `benchmarks/results/`; "
              "it checks that the benchmark runs, its figures are not a measurement.")


# -- options ---------------------------------------------------------------------------


# This checkout's packages, run from source by the benchmarks' timed processes.
PACKAGES = ("workbench", "surrogates", "active_learning")


def compile_bytecode() -> None:
    """Write this checkout's bytecode cache (``__pycache__``), as installing the package
    does: the anchors run from installed packages whose bytecode is compiled, and with
    ``PYTHONDONTWRITEBYTECODE`` set in the environment the checkout's modules would
    otherwise be compiled from source by every timed process."""
    subprocess.run([sys.executable, "-m", "compileall", "-q",
                    *(str(ROOT / p) for p in PACKAGES)], check=True)


def limit_threads(threads: int) -> None:
    """Hold OpenBLAS, MKL, OpenMP and XLA's CPU client to ``threads`` threads each.

    Takes effect only in libraries not loaded yet, so the runner calls it before it imports
    a benchmark; subprocesses that a benchmark starts inherit it.
    """
    for var in THREAD_VARIABLES[:-1]:
        os.environ[var] = str(threads)
    flag = "--xla_cpu_multi_thread_eigen=" + ("true" if threads > 1 else "false")
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
               quick: Mapping[str, Any]) -> argparse.Namespace:
    """Add the common options to ``parser`` and parse ``argv``.

    With ``--quick`` the options in ``quick`` (destination -> value) become the defaults,
    so that an option given on the command line still wins over the reduced setting.
    """
    common = parser.add_argument_group("common to every benchmark")
    common.add_argument("--quick", action="store_true",
                        help="reduced settings (" + _describe(quick) + "); the page and raw "
                             "results go to benchmarks/out/, never to benchmarks/results/")
    common.add_argument("--page", type=Path, default=None,
                        help="the results page (default benchmarks/results/NAME.md, with "
                             "--quick benchmarks/out/NAME.md)")
    common.add_argument("--out", type=Path, default=None,
                        help="raw results as JSON (default benchmarks/out/NAME.json, with "
                             "--quick NAME-quick.json)")
    common.add_argument("--threads", type=int, default=None,
                        help="threads for OpenBLAS, MKL, OpenMP and XLA's CPU client "
                             "(default: each library's own)")
    known, _ = parser.parse_known_args(argv)
    if known.quick:
        parser.set_defaults(**quick)
    args = parser.parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    return args


def _describe(settings: Mapping[str, Any]) -> str:
    return ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in settings.items())


# -- the stamp -------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """CPU model, cores, memory, GPUs, operating system and thread settings of this machine."""
    out = {"cpu": _cpu_model(), "cores": str(os.cpu_count()), "memory": _memory(),
           "gpu": _gpus(), "os": platform.platform()}
    threads = {v: os.environ[v] for v in THREAD_VARIABLES if os.environ.get(v)}
    if threads:
        out["threads"] = " ".join(f"{k}={v}" for k, v in threads.items())
    return out


def _cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], check=False, capture_output=True, text=True).stdout
    except OSError:
        text = ""
    for line in text.splitlines():
        if line.startswith("Model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def _memory() -> str:
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return "unknown"
    return f"{pages * size / 2**30:.0f} GiB"


def _gpus() -> str:
    """NVIDIA GPUs as ``nvidia-smi`` lists them (asking JAX would load it too early)."""
    if shutil.which("nvidia-smi") is None:
        return "none found"
    try:
        proc = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total",
                               "--format=csv,noheader"], check=False, capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    names = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    return "; ".join(names) if names else "none found"


def versions(packages: Iterable[str] = VERSION_PACKAGES) -> dict[str, str | None]:
    """Python's version and each package's (None where it is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_state() -> str:
    """HEAD's short commit, with ``+dirty`` when tracked files have uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               check=False, cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
    except OSError:
        return "unknown"
    return head + ("+dirty" if dirty else "") if head else "unknown"


def command_line(name: str, argv: Sequence[str]) -> str:
    """The runner's command that repeats this run."""
    return shlex.join(["python", "-m", "benchmarks", "run", name, *argv])


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The options that shape what is measured (seeds, sizes, methods), without the ones
    that only say where output goes; unset options (None) are left out."""
    return {k: v for k, v in vars(args).items()
            if k not in OUTPUT_OPTIONS and v is not None and not k.startswith("_")}


# -- one run ---------------------------------------------------------------------------


@dataclass
class Run:
    """One invocation of a benchmark: its options, its stamp and where its output goes."""

    name: str
    doc: str
    args: argparse.Namespace
    stamp: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, module: str, doc: str | None, args: argparse.Namespace,
              argv: Sequence[str] | None) -> Self:
        """Stamp a run of benchmark ``module`` (its ``__name__``) with options ``args``
        parsed from ``argv``; ``doc`` (the module docstring) gives the page's title."""
        name = module.rsplit(".", 1)[-1]
        argv = list(sys.argv[1:] if argv is None else argv)
        stamp = {"date": datetime.now(UTC).isoformat(timespec="seconds"),
                 "commit": git_state(), "command": command_line(name, argv),
                 "settings": settings_of(args), "machine": machine(),
                 "versions": versions(), "loadavg_at_start": list(os.getloadavg())}
        return cls(name, doc or name, args, stamp)

    @property
    def quick(self) -> bool:
        return bool(self.args.quick)

    @property
    def page_path(self) -> Path:
        if self.args.page is not None:
            return Path(self.args.page)
        return (OUT_DIR if self.quick else RESULTS_DIR) / f"{self.name}.md"

    @property
    def raw_path(self) -> Path:
        if self.args.out is not None:
            return Path(self.args.out)
        return OUT_DIR / (f"{self.name}-quick.json" if self.quick else f"{self.name}.json")

    def write_raw(self, report: Mapping[str, Any]) -> Path:
        """Write the raw results (with the stamp) as JSON; return the path."""
        import json

        path = self.raw_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stamp": self.stamp, **report}, indent=1, default=str))
        return path

    def write_page(self, body: str) -> Path:
        """Write the results page: title, what it measures, the stamp, then ``body``."""
        return write_page(self.page_path, self.doc, self.stamp, body, quick=self.quick)


def write_page(path: Path, doc: str, stamp: Mapping[str, Any], body: str,
               quick: bool = False) -> Path:
    """A results page at ``path``: the first line of ``doc`` as title, its first paragraph as
    what the benchmark measures, the stamp as a table, then ``body`` (markdown tables)."""
    title, _, rest = doc.strip().partition("\n")
    measures = rest.strip().split("\n\n", 1)[0].replace("\n", " ")
    lines = [f"# {title.strip().rstrip('.')}", "", measures, ""]
    if quick:
        lines += [QUICK_NOTE, ""]
    lines += stamp_table(stamp) + ["", body.strip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path


def stamp_table(stamp: Mapping[str, Any]) -> list[str]:
    """The stamp as markdown table rows: date, commit, command, settings, machine, load,
    versions (installed ones, then those missing)."""
    m = stamp.get("machine", {})
    vers = stamp.get("versions", {})
    load = stamp.get("loadavg_at_start")
    rows = [("date", f"{stamp.get('date', '?')} (UTC)"),
            ("commit", f"`{stamp.get('commit', '?')}`"),
            ("command", f"`{stamp.get('command', '?')}`")]
    rows += [(k, str(v)) for k, v in stamp.items() if k not in _STAMP_KEYS]
    settings = stamp.get("settings") or {}
    rows.append(("settings", ", ".join(f"{k} = {v}" for k, v in settings.items()) or "defaults"))
    rows.append(("machine", ", ".join(
        f"{k} {v}" if k != "cpu" else str(v) for k, v in m.items())))
    if load:
        rows.append(("load average", f"{load[0]:.1f} at start, {os.getloadavg()[0]:.1f} "
                                     "when written"))
    rows.append(("versions", ", ".join(f"{k} {v}" for k, v in vers.items() if v)))
    missing = [k for k, v in vers.items() if not v]
    if missing:
        rows.append(("not installed", ", ".join(missing)))
    return ["| run | |", "| --- | --- |"] + [f"| {k} | {_cell(v)} |" for k, v in rows]


_STAMP_KEYS = frozenset({"date", "commit", "command", "settings", "machine", "versions",
                         "loadavg_at_start"})


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- statistics and timing ---------------------------------------------------------------


def workbench_env(drop: Iterable[str] = (), **extra: str) -> dict[str, str]:
    """Environment for a ``python -m workbench`` process a benchmark times: this checkout
    first on the path, no tracking URI or debug flag (nor the names in ``drop``) from
    outside, tables 200 columns wide; ``extra``: variables to set."""
    env = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "WORKBENCH_DEBUG", *drop):
        env.pop(key, None)
    env["COLUMNS"] = "200"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def timed_process(argv: Sequence[str], cwd: Path, env: Mapping[str, str],
                  timeout: float) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds, stdout) of one fresh process, start to exit; CPU is
    user + system time of the process (and of the children it waited for). Raises
    RuntimeError with the tail of its output when it fails."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(list(argv), cwd=cwd, env=dict(env), capture_output=True, text=True,
                          timeout=timeout)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:3]))} failed ({proc.returncode}):"
                           f" {proc.stdout[-2000:]} {proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


@contextmanager
def scratch(prefix: str = "bench-") -> Iterator[Path]:
    """A temporary folder for a benchmark's campaigns, removed on exit once the detached
    tracking deliverers its commands started (``workbench.deliver``) stop writing into it;
    ``tempfile.TemporaryDirectory`` fails when a file appears while it removes the tree."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        deadline = time.monotonic() + DETACHED_WAIT_S
        while True:
            try:
                shutil.rmtree(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    log(f"could not remove {path}: a detached process still writes there")
                    break
                time.sleep(0.5)


def median(values: Iterable[float]) -> float:
    """The median as a float."""
    return float(statistics.median(list(values)))


def quartiles(values: Iterable[float]) -> tuple[float, float, float]:
    """(q25, median, q75) by linear interpolation; with an infinite value among them (a run
    that found no feasible point) the nearest order statistics, so that inf stays the worst
    value instead of turning the interpolation into nan."""
    import numpy as np

    v = np.sort(np.asarray(list(values), dtype=float))
    method = "nearest" if np.isinf(v).any() else "linear"
    return tuple(float(np.percentile(v, q, method=method)) for q in (25, 50, 75))


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """(result, wall seconds, process CPU seconds) of one call ``fn(*args, **kwargs)``."""
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


class Stopwatch:
    """Wall-clock and process CPU time of the timed blocks, one entry per block. CPU time
    sums all threads of the process and moves less when other work shares the machine."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Self:
        self._w, self._c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.process_time() - self._c)

    def drop_last(self) -> None:
        """Forget the last block (it turned out not to be what is measured)."""
        self.wall.pop()
        self.cpu.pop()


def log(msg: str) -> None:
    """A progress line on stderr, with the time of day."""
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


BENCH_EXTRA_HINT = "pip install -e '.[bench]'"


def missing_packages(modules: Iterable[str]) -> list[str]:
    """The import names among ``modules`` that are not installed."""
    import importlib.util

    return [m for m in modules if importlib.util.find_spec(m) is None]


def split_available(methods: Iterable[str], requires: Mapping[str, Iterable[str]]
                    ) -> tuple[list[str], dict[str, str]]:
    """The methods whose packages (``requires[method]``: import names) are installed, and
    for each other one why it is skipped; the reasons are also printed to stderr."""
    available, skipped = [], {}
    for name in methods:
        missing = missing_packages(requires[name])
        if missing:
            skipped[name] = f"{name}: missing {', '.join(missing)} ({BENCH_EXTRA_HINT})"
            print(f"skipping {skipped[name]}", file=sys.stderr)
        else:
            available.append(name)
    return available, skipped
