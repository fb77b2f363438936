"""Rule sets several test modules need."""

from __future__ import annotations


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
