"""Which coding a rewritten page leaves in (RFC 9110 section 12.5.3), and that every coding
and level decodes back to the page."""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refract.proxy import codings
from refract.proxy.codings import zstd
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


LEVELS = [
    *[("gzip", level) for level in range(4)],  # ISA-L's levels
    *[("deflate", level) for level in range(4)],
    *[("br", level) for level in (0, 2, 5, 11)],
    *[("zstd", level) for level in (1, 3, 5, 19)],
]


@pytest.mark.parametrize(("coding", "level"), LEVELS)
def test_every_coding_and_level_decodes_to_the_page(coding: str, level: int) -> None:
    encoded = codings.encode_at(PAGE, coding, level)
    assert codings.decode(encoded, coding, len(PAGE)) == PAGE


@pytest.mark.parametrize(
    ("coding", "wbits"), [("gzip", 31), ("deflate", zlib.MAX_WBITS), ("deflate", -zlib.MAX_WBITS)]
)
@pytest.mark.parametrize("level", [1, 6, 9])
def test_a_page_the_standard_zlib_compressed_decodes(coding: str, wbits: int, level: int) -> None:
    """Origins compress with zlib (nginx, Apache, most frameworks); the proxy inflates with
    ISA-L, which must read any deflate stream, not only its own."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, wbits)
    encoded = compressor.compress(PAGE) + compressor.flush()
    assert codings.decode(encoded, coding, len(PAGE)) == PAGE
    assert codings.decode_prefix(encoded, coding, 100) == PAGE[:100]


@pytest.mark.parametrize(("coding", "wbits"), [("gzip", 31), ("deflate", zlib.MAX_WBITS)])
def test_the_standard_zlib_reads_what_the_proxy_compressed(coding: str, wbits: int) -> None:
    """A visitor's browser inflates with zlib or its like."""
    assert zlib.decompress(codings.encode(PAGE, coding), wbits) == PAGE


@pytest.mark.parametrize("coding", codings.PREFERENCE)
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda body: body[: len(body) // 2], "truncated|does not decode"),
        (lambda body: body[:10] + bytes(len(body) - 10), "does not decode"),
        (lambda body: b"plain text, not compressed at all", "does not decode"),
    ],
    ids=["truncated", "zeroed", "not-compressed"],
)
def test_a_body_that_is_not_its_coding_is_refused_with_a_reason(
    coding: str, damage: Callable[[bytes], bytes], reason: str
) -> None:
    with pytest.raises(codings.DecodeError, match=reason):
        codings.decode(damage(codings.encode(PAGE, coding)), coding, len(PAGE))


NOISE = random.Random(7).randbytes(6000)  # incompressible: its first bytes need most input


@pytest.mark.parametrize("coding", codings.PREFERENCE)
@pytest.mark.parametrize("body", [PAGE, NOISE], ids=["page", "incompressible"])
@pytest.mark.parametrize("size", [1, 512, 3000, 10_000])
def test_a_prefix_is_the_first_bytes_of_the_decoded_body(
    coding: str, body: bytes, size: int
) -> None:
    assert codings.decode_prefix(codings.encode(body, coding), coding, size) == body[:size]


@given(
    st.sampled_from(codings.PREFERENCE),
    st.integers(min_value=0, max_value=len(PAGE) - 1),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=len(PAGE)),
    st.integers(min_value=0, max_value=2 * len(PAGE)),
)
def test_a_damaged_body_decodes_within_the_limit_or_is_refused(
    coding: str, position: int, byte: int, kept: int, limit: int
) -> None:
    """Whatever an origin sends under a coding's name: a byte changed anywhere, the body cut
    anywhere, any limit. Only DecodeError may come out, and never more than the limit."""
    encoded = codings.encode(PAGE, coding)
    position %= len(encoded)
    damaged = (encoded[:position] + bytes([byte]) + encoded[position + 1 :])[:kept]
    try:
        decoded = codings.decode(damaged, coding, limit)
    except codings.DecodeError:
        pass
    else:
        assert len(decoded) <= limit
    try:
        prefix = codings.decode_prefix(damaged, coding, 512)
    except codings.DecodeError:
        return
    assert len(prefix) <= 512


@given(st.sampled_from(codings.PREFERENCE), st.binary(max_size=300))
def test_bytes_that_are_no_coding_at_all_are_refused_or_bounded(coding: str, body: bytes) -> None:
    try:
        decoded = codings.decode(body, coding, 1000)
    except codings.DecodeError:
        return
    assert len(decoded) <= 1000


@pytest.mark.parametrize("coding", codings.PREFERENCE)
def test_bytes_after_the_end_of_the_body_are_refused(coding: str) -> None:
    """Browsers differ on them (Chrome ignores what follows a gzip member, Firefox reads
    further members): the origin's own bytes are served instead of a guess."""
    with pytest.raises(codings.DecodeError):
        codings.decode(codings.encode(PAGE, coding) + b"\n<p>more</p>", coding, 1 << 20)


def test_a_zstd_body_of_several_frames_decodes_whole() -> None:
    """RFC 8878 section 3: encoders that flush per buffer write a frame each."""
    middle = len(PAGE) // 2
    skippable = (0x184D2A50).to_bytes(4, "little") + (3).to_bytes(4, "little") + b"abc"
    frames = zstd.compress(PAGE[:middle]) + skippable + zstd.compress(PAGE[middle:])
    assert codings.decode(frames, "zstd", len(PAGE)) == PAGE
    assert codings.decode_prefix(frames, "zstd", middle + 10) == PAGE[: middle + 10]
    with pytest.raises(codings.DecodeError, match="exceeds"):
        codings.decode(frames, "zstd", len(PAGE) - 1)


def test_a_zstd_frame_needing_a_window_larger_than_browsers_decode_is_refused() -> None:
    """RFC 9659 section 3: 8 MB at most. A larger window is memory each decoding would take."""
    page = PAGE * (9_000_000 // len(PAGE))

    def framed(window_log: int) -> bytes:
        options: dict[int, int] = {zstd.CompressionParameter.window_log: window_log}
        return zstd.compress(page, options=options)

    assert codings.decode(framed(23), "zstd", len(page)) == page
    with pytest.raises(codings.DecodeError, match="does not decode"):
        codings.decode(framed(24), "zstd", len(page))


@pytest.mark.parametrize("coding", codings.PREFERENCE)
def test_a_body_that_expands_past_the_limit_is_refused(coding: str) -> None:
    with pytest.raises(codings.DecodeError, match="exceeds"):
        codings.decode(codings.encode(PAGE, coding), coding, len(PAGE) - 1)


def test_a_reused_zstd_compressor_carries_nothing_from_one_page_to_the_next() -> None:
    codings.encode(b"<p>another page</p>" * 50, "zstd")
    encoded = codings.encode(PAGE, "zstd")
    assert encoded == zstd.compress(PAGE, codings.LEVELS["zstd"])
    assert codings.decode(encoded, "zstd", len(PAGE)) == PAGE


SKIPPABLE = (0x184D2A5F).to_bytes(4, "little") + (0).to_bytes(4, "little")  # empty, 8 bytes


def test_a_zstd_body_padded_with_more_frames_than_an_encoder_writes_is_refused() -> None:
    """1 MiB of empty skippable frames is valid zstd: read frame by frame, each from a copy of
    the rest, it cost 4 s; a body's frames are now counted, and read where they lie."""
    padded = zstd.compress(PAGE) + SKIPPABLE * (codings.MAX_ZSTD_FRAMES + 1)
    with pytest.raises(codings.DecodeError, match="frames"):
        codings.decode(padded, "zstd", 1 << 20)
    within = zstd.compress(PAGE) + SKIPPABLE * (codings.MAX_ZSTD_FRAMES - 2)
    assert codings.decode(within, "zstd", 1 << 20) == PAGE


def test_a_skippable_zstd_frame_cut_short_is_a_truncated_body() -> None:
    cut = zstd.compress(PAGE) + (0x184D2A50).to_bytes(4, "little") + (100).to_bytes(4, "little")
    with pytest.raises(codings.DecodeError, match="truncated"):
        codings.decode(cut + b"abc", "zstd", 1 << 20)
