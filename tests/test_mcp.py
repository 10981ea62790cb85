"""``workbench mcp`` through a real MCP client session: the server runs as a subprocess
(``python -m workbench mcp --root TMP``) and the official SDK's stdio client talks to it.

A closed ask/tell loop on Branin driven through the protocol leaves the same record as
the same loop through the Python API (same spec and seed); a path outside the root and
a bad outcome are refused with their message and record nothing; the journal names the
client as the actor of every ask and tell.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

import workbench as wb
from workbench.problems import branin
from workbench.store import ZarrStore, decode_line

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.types import Implementation  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLIENT = "workbench-tests"
# Where the predict tool is asked, after the closed loop (user units).
PREDICT_AT = [{"x1": 1.0, "x2": 2.0}, {"x1": -3.0, "x2": 12.0}]
ROUNDS = 8
# The importance tool's settings (small: one more model fit and a few hundred points).
IMPORTANCE = {"n": 32, "samples": 4, "seed": 1}
# The whole session: server start, imports, and a few model fits on a shared machine.
SESSION_TIMEOUT_S = 420
SPEC = textwrap.dedent("""\
    name: branin-agent
    partner: tests
    space:
      - {{name: x1, type: continuous, low: -5.0, high: 10.0}}
      - {{name: x2, type: continuous, low: 0.0, high: 15.0}}
    objectives:
      - {{name: y, direction: minimize}}
    initial_design: {{type: sobol, n: 4}}
    budget: 20
    store: {store}
    tracking: null
    seed: 3
    """)


def _env() -> dict[str, str]:
    """This checkout first, as the test process sees it; BLAS on one thread."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    keep = {k: v for k, v in os.environ.items()
            if k.startswith(("JAX_", "XLA_", "WORKBENCH_", "OPENBLAS_"))}
    return {**keep, "PYTHONPATH": path, "OPENBLAS_NUM_THREADS": "1"}


def _data(result) -> dict:
    assert not result.is_error, result.content[0].text
    return result.structured_content


def _error(result) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def _session(root: Path) -> dict:
    """Everything the tests check, from one server process."""
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "workbench", "mcp", "--root", str(root)],
                                   env=_env(), cwd=str(root))
    seen: dict = {}
    with anyio.fail_after(SESSION_TIMEOUT_S):
        with open(root.parent / "server-stderr.txt", "w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write):
                async with ClientSession(read, write,
                                         client_info=Implementation(name=CLIENT,
                                                                    version="1")) as session:
                    await session.initialize()
                    seen["tools"] = sorted(t.name for t in (await session.list_tools()).tools)
                    seen["validate"] = _data(await session.call_tool(
                        "validate", {"spec_yaml": SPEC.format(store="branin.zarr")}))
                    seen["validate_bad"] = _error(await session.call_tool(
                        "validate", {"spec_yaml": SPEC.format(store="branin.zarr")
                                     .replace("minimize", "minimise")}))
                    seen["outside"] = _error(await session.call_tool(
                        "status", {"campaign": str(root.parent / "elsewhere.zarr")}))
                    seen["outside_store"] = _error(await session.call_tool(
                        "validate", {"spec_yaml": SPEC.format(store="../escape.zarr")}))
                    for _ in range(ROUNDS):
                        asked = _data(await session.call_tool(
                            "ask", {"campaign": "branin.yaml", "n": 1}))["trials"]
                        for t in asked:
                            y = branin(t["params"]["x1"], t["params"]["x2"])
                            _data(await session.call_tool(
                                "tell", {"campaign": "branin.yaml", "trial_id": t["id"],
                                         "outcomes": {"y": y}}))
                    seen["predict"] = _data(await session.call_tool(
                        "predict", {"campaign": "branin.zarr", "points": PREDICT_AT}))
                    seen["predict_bad"] = _error(await session.call_tool(
                        "predict", {"campaign": "branin.zarr",
                                    "points": [{"x1": 99.0, "x2": 1.0}]}))
                    seen["explain"] = _data(await session.call_tool(
                        "explain", {"campaign": "branin.zarr", "trial_id": ROUNDS - 1}))
                    seen["importance"] = _data(await session.call_tool(
                        "importance", {"campaign": "branin.zarr", **IMPORTANCE}))
                    seen["importance_bad"] = _error(await session.call_tool(
                        "importance", {"campaign": "branin.zarr", "n": 4}))
                    seen["too_many"] = _error(await session.call_tool(
                        "ask", {"campaign": "branin.yaml", "n": 100}))
                    pending = _data(await session.call_tool(
                        "ask", {"campaign": "branin.zarr", "n": 1}))["trials"][0]
                    seen["pending"] = pending
                    seen["bad_outcome"] = _error(await session.call_tool(
                        "tell", {"campaign": "branin.zarr", "trial_id": pending["id"],
                                 "outcomes": {"y": "high"}}))
                    seen["status"] = _data(await session.call_tool(
                        "status", {"campaign": "branin.zarr"}))
                    seen["listed"] = _data(await session.call_tool("list_campaigns", {}))
                    seen["report"] = _data(await session.call_tool(
                        "report", {"campaign": "branin.zarr"}))
    return seen


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("mcp") / "root"
    root.mkdir()
    (root / "branin.yaml").write_text(SPEC.format(store="branin.zarr"))
    return root, anyio.run(_session, root)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> wb.Campaign:
    """The same loop through the Python API."""
    folder = tmp_path_factory.mktemp("api")
    spec = folder / "branin.yaml"
    spec.write_text(SPEC.format(store=folder / "branin.zarr"))
    campaign = wb.Campaign.from_yaml(spec)
    for _ in range(ROUNDS):
        for t in campaign.ask(1):
            campaign.tell(t.id, {"y": branin(**t.params)})
    return campaign


def test_the_tools_are_listed(served):
    _, seen = served
    assert seen["tools"] == ["ask", "explain", "importance", "list_campaigns", "predict",
                             "report", "status", "tell", "validate"]


def test_explain_reads_the_trials_record(served):
    root, seen = served
    want = wb.Campaign.open(root / "branin.zarr", tracking=None).explain(ROUNDS - 1)
    got = seen["explain"]
    assert got["kind"] == "model" and got["trial_id"] == ROUNDS - 1
    assert got["text"] == want["text"] and got["prediction"] == want["prediction"]
    assert got["acquisition_value"] == want["acquisition_value"]
    assert got["alternatives"] == want["alternatives"]


@pytest.mark.slow
def test_predict_equals_the_python_api_on_the_same_data(served, reference):
    _, seen = served
    want = reference.predict(PREDICT_AT)
    got = seen["predict"]
    assert got["columns"] == [str(c) for c in want.columns]
    for row, (_, expected) in zip(got["points"], want.iterrows()):
        assert row["y_mean"] == pytest.approx(expected["y_mean"], rel=1e-9, abs=1e-12)
        assert row["y_std"] == pytest.approx(expected["y_std"], rel=1e-9, abs=1e-12)
    assert "x1" in seen["predict_bad"] and "99" in seen["predict_bad"]


@pytest.mark.slow
def test_importance_equals_the_python_api_on_the_same_data(served, reference):
    _, seen = served
    want = reference.importance(**IMPORTANCE)
    got = seen["importance"]
    assert got["name"] == "branin-agent" and got["n"] == IMPORTANCE["n"]
    assert [o["output"] for o in got["outputs"]] == ["y"]
    rows = got["outputs"][0]["parameters"]
    assert [r["parameter"] for r in rows] == ["x1", "x2"]
    for kind in ("total", "first_order", "total_std"):
        assert [r[kind] for r in rows] == pytest.approx(
            list(want[kind].sel(output="y").values), rel=1e-9, abs=1e-12)
    assert "n: got 4" in seen["importance_bad"] and ">= 16" in seen["importance_bad"]


def test_validate_reads_yaml_text(served):
    _, seen = served
    assert seen["validate"]["valid"] is True
    assert seen["validate"]["parameters"] == ["x1", "x2"]
    assert seen["validate"]["store"] == "branin.zarr"
    assert "objectives" in seen["validate_bad"] and "minimise" in seen["validate_bad"]
    assert "Traceback" not in seen["validate_bad"]


@pytest.mark.slow
def test_closed_loop_matches_the_python_api(served, reference):
    root, _ = served
    served_trials = wb.Campaign.open(root / "branin.zarr").trials[:ROUNDS]
    api_trials = reference.trials
    assert len(served_trials) == len(api_trials) == ROUNDS
    for s, a in zip(served_trials, api_trials):
        assert s.status == a.status == "completed"
        for name in ("x1", "x2"):
            assert s.params[name] == pytest.approx(a.params[name], abs=1e-12, rel=0)
        assert s.outcomes["y"] == pytest.approx(a.outcomes["y"], abs=1e-10, rel=1e-12)
        assert s.strategy == a.strategy
        assert s.prediction is None or s.prediction["y"].mean == pytest.approx(
            a.prediction["y"].mean, rel=1e-9, abs=1e-12)


def test_a_path_outside_the_root_is_refused(served):
    root, seen = served
    assert "outside the root" in seen["outside"] and "elsewhere.zarr" in seen["outside"]
    assert "store" in seen["outside_store"] and "outside the root" in seen["outside_store"]
    assert not (root.parent / "escape.zarr").exists()


def test_limits_and_bad_outcomes_are_refused_and_nothing_recorded(served):
    root, seen = served
    assert "budget of 20" in seen["too_many"]
    pending = seen["pending"]
    assert f"trial {pending['id']}" in seen["bad_outcome"]
    assert "outcomes.y" in seen["bad_outcome"] and "expected a number" in seen["bad_outcome"]
    trial = wb.Campaign.open(root / "branin.zarr").trials[pending["id"]]
    assert trial.status == "pending" and trial.outcomes == {} and trial.told_by is None
    status = seen["status"]
    assert status["trials"] == {"pending": 1, "completed": ROUNDS, "failed": 0}
    assert len(status["trial_list"]) == ROUNDS + 1


def test_results_are_structured(served):
    _, seen = served
    t = seen["pending"]
    assert set(t["params"]) == {"x1", "x2"} and t["status"] == "pending"
    assert set(t["prediction"]["y"]) == {"mean", "std"}
    best = seen["status"]["best"]
    assert best["outcomes"]["y"] == min(x["outcomes"].get("y", float("inf"))
                                        for x in seen["status"]["trial_list"])
    listed = seen["listed"]["campaigns"]
    assert [c["store"] for c in listed] == ["branin.zarr"]
    assert listed[0]["name"] == "branin-agent"


def test_report_is_written_inside_the_root(served):
    root, seen = served
    report = seen["report"]
    assert report["path"] == "branin.html"
    assert (root / "branin.html").read_text().lstrip().lower().startswith("<!doctype html")
    assert report["summary"]["trials"]["completed"] == ROUNDS


def test_the_journal_names_the_client(served):
    root, _ = served
    store = ZarrStore(root / "branin.zarr")
    lines = store.journal_path.read_bytes().splitlines(keepends=True)
    events = [decode_line(line)[1] for line in lines]
    acted = [e for e in events if e["op"] in ("ask", "tell", "fail")]
    # every round's ask and tell, and the last ask; the refused calls left no event
    assert len(acted) == 2 * ROUNDS + 1
    assert {e.get("actor") for e in acted} == {CLIENT}
    trials = wb.Campaign.open(root / "branin.zarr").trials
    assert all(t.asked_by == CLIENT for t in trials)
    assert all(t.told_by == CLIENT for t in trials if t.status == "completed")


# -- who acted, in the record (no server needed) ---------------------------------------


def test_the_actor_survives_compaction_and_records_without_it_read_as_before(tmp_path):
    spec = tmp_path / "branin.yaml"
    spec.write_text(SPEC.format(store=tmp_path / "branin.zarr"))
    campaign = wb.Campaign.from_yaml(spec)
    old = campaign.ask(1)[0]  # no actor set: nothing recorded, as before
    campaign.actor = "robot-7"
    new = campaign.ask(1)[0]
    campaign.tell(old.id, {"y": 1.0})
    campaign.actor = None
    campaign.tell_failed(new.id, "spilled")
    assert "asked_by" not in campaign.data or campaign.data["asked_by"].values[0] == ""
    journal = campaign.trials
    campaign.compact()
    reopened = wb.Campaign.open(tmp_path / "branin.zarr")
    for trials in (journal, reopened.trials):
        assert [(t.asked_by, t.told_by) for t in trials] == [(None, "robot-7"),
                                                             ("robot-7", None)]
    assert list(reopened.data["told_by"].values) == ["robot-7", ""]
    assert reopened.trials[0].outcomes == {"y": 1.0}  # the actor changes nothing else


def test_cli_records_itself_and_status_shows_who(tmp_path):
    import subprocess

    spec = tmp_path / "branin.yaml"
    spec.write_text(SPEC.format(store=tmp_path / "branin.zarr"))
    env = {**os.environ, **_env()}
    subprocess.run([sys.executable, "-m", "workbench", "ask", str(spec)], cwd=tmp_path,
                   env=env, check=True, capture_output=True, timeout=300)
    shown = subprocess.run([sys.executable, "-m", "workbench", "status", str(spec),
                            "--trial", "0"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert shown.returncode == 0, shown.stderr
    assert "asked by" in shown.stdout and "cli" in shown.stdout
    assert wb.Campaign.open(tmp_path / "branin.zarr").trials[0].asked_by == "cli"


def test_without_the_mcp_package_the_command_names_the_extra(tmp_path):
    import subprocess

    script = ("import sys; sys.modules['mcp'] = None; sys.argv = ['workbench', 'mcp'];"
              " from workbench.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env={**os.environ,
                          **_env()}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "sciworkbench[agents]" in done.stderr and "Traceback" not in done.stderr


def test_other_partners_and_links_out_of_the_root_are_refused(tmp_path):
    from workbench.errors import CampaignError
    from workbench.mcp_server import AgentTools

    root = tmp_path / "root"
    root.mkdir()
    (root / "branin.yaml").write_text(SPEC.format(store="branin.zarr"))
    (tmp_path / "outside.yaml").write_text(SPEC.format(store="branin.zarr"))
    (root / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    assert AgentTools(root, partner="tests").validate(path="branin.yaml")["valid"]
    with pytest.raises(CampaignError, match="belongs to partner 'tests'.*serves partner 'acme'"):
        AgentTools(root, partner="acme").validate(path="branin.yaml")
    with pytest.raises(CampaignError, match="outside the root"):
        AgentTools(root).validate(path="link.yaml")
    with pytest.raises(CampaignError, match="tracking: .* outside the root"):
        AgentTools(root).validate(spec_yaml=SPEC.format(store="b.zarr").replace(
            "tracking: null", f"tracking: sqlite:///{tmp_path / 'mlflow.db'}"))
    assert sorted(p.name for p in root.iterdir()) == ["branin.yaml", "link.yaml"]
