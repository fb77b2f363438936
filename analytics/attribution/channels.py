"""GA4's default channel grouping for one session, from what the edge saw of its arrival.

A session arrives with a referrer, UTM parameters (source, medium, campaign) and perhaps click
ids (gclid, msclkid, fbclid, li_fat_id, ...: their names only, never their values). Like GA4,
the session is first given a source and a medium, then the first matching rule of Google's
documented default channel group table names its channel. GA4 matches sources against
internal lists of search, social, shopping and video sites; ``SEARCH_SITES`` etc. are a
compact curated list of the common ones (docs/attribution.md gives the table and the lists'
sources), kept in code so that classifying never touches the network.

Every input is untrusted text: anything is accepted (cut to ``MAX_INPUT`` characters) and
the answer is always one of ``CHANNELS``; nothing here raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

MAX_INPUT = 512  # characters of each field looked at; longer values are cut

DIRECT = "Direct"
UNASSIGNED = "Unassigned"
CHANNELS: tuple[str, ...] = (
    DIRECT,
    "Cross-network",
    "Paid Shopping",
    "Paid Search",
    "Paid Social",
    "Paid Video",
    "Display",
    "Paid Other",
    "Organic Shopping",
    "Organic Social",
    "Organic Video",
    "Organic Search",
    "Referral",
    "Email",
    "Affiliates",
    "Audio",
    "SMS",
    "Mobile Push Notifications",
    UNASSIGNED,
)

# Brands, matched against a source token ("google") or a host's registrable label
# ("www.google.co.uk" -> "google"); hosts that are not their brand's domain are listed whole.
SEARCH_SITES = frozenset(
    {
        "google", "bing", "yahoo", "duckduckgo", "baidu", "yandex", "ecosia", "naver",
        "seznam", "startpage", "qwant", "ask", "aol", "so", "sogou", "daum", "brave",
        "search.brave.com", "search.yahoo.com", "msn", "you",
    }
)  # fmt: skip
SOCIAL_SITES = frozenset(
    {
        "facebook", "fb", "m.facebook.com", "l.facebook.com", "lm.facebook.com", "fb.me",
        "instagram", "ig", "l.instagram.com", "linkedin", "lnkd.in", "li", "twitter",
        "t.co", "x", "x.com", "reddit", "pinterest", "tiktok", "snapchat", "quora",
        "threads", "bsky", "bsky.app", "mastodon", "tumblr", "discord", "whatsapp", "telegram",
        "t.me", "vk", "weibo", "xing", "medium", "slack", "meetup", "nextdoor",
        "news.ycombinator.com", "ycombinator",
    }
)  # fmt: skip
SHOPPING_SITES = frozenset(
    {
        "amazon", "ebay", "etsy", "walmart", "aliexpress", "alibaba", "shopify", "bestbuy",
        "mercadolibre", "rakuten", "shopping.google.com", "shopping.yahoo.com", "idealo",
        "pricegrabber", "shopzilla",
    }
)  # fmt: skip
VIDEO_SITES = frozenset(
    {
        "youtube", "yt", "youtu.be", "m.youtube.com", "vimeo", "twitch", "dailymotion",
        "wistia", "ted", "youku", "bilibili", "vidyard", "loom", "rumble",
    }
)  # fmt: skip

# A click id names the ad platform (and so the source and medium) when UTM tags are missing.
# fbclid is added by Facebook to organic links too, so it gives the source and not "paid".
CLICK_IDS: dict[str, tuple[str, str]] = {
    "gclid": ("google", "cpc"),
    "gbraid": ("google", "cpc"),
    "wbraid": ("google", "cpc"),
    "dclid": ("dv360", "display"),
    "msclkid": ("bing", "cpc"),
    "yclid": ("yandex", "cpc"),
    "li_fat_id": ("linkedin", "cpc"),
    "ttclid": ("tiktok", "cpc"),
    "twclid": ("twitter", "cpc"),
    "rdt_cid": ("reddit", "cpc"),
    "sccid": ("snapchat", "cpc"),
    "epik": ("pinterest", "cpc"),
    "fbclid": ("facebook", ""),
    "mc_cid": ("mailchimp", "email"),
}

_PAID = re.compile(r"^(.*cp.*|ppc|retargeting|paid.*)$")
_SHOP_CAMPAIGN = re.compile(r"^(.*(([^a-df-z]|^)shop|shopping).*)$")
_DISPLAY = frozenset({"display", "banner", "expandable", "interstitial", "cpm"})
_SOCIAL_MEDIA = frozenset(
    {"social", "social-network", "social-media", "sm", "social network", "social media"}
)
_EMAIL = frozenset({"email", "e-mail", "e_mail", "e mail"})
_REFERRAL = frozenset({"referral", "app", "link"})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go"})


@dataclass(frozen=True, slots=True)
class Arrival:
    """What the edge saw of a session's first request (all optional, all untrusted)."""

    referrer: str = ""  # a URL or a bare host
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    click_ids: frozenset[str] = field(default_factory=frozenset)  # names, never values


def classify(arrival: Arrival, own_hosts: Iterable[str] = ()) -> str:
    """The session's GA4 default channel group (one of ``CHANNELS``).

    ``own_hosts``: the site's own hosts; a referrer from one of them is an internal
    navigation, not a source.
    """
    source, medium = source_medium(arrival, own_hosts)
    return channel(source, medium, _clean(arrival.utm_campaign))


def source_medium(arrival: Arrival, own_hosts: Iterable[str] = ()) -> tuple[str, str]:
    """GA4's session source and medium: UTM tags first, then click ids, then the referrer."""
    source, medium = _clean(arrival.utm_source), _clean(arrival.utm_medium)
    if not medium:
        for name in sorted(_clean(name) for name in arrival.click_ids):
            if name in CLICK_IDS:
                id_source, id_medium = CLICK_IDS[name]
                source, medium = source or id_source, id_medium
                break
    host = referrer_host(arrival.referrer)
    if host in {_bare(own) for own in own_hosts}:
        host = ""
    if not source and host:
        source = host
    if source and not medium:
        medium = "organic" if host and _listed(host, SEARCH_SITES) else "referral" if host else ""
    if not source:
        return ("(direct)", medium or "(none)")
    return (source, medium or "(not set)")


def channel(source: str, medium: str, campaign: str = "") -> str:
    """The first rule of GA4's default channel group table that matches (case-insensitive)."""
    s, m, c = _clean(source), _clean(medium), _clean(campaign)
    paid = bool(_PAID.match(m))
    shopping = _listed(s, SHOPPING_SITES) or bool(_SHOP_CAMPAIGN.match(c))
    search, social, video = (_listed(s, SEARCH_SITES), _listed(s, SOCIAL_SITES),
                             _listed(s, VIDEO_SITES))  # fmt: skip
    rules = (
        (DIRECT, s == "(direct)" and m in {"(not set)", "(none)", ""}),
        ("Cross-network", "cross-network" in c),
        ("Paid Shopping", shopping and paid),
        ("Paid Search", search and paid),
        ("Paid Social", social and paid),
        ("Paid Video", video and paid),
        ("Display", m in _DISPLAY),
        ("Paid Other", paid),
        ("Organic Shopping", shopping),
        ("Organic Social", social or m in _SOCIAL_MEDIA),
        ("Organic Video", video or "video" in m),
        ("Organic Search", search or m == "organic"),
        ("Referral", m in _REFERRAL),
        ("Email", s in _EMAIL or m in _EMAIL),
        ("Affiliates", m in {"affiliate", "affiliates"}),
        ("Audio", m == "audio"),
        ("SMS", s == "sms" or m == "sms"),
        ("Mobile Push Notifications",
         m.endswith("push") or "mobile" in m or "notification" in m or s == "firebase"),
    )  # fmt: skip
    return next((name for name, matched in rules if matched), UNASSIGNED)


def referrer_host(referrer: str) -> str:
    """The lower-case host of a referrer URL (or bare host), without "www.", port or user;
    "" when there is none. Parsed by hand: urllib raises on some malformed URLs."""
    text = _clean(referrer)
    if "://" in text:
        text = text.split("://", 1)[1]
    elif text.startswith("//"):
        text = text[2:]
    text = re.split(r"[/?#\\]", text, maxsplit=1)[0]
    text = text.rsplit("@", 1)[-1]
    if text.startswith("[") and "]" in text:
        text = text[: text.index("]") + 1]  # an IPv6 literal; its port follows the bracket
    elif not text.startswith("["):
        text = text.split(":", 1)[0]
    return _bare(text)


def _listed(source: str, sites: frozenset[str]) -> bool:
    """Whether a source token or host belongs to ``sites`` (whole host, parent or brand)."""
    if not source:
        return False
    if "." not in source:
        return source in sites
    labels = source.split(".")
    if any(".".join(labels[i:]) in sites for i in range(len(labels) - 1)):
        return True
    return _brand(labels) in sites


def _brand(labels: list[str]) -> str:
    """The registrable label of a host: "google" for www.google.co.uk and for google.com."""
    if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL:
        return labels[-3]
    return labels[-2] if len(labels) >= 2 else labels[0]


def _bare(host: str) -> str:
    host = _clean(host).rstrip(".")
    return host[4:] if host.startswith("www.") else host


def _clean(value: object) -> str:
    return value[:MAX_INPUT].strip().lower() if isinstance(value, str) else ""
