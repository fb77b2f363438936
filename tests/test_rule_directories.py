"""What a rules directory holds besides rule files (editors' leftovers, symlinks, directories,
FIFOs) and TOML an editor got wrong (a byte order mark, a key written twice, deep nesting):
each is skipped by rule, or refuses the whole set with the file, a line where known and a hint;
never a traceback, at check, at start or at a reload."""

from __future__ import annotations

import gc
import logging
import os
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from refract.admin import cli
from refract.proxy.app import reload
from refract.proxy.app_keys import STATE_KEY
from refract.rules.problems import InvalidFileError, Problem, toml_problem
from refract.rules.ruleset import load_rules
from tests.conftest import ProxyFactory

METRIC = '[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n'
CARD = '[[battlecards]]\ncompetitor = "acme"\nsays = "x"\n'


def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "metrics.toml").write_text(METRIC)
    return directory


def problems_of(directory: Path) -> list[Problem]:
    with pytest.raises(InvalidFileError) as raised:
        load_rules(directory)
    return raised.value.problems


# --- what is not a rule file is not read --------------------------------------------------

NOT_RULE_FILES: list[tuple[str, Callable[[Path], object]]] = [
    # Emacs, while metrics.toml has unsaved changes: a symlink to nowhere
    (".#metrics.toml", lambda path: path.symlink_to("ops@host.4242:1700000000")),
    (".metrics.toml", lambda path: path.write_text(METRIC)),  # would be "already defined"
    (".metrics.toml.swp", lambda path: path.write_bytes(b"b0VIM 9.0\0")),  # Vim's swap file
    ("metrics.toml~", lambda path: path.write_text("[[metrics]\n")),  # a backup
    ("#metrics.toml#", lambda path: path.write_text("[[metrics]\n")),  # Emacs' auto-save
    (".hidden.toml", lambda path: path.mkdir()),
]


@pytest.mark.parametrize(("name", "make"), NOT_RULE_FILES, ids=[n for n, _ in NOT_RULE_FILES])
def test_hidden_and_editor_files_are_not_read(
    tmp_path: Path, name: str, make: Callable[[Path], object]
) -> None:
    directory = rules_dir(tmp_path)
    version = load_rules(directory).version
    make(directory / name)
    assert load_rules(directory).version == version


def test_hidden_files_of_battlecards_are_not_read(tmp_path: Path) -> None:
    directory = rules_dir(tmp_path)
    (directory / "battlecards").mkdir()
    version = load_rules(directory).version
    (directory / "battlecards" / ".#acme.toml").symlink_to("ops@host.4242:1700000000")
    assert load_rules(directory).version == version


# --- a symlink is read as the file it points to ---------------------------------------------


@pytest.mark.parametrize("target", ["inside/metrics.txt", "../elsewhere/metrics.txt"])
def test_a_symlink_to_a_regular_file_is_read_as_that_file(tmp_path: Path, target: str) -> None:
    directory = rules_dir(tmp_path)
    version = load_rules(directory).version
    (directory / target).parent.mkdir()
    (directory / target).write_text(METRIC)
    (directory / "metrics.toml").unlink()
    (directory / "metrics.toml").symlink_to(target)
    rules = load_rules(directory)
    assert set(rules.metrics) == {"signup"}
    assert rules.version == version  # names and contents, not where the links point


# --- an entry that cannot be read as a file refuses the set -----------------------------------

UNREADABLE: list[tuple[str, Callable[[Path], object], str]] = [
    ("dangling", lambda path: path.symlink_to("nowhere.toml"), r"is a dangling symlink"),
    ("loop", lambda path: path.symlink_to(path.name), r"is a symlink loop"),
    ("directory", lambda path: path.mkdir(), r"is a directory, not a rule file"),
    ("fifo", lambda path: os.mkfifo(path), r"is not a regular file"),  # never read, never waited on
]


@pytest.mark.parametrize(
    ("kind", "make", "message"), UNREADABLE, ids=[kind for kind, _, _ in UNREADABLE]
)
@pytest.mark.parametrize("where", ["", "battlecards/"])
def test_an_entry_that_is_not_a_readable_file_refuses_the_set_by_name(
    tmp_path: Path, kind: str, make: Callable[[Path], object], message: str, where: str
) -> None:
    directory = rules_dir(tmp_path)
    (directory / "battlecards").mkdir()
    path = directory / f"{where}old.toml"
    make(path)
    [problem] = problems_of(directory)
    assert problem.file == str(path)
    assert re.match(message, problem.message), problem
    assert problem.hint


def test_every_unreadable_entry_is_named_at_once(tmp_path: Path) -> None:
    directory = rules_dir(tmp_path)
    (directory / "a.toml").mkdir()
    (directory / "b.toml").symlink_to("b.toml")
    assert [problem.file for problem in problems_of(directory)] == [
        str(directory / "a.toml"),
        str(directory / "b.toml"),
    ]


# --- TOML an editor got wrong ---------------------------------------------------------------

TOML_MISTAKES = [
    pytest.param(
        "\ufeff" + METRIC,
        r"^x\.toml:1: starts with a byte order mark \(BOM\).*\n    hint: remove the byte order",
        id="bom",
    ),
    pytest.param(
        "[server]\nworkers = 1\nlisten = 2\nworkers = 2\n",
        r"^x\.toml:4: server\.workers: defined twice: on line 2 and again on line 4\n    hint: ",
        id="duplicate-key",
    ),
    pytest.param(
        "a = 1\nb = 2\na = [\n  1,\n]\n",  # tomllib names the line the value ends on
        r"^x\.toml:3: a: defined twice: on line 1 and again on line 3\n",
        id="duplicate-key-multi-line-value",
    ),
    pytest.param(
        "[server]\nworkers = 1\n[redis]\n[server]\n",
        r"^x\.toml:4: server: defined twice: on line 1 and again on line 4\n",
        id="duplicate-table",
    ),
    pytest.param(
        "x = " + "[" * 5000 + "]" * 5000 + "\n",
        r"^x\.toml: not valid TOML: .*nested too deeply.*\n    hint: ",
        id="deep-nesting",
    ),
    pytest.param(
        'a = "open\n',
        r"^x\.toml:1: not valid TOML: .*\n    hint: check quotes, brackets",
        id="other-syntax",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TOML_MISTAKES)
def test_toml_mistakes_get_the_hint_that_fits(text: str, expected: str) -> None:
    try:
        tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError) as error:
        problem = toml_problem("x.toml", text, error)
    else:
        pytest.fail("tomllib accepted it")
    assert re.search(expected, str(problem)), str(problem)


@pytest.mark.parametrize(("text", "expected"), TOML_MISTAKES)
def test_a_rule_file_with_a_toml_mistake_refuses_the_set(
    tmp_path: Path, text: str, expected: str
) -> None:
    directory = rules_dir(tmp_path)
    (directory / "x.toml").write_text(text)
    [problem] = problems_of(directory)
    assert re.search(expected, str(problem).removeprefix(f"{directory}/")), str(problem)


# --- at check, and at a reload --------------------------------------------------------------


def write_config(tmp_path: Path, directory: Path, origin: str = "http://127.0.0.1:9") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[rules]\ndirectory = "{directory}"\n'
        f'[[sites]]\nhost = "*"\nid = "t"\norigin = "{origin}"\n'
    )
    return config


@pytest.mark.parametrize(
    ("kind", "make", "message"), UNREADABLE[:3], ids=[kind for kind, _, _ in UNREADABLE[:3]]
)
def test_check_names_the_entry_and_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    make: Callable[[Path], object],
    message: str,
) -> None:
    directory = rules_dir(tmp_path)
    make(directory / "old.toml")
    assert cli.main(["--config", str(write_config(tmp_path, directory)), "check"]) == 2
    assert re.search(
        f"{re.escape(str(directory / 'old.toml'))}: {message}", capsys.readouterr().err
    )


def test_check_passes_over_an_editors_lock_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = rules_dir(tmp_path)
    (directory / ".#metrics.toml").symlink_to("ops@host.4242:1700000000")
    assert cli.main(["--config", str(write_config(tmp_path, directory)), "check"]) == 0


@pytest.mark.parametrize(
    ("kind", "make", "message"), UNREADABLE[:3], ids=[kind for kind, _, _ in UNREADABLE[:3]]
)
async def test_a_reload_names_the_entry_and_keeps_the_rules_in_force(
    proxy: ProxyFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    make: Callable[[Path], object],
    message: str,
) -> None:
    directory = rules_dir(tmp_path)
    client = await proxy(rules={"directory": str(directory)})
    state = client.app[STATE_KEY].current
    config = write_config(tmp_path, directory, str(state.config.sites[0].origin))
    config.write_text(f'[redis]\nurl = "{state.config.redis.url}"\n' + config.read_text())
    make(directory / "old.toml")
    with caplog.at_level(logging.ERROR, logger="refract.proxy"):
        assert await reload(client.app, config, 0.1) is False
    assert client.app[STATE_KEY].current is state
    assert re.search(f"{re.escape(str(directory / 'old.toml'))}: {message}", caplog.text)


async def emptied(
    proxy: ProxyFactory, tmp_path: Path
) -> tuple[TestClient[web.Request, web.Application], Path]:
    """A proxy on a rules directory, and a config.toml for it, the directory since emptied (a
    deploy that empties it for a moment)."""
    directory = rules_dir(tmp_path)
    client = await proxy(rules={"directory": str(directory)})
    state = client.app[STATE_KEY].current
    config = write_config(tmp_path, directory, str(state.config.sites[0].origin))
    config.write_text(f'[redis]\nurl = "{state.config.redis.url}"\n' + config.read_text())
    (directory / "metrics.toml").unlink()
    return client, config


async def test_a_reload_that_would_empty_the_rules_is_refused(
    proxy: ProxyFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, config = await emptied(proxy, tmp_path)
    state = client.app[STATE_KEY].current
    with caplog.at_level(logging.ERROR, logger="refract.proxy"):
        assert await reload(client.app, config, 0.1) is False
    assert client.app[STATE_KEY].current is state
    assert "holds no rule file" in caplog.text


async def test_a_refused_reload_closes_the_origin_pools_it_opened(
    proxy: ProxyFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    client, config = await emptied(proxy, tmp_path)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert await reload(client.app, config, 0.1) is False
        gc.collect()  # an unclosed session says so when it is collected
    assert "Unclosed client session" not in caplog.text


async def test_an_empty_rule_file_runs_without_rules_on_purpose(
    proxy: ProxyFactory, tmp_path: Path
) -> None:
    directory = rules_dir(tmp_path)
    client = await proxy(rules={"directory": str(directory)})
    state = client.app[STATE_KEY].current
    config = write_config(tmp_path, directory, str(state.config.sites[0].origin))
    config.write_text(f'[redis]\nurl = "{state.config.redis.url}"\n' + config.read_text())
    (directory / "metrics.toml").unlink()
    (directory / "none.toml").write_text("# no rules, on purpose\n")
    assert await reload(client.app, config, 0.1) is True
    assert not client.app[STATE_KEY].current.rules.rules.metrics
