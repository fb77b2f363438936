"""The admin saves exactly the rule sets ``refract check`` accepts: an import (or any edit) is
refused with the very problems ``refract check`` prints for the same files and config.toml,
the destinations of automations included (rules/ruleset.py: ``checked_rules``); on a set in
force that check refuses already, an edit that adds no problem is saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from refract.admin import cli
from refract.rules.config import load_config
from refract.rules.problems import Problem
from refract.rules.ruleset import read_rule_files
from tests.conftest import AdminFactory, clean_redis
from tests.support.rules import SIGNUP_METRIC, headline_experiment

Client = TestClient[Any, Any]
SITE = '[[pages]]\ntag = "pricing"\npaths = ["/pricing*"]\n\n' + SIGNUP_METRIC
EXPERIMENTS = headline_experiment(bold_changes=True)
SLACK = '[automations.destinations.sales_slack]\nkind = "slack"\nurl = "https://hooks.example"\n'


def automation(destination: str, operation: str = "notify") -> str:
    return (
        f'[[automations]]\nkey = "hot-account"\nwhen = "account_hot"\n\n  [[automations.do]]\n'
        f'  destination = "{destination}"\n  operation = "{operation}"\n'
    )


# (what automations.toml holds, config.toml's [automations], whether refract check accepts it)
SETS = {
    "no-automation": ("", "", True),
    "a-destination-config-toml-has": (automation("sales_slack"), SLACK, True),
    "a-destination-config-toml-lacks": (automation("slack_sales"), "", False),
    "a-misspelt-destination": (automation("sales_slak"), SLACK, False),
    "an-operation-its-kind-cannot-do": (automation("sales_slack", "crm_task"), SLACK, False),
    "a-page-tag-no-page-has": (automation("sales_slack") + '  tags = ["pricng"]\n', SLACK, False),
}


def write_config(path: Path, redis_url: str, rules: Path, automations: str) -> Path:
    path.write_text(
        f'[redis]\nurl = "{redis_url}"\n\n[rules]\ndirectory = "{rules}"\n\n'
        f'[[sites]]\nhost = "*"\nid = "test"\norigin = "http://127.0.0.1:9"\n\n{automations}'
    )
    return path


def refract_check(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``refract check``, run in this process: its exit status and what it printed on stderr."""
    capsys.readouterr()
    status = cli.main(["--config", str(config), "check"])
    return status, capsys.readouterr().err


def as_check_prints(errors: list[dict[str, Any]]) -> str:
    return "".join(f"{Problem(**error)}\n" for error in errors)


@pytest.mark.parametrize("name", SETS)
async def test_an_import_is_saved_exactly_when_refract_check_accepts_the_set(
    admin_api: AdminFactory,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    automations, destinations, accepted = SETS[name]
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_text(SITE)
    (rules / "experiments.toml").write_text(EXPERIMENTS)
    config = write_config(tmp_path / "config.toml", redis_url, rules, destinations)
    api = await admin_api(load_config(config), "marketing")
    exported = await api.get("/api/rules/export")
    document = await exported.text()
    if automations:
        document += "# ==== file: automations.toml ====\n" + automations
    response = await api.post(
        "/api/rules/import",
        data=document.encode(),
        headers={"If-Match": exported.headers["ETag"], "Content-Type": "application/toml"},
    )
    answer = await response.json()
    before = read_rule_files(rules)
    # The same files, written by hand: what refract check says of them.
    if automations:
        (rules / "automations.toml").write_text(automations)
    status, printed = refract_check(config, capsys)
    assert (status == 0, response.status == 200) == (accepted, accepted), (printed, answer)
    if not accepted:
        assert response.status == 422
        assert as_check_prints(answer["errors"]) == printed
        assert "automations.toml" not in before  # nothing saved


@pytest.mark.parametrize(
    ("destination", "saved"),
    [("sales_slack", True), ("sales_teams", False)],
    ids=["the problem it had", "a new problem"],
)
async def test_an_edit_to_a_set_refract_check_refuses_adds_no_problem(
    admin_api: AdminFactory,
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    destination: str,
    saved: bool,
) -> None:
    """config.toml lost a destination the rules use: refract check refuses the set. An edit
    that adds nothing wrong (pausing an experiment) is saved; one that adds a problem is refused
    with the problems refract check prints for the set it would save."""
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_text(SITE)
    (rules / "experiments.toml").write_text(EXPERIMENTS)
    (rules / "automations.toml").write_text(automation("sales_slack"))
    config = write_config(tmp_path / "config.toml", redis_url, rules, "")
    assert refract_check(config, capsys)[0] == 2
    api = await admin_api(load_config(config), "admin")
    etag = (await api.get("/api/rules/export")).headers["ETag"]
    if saved:
        etag = (await api.get("/api/experiments/headline")).headers["ETag"]
        response = await api.post("/api/experiments/headline/pause", headers={"If-Match": etag})
        assert response.status == 200
        assert 'status = "paused"' in (rules / "experiments.toml").read_text()
        return
    second = automation(destination).replace('"hot-account"', '"hot-account-2"')
    files = {
        "automations.toml": automation("sales_slack") + second,
        "experiments.toml": EXPERIMENTS,
        "site.toml": SITE,
    }
    document = "".join(f"# ==== file: {name} ====\n{text}" for name, text in files.items())
    response = await api.post(
        "/api/rules/import",
        data=document.encode(),
        headers={"If-Match": etag, "Content-Type": "application/toml"},
    )
    assert response.status == 422
    assert "hot-account-2" not in (rules / "automations.toml").read_text()
