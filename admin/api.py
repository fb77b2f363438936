"""The admin API's routes, each declared once with the roles that may call it.

An ``Api`` collects endpoints (``@api.get(path, roles=..., summary=...)``) and installs them
on an aiohttp application behind one guard: no identity is 401, a role not listed is 403, a
read-only token on a writing method is 403, and a writing request authenticated by the
session cookie must carry the session's CSRF token (403 without). The same declarations
produce the OpenAPI 3.1 document, so the document cannot drift from the routes (a test
compares them), and a test walks every role against every endpoint.

**What a handler receives.** An endpoint that declares a query model (``query=HotQuery``)
or a body model (``body=NewUser``) gets them parsed and validated by the guard, after the
access checks, and passed as the keyword arguments ``query`` and ``body``::

    @api.get("/api/accounts/hot", roles=..., summary=..., tag=..., query=HotQuery)
    async def hot_accounts(request: web.Request, query: HotQuery) -> web.StreamResponse: ...

Invalid input never reaches the handler: a 422 names each bad field by its path. Whether a
handler takes ``query`` and ``body`` is checked against the declaration when it is
registered, so the two cannot disagree.

**Refusals are raised.** A handler, or anything it calls (``known_site``, an If-Match
check), says no with ``raise Refused(status, detail, headers=..., **extra)``; the guard
turns it into the endpoint's refusal: a JSON problem (``{"error": detail, **extra}``) by
default, or what the endpoint's ``refuse`` hook makes of it (dashboard pages redirect to the
sign-in page or render a page of their own).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from refract.admin.auth import IDENTITY_KEY, Identity
from refract.admin.state import config_of
from refract.rules.config import SiteConfig

Role = Literal["executive", "sales_manager", "sales_rep", "marketing", "admin"]
ROLES: tuple[Role, ...] = ("executive", "sales_manager", "sales_rep", "marketing", "admin")
PUBLIC = "public"  # an endpoint anyone may call (login, health)
EVERYONE: frozenset[str] = frozenset(ROLES)
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# ``handler(request)``, plus ``query=`` and ``body=`` when the endpoint declares their models
Handler = Callable[..., Awaitable[web.StreamResponse]]


class Refused(Exception):
    """An answer other than success, raised by a handler or anything it calls; the guard
    answers it with the endpoint's refusal (``refuse``), a JSON problem by default."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        """The refusal as JSON: ``{"error": detail, **extra}`` with its headers."""
        answer = problem(self.status, self.detail, **self.extra)
        answer.headers.update(self.headers)
        return answer


# How an endpoint answers a refusal: JSON by default; pages redirect to sign in.
Refuse = Callable[[web.Request, Refused], web.StreamResponse]
# How a body's validation errors are refused (the default: 422 with pydantic's field paths).
BodyErrors = Callable[[ValidationError, type[BaseModel]], Refused]


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
    refuse: Refuse | None = None
    body_type: str = "application/json"  # of the request body (``body`` or a text body)
    body_errors: BodyErrors | None = None  # how an invalid ``body`` is refused

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
        refuse: Refuse | None = None,
        body_type: str = "application/json",
        body_errors: BodyErrors | None = None,
    ) -> Callable[[Handler], Handler]:
        allowed = frozenset(roles)
        unknown = allowed - EVERYONE - {PUBLIC}
        if unknown or not allowed:
            raise ValueError(f"{method} {path}: roles must be some of {ROLES} or PUBLIC")

        def register(handler: Handler) -> Handler:
            _check_parameters(f"{method} {path}", handler, {"query": query, "body": body})
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
                    body_errors,
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


def _check_parameters(
    route: str, handler: Handler, models: dict[str, type[BaseModel] | None]
) -> None:
    """A handler takes ``query`` (``body``) exactly when its endpoint declares that model, and
    when its annotation can be read, the declared model is (one of) what it annotates."""
    parameters = inspect.signature(handler).parameters
    try:
        hints = typing.get_type_hints(handler)
    except (NameError, TypeError):  # names local to a factory, say: not checked
        hints = {}
    for name, model in models.items():
        if (model is None) == (name in parameters):
            needs = "take" if model is not None else "not take"
            raise TypeError(f"{route}: {handler.__name__} must {needs} `{name}`")
        hint = hints.get(name)
        if model is not None and hint is not None and not _accepts(hint, model):
            raise TypeError(f"{route}: {handler.__name__}'s `{name}` is not a {model.__name__}")


def _accepts(hint: Any, model: type[BaseModel]) -> bool:
    if isinstance(hint, type):
        return issubclass(model, hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(member, model) for member in typing.get_args(hint))
    return True  # a form we do not read (a type variable, Any): trusted


def guarded(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler behind authentication, roles, token scope and CSRF checks, given its
    parsed query and body; any ``Refused`` on the way is answered by the endpoint's refusal."""

    refuse = endpoint.refuse or _refuse_as_json

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            _check_access(endpoint, request)
            arguments: dict[str, BaseModel] = {}
            if endpoint.query is not None:
                arguments["query"] = parse_query(request, endpoint.query)
            if endpoint.body is not None:
                errors = endpoint.body_errors or _invalid_body
                arguments["body"] = await read_body(request, endpoint.body, errors)
            return await endpoint.handler(request, **arguments)
        except Refused as refused:
            return refuse(request, refused)

    handle.__name__ = endpoint.handler.__name__
    return handle


def _check_access(endpoint: Endpoint, request: web.Request) -> None:
    if endpoint.public:
        return
    identity: Identity | None = request.get(IDENTITY_KEY)
    if identity is None:
        raise Refused(401, "sign in, or send an API token as 'Authorization: Bearer'")
    if identity.role not in endpoint.roles:
        allowed = ", ".join(sorted(endpoint.roles))
        raise Refused(403, f"the {identity.role} role may not do this (allowed: {allowed})")
    if request.method in UNSAFE_METHODS:
        if identity.via == "token" and not identity.can_write:
            raise Refused(403, "this API token is read-only")
        if identity.via == "session" and not identity.csrf_ok(request):
            raise Refused(403, "missing or wrong X-CSRF-Token header")


def _refuse_as_json(request: web.Request, refused: Refused) -> web.StreamResponse:
    return refused.response()


def problem(status: int, detail: str, **extra: Any) -> web.Response:
    """An error as JSON: ``{"error": ...}`` plus any details (e.g. field errors)."""
    return web.json_response({"error": detail, **extra}, status=status)


M = TypeVar("M", bound=BaseModel)


def _invalid_body(error: ValidationError, model: type[BaseModel]) -> Refused:
    return Refused(422, "invalid request body", errors=field_errors(error))


async def read_body(request: web.Request, model: type[M], errors: BodyErrors = _invalid_body) -> M:
    """The JSON body as ``model``; refused (422) naming each bad field by its path."""
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Refused(422, "the body is not JSON") from None
    except RecursionError:  # Python's parser gives up on nesting about 1,000 deep
        raise Refused(422, "the body is nested too deeply") from None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise errors(error, model) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string as ``model``; refused (422) naming each bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        raise Refused(422, "invalid query", errors=field_errors(error)) from None


def invalid_query(name: str, message: str) -> Refused:
    """A 422 naming the query parameter at fault, as ``parse_query`` names them: for what a
    handler checks across parameters (a period's ends) or against state (the rules)."""
    return Refused(422, "invalid query", errors=[{"field": name, "message": message}])


def known_site(request: web.Request, key: str | None) -> SiteConfig:
    """The site ``key`` names (``?site=``; None: the first the caller may see); refused (404)
    when none does, or when the caller is limited to other sites: to them it does not exist
    (a 403 would tell them which site keys are there)."""
    identity: Identity | None = request.get(IDENTITY_KEY)
    sites = [
        site for site in config_of(request).sites if identity is None or identity.may_see(site.key)
    ]
    site = (
        next(iter(sites), None) if key is None else next((s for s in sites if s.key == key), None)
    )
    if site is None:
        raise Refused(404, "no such site")
    return site


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
