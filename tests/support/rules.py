"""Rule sets several test modules need."""

from __future__ import annotations

SIGNUP_METRIC = """[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"
"""
_BOLD = '\n  changes = [{ action = "set_text", selector = "h1#hero", value = "Bold headline" }]'


def headline_experiment(schedule: str = "", bold_changes: bool = False) -> str:
    """A running 50/50 experiment "headline" on the "signup" metric: "control" and "bold"
    (which sets the h1#hero text when ``bold_changes``); ``schedule``: its start/end lines."""
    return f"""[[experiments]]
key = "headline"
status = "running"
primary_metric = "signup"
{schedule}
  [[experiments.variants]]
  key = "control"
  weight = 50

  [[experiments.variants]]
  key = "bold"
  weight = 50{_BOLD if bold_changes else ""}
"""


def everyone_redirected(target: str) -> str:
    """A split-URL test sending every visitor of /page (its "alt" variant at 100 %) to
    ``target``."""
    return f"""
[[pages]]
tag = "page"
paths = ["/page"]

[[metrics]]
key = "signup"
kind = "url"
url = "/thanks"

[[experiments]]
key = "split"
status = "running"
pages = ["page"]
primary_metric = "signup"

  [[experiments.variants]]
  key = "control"
  weight = 0

  [[experiments.variants]]
  key = "alt"
  weight = 100
  changes = [{{ action = "redirect", value = "{target}" }}]
"""
