"""Keep each visitor's segment current: profile -> features -> psychographics, scores and
revenue prediction, under the site's industry model.

After a batch, the worker recomputes the segment of every tracked visitor the batch touched,
at most once a second per visitor and process: a visitor computed less than a second ago
waits, and is computed after a later batch or an idle read, so the last events always count.
Segments are stored where the proxy reads them (rules/segments.py). A segment is derived
state: recomputing it is always safe. Two pipelined round trips serve a whole batch: the
visitors' profiles and pages, then the accounts some of them belong to (CRM record and
roll-up, which a deal's prediction is about).

The segment also keeps each visitor's arm of every running bandit experiment (``arm.<key>``,
rules/fields.py), read from their first exposures: the proxy gives a visitor that arm again
whatever the weights say now (rules/decisions.py).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import redis.asyncio as redis

from refract.analytics.intel import classify, features_of, score
from refract.analytics.intel.scores import scorer_for
from refract.analytics.revenue import Prediction, predict
from refract.analytics.revenue.store import ModelFollower
from refract.analytics.revenue.subjects import accounts_of, company_of, subject_from
from refract.rules import keyspace
from refract.rules.accounts import Account
from refract.rules.fields import arm_field
from refract.rules.industry import IndustryModel, shipped_model
from refract.rules.redis_values import strings, text
from refract.rules.segments import encode_segment, segment_only
from refract.rules.targeting import Value

MIN_INTERVAL_S = 1.0
_RECENT_MAX = 100_000


def segment_fields(
    profile: Mapping[str, str],
    pages: list[str],
    industry: IndustryModel | None = None,
    account: Account | None = None,
    prediction: Prediction | None = None,
    colleagues: int = 0,
) -> dict[str, tuple[Value, float]]:
    """The targeting fields of one visitor, each with its confidence (1 for facts); the names
    are rules/fields.py's (those it says the worker fills)."""
    features = features_of(profile, pages, kinds=scorer_for(industry).kinds)
    features = dataclasses.replace(features, colleagues=colleagues)
    axes = classify(features)
    firm = account if account is not None else company_of(profile)
    scores = score(features, firm.employees if firm else None, industry)
    fields: dict[str, tuple[Value, float]] = {
        "segment.intent": (scores.intent, 1.0),
        "segment.intent_band": (scores.band, 1.0),
        "segment.urgency": (scores.urgency, 1.0),
        "segment.budget": (scores.budget, 1.0),
        "visitor.sessions": (features.sessions, 1.0),
        "visitor.tags_seen": (sorted(name[4:] for name in profile if name.startswith("tag:")), 1.0),
        "visitor.competitors": (_researched(profile), 1.0),
    }
    for name, axis in (
        ("segment.style", axes.decision_style),
        ("segment.stage", axes.buying_stage),
    ):
        if axis.value != "unknown":
            fields[name] = (axis.value, axis.confidence)
    if account is not None:
        fields["account.name"] = (account.name, 1.0)
        fields["account.target"] = (account.target, 1.0)
    if firm is not None and firm.industry:
        fields["segment.industry"] = (firm.industry, 1.0)
    if prediction is not None:
        fields["segment.deal_size"] = (round(prediction.deal_size.value), 1.0)
        fields["segment.close_probability"] = (round(prediction.close_probability.value, 4), 1.0)
        fields["segment.expected_value"] = (round(prediction.expected_value), 1.0)
    return fields


def _researched(profile: Mapping[str, str]) -> list[str]:
    """The competitors (lowercase, as analytics/effects.py counts them) the visitor's pages,
    referrers or search terms named: what a defense's audience targets (docs/competitive.md)."""
    return sorted(
        name.removeprefix("competitor:") for name in profile if name.startswith("competitor:")
    )


def kept_arms(
    experiments: Sequence[str], records: Sequence[bytes | str | None]
) -> dict[str, tuple[Value, float]]:
    """The segment fields of a visitor's arms: ``records`` are their first exposures to
    ``experiments`` (None where they have none); a record that does not parse is left out."""
    found: dict[str, tuple[Value, float]] = {}
    for experiment, record in zip(experiments, records, strict=True):
        if record is None:
            continue
        try:
            variant = keyspace.parse_first_exposure_record(text(record))[0]
        except ValueError:
            continue
        found[arm_field(experiment)] = (variant, 1.0)
    return found


class SegmentRefresher:
    def __init__(
        self,
        client: redis.Redis,
        site: str,
        industry: IndustryModel | None = None,
        models: ModelFollower | None = None,
        bandits: Callable[[], Collection[str]] = tuple,
    ) -> None:
        """``bandits`` names the running bandit experiments, whose arms the segment keeps."""
        self.client = client
        self.site = site
        self.bandits = bandits
        self.industry = industry if industry is not None else shipped_model("saas")
        self.models = models if models is not None else ModelFollower(client, site)
        # when each visitor's segment was last computed, and who waits for the next chance
        self._computed: dict[str, float] = {}
        self._pending: set[str] = set()

    async def refresh(self, visitors: Iterable[str]) -> None:
        now = time.monotonic()
        self._pending.update(visitor for visitor in visitors if visitor)
        due = [v for v in self._pending if now - self._computed.get(v, -math.inf) >= MIN_INTERVAL_S]
        if not due:
            return
        self._pending.difference_update(due)
        bandits = sorted(self.bandits())
        stride = 3 if bandits else 2  # replies per visitor
        async with self.client.pipeline(transaction=False) as pipe:
            for visitor in due:
                pipe.hgetall(keyspace.profile(self.site, visitor))
                pipe.lrange(keyspace.pages(self.site, visitor), 0, -1)
                if bandits:
                    pipe.hmget(keyspace.exposures(self.site, visitor), bandits)
            replies = await pipe.execute()
        profiles = [strings(replies[stride * index]) for index in range(len(due))]
        domains = {p["account"] for p in profiles if p.get("account")}
        accounts = await accounts_of(self.client, self.site, domains)
        fitted = await self.models.get()
        async with self.client.pipeline(transaction=False) as pipe:
            for index, visitor in enumerate(due):
                profile = profiles[index]
                pages = [text(page) for page in replies[stride * index + 1]]
                account, rollup = accounts.get(profile.get("account", ""), (None, None))
                subject = subject_from(profile, pages, account, rollup, self.industry)
                prediction = predict(subject, self.industry, fitted)
                colleagues = max(rollup[1] - 1, 0) if rollup else 0
                fields = segment_fields(
                    profile, pages, self.industry, account, prediction, colleagues
                )
                if bandits:
                    fields |= kept_arms(bandits, replies[stride * index + 2])
                pipe.set(
                    keyspace.segment(self.site, visitor),
                    encode_segment(segment_only(fields)),
                    ex=keyspace.PROFILE_TTL_S,
                )
                self._computed[visitor] = now
            await pipe.execute()
        if len(self._computed) > _RECENT_MAX:
            self._computed.clear()
