"""Header rules of a well-behaved reverse proxy (RFC 9110, RFC 9111, RFC 6265)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from itertools import chain

import xxhash
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

# RFC 9110 section 7.6.1: connection-specific fields never cross a proxy.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# CDN-targeted cache directives override Cache-Control at the edge (RFC 9213 and vendors').
_CDN_CACHE_HEADERS = re.compile(r"^(surrogate-control|(?:[a-z0-9-]+-)?cdn-cache-control)$", re.I)
_COOKIE_DOMAIN = re.compile(r";\s*domain\s*=\s*([^;]*)", re.I)
# The scheme and authority a URL reference starts with, if it names a host (RFC 3986 section
# 3: "//" and what runs to the path, query or fragment).
_NAMED_HOST = re.compile(r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):)?//(?P<authority>[^/?#]*)")
# RFC 9110 section 5.5: what a field may not carry (HTAB is allowed); aiohttp refuses to write
# them, and they would split a header.
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # CR and LF are counted
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[^"]*")\s*(?:,|$)')
# Our validators for pages (page_etag), told apart from an origin's by their prefix.
_PAGE_ETAG_PREFIX = '"rf-'
# Sec-Fetch-Dest of a navigation: a document the browser will show as a page.
_DOCUMENT_DESTINATIONS = frozenset({"document", "iframe", "frame"})
# Sec-Fetch-Dest of a subresource no browser shows as a page (Fetch's destinations less
# document, frame, iframe, embed, object and the empty one of fetch() and prefetches).
_ASSET_DESTINATIONS = frozenset(
    {
        "audio",
        "audioworklet",
        "font",
        "image",
        "json",
        "manifest",
        "paintworklet",
        "report",
        "script",
        "serviceworker",
        "sharedworker",
        "style",
        "track",
        "video",
        "worker",
        "xslt",
    }
)
# The last path segment's extensions of assets, downloads and data, never pages.
_ASSET_EXTENSIONS = frozenset(
    {
        *("css", "js", "mjs", "map", "wasm", "json", "txt", "bin"),
        *("png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico", "bmp", "tif", "tiff"),
        *("woff", "woff2", "ttf", "otf", "eot"),
        *("mp4", "webm", "ogg", "mp3", "wav", "m4a", "m4v", "mov", "vtt"),
        *("pdf", "zip", "gz", "tgz", "bz2", "xz", "7z", "rar", "dmg", "exe", "msi"),
    }
)
# Header fields one message may carry, either way (aiohttp's default is 128: a page setting
# many cookies or preload links passes it). The size of each stays server.max_header_bytes.
MAX_FIELDS = 1000
_TOO_MANY_FIELDS = "Too many headers received"  # aiohttp's parsers' message, C and Python

Headers = CIMultiDict[str]
ReadHeaders = CIMultiDictProxy[str] | CIMultiDict[str]


def without_hop_by_hop(
    headers: ReadHeaders, drop: Iterable[str] = (), drop_if: Callable[[str], bool] | None = None
) -> Headers:
    """A copy without hop-by-hop fields, those named in Connection, ``drop``, and those whose
    lower-cased name ``drop_if`` is true of (each name lower-cased once)."""
    excluded = _excluded(headers, drop)
    kept: Headers = CIMultiDict()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered not in excluded and not (drop_if is not None and drop_if(lowered)):
            kept.add(name, value)
    return kept


def forwardable(headers: ReadHeaders) -> tuple[Headers, list[str]]:
    """A response's fields as a proxy may pass them on, in one copy: without hop-by-hop fields
    (and those named in Connection), and without those whose name or value carries a control
    character; and the names of the latter."""
    excluded = _excluded(headers, ())
    kept: Headers = CIMultiDict()
    dropped = []
    suspect = has_control_character("\t".join(chain.from_iterable(headers.items())))
    for name, value in headers.items():
        if name.lower() in excluded:
            continue
        if suspect and has_control_character(name + value):
            dropped.append(name)
        else:
            kept.add(name, value)
    return kept, dropped


def _excluded(headers: ReadHeaders, drop: Iterable[str]) -> frozenset[str]:
    """The lower-case names ``without_hop_by_hop`` leaves out."""
    if not drop and "Connection" not in headers:
        return HOP_BY_HOP  # most messages: no Connection, nothing more to drop
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
    }
    return HOP_BY_HOP | named | {name.lower() for name in drop}


def rewrite_location(value: str, origin: URL, public_base: str) -> str:
    """Point a redirect at the public site when the origin named itself in it.

    Only the scheme and authority change: the rest passes as the origin wrote it, character
    for character (so byte for byte, wire.py), since a signature over the query or a path in a
    legacy encoding must still hold; a URL parser would decode, re-quote or drop some of it.

    An empty ``public_base`` means no public host is known (a ``host = "*"`` site without
    ``public_host``): the redirect becomes relative (RFC 9110 section 10.2.2), so the browser
    stays on the host it asked for and no visitor-sent Host is ever written into it.
    """
    named = _NAMED_HOST.match(value)
    if named is None or not _names_origin(named["scheme"], named["authority"], origin):
        return value
    rest = value[named.end() :]
    if not rest.startswith("/"):
        rest = f"/{rest}"  # "http://origin?q" is the origin's root with a query
    if not public_base and rest.startswith("//"):
        rest = f"/.{rest}"  # "//x" alone would name another host (RFC 3986 section 4.2)
    return f"{public_base}{rest}"


def _names_origin(scheme: str | None, authority: str, origin: URL) -> bool:
    """Does a URL's scheme (None when scheme-relative) and authority name the origin: its
    host, and its port (a scheme's default one when none is written)?"""
    try:
        named = URL(f"{scheme}://{authority}" if scheme else f"//{authority}")
    except ValueError:
        return False  # no host a parser takes: not the origin's
    if not named.host or named.host != (origin.host or "").lower():
        return False
    if scheme:
        return (named.scheme, named.port) == (origin.scheme, origin.port)
    return named.explicit_port is None or named.port == origin.port


def domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 section 5.1.3."""
    host, domain = host.lower(), domain.lower().lstrip(".")
    return host == domain or host.endswith("." + domain)


def rewrite_set_cookie(value: str, public_host: str, cookie_domain: str) -> str:
    """Keep an origin cookie usable on the public host.

    A Domain the public host does not belong to would make the browser drop the cookie; it
    becomes the configured cookie domain when that covers the host, else the cookie is made
    host-only. Everything else in the header stays as the origin wrote it.
    """
    match = _COOKIE_DOMAIN.search(value)
    if match is None or domain_matches(public_host, match[1].strip()):
        return value
    if cookie_domain and domain_matches(public_host, cookie_domain):
        return value[: match.start(1)] + cookie_domain + value[match.end(1) :]
    return value[: match.start()] + value[match.end() :]


def page_cache_control(value: str | None) -> str:
    """Cache-Control for a personalized page: only the visitor's browser may keep it, and it
    must ask again before every use (``no-cache``), so a change of variant or segment shows
    on the next navigation; the origin's ``no-store`` stays."""
    return "private, no-store" if has_directive(value, "no-store") else "private, no-cache"


def page_etag(body: bytes) -> str:
    """Our validator for the bytes of a page we served: one variant, in one coding.

    Unseeded XXH3-128, so every process and node gives a page the same tag (3 us for 100 KB);
    a crafted collision could only make one visitor's own browser keep its own copy.
    """
    return f'{_PAGE_ETAG_PREFIX}{xxhash.xxh3_128_hexdigest(body)}"'


def none_match(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 section 13.1.2: does If-None-Match name ``etag`` (weak comparison) or ``*``?"""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return etag in (match[1] for match in _ENTITY_TAG.finditer(if_none_match))


def weakly_equal(one: str, other: str) -> bool:
    """RFC 9110 section 8.8.3.2's weak comparison of two entity tags: equal without ``W/``."""
    return _opaque(one) == _opaque(other)


def _opaque(etag: str) -> str:
    etag = etag.strip()
    return etag[2:] if etag.startswith("W/") else etag


def names_page_etag(if_none_match: str | None) -> bool:
    """The visitor's validators include one of ours: they hold a page we served."""
    return _PAGE_ETAG_PREFIX in (if_none_match or "")


def is_navigation(headers: Mapping[str, str]) -> bool:
    """A request for a document the browser will show (Fetch metadata; for browsers without
    it, an Accept that names HTML)."""
    destination = headers.get("Sec-Fetch-Dest")
    if destination is not None:
        return destination.lower() in _DOCUMENT_DESTINATIONS
    return "text/html" in headers.get("Accept", "")


def is_asset_request(headers: Mapping[str, str], path: str) -> bool:
    """A request for a subresource that is no page: by Fetch metadata's destination (an
    image, style, script...), or by its path's extension (``.css``, ``.png``, ``.woff2``...)."""
    destination = headers.get("Sec-Fetch-Dest")
    if destination is not None and destination.lower() in _ASSET_DESTINATIONS:
        return True
    segment = path.rpartition("/")[2]
    return "." in segment and segment.rpartition(".")[2].lower() in _ASSET_EXTENSIONS


def set_cookie_name(value: str) -> str | None:
    """The name of the cookie a Set-Cookie field sets (RFC 6265 section 5.2: its first pair up
    to "=", blanks trimmed), or None when that pair has no "=" (a cookie without a name)."""
    name, equals, _ = value.partition(";")[0].partition("=")
    return name.strip(" \t") if equals else None


def refused_head(error: BaseException) -> str | None:
    """Why aiohttp's parser refused a message's head, when it was its size: a request line,
    status line or field over ``server.max_header_bytes`` ("header_too_large"), more than
    ``MAX_FIELDS`` fields ("too_many_headers"); None for any other fault. aiohttp's client
    raises its own error from a copy of the parser's: the causes are followed."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, LineTooLong):
            return "header_too_large"
        if isinstance(cause, HttpProcessingError) and cause.message == _TOO_MANY_FIELDS:
            return "too_many_headers"
        cause = cause.__cause__
    return None


def is_fetched_by_script(headers: Mapping[str, str]) -> bool:
    """A request a page's script made (fetch, XMLHttpRequest, htmx, jQuery's ``load``): Fetch
    metadata's destination ``empty``; for browsers without it, the fields htmx and jQuery add."""
    destination = headers.get("Sec-Fetch-Dest")
    if destination is not None:
        return destination.lower() == "empty"
    requested_with = headers.get("X-Requested-With", "")
    return "HX-Request" in headers or requested_with.lower() == "xmlhttprequest"


# RFC 9110 section 5.6.2's token: a disposition type must be one
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")


def is_download(content_disposition: str | None) -> bool:
    """Whether the body is a file to save, not something to show: any disposition type but
    ``inline``, since RFC 6266 section 4.2 has an unknown type handled as ``attachment`` (as
    Chromium and Firefox do: ``download``, ``form-data`` save the file). No field, one with
    no type, or one whose type is not a token (``filename=x.html``, ``"inline"``, ``in line``:
    a field browsers read as invalid, showing the body) is shown."""
    kind = (content_disposition or "").split(";", 1)[0].strip().lower()
    return _TOKEN.fullmatch(kind) is not None and kind != "inline"


def has_control_character(text: str) -> bool:
    return _CONTROL_CHARACTER.search(text) is not None


def has_undecodable_bytes(raw_headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Does a field value carry bytes that are not UTF-8 (a windows-1252 ``caf\\xe9``)?

    aiohttp's server hands them over as lone surrogates (``surrogateescape``) and its client
    cannot write them back: its C writer drops them (``caf``, and ``adm\\xffin`` would reach
    the origin as ``admin``), its Python one raises. (A field name is a token: aiohttp's parser
    refuses any other byte in one.)"""
    values = b"\n".join(value for _, value in raw_headers)  # no sequence spans two values
    if values.isascii():
        return False
    try:
        values.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def with_replacement_characters(headers: CIMultiDict[str]) -> CIMultiDict[str]:
    """``headers`` with each byte that is not UTF-8 as U+FFFD, as a UTF-8 decoder reads it: what
    aiohttp's client can send in its place. Nothing is dropped or joined, and a visitor whose
    browser holds such a cookie (an origin may set one) still gets the site."""
    return CIMultiDict(
        (name, value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        for name, value in headers.items()
    )


def splits_lines(block: bytes, lines: int) -> bool:
    """Do ``lines`` lines, each ended by CRLF, carry a control character within a line?
    Checked on the bytes at once, in C: no control byte but CR and LF, and exactly the CRs
    and LFs of the line ends (UTF-8 and surrogateescape write no byte below 0x80 for a
    character that is not ASCII)."""
    return (
        _CONTROL_BYTE.search(block) is not None
        or block.count(b"\r") != lines
        or block.count(b"\n") != lines
    )


def is_cdn_cache_header(name: str) -> bool:
    return _CDN_CACHE_HEADERS.match(name) is not None


def add_vary(headers: Headers, field: str) -> None:
    tokens = [
        t.strip() for value in headers.getall("Vary", ()) for t in value.split(",") if t.strip()
    ]
    if "*" in tokens or field.lower() in (t.lower() for t in tokens):
        return
    headers.popall("Vary", None)
    headers["Vary"] = ", ".join([*tokens, field])


def has_directive(value: str | None, directive: str) -> bool:
    return directive in (d.strip().lower() for d in (value or "").split(","))
