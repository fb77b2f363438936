"""add_class and remove_class keep the character references a page wrote in its classes.

lol-html hands the class attribute over as the page wrote it (`a&amp;b`, React's `&#x27;`):
those names must go back as they came, not escaped a second time, and compare by what they
mean.
"""

from __future__ import annotations

import pytest

from refract.proxy.rewriter import Edit, PageRewriter, Plan


def rewritten(classes: bytes, edit: Edit) -> bytes:
    page = b'<html><body><p class="' + classes + b'">x</p></body></html>'
    output = PageRewriter().rewrite(page, Plan(edits=(edit,)))
    return output.split(b"<p ")[1].split(b">")[0]


@pytest.mark.parametrize(
    ("classes", "edit", "attribute"),
    [
        (b"a&amp;b", Edit("add_class", "p", "new"), b'class="a&amp;b new"'),
        (b"it&#x27;s big", Edit("add_class", "p", "new"), b'class="it&#x27;s big new"'),
        (b"it&#x27;s big", Edit("remove_class", "p", "big"), b'class="it&#x27;s"'),
        (b"it&#x27;s big", Edit("remove_class", "p", "it's"), b'class="big"'),
        (b"a&amp;b", Edit("add_class", "p", "a&b"), b'class="a&amp;b"'),
        (b"a", Edit("add_class", "p", 'q"&<'), b'class="a q&quot;&amp;&lt;"'),
        (b"caf\xc3\xa9", Edit("add_class", "p", "th\xe9"), b'class="caf\xc3\xa9 th&#233;"'),
        (b"one\xc2\xa0two", Edit("remove_class", "p", "two"), b'class="one\xc2\xa0two"'),
    ],
    ids=[
        "named-reference-kept",
        "numeric-reference-kept",
        "another-removed",
        "compared-decoded",
        "present-decoded",
        "added-escaped-once",
        "added-as-ascii",
        "no-break-space-separates-nothing",
    ],
)
def test_class_edits_keep_the_references_written(
    classes: bytes, edit: Edit, attribute: bytes
) -> None:
    assert rewritten(classes, edit) == attribute
