"""Which content and which audiences create pipeline: content impact and audience
intelligence, and their pages."""

from __future__ import annotations

from refract.admin.api import Api

api = Api("Refract admin", "1")
