"""What a proposal run needs from the admin's side: the rules in force, the metric aimed at,
and the lift priors the learnings log gives (admin/learnings.py)."""

from __future__ import annotations

from collections import Counter

import redis.asyncio as redis

from refract.admin import decision_records, learnings
from refract.analytics.autopilot import store
from refract.analytics.autopilot.guardrails import from_rules
from refract.analytics.autopilot.proposals import Site
from refract.analytics.rules_in_force import rules_in_force
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet


def usual_metric(rules: RuleSet) -> str:
    """The metric most experiments decide on; the first metric when none names one."""
    primaries = Counter(experiment.primary_metric for experiment in rules.experiments.values())
    if primaries:
        return primaries.most_common(1)[0][0]
    return next(iter(rules.metrics), "")


async def proposing(config: Config, client: redis.Redis, site: str, metric: str | None) -> Site:
    """The rules, metric, industry and priors a run on ``site`` proposes with."""
    rules = await rules_in_force(config, client)
    found = learnings.learnings(
        await decision_records.recorded(client, site), rules, await store.records(client, site)
    )
    industry = next((s.industry for s in config.sites if s.key == site), "")
    copy = rules.settings.autopilot
    return Site(
        rules=rules,
        metric=metric or usual_metric(rules),
        daily_visitors={},
        glossary=copy.glossary,
        guardrails=from_rules(copy),
        industry=industry,
        priors=learnings.priors(found),
    )
