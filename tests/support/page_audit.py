"""Reading a dashboard page as a user would, in Chromium: axe-core's serious and critical
violations, the page's width when the window is narrow (WCAG 1.4.10 reflow), and the page
checks of page_checks.js. Shared by the dashboard's browser tests (test_dashboard_everywhere,
test_demo_traffic).

axe-core is a pinned, unmodified copy in tests/support/axe/ (MPL-2.0, its licence beside it),
injected as an init script so that the pages' Content-Security-Policy still applies to ours.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.async_api import Page

SUPPORT = Path(__file__).resolve().parent
AXE = SUPPORT / "axe" / "axe.min.js"
CHECKS = (SUPPORT / "page_checks.js").read_text()
VIEWPORTS: dict[str, dict[str, Any]] = {
    "phone": {"viewport": {"width": 375, "height": 812}, "is_mobile": True, "has_touch": True},
    "desktop": {"viewport": {"width": 1280, "height": 900}},
}
REFLOW_WIDTH = 320  # CSS px: WCAG 1.4.10
PHONE = "phone"


def slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "front"


async def width_at(page: Page, width: int) -> int:
    """The page's width when the window is ``width`` wide, once the charts have followed."""
    size = page.viewport_size or {"width": width, "height": 800}
    await page.set_viewport_size({"width": width, "height": size["height"]})
    await page.wait_for_timeout(400)  # plotly's responsive resize waits 100 ms, then draws
    scroll_width: int = await page.evaluate("document.documentElement.scrollWidth")
    await page.set_viewport_size(size)
    await page.wait_for_timeout(400)
    return scroll_width


async def axe(page: Page) -> list[str]:
    """axe-core's serious and critical violations: rule, impact and where."""
    result = await page.evaluate("axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
