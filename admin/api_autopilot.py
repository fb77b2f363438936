"""Autopilot's proposals through the API: list them with their evidence, approve one (it
becomes a running experiment in the rule files, edited first if the caller wants) or reject
it (never proposed again). Approving and rejecting are audited; only marketing and admins
decide. docs/autopilot.md tells where proposals come from (`refract autopilot scan`).
"""

from __future__ import annotations

import time
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from refract.admin import audit, decision_records, learnings
from refract.admin.api import Api, Refused, known_site
from refract.admin.api_experiments import EDITORS, audited_entry, entry_answer
from refract.admin.api_reads import READERS_OF_RESULTS, SiteQuery
from refract.admin.csv_export import csv_response
from refract.admin.rule_edits import BODY, invalid, loaded, save, store_of
from refract.admin.state import config_of, identity_of, redis_of
from refract.analytics.autopilot import store
from refract.analytics.autopilot.copywriting import EDITED, checked
from refract.analytics.autopilot.fact_check import KnownFacts
from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.guardrails import from_rules
from refract.analytics.autopilot.proposals import proposed_variants, running_from
from refract.rules import editing
from refract.rules.editing import RuleFiles
from refract.rules.problems import Problem
from refract.rules.schema import CopyRules

api = Api("Refract admin", "1")
MAX_TEXT = 300


class Approval(BaseModel):
    site: str | None = Field(default=None, description="the site's key (default: the first)")
    variants: dict[str, str] | None = Field(
        default=None,
        description="style -> text to launch instead of the proposed texts (each checked as "
        "generated copy is); omitted: the proposed texts",
    )


class LearningsQuery(SiteQuery):
    format: Literal["json", "csv"] = Field(default="json", description="the answer's format")


class Rejection(BaseModel):
    site: str | None = Field(default=None, description="the site's key (default: the first)")


@api.get(
    "/api/autopilot/proposals",
    roles=READERS_OF_RESULTS,
    summary="autopilot's proposals, best first, with their variants, evidence and status",
    tag="autopilot",
    query=SiteQuery,
)
async def list_proposals(request: web.Request, query: SiteQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    found = store.ranked(await store.records(redis_of(request), site.key))
    return web.json_response({"site": site.key, "proposals": found})


@api.get(
    "/api/autopilot/learnings",
    roles=READERS_OF_RESULTS,
    summary="the learnings log: decided experiments, what they tested, on whom, the effect "
    "with its interval and the decision; the lift priors they give new proposals (JSON or CSV)",
    tag="autopilot",
    query=LearningsQuery,
    content_types=("application/json", "text/csv"),
)
async def list_learnings(request: web.Request, query: LearningsQuery) -> web.StreamResponse:
    site = known_site(request, query.site)
    client = redis_of(request)
    rules = loaded(await store_of(request).current())
    found = learnings.learnings(
        await decision_records.recorded(client, site.key),
        rules,
        await store.records(client, site.key),
    )
    if query.format == "csv":
        rows = [learning.as_row() for learning in found]
        return csv_response(learnings.CSV_COLUMNS, rows, f"learnings-{site.key}.csv")
    body = {
        "site": site.key,
        "learnings": [learning.as_row() for learning in found],
        "priors": learnings.priors(found),
    }
    return web.json_response(body)


@api.post(
    "/api/autopilot/proposals/{key}/approve",
    roles=EDITORS,
    summary="launch a proposal as a running experiment (at autopilot.max_traffic of its "
    "page's visitors), with edited texts if given",
    tag="autopilot",
    body=Approval,
    responses={404: "no such proposal", 409: "decided already, or its page has no tag"},
)
async def approve(request: web.Request, body: Approval) -> web.StreamResponse:
    site = known_site(request, body.site)
    key = request.match_info["key"]
    record = await _waiting(request, site.key, key)
    proposal: dict[str, Any] = record["proposal"]
    if not proposal.get("page_tag"):
        raise Refused(409, f"no page tag names {proposal.get('url')}: tag the page first")
    copy = loaded(await store_of(request).current()).settings.autopilot
    variants = _variants(proposal, body.variants, copy)
    identity = identity_of(request)
    experiment = running_from(proposal, variants, config_of(request).autopilot.max_traffic)

    def change(base: RuleFiles) -> RuleFiles:
        if key in loaded(base).experiments:
            raise Refused(409, f"experiment {key!r} exists already")
        comment = f"Proposed by autopilot for {proposal['url']}, approved by {identity.name}"
        return editing.add(base, "experiments", experiment, comment)

    # claimed first: of two people deciding at once (or a person and autopilot), one wins
    client = redis_of(request)
    claimed = await store.decide(
        client, site.key, key, "launched", identity.name, time.time(), dict(variants)
    )
    if claimed is None:
        raise Refused(409, "the proposal was decided meanwhile")
    try:
        _, after = await save(
            request, "autopilot.approve", key, change, audited_entry("experiments", key)
        )
    except BaseException:
        await store.reopen(client, site.key, key)  # nothing was launched: waiting again
        raise
    return entry_answer(after, "experiments", key, status=201)


@api.post(
    "/api/autopilot/proposals/{key}/reject",
    roles=EDITORS,
    summary="reject a proposal: it is not proposed again",
    tag="autopilot",
    body=Rejection,
    responses={404: "no such proposal", 409: "decided already"},
)
async def reject(request: web.Request, body: Rejection) -> web.StreamResponse:
    site = known_site(request, body.site)
    key = request.match_info["key"]
    await _waiting(request, site.key, key)
    identity = identity_of(request)
    record = await store.decide(
        redis_of(request), site.key, key, "rejected", identity.name, time.time()
    )
    if record is None:
        raise Refused(409, "the proposal was decided meanwhile")
    await audit.record(redis_of(request), identity, "autopilot.reject", key, "proposed", "rejected")
    return web.json_response(record)


async def _waiting(request: web.Request, site: str, key: str) -> dict[str, Any]:
    record = (await store.records(redis_of(request), site)).get(key)
    if record is None:
        raise Refused(404, "no such proposal")
    if record.get("status") != "proposed":
        raise Refused(409, f"the proposal was {record.get('status')} already")
    return record


def _variants(
    proposal: dict[str, Any], edited: dict[str, str] | None, copy: CopyRules
) -> list[tuple[str, str]]:
    """The (style, text) pairs to launch: the proposed ones, or the caller's edits checked
    against the page's facts exactly as generated copy is (422 naming each refusal)."""
    proposed = proposed_variants(proposal)
    if edited is None:
        return proposed
    styles = {style for style, _ in proposed}
    problems = [
        Problem(BODY, None, f"variants.{style}", "not a style this proposal has")
        for style in edited
        if style not in styles
    ]
    problems += [
        Problem(BODY, None, f"variants.{style}", f"longer than {MAX_TEXT} characters")
        for style, text in edited.items()
        if len(text) > MAX_TEXT
    ]
    if problems:
        raise invalid("the edited variants were refused", problems)
    facts = [
        Fact(f["kind"], f["text"], f.get("value"), f.get("unit", ""), f.get("noun", ""))
        for f in proposal.get("page_facts", [])
    ]
    kind = str(proposal["element"]["kind"])
    original = str(proposal["element"]["text"])
    drafted = [(style, text, EDITED) for style, text in edited.items()]
    words = [str(word) for word in proposal.get("page_words", [])]
    known = KnownFacts.of(facts, copy.glossary, words)
    written = checked(kind, original, drafted, known, from_rules(copy))
    if written.refused:
        raise invalid(
            "the edited variants were refused",
            [
                Problem(BODY, None, f"variants.{refused.style}", "; ".join(refused.reasons))
                for refused in written.refused
            ],
        )
    texts = dict(edited)
    return [(style, texts.get(style, text)) for style, text in proposed]
