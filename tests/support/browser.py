"""A real Chromium for browser tests, shared by the tests of a module.

Playwright's async objects belong to the event loop that created them, and pytest-aiohttp
gives every test a loop of its own, so the browser lives on a loop in a thread of its own and
tests hand it whole visits: ``await chromium.visit(scenario)`` runs ``scenario(page)`` in a
fresh context there while the test's loop keeps serving the origin and the proxy.

A visit's context stays open until ``release()``: requests a page sends as it goes away
(``sendBeacon``, keepalive fetches) die with their context, so it is closed only once the
test has seen what it waits for.

Debian's ``/usr/bin/chromium`` is used; Playwright's own browser download is not.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    async_playwright,
)

EXECUTABLE = "/usr/bin/chromium"
# Headless Chromium says "HeadlessChrome", which Refract rightly counts as a bot and does not
# record. A context's user agent does not cover requests a page sends while it unloads, so
# the browser's own is replaced.
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36"
)
ARGS = [
    f"--user-agent={USER_AGENT}",
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
T = TypeVar("T")


@dataclass
class Visit:
    """What a page said while a scenario ran: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)


class Chromium:
    """One browser on a private loop; each visit gets a new context (no shared cookies)."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._playwright: Playwright
        self._browser: Browser
        self._playwright, self._browser = self._wait(self._launch())
        self._contexts: list[BrowserContext] = []

    async def visit(self, scenario: Callable[[Page], Awaitable[object]], **context: Any) -> Visit:
        """Run ``scenario`` on a new page in a new context, from any event loop; ``context``
        takes Playwright's context options (``viewport``, ``is_mobile``, ...)."""
        future = asyncio.run_coroutine_threadsafe(self._visit(scenario, context), self._loop)
        return await asyncio.wrap_future(future)

    def release(self) -> None:
        """Close the contexts of the visits so far."""
        self._wait(self._close_contexts())

    def close(self) -> None:
        self.release()
        self._wait(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def _wait(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    async def _launch(self) -> tuple[Playwright, Browser]:
        playwright = await async_playwright().start()
        browser = await playwright.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        return playwright, browser

    async def _close_contexts(self) -> None:
        while self._contexts:
            await self._contexts.pop().close()

    async def _shutdown(self) -> None:
        await self._browser.close()
        await self._playwright.stop()

    async def _visit(
        self, scenario: Callable[[Page], Awaitable[object]], options: dict[str, Any]
    ) -> Visit:
        context = await self._browser.new_context(**options)
        self._contexts.append(context)
        visit = Visit()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                visit.errors.append(f"console: {message.text}")

        context.on("console", on_console)
        context.on("weberror", lambda error: visit.errors.append(f"uncaught: {error.error}"))
        await scenario(await context.new_page())
        return visit


async def sign_in_to(page: Page, base: str, target: str, user: str, password: str) -> None:
    """Open ``target`` (a path with its query) through the sign-in page as ``user``, and wait
    until its document has loaded: what is audited then is that page, not the login it
    replaces."""
    await page.goto(f"{base}/login?next={quote(target, safe='/')}")
    await page.get_by_label("User name").fill(user)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(lambda url: urlsplit(url).path == urlsplit(target).path)
    await page.wait_for_load_state("load")
