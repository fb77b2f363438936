"""An attribution report: a site's journeys from the archive, credited by the chosen models.

One home for what ``refract attribution``, ``GET /api/revenue/attribution`` and the
dashboard's attribution page answer, so that the three cannot disagree. Conversions are the
CRM's won deals when the site has outcomes (the CRM sync's file, or a file given on the
command line), which makes the journeys accounts'; otherwise the events of
``[attribution] conversion_metric`` (else the rules' first metric), per visitor.

The model names are plain data here and the engines (numpy, scipy, DuckDB) are imported when
a report is computed: ``refract proxy`` builds the command line that names the models and
must not pay for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal

from refract.rules.config import Config, SiteConfig
from refract.rules.ruleset import load_rules
from refract.rules.schema import Metric

if TYPE_CHECKING:
    from refract.analytics.attribution.journeys import By, Credit, Journey, Paths
    from refract.analytics.revenue.outcomes import Outcome

RULE_MODELS = (
    "first",
    "last",
    "last_non_direct",
    "linear",
    "time_decay",
    "u_shaped",
    "w_shaped",
    "full_path",
    "j_shaped",
    "inverse_j_shaped",
)  # rules_based.MODELS' names (a test keeps the two equal)
DATA_DRIVEN = ("markov", "shapley")
MODEL_NAMES = (*RULE_MODELS, *DATA_DRIVEN)
BY = ("channel", "campaign", "page")
COLUMNS = (
    "model",
    "key",
    "conversions",
    "conversions_share",
    "value",
    "value_share",
    "error",
    "conversions_low",
    "conversions_high",
)
Source = Literal["crm", "metric"]
# The data-driven models' keys past the most touched, as one key: a site's pages or campaigns
# (which visitors choose) outnumber the 62 bits of Shapley's coalitions, and Markov solves a
# chain per key removed (2,000 landing pages took 52 s); every conversion is still credited
OTHER = "(other)"
DEFAULT_DAYS = 30  # the period when none is asked for: the 30 days up to today (or ``until``)


@dataclass(frozen=True)
class ModelCredit:
    """One model's answer: its credit; for a sampled Shapley estimate each key's standard
    error of conversions (empty when exact); for Markov the order used; with bootstrap
    intervals, each key's interval of conversions."""

    model: str
    credit: Credit
    error: dict[str, float] = field(default_factory=dict)
    order: int | None = None
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def sampled(self) -> bool:
        """Whether the credit is a sampled estimate (Shapley beyond its exact limit), each
        key's standard error in ``error``."""
        return bool(self.error)


@dataclass(frozen=True)
class Report:
    """Every chosen model's credit over one site's journeys of a period."""

    site: str
    by: By
    since: date
    until: date
    source: Source
    journeys: int
    conversions: int
    value: float
    min_conversions: int
    models: tuple[ModelCredit, ...]

    @property
    def low_data(self) -> bool:
        """Below ``[attribution] min_conversions`` the credit is noise (the data-driven
        models' most of all)."""
        return self.conversions < self.min_conversions

    @property
    def warning(self) -> str | None:
        """What a reader is told when the data is low; None when it is not."""
        if not self.low_data:
            return None
        return (
            f"{self.conversions} conversions, below [attribution] min_conversions = "
            f"{self.min_conversions}: the credit is noise, the data-driven models' most of all"
        )

    def rows(self) -> list[dict[str, Any]]:
        """One row per model and key (``COLUMNS``), keys by descending conversions."""
        return credit_rows(self.models)

    def as_json(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "site": self.site,
            "by": self.by,
            "from": self.since.isoformat(),
            "to": self.until.isoformat(),
            "source": self.source,
            "journeys": self.journeys,
            "conversions": self.conversions,
            "value": self.value,
            "low_data": self.low_data,
            "min_conversions": self.min_conversions,
            "warning": self.warning,
            "models": {
                result.model: {
                    "order": result.order,
                    "sampled": result.sampled,
                    "credit": [
                        {k: v for k, v in row.items() if k != "model"}
                        for row in rows
                        if row["model"] == result.model
                    ],
                }
                for result in self.models
            },
        }


def conversion_metric(config: Config) -> Metric:
    """The metric whose events are conversions: the config's, else the rules' first;
    ValueError naming the setting when there is none."""
    wanted = config.attribution.conversion_metric
    metrics = load_rules(config.rules.directory).metrics if config.rules.directory else {}
    if wanted:
        if wanted not in metrics:
            raise ValueError(f"[attribution] conversion_metric: no metric {wanted!r} in the rules")
        return metrics[wanted]
    if not metrics:
        raise ValueError("no metric in the rules to count conversions by: add one, or --outcomes")
    return next(iter(metrics.values()))


def crm_outcomes(config: Config, site: SiteConfig) -> list[Outcome]:
    """The site's CRM outcomes as the CRM sync last wrote them (analytics/crm/sync.py); empty
    when it has written none. InvalidFileError when the file is not valid."""
    from refract.analytics.crm.sync import outcomes_path
    from refract.analytics.revenue.outcomes import read_outcomes_csv

    path = outcomes_path(config.server.data_dir, site.key)
    return read_outcomes_csv(path) if path.is_file() else []


def site_journeys(
    config: Config,
    site: SiteConfig,
    since: date,
    until: date,
    outcomes: Sequence[Outcome] = (),
) -> list[Journey]:
    """The site's journeys of the period: accounts' closing won deals when ``outcomes`` are
    given, else visitors' converting on the conversion metric (ValueError when none)."""
    from refract.analytics.archive import archive_root
    from refract.analytics.attribution.archive_journeys import archive_journeys

    return archive_journeys(
        archive_root(config),
        site.key,
        own_hosts=[site.host, *site.aliases, site.public_host],
        metric=None if outcomes else conversion_metric(config),
        outcomes=outcomes,
        unit="account" if outcomes else "visitor",
        since=since,
        until=until,
        window_s=config.attribution.window_days * 86_400.0,
    )


def report(
    config: Config,
    site: SiteConfig,
    journeys: Sequence[Journey],
    *,
    models: Sequence[str],
    by: By,
    since: date,
    until: date,
    source: Source,
    resamples: int = 0,
) -> Report:
    """Each of ``models``' credit over ``journeys``; with ``resamples`` (≥ 2), each key's
    95 % bootstrap interval of conversions too."""
    converted = [journey for journey in journeys if journey.converted]
    return Report(
        site=site.key,
        by=by,
        since=since,
        until=until,
        source=source,
        journeys=len(journeys),
        conversions=len(converted),
        value=math.fsum(journey.value for journey in converted),
        min_conversions=config.attribution.min_conversions,
        models=tuple(model_credit(journeys, name, by, config, resamples) for name in models),
    )


def model_credit(
    journeys: Sequence[Journey], name: str, by: By, config: Config, resamples: int = 0
) -> ModelCredit:
    """One model's credit (``name`` in ``MODEL_NAMES``): Markov with its order chosen on
    held-out journeys, Shapley with its standard errors when sampled (both over the
    ``most_touched`` keys), time decay with ``[attribution] half_life_days``."""
    from refract.analytics.attribution.channels import DIRECT
    from refract.analytics.attribution.journeys import NOT_SET, paths_from_journeys
    from refract.analytics.attribution.markov import markov_attribution
    from refract.analytics.attribution.shapley import MAX_CHANNELS, shapley_attribution

    if name not in DATA_DRIVEN:
        return _rule_credit(journeys, name, by, config, resamples)
    unattributed = DIRECT if by == "channel" else NOT_SET
    paths = most_touched(paths_from_journeys(journeys, by), MAX_CHANNELS)
    if name == "markov":
        markov = markov_attribution(paths, order=None, unattributed=unattributed)

        def fixed_order(sample: Paths) -> Credit:  # resamples keep the order chosen on all
            return markov_attribution(sample, markov.order, unattributed=unattributed).credit

        spread = _paths_intervals(paths, fixed_order, resamples)
        return ModelCredit(name, markov.credit, order=markov.order, intervals=spread)
    shapley = shapley_attribution(paths, unattributed=unattributed)
    error = {} if shapley.exact else shapley.conversions_error

    def shapley_credit(sample: Paths) -> Credit:
        return shapley_attribution(sample, unattributed=unattributed).credit

    spread = _paths_intervals(paths, shapley_credit, resamples)
    return ModelCredit(name, shapley.credit, error, intervals=spread)


def most_touched(paths: Paths, limit: int) -> Paths:
    """``paths`` over at most ``limit`` keys: the ``limit - 1`` most touched (ties by name)
    and ``OTHER`` for the rest (with a key of that name, if one is among the kept)."""
    import numpy as np

    from refract.analytics.attribution.journeys import Paths

    if len(paths.keys) <= limit:
        return paths
    touches = np.bincount(paths.codes, minlength=len(paths.keys))
    ranked = sorted(range(len(paths.keys)), key=lambda i: (-touches[i], paths.keys[i]))
    kept = sorted(paths.keys[i] for i in ranked[: limit - 1])
    keys = kept if OTHER in kept else [*kept, OTHER]
    index = {key: position for position, key in enumerate(keys)}
    recoded = np.array([index.get(key, index[OTHER]) for key in paths.keys], dtype=np.int64)
    return Paths(tuple(keys), recoded[paths.codes], paths.offsets, paths.converted, paths.value)


def _rule_credit(
    journeys: Sequence[Journey], name: str, by: By, config: Config, resamples: int
) -> ModelCredit:
    from refract.analytics.attribution.intervals import bootstrap_journeys
    from refract.analytics.attribution.rules_based import MODELS, attribute, time_decay_model

    if name not in MODELS:
        raise ValueError(f"no attribution model {name!r} (models: {', '.join(MODEL_NAMES)})")
    model = (
        time_decay_model(config.attribution.half_life_days * 86_400.0)
        if name == "time_decay"
        else MODELS[name]
    )
    credit = attribute(journeys, model, by)
    if resamples < 2:
        return ModelCredit(name, credit)
    spread = bootstrap_journeys(
        journeys, lambda sample: attribute(sample, model, by), resamples=resamples
    )
    return ModelCredit(name, credit, intervals=spread.conversions)


def _paths_intervals(
    paths: Paths, model: Callable[[Paths], Credit], resamples: int
) -> dict[str, tuple[float, float]]:
    from refract.analytics.attribution.intervals import bootstrap_paths

    if resamples < 2:
        return {}
    return bootstrap_paths(paths, model, resamples=resamples).conversions


def credit_rows(results: Sequence[ModelCredit]) -> list[dict[str, Any]]:
    """One row per model and key, the keys by descending conversions (unrounded: the
    credit sums to the totals to float rounding)."""
    rows: list[dict[str, Any]] = []
    for result in results:
        credit = result.credit
        total, value = credit.total_conversions, credit.total_value
        for key in sorted(credit.conversions, key=lambda k: (-credit.conversions[k], k)):
            low, high = result.intervals.get(key, (None, None))
            rows.append(
                {
                    "model": result.model,
                    "key": key,
                    "conversions": credit.conversions[key],
                    "conversions_share": credit.conversions[key] / total if total else 0.0,
                    "value": credit.value.get(key, 0.0),
                    "value_share": credit.value.get(key, 0.0) / value if value else 0.0,
                    "error": result.error.get(key),
                    "conversions_low": low,
                    "conversions_high": high,
                }
            )
    return rows
