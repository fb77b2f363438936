"""A period of UTC days asked for in a query (``?from=YYYY-MM-DD&to=YYYY-MM-DD``): the one
definition the archive-reading endpoints and pages share (attribution, content impact,
audiences), with their bounds.

Days are written exactly ``YYYY-MM-DD`` (pydantic alone would take ``0`` or a timestamp),
from 1970 (the archive's times are epoch seconds) to 2999; an empty value (a page's cleared
date field) is the default. The period runs ``DEFAULT_DAYS`` up to ``to`` (today by
default) and at most ``MAX_DAYS``, a leap year: every day of it is a partition DuckDB reads.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from pydantic import Field, field_validator

from refract.admin.api import invalid_query
from refract.admin.api_reads import SiteQuery
from refract.analytics.attribution.report import DEFAULT_DAYS
from refract.rules.days import ISO_DAY

MAX_DAYS = 366
EARLIEST = date(1970, 1, 1)
LATEST = date(2999, 12, 31)


class DaysQuery(SiteQuery):
    """The site and the period's first and last day, as asked (``None``: the default)."""

    since: date | None = Field(
        default=None,
        alias="from",
        description=f"the period's first day, YYYY-MM-DD, UTC (default: {DEFAULT_DAYS} days "
        "up to `to`)",
    )
    until: date | None = Field(
        default=None,
        alias="to",
        description="the period's last day, YYYY-MM-DD, UTC (default: today)",
    )

    @field_validator("since", "until", mode="before")
    @classmethod
    def _a_day(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not ISO_DAY.fullmatch(value):
            raise ValueError("a day as YYYY-MM-DD")
        return value

    @field_validator("since", "until")
    @classmethod
    def _within_bounds(cls, value: date | None) -> date | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError(f"from {EARLIEST} to {LATEST}")
        return value

    def days(self, today: date | None = None) -> tuple[date, date]:
        """The first and last day, defaults filled in; refused (422, naming the parameter)
        when ``from`` is after ``to`` or the period is longer than ``MAX_DAYS``."""
        until = self.until or today or datetime.now(UTC).date()
        since = self.since or max(until - timedelta(days=DEFAULT_DAYS - 1), EARLIEST)
        if since > until:
            raise invalid_query("from", f"after `to` ({until})")
        if (until - since).days + 1 > MAX_DAYS:
            raise invalid_query("to", f"at most {MAX_DAYS} days after `from` ({since})")
        return since, until

    def form_fields(self) -> dict[str, str]:
        """The period form's values: the days asked for (empty: the defaults)."""
        return {
            "site": self.site or "",
            "from": self.since.isoformat() if self.since else "",
            "to": self.until.isoformat() if self.until else "",
        }
