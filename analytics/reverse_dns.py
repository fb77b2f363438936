"""Reverse DNS of a visitor's address to a company domain: worker only, cached, with a timeout.

A PTR record is whatever the owner of the IP range writes, so it suggests the company that
owns a network rather than proving it; the account index (rules/account_index.py) then decides
whether that domain is an account.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final

from refract.analytics.ttl_cache import MISS, TtlLru
from refract.rules.domains import LABEL, registrable_domain
from refract.rules.ip_ranges import ip_key

Resolver = Callable[[str], Awaitable[str | None]]
"""Reverse DNS: an IP address -> its PTR host name, None when it has none; OSError when the
lookup failed (the DNS server is unreachable, or answered with an error)."""

REVERSE_DNS_TIMEOUT_S: Final = 2.0
REVERSE_DNS_TTL_S: Final = 24 * 3600.0  # PTR records of company networks rarely change
REVERSE_DNS_FAILURE_TTL_S: Final = 300.0  # a timeout may pass; do not retry it every event
# Keyed by (resolver, ip): answers of a test's table resolver never leak into the system's.
_DEFAULT_CACHE: TtlLru[tuple[Resolver, str], str | None] = TtlLru(50_000, REVERSE_DNS_TTL_S)
# Threads of their own: a lookup abandoned by its timeout keeps its thread until the system
# gives up, and must not starve the default executor (the worker archives through it).
_LOOKUP_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="refract-rdns")
# getnameinfo's answers that mean "this address has no name", as opposed to a failure
_NO_NAME = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)


async def system_resolver(ip: str) -> str | None:
    """The operating system's reverse lookup, in a thread pool of its own (it blocks).

    A lookup abandoned by a timeout still occupies its thread until the system gives up, so
    only the worker, never the proxy, calls this. No name is None; a failed lookup (server
    unreachable or failing: EAI_AGAIN, EAI_FAIL) raises OSError.
    """
    loop = asyncio.get_running_loop()
    try:
        host, _ = await loop.run_in_executor(
            _LOOKUP_THREADS, socket.getnameinfo, (ip, 0), socket.NI_NAMEREQD
        )
    except socket.gaierror as error:
        if error.errno in _NO_NAME:
            return None
        raise
    return host


async def reverse_dns_domain(
    ip: str,
    resolver: Resolver = system_resolver,
    *,
    cache: TtlLru[tuple[Resolver, str], str | None] | None = None,
    timeout_s: float = REVERSE_DNS_TIMEOUT_S,
    on_failure: Callable[[], None] | None = None,
) -> str | None:
    """The registrable domain of ``ip``'s PTR name (``mail-gw1.acme.com`` -> ``acme.com``).

    None when the address is invalid, has no PTR record, the lookup fails or times out, or
    the name is no company's (``localhost``). Answers, negative ones too, are cached per
    resolver; failures for a shorter time, and ``on_failure`` is called for each (so a
    caller can count them; a cached failure is not counted again).
    """
    key = ip_key(ip)
    if key is None:
        return None
    store = _DEFAULT_CACHE if cache is None else cache
    cached = store.get((resolver, ip))
    if cached is not MISS:
        return cached
    try:
        host = await asyncio.wait_for(resolver(ip), timeout_s)
    except (TimeoutError, OSError):
        store.set((resolver, ip), None, REVERSE_DNS_FAILURE_TTL_S)
        if on_failure is not None:
            on_failure()
        return None
    domain = _host_domain(host)
    store.set((resolver, ip), domain)
    return domain


def _host_domain(host: str | None) -> str | None:
    """A PTR name -> its registrable domain; None for an address echoed back or junk."""
    if not host:
        return None
    name = host.strip().lower().rstrip(".")
    if ip_key(name) is not None or not all(LABEL.fullmatch(label) for label in name.split(".")):
        return None
    return registrable_domain(name)
