"""Bot detection by User-Agent: the crawler list, automation signatures, and real browsers."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import pytest

from refract.proxy.bots import MATCHED_LENGTH, BotDetector, compile_patterns


@pytest.fixture(scope="module")
def detector() -> BotDetector:
    return BotDetector()


BOTS = {
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "googlebot smartphone": (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.6367.201 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ),
    "bingbot": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; "
        "+http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"
    ),
    "gptbot": (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko); compatible; GPTBot/1.2; "
        "+https://openai.com/gptbot"
    ),
    "ahrefsbot": "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "headless chrome": (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/124.0.0.0 Safari/537.36"
    ),
    "headless edge": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 HeadlessEdg/124.0.0.0"
    ),
    "phantomjs": (
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
        "PhantomJS/2.1.1 Safari/538.1"
    ),
    "puppeteer": "Mozilla/5.0 puppeteer",
    "Puppeteer": "Puppeteer/22.6.0",
    "playwright": "Mozilla/5.0 Playwright/1.43.0",
    "selenium": "Selenium/4.19.0 (python linux)",
    "lighthouse": (
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"
    ),
    "lighthouse cli": "Mozilla/5.0 Lighthouse/12.0",
    "curl": "curl/8.5.0",
    "curl after a prefix": "Mozilla/5.0 curl/8.5.0",
    "wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.31.0",
    "go": "Go-http-client/1.1",
    "okhttp": "okhttp/4.12.0",
    "axios": "axios/1.6.8",
    "node-fetch": "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "node fetch": "node",
    "java": "Java/17.0.10",
}

HUMANS = {
    "chrome windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36"
    ),
    "chrome mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
    ),
    "chrome android": (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36"
    ),
    "chrome ios": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
    ),
    "firefox windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
    ),
    "firefox linux": "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "firefox android": "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
    "safari mac": (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Safari/605.1.15"
    ),
    "safari iphone": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
    ),
    "safari ipad": (
        "Mozilla/5.0 (iPad; CPU OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
    ),
    "edge windows": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"
    ),
    "edge android": (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64"
    ),
    "samsung internet": (
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36"
    ),
    "opera": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0"
    ),
}


@pytest.mark.parametrize("user_agent", BOTS.values(), ids=BOTS.keys())
def test_bot_user_agent_is_a_bot(detector: BotDetector, user_agent: str) -> None:
    assert detector.is_bot(user_agent)


@pytest.mark.parametrize("user_agent", HUMANS.values(), ids=HUMANS.keys())
def test_browser_user_agent_is_not_a_bot(detector: BotDetector, user_agent: str) -> None:
    assert not detector.is_bot(user_agent)


@pytest.mark.parametrize("user_agent", ["", None, " ", "\t"], ids=repr)
def test_empty_or_missing_user_agent_is_a_bot(
    detector: BotDetector, user_agent: str | None
) -> None:
    assert detector.is_bot(user_agent)


def test_every_example_of_the_crawler_list_is_a_bot(detector: BotDetector) -> None:
    resource = files("crawleruseragents") / "crawler-user-agents.json"
    entries = json.loads(resource.read_text(encoding="utf-8"))
    examples = [example for entry in entries for example in entry.get("instances", [])]
    missed = [example for example in examples if not detector.is_bot(example)]
    assert examples
    assert missed == []


def test_repeated_user_agent_keeps_its_verdict(detector: BotDetector) -> None:
    user_agent = HUMANS["chrome windows"]
    assert [detector.is_bot(user_agent) for _ in range(3)] == [False] * 3


def test_signature_past_the_matched_length_is_not_seen(detector: BotDetector) -> None:
    padding = "x" * MATCHED_LENGTH
    assert not detector.is_bot(HUMANS["chrome windows"] + padding + " Googlebot/2.1")


def test_own_patterns_replace_the_list() -> None:
    detector = BotDetector(patterns=["Mozilla"])
    assert detector.is_bot(HUMANS["firefox linux"])
    assert not detector.is_bot(BOTS["curl"])


# (pattern, text): compiled into trees, each must find what re.search finds.
COMPILED = [
    ("Googlebot\\/", "x Googlebot/2.1"),
    ("Googlebot\\/", "Googlebot 2.1"),
    ("^curl", "curl/8"),
    ("^curl", "x curl/8"),
    ("[wW]get", "wget/1"),
    ("[wW]get", "WGET/1"),
    ("Ahrefs(Bot|SiteAudit)", "AhrefsSiteAudit/6"),
    ("Ahrefs(Bot|SiteAudit)", "AhrefsSite"),
    ("(^| )sentry\\/", "sentry/1"),
    ("(^| )sentry\\/", "a sentry/1"),
    ("(^| )sentry\\/", "asentry/1"),
    ("SSL Labs$", "SSL Labs"),
    ("SSL Labs$", "SSL Labs x"),
    ("AdsBot-Google([^-]|$)", "AdsBot-Google"),
    ("AdsBot-Google([^-]|$)", "AdsBot-Google-Mobile"),
    ("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", "BlogTraffic/1.23 Feed-Fetcher"),
    ("BlogTraffic\\/\\d\\.\\d+ Feed-Fetcher", "BlogTraffic/x Feed-Fetcher"),
    ("Spider[\\s\\S]*spider\\.com", "Spider x\nspider.com"),
    ("Automaton|Newsify Feed Fetcher", "Newsify Feed Fetcher"),
    ("colou?r", "color"),
    ("colou?r", "colour"),
    ("ab+c", "abbbc"),
    ("ab*c", "ac"),
    ("^node$", "node"),
    ("^node$", "nodes"),
    (".*bot", "robot"),
]


@pytest.mark.parametrize(("pattern", "text"), COMPILED)
def test_compiled_patterns_match_as_re_search_does(pattern: str, text: str) -> None:
    expected = re.search(pattern, text) is not None
    assert compile_patterns([pattern]).matches(text) is expected


def test_shorter_string_covers_a_longer_one_in_either_order() -> None:
    for patterns in (["bot", "bottle"], ["bottle", "bot"]):
        assert compile_patterns(patterns).matches("a bot")


def test_no_patterns_match_nothing() -> None:
    assert not compile_patterns([]).matches("anything")
