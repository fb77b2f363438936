"""CRM deals as conversions (analytics/attribution/archive_journeys.py): a period's
conversions are the won deals that closed in it, each its own conversion at its close, with
the touches before it; and a close date no day arithmetic can hold is refused, not a crash."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from refract.analytics.attribution.journeys import DAY_S
from refract.analytics.revenue.outcomes import Outcome
from tests.test_attribution_cli import attribution, config  # noqa: F401 (the fixture)
from tests.test_attribution_journeys import T0, journeys_of, pageview

HEADER = "account_domain,outcome,amount,created,closed\n"
IN_PERIOD = "acme.com,won,9000,2026-02-20,2026-03-10\n"
# The period is 2026-03-01 to 2026-03-10; acme.com's visitor came by email on the 10th.
DEALS = [
    pytest.param(IN_PERIOD, 1, 9000.0, id="one-deal"),
    pytest.param(
        IN_PERIOD + "acme.com,won,4000,2026-02-01,2026-03-02\n", 2, 13000.0, id="repeat-customer"
    ),
    pytest.param(IN_PERIOD + "acme.com,won,1000,2025-01-01,2025-01-10\n", 1, 9000.0, id="before"),
    pytest.param(IN_PERIOD + "acme.com,won,7000,2026-03-01,2026-03-11\n", 1, 9000.0, id="after"),
    pytest.param(
        IN_PERIOD + "acme.com,won,900000000,2026-12-20,2027-06-30\n", 1, 9000.0, id="future"
    ),
    pytest.param(
        IN_PERIOD
        + "acme.com,won,1000,2025-01-01,2025-01-10\n"
        + "acme.com,won,4000,2026-02-01,2026-03-02\n"
        + "acme.com,lost,,2026-02-01,2026-03-05\n"
        + "acme.com,won,900000000,2026-12-20,2027-06-30\n"
        + "globex.example,won,500,2026-03-01,2026-03-03\n"
        + "globex.example,won,600,2026-03-01,2026-04-03\n",
        3,
        13500.0,
        id="all-at-once",
    ),
]


@pytest.mark.parametrize(("deals", "conversions", "value"), DEALS)
def test_the_periods_conversions_are_the_won_deals_that_closed_in_it(
    config: Path,  # noqa: F811 (the fixture)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    deals: str,
    conversions: int,
    value: float,
) -> None:
    outcomes = tmp_path / "deals.csv"
    outcomes.write_text(HEADER + deals)
    args = ("--from", "2026-03-01", "--outcomes", str(outcomes), "--model", "all")
    assert attribution(config, *args, "--format", "json") == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["conversions"], found["value"]) == (conversions, value)
    for model, result in found["models"].items():
        credit = result["credit"]
        assert sum(row["conversions"] for row in credit) == pytest.approx(conversions), model
        assert sum(row["value"] for row in credit) == pytest.approx(value), model


def test_each_deals_journey_holds_the_touches_before_its_close(tmp_path: Path) -> None:
    """Touches on the 5th and the 9th; deals closed the 6th and the 10th: the first deal's
    journey has the first touch, the renewal's both (the window reaches back past the first
    deal, as GA4's lookback does)."""
    fifth, ninth = T0 - 5 * DAY_S, T0 - DAY_S
    deals = [
        Outcome(2, "acme.com", "", True, 100.0, date(2026, 3, 1), date(2026, 3, 6)),
        Outcome(3, "acme.com", "", True, 200.0, date(2026, 3, 8), date(2026, 3, 10)),
    ]
    found = journeys_of(
        tmp_path,
        pageview("v1", "s1", fifth, referrer="https://google.com/", account="acme.com"),
        pageview("v1", "s2", ninth, utm={"source": "news", "medium": "email"}),
        metric=None,
        outcomes=deals,
        unit="account",
        since=date(2026, 3, 1),
    )
    end_of = {d: datetime(2026, 3, d, 23, 59, 59, tzinfo=UTC).timestamp() for d in (6, 10)}
    assert [(j.value, j.end, [t.time for t in j.touches]) for j in found] == [
        (100.0, end_of[6], [fifth]),
        (200.0, end_of[10], [fifth, ninth]),
    ]


@pytest.mark.parametrize("closed", ["9999-12-31", "3000-01-01"])
def test_a_close_date_past_any_period_is_refused_with_exit_2(
    config: Path,  # noqa: F811 (the fixture)
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    closed: str,
) -> None:
    outcomes = tmp_path / "deals.csv"
    outcomes.write_text(HEADER + f"globex.example,won,500,2026-11-01,{closed}\n")
    assert attribution(config, "--outcomes", str(outcomes)) == 2
    err = capsys.readouterr().err
    assert f"{outcomes}:2: closed: {closed} is outside 1970-01-01 to 2999-12-31" in err
    assert "leave the cell empty" in err
