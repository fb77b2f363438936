"""What the proxy measures about what it serves: page views, exposures and redirects.

Apart from rewriting, because the two answer different questions (docs/events.md):

- a page view is recorded for every HTML page served to a ``GET``, whatever became of the
  rewrite (done, skipped for ``no-transform``, size, coding or charset, or failed open): the
  visitor saw a page, and a ``url`` metric converts on it;
- an exposure only when the visitor saw the decision's changes: the page was rewritten, or a
  split-URL test sent them away. A page served as the origin sent it showed no variant, and
  counting one would put the visitor in an arm they never saw.

Bots get their pages and are never counted, nor is a ``HEAD``: such a request is decided with
a throwaway id and sets no cookie (Call.identity), so its answer shows no visitor's arm
uncounted. Recording never costs the visitor their page: a failure is counted
(``refract_fail_open_total{stage="events"}``) and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from refract.proxy import metrics
from refract.proxy.app_keys import ACCOUNTS_KEY, EVENT_LOG_KEY
from refract.proxy.call import Call
from refract.proxy.personalize import device_of, utm_of
from refract.rules import events
from refract.rules.accounts import Account
from refract.rules.decisions import Decision
from refract.rules.networks import Network

log = logging.getLogger("refract.proxy")


def account_of(call: Call) -> Account | None:
    """The target account the visitor's address belongs to, from the site's account list."""
    index = call.request.app[ACCOUNTS_KEY].get(call.site.key)
    return index.by_ip(call.view.ip) if index is not None else None


def record_pageview(call: Call, account: Account | None) -> bool:
    """Log a page served; False for a bot, which gets the page but never counts."""
    request, identity = call.request, call.identity
    user_agent = request.headers.get("User-Agent", "")
    if call.state.bots.is_bot(user_agent):
        metrics.BOTS.labels("page").inc()
        return False
    try:
        network = call.state.networks.lookup(call.view.ip)
        request.app[EVENT_LOG_KEY].record(
            events.pageview(
                call.site.key,
                identity.visitor_id or "",
                identity.session_id or "",
                url=request.path,
                tags=call.state.rules.tagger.tags(request.path),
                referrer=request.headers.get("Referer", ""),
                utm=utm_of(request.query),
                status=200,
                origin_ms=call.exchange.upstream_ms or 0.0,
                device=device_of(user_agent),
                new_session=identity.new_session,
                network=network,
                account=account.domain if account is not None else "",
                ip=_address_to_match(call, account, network),
                click_ids=request.query.keys(),
            )
        )
    except Exception as error:  # logging must never cost the visitor their page
        _events_failed(call, error)
    return True


def record_exposures(call: Call, decision: Decision) -> None:
    """The page was served with the decision's changes: the visitor saw their variants.

    The caller's promise, and only for a visitor ``record_pageview`` counted.
    """
    _record_decision(call, decision, redirect="")


def record_redirect(call: Call, decision: Decision, target: str) -> None:
    """A split-URL test sent the visitor to ``target``: exposures and redirects, never a bot's."""
    if not call.state.bots.is_bot(call.request.headers.get("User-Agent", "")):
        _record_decision(call, decision, redirect=target)


def _address_to_match(call: Call, account: Account | None, network: Network | None) -> str:
    """The visitor's address, for the worker to find their organisation by (docs/events.md).

    Only for a tracked visitor (never under Global Privacy Control or without consent), on an
    organisation's own network (``events.MATCHABLE_NETWORKS``), whom no account's IP range
    matched, and when the worker has a way to use it: reverse DNS with accounts to match, or
    an enrichment API.
    """
    if account is not None or not call.identity.tracked:
        return ""
    if network is None or network.kind not in events.MATCHABLE_NETWORKS:
        return ""
    intel = call.state.config.intel
    index = call.request.app[ACCOUNTS_KEY].get(call.site.key)
    has_accounts = index is not None and len(index) > 0
    return call.view.ip if intel.enrichment_url or (intel.reverse_dns and has_accounts) else ""


def _record_decision(call: Call, decision: Decision, redirect: str) -> None:
    """One exposure (and redirect) per counted assignment actually served; never for QA. The
    personalizations the experiments' changes suppressed are counted (metrics)."""
    for key in decision.suppressed:
        metrics.PERSONALIZATIONS_SUPPRESSED.labels(call.site.key, key).inc()
    if not call.identity.tracked or not decision.assignments:
        return
    try:
        record = call.request.app[EVENT_LOG_KEY].record
        for event in _decision_events(call, decision, redirect):
            record(event)
    except Exception as error:  # logging must never cost the visitor their page
        _events_failed(call, error)


def _decision_events(call: Call, decision: Decision, redirect: str) -> Iterator[events.Event]:
    identity = call.identity
    who = (call.site.key, identity.visitor_id or "", identity.session_id or "")
    version, url = call.state.rules.version, call.request.path
    for assignment in decision.assignments:
        if assignment.forced:
            continue  # QA overrides are shown, never counted
        what = {"experiment": assignment.experiment, "variant": assignment.variant}
        if redirect:
            yield events.redirect(*who, **what, rules_version=version, url=url, target=redirect)
        exposure = events.exposure(*who, **what, rules_version=version, url=url)
        if assignment.propensity is not None:  # none for a bandit's kept arm
            exposure["propensity"] = assignment.propensity
        yield exposure


def _events_failed(call: Call, error: Exception) -> None:
    metrics.FAIL_OPEN.labels("events").inc()
    log.warning("event not recorded: %r", error, extra={"site": call.site.key})
