"""Changes to hand-written TOML rule files that leave alone everything they do not change.

tomlkit keeps a document's comments, blank lines, key order and formatting, so an edit made
through the admin API shows in a diff as the lines it changed, nothing else. An entry is
updated key by key (an unchanged key keeps its line and its comment); a new entry is written
in the style of docs/rules.md: one ``key = value`` a line, changes as inline tables, variants
as indented ``[[experiments.variants]]`` sub-tables.
"""

from __future__ import annotations

from datetime import date, time
from typing import Any, cast

import tomlkit
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from tomlkit.container import Container
from tomlkit.items import AoT, Array, Comment, InlineTable, Item, Table, Whitespace

# Lists of tables written as [[kind.name]] sub-tables; any other list of tables is an array
# of inline tables, as docs/rules.md writes them.
SUB_TABLES = frozenset({"variants"})
# Written even when they hold their default, because a reader of the file needs them.
ALWAYS_WRITTEN = frozenset({"key", "status"})
_SUB_INDENT = "  "


def entry_text(kind: str, entry: BaseModel) -> str:
    """``entry`` as an ``[[kind]]`` table, ready to append to a file."""
    return table_text(kind, written(entry))


def table_text(name: str, data: dict[str, Any], *, array: bool = True) -> str:
    """``data`` as an ``[[name]]`` table (``[name]`` unless ``array``)."""
    lines = [f"[[{name}]]" if array else f"[{name}]"]
    lines += [
        f"{key} = {toml_value(value)}" for key, value in data.items() if key not in SUB_TABLES
    ]
    for key in SUB_TABLES & data.keys():
        for table in data[key]:
            lines += ["", f"{_SUB_INDENT}[[{name}.{key}]]"]
            lines += [f"{_SUB_INDENT}{k} = {toml_value(v, _SUB_INDENT)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def written(entry: BaseModel) -> dict[str, Any]:
    """What a file says of ``entry``: fields that differ from their defaults, plus
    ``ALWAYS_WRITTEN``; numbers that are whole written as integers."""
    data = entry.model_dump(exclude_defaults=True)
    for name in ALWAYS_WRITTEN & type(entry).model_fields.keys():
        data.setdefault(name, getattr(entry, name))
    ordered = {name: data[name] for name in type(entry).model_fields if name in data}
    return cast(dict[str, Any], _plain(ordered))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {name: _plain(item) for name, item in value.items() if item is not None}
    return value


def toml_value(value: Any, indent: str = "") -> str:
    """A TOML literal; a list of several tables takes one line each, as the demo's do."""
    if isinstance(value, list):
        if len(value) > 1 and all(isinstance(item, dict) for item in value):
            lines = "".join(f"{indent}  {toml_value(item)},\n" for item in value)
            return f"[\n{lines}{indent}]"
        return "[" + ", ".join(toml_value(item, indent) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        pairs = ", ".join(f"{name} = {toml_value(item, indent)}" for name, item in value.items())
        return "{ " + pairs + " }"
    if isinstance(value, bool | int | float | str | date | time):  # a datetime is a date
        return tomlkit.item(value).as_string()
    raise TypeError(f"no TOML form for {value!r}")


def update_table(
    table: Table | InlineTable, old: BaseModel, new: BaseModel, indent: str = ""
) -> None:
    """Make ``table`` (which holds ``old``) hold ``new``, touching only the keys that change."""
    for name, field in type(new).model_fields.items():
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        present = name in table
        if _is_default(field, after) and name not in ALWAYS_WRITTEN:
            if present:
                del table[name]  # the file says nothing, as for any other default
        elif present and _same_length_tables(table[name], before, after):
            for index, (was, now) in enumerate(zip(before, after, strict=True)):
                if was != now:
                    update_table(table[name][index], was, now, indent + _SUB_INDENT)
        elif present:
            existing = cast(Item, table.item(name))  # a key inside a table: never split
            table[name] = _keeping_tail(existing, _item(name, _dump(after), existing, indent))
        else:
            table[name] = _item(name, _dump(after), None, indent)


def _is_default(field: FieldInfo, value: Any) -> bool:
    return not field.is_required() and field.get_default(call_default_factory=True) == value


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return written(value)
    if isinstance(value, list | tuple):
        return [_dump(item) for item in value]
    return _plain(value)


def _keeping_tail(old: Item, new: Item) -> Item:
    """Sub-tables end with the blank lines and comments that precede the next header: a
    replacement keeps them, so the next entry keeps its spacing and its comments."""
    if isinstance(old, AoT) and isinstance(new, AoT) and old.body and new.body:
        tail = _pop_trivia(_innermost(old.body[-1]))
        for item in tail:
            _innermost(new.body[-1]).add(item)
    return new


def _same_length_tables(item: Any, before: Any, after: Any) -> bool:
    """Lists of tables of equal length are updated table by table, keeping their layout."""
    return (
        isinstance(item, AoT | Array)
        and isinstance(before, list)
        and isinstance(after, list)
        and len(before) == len(after) == len(item)
        and all(isinstance(one, BaseModel) for one in after)
        and all(isinstance(one, Table | InlineTable) for one in item)
    )


def _item(name: str, value: Any, existing: Item | None, indent: str) -> Item:
    """A tomlkit item for ``value``, in the form ``existing`` had (sub-tables or inline)."""
    as_sub_tables = isinstance(existing, AoT) or (existing is None and name in SUB_TABLES)
    if as_sub_tables and isinstance(value, list) and value:
        blocks = []
        for table in value:
            inner = indent + _SUB_INDENT
            lines = [f"{inner}{k} = {toml_value(v, inner)}" for k, v in table.items()]
            blocks.append(f"\n{inner}[[item]]\n" + "\n".join(lines) + "\n")
        return _parsed("".join(blocks))
    return _parsed(f"item = {toml_value(value, indent)}\n")


def _parsed(text: str) -> Item:
    """The value of ``item`` in ``text``, as tomlkit keeps it (with its layout)."""
    return cast(Item, tomlkit.parse(text).item("item"))


# --- removing an entry ---------------------------------------------------------------------


def remove_entry(document: Container, kind: str, index: int) -> None:
    """Remove entry ``index`` of ``kind`` with the comment lines just above it (they describe
    it); the comment lines just above the next entry stay with that entry.

    tomlkit files the comments above a table header under whatever precedes the header (the
    previous table, or the document), so they are moved by hand: the entry's own leading
    comments are dropped, and the comments it carries for whatever follows are handed to
    its predecessor or, for the first entry, written in front of the next header.
    """
    entries = cast(AoT, document[kind])
    following = _pop_comment_block(_innermost(entries[index]))
    if index > 0:
        previous = _innermost(entries[index - 1])
        _pop_comment_block(previous)
        for comment in following:
            previous.add(comment)
        del entries[index]
    else:
        _drop_comments_above(document, kind)
        del entries[index]
        if len(entries):
            first = entries[0]
            first.trivia.indent = "".join(c.as_string() for c in following) + first.trivia.indent
    if not len(entries):
        del document[kind]


def _drop_comments_above(document: Container, kind: str) -> None:
    """Drop the comment lines right above the first ``[[kind]]`` header."""
    body = document.body
    position = next(i for i, (key, _) in enumerate(body) if key is not None and key.key == kind)
    above = position - 1
    while above >= 0 and body[above][0] is None and isinstance(body[above][1], Comment):
        body[above] = (None, Whitespace(""))  # replaced in place: keys keep their positions
        above -= 1
    if above == position - 1 and above >= 0 and isinstance(body[above][1], Table | AoT):
        _pop_comment_block(_innermost(body[above][1]))


def _innermost(item: Item) -> Container:
    """The container holding the last lines of a table or array of tables."""
    container = item.value if isinstance(item, Table) else cast(AoT, item).body[-1].value
    while container.body:
        last = container.body[-1][1]
        if isinstance(last, AoT) and last.body:
            container = last.body[-1].value
        elif isinstance(last, Table):
            container = last.value
        else:
            break
    return container


def _pop_trivia(container: Container) -> list[Item]:
    """Take the comments and blank lines at the very end of ``container``."""
    return _pop_trailing(container, (Comment, Whitespace))


def _pop_comment_block(container: Container) -> list[Item]:
    """Take the comment lines at the very end of ``container`` (no blank line after them)."""
    return _pop_trailing(container, (Comment,))


def _pop_trailing(container: Container, kinds: tuple[type[Item], ...]) -> list[Item]:
    taken: list[Item] = []
    body = container.body  # the container's own list: trailing lines carry no key to re-index
    while body and body[-1][0] is None and isinstance(body[-1][1], kinds):
        taken.insert(0, body.pop()[1])
    return taken
