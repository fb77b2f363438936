"""config.toml: defaults, precise errors, environment overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refract.rules.config import Config, load_config
from refract.rules.problems import InvalidFileError

REPOSITORY = Path(__file__).resolve().parents[1]
MINIMAL = '[[sites]]\nhost = "www.example.com"\norigin = "https://origin.example.com"\n'


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_minimal_config_takes_every_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), environ={})
    assert config.server.listen == ["127.0.0.1:8080"]
    assert config.server.workers == 1
    assert config.redis.url == ""
    assert config.privacy.consent_mode == "legitimate-interest"
    assert config.sites[0].key == "www-example-com"
    assert config.sites[0].max_rewrite_bytes == 4 * 1024 * 1024


def test_shipped_config_is_valid() -> None:
    config = load_config(REPOSITORY / "config.toml", environ={})
    assert config.sites[0].host == "*"


def test_every_key_is_documented_in_the_readme() -> None:
    readme = (REPOSITORY / "README.md").read_text()
    for section_name, section in Config.model_fields.items():
        model = section.annotation
        nested = getattr(model, "model_fields", None)
        if nested is None:  # sites: a list of SiteConfig
            from refract.rules.config import SiteConfig

            nested = SiteConfig.model_fields
        for key in nested:
            assert f"`{section_name}.{key}`" in readme, f"{section_name}.{key} missing from README"


BAD_CONFIGS = [
    pytest.param(
        MINIMAL + "[server]\nworkres = 4\n",
        r"config\.toml:5: server\.workres: unknown key\n    hint: did you mean 'workers'\?",
        id="unknown-key-with-suggestion",
    ),
    pytest.param(
        "[server]\nworkers = 0\n" + MINIMAL,
        r"config\.toml:2: server\.workers: input should be greater than or equal to 1\n"
        r"    hint: number of proxy processes",
        id="out-of-range",
    ),
    pytest.param(
        MINIMAL.replace("https://origin.example.com", "ftp://origin"),
        r"config\.toml:3: sites\[0\]\.origin: \"ftp://origin\" is not an http:// or https:// URL",
        id="bad-origin-scheme",
    ),
    pytest.param(
        MINIMAL.replace("https://origin.example.com", "https://origin.example.com/app"),
        r"config\.toml:3: sites\[0\]\.origin: .* has a path",
        id="origin-with-path",
    ),
    pytest.param(
        MINIMAL + MINIMAL,
        r"config\.toml:1: sites: host \"www\.example\.com\" is served by two sites",
        id="duplicate-host",
    ),
    pytest.param(
        MINIMAL
        + '\n[[sites]]\nhost = "b.example.com"\norigin = "http://b"\nread_timeout = "slow"\n',
        r"config\.toml:8: sites\[1\]\.read_timeout: input should be a valid number",
        id="second-site-bad-type",
    ),
    pytest.param(
        '[server]\nlisten = ["8080"]\n' + MINIMAL,
        r"config\.toml:2: server\.listen: \"8080\" is not \"host:port\"",
        id="listen-without-host",
    ),
    pytest.param(
        '[privacy]\nconsent_granted = "("\n' + MINIMAL,
        r"config\.toml:2: privacy\.consent_granted: invalid regular expression",
        id="bad-regex",
    ),
    pytest.param(
        '[privacy]\nconsent_mode = "opt-in"\n' + MINIMAL,
        r"config\.toml:2: privacy\.consent_mode: input should be 'legitimate-interest' or 'strict'",
        id="bad-choice",
    ),
    pytest.param(
        '[redis]\nurl = "valkey://cache:6379"\n' + MINIMAL,
        r"config\.toml:2: redis\.url: the URL must start with redis://, rediss://, unix:// "
        r"or redis\+cluster://",
        id="redis-url-scheme",
    ),
    pytest.param(
        "[server]\nlisten = [\n",
        r"config\.toml:\d+: not valid TOML",
        id="toml-syntax",
    ),
    pytest.param(
        "[server]\n",
        r"config\.toml: sites: field required",
        id="no-sites",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_is_refused_with_file_line_key_and_hint(
    tmp_path: Path, text: str, expected: str
) -> None:
    with pytest.raises(InvalidFileError) as raised:
        load_config(write(tmp_path, text), environ={})
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_environment_overrides_keys(tmp_path: Path) -> None:
    environ = {
        "REFRACT_REDIS__URL": "redis://cache:6379/2",
        "REFRACT_SERVER__WORKERS": "4",
        "REFRACT_SERVER__LISTEN": '["0.0.0.0:80"]',
        "REFRACT_SITES__0__ORIGIN": "https://other.example.com",
        "UNRELATED": "x",
    }
    config = load_config(write(tmp_path, MINIMAL), environ=environ)
    assert config.redis.url == "redis://cache:6379/2"
    assert config.server.workers == 4
    assert config.server.listen == ["0.0.0.0:80"]
    assert config.sites[0].origin == "https://other.example.com"


@pytest.mark.parametrize("name", ["REFRACT_SITES__7__ORIGIN", "REFRACT_SITES__X__ORIGIN"])
def test_environment_override_of_a_missing_key_is_an_error(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidFileError, match=f"environment: {name}: does not name a key"):
        load_config(write(tmp_path, MINIMAL), environ={name: "x"})


def test_bad_environment_value_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidFileError, match=r"server\.workers: input should be a valid integer"):
        load_config(write(tmp_path, MINIMAL), environ={"REFRACT_SERVER__WORKERS": "many"})


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidFileError, match="cannot read"):
        load_config(tmp_path / "absent.toml", environ={})
