"""The rule set outcomes are attributed with: the published one (rules/publication.py), else
the rules directory's. The worker follows it; `refract rebuild`, `refract report` and the admin
read it once.

A worker never applies events with rules it could not read: when neither the published set nor
the directory loads, it keeps the last set it adopted, and with none adopted yet it waits
(heartbeat on, nothing consumed, an error logged every few seconds) until one loads. Exiting
instead would only crash-loop under the supervisor while the streams grow.

Each rule set it adopts, and every ``weight_changes.CONFIRM_EVERY_S`` the one it keeps, it
records the weights of fixed-weight experiments by (analytics/weight_changes.py): the report's
expected split after someone changed them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import redis.asyncio as redis

from refract.analytics import weight_changes
from refract.analytics.effects import Effects
from refract.analytics.heartbeats import Status
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.industry import load_industry_model
from refract.rules.problems import InvalidFileError
from refract.rules.publication import POLL_S, published_files
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import EMPTY, RuleSet, load_rules, rules_from_files

log = logging.getLogger("refract.worker")
_PUBLISHED = Path(f"redis:{keyspace.RULES}")  # how problems in the published set name it
WAITING_LOG_EVERY_S = 5.0


async def rules_in_force(config: Config, client: redis.Redis) -> RuleSet:
    """The published rule set when there is one that loads, else the directory's
    (InvalidFileError when that does not load either)."""
    published = await _published(client)
    if published is not None:
        with contextlib.suppress(InvalidFileError):
            return rules_from_files(published[1], _PUBLISHED)
    return directory_rules(config.rules.directory)


def directory_rules(directory: Path | None) -> RuleSet:
    """The rules directory's set; without a directory, no rules at all."""
    return load_rules(directory) if directory is not None else EMPTY


def counted_events(config: Config) -> frozenset[str]:
    """The custom events some site's industry model reads."""
    return frozenset().union(*(load_industry_model(site.industry).events for site in config.sites))


async def _published(client: redis.Redis) -> tuple[str, dict[str, bytes]] | None:
    """The published files, or None while there are none or Redis cannot tell."""
    try:
        return await published_files(client)
    except (*REDIS_FAILURES, ValueError):  # ValueError: a corrupt document
        return None


class RulesInForce:
    """The rule set a worker attributes outcomes with: the published one, else the directory's,
    else the last one adopted; ``adopted`` is set once there is one."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.time) -> None:
        self._directory = config.rules.directory
        self._counted = counted_events(config)
        self._rules: RuleSet | None = None
        self._effects: Effects | None = None
        self._refused = ""  # a published version that did not load, not retried every poll
        self.adopted = asyncio.Event()
        self._clock = clock  # when the weights of fixed experiments were found in force
        self._recorded_at = -float("inf")

    @property
    def rules(self) -> RuleSet | None:
        return self._rules

    def status(self) -> Status:
        """For the heartbeat: waiting (consuming nothing) until a rule set is adopted."""
        if self._rules is None:
            return Status("waiting", None)
        return Status("consuming", self._rules.version)

    def effects(self) -> Effects:
        # Consumers start only once ``adopted`` is set (analytics/worker.py).
        assert self._effects is not None, "no rule set adopted yet"
        return self._effects

    async def reload(self, client: redis.Redis) -> None:
        """Adopt the published set if it loads, else the directory's; else keep the current."""
        if await self._adopt_published(client, retry_refused=True):
            return
        read_at = self._clock()
        try:
            rules = directory_rules(self._directory)
        except (InvalidFileError, OSError) as error:
            self._refuse(f"the rules directory {self._directory}", error)
            return
        self._adopt(rules, f"the rules directory {self._directory}")
        await self._record_weights(client, read_at)

    async def follow(self, client: redis.Redis, stop: asyncio.Event) -> None:
        """Adopt each newly published set that loads; while none is adopted, say so."""
        waited_s = 0.0
        while not stop.is_set():
            await self._adopt_published(client, retry_refused=False)
            if not self.adopted.is_set() and waited_s >= WAITING_LOG_EVERY_S:
                waited_s = 0.0
                log.error(
                    "no valid rule set: consuming no events until valid rules are published "
                    "(a proxy reload publishes its directory) or the directory is fixed and "
                    "the worker gets SIGHUP"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
            waited_s += POLL_S

    async def _adopt_published(self, client: redis.Redis, retry_refused: bool) -> bool:
        """Whether the published set is (now) the one in force."""
        read_at = self._clock()
        published = await _published(client)
        if published is None:
            return False
        version, files = published
        if self._rules is not None and version == self._rules.version:
            if read_at - self._recorded_at >= weight_changes.CONFIRM_EVERY_S:
                await self._record_weights(client, read_at)
            return True
        if version == self._refused and not retry_refused:
            return False
        try:
            rules = rules_from_files(files, _PUBLISHED)
        except InvalidFileError as error:
            self._refused = version
            self._refuse(f"published rules {version}", error)
            return False
        self._adopt(rules, "Redis")
        await self._record_weights(client, read_at)
        return True

    def _adopt(self, rules: RuleSet, source: str) -> None:
        self._rules = rules
        self._effects = Effects(rules, self._counted)
        self.adopted.set()
        log.info("rules %s adopted from %s", rules.version, source)

    async def _record_weights(self, client: redis.Redis, read_at: float) -> None:
        """Record the fixed experiments' weights of the set in force, found by a read started
        at ``read_at``; Redis failing only delays it (the next poll tries again, and the change's
        window in the history grows by the delay)."""
        if self._rules is None:
            return
        try:
            changed = await weight_changes.record(client, self._rules, read_at)
        except REDIS_FAILURES as error:
            log.warning("weights of fixed experiments not recorded: %r", error)
            self._recorded_at = -float("inf")  # tried again at the next poll
            return
        self._recorded_at = read_at
        for key in changed:
            log.info("weights of %s changed (rules %s): recorded", key, self._rules.version)

    def _refuse(self, source: str, error: Exception) -> None:
        kept = f"keeping rules {self._rules.version}" if self._rules else "no rule set yet"
        log.error("%s refused (%s):\n%s", source, kept, error)
