"""The admin API's routes, each declared once with the roles that may call it.

An ``Api`` collects endpoints (``@api.get(path, roles=..., summary=...)``) and installs them
on an aiohttp application behind one guard: no identity is 401, a role not listed is 403, a
read-only token on a writing method is 403, and a writing request authenticated by the
session cookie must carry the session's CSRF token (403 without). The same declarations
produce the OpenAPI 3.1 document, so the document cannot drift from the routes (a test
compares them), and a test walks every role against every endpoint.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from admin.auth import IDENTITY_KEY, Identity
from admin.state import site_of
from rules.config import SiteConfig

Role = Literal["executive", "sales_manager", "sales_rep", "marketing", "admin"]
ROLES: tuple[Role, ...] = ("executive", "sales_manager", "sales_rep", "marketing", "admin")
PUBLIC = "public"  # an endpoint anyone may call (login, health)
EVERYONE: frozenset[str] = frozenset(ROLES)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# How an endpoint says no (status, detail): JSON by default; pages redirect to sign in.
Refusal = Callable[[web.Request, int, str], web.StreamResponse]


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    roles: frozenset[str]
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, str] = field(default_factory=dict)
    content_types: tuple[str, ...] = ("application/json",)
    refuse: Refusal | None = None
    body_type: str = "application/json"  # of the request body (``body`` or a text body)

    @property
    def public(self) -> bool:
        return PUBLIC in self.roles


class Api:
    def __init__(self, title: str, version: str) -> None:
        self.title = title
        self.version = version
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        roles: Iterable[str],
        summary: str,
        tag: str,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        responses: dict[int, str] | None = None,
        content_types: tuple[str, ...] = ("application/json",),
        refuse: Refusal | None = None,
        body_type: str = "application/json",
    ) -> Callable[[Handler], Handler]:
        allowed = frozenset(roles)
        unknown = allowed - EVERYONE - {PUBLIC}
        if unknown or not allowed:
            raise ValueError(f"{method} {path}: roles must be some of {ROLES} or PUBLIC")

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    allowed,
                    summary,
                    tag,
                    body,
                    query,
                    responses or {},
                    content_types,
                    refuse,
                    body_type,
                )
            )
            return handler

        return register

    def get(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **options)

    def post(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **options)

    def put(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **options)

    def delete(self, path: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **options)

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, guarded(endpoint))

    def include(self, other: Api) -> None:
        """Take another module's endpoints (each feature module keeps its own ``Api``)."""
        self.endpoints += other.endpoints

    def openapi(self) -> dict[str, Any]:
        return openapi_document(self)


def guarded(endpoint: Endpoint) -> Handler:
    """The handler behind authentication, roles, token scope and CSRF checks."""

    refuse = endpoint.refuse or _refuse_as_json

    async def handle(request: web.Request) -> web.StreamResponse:
        if not endpoint.public:
            identity: Identity | None = request.get(IDENTITY_KEY)
            if identity is None:
                return refuse(
                    request, 401, "sign in, or send an API token as 'Authorization: Bearer'"
                )
            if identity.role not in endpoint.roles:
                allowed = ", ".join(sorted(endpoint.roles))
                return refuse(
                    request, 403, f"the {identity.role} role may not do this (allowed: {allowed})"
                )
            if request.method in UNSAFE_METHODS:
                if identity.via == "token" and not identity.can_write:
                    return problem(403, "this API token is read-only")
                if identity.via == "session" and not identity.csrf_ok(request):
                    return problem(403, "missing or wrong X-CSRF-Token header")
        return await endpoint.handler(request)

    handle.__name__ = endpoint.handler.__name__
    return handle


def _refuse_as_json(request: web.Request, status: int, detail: str) -> web.StreamResponse:
    return problem(status, detail)


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """An error as JSON: ``{"error": ...}`` plus any details (e.g. field errors)."""
    return web.json_response({"error": detail, **extra}, status=status)


M = TypeVar("M", bound=BaseModel)


# How a body's validation errors are answered (the default: 422 with pydantic's field paths).
BodyErrors = Callable[[ValidationError, type[BaseModel]], web.Response]


def _invalid_body(error: ValidationError, model: type[BaseModel]) -> web.Response:
    return problem(422, "invalid request body", errors=field_errors(error))


async def read_body(
    request: web.Request, model: type[M], errors: BodyErrors = _invalid_body
) -> M | web.Response:
    """The JSON body as ``model``, or a 422 naming each bad field by its path."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem(422, "the body is not JSON")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        return errors(error, model)


def parse_query(request: web.Request, model: type[M]) -> M | web.Response:
    """The query string as ``model``, or a 422 naming each bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        return problem(422, "invalid query", errors=field_errors(error))


def parse_site_query(request: web.Request, model: type[M]) -> tuple[M, SiteConfig] | web.Response:
    """The query (or a 422) and the site its ``site`` names (or a 404)."""
    query = parse_query(request, model)
    if isinstance(query, web.Response):
        return query
    site = site_of(request)
    if site is None:
        return problem(404, "no such site")
    return query, site


def field_errors(error: ValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(part) for part in detail["loc"]),
            "message": str(detail["msg"]),
        }
        for detail in error.errors()
    ]


# --- OpenAPI 3.1 ---------------------------------------------------------------------------

_PARAMETER = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def openapi_path(path: str) -> str:
    """aiohttp's ``/api/x/{key}`` (or ``{key:regex}``) as OpenAPI's ``/api/x/{key}``."""
    return _PARAMETER.sub(r"{\1}", path)


def openapi_document(api: Api) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for endpoint in api.endpoints:
        operation: dict[str, Any] = {
            "operationId": endpoint.handler.__name__,
            "summary": endpoint.summary,
            "tags": [endpoint.tag],
            "x-roles": sorted(endpoint.roles),
            "parameters": _parameters(endpoint),
            "responses": _responses(endpoint),
        }
        if not endpoint.public:
            operation["security"] = [{"session": []}, {"token": []}]
        else:
            operation["security"] = []
        if endpoint.body is None and endpoint.body_type != "application/json":
            operation["requestBody"] = {
                "required": True,
                "content": {endpoint.body_type: {"schema": {"type": "string"}}},
            }
        if endpoint.body is not None:
            name = endpoint.body.__name__
            schemas[name] = endpoint.body.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas.update(schemas[name].pop("$defs", {}))
            operation["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}
                },
            }
        paths.setdefault(openapi_path(endpoint.path), {})[endpoint.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": api.version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "rf_admin"},
                "token": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    found = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAMETER.findall(endpoint.path)
    ]
    if endpoint.query is not None:
        schema = endpoint.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            found.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "description": prop.get("description", ""),
                    "schema": {k: v for k, v in prop.items() if k not in ("title", "description")},
                }
            )
    return found


def _responses(endpoint: Endpoint) -> dict[str, Any]:
    content: dict[str, Any] = {kind: {} for kind in endpoint.content_types}
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    for status, description in endpoint.responses.items():
        responses[str(status)] = {"description": description}
    if not endpoint.public:
        responses.setdefault("401", {"description": "not signed in"})
        responses.setdefault("403", {"description": "role, token scope or CSRF check refused"})
    if endpoint.body is not None or endpoint.query is not None:
        responses.setdefault("422", {"description": "invalid input, with field errors"})
    return responses
