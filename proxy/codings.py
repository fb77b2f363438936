"""Content codings: decode an origin page for rewriting, encode it again for the visitor."""

from __future__ import annotations

import io
import math
import threading
import zlib

import brotli
import zstandard

# Levels for a hot path, chosen by bench/codings_bench.py (docs/performance.md, "Codings"):
# each coding's knee, the last level before a byte saved costs several times more CPU. On the
# 100 KB page: zstd 3 140 µs (4 takes as long for nothing, 5 takes 3x for 5 % less); brotli 2
# 340 µs (quality 5 takes 3x for 14 % less; 11 takes 100 ms); gzip 2 430 µs (6 takes 3.3x for
# 14 % less). Against brotli 5 and gzip 6, pages leave about 16 % larger for 70 % less CPU.
LEVELS = {"gzip": 2, "deflate": 2, "br": 2, "zstd": 3}

# Server preference among codings a visitor weights equally, cheapest first: zstd costs
# the least CPU for its size, then brotli, then gzip; "deflate" last (raw or zlib-wrapped
# depending on the client: RFC 9110 section 8.4.1.2). bench/codings_bench.py measures them.
PREFERENCE = ("zstd", "br", "gzip", "deflate")
# A coding the visitor did not name, only accepted through "*": the oldest first, the one
# any client that writes "*" is likeliest to decode.
WILDCARD_PREFERENCE = ("gzip", "deflate", "br", "zstd")
_ALIASES = {"x-gzip": "gzip"}
_THREAD = threading.local()  # zstd compressors are reusable, but not from two threads at once


class DecodeError(Exception):
    """The body is not what its Content-Encoding says, or it expands past the limit."""


def normalize(coding: str | None) -> str:
    """``"GZip "`` -> ``"gzip"``; an absent coding is ``"identity"``."""
    name = (coding or "identity").strip().lower() or "identity"
    return _ALIASES.get(name, name)


def is_supported(coding: str) -> bool:
    return coding == "identity" or coding in PREFERENCE


def decode(body: bytes, coding: str, limit: int) -> bytes:
    """Decode ``body``; refuse to produce more than ``limit`` bytes (decompression bombs)."""
    try:
        if coding == "identity":
            decoded = body
        elif coding in ("gzip", "deflate"):
            decoded = _inflate(body, coding, limit)
        elif coding == "br":
            decoded = _unbrotli(body, limit)
        elif coding == "zstd":
            decoded = _unzstd(body, limit)
        else:
            raise DecodeError(f"unsupported content coding {coding!r}")
    except (zlib.error, brotli.error, zstandard.ZstdError) as error:
        raise DecodeError(f"{coding} body does not decode: {error}") from None
    if len(decoded) > limit:
        raise DecodeError(f"decoded body exceeds {limit} bytes")
    return decoded


def decode_prefix(body: bytes, coding: str, size: int) -> bytes:
    """The first ``size`` bytes of the decoded body (all of it if shorter): enough to tell
    what it is, for a fraction of decoding it whole."""
    try:
        if coding == "identity":
            return body[:size]
        if coding in ("gzip", "deflate"):
            return zlib.decompressobj(_wbits(body, coding)).decompress(body, size)
        if coding == "br":
            return bytes(brotli.Decompressor().process(body, output_buffer_limit=size))[:size]
        if coding == "zstd":
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
                return bytes(reader.read(size))
    except (zlib.error, brotli.error, zstandard.ZstdError) as error:
        raise DecodeError(f"{coding} body does not decode: {error}") from None
    raise DecodeError(f"unsupported content coding {coding!r}")


def _wbits(body: bytes, coding: str) -> int:
    # gzip has a header; "deflate" is zlib-wrapped by the RFC but raw from some servers.
    if coding == "gzip":
        return 16 + zlib.MAX_WBITS
    return zlib.MAX_WBITS if body[:1] and (body[0] & 0x0F) == 8 else -zlib.MAX_WBITS


def _inflate(body: bytes, coding: str, limit: int) -> bytes:
    decompressor = zlib.decompressobj(_wbits(body, coding))
    decoded = decompressor.decompress(body, limit + 1)
    if not decompressor.eof and not decompressor.unconsumed_tail and len(decoded) <= limit:
        raise DecodeError(f"{coding} body is truncated")
    return decoded


def _unbrotli(body: bytes, limit: int) -> bytes:
    decompressor = brotli.Decompressor()
    decoded: bytes = decompressor.process(body, output_buffer_limit=limit + 1)
    if len(decoded) <= limit and not decompressor.is_finished():
        raise DecodeError("br body is truncated")
    return decoded


def _unzstd(body: bytes, limit: int) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
        return bytes(reader.read(limit + 1))


def encode(body: bytes, coding: str) -> bytes:
    """``body`` in ``coding`` at the level this proxy uses for it (``LEVELS``)."""
    return encode_at(body, coding, LEVELS.get(coding, 0))


def encode_at(body: bytes, coding: str, level: int) -> bytes:
    """``body`` in ``coding`` at ``level`` (zlib's level, brotli's quality, zstd's level)."""
    if coding == "identity":
        return body
    if coding == "gzip":
        compressor = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return compressor.compress(body) + compressor.flush()
    if coding == "deflate":
        return zlib.compress(body, level)
    if coding == "br":
        return bytes(brotli.compress(body, quality=level, mode=brotli.MODE_TEXT))
    if coding == "zstd":
        return bytes(_zstd_compressor(level).compress(body))
    raise ValueError(f"unsupported content coding {coding!r}")


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """A compressor per thread and level, reused: making one costs 17 µs, a tenth of
    compressing 100 KB and more than a third of 10 KB. Its window at the levels used here is
    at most 2 MB, within the 8 MB a browser decodes (RFC 9659 section 3)."""
    compressors: dict[int, zstandard.ZstdCompressor] = _THREAD.__dict__.setdefault("zstd", {})
    compressor = compressors.get(level)
    if compressor is None:
        compressor = compressors[level] = zstandard.ZstdCompressor(level=level)
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
