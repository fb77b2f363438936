"""Domain names: a company's domain as a CRM holds it, the domain a host name was registered
under, and free-mail providers.

Where a name was registered comes from the Public Suffix List, the list browsers use for
cookie scopes, as the ``publicsuffixlist`` package bundles it (nothing is fetched):
``mail.acme.co.uk`` is ``acme.co.uk``, ``foo.github.io`` is ``foo.github.io`` (GitHub hands
out the names below github.io), ``x.acme.kyoto.jp`` is ``acme.kyoto.jp``. Both sections of the
list count, the registries' and the private one (github.io, herokuapp.com, s3.amazonaws.com):
a name below either belongs to whoever registered it, not to the suffix's operator. A
top-level domain the list does not know (``.internal``) is a public suffix, as the list's
default rule says.
"""

from __future__ import annotations

import re
from typing import Final

from publicsuffixlist import PublicSuffixList

from refract.rules.problems import FieldError

# Loaded once, at import (about 40 ms and 2 MB), so that no event loop waits for it.
_SUFFIXES: Final = PublicSuffixList()

# Free-mail providers: an address there says nothing about the visitor's employer. Exact
# registrable domains, plus brands whose every country domain is free mail (gmx.de, gmx.at,
# gmx.net, yahoo.co.uk, hotmail.fr, outlook.de, ...).
FREE_MAIL_DOMAINS: Final = frozenset(
    {"gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com"}
    | {"yahoo.com", "ymail.com", "rocketmail.com", "aol.com", "aim.com", "icloud.com"}
    | {"me.com", "mac.com", "proton.me", "pm.me", "protonmail.com", "protonmail.ch"}
    | {"tutanota.com", "tutanota.de", "tuta.io", "tuta.com", "fastmail.com", "hey.com"}
    | {"mail.com", "email.com", "zohomail.com", "yandex.com", "yandex.ru", "mail.ru"}
    | {"web.de", "t-online.de", "freenet.de", "posteo.de", "mailbox.org", "gmx.com"}
    | {"orange.fr", "free.fr", "laposte.net", "sfr.fr", "libero.it", "virgilio.it"}
    | {"seznam.cz", "wp.pl", "o2.pl", "interia.pl", "btinternet.com", "sky.com"}
    | {"virginmedia.com", "comcast.net", "verizon.net", "att.net", "qq.com", "163.com"}
    | {"126.com", "naver.com", "daum.net", "rediffmail.com", "hushmail.com", "inbox.lv"}
)
FREE_MAIL_BRANDS: Final = frozenset(
    {"gmail", "googlemail", "gmx", "hotmail", "outlook", "yahoo", "ymail", "aol", "yandex"}
    | {"protonmail", "windowslive"}
)

LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A label of a name seen in DNS (PTR records, e-mail domains): more lenient than ``LABEL``,
# which is what a company may register (``_dmarc``, ``-gw1`` occur in the wild).
_DNS_LABEL = re.compile(r"[a-z0-9_-]{1,63}")
_URL_TAIL = re.compile(r"[/?#\\]")


def _host_name(host: str) -> str | None:
    """A host name in lower-case ASCII (punycode) without the trailing dot; None when it
    cannot be one: empty labels, spaces or other characters DNS names do not hold, a numeric
    last label (an IPv4 address), or an internationalised name IDNA refuses."""
    name = host.strip().lower().rstrip(".")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None
    return name


def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a suffix under which others register names (``com``, ``co.uk``,
    ``github.io``, and any single label such as ``localhost``)."""
    name = _host_name(domain)
    return name is not None and _SUFFIXES.is_public(name)


def registrable_domain(host: str) -> str | None:
    """The domain a company registered: ``mail-gw1.acme.co.uk`` -> ``acme.co.uk``.

    The public suffix and the label before it, in lower-case punycode; None for a public
    suffix itself (``co.uk``), a single label (``localhost``), an IP address or anything that
    is not a host name.
    """
    name = _host_name(host)
    if name is None:
        return None
    return _SUFFIXES.privatesuffix(name)


def normalise_domain(text: str) -> str:
    """A company's domain as the CRM may hold it -> ``acme.com``.

    CRMs hold websites rather than domains (``https://www.Acme.com/en/``), so the scheme,
    ``www.``, port, path and trailing dot go; internationalised names become punycode, the form
    DNS and e-mail use. Raises ``FieldError`` for anything that is not a registrable name.
    """
    value = text.strip().lower()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = _URL_TAIL.split(value.removeprefix("//"), maxsplit=1)[0]
    value = value.rsplit("@", 1)[-1]
    host, _, port = value.rpartition(":")
    if host and port.isdigit():
        value = host
    value = value.rstrip(".")
    if value.startswith("www.") and value.count(".") >= 2:
        value = value[4:]
    return _check_domain(_to_ascii(value), text)


def _to_ascii(value: str) -> str:
    if value.isascii():
        return value
    try:
        return value.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise FieldError(
            f"{value!r} is not a valid internationalised domain name",
            "write it in punycode (xn--...) as your registrar shows it",
        ) from error


def _check_domain(value: str, original: str) -> str:
    hint = "a company's web domain such as acme.com; a URL is fine, its path is ignored"
    if not value:
        raise FieldError("is empty", hint)
    labels = value.split(".")
    if len(labels) == 1 and LABEL.fullmatch(value):
        raise FieldError(f"{original.strip()!r} lacks a top-level domain", hint)
    if len(value) > 253 or not all(LABEL.fullmatch(label) for label in labels):
        raise FieldError(f"{original.strip()!r} is not a domain name", hint)
    if labels[-1].isdigit():
        raise FieldError(
            f"{original.strip()!r} is an IP address, not a domain", "put it in ip_ranges"
        )
    if is_public_suffix(value):
        raise FieldError(f"{value!r} is a public suffix, not a company's domain", hint)
    return value


def is_free_mail(domain: str) -> bool:
    """Whether addresses at ``domain`` (or a subdomain of it) are free mail, not an employer's."""
    registered = registrable_domain(domain)
    if registered is None:
        return False
    return (
        domain in FREE_MAIL_DOMAINS
        or registered in FREE_MAIL_DOMAINS
        or registered.partition(".")[0] in FREE_MAIL_BRANDS
    )
