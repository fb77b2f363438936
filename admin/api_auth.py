"""Signing in and out, users, API tokens and the audit log.

Signing in takes JSON only (``Content-Type: application/json``; 415 otherwise): a page of
another site can post a form or ``text/plain`` to us without asking, but not JSON, so it
cannot sign a visitor's browser in to an account of its choosing (login CSRF). Attempts are
throttled per user name and per address (admin/login_throttle.py) before any password is
checked, the check runs off the event loop (admin/passwords.py), and every outcome is in the
audit log: ``login.ok``, ``login.failed`` (never the password), ``login.throttled``.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from refract.admin import audit, auth, passwords
from refract.admin.api import PUBLIC, ROLES, Api, Refused, Role
from refract.admin.auth import Identity
from refract.admin.login_throttle import Throttle
from refract.admin.perimeter import client_address, is_https
from refract.admin.state import config_of, identity_of, redis_of
from refract.rules.privacy import anonymize_ip

api = Api("Refract admin", "1")
EVERY_ROLE = ROLES


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


SiteKeys = list[str]


class NewUser(BaseModel):
    name: str = Field(
        pattern=auth.USER_NAME_PATTERN, description="lowercase letters, digits, . _ -"
    )
    role: Role
    password: str = Field(
        max_length=1024,
        description=f"at least {passwords.MIN_LENGTH} characters, and not easy to guess",
    )
    sites: SiteKeys = Field(
        default=[],
        max_length=256,
        description="the site keys the user may see; empty: every site (admins see every site)",
    )
    owner_id: str | None = Field(
        default=None,
        max_length=100,
        description="their owner id in the CRM (the account list's owner column): a sales rep "
        'sees the accounts it owns; "" clears it; absent: kept on a reset',
    )
    territory: str | None = Field(
        default=None,
        max_length=63,
        description='their territory\'s key in territories.toml; "" clears it; absent: kept',
    )

    @field_validator("owner_id")
    @classmethod
    def _check_owner_id(cls, owner_id: str | None) -> str | None:
        auth.check_rep_fields(owner_id, None)  # its ValueError names the problem
        return owner_id

    @field_validator("territory")
    @classmethod
    def _check_territory(cls, territory: str | None) -> str | None:
        auth.check_rep_fields(None, territory)
        return territory

    @field_validator("password")
    @classmethod
    def _check_password(cls, password: str, info: ValidationInfo) -> str:
        problem = passwords.policy_problem(password, info.data.get("name", ""))
        if problem is not None:
            raise ValueError(problem)
        return password


class AuditQuery(BaseModel):
    limit: int = Field(default=100, description="how many entries, newest first (1 to 1,000)")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="what the token is for")
    role: Role
    scope: Literal["read", "write"] = "read"
    expires: str | None = Field(
        default=None,
        pattern=auth.LIFETIME_PATTERN,
        description='how long the token works, e.g. "12h" or "90d" (at most ten years); '
        "none: until revoked",
    )
    sites: SiteKeys = Field(
        default=[], max_length=256, description="the site keys it may see; empty: every site"
    )

    @field_validator("expires")
    @classmethod
    def _check_expires(cls, expires: str | None) -> str | None:
        if expires is not None:
            auth.lifetime_s(expires)  # its ValueError names the problem
        return expires


@api.post(
    "/api/login",
    roles=[PUBLIC],
    summary="sign in (JSON only): sets the session cookie",
    tag="auth",
    body=Login,
    responses={
        401: "wrong user name or password",
        415: "the body is not application/json",
        429: "too many wrong passwords: wait Retry-After seconds",
        503: "too many sign-ins at once: try again in a moment",
    },
)
async def login(request: web.Request, body: Login) -> web.StreamResponse:
    _refuse_login_csrf(request)
    client, config = redis_of(request), config_of(request)
    address = client_address(request, config)
    throttle = Throttle.of(config.admin)
    subjects = throttle.subjects(config.admin, body.username, address)
    shown = anonymize_ip(address, config.privacy.ip_in_logs)
    wait_s = await throttle.attempt(client, subjects)
    if wait_s:
        await _record_login(request, "login.throttled", body.username, shown)
        raise Refused(
            429,
            "too many wrong passwords: wait before trying again",
            headers={"Retry-After": str(wait_s)},
            retry_after=wait_s,
        )
    try:
        role = await auth.check_password(client, body.username, body.password)
    except passwords.Busy:
        raise Refused(503, "too many sign-ins at once", headers={"Retry-After": "1"}) from None
    if role is None:
        await _record_login(request, "login.failed", body.username, shown)
        raise Refused(401, "wrong user name or password")
    await throttle.succeeded(client, subjects)
    await _record_login(request, "login.ok", body.username, shown)
    secret, csrf = await auth.open_session(client, body.username)
    response = web.json_response({"user": body.username, "role": role, "csrf": csrf})
    auth.set_session_cookie(response, secret, is_https(request, config))
    return response


def _refuse_login_csrf(request: web.Request) -> None:
    """Only a script of this origin can send JSON without a preflight we never grant."""
    if request.content_type != "application/json":
        raise Refused(415, "send the sign-in as JSON (Content-Type: application/json)")
    if request.headers.get("Sec-Fetch-Site", "same-origin") == "cross-site":
        raise Refused(403, "sign-ins from other sites are refused")


async def _record_login(request: web.Request, action: str, user: str, address: str | None) -> None:
    # The name as typed (it may be no user's) and the address as the logs may show it.
    attempt = Identity(user, "", "session")
    await audit.record(redis_of(request), attempt, action, user, after={"client": address})


@api.post("/api/logout", roles=EVERY_ROLE, summary="sign out: ends the session", tag="auth")
async def logout(request: web.Request) -> web.StreamResponse:
    secure = is_https(request, config_of(request))
    secret = request.cookies.get(auth.session_cookie(secure))
    if secret:
        await auth.close_session(redis_of(request), secret)
    response = web.json_response({"signed_out": True})
    auth.delete_session_cookie(response, secure)
    return response


@api.get("/api/me", roles=EVERY_ROLE, summary="who is signed in, with which role", tag="auth")
async def me(request: web.Request) -> web.StreamResponse:
    who = identity_of(request)
    sites = sorted(who.sites) if who.sites is not None else None
    return web.json_response(
        {"user": who.name, "role": who.role, "via": who.via, "csrf": who.csrf, "sites": sites}
    )


@api.get("/api/users", roles=["admin"], summary="users and their roles", tag="admin")
async def users(request: web.Request) -> web.StreamResponse:
    return web.json_response({"users": await auth.list_users(redis_of(request))})


@api.post(
    "/api/users", roles=["admin"], summary="create or reset a user", tag="admin", body=NewUser
)
async def create_user(request: web.Request, body: NewUser) -> web.StreamResponse:
    _check_sites(request, body.sites, body.role)
    client = redis_of(request)
    new = await auth.add_user(
        client,
        body.name,
        body.role,
        body.password,
        body.sites,
        owner_id=body.owner_id,
        territory=body.territory,
    )
    summary: dict[str, Any] = {
        "name": body.name,
        "role": body.role,
        "sites": sorted(set(body.sites)),
    }
    if body.owner_id is not None:
        summary["owner_id"] = body.owner_id
    if body.territory is not None:
        summary["territory"] = body.territory
    await audit.record(
        client,
        identity_of(request),
        "user.create" if new else "user.reset",
        body.name,
        after=summary,
    )
    return web.json_response(summary, status=201 if new else 200)


def _check_sites(request: web.Request, sites: SiteKeys, role: str) -> None:
    """Sites a user or token is limited to: configured ones, and never for an admin (who
    manages users and tokens, so could lift any limit of their own)."""
    if sites and role == "admin":
        raise Refused(
            422,
            "invalid request body",
            errors=[{"field": "sites", "message": "admins see every site"}],
        )
    known = {site.key for site in config_of(request).sites}
    unknown = sorted(set(sites) - known)
    if unknown:
        message = f"no such site: {', '.join(unknown)} (configured: {', '.join(sorted(known))})"
        raise Refused(422, "invalid request body", errors=[{"field": "sites", "message": message}])


@api.delete(
    "/api/users/{name}",
    roles=["admin"],
    summary="remove a user: their sessions end at once",
    tag="admin",
    responses={404: "no such user", 409: "an admin cannot remove themselves"},
)
async def remove_user(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    who = identity_of(request)
    if who.via == "session" and who.name == name:
        raise Refused(409, "you cannot remove yourself: ask another admin, or use refract users")
    client = redis_of(request)
    removed = await auth.remove_user(client, name)
    if removed is None:
        raise Refused(404, "no such user")
    before = {key: removed[key] for key in ("name", "role", "sites")}
    await audit.record(client, who, "user.remove", name, before=before)
    return web.json_response({"name": name, "removed": True})


@api.get("/api/tokens", roles=["admin"], summary="API tokens (never their secrets)", tag="admin")
async def tokens(request: web.Request) -> web.StreamResponse:
    return web.json_response({"tokens": await auth.list_tokens(redis_of(request))})


@api.post(
    "/api/tokens",
    roles=["admin"],
    summary="create an API token; the token is shown only in this answer",
    tag="admin",
    body=NewToken,
)
async def create_token(request: web.Request, body: NewToken) -> web.StreamResponse:
    _check_sites(request, body.sites, body.role)
    client = redis_of(request)
    lifetime = None if body.expires is None else auth.lifetime_s(body.expires)
    token_id, token = await auth.create_token(
        client, body.name, body.role, body.scope, lifetime, body.sites
    )
    summary = {
        "id": token_id,
        "name": body.name,
        "role": body.role,
        "scope": body.scope,
        "sites": sorted(set(body.sites)),
        "expires": body.expires,
    }
    await audit.record(client, identity_of(request), "token.create", token_id, after=summary)
    return web.json_response({**summary, "token": token}, status=201)


@api.delete(
    "/api/tokens/{id}",
    roles=["admin"],
    summary="revoke an API token",
    tag="admin",
    responses={404: "no such token"},
)
async def revoke_token(request: web.Request) -> web.StreamResponse:
    token_id = request.match_info["id"]
    client = redis_of(request)
    if not await auth.revoke_token(client, token_id):
        raise Refused(404, "no such token")
    await audit.record(
        client,
        identity_of(request),
        "token.revoke",
        token_id,
        {"revoked": False},
        {"revoked": True},
    )
    return web.json_response({"id": token_id, "revoked": True})


@api.get(
    "/api/audit",
    roles=["admin"],
    summary="the latest changes, newest first",
    tag="admin",
    query=AuditQuery,
)
async def audit_log(request: web.Request, query: AuditQuery) -> web.StreamResponse:
    limit = max(1, min(query.limit, 1000))  # a limit out of range is clamped, not refused
    return web.json_response({"entries": await audit.entries(redis_of(request), limit)})
