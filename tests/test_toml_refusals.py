"""A TOML file Refract cannot read is a problem with its file, line and hint, like any other:
an integer longer than Python reads (4,300 digits) was a bare traceback from `refract check`,
proxy start-up and a reload, and a 500 from the admin API; an error at the end of a file
without a final newline named the line before its last."""

from __future__ import annotations

from pathlib import Path

import pytest

from refract.rules.config import load_config
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import load_rules, read_rule_files
from tests.conftest import AdminFactory, clean_redis
from tests.test_admin_check_parity import SITE, write_config

LONG = "9" * 5000


def test_a_rule_file_with_a_long_integer_is_refused_at_its_line(tmp_path: Path) -> None:
    (tmp_path / "pages.toml").write_text(f'[[pages]]\ntag = "big"\npaths = ["/big"]\nx = {LONG}\n')
    with pytest.raises(InvalidFileError) as refused:
        load_rules(tmp_path)
    [problem] = refused.value.problems
    assert (Path(problem.file).name, problem.line) == ("pages.toml", 4)
    assert "4,300 digits" in problem.message
    assert problem.hint


def test_config_with_a_long_integer_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    site = '[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'
    path.write_text(f"{site}\n[cookies]\nvisitor_days = {LONG}\n")
    with pytest.raises(InvalidFileError) as refused:
        load_config(path, environ={})
    [problem] = refused.value.problems
    assert (problem.file, problem.line) == (str(path), 6)
    assert "digits" in problem.message


async def test_an_import_with_a_long_integer_is_refused_as_refract_check_refuses_it(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_text(SITE)
    config = write_config(tmp_path / "config.toml", redis_url, rules, "")
    api = await admin_api(load_config(config), "marketing")
    exported = await api.get("/api/rules/export")
    document = await exported.text() + f"# ==== file: big.toml ====\n[[pages]]\nx = {LONG}\n"

    response = await api.post(
        "/api/rules/import",
        data=document.encode(),
        headers={"If-Match": exported.headers["ETag"], "Content-Type": "application/toml"},
    )

    assert response.status == 422
    [error] = (await response.json())["errors"]
    assert (Path(error["file"]).name, error["line"]) == ("big.toml", 2)
    assert read_rule_files(rules).keys() == {"site.toml"}  # nothing saved


@pytest.mark.parametrize(
    ("text", "line"),
    [('a = """\n\n\nunterminated', 4), ('a = """\n\n\nunterminated\n', 4), ('a = """', 1)],
    ids=["no-final-newline", "final-newline", "one-line"],
)
def test_an_error_at_the_end_of_a_file_names_its_last_line(
    tmp_path: Path, text: str, line: int
) -> None:
    (tmp_path / "notes.toml").write_text(text)
    with pytest.raises(InvalidFileError) as refused:
        load_rules(tmp_path)
    [problem] = refused.value.problems
    assert problem.line == line
