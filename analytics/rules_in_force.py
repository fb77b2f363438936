"""The rule set outcomes are attributed with: the published one (rules/publication.py), else
the rules directory's. The worker follows it; `refract rebuild`, `refract report` and the admin
read it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

import redis.asyncio as redis

from refract.analytics.effects import Effects
from refract.rules import keyspace
from refract.rules.config import Config
from refract.rules.industry import load_industry_model
from refract.rules.problems import InvalidFileError
from refract.rules.publication import POLL_S, published_files
from refract.rules.ruleset import EMPTY, RuleSet, load_rules, rules_from_files

log = logging.getLogger("refract.worker")
_PUBLISHED = Path(f"redis:{keyspace.RULES}")  # how problems in the published set name it


async def rules_in_force(config: Config, client: redis.Redis) -> RuleSet:
    """The published rule set when there is one that loads, else the directory's."""
    rules = RulesInForce(config)
    with contextlib.suppress(redis.RedisError, OSError):
        published = await published_files(client)
        if published is not None:
            with contextlib.suppress(InvalidFileError):
                return rules_from_files(published[1], _PUBLISHED)
    return rules.rules


def counted_events(config: Config) -> frozenset[str]:
    """The custom events some site's industry model reads."""
    return frozenset().union(*(load_industry_model(site.industry).events for site in config.sites))


class RulesInForce:
    """The rule set outcomes are attributed with: the published one, else the directory's."""

    def __init__(self, config: Config) -> None:
        directory = config.rules.directory
        self._rules: RuleSet = load_rules(directory) if directory is not None else EMPTY
        self._counted = counted_events(config)
        self._effects = Effects(self._rules, self._counted)

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def effects(self) -> Effects:
        return self._effects

    async def follow(self, client: redis.Redis, stop: asyncio.Event) -> None:
        refused = ""
        while not stop.is_set():
            try:
                published = await published_files(client)
            except (redis.RedisError, OSError):
                published = None
            if published is not None and published[0] not in (self._rules.version, refused):
                try:
                    self._rules = rules_from_files(published[1], _PUBLISHED)
                    self._effects = Effects(self._rules, self._counted)
                    log.info("rules %s adopted from Redis", self._rules.version)
                except InvalidFileError as error:
                    refused = published[0]
                    log.error("published rules %s refused:\n%s", refused, error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_S)
