"""In a page served as XHTML, ``set_attribute`` writes only names an XML parser takes.

A name HTML allows but XML does not (Alpine's ``@click``, ``1st``, ``a:b:c``) would make the
page not well-formed, and the browser would show its XML error instead of the page: the edit
is left out there, counted, and the rest of the plan applies. Pages served as HTML get it.
"""

from __future__ import annotations

import lxml.etree
import pytest

from refract.proxy import metrics
from refract.proxy.rewriter import Edit, PageRewriter, Plan
from tests.support.metrics import counter

PAGE = (
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head>'
    b'<body><a id="cta" href="/p">Go</a><h1>Old</h1></body></html>'
)
HEADLINE = Edit("set_text", "h1", "New")
# (name, whether an XML parser takes it)
NAMES = [
    ("data-track", True),
    ("xml:lang", True),
    ("data-é", True),
    ("a.b_c-1", True),
    ("@click", False),
    ("1st", False),
    ("-x", False),
    ("data@x", False),
    ("a;b", False),
    ("data-x{1}", False),
    ("data:x:y", False),
    ("x:y", False),  # a prefix no namespace declaration names
    ("\u00b7x", False),
]


@pytest.mark.parametrize(("name", "taken"), NAMES, ids=[name for name, _ in NAMES])
def test_an_xhtml_page_stays_well_formed_whatever_the_name(name: str, taken: bool) -> None:
    plan = Plan(edits=(Edit("set_attribute", "a#cta", "1", attribute=name), HEADLINE))
    before = counter(metrics.FAIL_OPEN, stage="xml_name")
    output = PageRewriter().rewrite(PAGE, plan, xml=True)
    lxml.etree.fromstring(output)  # well-formed, or this raises
    assert b"<h1>New</h1>" in output
    assert (f' {name}="1"'.encode() in output) is taken
    assert counter(metrics.FAIL_OPEN, stage="xml_name") == before + (not taken)


def test_a_page_served_as_html_gets_any_name_html_allows() -> None:
    plan = Plan(edits=(Edit("set_attribute", "a#cta", "go()", attribute="@click"),))
    assert b' @click="go()"' in PageRewriter().rewrite(PAGE, plan)
