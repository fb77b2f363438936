"""automations.toml as `refract check` reads it: every problem at its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from refract.rules.automations import destination_problems
from refract.rules.config import AutomationsConfig
from refract.rules.problems import InvalidFileError, Problem
from refract.rules.ruleset import load_rules, read_rule_files
from tests.support.processes import refract

PAGES = """
[[pages]]
tag = "pricing"
paths = ["/pricing"]
"""

HOT = """
[[automations]]
key = "hot"
when = "account_hot"

  [[automations.do]]
  destination = "sales_slack"
"""

DESTINATIONS = {
    "sales_slack": {"kind": "slack", "url": "https://hooks.slack.example/T1"},
    "crm": {"kind": "hubspot", "token": "pat-1"},
}


def problems_of(rules_dir: Path, automations: str) -> list[Problem]:
    (rules_dir / "pages.toml").write_text(PAGES)
    (rules_dir / "automations.toml").write_text(automations)
    with pytest.raises(InvalidFileError) as refused:
        load_rules(rules_dir)
    return refused.value.problems


def unfit(rules_dir: Path, automations: str) -> list[Problem]:
    (rules_dir / "automations.toml").write_text(automations)
    load_rules(rules_dir)  # the rules load: only config.toml can tell what is wrong
    config = AutomationsConfig.model_validate({"destinations": DESTINATIONS})
    return destination_problems(read_rule_files(rules_dir), rules_dir, config)


@pytest.mark.parametrize(
    ("automation", "line", "field", "message"),
    [
        (  # a tag no page defines
            'key = "pricing"\nwhen = "page_tag"\ntags = ["pricng"]\n',
            4,
            "automations[0].tags",
            'unknown page tag "pricng"',
        ),
        (
            'key = "over"\nwhen = "intent_above"\n',
            1,
            "automations[0]",
            "intent_above needs threshold",
        ),
        (  # every account's intent is at least 0: it never rises to 0 from below
            'key = "over"\nwhen = "intent_above"\nthreshold = 0\n',
            4,
            "automations[0].threshold",
            "greater than 0",
        ),
        (
            'key = "x"\nwhen = "account_hot"\n[automations.if]\nall = [{field = "acount.target", '
            'op = "eq", value = true}]\n',
            5,
            "automations[0].if.all[0].field",
            'did you mean "account.target"',
        ),
        (
            'key = "x"\nwhen = "account_hot"\n[automations.quiet_hours]\nstart = "20:00"\n'
            'end = "20:00"\n',
            4,
            "automations[0].quiet_hours",
            "the quiet hours are empty",
        ),
        (  # a cap that lets nothing through, or a part of a firing
            'key = "x"\nwhen = "form"\nmax_per_hour = 0\n',
            4,
            "automations[0].max_per_hour",
            "greater than or equal to 1",
        ),
        (
            'key = "x"\nwhen = "form"\nmax_per_hour = 2.5\n',
            4,
            "automations[0].max_per_hour",
            "firings at most in one UTC hour",
        ),
        (
            'key = "x"\nwhen = "srm"\n[[automations.do]]\noperation = "crm_task"\n'
            'destination = "crm"\n',
            1,
            "automations[0]",
            "its actions can only notify",
        ),
    ],
)
def test_a_bad_automation_is_refused_at_its_line(
    rules_dir: Path, automation: str, line: int, field: str, message: str
) -> None:
    text = "[[automations]]\n" + automation
    if "[[automations.do]]" not in automation:
        text += '[[automations.do]]\ndestination = "sales_slack"\n'
    [problem] = problems_of(rules_dir, text)
    assert (problem.line, problem.field) == (line, field)
    assert message in problem.message + problem.hint
    assert problem.file.endswith("automations.toml")


def test_a_threshold_of_0_is_refused_with_what_to_use_instead(rules_dir: Path) -> None:
    text = '[[automations]]\nkey = "any"\nwhen = "intent_above"\nthreshold = 0\n'
    [problem] = problems_of(rules_dir, text + '[[automations.do]]\ndestination = "sales_slack"\n')
    assert "never reached from below" in problem.hint
    assert "page_tag" in problem.hint


def test_keys_are_unique_across_files(rules_dir: Path) -> None:
    (rules_dir / "more.toml").write_text(HOT)
    [problem] = problems_of(rules_dir, HOT)
    assert (Path(problem.file).name, problem.line) == ("more.toml", 3)
    assert "already defined" in problem.message


@pytest.mark.parametrize(
    ("action", "message", "hint"),
    [
        ('destination = "sales_slak"', 'no destination "sales_slak"', 'did you mean "sales_slack"'),
        ('destination = "teams"', 'no destination "teams"', "[automations.destinations.teams]"),
        (
            'destination = "sales_slack"\n  operation = "crm_task"',
            '"sales_slack" is a slack destination: it cannot crm_task',
            "hubspot or salesforce destinations (crm)",
        ),
        (
            'destination = "crm"',
            '"crm" is a hubspot destination: it cannot notify',
            "slack or teams or email or webhook destinations (sales_slack)",
        ),
    ],
)
def test_an_action_config_cannot_carry_out_is_reported_at_its_line(
    rules_dir: Path, action: str, message: str, hint: str
) -> None:
    text = HOT.replace('destination = "sales_slack"', action)
    [problem] = unfit(rules_dir, text)
    assert (Path(problem.file).name, problem.line) == ("automations.toml", 7)
    assert problem.field == "automations[0].do[0].destination"
    assert message in problem.message
    assert hint in problem.hint


def test_routing_needs_no_destination(rules_dir: Path) -> None:
    assert unfit(rules_dir, HOT.replace('destination = "sales_slack"', 'operation = "route"')) == []


def test_refract_check_reports_a_missing_destination(tmp_path: Path, rules_dir: Path) -> None:
    (rules_dir / "automations.toml").write_text(HOT)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rules]\ndirectory = "{rules_dir}"\n[[sites]]\nhost = "*"\n'
        'origin = "http://127.0.0.1:9"\n'
    )
    done = refract("--config", str(config), "check")
    assert done.returncode == 2
    assert (
        f"{rules_dir / 'automations.toml'}:7: automations[0].do[0].destination: no " in done.stderr
    )
