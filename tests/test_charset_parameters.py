"""The encoding a page is read in is the one a browser picks: Content-Type parsed as a MIME
type (Fetch's "extract a MIME type": parameters, quoted strings with backslash escapes, the
first ``charset`` parameter, the last type), labels as the Encoding Standard lists them (one
it does not list, however well Python knows it, leaves the choice to ``<meta>``), an XML
declaration opening the page, and the first ``<meta>`` HTML's prescan finds naming a label (not
one in a comment, a script or another attribute). A page in ISO-2022-JP or UTF-16 is never
rewritten."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refract.proxy import charset
from refract.proxy.charset import is_ascii_safe, page_encoding
from refract.proxy.state import beacon_tag
from tests.conftest import ProxyFactory
from tests.support.raw_origin import RawOrigin, page_answer, raw_origin_fixture  # noqa: F401

META_JIS = b"<html><head><meta charset=iso-2022-jp></head><body></body></html>"
PLAIN = b"<html><body><p>no meta</p></body></html>"

# (Content-Type, body, the encoding a browser uses, rewritable)
ENCODINGS = [
    ('text/html; x="charset=utf-8"; charset=iso-2022-jp', PLAIN, "ISO-2022-JP", False),
    ('text/html; x="a\\"charset=utf-8"; charset=iso-2022-jp', PLAIN, "ISO-2022-JP", False),
    ('text/html; x="a;charset=utf-8"; charset=iso-2022-jp', PLAIN, "ISO-2022-JP", False),
    ('text/html; x="a, text/html;charset=utf-8"; charset=iso-2022-jp', PLAIN, "ISO-2022-JP", False),
    ("text/html; xcharset=utf-8; charset=iso-2022-jp", PLAIN, "ISO-2022-JP", False),
    ("text/html; charset =utf-8; charset=iso-2022-jp", PLAIN, "ISO-2022-JP", False),
    ("text/html; charset=utf-8, text/html; charset=iso-2022-jp", PLAIN, "ISO-2022-JP", False),
    ('text/html; charset=" iso-2022-jp "', PLAIN, "ISO-2022-JP", False),
    ('text/html; charset="iso\\-2022-jp"', PLAIN, "ISO-2022-JP", False),
    ("text/html; charset='utf-8'", META_JIS, "ISO-2022-JP", False),
    ('text/html; charset="utf-8€"; charset=iso-2022-jp', PLAIN, "UTF-8", True),
    ("text/html; charset=latin-1", META_JIS, "ISO-2022-JP", False),
    ("text/html; charset=utf_8", META_JIS, "ISO-2022-JP", False),
    ("text/html; charset=utf-7", PLAIN, "UTF-8", True),
    ("text/html; charset=x-user-defined", PLAIN, "x-user-defined", True),
    ("text/html; charset=unicode-1-1-utf-8", PLAIN, "UTF-8", True),
    ("text/html; charset=iso-8859-8-i", PLAIN, "ISO-8859-8-I", True),
    ("text/html", b"<meta charset=latin-1><meta charset=iso-2022-jp>", "ISO-2022-JP", False),
    ("text/html", b"<meta charset=utf-16><body>", "UTF-8", True),
    ("text/html", b"\xff\xfe\x00\x00<\x00\x00\x00", "UTF-16LE", False),
]
ENCODING_IDS = [
    "charset-inside-a-quoted-value",
    "charset-after-an-escaped-quote",
    "semicolon-inside-a-quoted-value",
    "comma-inside-a-quoted-value",
    "charset-inside-another-name",
    "name-with-a-space-is-no-name",
    "last-of-two-types",
    "quoted-label-with-spaces",
    "quoted-label-with-an-escape",
    "single-quotes-are-part-of-the-value",
    "the-first-charset-wins-though-no-label",
    "python-latin-1-is-no-label",
    "python-utf_8-is-no-label",
    "utf-7-is-no-label",
    "x-user-defined",
    "unicode-1-1-utf-8",
    "iso-8859-8-i",
    "first-meta-naming-a-label",
    "meta-utf-16-is-read-as-utf-8",
    "utf-32-bom-is-utf-16le",
]


@pytest.mark.parametrize(
    ("content_type", "body", "name", "rewritable"), ENCODINGS, ids=ENCODING_IDS
)
def test_the_page_encoding_is_the_one_a_browser_uses(
    content_type: str, body: bytes, name: str, rewritable: bool
) -> None:
    found = page_encoding(content_type, body)
    assert (found.lower(), is_ascii_safe(found)) == (name.lower(), rewritable)


# --- the page's own declaration: HTML's prescan of the first 1024 bytes, an XML declaration ---

HEAD = b"<!doctype html><html><head>"
JIS_TEXT = "日本語".encode("iso-2022-jp")

# (body, the encoding a browser uses); Content-Type is text/html without a charset.
DECLARATIONS = [
    (HEAD + b'<!-- <meta charset="utf-8"> --><meta charset="iso-2022-jp">', "ISO-2022-JP"),
    (
        HEAD + b'<meta name="description" content="charset=utf-8"><meta charset=iso-2022-jp>',
        "ISO-2022-JP",
    ),
    (HEAD + b'<meta data-charset="utf-8" charset="iso-2022-jp">', "ISO-2022-JP"),
    (
        HEAD + b'<script>var s="<meta charset=utf-8>";</script><meta charset="iso-2022-jp">',
        "ISO-2022-JP",
    ),
    (
        HEAD + b'<style>/* <meta charset=utf-8> */</style><meta charset="iso-2022-jp">',
        "ISO-2022-JP",
    ),
    (
        HEAD
        + b'<meta http-equiv="refresh" content="5; charset=utf-8">'
        + b'<meta content="text/html; charset=iso-2022-jp" http-equiv="Content-Type">',
        "ISO-2022-JP",
    ),
    (b'<?xml version="1.0" encoding="iso-2022-jp"?>\n<html><body><p>' + JIS_TEXT, "ISO-2022-JP"),
    (
        b"<?xml version='1.0' encoding='ISO-2022-JP'?><html xmlns='http://www.w3.org/1999/xhtml'>",
        "ISO-2022-JP",
    ),
    (b'<?xml version="1.0" encoding="iso-2022-jp"?><meta charset=utf-8>', "ISO-2022-JP"),
    (b"<!doctype html><!-- old: <meta charset='iso-2022-jp'> --><meta charset=utf-8><p>x", "UTF-8"),
    (b'<meta property="og:charset=iso-2022-jp" content="x"><meta charset=utf-8>', "UTF-8"),
    (b'<meta name=x content="text/html; charset=iso-2022-jp"><p>x', "UTF-8"),
    (b'<p title="<meta charset=iso-2022-jp>">x</p>', "UTF-8"),
    (b"<meta charset=iso-2022-jp", "UTF-8"),
]
# Read right before the prescan too: kept so.
KEPT_DECLARATIONS = [
    (HEAD + b'<!--><meta charset="iso-2022-jp">', "ISO-2022-JP"),
    (
        HEAD + b"<meta http-equiv=content-type content='text/html;charset=\"ISO-2022-JP\"'>",
        "ISO-2022-JP",
    ),
    (b" " * 1000 + b'<meta charset="iso-2022-jp">', "UTF-8"),
]
DECLARATION_IDS = [
    "meta-in-a-comment",
    "content-without-http-equiv",
    "data-charset",
    "meta-in-a-script-string",
    "meta-in-a-style-comment",
    "http-equiv-content-type-after-a-refresh",
    "xml-declaration",
    "xml-declaration-single-quotes",
    "xml-declaration-before-meta",
    "reverse-meta-in-a-comment",
    "reverse-charset-in-a-property-value",
    "reverse-content-without-http-equiv",
    "reverse-meta-in-an-attribute-value",
    "reverse-meta-cut-by-the-end",
    "comment-closed-by-its-own-dashes",
    "content-type-quoted-label",
    "meta-past-1024-bytes",
]


@pytest.mark.parametrize(("body", "name"), DECLARATIONS + KEPT_DECLARATIONS, ids=DECLARATION_IDS)
def test_the_page_declares_its_encoding_as_a_browser_reads_it(body: bytes, name: str) -> None:
    assert page_encoding("text/html", body) == name


# A <meta> the prescan must not read (hidden in a comment, a script, an attribute value, or an
# attribute that only ends in "charset") put before the one it must read changes nothing.
HIDDEN = st.sampled_from(
    [
        b"<!-- <meta charset=%s> -->",
        b"<script>x='<meta charset=%s>'</script>",
        b"<meta name=x content='charset=%s'>",
        b"<meta data-charset=%s>",
        b"<a title='<meta charset=%s>'>",
    ]
)
DECLARED = st.sampled_from(
    [
        (b"<meta charset=%s>", True),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=%s">', True),
        (b"<p class=%s>", False),
    ]
)
NAMES = {b"utf-8": "UTF-8", b"iso-2022-jp": "ISO-2022-JP", b"shift_jis": "Shift_JIS"}
NAMES[b"latin1"] = "windows-1252"


@settings(max_examples=300, deadline=None)
@given(
    # at most 12 (under 600 bytes): the page's meta stays within the prescan's 1024 bytes
    hidden=st.lists(
        st.tuples(HIDDEN, st.sampled_from([b"utf-8", b"iso-2022-jp", b"koi8-r"])), max_size=12
    ),
    declared=DECLARED,
    label=st.sampled_from(list(NAMES)),
)
def test_a_hidden_meta_does_not_change_the_encoding(
    hidden: list[tuple[bytes, bytes]], declared: tuple[bytes, bool], label: bytes
) -> None:
    tag, names_one = declared
    page = HEAD + b"".join(part % value for part, value in hidden) + tag % label + b"<body>"
    assert len(page) <= 1024
    assert page_encoding("text/html", page) == (NAMES[label] if names_one else "UTF-8")


JIS = b"\x1b$B</body>!\x1b(B"  # four kanji whose JIS bytes spell "</body>"
JIS_PAGE = b"<html><body><p>" + JIS + b"</p><p>end</p></body></html>"
JIS_META_PAGE = (
    b"<html><head><meta charset=iso-2022-jp></head><body><p>" + JIS + b"</p></body></html>"
)
ASCII_PAGE = b"<html><body><p>end</p></body></html>"


@pytest.mark.parametrize(
    ("content_type", "page", "rewritten"),
    [
        (b'text/html; x="charset=utf-8"; charset=iso-2022-jp', JIS_PAGE, False),
        (b"text/html; charset=utf-8, text/html; charset=iso-2022-jp", JIS_PAGE, False),
        (b'text/html; charset=" iso-2022-jp "', JIS_PAGE, False),
        (b"text/html; charset=latin-1", JIS_META_PAGE, False),
        (b"text/html; charset=utf-7", ASCII_PAGE, True),
    ],
    ids=["quoted-charset", "last-type", "quoted-spaces", "python-label-then-meta", "utf-7"],
)
async def test_a_page_is_rewritten_only_in_an_encoding_a_browser_reads_ascii_in(
    proxy: ProxyFactory, raw_origin: RawOrigin, content_type: bytes, page: bytes, rewritten: bool
) -> None:
    origin = await raw_origin(page_answer(page, content_type=content_type))
    client = await proxy(site={"origin": origin})
    served = await (await client.get("/", headers={"Sec-Fetch-Dest": "document"})).read()
    beacon = beacon_tag("/_refract/").encode()
    assert served == (page.replace(b"</body>", beacon + b"</body>") if rewritten else page)


# --- the MIME type parser against the standards' steps, one code point at a time --------------

HTTP_WHITESPACE = "\t\n\r "
TOKEN = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def is_quoted_string_token(text: str) -> bool:
    return all(c == "\t" or " " <= c <= "~" or "\x80" <= c <= "\xff" for c in text)


def ascii_lower(text: str) -> str:
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)


class Reader:
    """An input and a position, as the standards' algorithms read them."""

    def __init__(self, text: str) -> None:
        self.text, self.position = text, 0

    def past_end(self) -> bool:
        return self.position >= len(self.text)

    def char(self) -> str:
        return self.text[self.position]

    def collect(self, condition: Callable[[str], bool]) -> str:
        result = ""
        while not self.past_end() and condition(self.char()):
            result += self.char()
            self.position += 1
        return result

    def quoted_string(self, extract_value: bool) -> str:
        """Fetch, "collect an HTTP quoted string"."""
        start, value = self.position, ""
        assert self.char() == '"'
        self.position += 1
        while True:
            value += self.collect(lambda c: c not in '"\\')
            if self.past_end():
                break
            quote_or_backslash = self.char()
            self.position += 1
            if quote_or_backslash == "\\":
                if self.past_end():
                    value += "\\"
                    break
                value += self.char()
                self.position += 1
            else:
                assert quote_or_backslash == '"'
                break
        return value if extract_value else self.text[start : self.position]


def reference_parse(text: str) -> tuple[str, dict[str, str]] | None:
    """MIME Sniffing, "parse a MIME type", step by step."""
    reader = Reader(text.strip(HTTP_WHITESPACE))
    kind = reader.collect(lambda c: c != "/")
    if kind == "" or not set(kind) <= TOKEN:
        return None
    if reader.past_end():
        return None
    reader.position += 1
    subtype = reader.collect(lambda c: c != ";").rstrip(HTTP_WHITESPACE)
    if subtype == "" or not set(subtype) <= TOKEN:
        return None
    essence, parameters = ascii_lower(kind + "/" + subtype), {}
    while not reader.past_end():
        reader.position += 1
        reader.collect(lambda c: c in HTTP_WHITESPACE)
        name = ascii_lower(reader.collect(lambda c: c not in ";="))
        if not reader.past_end():
            if reader.char() == ";":
                continue
            reader.position += 1
        if reader.past_end():
            break
        if reader.char() == '"':
            value = reader.quoted_string(extract_value=True)
            reader.collect(lambda c: c != ";")
        else:
            value = reader.collect(lambda c: c != ";").rstrip(HTTP_WHITESPACE)
            if value == "":
                continue
        if name and set(name) <= TOKEN and is_quoted_string_token(value) and name not in parameters:
            parameters[name] = value
    return essence, parameters


def reference_split(text: str) -> list[str]:
    """Fetch, "get, decode, and split"."""
    reader, values, value = Reader(text), [], ""
    while True:
        value += reader.collect(lambda c: c not in '",')
        if not reader.past_end() and reader.char() == '"':
            value += reader.quoted_string(extract_value=False)
            if not reader.past_end():
                continue
        values.append(value.strip("\t "))
        value = ""
        if reader.past_end():
            return values
        assert reader.char() == ","
        reader.position += 1


def reference_charset(text: str) -> str | None:
    """Fetch, "extract a MIME type": the charset parameter of the type it gives."""
    charset: str | None = None
    essence: str | None = None
    mime: tuple[str, dict[str, str]] | None = None
    for value in reference_split(text):
        parsed = reference_parse(value)
        if parsed is None or parsed[0] == "*/*":
            continue
        mime = parsed
        if mime[0] != essence:
            charset = mime[1].get("charset")
            essence = mime[0]
        elif "charset" not in mime[1] and charset is not None:
            mime[1]["charset"] = charset
    return None if mime is None else mime[1].get("charset")


# The labels generated (as the Encoding Standard's table maps them) and whether an encoding is
# read as ASCII; random text is made of "x", "Z" and punctuation, which spell no label.
LABELS = {
    "utf-8": "utf-8",
    "iso-2022-jp": "iso-2022-jp",
    "latin1": "windows-1252",
    "utf-16": "utf-16le",
    "x-user-defined": "x-user-defined",
}
ASCII_SAFE = {"utf-8": True, "iso-2022-jp": False, "windows-1252": True, "utf-16le": False}
ASCII_SAFE["x-user-defined"] = True


def reference_encoding(content_type: str) -> str:
    """The encoding of a page without BOM or <meta>: the header's label, else UTF-8. Fetch
    reads the header's bytes (as they came: aiohttp's surrogateescape undone) one a character
    (isomorphic decoding)."""
    received = content_type.encode("utf-8", "surrogateescape").decode("latin-1")
    label = reference_charset(received)
    if label is None:
        return "utf-8"
    return LABELS.get(ascii_lower(label.strip("\t\n\x0c\r ")), "utf-8")


JUNK = st.text(alphabet=st.sampled_from(list('xZ"\\;=, \t\r\n/*()é€\udce9\x7f\xa0')), max_size=12)
LABEL = st.one_of(
    st.sampled_from(list(LABELS)),
    st.sampled_from(["UTF-8", "ISO-2022-JP", " latin1\t", "latin-1", "utf_8", ""]),
    JUNK,
)
QUOTED = st.builds(
    lambda label, escape, close, rest: (
        '"' + (label.replace("-", "\\-") if escape else label) + close + rest
    ),
    LABEL,
    st.booleans(),
    st.sampled_from(['"', "", '\\"', "\\"]),
    st.sampled_from(["", " ", "x", ";"]),
)
NAME = st.one_of(
    st.just("charset"),
    st.sampled_from(["CHARSET", "Charset", "charset ", "xcharset", "x", ""]),
    JUNK,
)
PARAMETER = st.builds(
    lambda space, name, value: ";" + space + name + value,
    st.sampled_from(["", " ", "\t", "\n"]),
    NAME,
    st.one_of(st.just(""), LABEL.map(lambda v: "=" + v), QUOTED.map(lambda v: "=" + v)),
)
TYPE = st.builds(
    lambda essence, parameters: essence + "".join(parameters),
    st.one_of(
        st.just("text/html"),
        st.sampled_from(["TEXT/Html ", " text/html", "*/*", "text/plain", "text", "text/"]),
        JUNK,
    ),
    st.lists(PARAMETER, max_size=4),
)
CONTENT_TYPES = st.one_of(
    st.builds(
        lambda types, sep: sep.join(types),
        st.lists(TYPE, min_size=1, max_size=3),
        st.sampled_from([",", ", ", " ,\t"]),
    ),
    TYPE,
    JUNK,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(content_type=CONTENT_TYPES)
def test_the_charset_is_the_one_fetch_extracts(content_type: str) -> None:
    found = page_encoding(content_type, PLAIN)
    expected = reference_encoding(content_type)
    assert (found.lower(), is_ascii_safe(found)) == (expected, ASCII_SAFE[expected])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.one_of(TYPE, JUNK))
def test_parameters_are_parsed_as_the_mime_sniffing_standard_says(value: str) -> None:
    parsed = charset.parse_mime_type(value)
    found = None if parsed is None else (parsed.essence, parsed.parameters)
    assert found == reference_parse(value)
