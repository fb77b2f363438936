"""Is a body labelled HTML really text? The first bytes say, as a browser would read them.

Origins label downloads ``text/html`` more often than one would think (PHP's
``default_mimetype``, frameworks' fallbacks): a ZIP, a PNG, a PDF. Rewriting one corrupts it,
and a page's cookies on it would spoil its caching. Browsers decide the same question with the
WHATWG MIME Sniffing Standard (https://mimesniff.spec.whatwg.org/), and so does this module:

- section 7.2, "rules for distinguishing if a resource is text or binary": a byte order mark
  means text; otherwise a *binary data byte* (0x00-0x08, 0x0B, 0x0E-0x1A, 0x1C-0x1F) in the
  resource header means binary;
- section 7.1's table of signatures of non-text types that may open with printable bytes
  (PDF, PostScript, GIF, and the image, archive and font signatures, for completeness).

Only the resource header, the first ``HEADER_BYTES`` bytes, is ever looked at.
"""

from __future__ import annotations

import re

HEADER_BYTES = 1445  # the standard's "resource header" length (section 5.2)

_BYTE_ORDER_MARKS = (b"\xfe\xff", b"\xff\xfe", b"\xef\xbb\xbf")
_BINARY_DATA_BYTE = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")
# Section 7.1 (mimesniff "identifying a resource with an unknown MIME type"), the entries
# whose type is not text: a prefix each (the standard's masks are all-ones for these). BMP's
# "BM" is left out: a text page may begin so, and a real bitmap has binary bytes right after.
_BINARY_SIGNATURES = (
    b"%PDF-",  # application/pdf
    b"%!PS-Adobe-",  # application/postscript
    b"GIF87a",  # image/gif
    b"GIF89a",
    b"\x89PNG\r\n\x1a\n",  # image/png
    b"\xff\xd8\xff",  # image/jpeg
    b"\x00\x00\x01\x00",  # image/x-icon
    b"PK\x03\x04",  # application/zip
    b"\x1f\x8b\x08",  # application/x-gzip
    b"Rar!\x1a\x07",  # application/x-rar-compressed
    b"wOFF",  # font/woff
    b"wOF2",  # font/woff2
    b"OggS\x00",  # application/ogg
)


_LEADING_WHITESPACE = b" \t\n\r\x0c"
# What may come before a document's first tag: whitespace, comments, and processing
# instructions (``<?xml version="1.0"?>``: HTML reads one as a bogus comment ending at ``>``).
_DOCUMENT_PROLOGUE = re.compile(rb"(?:[ \t\n\r\x0c]++|<!--(?:[^-]|-(?!->))*+-->|<\?[^>]*+>)*+")
# A doctype (``<!doctype`` and anything, as browsers read it: ``<!DOCTYPEhtml>`` too), or an
# <html>, <head> or <body> tag (the first two may be omitted, and so may the doctype).
_DOCUMENT_TAG = re.compile(rb"<!doctype|<(?:html|head|body)[ \t\n\r\x0c/>]", re.IGNORECASE)
_DOCUMENT_TAGS = (b"<!doctype", b"<html", b"<head", b"<body")


def starts_as_markup(header: bytes) -> bool:
    """True when ``header`` (a text body's first bytes, decoded) opens with markup (``<``,
    after a UTF-8 byte order mark and whitespace) as every page does; JSON (PHP labels it
    text/html by default), plain text and an empty body do not. A UTF-16 body is left to the
    charset check, which never rewrites it."""
    if header.startswith(_BYTE_ORDER_MARKS[:2]):
        return True
    return header.removeprefix(_BYTE_ORDER_MARKS[2]).lstrip(_LEADING_WHITESPACE)[:1] == b"<"


def opens_a_document(header: bytes) -> bool:
    """True when ``header`` (a page's first bytes, decoded) opens a whole document: a doctype,
    an ``<html>``, ``<head>`` or ``<body>`` after a byte order mark, whitespace, comments and
    processing instructions (an XML declaration), as a page a browser navigates to does; a
    fragment a script fetches to put into a page (``<tr>...``, ``<div>``, ``<title>``) does
    not. Bytes that end before telling (a long comment first) are taken for a document."""
    header = header.removeprefix(_BYTE_ORDER_MARKS[2])
    prologue = _DOCUMENT_PROLOGUE.match(header)
    rest = header[prologue.end() :] if prologue else header
    cut_short = rest.lower()
    if rest.startswith((b"<!--", b"<?")) or any(
        tag.startswith(cut_short) for tag in _DOCUMENT_TAGS
    ):
        return True
    return _DOCUMENT_TAG.match(rest) is not None


def is_text(header: bytes) -> bool:
    """True when ``header`` (a body's first bytes, decoded) is text, as a browser would judge."""
    header = header[:HEADER_BYTES]
    if header.startswith(_BYTE_ORDER_MARKS):
        return True
    if header.startswith(_BINARY_SIGNATURES):
        return False
    return _BINARY_DATA_BYTE.search(header) is None
