"""Competitive intelligence: accounts researching competitors, battlecards and the
counter-personalization that answers them, and its page."""

from __future__ import annotations

from refract.admin.api import Api

api = Api("Refract admin", "1")
