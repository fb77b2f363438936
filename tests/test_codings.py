"""Which coding a rewritten page leaves in (RFC 9110 section 12.5.3), and that every coding
and level decodes back to the page."""

from __future__ import annotations

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from refract.proxy import codings
from tests.origin import PAGE

CHROME = "gzip, deflate, br, zstd"


@pytest.mark.parametrize(
    ("accept_encoding", "origin", "chosen"),
    [
        (CHROME, "gzip", "zstd"),
        (CHROME, "br", "zstd"),
        ("gzip, deflate, br", "gzip", "br"),  # Safari: no zstd
        ("gzip, deflate", "br", "gzip"),
        ("deflate", "gzip", "deflate"),
        ("gzip;q=0.5, zstd;q=0.4", "br", "gzip"),  # the visitor's weights come first
        ("zstd;q=0, gzip", "br", "gzip"),  # q=0 refuses
        ("*", "br", "gzip"),  # only the wildcard: the oldest coding
        ("*;q=0.5, br", "gzip", "br"),  # named beats the wildcard
        ("gzip;q=0, *", "gzip", "deflate"),  # the wildcard stands for the others only
        ("x-gzip", "br", "gzip"),
        ("", "gzip", "identity"),
        (None, "br", "identity"),
        ("identity", "gzip", "identity"),
        ("compress, bzip2", "gzip", "identity"),
        ("*;q=0", "gzip", "identity"),
        (CHROME, "identity", "identity"),  # Refract does not compress what the origin did not
        ("*", "identity", "identity"),
    ],
)
def test_the_coding_of_a_rewritten_page(
    accept_encoding: str | None, origin: str, chosen: str
) -> None:
    assert codings.choose_coding(accept_encoding, origin) == chosen


CODING_NAMES = st.sampled_from(
    ["gzip", "x-gzip", " GZip", "br", "zstd", "deflate", "*", "identity", "compress", ""]
)
WEIGHTS = st.one_of(
    st.just(""),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda q: f";q={q}"),
    st.text(max_size=6).map(lambda q: f";q={q}"),
)
ACCEPT_ENCODING = st.lists(st.tuples(CODING_NAMES, WEIGHTS), max_size=6).map(
    lambda items: ", ".join(name + weight for name, weight in items)
)


@given(st.one_of(ACCEPT_ENCODING, st.text(max_size=40)), st.sampled_from(codings.PREFERENCE))
def test_the_chosen_coding_is_accepted_and_weighted_highest(
    accept_encoding: str, origin: str
) -> None:
    accepted = codings.accepted_codings(accept_encoding)

    def weight(coding: str) -> float:
        return accepted.get(coding, accepted.get("*", 0.0))

    chosen = codings.choose_coding(accept_encoding, origin)
    if chosen == "identity":
        assert all(weight(coding) == 0 for coding in codings.PREFERENCE)
    else:
        assert weight(chosen) > 0
        assert weight(chosen) == max(weight(coding) for coding in codings.PREFERENCE)


@pytest.mark.parametrize("coding", codings.PREFERENCE)
@pytest.mark.parametrize("level", [0, 1, 2, 5, 9])
def test_every_coding_and_level_decodes_to_the_page(coding: str, level: int) -> None:
    encoded = codings.encode_at(PAGE, coding, level)
    assert codings.decode(encoded, coding, len(PAGE)) == PAGE


def test_a_reused_zstd_compressor_carries_nothing_from_one_page_to_the_next() -> None:
    codings.encode(b"<p>another page</p>" * 50, "zstd")
    encoded = codings.encode(PAGE, "zstd")
    fresh = zstandard.ZstdCompressor(level=codings.LEVELS["zstd"])
    assert encoded == fresh.compress(PAGE)
    assert codings.decode(encoded, "zstd", len(PAGE)) == PAGE
