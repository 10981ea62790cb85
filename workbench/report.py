"""Campaign reports as self-contained HTML, also logged as MLflow artifacts.

- ``campaign_report(store)``: one campaign: spec summary and the full spec,
  the best trials, every plot that applies (PNG embedded: convergence, with
  random search's band when it is free; predicted vs observed; calibration;
  Pareto front and hypervolume; slices, the 2-D posterior map and pairs;
  parameter relevance; global sensitivity, by ``workbench.report_sections``; ternary
  compositions), failures, timings and compute,
  the trial table. Logged as ``report.html`` to the campaign's run.
- ``comparison_report(summaries)``: several campaigns, from stores or from
  MLflow runs (``summaries_from_tracking`` reads every campaign run the
  caller's credentials can see, across partners' workspaces for an admin):
  convergence per campaign, evaluations to reach a target, compute spent.

matplotlib draws on ``Figure`` objects directly (no pyplot state, no GUI
backend), and MLflow is imported only to read runs or log the report.
"""

from __future__ import annotations

import contextlib
import html
import json
import math
import os
import sqlite3
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from workbench.errors import WorkbenchError
from workbench.report_sections import new_figure, plot_sections, png

__all__ = ["CampaignSummary", "MetricPoint", "ReportError", "campaign_report", "comparison_report",
           "evaluations_to_target", "log_comparison", "summary_from_run",
           "sqlite_metric_history", "summary_from_store", "summaries_from_tracking"]

REPORT_ARTIFACT = "report.html"
COMPARISON_EXPERIMENT = "reports/comparison"
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f3f3f3}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em}.note{color:#666;font-size:.85em}
img{max-width:100%}"""


class ReportError(WorkbenchError):
    """A report that cannot be made from what was given."""

    exit_code = 2


# --------------------------------------------------------------------------- summaries


@dataclass
class CampaignSummary:
    """What a comparison needs of one campaign.

    best: (n,) best objective value after each evaluation (NaN before the
    first completed one); cpu_s, energy_j: compute spent as tracked (None
    when the campaign was not tracked with these metrics).
    """

    partner: str
    name: str
    objective: str
    direction: str
    best: np.ndarray
    failed: int = 0
    cpu_s: float | None = None
    energy_j: float | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def evaluations(self) -> int:
        return int(len(self.best))

    @property
    def final(self) -> float:
        finite = self.best[np.isfinite(self.best)]
        return float(finite[-1]) if len(finite) else math.nan


def evaluations_to_target(best: np.ndarray, target: float, direction: str) -> int | None:
    """Evaluations (1-based) until the best value reached ``target``; None if never."""
    best = np.asarray(best, dtype=np.float64)
    reached = best <= target if direction == "minimize" else best >= target
    hits = np.flatnonzero(reached & np.isfinite(best))
    return int(hits[0]) + 1 if len(hits) else None


def _best_curve(campaign) -> np.ndarray:
    """Best feasible objective after each evaluated trial (completed or failed), in the
    order they were told; NaN before the first feasible one."""
    from workbench.campaign.results import best_so_far

    told = sorted((t for t in campaign.trials if t.status != "pending"),
                  key=lambda t: (t.told_at is None, t.told_at or datetime.min))
    return best_so_far(campaign.objectives[0], told,
                       {t.id for t in campaign.feasible_trials()})


# A store names the tracking URI its campaign was tracked to, and a store may come from
# someone else: reading it contacts that URI only when it is a local file (no network,
# no credentials). A server is contacted only when the user names it (--tracking).
_LOCAL_SCHEMES = ("sqlite", "file", "")
# How a report waits for a tracking server that does not answer: one try of 5 seconds.
QUICK_HTTP = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def reading_uri(stored: str | None, given: str | None = None) -> str | None:
    """The tracking URI a reader of a store may contact: the one the user gave, else the
    stored one if it is a local file, else none."""
    if given:
        return given
    if stored:
        from urllib.parse import urlsplit

        if urlsplit(stored).scheme in _LOCAL_SCHEMES:
            return stored
    return None


@contextlib.contextmanager
def _quick_http():
    """MLflow's HTTP client gives up after one short try instead of retrying for minutes."""
    saved = {k: os.environ.get(k) for k in QUICK_HTTP}
    os.environ.update(QUICK_HTTP)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass(frozen=True)
class MetricPoint:
    """One logged value of a metric, as MLflow's ``Metric`` has it."""

    key: str
    value: float
    timestamp: int
    step: int


_SQLITE_PREFIX = "sqlite:///"


def sqlite_metric_history(uri: str, run_id: str, key: str) -> list[MetricPoint]:
    """A run's history of metric ``key`` read from a local ``sqlite:///`` MLflow store with
    the standard library (no MLflow import), in MLflow's order (timestamp, step, value)
    and with its NaN convention (``is_nan``). Raises ``sqlite3.Error`` or ValueError
    where the URI or database is not one to read this way."""
    import sqlite3

    if not uri.startswith(_SQLITE_PREFIX) or "?" in uri:
        raise ValueError(f"tracking URI {uri!r}: expected sqlite:///PATH without options")
    path = Path(uri[len(_SQLITE_PREFIX):])
    if not path.is_file():
        raise ValueError(f"tracking URI {uri!r}: no database file at {path}")
    with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                            uri=True)) as db:
        rows = db.execute("SELECT key, value, timestamp, step, is_nan FROM metrics"
                          " WHERE run_uuid = ? AND key = ? ORDER BY timestamp, step, value",
                          (run_id, key)).fetchall()
    return [MetricPoint(k, math.nan if is_nan else float(v), int(ts), int(step))
            for k, v, ts, step, is_nan in rows]


def _run_metrics(uri: str, run_id: str, keys: tuple[str, ...]) -> dict[str, list] | None:
    """Metric histories (sorted by step) of a run; None when the server cannot be read.
    A local sqlite store is read directly (MLflow's SQL store takes seconds to import)."""
    if uri.startswith(_SQLITE_PREFIX):
        try:
            return {k: sorted(sqlite_metric_history(uri, run_id, k), key=lambda m: m.step)
                    for k in keys}
        except (ValueError, OSError, sqlite3.Error):
            pass  # not a database this reader knows: MLflow reads it, as any other
    try:
        from mlflow.tracking import MlflowClient

        with _quick_http():
            client = MlflowClient(tracking_uri=uri)
            return {k: sorted(client.get_metric_history(run_id, k), key=lambda m: m.step)
                    for k in keys}
    except Exception:  # noqa: BLE001 - a report without tracked figures is still a report
        return None


_COMPUTE_KEYS = ("step_cpu_s", "step_energy_j", "fit_time_s", "proposal_time_s",
                 "acquisition_time_s")


def _tracked_compute(histories: dict[str, list]) -> dict[str, float]:
    return {k: float(sum(m.value for m in v)) for k, v in histories.items() if v}


def _open(store: str | Path, tracking: str | None = None):
    """The campaign at ``store``, tracked (for reading) only where ``reading_uri`` allows."""
    from workbench.campaign import Campaign
    from workbench.errors import CampaignError
    from workbench.store import ZarrStore

    try:
        stored = json.loads(ZarrStore(store).attrs().get("spec", "{}")).get("tracking")
        return Campaign.open(store, tracking=reading_uri(stored, tracking))
    except CampaignError as e:
        raise ReportError(str(e)) from None


def _compute(campaign) -> dict[str, float] | None:
    """Compute tracked for the campaign's run; {} without a run, None when unreachable."""
    if not (campaign.spec.tracking and campaign.run_id):
        return {}
    histories = _run_metrics(campaign.spec.tracking, campaign.run_id, _COMPUTE_KEYS)
    return None if histories is None else _tracked_compute(histories)


def summary_from_store(store: str | Path, tracking: str | None = None) -> CampaignSummary:
    """A comparison summary of the campaign saved at ``store``; its tracked compute is
    read from ``tracking`` if given, else from the stored URI only if it is a local file."""
    campaign = _open(store, tracking)
    obj = campaign.objectives[0]
    compute = _compute(campaign) or {}
    return CampaignSummary(
        partner=campaign.spec.partner, name=campaign.name, objective=obj.name,
        direction=obj.direction, best=_best_curve(campaign),
        failed=sum(t.status == "failed" for t in campaign.trials),
        cpu_s=compute.get("step_cpu_s"), energy_j=compute.get("step_energy_j"),
        source=str(store), extra=compute)


def summary_from_run(client, run) -> CampaignSummary | None:
    """A comparison summary of a campaign's MLflow run (None if it is not one)."""
    if "best_so_far" not in run.data.metrics:
        return None
    rid = run.info.run_id
    hist = {k: sorted(client.get_metric_history(rid, k), key=lambda m: m.step)
            for k in ("best_so_far", "failed") + _COMPUTE_KEYS}
    params, tags = run.data.params, run.data.tags
    obj = next((k.split(".")[1] for k in params if k.startswith("objectives.")
                and k.endswith(".direction")), "objective")
    direction = params.get(f"objectives.{obj}.direction", "minimize")
    steps = [int(m.step) for m in hist["best_so_far"]] + [int(m.step) for m in hist["failed"]]
    # Campaigns log step k after k evaluations; runs logged by hand may count from 0.
    offset = 1 if min(steps) == 0 else 0
    best = np.full(max(steps) + offset, np.nan)
    for m in hist["best_so_far"]:  # best at step s holds until the next logged step
        best[int(m.step) + offset - 1:] = m.value
    compute = _tracked_compute({k: hist[k] for k in _COMPUTE_KEYS})
    failed = int(hist["failed"][-1].value) if hist["failed"] else 0
    name = tags.get("campaign")
    if not name:  # a run made by hand: its experiment names the campaign
        exp = client.get_experiment(run.info.experiment_id).name
        name = exp.split("/", 1)[1] if "/" in exp else exp
    return CampaignSummary(partner=tags.get("partner", ""), name=name, objective=obj,
                           direction=direction, best=best, failed=failed,
                           cpu_s=compute.get("step_cpu_s"), energy_j=compute.get("step_energy_j"),
                           source=f"runs:/{rid}", extra=compute)


def _visible_workspaces(uri: str) -> list[str | None]:
    """Workspaces to read with these credentials ([None]: the server has none)."""
    if os.environ.get("MLFLOW_WORKSPACE") or not uri.startswith(("http://", "https://")):
        return [None]
    from workbench.server import ServerRefused, RestClient, list_workspaces

    try:
        names = list_workspaces(RestClient(uri))
    except ServerRefused:
        return [None]
    return [None] if names is None else list(names)


def summaries_from_tracking(uri: str, runs: list[str] | None = None) -> list[CampaignSummary]:
    """Every campaign run these credentials can see at ``uri`` (or only ``runs``, by id).

    On a multi-partner server an admin lists every partner's workspace and so
    sees every campaign; a partner lists its own and sees only its own.
    """
    from mlflow.tracking import MlflowClient

    from workbench.transfer import workspace_context

    client = MlflowClient(tracking_uri=uri)
    wanted = None if runs is None else {r.removeprefix("runs:/").strip("/") for r in runs}
    found: dict[str, CampaignSummary] = {}
    for ws in _visible_workspaces(uri):
        with workspace_context(ws):
            if wanted is not None:
                for rid in wanted - found.keys():
                    try:
                        s = summary_from_run(client, client.get_run(rid))
                    except Exception:  # noqa: BLE001 - not in this workspace, or refused
                        continue
                    if s is not None:
                        found[rid] = s
                continue
            exps = [e.experiment_id for e in client.search_experiments()
                    if e.name != COMPARISON_EXPERIMENT]
            for i in range(0, len(exps), 50):
                for run in client.search_runs(exps[i:i + 50], max_results=5000):
                    s = summary_from_run(client, run)
                    if s is not None:
                        found[run.info.run_id] = s
    if wanted is not None and wanted - found.keys():
        missing = sorted(wanted - found.keys())
        raise ReportError(f"runs {missing}: not found at {uri}, not campaign runs, or not"
                          " readable with these credentials")
    return sorted(found.values(), key=lambda s: (s.partner, s.name))


# --------------------------------------------------------------------------- HTML pieces


def _e(value) -> str:
    return html.escape(str(value))


def _fmt(v, missing: str = "n/a") -> str:
    if v is None:
        return missing
    if isinstance(v, float):
        return missing if math.isnan(v) else f"{v:.6g}"
    return str(v)


def _table(header: list[str], rows: list[list], missing: str = "n/a") -> str:
    """An HTML table; ``missing`` stands for None and NaN cells."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(c, missing))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _trials_table(campaign) -> str:
    """Every trial with the columns of a CSV export (``record.to_rows``); missing
    numbers blank."""
    from workbench.record import to_rows

    columns, rows = to_rows(campaign.trials, campaign.space, campaign.outcomes)
    return _table(columns, [[r[c] for c in columns] for r in rows], missing="")


def _page(title: str, body: str) -> str:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")  # ISO 8601, offset
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
            f"<p class='note'>generated {stamp} by sciworkbench</p>{body}</body></html>")


def _space_rows(campaign) -> list[list]:
    rows = []
    for p in campaign.space.parameters:
        d = p.model_dump() if hasattr(p, "model_dump") else dict(vars(p))
        domain = d.get("choices") or [d.get("low"), d.get("high")]
        rows.append([p.name, p.type, ", ".join(_fmt(x) for x in domain),
                     d.get("unit") or "", "log" if d.get("log") else ""])
    return rows


def _timings(campaign, compute: dict[str, float]) -> list[list]:
    done = [t for t in campaign.trials if t.asked_at and t.told_at]
    rows = []
    if done:
        span = (max(t.told_at for t in done) - min(t.asked_at for t in done)).total_seconds()
        waits = np.asarray([(t.told_at - t.asked_at).total_seconds() for t in done])
        rows += [["wall time, first ask to last tell", f"{span:.3g} s"],
                 ["median time from ask to tell (evaluation)", f"{np.median(waits):.3g} s"]]
    names = {"fit_time_s": "surrogate fits (sum)", "proposal_time_s": "proposals (sum)",
             "acquisition_time_s": "acquisition optimisation (sum)",
             "step_cpu_s": "CPU time (sum over every process that logged to the run)",
             "step_energy_j": "energy estimate (sum over those processes)"}
    for key, label in names.items():
        if key in compute:
            unit = "J" if key == "step_energy_j" else "s"
            rows.append([label, f"{compute[key]:.4g} {unit}"])
    return rows


def _best_trials(campaign, k: int = 5) -> str:
    """The k best feasible completed trials (one objective) or the Pareto set (several)."""
    obj = campaign.objectives[0]
    if len(campaign.objectives) > 1:
        rows = sorted(campaign.pareto(), key=lambda t: -obj.score(t.outcomes[obj.name]))
        title = f"Best trials: the Pareto front ({len(rows)})"
    else:
        done = [t for t in campaign.trials if t.status == "completed"]
        feasible = {t.id for t in campaign.feasible_trials()}
        rows = sorted((t for t in done if t.id in feasible),
                      key=lambda t: -obj.score(t.outcomes[obj.name]))[:k]
        title = f"Best trials ({len(rows)} of {len(feasible)} feasible)"
    if not rows:
        return "<h2>Best trials</h2><p>no completed trial yet</p>"
    from workbench.campaign.results import outcome_roles

    roles = outcome_roles(campaign.objectives, campaign.spec.outcome_constraints)
    names = [o.name for o in campaign.outcomes]  # objectives, then constrained outcomes
    flat = [campaign.space.flatten(t.params) for t in rows]
    header = ["trial"] + [f"{n} ({roles[n]})" for n in names] + list(flat[0])
    body = [[t.id] + [t.outcomes[n] for n in names] + list(f.values())
            for t, f in zip(rows, flat)]
    return f"<h2>{_e(title)}</h2>" + _table(header, body)


def _spec_yaml(campaign) -> str:
    import yaml

    text = yaml.safe_dump(campaign.spec.to_dict(), sort_keys=False, allow_unicode=True)
    return f"<details><summary>full spec (YAML)</summary><pre>{_e(text)}</pre></details>"


def campaign_report(store: str | Path, tracking: str | None = None) -> tuple[str, object]:
    """One campaign's report: (HTML text, the opened Campaign). Tracked compute is read
    from ``tracking`` if given, else from the stored URI only if it is a local file: a
    store received from someone else never makes the reader contact their server."""
    campaign = _open(store, tracking)
    # What the report's sections track (the sensitivity's metrics) waits in the outbox:
    # ``log_campaign_report`` delivers it with the report, MLflow imported once.
    campaign.defer_tracking()
    spec = campaign.spec
    compute = _compute(campaign)
    offline = compute is None
    compute = compute or {}
    trials = campaign.trials
    counts = {s: sum(t.status == s for t in trials) for s in ("completed", "pending", "failed")}
    parts = [f"<p>partner <b>{_e(spec.partner)}</b>; {counts['completed']} completed,"
             f" {counts['pending']} pending, {counts['failed']} failed trials.</p>"]
    if offline:
        parts.append(f"<p>tracking at {_e(spec.tracking)} did not answer: tracked compute"
                     " is not shown (offline).</p>")
    if spec.description:
        parts.append(f"<p>{_e(spec.description)}</p>")
    parts.append("<h2>Spec</h2>")
    parts.append(_table(["acquisition", "surrogate", "budget", "seed"],
                        [[spec.acquisition.type, getattr(spec.surrogate, "type", "gp"),
                          spec.budget, spec.seed]]))
    parts.append(_table(["objective", "direction", "unit"], [
        [o.name, o.direction if o.target is None else f"target {o.target:g}", o.unit or ""]
        for o in campaign.objectives]))
    # Constraints as written: an outcome bound is never shown as an objective.
    constraints = [[c, "outcome: a trial outside is infeasible"] for c in spec.outcome_constraints]
    constraints += [[c, "parameters"] for c in spec.constraints]
    if constraints:
        parts.append(_table(["constraint", "on"], constraints))
    parts.append(_table(["parameter", "type", "domain", "unit", "scale"], _space_rows(campaign)))
    parts.append(_spec_yaml(campaign))
    parts.append(_best_trials(campaign))
    parts += plot_sections(campaign)
    failed = [t for t in trials if t.status == "failed"]
    parts.append(f"<h2>Failures ({len(failed)})</h2>")
    parts.append(_table(["trial", "reason"], [[t.id, t.failure_reason] for t in failed])
                 if failed else "<p>none</p>")
    parts.append("<h2>Timings and compute</h2>")
    timing_rows = _timings(campaign, compute)
    parts.append(_table(["what", "value"], timing_rows) if timing_rows else "<p>none</p>")
    parts.append("<p class='note'>CPU time and energy are summed over every process that worked"
                 " on the campaign and logged to its run (each ask, tell and run, from opening the"
                 " campaign, with the evaluation processes it waited for); evaluations on other"
                 " machines (Dask workers) and accelerators are not counted. Energy is an"
                 " estimate: CPU seconds times WORKBENCH_WATTS_PER_CORE (12 W by default).</p>")
    parts.append("<h2>Trials</h2>")
    parts.append(_trials_table(campaign))
    return _page(f"Campaign {campaign.name}", "".join(parts)), campaign


def log_campaign_report(campaign, text: str, wait: bool = True) -> str | None:
    """Log ``report.html`` to the campaign's run (through its outbox); the run id or None.

    wait: deliver it now (None if the server did not take it; it stays in the outbox).
    False: queue it and hand the delivery to a detached process (``workbench.deliver``),
    so that the caller neither imports MLflow nor waits on the server; returns the run
    id the artifact is on its way to."""
    from workbench.transfer import artifact_tracker

    tracker = artifact_tracker(campaign, deliver=wait)
    if tracker is None:
        return None
    tracker.log_text(REPORT_ARTIFACT, text)
    if not wait and campaign.store is not None:
        from workbench.deliver import spawn

        spawn(campaign.store.path, campaign.spec.tracking)
        return tracker.run_id
    with _quick_http():
        return tracker.run_id if tracker.flush(force=True) else None


def comparison_report(summaries: list[CampaignSummary], target: float | None = None,
                      title: str = "Campaign comparison") -> str:
    """HTML comparing campaigns: convergence, evaluations to ``target``, compute spent."""
    if not summaries:
        raise ReportError("nothing to compare: no campaign found")
    rows = []
    for s in summaries:
        to_target = (evaluations_to_target(s.best, target, s.direction)
                     if target is not None else None)
        rows.append([s.partner, s.name, s.objective, s.direction, s.evaluations, s.failed,
                     s.final, "not reached" if target is not None and to_target is None
                     else to_target, s.cpu_s, s.energy_j, s.source])
    header = ["partner", "campaign", "objective", "direction", "evaluations", "failed", "best",
              f"evaluations to {_fmt(target)}" if target is not None else "evaluations to target",
              "CPU s", "energy J (est.)", "source"]
    fig, ax = new_figure()
    for s in summaries:
        x = np.arange(1, s.evaluations + 1)
        ax.plot(x, s.best, drawstyle="steps-post", label=f"{s.partner}/{s.name}")
    if target is not None:
        ax.axhline(target, color="0.3", ls="--", lw=1, label=f"target {_fmt(target)}")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best so far")
    ax.set_title("convergence per campaign")
    ax.legend(fontsize="small")
    body = ("<h2>Convergence</h2>" + png(fig) + "<h2>Campaigns</h2>" + _table(header, rows)
            + "<p class='note'>CPU and energy as tracked per step (n/a: not tracked);"
              " energy is an estimate (CPU s x watts per core).</p>")
    return _page(title, body)


def _is_admin(uri: str) -> bool:
    from workbench.server import RestClient

    try:
        return RestClient(uri).status("GET", "/api/2.0/mlflow/users/list") == 200
    except WorkbenchError:
        return False


def log_comparison(uri: str, text: str, name: str = REPORT_ARTIFACT) -> str | None:
    """Log a comparison as an artifact of a new run of ``reports/comparison`` at ``uri``.

    On a multi-partner server an admin's reports go to the default workspace
    (partners cannot read it), a partner's to its own. Returns the run id, or
    None (with a warning) if the server did not take it.
    """
    import tempfile

    try:
        from mlflow.tracking import MlflowClient

        from workbench.transfer import workspace_context

        workspace = None
        if uri.startswith(("http://", "https://")) and not os.environ.get("MLFLOW_WORKSPACE"):
            listed = _visible_workspaces(uri)
            if listed != [None] and not _is_admin(uri):
                workspace = listed[0]
        client = MlflowClient(tracking_uri=uri)
        with workspace_context(workspace):
            exp = client.get_experiment_by_name(COMPARISON_EXPERIMENT)
            eid = exp.experiment_id if exp else client.create_experiment(COMPARISON_EXPERIMENT)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            run = client.create_run(eid, run_name=f"comparison-{stamp}")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp, name)
                path.write_text(text, encoding="utf-8")
                client.log_artifact(run.info.run_id, str(path))
            client.set_terminated(run.info.run_id)
        return run.info.run_id
    except Exception as e:  # noqa: BLE001 - the HTML file exists; the artifact is a copy
        warnings.warn(f"could not log the comparison to {uri}: {type(e).__name__}: {e}",
                      RuntimeWarning, stacklevel=2)
        return None
