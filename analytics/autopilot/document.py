"""One page, parsed once, as the detectors read it.

selectolax (lexbor) parses the page as a browser would; one walk then lists its elements in
document order, each with its position among the elements of its tag (what a selector found
for it is verified against, in lol-html's view of the same bytes: selectors.py), whether a
visitor sees it, and its visible text: the text of scripts, styles, templates and hidden
elements is never part of it, so a string in a script that looks like a headline stays a
string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

from selectolax.lexbor import LexborHTMLParser, LexborNode

# The proxy rewrites pages up to `max_rewrite_bytes` (4 MiB by default): a candidate on a
# larger page could never be changed, so such a page is not analysed.
MAX_PAGE_BYTES = 4 * 1024 * 1024
# Bounds the walk on a hostile page; a real one has a few thousand elements.
MAX_ELEMENTS = 60_000

# Elements whose content is never rendered as the page's text, or is not markup to lol-html
# (noscript's content is text to a parser that runs scripts, as lol-html and browsers do).
MAX_ANCESTORS = 48

_NOT_RENDERED = frozenset({"script", "style", "noscript", "template", "head", "title", "iframe"})
_NO_TEXT = frozenset({"svg", "math", "select", "textarea"})
_INLINE = frozenset(
    {
        "a",
        "abbr",
        "b",
        "bdi",
        "bdo",
        "cite",
        "code",
        "data",
        "em",
        "i",
        "kbd",
        "mark",
        "q",
        "s",
        "small",
        "span",
        "strong",
        "sub",
        "sup",
        "time",
        "u",
        "var",
        "wbr",
        "font",
        "del",
        "ins",
    }
)
_HIDDEN_CLASSES = frozenset(
    {"sr-only", "visually-hidden", "screen-reader-text", "visuallyhidden", "d-none", "is-hidden"}
)
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
# Tailwind's `hidden` is display:none unless a breakpoint shows the element again (md:block).
_SHOWN_AT_BREAKPOINT = re.compile(r"^[a-z0-9]+:(block|flex|grid|inline|inline-block|table)$")
_SPACE = re.compile(r"\s+")


@dataclass(eq=False)
class Element:
    """One element of the page. ``ordinal`` is its position among the elements of its tag in
    document order (0 for the first ``<a>``), which lol-html counts alike."""

    node: LexborNode
    tag: str
    ordinal: int
    index: int
    parent: Element | None
    attributes: dict[str, str]
    hidden: bool
    children: list[Element] = field(default_factory=list)
    text_start: int = 0
    text_end: int = -1
    end: int = -1  # one past the index of its last descendant

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.attributes.get("class", "").split())

    @cached_property
    def ancestors(self) -> list[Element]:
        """Parent first, up to the root or ``MAX_ANCESTORS`` up: whatever lies further out
        is page structure, not what an element is (and a page of 10,000 nested divs would
        make every question about an element cost 10,000 steps)."""
        found: list[Element] = []
        parent = self.parent
        while parent is not None and len(found) < MAX_ANCESTORS:
            found.append(parent)
            parent = parent.parent
        return found

    def within(self, *tags: str) -> bool:
        return any(ancestor.tag in tags for ancestor in self.ancestors)

    def contains(self, other: Element) -> bool:
        """Whether ``other`` is this element or one of its descendants."""
        return self.index <= other.index < self.end

    @cached_property
    def hints(self) -> str:
        """Its id, classes, role and labels in lowercase: the words authors name things by."""
        names = ("id", "class", "role", "aria-label", "name", "itemprop", "itemtype")
        words = [self.attributes.get(name, "") for name in names]
        words += [f"{key} {value}" for key, value in self.attributes.items() if key[:5] == "data-"]
        return " ".join(words).lower()


@dataclass(eq=False)
class Document:
    """A parsed page: its bytes, its elements in document order and their visible text."""

    page: bytes
    elements: list[Element]
    _texts: list[str]

    def text(self, element: Element) -> str:
        """What a visitor reads in ``element``, whitespace collapsed."""
        return _SPACE.sub(" ", "".join(self._texts[element.text_start : element.text_end])).strip()

    def visible(self, *tags: str) -> list[Element]:
        wanted = set(tags)
        return [e for e in self.elements if e.tag in wanted and not e.hidden]

    @cached_property
    def blocks(self) -> list[str]:
        """The page's visible text, block by block (a heading, a paragraph, a cell...)."""
        lines = (_SPACE.sub(" ", line).strip() for line in "".join(self._texts).split("\n"))
        return [line for line in lines if line]

    def following(self, element: Element, limit: int) -> list[Element]:
        """Up to ``limit`` elements after ``element`` and outside it, in document order."""
        return self.elements[element.end : element.end + limit]


def decode(page: bytes) -> str:
    """The page as text: UTF-8 (what nearly every page is), else windows-1252, which decodes
    any byte; the detectors read words and numbers, never write bytes back."""
    try:
        return page.decode("utf-8")
    except UnicodeDecodeError:
        return page.decode("cp1252", errors="replace")


def parse(page: bytes) -> Document:
    """The page's elements and visible text (at most ``MAX_ELEMENTS`` elements)."""
    tree = LexborHTMLParser(decode(page))
    elements: list[Element] = []
    texts: list[str] = []
    counts: dict[str, int] = {}
    root = tree.root
    if root is None:
        return Document(page, elements, texts)
    # An explicit stack: a page of 10,000 nested divs must not reach Python's recursion limit.
    stack: list[tuple[LexborNode, Element | None, bool] | Element] = [(root, None, False)]
    while stack and len(elements) < MAX_ELEMENTS:
        item = stack.pop()
        if isinstance(item, Element):  # leaving it: its text ends here
            if item.tag not in _INLINE:
                texts.append("\n")
            item.text_end = len(texts)
            item.end = len(elements)
            continue
        node, parent, hidden = item
        if node.is_text_node:
            if not hidden:
                texts.append(node.text_content or "")
            continue
        if not node.is_element_node:
            continue
        tag = node.tag or ""
        attributes = {key: value or "" for key, value in node.attributes.items()}
        ordinal = counts.get(tag, 0)
        counts[tag] = ordinal + 1
        element = Element(
            node,
            tag,
            ordinal,
            len(elements),
            parent,
            attributes,
            hidden or _hidden(tag, attributes),
            text_start=len(texts),
        )
        elements.append(element)
        if parent is not None:
            parent.children.append(element)
        if tag not in _INLINE:
            texts.append("\n")  # a block's edge: words on either side never run together
        stack.append(element)
        if tag == "template":  # its content is elements to lol-html, counted as it counts them
            _count_template(node.html or "", counts)
        if tag in _NOT_RENDERED:
            continue  # its content is no text to a visitor (nor, but for templates, markup)
        children = []
        child = node.child
        while child is not None:
            children.append(child)
            child = child.next
        child_hidden = element.hidden or tag in _NO_TEXT
        stack.extend((child, element, child_hidden) for child in reversed(children))
    for element in elements:  # a walk cut short by MAX_ELEMENTS leaves some open
        if element.end < 0:
            element.text_end, element.end = len(texts), len(elements)
    return Document(page, elements, texts)


def _count_template(markup: str, counts: dict[str, int], depth: int = 0) -> None:
    """Adds the elements inside a template's markup to ``counts`` (lexbor keeps a template's
    content out of the document; lol-html, which does not build one, sees its tags)."""
    inner = markup[markup.find(">") + 1 : markup.rfind("</")]
    root = LexborHTMLParser(inner).root
    if root is None or depth > 8:
        return
    for node in root.traverse(include_text=False):
        tag = node.tag or ""
        if tag in ("html", "head", "body") or not node.is_element_node:
            continue
        counts[tag] = counts.get(tag, 0) + 1
        if tag == "template":
            _count_template(node.html or "", counts, depth + 1)


def _hidden(tag: str, attributes: dict[str, str]) -> bool:
    if tag in _NOT_RENDERED or "hidden" in attributes:
        return True
    if attributes.get("aria-hidden", "").lower() == "true":
        return True
    if _HIDDEN_STYLE.search(attributes.get("style", "")):
        return True
    classes = attributes.get("class", "").split()
    if _HIDDEN_CLASSES.intersection(classes):
        return True
    if tag == "dialog" and "open" not in attributes:
        return True
    return "hidden" in classes and not any(_SHOWN_AT_BREAKPOINT.match(name) for name in classes)
