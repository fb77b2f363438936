"""What a visitor's profile says, as numbers: counts, rates and flags the models read.

``features_of`` turns the worker's profile hash (``rf:{site}:p:{visitor}``, every value a
string) and the visitor's recent pages (``rf:{site}:pages:{visitor}``, newest first, at most
50) into a ``Features``. It never raises: a missing, negative, non-numeric or non-finite field
counts as 0 (or "unknown"), so a profile written by an older worker, or tampered with, still
classifies. It is pure: the reference time is ``now`` when given, else the visitor's last
event ("as of their last visit").

Page tags are the site's (examples/demo-rules/pages.toml): ``home``, ``pricing``,
``case_study``, ``security``, ``api_docs``, ``integrations``, ``blog``, ``demo_request``; the
profile counts page views per tag. Kinds of page no tag covers (comparisons, enterprise, about
or team, ROI calculators, trials) are recognised from the recent paths by keyword
(``PATH_KEYWORDS``), so they count only among the last 50 pages.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DAY_S = 86400.0
DEEP_SCROLL = 75  # percent: a visitor who reached this far on some page read, not skimmed
TECHNICAL_TAGS = ("api_docs", "security", "integrations")

# Page kinds recognised in the recent paths: kind -> keywords, any of which in a lower-cased
# path makes it that kind (a path can be of several kinds).
PATH_KEYWORDS: dict[str, tuple[str, ...]] = {
    "comparison": ("compare", "comparison", "-vs-", "/vs/", "alternative"),
    "enterprise": ("enterprise",),
    "about": ("/about", "/team", "/leadership", "/company"),
    "roi": ("roi", "calculator"),
    "trial": ("trial", "signup", "sign-up", "get-started"),
}
_KINDS = tuple(PATH_KEYWORDS)

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
    distinct_pages: int = 0  # among the recent pages
    pages_per_session: float = 0.0
    engaged_s: float = 0.0  # visible, engaged seconds over all pages
    engaged_s_per_page: float = 0.0
    scroll_max: int = 0  # percent, deepest on any page
    deep_scroll: bool = False  # scroll_max >= DEEP_SCROLL
    clicks: int = 0
    downloads: int = 0
    forms: int = 0
    outbounds: int = 0
    # page views per tag
    home_views: int = 0
    pricing_views: int = 0
    case_study_views: int = 0
    security_views: int = 0
    api_docs_views: int = 0
    integrations_views: int = 0
    demo_views: int = 0
    blog_views: int = 0
    technical_views: int = 0  # api_docs + security + integrations
    technical_share: float = 0.0  # of page views, 0-1
    proof_share: float = 0.0  # case studies, of page views, 0-1
    blog_share: float = 0.0
    # recent pages by path keyword
    comparison_views: int = 0
    enterprise_views: int = 0
    about_views: int = 0
    roi_views: int = 0
    trial_views: int = 0
    # time
    returning: bool = False  # more than one session
    span_days: float = 0.0  # first seen to last seen
    days_since_first_seen: float = 0.0
    days_since_last_seen: float = 0.0  # 0 without ``now``
    # context
    device: str = "unknown"
    runs_js: bool = False  # the browser ran the beacon (engagement data exists)
    source: str = "direct"  # one of SOURCE_KINDS


def features_of(
    profile: Mapping[str, str], pages: Sequence[str] = (), now: float | None = None
) -> Features:
    """The features of a profile hash and its recent pages (``now``: epoch seconds)."""
    pageviews = _count(profile, "pageviews")
    sessions = _count(profile, "sessions")
    if pageviews and not sessions:
        sessions = 1  # a page view is a session, even when the counter is missing
    tags = {
        tag: _count(profile, f"tag:{tag}")
        for tag in (
            "home",
            "pricing",
            "case_study",
            "security",
            "api_docs",
            "integrations",
            "demo_request",
            "blog",
        )
    }
    technical = tags["api_docs"] + tags["security"] + tags["integrations"]
    engaged_s = _count(profile, "engaged_ms") / 1000.0
    scroll = min(_count(profile, "scroll_max"), 100)
    recent = [page if isinstance(page, str) else _text(page) for page in pages]
    counts = [0] * len(_KINDS)
    for page in recent:
        found = kinds_of(page)
        if found:
            for index in found:
                counts[index] += 1
    kinds = dict(zip(_KINDS, counts, strict=True))
    first_seen = _number(profile, "first_seen")
    last_seen = max(_number(profile, "last_seen"), first_seen)
    reference = last_seen if now is None or not math.isfinite(now) else max(now, last_seen)
    return Features(
        pageviews=pageviews,
        sessions=sessions,
        distinct_pages=len(set(recent)),
        pages_per_session=pageviews / sessions if sessions else 0.0,
        engaged_s=engaged_s,
        engaged_s_per_page=engaged_s / pageviews if pageviews else 0.0,
        scroll_max=scroll,
        deep_scroll=scroll >= DEEP_SCROLL,
        clicks=_count(profile, "clicks"),
        downloads=_count(profile, "downloads"),
        forms=_count(profile, "forms"),
        outbounds=_count(profile, "outbounds"),
        home_views=tags["home"],
        pricing_views=tags["pricing"],
        case_study_views=tags["case_study"],
        security_views=tags["security"],
        api_docs_views=tags["api_docs"],
        integrations_views=tags["integrations"],
        demo_views=tags["demo_request"],
        blog_views=tags["blog"],
        technical_views=technical,
        technical_share=_share(technical, pageviews),
        proof_share=_share(tags["case_study"], pageviews),
        blog_share=_share(tags["blog"], pageviews),
        comparison_views=kinds["comparison"],
        enterprise_views=kinds["enterprise"],
        about_views=kinds["about"],
        roi_views=kinds["roi"],
        trial_views=kinds["trial"],
        returning=sessions > 1,
        span_days=(last_seen - first_seen) / DAY_S if first_seen else 0.0,
        days_since_first_seen=(reference - first_seen) / DAY_S if first_seen else 0.0,
        days_since_last_seen=(reference - last_seen) / DAY_S if last_seen else 0.0,
        device=_text(profile.get("device")) or "unknown",
        runs_js=_text(profile.get("beacon")) == "1",
        source=source_of(profile.get("first_utm_source"), profile.get("first_referrer")),
    )


@functools.lru_cache(maxsize=8192)
def kinds_of(path: str) -> tuple[int, ...]:
    """The indexes (in ``PATH_KEYWORDS``) of the kinds a path is of; cached, as a site's
    visitors share its paths."""
    lowered = path.lower()
    return tuple(
        index
        for index, words in enumerate(PATH_KEYWORDS.values())
        if any(word in lowered for word in words)
    )


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


def _number(profile: Mapping[str, str], field: str) -> float:
    """A non-negative finite number, or 0."""
    raw = profile.get(field)
    if raw is None:
        return 0.0
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return 0.0
    return value if 0.0 <= value < math.inf else 0.0


def _count(profile: Mapping[str, str], field: str) -> int:
    return int(_number(profile, field))


def _share(part: int, whole: int) -> float:
    return min(part / whole, 1.0) if whole else 0.0
