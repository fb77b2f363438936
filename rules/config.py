"""config.toml: the schema, its defaults, and loading with precise errors.

Every key has a default and a description; the description doubles as the hint printed when
a value is wrong. ``REFRACT_SECTION__KEY`` environment variables override keys, for
container deployments (``REFRACT_REDIS__URL``, ``REFRACT_SITES__0__ORIGIN``).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from yarl import URL

from refract.rules import patterns
from refract.rules.industry import INDUSTRIES, load_industry_model
from refract.rules.object_store import check_object_store_url, is_object_store_url
from refract.rules.problems import (
    TOML_REFUSALS,
    InvalidFileError,
    Problem,
    dotted,
    problems_from_validation,
    toml_problem,
)
from refract.rules.redis_client import cluster_seeds, is_cluster
from refract.rules.toml_lines import TomlLines

ENV_PREFIX = "REFRACT_"
ENV_SEPARATOR = "__"
# A process's exit code for "cannot start with this configuration, and a restart would not
# help" (sysexits' EX_CONFIG): an address in use, say. Here because every process kind may
# exit so and the supervisor (admin/supervisor.py) reads it: before the process ever came up,
# the node stops (exit code 2).
EXIT_CANNOT_START = 78


class CannotListenError(Exception):
    """A listener (``setting``'s ``address``) could not be bound: a restart would not help, so
    the process exits with EXIT_CANNOT_START and this message."""

    def __init__(
        self, setting: str, address: str, error: OSError, role: str, sharing: str = ""
    ) -> None:
        if error.errno == errno.EADDRINUSE:
            cause = "is already in use"
            hint = "stop the other process listening there (`ss -ltnp`), or give this node "
            hint += f"another address; {sharing}" if sharing else "another address"
        elif error.errno == errno.EACCES:
            cause = "is not allowed (a port below 1024 needs privileges)"
            hint = "use a port of 1024 or more, and a load balancer or nginx in front"
        elif error.errno == errno.EADDRNOTAVAIL:
            cause = "is not an address of this host"
            hint = "use one of this host's addresses, or 0.0.0.0"
        else:
            cause = f"cannot be bound: {error.strerror or error}"
            hint = "check the address"
        super().__init__(f"{setting}: {address} {cause}; {role} cannot start\n    hint: {hint}")


_HOST_PORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+):(?P<port>\d{1,5})$")
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOST_NAME = re.compile(r"[A-Za-z0-9.\-]+|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*")
# A host as a visitor's Host header names it: a name or IPv4 address, or an IPv6 address in
# brackets, with an optional port. A site's host, aliases, public_host and literal host_header.
_PUBLIC_HOST = r"(?:[A-Za-z0-9.\-]+|\[[0-9a-fA-F:.]+\])(?::\d{1,5})?"


def _check_host_port(address: str) -> str:
    match = _HOST_PORT.match(address)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ValueError(f'"{address}" is not "host:port"')
    return address


def _network(item: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return item
    if not isinstance(item, str):
        raise ValueError(f"{item!r} is not a CIDR range written as a string")
    try:
        return ipaddress.ip_network(item)
    except ValueError:
        pass
    try:
        network = ipaddress.ip_network(item, strict=False)
    except ValueError:
        raise ValueError(f'"{item}" is not a CIDR range') from None
    raise ValueError(f'"{item}" has host bits set: did you mean "{network}"?')


def split_host_port(address: str) -> tuple[str, int]:
    """``"[::1]:8080"`` -> ``("::1", 8080)``; the address was validated by the schema."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(Section):
    listen: list[str] = Field(
        default=["127.0.0.1:8080"],
        description='addresses the proxy listens on, as "host:port" strings, e.g. ["0.0.0.0:80"]',
    )
    workers: int = Field(
        default=1, ge=1, le=256, description="number of proxy processes sharing the listeners"
    )
    data_dir: Path = Field(
        default=Path(".refract"),
        description="directory for the embedded Redis, metrics files and archives, relative to "
        "config.toml",
    )
    prefix: str = Field(
        default="/_refract/",
        description='path prefix Refract answers itself and never forwards, e.g. "/_refract/"',
    )
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = Field(
        default=[],
        description="CIDR ranges of load balancers or CDNs whose X-Forwarded-* and Forwarded "
        'headers are believed, e.g. ["10.0.0.0/8"]',
    )
    max_request_body: ByteSize = Field(
        default=ByteSize(32 * 1024 * 1024),
        description='largest request body forwarded to an origin, e.g. "32MiB"; larger gets 413',
    )
    max_chunked_body: ByteSize = Field(
        default=ByteSize(8 * 1024 * 1024),
        description="largest request body without a Content-Length (chunked) forwarded to an "
        'origin, e.g. "8MiB": it is held in memory until complete, so that one too large never '
        "reaches the origin in part; larger (or over max_request_body) gets 413",
    )
    max_header_bytes: ByteSize = Field(
        default=ByteSize(32 * 1024),
        ge=4 * 1024,
        le=1024 * 1024,
        description="largest request line or header field (name and value) taken from a "
        'visitor or an origin, e.g. "32KiB" (4KiB to 1MiB); a larger one gets 431 from a '
        "visitor, 502 from an origin (nginx-like neutral pages)",
    )
    websocket_max_message: ByteSize = Field(
        default=ByteSize(4 * 1024 * 1024),
        gt=0,
        description='largest WebSocket message relayed either way, e.g. "4MiB"; a larger one '
        "closes the connection with 1009 (message too big)",
    )
    graceful_timeout: float = Field(
        default=15.0,
        gt=0,
        allow_inf_nan=False,  # the supervisor kills a child 5 s past it: it needs an end
        description="seconds in-flight requests get to finish on shutdown",
    )
    request_head_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds a new connection gets to send its first request's head (line "
        "and header fields); past it the connection is closed, after a 408 when part of a "
        "head came (nginx's client_header_timeout)",
    )
    request_body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds a request body may pause between two reads; past it the request "
        "is answered 408 and its connection closed (nginx's client_body_timeout)",
    )
    keepalive_timeout: float = Field(
        default=620.0,
        gt=0,
        description="seconds a connection may stay idle between requests before it is closed; "
        "longer than the idle timeout of a load balancer or CDN in front (AWS's 60, Google "
        "Cloud's 600), which would otherwise reuse a connection as Refract closes it",
    )
    access_log: bool = Field(default=True, description="write one JSON line per request to stdout")
    rewrite_cache: ByteSize = Field(
        default=ByteSize(64 * 1024 * 1024),
        description='memory per process for rewritten pages, e.g. "64MiB"; "0" turns it off',
    )
    segment_wait: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="seconds a page may wait, once the origin has answered, for the visitor's "
        "segment from Redis (read while the origin works when the request asks for a page); "
        "past it the page is served without segment targeting",
    )
    origin_cache: ByteSize = Field(
        default=ByteSize(64 * 1024 * 1024),
        description="memory per process for origin pages kept to revalidate with "
        'If-None-Match, so an unchanged page costs the origin a 304; "0" turns it off',
    )
    origin_freshness: bool = Field(
        default=True,
        description="serve a kept origin page without asking the origin while it is fresh by "
        "its own Cache-Control (s-maxage, max-age) or Expires, as a shared cache does (RFC "
        "9111); false confirms every use with the origin",
    )
    metrics_listen: str = Field(
        default="127.0.0.1:9464",
        description='private "host:port" answering GET /metrics (Prometheus, summed across '
        "processes) and GET /health with details; never on a public address; empty turns it off "
        "(a taken address costs the metrics, never the site)",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one listener is needed")
        for address in value:
            _check_host_port(address)
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_trusted_proxies(cls, value: Any) -> Any:
        """CIDR ranges, with a suggestion for the common slip of host bits set (10.0.0.1/8)."""
        if not isinstance(value, list):
            return value  # pydantic says it is not a list
        return [_network(item) for item in value]

    @field_validator("metrics_listen")
    @classmethod
    def _check_metrics_listen(cls, value: str) -> str:
        return _check_host_port(value) if value else value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not (value.startswith("/") and value.endswith("/") and len(value) > 2):
            raise ValueError(
                'the prefix must start and end with "/" and name a path between them, e.g. '
                '"/_refract/" ("/" alone would take every path from the origin)'
            )
        return value


class RedisConfig(Section):
    url: str = Field(
        default="",
        description='Redis or Valkey URL, e.g. "redis://127.0.0.1:6379/0"; a Redis Cluster as '
        '"redis+cluster://host:port,host:port" (some seed nodes; rediss+cluster:// for TLS); '
        "empty starts an embedded server in data_dir",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value and is_cluster(value):
            cluster_seeds(value)  # its ValueError says what is wrong
        elif value and URL(value).scheme not in {"redis", "rediss", "unix"}:
            raise ValueError(
                "the URL must start with redis://, rediss://, unix:// or redis+cluster://"
            )
        return value


class CookieConfig(Section):
    visitor: str = Field(default="rf_vid", description="name of the visitor cookie (13 months)")
    session: str = Field(default="rf_sid", description="name of the session cookie")
    domain: str = Field(
        default="",
        pattern=r"^(\.?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*)?$",
        description='cookie Domain attribute, e.g. ".example.com" to share across subdomains; '
        "empty means host-only",
    )
    visitor_days: int = Field(
        default=395, ge=1, le=400, description="lifetime of the visitor cookie in days (max 400)"
    )
    session_minutes: int = Field(
        default=30, ge=1, le=1440, description="minutes of inactivity that end a session"
    )
    adopt_unsigned: bool = Field(
        default=False,
        description="adopt visitor cookies from before ids were signed (a bare id) and sign "
        "them anew; on only for a migration window: meanwhile anyone can pick an id",
    )

    @field_validator("visitor", "session")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _COOKIE_NAME.match(value):
            raise ValueError(f'"{value}" is not a valid cookie name')
        return value


class PrivacyConfig(Section):
    consent_mode: Literal["legitimate-interest", "strict"] = Field(
        default="legitimate-interest",
        description='"legitimate-interest" sets cookies by default; "strict" sets no identifying '
        "cookie until the consent cookie says yes",
    )
    consent_cookie: str = Field(
        default="rf_consent", description="cookie your consent banner sets when a visitor agrees"
    )
    consent_granted: str = Field(
        default=r"^(1|true|yes|granted)$",
        description="regular expression the consent cookie's value must match to mean yes",
    )
    honor_gpc: bool = Field(
        default=True,
        description="treat the Sec-GPC: 1 header (Global Privacy Control) as a refusal of tracking",
    )
    ip_in_logs: Literal["none", "truncated", "full"] = Field(
        default="truncated",
        description='how visitor IP addresses appear in logs: "truncated" keeps the /24 (IPv4) '
        'or /48 (IPv6) network, "none" omits them',
    )
    archive_personal_fields: Literal["keep", "drop", "hash"] = Field(
        default="keep",
        description="what the archive keeps of event fields that may hold personal data (UTM "
        "values, referrer, link targets, e-mail domain, form action, track properties' text: "
        'docs/events.md#personal-data-in-the-archive): "keep" them, "drop" them (emptied), or '
        '"hash" them with a keyed hash (equal values stay equal, for counting)',
    )

    @field_validator("consent_granted")
    @classmethod
    def _check_pattern(cls, value: str) -> str:
        if found := patterns.problem(value):
            raise ValueError(found)
        return value


def _check_public_host_name(value: str) -> str:
    """``value`` if it is a host as visitors' Host headers name it, else why not: a URL pasted
    for its host is the usual slip, and its host name is suggested."""
    if not value:
        raise ValueError('is empty; give a host name, e.g. "www.example.com"')
    if "://" in value:
        raise ValueError(f'"{value}" is a URL; give only its host name{_host_of_url(value)}')
    if not re.fullmatch(_PUBLIC_HOST, value):
        raise ValueError(
            f'"{value}" is not a host name, IP address or "host:port", e.g. "www.example.com"'
        )
    return value


def _host_of_url(url: str) -> str:
    """': "host[:port]"' of ``url`` as a suggestion, or nothing when it has none."""
    try:
        parsed = URL(url)
    except ValueError:
        return ""
    if not parsed.raw_host:
        return ""
    port = f":{parsed.port}" if parsed.explicit_port else ""
    return f': "{parsed.raw_host}{port}"'


def _routing_name(host: str) -> str:
    """The name a host is routed by (proxy/sites.py): case and the root dot ignored."""
    return without_root_dot(host.lower())


def without_root_dot(host: str) -> str:
    """``host[:port]`` with its name's one trailing dot taken off: ``a.test.`` is the fully
    qualified spelling of the DNS name ``a.test`` (a browser sends it when the visitor wrote
    it so), and nginx and browsers take both for one name. One dot only: ``a.test..`` names
    nothing and stays as it is, as does a bracketed IPv6 address."""
    if not host.endswith(".") and ".:" not in host:
        return host  # no name ending in a dot: every Host a proxy routes but the rare one
    has_port = ":" in host and not host.endswith("]")
    name, colon, port = host.rpartition(":") if has_port else (host, "", "")
    if name.endswith(".") and not name.endswith("..") and name != ".":
        name = name[:-1]
    return name + colon + port


class SiteConfig(Section):
    host: str = Field(
        description='public host name visitors use, e.g. "www.example.com"; "*" matches any host'
    )
    aliases: list[str] = Field(default=[], description="other public host names of this site")
    id: str = Field(
        default="",
        pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$|^$",
        description="short key of the site in Redis (lowercase letters, digits, - and _); "
        "defaults to the host",
    )
    origin: str = Field(
        description='origin server URL without a path, e.g. "https://origin.example.com:8443"'
    )
    public_host: str = Field(
        default="",
        pattern=rf"^({_PUBLIC_HOST})?$",
        description='only with host = "*": the "host[:port]" named in redirects rewritten to the '
        "public site and in X-Forwarded-Host, never the visitor's Host; empty: a trusted proxy's "
        "X-Forwarded-Host, else those redirects become relative and X-Forwarded-Host is left out",
    )
    host_header: str = Field(
        default="origin",
        description='Host sent to the origin: "origin" (the origin URL\'s host), "public" (the '
        "visitor's Host) or a literal host name",
    )
    verify_tls: bool = Field(default=True, description="verify the origin's TLS certificate")
    connect_timeout: float = Field(
        default=5.0, gt=0, description="seconds to connect to the origin before answering 502"
    )
    read_timeout: float = Field(
        default=30.0, gt=0, description="seconds the origin may stay silent before answering 504"
    )
    total_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds the origin may take in all, from the request sent to the last byte "
        "of a page (to the response head for anything else, which then streams) before "
        "answering 504",
    )
    max_rewrite_bytes: ByteSize = Field(
        default=ByteSize(4 * 1024 * 1024),
        description='largest HTML body Refract rewrites, e.g. "4MiB"; larger pages pass unmodified',
    )
    max_rewrite_seconds: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="CPU seconds a page's rewrite may take (it holds up the proxy process's other "
        "requests) before the page is served unmodified; such a page is then served unmodified "
        "for 10 minutes",
    )
    beacon: bool = Field(default=True, description="inject the measurement beacon into pages")
    industry: str = Field(
        default="saas",
        description="industry model scoring visitors: saas, manufacturing, consulting, ecommerce, "
        "financial_services, healthcare, college_consulting, or a model file (*.toml) relative "
        "to config.toml (docs/intelligence.md#industry-models)",
    )

    @field_validator("industry")
    @classmethod
    def _check_industry(cls, value: str) -> str:
        if value.endswith(".toml") or value in INDUSTRIES:
            return value
        raise ValueError(
            f'"{value}" is neither a shipped industry model ({", ".join(INDUSTRIES)}) nor a '
            "*.toml file"
        )

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return value if value == "*" else _check_public_host_name(value)

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, value: list[str], info: ValidationInfo) -> list[str]:
        host = info.data.get("host")
        for alias in value:
            if alias != "*":  # any other host, as a site's host "*" is
                _check_public_host_name(alias)
            if host is not None and _routing_name(alias) == _routing_name(host):
                raise ValueError(f'"{alias}" is the site\'s own host; list only other names')
        return value

    @field_validator("host_header")
    @classmethod
    def _check_host_header(cls, value: str) -> str:
        return value if value in {"origin", "public"} else _check_public_host_name(value)

    @field_validator("public_host")
    @classmethod
    def _check_public_host(cls, value: str, info: ValidationInfo) -> str:
        host = info.data.get("host")
        if value and host != "*":
            raise ValueError(
                f'public_host is only for a site with host = "*"; this site\'s public host is '
                f'"{host}"'
            )
        return value

    @field_validator("origin")
    @classmethod
    def _check_origin(cls, value: str) -> str:
        url = URL(value)
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError(f'"{value}" is not an http:// or https:// URL')
        if url.path not in {"", "/"} or url.query_string or url.fragment:
            raise ValueError(
                f'"{value}" has a path, query or fragment; give only scheme://host:port'
            )
        return value

    @property
    def key(self) -> str:
        """The site's name in Redis keys."""
        return self.id or re.sub(r"[^a-z0-9_-]", "-", self.host.lower()).strip("-") or "default"

    @property
    def origin_url(self) -> URL:
        return URL(self.origin).with_path("")


# The admin's session cookie: set by admin/auth.py, and never passed to an origin by the proxy
# (a browser sends it to every port of a host, so to a site that shares the admin's host name).
ADMIN_SESSION_COOKIE = "rf_admin"
# Its name over HTTPS: the __Host- prefix makes browsers refuse it unless it is Secure, for the
# whole host and set by that host (no cookie tossing from a sibling subdomain or plain HTTP).
ADMIN_SECURE_SESSION_COOKIE = "__Host-" + ADMIN_SESSION_COOKIE


class AdminConfig(Section):
    listen: str = Field(
        default="127.0.0.1:8090",
        description='address of the admin API and dashboard, "host:port"; keep it private',
    )
    allowed_hosts: list[str] = Field(
        default=[],
        description="host names (without port) the admin answers in the Host header, e.g. "
        '["admin.example.com"]; others get 421 (a defence against DNS rebinding); empty means '
        "the listen host plus localhost, 127.0.0.1 and ::1",
    )
    login_free_failures: int = Field(
        default=3,
        ge=0,
        le=100,
        description="wrong passwords a user name or an address may try before each further "
        "attempt must wait 1, 2, 4, ... seconds (429 with Retry-After)",
    )
    login_lockout_failures: int = Field(
        default=10,
        ge=1,
        le=10_000,
        description="wrong passwords for one user name that lock it for login_lockout_minutes",
    )
    login_address_lockout_failures: int = Field(
        default=50,
        ge=1,
        le=100_000,
        description="wrong passwords from one client address that lock it out for "
        "login_lockout_minutes",
    )
    login_lockout_minutes: int = Field(
        default=15,
        ge=1,
        le=1440,
        description="how long failures are remembered and a lockout lasts, counted from the "
        "latest failure",
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _check_host_port(value)

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f'"{host}" is not a host name or IP address (give no port)')
        return [host.lower() for host in value]


class RulesConfig(Section):
    directory: Path | None = Field(
        default=None,
        description="directory of rule files (*.toml), relative to config.toml; none means no "
        "experiments or personalizations",
    )
    unsigned_qa_overrides: bool = Field(
        default=False,
        description="let anyone force a variant with an unsigned ?rf_force=experiment:variant "
        "(the demo and development only); otherwise only signed QA links work (refract qa-link)",
    )


class EventsConfig(Section):
    shards: int = Field(
        default=4,
        ge=1,
        le=256,
        description="shards of each site's event stream, by visitor: up to this many workers "
        "share a site; change it only with the streams drained and the workers stopped",
    )
    buffer: int = Field(
        default=100_000,
        ge=100,
        description="events a proxy process holds while Redis is away; beyond it the oldest are "
        "dropped and counted",
    )
    email_domains: bool = Field(
        default=False,
        description="let the beacon report the domain (never the address) of email fields in "
        "submitted forms",
    )
    visitor_rate: int = Field(
        default=120,
        ge=1,
        description=(
            "beacon batches one visitor may send per minute, counted by each proxy process "
            "(with `server.workers` = N, a visitor whose posts reach every process may send "
            "up to N times this)"
        ),
    )
    ip_rate: int = Field(
        default=1200,
        ge=1,
        description="beacon batches one IP address may send per minute, per proxy process",
    )
    network_rate: int = Field(
        default=6000,
        ge=1,
        le=10_000_000,
        description=(
            "beacon batches one network (an IPv4 /24, an IPv6 /64) may send per minute, "
            "per proxy process"
        ),
    )
    stream_max_entries: int = Field(
        default=1_000_000,
        ge=1000,
        le=1_000_000_000,
        description="entries one stream shard may hold (about 250 bytes each): at this bound "
        "batches are refused (503) and page views not recorded until the worker catches up",
    )
    archive_dir: Path | str | None = Field(
        default=None,
        union_mode="left_to_right",  # a plain string is a Path; only a URL stays a string
        description="where the worker writes daily Parquet files of processed events: a "
        "directory, relative to config.toml, or an s3://bucket/prefix URL that the workers of "
        "several nodes share (docs/operations.md#the-archive-on-object-storage); none means "
        '"archive" in data_dir',
    )

    @field_validator("archive_dir", mode="wrap")
    @classmethod
    def _archive_location(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """An ``s3://`` URL is kept as written (once checked); anything else is a path."""
        if isinstance(value, str) and is_object_store_url(value):
            return check_object_store_url(value)
        if value is not None and not isinstance(value, str | Path):
            raise ValueError(f'{value!r} is not a path: write it as a string, e.g. "archive"')
        return handler(value)

    @model_validator(mode="before")
    @classmethod
    def _refuse_moved_keys(cls, data: Any) -> Any:
        """Retention moved to ``[retention]`` (one place per data class); an old file is
        refused with the new name rather than silently keeping a lifetime nobody reads."""
        if isinstance(data, dict):
            for old, new in _MOVED_TO_RETENTION.items():
                if old in data:
                    raise ValueError(
                        f"events.{old} moved to [retention]: write `{new} = {data[old]!r}` "
                        "under [retention] instead"
                    )
        return data


_MOVED_TO_RETENTION = {"retention_days": "streams_days", "archive_days": "archive_days"}


class RetentionConfig(Section):
    streams_days: int = Field(
        default=7,
        ge=1,
        le=365,
        description="days events stay in the Redis streams and the dead-letter stream (trimmed "
        "on each write and daily by the worker); the archive keeps them longer",
    )
    profiles_days: int = Field(
        default=400,
        ge=1,
        le=400,
        description="days a visitor's profile, pages, segment and exposures live after their "
        "last event (at most 400, the keys' own lifetime); the worker deletes older ones daily, "
        "and drops them from accounts' latest visitors",
    )
    archive_days: int = Field(
        default=730,
        ge=1,
        le=3650,
        description="days the Parquet archive keeps, counted by event date (730: 24 months); "
        "the worker deletes older days daily",
    )


class IntelConfig(Section):
    reverse_dns: bool = Field(
        default=True,
        description="let the worker look up the company domain of business networks' visitor "
        "addresses (the address then rides in page view events for retention.streams_days, "
        "never in profiles or the archive)",
    )
    enrichment_url: str = Field(
        default="",
        description="base URL of a company enrichment API (docs/intelligence.md#enrichment); "
        "empty means none",
    )
    enrichment_key: str = Field(
        default="",
        description="API key for enrichment_url; better set as REFRACT_INTEL__ENRICHMENT_KEY",
    )
    enrichment_rate: float = Field(
        default=5.0, gt=0, description="enrichment API calls per second at most, per worker"
    )


class AutopilotConfig(Section):
    max_traffic: float = Field(
        default=50.0,
        gt=0,
        le=100,
        description="percent of a page's visitors an experiment autopilot proposed may take "
        "(its traffic share when launched)",
    )
    auto_launch: bool = Field(
        default=False,
        description="launch the best waiting proposals without a person (within max_running "
        "and max_days, one per page tag)",
    )
    auto_promote: bool = Field(
        default=False,
        description="promote the winner of an experiment autopilot launched when its report "
        "says ship",
    )
    auto_pause: Literal["off", "autopilot", "all"] = Field(
        default="autopilot",
        description="pause a running experiment whose report finds a sample-ratio mismatch or "
        "a harmed guardrail: those autopilot launched, every one, or none",
    )
    scan_hours: float = Field(
        default=24.0,
        ge=0,
        description="hours between autopilot's scans of the most viewed pages for new "
        "proposals, made by the admin process; 0: only by hand (refract autopilot scan)",
    )
    max_running: int = Field(
        default=3, ge=1, le=50, description="experiments autopilot launched running at once"
    )
    max_days: float = Field(
        default=90.0,
        gt=0,
        description="auto_launch skips proposals whose test would need more days than this",
    )
    llm_url: str = Field(
        default="",
        description="base URL of an OpenAI-compatible chat-completions API for copy "
        "suggestions (up to /chat/completions); empty means none",
    )
    llm_key: str = Field(
        default="", description="API key for llm_url; better set as REFRACT_AUTOPILOT__LLM_KEY"
    )
    llm_model: str = Field(default="", description="the model llm_url should use")


class AttributionConfig(Section):
    window_days: int = Field(
        default=90,
        ge=1,
        le=730,
        description="days before a conversion a touch (a session's arrival) may earn credit",
    )
    half_life_days: float = Field(
        default=7.0, gt=0, le=365, description="the time-decay model's half-life in days"
    )
    min_conversions: int = Field(
        default=30,
        ge=0,
        description="below this many conversions attribution warns that it has too little data",
    )
    conversion_metric: str = Field(
        default="",
        description="the rules' metric whose events are on-site conversions; empty: the "
        "first metric of the rule files",
    )


DESTINATION_NAME = r"^[a-z0-9][a-z0-9_]{0,62}$"  # an environment variable's part names it
DestinationKind = Literal["slack", "teams", "email", "webhook", "hubspot", "salesforce"]
# The Standard Webhooks retry schedule (immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)
RETRY_SCHEDULE_S: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def noncanonical_ipv4(host: str) -> str | None:
    """The dotted-quad spelling of ``host`` when it is an IPv4 address written any other way
    the C resolver accepts (``2130706434``, ``127.2``, ``017700000002``, ``0x7f.1``, any of
    them or the dotted quad with a root dot, ``127.0.0.1.``), else None. Such a host is
    refused: resolvers disagree on it (aiohttp's refuses it, so every attempt would fail the
    same way), and it hides which address is meant."""
    bare = host[:-1] if host.endswith(".") else host
    try:
        packed = socket.inet_aton(bare)
    except (OSError, ValueError):  # not an IPv4 address at all (a name), or a NUL in it
        return None
    canonical = str(ipaddress.IPv4Address(packed))
    return None if canonical == host else canonical


class DestinationConfig(Section):
    kind: DestinationKind = Field(
        description="slack, teams (incoming webhooks), email, webhook (Standard Webhooks), "
        "hubspot or salesforce"
    )
    url: str = Field(
        default="",
        description="slack, teams, webhook: the URL to post to; hubspot: the API's base URL "
        "(empty: https://api.hubapi.com); salesforce: the instance URL",
    )
    secrets: list[str] = Field(
        default=[],
        max_length=2,
        description='webhook: "whsec_..." signing secrets; two while rotating (each signs '
        "every message); better set as REFRACT_AUTOMATIONS__DESTINATIONS__NAME__SECRETS",
    )
    to: list[str] = Field(
        default=[], description="email: addresses every message goes to (besides the owner's)"
    )
    token: str = Field(
        default="",
        description="hubspot: the private app's access token; better set as "
        "REFRACT_AUTOMATIONS__DESTINATIONS__NAME__TOKEN",
    )
    token_url: str = Field(
        default="",
        description="salesforce: the OAuth token endpoint (client credentials), e.g. "
        "https://MyDomain.my.salesforce.com/services/oauth2/token",
    )
    client_id: str = Field(default="", description="salesforce: the connected app's client id")
    client_secret: str = Field(
        default="",
        description="salesforce: the connected app's secret; better set as "
        "REFRACT_AUTOMATIONS__DESTINATIONS__NAME__CLIENT_SECRET",
    )
    rate_limit: int = Field(
        default=10,
        ge=1,
        le=100_000,
        description="requests this destination may receive per rate_window, from all workers "
        "together (HubSpot: 190 per 10 s; Slack: 1 per second)",
    )
    rate_window: float = Field(
        default=1.0, gt=0, le=3600, description="seconds over which rate_limit counts"
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=256,
        description="requests in flight to this destination, from all workers together",
    )
    timeout: float = Field(
        default=10.0, gt=0, le=120, description="seconds one delivery may take before it fails"
    )

    @model_validator(mode="after")
    def _has_what_its_kind_needs(self) -> DestinationConfig:
        needs = {
            "slack": ("url",),
            "teams": ("url",),
            "webhook": ("url", "secrets"),
            "salesforce": ("url", "token_url", "client_id", "client_secret"),
        }.get(self.kind, ())
        missing = [name for name in needs if not getattr(self, name)]
        if missing:
            raise ValueError(f"a {self.kind} destination needs {' and '.join(missing)}")
        for secret in self.secrets:
            if not secret.startswith("whsec_"):
                raise ValueError('webhook secrets start with "whsec_" (Standard Webhooks)')
        for url in filter(None, (self.url, self.token_url)):
            if URL(url).scheme not in ("http", "https"):
                raise ValueError(f'"{url}" is not an http(s) URL')
            host = URL(url).raw_host or ""
            if (canonical := noncanonical_ipv4(host)) is not None:
                raise ValueError(
                    f'the host "{host}" of {url} is an IPv4 address in a non-canonical '
                    f"spelling: write it as four decimal numbers, {canonical}"
                )
        return self


class SmtpConfig(Section):
    host: str = Field(default="", description="SMTP server for email destinations; empty: none")
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port")
    security: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (587), tls (465) or none (tests only)"
    )
    username: str = Field(default="", description="SMTP user; empty: no authentication")
    password: str = Field(
        default="", description="SMTP password; better set as REFRACT_AUTOMATIONS__SMTP__PASSWORD"
    )
    sender: str = Field(default="refract@localhost", description="the From address")


class AutomationsConfig(Section):
    destinations: dict[Annotated[str, Field(pattern=DESTINATION_NAME)], DestinationConfig] = Field(
        default={},
        description="[automations.destinations.NAME]: where automations.toml's actions go, "
        "by name (lowercase letters, digits and _)",
    )
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    dashboard_url: str = Field(
        default="",
        description="the admin dashboard's public URL, for links in messages; empty: no links",
    )
    allow_hosts: list[str] = Field(
        default=[],
        description="hosts or CIDRs destinations may reach although private or loopback "
        '(refused otherwise, against SSRF), e.g. ["10.0.0.0/8"]',
    )
    retry_schedule: list[float] = Field(
        default=list(RETRY_SCHEDULE_S),
        min_length=1,
        max_length=20,
        description="seconds before each delivery attempt (Standard Webhooks' schedule); "
        "after the last one fails the action goes to the dead letters",
    )
    crm: str = Field(
        default="",
        description="the hubspot or salesforce destination accounts, owners and deals are "
        "pulled from; empty: none (CSV imports only)",
    )
    crm_pull_hours: float = Field(
        default=6.0, gt=0, le=168, description="hours between pulls from the CRM"
    )
    lead_sla_minutes: float = Field(
        default=60.0,
        gt=0,
        description="minutes a routed lead may wait for its rep before it is routed again",
    )

    @model_validator(mode="after")
    def _crm_names_a_crm(self) -> AutomationsConfig:
        if self.crm:
            destination = self.destinations.get(self.crm)
            if destination is None or destination.kind not in ("hubspot", "salesforce"):
                raise ValueError(
                    f'crm = "{self.crm}" names no hubspot or salesforce destination: add '
                    f'[automations.destinations.{self.crm}] with kind = "hubspot"'
                )
        emails = any(destination.kind == "email" for destination in self.destinations.values())
        if emails and not self.smtp.host:
            raise ValueError("email destinations need [automations.smtp] host")
        for allowed in self.allow_hosts:
            _check_host_or_network(allowed)
        return self


def _check_host_or_network(value: str) -> None:
    if _HOST_NAME.fullmatch(value):
        return
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f'"{value}" is neither a host name nor a CIDR') from None


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    cookies: CookieConfig = Field(default_factory=CookieConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    admin: AdminConfig = Field(default_factory=AdminConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    intel: IntelConfig = Field(default_factory=IntelConfig)
    autopilot: AutopilotConfig = Field(default_factory=AutopilotConfig)
    automations: AutomationsConfig = Field(default_factory=AutomationsConfig)
    attribution: AttributionConfig = Field(default_factory=AttributionConfig)
    sites: Annotated[list[SiteConfig], Field(min_length=1)] = Field(
        description="the websites Refract fronts, one [[sites]] table each"
    )

    @field_validator("sites")
    @classmethod
    def _check_unique_hosts(cls, sites: list[SiteConfig]) -> list[SiteConfig]:
        seen: set[str] = set()
        for site in sites:
            for host in (site.host, *site.aliases):
                name = _routing_name(host)
                if name in seen:
                    raise ValueError(f'host "{host}" is served by two sites')
                seen.add(name)
        return sites

    @field_validator("sites")
    @classmethod
    def _check_unique_keys(cls, sites: list[SiteConfig]) -> list[SiteConfig]:
        """The key prefixes everything of a site's that is kept (the origin cache's entries,
        its events, visitors, accounts and rules state in Redis): two sites with one key would
        serve each other's pages and mix their data. A key derived from the host can collide
        too (``shop.example.com`` and ``shop-example.com`` are both ``shop-example-com``)."""
        first_with: dict[str, int] = {}
        for index, site in enumerate(sites):
            earlier = first_with.setdefault(site.key, index)
            if earlier != index:
                raise ValueError(
                    f"{_named(earlier, sites[earlier])} and {_named(index, site)} have the same "
                    f'key "{site.key}", which names a site\'s kept pages and its data in Redis: '
                    "set a distinct id on one of them"
                )
        return sites

    def site(self, key: str | None) -> SiteConfig | None:
        """The site ``key`` names (None: the first), or None when no site has that key."""
        if key is None:
            return self.sites[0]
        return next((site for site in self.sites if site.key == key), None)


def config_warnings(config: Config) -> list[str]:
    """What loads but deserves a look (``refract check`` prints it)."""
    return [
        f"server.trusted_proxies: {network} trusts every address: any visitor can then choose "
        "the address Refract sees (per-address beacon limits, accounts matched by IP range, "
        "the address in events); list only your load balancers' or CDN's ranges"
        for network in config.server.trusted_proxies
        if network.prefixlen == 0
    ]


def _named(index: int, site: SiteConfig) -> str:
    """A site as an error names it: its place in the file, and where its key comes from."""
    return f'sites[{index}] (id "{site.id}")' if site.id else f'sites[{index}] (host "{site.host}")'


def load_config(path: Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment, and validate; raise InvalidFileError on any error."""
    environ = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InvalidFileError(
            [Problem(str(path), None, "", f"cannot read: {error.strerror}", "pass --config FILE")]
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise InvalidFileError(
            [Problem(str(path), line, "", "is not UTF-8", "save it as UTF-8 (not Latin-1)")]
        ) from None
    try:
        data = tomllib.loads(text)
    except TOML_REFUSALS as error:
        raise InvalidFileError([toml_problem(str(path), text, error)]) from None
    data, overrides, env_problems = _apply_environment(data, environ)
    if env_problems:
        raise InvalidFileError(env_problems)
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems = problems_from_validation(error, Config, str(path), TomlLines(text))
        raise InvalidFileError([_blame(problem, overrides) for problem in problems]) from None
    config = _resolve_paths(config, path)
    _check_industry_models(config)
    return config


def _check_industry_models(config: Config) -> None:
    """A site's industry model must load, or the configuration is refused whole."""
    problems = []
    for site in config.sites:
        try:
            load_industry_model(site.industry)
        except InvalidFileError as error:
            problems += error.problems
    if problems:
        raise InvalidFileError(problems)


def _resolve_paths(config: Config, config_path: Path) -> Config:
    """Relative paths in the file (or its environment overrides) are relative to the file's
    folder, wherever Refract runs from: a command run from another directory, or by a service
    manager with another working directory, reads and writes the same data as the node."""
    base = config_path.absolute().parent

    def resolved(path: Path) -> Path:
        return path if path.is_absolute() else base / path

    server = config.server.model_copy(update={"data_dir": resolved(config.server.data_dir)})
    directory = config.rules.directory
    rules = config.rules.model_copy(
        update={"directory": None if directory is None else resolved(directory)}
    )
    archive = config.events.archive_dir
    events = config.events.model_copy(
        update={"archive_dir": resolved(archive) if isinstance(archive, Path) else archive}
    )
    sites = [
        site.model_copy(update={"industry": str(resolved(Path(site.industry)))})
        if site.industry.endswith(".toml")
        else site
        for site in config.sites
    ]
    return config.model_copy(
        update={"server": server, "rules": rules, "events": events, "sites": sites}
    )


def _apply_environment(
    data: dict[str, Any], environ: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """Merge the ``REFRACT_*`` overrides into the file's data; also return which variable set
    which key (``{"server.workers": "REFRACT_SERVER__WORKERS"}``), so that an error in one is
    blamed on the variable, not on a line of the file."""
    overrides: dict[str, str] = {}
    problems = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or ENV_SEPARATOR not in name:
            continue
        path = name.removeprefix(ENV_PREFIX).lower().split(ENV_SEPARATOR)
        try:
            _set_path(data, path, _parse_env_value(environ[name], _takes_text(path)))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError):
            problems.append(
                Problem(
                    "environment",
                    None,
                    name,
                    "does not name a key of config.toml",
                    "use REFRACT_SECTION__KEY, e.g. REFRACT_REDIS__URL or REFRACT_SITES__0__ORIGIN",
                )
            )
            continue
        overrides[dotted(int(part) if part.isdigit() else part for part in path)] = name
    return data, overrides, problems


def _blame(problem: Problem, overrides: Mapping[str, str]) -> Problem:
    """A problem with a key an environment variable set names the variable, not the file."""
    setters = [key for key in overrides if _was_set_by(key, problem)]
    if not setters:
        return problem
    variable = overrides[max(setters, key=len)]  # the most precise override
    hint = problem.hint
    if problem.message == "unknown key" and hint.startswith("did you mean '"):
        known = hint.removeprefix("did you mean '").removesuffix("'?")
        hint = f"did you mean {_renamed(variable, problem.field, known)}?"
    return Problem("environment", None, variable, f"{problem.field}: {problem.message}", hint)


def _was_set_by(key: str, problem: Problem) -> bool:
    """Whether the override of ``key`` made the value ``problem`` is about: the key or a value
    inside it, or an unknown table the variable alone names (REFRACT_BOGUS__X makes "bogus")."""
    if problem.field == key or problem.field.startswith((f"{key}.", f"{key}[")):
        return True
    unknown = problem.message == "unknown key"
    return unknown and key.startswith((f"{problem.field}.", f"{problem.field}["))


def _renamed(variable: str, field: str, known: str) -> str:
    """``variable`` with the part naming ``field``'s last key replaced by ``known``."""
    parts = variable.removeprefix(ENV_PREFIX).split(ENV_SEPARATOR)
    depth = len(re.findall(r"[^.\[\]]+", field))
    parts[depth - 1] = known.upper()
    return ENV_PREFIX + ENV_SEPARATOR.join(parts)


def _takes_text(path: list[str]) -> bool:
    """Whether the setting ``path`` names is text (a string, a path or a choice of strings),
    so its environment variable's value is taken as written, never as a TOML number or date."""
    annotation: Any = Config
    for part in path:
        annotation = _unwrap_container(annotation, part)
        if annotation is None:
            return False
    return _is_text(annotation)


def _unwrap_container(annotation: Any, part: str) -> Any:
    """The type of ``part`` inside a value of type ``annotation`` (a model, list or table)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(part)
        return None if field is None else field.annotation
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap_container(typing.get_args(annotation)[0], part)
    if origin is list and part.isdigit():
        return typing.get_args(annotation)[0]
    if origin is dict:
        return typing.get_args(annotation)[1]
    return None


def _is_text(annotation: Any) -> bool:
    if annotation in (str, Path):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_text(typing.get_args(annotation)[0])
    if origin is Literal:
        return all(isinstance(value, str) for value in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return all(_is_text(member) for member in members)
    return False


def _parse_env_value(raw: str, text: bool = False) -> Any:
    """Numbers, booleans, dates and arrays are TOML literals; anything else is a plain string.
    For a text setting (``text``) only a quoted TOML string is parsed: an all-digit key or a
    password like 1979-05-27 stays the string it is."""
    try:
        value = tomllib.loads(f"value = {raw}")["value"]
    except tomllib.TOMLDecodeError:
        return raw
    return raw if text and not isinstance(value, str) else value


def _set_path(data: Any, path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = path[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
