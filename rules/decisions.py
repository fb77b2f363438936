"""What a visitor gets on a page: the experiments they are in and the personalizations.

A RuleSet is compiled once (audiences, page tags, assignment arms); deciding for one request
is then a few set lookups and hashes. The proxy applies decisions to pages; the worker uses
the same code to know what a visitor was eligible for.

An experiment and a personalization may change the same element (``ruleset.shared_elements``;
`refract check` warns). For a visitor in the experiment, whichever variant, the experiment
wins: the personalization is left out and named in ``Decision.suppressed`` (the proxy counts
it, ``refract_personalizations_suppressed_total``), so every arm shows exactly its variant and
the exposures count what was seen.

A bandit experiment (``allocation = "bandit"``) assigns by the weights the worker published
for the site (rules/allocations.py), those of the visitor's context when its value has its
own, else the pooled ones; before any publication, by the rule file's weights. Visitors
already assigned keep their arm: the worker puts their variant in their segment
(``fields.arm_field``), and ``decide`` keeps it whatever the weights say now, so a visitor's
experience stays consistent and the stratified estimate (per day) absorbs the moving weights.
The window between a first exposure and the worker's next refresh of the segment (about a
second, longer while the worker lags) assigns by the weights in force, which move once a day:
only a visitor whose first exposure and next page fall either side of a publication may see
both arms.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from refract.rules import fields
from refract.rules.allocations import Weights, WeightSet, fits
from refract.rules.assignment import Arm, Assignment, assign, bucket, in_holdout, propensity
from refract.rules.qa_links import Override
from refract.rules.ruleset import RuleSet, shared_elements
from refract.rules.schema import Change, Experiment, Personalization
from refract.rules.segments import uses_segment
from refract.rules.targeting import CompiledAudience, Facts, PageTagger

log = logging.getLogger("refract.rules")

# site -> experiment -> the weights published for it (rules/allocations.py)
Allocations = Mapping[str, Mapping[str, Weights]]
NO_ALLOCATIONS: Allocations = {}


@dataclass(frozen=True)
class Decision:
    assignments: tuple[Assignment, ...] = ()
    personalizations: tuple[str, ...] = ()
    # personalizations the visitor's audience admitted but that change an element one of
    # their experiments changes: the experiment wins, so that every arm shows its variant
    suppressed: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Target:
    pages: frozenset[str]
    audience: CompiledAudience | None

    def admits(self, tags: frozenset[str], facts: Facts) -> bool:
        if self.pages and not self.pages & tags:
            return False
        return self.audience is None or self.audience.matches(facts)


@dataclass(frozen=True)
class _BanditArms:
    """A bandit experiment's arms on one site: by the pooled weights and per context value."""

    context: str  # the field whose value picks the weights; "" for pooled only
    pooled: Arm
    contexts: Mapping[str, Arm]

    def arm_for(self, facts: Facts) -> Arm:
        if not self.context:
            return self.pooled
        value = facts.values.get(self.context)
        if value is None:
            return self.pooled
        return self.contexts.get(
            fields.report_value(fields.FIELDS[self.context], value), self.pooled
        )


class CompiledRules:
    def __init__(self, rules: RuleSet, allocations: Allocations = NO_ALLOCATIONS) -> None:
        self.rules = rules
        self.version = rules.version
        self.allocations = allocations
        self._bandits = _bandit_arms(rules, allocations)
        self.tagger = PageTagger(rules.pages)
        audiences = {key: CompiledAudience.build(a) for key, a in rules.audiences.items()}
        # Every status: a QA preview link may show an experiment that is not running yet.
        self._experiments = [
            (
                experiment,
                _target(experiment.pages, experiment.audience, audiences),
                _arm(experiment),
            )
            for experiment in rules.experiments.values()
        ]
        self._personalizations = [
            (item, _target(item.pages, item.audience, audiences))
            for item in rules.personalizations.values()
            if item.status == "running"
        ]
        self._holdout = round(rules.settings.holdout * 100)
        # personalization -> the experiments that change one of its elements (any variant)
        self._contested = {
            item.key: frozenset(
                experiment.key
                for experiment in rules.experiments.values()
                if shared_elements(experiment, item)
            )
            for item in rules.personalizations.values()
        }
        used = {
            condition.field
            for audience in rules.audiences.values()
            for condition in (*audience.all, *audience.any, *audience.none)
        }
        # Read the visitor's segment from Redis only when some audience looks at it, or a
        # running bandit experiment keeps its visitors' arms there (and may weight by context).
        self.needs_segment = uses_segment(frozenset(used)) or any(
            experiment.allocation == "bandit" and experiment.status == "running"
            for experiment in rules.experiments.values()
        )
        # The pages of running rules that may redirect (an empty set: every page). Only
        # those are decided before the origin is asked: that decision waits for the segment.
        self._redirect_pages = [
            target.pages
            for experiment, target, _ in self._experiments
            if experiment.status == "running"
            and any(
                change.action == "redirect"
                for variant in experiment.variants
                for change in variant.changes
            )
        ] + [
            target.pages
            for item, target in self._personalizations
            if any(change.action == "redirect" for change in item.changes)
        ]
        self.redirects = bool(self._redirect_pages)

    def may_redirect(self, tags: frozenset[str]) -> bool:
        """Could a running rule send a visitor on a page of these tags elsewhere?"""
        return any(not pages or not pages.isdisjoint(tags) for pages in self._redirect_pages)

    @property
    def empty(self) -> bool:
        """Nothing running and nothing to preview: no page needs a decision."""
        return not self._experiments and not self._personalizations

    def decide(
        self,
        tags: frozenset[str],
        facts: Facts,
        visitor_id: str | None,
        forced: Mapping[str, Override],
        now: datetime,
        site: str = "",
    ) -> Decision:
        """Experiments need a visitor id (no id: no experiment). QA overrides apply whatever
        the audience, page and holdout, but only to a live experiment unless they preview.
        ``site`` picks a bandit experiment's published weights."""
        held_out = visitor_id is not None and in_holdout(visitor_id, self._holdout)
        bandits = self._bandits.get(site, {})
        assignments = []
        for experiment, target, arm in self._experiments:
            override = forced.get(experiment.key)
            if override is not None and _may_force(experiment, arm, override, now):
                assignments.append(Assignment(experiment.key, override.variant, forced=True))
                continue
            if visitor_id is None or held_out or not live(experiment, now):
                continue
            if not target.admits(tags, facts):
                continue
            published = bandits.get(experiment.key)
            chosen = published.arm_for(facts) if published is not None else arm
            if (assignment := _assignment(experiment, chosen, facts, visitor_id)) is not None:
                assignments.append(assignment)
        admitted = [
            item.key
            for item, target in self._personalizations
            if target.admits(tags, facts) and not _held_back(item, visitor_id)
        ]
        assigned = frozenset(assignment.experiment for assignment in assignments)
        suppressed = tuple(key for key in admitted if self._contested[key] & assigned)
        personalizations = tuple(key for key in admitted if key not in suppressed)
        return Decision(tuple(assignments), personalizations, suppressed)

    def changes(self, decision: Decision) -> list[Change]:
        """The changes a decision brings, experiments first, in rule-file order."""
        changes: list[Change] = []
        for assignment in decision.assignments:
            experiment = self.rules.experiments[assignment.experiment]
            variant = next(v for v in experiment.variants if v.key == assignment.variant)
            changes.extend(variant.changes)
        for key in decision.personalizations:
            changes.extend(self.rules.personalizations[key].changes)
        return changes


def _assignment(
    experiment: Experiment, arm: Arm, facts: Facts, visitor_id: str
) -> Assignment | None:
    """The visitor's variant when they enter: drawn by ``arm`` (with its propensity), or a
    bandit's arm they were given before, kept (no draw chose it: no propensity)."""
    variant = assign(arm, visitor_id)
    if variant is None:
        return None
    if experiment.allocation == "bandit":  # only a bandit's visitors keep an arm
        kept = facts.values.get(fields.arm_field(experiment.key))
        if isinstance(kept, str) and kept in arm.variants:
            return Assignment(experiment.key, kept)
    return Assignment(experiment.key, variant, propensity=propensity(arm, variant))


def _target(pages: list[str], audience: str, audiences: Mapping[str, CompiledAudience]) -> _Target:
    return _Target(frozenset(pages), audiences[audience] if audience else None)


def _arm(experiment: Experiment, published: WeightSet | None = None) -> Arm:
    """The experiment's arm: the rule file's weights, or ``published`` (fractions)."""
    weights = {
        variant.key: variant.weight if published is None else 100.0 * published[variant.key]
        for variant in experiment.variants
    }
    return Arm.build(
        experiment.key,
        weights,
        traffic_percent=experiment.traffic,
        seed=experiment.seed or None,
        group=experiment.exclusion_group or None,
        group_range=experiment.exclusion_range or (0.0, 100.0),
    )


def _bandit_arms(rules: RuleSet, allocations: Allocations) -> dict[str, dict[str, _BanditArms]]:
    """Per site, the arms of every bandit experiment with published weights that still fit
    its variants (weights for variants since renamed are left out: the file's weights hold)."""
    found: dict[str, dict[str, _BanditArms]] = {}
    for site, published in allocations.items():
        for key, weights in published.items():
            experiment = rules.experiments.get(key)
            settings = experiment.bandit_settings if experiment is not None else None
            if experiment is None or settings is None:
                continue
            variants = [variant.key for variant in experiment.variants]
            if not fits(weights, variants):
                log.warning("weights of %s on %s do not fit its variants: ignored", key, site)
                continue
            found.setdefault(site, {})[key] = _BanditArms(
                context=settings.context,
                pooled=_arm(experiment, weights.pooled),
                contexts={
                    value: _arm(experiment, each) for value, each in weights.contexts.items()
                },
            )
    return found


def _may_force(experiment: Experiment, arm: Arm, override: Override, now: datetime) -> bool:
    return override.variant in arm.variants and (override.preview or live(experiment, now))


def live(experiment: Experiment, now: datetime) -> bool:
    """Running, and inside its schedule: what visitors (and QA links without preview) see."""
    return experiment.status == "running" and scheduled(experiment, now)


def scheduled(experiment: Experiment, now: datetime) -> bool:
    """Whether ``now`` (aware) is inside the experiment's start and end (naive ones are UTC)."""
    start, end = experiment.start, experiment.end
    return (start is None or _aware(start) <= now) and (end is None or now < _aware(end))


def ended(experiment: Experiment, now: datetime) -> bool:
    """Whether the experiment's end (if it has one) has passed."""
    return experiment.end is not None and _aware(experiment.end) <= now


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _held_back(item: Personalization, visitor_id: str | None) -> bool:
    """A personalization's own control group, when it asks for one."""
    if not item.holdout:
        return False
    if visitor_id is None:
        return True  # an unidentified visitor cannot be kept in a group: show the default
    return bucket(f"{item.key}.holdout.{visitor_id}") < round(item.holdout * 100)
