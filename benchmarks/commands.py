"""Commands: wall time of each workbench command on a 30-trial campaign, beside --help.

Each command runs as a fresh process, as an engineer types it, warm (after one untimed
run, so the operating system's file cache and JAX's compilation cache are filled), on the
quickstart campaign (Branin, GP, log EI) without its oracle, 30 trials told from the
Branin formula and tracked in embedded MLflow. Targets: ``validate``, ``status``,
``tell`` and ``export`` under a second; ``report`` within a few seconds (5 s); ``--help``
and ``ask`` are recorded without a target (``ask`` fits the model).

The median and interquartile range are over the repetitions; each ``tell`` records a
fresh result file for a pending trial. CPU seconds (user + system of the command's
process) move less than wall time when other work shares the machine; the load average
(1 minute) is read before each command's repetitions.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
from pathlib import Path

from benchmarks import common

# A timed command that runs longer than this has hung (seconds).
COMMAND_TIMEOUT_S = 900

# Seconds; None: recorded without a target.
TARGETS: dict[str, float | None] = {
    "--help": None, "validate": 1.0, "status": 1.0, "tell": 1.0, "export": 1.0,
    "report": 5.0, "ask -n 1": None,
}
QUICK = {"trials": 8, "repeats": 2}
# What the commands that need them pay to import, each in a fresh interpreter beside a
# bare one: where the time of report and ask goes before any work.
IMPORTS = {"python alone": "pass", "numpy": "import numpy", "pandas": "import pandas",
           "jax": "import jax", "matplotlib": "import matplotlib.figure",
           "mlflow": "import mlflow.tracking",
           "mlflow + its SQL store": "import mlflow.store.tracking.sqlalchemy_store"}
IMPORT_REPEATS = 3
SPEC = """\
name: quickstart
partner: demo
description: Branin-Hoo minimisation, 6 space-filling points then model-guided ones.
space:
  - {{name: x1, type: continuous, low: -5.0, high: 10.0}}
  - {{name: x2, type: continuous, low: 0.0, high: 15.0}}
objectives:
  - {{name: y, direction: minimize}}
initial_design: {{type: sobol, n: 6}}
surrogate: {{type: gp, kernel: matern52}}
acquisition: {{type: log_ei, batch_size: 1}}
budget: {budget}
store: {store}
tracking: sqlite:///{db}
seed: 0
"""


# Run in a process of its own, which delivers its tracking before it exits: nothing of
# it runs beside the timed commands. Prints the pending trials as JSON.
_BUILD = """\
import json, sys
import workbench as wb
from workbench.problems import branin
spec, trials, tells = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
campaign = wb.Campaign.from_yaml(spec)
campaign.run(lambda p: {"y": branin(p["x1"], p["x2"])}, budget=trials)
pending = campaign.ask(tells)
campaign.log_snapshot()
print(json.dumps([[t.id, t.params["x1"], t.params["x2"]] for t in pending]))
"""


def build(folder: Path, trials: int, tells: int, asks: int) -> tuple[Path, list[list]]:
    """The campaign: ``trials`` told from the Branin formula, then ``tells`` pending ones
    for the timed tells; the budget leaves room for ``asks`` more. Returns the spec's
    path and the pending trials as [id, x1, x2]."""
    import json

    spec = folder / "quickstart.yaml"
    spec.write_text(SPEC.format(budget=trials + tells + asks, store=folder / "quickstart.zarr",
                                db=folder / "mlflow.db"))
    proc = subprocess.run([sys.executable, "-c", _BUILD, str(spec), str(trials), str(tells)],
                          cwd=folder, env=common.workbench_env(), capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"building the campaign failed: {proc.stderr[-3000:]}")
    return spec, json.loads(proc.stdout.strip().splitlines()[-1])


def result_file(folder: Path, trial: list) -> Path:
    """A result file for one pending trial, as `ask -o` writes it with its outcome filled."""
    from workbench.problems import branin

    trial_id, x1, x2 = trial
    path = folder / f"result_{trial_id}.csv"
    path.write_text(f"trial_id,x1,x2,y\n{trial_id},{x1!r},{x2!r},{branin(x1, x2)!r}\n")
    return path


def time_command(args: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``workbench ARGS`` as a fresh process."""
    wall, cpu, _ = common.timed_process([sys.executable, "-m", "workbench", *args], cwd,
                                        common.workbench_env(), COMMAND_TIMEOUT_S)
    return wall, cpu


def measure(folder: Path, trials: int, repeats: int) -> list[dict]:
    """Each command: one untimed run, then ``repeats`` timed ones."""
    spec, pending = build(folder, trials, tells=repeats + 1, asks=repeats + 1)
    store = str(folder / "quickstart.zarr")
    results = iter([result_file(folder, t) for t in pending])
    commands = {
        "--help": lambda: ["--help"],
        "validate": lambda: ["validate", str(spec)],
        "status": lambda: ["status", str(spec)],
        "tell": lambda: ["tell", str(spec), str(next(results))],
        "export": lambda: ["export", store, "-o", str(folder / "export.csv")],
        "report": lambda: ["report", store, "-o", str(folder / "report.html")],
        "ask -n 1": lambda: ["ask", str(spec), "-n", "1"],
    }
    rows = []
    for name, make in commands.items():
        load = os.getloadavg()[0]
        time_command(make(), folder)  # warm: file cache, compilation cache, outbox delivered
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time_command(make(), folder)
            walls.append(wall)
            cpus.append(cpu)
        q25, med, q75 = common.quartiles(walls)
        target = TARGETS[name]
        rows.append({"command": name, "wall_s": walls, "cpu_s": cpus, "median_s": med,
                     "iqr_s": [q25, q75], "median_cpu_s": common.median(cpus),
                     "target_s": target, "met": None if target is None else med <= target,
                     "loadavg_1min": load})
        print(f"{name}: median {med:.2f} s (IQR {q25:.2f}-{q75:.2f}),"
              f" CPU {common.median(cpus):.2f} s, load {load:.1f}", file=sys.stderr, flush=True)
    return rows


def baseline_name(baseline: dict) -> str:
    """What the baseline run measured: its ``--label``, else its commit."""
    return baseline.get("label") or baseline.get("stamp", {}).get("commit", "?")


def import_costs() -> dict[str, float]:
    """Least CPU seconds over ``IMPORT_REPEATS`` fresh interpreters of each import."""
    out = {}
    for name, code in IMPORTS.items():
        cpus = []
        for _ in range(IMPORT_REPEATS):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", code], env=common.workbench_env(), check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        out[name] = min(cpus)
    return out


def markdown(rows: list[dict], trials: int, repeats: int, imports: dict[str, float],
             baseline: dict | None = None) -> str:
    before = {r["command"]: r for r in (baseline or {}).get("commands", [])}
    extra = " before: median (s) | before: CPU (s) |" if before else ""
    lines = ["| command | median (s) | IQR (s) | CPU median (s) | target (s) | met? "
             "| load (1 min) |" + extra,
             "| --- | ---: | ---: | ---: | ---: | --- | ---: |" + (" ---: | ---: |" if before
                                                                   else "")]
    for r in rows:
        target = "—" if r["target_s"] is None else f"< {r['target_s']:g}"
        met = "—" if r["met"] is None else ("yes" if r["met"] else "**no**")
        old = before.get(r["command"])
        lines.append(f"| `workbench {r['command']}` | {r['median_s']:.2f} "
                     f"| {r['iqr_s'][0]:.2f}-{r['iqr_s'][1]:.2f} | {r['median_cpu_s']:.2f} "
                     f"| {target} | {met} | {r['loadavg_1min']:.1f} |"
                     + (f" {old['median_s']:.2f} | {old['median_cpu_s']:.2f} |" if old else
                        " — | — |" if before else ""))
    if before:
        stamp = baseline.get("stamp", {})
        lines += ["", f"Before: `{baseline_name(baseline)}`, run {stamp.get('date', '?')} with"
                  f" load {stamp.get('loadavg_at_start', [0.0])[0]:.1f} at its start (`--baseline`)."]
    lines += ["", f"{trials} trials told, {repeats} timed repetitions per command after one"
              " untimed run. Wall time decides the target. The machine is shared with other"
              " work (other test and benchmark runs), whose load the stamp and the load"
              " column record; it lengthens wall time more than CPU time. `ask` and `report`"
              " hand their MLflow delivery to a detached process (timed here only as the"
              " load it adds to the next command), as a user's terminal sees them."]
    lines += ["", "CPU seconds to import, least of"
              f" {IMPORT_REPEATS} fresh interpreters (`ask` and `report` import JAX and"
              " matplotlib, not MLflow, whose delivery runs in a detached process; the light"
              " commands none of them):", "",
              "| import | CPU (s) |", "| --- | ---: |"]
    lines += [f"| {name} | {cpu:.2f} |" for name, cpu in imports.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks run commands",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="trials told before timing")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per command")
    parser.add_argument("--label", default=None,
                        help="what this run measures, for a later --baseline (default: commit)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="raw JSON of an earlier run (another checkout), shown beside")
    args = common.parse_args(parser, argv, QUICK)
    if args.trials < 7:
        parser.error(f"--trials: got {args.trials}; expected at least 7 (6 initial + 1 model)")
    if args.repeats < 1:
        parser.error(f"--repeats: got {args.repeats}; expected at least 1")
    run = common.Run.start(__name__, __doc__, args, argv)
    with common.scratch() as tmp:
        rows = measure(tmp, args.trials, args.repeats)
    imports = import_costs()
    run.write_raw({"trials": args.trials, "repeats": args.repeats, "commands": rows,
                   "import_cpu_s": imports, "label": args.label})
    baseline = None
    if args.baseline is not None:
        import json

        baseline = json.loads(args.baseline.read_text())
    page = run.write_page(markdown(rows, args.trials, args.repeats, imports, baseline))
    print(page.read_text())
    return 0
