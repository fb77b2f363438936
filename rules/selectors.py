"""Selectors read as a CSS parser reads them: one home for what rule checks and the rewriter
need to know of a selector's shape (its compounds, combinators and subjects), without
running it."""

from __future__ import annotations

import re
from functools import lru_cache

# One piece of a selector: an escape (a hex one takes a space with it), a string, a character.
_SELECTOR_PIECE = re.compile(
    r"""\\(?:[0-9a-fA-F]{1,6}[ \t\n\r\f]?|.)|"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|.""",
    re.DOTALL,
)
_IDENT = r"(?:[-\w]|[^\x00-\x7f]|\\[0-9a-fA-F]{1,6}[ \t\n\r\f]?|\\[^\n\r\f0-9a-fA-F])+"
_SUBJECT_TYPE = re.compile(rf"(?:(?:\*|{_IDENT})?\|)?({_IDENT})")
_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\n\r\f]?|(.))", re.DOTALL)
_COMPOUND_ENDS = frozenset(", \t\n\r\f>+~")  # a comma, CSS's whitespace and combinators


@lru_cache(maxsize=1024)
def selector_subjects(selector: str) -> frozenset[str]:
    """The element names (lowercase) that the elements ``selector`` matches must have, one
    per selector of its list; "" for one that may have any name (``*``, ``#id``, ``.c``)."""
    names = set()
    for compound in _subject_compounds(selector):
        typed = _SUBJECT_TYPE.match(compound)
        names.add(_unescape(typed[1]).lower() if typed else "")
    return frozenset(names)


def _subject_compounds(selector: str) -> list[str]:
    """The last compound selector of each selector of a list (what it matches)."""
    return [chain[-1][0] if chain else "" for chain in compound_chains(selector)]


Chain = list[tuple[str, str]]


def compound_chains(selector: str) -> list[Chain]:
    """Each selector of a list as its compound selectors, each with the combinator after it
    (" " for a descendant, ">", "+" or "~"; "" after the last), read past escapes, strings,
    brackets and parentheses as a CSS parser does."""
    chains: list[Chain] = []
    chain: Chain = []
    depth, compound, combinator = 0, "", ""
    for piece in _SELECTOR_PIECE.finditer(selector):
        text = piece[0]
        depth += (text in "([") - (text in ")]")
        if depth or text in ")]" or text not in _COMPOUND_ENDS:
            if not compound and chain:  # the first piece after a combinator
                chain[-1] = (chain[-1][0], combinator)
            compound += text
            continue
        if compound:
            chain.append((compound, ""))
            compound, combinator = "", ""
        if text == ",":
            chains.append(chain)
            chain, combinator = [], ""
        elif text in ">+~":
            combinator = text
        elif not combinator:
            combinator = " "  # whitespace alone: a descendant combinator
    if compound:
        chain.append((compound, ""))
    chains.append(chain)
    return chains


def _unescape(name: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], name)


# A selector with more descendant combinators makes lol-html's matching time grow as the
# page's nesting depth to the power of their number (rules/markup.py refuses it). Of those
# allowed, two cost the depth's cube: the proxy leaves such an edit out of a page nested too
# deep (proxy/nesting.py). One costs its square, a second only at depths no page reaches
# (20,000 nested <b> took 1.5 s), so it is not read for.
MAX_DESCENDANT_COMBINATORS = 2


@lru_cache(maxsize=1024)
def descendant_combinators(selector: str) -> int:
    """The most descendant combinators in one selector of ``selector``'s list."""
    return max(
        (sum(combinator == " " for _, combinator in chain) for chain in compound_chains(selector)),
        default=0,
    )
