"""A CRM file whose close date no period can hold (a rep's 9999-12-31 for "never") is a
refusal naming its line on the attribution API and channel ROI (409), and the page says it
where it says what attribution needs: never a 500."""

from __future__ import annotations

import pytest

from refract.analytics.crm.sync import outcomes_path
from refract.rules.config import Config
from tests.conftest import AdminFactory
from tests.test_admin_attribution import PERIOD, config  # noqa: F401 (the fixture)
from tests.test_attribution_journeys import SITE

FAR = "blue-dynamics.example,won,500.0,2026-11-01,9999-12-31\n"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/api/revenue/attribution?model=last&{PERIOD}", 409),
        ("/api/marketing/channel-roi?from=2026-03&to=2026-03", 409),
        (f"/attribution?{PERIOD}", 200),
    ],
)
async def test_a_close_date_past_any_period_is_refused_naming_its_line(
    admin_api: AdminFactory,
    config: Config,  # noqa: F811 (the fixture)
    path: str,
    status: int,
) -> None:
    kept = outcomes_path(config.server.data_dir, SITE)
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text("account_domain,outcome,amount,created,closed\n" + FAR)
    client = await admin_api(config)
    response = await client.get(path)
    text = await response.text()
    assert response.status == status, text
    assert f"{kept}:2: closed: 9999-12-31 is outside 1970-01-01 to 2999-12-31" in text
