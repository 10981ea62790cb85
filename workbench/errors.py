"""Errors that users see: each names the field, the value and what was expected."""

from __future__ import annotations

from dataclasses import dataclass


class WorkbenchError(Exception):
    """Base of every error the workbench raises on purpose; the CLI prints it
    without a traceback."""

    exit_code = 1


class NotSupportedYet(WorkbenchError, NotImplementedError):
    """A part of the contract that this version does not build yet."""

    exit_code = 2


class CampaignError(WorkbenchError, ValueError):
    """A request the campaign cannot honour (unknown trial, bad outcome, ...);
    nothing was changed."""

    exit_code = 2


class OracleError(WorkbenchError):
    """The oracle cannot be set up (bad target, import error, missing program)."""

    exit_code = 2


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a spec: where (field path and line), what was given, what was expected."""

    field: str
    message: str
    line: int | None = None

    def format(self, source: str | None = None) -> str:
        where = source or "spec"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = self.field or "(document)"
        return f"{where}: {field}: {self.message}"


class SpecError(WorkbenchError, ValueError):
    """The spec is invalid; ``issues`` lists every problem found."""

    exit_code = 2

    def __init__(self, issues: list[SpecIssue], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        lines = [issue.format(source) for issue in self.issues]
        head = f"invalid spec ({len(lines)} problem{'s' if len(lines) != 1 else ''})"
        super().__init__(head + ":\n  " + "\n  ".join(lines))
