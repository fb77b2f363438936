"""Who is calling the admin API: users with sessions, and API tokens.

* **Users** have a name, a role, the sites they may see (none listed: all) and an argon2id
  password hash (admin/passwords.py), kept in Redis; a sales rep also their CRM owner id
  (the accounts they own) and territory (territories.toml), by which the sales endpoints
  scope what they see. ``refract users add`` creates them, an admin can too. Each user has
  a **generation**, a random value drawn again by every reset and gone with the user: a
  session remembers the generation it was opened in and is refused (and deleted) on its
  next use once they differ, so a reset or a removal ends the user's sessions at once, and
  a name removed and added again does not bring its old sessions back. The role, sites, owner
  id and territory are read from the user on every request, never from the session. API
  tokens carry neither owner id nor territory: a sales rep's token sees no one's accounts.
* **Sessions**: signing in sets a random 256-bit id in an HttpOnly, SameSite=Strict cookie:
  ``rf_admin`` over plain HTTP, ``__Host-rf_admin`` (``Secure``) when the browser reached us
  over HTTPS (our TLS, or a trusted proxy's ``X-Forwarded-Proto``). Redis keeps only its
  SHA-256, with the user, the generation and a CSRF token, for ``SESSION_TTL_S``. Writing
  requests on a session must send that token as ``X-CSRF-Token`` (the dashboard puts it in
  every page).
* **API tokens** (``rft_`` + 256 random bits) are shown once; Redis keeps their SHA-256 with
  a name, a role, a scope (``read`` or ``write``), the sites they may see, an expiry (0:
  never) and whether they are revoked. A token needs no CSRF token: it is never sent by a
  browser on its own.

| key | type | holds |
|---|---|---|
| `rf:admin:user:{name}` | hash | role, password, sites, generation, created, owner_id, territory |
| `rf:admin:session:{sha256}` | hash | `user`, `generation`, `csrf`, `created`; expires |
| `rf:admin:token:{sha256}` | hash | id, name, role, scope, sites, expires, created, revoked |
| `rf:admin:tokens` | hash | token id -> its sha256 (to list and revoke by id) |
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import redis.asyncio as redis
from aiohttp import web

from refract.admin import passwords
from refract.rules import keyspace
from refract.rules.config import ADMIN_SECURE_SESSION_COOKIE, ADMIN_SESSION_COOKIE
from refract.rules.redis_values import text

SESSION_COOKIE = ADMIN_SESSION_COOKIE
SECURE_SESSION_COOKIE = ADMIN_SECURE_SESSION_COOKIE
SESSION_TTL_S = 12 * 3600
TOKEN_PREFIX = "rft_"
USER_NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
# a CRM's owner id (Salesforce "005...", HubSpot digits) or the owner column of an account
# list, which some exports fill with names: printable, no separators of ours
OWNER_ID_PATTERN = r"^[^\x00-\x1f\x7f,]{1,100}$"
TERRITORY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"  # a territory's key (rules/schema.py)
LIFETIME_PATTERN = r"^[1-9][0-9]{0,4}[hd]$"  # "12h", "90d"
MAX_LIFETIME_S = 3650 * 86400
_UNIT_S = {"h": 3600, "d": 86400}


@dataclass(frozen=True)
class Identity:
    name: str
    role: str
    via: Literal["session", "token"]
    csrf: str = ""  # sessions only
    scope: str = "write"  # tokens: "read" or "write"
    sites: frozenset[str] | None = None  # the site keys it may see; None: every site
    owner_id: str = ""  # users: the CRM owner id of the accounts they own ("" for none)
    territory: str = ""  # users: their territory's key in territories.toml

    @property
    def can_write(self) -> bool:
        return self.scope == "write"

    def may_see(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def csrf_ok(self, request: web.Request) -> bool:
        sent = request.headers.get("X-CSRF-Token", "")
        return bool(self.csrf) and hmac.compare_digest(_sent_bytes(sent), self.csrf.encode())


# the caller of a request, None when anonymous (set by admin.app's middleware)
IDENTITY_KEY: web.RequestKey[Identity | None] = web.RequestKey("refract.identity", Identity)


def _sent_bytes(text: str) -> bytes:
    """A header's or cookie's value as bytes, whatever it holds: aiohttp decodes bytes that are
    not UTF-8 as lone surrogates, which ``str.encode()`` refuses. Our secrets are ASCII, so
    such a value is simply one that matches none (a 401 or 403, never a crash)."""
    return text.encode("utf-8", "surrogatepass")


def _digest(secret: str) -> str:
    return hashlib.sha256(_sent_bytes(secret)).hexdigest()


def session_cookie(secure: bool) -> str:
    """The session cookie's name: ``__Host-`` prefixed when the browser uses HTTPS."""
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


def _sites_field(sites: Iterable[str]) -> str:
    return ",".join(sorted(set(sites)))  # site keys are [a-z0-9_-]: a comma never occurs


def _sites_of(stored: Mapping[Any, Any]) -> frozenset[str] | None:
    listed = text(stored.get(b"sites"))
    return frozenset(listed.split(",")) if listed else None


def lifetime_s(lifetime: str) -> int:
    """``"12h"`` or ``"90d"`` as seconds; ValueError for anything else or past ten years."""
    if not re.fullmatch(LIFETIME_PATTERN, lifetime):
        raise ValueError(f'"{lifetime}" is not a lifetime such as "12h" or "90d"')
    seconds = int(lifetime[:-1]) * _UNIT_S[lifetime[-1]]
    if seconds > MAX_LIFETIME_S:
        raise ValueError(f'"{lifetime}" is longer than ten years')
    return seconds


# --- users ---------------------------------------------------------------------------------


def check_rep_fields(owner_id: str | None, territory: str | None) -> None:
    """ValueError, saying why, for an owner id or a territory a user cannot have."""
    if owner_id and not re.fullmatch(OWNER_ID_PATTERN, owner_id):
        raise ValueError("an owner id is 1 to 100 printable characters, no comma")
    if territory and not re.fullmatch(TERRITORY_PATTERN, territory):
        raise ValueError("a territory is its key in territories.toml: a-z, 0-9, - and _")


async def add_user(
    client: redis.Redis,
    name: str,
    role: str,
    password: str,
    sites: Iterable[str] = (),
    *,
    owner_id: str | None = None,
    territory: str | None = None,
) -> bool:
    """Create or reset a user; True when the name was new. A reset ends their sessions.
    ``owner_id`` and ``territory``: None keeps what the user had, "" clears it; ValueError
    for a value ``check_rep_fields`` refuses."""
    check_rep_fields(owner_id, territory)
    hashed = await passwords.hash_password(password)
    key = keyspace.admin_user(name)
    fields = {"role": role, "password": hashed, "sites": _sites_field(sites)}
    if owner_id is not None:
        fields["owner_id"] = owner_id
    if territory is not None:
        fields["territory"] = territory
    async with client.pipeline(transaction=True) as pipe:
        pipe.hsetnx(key, "created", time.time())
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        # random, not counted: a counter would start again at 1 for a name removed and added
        # again, and the sessions of the removed user would be of the new one's generation
        pipe.hset(key, "generation", secrets.token_hex(16))
        created, *_ = await pipe.execute()
    return bool(created)


async def remove_user(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """Delete a user (their sessions end with them); what they were, or None if no one."""
    key = keyspace.admin_user(name)
    async with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(key)
        pipe.delete(key)
        stored, _ = await pipe.execute()
    if not stored:
        return None
    return _user_summary(name, stored)


def _user_summary(name: str, stored: Mapping[Any, Any]) -> dict[str, Any]:
    sites = _sites_of(stored)
    return {
        "name": name,
        "role": text(stored.get(b"role")),
        "sites": sorted(sites) if sites is not None else [],
        "owner_id": text(stored.get(b"owner_id")),
        "territory": text(stored.get(b"territory")),
        "created": _float(stored, b"created"),
    }


async def list_users(client: redis.Redis) -> list[dict[str, Any]]:
    users = []
    async for key in client.scan_iter(match=keyspace.admin_users_pattern(), count=500):
        stored = await client.hgetall(key)
        if stored:
            name = (key.decode() if isinstance(key, bytes) else key).rsplit(":", 1)[1]
            users.append(_user_summary(name, stored))
    return sorted(users, key=lambda user: user["name"])


async def check_password(client: redis.Redis, name: str, password: str) -> str | None:
    """The user's role when the password is right, else None (in constant-ish time; argon2
    runs in admin/passwords.py's pool, never on the event loop)."""
    stored = await client.hgetall(keyspace.admin_user(name))
    hashed = text(stored.get(b"password")) or passwords.DUMMY_HASH
    if not await passwords.verify(hashed, password) or not stored:
        return None
    if passwords.needs_rehash(hashed):
        rehashed = await passwords.hash_password(password)
        await client.hset(keyspace.admin_user(name), "password", rehashed)
    return text(stored.get(b"role"))


# --- sessions ------------------------------------------------------------------------------


async def open_session(client: redis.Redis, name: str) -> tuple[str, str]:
    """A new session of the user's current generation: (the cookie's secret id, its CSRF
    token)."""
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    key = keyspace.admin_session(_digest(secret))
    generation = text(await client.hget(keyspace.admin_user(name), "generation"))
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "user": name,
                "generation": generation,
                "csrf": csrf,
                "created": time.time(),
            },
        )
        pipe.expire(key, SESSION_TTL_S)
        await pipe.execute()
    return secret, csrf


async def close_session(client: redis.Redis, secret: str) -> None:
    await client.delete(keyspace.admin_session(_digest(secret)))


def set_session_cookie(response: web.StreamResponse, secret: str, secure: bool) -> None:
    response.set_cookie(
        session_cookie(secure),
        secret,
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=secure,
        path="/",  # no Domain: a __Host- cookie must have none, and the other needs none
    )


def delete_session_cookie(response: web.StreamResponse, secure: bool) -> None:
    """The cookie ``set_session_cookie`` set, deleted with the same attributes: a browser
    ignores a __Host- cookie's deletion without Secure."""
    response.del_cookie(
        session_cookie(secure), path="/", secure=secure, httponly=True, samesite="Strict"
    )


# --- tokens --------------------------------------------------------------------------------


async def create_token(
    client: redis.Redis,
    name: str,
    role: str,
    scope: Literal["read", "write"],
    lifetime: float | None = None,
    sites: Iterable[str] = (),
) -> tuple[str, str]:
    """A new API token, valid for ``lifetime`` seconds (None: until revoked): (its id, the
    token itself, shown only now)."""
    now = time.time()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = _digest(token)
    token_id = digest[:12]
    # The index first, then the token: two keys in different cluster slots cannot share a
    # MULTI, and in this order a crash between them leaves an index entry naming nothing
    # (list_tokens skips it), never a working token that cannot be listed or revoked.
    await client.hset(keyspace.ADMIN_TOKENS, token_id, digest)
    async with client.pipeline(transaction=True) as pipe:
        pipe.hset(
            keyspace.admin_token(digest),
            mapping={
                "id": token_id,
                "name": name,
                "role": role,
                "scope": scope,
                "sites": _sites_field(sites),
                "expires": 0 if lifetime is None else now + lifetime,
                "created": now,
                "revoked": 0,
            },
        )
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
                    "sites": sorted(_sites_of(stored) or ()),
                    "created": _float(stored, b"created"),
                    "expires": _float(stored, b"expires") or None,
                    "revoked": stored.get(b"revoked") == b"1",
                }
            )
    return sorted(found, key=lambda token: token["created"])


# --- who is calling ------------------------------------------------------------------------


async def identify(client: redis.Redis, request: web.Request, secure: bool) -> Identity | None:
    """The caller, from a bearer token or the session cookie (``secure``: the request came
    over HTTPS, so only the ``__Host-`` cookie counts); None when neither is valid."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return await _token_identity(client, header.removeprefix("Bearer ").strip())
    secret = request.cookies.get(session_cookie(secure))
    if not secret:
        return None
    return await _session_identity(client, secret)


async def _token_identity(client: redis.Redis, token: str) -> Identity | None:
    stored = await client.hgetall(keyspace.admin_token(_digest(token)))
    if not stored or stored.get(b"revoked") == b"1":
        return None
    expires = _float(stored, b"expires")
    if expires and expires <= time.time():
        return None
    return Identity(
        text(stored[b"name"]),
        text(stored[b"role"]),
        "token",
        scope=text(stored[b"scope"]),
        sites=_sites_of(stored),
    )


async def _session_identity(client: redis.Redis, secret: str) -> Identity | None:
    key = keyspace.admin_session(_digest(secret))
    session = await client.hgetall(key)
    if not session:
        return None
    name = text(session[b"user"])
    user = await client.hgetall(keyspace.admin_user(name))
    if not user or text(user.get(b"generation")) != text(session.get(b"generation")):
        await client.delete(key)  # reset or removed since: the session is over for good
        return None
    return Identity(
        name,
        text(user[b"role"]),
        "session",
        csrf=text(session[b"csrf"]),
        sites=_sites_of(user),
        owner_id=text(user.get(b"owner_id")),
        territory=text(user.get(b"territory")),
    )


def _float(stored: Mapping[Any, Any], name: bytes) -> float:
    return float(stored.get(name, b"0"))
