"""The overview, pipeline, account and site-health reads, from events the worker processed."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.admin import insights, site_health
from refract.analytics import heartbeats, visitors
from refract.analytics.effects import day_of
from refract.rules import events, keyspace
from refract.rules.account_csv import read_accounts_csv
from refract.rules.account_store import store_accounts
from refract.rules.accounts import Account
from refract.rules.config import Config
from refract.rules.industry import shipped_model
from tests.conftest import AdminFactory, clean_redis
from tests.support.admin import site_config
from tests.support.visitors import ACCOUNTS, visit
from tests.support.worker import RULES, SITE, T0, drain, pageview, send

REPOSITORY = Path(__file__).resolve().parents[1]
VISITORS = 4000
# hero runs; banner was stopped after its test (same visitors, same outcome: ship) by editing
# its file, so no decision was recorded; stale was archived before anyone saw it: no finished
# experiment has a recorded decision (tests/test_decision_bookkeeping.py records some)
MORE_RULES = """
[[experiments]]
key = "banner"
status = "stopped"
primary_metric = "demo"
mde = 0.5

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50

[[experiments]]
key = "stale"
status = "archived"
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
"""


def exposed(visitor: str, experiment: str, variant: str, at: float) -> events.Event:
    event = events.exposure(
        SITE, visitor, "s" + visitor, experiment=experiment, variant=variant,
        rules_version="v1", url="/",
    )  # fmt: skip
    event["time"] = at
    return event


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    # hero and banner are planned to detect the +50% these data carry, so their
    # group-sequential tests conclude at 2,000 visitors per arm (planned for +10%, they would
    # need about 15,000 and spend almost nothing at 2,000)
    planned = RULES.replace('key = "hero"\n', 'key = "hero"\nmde = 0.5\n', 1)
    (directory / "rules.toml").write_text(planned + MORE_RULES)
    return directory


@pytest.fixture
async def results(redis_url: str, rules: Path, admin_api: AdminFactory) -> TestClient[Any, Any]:
    """4,000 visitors in hero and banner: control converts 10 %, bold 15 % (demo is worth 100)."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    sent = []
    for index in range(VISITORS):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        sent += [
            pageview(visitor, T0 + index),
            exposed(visitor, "hero", variant, T0 + index + 1),
            exposed(visitor, "banner", variant, T0 + index + 1),
        ]
        if (index // 2) % 20 < (2 if variant == "control" else 3):
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, rules)
    await client.aclose()
    return await admin_api(
        site_config(redis_url, rules={"directory": str(rules)}), role="executive"
    )


async def test_the_overview_gives_decisions_lifts_win_rate_and_revenue_impact(
    results: TestClient[Any, Any],
) -> None:
    response = await results.get("/api/overview")
    assert response.status == 200
    body = await response.json()
    [hero] = body["active_experiments"]
    assert hero["key"] == "hero"
    assert hero["decision"]["action"] == "ship", hero["decision"]["reasons"]
    assert hero["decision"]["variant"] == "bold"
    [bold] = hero["variants"]
    assert (bold["control_rate"], bold["rate"]) == pytest.approx((0.10, 0.15))
    assert bold["ci_low"] < bold["lift"] < bold["ci_high"]
    assert bold["lift"] == pytest.approx(0.5, abs=0.02)
    finished = body["finished_experiments"]
    assert (finished["count"], finished["shipped"], finished["win_rate"]) == (2, 0, None)
    assert finished["unrecorded"] == ["banner", "stale"]
    reports = {e["key"]: e["report_now"] for e in finished["experiments"]}
    assert reports == {"banner": "ship", "stale": "keep_running"}
    # 2,000 bold visitors earned 15 - 10 = 5 more per visitor than control in hero (running,
    # its report says ship); banner was never promoted, so it shipped nothing
    impact = body["revenue_impact"]
    assert impact["experiments"] == ["hero"]
    assert impact["value"] == pytest.approx(2000 * 5.0, rel=0.02)
    assert impact["low"] < impact["value"] < impact["high"]
    assert hero["revenue_impact"]["value"] == pytest.approx(2000 * 5.0, rel=0.02)
    assert "not booked revenue" in impact["basis"]


async def test_the_overview_as_csv_has_a_row_per_variant(results: TestClient[Any, Any]) -> None:
    response = await results.get("/api/overview?format=csv")
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(insights.OVERVIEW_COLUMNS)
    assert [(row["experiment"], row["variant"], row["decision"]) for row in rows] == [
        ("hero", "bold", "ship")
    ]
    assert float(rows[0]["revenue"]) == pytest.approx(10_000, rel=0.02)
    assert rows[0]["significant"] == "true"


async def test_the_overview_counts_visitors_of_the_last_minutes(
    redis_url: str, rules: Path, admin_api: AdminFactory
) -> None:
    await clean_redis(redis_url)
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    await send(
        client,
        pageview("a", now - 1, new_session=True),
        pageview("a", now, "/pricing"),
        pageview("b", now),
        pageview("c", now - 3600),  # an hour ago: today, but not now
    )
    await drain(client, rules)
    await client.aclose()
    admin = await admin_api(site_config(redis_url), role="marketing")
    body = await (await admin.get("/api/overview")).json()
    assert body["visitors_now"] == {"count": 2, "minutes": 5}
    if body["today"]["day"] == day_of(now) == day_of(now - 3600):  # not just past midnight
        assert (body["today"]["visitors"], body["today"]["pageviews"]) == (3, 4)
    assert body["active_experiments"] == []
    assert body["revenue_impact"]["value"] is None


# --- accounts and pipeline -------------------------------------------------------------------


@pytest.fixture
async def accounts(redis_url: str, rules: Path) -> Config:
    """Helioforge (hot: pricing, security, demo) with two visitors, Northwind reading the blog,
    and an account whose CRM name a spreadsheet would run as a formula."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    listed = [
        *read_accounts_csv(ACCOUNTS),
        Account("formula-example.com", '=HYPERLINK("http://evil.example")', employees=30),
    ]
    await store_accounts(client, SITE, listed)
    await send(
        client,
        *[visit("buyer", T0 + i, tag, "helioforge.io") for i, tag in
          enumerate(["pricing", "security", "pricing", "demo_request", "case_study"])],
        visit("colleague", T0 + 100, "pricing", "helioforge.io"),
        *[visit("reader", T0 + i, "blog", "northwind-logistics.com") for i in range(5)],
        visit("odd", T0, "blog", "formula-example.com"),
    )  # fmt: skip
    await drain(client, rules)
    await client.aclose()
    return site_config(redis_url)


async def test_the_pipeline_sums_expected_values_by_band_and_says_where_they_come_from(
    accounts: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(accounts, role="sales_manager")
    hot = (await (await admin.get("/api/accounts/hot?limit=10")).json())["accounts"]
    body = await (await admin.get("/api/pipeline?top=2")).json()
    values = {account["domain"]: account["prediction"]["expected_value"] for account in hot}
    assert body["expected_value"] == pytest.approx(sum(values.values()))
    assert body["accounts"] == {"counted": 3, "seen": 3}
    assert body["sources"] == {"priors": 3}
    assert "priors" in body["basis"]
    assert body["currency"] == shipped_model("saas").revenue.currency
    for grouping in ("by_intent", "by_budget"):
        assert sum(group["expected_value"] for group in body[grouping]) == pytest.approx(
            body["expected_value"]
        )
        assert sum(group["accounts"] for group in body[grouping]) == 3
    budgets = {group["band"]: group["accounts"] for group in body["by_budget"]}
    assert budgets["enterprise"] == 2  # Helioforge 1,250 and Northwind 4,800 employees
    assert budgets["smb"] == 1
    top = [account["domain"] for account in body["top"]]
    assert len(top) == 2
    assert top == sorted(values, key=lambda domain: -values[domain])[:2]


async def test_the_pipeline_as_csv_lists_every_counted_account_safely(
    accounts: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(accounts, role="sales_manager")
    response = await admin.get("/api/pipeline?format=csv")
    assert response.status == 200
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(insights.PIPELINE_COLUMNS)
    assert {row["domain"] for row in rows} == {
        "helioforge.io", "northwind-logistics.com", "formula-example.com"
    }  # fmt: skip
    [odd] = [row for row in rows if row["domain"] == "formula-example.com"]
    assert odd["name"].startswith("'=")  # a spreadsheet shows it, never runs it


# Text a spreadsheet would run as a formula, one of each kind OWASP lists, as a CRM may hold it
FORMULA_NAMES = {
    "formula-example.com": '=HYPERLINK("http://evil.example")',
    "plus.example": "+cmd|' /C calc'!A0",
    "minus.example": "-2+3+cmd|' /C calc'!A0",
    "at.example": "@SUM(1+9)*cmd|' /C calc'!A0",
    "tab.example": "\t=1+1",
    "return.example": "\r=1+1",
}


def attachment(response: Any, name: str) -> None:
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="{name}"'


@pytest.fixture
async def formula_accounts(redis_url: str, rules: Path) -> Config:
    """Accounts whose CRM names a spreadsheet would run as formulas, each seen once."""
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await store_accounts(client, SITE, [Account(d, n) for d, n in FORMULA_NAMES.items()])
    await send(client, *[visit(f"v{i}", T0 + i, "blog", d) for i, d in enumerate(FORMULA_NAMES)])
    await drain(client, rules)
    await client.aclose()
    return site_config(redis_url)


async def test_the_hot_accounts_csv_defuses_formulas_and_is_a_download(
    accounts: Config, admin_api: AdminFactory
) -> None:
    """Regression: /api/accounts/hot?format=csv wrote `=HYPERLINK(...)` raw, as no download."""
    admin = await admin_api(accounts, role="sales_manager")
    response = await admin.get("/api/accounts/hot?format=csv&limit=10")
    attachment(response, f"hot-accounts-{SITE}.csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(visitors.HOT_COLUMNS)
    [odd] = [row for row in rows if row["domain"] == "formula-example.com"]
    assert odd["name"] == '\'=HYPERLINK("http://evil.example")'
    [hot] = [row for row in rows if row["domain"] == "helioforge.io"]
    assert hot["name"] == "Helioforge Systems"
    assert hot["target"] in ("true", "false")
    assert float(hot["expected_value"]) > 0  # numbers stay numbers


@pytest.mark.parametrize(
    ("path", "file"),
    [("/api/accounts/hot?format=csv", "hot-accounts"), ("/api/pipeline?format=csv", "pipeline")],
)
async def test_every_formula_start_is_defused_in_the_accounts_csvs(
    formula_accounts: Config, admin_api: AdminFactory, path: str, file: str
) -> None:
    admin = await admin_api(formula_accounts, role="admin")
    response = await admin.get(path)
    attachment(response, f"{file}-{SITE}.csv")
    rows = csv.DictReader(io.StringIO(await response.text()))
    names = {row["domain"]: row["name"] for row in rows}
    assert names == {domain: "'" + name for domain, name in FORMULA_NAMES.items()}


async def test_an_account_comes_with_its_roll_up_rank_and_latest_visitors(
    accounts: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(accounts, role="sales_manager")
    response = await admin.get("/api/accounts/WWW.Helioforge.io")  # as a CRM may write it
    assert response.status == 200
    body = await response.json()
    assert body["domain"] == "helioforge.io"
    assert body["account"]["name"] == "Helioforge Systems"
    assert (body["pageviews"], body["visitors"], body["rank"]) == (6, 2, 1)
    assert body["key_pages"][0] == "pricing"
    assert body["intent_band"] in ("warm", "hot")
    assert body["budget"] == "enterprise"
    assert body["prediction"]["source"] == "priors"
    latest = body["recent_visitors"]
    assert [visitor["pageviews"] for visitor in latest] == [1, 5]  # colleague, buyer: newest first
    assert all(visitor["handle"].startswith("vh_") for visitor in latest)  # never the cookie
    assert latest[1]["pageviews"] == 5
    assert latest[1]["intent"] > latest[0]["intent"]


async def test_a_listed_account_nobody_visited_has_no_roll_up(
    accounts: Config, admin_api: AdminFactory
) -> None:
    admin = await admin_api(accounts, role="sales_manager")  # executives get no recent_visitors
    body = await (await admin.get("/api/accounts/brightwater-health.co.uk")).json()
    assert (body["pageviews"], body["visitors"], body["rank"], body["recent_visitors"]) == (
        0, 0, None, []
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/accounts/unknown-example.com", 404),
        ("/api/accounts/nothing-here", 422),
        ("/api/accounts/co.uk", 422),
        ("/api/accounts/helioforge.io?site=nope", 404),
        ("/api/pipeline?limit=0", 422),
        ("/api/pipeline?top=many", 422),
        ("/api/pipeline?format=xml", 422),
        ("/api/pipeline?site=nope", 404),
    ],
)
async def test_bad_account_and_pipeline_requests_are_refused(
    accounts: Config, admin_api: AdminFactory, path: str, status: int
) -> None:
    admin = await admin_api(accounts, role="admin")
    response = await admin.get(path)
    assert response.status == status
    body = await response.json()
    if status == 422:
        assert body["errors"][0]["field"] in ("domain", "limit", "top", "format")


# --- site health -----------------------------------------------------------------------------


@pytest.fixture
def no_multiprocess_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


async def test_site_health_shows_workers_streams_dead_letters_and_todays_counters(
    redis_url: str,
    rules: Path,
    admin_api: AdminFactory,
    tmp_path: Path,
    no_multiprocess_env: None,
) -> None:
    await clean_redis(redis_url)
    config = site_config(redis_url, server={"data_dir": str(tmp_path / "data")})
    now = time.time()
    client = redis.Redis.from_url(redis_url)
    await send(client, pageview("a", now), pageview("b", now), b"not an event")
    await drain(client, rules)
    await send(client, pageview("c", now), pageview("d", now), pageview("e", now))
    await heartbeats.beat(client, "node-1")
    await client.aclose()
    admin = await admin_api(config, role="marketing")
    body = await (await admin.get("/api/site-health")).json()
    assert body["status"] == "ok"
    assert body["redis"]["up"] is True
    [worker] = body["workers"]
    assert (worker["name"], worker["pid"], worker["state"]) == ("node-1", os.getpid(), "consuming")
    [site] = body["sites"]
    assert site["dead_letters"] == 1
    assert sum(stream["lag"] for stream in site["streams"]) == 3  # sent after the drain
    assert all(stream["pending"] == 0 for stream in site["streams"])
    assert sum(stream["length"] for stream in site["streams"]) == 6
    if site["today"]["day"] == day_of(now):
        assert site["today"]["pageviews"] == 2  # what the worker applied
        assert site["today"]["events"] == {"pageview": 2}
    assert body["proxies"]["available"] is False
    assert "not available" in body["proxies"]["reason"]


async def test_site_health_without_a_worker_is_degraded_and_lists_streams_as_csv(
    redis_url: str, admin_api: AdminFactory, tmp_path: Path, no_multiprocess_env: None
) -> None:
    await clean_redis(redis_url)
    config = site_config(redis_url, server={"data_dir": str(tmp_path)})
    admin = await admin_api(config, role="admin")
    body = await (await admin.get("/api/site-health")).json()
    assert body["status"] == "degraded"
    assert any("no analytics worker" in warning for warning in body["warnings"])
    response = await admin.get("/api/site-health?format=csv")
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(site_health.STREAM_COLUMNS)
    assert [row["kind"] for row in rows] == ["events"] * config.events.shards + ["dead"]
    assert rows[0]["lag"] == ""  # no consumer group yet: unknown, not zero


async def test_the_dashboard_and_the_api_report_the_same_backlog_and_lag(
    redis_url: str, admin_api: AdminFactory, tmp_path: Path, no_multiprocess_env: None
) -> None:
    """Regression: the dashboard computed site health apart, with another backlog formula (a
    stream the worker had not read yet counted nothing) and another deadline."""
    await clean_redis(redis_url)
    config = site_config(redis_url, server={"data_dir": str(tmp_path)})
    client = redis.Redis.from_url(redis_url)
    read, unread = keyspace.stream(SITE, 0), keyspace.stream(SITE, 1)
    for index in range(5):
        await client.xadd(read, {"n": index})
    for index in range(4):
        await client.xadd(unread, {"n": index})  # no worker read it yet: no group
    await client.xgroup_create(read, keyspace.CONSUMER_GROUP, id="0")
    await client.xreadgroup(keyspace.CONSUMER_GROUP, "w1", {read: ">"}, count=2)  # not acked
    await heartbeats.beat(client, "node-1")
    await client.aclose()
    admin = await admin_api(config, role="marketing")
    [site] = (await (await admin.get("/api/site-health")).json())["sites"]
    streams = {stream["stream"]: stream for stream in site["streams"]}
    assert (streams[read]["lag"], streams[read]["pending"], streams[read]["backlog"]) == (3, 2, 5)
    assert (streams[unread]["lag"], streams[unread]["backlog"]) == (None, 4)
    assert site["backlog"] == 9  # every event not yet applied, read or not

    page = await admin.get("/health")
    assert page.status == 200
    text = await page.text()
    shown = re.search(r'<td data-backlog="([^"]*)">', text)
    assert shown is not None
    assert shown.group(1) == str(site["backlog"])
    for name, stream in streams.items():
        row = re.search(rf'<tr data-stream="{re.escape(name)}">(.*?)</tr>', text, re.S)
        assert row is not None, name
        for field in ("lag", "pending", "backlog"):
            cell = re.search(rf'data-{field}="([^"]*)"', row.group(1))
            assert cell is not None
            expected = "" if stream[field] is None else str(stream[field])
            assert cell.group(1) == expected, (name, field)
    assert 'data-workers="1"' in text


@pytest.mark.slow
async def test_site_health_reads_the_proxies_counters_on_the_same_node(
    redis_url: str, admin_api: AdminFactory, tmp_path: Path, no_multiprocess_env: None
) -> None:
    """Two proxy processes' multiprocess metric files, as `refract run` with workers = 2
    leaves them in data_dir/metrics."""
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    code = (
        "import sys; from proxy import metrics; "
        "metrics.FAIL_OPEN.labels('rewrite').inc(int(sys.argv[1])); "
        "metrics.UPSTREAM_ERRORS.labels('t', 'connect').inc(); "
        "metrics.request_counter('t', 'page', '5xx').inc(); "
        "metrics.request_counter('t', 'page', '2xx').inc(10)"
    )
    for amount in ("2", "3"):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, amount, cwd=REPOSITORY,
            env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics)},
        )  # fmt: skip
        async with asyncio.timeout(60):
            assert await process.wait() == 0
    await clean_redis(redis_url)
    admin = await admin_api(site_config(redis_url, server={"data_dir": str(tmp_path)}))
    proxies = (await (await admin.get("/api/site-health")).json())["proxies"]
    assert proxies["available"] is True
    assert proxies["processes"] == 2
    assert proxies["fail_open"] == {"rewrite": 5.0}
    assert proxies["upstream_errors"] == {"t/connect": 2.0}
    assert proxies["responses"] == {"5xx": 2.0, "2xx": 20.0}


async def test_site_health_says_when_redis_is_down(tmp_path: Path) -> None:
    config = site_config(f"unix://{tmp_path / 'nothing.sock'}", server={"data_dir": str(tmp_path)})
    client = redis.Redis.from_url(config.redis.url)
    try:
        body = await site_health.site_health(client, config)
    finally:
        await client.aclose()
    assert body["status"] == "down"
    assert body["redis"]["up"] is False
    assert body["sites"] is None


@pytest.mark.parametrize("path", ["/api/site-health?format=pdf", "/api/overview?format=xml"])
async def test_a_bad_format_is_422(redis_url: str, admin_api: AdminFactory, path: str) -> None:
    admin = await admin_api(site_config(redis_url), role="admin")
    response = await admin.get(path)
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "format"


# --- who may read what -----------------------------------------------------------------------

PATHS = ["/api/overview", "/api/pipeline", "/api/accounts/helioforge.io", "/api/site-health"]


@pytest.mark.parametrize("path", PATHS)
async def test_every_insight_needs_credentials(
    redis_url: str, admin_api: AdminFactory, path: str
) -> None:
    admin = await admin_api(site_config(redis_url), role=None)
    assert (await admin.get(path)).status == 401


@pytest.mark.parametrize(
    ("path", "role", "status"),
    [
        ("/api/overview", "sales_rep", 403),
        ("/api/overview", "executive", 200),
        ("/api/site-health", "executive", 403),
        ("/api/site-health", "sales_manager", 403),
        ("/api/site-health", "marketing", 200),
        ("/api/pipeline", "sales_rep", 200),
        ("/api/pipeline", "executive", 200),
    ],
)
async def test_each_insight_answers_its_roles_only(
    redis_url: str, admin_api: AdminFactory, path: str, role: str, status: int
) -> None:
    await clean_redis(redis_url)
    admin = await admin_api(site_config(redis_url), role=role)
    assert (await admin.get(path)).status == status


async def test_the_openapi_document_lists_the_insights_parameters(
    redis_url: str, admin_api: AdminFactory
) -> None:
    admin = await admin_api(site_config(redis_url), role=None)
    paths = (await (await admin.get("/api/openapi.json")).json())["paths"]
    names = {
        path: {parameter["name"] for parameter in paths[path]["get"]["parameters"]}
        for path in ("/api/overview", "/api/pipeline", "/api/accounts/{domain}",
                     "/api/site-health")
    }  # fmt: skip
    assert names == {
        "/api/overview": {"site", "format"},
        "/api/pipeline": {"site", "format", "limit", "top"},
        "/api/accounts/{domain}": {"domain", "site"},
        "/api/site-health": {"format"},
    }
    assert set(paths["/api/pipeline"]["get"]["responses"]["200"]["content"]) == {
        "application/json", "text/csv"
    }  # fmt: skip


async def test_the_worker_keeps_an_accounts_latest_visitors_only(
    redis_url: str, rules: Path
) -> None:
    await clean_redis(redis_url)
    client = redis.Redis.from_url(redis_url)
    await send(client, *[visit(f"v{i:02d}", T0 + i, "blog", "helioforge.io") for i in range(25)])
    await send(client, visit("v00", T0 + 100, "pricing", "helioforge.io"))  # back again
    await drain(client, rules)
    latest = await client.zrevrange(keyspace.account_recent(SITE, "helioforge.io"), 0, -1)
    await client.aclose()
    assert len(latest) == keyspace.ACCOUNT_RECENT_VISITORS
    assert latest[0] == b"v00"
    assert latest[1:] == [f"v{i:02d}".encode() for i in range(24, 5, -1)]
