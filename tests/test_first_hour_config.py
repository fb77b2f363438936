"""Configuration slips of an operator's first hour, caught by `refract check` with the key and
what to write instead: a site's host given as a URL (which passed, and every request got 421),
an alias repeating the site's host, a prefix of "/", an endless graceful timeout, a variable
naming an unknown table, and trusted proxies that trust every address."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from refract.admin import cli
from refract.rules.config import load_config
from refract.rules.problems import InvalidFileError

CONFIG = (
    '[server]\nlisten = ["127.0.0.1:19201"]\nmetrics_listen = ""\n{server}\n'
    '[[sites]]\norigin = "http://127.0.0.1:19202"\n{site}\n'
)


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("REFRACT_")]:
        monkeypatch.delenv(name)


def write(tmp_path: Path, site: str, server: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(server=server, site=site))
    return path


def refusal(path: Path, environ: dict[str, str] | None = None) -> str:
    with pytest.raises(InvalidFileError) as raised:
        load_config(path, environ=environ or {})
    return str(raised.value)


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (
            'host = "https://www.example.com/"',
            'sites[0].host: "https://www.example.com/" is a URL; give only its host name: '
            '"www.example.com"',
        ),
        (
            'host = "http://www.example.com:8080"',
            'sites[0].host: "http://www.example.com:8080" is a URL; give only its host name: '
            '"www.example.com:8080"',
        ),
        ('host = ""', 'sites[0].host: is empty; give a host name, e.g. "www.example.com"'),
        ('host = "a b"', 'sites[0].host: "a b" is not a host name, IP address or "host:port"'),
        ('host = "h:1:2"', 'sites[0].host: "h:1:2" is not a host name, IP address or "host:port"'),
        (
            'host = "a.test"\naliases = ["https://b.test"]',
            'sites[0].aliases: "https://b.test" is a URL; give only its host name: "b.test"',
        ),
        (
            'host = "a.test"\nhost_header = "bad host/x"',
            'sites[0].host_header: "bad host/x" is not a host name, IP address or "host:port"',
        ),
        (
            'host = "a.test"\naliases = ["b.test", "A.test."]',
            'sites[0].aliases: "A.test." is the site\'s own host; list only other names',
        ),
    ],
)
def test_a_sites_hosts_are_host_names(tmp_path: Path, site: str, expected: str) -> None:
    refused = refusal(write(tmp_path, site))
    assert expected in refused
    assert "hint: " in refused
    assert "served by two sites" not in refused


@pytest.mark.parametrize(
    "site",
    [
        'host = "*"',
        'host = "www.example.com"\naliases = ["example.com", "*"]',
        'host = "a.test."\nhost_header = "public"',
        'host = "127.0.0.1:8080"\nhost_header = "origin.internal:8443"',
        'host = "[::1]:8080"',
    ],
)
def test_host_names_addresses_and_ports_are_accepted(tmp_path: Path, site: str) -> None:
    load_config(write(tmp_path, site))


def test_an_empty_host_from_the_environment_is_blamed_on_the_variable(tmp_path: Path) -> None:
    refused = refusal(write(tmp_path, 'host = "a.test"'), {"REFRACT_SITES__0__HOST": ""})
    assert "environment: REFRACT_SITES__0__HOST: sites[0].host: is empty" in refused


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        (
            'prefix = "/"',
            'server.prefix: the prefix must start and end with "/" and name a path between '
            'them, e.g. "/_refract/" ("/" alone would take every path from the origin)',
        ),
        ("graceful_timeout = inf", "server.graceful_timeout: input should be a finite number"),
    ],
)
def test_server_values_that_cannot_work_are_refused(
    tmp_path: Path, server: str, expected: str
) -> None:
    assert expected in refusal(write(tmp_path, 'host = "*"', server))


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("REFRACT_BOGUS__X", "environment: REFRACT_BOGUS__X: bogus: unknown key"),
        (
            "REFRACT_SERVR__WORKERS",
            "environment: REFRACT_SERVR__WORKERS: servr: unknown key\n"
            "    hint: did you mean REFRACT_SERVER__WORKERS?",
        ),
        (
            "REFRACT_SERVER__WORKRES",
            "environment: REFRACT_SERVER__WORKRES: server.workres: unknown key\n"
            "    hint: did you mean REFRACT_SERVER__WORKERS?",
        ),
    ],
)
def test_a_variable_naming_no_key_is_blamed_not_the_file(
    tmp_path: Path, variable: str, expected: str
) -> None:
    path = write(tmp_path, 'host = "*"')
    refused = refusal(path, {variable: "1"})
    assert expected in refused
    assert str(path) not in refused


@pytest.mark.parametrize("everyone", ["0.0.0.0/0", "::/0"])
def test_check_warns_about_trusting_every_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], everyone: str
) -> None:
    server = f'trusted_proxies = ["10.0.0.0/8", "{everyone}"]'
    assert cli.main(["--config", str(write(tmp_path, 'host = "*"', server)), "check"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert warnings == [
        f"warning: server.trusted_proxies: {everyone} trusts every address: any visitor can "
        "then choose the address Refract sees (per-address beacon limits, accounts matched by "
        "IP range, the address in events); list only your load balancers' or CDN's ranges"
    ]
