"""What every admin request handler reaches through the application: config, Redis, models,
and the caller."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as redis
from aiohttp import web

from refract.admin.auth import IDENTITY_KEY, Identity
from refract.rules.config import Config, SiteConfig
from refract.rules.industry import IndustryModel


@dataclass
class LiveConfig:
    """config.toml as the admin runs it, with each site's industry model: replaced as a whole
    when SIGHUP brings a valid file (admin/app.py ``reload_config``), so that a request, which
    reads it once through ``config_of``, never mixes two versions."""

    current: Config
    industries: dict[str, IndustryModel]


CONFIG_KEY = web.AppKey("refract.config", LiveConfig)
REDIS_KEY = web.AppKey("refract.redis", redis.Redis)


def config_of(request: web.Request) -> Config:
    return config_in(request.app)


def config_in(app: web.Application) -> Config:
    return app[CONFIG_KEY].current


def redis_of(request: web.Request) -> redis.Redis:
    return request.app[REDIS_KEY]


def identity_of(request: web.Request) -> Identity:
    """The caller of an endpoint that is not public (the guard made sure there is one)."""
    identity = request[IDENTITY_KEY]
    assert identity is not None, "identity_of is for endpoints that are not public"
    return identity


def site_of(request: web.Request) -> SiteConfig | None:
    """The site named by ``?site=`` (default: the first), or None for an unknown one."""
    sites = config_of(request).sites
    key = request.query.get("site")
    if key is None:
        return sites[0]
    return next((site for site in sites if site.key == key), None)


def industry_of(request: web.Request, site: str) -> IndustryModel | None:
    """The site's industry model (read with the configuration)."""
    return request.app[CONFIG_KEY].industries.get(site)
