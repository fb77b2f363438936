"""A HubSpot stand-in: the CRM v3 endpoints Refract calls, with HubSpot's shapes, errors and
rate limit, records kept in memory.

* Bearer token checked (401 ``INVALID_AUTHENTICATION`` otherwise).
* The private app's limit enforced over a rolling window (190 per 10 s by default): past it,
  429 with HubSpot's body (``errorType`` ``RATE_LIMIT``, ``policyName``
  ``TEN_SECONDLY_ROLLING``); each one counted in ``rate_limited`` for tests to assert 0.
* The search endpoints' own limit (4 per second per token): past it, 429 with ``policyName``
  ``SECONDLY``, counted in ``rate_limited`` too.
* Objects: create (with default associations to a company, of the HubSpot-defined type of the
  object's kind: 190 for a note, 192 for a task), update (404 ``OBJECT_NOT_FOUND``), list pages
  with ``after`` cursors and associations, search (``EQ`` filters); properties validated
  against each type's known ones (400 ``VALIDATION_ERROR``), values kept as strings.
* HubSpot does not keep company domains unique: neither does the stand-in, it counts
  companies sharing a domain (``duplicate_companies``), notes and tasks sharing a
  ``refract_action_id`` (``duplicate_notes``, ``duplicate_tasks``) for tests to assert 0.
* ``fail_next(status, times)`` answers the next requests with an error, to test retries;
  ``lose_answer(call)`` carries out the next successful ``call`` (``"POST notes"``) but
  answers 504.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

TOKEN = "pat-na1-standin"
PROPERTIES = {
    "companies": {
        "domain",
        "name",
        "industry",
        "numberofemployees",
        "annualrevenue",
        "country",
        "hubspot_owner_id",
        "hs_is_target_account",
        "refract_intent",
        "refract_intent_band",
        "refract_intent_reasons",
        "refract_pages",
        "refract_last_seen",
    },
    "tasks": {
        "hs_timestamp",
        "hs_task_subject",
        "hs_task_body",
        "hs_task_status",
        "hs_task_priority",
        "hs_task_type",
        "hubspot_owner_id",
        "refract_action_id",
    },
    "notes": {"hs_timestamp", "hs_note_body", "hubspot_owner_id", "refract_action_id"},
    "deals": {"dealname", "amount", "createdate", "closedate", "hs_is_closed", "hs_is_closed_won"},
}
REQUIRED = {"tasks": ("hs_timestamp",), "notes": ("hs_timestamp",)}
TO_COMPANY = {"notes": 190, "tasks": 192}  # HubSpot-defined association types
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _error(status: int, category: str, message: str, **extra: Any) -> web.Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return web.json_response(body, status=status)


class HubSpotStandIn:
    def __init__(
        self,
        limit: int = 190,
        window: float = 10.0,
        search_limit: int = 4,
        search_window: float = 1.0,
    ) -> None:
        self.limit = limit
        self.window = window
        self.search_limit = search_limit
        self.search_window = search_window
        self.searches: deque[float] = deque()
        self.properties = {kind: set(names) for kind, names in PROPERTIES.items()}
        self.records: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in PROPERTIES}
        self.owners: list[dict[str, Any]] = []
        self.ids = itertools.count(1001)
        self.arrivals: deque[float] = deque()
        self.requests = 0
        self.rate_limited = 0
        self.failures: list[int] = []
        self.lost: Counter[str] = Counter()  # call -> answers to lose
        self.calls: Counter[str] = Counter()  # "POST companies/search" -> count

    # --- for tests -----------------------------------------------------------------------

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures += [status] * times

    def lose_answer(self, call: str) -> None:
        self.lost[call] += 1

    def add(self, kind: str, properties: dict[str, str], companies: tuple[str, ...] = ()) -> str:
        record_id = str(next(self.ids))
        self.records[kind][record_id] = {
            "properties": dict(properties),
            "companies": list(companies),
        }
        return record_id

    def add_owner(self, first: str, last: str, email: str) -> str:
        owner_id = str(next(self.ids))
        self.owners.append(
            {"id": owner_id, "email": email, "type": "PERSON", "firstName": first, "lastName": last}
        )
        return owner_id

    def companies_with(self, domain: str) -> list[dict[str, Any]]:
        return [
            r["properties"]
            for r in self.records["companies"].values()
            if r["properties"].get("domain") == domain
        ]

    def duplicates(self, kind: str, name: str) -> int:
        values = Counter(
            r["properties"].get(name)
            for r in self.records[kind].values()
            if r["properties"].get(name)
        )
        return sum(count - 1 for count in values.values())

    @property
    def duplicate_companies(self) -> int:
        return self.duplicates("companies", "domain")

    @property
    def duplicate_tasks(self) -> int:
        return self.duplicates("tasks", "refract_action_id")

    @property
    def duplicate_notes(self) -> int:
        return self.duplicates("notes", "refract_action_id")

    # --- the app -------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_post("/crm/v3/objects/{kind}/search", self._search)
        app.router.add_post("/crm/v3/objects/{kind}", self._create)
        app.router.add_patch("/crm/v3/objects/{kind}/{id}", self._update)
        app.router.add_get("/crm/v3/objects/{kind}", self._list)
        app.router.add_get("/crm/v3/owners", self._owners)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        now = time.monotonic()
        while self.arrivals and self.arrivals[0] <= now - self.window:
            self.arrivals.popleft()
        self.requests += 1
        if len(self.arrivals) >= self.limit:
            self.rate_limited += 1
            return _error(
                429,
                "RATE_LIMITS",
                "You have reached your ten_secondly_rolling limit.",
                errorType="RATE_LIMIT",
                policyName="TEN_SECONDLY_ROLLING",
            )
        self.arrivals.append(now)
        if request.path.endswith("/search"):
            while self.searches and self.searches[0] <= now - self.search_window:
                self.searches.popleft()
            if len(self.searches) >= self.search_limit:
                self.rate_limited += 1
                return _error(
                    429,
                    "RATE_LIMITS",
                    "You have reached your secondly limit.",
                    errorType="RATE_LIMIT",
                    policyName="SECONDLY",
                )
            self.searches.append(now)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found. This API supports OAuth 2.0 and private "
                "app access tokens.",
            )
        if self.failures:
            status = self.failures.pop(0)
            return _error(status, "INTERNAL_ERROR", "failing on purpose")
        kind = request.match_info.get("kind", "owners")
        if kind not in PROPERTIES and request.path != "/crm/v3/owners":
            return _error(400, "VALIDATION_ERROR", f"Unable to infer object type from: {kind}")
        call = f"{request.method} {request.path.removeprefix('/crm/v3/objects/')}"
        self.calls[call] += 1
        response = await handler(request)
        if self.lost[call] and response.status < 300:
            self.lost[call] -= 1  # done, but the answer never reaches the client
            return _error(504, "GATEWAY_TIMEOUT", "the answer was lost on its way")
        return response

    def _record(
        self, kind: str, record_id: str, names: list[str], with_companies: bool
    ) -> dict[str, Any]:
        stored = self.records[kind][record_id]
        properties = {name: stored["properties"].get(name) for name in names}
        properties["hs_object_id"] = record_id
        record: dict[str, Any] = {
            "id": record_id,
            "properties": properties,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "archived": False,
        }
        if with_companies and stored["companies"]:
            refs = [{"id": c, "type": f"{kind[:-1]}_to_company"} for c in stored["companies"]]
            record["associations"] = {"companies": {"results": refs}}
        return record

    def _invalid(self, kind: str, properties: Any) -> web.Response | None:
        if not isinstance(properties, dict):
            return _error(400, "VALIDATION_ERROR", "Invalid input JSON: properties")
        unknown = sorted(set(properties) - self.properties[kind])
        if unknown:
            return _error(
                400,
                "VALIDATION_ERROR",
                "Property values were not valid: "
                f'[{{"name":"{unknown[0]}","error":"PROPERTY_DOESNT_EXIST"}}]',
            )
        if any(not isinstance(value, str | int | float) for value in properties.values()):
            return _error(400, "VALIDATION_ERROR", "Property values were not valid")
        return None

    async def _create(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.json()
        properties = body.get("properties")
        if (refused := self._invalid(kind, properties)) is not None:
            return refused
        missing = [name for name in REQUIRED.get(kind, ()) if not properties.get(name)]
        if missing:
            return _error(400, "VALIDATION_ERROR", f"Missing required property {missing[0]}")
        companies = []
        for association in body.get("associations", []):
            target = association["to"]["id"]
            types = association["types"][0]
            if (
                target not in self.records["companies"]
                or types["associationCategory"] != "HUBSPOT_DEFINED"
                or types["associationTypeId"] != TO_COMPANY.get(kind)
            ):
                return _error(400, "VALIDATION_ERROR", f"invalid association to {target}")
            companies.append(target)
        record_id = self.add(kind, {k: str(v) for k, v in properties.items()}, tuple(companies))
        return web.json_response(self._record(kind, record_id, list(properties), False), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        kind, record_id = request.match_info["kind"], request.match_info["id"]
        if record_id not in self.records[kind]:
            return _error(404, "OBJECT_NOT_FOUND", "resource not found")
        properties = (await request.json()).get("properties")
        if (refused := self._invalid(kind, properties)) is not None:
            return refused
        self.records[kind][record_id]["properties"].update(
            {k: str(v) for k, v in properties.items()}
        )
        return web.json_response(self._record(kind, record_id, list(properties), False))

    async def _list(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        limit = int(request.query.get("limit", "10"))
        if not 1 <= limit <= 100:
            return _error(400, "VALIDATION_ERROR", "limit must be between 1 and 100")
        names = [n for n in request.query.get("properties", "").split(",") if n]
        with_companies = "companies" in request.query.get("associations", "")
        ids = sorted(self.records[kind], key=int)
        return web.json_response(self._page(kind, ids, names, with_companies, limit, request))

    def _page(
        self,
        kind: str,
        ids: list[str],
        names: list[str],
        companies: bool,
        limit: int,
        request: web.Request,
    ) -> dict[str, Any]:
        start = int(request.query.get("after", "0") or 0)
        chunk = ids[start : start + limit]
        page: dict[str, Any] = {
            "results": [self._record(kind, record_id, names, companies) for record_id in chunk]
        }
        if start + limit < len(ids):
            page["paging"] = {"next": {"after": str(start + limit), "link": "?after="}}
        return page

    async def _search(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        body = await request.json()
        limit = body.get("limit", 10)
        if not 1 <= limit <= 200:
            return _error(400, "VALIDATION_ERROR", "limit must be at most 200")
        filters = [f for group in body.get("filterGroups", []) for f in group["filters"]]
        for condition in filters:
            if (
                condition["propertyName"] not in self.properties[kind]
                or condition["operator"] != "EQ"
            ):
                return _error(400, "VALIDATION_ERROR", f"cannot filter on {condition}")
        found = [
            record_id
            for record_id in sorted(self.records[kind], key=int)
            if all(
                # HubSpot's EQ ignores case for strings
                str(self.records[kind][record_id]["properties"].get(f["propertyName"], "")).lower()
                == str(f["value"]).lower()
                for f in filters
            )
        ]
        page = self._page(kind, found, body.get("properties", []), False, min(limit, 100), request)
        return web.json_response({"total": len(found), **page})

    async def _owners(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", "100"))
        start = int(request.query.get("after", "0") or 0)
        page: dict[str, Any] = {"results": self.owners[start : start + limit]}
        if start + limit < len(self.owners):
            page["paging"] = {"next": {"after": str(start + limit)}}
        return web.json_response(page)
