"""Everything a request needs that comes from configuration, swapped whole on reload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aiohttp import web

from proxy.forwarding import TrustedProxies
from proxy.identity import IdentityPolicy
from proxy.origin_cache import OriginCache
from proxy.rewrite_cache import RewriteCache
from proxy.rewriter import PageRewriter
from proxy.sites import Site, SiteRouter
from rules.config import Config
from rules.decisions import CompiledRules
from rules.ruleset import EMPTY, load_rules


def beacon_tag(prefix: str) -> str:
    return f'<script src="{prefix}beacon.js" async data-refract-beacon></script>'


@dataclass(frozen=True)
class ProxyState:
    config: Config
    router: SiteRouter
    identity: IdentityPolicy
    trusted: TrustedProxies
    rewriter: PageRewriter
    beacon: str
    rules: CompiledRules
    cache: RewriteCache
    origin_cache: OriginCache

    KEY: ClassVar[web.AppKey[StateHolder]]

    @classmethod
    def from_config(cls, config: Config) -> ProxyState:
        """Raises InvalidFileError when the rule files are wrong: nothing half-applies."""
        directory = config.rules.directory
        rules = load_rules(directory) if directory is not None else EMPTY
        return cls(
            config=config,
            router=SiteRouter(config.sites),
            identity=IdentityPolicy(config.cookies, config.privacy),
            trusted=TrustedProxies(config.server.trusted_proxies),
            rewriter=PageRewriter(),
            beacon=beacon_tag(config.server.prefix),
            rules=CompiledRules(rules),
            cache=RewriteCache(config.server.rewrite_cache),
            origin_cache=OriginCache(config.server.origin_cache),
        )

    def tail_for(self, site: Site) -> str:
        return self.beacon if site.config.beacon else ""


class StateHolder:
    """The state in force; reload replaces ``current`` in one assignment."""

    def __init__(self, state: ProxyState) -> None:
        self.current = state


ProxyState.KEY = web.AppKey("refract.state", StateHolder)
