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
from refract.analytics.stats.data import load
from refract.rules.config import Config
from refract.rules.ruleset import RuleSet


def usual_metric(rules: RuleSet) -> str:
    """The metric most experiments decide on; the first metric when none names one."""
    primaries = Counter(experiment.primary_metric for experiment in rules.experiments.values())
    if primaries:
        return primaries.most_common(1)[0][0]
    return next(iter(rules.metrics), "")


async def measured_baseline(client: redis.Redis, site: str, rules: RuleSet, metric: str) -> float:
    """The metric's conversion rate among the control visitors of the experiments deciding
    on it (0 when none has any: the proposals then say the baseline is assumed)."""
    visitors = converters = 0.0
    for experiment in rules.experiments.values():
        if experiment.primary_metric != metric:
            continue
        variants = tuple(variant.key for variant in experiment.variants)
        data = (await load(client, site, experiment.key, variants, (metric,))).total()
        if not data.days:
            continue
        visitors += float(data.visitors["n"][-1, 0, 0])
        converters += float(data.outcomes["conv"][-1, 0, 0, 0])
    return converters / visitors if visitors else 0.0


async def proposing(config: Config, client: redis.Redis, site: str, metric: str | None) -> Site:
    """The rules, metric, baseline, industry and priors a run on ``site`` proposes with."""
    rules = await rules_in_force(config, client)
    found = learnings.learnings(
        await decision_records.recorded(client, site), rules, await store.records(client, site)
    )
    industry = next((s.industry for s in config.sites if s.key == site), "")
    copy = rules.settings.autopilot
    aimed = metric or usual_metric(rules)
    return Site(
        rules=rules,
        metric=aimed,
        daily_visitors={},
        baseline=await measured_baseline(client, site, rules, aimed),
        glossary=copy.glossary,
        guardrails=from_rules(copy),
        industry=industry,
        priors=learnings.priors(found),
        traffic_share=config.autopilot.max_traffic / 100.0,
    )
