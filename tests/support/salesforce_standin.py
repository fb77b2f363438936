"""A Salesforce stand-in: the OAuth token endpoint and the REST calls Refract makes, with
Salesforce's shapes and errors, records kept in memory.

* ``POST /services/oauth2/token`` (client credentials): an access token, or 400
  ``invalid_client``. ``expire_tokens()`` ends every session: the next call answers 401
  ``INVALID_SESSION_ID``.
* The org's API request limit (``api_limit`` calls in all; a composite call counts once): past
  it, 403 ``REQUEST_LIMIT_EXCEEDED``, counted in ``limit_exceeded`` for tests to assert 0.
* Upsert by external id (``Refract_Domain__c`` on Account, unique): 201 created, 200 updated,
  300 with the matching records' URLs when several share the value (``add`` can seed such
  duplicates). Create, update by id (204; 404 ``NOT_FOUND``), fields checked (400
  ``INVALID_FIELD``, ``REQUIRED_FIELD_MISSING``).
* SOQL ``SELECT fields FROM type [WHERE f = 'v' [AND ...]] [ORDER BY f] [LIMIT n]`` in batches of
  ``batch`` records, the rest behind ``nextRecordsUrl``. ``CurrencyIsoCode`` is a field of an
  org with multiple currencies only (``multicurrency``): elsewhere it is ``INVALID_FIELD``.
* ``/composite``: up to 25 subrequests, ``@{ref.id}`` references, ``allOrNone`` rolled back
  (the others answer ``PROCESSING_HALTED``).
* ``duplicate_accounts`` and ``duplicate_tasks`` count records sharing a domain or an action
  id, for tests to assert 0.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from aiohttp import web

CLIENT_ID = "3MVG9standin"
CLIENT_SECRET = "standin-secret"
VERSION = "v62.0"
DATA = f"/services/data/{VERSION}"
PREFIXES = {"Account": "001", "Task": "00T", "User": "005", "Opportunity": "006"}
FIELDS = {
    "Account": {
        "Name", "Website", "Industry", "NumberOfEmployees", "AnnualRevenue", "BillingCountry",
        "OwnerId", "CreatedDate", "Refract_Domain__c", "Refract_Target__c", "Refract_Intent__c",
        "Refract_Band__c", "Refract_Reasons__c", "Refract_Pages__c", "Refract_Last_Seen__c",
    },
    "Task": {
        "Subject", "Description", "ActivityDate", "Status", "Priority", "WhatId", "OwnerId",
        "Refract_Action_Id__c",
    },
    "User": {"Name", "Email", "IsActive"},
    "Opportunity": {
        "AccountId", "Amount", "IsWon", "IsClosed", "CreatedDate", "CloseDate", "Name",
    },
}  # fmt: skip
EXTERNAL_IDS = {"Account": "Refract_Domain__c"}
REQUIRED = {"Account": ("Name",)}
Answer = tuple[int, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_SOQL = re.compile(
    r"^SELECT (?P<fields>[\w, ]+) FROM (?P<type>\w+)"
    r"(?: WHERE (?P<where>.+?))?(?: ORDER BY (?P<order>\w+))?(?: LIMIT (?P<limit>\d+))?$"
)
_CONDITION = re.compile(r"^(\w+) = (?:'((?:[^'\\]|\\.)*)'|(true|false))$")


def _errors(code: str, message: str, fields: list[str] | None = None) -> list[dict[str, Any]]:
    error: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        error["fields"] = fields
    return [error]


class SalesforceStandIn:
    def __init__(
        self, api_limit: int = 100_000, batch: int = 2000, *, multicurrency: bool = False
    ) -> None:
        self.api_limit = api_limit
        self.batch = batch
        # an org with multiple currencies has CurrencyIsoCode on its records; another has none
        extra = {"CurrencyIsoCode"} if multicurrency else set()
        self.fields = {kind: names | extra for kind, names in FIELDS.items()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in FIELDS}
        self.serial = itertools.count(1)
        self.tokens: set[str] = set()
        self.issued = 0
        self.api_calls = 0
        self.limit_exceeded = 0
        self.refused_sessions = 0
        self.cursors: dict[str, list[dict[str, Any]]] = {}
        self.lost_answers = 0  # the next n successful calls are carried out but answer 504

    # --- for tests -----------------------------------------------------------------------

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def add(self, kind: str, **fields: Any) -> str:
        record_id = f"{PREFIXES[kind]}{next(self.serial):015d}"
        self.records[kind][record_id] = dict(fields)
        return record_id

    def _duplicates(self, kind: str, key: Callable[[dict[str, Any]], Any]) -> int:
        values = Counter(key(r) for r in self.records[kind].values() if key(r))
        return sum(count - 1 for count in values.values())

    @property
    def duplicate_accounts(self) -> int:
        def domain(record: dict[str, Any]) -> str:
            value = record.get("Refract_Domain__c") or record.get("Website") or ""
            return str(value).lower().removeprefix("https://").removeprefix("www.")

        return self._duplicates("Account", domain)

    @property
    def duplicate_tasks(self) -> int:
        return self._duplicates("Task", lambda record: record.get("Refract_Action_Id__c"))

    # --- the app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/services/oauth2/token", self._token)
        app.router.add_route("*", DATA + "/{tail:.*}", self._api)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/services/oauth2/"):
            return await handler(request)
        self.api_calls += 1
        if self.api_calls > self.api_limit:
            self.limit_exceeded += 1
            body = _errors("REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
            return web.json_response(body, status=403)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            self.refused_sessions += 1
            body = _errors("INVALID_SESSION_ID", "Session expired or invalid")
            return web.json_response(body, status=401)
        response = await handler(request)
        if self.lost_answers and response.status < 300:
            self.lost_answers -= 1  # done, but the answer never reaches the client
            return web.json_response(_errors("GATEWAY_TIMEOUT", "answer lost"), status=504)
        return response

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        good = (
            form.get("grant_type") == "client_credentials"
            and form.get("client_id") == CLIENT_ID
            and form.get("client_secret") == CLIENT_SECRET
        )
        if not good:
            body = {"error": "invalid_client", "error_description": "invalid client credentials"}
            return web.json_response(body, status=400)
        self.issued += 1
        token = f"00DSTANDIN!token{self.issued}"
        self.tokens.add(token)
        base = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "access_token": token,
                "signature": "c2lnbmF0dXJl",
                "scope": "api",
                "instance_url": base,
                "id": f"{base}/id/00DSTANDIN/005STANDIN",
                "token_type": "Bearer",
                "issued_at": "1767225600000",
            }
        )

    async def _api(self, request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        path = request.path.removeprefix(DATA)
        if path == "/composite" and request.method == "POST":
            status, answer = self._composite(body)
        else:
            status, answer = self.dispatch(request.method, path, dict(request.query), body)
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)

    def dispatch(self, method: str, path: str, query: dict[str, str], body: Any) -> Answer:
        parts = [unquote(part) for part in path.strip("/").split("/")]
        if parts == ["query"] and method == "GET":
            return self._query(query.get("q", ""))
        if parts[0] == "query" and len(parts) == 2 and method == "GET":
            return self._more(parts[1])
        if parts[0] != "sobjects" or len(parts) < 2 or parts[1] not in FIELDS:
            return 404, _errors("NOT_FOUND", "The requested resource does not exist")
        kind = parts[1]
        if len(parts) == 2 and method == "POST":
            return self._create(kind, body)
        if len(parts) == 3 and method == "PATCH":
            return self._update(kind, parts[2], body)
        if len(parts) == 4 and method == "PATCH":
            return self._upsert(kind, parts[2], parts[3], body)
        return 405, _errors("METHOD_NOT_ALLOWED", f"HTTP Method '{method}' not allowed")

    def _invalid(self, kind: str, body: Any) -> Answer | None:
        if not isinstance(body, dict):
            return 400, _errors("JSON_PARSER_ERROR", "the body is not a JSON object")
        for name in body:
            if name not in self.fields[kind]:
                message = f"No such column '{name}' on sobject of type {kind}"
                return 400, _errors("INVALID_FIELD", message)
        return None

    def _create(self, kind: str, body: Any) -> Answer:
        if (refused := self._invalid(kind, body)) is not None:
            return refused
        missing = [name for name in REQUIRED.get(kind, ()) if not body.get(name)]
        if missing:
            message = f"Required fields are missing: [{', '.join(missing)}]"
            return 400, _errors("REQUIRED_FIELD_MISSING", message, missing)
        what = body.get("WhatId")
        if what is not None and what not in self.records["Account"]:
            return 400, _errors(
                "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ["WhatId"]
            )
        record_id = self.add(kind, **body)
        return 201, {"id": record_id, "success": True, "errors": []}

    def _update(self, kind: str, record_id: str, body: Any) -> Answer:
        if record_id not in self.records[kind]:
            return 404, _errors("NOT_FOUND", "The requested resource does not exist")
        if (refused := self._invalid(kind, body)) is not None:
            return refused
        self.records[kind][record_id].update(body)
        return 204, None

    def _upsert(self, kind: str, field: str, value: str, body: Any) -> Answer:
        if EXTERNAL_IDS.get(kind) != field:
            message = f"Provided external ID field does not exist or is not accessible: {field}"
            return 404, _errors("NOT_FOUND", message)
        if (refused := self._invalid(kind, body)) is not None:
            return refused
        matches = [
            record_id
            for record_id, record in self.records[kind].items()
            if str(record.get(field, "")).lower() == value.lower()
        ]
        if len(matches) > 1:
            return 300, [f"{DATA}/sobjects/{kind}/{record_id}" for record_id in matches]
        if matches:
            self.records[kind][matches[0]].update(body)
            return 200, {"id": matches[0], "success": True, "errors": [], "created": False}
        status, answer = self._create(kind, {**body, field: value})
        if status == 201:
            answer["created"] = True
        return status, answer

    def _query(self, soql: str) -> Answer:
        match = _SOQL.match(soql.strip())
        if match is None or match["type"] not in FIELDS:
            return 400, _errors("MALFORMED_QUERY", f"unexpected query: {soql[:80]}")
        kind = match["type"]
        names = [name.strip() for name in match["fields"].split(",")]
        conditions = []
        for condition in (match["where"] or "").split(" AND ") if match["where"] else []:
            parsed = _CONDITION.match(condition.strip())
            if parsed is None:
                return 400, _errors("MALFORMED_QUERY", f"unexpected condition: {condition}")
            value: Any = parsed[2] if parsed[3] is None else parsed[3] == "true"
            conditions.append((parsed[1], value))
        for name in [*names, *(name for name, _ in conditions)]:
            if name != "Id" and name not in self.fields[kind]:
                return 400, _errors("INVALID_FIELD", f"No such column '{name}' on entity '{kind}'")
        rows = [
            {
                "attributes": {"type": kind, "url": f"{DATA}/sobjects/{kind}/{record_id}"},
                **{name: record_id if name == "Id" else record.get(name) for name in names},
            }
            for record_id, record in self.records[kind].items()
            if all(record.get(name) == value for name, value in conditions)
        ]
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        return self._batch(rows, f"01gSTANDIN{len(self.cursors)}")

    def _batch(self, rows: list[dict[str, Any]], cursor: str) -> Answer:
        first, rest = rows[: self.batch], rows[self.batch :]
        answer: dict[str, Any] = {"totalSize": len(rows), "done": not rest, "records": first}
        if rest:
            locator = f"{cursor}-{self.batch}"
            self.cursors[locator] = rest
            answer["nextRecordsUrl"] = f"{DATA}/query/{locator}"
        return 200, answer

    def _more(self, locator: str) -> Answer:
        rows = self.cursors.pop(locator, None)
        if rows is None:
            return 400, _errors("INVALID_QUERY_LOCATOR", "invalid query locator")
        status, answer = self._batch(rows, locator.rsplit("-", 1)[0] + "x")
        return status, answer

    def _composite(self, body: Any) -> Answer:
        requests = body.get("compositeRequest", []) if isinstance(body, dict) else []
        if not 1 <= len(requests) <= 25:
            return 400, _errors("INVALID_BATCH_REQUEST", "1 to 25 subrequests")
        all_or_none = bool(body.get("allOrNone"))
        snapshot = copy.deepcopy(self.records)
        results: list[dict[str, Any]] = []
        references: dict[str, Any] = {}
        failed = False
        for request in requests:
            url = self._resolve(request["url"], references)
            sub_body = self._resolve(request.get("body"), references)
            if not url.startswith(DATA):
                status, answer = 400, _errors("INVALID_URL", "the url is not of this API version")
            else:
                status, answer = self.dispatch(
                    request["method"], url.removeprefix(DATA), {}, sub_body
                )
            if status < 300 and isinstance(answer, dict):
                references[request["referenceId"]] = answer
            failed = failed or status >= 300
            results.append(
                {
                    "body": answer,
                    "httpHeaders": {},
                    "httpStatusCode": status,
                    "referenceId": request["referenceId"],
                }
            )
        if failed and all_or_none:
            self.records = snapshot
            halted = _errors(
                "PROCESSING_HALTED",
                "The transaction was rolled back since another operation in the same "
                "transaction failed.",
            )
            for result in results:
                if result["httpStatusCode"] < 300:
                    result.update(httpStatusCode=400, body=halted)
        return 200, {"compositeResponse": results}

    def _resolve(self, value: Any, references: dict[str, Any]) -> Any:
        if isinstance(value, str):
            return re.sub(
                r"@\{(\w+)\.(\w+)\}",
                lambda m: str(references.get(m[1], {}).get(m[2], m[0])),
                value,
            )
        if isinstance(value, dict):
            return {key: self._resolve(item, references) for key, item in value.items()}
        return value
