"""A condition's value is of its field's kind: Python reads true as 1, so `value = true` on a
number field or `value = 1` on a true-or-false one matched quietly (an outside check)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from refract.rules.schema import Condition


@pytest.mark.parametrize(
    ("condition", "hint"),
    [
        ({"field": "visitor.sessions", "value": True}, "is a number"),
        ({"field": "visitor.sessions", "op": "in", "value": [1, True]}, "is a number"),
        ({"field": "segment.intent", "op": "gte", "value": True}, "needs a number value"),
        ({"field": "account.target", "value": 1}, "is true or false"),
        ({"field": "account.target", "op": "ne", "value": "yes"}, "is true or false"),
        ({"field": "visitor.returning", "value": 0}, "is true or false"),
    ],
)
def test_a_value_of_another_kind_than_its_field_is_refused(
    condition: dict[str, Any], hint: str
) -> None:
    with pytest.raises(ValidationError, match=hint):
        Condition.model_validate(condition)


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "visitor.sessions", "value": 3},
        {"field": "visitor.sessions", "op": "in", "value": [1, 2.5]},
        {"field": "segment.intent", "op": "gte", "value": 60},
        {"field": "account.target", "value": True},
        {"field": "visitor.returning", "op": "exists", "value": True},
        {"field": "utm.source", "value": "linkedin"},
    ],
)
def test_a_value_of_its_fields_kind_is_accepted(condition: dict[str, Any]) -> None:
    Condition.model_validate(condition)
