"""Experiments and personalizations edited through the admin API, in the rule files themselves:
ETags and If-Match, refract check's messages, comments kept, export and import, the audit
log, and an edit reaching a running proxy."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from refract.admin import api_experiments, audit
from refract.admin.api import Endpoint, openapi_document
from refract.rules.config import Config
from refract.rules.problems import Problem
from refract.rules.publication import publish, published_files
from refract.rules.ruleset import load_rules, read_rule_files, rules_version
from tests.conftest import AdminFactory, ProxyFactory, clean_redis, recorded_events
from tests.support.pages import page
from tests.support.processes import refract

SITE = """# Pages, metrics and audiences the experiments below use.
[[pages]]
tag = "page"
paths = ["/page*"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[audiences]]
key = "paid"
all = [{ field = "utm.medium", value = "cpc" }]
"""
EXPERIMENTS = """# Hand-written: every comment here must survive an edit made through the API.
[[experiments]]
key = "headline"
hypothesis = "A bolder headline gets more sign-ups."
status = "running"  # live since the launch
pages = ["page"]
primary_metric = "signup"

  # the page as the origin serves it
  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50
  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]

# Drafted, not started.
[[experiments]]
key = "footer"
status = "draft"
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "short"
  weight = 50
  changes = [{ action = "remove", selector = "p[data-x]" }]
"""
PERSONALIZATIONS = """# Paid visitors hear about the campaign.
[[personalizations]]
key = "paid-visitors"
audience = "paid"
changes = [{ action = "append", selector = "p[data-x]", value = " <b>for you</b>" }]
"""
NEW_EXPERIMENT: dict[str, Any] = {
    "key": "cta",
    "hypothesis": "Asking for a call beats asking for a demo.",
    "primary_metric": "signup",
    "variants": [
        {"key": "control", "weight": 50},
        {"key": "call", "weight": 50, "changes": [{"action": "remove", "selector": "p"}]},
    ],
}
Client = TestClient[Any, Any]


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    for name, text in {
        "site.toml": SITE,
        "experiments.toml": EXPERIMENTS,
        "personalizations.toml": PERSONALIZATIONS,
    }.items():
        (directory / name).write_text(text)
    return directory


@pytest.fixture
async def config(redis_url: str, rules_dir: Path) -> Config:
    await clean_redis(redis_url)
    return settings(redis_url, rules_dir)


def settings(redis_url: str, rules_dir: Path | None) -> Config:
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    rules = {"directory": str(rules_dir)} if rules_dir else {}
    return Config.model_validate({"redis": {"url": redis_url}, "rules": rules, "sites": [site]})


@pytest.fixture
async def marketing(admin_api: AdminFactory, config: Config) -> Client:
    return await admin_api(config, role="marketing")


async def read(client: Client, path: str) -> tuple[Any, str]:
    """A resource and its ETag."""
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.json(), response.headers["ETag"]


async def change(
    client: Client, method: str, path: str, etag: str | None, body: Any = None
) -> tuple[int, Any]:
    headers = {"If-Match": etag} if etag is not None else {}
    response = await client.request(method, path, json=body, headers=headers)
    return response.status, await response.json()


def check_output(config_path: Path, rules_dir: Path) -> str:
    """What ``refract check`` prints about the rules directory (its problems)."""
    config_path.write_text(f'[rules]\ndirectory = "{rules_dir}"\n[[sites]]\nhost = "*"\n')
    config_path.write_text(config_path.read_text() + 'origin = "http://127.0.0.1:9"\n')
    return refract("--config", str(config_path), "check").stderr


def as_check_prints(errors: list[dict[str, Any]]) -> str:
    return "\n".join(str(Problem(**error)) for error in errors) + "\n"


# --- reading -------------------------------------------------------------------------------


async def test_the_list_shows_status_variants_etags_and_files(marketing: Client) -> None:
    body, _ = await read(marketing, "/api/experiments")
    headline = body["experiments"][0]
    assert (headline["key"], headline["status"], headline["file"]) == (
        "headline",
        "running",
        "experiments.toml",
    )
    assert headline["variants"] == [{"key": "control", "weight": 50}, {"key": "bold", "weight": 50}]
    assert [e["key"] for e in body["experiments"]] == ["headline", "footer"]
    _, etag = await read(marketing, "/api/experiments/headline")
    assert etag == f'"{headline["etag"]}"'
    listed, _ = await read(marketing, "/api/personalizations")
    assert listed["personalizations"][0]["audience"] == "paid"


async def test_an_entry_reads_as_its_table_and_an_unknown_one_is_404(marketing: Client) -> None:
    experiment, _ = await read(marketing, "/api/experiments/headline")
    assert experiment["variants"][1]["changes"] == [
        {"action": "set_text", "selector": "h1#hero", "value": "Bold headline", "attribute": ""}
    ]
    assert experiment["traffic"] == 100
    assert experiment["start"] is None
    assert (await marketing.get("/api/experiments/nothing")).status == 404
    assert (await marketing.get("/api/personalizations/nothing")).status == 404


async def test_the_rules_overview_counts_the_set(marketing: Client, rules_dir: Path) -> None:
    body, etag = await read(marketing, "/api/rules")
    assert body["version"] == load_rules(rules_dir).version == etag.strip('"')
    assert body["files"] == ["experiments.toml", "personalizations.toml", "site.toml"]
    assert body["counts"]["experiments"] == 2
    assert body["source"] == "directory"


async def test_rules_that_do_not_load_are_shown_with_their_problems_not_edited(
    marketing: Client, rules_dir: Path
) -> None:
    (rules_dir / "broken.toml").write_text("[[experiments]\n")
    response = await marketing.get("/api/experiments")
    assert response.status == 409
    [error] = (await response.json())["errors"]
    assert (error["file"], error["line"]) == (str(rules_dir / "broken.toml"), 1)
    overview, _ = await read(marketing, "/api/rules")
    assert overview["valid"] is False
    assert overview["errors"] == [error]
    status, _ = await change(marketing, "POST", "/api/experiments/headline/pause", '"x"')
    assert status == 409


# --- creating and replacing ----------------------------------------------------------------


async def test_a_new_experiment_is_appended_to_experiments_toml(
    marketing: Client, rules_dir: Path
) -> None:
    response = await marketing.post("/api/experiments", json=NEW_EXPERIMENT)
    assert response.status == 201, await response.text()
    assert response.headers["Location"] == "/api/experiments/cta"
    created = await response.json()
    assert created["status"] == "draft"  # the schema's default
    _, etag = await read(marketing, "/api/experiments/cta")
    assert response.headers["ETag"] == etag
    text = (rules_dir / "experiments.toml").read_text()
    assert text.startswith(EXPERIMENTS)  # everything written by hand stays as it was
    assert 'key = "cta"' in text
    assert "[[experiments.variants]]" in text[len(EXPERIMENTS) :]
    assert load_rules(rules_dir).experiments["cta"].variants[1].changes[0].selector == "p"
    again = await marketing.post("/api/experiments", json=NEW_EXPERIMENT)
    assert again.status == 409


@pytest.mark.slow
async def test_a_body_that_is_not_an_experiment_is_422_in_refract_checks_words(
    marketing: Client, rules_dir: Path, tmp_path: Path
) -> None:
    bad = {
        **NEW_EXPERIMENT,
        "variants": [{"key": "control", "weight": -50}, {"key": "b", "weight": 150}],
    }
    status, body = await change(marketing, "POST", "/api/experiments", None, bad)
    assert status == 422
    fields = {error["field"]: error for error in body["errors"]}
    assert set(fields) == {"variants[0].weight", "variants[1].weight"}
    assert fields["variants[1].weight"]["file"] == "request body"
    # the same mistake in a file: the same message and hint, at the field's path in the file
    (rules_dir / "experiments.toml").write_text(
        EXPERIMENTS.replace("weight = 50\n\n  [[", "weight = 150\n\n  [[", 1)
    )
    printed = check_output(tmp_path / "config.toml", rules_dir)
    error = fields["variants[1].weight"] | {"field": "experiments[0].variants[0].weight"}
    assert f"{error['field']}: {error['message']}\n    hint: {error['hint']}" in printed, printed
    status, body = await change(marketing, "POST", "/api/experiments", None, ["not", "a", "table"])
    assert status == 422


def call_variant(**change: str) -> dict[str, Any]:
    changes = [{"action": "set_text", "selector": "h1", "value": "x", **change}]
    return {"key": "call", "weight": 50, "changes": changes}


def files_in(directory: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in directory.iterdir()}


CONTROL = NEW_EXPERIMENT["variants"][0]
PERSONALIZATION = {"key": "p1", "audience": "paid"}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/experiments", {**NEW_EXPERIMENT, "traffic": True}, "traffic"),
        (
            "/api/experiments",
            {**NEW_EXPERIMENT, "variants": [{**CONTROL, "weight": True}, call_variant()]},
            "variants[0].weight",
        ),
        ("/api/experiments", {**NEW_EXPERIMENT, "hypothesis": "\ud800"}, "hypothesis"),
        (
            "/api/experiments",
            {**NEW_EXPERIMENT, "variants": [CONTROL, call_variant(selector="h\udfff")]},
            "variants[1].changes[0].selector",
        ),
        (
            "/api/personalizations",
            {**PERSONALIZATION, "changes": call_variant(value="\ud800")["changes"]},
            "changes[0].value",
        ),
    ],
    ids=["traffic-true", "weight-true", "lone-surrogate", "in-a-selector", "in-a-value"],
)
async def test_a_value_json_can_spell_but_a_rule_cannot_mean_is_422_naming_its_field(
    marketing: Client, rules_dir: Path, path: str, body: dict[str, Any], field: str
) -> None:
    before = files_in(rules_dir)
    status, answer = await change(marketing, "POST", path, None, body)
    assert (status, [error["field"] for error in answer["errors"]]) == (422, [field])
    assert files_in(rules_dir) == before


async def test_an_edit_rewrites_only_the_lines_it_changes(
    marketing: Client, rules_dir: Path
) -> None:
    experiment, etag = await read(marketing, "/api/experiments/headline")
    experiment["hypothesis"] = "Bold words, more sign-ups."
    status, body = await change(marketing, "PUT", "/api/experiments/headline", etag, experiment)
    assert status == 200, body
    assert (rules_dir / "experiments.toml").read_text() == EXPERIMENTS.replace(
        "A bolder headline gets more sign-ups.", "Bold words, more sign-ups."
    )
    variants = experiment["variants"]
    variants[0]["weight"], variants[1]["weight"] = 20, 80
    _, etag = await read(marketing, "/api/experiments/headline")
    status, _ = await change(marketing, "PUT", "/api/experiments/headline", etag, experiment)
    assert status == 200
    text = (rules_dir / "experiments.toml").read_text()
    assert "  # the page as the origin serves it\n  [[experiments.variants]]" in text
    assert "  weight = 20\n" in text
    assert "  weight = 80\n" in text
    assert 'status = "running"  # live since the launch' in text


@pytest.mark.slow
async def test_a_refused_edit_says_exactly_what_refract_check_says(
    marketing: Client, rules_dir: Path, tmp_path: Path
) -> None:
    experiment, etag = await read(marketing, "/api/experiments/headline")
    experiment["primary_metric"] = "sigup"
    experiment["variants"][1]["changes"][0]["selector"] = "h1:hover"
    status, body = await change(marketing, "PUT", "/api/experiments/headline", etag, experiment)
    assert status == 422
    assert (rules_dir / "experiments.toml").read_text() == EXPERIMENTS  # nothing written
    # The file the edit would have written, by hand: the same lines changed in place.
    (rules_dir / "experiments.toml").write_text(
        EXPERIMENTS.replace('"signup"', '"sigup"', 1).replace('"h1#hero"', '"h1:hover"')
    )
    assert as_check_prints(body["errors"]) == check_output(tmp_path / "config.toml", rules_dir)
    assert {error["field"] for error in body["errors"]} == {
        "experiments[0].primary_metric",
        "experiments[0].variants[1].changes[0].selector",
    }


async def test_the_key_in_the_body_must_be_the_key_in_the_path(marketing: Client) -> None:
    experiment, etag = await read(marketing, "/api/experiments/headline")
    status, body = await change(
        marketing, "PUT", "/api/experiments/headline", etag, {**experiment, "key": "renamed"}
    )
    assert status == 422
    assert body["errors"][0]["field"] == "key"


# --- If-Match ------------------------------------------------------------------------------


async def test_a_change_without_if_match_is_428(marketing: Client) -> None:
    experiment, _ = await read(marketing, "/api/experiments/headline")
    for method, path, body in [
        ("PUT", "/api/experiments/headline", experiment),
        ("POST", "/api/experiments/headline/pause", None),
        ("POST", "/api/experiments/headline/promote", {"variant": "bold"}),
        ("POST", "/api/personalizations/paid-visitors/pause", None),
    ]:
        status, answer = await change(marketing, method, path, None, body)
        assert status == 428, (path, answer)
    assert (await marketing.post("/api/rules/import", data="")).status == 428


async def test_a_stale_if_match_is_412_after_a_concurrent_edit(
    admin_api: AdminFactory, config: Config, marketing: Client
) -> None:
    colleague = await admin_api(config, role="admin")
    mine, etag = await read(marketing, "/api/experiments/headline")
    theirs, _ = await read(colleague, "/api/experiments/headline")
    theirs["hypothesis"] = "Theirs."
    assert (await change(colleague, "PUT", "/api/experiments/headline", etag, theirs))[0] == 200
    mine["hypothesis"] = "Mine."
    response = await marketing.put(
        "/api/experiments/headline", json=mine, headers={"If-Match": etag}
    )
    assert response.status == 412
    current, fresh = await read(marketing, "/api/experiments/headline")
    assert response.headers["ETag"] == fresh
    assert current["hypothesis"] == "Theirs."
    assert (await change(marketing, "POST", "/api/experiments/headline/pause", etag))[0] == 412


async def test_an_edit_to_another_entry_leaves_an_etag_valid(marketing: Client) -> None:
    _, headline = await read(marketing, "/api/experiments/headline")
    footer, etag = await read(marketing, "/api/experiments/footer")
    footer["hypothesis"] = "Shorter pages convert."
    assert (await change(marketing, "PUT", "/api/experiments/footer", etag, footer))[0] == 200
    assert (await change(marketing, "POST", "/api/experiments/headline/pause", headline))[0] == 200


@pytest.mark.parametrize("published", [False, True], ids=["directory", "redis"])
async def test_of_two_simultaneous_edits_with_one_etag_exactly_one_wins(
    admin_api: AdminFactory, redis_url: str, rules_dir: Path, published: bool
) -> None:
    await clean_redis(redis_url)
    if published:  # no rules directory: the set published in Redis is edited
        await publish_directory(redis_url, rules_dir)
    config = settings(redis_url, None if published else rules_dir)
    first, second = await admin_api(config), await admin_api(config)
    experiment, etag = await read(first, "/api/experiments/headline")
    edits = [
        change(client, "PUT", "/api/experiments/headline", etag, {**experiment, "hypothesis": text})
        for client, text in [(first, "First."), (second, "Second.")]
    ]
    statuses = sorted(status for status, _ in await asyncio.gather(*edits))
    assert statuses == [200, 412]


async def publish_directory(redis_url: str, rules_dir: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    files = read_rule_files(rules_dir)
    await publish(client, rules_version(files), files)
    await client.aclose()


async def test_without_a_directory_the_published_set_is_edited(
    admin_api: AdminFactory, redis_url: str, rules_dir: Path
) -> None:
    await clean_redis(redis_url)
    await publish_directory(redis_url, rules_dir)
    client = await admin_api(settings(redis_url, None), role="marketing")
    _, etag = await read(client, "/api/experiments/footer")
    status, answer = await change(client, "POST", "/api/experiments/footer/start", etag)
    assert (status, answer["status"]) == (200, "running")
    connection = redis.Redis.from_url(redis_url)
    found = await published_files(connection)
    await connection.aclose()
    assert found is not None
    version, files = found
    assert version == rules_version(files) != rules_version(read_rule_files(rules_dir))
    assert files["experiments.toml"].decode().startswith(EXPERIMENTS.split("# Drafted")[0])
    overview, _ = await read(client, "/api/rules")
    assert (overview["source"], overview["version"]) == ("redis", version)


# --- statuses, promotion, deletion ---------------------------------------------------------


async def test_statuses_move_forward_only(marketing: Client) -> None:
    async def act(action: str) -> tuple[int, Any]:
        _, etag = await read(marketing, "/api/experiments/footer")
        return await change(marketing, "POST", f"/api/experiments/footer/{action}", etag)

    assert (await act("pause"))[0] == 409  # a draft is not running
    for action, status in [("start", "running"), ("pause", "paused"), ("start", "running")]:
        code, body = await act(action)
        assert (code, body["status"]) == (200, status)
    assert (await act("stop"))[1]["status"] == "stopped"
    code, body = await act("start")
    assert code == 409
    assert "stopped" in body["error"]
    assert (await act("archive"))[1]["status"] == "archived"
    assert (await act("archive"))[0] == 409


async def test_promoting_stops_the_test_and_ships_the_winner(
    marketing: Client, rules_dir: Path
) -> None:
    _, etag = await read(marketing, "/api/experiments/headline")
    status, body = await change(
        marketing, "POST", "/api/experiments/headline/promote", etag, {"variant": "bold"}
    )
    assert status == 200, body
    assert body["experiment"]["status"] == "stopped"
    shipped, _ = await read(marketing, "/api/personalizations/headline-winner")
    assert (shipped["status"], shipped["pages"], shipped["audience"]) == ("running", ["page"], "")
    assert shipped["changes"][0]["value"] == "Bold headline"
    text = (rules_dir / "personalizations.toml").read_text()
    assert text.startswith(PERSONALIZATIONS)
    assert '# The winner of experiment "headline", variant "bold"' in text
    _, etag = await read(marketing, "/api/experiments/headline")
    status, body = await change(
        marketing, "POST", "/api/experiments/headline/promote", etag, {"variant": "control"}
    )
    assert (status, body["personalization"]["status"]) == (200, "archived")  # control: as it was


async def test_a_promotion_names_a_variant_the_experiment_has(marketing: Client) -> None:
    _, etag = await read(marketing, "/api/experiments/headline")
    path = "/api/experiments/headline/promote"
    status, body = await change(marketing, "POST", path, etag, {"variant": "nope"})
    assert status == 422
    assert body["errors"][0]["field"] == "variant"
    status, body = await change(marketing, "POST", path, etag, {"variant": "Not A Key"})
    assert status == 422
    assert body["errors"][0]["field"] == "variant"
    _, etag = await read(marketing, "/api/experiments/footer")
    status, _ = await change(
        marketing, "POST", "/api/experiments/footer/promote", etag, {"variant": "short"}
    )
    assert status == 409  # a draft has no winner


async def test_only_a_draft_is_deleted_and_the_comments_of_others_stay(
    marketing: Client, rules_dir: Path
) -> None:
    _, etag = await read(marketing, "/api/experiments/headline")
    assert (await change(marketing, "DELETE", "/api/experiments/headline", etag))[0] == 409
    _, etag = await read(marketing, "/api/experiments/footer")
    status, body = await change(marketing, "DELETE", "/api/experiments/footer", etag)
    assert (status, body) == (200, {"deleted": "footer"})
    assert (rules_dir / "experiments.toml").read_text() == EXPERIMENTS.split("\n# Drafted")[0]


async def test_personalizations_are_created_paused_started_and_archived(
    marketing: Client,
) -> None:
    new = {"key": "pricing", "audience": "paid", "changes": [{"action": "remove", "selector": "p"}]}
    status, created = await change(marketing, "POST", "/api/personalizations", None, new)
    assert (status, created["status"]) == (201, "running")  # the schema's default
    bad = {**new, "key": "other", "changes": []}
    status, body = await change(marketing, "POST", "/api/personalizations", None, bad)
    assert status == 422
    assert body["errors"][0]["field"] == "changes"
    unknown = {**new, "key": "other", "audience": "payd"}
    status, body = await change(marketing, "POST", "/api/personalizations", None, unknown)
    assert status == 422
    assert body["errors"][0]["message"] == 'unknown audience "payd"'
    for action, expected in [("pause", "paused"), ("start", "running"), ("archive", "archived")]:
        _, etag = await read(marketing, "/api/personalizations/pricing")
        status, body = await change(
            marketing, "POST", f"/api/personalizations/pricing/{action}", etag
        )
        assert (status, body["status"]) == (200, expected)


# --- the whole set -------------------------------------------------------------------------


async def test_export_then_import_gives_the_same_version(
    marketing: Client, rules_dir: Path
) -> None:
    response = await marketing.get("/api/rules/export")
    assert response.content_type == "text/plain"
    document, version = await response.text(), response.headers["ETag"]
    assert load_rules(write(rules_dir.parent / "one", "rules.toml", document))  # one valid file
    imported = await marketing.post(
        "/api/rules/import", data=document, headers={"If-Match": version}
    )
    assert imported.status == 200, await imported.text()
    assert imported.headers["ETag"] == version
    assert (rules_dir / "experiments.toml").read_text() == EXPERIMENTS


async def test_an_import_replaces_the_set_whole(marketing: Client, rules_dir: Path) -> None:
    document, version = await export(marketing)
    stale = await marketing.post("/api/rules/import", data=document, headers={"If-Match": '"x"'})
    assert stale.status == 412
    assert stale.headers["ETag"] == version
    without_footer = (
        document.split("# Drafted")[0]
        + document.split('changes = [{ action = "remove", selector = "p[data-x]" }]\n')[1]
    )
    imported = await marketing.post(
        "/api/rules/import", data=without_footer, headers={"If-Match": version}
    )
    assert imported.status == 200, await imported.text()
    assert set(load_rules(rules_dir).experiments) == {"headline"}
    empty = await marketing.post(
        "/api/rules/import", data="# nothing\n", headers={"If-Match": imported.headers["ETag"]}
    )
    assert empty.status == 422  # an empty document would delete every rule
    only = '[[pages]]\ntag = "all"\npaths = ["/*"]\n'
    response = await marketing.post(
        "/api/rules/import", data=only, headers={"If-Match": imported.headers["ETag"]}
    )
    assert response.status == 200
    assert sorted(read_rule_files(rules_dir)) == ["rules.toml"]


@pytest.mark.slow
async def test_an_import_that_would_not_load_is_refused_as_refract_check_refuses_it(
    marketing: Client, rules_dir: Path, tmp_path: Path
) -> None:
    document, version = await export(marketing)
    bad = document.replace('audience = "paid"', 'audience = "payd"').replace(
        "weight = 50", "weight = 40", 1
    )
    response = await marketing.post("/api/rules/import", data=bad, headers={"If-Match": version})
    assert response.status == 422
    errors = (await response.json())["errors"]
    assert (rules_dir / "personalizations.toml").read_text() == PERSONALIZATIONS
    named = document.replace("file: site.toml", "file: ../site.toml")
    response = await marketing.post("/api/rules/import", data=named, headers={"If-Match": version})
    assert response.status == 422
    (rules_dir / "personalizations.toml").write_text(PERSONALIZATIONS.replace('"paid"', '"payd"'))
    (rules_dir / "experiments.toml").write_text(
        EXPERIMENTS.replace("weight = 50", "weight = 40", 1)
    )
    assert as_check_prints(errors) == check_output(tmp_path / "config.toml", rules_dir)


async def export(client: Client) -> tuple[str, str]:
    response = await client.get("/api/rules/export")
    return await response.text(), response.headers["ETag"]


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir()
    (directory / name).write_text(text)
    return directory


# --- who may, and what is recorded ---------------------------------------------------------


def concrete(endpoint: Endpoint) -> str:
    return re.sub(r"\{[^}]+\}", "headline", endpoint.path)


@pytest.mark.parametrize(
    "endpoint", api_experiments.api.endpoints, ids=lambda e: f"{e.method} {e.path}"
)
async def test_every_endpoint_refuses_strangers_and_other_roles(
    admin_api: AdminFactory, config: Config, endpoint: Endpoint
) -> None:
    anonymous = await admin_api(config, role=None)
    assert (await anonymous.request(endpoint.method, concrete(endpoint))).status == 401
    for role in {"executive", "sales_manager", "sales_rep"} - endpoint.roles:
        client = await admin_api(config, role=role)
        response = await client.request(endpoint.method, concrete(endpoint), json={})
        assert response.status == 403, (role, endpoint.path)
    assert endpoint.roles >= {"marketing", "admin"}


def test_the_openapi_document_shows_the_bodies() -> None:
    document = openapi_document(api_experiments.api)
    validate(document)
    schemas = document["components"]["schemas"]
    assert {"Experiment", "Personalization", "Promotion", "Variant", "Change"} <= set(schemas)
    put = document["paths"]["/api/experiments/{key}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/Experiment"
    )


async def test_every_change_is_audited_with_before_and_after(
    marketing: Client, config: Config
) -> None:
    experiment, etag = await read(marketing, "/api/experiments/headline")
    await change(marketing, "PUT", "/api/experiments/headline", etag, {**experiment, "traffic": 50})
    _, etag = await read(marketing, "/api/experiments/headline")
    await change(marketing, "POST", "/api/experiments/headline/pause", etag)
    client = redis.Redis.from_url(config.redis.url)
    pause, update = await audit.entries(client, 2)
    await client.aclose()
    assert (update["action"], update["target"], update["user"]) == (
        "experiment.update",
        "headline",
        "tests-marketing",
    )
    assert (update["before"]["traffic"], update["after"]["traffic"]) == (100, 50)
    assert (pause["action"], pause["before"]["status"], pause["after"]["status"]) == (
        "experiment.pause",
        "running",
        "paused",
    )


# --- reaching visitors ---------------------------------------------------------------------


async def test_an_edit_reaches_a_running_proxy_and_its_exposures(
    proxy: ProxyFactory, admin_api: AdminFactory, redis_url: str, rules_dir: Path
) -> None:
    node = await proxy(rules={"directory": str(rules_dir)})  # first: it starts on a clean Redis
    client = await admin_api(settings(redis_url, rules_dir), role="marketing")
    experiment, etag = await read(client, "/api/experiments/headline")
    experiment["variants"][0]["weight"], experiment["variants"][1]["weight"] = 0, 100
    experiment["variants"][1]["changes"][0]["value"] = "Edited in the admin API"
    response = await client.put(
        "/api/experiments/headline", json=experiment, headers={"If-Match": etag}
    )
    assert response.status == 200
    version = response.headers["Refract-Rules-Version"]
    for _ in range(50):  # proxies follow the published rules once a second
        if b"Edited in the admin API" in await page(node):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the proxy never served the edited variant")
    exposures = await recorded_events(node, "exposure")
    assert (exposures[-1]["variant"], exposures[-1]["rules_version"]) == ("bold", version)
