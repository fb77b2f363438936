"""How the rule-editing endpoints answer: ETags and If-Match, refusals, 422s in the words of
``refract check``, and the audit log.

* **ETags.** An experiment's or personalization's ETag is a hash of its canonical JSON, so
  an edit to another entry (or to a comment in its file) does not make it stale; set-wide
  operations use the rule set's version. Changing requests must send ``If-Match``: without
  it 428, with a stale one 412 and the current ETag. The check runs while the change is
  being saved (admin/rule_store.py), so two editors cannot both win.
* **422s.** A rule set an edit would produce that does not load is refused with the very
  problems ``refract check`` prints for those files (file, line, field, message, hint); a
  body that is not a valid experiment or personalization gets the same messages and hints,
  with the field's path in the body and ``"file": "request body"``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis.asyncio as redis
from aiohttp import web
from pydantic import BaseModel, ValidationError

from admin import audit
from admin.api import problem, read_body
from admin.rule_store import Change, RuleStore, StoreBusyError
from admin.state import config_of, identity_of, redis_of
from rules.editing import (
    RuleFiles,
    TransitionError,
    UnknownEntryError,
    UnknownVariantError,
)
from rules.problems import InvalidFileError, Problem, problems_from_validation
from rules.ruleset import RuleSet
from rules.toml_lines import TomlLines

VERSION_HEADER = "Refract-Rules-Version"
BODY = "request body"  # the "file" of problems found in a request's body

M = TypeVar("M", bound=BaseModel)


class Refusal(Exception):
    """An answer other than success, raised from inside a change to stop it."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra

    def response(self) -> web.Response:
        answer = problem(self.status, self.detail, **self.extra)
        answer.headers.update(self.headers)
        return answer


def store_of(request: web.Request) -> RuleStore:
    return RuleStore(redis_of(request), config_of(request).rules.directory)


def loaded(base: RuleFiles) -> RuleSet:
    """The rules in force, or a 409: an edit cannot start from a set that does not load."""
    try:
        return base.rules
    except InvalidFileError as error:
        raise Refusal(
            409,
            "the rules in force do not load: fix the files (refract check) or import a whole set",
            errors=problem_list(error.problems),
        ) from None


# --- ETags ---------------------------------------------------------------------------------


def etag_of(entry: BaseModel) -> str:
    canonical = json.dumps(entry.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def quoted(tag: str) -> str:
    return f'"{tag}"'


def require_match(request: web.Request, current: str) -> None:
    """Refuse unless ``If-Match`` names ``current`` (or is ``*``)."""
    header = request.headers.get("If-Match")
    if header is None:
        raise Refusal(428, "send If-Match with the ETag you read, so that no one's edit is lost")
    # A strong comparison (RFC 9110, 13.1.1): weak tags (W/"...") never match.
    tags = {tag.strip() for tag in header.split(",")}
    if "*" not in tags and quoted(current) not in tags and current not in tags:
        raise Refusal(
            412,
            "it changed since you read it: read it again, then apply your edit to that",
            headers={"ETag": quoted(current)},
            etag=current,
        )


def tagged(response: web.Response, etag: str | None, version: str) -> web.Response:
    if etag is not None:
        response.headers["ETag"] = quoted(etag)
    response.headers[VERSION_HEADER] = version
    return response


# --- bodies and problems -------------------------------------------------------------------


async def read_rule(request: web.Request, model: type[M]) -> M | web.Response:
    """The JSON body as ``model`` (an entry of a rule file), or a 422 in refract check's words."""
    return await read_body(request, model, _invalid_rule)


def _invalid_rule(error: ValidationError, model: type[BaseModel]) -> web.Response:
    problems = problems_from_validation(error, model, BODY, TomlLines(""))
    return invalid(f"not a valid {model.__name__.lower()}", problems)


def invalid(detail: str, problems: Sequence[Problem]) -> web.Response:
    return problem(422, detail, errors=problem_list(problems))


def problem_list(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [
        {"file": p.file, "line": p.line, "field": p.field, "message": p.message, "hint": p.hint}
        for p in problems
    ]


# --- saving --------------------------------------------------------------------------------


async def save(
    request: web.Request,
    action: str,
    target: str,
    change: Change,
    audited: Callable[[RuleFiles], Any],
) -> tuple[RuleFiles, RuleFiles] | web.Response:
    """Apply and save ``change``, record it in the audit log with what ``audited`` says of the
    set before and after; (before, after), or the answer refusing it."""
    try:
        before, after = await store_of(request).edit(change)
    except Refusal as refusal:
        return refusal.response()
    except InvalidFileError as error:
        return invalid("the rules would not load: nothing was changed", error.problems)
    except UnknownEntryError as error:
        return problem(404, str(error))
    except TransitionError as error:
        return problem(409, str(error))
    except UnknownVariantError as error:
        return invalid("no such variant", [Problem(BODY, None, "variant", str(error))])
    except StoreBusyError as error:
        return problem(503, str(error))
    except redis.RedisError:
        return problem(503, "Redis is unreachable: nothing was published")
    except OSError as error:
        return problem(500, f"the rules directory could not be written: {error}")
    if after.files != before.files:
        client = redis_of(request)
        await audit.record(
            client, identity_of(request), action, target, audited(before), audited(after)
        )
    return before, after
