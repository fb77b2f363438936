"""Changes to rule files, without the API: comments stay with the entries they describe, and
any valid set exports as one valid document."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from refract.rules import bundle, editing
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import rules_from_files

DIRECTORY = Path("rules")
SITE = b'[[audiences]]\nkey = "paid"\nall = [{ field = "utm.medium", value = "cpc" }]\n'
PERSONALIZATIONS = """# File header: stays.

# About a.
[[personalizations]]
key = "a"
status = "draft"
audience = "paid"
changes = [{ action = "remove", selector = "p" }]

# About b.
[[personalizations]]
key = "b"
status = "draft"
audience = "paid"
changes = [{ action = "remove", selector = "h1" }]

# About c.
[[personalizations]]
key = "c"
status = "draft"
audience = "paid"
changes = [{ action = "remove", selector = "h2" }]
"""


def files(text: str = PERSONALIZATIONS) -> editing.RuleFiles:
    return editing.RuleFiles({"site.toml": SITE, "p.toml": text.encode()}, DIRECTORY)


@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_a_removed_entry_takes_its_own_comment_and_leaves_the_others(key: str) -> None:
    text = editing.remove(files(), "personalizations", key).files["p.toml"].decode()
    assert f"# About {key}." not in text
    assert f'key = "{key}"' not in text
    for other in {"a", "b", "c"} - {key}:
        assert f'# About {other}.\n[[personalizations]]\nkey = "{other}"' in text
    assert text.startswith("# File header: stays.\n")


def test_removing_every_entry_leaves_a_loadable_file() -> None:
    current = files()
    for key in "abc":
        current = editing.remove(current, "personalizations", key)
    assert current.files["p.toml"].decode() == "# File header: stays.\n"
    assert not current.rules.personalizations


def test_entries_written_as_an_inline_array_are_added_to_it() -> None:
    entry = '{ key = "a", audience = "paid", changes = [{ action = "remove", selector = "p" }] }'
    inline = f"personalizations = [\n  {entry},\n]\n"
    base = editing.RuleFiles(
        {"site.toml": SITE, "personalizations.toml": inline.encode()}, DIRECTORY
    )
    new = base.rules.personalizations["a"].model_copy(update={"key": "b"})
    added = editing.add(base, "personalizations", new)
    assert list(added.rules.personalizations) == ["a", "b"]


def test_a_set_with_top_level_arrays_still_exports_as_one_valid_document() -> None:
    loose = {
        "a.toml": b'audiences = [{ key = "x", all = [{ field = "device", value = "mobile" }] }]\n',
        "b.toml": SITE,
        "c.toml": b"[settings]\nholdout = 5  # a comment\n",
    }
    document = bundle.export_document(loose, "v")
    alone = rules_from_files({"all.toml": document.encode()}, DIRECTORY)
    assert set(alone.audiences) == {"x", "paid"}
    assert alone.settings.holdout == 5
    back = bundle.import_document(document)
    assert back["c.toml"] == loose["c.toml"]  # a file of tables comes back byte for byte
    assert tomllib.loads(back["a.toml"].decode()) == tomllib.loads(loose["a.toml"].decode())


@pytest.mark.parametrize(
    "document",
    ["", "# only a comment\n", "# ==== file: ../x.toml ====\n", "# ==== file: a.toml ====\n" * 2],
)
def test_an_import_without_usable_files_is_refused(document: str) -> None:
    with pytest.raises(InvalidFileError):
        bundle.import_document(document)


def test_promoting_the_control_archives_an_earlier_promotion() -> None:
    experiment = (
        '[[metrics]]\nkey = "m"\nkind = "url"\nurl = "/t"\n[[experiments]]\nkey = "e"\n'
        'status = "running"\nprimary_metric = "m"\n[[experiments.variants]]\nkey = "control"\n'
        'weight = 50\n[[experiments.variants]]\nkey = "b"\nweight = 50\n'
        'changes = [{ action = "remove", selector = "p" }]\n'
    )
    base = editing.RuleFiles({"e.toml": experiment.encode()}, DIRECTORY)
    shipped = editing.promote(base, "e", "b")
    assert shipped.personalization == "e-winner"
    assert shipped.files.rules.personalizations["e-winner"].status == "running"
    assert shipped.files.rules.experiments["e"].status == "stopped"
    reverted = editing.promote(shipped.files, "e", "control")
    assert reverted.personalization is None
    assert reverted.files.rules.personalizations["e-winner"].status == "archived"
    assert len(editing.winner_key("x" * 63)) == 63
