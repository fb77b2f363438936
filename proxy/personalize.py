"""From a request to a rewrite Plan: facts, decision, changes with their tokens filled."""

from __future__ import annotations

import functools
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from yarl import URL

from refract.proxy.app_keys import QA_SECRET_KEY, STATE_KEY
from refract.proxy.identity import Identity, cookie_header, cookie_values
from refract.proxy.rewriter import ELEMENT_ACTIONS, Edit, Plan
from refract.rules.decisions import CompiledRules, Decision
from refract.rules.markup import TOKEN, token_path_value
from refract.rules.qa_links import Override, read_overrides
from refract.rules.schema import Change
from refract.rules.targeting import Facts, Value
from refract.rules.token_contexts import token_contexts, written

_UTM = ("source", "medium", "campaign", "term", "content")
_TABLET = re.compile(r"iPad|Tablet|Nexus (?:7|9|10)|SM-T\d", re.IGNORECASE)
_MOBILE = re.compile(r"Mobi|iPhone|Android", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)  # asked to decide and again to log the page view
def device_of(user_agent: str) -> str:
    if _TABLET.search(user_agent):
        return "tablet"
    return "mobile" if _MOBILE.search(user_agent) else "desktop"


def utm_of(query: Mapping[str, str]) -> dict[str, str]:
    """The link's UTM values by their short name (``campaign``), the first of each."""
    return {name: query[f"utm_{name}"] for name in _UTM if f"utm_{name}" in query}


Segment = tuple[Mapping[str, Value], Mapping[str, float]]
NO_SEGMENT: Segment = ({}, {})


def request_facts(request: web.Request, identity: Identity, segment: Segment = NO_SEGMENT) -> Facts:
    """What is known on this request: the URL, referrer, UTM, device, the cookie, and what the
    worker concluded about the visitor (their segment, with confidences)."""
    values: dict[str, Value] = {
        "url.path": request.path,
        "url.host": request.host,
        "device": device_of(request.headers.get("User-Agent", "")),
    }
    for name, value in request.query.items():
        values.setdefault(f"url.query.{name}", value)
    for name, value in utm_of(request.query).items():
        values.setdefault(f"utm.{name}", value)
    if referrer := request.headers.get("Referer"):
        values["referrer"] = referrer
        if host := _host_of(referrer):
            values["referrer.host"] = host
    if identity.tracked:
        values["visitor.returning"] = not identity.new_visitor
    known, confidence = segment
    for field, guess in known.items():
        values.setdefault(field, guess)
    return Facts(values, confidence)


def qa_overrides(request: web.Request, parameter: str) -> dict[str, Override]:
    """Variants a QA tester forces with a signed link (query parameter or cookie); never counted."""
    value = request.query.get(parameter) or next(
        iter(cookie_values(cookie_header(request.headers), parameter, 1)), ""
    )
    if not value:
        return {}
    unsigned = request.app[STATE_KEY].current.config.rules.unsigned_qa_overrides
    return read_overrides(value, request.app[QA_SECRET_KEY].value, time.time(), unsigned)


@dataclass(frozen=True)
class Personalized:
    decision: Decision
    plan: Plan
    redirect: str = ""  # a split-URL test sends the visitor here instead


def personalize(
    rules: CompiledRules,
    request: web.Request,
    identity: Identity,
    tail: str,
    segment: Segment = NO_SEGMENT,
    site: str = "",
) -> Personalized:
    """The decision and the plan for this request; ``site`` is the site's key (a bandit's
    weights are the site's)."""
    if rules.empty:
        return Personalized(Decision(), Plan(tail=tail))
    facts = request_facts(request, identity, segment)
    decision = rules.decide(
        rules.tagger.tags(request.path),
        facts,
        identity.visitor_id,
        qa_overrides(request, rules.rules.settings.qa_parameter),
        datetime.now(UTC),
        site=site,
    )
    plans = _SAME_FOR_EVERY_VISITOR.get(rules)
    if plans is None:
        plans = _SAME_FOR_EVERY_VISITOR[rules] = {}
    chosen = (
        tuple((a.experiment, a.variant) for a in decision.assignments),
        decision.personalizations,
        tail,
    )
    if (plan := plans.get(chosen)) is not None:
        return Personalized(decision, plan)
    changes = rules.changes(decision)
    plan, redirect = _plan(changes, facts.values, tail, request)
    if not any(_per_request(change) for change in changes) and len(plans) < _MAX_PLANS:
        plans[chosen] = plan
    return Personalized(decision, plan, redirect)


# What a plan is made of: the variants (experiment, variant), the personalizations, the tail.
_Chosen = tuple[tuple[tuple[str, str], ...], tuple[str, ...], str]
# The plans of a rule set whose changes fill no token and redirect nowhere: every visitor of
# the same variants and personalizations gets an equal plan, made once (its fingerprint too).
_SAME_FOR_EVERY_VISITOR: weakref.WeakKeyDictionary[CompiledRules, dict[_Chosen, Plan]] = (
    weakref.WeakKeyDictionary()
)
_MAX_PLANS = 1024  # per rule set: its variants and personalizations combined, and sites' tails


def _per_request(change: Change) -> bool:
    """Does the change depend on the request (a token's value, a redirect's target)?"""
    return change.action == "redirect" or "{{" in change.value


def _plan(
    changes: list[Change], values: Mapping[str, Value], tail: str, request: web.Request
) -> tuple[Plan, str]:
    edits, styles, redirect = [], [], ""
    for change in changes:
        value = fill_tokens(change, values)
        if change.action == "inject_style":
            styles.append(value)
        elif change.action == "redirect":
            redirect = redirect or split_url_target(value, request)
        elif change.action in ELEMENT_ACTIONS:
            tokens = "{{" in change.value  # the rewriter keeps a visitor's values out of code
            edits.append(Edit(change.action, change.selector, value, change.attribute, tokens))
    return Plan(tuple(edits), tuple(styles), tail), redirect


def split_url_target(target: str, request: web.Request) -> str:
    """Where a redirect change sends this request: "" when it is already there (no loop).

    The visitor's query string (UTM and the like) goes along unless the target has its own,
    as the visitor sent it: decoded and quoted again, an encoded ``&``, ``+`` or ``=`` in a
    value would be one no more (or its ``%`` quoted twice).
    """
    url = URL(target)
    if (not url.host or url.host == request.host.split(":")[0]) and url.path == request.path:
        return ""
    query = request.rel_url.raw_query_string
    if url.raw_query_string or not query:
        return str(url)
    return str(
        URL.build(
            scheme=url.scheme,
            authority=url.raw_authority,
            path=url.raw_path,
            query_string=query,
            fragment=url.raw_fragment,
            encoded=True,
        )
    )


def _host_of(url: str) -> str:
    """The host a visitor-sent URL names, "" when none or when no parser takes it
    (``http://[``): the visitor's other facts still decide."""
    try:
        return URL(url).host or ""
    except ValueError:
        return ""


def fill_tokens(change: Change, values: Mapping[str, Value]) -> str:
    """The change's value with its ``{{ path | "default" }}`` tokens filled, each encoded for
    where it lands (rules/token_contexts.py: the contexts the rules were checked for)."""
    if "{{" not in change.value:
        return change.value
    matches = list(TOKEN.finditer(change.value))
    texts = written(
        token_contexts(change.action, change.attribute, change.value),
        [_token_value(match, values) for match in matches],
    )
    pieces: list[str] = []
    end = 0
    for match, text in zip(matches, texts, strict=True):
        pieces += (change.value[end : match.start()], text)
        end = match.end()
    return "".join(pieces) + change.value[end:]


# A token's value is cut to this many characters (docs/rules.md): it is the visitor's, and
# written once for every element an edit matches, so a long one (a link's 30 KB utm_term)
# made a listing page's answer tens of megabytes. UTM values and the like are far shorter.
MAX_TOKEN_VALUE_CHARS = 256


def _token_value(match: re.Match[str], values: Mapping[str, Value]) -> str:
    """The visitor's value of a token (its first ``MAX_TOKEN_VALUE_CHARS`` characters, before
    it is encoded), or its default ("" when it has none)."""
    value = token_path_value(match["path"], values)
    if value is None:
        return (match["default"] or '""')[1:-1]
    return value[:MAX_TOKEN_VALUE_CHARS]
