"""One-off commands against a Redis that does not answer, or a data directory that cannot be
made: one message naming the setting, with a hint, and a non-zero exit, never a traceback (as
`refract run` says it). And a `--site` that names no site is refused, not stored or reported
as "no data yet"."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.support.processes import REPOSITORY, refract

EXAMPLES = REPOSITORY / "examples"
# Every command that reaches Redis, with what it needs to get that far.
COMMANDS = [
    ["accounts", "import", str(EXAMPLES / "demo-accounts.csv")],
    ["qa-link", "cta-copy", "talk"],
    ["privacy", "export", "--account", "acme.example"],
    ["tokens", "create", "ci", "--role", "admin"],
    ["users", "add", "bob", "--role", "admin"],
    ["rebuild"],
    ["spend", "import", str(EXAMPLES / "demo-spend.csv")],
    ["train", "--outcomes", str(EXAMPLES / "demo-outcomes.csv")],
    ["autopilot", "scan"],
    ["report", "cta-copy"],
]
ENVIRONMENT = {
    "REFRACT_RULES__DIRECTORY": str(EXAMPLES / "demo-rules"),
    "REFRACT_PASSWORD": "correct horse battery staple 93",
}


def write_config(tmp_path: Path, redis_url: str, data_dir: str = "data") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[server]\nlisten = ["127.0.0.1:{free_port()}"]\ndata_dir = "{data_dir}"\n'
        f'[redis]\nurl = "{redis_url}"\n'
        '[[sites]]\nhost = "*"\nid = "t"\norigin = "http://127.0.0.1:9"\n'
    )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_an_unreachable_redis_is_named_with_a_hint(tmp_path: Path, command: list[str]) -> None:
    url = f"redis://:sekret@127.0.0.1:{free_port()}/0"  # nothing listens there
    done = refract("--config", str(write_config(tmp_path, url)), *command, env=ENVIRONMENT)
    assert done.returncode == 1, done.stderr
    first, hint = done.stderr.splitlines()
    assert first.startswith(f"redis.url: cannot connect to {url.replace('sekret', '***')} (")
    assert hint.startswith("    hint: ")
    assert "sekret" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: " ".join(command[:2]))
def test_a_data_dir_that_cannot_be_made_is_named_with_a_hint(
    tmp_path: Path, command: list[str]
) -> None:
    (tmp_path / "file").write_text("")
    data_dir = tmp_path / "file" / "data"  # under a file: never a directory
    done = refract("--config", str(write_config(tmp_path, "", str(data_dir))), *command)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"server.data_dir: {data_dir}: cannot create it or write in it (Not a directory)",
        "    hint: set server.data_dir (or REFRACT_SERVER__DATA_DIR) to a directory this user "
        "can write; in the image, a bind-mounted one must be writable by uid 10001 (chown -R "
        "10001:10001 DIRECTORY)",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["accounts", "import", str(EXAMPLES / "demo-accounts.csv"), "--site", "typo"],
        ["report", "cta-copy", "--site", "typo"],
    ],
    ids=["accounts", "report"],
)
def test_a_site_that_is_not_configured_is_refused(tmp_path: Path, command: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # refused before Redis is asked
    done = refract("--config", str(write_config(tmp_path, url)), *command, env=ENVIRONMENT)
    assert done.returncode == 2
    assert done.stderr == f"refract {command[0]}: no site 'typo' in the configuration\n"
