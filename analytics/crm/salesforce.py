"""A Salesforce REST API client: the few calls Refract makes, with the answers validated.

Authentication is the OAuth 2.0 client credentials flow of a connected app (or an external
client app): its consumer key and secret are posted to the token endpoint, which answers an
access token that runs as the app's integration user. The token is kept (``Tokens``) until
Salesforce refuses it with 401 ``INVALID_SESSION_ID``; the request is then sent once more with
a new one. Every request, the token's too, first awaits the destination's throttle.

Calls: upsert by an external id field (``PATCH /sobjects/{type}/{field}/{value}``: 201 when
created, 200 when updated, 300 when the value matches several records), update and create by
id, SOQL queries paged by ``nextRecordsUrl``, and ``/composite`` (up to 25 subrequests in one
API call, ``allOrNone``, later ones referring to earlier results as ``@{referenceId.id}``).
Errors come as a list of ``{"errorCode", "message"}``; ``REQUEST_LIMIT_EXCEEDED`` (403) says
the org's API calls for the rolling 24 hours are spent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
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

API_VERSION: Final = "v62.0"
DATA: Final = f"/services/data/{API_VERSION}"
MAX_SUBREQUESTS: Final = 25
MAX_QUERY_PAGES: Final = 10_000  # 20 million records at 2,000 a batch: a runaway, not an org
LIMIT_WAIT_S: Final = 900.0  # REQUEST_LIMIT_EXCEEDED without Retry-After: the 24 h window rolls

RecordId = Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$")]


class _Token(Answer):
    access_token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class _OAuthError(Answer):
    error: str = ""
    error_description: str = ""


class _ApiError(Answer):
    errorCode: str = ""
    message: str = ""


class Upserted(Answer):
    id: RecordId
    created: bool = False


class Created(Answer):
    id: RecordId


class QueryPage(Answer):
    totalSize: int = Field(ge=0)
    done: bool
    nextRecordsUrl: (
        Annotated[str, StringConstraints(pattern=r"^/services/data/v\d+\.\d/query/[\w-]{1,100}$")]
        | None
    ) = None
    records: list[dict[str, Any]] = Field(max_length=2000)


class SubResult(Answer):
    body: Any = None
    httpStatusCode: int
    referenceId: str


class _Composite(Answer):
    compositeResponse: list[SubResult] = Field(max_length=MAX_SUBREQUESTS)


@dataclass(frozen=True, slots=True)
class SubRequest:
    """One subrequest of a composite call; ``url`` is relative to the API version's root."""

    method: str
    url: str
    reference: str
    body: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        request: dict[str, Any] = {
            "method": self.method,
            "url": DATA + self.url,
            "referenceId": self.reference,
        }
        if self.body is not None:
            request["body"] = dict(self.body)
        return request


@dataclass
class Tokens:
    """One connected app's access token: fetched when first needed, kept until refused."""

    token_url: str
    client_id: str
    client_secret: str
    _token: str | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    issued: int = 0  # tokens fetched, for the log and the tests

    async def get(
        self, session: aiohttp.ClientSession, throttle: Throttle, limits: aiohttp.ClientTimeout
    ) -> str:
        async with self._lock:
            if self._token is None:
                self._token = await self._fetch(session, throttle, limits)
                self.issued += 1
            return self._token

    def refused(self, token: str) -> None:
        """Salesforce refused ``token``: the next ``get`` fetches another (unless a concurrent
        request already did)."""
        if self._token == token:
            self._token = None

    async def _fetch(
        self, session: aiohttp.ClientSession, throttle: Throttle, limits: aiohttp.ClientTimeout
    ) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        what = "token request"
        await throttle()
        try:
            async with session.post(self.token_url, data=form, timeout=limits) as response:
                answer = await read_json(response, what)
                if response.status >= 400:
                    raise _token_error(response.status, answer)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise unreachable(what, error) from None
        return parse(_Token, answer, what).access_token


def _token_error(status: int, answer: Any) -> CrmError:
    try:
        body = _OAuthError.model_validate(answer or {})
    except ValidationError:
        body = _OAuthError()
    error = f"{shorten(body.error)} {shorten(body.error_description)}"
    detail = f"token request: {status} {error}".strip()
    if status >= 500 or status == 429:
        return CrmError(detail, status)
    # invalid_client, invalid_grant (client credentials not enabled, no run-as user)
    return CrmError(
        detail + " (check the connected app's key, secret and run-as user)", status, permanent=True
    )


class CompositeError(CrmError):
    """The failure of a composite request's subrequest; ``reference`` names which."""

    def __init__(self, reference: str, cause: CrmError) -> None:
        super().__init__(
            cause.detail, cause.status, retry_after=cause.retry_after, permanent=cause.permanent
        )
        self.reference = reference


class SalesforceClient:
    """The calls of one org; the session, the tokens and the throttle are the caller's."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        instance_url: str,
        tokens: Tokens,
        throttle: Throttle,
        *,
        timeout: float = 10.0,
    ) -> None:
        self._session = session
        self._base = instance_url.rstrip("/")
        self._tokens = tokens
        self._throttle = throttle
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def upsert(
        self, sobject: str, external_field: str, value: str, fields: Mapping[str, Any]
    ) -> Upserted:
        """Create or update the record whose ``external_field`` is ``value``."""
        path = f"/sobjects/{sobject}/{external_field}/{quote(value, safe='')}"
        what = f"upsert of {sobject} {external_field}={value}"
        _, answer = await self._call("PATCH", DATA + path, what, dict(fields))
        return parse(Upserted, answer, what)

    async def update(self, sobject: str, record_id: str, fields: Mapping[str, Any]) -> None:
        """Raises ``CrmError`` with status 404 when the record was deleted."""
        path = f"/sobjects/{sobject}/{quote(record_id, safe='')}"
        await self._call("PATCH", DATA + path, f"update of {sobject} {record_id}", dict(fields))

    async def create(self, sobject: str, fields: Mapping[str, Any]) -> str:
        what = f"create of a {sobject}"
        _, answer = await self._call("POST", f"{DATA}/sobjects/{sobject}", what, dict(fields))
        return parse(Created, answer, what).id

    async def records(self, soql: str) -> AsyncIterator[dict[str, Any]]:
        """Every record a SOQL query selects, page after page."""
        what = "query"
        _, answer = await self._call("GET", f"{DATA}/query", what, params={"q": soql})
        for _ in range(MAX_QUERY_PAGES):
            page = parse(QueryPage, answer, what)
            for record in page.records:
                yield record
            if page.done or page.nextRecordsUrl is None:
                return
            _, answer = await self._call("GET", page.nextRecordsUrl, what)
        raise CrmError(f"{what}: more than {MAX_QUERY_PAGES} pages", permanent=True)

    async def composite(self, requests: Sequence[SubRequest]) -> dict[str, SubResult]:
        """The subrequests' results by reference, all applied or (on any failure) none."""
        if not 0 < len(requests) <= MAX_SUBREQUESTS:
            raise ValueError(f"a composite request has 1 to {MAX_SUBREQUESTS} subrequests")
        body = {"allOrNone": True, "compositeRequest": [r.to_json() for r in requests]}
        _, answer = await self._call("POST", f"{DATA}/composite", "composite request", body)
        results = {
            result.referenceId: result
            for result in parse(_Composite, answer, "composite request").compositeResponse
        }
        missing = [r.reference for r in requests if r.reference not in results]
        if missing:
            raise CrmError(f"composite request: no result for {', '.join(missing)}")
        failed = [result for result in results.values() if result.httpStatusCode >= 300]
        # allOrNone: the subrequests rolled back answer PROCESSING_HALTED; the cause is another
        failed.sort(key=lambda result: "PROCESSING_HALTED" in str(result.body))
        if failed:
            cause = failed[0]
            what = f"composite {cause.referenceId}"
            raise CompositeError(
                cause.referenceId, _api_error(cause.httpStatusCode, cause.body, what, None)
            )
        return results

    async def _call(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        for attempt in range(2):
            token = await self._tokens.get(self._session, self._throttle, self._timeout)
            await self._throttle()
            try:
                async with self._session.request(
                    method,
                    self._base + path,
                    json=body,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    timeout=self._timeout,
                ) as response:
                    answer = await read_json(response, what)
                    if response.status == 401 and attempt == 0:
                        self._tokens.refused(token)  # expired or revoked session: a new one
                        continue
                    if response.status >= 300:
                        wait = retry_after(response.headers.get("Retry-After"))
                        raise _api_error(response.status, answer, what, wait)
                    return response.status, answer
            except (aiohttp.ClientError, TimeoutError) as error:
                raise unreachable(what, error) from None
        raise AssertionError("unreachable: the second 401 raises")


def sub_result_id(result: SubResult, what: str) -> str:
    """The record id a create or upsert subrequest answered."""
    return parse(Created, result.body, what).id


def _api_error(status: int, answer: Any, what: str, wait: float | None) -> CrmError:
    """What an error status and Salesforce's error list mean for the next attempt."""
    errors = _errors(answer)
    codes = {error.errorCode for error in errors}
    message = "; ".join(f"{e.errorCode}: {shorten(e.message, 200)}" for e in errors[:3])
    detail = f"{what}: {status} {message}".strip()
    if status == 300:
        return CrmError(f"{detail} the external id matches several records", status, permanent=True)
    if "REQUEST_LIMIT_EXCEEDED" in codes or status == 429:
        return CrmError(detail, status, retry_after=LIMIT_WAIT_S if wait is None else wait)
    if status >= 500:
        return CrmError(detail, status, retry_after=wait)
    if status == 401:
        detail += " (a new token was refused too: check the connected app's policies)"
    return CrmError(detail, status, permanent=True)


def _errors(answer: Any) -> list[_ApiError]:
    if not isinstance(answer, list):
        return []
    errors = []
    for item in answer[:20]:
        try:
            errors.append(_ApiError.model_validate(item))
        except ValidationError:
            continue
    return errors
