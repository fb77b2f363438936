"""Visitor intelligence against a synthetic population whose true types are known.

    python bench/intel_eval.py [--visitors 20000] [--seed 7] [--noise 1.0] [--markdown FILE]

What this measures, and what it does not
----------------------------------------
The classifier (analytics/intel) is a set of hand-written rules; this script is a second,
independent set of hand-written assumptions about how B2B visitors behave. Each visitor is
drawn with hidden TRUE types (decision style, buying stage, whether they will buy) and
behaviour sampled from distributions that depend on those types, then written exactly as the
analytics worker writes a profile. The classifier was NOT fitted to this generator and the
generator was NOT tuned to the classifier: it was written from the plain-language definitions
of the types (docs/intelligence.md, "what it is meant to capture") before its first run, and
changed afterwards only to fix bugs, never to move a figure.

So an accuracy below is the agreement between two sets of assumptions written by people who
read the same vocabulary. It is NOT real-world accuracy: nobody knows how often real
"analytical" buyers read API docs, and both sides may share the same wrong beliefs (which
would inflate agreement). What the figures can show: whether the classifier's rules are
internally coherent, how much it abstains ("unknown"), whether its confidence orders its
own mistakes, and how fragile it is when people vary more than the rules expect (the
sensitivity table runs the same population with more and less individual noise).

The generator's assumptions
---------------------------
Population (shares of visitors):

* bots, 6%: no JavaScript (no beacon, so no engagement data) and odd patterns: crawlers
  walking 20-200 pages in one session, price monitors revisiting pricing and comparison pages
  daily for weeks, and link checkers fetching one or two pages. Never buy, have no type.
* humans, 94%, of whom 10% are non-prospects (competitors' staff studying pricing and
  product, job seekers on careers and team pages, students and writers on the blog and
  resources): they have a decision style but no buying stage, and never buy. The other 90%
  are prospects with both types.
* 20% of humans are "thin": they leave after 1 or 2 pages in a single visit. 7% of humans
  block the beacon (no engaged time, scroll, clicks, downloads or forms recorded).

True types, independent of each other: decision style analytical 35%, intuitive 25%,
consensus 22%, authoritative 18%; buying stage problem aware 35%, solution exploring 30%,
vendor comparing 20%, decision ready 15% (deliberately not the classifier's priors).

Behaviour, per visitor (``noise`` scales every visitor-level spread; 1.0 is the default):

* sessions: 1 + Poisson(rate by stage x factor by style x lognormal noise): rates 0.4, 1.0,
  1.8, 1.2 (problem aware -> decision ready); factors analytical 1.2, intuitive 0.5,
  consensus 2.0 (gathers material over several visits), authoritative 0.7.
* pages per session: 1 + Poisson(mean by style x factor by stage x lognormal noise - 1):
  analytical 6, intuitive 2.5, consensus 4, authoritative 3.5; problem aware 0.7, solution
  exploring and vendor comparing 1.1, decision ready 0.9.
* which pages: a visitor's own mix over 17 page kinds, drawn from a Dirichlet around
  base + style affinities + stage affinities (``BASE_MIX``, ``STYLE_MIX``, ``STAGE_MIX``
  below; e.g. analytical: API docs, integrations, security, product, resources; intuitive:
  home, product, pricing, demo, signup; consensus: case studies, resources, security;
  authoritative: about/team, enterprise, ROI calculator, pricing; problem aware: blog;
  solution exploring: product, integrations, docs, case studies; vendor comparing:
  comparison pages, pricing, security; decision ready: pricing, demo, signup, contact).
  The first page of a session is the home page 45% of the time, else drawn from the mix.
* engaged time per page: lognormal, median by style (analytical 55 s, intuitive 14 s,
  consensus 35 s, authoritative 22 s), times a per-visitor factor and a per-kind factor (blog
  and docs longer, home and forms shorter); scroll depth per page from a Beta by style,
  reported in steps of 25%; clicks Poisson(0.7 a page).
* downloads: each resources or case study page gives one with a probability by style
  (consensus 0.5, analytical 0.35, authoritative 0.2, intuitive 0.05); forms: a demo page
  view is submitted with a probability by stage (decision ready 0.6, vendor comparing 0.25,
  else 0.1), signup 0.4, contact 0.3.
* days between sessions: exponential, mean by stage (9, 5, 3, 2 days) x style (consensus
  1.5, intuitive 0.6).
* first source by stage (problem aware: mostly search; vendor comparing: review sites and
  search; decision ready: mostly direct), tilted by style (analytical: developer
  communities x3; authoritative: social x2; intuitive: social and campaigns x1.5); review-site
  referrers and comparison pages name competitors (``competitor:<name>`` as the worker
  counts it); phones: intuitive 35%, authoritative 25%, others 12%.
* will buy: only prospects; P = logistic(stage logit + fit), stage logits -5.5, -4.0, -3.0,
  -1.8, and "fit" a hidden N(0, 1) per visitor that behaviour does not show (budget, need,
  timing). Behaviour depends on the stage, so the intent score can only find buyers through
  the stage their behaviour betrays.

The profile is the worker's hash (all values strings): ``pageviews``, ``sessions``,
``session_pages`` (the latest visit's length),
``tag:<tag>`` for the demo site's tagged kinds, ``engaged_ms``, ``scroll_max``, ``clicks``,
``downloads``, ``forms``, ``first_seen``, ``last_seen``, ``beacon``, ``device``,
``first_utm_source``, ``first_referrer``, ``competitor:<name>``, ``dwell_ms:<tag>``; plus up to
50 recent page paths, newest first.

Organisation identification
---------------------------
The IP-to-organisation table is built by the real importer from the shipped CC BY 4.0 sample
(tests/data/asn-sample.csv, 209 lines of ip-location-db; tests/data/asn-sample.NOTICE). Every
organisation in the sample carries a TRUE kind below (``NETWORK_TRUTH``), labelled by hand
from public knowledge of who runs the network, independently of the classifier's rules; nine
the author could not label with confidence are left out of the traffic. Traffic mix: ISP or
mobile (people at home, on phones, on business lines of carriers) 50%, company networks
(offices) 20%, hosting and cloud (VPN egress, relays, bots) 15%, unknown addresses (not in
the table: the sample is tiny; a full table misses about 1%) 8%, education 5%, government 2%.
A network is drawn per visitor (each organisation equally, or the large carriers and clouds
20 times likelier: both are reported), then a range of it and an address in the range.
A visitor is "identified" when the lookup names a business; the identification is right only
when the visitor really is on their own company's network.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import ipaddress
import logging
import math
import platform
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import scipy
from scipy import stats

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from refract.analytics.intel import classify, features_of, score  # noqa: E402
from refract.rules.network_import import import_csv  # noqa: E402
from refract.rules.networks import NetworkTable  # noqa: E402

SAMPLE = REPOSITORY / "tests" / "data" / "asn-sample.csv"
NOW = datetime.datetime(2026, 11, 25, tzinfo=datetime.UTC).timestamp()  # fixed: reproducible
DAY_S = 86400.0
THRESHOLDS = (0.5, 0.6, 0.7, 0.8)
BANDS = ("cold", "warm", "hot")
UNKNOWN = "unknown"

# ------------------------------------------------------------------------------------------
# The generator's assumptions (see the module docstring)
# ------------------------------------------------------------------------------------------

STYLES = ("analytical", "intuitive", "consensus", "authoritative")
STAGES = ("problem_aware", "solution_exploring", "vendor_comparing", "decision_ready")
STYLE_SHARE = (0.35, 0.25, 0.22, 0.18)
STAGE_SHARE = (0.35, 0.30, 0.20, 0.15)
ROLES = ("competitor", "job_seeker", "student")  # non-prospects
ROLE_SHARE = (0.4, 0.3, 0.3)

BOT_SHARE = 0.06
NON_PROSPECT_SHARE = 0.10  # of humans
THIN_SHARE = 0.20  # of humans: 1-2 pages
NO_JS_SHARE = 0.07  # of humans: beacon blocked

COMPETITORS = ("acme", "globodyne")

# page kind -> (demo site tag or None, paths)
PAGE_KINDS: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "home": ("home", ("/",)),
    "product": (None, ("/product", "/product/analytics", "/product/workflows", "/features")),
    "pricing": ("pricing", ("/pricing",)),
    "case_study": (
        "case_study",
        ("/customers", "/customers/northwind", "/customers/globex", "/customers/initech"),
    ),
    "security": ("security", ("/security",)),
    "api_docs": (
        "api_docs",
        ("/docs/api/auth", "/docs/api/events", "/docs/sdk/python", "/docs/quickstart"),
    ),
    "integrations": ("integrations", ("/integrations",)),
    "blog": (
        "blog",
        (
            "/blog/why-pipelines-break",
            "/blog/data-quality-checklist",
            "/blog/hiring-data-engineers",
            "/blog/cost-of-bad-data",
            "/blog/event-schemas-101",
            "/blog/warehouse-or-lake",
        ),
    ),
    "demo_request": ("demo_request", ("/demo",)),
    "compare": (None, ("/compare/acme-vs-us", "/compare/globodyne-vs-us", "/alternatives/acme")),
    "about": (None, ("/about", "/about/team", "/company/leadership")),
    "roi": (None, ("/roi-calculator",)),
    "enterprise": (None, ("/enterprise",)),
    "signup": (None, ("/signup", "/get-started")),
    "careers": (None, ("/careers", "/careers/senior-engineer", "/careers/account-executive")),
    "contact": (None, ("/contact",)),
    "resources": (None, ("/resources/buyers-guide", "/resources/whitepaper-data-governance")),
}
KINDS = tuple(PAGE_KINDS)
HOME = KINDS.index("home")

BASE_MIX = {
    "home": 3.0,
    "product": 3.0,
    "pricing": 1.0,
    "case_study": 0.5,
    "security": 0.3,
    "api_docs": 0.3,
    "integrations": 0.5,
    "blog": 1.0,
    "demo_request": 0.1,
    "compare": 0.2,
    "about": 0.5,
    "roi": 0.1,
    "enterprise": 0.2,
    "signup": 0.1,
    "careers": 0.2,
    "contact": 0.2,
    "resources": 0.5,
}
STYLE_MIX: dict[str, dict[str, float]] = {
    "analytical": {
        "api_docs": 3.0,
        "integrations": 2.0,
        "security": 1.5,
        "product": 2.0,
        "case_study": 1.0,
        "compare": 1.0,
        "resources": 1.5,
        "blog": 1.0,
    },
    "intuitive": {"home": 2.0, "product": 1.5, "pricing": 1.5, "demo_request": 0.8, "signup": 1.0},
    "consensus": {
        "case_study": 3.0,
        "security": 1.5,
        "resources": 2.0,
        "integrations": 1.0,
        "pricing": 0.5,
        "about": 0.5,
    },
    "authoritative": {
        "about": 2.5,
        "enterprise": 2.0,
        "roi": 1.5,
        "pricing": 1.5,
        "case_study": 1.0,
    },
}
STAGE_MIX: dict[str, dict[str, float]] = {
    "problem_aware": {"blog": 6.0, "resources": 1.0, "home": 1.0},
    "solution_exploring": {
        "product": 3.0,
        "integrations": 1.5,
        "api_docs": 1.5,
        "case_study": 1.5,
        "blog": 1.5,
    },
    "vendor_comparing": {
        "compare": 3.0,
        "pricing": 3.0,
        "security": 1.5,
        "case_study": 1.5,
        "enterprise": 0.5,
        "roi": 0.5,
    },
    "decision_ready": {
        "pricing": 3.0,
        "demo_request": 3.0,
        "signup": 2.0,
        "security": 1.0,
        "contact": 1.0,
        "enterprise": 0.5,
    },
}
ROLE_MIX: dict[str, dict[str, float]] = {
    "competitor": {
        "pricing": 4.0,
        "product": 3.0,
        "integrations": 2.0,
        "compare": 2.0,
        "api_docs": 1.5,
        "case_study": 1.5,
        "enterprise": 1.0,
        "security": 1.0,
    },
    "job_seeker": {"careers": 5.0, "about": 3.0, "blog": 1.5, "home": 1.0, "product": 1.0},
    "student": {"blog": 5.0, "resources": 3.0, "case_study": 1.0, "product": 1.0},
}
MIX_CONCENTRATION = 15.0  # Dirichlet concentration at noise 1 (lower: people vary more)

SESSION_RATE = {
    "problem_aware": 0.4,
    "solution_exploring": 1.0,
    "vendor_comparing": 1.8,
    "decision_ready": 1.2,
    "competitor": 1.5,
    "job_seeker": 0.7,
    "student": 0.6,
}
SESSION_STYLE = {"analytical": 1.2, "intuitive": 0.5, "consensus": 2.0, "authoritative": 0.7}
PAGES_STYLE = {"analytical": 6.0, "intuitive": 2.5, "consensus": 4.0, "authoritative": 3.5}
PAGES_STAGE = {
    "problem_aware": 0.7,
    "solution_exploring": 1.1,
    "vendor_comparing": 1.1,
    "decision_ready": 0.9,
}
DWELL_MEDIAN_S = {"analytical": 55.0, "intuitive": 14.0, "consensus": 35.0, "authoritative": 22.0}
DWELL_KIND = {
    "blog": 1.5,
    "api_docs": 1.4,
    "case_study": 1.2,
    "resources": 1.2,
    "home": 0.6,
    "demo_request": 0.7,
    "signup": 0.5,
    "contact": 0.6,
}
SCROLL_BETA = {
    "analytical": (4.0, 2.0),
    "intuitive": (2.0, 3.0),
    "consensus": (3.0, 2.0),
    "authoritative": (2.0, 2.5),
}
DOWNLOAD_P = {"analytical": 0.35, "intuitive": 0.05, "consensus": 0.5, "authoritative": 0.2}
DEMO_FORM_P = {"decision_ready": 0.6, "vendor_comparing": 0.25}  # else 0.1
SESSION_GAP_DAYS = {
    "problem_aware": 9.0,
    "solution_exploring": 5.0,
    "vendor_comparing": 3.0,
    "decision_ready": 2.0,
}
GAP_STYLE = {"consensus": 1.5, "intuitive": 0.6}
MOBILE_P = {"intuitive": 0.35, "authoritative": 0.25}  # else 0.12

SOURCES = ("direct", "search", "social", "review", "community", "campaign", "referral")
SOURCE_STAGE: dict[str, tuple[float, ...]] = {
    "problem_aware": (0.10, 0.55, 0.12, 0.02, 0.06, 0.07, 0.08),
    "solution_exploring": (0.15, 0.40, 0.10, 0.10, 0.08, 0.09, 0.08),
    "vendor_comparing": (0.20, 0.30, 0.05, 0.30, 0.04, 0.05, 0.06),
    "decision_ready": (0.40, 0.25, 0.05, 0.10, 0.03, 0.12, 0.05),
    "competitor": (0.50, 0.30, 0.05, 0.10, 0.02, 0.00, 0.03),
    "job_seeker": (0.20, 0.40, 0.30, 0.00, 0.02, 0.00, 0.08),
    "student": (0.05, 0.70, 0.10, 0.00, 0.10, 0.00, 0.05),
}
SOURCE_TILT: dict[str, dict[str, float]] = {
    "analytical": {"community": 3.0},
    "authoritative": {"social": 2.0},
    "intuitive": {"social": 1.5, "campaign": 1.5},
}
BUY_LOGIT = {
    "problem_aware": -5.5,
    "solution_exploring": -4.0,
    "vendor_comparing": -3.0,
    "decision_ready": -1.8,
}


@dataclass(frozen=True, slots=True)
class Visitor:
    group: str  # prospect, non_prospect or bot
    style: str | None  # the true decision style (None for bots)
    stage: str | None  # the true buying stage (prospects only)
    will_buy: bool
    profile: dict[str, str]
    pages: list[str]  # recent page paths, newest first, at most 50


@dataclass(frozen=True, slots=True)
class Result:
    visitor: Visitor
    pageviews: int
    style: str
    style_confidence: float
    stage: str
    stage_confidence: float
    intent: int
    band: str


def _pick(rng: np.random.Generator, options: Sequence[str], p: Sequence[float]) -> str:
    return options[int(rng.choice(len(options), p=np.asarray(p) / sum(p)))]


def _mix(weights: Sequence[Mapping[str, float]]) -> npt.NDArray[np.float64]:
    total = np.array([BASE_MIX[kind] for kind in KINDS], dtype=np.float64)
    for table in weights:
        total += np.array([table.get(kind, 0.0) for kind in KINDS], dtype=np.float64)
    mix: npt.NDArray[np.float64] = total / total.sum()
    return mix


def _source(rng: np.random.Generator, journey: str, style: str, profile: dict[str, str]) -> None:
    """Writes the first visit's source (a UTM source or a referrer) into the profile."""
    tilt = SOURCE_TILT.get(style, {})
    p = [
        share * tilt.get(name, 1.0)
        for name, share in zip(SOURCES, SOURCE_STAGE[journey], strict=True)
    ]
    source = _pick(rng, SOURCES, p)
    referrer = ""
    if source == "search":
        referrer = _pick(rng, ("https://www.google.com/", "https://www.bing.com/"), (0.85, 0.15))
    elif source == "social":
        if rng.random() < 0.6:
            profile["first_utm_source"] = "linkedin"
        else:
            referrer = _pick(rng, ("https://www.linkedin.com/", "https://t.co/x1"), (0.7, 0.3))
    elif source == "review":
        rival = COMPETITORS[int(rng.integers(len(COMPETITORS)))]
        referrer = _pick(
            rng,
            (f"https://www.g2.com/products/{rival}/competitors", "https://www.capterra.com/p/1/"),
            (0.6, 0.4),
        )
    elif source == "community":
        referrer = _pick(
            rng, ("https://news.ycombinator.com/item?id=1", "https://github.com/x/y"), (0.6, 0.4)
        )
    elif source == "campaign":
        profile["first_utm_source"] = _pick(rng, ("newsletter", "partner-webinar"), (0.5, 0.5))
    elif source == "referral":
        referrer = "https://blog.partner-example.com/post"
    if referrer:
        profile["first_referrer"] = referrer


def _human(
    rng: np.random.Generator,
    style: str,
    journey: str,  # the stage of a prospect, the role of a non-prospect
    mix: npt.NDArray[np.float64],
    noise: float,
) -> tuple[dict[str, str], list[str]]:
    thin = rng.random() < THIN_SHARE
    runs_js = rng.random() >= NO_JS_SHARE
    if thin:
        sessions = [1 if rng.random() < 0.7 else 2]
    else:
        rate = SESSION_RATE[journey] * SESSION_STYLE[style] * math.exp(rng.normal(0, 0.3 * noise))
        per_session = PAGES_STYLE[style] * PAGES_STAGE.get(journey, 1.0)
        per_session *= math.exp(rng.normal(0, 0.4 * noise))
        count = 1 + int(rng.poisson(rate))
        sessions = [1 + int(rng.poisson(max(per_session - 1, 0.0))) for _ in range(count)]
    own_mix = rng.dirichlet(MIX_CONCENTRATION / noise * mix + 1e-3)
    kinds: list[str] = []
    for length in sessions:
        picks = rng.choice(len(KINDS), size=length, p=own_mix)
        if rng.random() < 0.45:
            picks[0] = HOME
        kinds += [KINDS[int(i)] for i in picks]
    kinds = kinds[:300]
    paths = [PAGE_KINDS[k][1][int(rng.integers(len(PAGE_KINDS[k][1])))] for k in kinds]

    profile: dict[str, str] = {
        "pageviews": str(len(kinds)),
        "sessions": str(len(sessions)),
        "session_pages": str(sessions[-1]),  # the latest visit's length, as the worker keeps it
    }
    for kind, n in Counter(kinds).items():
        tag = PAGE_KINDS[kind][0]
        if tag:
            profile[f"tag:{tag}"] = str(n)
    # time: sessions spread over days
    gap_days = SESSION_GAP_DAYS.get(journey, 4.0) * GAP_STYLE.get(style, 1.0)
    span_s = sum(float(rng.exponential(gap_days)) for _ in sessions[1:]) * DAY_S
    last_seen = NOW - float(rng.uniform(0, 30)) * DAY_S
    profile["first_seen"] = f"{last_seen - span_s:.3f}"
    profile["last_seen"] = f"{last_seen:.3f}"
    mobile = rng.random() < MOBILE_P.get(style, 0.12)
    profile["device"] = "mobile" if mobile else "desktop"
    _source(rng, journey, style, profile)
    # as the worker counts them: page paths, and the first page's referrer, naming a rival
    for name in COMPETITORS:
        mentions = sum(name in path for path in paths)
        mentions += name in profile.get("first_referrer", "")
        if mentions:
            profile[f"competitor:{name}"] = str(mentions)
    if runs_js:
        profile["beacon"] = "1"
        visitor_factor = math.exp(rng.normal(0, 0.4 * noise))
        dwell: Counter[str] = Counter()
        depth = 0.0
        a, b = SCROLL_BETA[style]
        for kind in kinds:
            seconds = DWELL_MEDIAN_S[style] * visitor_factor * DWELL_KIND.get(kind, 1.0)
            ms = int(seconds * math.exp(rng.normal(0, 0.7)) * 1000)
            tag = PAGE_KINDS[kind][0]
            dwell[tag or ""] += ms
            depth = max(depth, float(rng.beta(a, b)))
        profile["engaged_ms"] = str(sum(dwell.values()))
        for tag, ms in dwell.items():
            if tag:
                profile[f"dwell_ms:{tag}"] = str(ms)
        # the beacon reports 25% steps; a page seen to 95% counts as read to the end
        profile["scroll_max"] = str(100 if depth >= 0.95 else int(depth * 4) * 25)
        profile["clicks"] = str(int(rng.poisson(0.7 * len(kinds))))
        counts = Counter(kinds)
        downloads = int(rng.binomial(counts["resources"] + counts["case_study"], DOWNLOAD_P[style]))
        forms = int(rng.binomial(counts["demo_request"], DEMO_FORM_P.get(journey, 0.1)))
        forms += int(rng.binomial(counts["signup"], 0.4) + rng.binomial(counts["contact"], 0.3))
        if downloads:
            profile["downloads"] = str(downloads)
        if forms:
            profile["forms"] = str(forms)
    return profile, paths[::-1][:50]


def _bot(rng: np.random.Generator) -> tuple[dict[str, str], list[str]]:
    kind = _pick(rng, ("crawler", "monitor", "checker"), (0.5, 0.2, 0.3))
    if kind == "crawler":  # walks the site map
        n = int(rng.integers(20, 201))
        paths = [p for _, site_paths in PAGE_KINDS.values() for p in site_paths]
        visited = [paths[int(i)] for i in rng.integers(len(paths), size=n)]
        sessions, span_days = 1, 0.0
    elif kind == "monitor":  # a price watcher: pricing and comparisons, daily for weeks
        days = int(rng.integers(10, 61))
        visited = ["/pricing", "/compare/acme-vs-us"] * days
        sessions, span_days = days, float(days)
    else:  # a link checker or preview fetcher
        visited = ["/", "/blog/why-pipelines-break"][: int(rng.integers(1, 3))]
        sessions, span_days = 1, 0.0
    profile = {"pageviews": str(len(visited)), "sessions": str(sessions), "device": "desktop"}
    for tag, n in Counter(_tag_of(p) for p in visited).items():
        if tag:
            profile[f"tag:{tag}"] = str(n)
    competitors = Counter(name for p in visited for name in COMPETITORS if name in p)
    for name, n in competitors.items():
        profile[f"competitor:{name}"] = str(n)
    last_seen = NOW - float(rng.uniform(0, 30)) * DAY_S
    profile["first_seen"] = f"{last_seen - span_days * DAY_S:.3f}"
    profile["last_seen"] = f"{last_seen:.3f}"
    return profile, visited[::-1][:50]


_TAG_OF_PATH = {p: tag for tag, paths in PAGE_KINDS.values() for p in paths}


def _tag_of(path: str) -> str | None:
    return _TAG_OF_PATH.get(path)


def generate(n: int, seed: int, noise: float = 1.0) -> list[Visitor]:
    """``n`` visitors with hidden types; the same seed gives the same population."""
    rng = np.random.default_rng(seed)
    out: list[Visitor] = []
    for _ in range(n):
        if rng.random() < BOT_SHARE:
            profile, pages = _bot(rng)
            out.append(Visitor("bot", None, None, False, profile, pages))
            continue
        style = _pick(rng, STYLES, STYLE_SHARE)
        if rng.random() < NON_PROSPECT_SHARE:
            role = _pick(rng, ROLES, ROLE_SHARE)
            profile, pages = _human(
                rng, style, role, _mix((STYLE_MIX[style], ROLE_MIX[role])), noise
            )
            out.append(Visitor("non_prospect", style, None, False, profile, pages))
            continue
        stage = _pick(rng, STAGES, STAGE_SHARE)
        mix = _mix((STYLE_MIX[style], STAGE_MIX[stage]))
        profile, pages = _human(rng, style, stage, mix, noise)
        fit = float(rng.normal(0.0, 1.0))
        buys = rng.random() < 1.0 / (1.0 + math.exp(-(BUY_LOGIT[stage] + fit)))
        out.append(Visitor("prospect", style, stage, bool(buys), profile, pages))
    return out


def evaluate(visitors: Sequence[Visitor]) -> list[Result]:
    """The real classifier and scores, through the public API only."""
    results = []
    for v in visitors:
        features = features_of(v.profile, v.pages)
        axes = classify(features)
        scores = score(features)
        results.append(
            Result(
                v,
                int(v.profile["pageviews"]),
                axes.decision_style.value,
                axes.decision_style.confidence,
                axes.buying_stage.value,
                axes.buying_stage.confidence,
                scores.intent,
                scores.band,
            )
        )
    return results


# ------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """Area under the ROC curve (ties count half): Mann-Whitney U / (n1 n0)."""
    y = np.asarray(positive, dtype=bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if not n1 or not n0:
        return math.nan
    ranks = stats.rankdata(np.asarray(scores, dtype=float))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_interval(
    scores: Sequence[float], positive: Sequence[bool], seed: int, rounds: int = 200
) -> tuple[float, float]:
    """A 95% bootstrap interval (resampling visitors): sampling error only."""
    rng = np.random.default_rng(seed)
    s, y = np.asarray(scores, dtype=float), np.asarray(positive, dtype=bool)
    values = []
    for _ in range(rounds):
        i = rng.integers(len(s), size=len(s))
        values.append(auc(s[i].tolist(), y[i].tolist()))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def kappa(truth: Sequence[str], predicted: Sequence[str]) -> float:
    """Cohen's kappa: agreement beyond what the two sets of marginals give by chance."""
    n = len(truth)
    if not n:
        return math.nan
    agree = sum(t == p for t, p in zip(truth, predicted, strict=True)) / n
    t_count, p_count = Counter(truth), Counter(predicted)
    chance = sum(t_count[c] * p_count[c] for c in t_count) / (n * n)
    return (agree - chance) / (1 - chance) if chance < 1 else math.nan


def ratio(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def table(header: Sequence[str], rows: Sequence[Sequence[object]], left: int = 1) -> list[str]:
    """A markdown table; the first ``left`` columns left-aligned, the others right-aligned."""
    rule = "|---" * left + "|---:" * (len(header) - left) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


AxisGetter = Callable[[Result], tuple[str | None, str, float]]  # truth, value, confidence


def _style(r: Result) -> tuple[str | None, str, float]:
    return r.visitor.style, r.style, r.style_confidence


def _stage(r: Result) -> tuple[str | None, str, float]:
    return r.visitor.stage, r.stage, r.stage_confidence


AXES: dict[str, tuple[tuple[str, ...], AxisGetter]] = {
    "decision_style": (STYLES, _style),
    "buying_stage": (STAGES, _stage),
}


def axis_summary(results: Sequence[Result]) -> list[list[object]]:
    rows: list[list[object]] = []
    for name, (classes, get) in AXES.items():
        labelled = [get(r) for r in results if get(r)[0] is not None]
        enough = [get(r) for r in results if get(r)[0] is not None and r.pageviews >= 3]
        classified = [(t, v) for t, v, _ in labelled if v != UNKNOWN]
        right = sum(t == v for t, v in classified)
        majority = (Counter(t for t, _, _ in labelled).most_common(1) or [("none", 0)])[0]
        truth = [t for t, _ in classified if t is not None]
        rows.append(
            [
                f"`{name}`",
                f"{len(labelled):,}",
                pct(ratio(len(classified), len(labelled))),
                pct(ratio(sum(v != UNKNOWN for _, v, _ in enough), len(enough))),
                pct(right / len(classified) if classified else math.nan),
                f"{kappa(truth, [v for _, v in classified]):.2f}",
                f"{pct(ratio(majority[1], len(labelled)))} ({majority[0]})",
                pct(1 / len(classes)),
            ]
        )
    return rows


def threshold_rows(results: Sequence[Result], get: AxisGetter) -> list[list[object]]:
    labelled = [get(r) for r in results if get(r)[0] is not None]
    rows: list[list[object]] = []
    for threshold in THRESHOLDS:
        kept = [(t, v) for t, v, c in labelled if v != UNKNOWN and c >= threshold]
        right = sum(t == v for t, v in kept)
        rows.append(
            [
                f">= {threshold:.1f}",
                f"{len(kept):,}",
                pct(ratio(len(kept), len(labelled))),
                pct(right / len(kept) if kept else math.nan),
            ]
        )
    return rows


def confusion_rows(
    results: Sequence[Result], classes: Sequence[str], get: AxisGetter
) -> list[list[object]]:
    cells: Counter[tuple[str, str]] = Counter()
    for r in results:
        truth, value, _ = get(r)
        if truth is not None:
            cells[truth, value] += 1
    rows: list[list[object]] = []
    for t in classes:
        row_total = sum(cells[t, v] for v in (*classes, UNKNOWN))
        classified = row_total - cells[t, UNKNOWN]
        rows.append(
            [
                f"**{t}**",
                *(f"{cells[t, v]:,}" for v in (*classes, UNKNOWN)),
                pct(cells[t, t] / classified if classified else math.nan),
            ]
        )
    precision = []
    for v in classes:
        column = sum(cells[t, v] for t in classes)
        precision.append(pct(cells[v, v] / column if column else math.nan))
    rows.append(["*precision*", *precision, "", ""])
    return rows


def band_rows(results: Sequence[Result]) -> list[list[object]]:
    buyers = sum(r.visitor.will_buy for r in results)
    rows: list[list[object]] = []
    for band in BANDS:
        in_band = [r for r in results if r.band == band]
        bought = sum(r.visitor.will_buy for r in in_band)
        bots = sum(r.visitor.group == "bot" for r in in_band)
        rows.append(
            [
                band,
                f"{len(in_band):,}",
                pct(ratio(len(in_band), len(results))),
                f"{bought:,}",
                pct(bought / len(in_band) if in_band else math.nan),
                pct(bought / buyers if buyers else math.nan),
                f"{bots:,}",
            ]
        )
    return rows


def stage_intent_rows(results: Sequence[Result]) -> list[list[object]]:
    rows: list[list[object]] = []
    for stage in STAGES:
        group = [r for r in results if r.visitor.stage == stage]
        rows.append(
            [
                stage,
                f"{len(group):,}",
                f"{np.mean([r.intent for r in group]):.1f}" if group else "",
                pct(ratio(sum(r.band == "hot" for r in group), len(group))),
                pct(ratio(sum(r.visitor.will_buy for r in group), len(group))),
            ]
        )
    return rows


def population_rows(visitors: Sequence[Visitor]) -> list[list[object]]:
    rows: list[list[object]] = []
    for group in ("prospect", "non_prospect", "bot"):
        members = [v for v in visitors if v.group == group]
        views = np.array([int(v.profile["pageviews"]) for v in members])
        rows.append(
            [
                group,
                f"{len(members):,}",
                f"{np.median(views):.0f}" if len(views) else "",
                pct(float(np.mean(views < 3)) if len(views) else math.nan),
                pct(float(np.mean([v.profile.get("beacon") == "1" for v in members]))),
                f"{sum(v.will_buy for v in members):,}",
            ]
        )
    return rows


# ------------------------------------------------------------------------------------------
# Organisation identification
# ------------------------------------------------------------------------------------------

# AS number -> (true kind of the network, a large carrier or cloud), labelled by hand from
# public knowledge of who runs each network in the sample; NOT from rules/networks.py.
# "business": a company's own (office) network. Networks left out (not sure enough): 395374
# Cyber Sainik, 11157 Electronic laboratory Services, 401009 JSMSR Network, 214569 Miralium,
# 209131 Nerdpitch, 209810 Netcore services, 198463 On 1 Call Support, 147061 YesIT Group,
# 6185 Apple (an Apple AS whose ranges here look like its content network, not offices).
NETWORK_TRUTH: dict[int, tuple[str, bool]] = {
    # company networks
    3573: ("business", False),  # Accenture LLP
    32309: ("business", False),  # Accenture State Healthcare Services
    21433: ("business", True),  # Accenture UK
    714: ("business", True),  # Apple Inc.
    32934: ("business", True),  # Facebook (Meta's own network; also its link crawler)
    63293: ("business", False),  # Facebook
    53768: ("business", False),  # Laboratory Corporation of America
    14340: ("business", True),  # Salesforce.com
    394808: ("business", False),  # Salesforce.com
    22606: ("business", False),  # Salesforce.com
    396417: ("business", False),  # Salesforce
    197651: ("business", False),  # THE HUT.COM (THG)
    # hosting, cloud and CDN
    16509: ("hosting", True),  # Amazon (AWS)
    15169: ("hosting", True),  # Google
    19527: ("hosting", False),  # Google
    396982: ("hosting", True),  # Google Cloud
    36040: ("hosting", False),  # Google
    43515: ("hosting", False),  # Google Ireland
    32381: ("hosting", False),  # Google Access
    8075: ("hosting", True),  # Microsoft (Azure and corporate)
    8069: ("hosting", False),  # Microsoft
    8071: ("hosting", False),  # Microsoft
    3598: ("hosting", False),  # Microsoft
    13335: ("hosting", True),  # Cloudflare (WARP, Workers, relays)
    14789: ("hosting", False),  # Cloudflare
    395747: ("hosting", False),  # Cloudflare
    209242: ("hosting", False),  # Cloudflare London
    20940: ("hosting", True),  # Akamai International
    16625: ("hosting", True),  # Akamai Technologies
    12222: ("hosting", False),  # Akamai Technologies
    21342: ("hosting", False),  # Akamai International
    54113: ("hosting", True),  # Fastly
    14061: ("hosting", True),  # DigitalOcean
    393406: ("hosting", False),  # DigitalOcean
    24940: ("hosting", True),  # Hetzner Online
    16276: ("hosting", True),  # OVH
    36351: ("hosting", False),  # IBM Cloud
    48337: ("hosting", False),  # Linode
    24459: ("hosting", False),  # Rimu Hosting
    26383: ("hosting", False),  # Baxet Group: a hosting and VPS provider
    59437: ("hosting", False),  # Northern Data: HPC and GPU cloud data centres
    58057: ("hosting", False),  # Securebit: Swiss transit, colocation and hosting
    # ISPs, mobile carriers and transit
    2687: ("isp", True),  # AT&T
    19115: ("isp", False),  # Charter
    33588: ("isp", False),  # Charter
    22516: ("isp", False),  # Charter
    11427: ("isp", True),  # Charter (Spectrum)
    20001: ("isp", False),  # Charter
    9808: ("isp", True),  # China Mobile
    56046: ("isp", False),  # China Mobile
    56047: ("isp", False),  # China Mobile
    7922: ("isp", True),  # Comcast
    33490: ("isp", False),  # Comcast
    33659: ("isp", False),  # Comcast
    33667: ("isp", False),  # Comcast
    33657: ("isp", False),  # Comcast
    3320: ("isp", True),  # Deutsche Telekom
    286: ("isp", False),  # GTT (transit)
    13999: ("isp", False),  # Mega Cable (Mexico)
    48503: ("isp", False),  # Mobile Telecom-Service (Kazakhstan)
    36912: ("isp", False),  # Orange Cameroun
    135341: ("isp", False),  # Orange
    12479: ("isp", True),  # Orange Espagne
    5511: ("isp", True),  # Orange
    328727: ("isp", False),  # Simba Fiber Africa
    9255: ("isp", False),  # Singapore Telecom
    27699: ("isp", True),  # Telefonica Brasil
    10429: ("isp", False),  # Telefonica Brasil
    7418: ("isp", False),  # Telefonica Chile
    3352: ("isp", True),  # Telefonica de Espana
    6805: ("isp", True),  # Telefonica Germany
    12127: ("isp", False),  # Telefonica Moviles El Salvador
    6739: ("isp", False),  # Vodafone ONO
    3329: ("isp", False),  # Vodafone-Panafon (Greece)
    701: ("isp", True),  # Verizon Business
    2828: ("isp", False),  # Verizon Business
    11145: ("isp", False),  # Verizon Business
    702: ("isp", False),  # Verizon Business
    1849: ("isp", False),  # Verizon UK
    30722: ("isp", True),  # Vodafone Italia
    33915: ("isp", True),  # Vodafone Libertel (Netherlands)
    15924: ("isp", True),  # Vodafone Turkey
    51684: ("isp", False),  # Asiacell (Iraq)
    13536: ("isp", False),  # FirstLight: a US fibre network operator
    12301: ("isp", False),  # Invitech: a Hungarian telecom operator
    154305: ("isp", False),  # Vijayalakshmi Net Services: an Indian broadband ISP
    60300: ("isp", False),  # Vodafone Iceland (Syn)
    198218: ("isp", False),  # horizon teleports: satellite connectivity
    # education
    26: ("education", False),  # Cornell
    33207: ("education", False),  # Cornell
    10578: ("education", False),  # Harvard
    1742: ("education", False),  # Harvard
    3: ("education", False),  # MIT
    63: ("education", False),  # MIT
    396527: ("education", False),  # MIT
    17055: ("education", False),  # University of Utah
    29955: ("education", False),  # Washburn University
    # government
    11205: ("government", False),  # City of Philadelphia
    13990: ("government", False),  # County of Orange
    326: ("government", False),  # DoD NIC
    721: ("government", False),  # DoD NIC
    27064: ("government", False),  # DoD NIC
    5132: ("government", False),  # DoD NIC
    5927: ("government", False),  # DoD NIC
    749: ("government", False),  # US DoD
    668: ("government", False),  # US DoD
    3537: ("government", False),  # US DoD
    30272: ("government", False),  # Government of Grenada
    40701: ("government", False),  # Government of Grenada
    48247: ("government", False),  # Government of Kaliningrad region
    22735: ("government", False),  # Government of Namibia
    137671: ("government", False),  # ITE&C Department, Government of Andhra Pradesh
}
TRAFFIC_MIX = {
    "isp": 0.50,
    "business": 0.20,
    "hosting": 0.15,
    "unknown": 0.08,
    "education": 0.05,
    "government": 0.02,
}
LARGE_WEIGHT = 20.0
LOOKUP_KINDS = ("business", "isp", "hosting", "education", "government", "unknown", "none")
LOOKUP_LABELS = {"unknown": "-> kind unknown", "none": "not in table"}

# Well-known addresses in the sample: (address, what it is, AS number, organisation, kind).
KNOWN_NETWORKS: tuple[tuple[str, str, int, str, str], ...] = (
    ("8.8.8.8", "Google Public DNS", 15169, "Google LLC", "hosting"),
    ("2001:4860:4860::8888", "Google Public DNS (IPv6)", 15169, "Google LLC", "hosting"),
    ("1.1.1.1", "Cloudflare DNS", 13335, "Cloudflare, Inc.", "hosting"),
    ("51.3.0.10", "AWS", 16509, "Amazon.com, Inc.", "hosting"),
    ("17.172.224.47", "apple.com (Apple's 17/8)", 714, "Apple Inc.", "business"),
    ("13.110.0.1", "Salesforce", 14340, "Salesforce.com, Inc.", "business"),
    ("48.44.86.20", "Comcast", 7922, "Comcast Cable Communications, LLC", "isp"),
    ("185.163.76.1", "Deutsche Telekom", 3320, "Deutsche Telekom AG", "isp"),
    ("128.84.1.1", "Cornell (128.84/16)", 26, "Cornell University", "education"),
    ("136.222.0.1", "US DoD", 749, "United States Department of Defense (DoD)", "government"),
)


@dataclass(frozen=True, slots=True)
class SampleNetwork:
    asn: int
    org: str
    ranges: tuple[tuple[int, int, bool], ...]  # start, end, IPv6


def sample_networks(path: Path) -> dict[int, SampleNetwork]:
    """The sample's ranges per AS number, read only to draw addresses from them."""
    ranges: dict[int, list[tuple[int, int, bool]]] = {}
    names: dict[int, str] = {}
    with path.open(newline="") as lines:
        for start, end, asn, org in csv.reader(lines):
            first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
            ranges.setdefault(int(asn), []).append((int(first), int(last), first.version == 6))
            names[int(asn)] = org
    return {asn: SampleNetwork(asn, names[asn], tuple(r)) for asn, r in ranges.items()}


def _address(rng: random.Random, start: int, end: int, v6: bool) -> str:
    value = rng.randint(start, end)
    return str(ipaddress.IPv6Address(value) if v6 else ipaddress.IPv4Address(value))


def _unknown_address(rng: random.Random, table: NetworkTable) -> str:
    while True:
        if rng.random() < 0.8:
            ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.IPv4Address(
                rng.randint(1 << 24, (224 << 24) - 1)
            )
        else:
            ip = ipaddress.IPv6Address(rng.randint(0x2000 << 112, (0x4000 << 112) - 1))
        if ip.is_global and table.lookup(str(ip)) is None:
            return str(ip)


@dataclass(frozen=True, slots=True)
class Lookup:
    truth: str  # the visitor's true kind of network
    asn: int | None  # the network the address was drawn from
    found: str  # what the table says: a kind, or "none"
    found_asn: int | None
    found_org: str


def simulate_traffic(
    table: NetworkTable, networks: Mapping[int, SampleNetwork], n: int, seed: int, large: float
) -> list[Lookup]:
    rng = random.Random(seed)
    pools: dict[str, list[SampleNetwork]] = {}
    for number, (kind, _) in NETWORK_TRUTH.items():
        if number in networks:
            pools.setdefault(kind, []).append(networks[number])
    kinds = list(TRAFFIC_MIX)
    out: list[Lookup] = []
    for truth in rng.choices(kinds, weights=[TRAFFIC_MIX[k] for k in kinds], k=n):
        asn: int | None
        if truth == "unknown":
            ip, asn = _unknown_address(rng, table), None
        else:
            pool = pools[truth]
            weights = [large if NETWORK_TRUTH[net.asn][1] else 1.0 for net in pool]
            network = rng.choices(pool, weights=weights)[0]
            start, end, v6 = rng.choice(network.ranges)
            ip, asn = _address(rng, start, end, v6), network.asn
        found = table.lookup(ip)
        out.append(
            Lookup(
                truth,
                asn,
                found.kind if found else "none",
                found.asn if found else None,
                found.org if found else "",
            )
        )
    return out


def identification(lookups: Sequence[Lookup]) -> tuple[float, float, float, int]:
    """Identification rate, precision, recall among office visitors, named count."""
    named = [x for x in lookups if x.found == "business"]
    right = [x for x in named if x.truth == "business" and x.found_asn == x.asn]
    offices = sum(x.truth == "business" for x in lookups)
    return (
        ratio(len(named), len(lookups)),
        len(right) / len(named) if named else math.nan,
        len(right) / offices if offices else math.nan,
        len(named),
    )


def organisation_report(n: int, seed: int) -> tuple[list[str], bool]:
    # the sample keeps a real overlap of two DoD ranges on purpose; the importer warns
    logging.getLogger("refract.rules.network_import").setLevel(logging.ERROR)
    networks_table = import_csv(SAMPLE)
    networks = sample_networks(SAMPLE)
    unlabelled = sorted(
        f"{net.org} (AS{asn})" for asn, net in networks.items() if asn not in NETWORK_TRUTH
    )
    sizes = networks_table.stats()
    lines = [
        f"Table: the real importer (`rules.network_import.import_csv`) on {SAMPLE.name} "
        f"({sizes.ipv4_ranges} IPv4 and {sizes.ipv6_ranges} IPv6 ranges, "
        f"{sizes.organisations} organisations); {n:,} simulated addresses. Not used "
        f"as traffic (no confident true label): {', '.join(unlabelled)}.",
        "",
    ]
    weighted = simulate_traffic(networks_table, networks, n, seed, LARGE_WEIGHT)
    uniform = simulate_traffic(networks_table, networks, n, seed, 1.0)
    rows: list[list[object]] = []
    for name, lookups in (
        (f"large carriers and clouds x{LARGE_WEIGHT:.0f} (default)", weighted),
        ("every organisation equally (the sample's long tail)", uniform),
    ):
        rate, precision, recall, named = identification(lookups)
        rows.append([name, f"{named:,}", pct(rate), pct(precision), pct(recall)])
    lines += table(
        ["networks drawn", "named a business", "identification rate", "precision", "recall"],
        rows,
    )
    lines.append(
        "Identification rate: share of all visitors for whom a business is named. Precision: "
        "share of those named who really are on their own company's network. Recall: share "
        "of visitors on a company network who are named. A visitor on an ISP, a cloud or a "
        "university is never rightly named a business; abstaining is right for them."
    )
    lines.append("")
    lines.append("What the table says, by the visitor's true network (default weighting):")
    lines.append("")
    rows = []
    for truth in TRAFFIC_MIX:
        group = [x for x in weighted if x.truth == truth]
        kinds = Counter(x.found for x in group)
        right = sum(
            x.found == "business" and x.truth == "business" and x.found_asn == x.asn for x in group
        )
        rows.append(
            [
                truth,
                f"{len(group):,}",
                *(pct(ratio(kinds[k], len(group))) for k in LOOKUP_KINDS),
                f"{right:,}",
                f"{kinds['business'] - right:,}",
            ]
        )
    lines += table(
        [
            "true network",
            "visitors",
            *(LOOKUP_LABELS.get(k, f"-> {k}") for k in LOOKUP_KINDS),
            "named rightly",
            "named wrongly",
        ],
        rows,
    )
    wrong = Counter(
        (x.found_org, x.found_asn, x.truth)
        for x in (weighted + uniform)
        if x.found == "business" and x.truth != "business"
    )
    if wrong:
        lines.append(
            "Networks named as a business though they are not (both weightings; these are "
            "the classifier's name rules missing the organisation):"
        )
        lines.append("")
        lines += table(
            ["organisation", "AS", "true kind", "false identifications"],
            [[org, asn, truth, f"{count:,}"] for (org, asn, truth), count in wrong.most_common()],
            left=3,
        )
    lines.append("Known networks (addresses in the sample, expected owner and kind):")
    lines.append("")
    rows = []
    all_ok = True
    for ip, what, asn, org, kind in KNOWN_NETWORKS:
        found = networks_table.lookup(ip)
        got = f"AS{found.asn} {found.org}, {found.kind}" if found else "not found"
        ok = found is not None and (found.asn, found.org, found.kind) == (asn, org, kind)
        all_ok &= ok
        rows.append([f"`{ip}`", what, f"AS{asn} {org}, {kind}", got, "yes" if ok else "NO"])
    lines += table(["address", "what", "expected", "table says", "match"], rows, left=5)
    return lines, all_ok


# ------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------


def intelligence_report(results: Sequence[Result], seed: int) -> list[str]:
    visitors = [r.visitor for r in results]
    lines = ["### Population", ""]
    lines += table(
        ["group", "visitors", "median pages", "< 3 pages", "ran JS", "will buy"],
        population_rows(visitors),
    )
    lines += ["### Psychographic axes against the hidden types", ""]
    lines.append(
        "Humans with a true type (bots have none; non-prospects have a style but no stage). "
        "Coverage: share given a class rather than `unknown`. Kappa: agreement beyond chance "
        "among the classified. Baselines: always answering the commonest true class, and a "
        "uniform guess."
    )
    lines.append("")
    lines += table(
        [
            "axis",
            "visitors",
            "coverage",
            "coverage, >= 3 pages",
            "accuracy (classified)",
            "kappa",
            "majority baseline",
            "chance",
        ],
        axis_summary(results),
    )
    for name, (classes, get) in AXES.items():
        lines += [f"#### `{name}`: coverage against precision", ""]
        lines += table(
            ["confidence", "classified", "coverage", "accuracy"], threshold_rows(results, get)
        )
        lines += [f"#### `{name}`: confusion matrix (rows: true; columns: classified)", ""]
        lines += table(
            ["true \\ classified", *classes, UNKNOWN, "recall (classified)"],
            confusion_rows(results, classes, get),
        )
    bots = [r for r in results if r.visitor.group == "bot"]
    others = [r for r in results if r.visitor.group == "non_prospect"]
    lines += ["### Bots and non-prospects", ""]
    rows: list[list[object]] = []
    for name, group in (("bots", bots), ("non-prospects", others)):
        if not group:
            continue
        rows.append(
            [
                name,
                f"{len(group):,}",
                pct(sum(r.style != UNKNOWN for r in group) / len(group)),
                pct(sum(r.stage != UNKNOWN for r in group) / len(group)),
                *(pct(sum(r.band == b for r in group) / len(group)) for b in BANDS),
            ]
        )
    lines += table(
        ["group", "visitors", "given a style", "given a stage", "cold", "warm", "hot"], rows
    )
    lines += ["### Intent score against the hidden will-buy flag", ""]
    rows = []
    subsets: tuple[tuple[str, Callable[[Result], bool]], ...] = (
        ("all visitors", lambda r: True),
        ("humans", lambda r: r.visitor.group != "bot"),
        ("prospects", lambda r: r.visitor.group == "prospect"),
        ("prospects, >= 3 pages", lambda r: r.visitor.group == "prospect" and r.pageviews >= 3),
    )
    for name, keep in subsets:
        subset = [r for r in results if keep(r)]
        s = [float(r.intent) for r in subset]
        y = [r.visitor.will_buy for r in subset]
        low, high = auc_interval(s, y, seed)
        ceiling = auc([_oracle(r) for r in subset], y)
        rows.append(
            [
                name,
                f"{len(subset):,}",
                f"{sum(y):,}",
                f"{auc(s, y):.3f}",
                f"{low:.3f}-{high:.3f}",
                f"{ceiling:.3f}",
            ]
        )
    lines += table(
        ["visitors", "n", "buyers", "intent AUC", "95% bootstrap", "ceiling (true stage)"], rows
    )
    lines.append(
        "Ceiling: the AUC of a score that knew each visitor's true group and stage; the "
        "hidden fit is invisible to any score, so no behaviour-based score can do better here."
    )
    lines.append("")
    lines += table(
        ["band", "visitors", "share", "buyers", "buyer rate", "share of all buyers", "bots"],
        band_rows(results),
    )
    lines += ["Intent by the prospect's true stage:", ""]
    lines += table(
        ["true stage", "prospects", "mean intent", "hot", "will buy"], stage_intent_rows(results)
    )
    return lines


def _oracle(r: Result) -> float:
    """The best score possible under the generator: the true stage's buying logit."""
    stage = r.visitor.stage
    return BUY_LOGIT[stage] if stage is not None else -99.0


def headline(results: Sequence[Result]) -> list[object]:
    cells: list[object] = []
    for _, get in AXES.values():
        labelled = [get(r) for r in results if get(r)[0] is not None]
        classified = [(t, v) for t, v, _ in labelled if v != UNKNOWN]
        cells.append(pct(ratio(len(classified), len(labelled))))
        cells.append(pct(ratio(sum(t == v for t, v in classified), len(classified))))
    s = [float(r.intent) for r in results]
    cells.append(f"{auc(s, [r.visitor.will_buy for r in results]):.3f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--noise", type=float, default=1.0, help="individual variation scale")
    parser.add_argument("--addresses", type=int, default=20_000)
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    args = parser.parse_args()
    began = time.perf_counter()

    population = generate(args.visitors, args.seed, args.noise)
    generated = time.perf_counter()
    results = evaluate(population)
    classified = time.perf_counter()

    lines = [
        f"{time.strftime('%Y-%m-%d')}, {platform.node()} ({platform.machine()}), CPython "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}: "
        f"`python bench/intel_eval.py --visitors {args.visitors} --seed {args.seed}"
        + (f" --noise {args.noise}" if args.noise != 1.0 else "")
        + "`",
        "",
        "Synthetic visitors whose true types are known: the figures measure agreement between "
        "the classifier's rules and this generator's assumptions, not real-world accuracy.",
        "",
    ]
    lines += intelligence_report(results, args.seed)

    lines += ["### Sensitivity: the same generator with more or less individual variation", ""]
    rows: list[list[object]] = []
    half = max(args.visitors // 2, 1000)
    for noise in (0.5, 1.0, 2.0):
        subset = evaluate(generate(half, args.seed + 1, noise))
        rows.append([f"{noise:.1f}", f"{half:,}", *headline(subset)])
    lines += table(
        [
            "noise",
            "visitors",
            "style coverage",
            "style accuracy",
            "stage coverage",
            "stage accuracy",
            "intent AUC",
        ],
        rows,
    )
    lines.append(
        "Noise scales the spread of each visitor's own page mix (Dirichlet concentration "
        f"{MIX_CONCENTRATION:.0f} / noise), session counts, pages per session and dwell time."
    )
    lines.append("")

    lines += ["### Organisation identification", ""]
    org_lines, known_ok = organisation_report(args.addresses, args.seed)
    lines += org_lines
    ended = time.perf_counter()
    lines.append(
        f"Run time: generating {len(population):,} visitors {generated - began:.1f} s, "
        f"features + classify + score {classified - generated:.1f} s "
        f"({1e6 * (classified - generated) / len(population):.0f} us a visitor), "
        f"everything {ended - began:.1f} s."
    )
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        args.markdown.write_text(text)
    if not known_ok:
        sys.exit("known networks: some address did not resolve to its expected owner and kind")


if __name__ == "__main__":
    main()
