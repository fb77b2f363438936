"""Content codings: decode an origin page for rewriting, encode it again for the visitor."""

from __future__ import annotations

import math
import sys
import threading
import zlib
from typing import cast

import brotli
from isal import isal_zlib

# Exported (``as zstd``) for the tests and the codings bench: one place picks the module.
if sys.version_info >= (3, 14):
    from compression import zstd as zstd
else:
    from backports import zstd as zstd

_ISAL_ERROR = cast(type[Exception], isal_zlib.error)  # its stubs declare an instance
# The largest window a browser decodes (RFC 9659 section 3: 8 MB). zstd's own default is
# 128 MB, which a few bytes of frame header could make each decoding allocate.
_ZSTD_DECODING: dict[int, int] = {zstd.DecompressionParameter.window_log_max: 23}

# Levels for a hot path, chosen by bench/codings_bench.py (docs/performance.md, "Codings"):
# each coding's knee, the last level before a byte saved costs several times more CPU. On the
# 100 KB page: zstd 3 130 µs (4 takes as long for nothing, 5 takes 4x for 5 % less); brotli 2
# 290 µs (quality 5 takes 3.5x for 14 % less; 11 takes 100 ms). gzip and deflate go through
# ISA-L (isal), whose levels are 0-3: level 2 takes 83 µs (3 takes 3x for 3 % less), where
# the standard library's zlib took 427 µs at its level 2 for 2 % less, and 1,640 µs at 6.
LEVELS = {"gzip": 2, "deflate": 2, "br": 2, "zstd": 3}

# Server preference among codings a visitor weights equally: zstd first, then brotli, then
# gzip; "deflate" last (raw or zlib-wrapped depending on the client: RFC 9110 section
# 8.4.1.2). Through ISA-L gzip now costs the least CPU (83 µs against zstd's 130), but its
# pages leave 9 % larger (brotli's 7 % smaller than gzip's, for 3.5x the CPU), and bytes
# on a visitor's link cost more than the CPU saved here.
PREFERENCE = ("zstd", "br", "gzip", "deflate")
# A coding the visitor did not name, only accepted through "*": the oldest first, the one
# any client that writes "*" is likeliest to decode.
WILDCARD_PREFERENCE = ("gzip", "deflate", "br", "zstd")
_ALIASES = {"x-gzip": "gzip"}
_PREFIX_INPUT_STEP = 1024  # compressed bytes at a time when only a page's first bytes are wanted
_THREAD = threading.local()  # zstd compressors are reusable, but not from two threads at once


class DecodeError(Exception):
    """The body is not what its Content-Encoding says, or it expands past the limit."""


class TooLarge(DecodeError):
    """The body expands past the limit (a decompression bomb, or just too much)."""


def normalize(coding: str | None) -> str:
    """``"GZip "`` -> ``"gzip"``; an absent coding is ``"identity"``."""
    name = (coding or "identity").strip().lower() or "identity"
    return _ALIASES.get(name, name)


def is_supported(coding: str) -> bool:
    return coding == "identity" or coding in PREFERENCE


def decode(body: bytes, coding: str, limit: int, *, gzip_members: bool = False) -> bytes:
    """Decode ``body``; refuse to produce more than ``limit`` bytes (decompression bombs):
    ``TooLarge``. ``gzip_members``: a gzip body may hold several members, decoded one after
    the other (RFC 1952 section 2.2), within ``limit`` together."""
    try:
        if coding == "identity":
            decoded = body
        elif coding in ("gzip", "deflate"):
            decoded = _inflate(body, coding, limit, gzip_members and coding == "gzip")
        elif coding == "br":
            decoded = _unbrotli(body, limit)
        elif coding == "zstd":
            decoded = _unzstd(body, limit)
        else:
            raise DecodeError(f"unsupported content coding {coding!r}")
    except (_ISAL_ERROR, brotli.error, zstd.ZstdError) as error:
        raise DecodeError(f"{coding} body does not decode: {error}") from None
    if len(decoded) > limit:
        raise TooLarge(f"decoded body exceeds {limit} bytes")
    return decoded


def decode_prefix(body: bytes, coding: str, size: int) -> bytes:
    """The first ``size`` bytes of the decoded body (all of it if shorter): enough to tell
    what it is, for a fraction of decoding it whole."""
    try:
        if coding == "identity":
            return body[:size]
        if coding in ("gzip", "deflate"):
            # zlib, not ISA-L: zlib stops at the bytes asked for (4 µs for 512 bytes of the
            # 100 KB page), ISA-L decodes whole blocks first (30 µs).
            return zlib.decompressobj(_wbits(body, coding)).decompress(body, size)
        if coding == "br":
            return _unbrotli_prefix(body, size)
        if coding == "zstd":
            return _zstd_frames(body, size)[0]
    except (zlib.error, _ISAL_ERROR, brotli.error, zstd.ZstdError) as error:
        raise DecodeError(f"{coding} body does not decode: {error}") from None
    raise DecodeError(f"unsupported content coding {coding!r}")


def _wbits(body: bytes, coding: str) -> int:
    # gzip has a header; "deflate" is zlib-wrapped by the RFC but raw from some servers.
    if coding == "gzip":
        return 16 + isal_zlib.MAX_WBITS
    return isal_zlib.MAX_WBITS if body[:1] and (body[0] & 0x0F) == 8 else -isal_zlib.MAX_WBITS


def _inflate(body: bytes, coding: str, limit: int, members: bool) -> bytes:
    """At most ``limit + 1`` bytes of the body's first stream, or with ``members`` of every
    gzip member in turn."""
    parts: list[bytes] = []
    room = limit + 1
    rest = body
    while True:
        # ISA-L inflates the 100 KB page in about half zlib's time (bench/codings_bench.py).
        decompressor = isal_zlib.decompressobj(_wbits(rest, coding))
        try:
            part = decompressor.decompress(rest, room)
        except _ISAL_ERROR:
            if rest is body:
                raise  # the body itself does not decode
            raise _no_member(coding, rest) from None
        parts.append(part)
        room -= len(part)
        if room <= 0:
            return _joined(parts)
        if not decompressor.eof:
            raise (
                DecodeError(f"{coding} body is truncated")
                if rest is body
                else _no_member(coding, rest)
            )
        rest = decompressor.unused_data
        if not rest:
            return _joined(parts)
        if not members:
            # A second gzip member, or bytes after the end: Firefox reads further members,
            # Chrome ignores them. The origin's own bytes leave each browser to do as it does.
            raise DecodeError(f"{coding} body has {len(rest)} bytes after its end")


def _joined(parts: list[bytes]) -> bytes:
    """The parts as one: a page's one member as it is, not copied (the miss path's 100 KB)."""
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _no_member(coding: str, rest: bytes) -> DecodeError:
    return DecodeError(
        f"{coding} body has {len(rest)} bytes after its end that are no whole member"
    )


def _unbrotli(body: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    decoded: bytes = decompressor.process(body, output_buffer_limit=limit + 1)
    if len(decoded) <= limit and not decompressor.is_finished():
        raise DecodeError("br body is truncated")
    return decoded


def _unbrotli_prefix(body: bytes, size: int) -> bytes:
    """brotli decodes all the input it is given before heeding its output limit (the whole
    100 KB page, 80 µs, for 512 bytes): it gets the input a step at a time instead."""
    decompressor = brotli.Decompressor()
    decoded = b""
    for start in range(0, len(body), _PREFIX_INPUT_STEP):
        step = body[start : start + _PREFIX_INPUT_STEP]
        decoded += decompressor.process(step, output_buffer_limit=size - len(decoded))
        if len(decoded) >= size or decompressor.is_finished():
            break
    return decoded[:size]


def _unzstd(body: bytes, limit: int) -> bytes:
    decoded, complete = _zstd_frames(body, limit + 1)
    if not complete and len(decoded) <= limit:
        raise DecodeError("zstd body is truncated")
    return decoded


# More frames than this in one body is no encoder's output but padding (an empty skippable
# frame is 8 bytes): refused before it costs a frame's overhead 100,000 times.
MAX_ZSTD_FRAMES = 10_000


def _zstd_frames(body: bytes, size: int) -> tuple[bytes, bool]:
    """Up to ``size`` bytes of every frame in turn, and whether the last one ended: a body
    may hold several (RFC 8878 section 3; encoders that flush per buffer write one each),
    skippable frames among them. Each frame is read where it lies (a view of the body, its
    size from its header), never from a copy of the rest: 1 MiB of empty skippable frames
    took 4 s when every frame copied what followed it."""
    parts: list[bytes] = []
    wanted = size
    view = memoryview(body)
    at = 0
    for _ in range(MAX_ZSTD_FRAMES):
        if _skippable(view, at) and at + 8 <= len(body):
            at += 8 + int.from_bytes(view[at + 4 : at + 8], "little")  # it holds no content
            if at < len(body):
                continue
            return b"".join(parts), at == len(body)  # past the end: the frame was cut short
        try:
            length = zstd.get_frame_size(view[at:])
        except zstd.ZstdError:  # a frame cut short: decoded as far as it goes
            length = len(body) - at
        decompressor = zstd.ZstdDecompressor(options=_ZSTD_DECODING)
        part = decompressor.decompress(view[at : at + length], wanted)
        parts.append(part)
        wanted -= len(part)
        at += length
        if not decompressor.eof or at >= len(body) or wanted <= 0:
            return b"".join(parts), decompressor.eof and at >= len(body)
    raise DecodeError(f"zstd body has more than {MAX_ZSTD_FRAMES} frames")


def _skippable(view: memoryview, at: int) -> bool:
    """Whether the frame at ``at`` is a skippable one (magic 0x184D2A5?, little-endian)."""
    return bytes(view[at + 1 : at + 4]) == b"\x2a\x4d\x18" and view[at] & 0xF0 == 0x50


def encode(body: bytes, coding: str) -> bytes:
    """``body`` in ``coding`` at the level this proxy uses for it (``LEVELS``)."""
    return encode_at(body, coding, LEVELS.get(coding, 0))


def encode_at(body: bytes, coding: str, level: int) -> bytes:
    """``body`` in ``coding`` at ``level`` (ISA-L's level 0-3 for gzip and deflate, brotli's
    quality, zstd's level)."""
    if coding == "identity":
        return body
    if coding == "gzip":
        return isal_zlib.compress(body, level, wbits=16 + isal_zlib.MAX_WBITS)
    if coding == "deflate":
        return isal_zlib.compress(body, level)
    if coding == "br":
        return bytes(brotli.compress(body, quality=level, mode=brotli.MODE_TEXT))
    if coding == "zstd":
        return _zstd_compressor(level).compress(body, mode=zstd.ZstdCompressor.FLUSH_FRAME)
    raise ValueError(f"unsupported content coding {coding!r}")


def _zstd_compressor(level: int) -> zstd.ZstdCompressor:
    """A compressor per thread and level, reused (each frame it ends leaves nothing behind):
    making one costs 8 µs, 6 % of compressing 100 KB and a third of 10 KB. Its window at the
    levels used here is at most 2 MB, within the 8 MB a browser decodes (RFC 9659 section 3)."""
    compressors: dict[int, zstd.ZstdCompressor] = _THREAD.__dict__.setdefault("zstd", {})
    compressor = compressors.get(level)
    if compressor is None:
        compressor = compressors[level] = zstd.ZstdCompressor(level=level)
    return compressor


def accepted_codings(accept_encoding: str | None) -> dict[str, float]:
    """Parse Accept-Encoding (RFC 9110 section 12.5.3) into coding -> q."""
    accepted: dict[str, float] = {}
    for item in (accept_encoding or "").split(","):
        name, _, params = item.partition(";")
        name = normalize(name)
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
                # a visitor's number: NaN, infinities and out-of-range weights mean nothing
                q = min(max(q, 0.0), 1.0) if math.isfinite(q) else 0.0
        accepted[name] = q
    return accepted


def choose_coding(accept_encoding: str | None, origin_coding: str) -> str:
    """The coding for a rewritten page: identity for an uncompressed origin (Refract does not
    add compression the origin chose not to use); for a compressed one, which is encoded again
    whatever it was, the coding the visitor weights highest (RFC 9110 section 12.5.3: q=0
    refuses, ``*`` stands for the codings not named), ties going to the cheapest
    (``PREFERENCE``; codings matched only by ``*`` in ``WILDCARD_PREFERENCE``'s order)."""
    if origin_coding == "identity":
        return "identity"
    accepted = accepted_codings(accept_encoding)
    wildcard = accepted.get("*", 0.0)

    def rank(coding: str) -> tuple[float, bool, int]:
        named = coding in accepted
        order = PREFERENCE if named else WILDCARD_PREFERENCE
        return accepted[coding] if named else wildcard, named, -order.index(coding)

    best = max(PREFERENCE, key=rank)
    return best if rank(best)[0] > 0 else "identity"
