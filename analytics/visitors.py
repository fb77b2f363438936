"""Visitors and accounts as sales and marketing read them: profile, guesses with reasons, heat.

The psychographic axes and scores are computed on read from the stored profile (they are
pure functions of it, tens of microseconds), so what the admin API shows is always the
current model's view, with the indicators and reasons that drove it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import redis.asyncio as redis

from analytics import keys
from analytics.intel import classify, features_of, score
from rules.accounts import Account, account_from_hash, account_key


async def visitor_profile(client: redis.Redis, site: str, visitor: str) -> dict[str, Any] | None:
    """Everything known about one visitor, or None for a visitor never seen."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.profile(site, visitor))
        pipe.lrange(keys.pages(site, visitor), 0, -1)
        raw, pages = await pipe.execute()
    if not raw:
        return None
    profile = {_text(name): _text(value) for name, value in raw.items()}
    recent = [_text(page) for page in pages]
    account = None
    if domain := profile.get("account"):
        stored = await client.hgetall(account_key(site, domain))
        account = account_from_hash(stored) if stored else None
    features = features_of(profile, recent)
    scores = score(features, employees=account.employees if account else None)
    return {
        "visitor": visitor,
        "profile": profile,
        "recent_pages": recent,
        "organisation": {
            "name": profile.get("org"),
            "kind": profile.get("org_kind"),
            "asn": int(profile["asn"]) if profile.get("asn") else None,
        },
        "account": _account_json(account),
        "psychographics": dataclasses.asdict(classify(features)),
        "scores": dataclasses.asdict(scores),
    }


async def hot_accounts(client: redis.Redis, site: str, limit: int = 20) -> list[dict[str, Any]]:
    """Accounts by heat, hottest first, with what their visitors did."""
    ranked: list[tuple[bytes, float]] = await client.zrevrange(  # type: ignore[assignment]
        keys.hot_accounts(site), 0, limit - 1, withscores=True
    )
    found = []
    for domain_raw, heat in ranked:
        domain = _text(domain_raw)
        async with client.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.account(site, domain))
            pipe.pfcount(keys.account_visitors(site, domain))
            pipe.hgetall(account_key(site, domain))
            rollup, visitors, stored = await pipe.execute()
        fields = {_text(name): _text(value) for name, value in rollup.items()}
        tags = {name[4:]: int(count) for name, count in fields.items() if name.startswith("tag:")}
        found.append(
            {
                "domain": domain,
                "heat": heat,
                "pageviews": int(fields.get("pageviews", 0)),
                "visitors": visitors,
                "last_seen": float(fields.get("last_seen", 0)),
                "key_pages": sorted(tags, key=lambda tag: -tags[tag])[:5],
                "account": _account_json(account_from_hash(stored) if stored else None),
            }
        )
    return found


def _account_json(account: Account | None) -> dict[str, Any] | None:
    return dataclasses.asdict(account) if account is not None else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
