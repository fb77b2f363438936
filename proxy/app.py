"""The proxy's aiohttp application, and reloading its configuration in place."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import Gauge

from refract.proxy import local
from refract.proxy.accounts_sync import follow_accounts
from refract.proxy.app_keys import (
    ACCOUNTS_KEY,
    EVENT_LOG_KEY,
    QA_SECRET_KEY,
    REDIS_KEY,
    STARTED_KEY,
    STATE_KEY,
    VISITOR_KEY_KEY,
)
from refract.proxy.collect import collect
from refract.proxy.event_log import EventLog, write_events
from refract.proxy.handler import proxy_request
from refract.proxy.qa_secret import FollowedSecret, follow_secret
from refract.proxy.rules_sync import follow_published_rules, publish_own_rules
from refract.proxy.spill import spill_directory
from refract.proxy.state import ProxyState, StateHolder
from refract.proxy.stream_budget import watch_streams
from refract.proxy.visitor_key import VisitorKey, follow_visitor_key
from refract.rules.config import Config, load_config
from refract.rules.problems import InvalidFileError
from refract.rules.redis_client import connect
from refract.rules.ruleset import EMPTY, rules_version

log = logging.getLogger("refract.proxy")

_REDIS_CONNECT_TIMEOUT_S = 1.0

RULE_FILES_INVALID = Gauge(
    "refract_rule_files_invalid",
    "1 while this proxy process runs without its rule files, which did not load when it "
    "started (it runs the rule set published in Redis, or none); 0 once they load.",
    multiprocess_mode="livemax",
)


def build_app(config: Config) -> web.Application:
    # Size limits are enforced while streaming (server.max_request_body), not by buffering.
    # Request bodies are handed on byte for byte as the visitor sent them: aiohttp's server
    # would inflate gzip and deflate bodies as it reads them, and the origin would get the
    # inflated bytes under the visitor's Content-Encoding and Content-Length. Handler
    # arguments reach whichever runner serves the app (`refract proxy`'s, the tests').
    # collect.py inflates its batches itself.
    app = web.Application(
        client_max_size=config.server.max_request_body,
        handler_args={"auto_decompress": False},
        middlewares=[_targets_without_a_path],
    )
    state = ProxyState.from_config(config, fail_open=True)
    if state.rules_problem:
        log.error(
            "the rule files in %s do not load; serving with the rule set published in Redis, "
            "or with no rules if none is, until they are fixed (then SIGHUP):\n%s",
            config.rules.directory,
            state.rules_problem,
            extra={"rule_files_invalid": True},
        )
    RULE_FILES_INVALID.set(1 if state.rules_problem else 0)
    app[STATE_KEY] = StateHolder(state)
    app[EVENT_LOG_KEY] = EventLog(
        config.events.buffer,
        config.retention.streams_days,
        config.events.shards,
        spill_directory(config.server.data_dir),
    )
    app[STARTED_KEY] = time.monotonic()
    app[ACCOUNTS_KEY] = {}
    app[QA_SECRET_KEY] = FollowedSecret()
    app[VISITOR_KEY_KEY] = VisitorKey()
    app.router.add_post(f"{config.server.prefix}collect", collect)
    local.add_routes(app, config.server.prefix)
    app.router.add_route("*", "/{tail:.*}", proxy_request)
    app.cleanup_ctx.append(_redis_client)
    app.cleanup_ctx.append(follow_visitor_key)  # known before the first request, Redis willing
    app.cleanup_ctx.append(watch_streams)
    app.cleanup_ctx.append(follow_published_rules)  # after the client it uses
    app.cleanup_ctx.append(follow_accounts)
    app.cleanup_ctx.append(follow_secret)
    app.cleanup_ctx.append(write_events)  # so its last flush runs before the client closes
    app.on_cleanup.append(_close_sites)
    return app


@web.middleware
async def _targets_without_a_path(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """aiohttp routes by path, and some request targets have none: an absolute form without
    one (``GET http://site``, which asks for "/"), the asterisk form (``OPTIONS *``) and the
    authority form (``CONNECT host:port``). They are the proxy's to answer (handler.py), not
    aiohttp's bare "404: Not Found"."""
    if request.rel_url.raw_path.startswith("/"):
        return await handler(request)
    return await proxy_request(request)


async def _redis_client(app: web.Application) -> AsyncIterator[None]:
    config = app[STATE_KEY].current.config
    if config.redis.url:
        client = connect(config.redis.url, _REDIS_CONNECT_TIMEOUT_S)
        app[REDIS_KEY] = client
        yield
        await client.aclose()
    else:
        yield


async def _close_sites(app: web.Application) -> None:
    await app[STATE_KEY].current.router.close()


def _needs_restart(old: Config, new: Config) -> list[str]:
    fields = {
        "server.listen": (old.server.listen, new.server.listen),
        "server.workers": (old.server.workers, new.server.workers),
        "server.prefix": (old.server.prefix, new.server.prefix),
        "server.metrics_listen": (old.server.metrics_listen, new.server.metrics_listen),
        "redis.url": (old.redis.url, new.redis.url),
        "admin.listen": (old.admin.listen, new.admin.listen),
        "events.shards": (old.events.shards, new.events.shards),
        "events.buffer": (old.events.buffer, new.events.buffer),
    }
    return [name for name, (before, after) in fields.items() if before != after]


NO_RULE_FILES = rules_version({})  # the version of a rules directory holding no rule file


async def reload(app: web.Application, config_path: Path, grace_s: float) -> bool:
    """Apply a changed config.toml; on any error keep the one in force and say why."""
    holder = app[STATE_KEY]
    try:
        config = load_config(config_path)
        state = ProxyState.from_config(config)
    except InvalidFileError as error:
        log.error("reload refused, previous configuration stays in force:\n%s", error)
        return False
    except (OSError, ValueError, RecursionError) as error:  # not made a problem by its reader
        log.error(
            "reload of %s refused, previous configuration stays in force: %r", config_path, error
        )
        return False
    previous = holder.current
    if state.rules.version == NO_RULE_FILES != previous.rules.version != EMPTY.version:
        # a deploy that emptied the directory for a moment, a wrong mount: every node would
        # follow it at once, and every experiment and personalization stop
        log.error(
            "reload refused, previous configuration stays in force: %s holds no rule file, "
            "where the rules in force have some; to run without rules, leave an empty rule "
            "file there (none.toml)",
            config.rules.directory,
        )
        await state.router.close()  # its origin pools were opened for nothing
        return False
    # the bandits' published weights stay in force: the new rules are followed at once, the
    # weights too (rules_sync re-reads them at the next poll all the same)
    state = state.with_allocations(previous.rules.allocations)
    for name in _needs_restart(previous.config, config):
        log.warning("%s changed: it takes effect when Refract restarts", name)
    holder.current = state
    RULE_FILES_INVALID.set(0)
    if (client := app.get(REDIS_KEY)) is not None:
        await publish_own_rules(holder, client)  # every process and node follows within 1 s
    log.info("configuration reloaded from %s", config_path, extra={"rules": state.rules.version})
    # Requests already under way still use the old origin pools; close them afterwards.
    asyncio.get_running_loop().call_later(
        grace_s, lambda: asyncio.ensure_future(previous.router.close())
    )
    return True
