"""Rewrite bench: the 100 KB page with 4 edits and the beacon, per engine, in one run.

    python bench/rewrite_bench.py [--pages 2000]

Refract's rewriter (lol-html) against selectolax (Lexbor) and lxml doing the same edits by
parse, edit and serialize, and whether each leaves the rest of the page byte-exact (the same
edits: two texts, a class, a price; selectolax sets them as attributes, which it serializes
as cheaply as text). Refract's twice: on the same page each time, and on a page it has not
seen before (what a page's bytes tell it, such as whether it holds a self-closing
``<svg/>``, is remembered by their digest).
Target (issue: personalization engine): p50 under 0.5 ms for Refract's rewriter.

Then what lol-html's part costs by itself, on the same page: no handler at all (it passes
the bytes through), one selector that matches nothing, the four edits' selectors, and those
with the beacon's ``body``. The step from none to one is the price of matching selectors at
all, whatever they are: the floor under a miss.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import lolhtml
import lxml.html
from selectolax.lexbor import LexborHTMLParser

from refract.proxy.rewriter import Edit, PageRewriter, Plan
from refract.proxy.state import beacon_tag

PAGE = (Path(__file__).parent / "pages" / "landing-100k.html").read_bytes()
BEACON = beacon_tag("/_refract/")
EDITS = (
    Edit("set_text", "h1.hero-title", "71% fewer data incidents reach your business users"),
    Edit("set_text", "a.cta-primary", "See it on your data"),
    Edit("add_class", "div.plan[data-plan=growth]", "plan-spotlight"),
    Edit("set_text", "div.plan[data-plan=growth] span.price", "$1,290"),
)


def refract(page: bytes) -> bytes:
    return PageRewriter().rewrite(page, Plan(edits=EDITS, tail=BEACON))


def refract_unseen() -> Callable[[bytes], bytes]:
    """Refract's rewriter, each page made new by a comment at its end (a copy, timed with it)."""
    pages = itertools.count()

    def rewrite(page: bytes) -> bytes:
        return refract(b"%s<!--%d-->" % (page, next(pages)))

    return rewrite


def selectolax(page: bytes) -> bytes:
    """The same edits by parse, edit and serialize (text through attributes and nodes)."""
    tree = LexborHTMLParser(page)
    for selector, value in (
        (EDITS[0].selector, EDITS[0].value),
        (EDITS[1].selector, EDITS[1].value),
        (EDITS[3].selector, EDITS[3].value),
    ):
        node = tree.css_first(selector)
        if node is not None:
            node.attrs["data-text"] = value
    plan = tree.css_first(EDITS[2].selector)
    if plan is not None:
        plan.attrs["class"] = "plan plan-spotlight"
    return (tree.html or "").encode()


def lxml_html(page: bytes) -> bytes:
    tree = lxml.html.document_fromstring(page)
    tree.xpath('//h1[@class="hero-title"]')[0].text = EDITS[0].value
    tree.xpath('//a[@class="cta-primary"]')[0].text = EDITS[1].value
    plan = tree.xpath('//div[@data-plan="growth"]')[0]
    plan.set("class", plan.get("class", "") + " plan-spotlight")
    plan.xpath('.//span[@class="price"]')[0].text = EDITS[3].value
    tree.body.append(lxml.html.fragment_fromstring(BEACON))
    return bytes(lxml.html.tostring(tree, encoding="utf-8"))


class _Ignore:
    def element(self, element: lolhtml.Element) -> None:
        """Matched: nothing to do, only the matching is timed."""


def lolhtml_alone(selectors: tuple[str, ...]) -> Callable[[bytes], bytes]:
    """lol-html with handlers that do nothing on ``selectors``, its output collected."""

    def rewrite(page: bytes) -> bytes:
        chunks: list[bytes] = []
        rewriter = lolhtml.HTMLRewriter(lambda chunk: chunks.append(bytes(chunk)))
        for selector in selectors:
            rewriter.on(selector, _Ignore())
        rewriter.write(page)
        rewriter.end()
        return b"".join(chunks)

    return rewrite


SELECTOR_SETS = {
    "no handler": (),
    "one, matching nothing": ("nothing-matches-this",),
    "the 4 edits'": tuple(edit.selector for edit in EDITS),
    "the 4 edits' + body": (*(edit.selector for edit in EDITS), "body"),
}


def time_engine(engine: Callable[[bytes], bytes], pages: int) -> list[float]:
    for _ in range(50):
        engine(PAGE)
    timings = []
    for _ in range(pages):
        started = time.perf_counter()
        engine(PAGE)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def byte_exact(output: bytes) -> bool:
    """Everything before the hero title is unchanged, as a byte-exact rewriter leaves it."""
    head = PAGE[: PAGE.index(b'<h1 class="hero-title">')]
    return output.startswith(head) and len(output) - len(PAGE) < 500


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}  {platform.node()}  Python {platform.python_version()}")
    print(f"page {len(PAGE)} B, 4 edits + beacon, {args.pages} pages per engine\n")
    print(f"{'engine':<17}{'p50 ms':>9}{'p99 ms':>9}  output outside the edits")
    engines = (
        ("refract", refract),
        ("refract, unseen", refract_unseen()),
        ("selectolax", selectolax),
        ("lxml", lxml_html),
    )
    for name, engine in engines:
        timings = time_engine(engine, args.pages)
        p50, p99 = statistics.median(timings), statistics.quantiles(timings, n=100)[98]
        exact = "byte-exact" if byte_exact(engine(PAGE)) else "re-serialized"
        print(f"{name:<17}{p50:>9.3f}{p99:>9.3f}  {exact}")
    print(f"\n{'lol-html alone, selectors':<28}{'p50 ms':>9}{'p99 ms':>9}")
    for label, selectors in SELECTOR_SETS.items():
        timings = time_engine(lolhtml_alone(selectors), args.pages)
        p50, p99 = statistics.median(timings), statistics.quantiles(timings, n=100)[98]
        print(f"{label:<28}{p50:>9.3f}{p99:>9.3f}")


if __name__ == "__main__":
    main()
