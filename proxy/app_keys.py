"""Everything the proxy keeps on its aiohttp application, one typed key each.

One place to see what a proxy application carries, as admin/state.py is for the admin. The
types of the proxy's own values are named in annotations only (imported for the type
checker): the modules that define them use these keys too, and importing them here would
make a cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis.asyncio as redis
from aiohttp import web

from refract.rules.account_index import AccountIndex

if TYPE_CHECKING:
    from refract.proxy.event_log import EventLog
    from refract.proxy.qa_secret import FollowedSecret
    from refract.proxy.readiness import OriginProbes
    from refract.proxy.state import StateHolder
    from refract.proxy.visitor_key import VisitorKey

# The configuration in force (replaced whole on reload).
STATE_KEY: web.AppKey[StateHolder] = web.AppKey("refract.state")
# The queue of events on their way to the sites' streams.
EVENT_LOG_KEY: web.AppKey[EventLog] = web.AppKey("refract.event_log")
# Site -> its account list's index by IP range, followed from Redis (accounts_sync.py).
ACCOUNTS_KEY = web.AppKey("refract.accounts", dict[str, AccountIndex])
# The Redis client; absent when no Redis is configured.
REDIS_KEY = web.AppKey("refract.redis", redis.Redis)
# When the process started (time.monotonic()), for the health endpoint's uptime.
STARTED_KEY = web.AppKey("refract.started", float)
# The key QA links are signed with, followed from Redis (qa_secret.py).
QA_SECRET_KEY: web.AppKey[FollowedSecret] = web.AppKey("refract.qa_secret")
# The key visitor ids are signed with, followed from Redis (visitor_key.py).
VISITOR_KEY_KEY: web.AppKey[VisitorKey] = web.AppKey("refract.visitor_key")
# On the internal listener's application: the proxy application it reports on (local.py).
PROXY_APP_KEY = web.AppKey("refract.proxy_app", web.Application)
# The origins' last answers to the readiness probe (readiness.py).
PROBES_KEY: web.AppKey[OriginProbes] = web.AppKey("refract.probes")
