"""A HubSpot CRM v3 client: the few calls Refract makes, with the answers validated.

Authentication is a private app's access token, sent as a Bearer token (it does not expire;
a 401 means it was rotated or revoked, which no retry fixes). Every request first awaits the
destination's throttle: HubSpot allows a private app 190 requests per rolling 10 seconds on
Professional and Enterprise (100 on Free and Starter) and answers 429 past it, with a body
whose ``policyName`` names the limit hit (``TEN_SECONDLY_ROLLING``, ``DAILY``).

The search endpoints have a limit of their own, 4 requests per second per token (answered
429 like the other), so a search also awaits ``search_throttle`` when one is given.

Calls: the object endpoints ``/crm/v3/objects/{type}`` (create, update, list pages with
``after`` cursors, search by one property), default associations given at creation, and the
owners ``/crm/v3/owners``. Records come back with every property as a string (or null).

No batch endpoint is called: the pull's list pages already read 100 records a request, as
``batch/read`` would, and ``batch/read`` or ``batch/upsert`` by ``idProperty`` needs a property
with unique values, which a company's ``domain`` is not. A push writes one account's records
(an action is delivered alone), so a batch of one would save nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import quote

import aiohttp
from pydantic import Field, StringConstraints, ValidationError

from refract.analytics.crm import (
    Answer,
    CrmError,
    Throttle,
    parse,
    read_json,
    retry_after,
    shorten,
    unreachable,
)

DEFAULT_BASE_URL: Final = "https://api.hubapi.com"
PAGE_SIZE: Final = 100  # the most the object and search endpoints return at once
# HubSpot-defined association types (the v4 associations' defaults), from the object created
NOTE_TO_COMPANY: Final = 190
TASK_TO_COMPANY: Final = 192
SEARCH_LIMIT: Final = 4  # requests per SEARCH_WINDOW_S per token, whatever the app's limit
SEARCH_WINDOW_S: Final = 1.0
# seconds to wait when a 429 names its policy but sends no Retry-After
POLICY_WAIT_S: Final = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": 3600.0}

RecordId = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
Value = Annotated[str, StringConstraints(max_length=65_536)] | None
Cursor = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Reference(Answer):
    id: RecordId


class References(Answer):
    results: list[Reference] = Field(default=[], max_length=1000)


class Record(Answer):
    id: RecordId
    properties: dict[str, Value] = Field(default={}, max_length=1000)
    associations: dict[str, References] = Field(default={}, max_length=20)

    def text(self, name: str) -> str:
        return (self.properties.get(name) or "").strip()


class Next(Answer):
    after: Cursor


class Paging(Answer):
    next: Next | None = None


class _Paged(Answer):
    paging: Paging | None = None

    @property
    def after(self) -> str | None:
        """The cursor of the next page; None on the last."""
        return self.paging.next.after if self.paging and self.paging.next else None


class Page(_Paged):
    """A page whose records are checked one by one (``records``, or the pull's own check):
    one record out of shape (a lone surrogate, a value past HubSpot's maximum) costs that
    record, not the page and with it the whole pull."""

    results: list[dict[str, Any]] = Field(max_length=PAGE_SIZE)

    def records(self, what: str) -> list[Record]:
        """Every record, or a ``CrmError`` naming the first out of shape."""
        return [
            parse(Record, result, what, ("results", n)) for n, result in enumerate(self.results)
        ]


class Owner(Answer):
    id: RecordId
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    firstName: Annotated[str, StringConstraints(max_length=200)] | None = None
    lastName: Annotated[str, StringConstraints(max_length=200)] | None = None

    @property
    def name(self) -> str:
        return " ".join(part for part in (self.firstName, self.lastName) if part)


class Owners(_Paged):
    results: list[dict[str, Any]] = Field(max_length=PAGE_SIZE)  # each an Owner, checked alone


class _ErrorBody(Answer):
    message: str = ""
    category: str = ""
    policyName: str = ""


@dataclass(frozen=True, slots=True)
class Association:
    """A default (HubSpot-defined) association of a record being created to another."""

    to_id: str
    type_id: int

    def to_json(self) -> dict[str, Any]:
        kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": self.type_id}
        return {"to": {"id": self.to_id}, "types": [kind]}


class HubSpotClient:
    """The calls of one private app; the session and the throttle are the caller's."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token: str,
        throttle: Throttle,
        *,
        base_url: str = "",
        timeout: float = 10.0,
        search_throttle: Throttle | None = None,
    ) -> None:
        self._session = session
        self._base = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._throttle = throttle
        self._search_throttle = search_throttle
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def search(
        self, object_type: str, name: str, value: str, properties: Sequence[str]
    ) -> list[Record]:
        """Records whose property ``name`` equals ``value``, oldest (lowest id) first."""
        body = {
            "filterGroups": [
                {"filters": [{"propertyName": name, "operator": "EQ", "value": value}]}
            ],
            "properties": list(properties),
            "limit": PAGE_SIZE,
        }
        what = f"search of {object_type} by {name}"
        if self._search_throttle is not None:
            await self._search_throttle()
        answer = await self._call("POST", _objects(object_type, "search"), what, body)
        # a push decides by what it finds: a record it cannot read fails it, never goes unseen
        records = parse(Page, answer, what).records(what)
        return sorted(records, key=lambda record: int(record.id))

    async def create(
        self,
        object_type: str,
        properties: Mapping[str, str],
        associations: Sequence[Association] = (),
    ) -> Record:
        body: dict[str, Any] = {"properties": dict(properties)}
        if associations:
            body["associations"] = [association.to_json() for association in associations]
        what = f"create of a {object_type}"
        return parse(Record, await self._call("POST", _objects(object_type), what, body), what)

    async def update(
        self, object_type: str, record_id: str, properties: Mapping[str, str]
    ) -> Record:
        """Raises ``CrmError`` with status 404 when the record was deleted in HubSpot."""
        path = _objects(object_type, quote(record_id, safe=""))
        what = f"update of {object_type} {record_id}"
        answer = await self._call("PATCH", path, what, {"properties": dict(properties)})
        return parse(Record, answer, what)

    async def page(
        self,
        object_type: str,
        properties: Sequence[str],
        after: str | None = None,
        associations: Sequence[str] = (),
    ) -> Page:
        """One page of every record of a type, with the associated ids of ``associations``."""
        params = {"limit": str(PAGE_SIZE), "properties": ",".join(properties)}
        if associations:
            params["associations"] = ",".join(associations)
        if after:
            params["after"] = after
        what = f"list of {object_type}"
        return parse(Page, await self._call("GET", _objects(object_type), what, None, params), what)

    async def owners(self, after: str | None = None) -> Owners:
        params = {"limit": str(PAGE_SIZE), **({"after": after} if after else {})}
        what = "list of owners"
        return parse(Owners, await self._call("GET", "/crm/v3/owners", what, None, params), what)

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        await self._throttle()
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                params=params,
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                if response.status >= 400:
                    raise await _error(response, what)
                return await read_json(response, what)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise unreachable(what, error) from None


def _objects(object_type: str, *parts: str) -> str:
    return "/".join(("/crm/v3/objects", object_type, *parts))


async def _error(response: aiohttp.ClientResponse, what: str) -> CrmError:
    """What a 4xx or 5xx means for the next attempt."""
    status = response.status
    try:
        body = _ErrorBody.model_validate(await read_json(response, what) or {})
    except (CrmError, ValidationError):
        body = _ErrorBody()
    message = shorten(body.message) or response.reason or ""
    detail = f"{what}: {status} {shorten(body.category)} {message}".replace("  ", " ").strip()
    if status == 429:
        wait = retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = POLICY_WAIT_S.get(body.policyName, 10.0)
        policy = shorten(body.policyName) or "rate limit"
        return CrmError(f"{detail} ({policy})", status, retry_after=wait)
    if status >= 500:
        return CrmError(detail, status)
    if status == 401:
        detail += " (the private app's token is wrong, rotated or revoked)"
    # 4xx: a validation error, a missing scope, a deleted record: the same request fails again
    return CrmError(detail, status, permanent=True)
