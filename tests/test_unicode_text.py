"""The characters that are not drawn but change how text reads, in one list
(rules/unicode_text.py): every format character Unicode defines, and the fillers."""

from __future__ import annotations

import sys
import unicodedata

import pytest

from refract.rules.unicode_text import BIDI_CONTROLS, without_invisible

FORMAT_CHARACTERS = [
    chr(code) for code in range(sys.maxunicode + 1) if unicodedata.category(chr(code)) == "Cf"
]


def test_every_format_character_is_removed() -> None:
    kept = [c for c in FORMAT_CHARACTERS if without_invisible(f"a{c}b") != "ab"]
    assert kept == [], [f"U+{ord(c):04X}" for c in kept]


@pytest.mark.parametrize(
    "invisible",
    ["\u034f", "\u115f", "\u1160", "\u3164", "\uffa0"],
    ids=["grapheme-joiner", "choseong-filler", "jungseong-filler", "hangul-filler", "halfwidth"],
)
def test_letters_drawn_as_nothing_are_removed(invisible: str) -> None:
    assert without_invisible(f"demo{invisible * 3}") == "demo"


def test_the_bidi_controls_are_among_them() -> None:
    assert without_invisible(BIDI_CONTROLS) == ""


@pytest.mark.parametrize(
    "text", ["Ελλάδα עברית", "Müller & Söhne", "東京", "emoji 🎉", "a\u0301"], ids=str
)
def test_text_that_is_drawn_is_kept(text: str) -> None:
    assert without_invisible(text) == text
