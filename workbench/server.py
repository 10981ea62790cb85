"""A tracking server shared by several industrial partners: ``workbench server ...``.

One MLflow server with its basic-auth app and workspaces: each partner is a
workspace, its users are members of that workspace, and nobody else sees
anything in it. The pieces MLflow leaves open are closed here:

- ``default_permission`` is ``NO_PERMISSIONS`` (MLflow ships ``READ``: every
  user could read every experiment);
- a partner's workspace is named ``<partner>-<16 random hex digits>``. MLflow
  answers 403 for another workspace's existing experiment name and 404 for a
  missing one, and 404 for a workspace that does not exist: a partner who can
  name a workspace can probe which campaign names exist in it. Nobody can
  name a workspace that they cannot list, so those probes go nowhere.
- credentials come from the environment (``MLFLOW_TRACKING_USERNAME`` /
  ``MLFLOW_TRACKING_PASSWORD``) or a netrc file, passwords are read from an
  environment variable or a hidden prompt, and no password is written to the
  server directory, to argv, to a log or to an error message (only MLflow's
  salted hashes are stored).

MLflow is imported inside the functions that talk to a server, so that
``workbench --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

import typer

from workbench.errors import WorkbenchError

ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
PARTNER_PASSWORD_ENV = "WORKBENCH_PARTNER_PASSWORD"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
MIN_PASSWORD_LENGTH = 12  # MLflow's own policy; checked here to fail before any side effect
MEMBER_ROLE = "partner-members"
_TOKEN_HEX = 16  # 64 random bits: not guessable by probing a server
_PARTNER_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,44}[a-z0-9])?")
# The environment a server never needs; dropped so that a password cannot reach its processes.
_CLIENT_SECRETS = ("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD_ENV, PARTNER_PASSWORD_ENV)


class ServerError(WorkbenchError):
    """A server set-up or administration request that could not be done."""

    exit_code = 2


class ServerRefused(ServerError):
    """The server answered a request with an error status (``status``)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- server directory


@dataclass(frozen=True)
class ServerConfig:
    """What ``workbench server start`` needs, kept in ``DIR/server.json`` (no secrets)."""

    root: Path
    host: str = "127.0.0.1"
    port: int = 5000
    backend_store_uri: str = ""
    workers: int = 1
    allowed_hosts: Optional[str] = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def auth_config(self) -> Path:
        return self.root / "basic_auth.ini"

    @property
    def secret_key_file(self) -> Path:
        return self.root / "flask_secret_key"

    @property
    def artifacts(self) -> Path:
        return self.root / "artifacts"

    @property
    def settings_file(self) -> Path:
        return self.root / "server.json"


# Files the server creates (its databases, artifacts) are readable by their owner only:
# they hold every partner's data and the password hashes.
_PRIVATE_UMASK = 0o077


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by its owner only (mode 0600 from creation)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed


def _check_db_uri(uri: str, what: str) -> None:
    """Refuse a database URI that carries a password: it would be stored in the server dir."""
    parts = urlsplit(uri)
    if parts.password:
        raise ServerError(
            f"{what}: the URI contains a password; give the URI without it and the password"
            " in PGPASSWORD or ~/.pgpass (PostgreSQL reads both), so that it is never stored")


def backend_uri(root: Path, backend: str) -> str:
    """The tracking store URI: ``sqlite`` (a file in ``root``) or a PostgreSQL URI."""
    if backend == "sqlite":
        return f"sqlite:///{(root / 'mlflow.db').resolve()}"
    if backend.startswith(("postgresql://", "postgresql+")):
        _check_db_uri(backend, "--backend")
        return backend
    raise ServerError(f"--backend: {backend!r} is neither 'sqlite' nor a postgresql:// URI")


def check_password(password: str, what: str) -> str:
    """Apply MLflow's password policy before anything is created; never echo the password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServerError(f"{what}: a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def _auth_ini(admin_username: str, auth_db: str, auth_cache_seconds: int) -> str:
    settings = {
        # MLflow ships READ: every user would read every experiment.
        "default_permission": "NO_PERMISSIONS",
        "database_uri": auth_db,
        "admin_username": admin_username,
        "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
        # Users get nothing in the shared 'default' workspace either.
        "grant_default_workspace_access": "false",
        # A password check (scrypt) costs tens of milliseconds, on every request; cached
        # successes make a campaign's tracking several times cheaper. With several workers, a
        # changed password or deleted user stays valid on the other workers for this long.
        "auth_cache_ttl_seconds": str(int(auth_cache_seconds)),
    }
    # MLflow reads the file with configparser's interpolation: a literal % is written %%.
    return "[mlflow]\n" + "".join(f"{k} = {v.replace('%', '%%')}\n" for k, v in settings.items())


def init_server(root: Path | str, *, admin_password: str, admin_username: str = "admin",
                host: str = "127.0.0.1", port: int = 5000, backend: str = "sqlite",
                auth_db: Optional[str] = None, workers: int = 1,
                allowed_hosts: Optional[str] = None,
                auth_cache_seconds: int = 60) -> ServerConfig:
    """Create a server directory: auth config, settings, secret key, and the admin user.

    The admin password goes to MLflow's bootstrap in a child process's environment
    (never argv); only its salted hash is stored, in the auth database.
    """
    root = Path(root).expanduser().resolve()
    cfg = ServerConfig(root, host, int(port), backend_uri(root, backend), int(workers),
                       allowed_hosts)
    if cfg.auth_config.exists():
        raise ServerError(f"{root}: already a server directory (found {cfg.auth_config.name})")
    check_password(admin_password, "admin password")
    auth_db = auth_db or f"sqlite:///{root / 'basic_auth.db'}"
    _check_db_uri(auth_db, "--auth-db")
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    cfg.artifacts.mkdir(exist_ok=True)
    os.chmod(cfg.artifacts, 0o700)
    _write_private(cfg.auth_config, _auth_ini(admin_username, auth_db, auth_cache_seconds))
    settings = {k: v for k, v in asdict(cfg).items() if k != "root"}
    _write_private(cfg.settings_file, json.dumps(settings, indent=2) + "\n")
    if not cfg.secret_key_file.exists():
        _write_private(cfg.secret_key_file, secrets.token_urlsafe(32) + "\n")
    try:
        _bootstrap_admin(cfg, admin_password)
    except BaseException:
        cfg.auth_config.unlink()  # so that `init` can be run again once the cause is fixed
        raise
    return cfg


def _bootstrap_admin(cfg: ServerConfig, admin_password: str) -> None:
    env = _server_env(cfg)
    env[ADMIN_PASSWORD_ENV] = admin_password
    code = ("import logging; logging.disable(logging.INFO)\n"
            "from mlflow.server.auth import bootstrap_admin_user\n"
            "bootstrap_admin_user()\n")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], env=env,
                          capture_output=True, text=True, cwd=cfg.root, umask=_PRIVATE_UMASK)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ServerError("creating the admin user failed: "
                          + _redact(last, admin_password))


def load_server(root: Path | str) -> ServerConfig:
    """The settings of a directory made by :func:`init_server`."""
    root = Path(root).expanduser().resolve()
    path = root / "server.json"
    if not path.exists():
        raise ServerError(f"{root}: not a server directory; run `workbench server init {root}`")
    return ServerConfig(root, **json.loads(path.read_text()))


def _server_env(cfg: ServerConfig) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_SECRETS}
    env["MLFLOW_AUTH_CONFIG_PATH"] = str(cfg.auth_config)
    if not env.get(SECRET_KEY_ENV):
        env[SECRET_KEY_ENV] = cfg.secret_key_file.read_text().strip()
    # MLflow's job runner (GenAI scorers) is not used by campaigns; it costs processes.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # as in workbench/__init__.py
    return env


def server_command(cfg: ServerConfig) -> list[str]:
    """The ``mlflow server`` command line: basic auth, workspaces, artifacts served by it."""
    cmd = [sys.executable, "-W", "ignore", "-m", "mlflow", "server",
           "--app-name", "basic-auth", "--enable-workspaces",
           "--backend-store-uri", cfg.backend_store_uri,
           "--serve-artifacts", "--artifacts-destination", str(cfg.artifacts),
           "--host", cfg.host, "--port", str(cfg.port), "--workers", str(cfg.workers)]
    if cfg.allowed_hosts:
        cmd += ["--allowed-hosts", cfg.allowed_hosts]
    return cmd


def start_server(cfg: ServerConfig, log=None) -> subprocess.Popen:
    """Start the server in the background, in its own process group (see :func:`stop_server`)."""
    return subprocess.Popen(server_command(cfg), env=_server_env(cfg), cwd=cfg.root,
                            umask=_PRIVATE_UMASK,
                            stdout=log, stderr=subprocess.STDOUT if log else None,
                            start_new_session=True)


def stop_server(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """Stop a server and its workers (the whole process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wait_until_ready(url: str, timeout: float = 180.0,
                     proc: Optional[subprocess.Popen] = None) -> None:
    """Poll ``url/health`` until the server answers; fail early if ``proc`` exits."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServerError(f"the server exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise ServerError(f"{url} did not answer within {timeout:.0f} s")


# --------------------------------------------------------------------------- administration


def _redact(text: str, *secrets_: str) -> str:
    for s in secrets_:
        if s:
            text = text.replace(s, "***")
    return text


def workspace_pattern(partner: str) -> re.Pattern:
    """Names of the partner's workspace: ``<partner>-<16 hex digits>``."""
    return re.compile(re.escape(partner) + r"-[0-9a-f]{%d}" % _TOKEN_HEX)


def check_partner(partner: str) -> str:
    """A partner name becomes part of a workspace name: lowercase, digits, inner hyphens."""
    if not _PARTNER_NAME.fullmatch(partner):
        raise ServerError(f"partner {partner!r}: use 1-46 lowercase letters, digits and inner"
                          " hyphens (it becomes part of an MLflow workspace name)")
    return partner


class RestClient:
    """The REST calls of MLflow's auth and workspace APIs, as the caller's credentials.

    Credentials are resolved by MLflow (``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``),
    else by requests from a netrc file (``~/.netrc`` or ``$NETRC``). Errors carry the
    status and MLflow's message, with any password in play blanked out.
    """

    def __init__(self, uri: str, hide: tuple[str, ...] = ()):
        if urlsplit(uri).password:
            raise ServerError("the server URL contains a password; give it in"
                              " MLFLOW_TRACKING_PASSWORD or a netrc file instead")
        self.uri = uri.rstrip("/")
        self.hide = hide
        _require_credentials(self.uri)

    def __call__(self, method: str, endpoint: str, *, json: Optional[dict] = None,
                 params: Optional[dict] = None, workspace: Optional[str] = None,
                 ok: tuple[int, ...] = (200, 201)) -> dict:
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        headers = {"X-MLFLOW-WORKSPACE": workspace} if workspace else None
        kwargs = {"json": json} if json is not None else {"params": params}
        try:
            resp = http_request(get_default_host_creds(self.uri), endpoint, method,
                                extra_headers=headers, max_retries=0, **kwargs)
        except Exception as e:  # noqa: BLE001 - connection failures, named plainly
            raise ServerError(f"cannot reach {self.uri}: {type(e).__name__}") from None
        if resp.status_code not in ok:
            raise ServerRefused(f"{method} {endpoint}: HTTP {resp.status_code}: "
                                + _redact(_message(resp), *self.hide), resp.status_code)
        return resp.json() if resp.content else {}

    def status(self, method: str, endpoint: str, **kw) -> int:
        """The HTTP status alone (for probes whose failure is an answer)."""
        try:
            self(method, endpoint, **kw)
            return 200
        except ServerRefused as e:
            return e.status


def _message(resp) -> str:
    try:
        return str(resp.json().get("message", ""))[:300]
    except ValueError:
        return resp.text[:300]


def _require_credentials(uri: str) -> None:
    import requests.utils

    if os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"):
        return
    if requests.utils.get_netrc_auth(uri):
        return
    raise ServerError(
        f"no credentials for {uri}: set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD,"
        " or put a 'machine <host> login <user> password <password>' line in ~/.netrc"
        " (or the file named by $NETRC)")


def list_workspaces(rest: RestClient) -> Optional[list[str]]:
    """Workspaces the caller can list; None on a server started without workspaces."""
    try:
        listed = rest("GET", "/api/3.0/mlflow/workspaces")
    except ServerRefused as e:
        if e.status == 503:  # MLflow's answer when --enable-workspaces is off
            return None
        raise
    return [w["name"] for w in listed.get("workspaces", [])]


def _of_partner(names: list[str], partner: str) -> Optional[str]:
    pattern = workspace_pattern(partner)
    mine = [w for w in names if pattern.fullmatch(w)]
    if len(mine) > 1:
        raise ServerError(f"partner {partner!r} has {len(mine)} workspaces; expected one")
    return mine[0] if mine else None


def find_workspace(rest: RestClient, partner: str) -> Optional[str]:
    """The partner's workspace among those the caller can list (None if there is none)."""
    names = list_workspaces(rest)
    if names is None:
        raise ServerError(f"{rest.uri} runs without workspaces; partners need a server"
                          " made by `workbench server init`")
    return _of_partner(names, partner)


def partner_workspace(uri: str, partner: str) -> Optional[str]:
    """The workspace a partner's client sends with every request (``X-MLFLOW-WORKSPACE``).

    Called with the partner's own credentials: a user lists only the workspaces it
    belongs to, so this finds the opaque name without anyone typing it. None when the
    server runs without workspaces (then no header must be sent).
    """
    names = list_workspaces(RestClient(uri))
    if names is None:
        return None
    ws = _of_partner(names, check_partner(partner))
    if ws is None:
        raise ServerError(f"no workspace of partner {partner!r} is visible to these credentials"
                          f" at {uri}; the server admin runs `workbench server add-partner`")
    return ws


def _role(rest: RestClient, workspace: str, name: str, grants: list[tuple[str, str, str]]) -> int:
    """Id of the role ``name`` in ``workspace``, created with ``grants`` if missing."""
    roles = rest("GET", "/api/3.0/mlflow/roles/list", params={"workspace": workspace})
    for role in roles.get("roles", []):
        if role["name"] == name:
            role_id = int(role["id"])
            have = {(p["resource_type"], p["resource_pattern"], p["permission"])
                    for p in role.get("permissions", [])}
            break
    else:
        made = rest("POST", "/api/3.0/mlflow/roles/create",
                    json={"workspace": workspace, "name": name})
        role_id, have = int(made["role"]["id"]), set()
    for rtype, pattern, perm in grants:
        if (rtype, pattern, perm) not in have:
            rest("POST", "/api/3.0/mlflow/roles/permissions/add",
                 json={"role_id": role_id, "resource_type": rtype,
                       "resource_pattern": pattern, "permission": perm})
    return role_id


def _member_role(rest: RestClient, workspace: str) -> int:
    # USE on the workspace: enter it and create experiments; EDIT on its experiments: log to
    # every run of every campaign of the partner, including campaigns created later.
    return _role(rest, workspace, MEMBER_ROLE,
                 [("workspace", "*", "USE"), ("experiment", "*", "EDIT")])


@dataclass(frozen=True)
class PartnerAccess:
    """What ``add-partner`` made: the user and the partner's workspace."""

    partner: str
    username: str
    workspace: str


def add_partner(uri: str, partner: str, password: str,
                username: Optional[str] = None) -> PartnerAccess:
    """Create (or reuse) the partner's workspace and member role, and a user in it.

    Run with admin credentials. A second call with another ``username`` adds a
    colleague: members share every experiment of the partner, nobody else sees them.
    """
    check_partner(partner)
    username = username or partner
    check_password(password, f"password of {username!r}")
    rest = RestClient(uri, hide=(password,))
    ws = find_workspace(rest, partner)
    if ws is None:
        ws = f"{partner}-{secrets.token_hex(_TOKEN_HEX // 2)}"
        rest("POST", "/api/3.0/mlflow/workspaces",
             json={"name": ws, "description": f"workbench partner {partner}"})
    role_id = _member_role(rest, ws)
    rest("POST", "/api/2.0/mlflow/users/create", json={"username": username, "password": password})
    rest("POST", "/api/3.0/mlflow/roles/assign", json={"username": username, "role_id": role_id})
    return PartnerAccess(partner, username, ws)


def _experiment_workspace(rest: RestClient, experiment_id: str) -> str:
    for ws in list_workspaces(rest) or []:
        if rest.status("GET", "/api/2.0/mlflow/experiments/get",
                       params={"experiment_id": experiment_id}, workspace=ws) == 200:
            return ws
    raise ServerError(f"experiment {experiment_id}: not found in any workspace")


def _role_members(rest: RestClient, role_id: int) -> set[int]:
    listed = rest("GET", "/api/3.0/mlflow/roles/users/list", params={"role_id": str(role_id)})
    return {a["user_id"] for a in listed.get("assignments", [])}


def _partner_user_ids(rest: RestClient, partner: str) -> dict[int, str]:
    """User id -> name of every member of the partner."""
    ws = find_workspace(rest, partner)
    if ws is None:
        raise ServerError(f"partner {partner!r}: unknown; run `workbench server add-partner`")
    members = _role_members(rest, _member_role(rest, ws))
    users = rest("GET", "/api/2.0/mlflow/users/list").get("users", [])
    return {u["id"]: u["username"] for u in users if u["id"] in members}


def grant(uri: str, partner: str, experiment_id: str, permission: str = "READ") -> str:
    """Let every user of ``partner`` use one experiment of another partner; returns its workspace.

    The grant is a role ``guest-<partner>`` in the experiment's workspace. Users
    added to the partner later need the grant again. The grantee reaches the
    experiment with the returned workspace name, which lets it probe that
    workspace's experiment names (not read them): grant only to a partner trusted with that.
    """
    check_partner(partner)
    permission = permission.upper()
    if permission not in ("READ", "USE", "EDIT"):
        raise ServerError(f"--permission: {permission!r} is not READ, USE or EDIT")
    rest = RestClient(uri)
    users = _partner_user_ids(rest, partner)
    ws = _experiment_workspace(rest, str(experiment_id))
    role_id = _role(rest, ws, f"guest-{partner}", [("experiment", str(experiment_id), permission)])
    for user_id in users.keys() - _role_members(rest, role_id):
        rest("POST", "/api/3.0/mlflow/roles/assign",
             json={"username": users[user_id], "role_id": role_id})
    return ws


# --------------------------------------------------------------------------- command line

server_app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="A tracking server shared by partners: MLflow with authentication, one workspace each.",
)


def _guard(fn):
    """Errors become one line on stderr and an exit code, never a traceback or a secret."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except WorkbenchError as e:
            typer.echo(f"error: {_redact(str(e), *_env_secrets())}", err=True)
            raise typer.Exit(e.exit_code) from None
        except Exception as e:  # noqa: BLE001 - a message, not a traceback
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            typer.echo(f"error: {type(e).__name__}: {_redact(str(e), *_env_secrets())}",
                       err=True)
            raise typer.Exit(1) from None

    return wrapper


def _env_secrets() -> list[str]:
    return [os.environ.get(k, "") for k in _CLIENT_SECRETS]


def _password(env: str, what: str) -> str:
    """A password from ``env`` or a hidden, confirmed prompt: never an argument, never echoed."""
    value = os.environ.get(env)
    if value:
        return value
    return typer.prompt(f"{what} (or set {env})", hide_input=True, confirmation_prompt=True)


_URI = typer.Option(..., "--uri", envvar="MLFLOW_TRACKING_URI",
                    help="Server URL (default: $MLFLOW_TRACKING_URI).")


@server_app.command("init")
@_guard
def init_cmd(
    directory: Path = typer.Argument(..., help="Server directory to create."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(5000, help="Port to listen on."),
    backend: str = typer.Option("sqlite", help="'sqlite' (a file in DIR) or a postgresql:// URI"
                                " without password (PGPASSWORD or ~/.pgpass give it)."),
    auth_db: Optional[str] = typer.Option(
        None, help="Users database URI (default: sqlite in DIR)."),
    admin: str = typer.Option("admin", help="Admin user name."),
    workers: int = typer.Option(1, help="Server worker processes."),
    allowed_hosts: Optional[str] = typer.Option(
        None, help="Host headers to accept when serving beyond localhost (MLflow's option)."),
    auth_cache_seconds: int = typer.Option(
        60, help="Cache successful password checks this long per worker (0: check every call)."),
) -> None:
    """Create DIR: auth config (no permission by default), settings, secret key, admin user."""
    password = _password(ADMIN_PASSWORD_ENV, f"password for admin user {admin!r}")
    cfg = init_server(directory, admin_password=password, admin_username=admin, host=host,
                      port=port, backend=backend, auth_db=auth_db, workers=workers,
                      allowed_hosts=allowed_hosts, auth_cache_seconds=auth_cache_seconds)
    typer.echo(f"server directory {cfg.root} ready; start it with: workbench server start"
               f" {cfg.root}")


@server_app.command("start")
@_guard
def start_cmd(directory: Path = typer.Argument(..., help="Server directory from `init`.")) -> None:
    """Run the server in the foreground (this process becomes `mlflow server`)."""
    cfg = load_server(directory)
    typer.echo(f"MLflow tracking server with authentication at {cfg.url}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    cmd = server_command(cfg)
    os.chdir(cfg.root)
    os.umask(_PRIVATE_UMASK)
    os.execve(cmd[0], cmd, _server_env(cfg))


@server_app.command("add-partner")
@_guard
def add_partner_cmd(
    partner: str = typer.Argument(..., help="Partner name: lowercase letters, digits, hyphens."),
    user: Optional[str] = typer.Option(None, help="User name (default: the partner name)."),
    uri: str = _URI,
) -> None:
    """Create a partner's user and workspace (admin credentials from env or netrc)."""
    password = _password(PARTNER_PASSWORD_ENV, f"password for the new user {user or partner!r}")
    access = add_partner(uri, partner, password, user)
    typer.echo(f"partner {access.partner}: user {access.username} in workspace"
               f" {access.workspace}")
    typer.echo("The partner's clients send this workspace (MLFLOW_WORKSPACE or"
               " workbench.server.partner_workspace); keep its name within the partner.")


@server_app.command("grant")
@_guard
def grant_cmd(
    partner: str = typer.Argument(..., help="Partner that receives access."),
    experiment: str = typer.Argument(..., help="Experiment id (of another partner)."),
    permission: str = typer.Option("READ", help="READ, USE or EDIT."),
    uri: str = _URI,
) -> None:
    """Give every user of PARTNER access to one experiment (admin credentials)."""
    ws = grant(uri, partner, experiment, permission)
    typer.echo(f"partner {partner}: {permission.upper()} on experiment {experiment}"
               f" (workspace {ws})")


if __name__ == "__main__":
    server_app()
