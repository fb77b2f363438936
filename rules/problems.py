"""Errors in user-written files, reported as file, line, field, message and hint."""

from __future__ import annotations

import difflib
import re
import sys
import tomllib
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from refract.rules.toml_lines import TomlLines, error_line


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, precise enough to fix without reading our code."""

    file: str
    line: int | None
    field: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )
        return f"{text}\n    hint: {self.hint}" if self.hint else text


class FieldError(ValueError):
    """A value that cannot be accepted, with a hint on how to write it instead; the reader of
    the file it came from adds where it is (a ``Problem``)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class InvalidFileError(Exception):
    """A file could not be accepted; nothing of it was applied."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


BYTE_ORDER_MARK = "\ufeff"

# tomllib's words for a key or table written twice (3.11 to 3.13)
_WRITTEN_TWICE = ("Cannot overwrite a value", "Cannot declare", "Cannot redefine namespace")


# What tomllib.loads raises for a document it cannot read: its TOMLDecodeError (a ValueError),
# Python's own ValueError for an integer over sys.get_int_max_str_digits() digits (4,300), and
# a RecursionError for arrays or inline tables nested too deeply.
TOML_REFUSALS: Final = (ValueError, RecursionError)


def toml_problem(file: str, text: str, error: Exception) -> Problem:
    """What is wrong with a document ``tomllib.loads(text)`` refused (``TOML_REFUSALS``)."""
    if not isinstance(error, tomllib.TOMLDecodeError | RecursionError):
        return Problem(
            file,
            _line_of_long_integer(text),
            "",
            "not a number Refract can read: an integer of more than "
            f"{sys.get_int_max_str_digits():,} digits",
            "no setting needs more than a few digits: shorten the number",
        )
    if isinstance(error, RecursionError):
        return Problem(
            file,
            None,
            "",
            "not valid TOML: arrays or inline tables nested too deeply to read",
            "nest values a few levels deep at most",
        )
    line = error_line(error, text)
    if text.startswith(BYTE_ORDER_MARK):
        return Problem(
            file,
            1,
            "",
            "starts with a byte order mark (BOM), which TOML does not allow",
            'remove the byte order mark: save the file as "UTF-8", not "UTF-8 with BOM"',
        )
    if str(error).startswith(_WRITTEN_TWICE):
        twice = TomlLines(text).written_twice(line)
        if twice is not None:
            path, first, again = twice
            return Problem(
                file,
                again,
                dotted(path),
                f"defined twice: on line {first} and again on line {again}",
                "keep one of them: TOML allows each key and table once",
            )
        return Problem(
            file,
            line,
            "",
            f"not valid TOML: {error}",
            "a key or table is defined twice: keep one of them",
        )
    return Problem(
        file,
        line,
        "",
        f"not valid TOML: {error}",
        "check quotes, brackets and that strings are quoted",
    )


def dotted(path: Iterable[str | int]) -> str:
    """``("sites", 0, "origin")`` -> ``sites[0].origin``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def problems_from_validation(
    error: ValidationError,
    model: type[BaseModel],
    file: str,
    lines: TomlLines,
) -> list[Problem]:
    """Translate pydantic's errors into problems that point at the user's file."""
    problems = []
    seen: set[tuple[str | int, ...]] = set()
    for detail in error.errors():
        path = tuple(
            part
            for part in detail["loc"]
            if isinstance(part, str | int)
            and part != "[key]"  # pydantic's mark of a bad key
            and not _is_union_member(part, detail["loc"])
        )
        if path in seen:
            continue  # each member of a union refused the value: one problem says it
        seen.add(path)
        if detail["type"] == "extra_forbidden":
            message, hint = "unknown key", _suggest_key(model, path)
        else:
            message, hint = _plain_message(detail), _describe_field(model, path)
        problems.append(Problem(file, lines.line_of(path), dotted(path), message, hint))
    return problems


# pydantic's names of the plain members of a union, e.g. ("events", "archive_dir", "str")
_UNION_MEMBERS = frozenset(("str", "int", "float", "bool", "none", "bytes", "list", "dict"))


def _is_union_member(part: str | int, loc: Sequence[Any]) -> bool:
    """Whether ``part`` of an error's location names the member of a union that refused the
    value (``lax-or-strict[...]``, ``str``), not a key the user wrote."""
    if not isinstance(part, str):
        return False
    return "[" in part or "(" in part or (part in _UNION_MEMBERS and loc[-1] == part)


def _plain_message(detail: Any) -> str:
    message = str(detail["msg"])
    if message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    return message[0].lower() + message[1:] if message else message


def _model_at(model: type[BaseModel], path: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that holds the last key of ``path``."""
    current: type[BaseModel] = model
    keyed = False  # the previous field is a table of models: this part is a key of it
    for part in path[:-1]:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        nested = _nested_model(field.annotation)
        if nested is None:
            return None
        current = nested
        keyed = typing.get_origin(field.annotation) is dict
    return current


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _nested_model(argument)
        if found is not None:
            return found
    return None


def _suggest_key(model: type[BaseModel], path: Sequence[str | int]) -> str:
    holder = _model_at(model, path)
    if holder is None or not path or not isinstance(path[-1], str):
        return ""
    known = sorted(holder.model_fields)
    close = difflib.get_close_matches(path[-1], known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid keys here: " + ", ".join(known)


def _describe_field(model: type[BaseModel], path: Sequence[str | int]) -> str:
    path = list(path)
    while path and isinstance(path[-1], int):
        path.pop()  # an item of a list is described by the list's field
    holder = _model_at(model, path)
    if holder is None or not path:
        return ""
    field = holder.model_fields.get(str(path[-1]))
    return (field.description or "") if field else ""


def _line_of_long_integer(text: str) -> int | None:
    """The line of the first run of digits too long for Python to read as an integer."""
    longest = sys.get_int_max_str_digits()
    found = re.search(rf"[0-9_]{{{longest + 1},}}", text)
    return text.count("\n", 0, found.start()) + 1 if found else None
