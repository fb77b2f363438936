"""Configuration errors an operator meets: each names where the bad value came from (the file,
the REFRACT_* variable or the command-line option) and a hint, without a traceback."""

from __future__ import annotations

import getpass
import os
import re
from pathlib import Path

import pytest

from refract.admin import cli
from refract.rules.config import load_config
from refract.rules.problems import InvalidFileError

CONFIG = (
    '[server]\nlisten = ["127.0.0.1:19201"]\nworkers = 1\nmetrics_listen = ""\n{extra}\n'
    '[[sites]]\nhost = "*"\nid = "t"\norigin = "http://127.0.0.1:19202"\n'
)


def write(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(extra=extra))
    return path


def refusal(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(InvalidFileError) as raised:
        load_config(path, environ=environ or {})
    return str(raised.value)


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.main reads os.environ (and --workers writes to it): start and end without REFRACT_*."""
    for name in [name for name in os.environ if name.startswith("REFRACT_")]:
        monkeypatch.delenv(name)


# ------------------------------------------------------------------ config.toml's encoding


def test_a_non_utf8_config_is_refused_with_its_name_line_and_hint(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(CONFIG.format(extra="# caf\xe9 (Latin-1)").encode("latin-1"))
    assert refusal(path) == f"{path}:5: is not UTF-8\n    hint: save it as UTF-8 (not Latin-1)"


def test_the_command_refuses_a_non_utf8_config_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(CONFIG.format(extra="# caf\xe9").encode("latin-1"))
    assert cli.main(["--config", str(path), "check"]) == 2
    assert f"{path}:5: is not UTF-8" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "\ufeff" + CONFIG.format(extra=""),
            r":1: starts with a byte order mark.*\n    hint: remove",
        ),
        (CONFIG.format(extra="workers = 2"), r":5: server\.workers: defined twice: on line 3"),
    ],
    ids=["byte-order-mark", "duplicate-key"],
)
def test_a_toml_mistake_in_the_config_gets_its_own_hint(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    message = refusal(path)
    assert re.search(expected, message), message


# ------------------------------------------------------------- errors in REFRACT_* variables

ENVIRONMENT_ERRORS = [
    pytest.param(
        {"REFRACT_SERVER__WORKERS": "four"},
        r"^environment: REFRACT_SERVER__WORKERS: server\.workers: input should be a valid "
        r"integer.*\n    hint: number of proxy processes",
        id="bad-value",
    ),
    pytest.param(
        {"REFRACT_SERVER__WORKRES": "2"},
        r"^environment: REFRACT_SERVER__WORKRES: server\.workres: unknown key\n"
        r"    hint: did you mean REFRACT_SERVER__WORKERS\?$",
        id="unknown-key",
    ),
    pytest.param(
        {"REFRACT_SITES__0__ID": "Not-Lowercase"},
        r"^environment: REFRACT_SITES__0__ID: sites\[0\]\.id: string should match",
        id="site-key",
    ),
    pytest.param(
        {"REFRACT_SERVER__TRUSTED_PROXIES": '["10.0.0.0/8", "nope"]'},
        r"^environment: REFRACT_SERVER__TRUSTED_PROXIES: server\.trusted_proxies: \"nope\" is "
        r"not a CIDR range",
        id="item-of-a-list",
    ),
]


@pytest.mark.parametrize(("environ", "expected"), ENVIRONMENT_ERRORS)
def test_an_environment_error_names_the_variable_not_a_line_of_the_file(
    tmp_path: Path, environ: dict[str, str], expected: str
) -> None:
    message = refusal(write(tmp_path), environ)
    assert re.search(expected, message), message
    assert "config.toml" not in message


def test_an_error_in_the_file_still_names_its_line_beside_an_override(tmp_path: Path) -> None:
    path = write(tmp_path, extra="graceful_timeout = -1")
    message = refusal(path, {"REFRACT_SERVER__WORKERS": "2"})
    assert message.startswith(f"{path}:5: server.graceful_timeout: "), message


# ------------------------------------------------------- text settings set in the environment

TEXT_OVERRIDES = [
    pytest.param("REFRACT_INTEL__ENRICHMENT_KEY", "20240101", "20240101", id="all-digit-key"),
    pytest.param(
        "REFRACT_AUTOMATIONS__SMTP__PASSWORD", "1979-05-27", "1979-05-27", id="date-password"
    ),
    pytest.param("REFRACT_AUTOPILOT__LLM_KEY", "true", "true", id="boolean-like-key"),
    pytest.param("REFRACT_AUTOPILOT__LLM_KEY", "1e5", "1e5", id="float-like-key"),
    pytest.param("REFRACT_SITES__0__ID", "2024", "2024", id="digit-site-id"),
    pytest.param(
        "REFRACT_REDIS__URL", '"redis://cache:6379/0"', "redis://cache:6379/0", id="quoted"
    ),
]


@pytest.mark.parametrize(("name", "value", "expected"), TEXT_OVERRIDES)
def test_a_text_setting_takes_the_variable_as_written(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    config = load_config(write(tmp_path), environ={name: value})
    setting = {
        "REFRACT_INTEL__ENRICHMENT_KEY": lambda: config.intel.enrichment_key,
        "REFRACT_AUTOMATIONS__SMTP__PASSWORD": lambda: config.automations.smtp.password,
        "REFRACT_AUTOPILOT__LLM_KEY": lambda: config.autopilot.llm_key,
        "REFRACT_SITES__0__ID": lambda: config.sites[0].id,
        "REFRACT_REDIS__URL": lambda: config.redis.url,
    }[name]()
    assert setting == expected


def test_a_path_setting_takes_digits_as_a_directory_name(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={"REFRACT_EVENTS__ARCHIVE_DIR": "2024"})
    assert config.events.archive_dir == tmp_path / "2024"


def test_a_numeric_setting_still_reads_a_toml_number(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={"REFRACT_SERVER__GRACEFUL_TIMEOUT": "2.5"})
    assert config.server.graceful_timeout == 2.5


# ---------------------------------------------------------- the key and a hint, not internals

INTERNALS = [
    pytest.param(
        'trusted_proxies = ["10.0.0.1/8"]',
        r':5: server\.trusted_proxies: "10\.0\.0\.1/8" has host bits set: did you mean '
        r'"10\.0\.0\.0/8"\?\n    hint: CIDR ranges',
        id="host-bits-set",
    ),
    pytest.param(
        'trusted_proxies = ["proxy.local"]',
        r':5: server\.trusted_proxies: "proxy\.local" is not a CIDR range\n    hint: CIDR',
        id="not-a-network",
    ),
    pytest.param(
        "[events]\narchive_dir = 2024",
        r":6: events\.archive_dir: 2024 is not a path: write it as a string.*\n"
        r"    hint: where the worker writes",
        id="archive-dir-number",
    ),
]


@pytest.mark.parametrize(("extra", "expected"), INTERNALS)
def test_an_error_names_the_key_and_a_hint_not_pydantic_internals(
    tmp_path: Path, extra: str, expected: str
) -> None:
    message = refusal(write(tmp_path, extra))
    assert re.search(expected, message), message
    assert "lax-or-strict" not in message
    assert len(message.splitlines()) == 2, message  # one problem, one hint


# ----------------------------------------------------------------------------- --workers


@pytest.mark.parametrize("workers", ["300", "-1", "0", "two"])
def test_workers_option_out_of_bounds_is_refused_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], workers: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", str(write(tmp_path)), "--workers", workers, "check"])
    assert exited.value.code == 2
    assert f"argument --workers: '{workers}'" in capsys.readouterr().err


def test_workers_option_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFRACT_SERVER__WORKERS", "1")  # restored after the test
    assert cli.main(["--config", str(write(tmp_path)), "--workers", "3", "check"]) == 0
    assert load_config(write(tmp_path)).server.workers == 3  # what the children read


# ----------------------------------------------------------------------------- users add


def test_users_add_without_a_terminal_or_password_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_terminal(prompt: str = "") -> str:
        raise EOFError  # what getpass raises reading an empty, closed stdin

    monkeypatch.setattr(getpass, "getpass", no_terminal)
    path = write(tmp_path)
    assert cli.main(["--config", str(path), "users", "add", "ops", "--role", "admin"]) == 2
    assert capsys.readouterr().err == (
        "refract users add: no password: set REFRACT_PASSWORD or run in a terminal "
        "(docker exec -it)\n"
    )


# ------------------------------------------------------------------------- report --alpha


@pytest.mark.parametrize("alpha", ["2", "-1", "nan", "inf", "0", "0.5", "x"])
def test_report_refuses_an_alpha_the_admin_api_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], alpha: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--config", str(write(tmp_path)), "report", "exp1", "--alpha", alpha])
    assert exited.value.code == 2
    assert f"argument --alpha: '{alpha}'" in capsys.readouterr().err


@pytest.mark.parametrize("alpha", ["0.05", "0.001", "0.49"])
def test_report_takes_an_alpha_the_admin_api_takes(alpha: str) -> None:
    from refract.admin.api_reads import ReportQuery

    assert cli._alpha(alpha) == ReportQuery(alpha=float(alpha)).alpha
