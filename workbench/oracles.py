"""Oracles: what a closed-loop ``run`` evaluates.

An oracle maps a parameter dict to outcomes: a number (for a single
objective) or a dict of named outcomes. Specs name one of the built-in test
problems, a Python function, or a command (a lab script); the function is
imported only when the campaign runs, never while a spec is validated.

Every oracle built from a spec pickles by name, not by value, so that an
executor can send it to a fresh process or to a Dask worker on another
machine: a built-in problem is a module-level dataclass, a Python oracle
travels as its ``module:function`` target and is imported again where it runs,
and a command oracle is its template, timeout and folder.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import string
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from workbench.errors import WorkbenchError

Oracle = Callable[[dict], Any]

# What a command oracle keeps of stderr for a failure reason: enough to see the
# error a script printed last, short enough for a trial table.
_STDERR_TAIL = 800


class OracleError(WorkbenchError):
    """The oracle cannot be set up (bad target, import error, missing program)."""

    exit_code = 2


class CommandError(WorkbenchError):
    """One evaluation of a command oracle failed; the message is the failure reason."""


def load_python(target: str, base_dir: Path | None = None) -> Oracle:
    """Import ``package.module:function`` or ``path/to/file.py:function``.

    A file path is resolved against ``base_dir`` (the spec's folder) first.
    """
    module_part, _, func_name = target.rpartition(":")
    if module_part.endswith(".py"):
        path = _resolve_file(module_part, base_dir)
        spec = importlib.util.spec_from_file_location(f"_workbench_oracle_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise OracleError(f"oracle.python: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as e:  # noqa: BLE001 - user code, report and stop
            raise OracleError(f"oracle.python: importing {path} failed: {type(e).__name__}: {e}")
    else:
        try:
            module = importlib.import_module(module_part)
        except Exception as e:  # noqa: BLE001
            raise OracleError(
                f"oracle.python: cannot import module {module_part!r}: {type(e).__name__}: {e}"
            ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise OracleError(f"oracle.python: {module_part!r} has no function {func_name!r}")
    return fn


def _resolve_file(module_part: str, base_dir: Path | None) -> Path:
    path = Path(module_part)
    if not path.is_absolute() and base_dir is not None and (base_dir / path).exists():
        path = base_dir / path
    if not path.exists():
        raise OracleError(f"oracle.python: file {module_part!r} not found")
    return path.resolve()


class PythonOracle:
    """A ``module:function`` or ``file.py:function`` oracle that pickles by name.

    The function is imported at construction (so a bad target fails before a
    campaign writes anything) and again, lazily, in whichever process
    unpickles the oracle. A file path is made absolute, so a worker with
    another working directory finds it.
    """

    def __init__(self, target: str, base_dir: Path | None = None):
        module_part, _, func_name = target.rpartition(":")
        if module_part.endswith(".py"):
            target = f"{_resolve_file(module_part, base_dir)}:{func_name}"
        self.target = target
        self._fn: Oracle | None = load_python(target)

    def __call__(self, params: dict) -> Any:
        if self._fn is None:
            self._fn = load_python(self.target)
        return self._fn(params)

    def __getstate__(self) -> dict:
        return {"target": self.target, "_fn": None}

    def __repr__(self) -> str:
        return f"PythonOracle({self.target!r})"


def placeholders(template: str) -> list[str]:
    """Names of the ``{placeholders}`` in a command template, in order of appearance.

    Raises ValueError for a template that cannot be split like a shell line
    (an unclosed quote), for malformed braces, and for positional ``{}``.
    """
    names: list[str] = []
    for token in shlex.split(template):
        for _, field, _, _ in string.Formatter().parse(token):
            if field is None:
                continue
            if field == "" or field.isdigit():
                raise ValueError(f"positional placeholder {{{field}}}; expected {{parameter}}")
            if field not in names:
                names.append(field)
    return names


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (for str.format and JSON)."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value


class CommandOracle:
    """Run a lab script per evaluation: ``./run_reactor.sh {temperature} {pressure}``.

    The template is split like a shell line first and each word is then
    formatted with the parameters, so a parameter value is always exactly one
    argument, whatever it contains: no shell ever reads it. The script runs in
    ``cwd`` (the spec's folder), sees the parameters also as JSON in the
    ``WORKBENCH_PARAMS`` environment variable, and prints its outcomes as JSON
    on stdout: an object ``{"yield": 71.2, ...}`` or one number for a single
    objective. Other output may come before it; the JSON is the whole of stdout
    or its last non-empty line. A non-zero exit, a run longer than ``timeout``
    seconds (the script and everything it started are killed) or output that
    is not JSON raise CommandError with the reason and the tail of stderr.
    """

    def __init__(self, template: str, timeout: float | None = None,
                 cwd: str | Path | None = None):
        try:
            self.names = placeholders(template)
        except ValueError as e:
            raise OracleError(f"oracle.command: got {template!r}; {e}") from None
        self.template = template
        self.argv_template = shlex.split(template)
        if not self.argv_template:
            raise OracleError("oracle.command: got an empty command; expected a program")
        self.timeout = timeout
        self.cwd = str(Path(cwd or ".").resolve())
        program = self.argv_template[0]
        if "{" not in program and not _findable(program, self.cwd):
            raise OracleError(f"oracle.command: program {program!r} not found"
                              f" (in {self.cwd} or on PATH)")

    def argv(self, params: dict) -> list[str]:
        """The argument vector for one evaluation (each template word formatted)."""
        values = {k: _plain(v) for k, v in params.items()}
        missing = [n for n in self.names if n not in values]
        if missing:
            raise CommandError(f"command placeholders {missing} have no parameter value")
        return [word.format(**values) for word in self.argv_template]

    def __call__(self, params: dict) -> Any:
        argv = self.argv(params)
        env = dict(os.environ, WORKBENCH_PARAMS=json.dumps(
            {k: _plain(v) for k, v in params.items()}, default=str))
        try:
            proc = subprocess.Popen(argv, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise CommandError(f"cannot start {argv[0]!r}: {e.strerror or e}") from None
        try:
            stdout, stderr = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            _, stderr = _drain(proc)
            raise CommandError(f"timeout after {self.timeout:g} s"
                               + _tail(stderr, "; stderr: ")) from None
        except BaseException:  # KeyboardInterrupt: leave no script running
            kill_tree(proc.pid)
            _drain(proc)
            raise
        if proc.returncode != 0:
            how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
                   else f"exited with status {proc.returncode}")
            raise CommandError(f"{argv[0]} {how}" + _tail(stderr, "; stderr: "))
        return parse_outcomes(stdout, stderr)

    def __repr__(self) -> str:
        return f"CommandOracle({self.template!r}, timeout={self.timeout}, cwd={self.cwd!r})"


def _findable(program: str, cwd: str) -> bool:
    if os.sep in program or (os.altsep and os.altsep in program):
        return (Path(cwd) / program).exists()
    return shutil.which(program) is not None or (Path(cwd) / program).exists()


def _tail(data: bytes | None, prefix: str) -> str:
    text = (data or b"").decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    if len(text) > _STDERR_TAIL:
        text = "..." + text[-_STDERR_TAIL:]
    return prefix + text


def _drain(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    """Reap a killed process; a grandchild that escaped the kill and holds the
    pipes open cannot keep us waiting."""
    try:
        return proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()
        return b"", b""


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and every process it started (descendants gathered first, so
    none is re-parented out of reach). The caller reaps ``pid`` itself (its
    ``Popen.wait`` or ``Process.join`` needs the exit status)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        with contextlib.suppress(OSError):
            os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
        return
    try:
        root = psutil.Process(pid)
        descendants = root.children(recursive=True)
    except psutil.Error:
        return
    for p in [root, *descendants]:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(descendants, timeout=5)


def parse_outcomes(stdout: bytes, stderr: bytes = b"") -> Any:
    """The outcomes a command printed: a JSON object of numbers, or one number."""
    text = stdout.decode("utf-8", errors="replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for candidate in (text, lines[-1] if lines else ""):
        try:
            value = json.loads(candidate)
            break
        except ValueError:
            continue
    else:
        shown = text if len(text) <= 200 else "..." + text[-200:]
        raise CommandError(f"stdout is not JSON: got {shown!r}; expected an object of"
                           " outcomes or a number" + _tail(stderr, "; stderr: "))
    if isinstance(value, bool) or not isinstance(value, (dict, int, float)):
        raise CommandError(f"stdout JSON is a {type(value).__name__}: {value!r}; expected"
                           " an object of outcomes or a number")
    return value


def from_spec(oracle_spec, base_dir: Path | None = None) -> Oracle:
    """The callable an ``oracle:`` block describes (picklable, for executors)."""
    if oracle_spec.builtin is not None:
        from workbench import problems

        return problems.get(oracle_spec.builtin)
    if oracle_spec.command is not None:
        return CommandOracle(oracle_spec.command, oracle_spec.timeout, base_dir)
    return PythonOracle(oracle_spec.python, base_dir)
