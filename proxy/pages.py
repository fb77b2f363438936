"""Small neutral pages Refract answers with itself when it cannot reach an origin."""

from __future__ import annotations

from http import HTTPStatus

from refract.proxy.wire import WireResponse

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{code} {phrase}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:15vh auto;
padding:0 1rem;color:#222}}</style>
</head><body><h1>{phrase}</h1><p>{message}</p></body></html>
"""


def neutral_page(status: int, message: str) -> WireResponse:
    """Refract's own page, its head written by wire.py: it names no server software."""
    phrase = HTTPStatus(status).phrase
    return WireResponse(
        status=status,
        text=_TEMPLATE.format(code=status, phrase=phrase, message=message),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )
