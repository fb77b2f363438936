"""May the beacon run on a page under its Content-Security-Policy, and with which nonce?

Refract must never make a customer's page log a CSP violation (nor send one to the site's
report-uri): a beacon the policy blocks collects nothing and reports on every page view. So
a page's policies are read (CSP Level 3, https://www.w3.org/TR/CSP3/), only as far as this
question needs: would they let the page load the beacon, a parser-inserted external script at
``{prefix}beacon.js`` of the page's own origin, and let it POST to ``{prefix}collect`` there?

- The script's directive is the first of script-src-elem, script-src, default-src; the posts'
  is connect-src, then default-src. No such directive: nothing blocked.
- A source list allows the URL through ``*``, ``'self'``, a scheme source or a host source
  (with its port and path), or the script through a ``'nonce-…'`` it carries. For scripts,
  ``'strict-dynamic'`` disables all but nonces and hashes; a hash needs the script's text or
  an integrity attribute, which the beacon has not: hashes allow nothing here, and neither do
  ``'unsafe-inline'`` and the other keywords, which are about inline code.
- Every policy must allow (the header may be sent several times, and one field may hold
  several policies separated by commas). Report-Only policies count too: they do not block,
  but each page view would send their report, which is what this module is there to prevent.
- Whenever the reading is unsure (a host that is an IP address, a source it cannot parse),
  the answer is "blocked": a page without its beacon is counted, a violation is not.

Policies of a ``<meta http-equiv>`` are read by the rewriter, which knows neither the page's
scheme nor its host (its output is cached for every host of a site): ``meets_meta_policies``
judges them without those, taking only what holds for any origin.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

from yarl import URL

HEADERS = ("Content-Security-Policy", "Content-Security-Policy-Report-Only")
# Past this many characters of policy text a page is not worth reading: its beacon is left out.
MAX_POLICY_CHARS = 64 * 1024

_SCRIPT_DIRECTIVES = ("script-src-elem", "script-src", "default-src")
_CONNECT_DIRECTIVES = ("connect-src", "default-src")
# Only ASCII whitespace separates (a no-break space does not: "'self'\xa0x" is one token).
_ASCII_WHITESPACE = re.compile(r"[\t\n\f\r ]+")
# CSP3 nonce-source: 'nonce-' base64-value. Only such a value goes into our tag, so it cannot
# carry a quote or anything else that would end the attribute.
_NONCE = re.compile(r"'nonce-([A-Za-z0-9+/_-]+={0,2})'", re.IGNORECASE | re.ASCII)
# re.ASCII: without it IGNORECASE lets [a-z] match the Kelvin sign and the long s.
_SCHEME_SOURCE = re.compile(r"([a-z][a-z0-9+.-]*):", re.IGNORECASE | re.ASCII)
_HOST_SOURCE = re.compile(
    r"(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?"
    r"(?P<host>\*|(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*)"
    r"(?::(?P<port>[0-9]+|\*))?"
    r"(?P<path>/[^?#]*)?",
    re.IGNORECASE | re.ASCII,
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the beacon goes in, and the nonce its tag must carry ("" for none)."""

    inject: bool
    nonce: str = ""


ALLOWED = Verdict(True)
BLOCKED = Verdict(False)


@dataclass(frozen=True, slots=True)
class _Page:
    """The page's origin as the browser knows it; the beacon's URLs are on it."""

    scheme: str  # "http" or "https"
    host: str  # lowercase; an IP address as yarl writes it
    port: int | None  # None for the scheme's default, as a URL's port is (WHATWG URL)


Policy = dict[str, tuple[str, ...]]


def nonce_attribute(nonce: str) -> str:
    """The attribute a tag carries a nonce in (``nonce`` is a checked base64 value)."""
    return f' nonce="{nonce}"'


def policy_texts(fields: Iterable[str]) -> tuple[str, ...]:
    """The policies in header fields' values: a field may hold several, comma-separated."""
    return tuple(text for value in fields for text in value.split(","))


def beacon_verdict(fields: tuple[str, ...], scheme: str, host: str, prefix: str) -> Verdict:
    """The verdict for a page whose CSP header fields (both dispositions) are ``fields``,
    asked for as ``scheme://host``, Refract's paths under ``prefix``."""
    if not fields:
        return ALLOWED
    if sum(len(value) for value in fields) > MAX_POLICY_CHARS:
        return BLOCKED
    return _verdict(fields, scheme, host, prefix)


@functools.lru_cache(maxsize=256)  # a site's fixed policy, read once; nonce policies miss
def _verdict(fields: tuple[str, ...], scheme: str, host: str, prefix: str) -> Verdict:
    page = _page(scheme, host)
    policies = [parse_policy(text) for text in policy_texts(fields)]
    if any("sandbox" in policy for policy in policies):
        return BLOCKED  # no scripts at all, or an opaque origin its posts would fail from
    if not all(_allows_connect(policy, page, prefix + "collect") for policy in policies):
        return BLOCKED
    needed = []  # per policy that only a nonce satisfies: the nonces it accepts
    for policy in policies:
        by_url, nonces = _script_allowance(policy, page, prefix + "beacon.js")
        if not by_url:
            needed.append(nonces)
    if not needed:
        return ALLOWED
    common = [nonce for nonce in needed[0] if all(nonce in other for other in needed[1:])]
    return Verdict(True, common[0]) if common else BLOCKED


def meets_meta_policies(texts: Iterable[str], tail: str) -> bool:
    """Do ``<meta>`` policies let the beacon's tag ``tail`` (with its nonce, if it carries
    one) run and post, on any origin? Only what needs no origin allows: ``*``, ``'self'``,
    ``http:`` (which covers https too), and the nonce the tag carries."""
    texts = list(texts)
    if sum(len(text) for text in texts) > MAX_POLICY_CHARS:
        return False
    for text in texts:
        policy = parse_policy(text)
        if not _allows_connect(policy, None, ""):
            return False
        by_url, nonces = _script_allowance(policy, None, "")
        if not by_url and not any(nonce_attribute(nonce) in tail for nonce in nonces):
            return False
    return True


def parse_policy(text: str) -> Policy:
    """CSP3 "parse a serialized CSP": directives split on ";", names ASCII case-insensitive,
    the first of a name wins (a later duplicate is ignored, as browsers do), values split on
    ASCII whitespace."""
    policy: Policy = {}
    for token in text.split(";"):
        parts = [part for part in _ASCII_WHITESPACE.split(token) if part]
        # A name outside ASCII is no directive's (str.lower would fold the Kelvin sign to k).
        if not parts or not parts[0].isascii():
            continue
        name = parts[0].lower()
        if name not in policy:
            policy[name] = tuple(parts[1:])
    return policy


def _page(scheme: str, host: str) -> _Page | None:
    """The page's origin, None when it cannot be told (then only origin-free sources allow)."""
    try:
        url = URL(f"{scheme}://{host}/")
    except ValueError:
        return None
    scheme = scheme.lower()
    if not url.host or scheme not in _DEFAULT_PORTS:
        return None
    port = url.explicit_port
    return _Page(scheme, url.host.lower(), None if port == _DEFAULT_PORTS[scheme] else port)


def _sources(policy: Policy, directives: tuple[str, ...]) -> tuple[str, ...] | None:
    """The source list in force for a fetch (the first directive present), None if none is."""
    for name in directives:
        if name in policy:
            return policy[name]
    return None


def _allows_connect(policy: Policy, page: _Page | None, path: str) -> bool:
    sources = _sources(policy, _CONNECT_DIRECTIVES)
    return sources is None or any(_url_matches(s, page, path) for s in sources)


def _script_allowance(
    policy: Policy, page: _Page | None, path: str
) -> tuple[bool, tuple[str, ...]]:
    """Does the policy allow the beacon's URL as it is, and which nonces would allow it?"""
    sources = _sources(policy, _SCRIPT_DIRECTIVES)
    if sources is None:
        return True, ()
    nonces = tuple(dict.fromkeys(m[1] for s in sources if (m := _NONCE.fullmatch(s))))
    if any(source.lower() == "'strict-dynamic'" for source in sources):
        return False, nonces  # CSP3 8.2: only nonces and hashes load a parser-inserted script
    return any(_url_matches(s, page, path) for s in sources), nonces


def _url_matches(source: str, page: _Page | None, path: str) -> bool:
    """CSP3 "does url match expression in origin", for a URL on the page's own origin, at
    ``path``. With ``page`` None (not known), only what matches on any origin does."""
    if not source.isascii():
        return False  # no valid source expression: browsers ignore it
    lowered = source.lower()
    if lowered in ("*", "'self'"):
        return True  # '*': any http(s) URL; 'self': the page's own origin
    if lowered.startswith("'"):
        return False  # other keywords, nonces, hashes: not a URL's
    if scheme := _SCHEME_SOURCE.fullmatch(source):
        return _scheme_matches(scheme[1].lower(), page.scheme if page else None)
    host_source = _HOST_SOURCE.fullmatch(source)
    if host_source is None or page is None:
        return False
    return _host_source_matches(host_source, page, path)


def _scheme_matches(expected: str, scheme: str | None) -> bool:
    """CSP3 "scheme-part match": http also admits https (an upgrade). An unknown scheme is
    one of http and https: only ``http:`` covers both."""
    if scheme is None:
        return expected == "http"
    return expected == scheme or (expected == "http" and scheme == "https")


def _host_source_matches(source: re.Match[str], page: _Page, path: str) -> bool:
    scheme, host = source["scheme"], source["host"].lower()
    if scheme is not None and not _scheme_matches(scheme.lower(), page.scheme):
        return False
    if not _host_matches(host, page.host):
        return False
    if not _port_matches(source["port"] or "", page):
        return False
    return _path_matches(source["path"] or "", path)


def _host_matches(pattern: str, host: str) -> bool:
    """CSP3 "host-part match": an IP address matches no host source (browsers differ, so it
    is taken as blocking)."""
    if _is_ip(host):
        return False
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return pattern == host


def _port_matches(pattern: str, page: _Page) -> bool:
    """CSP3 "port-part match": no port is the URL's default one, as is the default written."""
    if pattern == "*":
        return True
    wanted = int(pattern) if pattern else None
    return wanted == page.port or (page.port is None and wanted == _DEFAULT_PORTS[page.scheme])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _path_matches(pattern: str, path: str) -> bool:
    """CSP3 "path-part match": a pattern ending in "/" is a prefix of whole segments, any
    other must equal the path; both compared percent-decoded."""
    if not pattern or (pattern == "/" and not path):
        return True
    exact = not pattern.endswith("/")
    wanted, given = pattern.split("/"), path.split("/")
    if len(wanted) > len(given) or (exact and len(wanted) != len(given)):
        return False
    if not exact:
        wanted = wanted[:-1]
    return all(unquote(a) == unquote(b) for a, b in zip(wanted, given, strict=False))
