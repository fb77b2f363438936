"""A site's account list in Redis: replaced whole and atomically, under a version that
proxies and workers follow.

Keys (``rules/keyspace.py``, all with the site's hash tag, so one slot and one transaction):
``crm_account`` (a hash per account, fields as ``_to_hash`` writes them), ``crm_accounts``
(the set of their domains) and ``crm_accounts_version`` (a counter every store increments).

``store_accounts`` replaces the whole list in one MULTI/EXEC, so a reader sees the old list or
the new one, never a mix; ``FollowedIndex`` polls the version (one GET) and reloads the index
when it changed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Final

import redis.asyncio as redis
from redis.exceptions import WatchError

from refract.rules import keyspace
from refract.rules.account_index import AccountIndex
from refract.rules.accounts import Account
from refract.rules.problems import FieldError
from refract.rules.redis_values import strings, text

log = logging.getLogger(__name__)


def _to_hash(account: Account) -> dict[str, str]:
    """An account as hash fields: lists as JSON, unknown numbers as empty strings."""
    return {
        "domain": account.domain,
        "name": account.name,
        "industry": account.industry,
        "employees": "" if account.employees is None else str(account.employees),
        "annual_revenue": "" if account.annual_revenue is None else repr(account.annual_revenue),
        "location": account.location,
        "tech_stack": json.dumps(list(account.tech_stack)),
        "ip_ranges": json.dumps(list(account.ip_ranges)),
        "owner": account.owner,
        "territory": account.territory,
        "target": "1" if account.target else "0",
    }


def account_from_hash(raw: Mapping[bytes | str, bytes | str]) -> Account:
    values = {text(name): text(value) for name, value in raw.items()}
    return Account(
        domain=values["domain"],
        name=values["name"],
        industry=values.get("industry", ""),
        employees=int(values["employees"]) if values.get("employees") else None,
        annual_revenue=float(values["annual_revenue"]) if values.get("annual_revenue") else None,
        location=values.get("location", ""),
        tech_stack=tuple(json.loads(values.get("tech_stack") or "[]")),
        ip_ranges=tuple(json.loads(values.get("ip_ranges") or "[]")),
        owner=values.get("owner", ""),
        territory=values.get("territory", ""),
        target=values.get("target") == "1",
    )


async def store_accounts(client: redis.Redis, site: str, accounts: Sequence[Account]) -> int:
    """Replace the site's account list with ``accounts``, atomically; the new version.

    One MULTI/EXEC deletes every stored account (those not in the new list too, and the old
    fields of those that are), writes the new ones and bumps the version. WATCH on the domain
    set makes a concurrent replacement retry instead of leaving stale accounts behind.
    """
    domains = [account.domain for account in accounts]
    if len(set(domains)) != len(domains):
        raise ValueError("duplicate domains in the account list")
    while True:
        try:
            return await _replace(client, site, accounts)
        except WatchError:
            continue


async def _replace(client: redis.Redis, site: str, accounts: Sequence[Account]) -> int:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(keyspace.crm_accounts(site))
        old = {text(domain) for domain in await pipe.smembers(keyspace.crm_accounts(site))}
        pipe.multi()  # type: ignore[no-untyped-call]
        stale = [keyspace.crm_account(site, domain) for domain in old]
        stale += [keyspace.crm_account(site, account.domain) for account in accounts]
        pipe.delete(keyspace.crm_accounts(site), *stale)
        for account in accounts:
            pipe.hset(keyspace.crm_account(site, account.domain), mapping=_to_hash(account))  # type: ignore[arg-type]
        if accounts:
            pipe.sadd(keyspace.crm_accounts(site), *(account.domain for account in accounts))
        pipe.incr(keyspace.crm_accounts_version(site))
        results = await pipe.execute()
    return int(results[-1])


POLL_S: Final = 1.0  # how often followers check the stored version


async def accounts_version(client: redis.Redis, site: str) -> int:
    """The version of the stored list: poll this, reload when it changed; 0 if never stored."""
    value = await client.get(keyspace.crm_accounts_version(site))
    return int(value) if value is not None else 0


class FollowedIndex:
    """A site's account index as stored in Redis, reloaded when the stored version changes.

    Proxies (by IP range) and workers (by domain and e-mail domain) each keep one per site and
    call ``refresh`` every ``POLL_S``: one GET while nothing changed. Until a list is stored
    the index is empty; a Redis error leaves the index in force and goes to the caller.
    """

    def __init__(self, site: str) -> None:
        self.site = site
        self.version = 0  # 0: never stored
        self.index = AccountIndex(())

    async def refresh(self, client: redis.Redis) -> bool:
        """Reload when the stored version is not the one held; True when the index changed."""
        if await accounts_version(client, self.site) == self.version:
            return False
        self.version, accounts = await load_accounts_versioned(client, self.site)
        self.index = AccountIndex(accounts)
        return True


async def load_accounts(client: redis.Redis, site: str) -> list[Account]:
    """The site's stored account list, sorted by domain."""
    return (await load_accounts_versioned(client, site))[1]


async def load_accounts_versioned(client: redis.Redis, site: str) -> tuple[int, list[Account]]:
    """The version and the accounts of that version, read consistently.

    WATCH on the version aborts the read when a replacement lands between reading the domain
    set and the hashes; it then starts over.
    """
    while True:
        try:
            return await _read(client, site)
        except WatchError:
            continue


async def _read(client: redis.Redis, site: str) -> tuple[int, list[Account]]:
    async with client.pipeline(transaction=True) as pipe:
        await pipe.watch(keyspace.crm_accounts_version(site))
        domains = sorted(text(d) for d in await pipe.smembers(keyspace.crm_accounts(site)))
        pipe.multi()  # type: ignore[no-untyped-call]
        pipe.get(keyspace.crm_accounts_version(site))
        for domain in domains:
            pipe.hgetall(keyspace.crm_account(site, domain))
        version, *hashes = await pipe.execute()
    accounts = [account for raw in hashes if raw and (account := _stored(site, raw)) is not None]
    return (int(version) if version is not None else 0), accounts


def _stored(site: str, raw: Mapping[bytes | str, bytes | str]) -> Account | None:
    """A stored account, or None (logged) when it no longer passes the checks it passed when
    stored: say a domain an update of the Public Suffix List now lists as a suffix. One such
    account must not keep a site's whole list from loading."""
    try:
        return account_from_hash(raw)
    except FieldError as error:
        domain = strings(raw).get("domain", "")
        log.warning("stored account %r of %s skipped: %s", domain, site, error.message)
        return None
