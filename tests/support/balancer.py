"""A round-robin TCP balancer: one address in front of several nodes, as a load balancer
puts them behind one, each new connection going to the next node in turn."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter


class RoundRobin:
    def __init__(self, ports: list[int]) -> None:
        self._next = itertools.cycle(ports)
        self.connections: Counter[int] = Counter()  # per node port: who served how many
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen on a free port of 127.0.0.1; that port."""
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        port = next(self._next)
        self.connections[port] += 1
        try:
            node_in, node_out = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_out.close()
            return
        await asyncio.gather(_pipe(client_in, node_out), _pipe(node_in, client_out))


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(ConnectionError, OSError):
            sink.close()
