"""How the rule-editing endpoints answer: ETags and If-Match, refusals, 422s in the words of
``refract check``, and the audit log. Every refusal is raised (``Refused``, admin/api.py),
from a check here or from inside a change being saved, and answered by the endpoint's guard.

* **ETags.** An experiment's or personalization's ETag is a hash of its canonical JSON, so
  an edit to another entry (or to a comment in its file) does not make it stale; set-wide
  operations use the rule set's version. Changing requests must send ``If-Match``: without
  it 428, with a stale one 412 and the current ETag. The check runs while the change is
  being saved (admin/rule_store.py), so two editors cannot both win.
* **422s.** A rule set an edit would produce that ``refract check`` refuses (it does not
  load, or an automation names a destination config.toml lacks: ``ruleset.checked_rules``) is
  refused with the very problems ``refract check`` prints for those files (file, line, field,
  message, hint), unless the set in force has each of them already (config.toml lost a
  destination: pausing an experiment must still work; adding to what is wrong does not); a
  body that is not a valid experiment or personalization gets the same messages and hints,
  with the field's path in the body and ``"file": "request body"``.
* **All or nothing.** A change refused or failing is saved nowhere (admin/rule_store.py puts
  the files back when Redis cannot take it). The audit entry is written once the change is
  saved; when Redis fails just then, the answer is still the change's (it is in force) and
  the entry goes to the error log instead, whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as redis
from aiohttp import web
from pydantic import BaseModel, ValidationError

from refract.admin import audit
from refract.admin.api import Refused
from refract.admin.rule_store import Change, PublishError, RuleStore, StoreBusyError
from refract.admin.state import config_of, identity_of, redis_of
from refract.rules.config import AutomationsConfig
from refract.rules.editing import (
    RuleFiles,
    TransitionError,
    UnknownEntryError,
    UnknownVariantError,
    WinnerTakenError,
)
from refract.rules.problems import InvalidFileError, Problem, problems_from_validation
from refract.rules.redis_client import REDIS_FAILURES
from refract.rules.ruleset import RuleSet, checked_rules
from refract.rules.toml_lines import TomlLines

log = logging.getLogger("refract.admin")

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
    failing is raised as the refusal answering it, and nothing of it is saved."""
    automations = config_of(request).automations
    states: list[tuple[Any, Any]] = []

    def checked(base: RuleFiles) -> RuleFiles:
        after = change(base)
        if after.files != base.files:
            _no_new_problems(base, after, automations)
            states.append((audited(base), audited(after)))  # before saving: it cannot fail then
        return after

    try:
        before, after = await store_of(request).edit(checked)
    except InvalidFileError as error:
        raise invalid(
            "refract check would refuse the rules this makes: nothing was changed", error.problems
        ) from None
    except UnknownEntryError as error:
        raise Refused(404, str(error)) from None
    except (TransitionError, WinnerTakenError) as error:
        raise Refused(409, str(error)) from None
    except UnknownVariantError as error:
        raise invalid("no such variant", [Problem(BODY, None, "variant", str(error))]) from None
    except StoreBusyError as error:
        raise Refused(503, str(error)) from None
    except (PublishError, redis.RedisError) as error:
        raise Refused(
            503, f"Redis could not take the change, so nothing was changed: {error}"
        ) from None
    except OSError as error:
        raise Refused(
            500, f"the rules directory could not be written, so nothing was changed: {error}"
        ) from None
    if after.files != before.files:
        await _record(request, action, target, *states[-1])
    return before, after


def _no_new_problems(base: RuleFiles, after: RuleFiles, automations: AutomationsConfig) -> None:
    """Refuse ``after`` as ``refract check`` would (``checked_rules``), but for the problems the
    set in force has already: config.toml lacking a destination the rules name must not keep
    anyone from pausing an experiment, only from adding to what is wrong."""
    try:
        checked_rules(after.files, after.directory, automations)
    except InvalidFileError as error:
        try:
            checked_rules(base.files, base.directory, automations)
        except InvalidFileError as known:
            had = {_what(problem) for problem in known.problems}
            if all(_what(problem) in had for problem in error.problems):
                return
        raise


def _what(problem: Problem) -> tuple[str, str, str]:
    """A problem whatever its line (an edit moves lines)."""
    return problem.file, problem.field, problem.message


async def _record(request: web.Request, action: str, target: str, before: Any, after: Any) -> None:
    """The audit entry of a saved change; when Redis fails now, the change stands (it is in
    force, and its answer says so) and the entry is logged as an error instead."""
    who = identity_of(request)
    try:
        await audit.record(redis_of(request), who, action, target, before, after)
    except REDIS_FAILURES as error:
        entry = {"user": who.name, "via": who.via, "action": action, "target": target}
        entry |= {"before": before, "after": after}
        log.error(
            "a saved change is not in the audit log (%s): %s",
            error,
            json.dumps(entry, sort_keys=True, default=str),
        )
