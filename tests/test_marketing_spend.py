"""Marketing spend: the CSV ``refract spend import`` reads (every bad cell reported with its
line, nothing stored on any), and how imports replace months in Redis, through the command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as redis

from refract.admin import cli
from refract.analytics.marketing.spend import (
    MAX_BYTES,
    MAX_ROWS,
    SpendFile,
    SpendRow,
    read_spend,
    read_spend_csv,
)
from refract.rules import keyspace
from refract.rules.problems import InvalidFileError

SITE = "shop"
HEADER = "month,channel,amount,currency,campaign\n"
GOOD = (
    HEADER + "2026-01,Paid Search,1200,USD,brand\n"
    '2026-01,paid social,"2,500.50",,\n'
    "2026-02,  EMAIL ,0,usd,newsletter\n"
)


def spend_file(tmp_path: Path, text: str, name: str = "spend.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, currency: str = "USD") -> list[str]:
    with pytest.raises(InvalidFileError) as error:
        read_spend_csv(spend_file(tmp_path, text), currency)
    return [str(problem) for problem in error.value.problems]


# --- the file -------------------------------------------------------------------------------


def test_a_good_file_is_read_with_channels_spelled_as_ga4_does(tmp_path: Path) -> None:
    found = read_spend_csv(spend_file(tmp_path, GOOD), "USD")

    assert found == SpendFile(
        (
            SpendRow("2026-01", "Paid Search", "brand", 1200.0),
            SpendRow("2026-01", "Paid Social", "", 2500.5),
            SpendRow("2026-02", "Email", "newsletter", 0.0),
        ),
        "USD",
    )
    assert found.months() == {"2026-01": (2, 3700.5), "2026-02": (1, 0.0)}


def test_without_a_currency_column_the_amounts_are_in_the_sites_currency(tmp_path: Path) -> None:
    path = spend_file(tmp_path, "Month, Channel ,AMOUNT\n2026-03,Display,10\n")

    expected = SpendFile((SpendRow("2026-03", "Display", "", 10.0),), "EUR")
    assert read_spend_csv(path, "EUR") == expected


@pytest.mark.parametrize(
    "campaign",
    ['<script>alert("x")</script>', 'o\'brien, "q4"', "r\u00e9duction \u2014 \u00e9t\u00e9"],
)
def test_a_campaign_of_markup_quotes_or_any_script_is_kept_as_text(
    tmp_path: Path, campaign: str
) -> None:
    quoted = '"' + campaign.replace('"', '""') + '"'
    path = spend_file(tmp_path, f"{HEADER}2026-03,Display,10,,{quoted}\n")

    assert read_spend_csv(path, "USD").rows == (SpendRow("2026-03", "Display", campaign, 10.0),)


ARABIC_MONTH = "\u0662\u0660\u0662\u0666-\u0660\u0661"  # 2026-01 in Arabic-Indic digits
BAD_CELLS = [
    ("2026-13,Email,1,,", "month: 2026-13 is not a month from 2000 to 2100", "YYYY-MM"),
    ("Jan 2026,Email,1,,", "month: 'Jan 2026' is not a month", "format it as text"),
    ("1999-12,Email,1,,", "month: 1999-12 is not a month from 2000 to 2100", "YYYY-MM"),
    (f"{ARABIC_MONTH},Email,1,,", f"month: '{ARABIC_MONTH}' is not a month", "YYYY-MM"),
    ("2026-01,Paid Serach,1,,", "channel: 'Paid Serach' is not a default channel group",
     "did you mean 'Paid Search'?"),
    ("2026-01,Google Ads,1,,", "channel: 'Google Ads' is not a default channel group",
     "Paid Search, Paid Social"),
    ("2026-01,,1,,", "channel: is empty", "GA4's default channel groups: Direct"),
    ("2026-01,Email,$100,,", "amount: '$100' is not a number", "no currency sign"),
    ("2026-01,Email,\u0661\u0662\u0663,,", "amount: '\u0661\u0662\u0663' is not a number",
     "a plain number"),  # Arabic-Indic digits, which float() reads
    ("2026-01,Email,\uff11\uff12,,", "amount: '\uff11\uff12' is not a number", "a plain number"),
    ("2026-01,Email,-5,,", "amount: '-5' is not an amount of 0 or more", "a plain number"),
    ("2026-01,Email,nan,,", "amount: 'nan' is not an amount of 0 or more", "a plain number"),
    ("2026-01,Email,1e400,,", "amount: '1e400' is not an amount of 0 or more", "a plain number"),
    ("2026-01,Email,inf,,", "amount: 'inf' is not an amount of 0 or more", "a plain number"),
    ("2026-01,Email,0x10,,", "amount: '0x10' is not a number", "a plain number"),
    ("2026-01\x1b,Email,1,,", "month: '2026-01\\x1b' is not a month", "YYYY-MM"),
    ("9" * 100 + ",Email,1,,", f"month: '{'9' * 60}...' is not a month", "YYYY-MM"),
    ("2026-01,Email\x1b,1,,", "channel: 'Email\\x1b' is not a default channel group",
     "did you mean 'Email'?"),
    ("2026-01,Email,2e12,,", "amount: 2e12 is over 1,000,000,000,000", "decimal separator"),
    ("2026-01,Email,,,", "amount: is empty", "a plain number"),
    ("2026-01,Email,1,US Dollar,", "currency: 'US Dollar' is not a currency code", "ISO 4217"),
    ("2026-01,Email,1,EUR,", "currency: EUR is not the site's currency, USD", "convert"),
    ("2026-01,Email,1,,x\x07y", "campaign: holds a control character", "printable"),
    ("2026-01,Email,1,," + "c" * 257, "campaign: is 257 characters long", "at most 256"),
    ("2026-01,Email,1", "has 3 values, the header has 5 columns", "quote values"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "message", "hint"), BAD_CELLS)
def test_a_bad_cell_is_reported_with_its_line_column_and_hint(
    tmp_path: Path, row: str, message: str, hint: str
) -> None:
    (problem,) = problems_of(tmp_path, HEADER + "2026-01,Display,1,,\n" + row + "\n")

    where, hinted = problem.split("\n    hint: ")
    assert where == f"{tmp_path / 'spend.csv'}:3: {message}"
    assert hint in hinted


def test_every_problem_of_the_file_is_reported_at_once(tmp_path: Path) -> None:
    found = problems_of(tmp_path, HEADER + "2026-1,Email,1,,\n2026-01,Emial,x,,\n")

    assert [problem.split("\n")[0].split(": ", 1)[1] for problem in found] == [
        "month: '2026-1' is not a month",
        "channel: 'Emial' is not a default channel group",
        "amount: 'x' is not a number",
    ]


BAD_FILES = [
    ("month,channel,amount,campain\n", ":1: campain: unknown column", "did you mean 'campaign'?"),
    ("month,amount\n2026-01,1\n", ":1: channel: column is missing", "columns: month, channel"),
    ("month,channel,amount,month\n", ":1: month: appears twice", "keep one column"),
    ("month;channel;amount\n2026-01;Email;1\n", ":1: the header has a single column", "';'"),
    ("month,channel,amount\n", ": has no spend", "one row per month and channel"),
    ("month,channel,amount\n2026-01,Email,1\n2026-01,email,2\n",
     ":3: channel: 2026-01 Email is already on line 2", "add the two amounts"),
    (HEADER + "2026-01,Email,1,usd,\n2026-02,Email,1,EUR,\n",
     ":3: currency: EUR differs from USD on line 2", "one currency per file"),
    ('month,channel,amount\n2026-01,Email,"1\n', ":2: is not valid CSV", "close every quoted"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message", "hint"), BAD_FILES)
def test_a_bad_file_is_reported_with_its_line(
    tmp_path: Path, text: str, message: str, hint: str
) -> None:
    (problem,) = problems_of(tmp_path, text)

    assert problem.startswith(f"{tmp_path / 'spend.csv'}{message}")
    assert hint in problem


def test_a_file_not_in_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spend.csv"
    path.write_bytes(b"month,channel,amount,campaign\n2026-01,Email,1,caf\xe9\n")

    with pytest.raises(InvalidFileError, match="cannot be read"):
        read_spend_csv(path, "USD")


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "spend.csv"
    with path.open("wb") as file:
        file.truncate(MAX_BYTES + 1)  # sparse: no bytes written

    with pytest.raises(InvalidFileError, match="is larger than 32 MiB"):
        read_spend_csv(path, "USD")


def test_a_file_over_the_row_limit_is_refused(tmp_path: Path) -> None:
    rows = "".join(f"2026-01,Email,1,,c{index}\n" for index in range(MAX_ROWS + 1))

    (problem,) = problems_of(tmp_path, HEADER + rows)

    assert f":{MAX_ROWS + 2}: has more than {MAX_ROWS:,} rows" in problem


# --- storing, through the command -------------------------------------------------------------


@pytest.fixture
def config(tmp_path: Path, redis_url: str, client: redis.Redis) -> Path:
    """A config for one site on the test Redis, emptied first (``client``)."""
    path = tmp_path / "refract.toml"
    path.write_text(
        f'[redis]\nurl = "{redis_url}"\n'
        f'[[sites]]\nhost = "shop.example"\nid = "{SITE}"\norigin = "http://127.0.0.1:9"\n'
    )
    return path


async def spend_import(config: Path, file: Path, *args: str) -> int:
    """``refract spend import``, in a thread: the command runs its own event loop."""
    arguments = ["--config", str(config), "spend", "import", str(file), *args]
    return await asyncio.to_thread(cli.main, arguments)


async def stored(client: redis.Redis) -> list[tuple[str, str, str, float]]:
    kept = await read_spend(client, SITE)
    return [(row.month, row.channel, row.campaign, row.amount) for row in kept.rows]


async def test_an_import_stores_the_rows_and_prints_each_month(
    config: Path, tmp_path: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await spend_import(config, spend_file(tmp_path, GOOD)) == 0

    assert await stored(client) == [
        ("2026-01", "Paid Search", "brand", 1200.0),
        ("2026-01", "Paid Social", "", 2500.5),
        ("2026-02", "Email", "newsletter", 0.0),
    ]
    assert (await read_spend(client, SITE)).currency == "USD"
    assert capsys.readouterr().out.splitlines() == [
        "shop: 3 spend rows stored in USD",
        "  2026-01: 2 rows, 3,700.50 USD",
        "  2026-02: 1 rows, 0.00 USD",
    ]


async def test_a_bad_file_stores_nothing(
    config: Path, tmp_path: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = spend_file(tmp_path, GOOD + "2026-03,Email,lots,,\n")

    assert await spend_import(config, bad) == 2

    assert await client.exists(keyspace.spend(SITE), keyspace.spend_currency(SITE)) == 0
    assert "spend.csv:5: amount: 'lots' is not a number" in capsys.readouterr().err


async def test_an_import_replaces_its_months_and_keeps_the_others(
    config: Path, tmp_path: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await spend_import(config, spend_file(tmp_path, GOOD)) == 0
    again = spend_file(tmp_path, "month,channel,amount\n2026-01,Display,300\n", "january.csv")

    assert await spend_import(config, again) == 0

    assert await stored(client) == [
        ("2026-01", "Display", "", 300.0),
        ("2026-02", "Email", "newsletter", 0.0),
    ]
    assert "shop: 1 spend rows stored in USD, replacing 2 rows kept before" in (
        capsys.readouterr().out
    )


async def test_replace_drops_every_month_kept_before(
    config: Path, tmp_path: Path, client: redis.Redis
) -> None:
    assert await spend_import(config, spend_file(tmp_path, GOOD)) == 0
    again = spend_file(tmp_path, "month,channel,amount\n2026-05,Display,300\n", "may.csv")

    assert await spend_import(config, again, "--replace") == 0

    assert await stored(client) == [("2026-05", "Display", "", 300.0)]


async def test_an_import_in_another_currency_than_the_months_kept_is_refused(
    config: Path, tmp_path: Path, client: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kept in EUR while the site counted in EUR; the site's model now counts in USD."""
    await client.hset(keyspace.spend(SITE), keyspace.spend_field("2025-12", "Email", ""), "5.0")
    await client.set(keyspace.spend_currency(SITE), "EUR")
    january = spend_file(tmp_path, "month,channel,amount\n2026-01,Display,300\n")

    assert await spend_import(config, january) == 2
    assert await stored(client) == [("2025-12", "Email", "", 5.0)]
    assert "import with --replace to start over in USD" in capsys.readouterr().err

    assert await spend_import(config, january, "--replace") == 0
    assert await stored(client) == [("2026-01", "Display", "", 300.0)]


async def test_an_unknown_site_is_refused(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await spend_import(config, spend_file(tmp_path, GOOD), "--site", "nope") == 2
    assert "no site 'nope' in the config" in capsys.readouterr().err


def test_a_spend_field_keeps_a_campaign_holding_the_separator() -> None:
    field = keyspace.spend_field("2026-01", "Email", "spring|promo")

    assert keyspace.parse_spend_field(field) == ("2026-01", "Email", "spring|promo")
