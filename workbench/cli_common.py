"""What the ``workbench`` command's modules share: the consoles, turning errors into
messages and exit codes (``guard``), and finding the campaign a command names."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["CLI_ACTOR", "campaign_at", "emit_output", "err", "existing_store", "fail",
           "guard", "load", "locate", "need_store", "open_campaign", "out", "reset_consoles"]

out = Console()
err = Console(stderr=True)
# Who the journal records as having made the asks and tells of these commands.
CLI_ACTOR = "cli"


def reset_consoles(width: Optional[int] = None) -> None:
    """Set the shared consoles up again as a fresh process does, for the current
    ``sys.stdout``, ``sys.stderr`` and environment (terminal or not, colours, width; ``width``
    when given): the warm worker (``workbench.worker``) does so for each ask it answers."""
    out.__init__(width=width)
    err.__init__(stderr=True, width=width)


def guard(fn):
    """Turn errors into a message and an exit code (and with --json, a JSON document;
    the human output on stdout is then silenced)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from workbench.errors import WorkbenchError

        as_json, quiet = bool(kwargs.get("as_json")), out.quiet
        out.quiet = quiet or as_json
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except WorkbenchError as e:
            fail(str(e), e.exit_code, as_json, error=e, command=fn.__name__)
        except KeyboardInterrupt:
            fail("interrupted; every acknowledged result is in the store", 130, as_json)
        except Exception as e:  # noqa: BLE001 - the CLI shows messages, not tracebacks
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            fail(f"{type(e).__name__}: {e}", 1, as_json)
        finally:
            out.quiet = quiet

    return wrapper


def fail(text: str, code: int, as_json: bool, **why) -> None:
    err.print(("" if code == 130 else "[bold red]error:[/] ") + escape(text), markup=True,
              highlight=False, soft_wrap=True)
    if as_json:
        from workbench.cli_json import emit, error_document

        emit(error_document(text, code, **why))
    raise typer.Exit(code) from None


def emit_output(command: str, **fields) -> None:
    """Print a command's --json document (see ``workbench.cli_json.build``)."""
    from workbench.cli_json import build, emit

    emit(build(command, **fields))


def load(spec: str):
    from workbench.resources import resolve_spec
    from workbench.spec import load_spec

    path = resolve_spec(spec)
    return path, load_spec(path)


def need_store(parsed) -> None:
    from workbench.errors import CampaignError

    if parsed.store is None:
        raise CampaignError("store: is null; ask, tell and the commands that read a campaign"
                            " need a store to keep trials between calls (remove the key for"
                            " the default)")


def open_campaign(path: Path, parsed):
    from workbench.campaign import Campaign

    campaign = Campaign.from_spec(parsed, base_dir=path.parent)
    campaign.actor = CLI_ACTOR
    return campaign


def locate(arg: str, command: str) -> tuple[str, Optional[Path], object]:
    """What a read command reads: (store path, spec path, parsed spec).

    ``arg`` is a campaign store (a folder, usually ``*.zarr``; read with the spec it
    records, so spec path and parsed spec are None) or a spec (a YAML file or a shipped
    experiment's name; read at the store it names). The store may not exist yet.
    """
    from workbench.errors import CampaignError
    from workbench.resources import experiments, resolve_spec

    given = Path(arg).expanduser()
    if given.is_dir() or given.suffix == ".zarr":
        return arg, None, None
    if not resolve_spec(arg).exists() and given.suffix not in (".yaml", ".yml"):
        raise CampaignError(
            f"{command}: got {arg!r}, which is neither a spec (a YAML file or a shipped"
            f" experiment: {', '.join(sorted(experiments()))}) nor a campaign store"
            " (a *.zarr folder)")
    path, parsed = load(arg)
    need_store(parsed)
    return str(parsed.store), path, parsed


def existing_store(arg: str, command: str) -> str:
    """The store ``arg`` names (see ``locate``); exit 2 if there is no campaign there."""
    store, path, _ = locate(arg, command)
    _require_store(store, path, command)
    return store


def campaign_at(arg: str, command: str, *, create: bool = False):
    """The campaign ``arg`` names (see ``locate``), its asks and tells recorded as the
    CLI's. A store must exist; a spec's store too, unless ``create`` (then it is made)."""
    from workbench.campaign import Campaign

    store, path, parsed = locate(arg, command)
    if path is None or not create:
        _require_store(store, path, command)
    if path is None:
        campaign = Campaign.open(store)
    else:
        campaign = Campaign.from_spec(parsed, base_dir=path.parent)
    campaign.actor = CLI_ACTOR
    return campaign


def _require_store(store: str, path: Optional[Path], command: str) -> None:
    from workbench.errors import CampaignError
    from workbench.store import ZarrStore

    if not ZarrStore(store).exists():
        of = f" (the store of {path})" if path is not None else ""
        raise CampaignError(f"{command}: no campaign store at {store}{of}; expected a campaign"
                            " store (a *.zarr folder) or a spec whose store exists")
