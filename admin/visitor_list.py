"""The dashboard's visitors list: recent identified visitors and the most intent, by handle.

Visitors are only ever shown by their public handle (analytics/visitor_handles.py), never by
cookie. The worker keeps, per account, its latest visitors (``keyspace.account_recent``); the
list is those of the hottest accounts, so an anonymous visitor (no account) is not in it: one
is found by handle, from a report or a link. A sales rep's list is their own accounts' visitors
(admin/sales.py): a visitor of no listed account has no owner, so no rep sees it.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as redis

from refract.admin import sales
from refract.admin.auth import Identity
from refract.analytics import visitors
from refract.rules.industry import IndustryModel

ACCOUNTS_READ: Final = 25  # hottest accounts whose latest visitors are read
SHOWN: Final = 25  # rows of each list


async def identified_visitors(
    client: redis.Redis, site: str, who: Identity, industry: IndustryModel | None
) -> list[dict[str, Any]]:
    """The latest visitors of the hottest accounts the caller sees, each with its account's
    domain and name."""
    found: list[dict[str, Any]] = []
    for account in await sales.hot_accounts(client, site, who, ACCOUNTS_READ, industry):
        detail = await visitors.account_detail(client, site, account["domain"], industry)
        if detail is None:
            continue
        name = (account.get("account") or {}).get("name") or account["domain"]
        for visitor in detail["recent_visitors"]:
            found.append({**visitor, "domain": account["domain"], "account_name": name})
    return found


def recent_first(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(found, key=lambda visitor: -visitor["last_seen"])[:SHOWN]


def most_intent(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Visitors by intent, highest first (the latest first among equals), none without any."""
    ranked = sorted(found, key=lambda visitor: (-visitor["intent"], -visitor["last_seen"]))
    return [visitor for visitor in ranked if visitor["intent"] > 0][:SHOWN]
