"""config.toml: every site has a key of its own (it prefixes the site's kept pages and data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refract.admin import cli
from refract.rules.config import load_config
from refract.rules.problems import InvalidFileError


def sites(*tables: str) -> str:
    return "".join(f'[[sites]]\n{table}origin = "http://127.0.0.1:9"\n\n' for table in tables)


def load(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return [site.key for site in load_config(path, environ={}).sites]


SHARED_KEYS = [
    pytest.param(
        sites('host = "a.example.com"\nid = "shop"\n', 'host = "b.example.com"\nid = "shop"\n'),
        r'sites\[0\] \(id "shop"\) and sites\[1\] \(id "shop"\) have the same key "shop"',
        id="same-id",
    ),
    pytest.param(
        sites('host = "shop.example.com"\n', 'host = "shop-example.com"\n'),
        r'sites\[0\] \(host "shop\.example\.com"\) and sites\[1\] \(host "shop-example\.com"\) '
        r'have the same key "shop-example-com"',
        id="hosts-differing-in-dot-and-dash",
    ),
    pytest.param(
        sites('host = "shop.test"\n', 'host = "b.test"\nid = "shop-test"\n'),
        r'sites\[0\] \(host "shop\.test"\) and sites\[1\] \(id "shop-test"\) have the same key',
        id="id-equal-to-a-derived-key",
    ),
    pytest.param(
        sites('host = "*"\n', 'host = "default"\n'),
        r'sites\[0\] \(host "\*"\) and sites\[1\] \(host "default"\) have the same key "default"',
        id="catch-all-and-a-host-named-default",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SHARED_KEYS)
def test_two_sites_with_one_key_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(InvalidFileError) as raised:
        load(tmp_path, text)
    assert re.search(expected, str(raised.value)), str(raised.value)


def test_refract_check_names_the_file_the_sites_and_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(sites('host = "shop.example.com"\n', 'host = "shop-example.com"\n'))
    assert cli.main(["--config", str(path), "check"]) == 2
    assert re.match(
        rf"{re.escape(str(path))}:1: sites: .*: set a distinct id on one of them\n    hint: ",
        capsys.readouterr().err,
    )
    path.write_text(sites('host = "shop.example.com"\n', 'host = "shop-example.com"\nid = "b"\n'))
    assert [site.key for site in load_config(path, environ={}).sites] == ["shop-example-com", "b"]
