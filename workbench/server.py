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
# Re-exported: the partner administration was defined here, and callers import it from here.
from workbench.workspaces import (MEMBER_ROLE, MIN_PASSWORD_LENGTH, PartnerAccess, RestClient,
                                  ServerError, ServerRefused, add_partner, check_partner,
                                  check_password, find_workspace, grant, list_workspaces,
                                  partner_workspace, redact, workspace_pattern)

ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
PARTNER_PASSWORD_ENV = "WORKBENCH_PARTNER_PASSWORD"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
# The environment a server never needs; dropped so that a password cannot reach its processes.
_CLIENT_SECRETS = ("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD_ENV, PARTNER_PASSWORD_ENV)


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
                          + redact(last, admin_password))


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
            typer.echo(f"error: {redact(str(e), *_env_secrets())}", err=True)
            raise typer.Exit(e.exit_code) from None
        except Exception as e:  # noqa: BLE001 - a message, not a traceback
            if os.environ.get("WORKBENCH_DEBUG"):
                raise
            typer.echo(f"error: {type(e).__name__}: {redact(str(e), *_env_secrets())}",
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
