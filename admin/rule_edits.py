"""How the rule-editing endpoints answer: ETags and If-Match, refusals, 422s in the words of
``refract check``, and the audit log. Every refusal is raised (``Refused``, admin/api.py),
from a check here or from inside a change being saved, and answered by the endpoint's guard.

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
from typing import Any

import redis.asyncio as redis
from aiohttp import web
from pydantic import BaseModel, ValidationError

from refract.admin import audit
from refract.admin.api import Refused
from refract.admin.rule_store import Change, RuleStore, StoreBusyError
from refract.admin.state import config_of, identity_of, redis_of
from refract.rules.editing import (
    RuleFiles,
    TransitionError,
    UnknownEntryError,
    UnknownVariantError,
)
from refract.rules.problems import InvalidFileError, Problem, problems_from_validation
from refract.rules.ruleset import RuleSet
from refract.rules.toml_lines import TomlLines

VERSION_HEADER = "Refract-Rules-Version"
BODY = "request body"  # the "file" of problems found in a request's body


def store_of(request: web.Request) -> RuleStore:
    return RuleStore(redis_of(request), config_of(request).rules.directory)


def loaded(base: RuleFiles) -> RuleSet:
    """The rules in force, or a 409: an edit cannot start from a set that does not load."""
    try:
        return base.rules
    except InvalidFileError as error:
        raise Refused(
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
        raise Refused(428, "send If-Match with the ETag you read, so that no one's edit is lost")
    # A strong comparison (RFC 9110, 13.1.1): weak tags (W/"...") never match.
    tags = {tag.strip() for tag in header.split(",")}
    if "*" not in tags and quoted(current) not in tags and current not in tags:
        raise Refused(
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


def invalid_rule(error: ValidationError, model: type[BaseModel]) -> Refused:
    """How an endpoint whose body is an entry of a rule file refuses an invalid one (its
    ``body_errors``): a 422 in refract check's words."""
    problems = problems_from_validation(error, model, BODY, TomlLines(""))
    return invalid(f"not a valid {model.__name__.lower()}", problems)


def invalid(detail: str, problems: Sequence[Problem]) -> Refused:
    return Refused(422, detail, errors=problem_list(problems))


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
) -> tuple[RuleFiles, RuleFiles]:
    """Apply and save ``change``, record it in the audit log with what ``audited`` says of the
    set before and after; (before, after). A change refused from inside (``Refused``) or
    failing is raised as the refusal answering it."""
    try:
        before, after = await store_of(request).edit(change)
    except InvalidFileError as error:
        raise invalid("the rules would not load: nothing was changed", error.problems) from None
    except UnknownEntryError as error:
        raise Refused(404, str(error)) from None
    except TransitionError as error:
        raise Refused(409, str(error)) from None
    except UnknownVariantError as error:
        raise invalid("no such variant", [Problem(BODY, None, "variant", str(error))]) from None
    except StoreBusyError as error:
        raise Refused(503, str(error)) from None
    except redis.RedisError:
        raise Refused(503, "Redis is unreachable: nothing was published") from None
    except OSError as error:
        raise Refused(500, f"the rules directory could not be written: {error}") from None
    if after.files != before.files:
        client = redis_of(request)
        await audit.record(
            client, identity_of(request), action, target, audited(before), audited(after)
        )
    return before, after
