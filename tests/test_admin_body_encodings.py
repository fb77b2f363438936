"""The admin reads bodies as they are sent: one with a Content-Encoding gets a 415 saying so,
never a 500 (aiohttp's decoding of a body that does not decode raised out of the handler)."""

from __future__ import annotations

import gzip
import logging

import pytest

from refract.rules.config import Config
from tests.conftest import AdminFactory, make_config

LOGIN = b'{"username": "nobody", "password": "wrong password"}'


@pytest.fixture
def config(redis_url: str) -> Config:
    return make_config("http://127.0.0.1:9", redis={"url": redis_url})


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("deflate", b"not deflate"),
        ("br", LOGIN),
        ("gzip", gzip.compress(LOGIN)),
    ],
    ids=["bad-gzip", "bad-deflate", "br", "good-gzip"],
)
async def test_a_body_with_a_content_encoding_is_refused_with_a_reason(
    admin_api: AdminFactory, config: Config, coding: str, body: bytes
) -> None:
    client = await admin_api(config, role=None)
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    response = await client.post("/api/login", data=body, headers=headers)
    assert response.status == 415
    assert "Content-Encoding" in (await response.json())["error"]


async def test_a_body_that_does_not_decode_logs_no_error(
    admin_api: AdminFactory, config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    client = await admin_api(config, role=None)
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    with caplog.at_level(logging.WARNING):
        await client.post("/api/login", data=b"not gzip", headers=headers)
        await client.get("/api/health")  # the connection still serves
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


@pytest.mark.parametrize("coding", [None, "identity", " Identity "])
async def test_a_body_sent_as_it_is_is_read(
    admin_api: AdminFactory, config: Config, coding: str | None
) -> None:
    client = await admin_api(config, role=None)
    headers = {"Content-Type": "application/json"}
    if coding is not None:
        headers["Content-Encoding"] = coding
    response = await client.post("/api/login", data=LOGIN, headers=headers)
    assert response.status == 401  # read, and refused as a wrong password is
