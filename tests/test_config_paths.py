"""Relative paths in config.toml are relative to the file's folder, never to the working
directory (issue 16: `data_dir` followed the working directory, so a command run elsewhere
started an empty embedded Redis and said "no data yet")."""

from __future__ import annotations

from pathlib import Path

import pytest

from refract.rules.config import Config, load_config
from tests.support.processes import refract

SITE = '[[sites]]\nhost = "*"\norigin = "http://127.0.0.1:9"\n'


def paths(config: Config) -> dict[str, Path | None]:
    return {
        "server.data_dir": config.server.data_dir,
        "rules.directory": config.rules.directory,
        "events.archive_dir": Path(archive) if (archive := config.events.archive_dir) else None,
    }


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        (  # the defaults: data_dir only
            "",
            {},
            {"server.data_dir": ".refract", "rules.directory": None, "events.archive_dir": None},
        ),
        (
            '[server]\ndata_dir = "state"\n[rules]\ndirectory = "rules"\n'
            '[events]\narchive_dir = "../shared/archive"\n',
            {},
            {
                "server.data_dir": "state",
                "rules.directory": "rules",
                "events.archive_dir": "../shared/archive",
            },
        ),
        (  # an environment override is a value of the file's: the same rule
            "",
            {"REFRACT_SERVER__DATA_DIR": "from-env", "REFRACT_EVENTS__ARCHIVE_DIR": "/abs/arch"},
            {  # an absolute path stays as written
                "server.data_dir": "from-env",
                "rules.directory": None,
                "events.archive_dir": "/abs/arch",
            },
        ),
    ],
)
def test_relative_paths_resolve_from_the_config_files_folder(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    environ: dict[str, str],
    expected: dict[str, str | None],
) -> None:
    folder = tmp_path / "etc"
    (folder / "rules").mkdir(parents=True)
    (folder / "config.toml").write_text(text + SITE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    found = paths(load_config(Path("../etc/config.toml"), environ))  # itself given relatively
    wanted = {key: None if value is None else folder / value for key, value in expected.items()}
    assert {key: value and value.resolve() for key, value in found.items()} == {
        key: value and value.resolve() for key, value in wanted.items()
    }


def test_an_industry_model_file_resolves_from_the_config_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = Path(__file__).parents[1] / "rules" / "industries" / "saas.toml"
    (tmp_path / "model.toml").write_bytes(shipped.read_bytes())
    (tmp_path / "config.toml").write_text(SITE + 'industry = "model.toml"\n')
    monkeypatch.chdir("/")
    assert load_config(tmp_path / "config.toml").sites[0].industry == str(tmp_path / "model.toml")


@pytest.mark.slow
def test_a_command_run_from_another_directory_reads_the_same_data(tmp_path: Path) -> None:
    config = tmp_path / "deploy" / "config.toml"
    config.parent.mkdir()
    config.write_text(SITE)  # data_dir: the default ".refract", relative
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    made = refract("--config", str(config), "tokens", "create", "ci", "--role", "admin", cwd=here)
    assert made.returncode == 0, made.stderr
    token_id = made.stdout.split()[1]
    revoked = refract("--config", str(config), "tokens", "revoke", token_id, cwd=there)
    assert revoked.returncode == 0, revoked.stderr  # the same embedded Redis, the same token
    assert (config.parent / ".refract" / "redis").is_dir()
    assert not (here / ".refract").exists()
    assert not (there / ".refract").exists()
