"""Partners isolated on a real MLflow server with authentication (``workbench server``).

One server for the module, made by ``python -m workbench.server init`` and run by
``python -m workbench.server start`` on 127.0.0.1; partners made by ``add-partner``.
Partner ``acme`` (users ``acme`` and ``acme-2``) and partner ``bolt`` each log one
campaign; every test then checks what one identity can and cannot reach.
"""

import contextlib
import os
import secrets
import socket
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from typer.testing import CliRunner

from workbench.server import (
    ServerError,
    RestClient,
    init_server,
    partner_workspace,
    server_app,
    stop_server,
    wait_until_ready,
    workspace_pattern,
)

REPO = Path(__file__).resolve().parents[1]
PASSWORDS = {name: f"pw-{name}-{secrets.token_hex(10)}" for name in
             ("admin", "acme", "acme-2", "bolt")}
SECRET = "secret-campaign"  # a confidential word that must not reach another partner


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _env(**values):
    """Set (value) or unset (None) environment variables for a block."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def as_partner(user, workspace=None):
    """A partner's client: credentials and workspace from the environment, as users set them."""
    return _env(MLFLOW_TRACKING_USERNAME=user, MLFLOW_TRACKING_PASSWORD=PASSWORDS[user],
                MLFLOW_WORKSPACE=workspace, NETRC=os.devnull)


class Server:
    url: str
    root: Path
    workspaces: dict
    outputs: list  # everything the commands printed
    runs: dict  # partner -> (experiment id, run id)


def server_cli(srv, args, env, input=None):
    """Run a `workbench server` command in-process; its output, asserting exit 0."""
    result = CliRunner().invoke(server_app, args, env=env, input=input)
    srv.outputs.append(result.output)
    assert result.exit_code == 0, result.output
    return result.output


def _log_campaign(client, name):
    """One campaign the way the workbench tracks it: spec params, metrics per step, an artifact."""
    eid = client.create_experiment(name)
    run = client.create_run(eid, tags={"partner": name.split("/")[0]})
    rid = run.info.run_id
    client.log_param(rid, "space.temperature.low", "30.0")
    for step, value in enumerate([3.0, 2.0, 1.5]):
        client.log_metric(rid, "best_so_far", value, step=step)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "report.txt")
        path.write_text(f"{name}: confidential yield 71.2\n")
        client.log_artifact(rid, str(path))
    return eid, rid


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from mlflow import MlflowClient

    srv = Server()
    srv.root = tmp_path_factory.mktemp("tracking") / "server"
    srv.outputs = []
    port = _free_port()
    srv.url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    done = subprocess.run(
        [sys.executable, "-m", "workbench.server", "init", str(srv.root), "--port", str(port)],
        env={**env, "MLFLOW_AUTH_ADMIN_PASSWORD": PASSWORDS["admin"]}, cwd=REPO,
        capture_output=True, text=True)
    srv.outputs += [done.stdout, done.stderr]
    assert done.returncode == 0, done.stderr
    log = open(srv.root / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "workbench.server", "start", str(srv.root)],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        wait_until_ready(srv.url, timeout=240, proc=proc)
        # The admin's credentials come from a netrc file, the partners' passwords from the
        # environment or a hidden prompt.
        netrc = srv.root.parent / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login admin password {PASSWORDS['admin']}\n")
        netrc.chmod(0o600)
        admin = {"NETRC": str(netrc), "MLFLOW_TRACKING_USERNAME": None,
                 "MLFLOW_TRACKING_PASSWORD": None, "MLFLOW_WORKSPACE": None}
        server_cli(srv, ["add-partner", "acme", "--uri", srv.url],
             {**admin, "WORKBENCH_PARTNER_PASSWORD": PASSWORDS["acme"]})
        server_cli(srv, ["add-partner", "acme", "--user", "acme-2", "--uri", srv.url],
             {**admin, "WORKBENCH_PARTNER_PASSWORD": PASSWORDS["acme-2"]})
        server_cli(srv, ["add-partner", "bolt", "--uri", srv.url],
             {**admin, "WORKBENCH_PARTNER_PASSWORD": None},
             input=f"{PASSWORDS['bolt']}\n{PASSWORDS['bolt']}\n")
        srv.admin_env = admin
        srv.workspaces, srv.runs = {}, {}
        client = MlflowClient(srv.url)
        for partner in ("acme", "bolt"):
            with as_partner(partner):
                ws = partner_workspace(srv.url, partner)
            srv.workspaces[partner] = ws
            with as_partner(partner, ws):
                srv.runs[partner] = _log_campaign(client, f"{partner}/{SECRET}-{partner}")
        yield srv
    finally:
        stop_server(proc)
        log.close()


def _refused(fn, code=403):
    """``fn`` fails with HTTP ``code`` and its message carries nothing of the resource."""
    with pytest.raises(Exception) as info:
        fn()
    assert f"error code {code}" in str(info.value) or f" {code} " in str(info.value), info.value
    assert SECRET not in str(info.value)


def test_a_partner_logs_and_reads_its_own_campaign_through_the_server(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    eid, rid = server.runs["acme"]
    with as_partner("acme", server.workspaces["acme"]), tempfile.TemporaryDirectory() as tmp:
        run = client.get_run(rid)
        assert run.data.params == {"space.temperature.low": "30.0"}
        assert [m.value for m in client.get_metric_history(rid, "best_so_far")] == [3.0, 2.0, 1.5]
        assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # served by the server
        path = client.download_artifacts(rid, "report.txt", tmp)
        assert Path(path).read_text() == f"acme/{SECRET}-acme: confidential yield 71.2\n"
    # The bytes sit in the server's artifact root, under the partner's workspace.
    stored = server.root / "artifacts" / "workspaces" / server.workspaces["acme"] / eid / rid
    assert (stored / "artifacts" / "report.txt").exists()


def test_colleagues_share_the_partners_campaigns_created_after_they_joined(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    eid, rid = server.runs["acme"]
    with as_partner("acme-2", server.workspaces["acme"]):
        names = [e.name for e in client.search_experiments()]
        assert f"acme/{SECRET}-acme" in names and "bolt" not in str(names)
        client.log_metric(rid, "best_so_far", 1.0, step=3)
        assert client.get_run(rid).data.metrics["best_so_far"] == 1.0


def test_another_partner_is_refused_everything_of_bolt(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    beid, brid = server.runs["bolt"]
    # Its own workspace, bolt's workspace and none: the answer is the same.
    for ws in (server.workspaces["acme"], server.workspaces["bolt"], None):
        with as_partner("acme", ws), tempfile.TemporaryDirectory() as tmp:
            _refused(lambda: client.get_experiment(beid))
            _refused(lambda: client.get_run(brid))
            _refused(lambda: client.get_metric_history(brid, "best_so_far"))
            _refused(lambda: client.log_metric(brid, "best_so_far", 0.0))
            _refused(lambda: client.set_tag(brid, "hijacked", "yes"))
            _refused(lambda: client.list_artifacts(brid))
            _refused(lambda: client.download_artifacts(brid, "report.txt", tmp))
            # Search filters instead of refusing: it answers with nothing of bolt.
            assert client.search_runs([beid]) == []
    # The artifact proxy itself, addressed by path, refuses too.
    path = f"workspaces/{server.workspaces['bolt']}/{beid}/{brid}/artifacts/report.txt"
    for ws in (server.workspaces["acme"], server.workspaces["bolt"]):
        r = requests.get(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{path}",
                         auth=("acme", PASSWORDS["acme"]), headers={"X-MLFLOW-WORKSPACE": ws})
        assert r.status_code == 403 and b"confidential" not in r.content
    with as_partner("bolt", server.workspaces["bolt"]):  # and bolt's data is untouched
        run = client.get_run(brid)
        assert run.data.metrics == {"best_so_far": 1.5} and "hijacked" not in run.data.tags


def test_listing_shows_a_partner_only_its_own_names(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    for ws in (server.workspaces["acme"], None):
        with as_partner("acme", ws):
            names = [e.name for e in client.search_experiments()]
            assert all(n.startswith("acme/") for n in names) and "bolt" not in str(names)
    with as_partner("acme"):
        listed = RestClient(server.url)("GET", "/api/3.0/mlflow/workspaces")
        assert [w["name"] for w in listed["workspaces"]] == [server.workspaces["acme"]]
        root = requests.get(f"{server.url}/api/2.0/mlflow-artifacts/artifacts",
                            params={"path": ""}, auth=("acme", PASSWORDS["acme"]),
                            headers={"X-MLFLOW-WORKSPACE": server.workspaces["acme"]}).json()
        assert [f["path"] for f in root["files"]] == [server.runs["acme"][0]]


def test_probing_names_finds_nothing_without_the_unlistable_workspace_name(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    b_name, missing = f"bolt/{SECRET}-bolt", "bolt/no-such-campaign"
    # In its own workspace, bolt's name is as absent as an invented one (names are per
    # workspace), and creating it does not collide ("already exists" would tell).
    with as_partner("acme", server.workspaces["acme"]):
        assert client.get_experiment_by_name(b_name) is None
        assert client.get_experiment_by_name(missing) is None
        client.delete_experiment(client.create_experiment(b_name))
    # Guessing bolt's workspace: the plain partner name or a made-up token are "not found",
    # exactly as for a partner that does not exist.
    auth = ("acme", PASSWORDS["acme"])
    get_by_name = f"{server.url}/api/2.0/mlflow/experiments/get-by-name"
    for guess in ("bolt", "bolt-0123456789abcdef", "nobody-0123456789abcdef"):
        r = requests.get(get_by_name, params={"experiment_name": b_name}, auth=auth,
                         headers={"X-MLFLOW-WORKSPACE": guess})
        assert r.status_code == 404 and SECRET not in r.text
    assert workspace_pattern("bolt").fullmatch(server.workspaces["bolt"])
    # What remains (README): whoever knows bolt's workspace name tells 403 from 404.
    codes = [requests.get(get_by_name, params={"experiment_name": n}, auth=auth,
                          headers={"X-MLFLOW-WORKSPACE": server.workspaces["bolt"]}).status_code
             for n in (b_name, missing)]
    assert codes == [403, 404]


def test_an_unauthenticated_client_gets_401_on_everything(server):
    beid, brid = server.runs["bolt"]
    ws = {"X-MLFLOW-WORKSPACE": server.workspaces["bolt"]}
    calls = [
        ("GET", "/api/2.0/mlflow/experiments/search", {"params": {"max_results": 10}}),
        ("GET", "/api/2.0/mlflow/experiments/get", {"params": {"experiment_id": beid}}),
        ("GET", "/api/2.0/mlflow/runs/get", {"params": {"run_id": brid}}),
        ("POST", "/api/2.0/mlflow/runs/search", {"json": {"experiment_ids": [beid]}}),
        ("POST", "/api/2.0/mlflow/experiments/create", {"json": {"name": "anonymous"}}),
        ("GET", f"/api/2.0/mlflow-artifacts/artifacts/workspaces/{server.workspaces['bolt']}"
                f"/{beid}/{brid}/artifacts/report.txt", {}),
        ("GET", "/api/3.0/mlflow/workspaces", {}),
        ("POST", "/api/2.0/mlflow/users/create", {"json": {"username": "x", "password": "y" * 12}}),
    ]
    for auth in (None, ("bolt", "not-the-password"), ("nobody", PASSWORDS["bolt"])):
        for method, path, kw in calls:
            with _env(NETRC=os.devnull):  # requests would otherwise read ~/.netrc
                r = requests.request(method, server.url + path, auth=auth, headers=ws, **kw)
            assert r.status_code == 401, (auth, path, r.status_code)
            assert SECRET not in r.text and "confidential" not in r.text


def test_partners_cannot_administer(server):
    with as_partner("acme"):
        rest = RestClient(server.url)
        assert rest.status("POST", "/api/2.0/mlflow/users/create",
                           json={"username": "mole", "password": "m" * 16}) == 403
        assert rest.status("POST", "/api/3.0/mlflow/workspaces",
                           json={"name": "acme-extra"}) == 403
        assert rest.status("GET", "/api/2.0/mlflow/users/list") == 403


def test_an_admin_sees_every_partner(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    with _env(**server.admin_env):
        for partner, (eid, rid) in server.runs.items():
            with _env(MLFLOW_WORKSPACE=server.workspaces[partner]):
                assert f"{partner}/{SECRET}-{partner}" in [e.name for e in
                                                          client.search_experiments()]
                assert client.get_run(rid).data.params == {"space.temperature.low": "30.0"}


def test_a_grant_opens_one_experiment_to_another_partner(server):
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    a_ws = server.workspaces["acme"]
    with as_partner("acme", a_ws):
        shared, rid = _log_campaign(client, "acme/prior-export")
    out = server_cli(server, ["grant", "bolt", shared, "--uri", server.url], server.admin_env)
    assert a_ws in out
    with as_partner("bolt", a_ws):
        assert [m.value for m in client.get_metric_history(rid, "best_so_far")] == [3.0, 2.0, 1.5]
        _refused(lambda: client.log_metric(rid, "best_so_far", 0.0))  # READ only
        _refused(lambda: client.get_experiment(server.runs["acme"][0]))  # the rest stays closed
        assert [e.name for e in client.search_experiments()] == ["acme/prior-export"]


def test_no_password_is_stored_logged_or_printed(server):
    from mlflow import MlflowClient

    cfg = (server.root / "basic_auth.ini").read_text()
    assert "default_permission = NO_PERMISSIONS" in cfg and "admin_password" not in cfg
    assert stat.S_IMODE(server.root.stat().st_mode) == 0o700
    for name in ("basic_auth.ini", "server.json", "flask_secret_key", "basic_auth.db",
                 "mlflow.db"):
        assert stat.S_IMODE((server.root / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((server.root / "artifacts").stat().st_mode) == 0o700
    for path in (server.root / "artifacts").rglob("*"):  # artifacts logged by the tests
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
    blobs = [p.read_bytes() for p in server.root.rglob("*") if p.is_file()]
    blobs += [o.encode() for o in server.outputs]
    client = MlflowClient(server.url)
    with as_partner("acme", server.workspaces["acme"]), tempfile.TemporaryDirectory() as tmp:
        run = client.get_run(server.runs["acme"][1])
        blobs.append(repr((run.data.params, run.data.tags, run.info)).encode())
        client.download_artifacts(server.runs["acme"][1], "", tmp)
        blobs += [p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()]
    assert len(blobs) > 10
    for password in PASSWORDS.values():
        assert not any(password.encode() in b for b in blobs)


def test_init_refuses_to_overwrite_a_server_directory(server):
    before = (server.root / "basic_auth.ini").read_bytes()
    with pytest.raises(ServerError, match="already a server directory"):
        init_server(server.root, admin_password="another-password-1234")
    assert (server.root / "basic_auth.ini").read_bytes() == before


def test_set_up_refuses_secrets_in_uris_short_passwords_and_missing_credentials(tmp_path):
    with pytest.raises(ServerError, match="PGPASSWORD"):
        init_server(tmp_path / "pg", admin_password="x" * 16,
                    backend="postgresql://lab:hunter2hunter2@db/mlflow")
    with pytest.raises(ServerError, match="at least 12") as info:
        init_server(tmp_path / "short", admin_password="tooshort")
    assert "tooshort" not in str(info.value)
    assert not (tmp_path / "pg").exists() and not (tmp_path / "short").exists()
    with _env(MLFLOW_TRACKING_USERNAME=None, MLFLOW_TRACKING_PASSWORD=None,
              NETRC=str(tmp_path / "absent")):
        with pytest.raises(ServerError, match="MLFLOW_TRACKING_PASSWORD"):
            RestClient("http://127.0.0.1:9")
    with pytest.raises(ServerError, match="contains a password"):
        RestClient("http://admin:hunter2hunter2@127.0.0.1:9")
