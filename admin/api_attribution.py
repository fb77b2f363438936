"""The revenue attribution API (models side by side over the event archive) and its page."""

from __future__ import annotations

from refract.admin.api import Api

api = Api("Refract admin", "1")
