"""A data subject's rights (GDPR Art. 15 and 17): export everything Refract holds of a visitor,
or erase it, on one site.

Where a visitor lives (rules/keyspace.py's table): their profile, pages, downloads, exposures
and segment keys; the handle the admin showed for them; the accounts' ``recent`` sorted sets
and the experiments' ``revenue_totals`` sorted sets (members ``visitor + "\\t" + ...``); the
heat they added to an account each day; what automations recorded of them, by handle (the
actions' log, their cooldown keys, routed leads); their events in the streams, consumed or
not, and in the dead letters; and the Parquet archive. Erasure deletes or rewrites each of
them and then sweeps the site's key names for the id, so a per-visitor key added later is not
forgotten. An automation's action or a lead about an account that only mentions the visitor
stays the account's, without the visitor's part (``_without_visitor``). It keeps anonymous
aggregates: experiments' sufficient statistics, site counters and the HyperLogLog sketches
(which hold no id).

Subjects: a visitor by the ``rf_vid`` cookie value or by the handle the admin shows
(``vh_...``: every handle Refract showed resolves while anything of its visitor is kept, see
``find_visitor``); an account's domain (its visitors, found in its ``recent`` set, in profiles
matched to it and in events carrying it, plus the account's own roll-up keys; the CRM record
an operator imported is theirs to re-import and stays); an e-mail domain (the visitors whose
forms reported it, with ``events.email_domains``, as streams and archive keep them).

A ``Receipt`` says what was removed where, with counts, for the audit log. It names visitors
by handle only, so the audit log does not keep what was erased.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import re
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import msgpack
import redis.asyncio as redis

from refract.analytics.archive import Archive
from refract.analytics.automations import log as action_log
from refract.analytics.automations.actions import Action, Facts
from refract.analytics.routing import lead_json
from refract.analytics.visitor_handles import (
    HANDLE_PATTERN,
    HANDLE_PREFIX,
    ensure_secret,
    handle_of,
    is_handle,
    publish,
    resolve,
)
from refract.rules import keyspace
from refract.rules.events import EVENT_FIELD
from refract.rules.redis_values import strings, text

SubjectKind = Literal["visitor", "account", "email_domain"]
# a visitor id as the proxy makes it (32 hex digits), or any id a test or an older version
# wrote: letters, digits, - and _ (never a glob character: ids go into SCAN patterns); a
# signed cookie's value may carry its signature after a dot
_VISITOR: Final = re.compile(r"([A-Za-z0-9_-]{1,128})(?:\.[A-Za-z0-9_-]{1,256})?")
_DOMAIN: Final = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+"
)
MAX_SUBJECT_VISITORS: Final = 100_000  # an account or e-mail domain with more is refused
_SCAN_COUNT = 1000
_XRANGE_COUNT = 1000


class SubjectError(ValueError):
    """The subject is malformed; the message says how."""


class UnknownHandle(SubjectError):
    """A handle of no visitor anything is kept of: ``find_visitor`` looked everywhere an
    export reads. Erased, expired and never shown read the same (nothing says which)."""


def nothing_kept(sites: Collection[str]) -> UnknownHandle:
    """The answer for a handle found nowhere: what is true (nothing is kept), and what cannot
    be told (an erasure keeps no trace of the id; the audit log's receipts list the handles
    erased)."""
    return UnknownHandle(
        f"nothing is kept of a visitor with this handle on {', '.join(sorted(sites))}: "
        "nothing to export or erase. Refract cannot tell an erased or expired visitor's handle "
        "from one it never showed (privacy.erase entries in the audit log list erased handles)"
    )


@dataclass
class Receipt:
    """What an erasure removed: per site, per place, a count (keys, members, entries, rows)."""

    kind: SubjectKind
    subject: str  # a visitor's handle, or the domain
    visitors: list[str] = field(default_factory=list)  # handles
    removed: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, site: str, place: str, count: int) -> None:
        counts = self.removed.setdefault(site, {})
        counts[place] = counts.get(place, 0) + count

    @property
    def total(self) -> int:
        return sum(sum(counts.values()) for counts in self.removed.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "visitors": self.visitors,
            "removed": self.removed,
            "total": self.total,
        }


# --- who -----------------------------------------------------------------------------------


def visitor_id(value: str) -> str:
    """The visitor a cookie value names (signature, if any, left off); SubjectError if it
    names none."""
    if value.startswith(HANDLE_PREFIX):
        raise SubjectError("a handle is vh_ and 32 hex digits, as the admin shows it")
    match = _VISITOR.fullmatch(value)
    if match is None:
        raise SubjectError(
            "a visitor is its rf_vid cookie value (letters, digits, - and _) or a vh_ handle"
        )
    return match[1]


def glob_literal(value: str) -> str:
    """``value`` matching itself only in a Redis MATCH pattern: ids read from events and the
    archive are not trusted to be free of ``*``, ``?`` or ``[``."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


def subject_of(kind: SubjectKind, value: str) -> str:
    """How a subject is named in receipts and the audit log: an account or e-mail domain as
    validated (no stray case, spaces or control characters); a visitor not at all (their
    handles are listed instead)."""
    return domain(value) if kind != "visitor" else ""


def domain(value: str) -> str:
    lowered = value.strip().lower()
    if not _DOMAIN.fullmatch(lowered):
        raise SubjectError(f"{value[:80]!r} is not a domain name such as example.com")
    return lowered


async def find_visitor(client: redis.Redis, archive: Archive, site: str, value: str) -> str:
    """The visitor ``value`` names on ``site``: a cookie value, or a handle. A handle is
    looked up where the admin recorded it; failing that (shown where nothing recorded it, or
    recorded longer than a profile's lifetime ago while the archive still holds events), it
    is recomputed for every visitor anything is kept of (``_kept_visitors``) and recorded
    again when found. UnknownHandle when nothing is kept of its visitor."""
    if not is_handle(value):
        return visitor_id(value)
    recorded = await resolve(client, site, value)
    if recorded is not None:
        return recorded
    found = await _visitor_of_handle(client, archive, site, value)
    if found is None:
        raise nothing_kept([site])
    await publish(client, site, [found])
    return found


async def _visitor_of_handle(
    client: redis.Redis, archive: Archive, site: str, handle: str
) -> str | None:
    """The kept visitor whose handle is ``handle`` (with the handles' current key), or None."""
    secret = await ensure_secret(client)
    async for visitor in _kept_visitors(client, archive, site):
        if hmac.compare_digest(handle_of(secret, site, visitor), handle):
            return visitor
    return None


async def _kept_visitors(client: redis.Redis, archive: Archive, site: str) -> AsyncIterator[str]:
    """Every visitor of ``site`` something is kept of, in every place an export reads (each
    once, cheapest places first): their own keys, accounts' latest visitors, revenue totals,
    the streams, the dead letters and the archive."""
    seen: set[str] = {""}

    def fresh(visitor: str) -> bool:
        new = visitor not in seen
        seen.add(visitor)
        return new

    for name in keyspace.VISITOR_KEYS.values():
        prefix = name(site, "")
        async for key in client.scan_iter(match=name(site, "*"), count=_SCAN_COUNT):
            if fresh(visitor := text(key).removeprefix(prefix)):
                yield visitor
    for pattern, of_member in (
        (keyspace.account_recent_pattern(site), _recent_member_visitor),
        (keyspace.revenue_totals_pattern(site), _revenue_member_visitor),
    ):
        async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
            async for member, _ in client.zscan_iter(key, count=_SCAN_COUNT):
                if fresh(visitor := of_member(text(member))):
                    yield visitor
    for visitor in await _stream_visitors(client, site, lambda event: True):
        if fresh(visitor):
            yield visitor
    async for _, fields in _xrange(client, keyspace.dead_letters(site)):
        event = _unpacked(fields.get(b"data", b""))
        if isinstance(event, dict) and fresh(visitor := str(event.get("visitor", ""))):
            yield visitor
    for visitor in await asyncio.to_thread(lambda: set(archive.visitor_ids(site))):
        if fresh(visitor):
            yield visitor


def _recent_member_visitor(member: str) -> str:
    return member  # an account's latest visitors: the ids themselves


def _revenue_member_visitor(member: str) -> str:
    return member.partition(keyspace.RECORD_SEPARATOR)[0]


def attempted_subject(kind: SubjectKind, value: str) -> str:
    """How the audit names the subject of a refused request: a handle or a well-formed
    domain as given, anything else (a cookie value above all) not at all."""
    if kind == "visitor":
        return value if is_handle(value) else ""
    try:
        return domain(value)
    except SubjectError:
        return ""


async def account_visitors(
    client: redis.Redis, archive: Archive, site: str, account: str
) -> set[str]:
    """Every visitor known for ``account``: its latest visitors, profiles matched to it, and
    events that carry it (streams and archive)."""
    members: list[bytes] = await client.zrange(keyspace.account_recent(site, account), 0, -1)  # type: ignore[assignment]
    found = {text(member) for member in members}
    async for key in client.scan_iter(match=keyspace.profile_pattern(site), count=_SCAN_COUNT):
        if text(await client.hget(key, "account") or b"") == account:
            found.add(text(key).rsplit(":", 1)[1])

    def carries(event: dict[str, Any]) -> bool:
        return event.get("account") == account

    found |= await _stream_visitors(client, site, carries)
    found |= await asyncio.to_thread(
        archive.visitors_where, site, account, lambda event: carries(dict(event))
    )
    return _bounded(found)


async def email_domain_visitors(
    client: redis.Redis, archive: Archive, site: str, email_domain: str
) -> set[str]:
    """The visitors whose forms reported ``email_domain`` (streams and archive)."""

    def reported(event: dict[str, Any]) -> bool:
        return event.get("type") == "form" and event.get("email_domain") == email_domain

    found = await _stream_visitors(client, site, reported)
    found |= await asyncio.to_thread(
        archive.visitors_where, site, email_domain, lambda event: reported(dict(event))
    )
    return _bounded(found)


def _bounded(visitors: set[str]) -> set[str]:
    visitors.discard("")
    if len(visitors) > MAX_SUBJECT_VISITORS:
        raise SubjectError(
            f"{len(visitors)} visitors: more than {MAX_SUBJECT_VISITORS} at once is refused; "
            "erase them in parts (--visitor)"
        )
    return visitors


# --- export --------------------------------------------------------------------------------


async def export_visitor(
    client: redis.Redis, archive: Archive, site: str, visitor: str
) -> dict[str, Any]:
    """Everything ``site`` holds of ``visitor``, as JSON-ready values (Art. 15)."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.hgetall(keyspace.profile(site, visitor))
        pipe.lrange(keyspace.pages(site, visitor), 0, -1)
        pipe.lrange(keyspace.downloads(site, visitor), 0, -1)
        pipe.hgetall(keyspace.exposures(site, visitor))
        pipe.get(keyspace.segment(site, visitor))
        profile, pages, downloads, exposures, segment = await pipe.execute()
    accounts = [
        text(key).split(":")[-2]
        async for key in client.scan_iter(
            match=keyspace.account_recent_pattern(site), count=_SCAN_COUNT
        )
        if await client.zscore(key, visitor) is not None
    ]
    revenue = [
        {"key": text(key), "member": text(member), "total": score}
        for key, members in (await _revenue_members(client, site, {visitor})).items()
        for member, score in members
    ]
    stream_events, dead = await _stream_entries(client, site, {visitor})
    # recorded: the handle this export shows resolves later (an erasure by it, say)
    [handle] = await publish(client, site, [visitor])
    actions = await _automation_records(client, site, {handle})
    return {
        "site": site,
        "visitor": visitor,
        "handle": handle,
        "profile": strings(profile),
        "pages": [text(page) for page in pages],
        "downloads": [text(path) for path in downloads],
        "exposures": strings(exposures),
        "segment": _jsonable(_unpacked(segment)),
        "accounts_recent": accounts,
        "account_heat": {
            key: strings(await client.hgetall(key))
            for key in await _heat_keys(client, site, visitor)
        },
        "revenue_totals": revenue,
        "automation_actions": [
            action_log.record_view(action_id, record) for action_id, record in actions
        ],
        "automation_cooldowns": {
            key: text(await client.get(key) or b"")
            for key in await _cooldown_keys(client, site, {handle})
        },
        "leads": [lead_json(stored) for _, stored in await _leads(client, site, {handle})],
        "stream_events": [event for _, _, event in stream_events],
        "dead_letters": [event for _, _, event in dead],
        "archive_events": await asyncio.to_thread(archive.events_of, site, [visitor]),
    }


async def export_account(
    client: redis.Redis, archive: Archive, site: str, account: str
) -> dict[str, Any]:
    """An account's own keys, its CRM record, and the export of each of its visitors."""
    visitors = await account_visitors(client, archive, site, account)
    return {
        "site": site,
        "account": account,
        "rollup": strings(await client.hgetall(keyspace.account_rollup(site, account))),
        "crm": strings(await client.hgetall(keyspace.crm_account(site, account))),
        "company": strings(await client.hgetall(keyspace.company(site, account))),
        "heat": await client.zscore(keyspace.hot_accounts(site), account),
        "visitors": [
            await export_visitor(client, archive, site, visitor) for visitor in sorted(visitors)
        ],
    }


# --- erasure -------------------------------------------------------------------------------


async def erase_visitors(
    client: redis.Redis, archive: Archive, site: str, visitors: Collection[str], receipt: Receipt
) -> None:
    """Remove ``visitors`` from every place of ``site`` (Art. 17), counting into ``receipt``."""
    wanted = set(visitors)
    if not wanted:
        return
    named = await handles(client, site, wanted)
    async with client.pipeline(transaction=False) as pipe:
        for visitor, handle in zip(sorted(wanted), named, strict=True):
            for name in keyspace.VISITOR_KEYS.values():
                pipe.delete(name(site, visitor))
            pipe.delete(keyspace.visitor_handle(site, handle))
        deleted = await pipe.execute()
    places = (*keyspace.VISITOR_KEYS, "handle")
    for index, count in enumerate(deleted):
        receipt.add(site, places[index % len(places)], int(count))
    receipt.visitors += named
    receipt.add(site, "accounts_recent", await _remove_members(client, site, wanted))
    heat = [key for visitor in wanted for key in await _heat_keys(client, site, visitor)]
    receipt.add(site, "account_heat", int(await client.delete(*heat)) if heat else 0)
    await _erase_automation_records(client, site, set(named), receipt)
    revenue = await _revenue_members(client, site, wanted)
    for key, members in revenue.items():
        await client.zrem(key, *[member for member, _ in members])
    receipt.add(site, "revenue_totals", sum(len(members) for members in revenue.values()))
    entries, dead = await _stream_entries(client, site, wanted)
    for key, entry_id, _ in (*entries, *dead):
        await client.xdel(key, entry_id)
    receipt.add(site, "stream_events", len(entries))
    receipt.add(site, "dead_letters", len(dead))
    rows, files = await asyncio.to_thread(archive.erase, site, wanted)
    receipt.add(site, "archive_rows", rows)
    receipt.add(site, "archive_files", files)
    receipt.add(site, "other_keys", await _sweep(client, site, wanted))


async def erase_account(
    client: redis.Redis, archive: Archive, site: str, account: str, receipt: Receipt
) -> None:
    """The account's visitors, then its roll-up keys and its place among hot accounts."""
    await erase_visitors(
        client, archive, site, await account_visitors(client, archive, site, account), receipt
    )
    own = (
        keyspace.account_rollup(site, account),
        keyspace.account_visitors(site, account),
        keyspace.account_recent(site, account),
        keyspace.company(site, account),
    )
    receipt.add(site, "account_keys", int(await client.delete(*own)))
    receipt.add(site, "hot_accounts", int(await client.zrem(keyspace.hot_accounts(site), account)))


# --- places --------------------------------------------------------------------------------


async def handles(client: redis.Redis, site: str, visitors: Iterable[str]) -> list[str]:
    """The visitors' handles, made with the handles' key (made now if none was yet)."""
    secret = await ensure_secret(client)
    return [handle_of(secret, site, visitor) for visitor in sorted(visitors)]


async def _remove_members(client: redis.Redis, site: str, visitors: set[str]) -> int:
    removed = 0
    async for key in client.scan_iter(
        match=keyspace.account_recent_pattern(site), count=_SCAN_COUNT
    ):
        removed += int(await client.zrem(key, *visitors))
    return removed


async def _revenue_members(
    client: redis.Redis, site: str, visitors: set[str]
) -> dict[str, list[tuple[str, float]]]:
    """Per ``revenue_totals`` set, the members of ``visitors`` with their scores."""
    found: dict[str, list[tuple[str, float]]] = {}
    async for key in client.scan_iter(
        match=keyspace.revenue_totals_pattern(site), count=_SCAN_COUNT
    ):
        for visitor in visitors:
            match = glob_literal(visitor) + keyspace.RECORD_SEPARATOR + "*"
            async for member, score in client.zscan_iter(key, match=match, count=_SCAN_COUNT):
                found.setdefault(text(key), []).append((text(member), float(score)))
    return found


async def _heat_keys(client: redis.Redis, site: str, visitor: str) -> list[str]:
    """The visitor's daily heat keys, one per account and day."""
    pattern = keyspace.account_heat_spent(site, "*", glob_literal(visitor), "*")
    return [text(key) async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT)]


def _handles_in(values: Iterable[str], handles: set[str]) -> bool:
    return any(not handles.isdisjoint(HANDLE_PATTERN.findall(value)) for value in values)


async def _automation_records(
    client: redis.Redis, site: str, handles: set[str]
) -> list[tuple[str, dict[str, str]]]:
    """The automation log's records (action id, fields) that hold one of ``handles``: in its
    action (subject, facts, links) or in what a receiver answered."""
    prefix = keyspace.automation_action(site, "")
    found = []
    async for key in client.scan_iter(
        match=keyspace.automation_action(site, "*"), count=_SCAN_COUNT
    ):
        record = strings(await client.hgetall(key))
        if _handles_in(record.values(), handles):
            found.append((text(key).removeprefix(prefix), record))
    return found


async def _cooldown_keys(client: redis.Redis, site: str, handles: set[str]) -> list[str]:
    """Automations' cooldown keys whose subject is one of ``handles``."""
    return [
        text(key)
        async for key in client.scan_iter(
            match=keyspace.automation_fired(site, "*", "*"), count=_SCAN_COUNT
        )
        if not handles.isdisjoint(text(key).split(":"))
    ]


async def _leads(
    client: redis.Redis, site: str, handles: set[str]
) -> list[tuple[str, dict[str, str]]]:
    """Routed leads (id, fields) that hold one of ``handles``: a visitor's own lead, or an
    account's that names the visitor who brought it."""
    found = []
    async for key in client.scan_iter(match=keyspace.lead(site, "*"), count=_SCAN_COUNT):
        stored = strings(await client.hgetall(key))
        if stored.get("id") and _handles_in(stored.values(), handles):
            found.append((stored["id"], stored))
    return found


async def _erase_automation_records(
    client: redis.Redis, site: str, handles: set[str], receipt: Receipt
) -> None:
    """Delete what automations recorded about the visitors (their actions, cooldowns and
    leads); take them out of what they recorded about an account."""
    removed, scrubbed = await _erase_actions(client, site, handles)
    receipt.add(site, "automation_actions", removed)
    receipt.add(site, "automation_actions_scrubbed", scrubbed)
    cooldowns = await _cooldown_keys(client, site, handles)
    deleted = int(await client.delete(*cooldowns)) if cooldowns else 0
    receipt.add(site, "automation_cooldowns", deleted)
    removed, scrubbed = await _erase_leads(client, site, handles)
    receipt.add(site, "leads", removed)
    receipt.add(site, "leads_scrubbed", scrubbed)


async def _erase_actions(client: redis.Redis, site: str, handles: set[str]) -> tuple[int, int]:
    """Actions about the visitors removed, and actions about an account rewritten without
    them: how many of each."""
    removed = scrubbed = 0
    for action_id, record in await _automation_records(client, site, handles):
        action: Action = json.loads(record[action_log.ACTION])
        key = keyspace.automation_action(site, action_id)
        if action["subject"]["kind"] != "visitor":
            action["facts"] = _without_visitor(action["facts"], handles)
            rewritten = json.dumps(action, separators=(",", ":"))
            # a receiver's answer echoing the visitor cannot be told apart: the record goes
            if not _handles_in({**record, action_log.ACTION: rewritten}.values(), handles):
                await client.hset(key, action_log.ACTION, rewritten)
                scrubbed += 1
                continue
        lists = (keyspace.automation_actions(site), keyspace.automation_dead(site))
        await _delete_listed(client, key, action_id, lists)
        removed += 1
    return removed, scrubbed


async def _erase_leads(client: redis.Redis, site: str, handles: set[str]) -> tuple[int, int]:
    """The visitors' own leads removed, and accounts' leads that name them rewritten without
    their handle: how many of each."""
    removed = scrubbed = 0
    for lead_id, stored in await _leads(client, site, handles):
        key = keyspace.lead(site, lead_id)
        if lead_json(stored)["subject"]["kind"] != "visitor":
            naming = [name for name, value in stored.items() if _handles_in([value], handles)]
            await client.hdel(key, *naming)
            scrubbed += 1
            continue
        lists = (keyspace.leads(site), keyspace.leads_waiting(site))
        await _delete_listed(client, key, lead_id, lists)
        removed += 1
    return removed, scrubbed


async def _delete_listed(
    client: redis.Redis, key: str, member: str, lists: tuple[str, ...]
) -> None:
    """A record deleted with its entries in the sorted sets that list it, at once."""
    async with client.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        for listed in lists:
            pipe.zrem(listed, member)
        await pipe.execute()


def _without_visitor(facts: Facts, handles: set[str]) -> Facts:
    """An account's action as if the visitor had never been seen: without their handle and
    e-mail domain, their pages, the link to them, and their intent when it is not the
    account's (an action with no account fact showed the visitor's). The event that fired it
    stays: it is what the account did."""
    kept = facts.copy()
    kept.pop("visitor", None)
    kept.pop("pages", None)
    if "account" not in kept:
        kept.pop("intent", None)
        kept.pop("band", None)
        kept.pop("reasons", None)
    if "links" in kept:
        kept["links"] = {
            label: url for label, url in kept["links"].items() if not _handles_in([url], handles)
        }
    return kept


StreamHit = tuple[str, str, dict[str, Any]]  # stream key, entry id, the event (or what it was)


async def _stream_entries(
    client: redis.Redis, site: str, visitors: set[str]
) -> tuple[list[StreamHit], list[StreamHit]]:
    """The visitors' entries in the site's event streams (consumed or not) and dead letters."""
    entries: list[StreamHit] = []
    async for key in client.scan_iter(match=keyspace.stream_pattern(site), count=_SCAN_COUNT):
        async for entry_id, fields in _xrange(client, text(key)):
            raw = fields.get(EVENT_FIELD, b"")
            event = _unpacked(raw)
            if _names(event, raw, visitors):
                entries.append((text(key), entry_id, _shown(event, raw)))
    dead: list[StreamHit] = []
    key = keyspace.dead_letters(site)
    async for entry_id, fields in _xrange(client, key):
        raw = fields.get(b"data", b"")
        event = _unpacked(raw)
        if _names(event, raw, visitors):
            reason = text(fields.get(b"reason", b""))
            dead.append((key, entry_id, {"reason": reason, "event": _shown(event, raw)}))
    return entries, dead


async def _stream_visitors(
    client: redis.Redis, site: str, test: Callable[[dict[str, Any]], bool]
) -> set[str]:
    found: set[str] = set()
    async for key in client.scan_iter(match=keyspace.stream_pattern(site), count=_SCAN_COUNT):
        async for _, fields in _xrange(client, text(key)):
            event = _unpacked(fields.get(EVENT_FIELD))
            if isinstance(event, dict) and test(event):
                found.add(str(event.get("visitor", "")))
    return found


async def _xrange(client: redis.Redis, key: str) -> Any:
    """A stream's entries in pages, oldest first: (id, fields)."""
    start = "-"
    while True:
        page: Any = await client.xrange(key, min=start, count=_XRANGE_COUNT)
        for entry_id, fields in page:
            yield text(entry_id), fields
        if len(page) < _XRANGE_COUNT:
            return
        start = "(" + text(page[-1][0])


def _names(event: object, raw: bytes, visitors: set[str]) -> bool:
    """Whether an entry is one of ``visitors``'s: its event's visitor, or (an entry that does
    not decode, in the dead letters) the id among its bytes."""
    if isinstance(event, dict):
        return event.get("visitor") in visitors
    return any(visitor.encode() in raw for visitor in visitors)


async def _sweep(client: redis.Redis, site: str, visitors: set[str]) -> int:
    """Delete any other key of the site whose name holds one of the ids (a per-visitor key
    this module does not know yet): the places above are the rule, this is the safety net."""
    removed = 0
    for visitor in visitors:
        pattern = keyspace.site_pattern(site).removesuffix("*") + "*" + glob_literal(visitor) + "*"
        async for key in client.scan_iter(match=pattern, count=_SCAN_COUNT):
            if visitor in text(key).split(":"):
                removed += int(await client.delete(key))
    return removed


def _unpacked(raw: bytes | None) -> Any:
    """A msgpack value, or None for none or bytes that are not one."""
    if raw is None:
        return None
    try:
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return None


def _shown(event: Any, raw: bytes) -> Any:
    """An entry's event for an export: as decoded, or its bytes in hex when it does not."""
    return _jsonable(event) if event is not None else {"undecodable": raw.hex()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(name): _jsonable(item) for name, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value


# --- one request, over the sites it concerns -----------------------------------------------


async def erase(
    client: redis.Redis, archive: Archive, sites: Iterable[str], kind: SubjectKind, value: str
) -> Receipt:
    """Erase a subject on ``sites``: what the CLI and the API run. A handle names a visitor of
    one site only, so it is erased where it resolves (UnknownHandle when nothing is kept of
    its visitor anywhere)."""
    named = await _subjects(client, archive, sites, kind, value)
    receipt = Receipt(kind, subject_of(kind, value))
    for site, visitors in named.items():
        if kind == "account":
            await erase_account(client, archive, site, domain(value), receipt)
        else:
            await erase_visitors(client, archive, site, visitors, receipt)
        receipt.removed.setdefault(site, {})
    if kind == "visitor":
        receipt.subject = receipt.visitors[0] if receipt.visitors else ""
    return receipt


async def export(
    client: redis.Redis, archive: Archive, sites: Iterable[str], kind: SubjectKind, value: str
) -> dict[str, Any]:
    """Export a subject from ``sites``: ``{"kind", "sites": [one export per site]}``."""
    named = await _subjects(client, archive, sites, kind, value)
    exports: list[dict[str, Any]] = []
    for site, visitors in named.items():
        if kind == "account":
            exports.append(await export_account(client, archive, site, domain(value)))
        else:
            found = [await export_visitor(client, archive, site, one) for one in sorted(visitors)]
            exports.append({"site": site, "visitors": found})
    return {"kind": kind, "sites": exports}


async def _subjects(
    client: redis.Redis, archive: Archive, sites: Iterable[str], kind: SubjectKind, value: str
) -> dict[str, set[str]]:
    """The visitors a subject names, per site."""
    listed = list(sites)
    named: dict[str, set[str]] = {}
    for site in listed:
        if kind == "visitor":
            try:
                named[site] = {await find_visitor(client, archive, site, value)}
            except UnknownHandle:
                continue  # a handle is one site's: the others keep nothing of its visitor
        elif kind == "account":
            named[site] = await account_visitors(client, archive, site, domain(value))
        else:
            named[site] = await email_domain_visitors(client, archive, site, domain(value))
    if not named:
        raise nothing_kept(listed) if kind == "visitor" else SubjectError("no site to look in")
    return named
