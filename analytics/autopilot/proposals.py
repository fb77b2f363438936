"""From scanned pages to ranked proposals, and from a proposal to a draft experiment.

A proposal is one element of one page (a candidate of the scan), the variants written for it
per psychographic style (copywriting.py: guardrails and fact check passed), and its priority
(priorities.py) from the page's measured traffic. Only copy is proposed here (headlines,
sub-headlines, calls to action): pricing blocks, social proof and forms change layout and
meaning, and are listed by the scan for a person to design.

A draft is an ordinary experiment in the rule files, status "draft" (never shown to
visitors), on the page's tag, with a control and one variant per style: ``refract check``
reads it like any other, and launching it is the usual status change. A page without a tag
gets no draft (an experiment on no tag runs on every page, where its selector could match
something else): the proposal says to tag the page.
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from refract.analytics.autopilot.candidates import Candidate, PageScan
from refract.analytics.autopilot.copywriting import Refused, Variant, checked, drafts
from refract.analytics.autopilot.fact_check import KnownFacts
from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.guardrails import Guardrails
from refract.analytics.autopilot.priorities import Evidence, Priority, Weights, prioritise
from refract.analytics.intel.features import DEFAULT_KINDS
from refract.rules.editing import RuleFiles, add
from refract.rules.ruleset import RuleSet
from refract.rules.schema import COPY_KINDS, Change, Experiment
from refract.rules.schema import Variant as RuleVariant
from refract.rules.targeting import PageTagger

MAX_VARIANTS = 3  # besides the control: each arm needs its share of a B2B site's traffic
DEFAULT_BASELINE = 0.02  # a B2B site's conversion rate when nothing is measured yet
# Pages that inform rather than sell (the classifier's documentation, security, integration
# and blog kinds, analytics/intel/features.py): their copy is not rewritten per buying style.
INFORMATIONAL_TAGS = frozenset(
    tag
    for kind in ("api_docs", "security", "integrations", "blog")
    for tag in DEFAULT_KINDS[kind].tags
)
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Proposal:
    key: str  # the draft experiment's key
    url: str
    page_tag: str  # "" when no tag names the page: no draft then
    candidate: Candidate
    variants: tuple[Variant, ...]
    refused: tuple[Refused, ...]
    metric: str
    priority: Priority
    page_facts: tuple[Fact, ...] = ()  # numbers and names: what an edit may state
    page_words: frozenset[str] = frozenset()  # and the words it may use
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "url": self.url,
            "page_tag": self.page_tag,
            "element": self.candidate.as_json(),
            "variants": [{"style": v.style, "text": v.text} for v in self.variants],
            "refused": [
                {"style": r.style, "text": r.text, "reasons": list(r.reasons)} for r in self.refused
            ],
            "metric": self.metric,
            "priority": {
                "score": round(self.priority.score, 2),
                "expected_value_30d": round(self.priority.expected_value_30d, 2),
                # null when the page has no traffic: JSON has no infinity
                "days_needed": days if math.isfinite(days := self.priority.days_needed) else None,
                "lift_prior": self.priority.lift_prior,
                "components": self.priority.components,
                "pie": self.priority.pie,
                "ice": self.priority.ice,
                "assumptions": self.priority.assumptions,
            },
            "notes": self.notes,
            "page_facts": [fact.as_json() for fact in self.page_facts],
            "page_words": sorted(self.page_words),
        }


@dataclass(frozen=True)
class Site:
    """What proposing needs to know of the site besides its pages."""

    rules: RuleSet
    metric: str
    daily_visitors: Mapping[str, float]  # page URL path -> page views a day, measured
    baseline: float = 0.0  # the metric's conversion rate; 0: DEFAULT_BASELINE, said so
    glossary: Sequence[str] = ()
    guardrails: Guardrails = field(default_factory=Guardrails)
    industry: str = ""
    weights: Weights = field(default_factory=Weights)
    priors: Mapping[str, float] = field(default_factory=dict)  # element kind -> lift prior
    traffic_share: float = 1.0  # of a page's visitors a launched test takes (max_traffic)
    # (page, selector) -> a model's (style, text, "model") drafts, checked as templates are
    model_drafts: Mapping[tuple[str, str], Sequence[tuple[str, str, str]]] = field(
        default_factory=dict
    )


def propose(scans: Iterable[PageScan], site: Site) -> list[Proposal]:
    """Every copy element of the scanned pages with at least one checked variant, best first."""
    scans = [scan for scan in scans if not scan.skipped]
    words = frozenset().union(*(scan.words for scan in scans))
    known = KnownFacts.of((fact for scan in scans for fact in scan.facts), site.glossary, words)
    metric = site.rules.metrics.get(site.metric)
    value = metric.value if metric is not None and metric.value > 0 else 1.0
    top = max(site.daily_visitors.values(), default=0.0)
    proposals = []
    tagger = PageTagger(site.rules.pages)
    aimed = site.rules.metrics.get(site.metric)
    goal = re.compile(fnmatch.translate(aimed.url)) if aimed and aimed.kind == "url" else None
    for scan in scans:
        tags = sorted(tagger.tags(scan.url))
        if tags and set(tags) <= INFORMATIONAL_TAGS:
            continue  # documentation and articles: their headings say what they are about
        if goal is not None and goal.fullmatch(scan.url):
            continue  # the aimed conversion's own page (a thank-you page): nothing to sell
        for candidate in scan.candidates:
            if candidate.kind not in COPY_KINDS or not candidate.text:
                continue
            drafted = [
                *drafts(
                    candidate.kind, candidate.text, [*candidate.facts, *scan.facts], site.industry
                ),
                *site.model_drafts.get((scan.url, candidate.selector), ()),
            ]
            written = checked(candidate.kind, candidate.text, drafted, known, site.guardrails)
            if not written.variants:
                continue
            notes = []
            baseline = site.baseline
            if baseline <= 0:
                baseline = DEFAULT_BASELINE
                notes.append(f"baseline {baseline:.0%}: assumed, nothing measured yet")
            if value == 1.0 and (metric is None or metric.value <= 0):
                notes.append(f"{site.metric} has no value: expected value counts conversions")
            if not tags:
                notes.append(f"no page tag names {scan.url}: tag it to draft this experiment")
            variants = _one_per_style(written.variants)[:MAX_VARIANTS]
            evidence = Evidence(
                candidate.kind,
                site.daily_visitors.get(scan.url, 0.0),
                baseline,
                value,
                lift_prior=site.priors.get(candidate.kind, 0.0),
                arms=len(variants) + 1,
                traffic_share=site.traffic_share,
            )
            proposals.append(
                Proposal(
                    key=proposal_key(scan.url, candidate),
                    url=scan.url,
                    page_tag=tags[0] if tags else "",
                    candidate=candidate,
                    variants=variants,
                    refused=written.refused,
                    metric=site.metric,
                    priority=prioritise(evidence, site.weights, top),
                    page_facts=tuple(f for f in scan.facts if f.kind in ("number", "name")),
                    page_words=scan.words,
                    notes=notes,
                )
            )
    return sorted(proposals, key=lambda p: (-p.priority.score, p.key))


def proposal_key(url: str, candidate: Candidate) -> str:
    """A key that names the page and the element and stays the same between scans."""
    slug = _SLUG.sub("-", url.lower()).strip("-")[:30] or "home"
    digest = hashlib.sha256(f"{url}\n{candidate.selector}".encode()).hexdigest()[:8]
    return f"ap-{slug}-{candidate.kind.replace('_', '-')}-{digest}"


def draft(
    key: str,
    url: str,
    kind: str,
    selector: str,
    page_tag: str,
    metric: str,
    lift_prior: float,
    variants: Sequence[tuple[str, str]],
    status: str = "draft",
    traffic: float = 100.0,
) -> Experiment:
    """An experiment from a proposal: a control and one set_text variant (style, text) per
    style on the page's tag, split evenly, split by style in the report."""
    arms = len(variants) + 1
    share = round(100.0 / arms, 6)
    arms_of = [RuleVariant(key="control", weight=100.0 - share * (arms - 1))]
    arms_of += [
        RuleVariant(
            key=style,
            weight=share,
            changes=[Change(action="set_text", selector=selector, value=text)],
        )
        for style, text in variants
    ]
    return Experiment.model_validate(
        {
            "key": key,
            "hypothesis": (
                f"Rewriting the {kind.replace('_', ' ')} of {url} for each buying style "
                f"raises {metric}"
            ),
            "status": status,
            "pages": [page_tag],
            "traffic": traffic,
            "variants": arms_of,
            "primary_metric": metric,
            "report_segments": ["segment.style"],  # which style's copy works for whom
            "mde": lift_prior,
        }
    )


def draft_of(proposal: Proposal) -> Experiment:
    return draft(
        proposal.key,
        proposal.url,
        proposal.candidate.kind,
        proposal.candidate.selector,
        proposal.page_tag,
        proposal.metric,
        proposal.priority.lift_prior,
        [(variant.style, variant.text) for variant in proposal.variants],
    )


def running_from(
    stored: Mapping[str, Any], variants: Sequence[tuple[str, str]], traffic: float
) -> Experiment:
    """A kept proposal (``Proposal.as_json``, store.py) as the running experiment it
    launches with these (style, text) variants at ``traffic`` percent of its page."""
    return draft(
        str(stored["key"]),
        str(stored["url"]),
        str(stored["element"]["kind"]),
        str(stored["element"]["selector"]),
        str(stored["page_tag"]),
        str(stored["metric"]),
        float(stored["priority"]["lift_prior"]),
        variants,
        status="running",
        traffic=traffic,
    )


def proposed_variants(stored: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A kept proposal's (style, text) variants."""
    return [(str(v["style"]), str(v["text"])) for v in stored.get("variants", [])]


def with_drafts(base: RuleFiles, proposals: Iterable[Proposal]) -> RuleFiles:
    """The rule files with a draft for each proposal on a tagged page not drafted yet,
    validated whole (InvalidFileError names every problem, and nothing is kept)."""
    files = base
    for proposal in proposals:
        if proposal.page_tag and proposal.key not in files.rules.experiments:
            comment = f"Proposed by autopilot for {proposal.url} (refract autopilot scan)"
            files = add(files, "experiments", draft_of(proposal), comment)
    return files


def _one_per_style(variants: Sequence[Variant]) -> tuple[Variant, ...]:
    seen: set[str] = set()
    chosen = []
    for variant in variants:
        if variant.style not in seen:
            seen.add(variant.style)
            chosen.append(variant)
    return tuple(chosen)
