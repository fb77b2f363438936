"""Every log line follows ``privacy.ip_in_logs`` and drops query strings: the proxy's and the
admin's access lines, aiohttp's own error lines (a request line over 8 KiB, a malformed
request) and any other line, in a real `refract` process."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from refract.rules.log_hygiene import LogHygiene
from tests.conftest import BROWSER, free_port
from tests.support.processes import REPOSITORY, config_text, wait_healthy

SECRET = "jane.doe@example.org"


async def raw_request(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await reader.read(1000)
    writer.close()
    return answer


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "shown"), [("none", None), ("truncated", "127.0.0.0")])
async def test_a_proxy_logs_no_query_and_addresses_only_as_the_policy_says(
    origin: TestServer, redis_url: str, tmp_path: Path, mode: str, shown: str | None
) -> None:
    port = free_port()
    extra = f'[redis]\nurl = "{redis_url}"\n[privacy]\nip_in_logs = "{mode}"\n'
    config = tmp_path / "config.toml"
    config.write_text(config_text(port, str(origin.make_url("")).rstrip("/"), extra=extra))
    out, err = (tmp_path / "stdout").open("wb"), (tmp_path / "stderr").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "refract.admin.cli", "--config", str(config), "proxy",
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, stdout=out, stderr=err,
    )  # fmt: skip
    try:
        await wait_healthy(port, process)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(headers={"User-Agent": BROWSER}) as session:
            async with session.get(f"{base}/page?email={SECRET}") as response:
                assert response.status == 200
            long_query = "/page?email=" + SECRET + "&pad=" + "x" * 9000  # over aiohttp's 8 KiB
            async with session.get(base + long_query) as response:
                assert response.status in (400, 414)
        await raw_request(
            port, b"GET /page?email=" + SECRET.encode() + b" HTTP/1.1\r\n\x01\r\n\r\n"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    logged = (tmp_path / "stdout").read_text() + (tmp_path / "stderr").read_text()

    assert '"path":"/page"' in logged  # the access line is there, without its query
    assert SECRET not in logged
    assert "xxxxxxxx" not in logged
    assert "127.0.0.1" not in logged.replace(f"127.0.0.1:{port}", "")  # the listener may show
    if shown is not None:
        assert shown in logged


@pytest.mark.parametrize(
    ("mode", "line", "cleaned"),
    [
        (
            "none",
            "Error handling request from 203.0.113.9",
            "Error handling request from <address removed>",
        ),
        (
            "truncated",
            "Error handling request from 203.0.113.9",
            "Error handling request from 203.0.113.0",
        ),
        (
            "full",
            "Error handling request from 203.0.113.9",
            "Error handling request from 203.0.113.9",
        ),
        ("truncated", "from 2001:db8:1:2::9", "from 2001:db8:1::"),
        ("none", "GET /a?email=jane@x.org HTTP/1.1", "GET /a?<query removed> HTTP/1.1"),
        ("none", "bad line b'GET /?q=1 HTTP/1.1\\r\\n'", "bad line <request bytes removed>"),
        ("none", "version 3.14.5 is fine", "version 3.14.5 is fine"),
        ("none", 'GET /web"s path "x" done', 'GET /web"s path "x" done'),  # not bytes: web"
    ],
)
def test_the_filter_rewrites_addresses_queries_and_request_bytes(
    mode: str, line: str, cleaned: str
) -> None:
    record = logging.makeLogRecord({"msg": "%s", "args": (line,)})
    assert LogHygiene(mode).filter(record)
    assert record.getMessage() == cleaned
    assert LogHygiene(mode).filter(record)  # the admin's logger filter, then a handler's
    assert record.getMessage() == cleaned


@pytest.mark.parametrize(
    ("line", "cleaned"),
    [
        # Refract's and the operator's own words: left as they are
        ("hint: did you mean 'workers'?",) * 2,
        ("is it on? yes", "is it on? yes"),
        ("(which one?)",) * 2,
        (
            "metrics listener 10.255.255.1:9171 not started: [Errno 99] error while attempting "
            "to bind on address ('10.255.255.1', 9171): cannot assign requested address",
        )
        * 2,
        ("error while attempting to bind on address ('::1', 9171, 0, 0): in use",) * 2,
        # a visitor's values: still removed
        ("GET /a?email=jane@x.org HTTP/1.1", "GET /a?<query removed> HTTP/1.1"),
        ("Bad target '?email=jane@x.org'", "Bad target '?<query removed>'"),
        ("GET /a?(x)=1 HTTP/1.1", "GET /a?<query removed> HTTP/1.1"),
        ("GET /a?)x=1 HTTP/1.1", "GET /a?<query removed> HTTP/1.1"),
        ("Error handling request from 203.0.113.9", "Error handling request from 203.0.113.0"),
        ("peer ('203.0.113.9', 54321) reset", "peer ('203.0.113.0', 54321) reset"),
    ],
)
def test_operators_words_stay_and_visitors_values_go(line: str, cleaned: str) -> None:
    assert LogHygiene("truncated").clean(line) == cleaned


@pytest.mark.parametrize(
    ("line", "cleaned"),
    [
        (  # a real bytes repr inside a longer message
            "Error handling request: message b'GET / HTTP/1.1\\r\\nHost: x\\r\\n' at 3",
            "Error handling request: message <request bytes removed> at 3",
        ),
        ('data b"GET / HTTP/1.1" left', "data <request bytes removed> left"),
        ("buffer bytearray(b'GET / HTTP/1.1') left", "buffer <request bytes removed> left"),
        ("[b'GET /', b'x']", "[<request bytes removed>, <request bytes removed>]"),
        # quoted text whose first letter is b: a string, not bytes
        ("names ['b', 'c'], the variants are ['b', 'c', 'control']",) * 2,
        ("names ['a', 'b'] and ['c']",) * 2,
        ("the keys \"b'\" and 'c'",) * 2,
        ("hex xb'41' and '42' stay",) * 2,
        ("'ab', 'bc' and _b'x' stay",) * 2,
    ],
)
def test_only_a_python_bytes_repr_is_removed(line: str, cleaned: str) -> None:
    assert LogHygiene("full").clean(line) == cleaned
