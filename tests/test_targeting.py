"""Audiences and page tags: what matches, and that unknown is unknown."""

from __future__ import annotations

from typing import Any

import pytest

from refract.rules.schema import Audience, Condition, PageRule
from refract.rules.targeting import CompiledAudience, Facts, PageTagger, compile_condition

FACTS = Facts(
    values={
        "utm.medium": "CPC",
        "url.path": "/pricing",
        "visitor.returning": True,
        "visitor.sessions": 3,
        "visitor.tags_seen": ["pricing", "security"],
        "segment.style": "analytical",
        "referrer.host": "www.google.com",
    },
    confidence={"segment.style": 0.7},
)


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ({"field": "utm.medium", "value": "cpc"}, True),  # case-insensitive
        ({"field": "utm.medium", "op": "ne", "value": "cpc"}, False),
        ({"field": "utm.medium", "op": "in", "value": ["ppc", "cpc"]}, True),
        ({"field": "utm.medium", "op": "not_in", "value": ["ppc", "cpc"]}, False),
        ({"field": "visitor.tags_seen", "op": "contains", "value": "security"}, True),
        ({"field": "referrer.host", "op": "contains", "value": "google"}, True),
        ({"field": "url.path", "op": "prefix", "value": "/pri"}, True),
        ({"field": "referrer.host", "op": "matches", "value": r"\.google\."}, True),
        ({"field": "visitor.sessions", "op": "gte", "value": 3}, True),
        ({"field": "visitor.sessions", "op": "lte", "value": 2}, False),
        ({"field": "visitor.returning", "value": True}, True),
        ({"field": "segment.style", "value": "analytical", "min_confidence": 0.6}, True),
        ({"field": "segment.style", "value": "analytical", "min_confidence": 0.8}, False),
        ({"field": "segment.industry", "value": "saas"}, False),
        # unknown is not "not saas"
        ({"field": "segment.industry", "op": "ne", "value": "saas"}, False),
        ({"field": "segment.industry", "op": "not_in", "value": ["saas"]}, False),
        ({"field": "segment.industry", "op": "exists", "value": False}, True),
        ({"field": "utm.medium", "op": "exists", "value": True}, True),
        ({"field": "segment.style", "op": "exists", "value": False, "min_confidence": 0.9}, True),
    ],
    ids=lambda value: str(value) if isinstance(value, bool) else "",
)
def test_condition(condition: dict[str, Any], holds: bool) -> None:
    assert compile_condition(Condition(**condition))(FACTS) is holds


def audience(**conditions: list[dict[str, Any]]) -> CompiledAudience:
    return CompiledAudience.build(Audience(key="a", **conditions))  # type: ignore[arg-type]


def test_all_any_and_none_combine() -> None:
    assert audience(
        all=[{"field": "visitor.returning", "value": True}],
        any=[{"field": "utm.medium", "value": "email"}, {"field": "utm.medium", "value": "cpc"}],
        none=[{"field": "segment.style", "value": "intuitive"}],
    ).matches(FACTS)


def test_an_unknown_field_in_none_excludes_nobody() -> None:
    assert audience(
        all=[{"field": "visitor.returning", "value": True}],
        none=[{"field": "account.target", "value": True}],
    ).matches(FACTS)


def test_an_audience_on_a_segment_not_yet_known_matches_nobody() -> None:
    assert not audience(all=[{"field": "account.target", "value": True}]).matches(Facts({}))


@pytest.mark.parametrize(
    ("path", "tags"),
    [
        ("/", {"home"}),
        ("/pricing", {"pricing", "commercial"}),
        ("/customers/acme", {"case_study"}),
        ("/customers", set()),
        ("/docs/v2/pricing-api", {"commercial"}),
    ],
)
def test_page_tags(path: str, tags: set[str]) -> None:
    tagger = PageTagger(
        [
            PageRule(tag="home", paths=["/"]),
            PageRule(tag="pricing", paths=["/pricing"]),
            PageRule(tag="case_study", paths=["/customers/*"]),
            PageRule(tag="commercial", regex="pricing"),
        ]
    )
    assert tagger.tags(path) == tags
