"""The revenue forecast API (open pipeline by month, with intervals) and its page."""

from __future__ import annotations

from refract.admin.api import Api

api = Api("Refract admin", "1")
