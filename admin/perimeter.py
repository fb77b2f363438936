"""What the admin believes about a request's surroundings: which host it was sent to, who sent
it, and whether the browser reached us over HTTPS.

* **Host**: the admin answers only the names in ``admin.allowed_hosts`` (by default its
  listen host and the loopback names). A DNS-rebinding page points a name of its own at
  127.0.0.1 so that a visitor's browser talks to a localhost admin as if it were same-origin;
  it cannot make the browser send another Host, so refusing unknown names ends the attack.
  ``/api/health`` answers any Host: load balancers probe by address, and it tells nothing.
* **Client address and scheme**: the peer's, unless the peer is one of
  ``server.trusted_proxies``; then what its ``X-Forwarded-For``, ``X-Forwarded-Proto`` and
  ``Forwarded`` say, read as the proxy reads them (all their lines; rules/trusted_proxies.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from refract.admin.state import config_of
from refract.rules.config import Config, split_host_port
from refract.rules.trusted_proxies import TrustedNetworks

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST_PATHS = frozenset({"/api/health"})
_UNSPECIFIED = ("0.0.0.0", "::", "")


def allowed_hosts(config: Config) -> frozenset[str]:
    if config.admin.allowed_hosts:
        return frozenset(config.admin.allowed_hosts)
    listen_host = split_host_port(config.admin.listen)[0].lower()
    named = () if listen_host in _UNSPECIFIED else (listen_host,)
    return frozenset((*named, *LOOPBACK_NAMES))


def host_name(host_header: str) -> str:
    """``Host``'s name without the port: ``"[::1]:8090"`` -> ``"::1"``, lowercased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


@web.middleware
async def refuse_unknown_hosts(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path in ANY_HOST_PATHS:
        return await handler(request)
    if host_name(request.headers.get("Host", "")) not in allowed_hosts(config_of(request)):
        return web.json_response(
            {
                "error": "this admin does not answer that host name",
                "hint": "add it to admin.allowed_hosts in config.toml",
            },
            status=421,
        )
    return await handler(request)


def client_address(request: web.BaseRequest, config: Config) -> str:
    """The client's address: the peer's, or what trusted proxies say it is."""
    trusted = TrustedNetworks(config.server.trusted_proxies)
    return trusted.client_address(request.remote or "", request.headers)


def is_https(request: web.BaseRequest, config: Config) -> bool:
    """Whether the browser reached us over HTTPS: our own TLS, or a trusted proxy's word."""
    if request.secure:
        return True
    trusted = TrustedNetworks(config.server.trusted_proxies)
    return trusted.forwarding(request.remote or "", request.headers).scheme == "https"
