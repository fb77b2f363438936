"""What is worth testing on a page: its headline and sub-headline, its primary and secondary
calls to action, its pricing plans, its social proof (testimonials, logo strips, ratings and
figures such as "10,000+ teams") and its forms.

Each kind is found by how pages are built rather than by one site's class names: the
headline is the most prominent heading near the top of the main content (an ``h1`` unless
the page has none, or several), a call to action is a link or button that looks like a
button and asks for an action, a pricing plan is one child of the element whose children
each carry a price, and so on; the heuristics, and what they miss, are in docs/autopilot.md
("Page analysis"). A candidate keeps only a selector lol-html verified to match exactly it
(selectors.py), its text and the facts it states; the page's facts come with them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal, TypeVar

from refract.analytics.autopilot import facts, structured
from refract.analytics.autopilot.document import (
    MAX_PAGE_BYTES,
    Budget,
    Document,
    Element,
    TooSlowError,
    decode,
    parse,
    structure_problem,
)
from refract.analytics.autopilot.fact_check import words_of
from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.selectors import unique_selectors

Kind = Literal[
    "headline", "subheadline", "primary_cta", "secondary_cta", "pricing", "social_proof", "form"
]
KINDS: tuple[Kind, ...] = (
    "headline",
    "subheadline",
    "primary_cta",
    "secondary_cta",
    "pricing",
    "social_proof",
    "form",
)
MAX_TEXT = 500  # characters of a candidate's text kept
BUDGET_S = 2.0  # of analysis a page may take (the labelled pages take milliseconds)
_MAX_PER_KIND = 24

_WORD = re.compile(r"\w+", re.UNICODE)
_LETTER_WORD = re.compile(r"[^\W\d_]{2,}")
_OUTSIDE_CONTENT = ("nav", "footer", "aside")
_HERO = re.compile(r"hero|banner|masthead|jumbotron|intro|splash|above-the-fold|landing-head")
_HEADLINE_HINT = re.compile(r"headline|display|page-title|hero-title|hero__title|title-xl|h1")
_BIG_TEXT = re.compile(r"(^|\s)(?:[a-z]+:)?text-([4-9])xl(\s|$)")
_SUBHEAD_HINT = re.compile(r"sub|lead|tagline|description|intro|deck|summary|hero-text|strap")
_BUTTON_HINT = re.compile(r"btn|button|cta|action")
_PRIMARY_HINT = re.compile(r"primary|cta-main|main-cta|hero-cta|solid|filled|btn-accent|accent")
_SECONDARY_HINT = re.compile(r"secondary|ghost|outline|tertiary|text-link|btn-link|light|plain")
_ACTION = re.compile(
    r"\b(get|start|book|request|try|talk|contact|schedule|sign|join|see|watch|download|buy"
    r"|subscribe|create|explore|learn|read|view|compare|claim|apply|register|chat|call|meet|send"
    r"|demo|free|pricing|trial|quote|begin|launch|discover|upgrade|order|install|tour"
    # the same calls in German, French and Spanish
    r"|testen|kostenlos|anfragen|starten|jetzt|kontakt|essai|gratuit|demander|essayer"
    r"|prueba|gratis|solicitar|empezar)\b",
    re.IGNORECASE,
)
_CONVERSION = re.compile(
    r"\b(demo|trial|start|started|sign up|contact|talk|book|request|buy|free|quote|schedule"
    r"|get|try|join|subscribe|upgrade)\b",
    re.IGNORECASE,
)
_NOT_CTA = re.compile(r"skip to|cookie|accept all|reject|menu|close|toggle|log ?in|sign in")
_PRICE = re.compile(
    r"[$€£¥]\s?\d|\d\s?(?:USD|EUR|GBP|CHF)\b|\b(?:USD|EUR|GBP)\s?\d|\d\s?€", re.IGNORECASE
)
_PLAN_NAME = re.compile(r"(plan|tier|package)[-_]?(name|title)|card-title|heading")
_PLAN_HINT = re.compile(r"plan|tier|pricing|price|package|edition")
_TESTIMONIAL = re.compile(
    r"^(?:[a-z]+[-_]+)*(testimonial|review|quote)(?:[-_]+(card|item|block|box|tile|slide))?$"
)
_QUOTE_OPEN = "\u201c\"\u00ab\u201e\u2018'"  # opening quotes
_QUOTE_CLOSE = "\u201d\"\u00bb\u201c\u2019'"  # closing: German quotes close with U+201C
_LOGO_HINT = re.compile(r"logo|client|customer|brand|partner|trusted|press|featured|company")
_TRUST_WORDS = re.compile(
    r"trusted by|used by|loved by|customers include|as seen|relied on by|teams at|join",
    re.IGNORECASE,
)
_RATING = re.compile(
    r"\b[1-5](?:[.,]\d)?\s?(?:/|out of)\s?(?:5|five)\b|★{3,}|\b[1-5][.,]\d\s?stars?\b"
    r"|rated\s[1-5](?:[.,]\d)?",
    re.IGNORECASE,
)
_FIGURE = re.compile(
    r"\d[\d,.]*\s?(?:[kKmMbB](?!\w)\+?|\+|%|x\b|\u00d7|million|billion)"
    r"|\d[\d,.]*\s(?:teams|customers|companies|users|businesses|organi[sz]ations|engineers"
    r"|developers|countries|brands|reviews|downloads|installs|members|clients|hospitals"
    r"|banks|retailers|manufacturers)\b"
)
_LEADING_NUMBER = re.compile(r"^[^\w]{0,2}\d")
_SEARCH = re.compile(r"search")
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_TEXT_BLOCKS = frozenset(
    {
        "p",
        "div",
        "li",
        "dd",
        "dt",
        "td",
        "th",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "span",
        "blockquote",
        "figcaption",
        "section",
        "header",
        "article",
        "strong",
        "b",
        "em",
    }
)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An element worth testing: what it is, the selector that changes it (verified to match
    exactly it), its text, a word on what it is within its kind (a plan's name, a CTA's
    target, the form of social proof), and the facts its text states."""

    kind: Kind
    selector: str
    tag: str
    text: str
    detail: str
    facts: tuple[Fact, ...]

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "selector": self.selector,
            "tag": self.tag,
            "text": self.text,
            "detail": self.detail,
            "facts": [fact.as_json() for fact in self.facts],
        }


@dataclass(frozen=True, slots=True)
class PageScan:
    """A page's candidates and facts; ``skipped`` says why a page was not analysed."""

    url: str
    candidates: tuple[Candidate, ...]
    facts: tuple[Fact, ...]
    skipped: str = ""
    words: frozenset[str] = frozenset()  # the page's visible words, lower case (bounded)

    def of(self, kind: Kind) -> list[Candidate]:
        return [candidate for candidate in self.candidates if candidate.kind == kind]

    def as_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "skipped": self.skipped,
            "candidates": [candidate.as_json() for candidate in self.candidates],
            "facts": [fact.as_json() for fact in self.facts],
        }


def scan_page(
    page: bytes, url: str, budget_s: float = BUDGET_S, clock: Callable[[], float] = time.monotonic
) -> PageScan:
    """The candidates on ``page`` (the bytes the origin serves at ``url``), within
    ``budget_s`` seconds of ``clock``: a page nested too deep is refused before it is parsed
    (document.structure_problem), and every step after checks the budget."""
    if len(page) > MAX_PAGE_BYTES:
        return PageScan(url, (), (), f"larger than {MAX_PAGE_BYTES} bytes: never rewritten")
    if b"\x00" in page[:4096]:
        return PageScan(url, (), (), "binary, not an HTML page")
    budget = Budget(budget_s, clock)
    try:
        if problem := structure_problem(page, budget):
            return PageScan(url, (), (), f"not analysed: {problem} (too intricate a page)")
        document = parse(page, budget)
        budget.check()
        data = structured.read(decode(page))
        found = _Finder(document, data, budget).find()
        keyed = {index: element for index, (_, element, _) in enumerate(found)}
        chosen = unique_selectors(page, keyed, budget.check)
        budget.check()
        candidates = []
        for index, (kind, element, detail) in enumerate(found):
            if index not in chosen:
                continue
            text = _candidate_text(document, element)
            candidates.append(
                Candidate(kind, chosen[index], element.tag, text, detail, tuple(facts.facts(text)))
            )
        page_facts = tuple(_page_facts(document, data))
        budget.check()
    except TooSlowError:
        return PageScan(url, (), (), f"not analysed within {budget_s:g} s (too intricate a page)")
    return PageScan(url, tuple(candidates), page_facts, words=words_of(document.blocks))


def _candidate_text(document: Document, element: Element) -> str:
    if element.tag == "input":
        return element.attributes.get("value", "")[:MAX_TEXT]
    return document.text(element)[:MAX_TEXT]


def _page_facts(document: Document, data: structured.Structured) -> list[Fact]:
    """The page's facts, block by block: a block ends a sentence (a heading has no period)."""
    blocks = document.blocks
    sentences = " ".join(b if b.endswith((".", "!", "?", ":")) else b + "." for b in blocks)
    found = [
        *(number for block in blocks for number in facts.numbers(block)),
        *facts.names(sentences),
        *(Fact("name", name) for name in data.names),
        *facts.claims(sentences),
    ]
    unique = {(fact.kind, fact.text): fact for fact in found}
    return list(unique.values())[: 3 * facts.MAX_FACTS]


Found = tuple[Kind, Element, str]
_Item = TypeVar("_Item")


class _Finder:
    """The detectors, over one parsed page, within ``budget_s`` seconds of work."""

    def __init__(self, document: Document, data: structured.Structured, budget: Budget) -> None:
        self.doc = document
        self.data = data
        self.budget = budget
        self._texts: dict[int, str] = {}
        # the site's headers: those holding the navigation (found once, not per element)
        self._site_headers = frozenset(
            a.index
            for a in self.each(document.elements)
            if a.tag == "header" and any(d.tag == "nav" for d in document.elements[a.index : a.end])
        )

    def each(self, items: Iterable[_Item]) -> Iterator[_Item]:
        """``items``, the budget checked before each: every detector's loop over the page's
        elements goes through here (one step may cost a walk of the page)."""
        for item in items:
            self.budget.check()
            yield item

    def text(self, element: Element) -> str:
        if element.index not in self._texts:
            self.budget.check()
            self._texts[element.index] = self.doc.text(element)
        return self._texts[element.index]

    def words(self, element: Element) -> int:
        return len(_WORD.findall(self.text(element)))

    def find(self) -> list[Found]:
        found: list[Found] = []
        headline = self.headline()
        if headline is not None:
            found.append(("headline", headline, ""))
            if (sub := self.subheadline(headline)) is not None:
                found.append(("subheadline", sub, ""))
        plans = self.pricing()
        found += [("pricing", plan, self.plan_name(plan)) for plan in plans]
        primary, secondary = self.calls_to_action(headline, plans)
        if primary is not None:
            found.append(("primary_cta", primary, primary.attributes.get("href", "")))
        if secondary is not None:
            found.append(("secondary_cta", secondary, secondary.attributes.get("href", "")))
        taken = {element.index for _, element, _ in found if _ != "pricing"}
        found += [
            ("social_proof", element, detail)
            for element, detail in self.social_proof(plans)
            if element.index not in taken
        ]
        found += [("form", form, self.form_detail(form)) for form in self.forms()]
        return found

    # --- headline and sub-headline ---------------------------------------------------------

    def headline(self) -> Element | None:
        elements = self.doc.elements
        scored = []
        for element in self.each(elements):
            if element.hidden or not self._heading_like(element):
                continue
            words = self.words(element)
            if words == 0:
                continue
            score = self._headline_score(element, words) - 4 * element.index / len(elements)
            scored.append((score, -element.index, element))
        if not scored:
            return None
        best = max(scored, key=lambda item: (item[0], item[1]))
        return best[2] if best[0] > 0 else None

    def _heading_like(self, element: Element) -> bool:
        if element.tag in ("h1", "h2"):
            return True
        if element.attributes.get("role") == "heading":
            return True
        if element.tag not in ("div", "p", "span", "strong"):
            return False
        hints = element.hints
        return bool(_BIG_TEXT.search(element.attributes.get("class", ""))) or (
            bool(_HERO.search(hints)) and ("title" in hints or "heading" in hints)
        )

    def _headline_score(self, element: Element, words: int) -> float:
        score = {"h1": 10.0, "h2": 4.0}.get(element.tag, 3.0)
        if element.attributes.get("aria-level") == "1":
            score += 5
        hints = element.hints
        if _HERO.search(hints):
            score += 4
        if _HEADLINE_HINT.search(hints):
            score += 3
        if size := _BIG_TEXT.search(element.attributes.get("class", "")):
            score += 1 + int(size[2]) / 2
        ancestors = element.ancestors
        if any(_HERO.search(a.hints) or a.tag == "main" for a in ancestors[:6]):
            score += 3
        if any(
            a.tag
            in (*_OUTSIDE_CONTENT, "form", "blockquote", "figure", "a", "button", "dialog", "li")
            for a in ancestors
        ):
            score -= 12
        if self._in_site_header(element):
            score -= 8
        if words < 2:
            inside = self.doc.elements[element.index + 1 : element.end]
            score -= 7 if any(e.tag in ("a", "img", "svg") for e in inside) else 2
        elif words > 25:
            score -= 5
        return score

    def _in_site_header(self, element: Element) -> bool:
        """Inside the site's header (a header holding the navigation), not a page's own."""
        return any(a.index in self._site_headers for a in element.ancestors)

    def subheadline(self, headline: Element) -> Element | None:
        region = self._region(headline, 3)
        for element in self.each(self.doc.following(headline, 40)):
            if region is not None and not region.contains(element):
                return None
            if element.hidden or element.tag in ("a", "button", "form", "input", "label"):
                continue
            if element.tag in _HEADINGS[:2] and element.tag != "h2":
                return None
            if not self._text_block(element):
                continue
            words = self.words(element)
            if 5 <= words <= 70 or (words >= 3 and _SUBHEAD_HINT.search(element.hints)):
                return None if self._is_action(element) else element
            if words > 70:
                return None
        return None

    def _region(self, element: Element, levels: int) -> Element | None:
        """The section around ``element``: its ancestor ``levels`` up, short of body."""
        region = None
        for ancestor in element.ancestors[:levels]:
            if ancestor.tag in ("body", "html", "main"):
                break
            region = ancestor
        return region

    def _text_block(self, element: Element) -> bool:
        """A block that holds text itself: only inline elements inside, and some text."""
        if element.tag not in _TEXT_BLOCKS or element.tag in ("section", "article", "header"):
            return False
        inline = ("a", "b", "strong", "em", "i", "span", "br", "small", "mark", "code", "sup")
        return all(child.tag in inline for child in element.children) and bool(self.text(element))

    # --- calls to action -------------------------------------------------------------------

    def _actions(self) -> list[Element]:
        found = []
        for element in self.each(self.doc.visible("a", "button", "input")):
            if element.tag == "input" and element.attributes.get("type") not in (
                "submit",
                "button",
            ):
                continue
            text = _candidate_text(self.doc, element)
            words = len(_WORD.findall(text))
            if not 1 <= words <= 8 or _NOT_CTA.search(text.lower()):
                continue
            if element.within("nav", "footer", "aside") or (
                element.within("li") and not (self._button_like(element))
            ):
                continue
            if element.attributes.get("href", "").startswith("#") and not self._button_like(
                element
            ):
                continue
            if _SEARCH.search(element.hints) or self._search_form(element):
                continue
            if "aria-pressed" in element.attributes or "aria-expanded" in element.attributes:
                continue  # a toggle: it changes the page, it asks nothing of the visitor
            found.append(element)
        return found

    def _search_form(self, element: Element) -> bool:
        return any(a.tag == "form" and self._is_search(a) for a in element.ancestors)

    def _button_like(self, element: Element) -> bool:
        if element.tag in ("button", "input") or element.attributes.get("role") == "button":
            return True
        hints = element.hints
        if _BUTTON_HINT.search(hints):
            return True
        classes = element.attributes.get("class", "")
        if "bg-" in classes and ("px-" in classes or "rounded" in classes):
            return True
        return self._in_site_header(element) and bool(_CONVERSION.search(self.label(element)))

    def _is_action(self, element: Element) -> bool:
        return element.tag in ("a", "button") or any(
            c.tag in ("a", "button") for c in element.children
        )

    def calls_to_action(
        self, headline: Element | None, plans: list[Element]
    ) -> tuple[Element | None, Element | None]:
        actions = [a for a in self._actions() if not any(p.contains(a) for p in plans)]
        scored = []
        for action in self.each(actions):
            if not self._button_like(action) or not _ACTION.search(self.label(action)):
                continue
            scored.append((self._cta_score(action, headline), -action.index, action))
        if not scored:
            return None, None
        score, _, primary = max(scored, key=lambda item: (item[0], item[1]))
        if score <= 0:
            return None, None
        return primary, self._secondary(primary, actions)

    def _cta_score(self, action: Element, headline: Element | None) -> float:
        text = _candidate_text(self.doc, action)
        hints = action.hints
        score = 4.0
        if _CONVERSION.search(text):
            score += 3
        elif _ACTION.search(text):
            score += 1
        if _PRIMARY_HINT.search(hints):
            score += 4
        if _SECONDARY_HINT.search(hints):
            score -= 4
        if headline is not None:
            distance = action.index - headline.index
            region = self._region(headline, 4)
            if distance > 0:
                score += max(0.0, 6 - distance / 12)
            if region is not None and region.contains(action):
                score += 4
            if distance < 0:
                score -= 2
        if self._in_site_header(action):
            score -= 3
        if action.tag == "input" or (action.tag == "button" and action.within("form")):
            score -= 2
        return score

    def label(self, action: Element) -> str:
        return _candidate_text(self.doc, action)

    def _secondary(self, primary: Element, actions: list[Element]) -> Element | None:
        """The other action beside the primary: a button, or a link that asks for an action."""
        for group in primary.ancestors[:2]:
            if group.tag in ("body", "main", "html"):
                break
            others = [
                a
                for a in self.each(actions)
                if a is not primary
                and group.contains(a)
                and (self._button_like(a) or _ACTION.search(self.label(a)))
                and a.attributes.get("href") != primary.attributes.get("href")
                and not a.contains(primary)
                and not primary.contains(a)
            ]
            if others:
                return others[0] if len(others) < 4 else None
        return None

    # --- pricing ---------------------------------------------------------------------------

    def _prices(self) -> list[Element]:
        """The elements that state a price, the outermost of nested ones (``<p>$490<span>
        / month</span></p>``); a number alone is a price when the page's offers say so."""
        offer_prices = {offer.price.split(".")[0] for offer in self.data.offers}
        found: dict[int, Element] = {}
        for element in self.each(self.doc.elements):
            if element.hidden or element.end - element.index > 6:
                continue
            text = self.text(element)
            if not text or len(text) > 60:
                continue
            priced = len(_PRICE.findall(text)) == 1 or (
                offer_prices and _leading_number(text) in offer_prices
            )
            if priced and not any(a.index in found for a in element.ancestors[:6]):
                found[element.index] = element
        return list(found.values())

    def pricing(self) -> list[Element]:
        prices = [p for p in self._prices() if not p.within("nav", "footer", "form")]
        if len(prices) < 2 and not (prices and self.data.offers):
            return []
        holders: dict[int, set[int]] = {}  # ancestor -> its children that hold a price
        for price in self.each(prices):
            child = price
            for ancestor in price.ancestors[:12]:
                holders.setdefault(ancestor.index, set()).add(child.index)
                child = ancestor
        plans: dict[int, Element] = {}
        for price in self.each(prices):
            plan = self._plan_of(price, holders)
            if plan is not None:
                plans[plan.index] = plan
        for plan in list(plans.values()):  # the "Enterprise: talk to us" card has no price
            parent = plan.parent
            for sibling in self.each([] if parent is None else parent.children):
                if (
                    sibling.index not in plans
                    and sibling.tag == plan.tag
                    and self._plan_like(sibling, False)
                ):
                    plans[sibling.index] = sibling
        return [plans[index] for index in sorted(plans)][:_MAX_PER_KIND]

    def _plan_of(self, price: Element, holders: dict[int, set[int]]) -> Element | None:
        child = price
        for ancestor in price.ancestors[:12]:
            if ancestor.tag in ("body", "html", "main"):
                return None
            if len(holders.get(ancestor.index, ())) >= 2:
                if ancestor.tag == "tr" and child.tag in ("td", "th"):
                    return child  # a plan per column: its price cell
                if child.tag == "tr" or self._plan_like(child, True):
                    return child
            child = ancestor
        if self.data.offers and self._plan_like(child, True):
            return child
        return None

    def _plan_like(self, card: Element, priced: bool) -> bool:
        """A plan's card: a name and an action or features, and not a whole page section."""
        inside = self.doc.elements[card.index + 1 : card.end]
        named = any(
            e.tag in _HEADINGS
            or _PLAN_HINT.search(e.hints)
            or "name" in e.hints
            or "title" in e.hints
            for e in inside
        )
        acts = any(e.tag in ("a", "button") for e in inside)
        listed = any(e.tag in ("ul", "ol", "dl") for e in inside)
        words = self.words(card)
        if words > 250 or (
            not priced
            and not _PLAN_HINT.search(card.hints + " ".join(e.hints for e in inside[:3]))
            and not (named and acts)
        ):
            return False
        return named and (acts or listed or priced)

    def plan_name(self, plan: Element) -> str:
        """The plan's name: its heading, or the element named for it, or its first cell."""
        inside = self.doc.elements[plan.index : plan.end]
        for element in self.each(inside):
            named = (
                element.tag in _HEADINGS
                or element.tag in ("th", "strong", "b")
                or (_PLAN_NAME.search(element.hints))
            )
            if named and (text := self.text(element)) and len(text) <= 80:
                return text
        return self.text(plan)[:40]

    # --- social proof ----------------------------------------------------------------------

    def social_proof(self, plans: list[Element]) -> list[tuple[Element, str]]:
        found: dict[int, tuple[Element, str]] = {}
        for element, detail in self.each(
            (*self._testimonials(), *self._logo_strips(), *self._ratings(), *self._figures())
        ):
            if any(p.contains(element) or element.contains(p) for p in plans):
                continue
            if any(f.contains(element) or element.contains(f) for f, _ in found.values()):
                continue  # one unit of proof once: the first form found of it
            found[element.index] = (element, detail)
        return [found[index] for index in sorted(found)][:_MAX_PER_KIND]

    def _outside_content(self, element: Element) -> bool:
        return element.within(*_OUTSIDE_CONTENT, "form") or self._in_site_header(element)

    def _testimonials(self) -> Iterable[tuple[Element, str]]:
        seen: set[int] = set()
        for element in self.each(self.doc.elements):
            if element.hidden or self._outside_content(element):
                continue
            unit = None
            if element.tag == "blockquote" and self.words(element) >= 5:
                unit = (
                    element.parent if element.parent and element.parent.tag == "figure" else element
                )
            elif self._testimonial_card(element):
                unit = element
            elif self._text_block(element) and self._quoted(element):
                unit = self._attributed(element)
            if (
                unit is not None
                and unit.index not in seen
                and not any(a.index in seen for a in unit.ancestors)
            ):
                seen.add(unit.index)
                yield unit, "testimonial"

    def _testimonial_card(self, element: Element) -> bool:
        """A card named as one testimonial, holding no blockquote (that is the unit then)."""
        if element.tag in ("section", "main", "body"):
            return False
        if not any(_TESTIMONIAL.match(name) and "__" not in name for name in element.classes):
            return False
        if self.words(element) < 6:
            return False
        inside = self.doc.elements[element.index + 1 : element.end]
        return not any(e.tag in ("blockquote", "figure") for e in inside)

    def _quoted(self, element: Element) -> bool:
        text = self.text(element)
        return len(text) > 30 and text[0] in _QUOTE_OPEN and text.rstrip(".")[-1] in _QUOTE_CLOSE

    def _attributed(self, quote: Element) -> Element | None:
        """The smallest element around a quotation that also names who said it."""
        quote_words = self.words(quote)
        for ancestor in quote.ancestors[:3]:
            extra = self.words(ancestor) - quote_words
            if extra > 40:
                return None
            if extra >= 2:
                return ancestor
        return None

    def _logo_strips(self) -> Iterable[tuple[Element, str]]:
        for element in self.each(self.doc.elements):
            if element.hidden or len(element.children) < 3 or self._outside_content(element):
                continue
            logos = [c for c in self.each(element.children) if self._logo_like(c)]
            if len(logos) < 3 or len(logos) < 0.8 * len(element.children):
                continue
            images = sum(
                1
                for c in logos
                if c.tag == "img" or any(d.tag in ("img", "svg") for d in c.children)
            )
            context = element.hints + " " + " ".join(a.hints for a in element.ancestors[:2])
            before = self.text(element.parent) if element.parent else ""
            if _LOGO_HINT.search(context) or _TRUST_WORDS.search(before[:200]) or images >= 3:
                yield element, "logos"

    def _logo_like(self, element: Element) -> bool:
        if element.tag in ("img", "svg"):
            return True
        inside = self.doc.elements[element.index + 1 : element.end]
        if any(e.tag in ("img", "svg") for e in inside) and self.words(element) <= 4:
            return True
        text = self.text(element)
        return 0 < len(text.split()) <= 4 and text[:1].isupper() and not inside

    def _ratings(self) -> Iterable[tuple[Element, str]]:
        for element in self.each(self.doc.elements):
            if element.hidden or self._outside_content(element):
                continue
            if "aggregaterating" in element.hints and element.attributes.get("itemprop"):
                yield element, "rating"
            elif (
                self._text_block(element)
                and self.words(element) <= 20
                and _RATING.search(self.text(element))
                and not any(self.text(child) == self.text(element) for child in element.children)
            ):
                yield self._with_label(element), "rating"

    def _figures(self) -> Iterable[tuple[Element, str]]:
        found: list[Element] = []
        for element in self.each(self.doc.elements):
            if element.hidden or not self._text_block(element) or element.tag in _HEADINGS[:3]:
                continue
            if self._outside_content(element) or (
                element.within("h1", "h2", "a", "button", "li") and element.tag != "li"
            ):
                continue
            text = self.text(element)
            if not 1 <= self.words(element) <= 16 or _PRICE.search(text):
                continue
            match = _FIGURE.search(text)
            if match is None:
                continue
            if not (
                _LEADING_NUMBER.match(text)
                or any(
                    c.tag in ("strong", "b", "span", "em") and _FIGURE.search(self.text(c))
                    for c in element.children
                )
            ):
                continue
            found.append(self._with_label(element))
        listed = {figure.index for figure in found}
        rows: set[tuple[int, str]] = set()  # a row's siblings are looked at once, not per figure
        for figure in list(found):  # figures come in rows: their siblings lead with numbers too
            parent = figure.parent
            if parent is None or (parent.index, figure.tag) in rows:
                continue
            rows.add((parent.index, figure.tag))
            for sibling in self.each(parent.children):
                if (
                    sibling.tag == figure.tag
                    and sibling.index not in listed
                    and _LEADING_NUMBER.match(self.text(sibling))
                    and self.words(sibling) <= 16
                ):
                    found.append(sibling)
                    listed.add(sibling.index)
        for figure in found:
            yield figure, "figure"

    def _with_label(self, element: Element) -> Element:
        """A number alone in its block ("10k+", "4.9/5") with its label in the next: their
        parent."""
        parent = element.parent
        alone = len(_LETTER_WORD.findall(self.text(element))) <= 1
        if alone and parent is not None and self.words(parent) <= 16:
            return parent
        return element

    # --- forms -----------------------------------------------------------------------------

    def forms(self) -> list[Element]:
        return [
            form
            for form in self.each(self.doc.visible("form"))
            if not self._is_search(form) and not form.within("nav", "header")
        ][:_MAX_PER_KIND]

    def _is_search(self, form: Element) -> bool:
        if _SEARCH.search(form.hints) or "search" in form.attributes.get("action", "").lower():
            return True
        fields = [
            e
            for e in self.each(self.doc.elements[form.index : form.end])
            if e.tag in ("input", "textarea", "select")
        ]
        typed = [
            e
            for e in fields
            if e.attributes.get("type", "text") not in ("hidden", "submit", "button")
        ]
        return len(typed) == 1 and (
            typed[0].attributes.get("type") == "search"
            or typed[0].attributes.get("name") in ("q", "s", "query", "search")
        )

    def form_detail(self, form: Element) -> str:
        fields = [
            e.attributes.get("name") or e.attributes.get("type", "text")
            for e in self.each(self.doc.elements[form.index : form.end])
            if e.tag in ("input", "textarea", "select")
            and e.attributes.get("type") not in ("hidden", "submit", "button")
        ]
        return f"{len(fields)} fields: {', '.join(fields[:12])}"


def _leading_number(text: str) -> str:
    match = re.match(r"\D{0,3}(\d[\d,]*)", text)
    return match[1].replace(",", "") if match else ""
