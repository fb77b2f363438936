"""The rule set as one document (GET /api/rules/export): valid TOML and a valid rule file on
its own whatever the files' layout (arrays of inline tables, local dates, battlecards written
one card per file), imported back to the same rules; files of tables and one-card battlecard
files come back byte for byte, so the demo's export imports to the same version."""

from __future__ import annotations

import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from refract.admin import audit
from refract.rules import bundle
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet, read_rule_files, rules_from_files, rules_version
from tests.conftest import AdminFactory, clean_redis

DEMO_RULES = Path(__file__).resolve().parents[1] / "examples" / "demo-rules"
DIRECTORY = Path("rules")
SITE = b"""[settings]
competitors = ["Globex"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"
"""
IN_ARRAY_FORM = (
    b'experiments = [\n  { key = "x", status = "draft", primary_metric = "signup", '
    b'start = 2026-12-01, variants = [{ key = "a", weight = 50 }, { key = "b", weight = 50 }] },\n'
    b"]\n"
)
ONE_CARD = b"""# What we say against Globex.
competitor = "Globex"   # as [settings] competitors names it
title = "Winning against Globex"
summary = "Globex sells a suite; we are live in a week."
updated = 2026-11-30

[[objections]]
objection = "Globex is cheaper"
answer = "Per seat, at first."

  [[ proof_points ]]
  claim = "Acme moved in 9 days"
"""
# a line of a multi-line string that looks like a table header: the card cannot be carried
# line for line, and is written in table form
ONE_CARD_WITH_A_HEADER_IN_A_STRING = ONE_CARD.replace(
    b'summary = "Globex sells a suite; we are live in a week."',
    b'summary = """Globex sells a suite;\n[[we]] are live in a week."""',
)
CARDS_IN_ARRAY_FORM = b"""battlecards = [
  { competitor = "Globex", title = "One", summary = "S", updated = 2026-11-30 },
  { competitor = "Globex", title = "Two", summary = "S", updated = 2026-12-01 },
]
"""
# files besides site.toml, and whether every file comes back byte for byte
SETS: dict[str, tuple[dict[str, bytes], bool]] = {
    "array-form-with-a-local-date": ({"experiments.toml": IN_ARRAY_FORM}, False),
    "a-card-per-file": ({"battlecards/globex.toml": ONE_CARD}, True),
    "a-card-with-a-header-in-a-string": (
        {"battlecards/globex.toml": ONE_CARD_WITH_A_HEADER_IN_A_STRING},
        False,
    ),
    "cards-in-array-form": ({"battlecards/globex.toml": CARDS_IN_ARRAY_FORM}, False),
    "both-kinds-of-card-file": (
        {"battlecards/a.toml": ONE_CARD, "battlecards/b.toml": CARDS_IN_ARRAY_FORM},
        False,
    ),
}


def same_rules(one: RuleSet, other: RuleSet) -> bool:
    """The same rules, whatever the files' names and bytes (version, warnings' files)."""
    return all(
        getattr(one, field.name) == getattr(other, field.name)
        for field in fields(RuleSet)
        if field.name not in ("version", "warnings")
    )


@pytest.mark.parametrize("name", SETS)
def test_an_export_is_one_valid_rule_file_and_imports_back_to_the_same_rules(name: str) -> None:
    extra, byte_for_byte = SETS[name]
    files = {"site.toml": SITE, **extra}
    rules = rules_from_files(files, DIRECTORY)
    document = bundle.export_document(files, rules_version(files))
    assert same_rules(rules_from_files({"rules.toml": document.encode()}, DIRECTORY), rules)
    back = bundle.import_document(document)
    assert sorted(back) == sorted(files)
    assert same_rules(rules_from_files(back, DIRECTORY), rules)
    assert (back == files) is byte_for_byte
    assert back["site.toml"] == SITE  # a file of tables: always as it was


def test_the_demo_rules_export_as_one_rule_file_and_import_byte_for_byte() -> None:
    files = read_rule_files(DEMO_RULES)
    rules = rules_from_files(files, DEMO_RULES)
    assert rules.battlecards  # the one-card files are in
    document = bundle.export_document(files, rules.version)
    assert same_rules(rules_from_files({"rules.toml": document.encode()}, DIRECTORY), rules)
    assert bundle.import_document(document) == files


# --- through the API ---------------------------------------------------------------------------


def settings(redis_url: str, rules: Path) -> Config:
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    return Config.model_validate(
        {"redis": {"url": redis_url}, "rules": {"directory": str(rules)}, "sites": [site]}
    )


async def exported(api: Any) -> tuple[str, str]:
    response = await api.get("/api/rules/export")
    assert response.status == 200, await response.text()
    return await response.text(), response.headers["ETag"]


async def test_a_set_in_array_form_with_a_local_date_exports_and_imports_audited(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_bytes(SITE)
    (rules / "experiments.toml").write_bytes(IN_ARRAY_FORM)
    api = await admin_api(settings(redis_url, rules), role="marketing")
    assert (await api.get("/api/experiments/x")).status == 200
    document, version = await exported(api)
    assert "start = 2026-12-01" in document
    edited = document.replace('key = "b"', 'key = "c"')
    response = await api.post("/api/rules/import", data=edited, headers={"If-Match": version})
    assert response.status == 200, await response.text()
    client = redis.Redis.from_url(redis_url)
    try:
        [entry] = await audit.entries(client)
    finally:
        await client.aclose()
    assert entry["action"] == "rules.import"
    assert entry["before"]["document"] == document


async def test_the_demo_set_exported_through_the_api_imports_to_the_same_version(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    shutil.copytree(DEMO_RULES, rules)
    files = read_rule_files(rules)
    api = await admin_api(settings(redis_url, rules), role="marketing")
    document, version = await exported(api)
    assert version == f'"{rules_version(files)}"'
    assert rules_from_files({"rules.toml": document.encode()}, tmp_path).battlecards
    response = await api.post("/api/rules/import", data=document, headers={"If-Match": version})
    assert response.status == 200, await response.text()
    assert response.headers["ETag"] == version
    assert read_rule_files(rules) == files
