"""The README's commands, as written, are commands `refract` has: every subcommand it names
exists and every option it shows for one is that subcommand's (the first hour stumbled on
commands that were not runnable as written)."""

from __future__ import annotations

import re

import pytest

from refract.admin.cli import main
from tests.support.processes import REPOSITORY

README = (REPOSITORY / "README.md").read_text()
# `refract ...` or `.venv/bin/refract ...` up to the end of the inline code or line
_COMMAND = re.compile(r"(?:\.venv/bin/)?\brefract ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)([^`\n|]*)")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
# words after `refract` that are arguments, not subcommands
_NOT_SUBCOMMANDS = {"cta-copy"}


def readme_commands() -> dict[tuple[str, ...], set[str]]:
    """Subcommand path -> the options the README shows with it."""
    found: dict[tuple[str, ...], set[str]] = {}
    for words, rest in _COMMAND.findall(README):
        path = tuple(w for w in words.split() if w not in _NOT_SUBCOMMANDS)
        if path[0] in ("demo", "run", "proxy", "worker", "admin", "check", "rebuild", "report"):
            path = path[:1]  # their next word is an argument (an experiment, a file)
        found.setdefault(path, set()).update(_OPTION.findall(rest))
    return found


COMMANDS = readme_commands()


def test_the_readme_shows_the_commands_of_the_walk_through() -> None:
    assert {("demo",), ("check",), ("report",), ("train",), ("qa-link",)} <= set(COMMANDS)


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
def test_each_readme_command_and_its_options_exist(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*path, "--help"])
    assert done.value.code == 0, capsys.readouterr().err
    usage = capsys.readouterr().out
    missing = {option for option in COMMANDS[path] if option not in usage}
    assert not missing, f"refract {' '.join(path)} has no {sorted(missing)}"
