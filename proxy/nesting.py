"""How deeply a page nests its elements, as lol-html's selector matching sees it.

lol-html matches a descendant combinator by trying every open ancestor: its time grows as
the page's depth to the power of a selector's descendant combinators (rules/markup.py
allows two), and the rewrite, one call that holds the event loop, cannot be stopped inside
a chunk. So an edit whose selector has two is left out of a page nested deeper than
``MAX_DEPTH`` (a real page nests a few dozen deep, and browsers stop nesting at 512), and the
page is counted (``refract_fail_open_total{stage="nesting"}``).

The depth is read from the bytes as lol-html keeps its stack: a start tag opens an element
unless it is void or written self-closed, an end tag closes up to the open element of its
name (a page leaving ``<li>`` or ``<p>`` open nests deeper to lol-html than to a browser,
and costs lol-html the same), comments and raw text (``<script>``, ``<style>``) open none.
It is read once per page (remembered by digest; about 3 ms for 100 KB of 2,800 tags), only
for a plan with such an edit, and not at all for a page with fewer tags than ``MAX_DEPTH``.
"""

from __future__ import annotations

import re

from refract.proxy.lru import ByteBoundedLRU
from refract.proxy.rewrite_cache import page_key
from refract.rules.markup import VOID_ELEMENTS

_TOKENS = re.compile(
    rb"<!--.*?(?:-->|\Z)"
    rb"|<(script|style|textarea|title|xmp|iframe|noembed|noframes)\b.*?(?:</\1[^>]*>|\Z)"
    rb"|<(/?)([A-Za-z][^\t\n\f\r />]*)[^>]*?(/?)>",
    re.DOTALL | re.IGNORECASE,
)
_VOID = frozenset(name.encode("ascii") for name in VOID_ELEMENTS)
MAX_DEPTH = 256
# Each page's depth (up to one past MAX_DEPTH) by its (length, digest).
_DEPTHS: ByteBoundedLRU[tuple[int, bytes], int] = ByteBoundedLRU(4096)


def too_deep(page: bytes) -> bool:
    """Whether ``page`` nests deeper than ``MAX_DEPTH`` elements."""
    if page.count(b"<") <= MAX_DEPTH:
        return False  # too few tags to nest that deep
    key = page_key(page)
    depth = _DEPTHS.get(key)
    if depth is None:
        depth = depth_of(page)
        _DEPTHS.put(key, depth, 1)
    return depth > MAX_DEPTH


def depth_of(page: bytes) -> int:
    """The most elements open at once, read up to one past ``MAX_DEPTH``."""
    stack: list[bytes] = []
    open_by_name: dict[bytes, int] = {}
    deepest = 0
    for token in _TOKENS.finditer(page):
        name = token[3]
        if name is None:
            continue  # a comment, or an element of raw text with its end
        name = name.lower()
        if token[2]:
            if open_by_name.get(name):
                while stack:
                    closed = stack.pop()
                    open_by_name[closed] -= 1
                    if closed == name:
                        break
        elif name not in _VOID and not token[4]:
            stack.append(name)
            open_by_name[name] = open_by_name.get(name, 0) + 1
            deepest = max(deepest, len(stack))
            if deepest > MAX_DEPTH:
                break
    return deepest
