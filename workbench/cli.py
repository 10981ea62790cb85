"""The ``workbench`` command: validate, run, ask, tell and status from a YAML spec.

Heavy libraries (JAX, MLflow, xarray) are imported inside the commands that
need them, so ``workbench --help`` and ``workbench validate`` answer at once.
Errors print one clear message and exit non-zero (2 for bad input), never a
traceback; set ``WORKBENCH_DEBUG=1`` to see one. ``--json``: see ``workbench.cli_json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from workbench.cli_common import err, out
from workbench.cli_common import emit_output as _emit
from workbench.cli_common import existing_store as _existing_store
from workbench.cli_common import guard as _guard
from workbench.cli_common import load as _load
from workbench.cli_common import locate as _locate
from workbench.cli_common import need_store as _need_store
from workbench.cli_common import open_campaign as _open
from workbench.cli_schema import JSON_OPTION, schema_command
from workbench.space_cli import space_command
from workbench.cli_explain import explain
from workbench.cli_importance import importance
from workbench.cli_import import import_data
from workbench.cli_worker import worker_app
from workbench.terminal import format_value as _fmt
from workbench.terminal import trial_detail, trial_table

# Seconds after which a `run` without --wait stops queueing its tracking for a detached
# process and delivers it from its own (a live view of a long campaign in MLflow).
LIVE_TRACKING_AFTER_S = 60.0

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Bayesian-optimisation campaigns from experiment YAML files.",
)


@app.command()
@_guard
def validate(spec: str = typer.Argument(..., help="experiment YAML file or shipped name"),
             as_json: bool = JSON_OPTION):
    """Check a spec; exit 0 if valid, 2 with field, line and reason if not."""
    from workbench.store import check_store_path

    path, parsed = _load(spec)
    if parsed.store is not None:
        check_store_path(parsed.store)  # a folder that is not a store would be refused by run
    if parsed.oracle is not None and getattr(parsed.oracle, "python", None):
        from workbench.oracles import find_python

        find_python(parsed.oracle.python, path.parent)  # found, not imported: no user code runs
    obj = parsed.objectives[0]
    out.print(
        f"[green]valid[/]: {path} - campaign {parsed.name!r} (partner {parsed.partner!r}),"
        f" {len(parsed.space)} parameters, objective {obj.name} ({obj.direction}),"
        f" budget {parsed.budget if parsed.budget else 'not set'}", highlight=False,
    )
    if as_json:
        _emit("validate", spec=str(path), parsed=parsed)


@app.command()
@_guard
def run(
    spec: str = typer.Argument(..., help="experiment YAML file or shipped name"),
    budget: Optional[int] = typer.Option(None, "--budget", "-b", min=1,
                                         help="total experiments (default: the spec's)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
    wait: bool = typer.Option(False, "--wait",
                              help="deliver tracking to MLflow from this process as it goes"
                                   " (default: a background process delivers it after a"
                                   f" run shorter than {LIVE_TRACKING_AFTER_S:g} s)"),
    as_json: bool = JSON_OPTION,
):
    """Run the closed loop against the spec's oracle until the budget is spent."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from workbench.errors import CampaignError
    from workbench.oracles import from_spec

    path, parsed = _load(spec)
    if parsed.oracle is None:
        raise CampaignError("oracle: the spec has no oracle block; `run` needs one"
                            " (use `ask` and `tell` for experiments done by hand)")
    total = budget or parsed.budget
    if total is None:
        raise CampaignError("budget: not set in the spec; pass --budget N")
    oracle = from_spec(parsed.oracle, path.parent)  # import errors stop us before any write
    campaign = _open(path, parsed)
    # A short run leaves MLflow (seconds to import, beside the campaign's own work) to a
    # detached process started at its end; a long one delivers live from here after a while.
    detach = not wait and campaign.spec.tracking is not None and campaign.store is not None
    if detach:
        campaign.defer_tracking(for_s=LIVE_TRACKING_AFTER_S)
    obj = campaign.objectives[0]
    done_before = sum(1 for t in campaign.trials if t.status != "pending")
    before = {t.id: t.status for t in campaign.trials}
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, disable=quiet, transient=False) as bar:
        task = bar.add_task(f"{campaign.name}", total=total, completed=min(done_before, total))

        def progress(trial):
            best = campaign.best()
            text = f"{campaign.name}: best {obj.name} = {best.outcomes[obj.name]:.6g}" if best \
                else campaign.name
            bar.update(task, advance=1, description=text)

        try:
            campaign.run(oracle, budget=total, callback=progress)
        finally:  # what is queued (a failed run's end too) goes out from its own process
            if detach and _undelivered(campaign.store.outbox_path):
                from workbench.deliver import spawn

                spawn(campaign.store.path, campaign.spec.tracking)
    trials = campaign.trials
    out.print(trial_table(campaign, trials[-10:], f"last {min(10, len(trials))} of"
                          f" {len(trials)} trials", out.width))
    _summary(campaign)
    if as_json:
        _emit("run", campaign=campaign, budget=total,
              trials=[t for t in trials if before.get(t.id) != t.status])


def _undelivered(outbox_path: Path) -> bool:
    """Whether tracking events wait in the outbox at ``outbox_path`` (a run that turned to
    live delivery may have sent them all itself)."""
    from workbench.outbox import Outbox

    outbox = Outbox(outbox_path)
    with outbox.lock():
        return bool(outbox.pending())


def _summary(campaign) -> None:
    from workbench.tracking import ui_command

    best = campaign.best()
    obj = campaign.objectives[0]
    failed = sum(1 for t in campaign.trials if t.status == "failed")
    if best is not None:
        params = escape(", ".join(f"{k}={_fmt(v)}"
                                  for k, v in campaign.space.flatten(best.params).items()))
        out.print(f"best {obj.name} = {best.outcomes[obj.name]:.6g} at trial {best.id}: {params}",
                  highlight=False)
    if failed:
        out.print(f"{failed} trial(s) failed; see `workbench status` for reasons")
    if campaign.spec.store:
        out.print(f"campaign record (Zarr): {Path(campaign.spec.store).absolute()}",
                  highlight=False)
    if campaign.spec.tracking:
        out.print(f"tracking (MLflow): {campaign.spec.tracking}\n  browse it with:"
                  f" {ui_command(campaign.spec.tracking)}", highlight=False)


@app.command()
@_guard
def ask(
    spec: str = typer.Argument(..., help="experiment YAML file or shipped name"),
    n: int = typer.Option(1, "-n", min=1, help="number of experiments to propose"),
    output: Optional[Path] = typer.Option(None, "-o", "--output",
                                          help="write the proposals to this CSV file"),
    wait: bool = typer.Option(False, "--wait",
                              help="deliver tracking to MLflow before returning (default: a"
                                   " background process delivers it)"),
    no_worker: bool = typer.Option(False, "--no-worker",
                                   help="answer in this process, not in the warm worker"
                                        " (also: WORKBENCH_WORKER=0)"),
    as_json: bool = JSON_OPTION,
):
    """Propose the next experiments; fill in their outcomes and pass the CSV to `tell`.

    A warm worker process answers it where one runs (see `workbench worker`)."""
    path, parsed = _load(spec)
    _need_store(parsed)
    if output is not None and output.exists() and output.is_dir():
        from workbench.errors import CampaignError

        raise CampaignError(f"--output: {output} is a folder; expected a CSV file path")
    campaign = _open(path, parsed)
    if not wait:  # queued in the outbox; a detached process delivers it (below)
        campaign.defer_tracking()
    trials = campaign.ask(n)
    campaign.log_snapshot()
    if not wait and campaign.spec.tracking and campaign.store is not None:
        from workbench.deliver import spawn

        spawn(campaign.store.path, campaign.spec.tracking)
    out.print(trial_table(campaign, trials, f"{len(trials)} proposed", out.width))
    if output is not None:
        from workbench.csvio import write_rows

        # The identity columns come last, out of the way of the columns a lab fills in;
        # `tell` refuses the file for any other campaign.
        rows = [{"trial_id": t.id, **campaign.space.flatten(t.params),
                 **{o.name: "" for o in campaign.outcomes},
                 "campaign": campaign.name, "campaign_id": campaign.campaign_id}
                for t in trials]
        # Headers carry units ("temperature [degC]"); `tell` reads them back and
        # refuses a column whose unit differs.
        units = campaign.space.flat_units()
        units.update({o.name: o.unit for o in campaign.outcomes})
        labels = {k: f"{k} [{units[k]}]" if units.get(k) else k for k in rows[0]}
        write_rows(output, list(labels.values()),
                   [{labels[k]: v for k, v in row.items()} for row in rows])
        out.print(f"wrote {output}: fill in {', '.join(o.name for o in campaign.outcomes)}"
                  f" (or a failure_reason) and run `workbench tell {spec} {output}`",
                  highlight=False)
    if as_json:
        _emit("ask", campaign=campaign, trials=trials, output=output and str(output))


@app.command()
@_guard
def tell(
    spec: str = typer.Argument(..., help="experiment YAML file or shipped name"),
    results: Path = typer.Argument(..., help="CSV with trial_id and outcome columns"),
    actual: bool = typer.Option(
        False, "--actual", help="record parameter values that differ from the proposal as"
        " the setpoints actually run (in bounds); without it such a file is refused"),
    as_json: bool = JSON_OPTION,
):
    """Record results from a CSV: one row per trial id; a failure_reason marks a failure."""
    from workbench.csvio import read_results

    path, parsed = _load(spec)
    _need_store(parsed)
    from workbench.store import ZarrStore
    from workbench.errors import CampaignError

    if not ZarrStore(parsed.store).exists():
        raise CampaignError(f"store: no campaign at {parsed.store}; run `workbench ask` first")
    campaign = _open(path, parsed)
    # Tracking waits in the store's outbox for the next ask, run or report, which
    # import MLflow anyway: a tell answers without it.
    campaign.defer_tracking()
    told = failed = unchanged = 0
    # Checked and written under one hold of the store's lock: every row is
    # validated against the current record before the first is told, so a file
    # with one bad row records nothing, and no other process slips in between.
    with campaign.transaction():
        rows = read_results(results, campaign, actual=actual)
        # read_results refuses conflicts, so a row for a trial already told repeats it.
        recorded = {t.id for t in campaign.trials if t.status != "pending"}
        for trial_id, outcomes, reason, setpoints in rows:
            if trial_id in recorded:
                unchanged += 1
                continue
            if reason is not None:
                trial = campaign.tell_failed(trial_id, reason, actual=setpoints)
                failed += 1
                if reason.startswith("bad observation:"):
                    err.print(f"trial {trial_id}: {reason}; recorded as failed"
                              " (bad_observations: fail)", highlight=False, markup=False)
            else:
                trial = campaign.tell(trial_id, outcomes, actual=setpoints)
                told += 1
            if setpoints:
                _print_setpoints(trial, setpoints)
    if told or failed:
        campaign.log_snapshot()
    if told or failed or not unchanged:
        again = f"; {unchanged} row(s) already recorded, unchanged" if unchanged else ""
        out.print(f"recorded {told} result(s) and {failed} failure(s) from {results}{again}",
                  highlight=False, markup=False)
    else:
        out.print(f"already recorded: {unchanged} row(s) of {results} unchanged; nothing new",
                  highlight=False, markup=False)
    _summary(campaign)
    if as_json:
        _emit("tell", campaign=campaign, results=str(results), recorded=told, failed=failed,
              unchanged=unchanged,
              trials=[campaign.trials[i] for i in sorted({r[0] for r in rows} - recorded)])


def _print_setpoints(trial, setpoints: dict) -> None:
    """Say which actual setpoints were recorded for a trial, beside the proposal."""
    text = ", ".join(f"{k} = {_fmt(trial.params[k])} (proposed {_fmt(trial.proposed[k])})"
                     for k in setpoints)
    out.print(f"trial {trial.id}: recorded as run at {text}", highlight=False, markup=False)


@app.command()
@_guard
def status(
    spec: str = typer.Argument(..., help="experiment YAML file, shipped name or campaign store"),
    trial: Optional[int] = typer.Option(None, "--trial", help="show one trial in full"),
    as_json: bool = JSON_OPTION,
):
    """Show the trials, why any failed, and the best result so far."""
    from workbench.campaign import Campaign
    from workbench.errors import CampaignError
    from workbench.store import ZarrStore

    store, path, parsed = _locate(spec, "status")
    if not ZarrStore(store).exists():
        if parsed is None:
            raise CampaignError(f"status: no campaign store at {store}; expected a campaign"
                                " store (a *.zarr folder) or a spec")
        out.print(f"campaign {parsed.name!r} has not started: no store at {store}",
                  highlight=False)
        if as_json:
            _emit("status", started=False, name=parsed.name, campaign=None, trials=[])
        return
    campaign = _open(path, parsed) if parsed is not None else Campaign.open(store)
    trials = campaign.trials
    if trial is not None:
        if not 0 <= trial < len(trials):
            raise CampaignError(f"--trial: got {trial}; expected 0 to {len(trials) - 1}")
        out.print(trial_detail(campaign, trials[trial]))
        if as_json:
            _emit("trial", campaign=campaign, trial=trials[trial])
        return
    out.print(trial_table(campaign, trials, f"campaign {campaign.name!r}: {len(trials)} trials",
                          out.width))
    _summary(campaign)
    if as_json:
        _emit("status", started=True, name=campaign.name, campaign=campaign, trials=trials)


@app.command()
@_guard
def report(
    items: Optional[list[str]] = typer.Argument(
        None, help="campaign store (Zarr folder) or spec; with --compare, stores, specs or"
                   " MLflow run ids"),
    out_path: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write"),
    compare: bool = typer.Option(False, "--compare", help="compare the campaigns given"),
    tracking: Optional[str] = typer.Option(None, "--tracking",
                                           help="MLflow URI to read runs from and log to"),
    all_runs: bool = typer.Option(False, "--all", help="every campaign visible at --tracking"),
    target: Optional[float] = typer.Option(None, "--target",
                                           help="objective value for 'evaluations to target'"),
    wait: bool = typer.Option(False, "--wait",
                              help="log report.html to MLflow before returning (default: a"
                                   " background process delivers it)"),
    as_json: bool = JSON_OPTION,
):
    """A campaign as self-contained HTML, or a comparison of campaigns (also MLflow artifacts)."""
    from workbench.errors import CampaignError
    from workbench.report import QUICK_HTTP

    # A report is read now or not at all: a tracking server that does not answer gets
    # one short try, also from the outbox's last delivery at exit (unless the user set these).
    for key, value in QUICK_HTTP.items():
        os.environ.setdefault(key, value)

    items = list(items or [])
    if all_runs and not tracking:
        raise CampaignError("--all: needs --tracking URI (the server whose campaigns to compare)")
    if all_runs and items:
        raise CampaignError(f"--all: compares every campaign at --tracking; got {items} as well")
    if not items and not all_runs:
        raise CampaignError("report: give a campaign store, --compare STORE_OR_RUN ..., or"
                            " --tracking URI --all")
    if len(items) > 1 and not compare:
        raise CampaignError(f"report: got {len(items)} campaigns; add --compare to compare them")
    if out_path is not None and out_path.is_dir():
        raise CampaignError(f"--out: {out_path} is a folder; expected an HTML file path")
    if compare or all_runs:
        done = _report_comparison(items, out_path or Path("comparison.html"), tracking, target)
    else:
        done = _report_one(items[0], out_path or Path("report.html"), tracking, wait)
    if as_json:
        _emit("report", **done)


def _report_one(item: str, out_path: Path, tracking: Optional[str] = None,
                wait: bool = False) -> dict:
    from workbench.report import campaign_report, log_campaign_report

    store = _existing_store(item, "report")
    text, campaign = campaign_report(store, tracking)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    out.print(f"wrote {out_path}", highlight=False)
    run_id = log_campaign_report(campaign, text, wait=wait)
    if run_id and wait:
        out.print(f"logged report.html to run {run_id} at {campaign.spec.tracking}",
                  highlight=False)
    elif run_id:
        out.print(f"report.html goes to run {run_id} at {campaign.spec.tracking} from a"
                  " background process (--wait: before returning)", highlight=False)
    return {"written": str(out_path), "campaigns": 1, "logged_run": run_id,
            "tracking": campaign.spec.tracking,
            "delivery": None if not run_id else "done" if wait else "background"}


def _report_comparison(items: list[str], out_path: Path, tracking: Optional[str],
                       target: Optional[float]) -> dict:
    from workbench.errors import CampaignError
    from workbench.report import (comparison_report, log_comparison, summaries_from_tracking,
                                  summary_from_store)
    from workbench.resources import resolve_spec
    from workbench.store import ZarrStore

    stores, runs = [], []
    for i in items:  # a store, a spec (its store) or else an MLflow run id
        if ZarrStore(i).exists() or Path(i).suffix == ".zarr" or resolve_spec(i).is_file():
            stores.append(_existing_store(i, "--compare"))
        else:
            runs.append(i)
    bad = [r for r in runs if not (r.startswith("runs:/") or r.isalnum())]
    if bad:
        raise CampaignError(f"--compare: {bad} are neither campaign stores nor MLflow run ids")
    if runs and not tracking:
        raise CampaignError(f"--compare: {runs} are not stores here; to read them as MLflow runs"
                            " pass --tracking URI")
    summaries = [summary_from_store(s, tracking) for s in stores]
    if runs or not items:
        summaries += summaries_from_tracking(tracking, runs=runs or None)
    text = comparison_report(summaries, target=target)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    out.print(f"wrote {out_path}: {len(summaries)} campaign(s)", highlight=False)
    run_id = log_comparison(tracking, text) if tracking else None
    if run_id:
        out.print(f"logged report.html to run {run_id} of reports/comparison at {tracking}",
                  highlight=False)
    return {"written": str(out_path), "campaigns": len(summaries), "logged_run": run_id,
            "tracking": tracking}


@app.command()
@_guard
def verify(
    store: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    recover: Optional[Path] = typer.Option(
        None, "--recover", help="write a copy with every intact event to this new path"),
    as_json: bool = JSON_OPTION,
):
    """Check a store's integrity; exit 0 if intact, 1 if damaged (nothing is changed)."""
    from workbench import store as stores

    store, _, _ = _locate(store, "verify")  # a damaged store may lack its marker: no check
    damage, notes = stores.verify(store)
    dropped = stores.recover(store, recover) if recover is not None else None
    if as_json:
        _emit("verify", store=store, intact=not damage, damage=damage, notes=notes,
              recovered_to=str(recover) if recover else None, dropped_lines=dropped)
    else:
        for line in damage:
            out.print(f"[red]damaged[/]: {line}", highlight=False, soft_wrap=True)
        for line in notes:
            out.print(f"note: {line}", highlight=False, soft_wrap=True)
        out.print("[green]intact[/]" if not damage else f"{len(damage)} problem(s) found",
                  highlight=False)
        if recover is not None:
            out.print(f"copy written to {recover}, without journal line(s) {dropped or 'none'}",
                      highlight=False)
    if damage:
        raise typer.Exit(1)


@app.command()
@_guard
def export(
    store: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    output: Path = typer.Option(..., "-o", "--output", help="CSV file to write"),
    as_json: bool = JSON_OPTION,
):
    """Write every trial of a store as CSV: parameters, outcomes, status, reasons, times
    (ISO 8601 with UTC offset)."""
    from workbench.campaign import Campaign
    from workbench.csvio import write_rows
    from workbench.errors import CampaignError
    from workbench.record import format_time, to_rows

    store = _existing_store(store, "export")
    if output.is_dir():
        raise CampaignError(f"--output: {output} is a folder; expected a CSV file path")
    campaign = Campaign.open(store, tracking=None)  # reading contacts no server
    trials = campaign.trials
    columns, rows = to_rows(trials, campaign.space, campaign.outcomes)
    for row, t in zip(rows, trials):
        row.update(asked_at=format_time(t.asked_at), told_at=format_time(t.told_at))
    write_rows(output, columns + ["asked_at", "told_at"], rows)
    out.print(f"wrote {output}: {len(rows)} trials of campaign {campaign.name!r}",
              highlight=False)
    if as_json:
        _emit("export", written=str(output), name=campaign.name, trials=len(rows),
              columns=columns + ["asked_at", "told_at"])


@app.command()
@_guard
def predict(
    store: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    points: Path = typer.Argument(..., help="CSV file of points: one column per parameter"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="CSV file to write"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
):
    """The model's mean, standard deviation and P(feasible) at the points of a CSV file."""
    from workbench.cli_insight import predict_points

    predict_points(_existing_store(store, "predict"), points, output, as_json, out)


prior_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        pretty_exceptions_enable=False,
                        help="Model priors: share what a campaign learned, not its data.")


@prior_app.command("export")
@_guard
def prior_export(
    store: str = typer.Argument(..., help="campaign store (Zarr folder) or spec"),
    out_path: Path = typer.Option(Path("prior.json"), "--out", "-o", help="JSON file to write"),
    anchors: Optional[int] = typer.Option(None, "--anchors", min=8, max=4096,
                                          help="anchor points (default 32 per input)"),
    as_json: bool = JSON_OPTION,
):
    """Export the campaign's surrogate as a prior (no observations) and log it to its run."""
    from workbench.errors import CampaignError
    from workbench.transfer import export_prior, log_prior, save_prior

    store = _existing_store(store, "prior export")
    if out_path.is_dir():
        raise CampaignError(f"--out: {out_path} is a folder; expected a JSON file path")
    from workbench.campaign import Campaign

    campaign = Campaign.open(store)
    prior = export_prior(campaign, num_anchors=anchors)
    save_prior(prior, out_path)
    out.print(f"wrote {out_path}", highlight=False)
    uri = log_prior(campaign, prior)
    if uri:
        out.print(f"logged as {uri} at {campaign.spec.tracking}", highlight=False)
    elif campaign.spec.tracking:
        out.print(f"not logged to {campaign.spec.tracking} yet: it waits in the campaign's"
                  " tracking outbox", highlight=False)
    if as_json:
        _emit("prior-export", written=str(out_path), logged_as=uri or None,
              tracking=campaign.spec.tracking, queued=bool(campaign.spec.tracking and not uri))


app.add_typer(prior_app, name="prior")
app.command("schema")(_guard(schema_command))


def _register_server() -> None:
    # The server commands live in their own module (it imports no MLflow until used).
    from workbench.server import server_app

    app.add_typer(server_app, name="server",
                  help="Set up and run a multi-partner MLflow tracking server.")


_register_server()
app.command(name="space")(_guard(space_command))


@app.command("mcp")
def mcp(
    root: Path = typer.Option(Path("."), "--root",
                              help="folder of the campaigns served; nothing outside it is read"
                                   " or written"),
    partner: Optional[str] = typer.Option(None, "--partner",
                                          help="serve only this partner's campaigns"),
) -> None:
    """Serve the campaigns under --root to agents: the Model Context Protocol over stdio."""
    # The agent interface lives in its own module (with its JSON models), imported only
    # here so that other commands do not load it; it imports the mcp package when served.
    from workbench.mcp_server import mcp_command

    mcp_command(root, partner)


app.command("import")(_guard(import_data))  # its own module: workbench.cli_import
app.command("explain")(_guard(explain))  # its own module: workbench.cli_explain
app.command("importance")(_guard(importance))  # its own module: workbench.cli_importance
app.add_typer(worker_app, name="worker")  # its own module: workbench.cli_worker


def main() -> None:
    """Run the command line in this process (``workbench.launcher.main``, the console entry
    point, offers an ask to the warm worker first)."""
    if "--json" in sys.argv[1:]:  # usage errors become error documents too
        from workbench.cli_json import main_json

        sys.exit(main_json(app))
    app(prog_name="workbench")


if __name__ == "__main__":
    sys.exit(main())
