"""What the report page says about its charts (admin/dashboard_views.py): a lift is drawn
when one is known, and when none is, the chart's caption says why instead."""

from __future__ import annotations

import pytest

from refract.admin.dashboard_views import report_view
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import build
from tests.support.pricing import PRICING, PRICING_METRICS, pricing_data

FIXED = Settings(method="fixed", planned_visitors=10_000)
NO_LIFT = "No lift yet: none of the 103 visitors in control has converted on signup so far"


@pytest.mark.parametrize(
    ("control_converted", "lift", "segments"),
    [
        (True, "Cumulative lift of signup over control: annual-first: -100.0%", "all: annual"),
        (False, NO_LIFT, NO_LIFT),  # 0 of 103 in control: a relative lift divides by 0
    ],
)
def test_the_lift_charts_captions_give_the_lift_or_say_why_there_is_none(
    control_converted: bool, lift: str, segments: str
) -> None:
    data = pricing_data(swap=not control_converted)  # swapped: control has 0 signups
    view = report_view(build(PRICING, PRICING_METRICS, data, FIXED).as_json())
    assert view["summaries"]["lift"].startswith(lift)
    assert segments in view["summaries"]["segments"]
