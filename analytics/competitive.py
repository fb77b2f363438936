"""Competitor research by account, read from the event archive with DuckDB.

A page view researches a competitor when its path, referrer or search terms name one of
``[settings] competitors`` (``effects.competitors_named``, the rule the visitor's profile and
automations.toml's ``competitor`` trigger count by). Here the page views of a period are read
from the Parquet archive and rolled up per account and competitor: pages, visits (sessions),
visitors and the last time. A visitor belongs to the account the worker last matched any of
their events of the period to (``account`` on the event), so the pages they viewed before
being identified count for it too; a visitor of no account is counted under ``""``.

Why the archive and not a roll-up in Redis: the question has a period (``days``), and visits
and visitors are distinct counts; the archive keeps every page view with its session, account,
referrer and UTM terms, so any period is one query, where Redis would need a counter per
account, competitor and day. The cost: the archive is what the worker wrote (seconds behind),
and with ``privacy.archive_personal_fields`` dropping or hashing referrers and UTM terms, only
the paths can still name a competitor (docs/competitive.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import duckdb

from refract.analytics.attribution.archive_journeys import EVENTS, has_parts, part_files
from refract.analytics.effects import competitor_words, competitors_named
from refract.rules.events import PageViewEvent

# Page views of the period whose path, referrer or search terms hold the first word of a
# competitor's name, as it is or percent-encoded, or a punycode host (the SQL narrows, to a
# superset; ``competitors_named`` decides), each with its visitor's account of the period.
_RESEARCH = (
    EVENTS
    + """,
accounts AS (
    SELECT visitor, arg_max(json_extract_string(data, '$.account'), time) AS account
    FROM events WHERE coalesce(json_extract_string(data, '$.account'), '') <> ''
    GROUP BY visitor
),
views AS (
    SELECT visitor, session, time, coalesce(url, '') AS url,
           coalesce(json_extract_string(data, '$.referrer'), '') AS referrer,
           coalesce(json_extract(data, '$.new_session')::BOOLEAN, false) AS new_session,
           coalesce(json_extract_string(data, '$.utm.term'), '') AS term,
           coalesce(json_extract_string(data, '$.utm.campaign'), '') AS campaign
    FROM events WHERE type = 'pageview'
)
SELECT views.*, coalesce(accounts.account, '') FROM views LEFT JOIN accounts USING (visitor)
WHERE len(list_filter($words,
                      lambda word: contains(lower(concat_ws(' ', url, referrer, term, campaign)),
                                            word))) > 0
"""
)


@dataclass
class Research:
    """One account's research of one competitor in the period (``account`` "" for visitors
    of no account)."""

    account: str
    competitor: str  # as [settings] competitors spells it
    pages: int = 0
    last_seen: float = 0.0
    sessions: set[str] = field(default_factory=set)
    visitors: set[str] = field(default_factory=set)

    @property
    def visits(self) -> int:
        return len(self.sessions)

    def add(self, visitor: str, session: str, at: float) -> None:
        self.pages += 1
        self.last_seen = max(self.last_seen, at)
        self.visitors.add(visitor)
        if session:
            self.sessions.add(session)


def research(
    root: Path | str, site: str, competitors: Sequence[str], since: float, until: float
) -> list[Research]:
    """Each (account, competitor) researched from ``since`` to ``until`` (Unix times), most
    recent first; ``competitors`` as ``[settings] competitors`` spells them."""
    spelled = {name.lower(): name for name in competitors if name.strip()}
    if not spelled:
        return []
    with duckdb.connect() as db:
        if not has_parts(db, root, site):
            return []
        rows = db.execute(
            _RESEARCH,
            {
                "files": part_files(root, site),
                "since": datetime.fromtimestamp(since, UTC),
                "until": datetime.fromtimestamp(until, UTC),
                "words": _narrowing(spelled),
            },
        ).fetchall()
    return _rolled_up(rows, spelled)


def _narrowing(names: Iterable[str]) -> list[str]:
    """What the SQL looks for: each name's first word (``competitors_named`` needs them all, in
    order), also percent-encoded as a URL may carry it, and ``xn--`` when a name is written in
    letters a host name carries as punycode."""
    words: set[str] = set()
    for name in names:
        found = competitor_words(name)
        if found:
            words |= {found[0], quote(found[0]).lower()}
        if not name.isascii():
            words.add("xn--")
    return sorted(words)


def _rolled_up(rows: Iterable[tuple[Any, ...]], spelled: dict[str, str]) -> list[Research]:
    found: dict[tuple[str, str], Research] = {}
    for visitor, session, at, url, referrer, new_session, term, campaign, account in rows:
        # the archive's row as the page view it was, as far as the rule reads one
        view = cast(
            PageViewEvent,
            {
                "url": url,
                "referrer": referrer,
                "new_session": new_session,
                "utm": {"term": term, "campaign": campaign},
            },
        )
        for name in competitors_named(view, list(spelled)):
            key = (account, spelled[name])
            found.setdefault(key, Research(account, spelled[name])).add(visitor, session, at)
    return sorted(found.values(), key=lambda one: (-one.last_seen, one.account, one.competitor))
