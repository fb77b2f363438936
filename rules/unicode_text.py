"""Characters that change how text reads without being seen, in one list for every place that
shows text a visitor or a CRM chose: the dashboard (admin/dashboard_views.py shows the bidi
controls as code points) and alerts and CRM records (analytics/automations/render.py removes
them all)."""

from __future__ import annotations

import re
from typing import Final

# Marks, embeddings, overrides and isolates: "/files/invoice-\u202efdp.exe" reads
# "/files/invoice-exe.pdf", and an unterminated one reorders what follows it.
BIDI_CONTROLS: Final = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

# Every format character (Unicode category Cf: the bidi controls, zero-width spaces and
# joiners, the soft hyphen, the BOM, interlinear annotations, tag characters, which can spell
# hidden ASCII), the combining grapheme joiner and the Hangul fillers (letters drawn as nothing)
_INVISIBLE: Final = re.compile(
    "[\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f]+"
)


def without_invisible(text: str) -> str:
    """``text`` without the characters that are not drawn but change how it reads."""
    return _INVISIBLE.sub("", text)
