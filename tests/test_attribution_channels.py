"""GA4's default channel grouping of a session (issue 21, touchpoints).

Each row is a session as the edge saw it (referrer, UTM tags, click-id names) and the channel
GA4's documented rules give it; then the rules' order where two could match, own-host
referrals, and any text at all (hypothesis) classified without an exception.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refract.analytics.attribution.channels import (
    CHANNELS,
    Arrival,
    channel,
    classify,
    referrer_host,
    source_medium,
)

CASES = [
    ("nothing at all", Arrival(), "Direct"),
    (
        "cross-network campaign",
        Arrival("", "google", "cpc", "pmax_cross-network_q3"),
        "Cross-network",
    ),
    ("shopping site, paid", Arrival("", "amazon", "cpc"), "Paid Shopping"),
    ("shop campaign, paid", Arrival("", "newsletter", "paid", "summer-shop"), "Paid Shopping"),
    ("search site, cpc", Arrival("", "google", "cpc"), "Paid Search"),
    ("search host, ppc", Arrival("", "www.bing.com", "ppc"), "Paid Search"),
    ("social site, paid", Arrival("", "linkedin", "paid_social"), "Paid Social"),
    ("video site, cpc", Arrival("", "youtube", "cpc"), "Paid Video"),
    ("banner medium", Arrival("", "adnet", "banner"), "Display"),
    ("cpm medium, unknown source", Arrival("", "adnet", "cpm"), "Display"),
    ("retargeting medium", Arrival("", "adroll", "retargeting"), "Paid Other"),
    ("shopping referrer", Arrival("https://www.etsy.com/listing/1"), "Organic Shopping"),
    ("social referrer", Arrival("https://l.facebook.com/l.php?u=x"), "Organic Social"),
    ("t.co referrer", Arrival("https://t.co/abc"), "Organic Social"),
    ("social medium", Arrival("", "partner", "social-media"), "Organic Social"),
    ("video referrer", Arrival("https://www.youtube.com/watch?v=1"), "Organic Video"),
    ("video medium", Arrival("", "webinar-host", "video_embed"), "Organic Video"),
    ("search referrer", Arrival("https://www.google.co.uk/"), "Organic Search"),
    ("duckduckgo referrer", Arrival("https://duckduckgo.com/"), "Organic Search"),
    ("organic medium", Arrival("", "startpage-x", "organic"), "Organic Search"),
    ("other site", Arrival("https://blog.example.org/post"), "Referral"),
    ("email medium", Arrival("", "newsletter", "email"), "Email"),
    ("email source", Arrival("", "e-mail", "weekly"), "Email"),
    ("affiliate medium", Arrival("", "partnerco", "affiliate"), "Affiliates"),
    ("audio medium", Arrival("", "spotify", "audio"), "Audio"),
    ("sms medium", Arrival("", "twilio", "sms"), "SMS"),
    ("push medium", Arrival("", "app", "web-push"), "Mobile Push Notifications"),
    ("notification medium", Arrival("", "app", "notification"), "Mobile Push Notifications"),
    ("source alone, unknown", Arrival("", "newsletter"), "Unassigned"),
    ("unknown medium", Arrival("", "acme", "flyer"), "Unassigned"),
]


@pytest.mark.parametrize(("arrival", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_documented_rule_names_its_channel(arrival: Arrival, expected: str) -> None:
    assert classify(arrival) == expected


CLICK_IDS = [
    ("gclid", "Paid Search"),
    ("wbraid", "Paid Search"),
    ("msclkid", "Paid Search"),
    ("li_fat_id", "Paid Social"),
    ("ttclid", "Paid Social"),
    ("dclid", "Display"),
    ("fbclid", "Organic Social"),  # Facebook adds it to organic links too
    ("mc_cid", "Email"),
    ("utm_nonsense", "Direct"),  # an unknown name is no evidence
]


@pytest.mark.parametrize(("name", "expected"), CLICK_IDS)
def test_a_click_id_alone_names_the_platform(name: str, expected: str) -> None:
    assert classify(Arrival(click_ids=frozenset({name}))) == expected


def test_utm_tags_win_over_a_click_id() -> None:
    arrival = Arrival("", "newsletter", "email", click_ids=frozenset({"gclid"}))
    assert classify(arrival) == "Email"


def test_a_click_id_name_is_case_insensitive() -> None:
    assert classify(Arrival(click_ids=frozenset({"GCLID"}))) == "Paid Search"


def test_paid_rules_come_before_organic_ones() -> None:
    assert channel("facebook", "cpc") == "Paid Social"
    assert channel("facebook", "referral") == "Organic Social"


def test_rules_are_case_insensitive() -> None:
    assert channel("Google", "CPC") == "Paid Search"


def test_a_referral_from_the_site_itself_is_direct() -> None:
    arrival = Arrival("https://www.refract.example/pricing")
    assert classify(arrival, own_hosts=["refract.example"]) == "Direct"
    assert classify(arrival) == "Referral"


def test_the_search_referrer_gives_source_and_organic_medium() -> None:
    assert source_medium(Arrival("https://www.bing.com/search?q=x")) == ("bing.com", "organic")


HOSTS = [
    ("https://user:pw@www.Example.com:8443/a?b#c", "example.com"),
    ("//cdn.example.net/x", "cdn.example.net"),
    ("example.org", "example.org"),
    ("http://[::1]:80/", "[::1]"),
    ("http://[::1", "[::1"),
    ("", ""),
]


@pytest.mark.parametrize(("referrer", "host"), HOSTS)
def test_the_referrer_host_is_read_without_urllib(referrer: str, host: str) -> None:
    assert referrer_host(referrer) == host


@given(
    st.text(max_size=600),
    st.text(max_size=80),
    st.text(max_size=80),
    st.text(max_size=80),
    st.frozensets(st.text(max_size=20), max_size=5),
    st.lists(st.text(max_size=30), max_size=3),
)
def test_any_text_gets_a_channel_and_never_raises(
    referrer: str,
    source: str,
    medium: str,
    campaign: str,
    click_ids: frozenset[str],
    own_hosts: list[str],
) -> None:
    arrival = Arrival(referrer, source, medium, campaign, click_ids)
    assert classify(arrival, own_hosts) in CHANNELS


def test_non_string_fields_are_read_as_empty() -> None:
    arrival = Arrival(referrer=None, utm_source=42)  # type: ignore[arg-type]
    assert classify(arrival) == "Direct"
