"""`workbench report`: one campaign as self-contained HTML, comparisons of campaigns from
stores and from a real multi-partner server (an admin sees every partner, a partner
only itself), each also logged as an MLflow artifact."""

import base64
import contextlib
import re

import numpy as np
import pytest
from filelock import FileLock
from test_server_auth import SECRET, as_partner, server  # noqa: F401  (the module's real server)
from typer.testing import CliRunner

import workbench as wb
from workbench.cli import app
from workbench.report import evaluations_to_target, summary_from_store

BRANIN = wb.problems.get("branin")
# How long a test waits for a detached delivery (seconds): generous, for a loaded machine.
DELIVERY_WAIT_S = 180


def _oracle(params):
    if params["x1"] > 9.0:  # one region of the lab fails: a failure to report
        raise RuntimeError("reactor clogged")
    return BRANIN(params)


def _run(tmp_path, name, budget, uri, seed=0):
    c = wb.Campaign(name, BRANIN.space(), [wb.Objective("y", "minimize")],
                    store=tmp_path / f"{name}.zarr", tracking=uri, seed=seed,
                    initial_design={"n": 4})
    c.run(_oracle, budget=budget)
    return c


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    return tmp, uri, [_run(tmp, "alpha", 7, uri), _run(tmp, "beta", 6, uri, seed=1)]


def _images_per_section(text):
    """{h2 heading: embedded PNGs under it} for sections that hold any."""
    out = {}
    for part in text.split("<h2>")[1:]:
        heading, body = part.split("</h2>", 1)
        if body.count("data:image/png;base64,"):
            out[re.sub(r" \(.*", "", heading)] = body.count("data:image/png;base64,")
    return out


def _invoke(args, cwd, monkeypatch):
    monkeypatch.chdir(cwd)
    return CliRunner().invoke(app, args)


def test_one_campaign_report_is_self_contained_and_logged_to_its_run(local, monkeypatch):
    from mlflow.tracking import MlflowClient

    tmp, uri, (alpha, _) = local
    r = _invoke(["report", "alpha.zarr", "--out", "out/alpha.html", "--wait"], tmp, monkeypatch)
    assert r.exit_code == 0, r.output
    assert f"logged report.html to run {alpha.run_id}" in r.output
    text = (tmp / "out" / "alpha.html").read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in images)
    assert "src=\"http" not in text and "<script" not in text  # nothing fetched
    # Every plot that applies to one objective over two continuous parameters, a
    # model having proposed: one embedded image each, nothing else.
    assert _images_per_section(text) == {
        "Convergence": 1, "Predicted vs observed": 1, "Calibration": 1,
        "Slices through the best trial": 1,
        "Posterior map of the two most relevant parameters": 1, "Parameter relevance": 1,
        "Global sensitivity": 1}
    assert len(images) == 7
    # The model's Sobol indices: a total index per parameter of the objective.
    sensitivity = text.split("<h2>Global sensitivity")[1].split("<h2>")[0]
    assert "<th>total index</th><th>y</th>" in sensitivity
    for heading in ("Spec", "Best trials", "Failures", "Timings and compute", "Trials"):
        assert f"<h2>{heading}" in text, heading
    assert "random search" not in text  # not free for a Python oracle: no band
    # The five best completed trials, best first, and the whole spec.
    done = sorted((t for t in alpha.trials if t.status == "completed"),
                  key=lambda t: t.outcomes["y"])[:5]
    table = text.split("<h2>Best trials")[1].split("<h2>")[0]
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td>", table)
    assert rows == [(str(t.id), f"{t.outcomes['y']:.6g}") for t in done]
    assert "full spec (YAML)" in text and "name: alpha" in text
    failed = [t for t in alpha.trials if t.status == "failed"]
    assert text.count("reactor clogged") == 2 * len(failed)  # failure table and trial table
    assert "CPU time (sum over every process that logged to the run)" in text
    assert "energy estimate" in text
    assert text.count("<tr>") >= len(alpha.trials) + 1
    client = MlflowClient(uri)
    logged = client.download_artifacts(alpha.run_id, "report.html", str(tmp / "dl"))
    assert open(logged).read() == text


def test_sqlite_metric_reader_returns_what_mlflow_returns(local):
    """The report's stdlib reader of a local sqlite store against MlflowClient, on the
    same real run: every metric key the campaign logged, NaN included."""
    import math

    from mlflow.tracking import MlflowClient

    from workbench.report import sqlite_metric_history

    _, uri, (alpha, _) = local
    client = MlflowClient(uri)
    client.log_metric(alpha.run_id, "reader_nan", float("nan"), step=3)
    keys = set(client.get_run(alpha.run_id).data.metrics) | {"not_logged"}
    assert {"best_so_far", "step_cpu_s", "reader_nan"} <= keys
    for key in sorted(keys):
        want = [(m.key, m.value, m.timestamp, m.step)
                for m in client.get_metric_history(alpha.run_id, key)]
        got = [(m.key, m.value, m.timestamp, m.step)
               for m in sqlite_metric_history(uri, alpha.run_id, key)]
        assert len(got) == len(want), key
        for g, w in zip(got, want):
            assert g[::2] == w[::2] and g[3] == w[3], key
            assert g[1] == w[1] or (math.isnan(g[1]) and math.isnan(w[1])), key


def test_a_report_hands_its_artifact_to_a_background_process(local):
    """Without --wait the command neither imports MLflow nor waits on it: a detached
    process delivers report.html to the run, the same text as the file written."""
    import json
    import subprocess
    import sys
    import time

    from mlflow.tracking import MlflowClient

    tmp, uri, (_, beta) = local
    out = tmp / "bg" / "beta.html"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "workbench", "report",
                           "beta.zarr", "-o", str(out), "--json"], cwd=tmp,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    assert doc["logged_run"] == beta.run_id and doc["delivery"] == "background"
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert not {m for m in imported if m.split(".")[0] in ("mlflow", "xarray", "pandas")}
    client, deadline = MlflowClient(uri), time.monotonic() + DELIVERY_WAIT_S
    while "report.html" not in [a.path for a in client.list_artifacts(beta.run_id)]:
        assert time.monotonic() < deadline, "the background delivery never arrived"
        time.sleep(0.5)
    logged = client.download_artifacts(beta.run_id, "report.html", str(tmp / "bg" / "dl"))
    assert open(logged).read() == out.read_text()


def test_a_report_builds_one_model_from_the_last_proposal(local):
    """Slices, map and sensitivity share one model: the last proposal's hyperparameters
    conditioned on the data, with no optimisation, and the report says so."""
    from workbench.engine import models_built
    from workbench.report import campaign_report

    tmp, _, (alpha, _) = local
    before = models_built()
    text, _ = campaign_report(tmp / "alpha.zarr")
    after = models_built()
    assert {k: after[k] - before[k] for k in after} == {"fit": 0, "condition": 1}
    done = sum(t.status == "completed" for t in alpha.trials)
    assert (f"model shown below: gp with the hyperparameters of the last proposal,"
            f" conditioned on the {done} completed trials") in text
    for heading in ("Slices through the best trial", "Posterior map", "Global sensitivity"):
        assert f"<h2>{heading}" in text, heading
    # The model holds exactly the hyperparameters the last proposal stored.
    import json

    import surrogates as sg

    from workbench.campaign import Campaign
    from workbench.plots import campaign_model

    reopened = Campaign.open(tmp / "alpha.zarr")
    model = campaign_model(reopened, refit=False).model
    assert isinstance(model, sg.OutputWarped)  # one objective: the GP sees it warped
    stored = json.loads(json.dumps(sg.hyperparameters_to_dict(model.model.hyperparameters)))
    # The state also records when the fit last refitted from scratch (the refit policy's
    # bookkeeping) and the output warp fitted on that proposal's data: not hyperparameters.
    state = {k: v for k, v in reopened.surrogate_state.items()
             if k not in ("refit", "output_warp")}
    assert state and stored == state


def test_comparison_of_stores_counts_evaluations_to_target(local, monkeypatch):
    tmp, _, (alpha, beta) = local
    target = 5.0
    r = _invoke(["report", "--compare", "alpha.zarr", "beta.zarr", "--target", str(target),
                 "--out", "cmp.html"], tmp, monkeypatch)
    assert r.exit_code == 0, r.output
    text = (tmp / "cmp.html").read_text()
    assert text.count("data:image/png;base64,") == 1
    for c in (alpha, beta):
        ys = [t.outcomes.get("y", np.inf) for t in sorted(c.trials, key=lambda t: t.told_at)]
        best = np.minimum.accumulate(ys)
        hit = next((k + 1 for k, b in enumerate(best) if b <= target), None)
        s = summary_from_store(tmp / f"{c.name}.zarr")
        assert evaluations_to_target(s.best, target, "minimize") == hit
        assert s.evaluations == len(c.trials) and s.failed == sum(
            t.status == "failed" for t in c.trials)
        assert s.cpu_s > 0 and s.energy_j == pytest.approx(12.0 * s.cpu_s)
        cell = "not reached" if hit is None else str(hit)
        assert f"<td>{c.name}</td>" in text and f"<td>{cell}</td>" in text


def test_evaluations_to_target_in_both_directions():
    best = np.array([np.nan, 5.0, 3.0, 3.0, 1.0])
    assert evaluations_to_target(best, 3.0, "minimize") == 3
    assert evaluations_to_target(best, 0.5, "minimize") is None
    assert evaluations_to_target(-best, -3.0, "maximize") == 3


@pytest.mark.parametrize("args, message", [
    (["report"], "give a campaign store"),
    (["report", "a.zarr", "b.zarr"], "add --compare"),
    (["report", "--all"], "--all: needs --tracking"),
    (["report", "missing.zarr"], "no campaign store at missing.zarr"),
    (["report", "--compare", "alpha.zarr", "0123abcd"], "pass --tracking URI"),
    (["report", "--compare", "alpha.zarr", "no/such/thing"], "neither campaign stores"),
])
def test_bad_report_requests_exit_2_and_write_nothing(local, monkeypatch, args, message):
    tmp = local[0]
    # The module's earlier reports leave detached deliverers that acknowledge what they
    # sent (a file written and renamed): holding every store's delivery lock keeps them
    # out of the folder while it is compared.
    with contextlib.ExitStack() as quiet:
        for lock in sorted(tmp.glob(".*.delivery.lock")):
            quiet.enter_context(FileLock(str(lock), timeout=DELIVERY_WAIT_S))
        before = set(tmp.iterdir())
        r = _invoke(args + ["--out", "bad.html"], tmp, monkeypatch)
        assert r.exit_code == 2, r.output
        assert message in r.output and "Traceback" not in r.output
        assert set(tmp.iterdir()) == before


def test_admin_compares_every_partner_and_a_partner_only_itself(server, tmp_path,  # noqa: F811
                                                                monkeypatch):
    from mlflow.tracking import MlflowClient

    with as_partner("acme"):
        c = wb.Campaign("served", BRANIN.space(), [wb.Objective("y", "minimize")],
                        store=tmp_path / "s.zarr", tracking=server.url, partner="acme",
                        seed=0, initial_design={"n": 4})
        c.run(BRANIN, budget=4)
    monkeypatch.chdir(tmp_path)
    for k, v in server.admin_env.items():
        monkeypatch.delenv(k, raising=False) if v is None else monkeypatch.setenv(k, v)
    r = CliRunner().invoke(app, ["report", "--tracking", server.url, "--all", "--target", "2",
                                 "--out", "admin.html"])
    assert r.exit_code == 0, r.output
    admin = (tmp_path / "admin.html").read_text()
    for name in (f"{SECRET}-acme", f"{SECRET}-bolt", "served"):
        assert f"<td>{name}</td>" in admin, name
    # The fixture's hand-made campaigns logged best 3, 2, 1.5: the target 2 is reached at 2.
    assert "<td>2</td><td>n/a</td>" in admin
    run_id = re.search(r"logged report.html to run (\w+)", r.output).group(1)
    assert MlflowClient(server.url).get_run(run_id).info.run_name.startswith("comparison-")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    with as_partner("acme"):
        r = CliRunner().invoke(app, ["report", "--tracking", server.url, "--all",
                                     "--out", "acme.html"])
    assert r.exit_code == 0, r.output
    mine = (tmp_path / "acme.html").read_text()
    assert f"<td>{SECRET}-acme</td>" in mine and "<td>served</td>" in mine
    assert "bolt" not in mine


def test_report_of_a_dataset_pool_shows_random_search_for_free(tmp_path):
    from workbench.plots import pool_values, random_best_quantiles
    from workbench.report import campaign_report

    space = [{"name": "base", "type": "categorical",
              "choices": ["Cesium acetate", "Potassium acetate"]},
             {"name": "ligand", "type": "categorical", "choices": ["XPhos", "PPh3"]},
             {"name": "solvent", "type": "categorical", "choices": ["DMAc", "p-Xylene"]},
             {"name": "concentration", "type": "categorical",
              "choices": ["0.057", "0.1", "0.153"]},
             {"name": "temperature", "type": "categorical", "choices": ["90", "105", "120"]}]
    c = wb.Campaign.from_dict({
        "name": "pool", "space": space, "seed": 0, "tracking": None,
        "store": str(tmp_path / "pool.zarr"), "initial_design": {"n": 5},
        "objectives": [{"name": "yield", "direction": "maximize", "unit": "%"}],
        "oracle": {"dataset": "shields_arylation", "objective": "yield"}})
    c.run(budget=5)
    text, _ = campaign_report(tmp_path / "pool.zarr")
    assert "exact over 72 pool rows" in text
    assert _images_per_section(text) == {"Convergence": 1, "Predicted vs observed": 1,
                                         "Global sensitivity": 1}
    band = random_best_quantiles(pool_values(c), 5, "maximize")
    assert band[1, 0] <= band[1, -1]  # the band the report drew rises with evaluations


def test_report_of_two_objectives_over_a_composition(tmp_path):
    from workbench.report import campaign_report

    space = wb.SearchSpace([wb.Composition("alloy", ["Cu", "Ni", "Pd", "Au"],
                                           resolution=0.05),
                            wb.Continuous("T", 300.0, 900.0, unit="K")])
    c = wb.Campaign("alloys", space, [wb.Objective("energy", "minimize", unit="eV/atom"),
                                      wb.Objective("cost", "minimize", unit="EUR/kg")],
                    store=tmp_path / "alloys.zarr", tracking=None, seed=0,
                    initial_design={"n": 8})
    for t in c.ask(8):
        f = t.params["alloy"]
        c.tell(t.id, {"energy": f["Cu"] - f["Pd"] + 1e-4 * t.params["T"],
                      "cost": 9.0 * f["Cu"] + 30.0 * f["Pd"] + 60.0 * f["Au"] + f["Ni"]})
    text, _ = campaign_report(tmp_path / "alloys.zarr")
    # No model has proposed yet (no calibration, no relevance); one continuous
    # parameter: slices but no 2-D map.
    assert _images_per_section(text) == {
        "Convergence": 1, "Predicted vs observed": 1, "Pareto front": 1, "Hypervolume": 1,
        "Slices through the best trial": 1, "Global sensitivity": 1, "Composition alloy": 1}
    front = c.pareto()
    assert f"<h2>Best trials: the Pareto front ({len(front)})</h2>" in text
    table = text.split("<h2>Best trials")[1].split("<h2>")[0]
    assert sorted(int(i) for i in re.findall(r"<tr><td>(\d+)</td>", table)) == sorted(
        t.id for t in front)
    assert "<th>alloy.Cu</th>" in table


def test_report_of_three_continuous_parameters_pairs_them(tmp_path):
    from workbench.report import campaign_report

    space = wb.SearchSpace([wb.Continuous(n, 0.0, 1.0) for n in ("p", "q", "s")])
    c = wb.Campaign("three", space, [wb.Objective("y", "minimize")],
                    store=tmp_path / "three.zarr", tracking=None, seed=0,
                    initial_design={"n": 6})
    for t in c.ask(6):
        c.tell(t.id, (t.params["p"] - 0.2) ** 2 + t.params["q"] * t.params["s"])
    text, _ = campaign_report(tmp_path / "three.zarr")
    sections = _images_per_section(text)
    assert sections["Posterior map of the two most relevant parameters"] == 1
    assert sections["Pairs of the three most relevant parameters"] == 1
