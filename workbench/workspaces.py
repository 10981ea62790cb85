"""Partner workspaces on a tracking server, administered through its REST API.

Each partner is an MLflow workspace named ``<partner>-<16 random hex digits>``,
its users are members of that workspace, and experiments are shared with another
partner by a grant. ``RestClient`` talks to the server with the credentials of the
environment and never puts a password into an error message. ``workbench.server``
sets the server up and runs it; its ``workbench server`` commands call these.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

from workbench.errors import WorkbenchError

MIN_PASSWORD_LENGTH = 12  # MLflow's own policy; checked here to fail before any side effect
MEMBER_ROLE = "partner-members"
_TOKEN_HEX = 16  # 64 random bits: not guessable by probing a server
_PARTNER_NAME = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,44}[a-z0-9])?")


class ServerError(WorkbenchError):
    """A server set-up or administration request that could not be done."""

    exit_code = 2


class ServerRefused(ServerError):
    """The server answered a request with an error status (``status``)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def check_password(password: str, what: str) -> str:
    """Apply MLflow's password policy before anything is created; never echo the password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServerError(f"{what}: a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return password


def redact(text: str, *secrets_: str) -> str:
    """``text`` with every non-empty secret in it replaced by ``***``."""
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
                                + redact(_message(resp), *self.hide), resp.status_code)
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
