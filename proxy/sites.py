"""Sites by public host, each with its own pooled client to its origin."""

from __future__ import annotations

import aiohttp
from yarl import URL

from refract.proxy.headers import MAX_FIELDS
from refract.rules.config import SiteConfig, without_root_dot

# The client must add nothing of its own: the origin sees the visitor's headers.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class Site:
    def __init__(self, config: SiteConfig, max_header_bytes: int) -> None:
        self.config = config
        self.key = config.key
        self.origin: URL = config.origin_url
        self.origin_base = str(self.origin).rstrip("/")
        # names of our cookies the origin's Set-Cookie was found setting, logged once each
        self.owned_cookies_logged: set[str] = set()
        self.client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60, ssl=config.verify_tls),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=config.connect_timeout, sock_read=config.read_timeout
            ),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_NO_AUTO_HEADERS,
            # what a visitor may send, an origin may answer (server.max_header_bytes, and
            # MAX_FIELDS fields): past it, the origin's fault (502), as for nginx; WebSocket
            # handshakes included
            max_line_size=max_header_bytes,
            max_field_size=max_header_bytes,
            max_headers=MAX_FIELDS,
        )

    def upstream_host(self, public_host: str) -> str:
        """The Host header for the origin, as the site's ``host_header`` asks."""
        mode = self.config.host_header
        if mode == "origin":
            host = self.origin.host or ""
            return host if self.origin.is_default_port() else f"{host}:{self.origin.port}"
        if mode == "public":
            # The visitor's "a.test." is sent as "a.test": the same DNS name, in the spelling
            # the origin's virtual hosts and allowed-host lists are written in (nginx and
            # Django strip the dot too, but not every framework does), and one origin cache
            # entry for both spellings, as they are one site here.
            return without_root_dot(public_host)
        return mode

    async def close(self) -> None:
        await self.client.close()


class SiteRouter:
    """Finds the site for a Host header: exact host:port, then host name, then ``*``; a
    name's one trailing dot (``a.test.``, the fully qualified spelling) does not count."""

    def __init__(self, configs: list[SiteConfig], max_header_bytes: int) -> None:
        self.sites = [Site(config, max_header_bytes) for config in configs]
        self._by_host: dict[str, Site] = {}
        self._fallback: Site | None = None
        for site in self.sites:
            for host in (site.config.host, *site.config.aliases):
                if host == "*":
                    self._fallback = site
                else:
                    self._by_host[_routing_name(host)] = site

    def match(self, host: str) -> Site | None:
        host = _routing_name(host)
        site = self._by_host.get(host)
        if site is None and ":" in host and not host.endswith("]"):
            site = self._by_host.get(host.rsplit(":", 1)[0])
        return site or self._fallback

    async def close(self) -> None:
        for site in self.sites:
            await site.close()


def _routing_name(host: str) -> str:
    """The host[:port] a site is filed and looked up under: case and the root dot ignored."""
    return without_root_dot(host.lower())
