"""Data subjects' rights through the API (admins only): export and erase a visitor, an account
or an e-mail domain's visitors (analytics/data_rights.py). Each call is audited: an erasure
with its receipt (what was removed where, with counts), an export with the sites it read, and
a refused erasure (``privacy.erase.failed``) with the reason, so a request that removed
nothing is on record too. The audit names visitors by handle, never by id."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from refract.admin import audit
from refract.admin.api import Api, Refused, known_site
from refract.admin.auth import IDENTITY_KEY, Identity
from refract.admin.state import config_of, redis_of
from refract.analytics import data_rights
from refract.analytics.archive import Archive, archive_root

api = Api("Refract admin", "1")
ADMINS = ["admin"]


class Erasure(BaseModel):
    """Exactly one subject: a visitor (cookie value or handle), an account's domain, or an
    e-mail domain."""

    visitor: str | None = Field(
        default=None, max_length=400, description="rf_vid cookie value or vh_ handle"
    )
    account: str | None = Field(default=None, max_length=253, description="an account's domain")
    email_domain: str | None = Field(
        default=None, max_length=253, description="visitors whose forms reported this domain"
    )
    site: str | None = Field(default=None, description="one site's key (default: every site)")

    @model_validator(mode="after")
    def _one_subject(self) -> Erasure:
        given = [name for name in ("visitor", "account", "email_domain") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of visitor, account, email_domain")
        return self

    @property
    def kind(self) -> data_rights.SubjectKind:
        if self.visitor:
            return "visitor"
        return "account" if self.account else "email_domain"

    @property
    def value(self) -> str:
        return self.visitor or self.account or self.email_domain or ""


class ExportQuery(BaseModel):
    site: str | None = Field(default=None, description="one site's key (default: every site)")


def _sites(request: web.Request, key: str | None) -> list[str]:
    """The site named, or every site the caller may see (an admin limited to some sites
    erases and exports only there)."""
    if key is not None:
        return [known_site(request, key).key]
    identity = _identity(request)
    return [site.key for site in config_of(request).sites if identity.may_see(site.key)]


def _identity(request: web.Request) -> Identity:
    identity = request[IDENTITY_KEY]
    assert identity is not None  # the guard let only admins in
    return identity


@api.post(
    "/api/privacy/erase",
    roles=ADMINS,
    summary="erase a visitor, an account's visitors or an e-mail domain's (GDPR Art. 17); "
    "answers the receipt",
    tag="privacy",
    body=Erasure,
    responses={
        404: "nothing is kept of the handle's visitor, or no such site",
        422: "no subject, or a malformed one",
    },
)
async def erase_subject(request: web.Request, body: Erasure) -> web.StreamResponse:
    sites = _sites(request, body.site)
    client = redis_of(request)
    archive = Archive(archive_root(config_of(request)))
    try:
        receipt = await data_rights.erase(client, archive, sites, body.kind, body.value)
    except data_rights.SubjectError as error:
        subject = data_rights.attempted_subject(body.kind, body.value)
        refused = {"error": str(error), "sites": sites}
        await audit.record(
            client,
            _identity(request),
            "privacy.erase.failed",
            f"{body.kind}:{subject}",
            after=refused,
        )
        raise Refused(_status(error), str(error)) from None
    answer = receipt.as_dict()
    await audit.record(
        client, _identity(request), "privacy.erase", f"{body.kind}:{receipt.subject}", after=answer
    )
    return web.json_response(answer)


@api.get(
    "/api/privacy/export/{visitor}",
    roles=ADMINS,
    summary="everything kept of a visitor, by cookie value or handle (GDPR Art. 15)",
    tag="privacy",
    query=ExportQuery,
    responses={
        404: "nothing is kept of the handle's visitor, or no such site",
        422: "a malformed visitor",
    },
)
async def export_visitor(request: web.Request, query: ExportQuery) -> web.StreamResponse:
    sites = _sites(request, query.site)
    client = redis_of(request)
    archive = Archive(archive_root(config_of(request)))
    try:
        found = await data_rights.export(
            client, archive, sites, "visitor", request.match_info["visitor"]
        )
    except data_rights.SubjectError as error:
        raise Refused(_status(error), str(error)) from None
    handles = [one["handle"] for site in found["sites"] for one in site["visitors"]]
    after: dict[str, Any] = {
        "sites": [site["site"] for site in found["sites"]],
        "visitors": handles,
    }
    await audit.record(
        client, _identity(request), "privacy.export", f"visitor:{','.join(handles)}", after=after
    )
    return web.json_response(found)


def _status(error: data_rights.SubjectError) -> int:
    return 404 if isinstance(error, data_rights.UnknownHandle) else 422
