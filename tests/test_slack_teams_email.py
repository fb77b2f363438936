"""Slack, Teams and e-mail senders: what each receiver gets, what each answer means, and that
hostile values (account names and pages come from visitors and CRMs) stay data.

Slack and Teams are stood in for by aiohttp servers answering as they do; e-mail goes to a
real aiosmtpd server, and the test parses what it received."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from hypothesis import given, settings
from hypothesis import strategies as st

from refract.analytics.automations import email as email_sender
from refract.analytics.automations import incoming_webhook, slack, teams
from refract.analytics.automations.actions import Action, Delivery, Facts, SendContext, action_id
from refract.analytics.automations.render import message
from refract.rules.config import AutomationsConfig, DestinationConfig, SmtpConfig
from tests.conftest import free_port

Send = Callable[[SendContext, Action], Awaitable[Delivery]]


def an_action(to_owner: bool = False, **facts: Any) -> Action:
    subject = {"kind": "account", "id": "acme.com", "name": "Acme Corp"}
    shown: Facts = {
        "title": "Acme Corp is hot (intent 82)",
        "account": {
            "domain": "acme.com",
            "name": "Acme Corp",
            "industry": "Software",
            "employees": 1200,
            "country": "US",
        },
        "intent": 82,
        "band": "hot",
        "reasons": ["pricing page viewed (+30)", "3 visits this week (+20)"],
        "pages": ["/pricing", "/product/sso"],
        "owner": {"key": "jane", "name": "Jane Doe", "email": "jane@seller.test", "owner_id": "7"},
        "links": {"Open account": "https://refract.example/accounts/acme.com"},
    }
    shown.update(facts)  # type: ignore[typeddict-item]
    return {
        "id": action_id("hot-accounts", subject, "ev1", 0),  # type: ignore[arg-type]
        "site": "test",
        "automation": "hot-accounts",
        "when": "account_hot",
        "operation": "notify",
        "destination": "sales",
        "to_owner": to_owner,
        "subject": subject,  # type: ignore[typeddict-item]
        "facts": shown,
        "created": 1_714_000_000.0,
    }


# --- stand-ins ------------------------------------------------------------------------------


class Receiver:
    """A chat tool's incoming webhook: records each body, answers as it is told."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.answer = web.Response(text="ok")
        self.delay = 0.0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.bodies.append(await request.json())
        await asyncio.sleep(self.delay)
        answer, self.answer = self.answer, web.Response(text="ok")
        return answer


@pytest.fixture
async def receiver(aiohttp_server: Any) -> tuple[Receiver, str]:
    stand_in = Receiver()
    app = web.Application()
    app.router.add_post("/hook", stand_in.handle)
    server: TestServer = await aiohttp_server(app)
    return stand_in, str(server.make_url("/hook"))


class Mailbox:
    """An SMTP server's handler: keeps what it accepted; refuses recipients when told to."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.refuse_with = ""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse_with:
            return self.refuse_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        self.received.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


Context = Callable[..., SendContext]


@pytest.fixture
def context(session: aiohttp.ClientSession, client: redis.Redis) -> Context:
    def build(kind: str, url: str = "", smtp_port: int = 0, **destination: Any) -> SendContext:
        destination.setdefault("timeout", 2)
        config = DestinationConfig(kind=kind, url=url, **destination)  # type: ignore[arg-type]
        smtp = SmtpConfig(host="127.0.0.1", port=smtp_port or 1, security="none")
        automations = AutomationsConfig(destinations={"sales": config}, smtp=smtp)

        async def throttle() -> None:
            return None

        return SendContext(session, "sales", config, automations, client, throttle)

    return build


# --- Slack ----------------------------------------------------------------------------------


async def test_slack_gets_the_account_intent_reasons_pages_owner_and_links(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver

    delivery = await slack.send(context("slack", url), an_action())

    assert delivery == Delivery(ok=True, status=200, detail="200 ok")
    body = stand_in.bodies[0]
    assert body["text"] == "Acme Corp is hot (intent 82)"
    header, account, why, pages, footer, buttons = body["blocks"]
    assert header["text"]["text"] == "Acme Corp is hot (intent 82)"
    assert account["text"]["text"] == "*Acme Corp (acme.com)*\nSoftware · 1,200 employees · US"
    assert [field["text"] for field in account["fields"]] == [
        "*Intent*\n82 (hot)",
        "*Owner*\nJane Doe (jane@seller.test)",
    ]
    assert why["text"]["text"] == "*Why*\n• pricing page viewed (+30)\n• 3 visits this week (+20)"
    assert pages["text"]["text"] == "*Pages seen*\n• /pricing\n• /product/sso"
    assert (
        footer["elements"][0]["text"]
        == "2024-04-24 23:06 UTC · automation hot-accounts · account_hot"
    )
    assert [(b["text"]["text"], b["url"]) for b in buttons["elements"]] == [
        ("Open account", "https://refract.example/accounts/acme.com")
    ]


async def test_slack_mrkdwn_shows_hostile_values_as_text(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver
    account = {"domain": "evil.test", "name": "<!channel> <https://evil.test|login> & *Co*"}

    await slack.send(context("slack", url), an_action(account=account))

    text = stand_in.bodies[0]["blocks"][1]["text"]["text"]
    assert text == (
        "*&lt;!channel&gt; &lt;https://evil.test|login&gt; &amp; "
        "\u200b*\u200bCo\u200b*\u200b (evil.test)*"
    )


async def test_a_value_past_slacks_limit_is_cut_with_an_ellipsis(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver

    await slack.send(context("slack", url), an_action(title="Acme " * 100))

    header = stand_in.bodies[0]["blocks"][0]["text"]["text"]
    assert len(header) == slack.MAX_HEADER
    assert header.endswith("…")


ANSWERS = [  # (status, body, Retry-After) -> (ok, retry_after, gone, permanent)
    pytest.param(200, "ok", None, (True, None, False, False), id="ok"),
    pytest.param(429, "rate_limited", "30", (False, 30.0, False, False), id="rate-limited"),
    pytest.param(404, "no_service", None, (False, None, True, False), id="webhook-removed"),
    pytest.param(404, "no_team", None, (False, None, True, False), id="workspace-gone"),
    pytest.param(410, "channel_is_archived", None, (False, None, True, False), id="archived"),
    pytest.param(400, "invalid_payload", None, (False, None, False, True), id="bad-payload"),
    pytest.param(403, "action_prohibited", None, (False, None, False, True), id="prohibited"),
    pytest.param(500, "rollup_error", None, (False, None, False, False), id="server-error"),
]


@pytest.mark.parametrize(("status", "body", "retry_after", "meaning"), ANSWERS)
async def test_what_slacks_answer_means(
    receiver: tuple[Receiver, str],
    context: Context,
    status: int,
    body: str,
    retry_after: str | None,
    meaning: tuple[bool, float | None, bool, bool],
) -> None:
    stand_in, url = receiver
    headers = {"Retry-After": retry_after} if retry_after else {}
    stand_in.answer = web.Response(status=status, text=body, headers=headers)

    delivery = await slack.send(context("slack", url), an_action())

    assert (delivery.ok, delivery.retry_after, delivery.gone, delivery.permanent) == meaning
    assert delivery.status == status
    assert delivery.detail == f"{status} {body}"


async def test_a_receiver_slower_than_the_timeout_is_retried(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver
    stand_in.delay = 5

    delivery = await slack.send(context("slack", url, timeout=0.2), an_action())

    assert delivery == Delivery(ok=False, status=None, detail="timeout after 0.2 s")


async def test_a_refused_connection_is_retried(context: Context) -> None:
    delivery = await slack.send(context("slack", f"http://127.0.0.1:{free_port()}/"), an_action())

    assert (delivery.ok, delivery.status, delivery.permanent, delivery.gone) == (
        False,
        None,
        False,
        False,
    )
    assert delivery.detail.startswith("connection: ")


async def test_each_post_waits_for_the_rate_limiter(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver
    waited: list[int] = []
    base = context("slack", url)

    async def throttle() -> None:
        waited.append(len(stand_in.bodies))

    throttled = SendContext(
        base.session, base.name, base.destination, base.config, base.client, throttle
    )
    await slack.send(throttled, an_action())
    await teams.send(throttled, an_action())

    assert waited == [0, 1]  # each before its request


# --- Teams ----------------------------------------------------------------------------------


async def test_teams_gets_an_adaptive_card(
    receiver: tuple[Receiver, str], context: Context
) -> None:
    stand_in, url = receiver
    stand_in.answer = web.Response(status=202)

    delivery = await teams.send(context("teams", url), an_action())

    assert delivery.ok
    body = stand_in.bodies[0]
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.5")
    title, account, about, facts, why, pages, footer = card["body"]
    assert title["text"] == "Acme Corp is hot \\(intent 82\\)"
    assert account["text"] == "**Acme Corp \\(acme.com\\)**"
    assert about["text"] == "Software · 1,200 employees · US"
    assert facts["facts"] == [
        {"title": "Intent", "value": "82 \\(hot\\)"},
        {"title": "Owner", "value": "Jane Doe \\(jane@seller.test\\)"},
    ]
    assert (
        why["text"] == "**Why**\n\n- pricing page viewed \\(+30\\)\n- 3 visits this week \\(+20\\)"
    )
    assert pages["text"] == "**Pages seen**\n\n- /pricing\n- /product/sso"
    assert footer["isSubtle"]
    assert card["actions"] == [
        {
            "type": "Action.OpenUrl",
            "title": "Open account",
            "url": "https://refract.example/accounts/acme.com",
        }
    ]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("[login](https://evil.test)", "\\[login\\]\\(https://evil.test\\)"),
        ("**bold** _it_", "\\*\\*bold\\*\\* \\_it\\_"),
        ("- not a list", "\\- not a list"),
        ("1. not a list", "1\\. not a list"),
        ("{{DATE(2024-01-01T00:00:00Z)}}", "{\u200b{DATE\\(2024-01-01T00:00:00Z\\)}\u200b}"),
    ],
)
def test_teams_markdown_from_data_is_inert(raw: str, shown: str) -> None:
    assert teams.markdown(raw, 1000) == shown


@pytest.mark.parametrize(
    ("status", "gone", "permanent", "ok"),
    [(200, False, False, True), (404, True, False, False), (410, True, False, False),
     (400, False, True, False), (413, False, True, False), (503, False, False, False)],
)  # fmt: skip
async def test_what_teams_answer_means(
    receiver: tuple[Receiver, str],
    context: Context,
    status: int,
    gone: bool,
    permanent: bool,
    ok: bool,
) -> None:
    stand_in, url = receiver
    stand_in.answer = web.Response(status=status)

    delivery = await teams.send(context("teams", url), an_action())

    assert (delivery.ok, delivery.gone, delivery.permanent) == (ok, gone, permanent)


# --- e-mail ---------------------------------------------------------------------------------


async def test_an_email_goes_to_the_destination_and_the_owner(
    smtp_server: tuple[Mailbox, int], context: Context
) -> None:
    mailbox, port = smtp_server
    action = an_action(to_owner=True)

    delivery = await email_sender.send(
        context("email", smtp_port=port, to=["sales@seller.test"]), action
    )

    assert delivery.ok
    assert delivery.status == 250
    ((envelope, mail),) = mailbox.received
    assert envelope == ["sales@seller.test", "jane@seller.test"]
    assert mail["To"] == "sales@seller.test, Jane Doe <jane@seller.test>"
    assert mail["From"] == "refract@localhost"
    assert mail["Subject"] == "Acme Corp is hot (intent 82)"
    assert mail["Message-ID"] == f"<{action['id']}@localhost>"
    assert mail["X-Refract-Action"] == action["id"]
    plain = mail.get_body(("plain",))
    rich = mail.get_body(("html",))
    assert plain is not None
    assert rich is not None
    assert "Intent: 82 (hot)\r\nOwner: Jane Doe (jane@seller.test)" in plain.get_content()
    assert "<li>/pricing</li>" in rich.get_content()


async def test_the_owner_is_left_out_without_to_owner(
    smtp_server: tuple[Mailbox, int], context: Context
) -> None:
    mailbox, port = smtp_server

    await email_sender.send(
        context("email", smtp_port=port, to=["sales@seller.test"]), an_action(to_owner=False)
    )

    assert mailbox.received[0][0] == ["sales@seller.test"]


async def test_a_subject_or_name_cannot_add_a_header(
    smtp_server: tuple[Mailbox, int], context: Context
) -> None:
    mailbox, port = smtp_server
    owner = {"key": "x", "name": "Jane\r\nBcc: victim@evil.test", "email": "jane@seller.test"}
    action = an_action(to_owner=True, title="Hot\r\nBcc: victim@evil.test", owner=owner)

    await email_sender.send(context("email", smtp_port=port, to=[]), action)

    ((envelope, mail),) = mailbox.received
    assert envelope == ["jane@seller.test"]
    assert mail["Bcc"] is None
    assert mail["Subject"] == "Hot Bcc: victim@evil.test"


@pytest.mark.parametrize(
    "address",
    [
        "not an address",
        "a@b",
        "x@evil.test\r\nBcc: y@evil.test",
        "<a@b.test>",
        "a@b.test, c@d.test",
    ],
)
def test_an_address_that_is_not_plain_is_left_out(address: str) -> None:
    assert not email_sender.valid_address(address)


async def test_no_valid_recipient_is_permanent(
    smtp_server: tuple[Mailbox, int], context: Context
) -> None:
    mailbox, port = smtp_server

    delivery = await email_sender.send(context("email", smtp_port=port, to=["nobody"]), an_action())

    assert delivery == Delivery(ok=False, status=None, detail="no valid recipient", permanent=True)
    assert mailbox.received == []


@pytest.mark.parametrize(
    ("reply", "status", "permanent"),
    [("451 4.3.0 try again later", 451, False), ("550 5.1.1 no such user", 550, True)],
)
async def test_what_the_smtp_servers_refusal_means(
    smtp_server: tuple[Mailbox, int],
    context: Context,
    reply: str,
    status: int,
    permanent: bool,
) -> None:
    mailbox, port = smtp_server
    mailbox.refuse_with = reply

    delivery = await email_sender.send(
        context("email", smtp_port=port, to=["sales@seller.test"]), an_action()
    )

    assert (delivery.ok, delivery.status, delivery.permanent) == (False, status, permanent)


async def test_an_smtp_server_that_is_down_is_retried(context: Context) -> None:
    delivery = await email_sender.send(
        context("email", smtp_port=free_port(), to=["sales@seller.test"]), an_action()
    )

    assert (delivery.ok, delivery.status, delivery.permanent) == (False, None, False)


# --- hostile values, every fact --------------------------------------------------------------

HOSTILE = st.text(
    st.sampled_from(list("<>&*_~`[]()#|!{}\\\"'\r\n\t\u2028 aZ9é😀@.:/-=;")) | st.characters(),
    max_size=40,
)
HOSTILE_LONG = HOSTILE | HOSTILE.map(lambda text: text * 120)
URLS = st.sampled_from(["https://refract.example/a?b=c&d=<e>", "javascript:alert(1)", ""])


@st.composite
def hostile_actions(draw: st.DrawFn) -> Action:
    text = HOSTILE_LONG
    facts: Facts = {
        "title": draw(text),
        "account": {
            "domain": draw(text),
            "name": draw(text),
            "industry": draw(text),
            "employees": draw(st.integers(-5, 10**9)),
            "country": draw(text),
            "target": draw(st.booleans()),
        },
        "visitor": {"handle": draw(text), "email_domain": draw(text), "stage": draw(text)},
        "intent": draw(st.integers(0, 100)),
        "band": draw(text),
        "reasons": draw(st.lists(text, max_size=15)),
        "pages": draw(st.lists(text, max_size=15)),
        "owner": {"key": "k", "name": draw(text), "email": draw(text), "owner_id": ""},
        "experiment": {"name": draw(text), "decision": draw(text), "reason": draw(text)},
        "event": {"type": draw(text), "path": draw(text)},
        "links": draw(
            st.dictionaries(text, URLS | (URLS.map(lambda u: u + "x" * 2500)), max_size=8)
        ),
    }
    action = an_action(to_owner=True)
    action["automation"] = draw(HOSTILE)
    action["id"] = draw(HOSTILE)
    action["facts"] = facts
    return action


def mrkdwn_strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn":
            yield value["text"]
        for inner in value.values():
            yield from mrkdwn_strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from mrkdwn_strings(inner)


@settings(max_examples=150, deadline=None)
@given(hostile_actions())
def test_slack_mrkdwn_never_carries_markup_from_data(action: Action) -> None:
    body = slack.payload(action)

    for text in [body["text"], *mrkdwn_strings(body["blocks"])]:
        assert not {"<", ">"} & set(text)
        assert re.fullmatch(r"([^&]|&(amp|lt|gt);)*", text, re.DOTALL)


@settings(max_examples=150, deadline=None)
@given(hostile_actions())
def test_slack_limits_always_hold(action: Action) -> None:
    body = slack.payload(action)

    assert len(body["text"]) <= slack.MAX_FALLBACK
    assert len(body["blocks"]) <= slack.MAX_BLOCKS
    for block in body["blocks"]:
        if block["type"] == "header":
            assert 0 < len(block["text"]["text"]) <= slack.MAX_HEADER
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= slack.MAX_SECTION
            assert len(block.get("fields", [])) <= slack.MAX_FIELDS
            assert all(len(field["text"]) <= slack.MAX_FIELD for field in block.get("fields", []))
        if block["type"] == "actions":
            for button in block["elements"]:
                assert 0 < len(button["text"]["text"]) <= slack.MAX_BUTTON
                assert len(button["url"]) <= slack.MAX_URL
                assert button["url"].startswith("https://")


@settings(max_examples=150, deadline=None)
@given(hostile_actions())
def test_teams_cards_stay_under_28_kb(action: Action) -> None:
    assert len(incoming_webhook.encode(teams.payload(action))) <= teams.MAX_BYTES


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [value or "" for name, value in attrs if name == "href"]


@settings(max_examples=150, deadline=None)
@given(hostile_actions())
def test_email_html_carries_no_markup_from_data(action: Action) -> None:
    mail = email_sender.build(action, "refract@seller.test", [])
    rich = mail.get_body(("html",))
    assert rich is not None
    parser = Tags()

    parser.feed(rich.get_content())

    assert parser.tags <= {"html", "body", "h2", "h3", "p", "br", "strong", "table", "tr", "th",
                           "td", "ul", "li", "a"}  # fmt: skip
    assert set(parser.hrefs) <= {link.url for link in message(action).links}


@settings(max_examples=150, deadline=None)
@given(hostile_actions())
def test_email_headers_never_carry_a_line_break_from_data(action: Action) -> None:
    action["facts"]["owner"]["email"] = "jane@seller.test"  # its name stays hostile
    to = email_sender.recipients_of(["sales@seller.test"], action)
    mail = email_sender.build(action, "refract@seller.test", to)

    assert {name for name, _ in mail.items()} == {
        "Subject", "From", "To", "Message-ID", "X-Refract-Action", "Auto-Submitted",
        "MIME-Version", "Content-Type",
    }  # fmt: skip
    for name, value in mail.items():
        assert not {"\r", "\n"} & set(str(value)), name
