"""Bandit experiments in the rules: the settings' validation, the published weights' decoding,
and assignment by them (context weights, pooled fallback, kept arms, propensities)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from refract.analytics.archive import Archive
from refract.rules import events
from refract.rules.allocations import InvalidWeightsError, Weights, decode, encode
from refract.rules.decisions import CompiledRules
from refract.rules.fields import arm_field
from refract.rules.problems import InvalidFileError
from refract.rules.qa_links import Override
from refract.rules.ruleset import RuleSet, load_rules
from refract.rules.segments import segment_only
from refract.rules.targeting import Facts

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SITE = "t"
VARIANTS = ["control", "bold"]
VISITORS = [f"{index:032x}" for index in range(4000)]
METRIC = '[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n'


def bandit_rules(*lines: str, variants: tuple[str, ...] = ("control", "bold")) -> str:
    """A running bandit experiment ``exp`` on segment.style with ``lines`` added to it."""
    weight = 100 / len(variants)
    arms = "".join(
        f'[[experiments.variants]]\nkey = "{key}"\nweight = {weight}\n' for key in variants
    )
    body = "\n".join(lines)
    return (
        f'{METRIC}\n[[experiments]]\nkey = "exp"\nstatus = "running"\nprimary_metric = "signup"\n'
        f'allocation = "bandit"\nreport_segments = ["segment.style"]\n{body}\n{arms}'
    )


def loaded(tmp_path: Path, text: str) -> RuleSet:
    directory = tmp_path / "rules"
    directory.mkdir(exist_ok=True)
    (directory / "rules.toml").write_text(text)
    return load_rules(directory)


# --- the rule file ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        pytest.param(
            ("[experiments.bandit]", "floor = 0.5"),
            r"rules\.toml:\d+: experiments\[0\]: bandit\.floor 0\.5 must be below 1/2",
            id="floor-at-one-over-arms",
        ),
        pytest.param(
            ("[experiments.bandit]", "floor = -0.1"),
            r"experiments\[0\]\.bandit\.floor: input should be greater than or equal to 0",
            id="negative-floor",
        ),
        pytest.param(
            ("[experiments.bandit]", 'context = "segment.stage"'),
            r'bandit\.context "segment\.stage" must be one of the experiment\'s report_segments',
            id="context-not-reported",
        ),
        pytest.param(
            ("[experiments.bandit]", "draws = 5"),
            r"experiments\[0\]\.bandit\.draws: unknown key",
            id="unknown-key",
        ),
        pytest.param(
            ("[experiments.bandit]", "min_visitors = 1"),
            r"experiments\[0\]\.bandit\.min_visitors: input should be greater than or equal to 2",
            id="no-burn-in-visitors",
        ),
    ],
)
def test_bad_bandit_settings_are_refused_with_file_line_and_field(
    tmp_path: Path, lines: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(InvalidFileError) as raised:
        loaded(tmp_path, bandit_rules(*lines))
    assert re.search(expected, str(raised.value), re.IGNORECASE), str(raised.value)


def test_a_bandit_table_needs_bandit_allocation(tmp_path: Path) -> None:
    text = bandit_rules("[experiments.bandit]", "floor = 0.02").replace(
        'allocation = "bandit"', 'allocation = "fixed"'
    )
    with pytest.raises(InvalidFileError, match=r'needs allocation = \\?"bandit\\?"'):
        loaded(tmp_path, text)


def test_a_bandit_without_its_table_has_the_documented_defaults(tmp_path: Path) -> None:
    settings = loaded(tmp_path, bandit_rules()).experiments["exp"].bandit_settings
    assert settings is not None
    assert (settings.min_visitors, settings.min_conversions, settings.floor) == (100, 5, 0.01)
    assert (settings.context, settings.min_context_visitors) == ("", 200)


def test_a_fixed_experiment_has_no_bandit_settings(tmp_path: Path) -> None:
    text = bandit_rules().replace('allocation = "bandit"', "")
    assert loaded(tmp_path, text).experiments["exp"].bandit_settings is None


# --- published weights ------------------------------------------------------------------------


def document(**changes: Any) -> str:
    base: dict[str, Any] = {
        "day": "2026-06-01",
        "pooled": {"control": 0.3, "bold": 0.7},
        "contexts": {"analytical": {"control": 0.8, "bold": 0.2}},
        "p_best": {"control": 0.1, "bold": 0.9},
        "burn_in": False,
    }
    return json.dumps(base | changes)


def test_a_good_document_decodes_to_its_weights() -> None:
    weights = decode(document(), VARIANTS)
    assert weights.pooled == {"control": 0.3, "bold": 0.7}
    assert weights.for_context("analytical") == {"control": 0.8, "bold": 0.2}
    assert weights.for_context("intuitive") == weights.pooled == weights.for_context(None)


def test_encoding_round_trips() -> None:
    weights = decode(document(p_best={"control": None, "bold": None}, burn_in=True), VARIANTS)
    assert decode(encode(weights), VARIANTS) == weights


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param("[]", "exactly", id="not-an-object"),
        pytest.param(document(extra=1), "exactly", id="unknown-key"),
        pytest.param(document(day="yesterday"), "day", id="bad-day"),
        pytest.param(document(burn_in="no"), "burn_in", id="bad-burn-in"),
        pytest.param(document(pooled={"control": 1.0}), "pooled: names", id="missing-variant"),
        pytest.param(
            document(pooled={"control": 0.5, "bold": 0.25, "ghost": 0.25}),
            "pooled: names",
            id="unknown-variant",
        ),
        pytest.param(
            document(pooled={"control": 0.5, "bold": 0.6}), "add up to", id="sum-above-one"
        ),
        pytest.param(
            document(pooled={"control": -0.5, "bold": 1.5}), "not a weight", id="negative"
        ),
        pytest.param(
            document(pooled={"control": "0.5", "bold": 0.5}), "not a weight", id="text-weight"
        ),
        pytest.param(
            document(pooled={"control": True, "bold": 0.0}), "not a weight", id="boolean-weight"
        ),
        pytest.param(document().replace("0.3", "NaN").replace("0.7", "NaN"), "not JSON", id="nan"),
        pytest.param(document().replace("0.3", "Infinity"), "not JSON", id="infinity"),
        pytest.param(
            document(contexts={"analytical": {"control": 0.9, "bold": 0.2}}),
            "contexts.analytical",
            id="bad-context",
        ),
        pytest.param(document(contexts=[]), "contexts", id="contexts-not-an-object"),
        pytest.param(document(p_best={"control": 1.5}), "p_best", id="p-best-above-one"),
        pytest.param(document(p_best={"ghost": 0.5}), "p_best", id="p-best-unknown-variant"),
    ],
)
def test_a_hostile_document_is_refused_whole(text: str, reason: str) -> None:
    with pytest.raises(InvalidWeightsError, match=re.escape(reason)):
        decode(text, VARIANTS)


@given(st.text() | st.binary())
def test_any_bytes_decode_to_valid_weights_or_are_refused(raw: str | bytes) -> None:
    try:
        weights = decode(raw, VARIANTS)
    except InvalidWeightsError:
        return
    assert math.isclose(sum(weights.pooled.values()), 1.0, abs_tol=1e-6)


@given(
    st.dictionaries(
        st.sampled_from(["control", "bold", "ghost"]),
        st.floats(allow_nan=True, allow_infinity=True) | st.integers() | st.none(),
    )
)
def test_decoded_weights_are_always_a_distribution_over_the_variants(
    pooled: dict[str, Any],
) -> None:
    text = json.dumps(
        {"day": "2026-06-01", "pooled": pooled, "contexts": {}, "p_best": {}, "burn_in": False}
    )
    try:
        weights = decode(text, VARIANTS)
    except InvalidWeightsError:
        return
    assert set(weights.pooled) == set(VARIANTS)
    assert all(math.isfinite(w) and w >= 0 for w in weights.pooled.values())
    assert math.isclose(sum(weights.pooled.values()), 1.0, abs_tol=1e-6)


# --- assignment -------------------------------------------------------------------------------


def published(
    pooled: dict[str, float], contexts: dict[str, dict[str, float]] | None = None
) -> dict[str, dict[str, Weights]]:
    weights = Weights("2026-06-01", pooled, contexts or {}, {}, burn_in=False)
    return {SITE: {"exp": weights}}


def shares(
    compiled: CompiledRules, facts: Facts, site: str = SITE
) -> tuple[Counter[str], set[float | None]]:
    """The variants of VISITORS and the propensities their assignments carried."""
    counts: Counter[str] = Counter()
    propensities = set()
    for visitor in VISITORS:
        [assignment] = compiled.decide(frozenset(), facts, visitor, {}, NOW, site=site).assignments
        counts[assignment.variant] += 1
        propensities.add(assignment.propensity)
    return counts, propensities


def within_binomial_bounds(count: int, total: int, share: float) -> bool:
    """``count`` of ``total`` inside the two-sided 99.9% binomial interval at ``share``."""
    low, high = stats.binom.interval(0.999, total, share)
    return bool(low <= count <= high)


def test_without_published_weights_the_rule_file_weights_assign(tmp_path: Path) -> None:
    counts, propensities = shares(CompiledRules(loaded(tmp_path, bandit_rules())), Facts({}))
    assert within_binomial_bounds(counts["bold"], len(VISITORS), 0.5)
    assert propensities == {0.5}


def test_the_pooled_weights_assign_and_are_the_propensity(tmp_path: Path) -> None:
    compiled = CompiledRules(
        loaded(tmp_path, bandit_rules()), published({"control": 0.2, "bold": 0.8})
    )
    counts, propensities = shares(compiled, Facts({}))
    assert within_binomial_bounds(counts["bold"], len(VISITORS), 0.8)
    assert propensities == {0.2, 0.8}


def test_weights_are_a_site_s_own(tmp_path: Path) -> None:
    compiled = CompiledRules(
        loaded(tmp_path, bandit_rules()), published({"control": 0.2, "bold": 0.8})
    )
    counts, _ = shares(compiled, Facts({}), site="another")
    assert within_binomial_bounds(counts["bold"], len(VISITORS), 0.5)


@pytest.mark.parametrize(
    ("style", "bold_share"),
    [
        pytest.param("analytical", 0.1, id="own-context"),
        pytest.param("intuitive", 0.8, id="thin-context-falls-back-to-pooled"),
        pytest.param(None, 0.8, id="unknown-context-falls-back-to-pooled"),
    ],
)
def test_a_visitor_s_context_picks_the_weights(
    tmp_path: Path, style: str | None, bold_share: float
) -> None:
    rules = loaded(tmp_path, bandit_rules("[experiments.bandit]", 'context = "segment.style"'))
    compiled = CompiledRules(
        rules,
        published({"control": 0.2, "bold": 0.8}, {"analytical": {"control": 0.9, "bold": 0.1}}),
    )
    facts = Facts({"segment.style": style} if style else {})
    counts, propensities = shares(compiled, facts)
    assert within_binomial_bounds(counts["bold"], len(VISITORS), bold_share)
    assert propensities == {bold_share, round(1 - bold_share, 4)}


def test_a_visitor_keeps_their_arm_whatever_the_weights(tmp_path: Path) -> None:
    compiled = CompiledRules(
        loaded(tmp_path, bandit_rules()), published({"control": 0.0, "bold": 1.0})
    )
    facts = Facts({arm_field("exp"): "control"})
    counts, propensities = shares(compiled, facts)
    assert counts == Counter({"control": len(VISITORS)})
    assert propensities == {None}  # no draw chose the kept arm


def test_a_kept_arm_naming_no_variant_is_ignored(tmp_path: Path) -> None:
    compiled = CompiledRules(
        loaded(tmp_path, bandit_rules()), published({"control": 0.0, "bold": 1.0})
    )
    counts, propensities = shares(compiled, Facts({arm_field("exp"): "gone"}))
    assert counts == Counter({"bold": len(VISITORS)})
    assert propensities == {1.0}


def test_a_fixed_experiment_ignores_kept_arms_and_weights(tmp_path: Path) -> None:
    rules = loaded(tmp_path, bandit_rules().replace('allocation = "bandit"', ""))
    compiled = CompiledRules(rules, published({"control": 0.0, "bold": 1.0}))
    counts, propensities = shares(compiled, Facts({arm_field("exp"): "control"}))
    assert within_binomial_bounds(counts["bold"], len(VISITORS), 0.5)
    assert propensities == {0.5}


def test_weights_for_other_variants_are_ignored(tmp_path: Path) -> None:
    rules = loaded(tmp_path, bandit_rules(variants=("control", "bold", "quiet")))
    compiled = CompiledRules(rules, published({"control": 0.0, "bold": 1.0}))
    counts, _ = shares(compiled, Facts({}))
    assert within_binomial_bounds(counts["quiet"], len(VISITORS), 1 / 3)


def test_a_qa_override_has_no_propensity(tmp_path: Path) -> None:
    compiled = CompiledRules(
        loaded(tmp_path, bandit_rules()), published({"control": 0.2, "bold": 0.8})
    )
    forced = {"exp": Override("control", preview=False)}
    [assignment] = compiled.decide(frozenset(), Facts({}), "v", forced, NOW, site=SITE).assignments
    assert (assignment.variant, assignment.forced, assignment.propensity) == ("control", True, None)


def test_a_running_bandit_needs_the_segment(tmp_path: Path) -> None:
    assert CompiledRules(loaded(tmp_path, bandit_rules())).needs_segment
    paused = bandit_rules().replace('status = "running"', 'status = "paused"')
    assert not CompiledRules(loaded(tmp_path, paused)).needs_segment


def test_the_segment_carries_kept_arms_and_nothing_else_unlisted() -> None:
    written = segment_only({arm_field("exp"): ("bold", 1.0), "armour": ("x", 1.0)})
    assert written == {arm_field("exp"): ("bold", 1.0)}


# --- the exposure's propensity ----------------------------------------------------------------


@pytest.mark.parametrize("propensity", [1e-9, 0.5, 1])
def test_an_exposure_carries_a_propensity_in_the_unit_interval(propensity: float) -> None:
    event = events.exposure(
        SITE, "v", "s", experiment="exp", variant="b", rules_version="r", url="/"
    )
    event["propensity"] = propensity
    assert events.decode(events.encode(event)) == event


@pytest.mark.parametrize("propensity", [0, -0.5, 1.5, "0.5", math.inf, True])
def test_an_exposure_with_a_propensity_outside_it_is_refused(propensity: object) -> None:
    event = dict(
        events.exposure(SITE, "v", "s", experiment="exp", variant="b", rules_version="r", url="/")
    )
    event["propensity"] = propensity
    with pytest.raises(events.InvalidEvent, match="propensity"):
        events.validate(event)


def test_an_exposure_without_a_propensity_is_valid() -> None:
    event = events.exposure(
        SITE, "v", "s", experiment="exp", variant="b", rules_version="r", url="/"
    )
    assert "propensity" not in events.decode(events.encode(event))


def test_the_archive_keeps_an_exposure_s_propensity(tmp_path: Path) -> None:
    event = events.exposure(
        SITE, "v", "s", experiment="exp", variant="b", rules_version="r", url="/"
    )
    event["propensity"] = 0.25
    archive = Archive(tmp_path)
    archive.append([event])
    assert list(archive.read(SITE)) == [event]
