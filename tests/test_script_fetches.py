"""Fragments a page's script fetches (htmx, jQuery's ``load``, ``fetch``) are not pages.

A request the browser says a script made (``Sec-Fetch-Dest: empty``; without Fetch metadata,
htmx's ``HX-Request`` or jQuery's ``X-Requested-With``) for HTML that opens no document gets
the edits, so that what it puts into the page shows the visitor's variant, but no beacon or
styles, and counts as no page view: the page it goes into did. It records the exposure (the
worker keeps a visitor's first), since it showed the variant: a fetch that did not would tell
a client an id's arm without counting it. A whole page fetched so (hx-boost, Turbo) is one,
as a navigation is.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from refract.proxy.sniff import opens_a_document
from tests.conftest import BROWSER, ProxyFactory, recorded_events
from tests.origin import PAGE
from tests.support.rules import SIGNUP_METRIC

RULES = (
    SIGNUP_METRIC
    + """
[[experiments]]
key = "headline"
status = "running"
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 0

  [[experiments.variants]]
  key = "bold"
  weight = 100
  changes = [
    { action = "set_text", selector = "h1#hero", value = "Bold" },
    { action = "inject_style", value = "h1 { color: red }" },
  ]
"""
)
FRAGMENT = "<h1 id=hero>Old</h1><p>row</p>"
XHTML_1_PAGE = (  # XHTML 1.0 served as text/html: an XML declaration before the doctype
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN"'
    ' "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>t</title></head>'
    "<body><h1 id=hero>Old</h1></body></html>"
)
BEACON = b"/_refract/beacon.js"

# (case, request fields, body, a page: beacon and a page view)
CASES = [
    ("fetch of a fragment", {"Sec-Fetch-Dest": "empty"}, FRAGMENT, False),
    ("htmx, no Fetch metadata", {"HX-Request": "true"}, FRAGMENT, False),
    ("jQuery, no Fetch metadata", {"X-Requested-With": "XMLHttpRequest"}, FRAGMENT, False),
    ("fetch of a whole page (Turbo)", {"Sec-Fetch-Dest": "empty"}, PAGE.decode(), True),
    ("fetch of a page opening with <?xml ?>", {"Sec-Fetch-Dest": "empty"}, XHTML_1_PAGE, True),
    ("navigation to a fragment", {"Sec-Fetch-Dest": "document"}, FRAGMENT, True),
    ("iframe", {"Sec-Fetch-Dest": "iframe"}, FRAGMENT, True),
    ("no Fetch metadata", {}, FRAGMENT, True),
]


@pytest.fixture
def rules_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "rules.toml").write_text(RULES)
    return directory


@pytest.mark.parametrize(
    ("case", "fields", "body", "page"), CASES, ids=[case for case, *_ in CASES]
)
async def test_a_fragment_fetched_by_script_gets_the_edits_and_its_exposure_but_no_page_view(
    proxy: ProxyFactory,
    rules_directory: Path,
    case: str,
    fields: dict[str, str],
    body: str,
    page: bool,
) -> None:
    client = await proxy(rules={"directory": str(rules_directory)})
    response = await client.get(
        f"/page?body={quote(body)}", headers={"User-Agent": BROWSER, **fields}
    )
    served = await response.read()
    assert b"<h1 id=hero>Bold</h1>" in served
    assert (BEACON in served, b"color: red" in served) == (page, page)
    recorded = await recorded_events(client)
    assert len([event for event in recorded if event["type"] == "pageview"]) == page
    assert len([event for event in recorded if event["type"] == "exposure"]) == 1


DOCUMENT_STARTS = [
    (b"<!DOCTYPE html><html>", True),
    (b"\xef\xbb\xbf \n<!-- built --><html lang=en>", True),
    (b"<HTML>", True),
    (b"<!-- a comment longer than the bytes read", True),  # cannot tell: a document
    (b"<!DOC", True),
    (b"", True),
    (b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD">', True),
    (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml">', True),
    (b"<?xml version='1.0'?><!-- x --><?xml-stylesheet href='a'?><!doctype html>", True),
    (b"<?xml version=", True),  # cannot tell: a document
    (b"<!DOCTYPEhtml><html>", True),
    (b"<!doctype>", True),
    (b"<head><title>t</title></head><body>", True),
    (b"\n<!-- no doctype --><HEAD>", True),
    (b"<body class=home><h1>x</h1>", True),
    (b"<body/>", True),
    (b"<body>", True),
    (b"<?xml version='1.0'?><tr><td>1</td></tr>", False),
    (b"<title>t</title><div>x</div>", False),
    (b"<header>nav</header>", False),
    (b"<bodyx>", False),
    (b"<div>x</div>", False),
    (b"<tr><td>1</td></tr>", False),
    (b"<!-- row --><div>x</div>", False),
    (b"<htmlx>", False),
    (b"text", False),
]


@pytest.mark.parametrize(("header", "document"), DOCUMENT_STARTS)
def test_a_whole_document_is_told_by_its_first_bytes(header: bytes, document: bool) -> None:
    assert opens_a_document(header) is document
