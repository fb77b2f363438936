"""Events: the contract between the proxy, which writes them, and the worker, which reads them.

Two shapes live here. ``Batch`` is what the beacon POSTs to ``/_refract/collect`` (schema
``v`` 1, short keys to keep the script small); it is validated strictly, with unknown fields
dropped. ``Event`` is what goes into a site's Redis stream, msgpack-encoded: one TypedDict
per type (``PageViewEvent``, ``ExposureEvent``, ... ``TrackEvent``), each with an id, its type,
the site, visitor and session (empty when the visitor is not tracked), a time in seconds since
the epoch and the schema version, and the fields of its type. They are plain dicts (nothing
to convert on the proxy's or the worker's hot path); ``decode`` checks an entry read from a
stream against them (``validate``: the type, the required fields and the types of the fields
present), so the worker can trust the shape and dead-letters what does not have it.

A site's stream is split in shards by visitor (``rf:{site}:events:{shard}``); keys carry the
site in a hash tag (``rf:{site}:...``), so a site's keys share a Redis Cluster slot and the
worker's multi-key scripts run there.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import (
    Annotated,
    Any,
    Literal,
    NotRequired,
    Required,
    TypeAlias,
    TypedDict,
    cast,
    get_args,
    get_origin,
    get_type_hints,
    is_typeddict,
)

import mmh3
import msgpack
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails

from refract.rules.networks import Network, NetworkKind
from refract.rules.random_ids import random_hex

SCHEMA_VERSION = 1
EVENT_FIELD = b"e"  # the one field of a stream entry: the msgpack-encoded event
CLOCK_SKEW_S = 24 * 3600
_SHARD_SEED = 0x5EED  # a client clock further off than this is not believed

# Networks whose visitors' addresses a page view may carry (``ip``) for the worker to match an
# organisation by: an organisation's own. Never an ISP's or a mobile carrier's (a residential
# address is personal data, and its PTR name is the ISP's), a hosting company's (VPNs, proxies,
# bots: the name is the host's) or an unknown network (it may be any of those).
MATCHABLE_NETWORKS: frozenset[NetworkKind] = frozenset({"business", "education", "government"})
# Fields that live in the streams only (retention.streams_days): the worker uses them and drops
# them; never in a profile, never in the archive.
STREAM_ONLY_FIELDS = frozenset({"ip"})
# The ad platforms' click-id parameters a page view names when its URL carries them (names
# only, never the values, which identify the click): analytics/attribution/channels.py maps
# each to its platform; tests hold the two lists equal.
CLICK_IDS = frozenset(
    {
        "gclid", "gbraid", "wbraid", "dclid", "msclkid", "yclid", "li_fat_id", "ttclid",
        "twclid", "rdt_cid", "sccid", "epik", "fbclid", "mc_cid",
    }
)  # fmt: skip


# --- the stream's events -------------------------------------------------------------------


class _Envelope(TypedDict):
    """What every event has; each type adds its ``type`` (a literal) and its fields."""

    id: str
    site: str
    visitor: str  # "" when the visitor is not tracked
    session: str
    time: float  # seconds since the epoch
    schema: int  # SCHEMA_VERSION


class NetworkFields(TypedDict):
    """The owner of the visitor's network (rules/networks.py), never the address."""

    asn: int
    org: str
    kind: NetworkKind


class CompanyFields(TypedDict, total=False):
    """An organisation an enrichment API named (analytics/matching.py): its known values."""

    name: Required[str]
    domain: Required[str]
    industry: str
    employees: int
    annual_revenue: float
    location: str
    tech: list[str]


class PageViewEvent(_Envelope):
    type: Literal["pageview"]
    url: str  # the path, no query
    tags: list[str]
    referrer: str
    utm: dict[str, str]
    status: int
    origin_ms: float
    device: str
    new_session: bool
    network: NotRequired[NetworkFields]
    account: NotRequired[str]  # the proxy's match by IP range, or the worker's
    ip: NotRequired[str]  # STREAM_ONLY_FIELDS: for the worker to match, then dropped
    click_ids: NotRequired[list[str]]  # CLICK_IDS the URL carried, sorted; absent when none
    company: NotRequired[CompanyFields]  # added by the worker's matching


class _AssignmentEvent(_Envelope):
    experiment: str
    variant: str
    rules_version: str
    url: str


class ExposureEvent(_AssignmentEvent):
    type: Literal["exposure"]
    # the chance the assignment had (0 < p <= 1; rules/assignment.py), for off-policy
    # evaluation; absent for a bandit's kept arm, which no draw chose
    propensity: NotRequired[float]


class RedirectEvent(_AssignmentEvent):
    type: Literal["redirect"]
    target: str  # the path the visitor is sent to


class _PageEvent(_Envelope):
    url: str  # the path of the page the beacon ran on
    # When the proxy received the event (seconds since the epoch, its own clock); ``time`` is
    # the browser's clock, when believable. Absent in entries written before it existed.
    received: NotRequired[float]


class EngageEvent(_PageEvent):
    type: Literal["engage"]
    ms: int


class ScrollEvent(_PageEvent):
    type: Literal["scroll"]
    depth: int  # 25, 50, 75 or 100


class ClickEvent(_PageEvent):
    type: Literal["click"]
    selector: str
    href: str
    metrics: list[str]  # the click metrics it matched


class OutboundEvent(_PageEvent):
    type: Literal["outbound"]
    href: str


class DownloadEvent(_PageEvent):
    type: Literal["download"]
    href: str
    ext: str


class FormEvent(_PageEvent):
    type: Literal["form"]
    form: str
    action: str
    fields: list[str]  # names, never values
    metrics: list[str]
    email_domain: NotRequired[str]  # only with events.email_domains
    account: NotRequired[str]  # added by the worker's matching


class TrackEvent(_PageEvent):
    type: Literal["track"]
    name: str
    props: dict[str, str | float | bool]


ServerEvent: TypeAlias = PageViewEvent | ExposureEvent | RedirectEvent
BrowserEvent: TypeAlias = (
    EngageEvent | ScrollEvent | ClickEvent | OutboundEvent | DownloadEvent | FormEvent | TrackEvent
)
Event: TypeAlias = ServerEvent | BrowserEvent
EventType: TypeAlias = Literal[
    "pageview",
    "exposure",
    "redirect",
    "engage",
    "scroll",
    "click",
    "outbound",
    "download",
    "form",
    "track",
]


def _type_of(shape: type[Any]) -> str:
    kind: str = get_args(get_type_hints(shape)["type"])[0]
    return kind


SERVER_TYPES = frozenset(_type_of(shape) for shape in get_args(ServerEvent))
BEACON_TYPES = frozenset(_type_of(shape) for shape in get_args(BrowserEvent))
TYPES = SERVER_TYPES | BEACON_TYPES


def shard_of(visitor: str, shards: int) -> int:
    """A visitor's events all go to one shard of the site's stream, so that the one worker
    holding that shard sees them in order (anonymous events share shard 0)."""
    return mmh3.hash(visitor, _SHARD_SEED, signed=False) % shards if visitor else 0


class InvalidEvent(ValueError):
    """An event that cannot be accepted; the message is the reason given back."""


# --- the beacon's batch (wire schema v1) -----------------------------------------------

# The batch's bounds. proxy/static/beacon.js keeps its own copies, to send nothing these refuse
# (tests/test_beacon_bounds.py holds the two equal); a batch with one field over them is refused
# whole.
MAX_TEXT = 256
MAX_URL = 2048
MAX_EVENTS = 50  # per batch
MAX_METRICS = 16  # click or form metrics one event names
MAX_FIELDS = 64  # field names a form event lists
MAX_FIELD_NAME = 64
MAX_ENGAGE_MS = 86_400_000  # engaged time one event reports
EMAIL_DOMAIN = r"^([a-z0-9-]{1,63}\.)+[a-z]{2,63}$"
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]
Url = Annotated[str, StringConstraints(max_length=MAX_URL)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


def _each_once(names: list[str]) -> list[str]:
    """A metric named twice would count its conversion twice (a repeatable one up to
    MAX_METRICS times); the beacon names each metric it matched once."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"metric {name!r} is named more than once")
        seen.add(name)
    return names


MetricNames = Annotated[list[Name], AfterValidator(_each_once)]
# Numbers a visitor sends are bounded before anything computes with them (a 400-digit ``ts``
# overflowed a float): times by what a JavaScript Date can hold (ECMA-262 section 21.4.1.1),
# other numbers by the largest integer a JavaScript number holds exactly; never inf or NaN.
_MAX_CLIENT_MS = 8_640_000_000_000_000
_MAX_SAFE_INTEGER = 9_007_199_254_740_991
# The last second a Python date can name (9999-12-31T23:59:59Z): an event's time beyond it has
# no cohort day in the worker nor day directory in the archive. The proxy's are near now.
_LAST_EVENT_TIME = 253_402_300_799
Number = Annotated[float, Field(allow_inf_nan=False, ge=-_MAX_SAFE_INTEGER, le=_MAX_SAFE_INTEGER)]
PropValue = Annotated[str, StringConstraints(max_length=256)] | Number | bool
# A track event's ``value`` prop is revenue: an amount, never more than this either way (one
# visitor must not be able to outweigh a test's every other conversion), and below zero only
# for an event metric with ``allow_negative`` (refunds).
VALUE_PROP = "value"
MAX_VALUE = 1_000_000_000


class _BeaconEvent(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    ts: int = Field(
        default=0,
        ge=-_MAX_CLIENT_MS,
        le=_MAX_CLIENT_MS,
        description="client time, milliseconds since the epoch",
    )


class Engage(_BeaconEvent):
    t: Literal["engage"]
    ms: int = Field(ge=0, le=MAX_ENGAGE_MS, description="visible, engaged milliseconds")


class Scroll(_BeaconEvent):
    t: Literal["scroll"]
    d: Literal[25, 50, 75, 100]


class Click(_BeaconEvent):
    t: Literal["click"]
    s: Text = Field(description="a short selector path of the clicked element")
    h: Url = ""
    m: MetricNames = Field(
        default=[], max_length=MAX_METRICS, description="click metrics it matched"
    )


class Outbound(_BeaconEvent):
    t: Literal["outbound"]
    h: Url


class Download(_BeaconEvent):
    t: Literal["download"]
    h: Url
    x: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]{1,8}$")]


class Form(_BeaconEvent):
    t: Literal["form"]
    id: Text = ""
    a: Url = ""
    f: list[Annotated[str, StringConstraints(max_length=MAX_FIELD_NAME)]] = Field(
        default=[], max_length=MAX_FIELDS
    )
    m: MetricNames = Field(
        default=[], max_length=MAX_METRICS, description="form metrics it matched"
    )
    dom: Annotated[str, StringConstraints(pattern=f"{EMAIL_DOMAIN}|^$")] = ""


class Track(_BeaconEvent):
    t: Literal["track"]
    n: Name
    p: dict[Name, PropValue] = Field(default={}, max_length=20)


AnyBeaconEvent = Engage | Scroll | Click | Outbound | Download | Form | Track
BeaconEvent = Annotated[AnyBeaconEvent, Field(discriminator="t")]


class Batch(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    v: Literal[1]
    u: Url = Field(description="the page's path and query")
    e: list[BeaconEvent] = Field(min_length=1, max_length=MAX_EVENTS)


def parse_batch(body: bytes) -> Batch:
    """The beacon's batch, or InvalidEvent naming the first problem."""
    try:
        return Batch.model_validate_json(body)
    except ValidationError as error:
        first = _telling(error.errors())
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidEvent(f"{where}: {first['msg']}") from None


def _telling(errors: list[ErrorDetails]) -> ErrorDetails:
    """The error to give back: a value of one of a union's kinds (a number for a prop) fails
    each of the others too (``should be a valid string``); the error of its own kind says
    what is wrong with it (``should be a finite number``)."""
    return next((error for error in errors if not error["type"].endswith("_type")), errors[0])


def value_problem(value: object, allow_negative: bool) -> str | None:
    """Why ``value`` cannot be a track event's revenue, or None when it can (a string or a
    boolean is no amount: the metric's own value counts instead, so it is no problem)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        return f"{value!r} is not a finite number"
    low = -MAX_VALUE if allow_negative else 0
    if not low <= value <= MAX_VALUE:
        hint = "" if allow_negative else " (negative only for a metric with allow_negative)"
        return f"{value!r} is not between {low} and {MAX_VALUE}{hint}"
    return None


def check_values(batch: Batch, allows_negative: Callable[[str], bool]) -> None:
    """InvalidEvent naming the first track event whose ``value`` is no revenue;
    ``allows_negative(name)``: whether the metric counting that event takes refunds."""
    for index, item in enumerate(batch.e):
        if isinstance(item, Track) and VALUE_PROP in item.p:
            value = item.p[VALUE_PROP]
            negative_ok = isinstance(value, int | float) and value < 0 and allows_negative(item.n)
            if problem := value_problem(value, negative_ok):
                raise InvalidEvent(f"e.{index}.p.{VALUE_PROP}: {problem}")


def from_beacon(
    batch: Batch,
    site: str,
    visitor: str,
    session: str,
    now: float,
    email_domains: bool,
) -> list[BrowserEvent]:
    """Stream events for a validated batch; identity comes from cookies, never the body. Each
    keeps the browser's clock as its ``time`` (when the visitor acted, the batch having waited
    in the page) and ``now`` as ``received`` (what attribution orders by: ``received_at``)."""
    path = _path_only(batch.u)
    return [
        _browser_event(
            item,
            {
                **_envelope(site, visitor, session, _clamp(item.ts, now)),
                "url": path,
                "received": now,
            },
            email_domains,
        )
        for item in batch.e
    ]


class _BeaconEnvelope(_Envelope):
    """What every event of a beacon's batch has: the envelope, the page, when it arrived."""

    url: str
    received: float


def _browser_event(item: AnyBeaconEvent, envelope: _BeaconEnvelope, email: bool) -> BrowserEvent:
    match item:
        case Engage():
            return {**envelope, "type": "engage", "ms": item.ms}
        case Scroll():
            return {**envelope, "type": "scroll", "depth": item.d}
        case Click():
            return {
                **envelope,
                "type": "click",
                "selector": item.s,
                "href": _path_only(item.h),
                "metrics": item.m,
            }
        case Outbound():
            return {**envelope, "type": "outbound", "href": _path_only(item.h)}
        case Download():
            return {**envelope, "type": "download", "href": _path_only(item.h), "ext": item.x}
        case Form():
            form: FormEvent = {  # spelled out: mypy takes no ** into a shape with optional keys
                "id": envelope["id"],
                "type": "form",
                "site": envelope["site"],
                "visitor": envelope["visitor"],
                "session": envelope["session"],
                "time": envelope["time"],
                "schema": envelope["schema"],
                "url": envelope["url"],
                "received": envelope["received"],
                "form": item.id,
                "action": _path_only(item.a),
                "fields": item.f,
                "metrics": item.m,
            }
            if email and item.dom:
                form["email_domain"] = item.dom
            return form
        case Track():
            return {**envelope, "type": "track", "name": item.n, "props": dict(item.p)}


def received_at(event: Event) -> float:
    """When a proxy had the event, by its own clock: a beacon event's ``received``; the
    ``time`` of an event the proxy made itself (a page view, an exposure), or of a beacon event
    written before ``received`` existed. Attribution orders an outcome against the exposure by
    this, never by a browser's clock (a clock minutes slow put conversions before the page
    that exposed them, and they were dropped)."""
    received = event.get("received")
    return float(received) if isinstance(received, int | float) else event["time"]


def _clamp(client_ms: int, now: float) -> float:
    """The client's time when it is believable (and not in the future), else the server's:
    what an event's ``time`` says (days, last seen, timelines), never its order against the
    proxy's own events (``received_at``)."""
    client = client_ms / 1000
    if abs(client - now) > CLOCK_SKEW_S:
        return now
    return min(client, now)


def _path_only(url: str) -> str:
    """A URL without its query string or fragment, where personal data tends to hide."""
    return url.split("#", 1)[0].split("?", 1)[0]


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def visitor_text(value: str, limit: int) -> str:
    """A string from the visitor's request as an event keeps it: at most ``limit`` characters
    (as the beacon's fields are), and valid text. aiohttp gives a header byte that is not
    UTF-8 as a lone surrogate, which msgpack cannot encode: it becomes U+FFFD."""
    value = value[:limit]
    return value if value.isascii() else LONE_SURROGATE.sub("\ufffd", value)


# --- events the proxy records itself ------------------------------------------------------


def event_of(kind: str, site: str, visitor: str, session: str, at: float, **fields: Any) -> Event:
    """An event of any type from its fields, checked as a stream entry is (``validate``): for
    tests and tools; the proxy builds its events with the typed constructors."""
    return validate(
        {
            "id": random_hex(),
            "type": kind,
            "site": site,
            "visitor": visitor,
            "session": session,
            "time": at,
            "schema": SCHEMA_VERSION,
            **fields,
        }
    )


def _envelope(site: str, visitor: str, session: str, at: float) -> _Envelope:
    return {
        "id": random_hex(),
        "site": site,
        "visitor": visitor,
        "session": session,
        "time": at,
        "schema": SCHEMA_VERSION,
    }


def pageview(
    site: str,
    visitor: str,
    session: str,
    *,
    url: str,
    tags: Iterable[str],
    referrer: str,
    utm: Mapping[str, str],
    status: int,
    origin_ms: float,
    device: str,
    new_session: bool,
    network: Network | None = None,
    account: str = "",
    ip: str = "",
    click_ids: Iterable[str] = (),
) -> PageViewEvent:
    """A page served; ``network`` is who owns the visitor's address, ``account`` the domain of
    the target account that address belongs to, and ``ip`` the address itself, only when the
    worker may match it (``MATCHABLE_NETWORKS``, docs/events.md) and for the stream alone;
    ``click_ids`` the query's parameter names, of which the ``CLICK_IDS`` are kept."""
    event: PageViewEvent = {
        "id": random_hex(),
        "type": "pageview",
        "site": site,
        "visitor": visitor,
        "session": session,
        "time": time.time(),
        "schema": SCHEMA_VERSION,
        "url": visitor_text(url, MAX_URL),
        "tags": sorted(tags),
        "referrer": visitor_text(_path_only(referrer), MAX_URL),
        "utm": {name: visitor_text(value, MAX_TEXT) for name, value in utm.items()},
        "status": status,
        "origin_ms": round(origin_ms, 2),
        "device": device,
        "new_session": new_session,
    }
    if network is not None:
        event["network"] = {"asn": network.asn, "org": network.org, "kind": network.kind}
    if account:
        event["account"] = account
    if ip:
        event["ip"] = ip
    if kept := sorted(CLICK_IDS.intersection(click_ids)):
        event["click_ids"] = kept
    return event


def exposure(
    site: str,
    visitor: str,
    session: str,
    *,
    experiment: str,
    variant: str,
    rules_version: str,
    url: str,
) -> ExposureEvent:
    """An assignment counted on a page actually served (the caller adds its ``propensity``
    when a draw chose the variant)."""
    return {  # the envelope spelled out: mypy takes no ** into a shape with optional keys
        "id": random_hex(),
        "type": "exposure",
        "site": site,
        "visitor": visitor,
        "session": session,
        "time": time.time(),
        "schema": SCHEMA_VERSION,
        "experiment": experiment,
        "variant": variant,
        "rules_version": rules_version,
        "url": visitor_text(url, MAX_URL),
    }


def redirect(
    site: str,
    visitor: str,
    session: str,
    *,
    experiment: str,
    variant: str,
    rules_version: str,
    url: str,
    target: str,
) -> RedirectEvent:
    """A split-URL test sending the visitor elsewhere (the exposure is recorded too)."""
    return {
        **_envelope(site, visitor, session, time.time()),
        "type": "redirect",
        "experiment": experiment,
        "variant": variant,
        "rules_version": rules_version,
        "url": visitor_text(url, MAX_URL),
        "target": visitor_text(_path_only(target), MAX_URL),
    }


# --- the stream's encoding ----------------------------------------------------------------


def encode(event: Event) -> bytes:
    return msgpack.packb(event, use_bin_type=True)  # type: ignore[no-any-return]


def decode(data: bytes) -> Event:
    """An event read from a stream, or InvalidEvent (the worker dead-letters it)."""
    try:
        event = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as error:
        raise InvalidEvent(f"not msgpack: {error}") from None
    return validate(event)


# A field's check: its name, the Python types its value may have (as msgpack or JSON decode
# it), what to call them in a reason, and whether the field must be there.
_Check = tuple[str, tuple[type, ...], str, bool]
_ABSENT = object()


def validate(data: object) -> Event:
    """``data`` as an Event if it has the shape of its type (the TypedDicts above): a known
    type, this schema version, every required field, and the fields present of the right
    Python types (one level deep: a list is a list); else InvalidEvent with the reason."""
    if not isinstance(data, dict):
        raise InvalidEvent("not a map")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise InvalidEvent("type: missing or not a str")
    checks = _CHECKS.get(kind)
    if checks is None:
        raise InvalidEvent(f"type: unknown type {kind!r}")
    for name, types, what, required in checks:
        value = data.get(name, _ABSENT)
        if value is _ABSENT:
            if required:
                raise InvalidEvent(f"{name}: missing or not {what}")
        elif not isinstance(value, types):
            raise InvalidEvent(f"{name}: missing or not {what}")
    if data.get("schema") != SCHEMA_VERSION:
        raise InvalidEvent(f"schema: version {data.get('schema')!r} is not {SCHEMA_VERSION}")
    _check_numbers(data)
    return cast(Event, data)


def _check_numbers(data: dict[Any, Any]) -> None:
    """The bounds the proxy enforces, again: an entry written by an older proxy, or by anyone
    with access to the stream, must not put NaN, infinities or absurd amounts into the
    aggregates (nor make the archive refuse it later). The sign of a ``value`` depends on the
    metric, which the worker's effects check (``value_problem``)."""
    for name, value in data.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidEvent(f"{name}: {value!r} is not a finite number")
    for name in ("time", "received"):
        if name in data and not 0 <= data[name] <= _LAST_EVENT_TIME:
            raise InvalidEvent(f"{name}: {data[name]!r} is not between 1970 and 9999")
    if data["type"] == "track":
        for name, value in data["props"].items():
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidEvent(f"props.{name}: {value!r} is not a finite number")
        if problem := value_problem(data["props"].get(VALUE_PROP), allow_negative=True):
            raise InvalidEvent(f"props.{VALUE_PROP}: {problem}")
    if data["type"] == "pageview" and "click_ids" in data:
        _check_click_ids(data["click_ids"])
    if data["type"] == "exposure" and "propensity" in data:
        propensity = data["propensity"]
        if isinstance(propensity, bool) or not 0 < propensity <= 1:  # True is 1 in Python
            raise InvalidEvent(f"propensity: {propensity!r} is not in (0, 1]")


def _check_click_ids(names: list[Any]) -> None:
    """Names of ``CLICK_IDS`` only, each once: a stream entry carries no values nor more."""
    if len(names) > len(CLICK_IDS) or len(set(map(str, names))) != len(names):
        raise InvalidEvent(f"click_ids: more than {len(CLICK_IDS)} or repeated names")
    for name in names:
        if not isinstance(name, str) or name not in CLICK_IDS:
            raise InvalidEvent(f"click_ids: {str(name)[:64]!r} is not a known click id")


def _checks(shape: type[Any]) -> tuple[_Check, ...]:
    """The checks of one event type, read from its TypedDict."""
    found = []
    for name, hint in get_type_hints(shape, include_extras=True).items():
        required = get_origin(hint) is not NotRequired
        if not required:
            (hint,) = get_args(hint)
        if name not in ("type", "schema"):  # checked apart
            found.append((name, *_runtime_types(hint), required))
    return tuple(found)


def _runtime_types(hint: Any) -> tuple[tuple[type, ...], str]:
    if hint is float:
        return (int, float), "a number"
    if hint in (str, int, bool):
        return (hint,), {str: "a str", int: "an int", bool: "a bool"}[hint]
    origin = get_origin(hint)
    if origin is list:
        return (list,), "a list"
    if origin is dict or is_typeddict(hint):
        return (dict,), "a map"
    raise TypeError(f"no runtime check for {hint!r}")  # a new field's type: add it here


_CHECKS: dict[str, tuple[_Check, ...]] = {
    _type_of(shape): _checks(shape) for shape in (*get_args(ServerEvent), *get_args(BrowserEvent))
}
