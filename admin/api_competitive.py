"""Competitive intelligence: accounts researching competitors, battlecards and the
counter-personalization that answers them, and its page.

* ``GET /api/competitive/activity``: per account, the competitors its visitors researched in
  the last ``days`` (pages, visits, visitors, when last), with its intent and owner, and
  totals per competitor; read from the event archive (analytics/competitive.py). A sales rep
  sees their own accounts only, and totals over those.
* ``GET /api/competitive/battlecards``: the cards of the rules' ``battlecards/*.toml``
  (rules/battlecards.py).
* ``POST /api/competitive/defense``: a defense, written as one rule file
  (``defense-<competitor>.toml``): an audience of visitors who researched the competitor
  (``visitor.competitors``), a page tag for the paths asked for, and a running
  personalization with the changes, holding out the visitors beyond ``traffic``; validated,
  saved and published like every rule edit, and recorded in the audit log.

docs/competitive.md has the shapes and the reasons.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from refract.admin import sales
from refract.admin.api import Api, Refused, invalid_query, known_site
from refract.admin.api_reads import READERS_OF_ACCOUNTS, SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.dashboard import page, page_site, render
from refract.admin.dashboard_views import chart_text
from refract.admin.rule_edits import BODY, invalid, invalid_rule, loaded, save, store_of
from refract.admin.state import config_of, identity_of, industry_of, redis_of
from refract.analytics import competitive
from refract.analytics.archive import archive_root
from refract.analytics.intel.scores import band
from refract.analytics.revenue.subjects import Rollup, accounts_of, subject_from
from refract.rules.accounts import Account
from refract.rules.editing import RuleFiles
from refract.rules.industry import IndustryModel
from refract.rules.problems import Problem
from refract.rules.ruleset import RuleSet
from refract.rules.schema import (
    KEY_PATTERN,
    Audience,
    Change,
    Condition,
    Experiment,
    PageRule,
    Personalization,
)
from refract.rules.toml_edit import entry_text

api = Api("Refract admin", "1")
READERS = READERS_OF_ACCOUNTS
DEFENDERS = ["marketing", "admin"]
DAY_S = 86400
RESEARCH_FIELD = "visitor.competitors"  # rules/fields.py: what a defense's audience tests
ACCOUNT_COLUMNS = ("domain", "name", "target", "owner", "intent", "intent_band")
RESEARCH_COLUMNS = ("competitor", "pages", "visits", "visitors", "last_seen")
ACTIVITY_COLUMNS = ACCOUNT_COLUMNS + RESEARCH_COLUMNS  # the CSV: an account and a competitor


def _known_competitors(rules: RuleSet) -> list[str]:
    return [name for name in rules.settings.competitors if name.strip()]


def _as_settings_spell(known: list[str], wanted: str) -> list[str]:
    """The competitor ``wanted`` names in any case, as ``[settings] competitors`` spells it."""
    return [name for name in known if name.casefold() == wanted.casefold()]


def _spelled(rules: RuleSet, wanted: str | None) -> list[str]:
    """The competitors asked about, as ``[settings] competitors`` spells them: all of them, or
    the one ``wanted`` names (any case); 422 naming ``competitor`` for any other."""
    known = _known_competitors(rules)
    if wanted is None:
        return known
    found = _as_settings_spell(known, wanted.strip())
    if not found:
        listed = ", ".join(known) or "none: name them in [settings] competitors"
        raise invalid_query("competitor", f"{wanted!r} is not a competitor (known: {listed})")
    return found


async def _rules(request: web.Request) -> RuleSet:
    return loaded(await store_of(request).current())


# --- activity ------------------------------------------------------------------------------


CompetitorName = Annotated[
    str | None,
    Field(max_length=100, description="one of [settings] competitors; none: all"),
]


class PageQuery(SiteQuery):
    days: int = Field(default=30, ge=1, le=365, description="the period: the last so many days")


class ActivityQuery(PageQuery):
    competitor: CompetitorName = None
    limit: int = Field(default=200, ge=1, le=1000, description="accounts at most, latest first")
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


def _research_json(one: competitive.Research) -> dict[str, Any]:
    return {
        "competitor": one.competitor,
        "pages": one.pages,
        "visits": one.visits,
        "visitors": len(one.visitors),
        "last_seen": one.last_seen,
    }


def _account_row(
    domain: str, account: Account | None, rollup: Rollup, industry: IndustryModel | None
) -> dict[str, Any]:
    """An account as the activity lists it: its CRM fields, and its intent as the hot list
    scores it (the roll-up of all its visitors)."""
    intent = subject_from({}, (), account, rollup, industry).intent
    return {
        "domain": domain,
        "name": account.name if account is not None else None,
        "target": account.target if account is not None else False,
        "owner": (account.owner or None) if account is not None else None,
        "intent": intent,
        "intent_band": band(intent, industry),
        "competitors": [],
    }


async def _account_rows(
    request: web.Request,
    site: str,
    found: list[competitive.Research],
    industry: IndustryModel | None,
) -> list[dict[str, Any]]:
    """Each researching account the caller may see, latest research first, with the
    competitors it researched and its totals."""
    records = await accounts_of(redis_of(request), site, {one.account for one in found})
    who = identity_of(request)
    rows: dict[str, dict[str, Any]] = {}
    for one in found:  # latest first
        if not one.account:
            continue
        account, rollup = records[one.account]
        if not sales.owns(who, account.owner if account is not None else ""):
            continue
        if one.account not in rows:
            rows[one.account] = _account_row(one.account, account, rollup, industry)
            rows[one.account]["last_seen"] = one.last_seen
        rows[one.account]["competitors"].append(_research_json(one))
    for row in rows.values():
        row["pages"] = sum(item["pages"] for item in row["competitors"])
        row["visits"] = sum(item["visits"] for item in row["competitors"])
    return list(rows.values())


@dataclass
class Total:
    """One competitor's research over the accounts the caller may see."""

    competitor: str
    accounts: int = 0
    pages: int = 0
    visits: int = 0
    visitors: int = 0
    last_seen: float | None = None

    def add(self, one: competitive.Research) -> None:
        self.accounts += bool(one.account)
        self.pages += one.pages
        self.visits += one.visits  # a visitor (and their sessions) is of one account
        self.visitors += len(one.visitors)
        self.last_seen = max(self.last_seen or 0.0, one.last_seen)


def _totals(
    competitors: list[str], found: Iterable[competitive.Research], accounts: set[str]
) -> list[dict[str, Any]]:
    """Per competitor: accounts, pages, visits, visitors and when last, over the research the
    caller may see (``accounts``, and visitors of no account for the roles that see all)."""
    totals = {name: Total(name) for name in competitors}
    for one in found:
        if one.account in accounts:
            totals[one.competitor].add(one)
    return [asdict(total) for total in totals.values()]


async def activity_of(request: web.Request, query: ActivityQuery) -> dict[str, Any]:
    """What ``GET /api/competitive/activity`` answers (the page shows the same)."""
    site = known_site(request, query.site)
    competitors = _spelled(await _rules(request), query.competitor)
    until = time.time()
    since = until - query.days * DAY_S
    root = archive_root(config_of(request))
    found = await asyncio.to_thread(competitive.research, root, site.key, competitors, since, until)
    accounts = await _account_rows(request, site.key, found, industry_of(request, site.key))
    visible = {row["domain"] for row in accounts}
    if sales.sees_every_account(identity_of(request)):
        visible.add("")
    return {
        "site": site.key,
        "days": query.days,
        "since": since,
        "until": until,
        "competitors": _totals(competitors, found, visible),
        "accounts": accounts[: query.limit],
        "more": len(accounts) > query.limit,
    }


def activity_rows(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per account and competitor (the CSV)."""
    return [
        {
            **{name: row[name] for name in ACCOUNT_COLUMNS},
            **{name: item[name] for name in RESEARCH_COLUMNS},
        }
        for row in accounts
        for item in row["competitors"]
    ]


@api.get(
    "/api/competitive/activity",
    roles=READERS,
    summary="accounts researching competitors in the last days: per account the competitors, "
    "pages, visits, last time, intent and owner; totals per competitor; a sales rep's own "
    "accounts only (JSON or CSV)",
    tag="competitive",
    query=ActivityQuery,
    responses={404: "no such site", 409: "the rules in force do not load"},
    content_types=("application/json", "text/csv"),
)
async def competitive_activity(request: web.Request, query: ActivityQuery) -> web.StreamResponse:
    answer = await activity_of(request, query)
    if query.format == "csv":
        rows = activity_rows(answer["accounts"])
        return csv_response(ACTIVITY_COLUMNS, rows, f"competitive-activity-{answer['site']}.csv")
    return web.json_response(answer)


# --- battlecards ---------------------------------------------------------------------------


class BattlecardQuery(SiteQuery):
    competitor: CompetitorName = None


def battlecards_of(rules: RuleSet, competitors: list[str]) -> list[dict[str, Any]]:
    wanted = {name.casefold() for name in competitors}
    return [
        card.model_dump(mode="json")
        for card in rules.battlecards
        if card.competitor.casefold() in wanted
    ]


@api.get(
    "/api/competitive/battlecards",
    roles=READERS,
    summary="the battlecards of the rules' battlecards/*.toml: strengths, weaknesses, our "
    "differentiators, objections and answers, proof points",
    tag="competitive",
    query=BattlecardQuery,
    responses={404: "no such site", 409: "the rules in force do not load"},
)
async def competitive_battlecards(
    request: web.Request, query: BattlecardQuery
) -> web.StreamResponse:
    site = known_site(request, query.site)
    rules = await _rules(request)
    competitors = _spelled(rules, query.competitor)
    cards = battlecards_of(rules, competitors)
    return web.json_response({"site": site.key, "competitors": competitors, "battlecards": cards})


# --- defense -------------------------------------------------------------------------------

PageName = Annotated[
    str,
    Field(
        # a path: printable, no spaces (nor the control characters \S lets through)
        pattern=KEY_PATTERN + r"|^/[^\s\x00-\x1f\x7f]{0,199}$",
        description='a page tag of the rules ("pricing"), or a path ("/compare/*")',
    ),
]


class Defense(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str | None = Field(default=None, description="the site's key (default: the first)")
    competitor: str = Field(
        min_length=1, max_length=100, description="one of [settings] competitors"
    )
    pages: list[PageName] = Field(
        min_length=1,
        max_length=20,
        description='where the changes apply: page tags ("pricing") or paths ("/compare/*")',
    )
    changes: list[Change] = Field(
        min_length=1,
        max_length=20,
        description="what visitors researching the competitor see instead, as a rule file's "
        'changes: [{"action": "set_text", "selector": "h1", "value": "..."}]',
    )
    traffic: float = Field(
        default=100,
        gt=0,
        le=100,
        description="percent of those visitors who get the changes; the others are held out, "
        "so that the defense can be measured",
    )


def slug(competitor: str) -> str:
    """A competitor's name as part of a rule key: lowercase letters, digits and -.

    A name with letters or digits outside ASCII (Яндекс, 华为) would lose them, and with them
    what tells it from another such name: it carries a digest of the whole name as well."""
    name = competitor.casefold()
    ascii_part = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:40] or "competitor"
    if all(character.isascii() for character in name if character.isalnum()):
        return ascii_part
    return f"{ascii_part}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def defense_keys(competitor: str) -> dict[str, str]:
    """The file and keys a defense against ``competitor`` is written under."""
    name = slug(competitor)
    return {
        "file": f"defense-{name}.toml",
        "audience": f"researching-{name}",
        "personalization": f"defense-{name}",
        "pages": f"defense-{name}",
    }


def _aims_at(audience: Audience, competitor: str) -> bool:
    """Whether the audience requires research of ``competitor`` (its ``all``)."""
    return any(
        condition.field == RESEARCH_FIELD
        and condition.op == "contains"
        and str(condition.value).casefold() == competitor.casefold()
        for condition in audience.all
    )


def running_defense(rules: RuleSet, competitor: str) -> str | None:
    """The running personalization or experiment aimed at visitors researching
    ``competitor``, if one is."""
    aimed = {key for key, audience in rules.audiences.items() if _aims_at(audience, competitor)}
    running: list[Personalization | Experiment] = [
        *(p for p in rules.personalizations.values() if p.status == "running"),
        *(e for e in rules.experiments.values() if e.status == "running"),
    ]
    return next((rule.key for rule in running if rule.audience in aimed), None)


def _refused_body(field: str, message: str, hint: str = "") -> Refused:
    return invalid("not a valid defense", [Problem(BODY, None, field, message, hint)])


def _checked(base: RuleFiles, body: Defense) -> str:
    """The competitor as settings spell it, once the body fits the rules: 422 naming the
    field otherwise, 409 when a defense runs already or its file or keys are taken."""
    rules = loaded(base)
    known = _known_competitors(rules)
    competitor = next(iter(_as_settings_spell(known, body.competitor)), None)
    if competitor is None:
        raise _refused_body(
            "competitor",
            f"{body.competitor!r} is not one of [settings] competitors",
            f"known: {', '.join(known) or 'none yet'}",
        )
    tags = {page.tag for page in rules.pages}
    for index, name in enumerate(body.pages):
        if not name.startswith("/") and name not in tags:
            raise _refused_body(
                f"pages[{index}]", f'unknown page tag "{name}"', "a tag of [[pages]], or a path"
            )
    if (running := running_defense(rules, competitor)) is not None:
        raise Refused(409, f'"{running}" already runs for visitors researching {competitor}')
    keys = defense_keys(competitor)
    taken = [
        name
        for name, defined in (
            (keys["file"], base.files),
            (keys["audience"], rules.audiences),
            (keys["personalization"], rules.personalizations),
            (keys["pages"], tags),
        )
        if name in defined
    ]
    if taken:
        raise Refused(
            409,
            f"{', '.join(taken)} exists already (an earlier defense?): start, change or remove "
            "it in the rule files",
        )
    return competitor


def defense_file(competitor: str, body: Defense) -> str:
    """The rule file of a defense: its page tag (for paths), audience and personalization."""
    keys = defense_keys(competitor)
    paths = [name for name in body.pages if name.startswith("/")]
    tags = [name for name in body.pages if not name.startswith("/")]
    tables = []
    if paths:
        tables.append(entry_text("pages", PageRule(tag=keys["pages"], paths=paths)))
        tags.append(keys["pages"])
    audience = Audience(
        key=keys["audience"],
        description=f"visitors whose pages, referrers or search terms named {competitor}",
        all=[Condition(field=RESEARCH_FIELD, op="contains", value=competitor.casefold())],
    )
    personalization = Personalization(
        key=keys["personalization"],
        status="running",
        pages=tags,
        audience=audience.key,
        changes=body.changes,
        holdout=100 - body.traffic,
    )
    tables += [entry_text("audiences", audience), entry_text("personalizations", personalization)]
    header = (
        "# A defense against a competitor, started in the admin API (who: its audit log;\n"
        "# POST /api/competitive/defense, docs/competitive.md).\n\n"
    )
    return header + "\n".join(tables)


def _audited(keys: dict[str, str]) -> Callable[[RuleFiles], Any]:
    """What the audit log keeps of a set for a defense: its audience and personalization."""

    def state(files: RuleFiles) -> Any:
        rules = files.rules
        found = rules.personalizations.get(keys["personalization"])
        audience = rules.audiences.get(keys["audience"])
        if found is None or audience is None:
            return None
        return {
            "audience": audience.model_dump(mode="json"),
            "personalization": found.model_dump(mode="json"),
        }

    return state


@api.post(
    "/api/competitive/defense",
    roles=DEFENDERS,
    summary="start a counter-personalization for visitors researching a competitor: an "
    "audience on their research and a running personalization with the changes, written to "
    "the rule files (defense-<competitor>.toml), published and audited",
    tag="competitive",
    body=Defense,
    body_errors=invalid_rule,
    responses={
        201: "started",
        404: "no such site",
        409: "a defense runs already, or the rules in force do not load",
        503: "busy or Redis unreachable",
    },
)
async def start_defense(request: web.Request, body: Defense) -> web.StreamResponse:
    site = known_site(request, body.site)
    keys = defense_keys(body.competitor)  # the same whatever the case the body spells it in
    spelled: list[str] = []

    def change(base: RuleFiles) -> RuleFiles:
        competitor = _checked(base, body)
        spelled.append(competitor)
        text = defense_file(competitor, body)
        return base.with_files({**base.files, keys["file"]: text.encode()})

    audited = _audited(keys)
    _, after = await save(request, "competitive.defense", keys["personalization"], change, audited)
    answer = {
        "site": site.key,
        "competitor": spelled[-1],
        "file": keys["file"],
        "version": after.version,
        **audited(after),
    }
    response = web.json_response(answer, status=201)
    response.headers["Location"] = f"/api/personalizations/{keys['personalization']}"
    return response


# --- the page ------------------------------------------------------------------------------


ACCOUNTS_SHOWN = 100  # rows of the page's accounts table (the CSV has them all)
DEFENSE_ACTIONS = ("set_text", "set_html", "replace", "append", "prepend")  # the form offers


def totals_figure(totals: list[dict[str, Any]]) -> dict[str, Any]:
    """Accounts and visits per competitor, as grouped bars."""
    names = [chart_text(total["competitor"]) for total in totals]
    traces = [
        {
            "type": "bar",
            "name": label,
            "x": names,
            "y": [total[measure] for total in totals],
            "hovertemplate": f"%{{x}}: %{{y}} {label}<extra></extra>",
        }
        for measure, label in (("accounts", "accounts"), ("visits", "visits"))
    ]
    if not any(total["pages"] for total in totals):
        traces = []  # nothing researched: the caption says so
    layout = {"barmode": "group", "yaxis": {"title": {"text": "count"}, "gridcolor": "#e3e3e3"}}
    return {"traces": traces, "layout": layout}


def totals_summary(totals: list[dict[str, Any]], days: int) -> str:
    if not any(total["pages"] for total in totals):
        return f"No page view named a competitor in the last {days} days."
    parts = [
        f"{t['competitor']}: {t['accounts']} accounts, {t['visits']} visits, {t['pages']} pages"
        for t in totals
    ]
    return f"Research in the last {days} days. " + "; ".join(parts) + "."


@page(
    "/competitive",
    READERS,
    "competitive intelligence: accounts researching competitors, battlecards, and a defense",
    query=PageQuery,
    on=api,
)
async def competitive_page(request: web.Request, query: PageQuery) -> web.StreamResponse:
    site = page_site(request)
    shown = ActivityQuery(site=site.key, days=query.days, limit=ACCOUNTS_SHOWN)
    activity = await activity_of(request, shown)
    rules = await _rules(request)
    names = [total["competitor"] for total in activity["competitors"]]
    return render(
        request,
        "competitive.html",
        title="Competitive",
        charts=True,
        days=query.days,
        site_key=site.key,
        site_param=request.query.get("site", ""),
        totals=activity["competitors"],
        accounts=activity["accounts"],
        more=activity["more"],
        battlecards=battlecards_of(rules, names),
        may_defend=identity_of(request).role in DEFENDERS,
        running={name: running_defense(rules, name) for name in names},
        tags=sorted(page.tag for page in rules.pages),
        actions=DEFENSE_ACTIONS,
        data={"figures": {"competitors": totals_figure(activity["competitors"])}},
        alt={"competitors": totals_summary(activity["competitors"], query.days)},
    )
