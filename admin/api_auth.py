"""Signing in and out, users, API tokens and the audit log."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import audit, auth
from refract.admin.api import PUBLIC, ROLES, Api, Refused, Role
from refract.admin.state import identity_of, redis_of

api = Api("Refract admin", "1")
EVERY_ROLE = ROLES


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class NewUser(BaseModel):
    name: str = Field(
        pattern=auth.USER_NAME_PATTERN, description="lowercase letters, digits, . _ -"
    )
    role: Role
    password: str = Field(min_length=12, max_length=1024, description="at least 12 characters")


class AuditQuery(BaseModel):
    limit: int = Field(default=100, description="how many entries, newest first (1 to 1,000)")


class NewToken(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="what the token is for")
    role: Role
    scope: Literal["read", "write"] = "read"


@api.post(
    "/api/login", roles=[PUBLIC], summary="sign in: sets the session cookie", tag="auth", body=Login
)
async def login(request: web.Request, body: Login) -> web.StreamResponse:
    client = redis_of(request)
    role = await auth.check_password(client, body.username, body.password)
    if role is None:
        raise Refused(401, "wrong user name or password")
    secret, csrf = await auth.open_session(client, body.username, role)
    response = web.json_response({"user": body.username, "role": role, "csrf": csrf})
    auth.set_session_cookie(request, response, secret)
    return response


@api.post("/api/logout", roles=EVERY_ROLE, summary="sign out: ends the session", tag="auth")
async def logout(request: web.Request) -> web.StreamResponse:
    secret = request.cookies.get(auth.SESSION_COOKIE)
    if secret:
        await auth.close_session(redis_of(request), secret)
    response = web.json_response({"signed_out": True})
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    return response


@api.get("/api/me", roles=EVERY_ROLE, summary="who is signed in, with which role", tag="auth")
async def me(request: web.Request) -> web.StreamResponse:
    who = identity_of(request)
    return web.json_response({"user": who.name, "role": who.role, "via": who.via, "csrf": who.csrf})


@api.get("/api/users", roles=["admin"], summary="users and their roles", tag="admin")
async def users(request: web.Request) -> web.StreamResponse:
    return web.json_response({"users": await auth.list_users(redis_of(request))})


@api.post(
    "/api/users", roles=["admin"], summary="create or reset a user", tag="admin", body=NewUser
)
async def create_user(request: web.Request, body: NewUser) -> web.StreamResponse:
    client = redis_of(request)
    new = await auth.add_user(client, body.name, body.role, body.password)
    await audit.record(
        client,
        identity_of(request),
        "user.create" if new else "user.reset",
        body.name,
        after={"name": body.name, "role": body.role},
    )
    return web.json_response({"name": body.name, "role": body.role}, status=201 if new else 200)


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
    client = redis_of(request)
    token_id, token = await auth.create_token(client, body.name, body.role, body.scope)
    summary = {"id": token_id, "name": body.name, "role": body.role, "scope": body.scope}
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
