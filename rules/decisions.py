"""What a visitor gets on a page: the experiments they are in and the personalizations.

A RuleSet is compiled once (audiences, page tags, assignment arms); deciding for one request
is then a few set lookups and hashes. The proxy applies decisions to pages; the worker uses
the same code to know what a visitor was eligible for.

An experiment and a personalization may change the same element (``ruleset.shared_elements``;
`refract check` warns). For a visitor in the experiment, whichever variant, the experiment
wins: the personalization is left out and named in ``Decision.suppressed`` (the proxy counts
it, ``refract_personalizations_suppressed_total``), so every arm shows exactly its variant and
the exposures count what was seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from refract.rules.assignment import Arm, Assignment, assign, bucket, in_holdout
from refract.rules.qa_links import Override
from refract.rules.ruleset import RuleSet, shared_elements
from refract.rules.schema import Change, Experiment, Personalization
from refract.rules.segments import uses_segment
from refract.rules.targeting import CompiledAudience, Facts, PageTagger


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


class CompiledRules:
    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.version = rules.version
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
        # Read the visitor's segment from Redis only when some audience looks at it.
        self.needs_segment = uses_segment(frozenset(used))
        # Running ones only: deciding before the origin costs every GET, assets too.
        self.redirects = any(
            change.action == "redirect"
            for experiment, _, _ in self._experiments
            if experiment.status == "running"
            for variant in experiment.variants
            for change in variant.changes
        ) or any(
            change.action == "redirect"
            for item, _ in self._personalizations
            for change in item.changes
        )

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
    ) -> Decision:
        """Experiments need a visitor id (no id: no experiment). QA overrides apply whatever
        the audience, page and holdout, but only to a live experiment unless they preview."""
        held_out = visitor_id is not None and in_holdout(visitor_id, self._holdout)
        assignments = []
        for experiment, target, arm in self._experiments:
            override = forced.get(experiment.key)
            if override is not None and _may_force(experiment, arm, override, now):
                assignments.append(Assignment(experiment.key, override.variant, forced=True))
                continue
            if visitor_id is None or held_out or not live(experiment, now):
                continue
            if target.admits(tags, facts) and (variant := assign(arm, visitor_id)) is not None:
                assignments.append(Assignment(experiment.key, variant))
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


def _target(pages: list[str], audience: str, audiences: Mapping[str, CompiledAudience]) -> _Target:
    return _Target(frozenset(pages), audiences[audience] if audience else None)


def _arm(experiment: Experiment) -> Arm:
    return Arm.build(
        experiment.key,
        {variant.key: variant.weight for variant in experiment.variants},
        traffic_percent=experiment.traffic,
        seed=experiment.seed or None,
        group=experiment.exclusion_group or None,
        group_range=experiment.exclusion_range or (0.0, 100.0),
    )


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
