"""Reports end to end: events through the worker, then `refract report` and the admin API."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient

from refract.analytics import reports
from refract.analytics.reports import experiment_report
from refract.analytics.stats.engine import Settings
from refract.analytics.stats.report import Decision, Report, Row
from refract.rules.config import Config, load_config
from tests.conftest import AdminFactory, clean_redis
from tests.support.worker import RULES, SITE, drain, exposure, pageview, send

REPOSITORY = Path(__file__).resolve().parents[1]
T0 = 1_780_000_000.0
VISITORS = 4000


@pytest.fixture
async def filled(redis_url: str, tmp_path: Path) -> Path:
    """Aggregates of 4,000 visitors: control converts 10 %, bold 15 %; the config to read them."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    client = redis.Redis.from_url(redis_url)
    sent = []
    for index in range(VISITORS):
        visitor, variant = f"{index:032x}", ("control", "bold")[index % 2]
        sent += [pageview(visitor, T0 + index), exposure(visitor, variant, T0 + index + 1)]
        if (index // 2) % 20 < (2 if variant == "control" else 3):
            sent.append(pageview(visitor, T0 + index + 2, "/thanks"))
    await send(client, *sent)
    await drain(client, rules)
    await client.aclose()
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n[rules]\ndirectory = "{rules}"\n'
        f'[[sites]]\nhost = "*"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return config


async def test_the_report_of_aggregated_events_ships_the_better_variant(
    filled: Path, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    report = await experiment_report(
        client, load_config(filled), SITE, "hero", Settings(method="fixed")
    )
    await client.aclose()
    assert report.srm["visitors"] == {"control": 2000, "bold": 2000}
    assert (report.decision.action, report.decision.variant) == ("ship", "bold")
    [demo] = [r for r in report.results if r.segment == "all" and r.measure == "conversion"
              and r.metric == "demo"]  # fmt: skip
    assert (demo.control_mean, demo.mean) == pytest.approx((0.10, 0.15))


def refract(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refract.admin.cli", "--config", str(config), "report", *args],
        capture_output=True, text=True, cwd=REPOSITORY, timeout=60,
    )  # fmt: skip


@pytest.mark.slow
def test_refract_report_prints_the_decision_and_a_table(filled: Path) -> None:
    result = refract(filled, "hero", "--method", "fixed")
    assert result.returncode == 0, result.stderr
    assert "Decision: ship bold" in result.stdout
    assert "demo (primary)" in result.stdout


@pytest.mark.slow
def test_refract_report_gives_json_and_csv(filled: Path) -> None:
    document = json.loads(refract(filled, "hero", "--format", "json").stdout)
    assert document["variants"] == ["control", "bold"]
    header = refract(filled, "hero", "--format", "csv").stdout.splitlines()[0]
    assert header.startswith("metric,measure,role,segment,variant")


@pytest.mark.slow
def test_refract_report_names_the_experiments_it_knows(filled: Path) -> None:
    result = refract(filled, "nope")
    assert result.returncode == 2
    assert 'no experiment "nope" in the rules (known: hero)' in result.stderr


@pytest.fixture
async def admin(filled: Path, admin_api: AdminFactory) -> TestClient[Any, Any]:
    return await admin_api(load_config(filled), role="executive")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/experiments/hero/report", 200),
        ("/api/experiments/hero/report?method=fixed&correction=bh", 200),
        ("/api/experiments/nope/report", 404),
        ("/api/experiments/hero/report?method=magic", 422),
    ],
)
async def test_the_admin_api_serves_reports(
    admin: TestClient[Any, Any], path: str, status: int
) -> None:
    response = await admin.get(path)
    assert response.status == status
    body = await response.json()
    assert ("decision" in body) if status == 200 else ("error" in body)


FORMULAS = ['=HYPERLINK("http://evil","x")', "+1+cmd", "-1+cmd", "@SUM(A1)", "\t=1", "\r=1"]


def report_with(segments: list[str]) -> Report:
    """A report whose result rows carry ``segments`` (text the aggregates store as given)."""
    rows = [
        Row("demo", "conversion", "primary", segment, "bold", 100, 100, 0.1, 0.15, -0.5,
            -0.75, math.nan, 0.04, 0.04, 0.9, 0.01, True, "exact", False)
        for segment in segments
    ]  # fmt: skip
    return Report(
        "hero", "", "sequential", 0.05, "holm", ["2026-05-01"], ["control", "bold"], {},
        Decision("keep_running", None, []), rows,
    )  # fmt: skip


async def test_the_report_csv_defuses_formulas_and_is_a_download(
    redis_url: str, admin_api: AdminFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the report CSV was written by analytics/reports.py, not the one writer."""

    async def fake_report(*args: Any) -> Report:
        return report_with(FORMULAS)

    monkeypatch.setattr(reports, "experiment_report", fake_report)
    config = Config.model_validate(
        {"redis": {"url": redis_url}, "sites": [{"host": "*", "id": SITE, "origin": "http://x"}]}
    )
    admin = await admin_api(config, role="executive")
    response = await admin.get("/api/experiments/hero/report?format=csv")
    assert response.status == 200
    assert response.content_type == "text/csv"
    disposition = f'attachment; filename="report-{SITE}-hero.csv"'
    assert response.headers["Content-Disposition"] == disposition
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert list(rows[0]) == list(reports.RESULT_COLUMNS)
    assert [row["segment"] for row in rows] == ["'" + text for text in FORMULAS]
    assert (rows[0]["lift"], rows[0]["ci_low"]) == ("-0.5", "-0.75")  # numbers stay numbers
    assert rows[0]["ci_high"] == ""  # nothing to compute: an empty cell, not "nan"
    assert rows[0]["significant"] == "true"
