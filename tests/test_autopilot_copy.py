"""Generated copy: templates per style filled only with the site's facts, brand guardrails, the
hard fact check, and an OpenAI-compatible model's suggestions (against a local stand-in)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics.autopilot.copywriting import STYLES, Written, checked, drafts
from refract.analytics.autopilot.fact_check import KnownFacts, unsupported, words_of
from refract.analytics.autopilot.facts import Fact, facts
from refract.analytics.autopilot.guardrails import Guardrails
from refract.analytics.autopilot.suggestions import ChatModel, parse_answer

SITE_TEXT = (
    "Pipeline observability for data teams. Trusted by 10,000+ teams. Loved by engineers. "
    "Cut incident time by 34% with Acme Logistics and Meridian Health. Plans from $49/month. "
    "Book a demo. Audited and certified."
)
SITE = facts(SITE_TEXT)
KNOWN = KnownFacts.of(SITE, glossary=["SOC 2 Type II"], words=words_of([SITE_TEXT]))
RAILS = Guardrails(brand_terms=("Refract",))


def written(
    kind: str,
    original: str,
    facts: list[Fact],
    known: KnownFacts,
    rails: Guardrails,
    industry: str = "",
) -> Written:
    """Every template's variant of an element, through the checks: what a proposal gets."""
    return checked(kind, original, drafts(kind, original, facts, industry), known, rails)


@pytest.mark.parametrize(
    ("text", "problems"),
    [
        ("Trusted by 10,000+ teams", 0),
        ("Trusted by 10000+ teams", 0),  # the same figure, written without a separator
        ("Trusted by 12,000+ teams", 1),  # a figure the site never states
        ("Trusted by 10,000 teams", 1),  # "10,000" is not "10,000+"
        ("Plans from 49%", 1),  # a price is not a percentage
        ("Cut incident time by 34%", 0),
        ("Loved by Acme", 0),  # a name may be shortened
        ("Loved by Acme Logistics Europe", 1),  # ... never extended
        ("Loved by Globex", 1),
        ("Audited for SOC 2 Type II", 0),  # the glossary's terms are known
    ],
)
def test_the_fact_check_refuses_figures_and_names_the_site_does_not_state(
    text: str, problems: int
) -> None:
    assert len(unsupported(text, KNOWN)) == problems


@pytest.mark.parametrize(
    "text",
    [
        "Google runs on Acme",  # a name opening a sentence
        "Stripe trusts it",
        "Proven: Google",  # ... or opening after a colon
        "trusted by google and amazon",  # names written in lower case
        "twice as many teams",  # figures spelled out
        "Cut costs in half",
        "Ten times faster",
        "Trusted by 10,000+ hospitals",  # a stated figure counting something else
        "Cut incident time by 34% and revenue",
        "The fastest platform, rated best by analysts",  # superlatives the site never uses
        "Start in minutes, not months",  # a claim of speed
    ],
)
def test_a_draft_that_invents_is_refused_however_it_is_worded(text: str) -> None:
    assert unsupported(text, KNOWN) != []


def test_a_persons_edit_is_judged_on_figures_and_names_not_words() -> None:
    assert unsupported("Ship data you can trust", KNOWN, vocabulary=False) == []
    assert unsupported("Ship data Globex can trust", KNOWN, vocabulary=False) != []


@pytest.mark.parametrize(
    ("text", "kind", "problem"),
    [
        ("x" * 81, "headline", "81 characters, over the 80 allowed for a headline"),
        ("Results guaranteed", "headline", "uses the banned phrase 'guaranteed'"),
        ("Try refract today", "primary_cta", "writes 'refract'; the brand writes 'Refract'"),
        ("   ", "headline", "empty"),
    ],
)
def test_guardrails_say_what_is_wrong(text: str, kind: str, problem: str) -> None:
    assert problem in RAILS.problems(text, kind)


def test_a_banned_word_bans_the_word_not_longer_words_containing_it() -> None:
    assert Guardrails(banned=("free",)).problems("Freedom to ship", "headline") == []


@pytest.mark.parametrize("style", STYLES)
def test_every_style_gets_a_checked_headline_from_the_sites_facts(style: str) -> None:
    found = written("headline", "Pipelines that never break", SITE, KNOWN, RAILS, "saas")
    assert any(variant.style == style for variant in found.variants)


def test_a_template_whose_slot_the_site_cannot_fill_is_skipped() -> None:
    no_counts = facts("Cut incident time by 34%.")
    texts = [text for style, text, _ in drafts("headline", "A", no_counts) if style == "consensus"]
    assert texts == []  # "Join {count}" needs a count of teams or companies


def test_a_call_to_action_keeps_its_own_action() -> None:
    found = written("primary_cta", "Book a demo", SITE, KNOWN, RAILS)
    assert "Book a demo now" in [variant.text for variant in found.variants]


def test_refused_drafts_are_kept_with_their_reasons() -> None:
    drafted = [("analytical", "Cut incident time by 90%", "model")]
    result = checked("headline", "Original", drafted, KNOWN, RAILS)
    assert result.variants == ()
    assert result.refused[0].reasons == (
        "the figure '90%' is on no page of the site nor in the glossary",
    )


_INVENTED_NAMES = ("Globex", "Initech", "Umbrella", "Hooli", "Vandelay")


@given(
    value=st.integers(min_value=1, max_value=10**7),
    unit=st.sampled_from(["%", "+", "x", ""]),
    name=st.sampled_from(_INVENTED_NAMES),
    kind=st.sampled_from(["headline", "subheadline", "primary_cta", "secondary_cta"]),
)
def test_a_models_invented_figure_or_name_is_never_proposed(
    value: int, unit: str, name: str, kind: str
) -> None:
    stated = {(34, "%"), (10_000, "+"), (2, "")}  # the site's, and the glossary's "SOC 2"
    drafted = [("analytical", f"Cut incident time by {value:,}{unit}", "model")]
    drafted.append(("consensus", f"Trusted by {name}", "model"))
    result = checked(kind, "Original", drafted, KNOWN, Guardrails(max_length={}))
    texts = [variant.text for variant in result.variants]
    assert f"Trusted by {name}" not in texts
    if (value, unit) not in stated:
        assert f"Cut incident time by {value:,}{unit}" not in texts


# --- an OpenAI-compatible model, stood in for by a local server ------------------------------


class StandIn:
    def __init__(self) -> None:
        self.answer: Any = ["Cut incident time by 34%", "Cut incident time by 90%"]
        self.status = 200
        self.delay = 0.0
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []

    async def completions(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(await request.json())
        self.authorizations.append(request.headers.get("Authorization", ""))
        await asyncio.sleep(self.delay)
        content = self.answer if isinstance(self.answer, str) else json.dumps(self.answer)
        body = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        return web.json_response(body, status=self.status)


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn()


@pytest.fixture
async def model(aiohttp_server: Any, stand_in: StandIn) -> ChatModel:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", stand_in.completions)
    server: TestServer = await aiohttp_server(app)
    return ChatModel(str(server.make_url("/v1")), "sk-test", "small-model", timeout_s=1.0)


async def test_a_models_suggestions_pass_the_same_checks(model: ChatModel) -> None:
    async with aiohttp.ClientSession() as session:
        suggested = await model.suggest(session, "headline", "Original", "analytical", SITE)
    drafted = [("analytical", text, "model") for text in suggested.texts]
    result = checked("headline", "Original", drafted, KNOWN, RAILS)
    assert [variant.text for variant in result.variants] == ["Cut incident time by 34%"]
    assert [refused.text for refused in result.refused] == ["Cut incident time by 90%"]


async def test_the_model_is_asked_with_the_key_the_style_and_the_sites_facts(
    model: ChatModel, stand_in: StandIn
) -> None:
    async with aiohttp.ClientSession() as session:
        await model.suggest(session, "primary_cta", "Book a demo", "consensus", SITE)
    [request] = stand_in.requests
    assert stand_in.authorizations == ["Bearer sk-test"]
    assert request["model"] == "small-model"
    asked = request["messages"][-1]["content"]
    assert "Current text: Book a demo" in asked
    assert "who else uses it" in asked
    assert "- 10,000+ teams" in asked


@pytest.mark.parametrize(
    ("status", "answer", "delay", "reason"),
    [
        (500, [], 0.0, "the model answered HTTP 500"),
        (200, "Sure! Here are some ideas", 0.0, "the model did not answer with a JSON array"),
        (200, {"not": "a list"}, 0.0, "the model did not answer with a JSON array"),
        (200, [1, None, ""], 0.0, "the model suggested nothing usable"),
        (200, [], 2.0, "the model could not be reached (TimeoutError)"),
    ],
)
async def test_a_model_that_fails_gives_no_suggestions_and_a_reason(
    model: ChatModel, stand_in: StandIn, status: int, answer: Any, delay: float, reason: str
) -> None:
    stand_in.status, stand_in.answer, stand_in.delay = status, answer, delay
    async with aiohttp.ClientSession() as session:
        suggested = await model.suggest(session, "headline", "Original", "intuitive", SITE)
    assert suggested.texts == ()
    assert suggested.reason == reason


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b'{"choices": []}', b'{"choices": [{"message": {"content": 7}}]}', b"\xff"],
)
def test_answers_that_are_not_chat_completions_are_no_suggestions(raw: bytes) -> None:
    assert parse_answer(raw).texts == ()


def test_a_code_fence_around_the_array_is_tolerated() -> None:
    content = '```json\n["Start now"]\n```'
    raw = json.dumps({"choices": [{"message": {"content": content}}]}).encode()
    assert parse_answer(raw).texts == ("Start now",)


@pytest.mark.parametrize(
    ("claim", "subheadline"),
    [
        ("Cut incident time by 34%.", "The evidence first: cut incident time by 34%."),
        (
            "Acme Logistics: 83% fewer incidents.",
            "The evidence first: Acme Logistics: 83% fewer incidents.",
        ),
        ("SLA of 99.9% uptime.", "The evidence first: SLA of 99.9% uptime."),  # an acronym
    ],
)
def test_a_claim_after_a_colon_keeps_its_names_capitalised(claim: str, subheadline: str) -> None:
    found = facts(claim)
    texts = [text for _, text, _ in drafts("subheadline", "A sub-headline", found)]
    assert subheadline in texts
