"""Can a page be rewritten byte-exactly? It depends on its character encoding.

The rewriter reads markup as bytes and inserts ASCII only (non-ASCII content is written as
character references), so any encoding in which the bytes of ``<``, ``>``, quotes and ASCII
letters always mean those characters is safe: UTF-8, windows-1252, the ISO-8859 family,
Shift_JIS, EUC-*, GBK, Big5... UTF-16/32, EBCDIC and the stateful ISO-2022 and UTF-7
encodings are not, and such pages pass through untouched.
"""

from __future__ import annotations

import codecs
import functools
import re

_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE
)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([^"';\s]+)""", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)).decode("ascii")
_STATEFUL = ("iso2022", "utf_7", "hz")
_PRESCAN_BYTES = 1024  # the HTML standard's limit for the <meta charset> prescan


def page_encoding(content_type: str | None, body: bytes) -> str:
    """The encoding label a browser would use: BOM, then HTTP header, then <meta>, then UTF-8."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    if content_type and (header := _HEADER_CHARSET.search(content_type)):
        return header[1]
    if meta := _META_CHARSET.search(body[:_PRESCAN_BYTES]):
        return meta[1].decode("ascii")
    return "utf-8"


@functools.lru_cache(maxsize=64)
def is_ascii_safe(label: str) -> bool:
    """True when ASCII bytes mean ASCII characters everywhere in this encoding."""
    try:
        codec = codecs.lookup(label)
    except LookupError:
        return False
    if any(codec.name.replace("-", "_").startswith(prefix) for prefix in _STATEFUL):
        return False
    try:
        return _PRINTABLE_ASCII.encode(codec.name) == _PRINTABLE_ASCII.encode("ascii")
    except UnicodeError:
        return False
