"""Promoting a winner ships it to a personalization of its own: ``<key>-winner``, a long key
cut and given a digest, so two experiments never ship to one key; and a personalization of
that key that the experiment did not ship (a person's, or another experiment's from before the
digest) is never replaced nor archived: 409."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refract.rules import editing
from refract.rules.config import Config
from refract.rules.editing import RuleFiles, WinnerTakenError
from refract.rules.schema import KEY_PATTERN
from tests.conftest import AdminFactory, clean_redis

DIRECTORY = Path("rules")
SITE = """[[pages]]
tag = "page"
paths = ["/page*"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"
"""
PREFIX = "q3-enterprise-pricing-page-hero-headline-for-analytical-"  # 56 characters


def experiment(key: str, text: str, status: str = "running") -> str:
    return (
        f'[[experiments]]\nkey = "{key}"\nstatus = "{status}"\npages = ["page"]\n'
        'primary_metric = "signup"\n\n  [[experiments.variants]]\n  key = "control"\n'
        '  weight = 50\n\n  [[experiments.variants]]\n  key = "bold"\n  weight = 50\n'
        f'  changes = [{{ action = "set_text", selector = "h1#hero", value = "{text}" }}]\n\n'
    )


def personalization(key: str, text: str, pages: str = '["page"]', status: str = "running") -> str:
    return (
        f'[[personalizations]]\nkey = "{key}"\nstatus = "{status}"\npages = {pages}\n'
        'audience = ""\n'
        f'changes = [{{ action = "set_text", selector = "h1#hero", value = "{text}" }}]\n\n'
    )


def rule_files(*texts: str) -> RuleFiles:
    return RuleFiles({"site.toml": SITE.encode(), "rules.toml": "".join(texts).encode()}, DIRECTORY)


@pytest.mark.parametrize(
    ("key", "winner"),
    [
        ("hero", "hero-winner"),
        (PREFIX, PREFIX + "-winner"),  # 56 + 7 = 63 characters: still whole
        # longer: the first 47 characters, and 8 hex digits of the key's SHA-256
        (PREFIX + "v1", "q3-enterprise-pricing-page-hero-headline-for-an-8090fb34-winner"),
        (PREFIX + "v2", "q3-enterprise-pricing-page-hero-headline-for-an-fd9401e4-winner"),
        ("x" * 63, "x" * 47 + "-75220b47-winner"),
    ],
)
def test_a_winner_key_is_the_experiment_key_or_a_cut_with_its_digest(key: str, winner: str) -> None:
    assert editing.winner_key(key) == winner
    assert re.fullmatch(KEY_PATTERN, winner)


def test_keys_sharing_their_first_56_characters_ship_to_two_personalizations() -> None:
    first, second = PREFIX + "v1", PREFIX + "v2"
    files = rule_files(experiment(first, "Proof first"), experiment(second, "Price first"))
    for key in (first, second):
        files = editing.promote(files, key, "bold").files
    shipped = {key: item.changes[0].value for key, item in files.rules.personalizations.items()}
    assert shipped == {
        editing.winner_key(first): "Proof first",
        editing.winner_key(second): "Price first",
    }


# Besides experiment "e" (pages ["page"]; bold sets the headline to "Bold"): personalization
# e-winner as rules.toml has it, and what promoting bold, then the control instead, does to it.
OWNERSHIP = {
    "none yet": ("", "shipped", "none"),
    "e's, archived by promoting the control": (
        personalization("e-winner", "Bold", status="archived"),
        "shipped",
        "archived",
    ),
    "a person's, with other changes": (personalization("e-winner", "Mine"), 409, "kept"),
    "a person's, on other pages": (personalization("e-winner", "Bold", pages="[]"), 409, "kept"),
}


@pytest.mark.parametrize("case", OWNERSHIP)
def test_a_promotion_replaces_or_archives_only_what_the_experiment_shipped(case: str) -> None:
    other, on_bold, on_control = OWNERSHIP[case]
    base = rule_files(experiment("e", "Bold"), other)
    before = base.rules.personalizations.get("e-winner")
    if on_bold == 409:
        with pytest.raises(WinnerTakenError, match='"e-winner" exists and is not'):
            editing.promote(base, "e", "bold")
    else:
        promoted = editing.promote(base, "e", "bold")
        shipped = promoted.files.rules.personalizations["e-winner"]
        assert (promoted.personalization, shipped.status) == ("e-winner", "running")
        assert shipped.changes[0].value == "Bold"
    after = editing.promote(base, "e", "control").files.rules.personalizations.get("e-winner")
    if on_control == "kept":
        assert after == before
    else:
        assert (after.status if after else "none") == on_control


def test_a_winner_shipped_under_the_former_cut_key_is_replaced_not_shipped_twice() -> None:
    """Before winner keys had a digest, a long key's winner was its first 56 characters and
    -winner: promoting that experiment again finds it there; another's there is left alone."""
    first, second = PREFIX + "v1", PREFIX + "v2"
    former = PREFIX + "-winner"
    base = rule_files(
        experiment(first, "Proof first"),
        experiment(second, "Price first"),
        personalization(former, "Proof first"),  # first's winner, shipped before
    )
    again = editing.promote(base, first, "bold")
    assert again.personalization == former
    assert set(again.files.rules.personalizations) == {former}
    other = editing.promote(base, second, "bold")
    shipped = other.files.rules.personalizations
    assert shipped[former].changes[0].value == "Proof first"  # first's, untouched
    assert shipped[editing.winner_key(second)].changes[0].value == "Price first"
    control = editing.promote(base, first, "control").files.rules.personalizations
    assert control[former].status == "archived"


# --- through the API ---------------------------------------------------------------------------


def settings(redis_url: str, rules: Path) -> Config:
    site = {"host": "*", "id": "test", "origin": "http://127.0.0.1:9"}
    return Config.model_validate(
        {"redis": {"url": redis_url}, "rules": {"directory": str(rules)}, "sites": [site]}
    )


async def test_promoting_one_experiment_never_overwrites_anothers_winner(
    admin_api: AdminFactory, redis_url: str, tmp_path: Path
) -> None:
    await clean_redis(redis_url)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "site.toml").write_text(SITE)
    first, second = PREFIX + "v1", PREFIX + "v2"
    (rules / "rules.toml").write_text(
        experiment(first, "Proof first")
        + experiment(second, "Price first")
        + experiment("e", "Bold")
        + personalization("e-winner", "Mine")
    )
    api = await admin_api(settings(redis_url, rules), role="marketing")
    for key in (first, second):
        etag = (await api.get(f"/api/experiments/{key}")).headers["ETag"]
        response = await api.post(
            f"/api/experiments/{key}/promote", json={"variant": "bold"}, headers={"If-Match": etag}
        )
        assert response.status == 200
        assert (await response.json())["personalization"]["key"] == editing.winner_key(key)
    listed = (await (await api.get("/api/personalizations")).json())["personalizations"]
    assert len(listed) == 3
    before = (rules / "rules.toml").read_bytes()
    etag = (await api.get("/api/experiments/e")).headers["ETag"]
    response = await api.post(
        "/api/experiments/e/promote", json={"variant": "bold"}, headers={"If-Match": etag}
    )
    assert response.status == 409
    assert '"e-winner"' in (await response.json())["error"]
    assert (rules / "rules.toml").read_bytes() == before
