"""One field list (rules/fields.py) for the schema, targeting and the worker: every field the
schema accepts is filled by who the list names, and every field filled is one the schema
accepts."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from pydantic import ValidationError

from refract.analytics.intel.psychographics import AXES
from refract.analytics.intel.scores import BUDGET_BANDS
from refract.analytics.revenue import predict
from refract.analytics.revenue.subjects import subject_from
from refract.analytics.segments import segment_fields
from refract.proxy.personalize import device_of
from refract.rules import fields
from refract.rules.accounts import Account
from refract.rules.fields import Filler
from refract.rules.industry import shipped_model
from refract.rules.schema import Condition
from refract.rules.segments import segment_only, uses_segment
from tests.conftest import BROWSER, ProxyFactory
from tests.support.cookies import visitor_cookie

# A visitor the models can say everything about: three sessions of buying signals, from a
# target account of known size and industry.
PROFILE = {
    "pageviews": "12",
    "sessions": "3",
    "tag:api_docs": "3",
    "tag:security": "3",
    "tag:case_study": "3",
    "tag:pricing": "3",
    "first_seen": "1780000000",
    "last_seen": "1780100000",
}
PAGES = ["/api_docs", "/security", "/case_study", "/pricing"] * 3
ACCOUNT = Account(domain="acme.com", name="Acme", industry="Software", employees=400, target=True)


def worker_fields() -> dict[str, object]:
    industry = shipped_model("saas")
    prediction = predict(subject_from(PROFILE, PAGES, ACCOUNT, None, industry), industry, None)
    return dict(segment_fields(PROFILE, PAGES, industry, ACCOUNT, prediction))


def test_every_field_the_worker_fills_is_targetable() -> None:
    filled = set(worker_fields())
    assert filled <= fields.SEGMENT_FIELDS, filled - fields.SEGMENT_FIELDS


def test_every_field_listed_for_the_worker_is_filled() -> None:
    filled = set(worker_fields())
    assert filled >= fields.SEGMENT_FIELDS, fields.SEGMENT_FIELDS - filled


def test_the_segment_writer_keeps_only_listed_fields() -> None:
    written = segment_only({"segment.style": ("analytical", 0.8), "segment.mood": ("calm", 1.0)})
    assert set(written) == {"segment.style"}


REQUEST_FIELDS = sorted(fields.filled_by(Filler.REQUEST) | {"url.query.plan"})


@pytest.fixture
def request_audiences(tmp_path: Path) -> Path:
    """One personalization per request field, appending the field's name to the page when the
    field is known on the request."""
    directory = tmp_path / "request-fields"
    directory.mkdir()
    rules = [
        f'[[audiences]]\nkey = "f{index}"\n'
        f'all = [{{ field = "{name}", op = "exists", value = true }}]\n\n'
        f'[[personalizations]]\nkey = "p{index}"\naudience = "f{index}"\n'
        f'changes = [{{ action = "append", selector = "body", value = "<i>{name}</i>" }}]\n'
        for index, name in enumerate(REQUEST_FIELDS)
    ]
    (directory / "rules.toml").write_text("\n".join(rules))
    return directory


async def test_every_field_listed_for_the_request_is_filled_by_the_proxy(
    proxy: ProxyFactory, request_audiences: Path
) -> None:
    client = await proxy(rules={"directory": str(request_audiences)})
    utm = "&".join(f"utm_{part}=x" for part in fields.UTM_PARTS)
    response = await client.get(
        f"/page?plan=pro&{utm}",
        headers={
            "User-Agent": BROWSER,
            "Referer": "https://www.example.com/search",
            "Cookie": visitor_cookie("0123456789abcdef0123456789abcdef", "0123456789abcdef"),
        },
    )
    page = (await response.read()).decode()
    missing = [name for name in REQUEST_FIELDS if f"<i>{name}</i>" not in page]
    assert missing == []


@pytest.mark.parametrize("name", sorted(fields.FIELDS))
def test_every_listed_field_is_accepted_in_a_condition(name: str) -> None:
    assert Condition(field=name, op="exists", value=True).field == name


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("country", "no geo-location database"),
        ("segment.company_size", "use segment.budget"),
        ("account.lists", "use account.target"),
    ],
)
def test_a_field_never_filled_is_refused_with_what_to_use_instead(name: str, hint: str) -> None:
    with pytest.raises(ValidationError, match=hint):
        Condition(field=name, value="x")


@pytest.mark.parametrize("name", ["segment.budget", "segment.deal_size", "segment.urgency"])
def test_fields_the_worker_writes_are_targetable(name: str) -> None:
    assert Condition(field=name, op="exists", value=True).field == name


@pytest.mark.parametrize("name", ["segment.style", "visitor.returning", "visitor.tags_seen"])
def test_gte_and_lte_need_a_number_field(name: str) -> None:
    with pytest.raises(ValidationError, match="compares numbers"):
        Condition(field=name, op="gte", value=3)


@pytest.mark.parametrize(
    ("used", "needed"),
    [
        ({"utm.source", "device"}, False),
        ({"segment.budget"}, True),
        ({"account.target"}, True),
        ({"visitor.sessions"}, True),
        ({"visitor.returning"}, False),  # the cookie says it
    ],
)
def test_the_proxy_reads_the_segment_only_for_fields_the_worker_fills(
    used: set[str], needed: bool
) -> None:
    assert uses_segment(frozenset(used)) is needed


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("segment.style", AXES["decision_style"].prior),
        ("segment.stage", AXES["buying_stage"].prior),
        ("segment.budget", [name for _, name in BUDGET_BANDS] + ["unknown"]),
        ("segment.intent_band", ["hot", "warm", "cold"]),
    ],
)
def test_report_vocabularies_are_the_models_values(name: str, values: Iterable[str]) -> None:
    assert set(fields.FIELDS[name].vocabulary) == set(values)


# Each of these passed the check and then matched nothing, or the wrong visitors: the query's
# "5" is never 5, a missing value was compared as the text "None", a list as one value.
@pytest.mark.parametrize(
    ("condition", "problem"),
    [
        ({"field": "url.query.page", "value": 5}, r'is text: quote the value, e.g. value = "5"'),
        ({"field": "utm.campaign", "op": "contains"}, r'"contains" needs a value'),
        ({"field": "utm.source", "op": "ne"}, r'"ne" needs a value'),
        ({"field": "utm.source", "value": ["google", "bing"]}, r'use "in" or "not_in"'),
        ({"field": "visitor.sessions", "op": "contains", "value": 3}, r"compares text"),
        ({"field": "account.target", "op": "prefix", "value": "t"}, r"compares text"),
        ({"field": "visitor.tags_seen", "value": "pricing"}, r"is a list: test an item"),
        ({"field": "segment.style", "value": "analyticl"}, r'did you mean "analytical"'),
        ({"field": "device", "op": "in", "value": ["phone"]}, r"desktop, mobile, tablet"),
    ],
)
def test_a_condition_that_cannot_hold_as_written_is_refused(
    condition: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        Condition.model_validate(condition)


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "url.query.page", "value": "5"},
        {"field": "utm.campaign", "op": "contains", "value": "spring"},
        {"field": "utm.source", "op": "in", "value": ["google", "bing"]},
        {"field": "visitor.tags_seen", "op": "contains", "value": "pricing"},
        {"field": "segment.style", "value": "Analytical"},
        {"field": "device", "value": "mobile"},
        {"field": "visitor.sessions", "op": "gte", "value": 3},
        {"field": "account.target", "value": True},
        {"field": "segment.industry", "value": "Fintech"},
    ],
)
def test_a_condition_of_its_fields_kind_is_accepted(condition: dict[str, object]) -> None:
    assert Condition.model_validate(condition).field == condition["field"]


def test_every_device_the_proxy_names_is_in_the_fields_vocabulary() -> None:
    agents = ["Mozilla/5.0 (iPad; CPU OS 17_0)", "Mozilla/5.0 (iPhone)", "Mozilla/5.0 (X11)"]
    assert {device_of(agent) for agent in agents} == set(fields.FIELDS["device"].vocabulary)
