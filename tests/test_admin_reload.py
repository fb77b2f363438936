"""SIGHUP in the admin: config.toml adopted in place when valid, kept when not."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from refract.admin.app import build_app, reload_config
from refract.admin.state import CONFIG_KEY, config_in
from refract.rules.config import load_config

SITE = '[[sites]]\nhost = "{host}"\nid = "{id}"\norigin = "http://127.0.0.1:9"\n'


def write(path: Path, *sites: tuple[str, str], extra: str = "") -> Path:
    path.write_text(extra + "".join(SITE.format(host=host, id=key) for host, key in sites))
    return path


def test_a_valid_config_is_adopted_with_its_sites_and_their_industry_models(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "config.toml", ("a.example", "a"))
    app = build_app(load_config(path))
    write(path, ("a.example", "a"), ("b.example", "b"))
    reload_config(app, path)
    assert [site.key for site in config_in(app).sites] == ["a", "b"]
    assert set(app[CONFIG_KEY].industries) == {"a", "b"}


def test_an_invalid_config_keeps_the_one_in_force_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "config.toml", ("a.example", "a"))
    app = build_app(load_config(path))
    before = config_in(app)
    path.write_text('[[sites]]\nhost = "b.example"\n')  # no id, no origin
    with caplog.at_level(logging.ERROR):
        reload_config(app, path)
    assert config_in(app) is before
    assert "invalid, keeping the configuration in force" in caplog.text
    assert "origin" in caplog.text


def test_settings_the_process_was_built_from_wait_for_the_next_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "config.toml", ("a.example", "a"))
    app = build_app(load_config(path))
    write(path, ("a.example", "a"), extra='[admin]\nlisten = "127.0.0.1:9999"\n')
    with caplog.at_level(logging.WARNING):
        reload_config(app, path)
    assert "admin.listen take effect at the next start" in caplog.text
