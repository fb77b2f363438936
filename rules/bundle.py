"""A whole rule set as one TOML document, and back: export and import through the admin API.

The document is the rules directory's files one after the other, each introduced by a
marker comment (``# ==== file: experiments.toml ====``), byte for byte. It is valid TOML
and a valid rule file on its own (``refract check`` takes it), and importing it gives back
the same files, so the same version. A document without markers is one file,
``rules.toml``.

Appending files is only faithful when a file's top level holds nothing but tables
(``[[experiments]]``, ``[settings]``): a ``key = value`` at the top of a file would land in
the previous file's last table, and ``pages = [...]`` cannot be extended by another file's
``[[pages]]``. Such a file (rare: docs/rules.md writes tables) is written out again in table
form, without its comments, so its import is the same rules in different bytes.

A battlecard written one card per file (its keys at the top: rules/battlecards.py) keeps its
bytes all the same: it is exported line for line under a ``[[battlecards]]`` header (which
any rule file may hold), its own table headers prefixed ``battlecards.``
(``[[battlecards.objections]]``), and its marker says so (``MARKER_CARD``), so that the import
takes the header and the prefixes out again. A card that this would not give back exactly (a
line in a multi-line string that looks like a table header) is rewritten in table form.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomlkit
from tomlkit.exceptions import ParseError
from tomlkit.items import AoT, Table

from refract.rules.battlecards import is_battlecard_file
from refract.rules.problems import TOML_REFUSALS, InvalidFileError, Problem
from refract.rules.toml_edit import table_text

MARKER = "# ==== file: {name} ===="
MARKER_CARD = "# ==== file: {name}, its card as [[battlecards]] ===="
_MARKER_LINE = re.compile(
    r"^# ==== file: (?P<name>.*?)(?P<card>, its card as \[\[battlecards\]\])? ====[ \t]*\r?$",
    re.MULTILINE,
)
_CARD_TABLE = "[[battlecards]]\n"
_HEADER_START = re.compile(r"^[ \t]*\[\[?[ \t]*")  # a line that opens a table: [x], [[x]]
_CARD_HEADER_START = re.compile(r"^([ \t]*\[\[?[ \t]*)battlecards\.")
# a rules directory's file, or one of its battlecards/ (rules/battlecards.py)
_FILE_NAME = re.compile(r"^(battlecards/)?[A-Za-z0-9][A-Za-z0-9._-]*\.toml$")
UNMARKED_FILE = "rules.toml"


def export_document(files: dict[str, bytes], version: str) -> str:
    header = (
        f"# Refract rule set, version {version}: {len(files)} file(s).\n"
        "# Each '# ==== file: NAME ====' line starts a file of the rules directory; importing\n"
        "# this document (POST /api/rules/import) replaces the whole set with these files.\n"
        "# (', its card as [[battlecards]]': a one-card battlecard file, under that header here.)\n"
    )
    parts = []
    for name, data in sorted(files.items()):
        text, marker = data.decode("utf-8"), MARKER
        if not _tables_only(text):
            card = _card_as_table(text) if is_battlecard_file(name) else None
            text, marker = (_as_tables(text, name), MARKER) if card is None else (card, MARKER_CARD)
        parts.append(marker.format(name=name) + "\n" + text + ("" if text.endswith("\n") else "\n"))
    return header + "\n" + "".join(parts)


def import_document(text: str) -> dict[str, bytes]:
    """The files a document holds; InvalidFileError for bad or repeated file names."""
    markers = _file_markers(text)
    chunks: list[tuple[str, str]] = []
    preamble = text[: markers[0].start()] if markers else text
    if _has_content(preamble):
        chunks.append((UNMARKED_FILE, preamble))
    for index, marker in enumerate(markers):
        end = markers[index + 1].start() if index + 1 < len(markers) else len(text)
        chunk = text[marker.end() + 1 : end]  # past the marker's newline
        chunks.append((marker["name"], _card_from_table(chunk) if marker["card"] else chunk))
    if not chunks:  # an empty body would delete every rule: surely not what was meant
        raise InvalidFileError([Problem("import", None, "", "holds no rule file", "export first")])
    problems = []
    files: dict[str, bytes] = {}
    for name, chunk in chunks:
        if not _FILE_NAME.match(name):
            problems.append(
                Problem(
                    name, None, "", "is not a rule file name", "letters, digits, . _ - and .toml"
                )
            )
        elif name in files:
            problems.append(Problem(name, None, "", "is in the document twice", "merge the two"))
        files[name] = chunk.encode("utf-8")
    if problems:
        raise InvalidFileError(problems)
    return files


def _file_markers(text: str) -> list[re.Match[str]]:
    """The lines that start a file: a marker line, unless it is a line of a multi-line string
    the file before it has not closed (a file may quote one, and is then exported whole)."""
    found: list[re.Match[str]] = []
    for marker in _MARKER_LINE.finditer(text):
        start = found[-1].end() + 1 if found else 0
        if not _ends_in_a_string(text[start : marker.start()]):
            found.append(marker)
    return found


def _ends_in_a_string(text: str) -> bool:
    """Whether ``text`` ends inside a multi-line string it opened (tomllib says so)."""
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return str(error).startswith(_UNCLOSED_STRING) and "(at end of document)" in str(error)
    except TOML_REFUSALS:
        return False
    return False


# tomllib's words for a string still open at the end of the text (3.11 to 3.13)
_UNCLOSED_STRING = ("Unterminated string", "Expected \"'''\"")


def _has_content(text: str) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in text.splitlines())


def _tables_only(text: str) -> bool:
    try:
        document = tomlkit.parse(text)
    except ParseError:
        return True  # exported as it is: the import reports it
    return all(isinstance(item, Table | AoT) for key, item in document.body if key is not None)


def _card_as_table(text: str) -> str | None:
    """A one-card battlecard file as one ``[[battlecards]]`` table, line for line; None when
    it is not one card, or when ``_card_from_table`` would not give back ``text`` exactly or
    the table would not hold the same card."""
    try:
        card = tomllib.loads(text)
    except TOML_REFUSALS:
        return None
    if "battlecards" in card:
        return None  # several cards: [[battlecards]] tables, or an array of them
    lines = text.splitlines(keepends=True)
    table = _CARD_TABLE + "".join(
        _HEADER_START.sub(lambda found: found[0] + "battlecards.", line, count=1) for line in lines
    )
    try:
        same = tomllib.loads(table) == {"battlecards": [card]}
    except TOML_REFUSALS:
        same = False
    return table if same and _card_from_table(table) == text else None


def _card_from_table(text: str) -> str:
    """What ``_card_as_table`` made of a file, as the file was."""
    body = text.removeprefix(_CARD_TABLE)
    return "".join(
        _CARD_HEADER_START.sub(r"\1", line, count=1) for line in body.splitlines(keepends=True)
    )


def _as_tables(text: str, file: str) -> str:
    data = tomllib.loads(text)
    if is_battlecard_file(file) and "battlecards" not in data:
        data = {"battlecards": [data]}  # one card, its keys at the top of its file
    tables: list[str] = []
    for name, value in data.items():
        entries: list[Any] = value if isinstance(value, list) else [value]
        if not all(isinstance(entry, dict) for entry in entries):
            return text  # not a rule file's shape: exported as it is, the import reports it
        tables += [table_text(name, entry, array=isinstance(value, list)) for entry in entries]
    return "\n".join(tables)
