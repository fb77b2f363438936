"""Can a page be rewritten byte-exactly? It depends on its character encoding.

The rewriter reads markup as bytes and inserts ASCII only (non-ASCII content is written as
character references), so any encoding in which the bytes of ``<``, ``>``, quotes and ASCII
letters always mean those characters is safe: UTF-8, windows-1252, the ISO-8859 family,
Shift_JIS, EUC-*, GBK, Big5... The WHATWG Encoding Standard's UTF-16BE/LE and stateful
ISO-2022-JP are not, nor is its "replacement" encoding (ISO-2022-KR and the like, which a
browser shows as one U+FFFD): such pages pass through untouched.

The encoding is the one a browser would use (HTML's encoding sniffing): the BOM, then the
``charset`` parameter of the MIME type Fetch extracts from Content-Type, then the encoding of
an XML declaration opening the page (``<?xml ... encoding="..."?>``, which browsers honour for
HTML pages too), then HTML's "prescan a byte stream to determine its encoding" over the first
1024 bytes: comments skipped, ``<meta>`` attributes read as the standard reads them (``charset``,
or ``http-equiv=content-type`` with ``content``), other tags' attributes skipped. Known
differences from browsers: like Chromium (whose prescan runs its tokenizer) and unlike the
standard's prescan, the text of ``<script>``, ``<style>``, ``<title>`` and the like is not read
as tags; unlike Chromium, which reads on past 1024 bytes while in the ``<head>`` (and stops at
the first tag of the body), the prescan stops at 1024 bytes wherever it is. A
label is one of the Encoding Standard's, as browsers take them: ``latin-1`` or ``utf_8``,
which Python knows, are no labels, and a browser goes on to the page's ``<meta>`` (so a page
labelled ``utf-7`` or ``utf-32``, encodings browsers do not have, is read as they read it).
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass, field

# --- labels (WHATWG Encoding Standard, "Names and labels", 2025-06) --------------------------

_LABELS_BY_NAME = {
    "UTF-8": "unicode-1-1-utf-8 unicode11utf8 unicode20utf8 utf-8 utf8 x-unicode20utf8",
    "IBM866": "866 cp866 csibm866 ibm866",
    "ISO-8859-2": "csisolatin2 iso-8859-2 iso-ir-101 iso8859-2 iso88592 iso_8859-2 "
    "iso_8859-2:1987 l2 latin2",
    "ISO-8859-3": "csisolatin3 iso-8859-3 iso-ir-109 iso8859-3 iso88593 iso_8859-3 "
    "iso_8859-3:1988 l3 latin3",
    "ISO-8859-4": "csisolatin4 iso-8859-4 iso-ir-110 iso8859-4 iso88594 iso_8859-4 "
    "iso_8859-4:1988 l4 latin4",
    "ISO-8859-5": "csisolatincyrillic cyrillic iso-8859-5 iso-ir-144 iso8859-5 iso88595 "
    "iso_8859-5 iso_8859-5:1988",
    "ISO-8859-6": "arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6 "
    "iso-8859-6-e iso-8859-6-i iso-ir-127 iso8859-6 iso88596 iso_8859-6 iso_8859-6:1987",
    "ISO-8859-7": "csisolatingreek ecma-118 elot_928 greek greek8 iso-8859-7 iso-ir-126 "
    "iso8859-7 iso88597 iso_8859-7 iso_8859-7:1987 sun_eu_greek",
    "ISO-8859-8": "csiso88598e csisolatinhebrew hebrew iso-8859-8 iso-8859-8-e iso-ir-138 "
    "iso8859-8 iso88598 iso_8859-8 iso_8859-8:1988 visual",
    "ISO-8859-8-I": "csiso88598i iso-8859-8-i logical",
    "ISO-8859-10": "csisolatin6 iso-8859-10 iso-ir-157 iso8859-10 iso885910 l6 latin6",
    "ISO-8859-13": "iso-8859-13 iso8859-13 iso885913",
    "ISO-8859-14": "iso-8859-14 iso8859-14 iso885914",
    "ISO-8859-15": "csisolatin9 iso-8859-15 iso8859-15 iso885915 iso_8859-15 l9",
    "ISO-8859-16": "iso-8859-16",
    "KOI8-R": "cskoi8r koi koi8 koi8-r koi8_r",
    "KOI8-U": "koi8-ru koi8-u",
    "macintosh": "csmacintosh mac macintosh x-mac-roman",
    "windows-874": "dos-874 iso-8859-11 iso8859-11 iso885911 tis-620 windows-874",
    "windows-1250": "cp1250 windows-1250 x-cp1250",
    "windows-1251": "cp1251 windows-1251 x-cp1251",
    "windows-1252": "ansi_x3.4-1968 ascii cp1252 cp819 csisolatin1 ibm819 iso-8859-1 iso-ir-100 "
    "iso8859-1 iso88591 iso_8859-1 iso_8859-1:1987 l1 latin1 us-ascii windows-1252 x-cp1252",
    "windows-1253": "cp1253 windows-1253 x-cp1253",
    "windows-1254": "cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 "
    "iso_8859-9:1989 l5 latin5 windows-1254 x-cp1254",
    "windows-1255": "cp1255 windows-1255 x-cp1255",
    "windows-1256": "cp1256 windows-1256 x-cp1256",
    "windows-1257": "cp1257 windows-1257 x-cp1257",
    "windows-1258": "cp1258 windows-1258 x-cp1258",
    "x-mac-cyrillic": "x-mac-cyrillic x-mac-ukrainian",
    "GBK": "chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 gbk iso-ir-58 x-gbk",
    "gb18030": "gb18030",
    "Big5": "big5 big5-hkscs cn-big5 csbig5 x-x-big5",
    "EUC-JP": "cseucpkdfmtjapanese euc-jp x-euc-jp",
    "ISO-2022-JP": "csiso2022jp iso-2022-jp",
    "Shift_JIS": "csshiftjis ms932 ms_kanji shift-jis shift_jis sjis windows-31j x-sjis",
    "EUC-KR": "cseuckr csksc56011987 euc-kr iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 "
    "ksc5601 ksc_5601 windows-949",
    "replacement": "csiso2022kr hz-gb-2312 iso-2022-cn iso-2022-cn-ext iso-2022-kr replacement",
    "UTF-16BE": "unicodefffe utf-16be",
    "UTF-16LE": "csunicode iso-10646-ucs-2 ucs-2 unicode unicodefeff utf-16 utf-16le",
    "x-user-defined": "x-user-defined",
}
_ENCODINGS = {label: name for name, labels in _LABELS_BY_NAME.items() for label in labels.split()}
# Every other encoding of the standard reads bytes 0x00-0x7F as ASCII where no lead byte
# precedes them; these do not (or, "replacement", show nothing of the page at all).
_NOT_ASCII_SAFE = frozenset({"UTF-16BE", "UTF-16LE", "ISO-2022-JP", "replacement"})
_ASCII_WHITESPACE = "\t\n\x0c\r "
_ASCII_UPPER_TO_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def encoding_for_label(label: str) -> str | None:
    """The Encoding Standard's "get an encoding": the name of the encoding ``label`` names
    (ASCII whitespace around it and ASCII case aside), or None when it names none."""
    return _ENCODINGS.get(label.strip(_ASCII_WHITESPACE).translate(_ASCII_UPPER_TO_LOWER))


# --- MIME types (WHATWG MIME Sniffing "parse a MIME type", Fetch "extract a MIME type") -------

_HTTP_WHITESPACE = "\t\n\r "
_HTTP_TAB_OR_SPACE = "\t "
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED_STRING_TOKEN = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


@dataclass(slots=True)
class MimeType:
    essence: str  # type "/" subtype, ASCII lower-case
    parameters: dict[str, str] = field(default_factory=dict)  # names ASCII lower-case


def parse_mime_type(text: str) -> MimeType | None:
    """WHATWG "parse a MIME type": None on failure. Parameters are ``;``-separated; a value is
    a token or a quoted-string (backslash escapes); a name's first valid occurrence wins."""
    text = text.strip(_HTTP_WHITESPACE)
    slash = text.find("/")
    kind = text[:slash]
    if slash == -1 or not _TOKEN.fullmatch(kind):
        return None
    end = _find(text, ";", slash + 1)
    subtype = text[slash + 1 : end].rstrip(_HTTP_WHITESPACE)
    if not _TOKEN.fullmatch(subtype):
        return None
    mime = MimeType(f"{kind}/{subtype}".translate(_ASCII_UPPER_TO_LOWER))
    position, length = end, len(text)
    while position < length:
        position += 1  # past ";"
        while position < length and text[position] in _HTTP_WHITESPACE:
            position += 1
        name_end = position
        while name_end < length and text[name_end] not in ";=":
            name_end += 1
        name, position = text[position:name_end], name_end
        if position < length:
            if text[position] == ";":
                continue
            position += 1  # past "="
        if position >= length:
            break
        if text[position] == '"':
            value, position = _quoted_string(text, position)
            position = _find(text, ";", position)
        else:
            end = _find(text, ";", position)
            value, position = text[position:end].rstrip(_HTTP_WHITESPACE), end
            if not value:
                continue
        if _TOKEN.fullmatch(name) and _QUOTED_STRING_TOKEN.fullmatch(value):
            mime.parameters.setdefault(name.translate(_ASCII_UPPER_TO_LOWER), value)
    return mime


def extract_mime_type(values: str) -> MimeType | None:
    """Fetch's "extract a MIME type" over a Content-Type value (the fields of a response
    combined with ", "): the last type that parses wins, and the charset of an earlier one
    carries over to it when it has none and the same essence."""
    charset: str | None = None
    essence: str | None = None
    mime: MimeType | None = None
    for value in _split_values(values):
        parsed = parse_mime_type(value)
        if parsed is None or parsed.essence == "*/*":
            continue
        mime = parsed
        if mime.essence != essence:
            charset = mime.parameters.get("charset")
            essence = mime.essence
        elif "charset" not in mime.parameters and charset is not None:
            mime.parameters["charset"] = charset
    return mime


@functools.lru_cache(maxsize=256)  # a site's pages send a few; read on every page served
def response_content_type(fields: tuple[str, ...]) -> tuple[str, str]:
    """A response's type as a browser reads it from all its Content-Type ``fields`` (in the
    order received; Fetch "extract a MIME type", where the last type that parses wins): its
    essence ("" when none parses), and the fields combined with ", ", the text
    ``page_encoding`` takes."""
    combined = ", ".join(fields)
    mime = extract_mime_type(combined)
    return (mime.essence if mime is not None else ""), combined


def _split_values(text: str) -> list[str]:
    """Fetch's "get, decode, and split": the values between commas outside quoted strings."""
    values: list[str] = []
    position, length, value = 0, len(text), ""
    while True:
        end = position
        while end < length and text[end] not in '",':
            end += 1
        value, position = value + text[position:end], end
        if position < length and text[position] == '"':
            _, end = _quoted_string(text, position)
            value, position = value + text[position:end], end
            if position < length:
                continue
        values.append(value.strip(_HTTP_TAB_OR_SPACE))
        if position >= length:
            return values
        value, position = "", position + 1  # past ","


def _quoted_string(text: str, position: int) -> tuple[str, int]:
    """Fetch's "collect an HTTP quoted string" at the ``"`` at ``position``: its value (a
    backslash takes the next character as it is; one ending the input stays) and where it
    ends (past the closing quote, or the end of the input)."""
    value: list[str] = []
    position += 1
    length = len(text)
    while True:
        end = position
        while end < length and text[end] not in '"\\':
            end += 1
        value.append(text[position:end])
        if end >= length:
            return "".join(value), length
        position = end + 1
        if text[end] == '"':
            return "".join(value), position
        if position >= length:
            value.append("\\")
            return "".join(value), length
        value.append(text[position])
        position += 1


def _find(text: str, character: str, start: int) -> int:
    found = text.find(character, start)
    return len(text) if found == -1 else found


# --- the page's encoding (HTML "encoding sniffing algorithm") --------------------------------

_BOMS = (  # the Encoding Standard's BOM sniffing (a UTF-32 BOM is read as UTF-16LE's)
    (b"\xef\xbb\xbf", "UTF-8"),
    (b"\xfe\xff", "UTF-16BE"),
    (b"\xff\xfe", "UTF-16LE"),
)
# A <meta> or XML declaration naming these is read in an ASCII-compatible encoding.
_META_OVERRIDES = {"UTF-16BE": "UTF-8", "UTF-16LE": "UTF-8", "x-user-defined": "windows-1252"}
_PRESCAN_BYTES = 1024  # the HTML standard's limit for the prescan
_SPACE = b"\t\n\x0c\r "  # ASCII whitespace, as bytes
_FAILURE = ""  # a charset attribute naming no label (distinct from None: none seen)
# Elements whose text the HTML tokenizer does not read as tags (RAWTEXT, RCDATA, script data):
# a <meta> inside a script's string is none (the standard's prescan would take it; browsers,
# which prescan with their tokenizer, do not).
_TEXT_ELEMENTS = frozenset(b"script style title textarea xmp iframe noembed noframes".split())


def page_encoding(content_type: str | None, body: bytes) -> str:
    """The name of the encoding a browser would use: BOM, then the Content-Type's charset (a
    label it knows), then an XML declaration's encoding, then the <meta> prescan, then UTF-8."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    if content_type and (header := _header_charset(content_type)) is not None:
        return header
    if (declared := _xml_declaration_encoding(body)) is not None:
        return _META_OVERRIDES.get(declared, declared)
    try:
        return _prescan(body[:_PRESCAN_BYTES]) or "UTF-8"
    except _End:  # a comment, tag or attribute cut by the end: no <meta> after it is read
        return "UTF-8"


class _End(Exception):
    """The prescan reached the end of its bytes inside a comment, tag or attribute."""


def _xml_declaration_encoding(body: bytes) -> str | None:
    """The encoding an XML declaration at the very start names (``<?xml ... encoding="x"?>``),
    as browsers read one for HTML and XML pages alike; None without one naming a label."""
    if not body.startswith(b"<?xml"):
        return None
    end = body.find(b">", 5)
    declaration = body[5 : end if end != -1 else _PRESCAN_BYTES]
    found = re.search(rb"""encoding[\t\n\r ]*=[\t\n\r ]*(["'])(.*?)\1""", declaration, re.DOTALL)
    return encoding_for_label(found[2].decode("latin-1")) if found else None


def _prescan(data: bytes) -> str | None:
    """HTML "prescan a byte stream to determine its encoding" over ``data``: the encoding the
    first <meta> with a usable charset names, or None; ``_End`` when ``data`` ends in a tag."""
    if data.startswith(b"<\x00?\x00x\x00"):
        return "UTF-16LE"
    if data.startswith(b"\x00<\x00?\x00x"):
        return "UTF-16BE"
    position, length = 0, len(data)
    while position < length:
        if data.startswith(b"<!--", position):
            position = data.find(b"-->", position + 2) + 2  # the "--" may be the opening's
            if position == 1:
                raise _End
        elif data[position : position + 5].lower() == b"<meta" and _is_in(
            _byte(data, position + 5), _SPACE + b"/"
        ):
            encoding, position = _meta(data, position + 5)
            if encoding is not None:
                return encoding
        elif data.startswith(b"<", position) and (
            _is_letter(_byte(data, position + 1))
            or (_byte(data, position + 1) == b"/" and _is_letter(_byte(data, position + 2)))
        ):
            position = _skip_tag(data, position)
        elif data[position : position + 2] in (b"<!", b"</", b"<?"):
            position = data.find(b">", position + 1)
            if position == -1:
                raise _End
        position += 1
    return None


def _meta(data: bytes, position: int) -> tuple[str | None, int]:
    """The prescan's steps for a ``<meta``'s attributes from ``position``: the encoding it
    declares (``charset``, or ``http-equiv=content-type`` with ``content``) and where it ends."""
    names: set[str] = set()
    got_pragma = False
    need_pragma: bool | None = None
    charset: str | None = None
    while (attribute := _get_attribute(data, position)) is not None:
        name, value, position = attribute
        if name in names:
            continue
        names.add(name)
        if name == "http-equiv" and value == "content-type":
            got_pragma = True
        elif name == "content" and charset is None:
            if (extracted := _charset_in_content(value)) is not None:
                charset, need_pragma = extracted, True
        elif name == "charset":
            charset, need_pragma = encoding_for_label(value) or _FAILURE, False
    if need_pragma is None or (need_pragma and not got_pragma) or not charset:
        return None, position
    return _META_OVERRIDES.get(charset, charset), position


def _skip_tag(data: bytes, position: int) -> int:
    """Past another tag's name and attributes (at its ``>``, or the end); past a raw text
    element's text when it starts one."""
    start = position + 1
    while position < len(data) and data[position : position + 1] not in (_SPACE + b">"):
        position += 1
    tag = data[start:position].split(b"/")[0].lower()  # "" for an end tag
    while (attribute := _get_attribute(data, position)) is not None:
        position = attribute[2]
    if tag in _TEXT_ELEMENTS and position < len(data):
        end = re.compile(rb"</" + re.escape(tag) + rb"[\t\n\x0c\r />]", re.IGNORECASE)
        found = end.search(data, position + 1)
        return found.start() - 1 if found else len(data)
    return position


def _get_attribute(data: bytes, position: int) -> tuple[str, str, int] | None:
    """HTML "get an attribute" from ``position``: its name and value (ASCII lower-cased, one
    byte a character) and where reading stopped; None at a ``>``, ``_End`` at the end."""
    length = len(data)
    while position < length and data[position] in _SPACE + b"/":
        position += 1
    if position >= length:
        raise _End
    if data[position] == 0x3E:  # ">"
        return None
    name = bytearray()
    while True:
        if position >= length:
            raise _End
        byte = data[position]
        if byte == 0x3D and name:  # "="
            position += 1
            break
        if byte in _SPACE:
            while position < length and data[position] in _SPACE:
                position += 1
            if position >= length:
                raise _End
            if data[position] != 0x3D:
                return _text(name), "", position
            position += 1
            break
        if byte in b"/>":
            return _text(name), "", position
        name.append(byte)
        position += 1
    while position < length and data[position] in _SPACE:
        position += 1
    if position >= length:
        raise _End
    value = bytearray()
    quote = data[position]
    if quote in b"\"'":
        end = data.find(bytes([quote]), position + 1)
        if end == -1:
            raise _End
        return _text(name), _text(data[position + 1 : end]), end + 1
    if quote == 0x3E:
        return _text(name), "", position
    while position < length and data[position] not in _SPACE + b">":
        value.append(data[position])
        position += 1
    if position >= length:
        raise _End
    return _text(name), _text(value), position


def _charset_in_content(content: str) -> str | None:
    """HTML "extracting a character encoding from a meta element": the encoding the first
    ``charset=`` of a ``content`` value names (already lower-cased), or None."""
    position = 0
    while (found := content.find("charset", position)) != -1:
        position = found + 7
        rest = content[position:].lstrip(_ASCII_WHITESPACE)
        if not rest.startswith("="):
            continue
        rest = rest[1:].lstrip(_ASCII_WHITESPACE)
        if not rest:
            return None
        if rest[0] in "\"'":
            end = rest.find(rest[0], 1)
            return None if end == -1 else encoding_for_label(rest[1:end])
        return encoding_for_label(re.split(r"[\t\n\x0c\r ;]", rest, maxsplit=1)[0])
    return None


def _text(data: bytes | bytearray) -> str:
    """Bytes one a character, ASCII upper case lowered (as the prescan collects them)."""
    return data.decode("latin-1").translate(_ASCII_UPPER_TO_LOWER)


def _byte(data: bytes, position: int) -> bytes:
    return data[position : position + 1]


def _is_in(byte: bytes, choices: bytes) -> bool:
    return len(byte) == 1 and byte in choices


def _is_letter(byte: bytes) -> bool:
    return len(byte) == 1 and byte.isalpha()


def _header_charset(content_type: str) -> str | None:
    """The encoding the charset of Content-Type's MIME type names, if it names one.

    aiohttp hands header bytes over as UTF-8 (surrogateescape for bytes that are not); Fetch
    reads them one byte a character (isomorphic decoding), which decides what a quoted value
    may hold, so they are read back to that."""
    with contextlib.suppress(UnicodeEncodeError):  # else not text aiohttp decoded: as it is
        content_type = content_type.encode("utf-8", "surrogateescape").decode("latin-1")
    mime = extract_mime_type(content_type)
    charset = mime.parameters.get("charset") if mime is not None else None
    return encoding_for_label(charset) if charset is not None else None


def is_ascii_safe(label: str) -> bool:
    """True when ASCII bytes mean ASCII characters everywhere in the encoding ``label`` names
    (an Encoding Standard name or label); False for a label browsers do not know."""
    name = encoding_for_label(label)
    return name is not None and name not in _NOT_ASCII_SAFE
