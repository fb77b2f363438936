"""An experiment's schedule: ``start`` and ``end`` with a UTC offset, or both without (read as
UTC), ``end`` after ``start``. One of each (a local time beside a UTC one) is a problem with
its file, line, field and hint, wherever the rules are read: refract check, a proxy loading
the files, the admin API's reads and edits; never a TypeError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from refract.admin import cli
from refract.rules.config import Config
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules
from tests.conftest import AdminFactory, clean_redis
from tests.support.rules import SIGNUP_METRIC, headline_experiment

UTC_DAY, LATER_UTC = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
LOCAL_DAY, LATER_LOCAL = "2026-01-01T00:00:00", "2026-02-01T00:00:00"
# start, end, and what is wrong (None: the schedule is accepted)
SCHEDULES = {
    "both-utc": (UTC_DAY, LATER_UTC, None),
    "both-without-offset": (LOCAL_DAY, LATER_LOCAL, None),
    "an-offset-each": ("2026-01-01T00:00:00+02:00", "2026-02-01T00:00:00-05:00", None),
    "a-date-and-a-time-without-offset": ("2026-01-01", LATER_LOCAL, None),
    "start-without-offset": (LOCAL_DAY, LATER_UTC, "end has a UTC offset and start has none"),
    "end-without-offset": (UTC_DAY, LATER_LOCAL, "start has a UTC offset and end has none"),
    "a-date-and-a-utc-time": ("2026-01-01", LATER_UTC, "end has a UTC offset and start has none"),
    "end-before-start": (LATER_UTC, UTC_DAY, "must come after start"),
    "end-at-start": (UTC_DAY, UTC_DAY, "must come after start"),
}


def rules_with(directory: Path, start: str, end: str) -> Path:
    directory.mkdir()
    (directory / "site.toml").write_text(SIGNUP_METRIC)
    schedule = f"start = {start}\nend = {end}\n"
    (directory / "experiments.toml").write_text(headline_experiment(schedule))
    return directory


def config_of(redis_url: str, rules: Path) -> Config:
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    return Config.model_validate(
        {"redis": {"url": redis_url}, "rules": {"directory": str(rules)}, "sites": [site]}
    )


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_schedule_in_a_file_loads_or_is_a_problem_with_its_line_and_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    start, end, wrong = SCHEDULES[name]
    rules = rules_with(tmp_path / "rules", start, end)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rules]\ndirectory = "{rules}"\n[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'
    )
    status = cli.main(["--config", str(config), "check"])
    printed = capsys.readouterr().err
    if wrong is None:
        assert status == 0, printed
        assert load_rules(rules).experiments["headline"].start is not None
        return
    with pytest.raises(InvalidFileError) as refused:
        load_rules(rules)  # what a proxy starting or reloading catches, to keep serving
    [problem] = refused.value.problems
    assert (Path(problem.file).name, problem.line, problem.field) == (
        "experiments.toml",
        6,
        "experiments[0].end",
    )
    assert wrong in problem.message
    assert "both with" in problem.hint  # the field's description: how to write it
    assert status == 2
    assert str(problem) in printed


@pytest.mark.parametrize("name", SCHEDULES)
async def test_a_schedule_sent_to_the_api_is_saved_or_a_422_naming_the_field(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path, name: str
) -> None:
    start, end, wrong = SCHEDULES[name]
    await clean_redis(redis_url)
    rules = rules_with(tmp_path / "rules", UTC_DAY, LATER_UTC)
    api = await admin_api(config_of(redis_url, rules), role="marketing")
    got = await api.get("/api/experiments/headline")
    body: dict[str, Any] = {**await got.json(), "start": start, "end": end}
    response = await api.put(
        "/api/experiments/headline", json=body, headers={"If-Match": got.headers["ETag"]}
    )
    answer = await response.json()
    if wrong is None:
        assert response.status == 200, answer
        return
    assert response.status == 422
    [error] = answer["errors"]
    assert (error["file"], error["field"]) == ("request body", "end")
    assert wrong in error["message"]
    assert error["hint"]


async def test_the_admin_reads_a_hand_written_mixed_schedule_as_a_409_with_its_problem(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = rules_with(tmp_path / "rules", LOCAL_DAY, LATER_UTC)
    api = await admin_api(config_of(redis_url, rules), role="marketing")
    for path in ("/api/experiments", "/api/experiments/headline"):
        response = await api.get(path)
        assert response.status == 409
        [error] = (await response.json())["errors"]
        assert (error["line"], error["field"]) == (6, "experiments[0].end")
