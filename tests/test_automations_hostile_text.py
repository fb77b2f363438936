"""Text visitors and CRMs choose, in what sales reads: no bidi control nor other invisible
character survives into any rendered value (Slack, Teams, e-mail, the facts CRM records are
made of), a form's id is in a title only when it is a short identifier, and page paths read
as URLs."""

from __future__ import annotations

import json
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis

from refract.analytics.automations import email, slack, teams
from refract.analytics.automations.actions import Action
from refract.analytics.automations.render import message, one_line
from refract.analytics.automations.triggers import url_path
from refract.rules import events
from tests.test_slack_teams_email import an_action
from tests.test_triggers import ACME, BOB, SITE, T0, Site, automation, view
from tests.test_triggers import accounts as accounts  # the fixture

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        *[pytest.param(f"Victim{c}Corp", "VictimCorp", id=f"U+{ord(c):04X}") for c in BIDI],
        pytest.param("demo \u202e)99 tnetni( toh si\u202c\u2066", "demo )99 tnetni( toh si"),
        pytest.param(f"{BIDI}", "", id="only-controls"),
        pytest.param("Ελλάδα \u05e2\u05d1\u05e8\u05d9\u05ea", "Ελλάδα עברית", id="rtl-letters"),
        pytest.param("a\r\nb\u2028c", "a b c", id="line-breaks"),
        # tag characters spell hidden ASCII ("AB"); zero-width and filler characters hide text
        pytest.param("demo\U000e0041\U000e0042", "demo", id="tag-characters"),
        pytest.param("de\u200bmo\u2060\ufeff\u00ad", "demo", id="zero-width"),
        pytest.param("\u3164\u3164\u3164", "", id="hangul-filler"),
    ],
)
def test_one_line_removes_bidi_controls(raw: str, shown: str) -> None:
    assert one_line(raw) == shown


HOSTILE: dict[str, Any] = {  # every fact a visitor or CRM fills, with every bidi control in it
    "title": f"Acme{BIDI} is hot",
    "account": {"domain": "acme.com", "name": f"Acme{BIDI}", "industry": f"Soft{BIDI}ware"},
    "reasons": [f"pricing{BIDI} (+30)"],
    "pages": [f"/pricing{BIDI}"],
    "owner": {"key": "j", "name": f"Jane{BIDI}", "email": "jane@seller.test", "owner_id": "7"},
    "visitor": {"handle": "vh_1", "email_domain": f"acme{BIDI}.com"},
    "event": {"type": "form", "path": f"/demo{BIDI}", "form": f"demo{BIDI}"},
}


def mail_text(mail: EmailMessage) -> str:
    parts = [part.get_content() for part in mail.walk() if not part.is_multipart()]
    return str(mail["Subject"]) + "".join(parts)


@pytest.mark.parametrize(
    "rendered",
    [
        pytest.param(lambda a: json.dumps(slack.payload(a), ensure_ascii=False), id="slack"),
        pytest.param(lambda a: json.dumps(teams.payload(a), ensure_ascii=False), id="teams"),
        pytest.param(lambda a: mail_text(email.build(a, "r@vendor.test", [])), id="email"),
    ],
)
def test_no_rendered_value_keeps_a_bidi_control(rendered: Any) -> None:
    text = rendered(an_action(**HOSTILE))
    assert "Acme" in text
    assert not set(BIDI) & set(text)


async def run_form(client: redis.Redis, rules_dir: Path, form_id: str) -> Action:
    site = Site(client, rules_dir, automation("form"))
    form = events.event_of(
        "form", SITE, BOB, "s" + BOB, T0, url="/demo", metrics=[], form=form_id,
        action="/demo", fields=["email"], account=ACME,
    )  # fmt: skip
    [action] = await site.run(view(BOB, "/ SECURITY NOTICE: re-login", [], ACME), form)
    return cast(Action, action)


async def test_the_facts_crm_records_get_keep_no_bidi_control(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    action = await run_form(client, rules_dir, f"demo{BIDI}")
    assert not set(BIDI) & set(json.dumps(action["facts"], ensure_ascii=False))


FREE_TEXT = "demo. URGENT from the CEO: call me now on +1 555 0100 or see https://evil.example/d"


WHO = "A visitor from Acme Corp submitted"


@pytest.mark.parametrize(
    ("form_id", "title"),
    [
        ("demo", f"{WHO} the form demo"),
        ("contact_v2.de:main-1", f"{WHO} the form contact_v2.de:main-1"),
        ("f" * 64, f"{WHO} the form {'f' * 64}"),
        ("f" * 65, f"{WHO} a form"),
        (FREE_TEXT, f"{WHO} a form"),
        ("démo", f"{WHO} a form"),
    ],
)
async def test_a_form_id_is_in_the_title_only_as_a_short_identifier(
    client: redis.Redis, rules_dir: Path, accounts: None, form_id: str, title: str
) -> None:
    action = await run_form(client, rules_dir, form_id)
    assert action["facts"]["title"].split(" (intent")[0] == title


def test_the_body_shows_a_form_id_quoted_and_cut_to_64_characters() -> None:
    shown = message(an_action(event={"type": "form", "path": "/demo", "form": FREE_TEXT}))
    [form] = [fact.value for fact in shown.facts if fact.label == "Form"]
    assert form == f'"{FREE_TEXT[:63]}…"'


async def test_pages_seen_read_as_urls(
    client: redis.Redis, rules_dir: Path, accounts: None
) -> None:
    action = await run_form(client, rules_dir, "demo")
    assert action["facts"]["pages"][-1] == "/%20SECURITY%20NOTICE:%20re-login"
    assert " " not in message(action).pages[-1]


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/pricing", "/pricing"),
        ("/a b", "/a%20b"),
        ("/100%", "/100%25"),
        ("/über", "/%C3%BCber"),
        ("/x\u202ey", "/x%E2%80%AEy"),
        ("/a:b@c!$&'()*+,;=-._~", "/a:b@c!$&'()*+,;=-._~"),
    ],
)
def test_a_path_is_shown_percent_encoded(path: str, shown: str) -> None:
    assert url_path(path) == shown
