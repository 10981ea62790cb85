"""Command oracles: a lab script run once per trial, its outcomes read from stdout.

The command is a template with ``{parameter}`` placeholders, split like a shell line
and run without a shell. A failed run (non-zero exit, timeout, unreadable output)
raises ``CommandError``, whose message is the trial's failure reason; a timed-out
or cancelled run is killed with every process it started (``kill_tree``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import string
import subprocess
from pathlib import Path
from typing import Any

from workbench.errors import OracleError, WorkbenchError

# What a command oracle keeps of stderr for a failure reason: enough to see the
# error a script printed last, short enough for a trial table.
_STDERR_TAIL = 800


class CommandError(WorkbenchError):
    """One evaluation of a command oracle failed; the message is the failure reason."""


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


def plain(value: Any) -> Any:
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
        values = {k: plain(v) for k, v in params.items()}
        missing = [n for n in self.names if n not in values]
        if missing:
            raise CommandError(f"command placeholders {missing} have no parameter value")
        return [word.format(**values) for word in self.argv_template]

    def __call__(self, params: dict) -> Any:
        argv = self.argv(params)
        env = dict(os.environ, WORKBENCH_PARAMS=json.dumps(
            {k: plain(v) for k, v in params.items()}, default=str))
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
