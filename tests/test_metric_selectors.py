"""A click or form metric's selector is one a browser can parse: the beacon runs it with
closest(), and one it cannot parse never converts (an outside check found `[[[` accepted)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from refract.rules.schema import Metric


@pytest.mark.parametrize("kind", ["click", "form"])
@pytest.mark.parametrize("selector", ["[[[", 'a" onclick="x', "</script><script>", "div >> a"])
def test_a_selector_no_browser_parses_is_refused(kind: str, selector: str) -> None:
    field = "selector" if kind == "click" else "form"
    with pytest.raises(ValidationError, match="never convert"):
        Metric.model_validate({"key": "m", "kind": kind, field: selector})


@pytest.mark.parametrize(
    "selector",
    ["a.cta", "form#demo", 'a[href^="/pricing"]', "a:hover", ":not(.nav) > a", "a:has(img)"],
)
def test_a_selector_a_browser_parses_is_accepted(selector: str) -> None:
    Metric.model_validate({"key": "m", "kind": "click", "selector": selector})
