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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from selectolax.lexbor import LexborHTMLParser, LexborNode

# The proxy rewrites pages up to `max_rewrite_bytes` (4 MiB by default): a candidate on a
# larger page could never be changed, so such a page is not analysed.
MAX_PAGE_BYTES = 4 * 1024 * 1024
# Bounds the walk on a hostile page; a real one has a few thousand elements.
MAX_ELEMENTS = 60_000
# Pages nested deeper are not parsed: lexbor's tree building is quadratic in the nesting
# depth (120,000 nested divs take over a minute), a real page is a few dozen deep, and Blink
# stops nesting at 512 too. Start tags are bounded for the same reason (the pre-scan and the
# parse are linear in them, outside the detectors' budget): a real page has a few thousand.
MAX_DEPTH = 512
MAX_START_TAGS = 4 * MAX_ELEMENTS

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
# The budget is read every this many elements or tags of a loop over the whole page.
CHECK_EVERY = 1024


class TooSlowError(Exception):
    """The page's analysis ran past its budget (a hostile or pathological page)."""


class Budget:
    """Seconds of work a page's analysis may take, read from ``clock`` (injectable: the tests
    drive it); every loop over the page's elements or tags calls ``check``."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._deadline = clock() + seconds
        self.checks = 0

    def check(self) -> None:
        """Raises TooSlowError once the budget is spent."""
        self.checks += 1
        if self._clock() > self._deadline:
            raise TooSlowError


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


# --- the pre-scan: how deep a page nests, read before lexbor builds anything -----------------


def _tags(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


_VOID = _tags(
    "area base basefont bgsound br col embed frame hr image img input keygen link meta param"
    " source track wbr"
)
# Their content is text to the tokenizer (outside svg and math), up to their end tag.
_RAW_TEXT = _tags("script style xmp iframe noembed noframes textarea title")
_FOREIGN = frozenset({"svg", "math"})
# The tree builder's "special" elements: an end tag of another element stops at one of them.
_SPECIAL = _tags(
    "address applet area article aside base basefont bgsound blockquote body br button caption"
    " center col colgroup dd details dir div dl dt embed fieldset figcaption figure footer form"
    " frame frameset h1 h2 h3 h4 h5 h6 head header hgroup hr html iframe img input keygen li"
    " link listing main marquee menu meta nav noembed noframes noscript object ol p param"
    " plaintext pre script search section select source style summary table tbody td template"
    " textarea tfoot th thead title tr track ul wbr xmp"
)
_SCOPE = _tags(
    "applet caption html table td th marquee object template svg math foreignobject desc mi mo"
    " mn ms mtext annotation-xml"
)
_BUTTON_SCOPE = _SCOPE | {"button"}
_TABLE_SCOPE = frozenset({"html", "table", "template"})
_HEADING_TAGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_LIST_ITEM_STOPS = _SPECIAL - {"address", "div", "p"}
# Start tags that close an open <p> (the tree builder's "close a p element in button scope").
_CLOSES_P = _HEADING_TAGS | _tags(
    "address article aside blockquote center details dialog dir div dl fieldset figcaption"
    " figure footer form header hgroup hr listing main menu nav ol p plaintext pre search"
    " section summary table ul xmp li dd dt"
)
# A walk down the open elements to the one a tag closes stops after this many: further down is
# not how real pages nest, and giving up only errs on the deep side.
_MAX_WALK = 12
_TOKEN = re.compile(rb"<(/?)([A-Za-z][^\t\n\f\r />]*)|<!--")
# The rest of a tag up to its ">": a quote opens a value only after "=" (as the tokenizer has it)
_TAG_REST = re.compile(rb"(?:[^>=]++|=[\t\n\f\r ]*+\"[^\"]*+\"|=[\t\n\f\r ]*+'[^']*+'|=)*+>")
_COMMENT_END = re.compile(rb"-->|--!>")


class _OpenElements:
    """The pre-scan's stack of open elements (names only), with a count per name so that a
    tag whose element is not open costs no walk."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.open: dict[str, int] = {}
        self.foreign = 0  # svg and math elements open: "/>" closes, no raw text

    def push(self, name: str) -> None:
        self.names.append(name)
        self.open[name] = self.open.get(name, 0) + 1
        self.foreign += name in _FOREIGN

    def pop_to(self, index: int) -> None:
        for name in self.names[index:]:
            self.open[name] -= 1
            self.foreign -= name in _FOREIGN
        del self.names[index:]

    def find(self, wanted: frozenset[str], stops: frozenset[str]) -> int:
        """The index of the nearest open element named in ``wanted`` short of one in
        ``stops`` and within _MAX_WALK steps, or -1."""
        if not any(self.open.get(name) for name in wanted):
            return -1
        names = self.names
        for index in range(len(names) - 1, max(len(names) - 1 - _MAX_WALK, -1), -1):
            if names[index] in wanted:
                return index
            if names[index] in stops:
                return -1
        return -1

    def close(self, wanted: frozenset[str], stops: frozenset[str]) -> None:
        if (index := self.find(wanted, stops)) >= 0:
            self.pop_to(index)

    def start(self, name: str) -> None:
        """The implied end tags a start tag makes (the common ones), then the element."""
        if not self.foreign:
            if name in _CLOSES_P:
                self.close(frozenset({"p"}), _BUTTON_SCOPE)
            if name == "li":
                self.close(frozenset({"li"}), _LIST_ITEM_STOPS)
            elif name in ("dd", "dt"):
                self.close(frozenset({"dd", "dt"}), _LIST_ITEM_STOPS)
            elif name in _HEADING_TAGS or name in ("option", "optgroup"):
                current = self.names[-1] if self.names else ""
                if current == "option" if name not in _HEADING_TAGS else current in _HEADING_TAGS:
                    self.pop_to(len(self.names) - 1)  # <h2> in an <h1>, <option> in one
            elif name in ("td", "th", "tr"):
                cells = frozenset({"td", "th"} if name != "tr" else {"tr"})
                self.close(cells, _TABLE_SCOPE | ({"tr"} if name != "tr" else set()))
                if self.names and self.names[-1] == "table":  # the tbody lexbor adds
                    self.push("tbody")
                if name != "tr" and self.names and self.names[-1] in ("table", "tbody"):
                    self.push("tr")
            elif name in ("a", "nobr", "button"):
                self.close(frozenset({name}), _SCOPE if name == "button" else _SPECIAL)
        self.push(name)

    def end(self, name: str) -> None:
        """An end tag: closes its element, in scope for a special one, else short of the
        nearest special element (as the tree builder's "any other end tag")."""
        if name in ("html", "body", "br"):
            return  # what follows </body> still goes in the body; </br> is a <br>
        stops = _SCOPE if name in _SPECIAL else _SPECIAL
        self.close(frozenset({name}), stops - {name} if name in stops else stops)


def structure_problem(page: bytes, budget: Budget | None = None) -> str:
    """Why the page is too intricate to parse, or "" when it is not: more than MAX_DEPTH
    elements nested, or more than MAX_START_TAGS start tags. One linear pass over its tags
    that follows the tree builder's main rules (void elements, raw text, comments, the
    implied end tags, end tags that close up to their element) and, where it simplifies,
    errs on the deep side; no tree is built."""
    stack = _OpenElements()
    position, started, read = 0, 0, 0
    while (match := _TOKEN.search(page, position)) is not None:
        read += 1
        if budget is not None and read % CHECK_EVERY == 0:
            budget.check()
        if match[2] is None:  # a comment, to its end (the rest of the page if it has none)
            if (comment_end := _COMMENT_END.search(page, match.start() + 2)) is None:
                break
            position = comment_end.end()
            continue
        rest = _TAG_REST.match(page, match.end())
        if rest is None:
            break  # the tag runs to the end of the page
        position = rest.end()
        name = match[2].decode("latin-1").lower()
        if match[1]:
            stack.end(name)
            continue
        started += 1
        if started > MAX_START_TAGS:
            return f"more than {MAX_START_TAGS:,} elements"
        if name in _VOID or (stack.foreign and page[position - 2] == ord("/")):
            continue
        if name in ("html", "head", "body") and name in stack.names[:3]:
            continue  # merged into the one the page has
        stack.start(name)
        if len(stack.names) > MAX_DEPTH:
            return f"elements nested more than {MAX_DEPTH} deep"
        if stack.foreign:
            continue
        if name == "plaintext":
            break  # the rest of the page is its text
        if name in _RAW_TEXT:
            closing = re.compile(rb"</" + re.escape(match[2]) + rb"[\t\n\f\r />]", re.I)
            if (raw_end := closing.search(page, position)) is None:
                break
            position = raw_end.start()
    return ""


def parse(page: bytes, budget: Budget | None = None) -> Document:
    """The page's elements and visible text (at most ``MAX_ELEMENTS`` elements). Check the
    page with ``structure_problem`` first: lexbor's work grows with the square of the depth,
    and nothing can stop it once started."""
    tree = LexborHTMLParser(decode(page))
    elements: list[Element] = []
    texts: list[str] = []
    counts: dict[str, int] = {}
    root = tree.root
    if root is None:
        return Document(page, elements, texts)
    # An explicit stack: a page of 10,000 nested divs must not reach Python's recursion limit.
    stack: list[tuple[LexborNode, Element | None, bool] | Element] = [(root, None, False)]
    steps = 0
    while stack and len(elements) < MAX_ELEMENTS:
        steps += 1
        if budget is not None and steps % CHECK_EVERY == 0:
            budget.check()
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
