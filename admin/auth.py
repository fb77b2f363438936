"""Who is calling the admin API: users with sessions, and API tokens.

* **Users** have a name, a role and an argon2id password hash (argon2-cffi's defaults,
  RFC 9106), kept in Redis; ``refract users add`` creates them, an admin can too.
* **Sessions**: signing in sets ``rf_admin``, a random 256-bit id in an HttpOnly,
  SameSite=Strict cookie (``Secure`` behind HTTPS); Redis keeps only its SHA-256, with the
  user, role and a CSRF token, for ``SESSION_TTL_S``. Writing requests on a session must send
  that token as ``X-CSRF-Token`` (the dashboard puts it in every page).
* **API tokens** (``rft_`` + 256 random bits) are shown once; Redis keeps their SHA-256 with
  a name, a role, a scope (``read`` or ``write``) and whether they are revoked. A token needs
  no CSRF token: it is never sent by a browser on its own.

| key | type | holds |
|---|---|---|
| `rf:admin:user:{name}` | hash | `role`, `password` (argon2 hash), `created` |
| `rf:admin:session:{sha256}` | hash | `user`, `role`, `csrf`, `created`; expires |
| `rf:admin:token:{sha256}` | hash | `id`, `name`, `role`, `scope`, `created`, `revoked` |
| `rf:admin:tokens` | hash | token id -> its sha256 (to list and revoke by id) |
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as redis
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from refract.rules import keyspace
from refract.rules.redis_values import text

SESSION_COOKIE = "rf_admin"
SESSION_TTL_S = 12 * 3600
TOKEN_PREFIX = "rft_"
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"

_hasher = PasswordHasher()
# A hash to verify against when the user does not exist, so that the answer takes as long
# as for a wrong password and does not reveal which names exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    via: Literal["session", "token"]
    csrf: str = ""  # sessions only
    scope: str = "write"  # tokens: "read" or "write"

    @property
    def can_write(self) -> bool:
        return self.scope == "write"

    def csrf_ok(self, request: web.Request) -> bool:
        sent = request.headers.get("X-CSRF-Token", "")
        return bool(self.csrf) and hmac.compare_digest(sent, self.csrf)


# the caller of a request, None when anonymous (set by admin.app's middleware)
IDENTITY_KEY: web.RequestKey[Identity | None] = web.RequestKey("refract.identity", Identity)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# --- users ---------------------------------------------------------------------------------


async def add_user(client: redis.Redis, name: str, role: str, password: str) -> bool:
    """Create or replace a user; True when the name was new."""
    created = await client.hsetnx(keyspace.admin_user(name), "created", time.time())
    await client.hset(
        keyspace.admin_user(name), mapping={"role": role, "password": _hasher.hash(password)}
    )
    return bool(created)


async def list_users(client: redis.Redis) -> list[dict[str, Any]]:
    users = []
    async for key in client.scan_iter(match=keyspace.admin_users_pattern(), count=500):
        stored = await client.hgetall(key)
        name = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1]
        users.append(
            {
                "name": name,
                "role": text(stored.get(b"role")),
                "created": _float(stored, b"created"),
            }
        )
    return sorted(users, key=lambda user: user["name"])


async def check_password(client: redis.Redis, name: str, password: str) -> str | None:
    """The user's role when the password is right, else None (in constant-ish time)."""
    stored = await client.hgetall(keyspace.admin_user(name))
    hashed = text(stored.get(b"password")) or _DUMMY_HASH
    try:
        _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return None
    if not stored:
        return None
    if _hasher.check_needs_rehash(hashed):
        await client.hset(keyspace.admin_user(name), "password", _hasher.hash(password))
    return text(stored.get(b"role"))


# --- sessions ------------------------------------------------------------------------------


async def open_session(client: redis.Redis, name: str, role: str) -> tuple[str, str]:
    """A new session: (the cookie's secret id, its CSRF token)."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    key = keyspace.admin_session(_digest(secret))
    await client.hset(
        key, mapping={"user": name, "role": role, "csrf": csrf, "created": time.time()}
    )
    await client.expire(key, SESSION_TTL_S)
    return secret, csrf


async def close_session(client: redis.Redis, secret: str) -> None:
    await client.delete(keyspace.admin_session(_digest(secret)))


def set_session_cookie(request: web.Request, response: web.StreamResponse, secret: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        path="/",
    )


# --- tokens --------------------------------------------------------------------------------


async def create_token(
    client: redis.Redis, name: str, role: str, scope: Literal["read", "write"]
) -> tuple[str, str]:
    """A new API token: (its id, the token itself, shown only now)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    token_id = digest[:12]
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            keyspace.admin_token(digest),
            mapping={
                "id": token_id,
                "name": name,
                "role": role,
                "scope": scope,
                "created": time.time(),
                "revoked": 0,
            },
        )
        pipe.hset(keyspace.ADMIN_TOKENS, token_id, digest)
        await pipe.execute()
    return token_id, token


async def revoke_token(client: redis.Redis, token_id: str) -> bool:
    digest = await client.hget(keyspace.ADMIN_TOKENS, token_id)
    if digest is None:
        return False
    await client.hset(keyspace.admin_token(text(digest)), "revoked", 1)
    return True


async def list_tokens(client: redis.Redis) -> list[dict[str, Any]]:
    found = []
    for digest in (await client.hgetall(keyspace.ADMIN_TOKENS)).values():
        stored = await client.hgetall(keyspace.admin_token(text(digest)))
        if stored:
            found.append(
                {
                    "id": text(stored[b"id"]),
                    "name": text(stored[b"name"]),
                    "role": text(stored[b"role"]),
                    "scope": text(stored[b"scope"]),
                    "created": _float(stored, b"created"),
                    "revoked": stored.get(b"revoked") == b"1",
                }
            )
    return sorted(found, key=lambda token: token["created"])


# --- who is calling ------------------------------------------------------------------------


async def identify(client: redis.Redis, request: web.Request) -> Identity | None:
    """The caller, from a bearer token or the session cookie; None when neither is valid."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        stored = await client.hgetall(
            keyspace.admin_token(_digest(header.removeprefix("Bearer ").strip()))
        )
        if not stored or stored.get(b"revoked") == b"1":
            return None
        return Identity(
            text(stored[b"name"]), text(stored[b"role"]), "token", scope=text(stored[b"scope"])
        )
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        return None
    stored = await client.hgetall(keyspace.admin_session(_digest(secret)))
    if not stored:
        return None
    return Identity(
        text(stored[b"user"]), text(stored[b"role"]), "session", csrf=text(stored[b"csrf"])
    )


def _float(stored: Mapping[Any, Any], name: bytes) -> float:
    return float(stored.get(name, b"0"))
