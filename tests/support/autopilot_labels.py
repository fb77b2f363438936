"""The labelled pages of page analysis (tests/data/autopilot_pages) and how the candidates found
on them are scored against their labels: shared by the tests and bench/autopilot_scan_bench.py.

A label and a candidate name the same element when lol-html, running both selectors over the
page, lands on the same element (its tag and its position among that tag's elements).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refract.analytics.autopilot.candidates import Kind, PageScan, scan_page
from refract.analytics.autopilot.selectors import Position, positions

PAGES = Path(__file__).resolve().parents[1] / "data" / "autopilot_pages"
LABELS: dict[str, dict[str, Any]] = tomllib.loads((PAGES / "labels.toml").read_text())["pages"]


def page_bytes(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def matched(page: bytes, selectors: Iterable[str]) -> dict[str, list[Position]]:
    """Every element each selector matches in lol-html's view of ``page``."""
    return positions(page, list(selectors), limit=None)


@dataclass(frozen=True)
class Score:
    """Candidates of one kind against the labels: found and labelled, found only, missed."""

    hits: int
    extra: int
    missed: int

    @property
    def precision(self) -> float:
        return self.hits / (self.hits + self.extra) if self.hits + self.extra else 1.0

    @property
    def recall(self) -> float:
        return self.hits / (self.hits + self.missed) if self.hits + self.missed else 1.0


def score(kind: Kind, scans: dict[str, PageScan] | None = None) -> Score:
    """``kind`` over the whole labelled set (pages scanned now unless ``scans`` has them)."""
    hits = extra = missed = 0
    for name, labels in LABELS.items():
        page = page_bytes(name)
        scan = scans[name] if scans is not None else scan_page(page, name)
        wanted_selectors: list[str] = labels.get(kind, [])
        found_selectors = [candidate.selector for candidate in scan.of(kind)]
        found = matched(page, wanted_selectors + found_selectors)
        wanted = {found[selector][0] for selector in wanted_selectors}
        got = {found[selector][0] for selector in found_selectors}
        hits += len(wanted & got)
        extra += len(got - wanted)
        missed += len(wanted - got)
    return Score(hits, extra, missed)
