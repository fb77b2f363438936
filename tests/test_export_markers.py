"""An export is imported back into the same files even when a file quotes a line that looks
like the export's file marker in a multi-line string (an outside check found the import split
the file there and refused it)."""

from __future__ import annotations

import pytest

from refract.rules.bundle import export_document, import_document

METRICS = b'[[metrics]]\nkey = "signup"\nkind = "url"\nurl = "/thanks"\n'


def with_quoted_marker(quote: str) -> bytes:
    return (
        '[[experiments]]\nkey = "notes"\nstatus = "draft"\nprimary_metric = "signup"\n'
        f"hypothesis = {quote}\nNotes pasted from the wiki:\n# ==== file: notes.toml ====\n"
        f"end of notes{quote}\n"
        '  [[experiments.variants]]\n  key = "control"\n  weight = 50\n'
        '  [[experiments.variants]]\n  key = "b"\n  weight = 50\n'
    ).encode()


@pytest.mark.parametrize("quote", ['"""', "'''"], ids=["basic", "literal"])
def test_a_quoted_marker_line_stays_in_its_file(quote: str) -> None:
    files = {"experiments.toml": with_quoted_marker(quote), "metrics.toml": METRICS}
    assert import_document(export_document(files, "v1")) == files


def test_a_marker_after_a_closed_string_still_starts_a_file() -> None:
    files = {"a.toml": b'x = """\none\n"""\n', "b.toml": METRICS}
    assert import_document(export_document(files, "v1")) == files
