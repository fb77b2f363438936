"""Rule files: the demo's load, and every kind of mistake is refused with file, line and hint."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import get_args

import pytest

from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules
from refract.rules.schema import FIELDS, Action

DEMO_RULES = Path(__file__).resolve().parents[1] / "examples" / "demo-rules"

METRIC = '[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n'
AUDIENCE = '[[audiences]]\nkey = "paid"\nall = [{ field = "utm.medium", value = "cpc" }]\n'
PAGE = '[[pages]]\ntag = "home"\npaths = ["/"]\n'


def experiment(*lines: str, variants: str = "") -> str:
    body = "\n".join(lines)
    variants = variants or (
        '[[experiments.variants]]\nkey = "control"\nweight = 50\n'
        '[[experiments.variants]]\nkey = "b"\nweight = 50\n'
        'changes = [{ action = "set_text", selector = "h1", value = "New" }]\n'
    )
    return f'[[experiments]]\nkey = "exp"\nprimary_metric = "signup"\n{body}\n{variants}'


def change(spec: str) -> str:
    return experiment(
        variants='[[experiments.variants]]\nkey = "control"\nweight = 50\n'
        f'[[experiments.variants]]\nkey = "b"\nweight = 50\nchanges = [{spec}]\n'
    )


def write_rules(directory: Path, **files: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name, text in files.items():
        (directory / f"{name}.toml").write_text(text)
    return directory


def test_demo_rules_load() -> None:
    rules = load_rules(DEMO_RULES)
    assert set(rules.experiments) == {"hero-headline", "cta-copy", "pricing-layout"}
    assert set(rules.personalizations) == {
        "welcome-back-target-accounts",
        "pricing-for-intuitive-buyers",
    }


def test_version_is_a_hash_of_the_files(tmp_path: Path) -> None:
    copy = tmp_path / "rules"
    shutil.copytree(DEMO_RULES, copy)
    assert load_rules(copy).version == load_rules(DEMO_RULES).version
    (copy / "extra.toml").write_text(METRIC.replace("signup", "other"))
    assert load_rules(copy).version != load_rules(DEMO_RULES).version


def test_rules_may_be_spread_over_files(tmp_path: Path) -> None:
    rules = load_rules(write_rules(tmp_path, metrics=METRIC, experiments=experiment()))
    assert rules.experiments["exp"].primary_metric == "signup"


BAD_RULES = [
    pytest.param(
        {"experiments": experiment().replace("weight = 50\n[[", "weight = 40\n[[", 1)},
        r"experiments\.toml:1: experiments\[0\]: variant weights add up to 90, not 100 "
        r"\(40 \+ 50\): each variant's weight is its percent",
        id="weights-not-100",
    ),
    pytest.param(
        {"experiments": experiment('audience = "nobody"')},
        r'experiments\.toml:4: experiments\[0\]\.audience: unknown audience "nobody"',
        id="unknown-audience",
    ),
    pytest.param(
        {"experiments": experiment().replace('"signup"', '"sigup"')},
        r'experiments\.toml:3: experiments\[0\]\.primary_metric: unknown metric "sigup"\n'
        r'    hint: did you mean "signup"\?',
        id="unknown-metric",
    ),
    pytest.param(
        {"experiments": experiment('pages = ["pricing"]')},
        r'unknown page tag "pricing"',
        id="unknown-page-tag",
    ),
    pytest.param(
        {"experiments": experiment(), "more": experiment()},
        r'more\.toml:2: experiments\[0\]\.key: "exp" is already defined in .*experiments\.toml',
        id="duplicate-key-across-files",
    ),
    pytest.param(
        {"experiments": change('{ action = "set_text", selector = "a:hover", value = "x" }')},
        r'the rewriter cannot run "a:hover": Unsupported pseudo-class',
        id="selector-the-rewriter-cannot-run",
    ),
    pytest.param(
        {
            "experiments": change(
                '{ action = "add_class", selector = ".a .b .c span", value = "x" }'
            )
        },
        r"experiments\.toml:\d+: experiments\[0\]\.variants\[1\]\.changes\[0\]\.selector: "
        r"the rewriter cannot run \".a .b .c span\": it has 3 descendant combinators",
        id="selector-slow-on-deep-pages",
    ),
    *(
        pytest.param(
            {
                "experiments": change(
                    f'{{ action = "{action}", selector = "h1", {extra}value = "x{escape}y" }}'
                )
            },
            rf"changes\[0\]\.value: U\+{code} is a character an XHTML page cannot hold",
            id=f"{action}-{code}",
        )
        for action, extra, escape, code in [
            ("set_text", "", "\\u0000", "0000"),
            ("set_text", "", "\\u000b", "000B"),
            ("set_attribute", 'attribute = "title", ', "\\u0002", "0002"),
            ("append", "", "\\uffff", "FFFF"),
            ("set_text", "", "\\u0085", "0085"),
        ]
    ),
    pytest.param(
        {"experiments": change('{ action = "set_html", selector = "h1", value = "<b>bold" }')},
        r"unbalanced HTML: <b> is never closed",
        id="unbalanced-variant-html",
    ),
    pytest.param(
        {"experiments": change('{ action = "append", selector = "h1", value = "<i></b>" }')},
        r"unbalanced HTML: </b> closes <i>",
        id="mismatched-variant-html",
    ),
    pytest.param(
        {"experiments": change('{ action = "set_text", selector = "h1", value = "Hi {{ ceo }}" }')},
        r'token "\{\{ ceo \}\}" does not name a profile field',
        id="unknown-token",
    ),
    pytest.param(
        {"experiments": change('{ action = "set_attribute", selector = "a", value = "x" }')},
        r'"set_attribute" needs an attribute',
        id="change-missing-attribute",
    ),
    pytest.param(
        {"experiments": change('{ action = "shout", selector = "h1", value = "x" }')},
        r"changes\[0\]\.action: input should be 'set_text'",
        id="unknown-action",
    ),
    pytest.param(
        {"audiences": AUDIENCE.replace("utm.medium", "utm.mediun")},
        r'audiences\.toml:3: audiences\[0\]\.all\[0\]\.field: unknown field "utm\.mediun": '
        r'did you mean "utm\.medium"\?',
        id="unknown-condition-field",
    ),
    pytest.param(
        {"audiences": AUDIENCE.replace('value = "cpc"', 'op = "matches", value = "(cpc"')},
        r"invalid regular expression",
        id="invalid-regex",
    ),
    pytest.param(
        {"audiences": AUDIENCE.replace('value = "cpc"', 'op = "in", value = "cpc"')},
        r'"in" needs a list value',
        id="in-needs-a-list",
    ),
    pytest.param(
        {"pages": PAGE.replace('paths = ["/"]', 'regex = "^/(pricing"')},
        r"pages\.toml:1: pages\[0\]: invalid regular expression",
        id="invalid-page-regex",
    ),
    pytest.param(
        {"metrics": '[[metrics]]\nkey = "click"\nkind = "click"\n'},
        r'a metric of kind "click" needs selector',
        id="metric-without-target",
    ),
    pytest.param(
        {
            "experiments": experiment('exclusion_group = "g"', "exclusion_range = [0, 60]"),
            "other": experiment('exclusion_group = "g"', "exclusion_range = [50, 100]").replace(
                'key = "exp"', 'key = "exp2"'
            ),
        },
        r"overlaps exp's range in group \"g\"",
        id="overlapping-exclusion-ranges",
    ),
    *[
        pytest.param(
            {"experiments": experiment(f"exclusion_group = {group}")},
            r"experiments\[0\]\.exclusion_group: string should match pattern",
            id=f"exclusion-group-{name}",
        )
        for name, group in (
            ("upper-case", '"G1"'),
            ("space", '"g1 "'),
            ("zero-width", '"g1\u200b"'),
        )
    ],
    pytest.param(
        {"experiments": experiment("traffic = 0.004")},
        r"experiments\[0\]\.traffic: 0\.004 % rounds to no visitor at all",
        id="traffic-rounding-to-nobody",
    ),
    *(
        pytest.param(
            {"experiments": experiment(f"traffic = {quoted}")},
            r"experiments\[0\]\.traffic: .*a number, not text: write it without quotes",
            id=f"quoted-number-{index}",
        )
        for index, quoted in enumerate(['"50"', '" 50 "', '"5_0"', '"1e2"'])
    ),
    pytest.param(
        {
            "experiments": experiment(
                variants='[[experiments.variants]]\nkey = "control"\nweight = 99.996\n'
                '[[experiments.variants]]\nkey = "b"\nweight = 0.004\n'
            )
        },
        r"experiments\[0\]\.variants\[1\]\.weight: 0\.004 % rounds to no visitor at all",
        id="variant-weight-rounding-to-nobody",
    ),
    pytest.param(
        {"experiments": experiment("colour = 1")},
        r"experiments\.toml:4: experiments\[0\]\.colour: unknown key",
        id="unknown-key",
    ),
    pytest.param(
        {"experiments": experiment('key2 = "x"').replace('key = "exp"', 'key = "Exp!"')},
        r"experiments\[0\]\.key: string should match pattern .*\n    hint: the experiment's name",
        id="bad-key",
    ),
    *[
        pytest.param(
            {"metrics": METRIC + f"value = {value}\n"},
            rf"metrics\.toml:5: metrics\[0\]\.value: {reason}",
            id=f"metric-value-{value}",
        )
        for value, reason in [
            ("1e200", "input should be less than or equal to 1000000000"),
            ("inf", "input should be a finite number"),
            ("nan", "input should be a finite number"),
            ("true", "a number, not true or false"),
        ]
    ],
    pytest.param(
        {"experiments": experiment("traffic = true")},
        r"experiments\[0\]\.traffic: a number, not true or false",
        id="traffic-true",
    ),
    pytest.param(
        {"experiments": experiment("exclusion_range = [false, true]")},
        r"experiments\[0\]\.exclusion_range: a number, not true or false",
        id="range-of-booleans",
    ),
    pytest.param(
        {"experiments": experiment().replace("weight = 50", "weight = true", 1)},
        r"variants\[0\]\.weight: a number, not true or false",
        id="weight-true",
    ),
    pytest.param(
        {"experiments": "[[experiments]\n"},
        r"experiments\.toml:1: not valid TOML",
        id="toml-syntax",
    ),
]


@pytest.mark.parametrize(("files", "expected"), BAD_RULES)
def test_bad_rules_are_refused_with_file_line_field_and_hint(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    directory = write_rules(
        tmp_path / "rules",
        metrics=files.pop("metrics", METRIC),
        audiences=files.pop("audiences", AUDIENCE),
        pages=files.pop("pages", PAGE),
        **files,
    )
    with pytest.raises(InvalidFileError) as raised:
        load_rules(directory)
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_one_bad_file_refuses_the_whole_set(tmp_path: Path) -> None:
    directory = write_rules(tmp_path, metrics=METRIC, good=experiment(), bad="[[audiences]]\n")
    with pytest.raises(InvalidFileError, match=r"bad\.toml"):
        load_rules(directory)


def test_every_field_and_action_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs" / "rules.md").read_text()
    for name in sorted(FIELDS) + sorted(get_args(Action)):
        assert f"`{name}`" in docs, name
