"""The Redis keys the worker owns; every one carries the site's hash tag.

| key | type | holds | lifetime |
|---|---|---|---|
| `rf:{site}:lease:{shard}` | string | the worker consuming that shard | 10 s, renewed |
| `rf:worker:{name}` | string | a live worker's pid (heartbeat) | 15 s, renewed |
| `rf:{site}:done:{hour}` | hash | ids of events already applied (exactly-once) | 48 h |
| `rf:{site}:p:{visitor}` | hash | the visitor's profile | `PROFILE_TTL_S` after the last event |
| `rf:{site}:pages:{visitor}` | list | the visitor's last 50 page paths | as the profile |
| `rf:{site}:dl:{visitor}` | list | the visitor's last 20 downloaded file paths | as the profile |
| `rf:{site}:x:{visitor}` | hash | first exposures, per-metric outcomes | `EXPOSURE_TTL_S` |
| `rf:{site}:agg:{experiment}` | hash | sufficient statistics (see below) | until a rebuild |
| `rf:{site}:seg:{visitor}` | string | the segment the proxy reads (msgpack) | as the profile |
| `rf:{site}:acct:{domain}` | hash | an account's page views, tags, last seen | as profiles |
| `rf:{site}:acct:{domain}:visitors` | HyperLogLog | its distinct visitors | as profiles |
| `rf:{site}:acct:{domain}:recent` | sorted set | its 20 latest visitors by time | as profiles |
| `rf:{site}:hot` | sorted set | accounts by heat (their visitors' buying signals) | as profiles |
| `rf:{site}:company:{domain}` | hash | an enriched company's firmographics | as profiles |
| `rf:{site}:matching:{day}` | hash | counters of analytics/matching.py | 400 days |
| `rf:{site}:daily:{day}` | hash | site counters of a day: events by type, pageviews | 400 days |
| `rf:{site}:uv:{day}` | HyperLogLog | distinct visitors of a day | 400 days |
| `rf:{site}:uvm:{minute}` | HyperLogLog | visitors with a page view that minute | 10 min |

Fields of an experiment's aggregates are ``day|variant|segment|stat`` for exposure counts
(``n``, ``n_js``: those whose browser ran the beacon, so not a JavaScript-less bot, and the
covariate's ``y``, ``y2``) and ``day|variant|segment|metric|stat`` for outcomes
(``count``, ``count2``, ``count_y``, ``conv``, ``conv_y``, ``rev``, ``rev2``, ``rev_y``);
``day`` is the UTC day of the visitor's first exposure, ``segment`` one of ``all``,
``device=...``, ``visitor=new|returning``.
"""

from __future__ import annotations

DONE_TTL_S = 48 * 3600
PROFILE_TTL_S = 400 * 86400
EXPOSURE_TTL_S = 120 * 86400  # longer than any metric window (at most 90 days)
DAILY_TTL_S = 400 * 86400
MINUTE_TTL_S = 600  # per-minute visitor sketches: "visitors now" reads the last five
ACCOUNT_RECENT_VISITORS = 20
GROUP = "analytics"


def done(site: str, hour: int) -> str:
    return f"rf:{{{site}}}:done:{hour}"


def profile(site: str, visitor: str) -> str:
    return f"rf:{{{site}}}:p:{visitor}"


def pages(site: str, visitor: str) -> str:
    return f"rf:{{{site}}}:pages:{visitor}"


def downloads(site: str, visitor: str) -> str:
    return f"rf:{{{site}}}:dl:{visitor}"


def exposures(site: str, visitor: str) -> str:
    return f"rf:{{{site}}}:x:{visitor}"


def aggregates(site: str, experiment: str) -> str:
    return f"rf:{{{site}}}:agg:{experiment}"


def account(site: str, domain: str) -> str:
    return f"rf:{{{site}}}:acct:{domain}"


def account_visitors(site: str, domain: str) -> str:
    return f"rf:{{{site}}}:acct:{domain}:visitors"


def hot_accounts(site: str) -> str:
    return f"rf:{{{site}}}:hot"


def company(site: str, domain: str) -> str:
    return f"rf:{{{site}}}:company:{domain}"


def matching(site: str, day: str) -> str:
    return f"rf:{{{site}}}:matching:{day}"


def daily(site: str, day: str) -> str:
    return f"rf:{{{site}}}:daily:{day}"


def unique_visitors(site: str, day: str) -> str:
    return f"rf:{{{site}}}:uv:{day}"


def minute_visitors(site: str, minute: int) -> str:
    return f"rf:{{{site}}}:uvm:{minute}"


def account_recent(site: str, domain: str) -> str:
    return f"rf:{{{site}}}:acct:{domain}:recent"
