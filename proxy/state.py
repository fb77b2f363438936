"""Everything a request needs that comes from configuration, swapped whole on reload."""

from __future__ import annotations

import dataclasses
import html
import json
from dataclasses import dataclass

from refract.proxy import csp
from refract.proxy.bots import BotDetector
from refract.proxy.forwarding import TrustedProxies
from refract.proxy.identity import IdentityPolicy
from refract.proxy.origin_cache import OriginCache
from refract.proxy.ratelimit import RateLimiter
from refract.proxy.rewrite_cache import RewriteCache
from refract.proxy.rewriter import PageRewriter
from refract.proxy.sites import Site, SiteRouter
from refract.rules.config import Config
from refract.rules.decisions import Allocations, CompiledRules
from refract.rules.networks import NetworkTable, load_table
from refract.rules.problems import InvalidFileError
from refract.rules.ruleset import EMPTY, RuleSet, load_rules

_SCRIPT_OPEN = "<script"


def beacon_tag(prefix: str, rules: RuleSet = EMPTY, email_domains: bool = False) -> str:
    """The beacon's script tag; it tells the script where to send and what counts as a conversion.

    ``data-metrics`` maps the click and form metrics of the rules to their selectors, so the
    beacon can say which of them a click or a submitted form matched.
    """
    metrics = {
        kind: {
            m.key: m.selector if kind == "click" else m.form
            for m in rules.metrics.values()
            if m.kind == kind
        }
        for kind in ("click", "form")
    }
    attributes = (
        f' data-collect="{prefix}collect"'
        f' data-metrics="{html.escape(json.dumps(metrics, separators=(",", ":")))}"'
        + (' data-email-domain=""' if email_domains else "")
    )
    # Every attribute has a value: XHTML pages (application/xhtml+xml) must stay well-formed.
    return (
        f'{_SCRIPT_OPEN} src="{prefix}beacon.js" async="" data-refract-beacon=""{attributes}>'
        "</script>"
    )


def with_nonce(tag: str, nonce: str) -> str:
    """The beacon's tag carrying the nonce of a page's Content-Security-Policy (proxy/csp.py:
    a checked base64 value, nothing to escape). Made per page: such a nonce is per response."""
    return _SCRIPT_OPEN + csp.nonce_attribute(nonce) + tag[len(_SCRIPT_OPEN) :]


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
    bots: BotDetector
    networks: NetworkTable
    visitor_rate: RateLimiter
    ip_rate: RateLimiter
    network_rate: RateLimiter
    # Why the rule files did not load when this process started (fail_open): it runs the rule
    # set published in Redis, or none, until a reload loads them. Empty: they loaded.
    rules_problem: str = ""

    @classmethod
    def from_config(cls, config: Config, fail_open: bool = False) -> ProxyState:
        """Raises InvalidFileError when the rule files are wrong: nothing half-applies. With
        ``fail_open`` (a process starting) the state runs no rules instead, and says why in
        ``rules_problem``: a process restarted while a rule file is being edited serves."""
        directory = config.rules.directory
        problem = ""
        if directory is None:
            rules = EMPTY
        elif fail_open:
            try:
                rules = load_rules(directory)
            except (InvalidFileError, OSError, ValueError, RecursionError) as error:
                rules, problem = EMPTY, str(error) or repr(error)
        else:
            rules = load_rules(directory)
        return cls(
            config=config,
            router=SiteRouter(config.sites, config.server.max_header_bytes),
            identity=IdentityPolicy(config.cookies, config.privacy),
            trusted=TrustedProxies(config.server.trusted_proxies),
            rewriter=PageRewriter(),
            beacon=beacon_tag(config.server.prefix, rules, config.events.email_domains),
            rules=CompiledRules(rules),
            cache=RewriteCache(config.server.rewrite_cache),
            origin_cache=OriginCache(config.server.origin_cache, config.server.origin_freshness),
            bots=BotDetector(),
            networks=load_table(config.server.data_dir),
            visitor_rate=RateLimiter(config.events.visitor_rate),
            ip_rate=RateLimiter(config.events.ip_rate),
            network_rate=RateLimiter(config.events.network_rate),
            rules_problem=problem,
        )

    def with_rules(self, rules: RuleSet) -> ProxyState:
        """This state running another rule set (adopted from Redis), with the bandit weights
        in force (those that no longer fit an experiment's variants are left out)."""
        config = self.config
        return dataclasses.replace(
            self,
            rules=CompiledRules(rules, self.rules.allocations),
            beacon=beacon_tag(config.server.prefix, rules, config.events.email_domains),
        )

    def with_allocations(self, allocations: Allocations) -> ProxyState:
        """This state assigning bandit experiments by newly published weights."""
        return dataclasses.replace(self, rules=CompiledRules(self.rules.rules, allocations))

    def tail_for(self, site: Site) -> str:
        return self.beacon if site.config.beacon else ""


class StateHolder:
    """The state in force; reload replaces ``current`` in one assignment."""

    def __init__(self, state: ProxyState) -> None:
        self.current = state
