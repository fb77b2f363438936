"""Latency at a steady request rate, to the microsecond, over one keep-alive connection per
server, servers taking turns.

    python bench/steady_rate.py --port 8080 [--port 8081 ...] [--path /page.html]
        [--rate 200] [--seconds 10] [--turn 1.0] [--header "User-Agent: ..."]

Prints each request's server port and latency in milliseconds, one request per line: from
the first byte sent to the last byte of the body read. Requests leave on an even schedule
(``rate`` per second); one that would leave while the previous is unanswered leaves as soon
as it is answered, so the schedule never bursts. The servers take turns of ``--turn``
seconds until each has had ``--seconds``: a shared machine's speed drifts over seconds, and
turns spread that drift over every server alike instead of handing it to whichever ran last.

hey, which bench/proxy_bench.py used for this before, writes its per-request times in its CSV
to a tenth of a millisecond; added latencies of a few tenths of a millisecond need finer. The
client is the same for every server measured, so what it costs cancels out of the
differences the bench reports.

Answers must carry Content-Length (every server in the bench sends it for its pages); any
other answer ends the run with an error, as does a status other than 200.
"""

from __future__ import annotations

import argparse
import gc
import math
import socket
import sys
import time


class Connection:
    """One HTTP/1.1 keep-alive connection that reads answers framed by Content-Length."""

    def __init__(self, port: int) -> None:
        self._port = port
        self._sock = self._connect()
        self._buffer = bytearray()

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self._port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def exchange(self, request: bytes) -> None:
        """Send ``request`` and read its whole answer."""
        self._sock.sendall(request)
        head = self._read_until(b"\r\n\r\n")
        status_line, _, fields = head.partition(b"\r\n")
        if status_line.split(b" ", 2)[1] != b"200":
            raise RuntimeError(f"answer {status_line!r}")
        length = None
        closing = False
        for field in fields.split(b"\r\n"):
            name, _, value = field.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                closing = True
        if length is None:
            raise RuntimeError("an answer without Content-Length")
        self._read_exactly(length)
        if closing:
            self._sock.close()
            self._sock = self._connect()
            self._buffer.clear()

    def _fill(self) -> None:
        chunk = self._sock.recv(262_144)
        if not chunk:
            raise RuntimeError("the server closed the connection")
        self._buffer += chunk

    def _read_until(self, marker: bytes) -> bytes:
        while (end := self._buffer.find(marker)) < 0:
            self._fill()
        head = bytes(self._buffer[:end])
        del self._buffer[: end + len(marker)]
        return head

    def _read_exactly(self, size: int) -> None:
        while len(self._buffer) < size:
            self._fill()
        del self._buffer[:size]


def steady(connection: Connection, request: bytes, rate: int, seconds: float) -> list[float]:
    """Latencies (ms) of ``rate * seconds`` requests sent on an even schedule."""
    latencies: list[float] = []
    interval = 1.0 / rate
    start = time.perf_counter()
    for index in range(round(rate * seconds)):
        wait = start + index * interval - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        began = time.perf_counter_ns()
        connection.exchange(request)
        latencies.append((time.perf_counter_ns() - began) / 1e6)
    return latencies


def in_turns(
    ports: list[int], path: str, headers: list[str], rate: int, seconds: float, turn_s: float
) -> dict[int, list[float]]:
    """Each port's latencies (ms), the ports taking turns of ``turn_s`` seconds."""
    requests = {
        port: ("\r\n".join([f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *headers])).encode()
        + b"\r\n\r\n"
        for port in ports
    }
    connections = {port: Connection(port) for port in ports}
    latencies: dict[int, list[float]] = {port: [] for port in ports}
    for _ in range(math.ceil(seconds / turn_s)):
        for port in ports:
            connections[port].exchange(requests[port])  # the first after a pause is not timed
            latencies[port] += steady(connections[port], requests[port], rate, turn_s)
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--path", default="/page.html")
    parser.add_argument("--rate", type=int, default=200, help="requests per second")
    parser.add_argument("--seconds", type=float, default=10, help="per server")
    parser.add_argument("--turn", type=float, default=1.0, help="seconds per turn")
    parser.add_argument("--header", action="append", default=[], help='"Name: value"')
    args = parser.parse_args()
    gc.disable()  # a collection in the client would show as the server's latency
    latencies = in_turns(args.port, args.path, args.header, args.rate, args.seconds, args.turn)
    sys.stdout.write(
        "".join(f"{port} {ms:.4f}\n" for port, values in latencies.items() for ms in values)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
