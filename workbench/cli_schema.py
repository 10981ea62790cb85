"""``workbench schema``: the experiment spec's JSON Schema, or a ``--json`` document's.

Editors read the spec's schema to check and complete experiment YAML files as they are
typed (the YAML language server, e.g. in VS Code); scripts read a command's output
schema to know the fields of its ``--json`` document. Registered by ``workbench.cli``,
which wraps it with the CLI's error handling; the ``--json`` option of every command
is defined here too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

# The --json option of every command.
JSON_OPTION = typer.Option(False, "--json", help="print one JSON document and nothing else on"
                           " stdout (its schema: `workbench schema --output COMMAND`)")


def schema_command(
    output: Optional[str] = typer.Option(
        None, "--output", help="instead, the schema of this command's --json document:"
        " validate, run, ask, tell, status, trial (status --trial), report, verify, export,"
        " prior-export, schema or error"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o",
                                            help="write the schema to this JSON file"),
    as_json: bool = typer.Option(False, "--json", help="with -o, print what was written as"
                                 " a JSON document (without -o the schema is the output)"),
) -> None:
    """Print the experiment spec's JSON Schema (for editors: validation and completion)."""
    import json

    from rich.console import Console

    from workbench.cli_json import document, emit, output_schema, spec_schema
    from workbench.errors import CampaignError

    doc = output_schema(output) if output is not None else spec_schema()
    text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    if out_path is None:
        sys.stdout.write(text)
        return
    if out_path.is_dir():
        raise CampaignError(f"--out: {out_path} is a folder; expected a JSON file path")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    if as_json:
        emit(document("schema", written=str(out_path), describes=output or "spec"))
    else:
        Console().print(f"wrote {out_path}", highlight=False, markup=False)
