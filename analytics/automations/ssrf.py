"""Against server-side request forgery: the one HTTP session automations send with, which
reaches no private, loopback, link-local, multicast, reserved or unspecified address (IPv4 or
IPv6, an IPv4-mapped IPv6 address judged as the IPv4 one) unless ``[automations] allow_hosts``
covers the host name or the address.

Names are checked after resolution, on the addresses the connection then uses, so a name that
resolves (or re-resolves) to a private address is refused too; URLs with a literal address
never reach a resolver and are checked before the request starts; so is an IPv4 address in
a non-canonical spelling (``2130706434``, ``127.2``, ``0x7f.1``), refused whatever it is:
resolvers disagree on what it means. Redirects are refused: a
public endpoint must not bounce a request to an internal one. A refusal raises
``AddressRefused``, which is no ``aiohttp.ClientError``, so a sender's network-error handling
does not take it for a failure worth retrying; the deliverer makes it a permanent failure.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from refract.rules.config import noncanonical_ipv4

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(Exception):
    """A destination's address is private (or a redirect was attempted) and not allowed."""


@dataclass(frozen=True, slots=True)
class Allowance:
    """What ``allow_hosts`` lets through: host names, and addresses by network."""

    names: frozenset[str]
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, allow_hosts: Iterable[str]) -> Allowance:
        names, networks = set(), []
        for entry in allow_hosts:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.add(_normal(entry))
        return cls(frozenset(names), tuple(networks))

    def covers_name(self, host: str) -> bool:
        return _normal(host) in self.names

    def covers(self, address: Address) -> bool:
        return any(
            address in network for network in self.networks if network.version == address.version
        )


def _normal(host: str) -> str:
    return host.rstrip(".").lower()


def forbidden(address: Address) -> bool:
    """Whether an address is one no destination may have: anything not globally routable
    (private, loopback, link-local, reserved, unspecified, shared) and multicast."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return forbidden(address.ipv4_mapped)
    return not address.is_global or address.is_multicast


def check_address(address: Address, allowance: Allowance, host: str) -> None:
    """Raise AddressRefused unless ``address`` (of ``host``) may be reached."""
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if not forbidden(address) or allowance.covers(address) or (mapped and allowance.covers(mapped)):
        return
    raise AddressRefused(
        f"{host} resolves to {address}, a private or reserved address: refused "
        "(add it to [automations] allow_hosts if it is meant)"
        if host != str(address)
        else f"{address} is a private or reserved address: refused "
        "(add it to [automations] allow_hosts if it is meant)"
    )


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only the addresses a destination may have."""

    def __init__(self, allowance: Allowance, inner: AbstractResolver | None = None) -> None:
        self._allowance = allowance
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allowance.covers_name(host):
            return results
        kept, refusal = [], None
        for result in results:
            try:
                check_address(ipaddress.ip_address(result["host"]), self._allowance, host)
            except AddressRefused as error:
                refusal = error
            else:
                kept.append(result)
        if not kept and refusal is not None:
            raise refusal
        return kept

    async def close(self) -> None:
        await self._inner.close()


def _request_guard(allowance: Allowance) -> aiohttp.TraceConfig:
    """Checks made as a request starts (a literal address skips the resolver) and when a
    redirect would be followed."""

    async def on_start(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        host = params.url.raw_host or ""
        if (canonical := noncanonical_ipv4(host)) is not None:
            raise AddressRefused(
                f"{host} is an IPv4 address in a non-canonical spelling: refused (write it "
                f"as {canonical} in the destination's URL)"
            )
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return  # a name: the resolver checks what it resolves to
        if not allowance.covers_name(host):
            check_address(address, allowance, host)

    async def on_redirect(
        _session: aiohttp.ClientSession,
        _context: SimpleNamespace,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        target = params.response.headers.get("Location", "")[:200]
        raise AddressRefused(f"redirect to {target!r} not followed: configure the final URL")

    guard = aiohttp.TraceConfig()
    guard.on_request_start.append(on_start)
    guard.on_request_redirect.append(on_redirect)
    return guard


def guarded_session(allow_hosts: Iterable[str], limit: int = 256) -> aiohttp.ClientSession:
    """An HTTP session that reaches only public addresses and those ``allow_hosts`` covers,
    follows no redirect and ignores proxy settings from the environment."""
    allowance = Allowance.of(allow_hosts)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowance), limit=limit)
    return aiohttp.ClientSession(
        connector=connector, trace_configs=[_request_guard(allowance)], trust_env=False
    )


def refusal(error: BaseException) -> AddressRefused | None:
    """The refusal behind an error, if one is (a sender that wraps errors keeps the cause)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
