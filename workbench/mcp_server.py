"""``workbench mcp``: the campaigns under one folder, served to agents over the Model
Context Protocol (stdio).

Tools: ``validate``, ``list_campaigns``, ``status``, ``ask``, ``tell``, ``predict``,
``explain``, ``importance`` and ``report``.
Each is a method of ``AgentTools`` (plain Python, JSON-ready dicts) and a few lines of
wiring in ``build_server``, so another tool is one method and one function more. The
tools apply the Python API's own checks (ask's size limit, the budget, bad outcomes),
and the server adds one of its own: every path, whether given in an argument or
written in a spec (its store, a local tracking URI), must lie inside the root the
server was started with, and with ``--partner`` only that partner's campaigns are
served. Errors reach the client as tool errors carrying the message, never a
traceback, and nothing is recorded. Asks and tells are recorded in the journal with
the client's name (``clientInfo.name`` of its ``initialize`` request) as ``actor``.

The ``mcp`` package is imported here only, and only when the server starts (the
``agents`` extra).
"""

import os
import threading
import warnings
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlsplit

import typer

from workbench.cli_importance import DEFAULT_BASE_ROWS, DEFAULT_SAMPLES
from workbench.cli_json import importance_json, json_value
from workbench.errors import CampaignError, WorkbenchError

__all__ = ["AgentTools", "build_server", "mcp_command"]

SERVER_NAME = "workbench"
# Recorded as the actor when a client's initialize request names no client.
UNKNOWN_CLIENT = "mcp-client"
# A client's name is the peer's text: kept to this many characters in the record.
MAX_ACTOR_LENGTH = 100
SPEC_SUFFIXES = (".yaml", ".yml")
STORE_SUFFIX = ".zarr"
EXTRA_HINT = "pip install 'sciworkbench[agents]'"
SERVER_INSTRUCTIONS = (
    "Bayesian-optimisation campaigns in one folder. validate a spec, ask for experiments,"
    " run them, tell their outcomes (or a failure_reason), and read status or report."
    " Campaigns are named by a spec file (YAML) or a store (*.zarr folder), relative to"
    " the server's root.")


def trial_dict(trial: Any) -> dict[str, Any]:
    """A ``Trial`` as the tools return it: id, status, params, the model's prediction
    when it was proposed (mean and std per objective), outcomes, and who asked and told."""
    from workbench.record import format_time

    prediction = {k: {"mean": json_value(p.mean), "std": json_value(p.std)}
                  for k, p in (trial.prediction or {}).items()}
    return {
        "id": trial.id, "status": trial.status, "params": json_value(trial.params),
        "prediction": prediction or None, "outcomes": json_value(trial.outcomes),
        "failure_reason": trial.failure_reason, "strategy": trial.strategy,
        "batch": trial.batch, "asked_at": format_time(trial.asked_at) or None,
        "told_at": format_time(trial.told_at) or None, "asked_by": trial.asked_by,
        "told_by": trial.told_by,
    }


def _local_tracking_path(uri: str) -> Optional[str]:
    """The file or folder a tracking URI writes to on this machine, or None for a
    server (http, https, databricks ...)."""
    if uri.startswith("sqlite:///"):
        return uri[len("sqlite:///"):]
    if "://" not in uri and not uri.startswith("file:"):
        return uri
    parts = urlsplit(uri)
    return parts.path if parts.scheme == "file" else None


class AgentTools:
    """What the MCP tools do, on the campaigns under ``root`` (of ``partner`` only, if
    given): each method takes JSON values and returns a JSON-ready dict, or raises a
    WorkbenchError whose message the client sees."""

    def __init__(self, root: str | Path, partner: Optional[str] = None):
        self.root = Path(root).resolve()
        self.partner = partner
        self._lock = threading.Lock()  # one call at a time: the tools run in worker threads

    # -- paths and specs -------------------------------------------------------

    def inside(self, path: str | Path, what: str) -> Path:
        """``path`` (relative to the root, or absolute) resolved; refused outside the root."""
        if not isinstance(path, (str, Path)) or not str(path).strip():
            raise CampaignError(f"{what}: got {path!r}; expected a path inside {self.root}")
        resolved = (self.root / Path(path).expanduser()).resolve()
        if not resolved.is_relative_to(self.root):
            raise CampaignError(f"{what}: {path} is outside the root {self.root} this server"
                                " was started with; expected a path inside it")
        return resolved

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _checked_spec(self, spec: Any) -> Any:
        """``spec`` with its store resolved inside the root; refused if its store or a
        local tracking URI lies outside it, or it belongs to another partner."""
        if self.partner is not None and spec.partner != self.partner:
            raise CampaignError(f"partner: campaign {spec.name!r} belongs to partner"
                                f" {spec.partner!r}; this server serves partner"
                                f" {self.partner!r} only")
        updates = {}
        if spec.store is not None:
            updates["store"] = str(self.inside(spec.store, "store"))
        local = _local_tracking_path(spec.tracking) if spec.tracking else None
        if local:
            self.inside(local, "tracking")
        return spec.model_copy(update=updates) if updates else spec

    def _load_spec(self, path: Path) -> Any:
        from workbench.spec import load_spec

        return self._checked_spec(load_spec(path))

    def _open(self, campaign: str, *, create: bool = False) -> Any:
        """The campaign named by ``campaign``: a store or a spec file inside the root.
        create: a spec whose store does not exist yet starts it (ask); else refused."""
        from workbench.campaign import Campaign
        from workbench.store import ZarrStore

        path = self.inside(campaign, "campaign")
        if path.is_dir() or path.suffix == STORE_SUFFIX:
            if not ZarrStore(path).exists():
                raise CampaignError(f"campaign: no campaign store at {campaign}; expected a"
                                    " store (*.zarr folder) or a spec file inside the root")
            opened = Campaign.open(path)
            self._checked_spec(opened.spec)
            return opened
        if path.suffix not in SPEC_SUFFIXES:
            raise CampaignError(f"campaign: got {campaign!r}; expected a spec file (.yaml) or"
                                " a campaign store (*.zarr folder) inside the root")
        spec = self._load_spec(path)
        if spec.store is None:
            raise CampaignError("store: is null in the spec; the agent tools keep trials in"
                                " a store between calls (remove the key for the default)")
        if not create and not ZarrStore(spec.store).exists():
            raise CampaignError(f"campaign: {campaign} has not started (no store at"
                                f" {self._relative(Path(spec.store))}); ask starts it")
        return Campaign.from_spec(spec, base_dir=path.parent)

    def _summary(self, campaign: Any) -> dict[str, Any]:
        from workbench.record import COMPLETED, FAILED, PENDING

        best = campaign.best()
        store = campaign.spec.store
        return {
            "name": campaign.name, "partner": campaign.spec.partner,
            "store": self._relative(Path(store)) if store else None,
            "objectives": [{"name": o.name, "direction": o.direction}
                           for o in campaign.objectives],
            "budget": campaign.spec.budget,
            "trials": {s: campaign.count(s) for s in (PENDING, COMPLETED, FAILED)},
            "best": None if best is None else trial_dict(best),
            "stopped": campaign.stopped,
        }

    # -- tools -----------------------------------------------------------------

    def validate(self, spec_yaml: Optional[str] = None,
                 path: Optional[str] = None) -> dict[str, Any]:
        """Check a spec given as YAML text or as a file inside the root."""
        from workbench._yaml import load_yaml
        from workbench.errors import SpecError
        from workbench.spec import parse_spec
        from workbench.store import check_store_path

        if (spec_yaml is None) == (path is None):
            raise CampaignError("validate: give exactly one of spec_yaml (the YAML text) and"
                                " path (a spec file inside the root)")
        if path is not None:
            spec = self._load_spec(self.inside(path, "path"))
        else:
            data, lines, issues = load_yaml(str(spec_yaml))
            if issues:
                raise SpecError(issues, "spec_yaml")
            spec = self._checked_spec(parse_spec(data, lines=lines, source="spec_yaml"))
        if spec.store is not None:
            check_store_path(spec.store)  # a folder that is not a store would be refused
        return {
            "valid": True, "name": spec.name, "partner": spec.partner,
            "parameters": [p.name for p in spec.space],
            "objectives": [{"name": o.name, "direction": o.direction}
                           for o in spec.objectives],
            "budget": spec.budget,
            "store": self._relative(Path(spec.store)) if spec.store else None,
        }

    def list_campaigns(self) -> dict[str, Any]:
        """Every campaign store under the root (this partner's only, with ``--partner``)."""
        from workbench.campaign import Campaign
        from workbench.store import ZarrStore

        found = []
        for folder, subfolders, _ in os.walk(self.root):
            subfolders.sort()
            for name in list(subfolders):
                path = Path(folder) / name
                if name.startswith(".") or not ZarrStore(path).exists():
                    continue
                subfolders.remove(name)  # a store's insides are not campaigns
                try:
                    campaign = Campaign.open(path, tracking=None)
                except WorkbenchError as e:
                    found.append({"store": self._relative(path), "error": str(e)})
                    continue
                if self.partner is None or campaign.spec.partner == self.partner:
                    found.append(self._summary(campaign))
        return {"root": str(self.root), "campaigns": found}

    def status(self, campaign: str) -> dict[str, Any]:
        """A campaign's summary and every trial."""
        opened = self._open(campaign)
        return {**self._summary(opened), "trial_list": [trial_dict(t) for t in opened.trials]}

    def ask(self, campaign: str, n: int = 1, actor: Optional[str] = None,
            context: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Propose ``n`` experiments (recorded as pending, asked by ``actor``)."""
        opened = self._open(campaign, create=True)
        opened.actor = actor
        trials = opened.ask(n, context=context)
        opened.log_snapshot()
        return {"campaign": opened.name, "store": self._relative(Path(opened.spec.store)),
                "trials": [trial_dict(t) for t in trials]}

    def tell(self, campaign: str, trial_id: int, outcomes: Any = None,
             failure_reason: Optional[str] = None, actor: Optional[str] = None,
             actual: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Record a trial's outcomes, or with ``failure_reason`` its failure (told by
        ``actor``); bad outcomes are refused as by ``Campaign.tell``."""
        if failure_reason is not None and outcomes is not None:
            raise CampaignError(f"tell: got outcomes {outcomes!r} and failure_reason"
                                f" {failure_reason!r}; expected one of them")
        if failure_reason is None and outcomes is None:
            raise CampaignError("tell: give outcomes (a dict by outcome name) or a"
                                " failure_reason")
        opened = self._open(campaign)
        opened.actor = actor
        opened.defer_tracking()  # delivered by the next ask, as a CLI tell does
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if failure_reason is not None:
                trial = opened.tell_failed(trial_id, failure_reason, actual=actual)
            else:
                trial = opened.tell(trial_id, outcomes, actual=actual)
        return {"trial": trial_dict(trial), "warnings": [str(w.message) for w in caught]}

    def predict(self, campaign: str, points: list[dict[str, Any]]) -> dict[str, Any]:
        """The model's mean, standard deviation (and P(feasible)) at ``points``, a list
        of parameter dicts in user units, as ``Campaign.predict``: nothing is recorded."""
        if not isinstance(points, list) or not points:
            raise CampaignError(f"points: got {points!r}; expected a non-empty list of"
                                " parameter dicts")
        frame = self._open(campaign).predict(points)
        return {"columns": [str(c) for c in frame.columns],
                "points": [{str(k): json_value(v) for k, v in row.items()}
                           for row in frame.to_dict("records")]}

    def explain(self, campaign: str, trial_id: int) -> dict[str, Any]:
        """Why trial ``trial_id`` was proposed, as recorded when it was asked
        (``Campaign.explain``): read from the record, nothing is fitted."""
        return json_value(self._open(campaign).explain(trial_id))

    def importance(self, campaign: str, n: int = DEFAULT_BASE_ROWS,
                   samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
        """Sobol indices of each objective (and P(feasible)) per parameter from the
        campaign's model (``Campaign.importance``, its checks of n, samples and seed):
        nothing is recorded in the store."""
        opened = self._open(campaign)
        return {"name": opened.name,
                **importance_json(opened.sobol_indices(n=n, samples=samples, seed=seed))}

    def report(self, campaign: str, out: Optional[str] = None) -> dict[str, Any]:
        """Write the campaign's HTML report inside the root (default: beside its store,
        ``<store name>.html``) and return its path and the campaign's summary."""
        from workbench.report import campaign_report, log_campaign_report

        opened = self._open(campaign)
        store = Path(opened.spec.store)
        target = self.inside(out if out is not None else store.with_suffix(".html"), "out")
        if target.is_dir():
            raise CampaignError(f"out: {out} is a folder; expected an HTML file path")
        text, reported = campaign_report(str(store), None)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        run_id = log_campaign_report(reported, text)
        return {"path": self._relative(target), "mlflow_run_id": run_id,
                "summary": self._summary(opened)}

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Run one tool, one at a time; any error comes back as a WorkbenchError whose
        message names the problem (set ``WORKBENCH_DEBUG=1`` to get the original)."""
        with self._lock:
            try:
                return getattr(self, method)(**kwargs)
            except WorkbenchError:
                raise
            except Exception as e:  # noqa: BLE001 - clients see messages, not tracebacks
                if os.environ.get("WORKBENCH_DEBUG"):
                    raise
                raise WorkbenchError(f"{type(e).__name__}: {e}") from None


def client_name(ctx: Any) -> str:
    """The name the MCP client gave in its initialize request (``clientInfo.name``)."""
    try:
        name = ctx.session.client_params.client_info.name
    except (AttributeError, ValueError):
        name = None
    name = "".join(ch for ch in str(name or "") if ch.isprintable()).strip()
    return name[:MAX_ACTOR_LENGTH] or UNKNOWN_CLIENT


def build_server(root: str | Path, partner: Optional[str] = None) -> Any:
    """The MCP server (``mcp.server.mcpserver.MCPServer``) whose tools act on the
    campaigns under ``root``."""
    from mcp.server.mcpserver import Context, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    from workbench.campaign.telemetry import package_version

    tools = AgentTools(root, partner)
    server = MCPServer(SERVER_NAME, instructions=SERVER_INSTRUCTIONS,
                       version=package_version(), log_level="WARNING")

    def call(method: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return tools.call(method, **kwargs)
        except WorkbenchError as e:
            raise ToolError(str(e)) from None

    @server.tool()
    def validate(spec_yaml: Optional[str] = None, path: Optional[str] = None) -> dict[str, Any]:
        """Check an experiment spec, given as YAML text (spec_yaml) or as a file inside the
        root (path); an invalid spec is an error naming field, line and reason."""
        return call("validate", spec_yaml=spec_yaml, path=path)

    @server.tool()
    def list_campaigns() -> dict[str, Any]:
        """The campaign stores under the server's root: name, partner, trial counts, best."""
        return call("list_campaigns")

    @server.tool()
    def status(campaign: str) -> dict[str, Any]:
        """A campaign (spec file or *.zarr store inside the root): summary and every trial
        with params, prediction, status, outcomes and who asked and told it."""
        return call("status", campaign=campaign)

    @server.tool()
    def ask(campaign: str, ctx: Context, n: int = 1,
            context: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Propose n experiments (a spec starts its store); they are recorded as pending.
        context: values of the spec's context parameters, if it has any."""
        return call("ask", campaign=campaign, n=n, context=context, actor=client_name(ctx))

    @server.tool()
    def tell(campaign: str, trial_id: int, ctx: Context, outcomes: Any = None,
             failure_reason: Optional[str] = None,
             actual: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Record what trial trial_id gave: outcomes as {name: number}, or a failure_reason.
        actual: parameter values run where they differ from the proposal."""
        return call("tell", campaign=campaign, trial_id=trial_id, outcomes=outcomes,
                    failure_reason=failure_reason, actual=actual, actor=client_name(ctx))

    @server.tool()
    def predict(campaign: str, points: list[dict[str, Any]]) -> dict[str, Any]:
        """The model's mean, standard deviation and P(feasible) per objective at points
        given as parameter dicts (user units); runs nothing, records nothing."""
        return call("predict", campaign=campaign, points=points)

    @server.tool()
    def explain(campaign: str, trial_id: int) -> dict[str, Any]:
        """Why a trial was proposed, as recorded then: the model's mean and sd there, the
        acquisition value, the best so far, the runners-up, and a few sentences (text)."""
        return call("explain", campaign=campaign, trial_id=trial_id)

    @server.tool()
    def importance(campaign: str, n: int = DEFAULT_BASE_ROWS,
                   samples: int = DEFAULT_SAMPLES, seed: int = 0) -> dict[str, Any]:
        """What drives each objective (and P(feasible)): total and first-order Sobol
        indices per parameter from the campaign's model, with their spread over samples
        posterior draws; n base rows (>= 16). Runs nothing, records nothing."""
        return call("importance", campaign=campaign, n=n, samples=samples, seed=seed)

    @server.tool()
    def report(campaign: str, out: Optional[str] = None) -> dict[str, Any]:
        """Write the campaign's HTML report inside the root (default: <store>.html beside
        its store); returns its path and a summary."""
        return call("report", campaign=campaign, out=out)

    return server


def mcp_command(root: Path, partner: str | None) -> None:
    """Serve the campaigns under ``root`` to agents (``workbench mcp``): the Model
    Context Protocol over stdio; ``partner``: serve only that partner's campaigns."""
    try:
        import mcp  # noqa: F401 - the optional dependency, checked before anything else
    except ImportError:
        typer.echo(f"error: workbench mcp needs the mcp package: {EXTRA_HINT}", err=True)
        raise typer.Exit(2) from None
    if root.exists() and not root.is_dir():
        typer.echo(f"error: --root: {root} is not a folder; expected the folder of the"
                   " campaigns to serve", err=True)
        raise typer.Exit(2)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    # Relative paths in specs (store, tracking) are relative to the root, as the CLI's
    # are to the folder it runs in.
    os.chdir(root)
    build_server(root, partner).run("stdio")
