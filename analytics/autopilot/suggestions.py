"""Optional copy suggestions from a language model, over an OpenAI-compatible chat-completions
API (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM and others speak it). Off by default.

The model is asked for short alternatives of one element's text in one psychographic style,
given only the facts the site states, and must answer with a JSON array of strings. Its
answers are suggestions like any template's: copywriting's callers put them through the same
guardrails and fact check, so a model that invents a figure or a customer is simply refused.
Nothing here raises into its caller (a scan): a timeout, an error status, a body that is not
what was asked for all give no suggestions and a reason.

    POST {url}/chat/completions   Authorization: Bearer {key}
    {"model": ..., "messages": [...], "temperature": 0.7}
    200 {"choices": [{"message": {"content": "[\\"...\\", \\"...\\"]"}}]}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from refract.analytics.autopilot.facts import Fact
from refract.analytics.autopilot.site_scan import read_at_most

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S: Final = 20.0
MAX_RESPONSE_BYTES: Final = 256 * 1024
MAX_SUGGESTIONS: Final = 5
MAX_SUGGESTION_CHARS: Final = 300
MAX_PROMPT_FACTS: Final = 40

STYLE_BRIEFS: Final = {
    "analytical": "evidence and figures: what is measured, and by how much",
    "intuitive": "the short path: what the visitor gets, at once, in few words",
    "consensus": "peers and social proof: who else uses it",
    "authoritative": "the outcome and control: results and decisive action",
}


@dataclass(frozen=True, slots=True)
class Suggested:
    texts: tuple[str, ...]
    reason: str = ""  # why there are none, when there are none


@dataclass(frozen=True)
class ChatModel:
    """An OpenAI-compatible endpoint: ``url`` up to (not including) ``/chat/completions``."""

    url: str
    key: str
    model: str
    timeout_s: float = DEFAULT_TIMEOUT_S

    async def suggest(
        self,
        session: aiohttp.ClientSession,
        kind: str,
        original: str,
        style: str,
        facts: Sequence[Fact],
    ) -> Suggested:
        body = {
            "model": self.model,
            "temperature": 0.7,
            "messages": [
                {"role": "system", "content": _SYSTEM},
                {"role": "user", "content": prompt(kind, original, style, facts)},
            ],
        }
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            async with session.post(
                self.url.rstrip("/") + "/chat/completions",
                json=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    return Suggested((), f"the model answered HTTP {response.status}")
                raw = await read_at_most(response, MAX_RESPONSE_BYTES + 1)
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("copy suggestions failed: %r", error)
            return Suggested((), f"the model could not be reached ({type(error).__name__})")
        if len(raw) > MAX_RESPONSE_BYTES:
            return Suggested((), "the model's answer is too large")
        return parse_answer(raw)


_SYSTEM = (
    "You write alternative website copy for A/B tests. Use only the facts given; never add a "
    "number, a name, a customer or a claim that is not among them. Answer with a JSON array of "
    "at most 5 strings and nothing else."
)


def prompt(kind: str, original: str, style: str, facts: Sequence[Fact]) -> str:
    """The user message: the element, the style to write for, and the facts allowed."""
    listed = "\n".join(f"- {fact.text}" for fact in facts[:MAX_PROMPT_FACTS]) or "- (none)"
    return (
        f"Element: {kind.replace('_', ' ')}\n"
        f"Current text: {original}\n"
        f"Write for a buyer who wants {STYLE_BRIEFS.get(style, style)}.\n"
        f"Facts you may use:\n{listed}"
    )


def parse_answer(raw: bytes) -> Suggested:
    """The suggestions in a chat-completions answer whose content is a JSON array of strings
    (a Markdown code fence around it is tolerated); anything else is no suggestion."""
    try:
        document: Any = json.loads(raw)
        content = document["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        return Suggested((), "the model's answer is not a chat completion")
    if not isinstance(content, str):
        return Suggested((), "the model's answer has no text")
    content = content.strip().removeprefix("```json").removeprefix("```").removesuffix("```")
    try:
        texts: Any = json.loads(content)
    except (ValueError, RecursionError):
        return Suggested((), "the model did not answer with a JSON array")
    if not isinstance(texts, list):
        return Suggested((), "the model did not answer with a JSON array")
    kept = tuple(
        " ".join(text.split())
        for text in texts
        if isinstance(text, str) and 0 < len(text.strip()) <= MAX_SUGGESTION_CHARS
    )[:MAX_SUGGESTIONS]
    return Suggested(kept, "" if kept else "the model suggested nothing usable")
