"""What a visitor's profile says, as numbers: counts, rates and flags the models read.

``features_of`` turns the worker's profile hash (``rf:{site}:p:{visitor}``, every value a
string) and the visitor's recent pages (``rf:{site}:pages:{visitor}``, newest first, at most
50) into a ``Features``. It never raises: a missing, negative, non-numeric or non-finite field
counts as 0 (or "unknown"), so a profile written by an older worker, or tampered with, still
classifies. It is pure: the reference time is ``now`` when given, else the visitor's last
event ("as of their last visit").

Which pages are pricing, case studies, API docs and so on is the site's to say: ``PageKinds``
maps each kind the classifier knows to page tags (counted over the whole profile) and path
keywords (counted among the recent pages); a kind's views are whichever of the two counts
more. The defaults (``DEFAULT_KINDS``) are the demo site's tags
(examples/demo-rules/pages.toml) and common path keywords; an industry model's
``[page_kinds]`` (rules/industry.py) overrides them kind by kind.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DAY_S = 86400.0
DEEP_SCROLL = 75  # percent: a visitor who reached this far on some page read, not skimmed
TECHNICAL_KINDS = ("api_docs", "security", "integrations")
QUICK_PATH_PAGES = 3  # an action page at most this many page views from a start is quick
# A page of a visitor ready to act, by a whole path segment (``/pricing``, ``/en/demo/``; not
# ``/blog/democratizing-data`` nor ``/pricing-strategy-guide``), and a home page (the site's
# root or a language's: ``/``, ``/de/``, ``/en-gb``, ``/index.html``).
_ACTION_PAGE = re.compile(
    r"/(?:pricing|plans|demo|book-a-demo|request-a-demo|contact-sales|trial|free-trial"
    r"|start-trial|signup|sign-up|get-started)/?$"
)
_HOME_PAGE = re.compile(r"^(?:/[a-z]{2}(?:-[a-z]{2})?)?/?(?:index\.(?:html?|php)|home)?$")


@dataclass(frozen=True, slots=True)
class KindMatch:
    tags: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()  # lower-case keywords, any of which in a path makes the kind


# kind -> how the demo site (and most sites) show it
DEFAULT_KINDS: dict[str, KindMatch] = {
    "home": KindMatch(tags=("home",)),
    "pricing": KindMatch(tags=("pricing",)),
    "case_study": KindMatch(tags=("case_study",)),
    "security": KindMatch(tags=("security",)),
    "api_docs": KindMatch(tags=("api_docs",)),
    "integrations": KindMatch(tags=("integrations",)),
    "demo_request": KindMatch(tags=("demo_request",)),
    "blog": KindMatch(tags=("blog",)),
    "comparison": KindMatch(paths=("compare", "comparison", "-vs-", "/vs/", "alternative")),
    "enterprise": KindMatch(paths=("enterprise",)),
    "about": KindMatch(paths=("/about", "/team", "/leadership", "/company")),
    "roi": KindMatch(paths=("roi", "calculator")),
    "trial": KindMatch(paths=("trial", "signup", "sign-up", "get-started")),
}


class KeywordMatcher:
    """Which names' keywords occur in a page path (lower-cased). Answers are remembered per
    path, as a site's visitors share its paths: a visitor's 50 recent pages cost 50 lookups."""

    MAX_PATHS = 16384

    def __init__(self, keywords: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        self._keywords = tuple((name, words) for name, words in keywords if words)
        self._seen: dict[str, tuple[str, ...]] = {}

    def matches(self, path: str) -> tuple[str, ...]:
        found = self._seen.get(path)
        if found is None:
            lowered = path.lower()
            found = tuple(
                name for name, words in self._keywords if any(word in lowered for word in words)
            )
            if len(self._seen) >= self.MAX_PATHS:
                self._seen.clear()
            self._seen[path] = found
        return found

    def counts(self, names: Iterable[str], paths: Iterable[str]) -> dict[str, int]:
        """How many of ``paths`` match each name (0 for names without keywords)."""
        counted = dict.fromkeys(names, 0)
        if self._keywords:
            for path in paths:
                for name in self.matches(path):
                    counted[name] += 1
        return counted


class PageKinds:
    """Every kind's tags and path keywords; build once per model, reuse per visitor."""

    def __init__(self, kinds: Mapping[str, KindMatch]) -> None:
        self.kinds = kinds
        self._matcher = KeywordMatcher((kind, match.paths) for kind, match in kinds.items())

    def path_kinds(self, path: str) -> tuple[str, ...]:
        """The kinds a path is of, by keyword (a path can be of several)."""
        return self._matcher.matches(path)

    def views(self, tags: Mapping[str, int], paths: Sequence[str]) -> dict[str, int]:
        """Page views per kind: by tag over the profile or by keyword among ``paths``."""
        by_path = self._matcher.counts(self.kinds, paths)
        return {
            kind: max(sum(tags.get(tag, 0) for tag in match.tags), by_path[kind])
            for kind, match in self.kinds.items()
        }


def page_kinds(overrides: Mapping[str, KindMatch] | None = None) -> PageKinds:
    """The default kinds with some replaced (an industry model's ``[page_kinds]``)."""
    return PageKinds({**DEFAULT_KINDS, **(overrides or {})})


DEFAULT_PAGE_KINDS = page_kinds()


# Where the first visit came from, by the first UTM source or else the referrer's host.
SOURCES: dict[str, frozenset[str]] = {
    "search": frozenset({"google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia"}),
    "social": frozenset({"linkedin", "lnkd", "twitter", "x", "t", "facebook", "reddit"}),
    "review": frozenset(
        {"g2", "capterra", "trustradius", "gartner", "getapp", "softwareadvice", "peerspot"}
    ),
    "community": frozenset(
        {"ycombinator", "hackernews", "hn", "github", "producthunt", "stackoverflow", "dev"}
    ),
}
_SOURCE_OF = {name: kind for kind, names in SOURCES.items() for name in names}
SOURCE_KINDS = ("direct", *SOURCES, "campaign", "referral")


@dataclass(frozen=True, slots=True)
class Features:
    """A visitor's behaviour in numbers; every field defaults to "nothing seen"."""

    pageviews: int = 0
    sessions: int = 0  # at least 1 once the visitor viewed a page
    return_visits: int = 0  # sessions after the first
    distinct_pages: int = 0  # among the recent pages
    pages_per_session: float = 0.0
    # page views from the latest visit's entry, or from a home page in it, to an action page
    # after that start (pricing, a demo or a trial, by path segment); 0 when it reached none
    quick_path_pages: int = 0
    engaged_s: float = 0.0  # visible, engaged seconds over all pages
    engaged_minutes: float = 0.0
    engaged_s_per_page: float = 0.0
    technical_dwell_s: float = 0.0  # engaged seconds on pages tagged as a technical kind
    scroll_max: int = 0  # percent, deepest on any page
    deep_scroll: bool = False  # scroll_max >= DEEP_SCROLL
    clicks: int = 0
    downloads: int = 0
    forms: int = 0
    outbounds: int = 0
    competitor_research: int = 0  # pages, referrers or search terms naming a competitor
    colleagues: int = 0  # other visitors from the visitor's account (set by the caller)
    # page views per kind (PageKinds)
    home_views: int = 0
    pricing_views: int = 0
    case_study_views: int = 0
    security_views: int = 0
    api_docs_views: int = 0
    integrations_views: int = 0
    demo_views: int = 0
    blog_views: int = 0
    comparison_views: int = 0
    enterprise_views: int = 0
    about_views: int = 0
    roi_views: int = 0
    trial_views: int = 0
    technical_views: int = 0  # api_docs + security + integrations
    technical_share: float = 0.0  # of page views, 0-1
    proof_share: float = 0.0  # case studies, of page views, 0-1
    blog_share: float = 0.0
    blog_only: bool = False  # read the blog, but no pricing, demo, technical or proof page
    # time
    returning: bool = False  # more than one session
    span_days: float = 0.0  # first seen to last seen
    days_since_first_seen: float = 0.0
    days_since_last_seen: float = 0.0  # 0 without ``now``
    # context
    device: str = "unknown"
    runs_js: bool = False  # the browser ran the beacon (engagement data exists)
    source: str = "direct"  # one of SOURCE_KINDS
    # raw counts the industry models read (rules/industry.py)
    tags: Mapping[str, int] = field(default_factory=dict)  # page views per page tag
    events: Mapping[str, int] = field(default_factory=dict)  # custom events counted by name
    recent_paths: tuple[str, ...] = ()  # newest first


def features_of(
    profile: Mapping[str, str],
    pages: Sequence[str] = (),
    now: float | None = None,
    kinds: PageKinds = DEFAULT_PAGE_KINDS,
) -> Features:
    """The features of a profile hash and its recent pages (``now``: epoch seconds)."""
    pageviews = _count(profile, "pageviews")
    sessions = _count(profile, "sessions")
    if pageviews and not sessions:
        sessions = 1  # a page view is a session, even when the counter is missing
    tags = _prefixed(profile, "tag:")
    recent = tuple(page if isinstance(page, str) else _text(page) for page in pages)
    views = kinds.views(tags, recent)
    technical = sum(views[kind] for kind in TECHNICAL_KINDS)
    technical_tags = {tag for kind in TECHNICAL_KINDS for tag in kinds.kinds[kind].tags}
    dwell = _prefixed(profile, "dwell_ms:")
    engaged_s = _count(profile, "engaged_ms") / 1000.0
    scroll = min(_count(profile, "scroll_max"), 100)
    product = views["pricing"] + views["demo_request"] + technical + views["case_study"]
    first_seen = _number(profile, "first_seen")
    last_seen = max(_number(profile, "last_seen"), first_seen)
    reference = last_seen if now is None or not math.isfinite(now) else max(now, last_seen)
    return Features(
        pageviews=pageviews,
        sessions=sessions,
        return_visits=max(sessions - 1, 0),
        distinct_pages=len(set(recent)),
        pages_per_session=pageviews / sessions if sessions else 0.0,
        quick_path_pages=_quick_path(recent, _count(profile, "session_pages")),
        engaged_s=engaged_s,
        engaged_minutes=engaged_s / 60.0,
        engaged_s_per_page=engaged_s / pageviews if pageviews else 0.0,
        technical_dwell_s=sum(dwell.get(tag, 0) for tag in technical_tags) / 1000.0,
        scroll_max=scroll,
        deep_scroll=scroll >= DEEP_SCROLL,
        clicks=_count(profile, "clicks"),
        downloads=_count(profile, "downloads"),
        forms=_count(profile, "forms"),
        outbounds=_count(profile, "outbounds"),
        competitor_research=sum(_prefixed(profile, "competitor:").values()),
        home_views=views["home"],
        pricing_views=views["pricing"],
        case_study_views=views["case_study"],
        security_views=views["security"],
        api_docs_views=views["api_docs"],
        integrations_views=views["integrations"],
        demo_views=views["demo_request"],
        blog_views=views["blog"],
        comparison_views=views["comparison"],
        enterprise_views=views["enterprise"],
        about_views=views["about"],
        roi_views=views["roi"],
        trial_views=views["trial"],
        technical_views=technical,
        technical_share=_share(technical, pageviews),
        proof_share=_share(views["case_study"], pageviews),
        blog_share=_share(views["blog"], pageviews),
        blog_only=bool(views["blog"]) and not product,
        returning=sessions > 1,
        span_days=(last_seen - first_seen) / DAY_S if first_seen else 0.0,
        days_since_first_seen=(reference - first_seen) / DAY_S if first_seen else 0.0,
        days_since_last_seen=(reference - last_seen) / DAY_S if last_seen else 0.0,
        device=_text(profile.get("device")) or "unknown",
        runs_js=_text(profile.get("beacon")) == "1",
        source=source_of(profile.get("first_utm_source"), profile.get("first_referrer")),
        tags=tags,
        events=_prefixed(profile, "event:"),
        recent_paths=recent,
    )


def _quick_path(recent: Sequence[str], visit_pages: int) -> int:
    """The fewest page views from a start of the latest visit (its entry page, or any home
    page in it) to an action page, counting both: entry ``/`` then ``/pricing`` is 2, landing
    on ``/pricing`` is 1. ``recent`` is newest first and ``visit_pages`` the latest visit's
    length; when the visit is longer than ``recent``, its entry is gone and only home pages
    start a path. 0 when the visit reached no action page after a start."""
    visit = recent[: max(visit_pages, 0)]
    entry_known = 0 < visit_pages <= len(recent)
    shortest, start = 0, 0  # start: the page number (1-based, oldest first) of the last start
    for number, page in enumerate(reversed(visit), start=1):
        path = page.split("?", 1)[0].lower()
        if _HOME_PAGE.match(path) or (number == 1 and entry_known):
            start = number
        if start and _ACTION_PAGE.search(path):
            steps = number - start + 1
            shortest = steps if not shortest else min(shortest, steps)
    return shortest


def source_of(utm_source: object, referrer: object) -> str:
    """The kind of the first visit's source: a UTM source wins over the referrer."""
    utm = _text(utm_source).strip().lower()
    if utm:
        return _SOURCE_OF.get(utm, "campaign")
    url = _text(referrer).strip().lower()
    if not url:
        return "direct"
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    for label in host.split(".")[:-1]:  # not the top-level domain (.dev, .io)
        kind = _SOURCE_OF.get(label)
        if kind is not None:
            return kind
    return "referral"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _number(profile: Mapping[str, str], name: str) -> float:
    """A non-negative finite number, or 0."""
    raw = profile.get(name)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return 0.0
    return value if 0.0 <= value < math.inf else 0.0


def _count(profile: Mapping[str, str], name: str) -> int:
    return int(_number(profile, name))


def _prefixed(profile: Mapping[str, str], prefix: str) -> dict[str, int]:
    """``{"tag:pricing": "3"}`` -> ``{"pricing": 3}`` for one prefix; bad counts are 0."""
    return {
        name[len(prefix) :]: _count(profile, name) for name in profile if name.startswith(prefix)
    }


def _share(part: int, whole: int) -> float:
    return min(part / whole, 1.0) if whole else 0.0
