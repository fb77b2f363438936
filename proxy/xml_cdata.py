"""CDATA sections of a page served as XHTML, which lol-html would read as markup.

In a page served as ``application/xhtml+xml`` a browser's XML parser reads a ``<![CDATA[``
section, to its first ``]]>``, as text. lol-html reads HTML, where a CDATA section is one
only in SVG or MathML: elsewhere ``<![CDATA[`` opens a bogus comment that ends at the first
``>``, and what follows is markup. A ``</body>`` in a code sample would take the beacon (shown
as text, never run), an ``<h1>`` in it an edit, a ``</script>`` in a script's CDATA would end
the script. So such a page is rewritten from a copy with each section replaced by a
placeholder (``hidden``), and each section's bytes are put back in the output (``restored``).

The placeholder, ``<?refract-cdata-TOKEN-N?>``, is what lol-html reads as nothing it could
match or end inside: a bogus comment ending at its own ``>`` in text, and text inside a
script, a style, a textarea, a comment or an attribute's value (it holds no ``-->``, quote or
``<`` but its first). TOKEN is drawn per process: a page cannot carry one by chance or on
purpose. An edit that removes the element holding a section removes its placeholder, so the
section with it.

Where a section starts is the XML parser's reading of the page: ``<![CDATA[`` inside a
comment or a processing instruction is their text, not a section (skipping them is one
linear pass of a regex over the page, made only for an XHTML page holding ``<![CDATA[``;
0.2 µs a comment, 1 µs a section: the pass looks at the rewrite's deadline as it goes).
"""

from __future__ import annotations

import re
import secrets

from refract.proxy import rewrite_time

_TOKEN = secrets.token_hex(8)
_OPEN = b"<![CDATA["
# What an XML parser reads as one piece of markup, and in which a "<![CDATA[" opens nothing:
# a comment, a processing instruction (the XML declaration among them), a CDATA section (the
# only one with a group); each to its end, or the page's end when it has none (so each search
# for an end is made once, and the pass stays linear).
_PIECES = re.compile(rb"<!--.*?(?:-->|\Z)|<\?.*?(?:\?>|\Z)|(<!\[CDATA\[.*?(?:\]\]>|\Z))", re.DOTALL)
# Pieces met between two looks at the deadline: 1 to 5 ms of them (a page of nothing but
# comments or sections has one every few bytes).
_CHECK_EVERY = 4096
_PLACEHOLDER = re.compile(rb"<\?refract-cdata-" + _TOKEN.encode() + rb"-(\d+)\?>")


def hidden(
    page: bytes, deadline: rewrite_time.Deadline | None = None
) -> tuple[bytes, tuple[bytes, ...]]:
    """``page`` with each CDATA section replaced by a placeholder, and the sections, in order
    (the page itself and none when it has no section)."""
    if _OPEN not in page:
        return page, ()
    sections: list[bytes] = []
    pieces: list[bytes] = []
    at = 0
    for count, found in enumerate(_PIECES.finditer(page), 1):
        if deadline is not None and count % _CHECK_EVERY == 0:
            deadline.check()
        if found[1] is None:
            continue  # a comment or a processing instruction
        pieces += [page[at : found.start()], _placeholder(len(sections))]
        sections.append(found[1])
        at = found.end()
    if not sections:
        return page, ()
    pieces.append(page[at:])
    return b"".join(pieces), tuple(sections)


def restored(output: bytes, sections: tuple[bytes, ...]) -> bytes:
    """``output`` (of a rewrite of ``hidden``'s copy) with each placeholder left in it replaced
    by its section's bytes."""
    if not sections:
        return output
    return _PLACEHOLDER.sub(lambda found: sections[int(found[1])], output)


def _placeholder(ordinal: int) -> bytes:
    return f"<?refract-cdata-{_TOKEN}-{ordinal}?>".encode("ascii")
